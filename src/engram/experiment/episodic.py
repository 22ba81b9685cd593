"""``engram experiment episodic``: three agents on the same seeds of the dungeon
(:mod:`engram.experiment.dungeon`): random, a memoryless policy (a fixed common-sense guess),
and the same policy with Engram episodic memory and lessons. The policy never changes; only
memory grows. Reports the reward per episode, a learning curve, and per agent the mean reward
over the last 20% of episodes with a 95% t-interval over seeds."""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from engram.agents.episodes import EpisodicMemory
from engram.errors import EngramError
from engram.experiment.dungeon import ACTIONS, ROOMS, Dungeon, common_sense

AGENTS = ("random", "memoryless", "memory")
T95 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    15: 2.131,
    20: 2.086,
    30: 2.042,
}


class RandomAgent:
    def __init__(self, seed: int):
        self.rng = random.Random(f"random:{seed}")

    def act(self, state: str) -> str:
        return self.rng.choice(ACTIONS)

    def observe(self, episode: int, state: str, action: str, reward: float, done: bool) -> None:
        pass


class MemorylessAgent:
    def act(self, state: str) -> str:
        return common_sense(state)

    def observe(self, episode: int, state: str, action: str, reward: float, done: bool) -> None:
        pass


class MemoryAgent:
    """The memoryless policy plus episodic memory: an action's value is the mean discounted
    return of its k nearest stored neighbours (closer than ``min_similarity``); an action not
    yet tried near here keeps an optimistic prior (1 for the policy's guess, ``explore`` for
    the others), unless a close lesson says it failed. After a failed episode it writes a
    lesson naming the action that failed and where."""

    def __init__(
        self,
        episodes: EpisodicMemory,
        k: int = 3,
        min_similarity: float = 0.75,
        explore: float = 0.5,
    ):
        self.memory = episodes
        self.k, self.min_similarity, self.explore = k, min_similarity, explore
        self.ids: dict[int, str] = {}

    def act(self, state: str) -> str:
        mem = self.memory
        qv = mem.memory.embed_query(state)
        values = mem.values(
            state, ACTIONS, self.k, min_similarity=self.min_similarity, query_vector=qv
        )
        lessons = mem.recall_lessons(state, 3, min_similarity=self.min_similarity, query_vector=qv)
        avoid = {h.metadata.get("avoid") for h in lessons}
        guess = common_sense(state)

        def score(a: str) -> float:
            v = values[a]
            if v.value is not None:
                return v.value
            if a in avoid:
                return 0.0
            return 1.0 if a == guess else self.explore

        return max(ACTIONS, key=lambda a: (score(a), a == guess))

    def observe(self, episode: int, state: str, action: str, reward: float, done: bool) -> None:
        ep = self.ids.setdefault(episode, f"ep-{episode:04d}")
        self.memory.record(ep, state, action, reward, done=done)
        if done and reward <= 0:
            text = f"Lesson: {action} failed here. {state}"
            self.memory.add_lesson(ep, text, metadata={"avoid": action})


class RecentEmbeddings:
    """An embedder that remembers its last ``size`` texts: the memory agent embeds a state to
    recall with it, then again to store it; the second time costs nothing."""

    def __init__(self, inner: Any, size: int = 256):
        self.inner, self.size = inner, size
        self.model_id, self.dim, self.max_tokens = inner.model_id, inner.dim, inner.max_tokens
        self.cache: dict[str, Any] = {}

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def embed(self, texts: Sequence[str]) -> Any:
        import numpy as np

        todo = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if todo:
            self.cache.update(zip(todo, self.inner.embed(todo), strict=True))
        out = np.vstack([self.cache[t] for t in texts]) if texts else self.inner.embed([])
        while len(self.cache) > self.size:
            self.cache.pop(next(iter(self.cache)))
        return out


