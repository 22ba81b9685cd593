"""Episodic memory (steps, returns, values, lessons), the dungeon and ``engram experiment
episodic``. Tests taking ``make_memory`` run on SQLite and PostgreSQL (skipped locally without
``ENGRAM_TEST_PG_URL``, failed under CI)."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

import pytest
from pg import BACKENDS, CachingEmbedder, pg_url, store_location

from engram.agents.episodes import EpisodicMemory, discounted_returns
from engram.errors import EngramError
from engram.experiment.dungeon import ACTIONS, COMMON_SENSE, RULES, Dungeon, common_sense


@pytest.fixture(scope="module")
def cached_embedder(embedder):
    return CachingEmbedder(embedder)


@pytest.fixture(params=BACKENDS)
def make_memory(request, tmp_path, cached_embedder):
    from engram.memory import Memory

    if request.param == "postgres":
        pg_url()
    stack = ExitStack()

    def make(name: str = "m"):
        location = stack.enter_context(store_location(request.param, tmp_path, name))
        mem = Memory(location, embedder=cached_embedder)
        stack.callback(mem.close)
        return mem

    with stack:
        yield make


TROLL = "A troll blocks the way. The troll looks hungry; behind it, a stone bridge and a lantern."
TROLL2 = "A troll blocks the way. The troll looks sleepy; behind it, a wooden door and a torn map."
WOLF = "A wolf blocks the way. The wolf looks angry; behind it, a dark stairway and a rusty key."


def test_discounted_returns():
    assert discounted_returns([1, 1, 0], 0.5) == [1.5, 1.0, 0.0]
    assert discounted_returns([0, 0, 4], 1.0) == [4.0, 4.0, 4.0]
    assert discounted_returns([], 0.9) == []


def test_steps_returns_values_and_lessons(make_memory):
    mem = make_memory()
    em = EpisodicMemory(mem, "game", gamma=0.5)
    assert em.recall(TROLL) == [] and em.steps("nope") == []  # nothing stored yet: no error
    # Episode a: bargain with the troll (1), fight the wolf (1), bargain the troll again (0).
    em.record("a", TROLL, "bargain", 1.0)
    em.record("a", WOLF, "fight", 1, metadata={"room": 2})
    em.record("a", TROLL2, "fight", 0.0, done=True)
    em.add_lesson("a", "Fighting a troll ended the run.", metadata={"avoid": "fight"})
    # Episode b: flee from the troll, which ends it.
    em.record("b", TROLL2, "flee", 0.0, done=True)
    steps = em.steps("a")
    assert [(s.t, s.action, s.reward, s.done) for s in steps] == [
        (0, "bargain", 1.0, False),
        (1, "fight", 1.0, False),
        (2, "fight", 0.0, True),
    ]
    assert [s.ret for s in steps] == [1.5, 1.0, 0.0]
    assert steps[1].metadata == {"room": 2}
    assert [s.ret for s in em.steps("a", gamma=1.0)] == [2.0, 1.0, 0.0]
    assert em.lessons("a") == ["Fighting a troll ended the run."] and em.lessons("b") == []
    # Recall: the troll states come first, with their actions, returns and lessons.
    near = em.recall(TROLL, k=3)
    assert len(near) == 3
    assert {s.state for s in near[:2]} <= {TROLL, TROLL2} and near[0].state == TROLL
    assert near[0].action == "bargain" and near[0].ret == 1.5 and near[0].similarity > 0.99
    assert near[0].lessons == ["Fighting a troll ended the run."]
    assert all(a.similarity >= b.similarity for a, b in zip(near, near[1:], strict=False))
    assert [s.action for s in em.recall(TROLL, k=5, action="flee")] == ["flee"]
    # Values: per action from its neighbours; an action never taken has none.
    values = em.values(TROLL, ACTIONS, k=2, min_similarity=0.6)
    assert values["bargain"].value == pytest.approx(1.5) and values["bargain"].n == 1
    assert values["flee"].value == 0.0 and values["sneak"].value is None
    assert values["sneak"].n == 0
    # fight near the troll: only the troll step (return 0) is close enough; without the cut
    # the wolf step (return 1) counts too, weighted by its lower similarity.
    assert values["fight"].n == 1 and values["fight"].value == 0.0
    fight = em.values(TROLL, ["fight"], k=2)["fight"]
    assert fight.n == 2 and 0.0 < fight.value < 0.5
    assert fight.neighbours[0].state == TROLL2
    lessons = em.recall_lessons(TROLL, k=2)
    assert lessons and lessons[0].metadata == {"kind": "lesson", "episode": "a", "avoid": "fight"}
    # A new EpisodicMemory on the same store continues numbering and knows closed episodes.
    again = EpisodicMemory(mem, "game")
    assert again.record("c", WOLF, "fight", 1.0).t == 0
    assert again.record("c", TROLL, "bargain", 1.0).t == 1
    with pytest.raises(EngramError, match="is done"):
        again.record("a", WOLF, "fight", 1.0)


def test_bad_input_is_refused_and_stores_nothing(make_memory):
    mem = make_memory()
    em = EpisodicMemory(mem, "game")
    em.record("a", TROLL, "bargain", 1.0)
    before = mem.stats()["documents"]
    for kwargs, message in [
        ({"state": ""}, "state must be a non-empty string"),
        ({"action": None}, "action must be a non-empty string"),
        ({"reward": "1"}, "reward must be a number"),
        ({"reward": float("nan")}, "reward must be finite"),
        ({"reward": True}, "reward must be a number"),
        ({"metadata": {"reward": 3}}, "reserved"),
    ]:
        args = {"episode": "a", "state": WOLF, "action": "fight", "reward": 1.0, **kwargs}
        with pytest.raises(EngramError, match=message):
            em.record(**args)
    with pytest.raises(EngramError, match="gamma"):
        EpisodicMemory(mem, "game", gamma=1.5)
    with pytest.raises(EngramError, match="at least one candidate"):
        em.values(TROLL, [])
    assert mem.stats()["documents"] == before
    assert em.record("a", WOLF, "fight", 1.0).t == 1  # numbering went on where it was


def test_dungeon_is_deterministic_and_follows_its_rules():
    a, b = Dungeon(3), Dungeon(3)
    assert a.reset() == b.reset()
    total = 0.0
    state = a.reset()
    while state is not None:
        state, reward, done = a.step(a.best())
        total += reward
    assert total == 5.0 and done
    c = Dungeon(3)
    c.reset()
    c.reset()
    wrong = next(x for x in ACTIONS if x != c.best())
    assert c.step(wrong) == (None, 0.0, True)
    with pytest.raises(ValueError, match="unknown action"):
        Dungeon(1).step("dance")
    # The memoryless guess is right for exactly half of the creatures.
    assert sum(COMMON_SENSE[c] == RULES[c] for c in RULES) == len(RULES) // 2
    assert common_sense(TROLL) == "flee" and RULES["troll"] == "bargain"


def test_experiment_command(tmp_path, capsys, embedder):
    """A short run: the memory agent learns; the report, JSON and plot are written."""
    from engram.cli import main

    out = tmp_path / "out"
    code = main(
        [
            "experiment",
            "episodic",
            "--episodes",
            "15",
            "--seeds",
            "0",
            "1",
            "--json",
            "--quiet",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    agents = report["agents"]
    assert set(agents) == {"random", "memoryless", "memory"}
    for row in agents.values():
        lo, hi = row["ci95_last20"]
        assert lo <= row["mean_reward_last20"] <= hi
        assert all(len(r) == 15 for r in row["reward_per_episode"].values())
    assert report["last20_episodes"] == 3
    # The memoryless policy is deterministic: the same on the same seed.
    assert agents["memory"]["mean_reward_last20"] > agents["memoryless"]["mean_reward_last20"]
    assert agents["memory"]["mean_reward_last20"] > agents["random"]["mean_reward_last20"]
    assert json.loads((out / "report.json").read_text())["episodes"] == 15
    assert Path(out / "episodic.png").read_bytes()[:4] == b"\x89PNG"


def test_episodes_command(tmp_path, capsys):
    from engram.cli import main

    store = str(tmp_path / "cli.db")

    def run(*argv: str) -> object:
        assert main(["--store", store, "episodes", *argv]) == 0
        return json.loads(capsys.readouterr().out)

    step = run("record", "e1", "--state", TROLL, "--action", "bargain", "--reward", "1")
    assert step["t"] == 0 and step["return"] == 0.0
    run("record", "e1", "--state", WOLF, "--action", "sneak", "--reward", "0", "--done")
    run("lesson", "e1", "Sneaking past the wolf failed.")
    shown = run("show", "e1", "--gamma", "0.5")
    assert [s["return"] for s in shown["steps"]] == [1.0, 0.0]
    assert shown["lessons"] == ["Sneaking past the wolf failed."]
    values = run("values", TROLL2, "--actions", "bargain", "sneak", "fight")
    assert values["bargain"]["value"] == 1.0 and values["fight"]["value"] is None
    assert (
        main(
            [
                "--store",
                store,
                "episodes",
                "record",
                "e1",
                "--state",
                TROLL,
                "--action",
                "flee",
                "--reward",
                "0",
            ]
        )
        == 1
    )  # the episode is done: one-line error
    assert "is done" in capsys.readouterr().err
