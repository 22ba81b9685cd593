"""``engram eval locomo`` on a tiny LoCoMo-format file."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

import pytest

from engram.agents.cli import add_locomo_parser
from engram.errors import EngramError
from engram.evaluate.locomo import (
    Conversation,
    Question,
    Settings,
    conversation_documents,
    evaluate_locomo,
    load_locomo,
    normalise_evidence,
    parse_session_time,
    recall_turns,
    spread_sample,
    token_f1,
)

SESSION_1 = [
    ("Ana", "Hi Ben! How have you been lately?"),
    ("Ben", "Busy with work, but good. What's new with you?"),
    ("Ana", "I started learning the cello last week! My teacher is very patient."),
    ("Ben", "That's amazing. Do you practice every day?"),
    ("Ana", "Almost. My parrot Kiwi sings along when I play."),
    ("Ben", "Ha, a musical parrot. I am planning a trip to Portugal."),
    ("Ana", "Have a great time and send pictures!"),
]
SESSION_2 = [
    ("Ben", "Hey Ana, long time no talk."),
    ("Ana", "Hi Ben! How was the trip?"),
    ("Ben", "I got back from Lisbon yesterday, the custard tarts were incredible."),
    ("Ana", "Jealous! Did anyone look after your pets?"),
    ("Ben", "My neighbour fed my two goldfish while I was away."),
    ("Ana", "Good neighbours are the best."),
    ("Ben", "Totally. Let's catch up again soon."),
]
QA = [
    {
        "question": "What instrument did Ana start learning?",
        "answer": "cello",
        "evidence": ["D1:3"],
        "category": 4,
    },
    {
        "question": "When did Ben go to Lisbon?",
        "answer": "19 May 2023",
        "evidence": ["D2:3"],
        "category": 2,
    },
    {
        "question": "What pets do Ana and Ben have?",
        "answer": "a parrot and two goldfish",
        "evidence": ["D1:5; D2:5"],
        "category": 1,
    },
    {
        "question": "Would Ana enjoy a classical concert?",
        "answer": "Likely yes",
        "evidence": ["D01:03"],
        "category": 3,
    },
    {"question": "Who fed the cat?", "adversarial_answer": "no cat", "evidence": [], "category": 5},
    {"question": "What did Ben eat?", "answer": "custard tarts", "evidence": [], "category": 4},
]


@pytest.fixture
def locomo_file(tmp_path):
    conversation = {"speaker_a": "Ana", "speaker_b": "Ben"}
    for n, (when, turns) in enumerate(
        [("1:56 pm on 8 May, 2023", SESSION_1), ("10:05 am on 20 May, 2023", SESSION_2)], 1
    ):
        conversation[f"session_{n}_date_time"] = when
        conversation[f"session_{n}"] = [
            {"speaker": s, "dia_id": f"D{n}:{i}", "text": t} for i, (s, t) in enumerate(turns, 1)
        ]
    conversation["session_1"][4]["blip_caption"] = "a photo of a green parrot on a chair"
    path = tmp_path / "tiny_locomo.json"
    path.write_text(json.dumps([{"sample_id": "conv-t", "conversation": conversation, "qa": QA}]))
    return path


def run_cli(argv: list[str], capsys) -> dict:
    parser = argparse.ArgumentParser(prog="engram")
    parser.add_argument("--store")
    parser.add_argument("--threads", type=int)
    evals = parser.add_subparsers(dest="command").add_parser("eval").add_subparsers()
    add_locomo_parser(evals)
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    return json.loads(capsys.readouterr().out)


def test_parsing_helpers():
    assert (
        parse_session_time("1:56 pm on 8 May, 2023")
        == datetime(2023, 5, 8, 13, 56, tzinfo=UTC).timestamp()
    )
    assert (
        parse_session_time("12:48 am on 1 February, 2023")
        == datetime(2023, 2, 1, 0, 48, tzinfo=UTC).timestamp()
    )
    assert normalise_evidence(["D8:6; D9:17", "D", "D30:05", "D8:6"]) == ["D8:6", "D9:17", "D30:5"]
    assert token_f1("The cello", "cello") == 1.0
    assert token_f1("a red parrot", "a parrot and two goldfish") == pytest.approx(0.4)
    assert token_f1("", "cello") == 0.0


def test_documents_hold_turns_contexts_and_sentences(locomo_file):
    (conv,) = load_locomo(locomo_file)
    assert len(conv.turns) == 14 and conv.namespace == "locomo-conv-t"
    docs = {d.id: d for d in conversation_documents(conv)}
    turn = docs["D1:5"]
    assert turn.text == (
        "Ana: Almost. My parrot Kiwi sings along when I play. "
        "[shares a photo of a green parrot on a chair]"
    )
    assert turn.metadata == {
        "dia_id": "D1:5",
        "speaker": "Ana",
        "session": 1,
        "kind": "turn",
        "turn": 4,
    }
    assert turn.created_at == parse_session_time("1:56 pm on 8 May, 2023") + 4
    assert docs["context:D1:5"].text.splitlines()[0].startswith("Ana: I started learning")
    assert docs["context:D2:1"].text.splitlines()[0] == "Ben: Hey Ana, long time no talk."
    assert docs["sentence:D1:5:1"].text == "Ana: My parrot Kiwi sings along when I play."
    assert docs["sentence:D1:5:2"].text == "Ana: [shares a photo of a green parrot on a chair]"


def test_eval_locomo_cli_json(locomo_file, tmp_path, capsys):
    store = str(tmp_path / "locomo.db")
    result = run_cli(["--store", store, "eval", "locomo", str(locomo_file), "--json"], capsys)
    assert {"recall@5", "recall@10", "per_category", "questions"} <= result.keys()
    assert result["questions"] == 4 and result["skipped"] == 1
    assert set(result["per_category"]) == {"1", "2", "3", "4"}
    assert result["per_category"]["4"]["recall@5"] == 1.0
    assert result["per_category"]["2"]["recall@5"] == 1.0
    assert 0.5 <= result["recall@5"] <= result["recall@10"] <= 1.0

    plain = run_cli(
        ["--store", store, "eval", "locomo", str(locomo_file), "--json", "--retrieval", "plain"]
        + ["--limit", "2", "--k", "3"],
        capsys,
    )
    assert plain["questions"] == 2 and plain["retrieval"] == "plain"
    assert {"recall@3", "recall@5", "recall@10"} <= plain.keys()


def test_limit_is_a_seeded_sample_spread_over_conversations():
    convs = [Conversation(f"conv-{c}", []) for c in "abc"]
    todo = [
        (conv, Question(f"{conv.sample_id} q{i}", "a", 4, ["D1:1"]))
        for conv in convs
        for i in range(5)
    ]
    picked = spread_sample(todo, 6, seed=3)
    assert len(picked) == 6 and picked == spread_sample(todo, 6, seed=3)
    assert {conv.sample_id for conv, _ in picked} == {"conv-a", "conv-b", "conv-c"}
    assert all(
        sum(c.sample_id == s for c, _ in picked) == 2 for s in ("conv-a", "conv-b", "conv-c")
    )
    assert picked == sorted(picked, key=todo.index)
    assert spread_sample(todo, 100) == todo


def test_recall_turns_and_answer_f1(locomo_file, make_memory):
    class Fixed:
        model_id, context_window = "fixed", 4096

        def count_tokens(self, text):
            return len(text.split())

        def stream(self, messages, max_tokens=256, temperature=0.0, stop=None):
            yield "the cello [1]"

    mem = make_memory(generator=Fixed())
    # The views as they were before the speaker bonus, context vectors and learned ranker: this
    # test is about answer scoring, and the bonus brings D1:3 into a third question's top 3.
    views = Settings(speaker=0.0, context_vector=0.0, ranker="none")
    result = evaluate_locomo(locomo_file, memory=mem, answer=True, k=3, settings=views)
    assert result["questions"] == 4 and result["f1"] == 0.25
    # "the cello" is withheld (grounding check) where the recalled turns do not hold "cello"
    assert result["abstained"] == 0.75 and result["per_category"]["4"]["abstained"] == 0
    assert result["per_category"]["4"]["f1"] == 1.0  # "cello" is right only there
    assert {c: r["f1"] for c, r in result["per_category"].items() if c != "4"} == {
        "1": 0.0,
        "2": 0.0,
        "3": 0.0,
    }
    ranked = recall_turns(mem, "locomo-conv-t", "Who plays the cello?", k=3)
    assert ranked[0][0] == "D1:3"
    plain = recall_turns(mem, "locomo-conv-t", "cello", k=3, settings=Settings(retrieval="plain"))
    assert plain[0][0] == "D1:3"


def test_agent_retrieval_stores_and_recalls_through_agent_memory(locomo_file, make_memory):
    """``--retrieval agent``: turns only, stored once through ``AgentMemory`` in their own
    namespace and recalled by ``AgentMemory.recall``; views are not written."""
    from engram.evaluate.locomo_agent import agent_namespace

    mem = make_memory()
    agent = Settings(retrieval="agent")
    result = evaluate_locomo(locomo_file, memory=mem, settings=agent)
    assert result["retrieval"] == "agent" and result["questions"] == 4
    assert result["per_category"]["4"]["recall@5"] == 1.0  # the cello turn
    namespace = agent_namespace("locomo-conv-t")
    assert mem.store.count_documents(namespace) == len(SESSION_1) + len(SESSION_2)
    assert not mem.namespace_exists("locomo-conv-t")  # no views
    again = evaluate_locomo(locomo_file, memory=mem, settings=agent)
    assert again == result  # nothing stored twice
    assert mem.store.count_documents(namespace) == len(SESSION_1) + len(SESSION_2)
    ranked = recall_turns(mem, "locomo-conv-t", "What did Ben eat in Lisbon?", 3, agent)
    assert ranked[0][0] == "D2:3"
    with pytest.raises(EngramError, match="--answers"):
        evaluate_locomo(locomo_file, memory=mem, settings=agent, answer=True)
    mem.delete(["turn-0"], namespace=namespace)
    with pytest.raises(EngramError, match="13 of 14 turns"):
        evaluate_locomo(locomo_file, memory=mem, settings=agent)


def test_the_agent_turn_ranker_is_fitted_on_the_evidence(locomo_file, make_memory):
    """``fit_agent_ranker`` labels each question's candidates by its evidence: refitted on the
    tiny conversation, a ranker that prefers evidence ranks every evidence turn first."""
    from engram.agents.turn_rank import FEATURES
    from engram.agents.windows import WindowWeights
    from engram.evaluate.locomo_agent import agent_turns, fit_agent_ranker

    mem = make_memory()
    ranker = fit_agent_ranker(mem, load_locomo(locomo_file), c=10.0)
    assert len(ranker.coef) == len(FEATURES) and any(ranker.coef)
    cello = "What instrument did Ana start learning?"
    window = WindowWeights(ranker=ranker)
    assert agent_turns(mem, "locomo-conv-t", cello, 3, window)[0][0] == "D1:3"
    lisbon = agent_turns(mem, "locomo-conv-t", "When did Ben go to Lisbon?", 3, window)
    assert lisbon[0][0] == "D2:3"