def run_agent(agent: Any, seed: int, episodes: int) -> list[float]:
    """Play ``episodes`` episodes of seed ``seed``; the reward of each."""
    env = Dungeon(seed)
    rewards = []
    for i in range(episodes):
        state: str | None = env.reset()
        total = 0.0
        while state is not None:
            action = agent.act(state)
            nxt, reward, done = env.step(action)
            agent.observe(i, state, action, reward, done)
            total += reward
            state = nxt
        rewards.append(total)
    return rewards


def interval95(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and 95% t-interval over ``values`` (one per seed)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, mean, mean
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    df = n - 1
    t = T95.get(df) or T95[max(d for d in T95 if d <= df)]
    half = t * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def summarise(rewards: dict[int, list[float]], episodes: int) -> dict[str, Any]:
    tail = max(1, math.ceil(episodes * 0.2))
    per_seed = [sum(r[-tail:]) / tail for r in rewards.values()]
    mean, lo, hi = interval95(per_seed)
    curve = [sum(r[i] for r in rewards.values()) / len(rewards) for i in range(episodes)]
    return {
        "mean_reward_last20": round(mean, 4),
        "ci95_last20": [round(lo, 4), round(hi, 4)],
        "last20_per_seed": [round(v, 4) for v in per_seed],
        "mean_reward": round(sum(curve) / episodes, 4),
        "mean_curve": [round(v, 4) for v in curve],
        "reward_per_episode": {str(s): r for s, r in rewards.items()},
    }


def run_episodic(
    episodes: int = 40,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    *,
    gamma: float = 0.9,
    k: int = 3,
    min_similarity: float = 0.75,
    store: str | None = None,
    log: Callable[[str], None] | None = None,
    **memory_options: Any,
) -> dict[str, Any]:
    """Run the three agents on every seed; the report (see module doc)."""
    from engram.embed import create_embedder
    from engram.memory import Memory

    if episodes < 5:
        raise EngramError(f"--episodes must be at least 5, got {episodes}")
    if not seeds:
        raise EngramError("give at least one seed")
    started = time.perf_counter()
    rewards: dict[str, dict[int, list[float]]] = {a: {} for a in AGENTS}
    with tempfile.TemporaryDirectory(prefix="engram-episodic-") as tmp:
        location = store or str(Path(tmp) / "episodic.db")
        spec = memory_options.pop("embedder", None) or "local"
        threads = memory_options.get("threads")
        opts = {"threads": threads} if threads and spec in ("local", "onnx") else {}
        embedder = RecentEmbeddings(create_embedder(spec, **opts))
        with Memory(location, embedder=embedder, **memory_options) as mem:
            for seed in seeds:
                rewards["random"][seed] = run_agent(RandomAgent(seed), seed, episodes)
                rewards["memoryless"][seed] = run_agent(MemorylessAgent(), seed, episodes)
                em = EpisodicMemory(mem, f"episodic-{seed}-{time.time_ns()}", gamma=gamma)
                agent = MemoryAgent(em, k=k, min_similarity=min_similarity)
                rewards["memory"][seed] = run_agent(agent, seed, episodes)
                if log:
                    last = {a: sum(rewards[a][seed][-5:]) / 5 for a in AGENTS}
                    log(
                        f"seed {seed}: last-5 mean reward "
                        + ", ".join(f"{a} {v:.2f}" for a, v in last.items())
                    )
            model = mem.embedder.model_id
    return {
        "experiment": "episodic",
        "environment": {
            "name": "dungeon",
            "rooms": ROOMS,
            "actions": list(ACTIONS),
            "max_reward": ROOMS,
        },
        "episodes": episodes,
        "seeds": list(seeds),
        "last20_episodes": max(1, math.ceil(episodes * 0.2)),
        "gamma": gamma,
        "k": k,
        "min_similarity": min_similarity,
        "embedder": model,
        "seconds": round(time.perf_counter() - started, 1),
        "agents": {a: summarise(rewards[a], episodes) for a in AGENTS},
    }


def smooth(values: Sequence[float], window: int = 5) -> list[float]:
    """Trailing moving average (the first points average what there is)."""
    return [
        sum(values[max(0, i - window + 1) : i + 1]) / min(window, i + 1) for i in range(len(values))
    ]


def plot_curve(report: dict[str, Any], path: str | Path, window: int = 5) -> None:
    """The learning curve: reward per episode as a ``window``-episode moving average, mean
    over seeds, with its 95% t-interval over seeds."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise EngramError("the plot needs matplotlib: pip install 'engram[bench]'") from exc
    fig, ax = plt.subplots(figsize=(7, 4))
    x = list(range(1, report["episodes"] + 1))
    for name, row in report["agents"].items():
        runs = [smooth(r, window) for r in row["reward_per_episode"].values()]
        bands = [interval95([r[i] for r in runs]) for i in range(len(x))]
        label = f"{name} (last 20%: {row['mean_reward_last20']:.2f})"
        ax.plot(x, [b[0] for b in bands], label=label)
        ax.fill_between(x, [b[1] for b in bands], [b[2] for b in bands], alpha=0.2)
    ax.set_xlabel("episode")
    ax.set_ylabel(f"reward (rooms cleared, max {report['environment']['max_reward']})")
    ax.set_ylim(bottom=0)
    ax.set_title(
        f"Episodic memory in the dungeon: {window}-episode moving average, "
        f"95% interval over {len(report['seeds'])} seeds",
        fontsize=10,
    )
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def format_text(report: dict[str, Any]) -> str:
    lines = [f"{'agent':12} {'last 20%':>9} {'95% interval':>17} {'all episodes':>13}"]
    for name, row in report["agents"].items():
        lo, hi = row["ci95_last20"]
        lines.append(
            f"{name:12} {row['mean_reward_last20']:9.3f} [{lo:6.3f}, {hi:6.3f}] "
            f"{row['mean_reward']:13.3f}"
        )
    lines.append(
        f"{report['episodes']} episodes x {len(report['seeds'])} seeds, {report['seconds']} s"
    )
    return "\n".join(lines)


def _seeds(value: str) -> list[int]:
    try:
        seeds = [int(v) for v in value.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds are integers, got {value!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError("give at least one seed")
    return seeds


def cmd_episodic(args: argparse.Namespace) -> int:
    options: dict[str, Any] = {}
    if getattr(args, "threads", None):
        options["threads"] = args.threads
    if getattr(args, "embedder", None):
        options["embedder"] = args.embedder
    seeds = [s for group in args.seeds for s in group] if args.seeds else [0, 1, 2, 3, 4]
    log = None if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    report = run_episodic(
        args.episodes,
        list(dict.fromkeys(seeds)),
        gamma=args.gamma,
        k=args.k,
        min_similarity=args.min_similarity,
        log=log,
        **options,
    )
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        plot_curve(report, out / "episodic.png")
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(format_text(report))
    return 0


def add_episodic_parser(esub: Any) -> argparse.ArgumentParser:
    """Register ``engram experiment episodic`` on the ``experiment`` subparsers."""
    p = esub.add_parser(
        "episodic",
        help="random vs a memoryless policy vs the same policy with episodic memory",
        description=__doc__,
    )
    p.add_argument("--episodes", type=int, default=40, help="episodes per seed (default 40)")
    p.add_argument("--seeds", type=_seeds, nargs="+", help="seeds (default 0 1 2 3 4)")
    p.add_argument("--gamma", type=float, default=0.9, help="discount (default 0.9)")
    p.add_argument("--k", type=int, default=3, help="neighbours per action (default 3)")
    p.add_argument(
        "--min-similarity",
        type=float,
        default=0.75,
        help="cosine a neighbour needs to count (default 0.75)",
    )
    p.add_argument(
        "--out", metavar="DIR", help="write report.json and episodic.png (default: none)"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=cmd_episodic)
    return p
