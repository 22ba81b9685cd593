"""Command line: ``engram chat`` (a terminal chat over a namespace), ``engram eval locomo`` and
``engram episodes``.

``engram.cli`` registers them with ``add_chat_parser(subparsers)`` and
``add_locomo_parser(eval_subparsers)``; each handler receives the parsed arguments, which
carry the global ``--store`` and ``--threads`` (and ``--embedder``) options.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from engram.cli_help import memory_options
from engram.config import READERS
from engram.errors import EngramError

QUIT = ("/quit", "/exit")


def cmd_chat(args: argparse.Namespace) -> int:
    """A REPL: one message per line from stdin until EOF or /quit; prints each reply."""
    from engram.agents.chat import Chat
    from engram.memory import Memory

    persona = None
    if args.persona:
        try:
            persona = Path(args.persona).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise EngramError(f"cannot read the persona file {args.persona}: {exc}") from exc
    store = args.store or os.environ.get("ENGRAM_STORE") or "engram.db"
    interactive = sys.stdin.isatty()
    stream = interactive and sys.stdout.isatty()
    # A conversation may go beyond what memory holds: do not replace ungrounded replies.
    with Memory(store, require_grounding=False, create=False, **memory_options(args)) as mem:
        chat = Chat(mem, args.namespace, persona=persona, k=args.k, session=args.session)
        if interactive:
            print(f"chatting in namespace {args.namespace!r}; /quit to leave", file=sys.stderr)
        while True:
            if interactive:
                print("> ", end="", file=sys.stderr, flush=True)
            line = sys.stdin.readline()
            if not line:
                break
            text = line.strip()
            if not text:
                continue
            if text.lower() in QUIT:
                break
            if stream:
                chat.send(text, on_token=lambda piece: print(piece, end="", flush=True))
                print()
            else:
                print(chat.send(text), flush=True)
    return 0


def add_chat_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``engram chat`` on the top-level subparsers."""
    p = subparsers.add_parser(
        "chat",
        help="chat with memory: recalls from and writes to a namespace",
        description="Reads one message per line from stdin (a terminal or a pipe) until EOF "
        "or /quit and prints each reply. Both turns are stored in the namespace.",
    )
    p.add_argument("--namespace", default="default", help="whose memory (default 'default')")
    p.add_argument(
        "--persona", metavar="FILE", help="a text file describing the character (default: none)"
    )
    p.add_argument("--k", type=int, default=6, help="memories recalled per reply (default 6)")
    p.add_argument("--session", help="session name stored with each turn (default: a time)")
    p.set_defaults(func=cmd_chat)
    return p


def cmd_eval_locomo(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from engram.cli_help import config_pairs
    from engram.evaluate.locomo import CATEGORIES, Settings, evaluate_locomo

    view_names = tuple(f.name for f in fields(Settings) if f.name != "retrieval")
    pairs = config_pairs(args.recall, extra=view_names)
    views = {k: v for k, v in pairs.items() if k in view_names}
    config = {k: v for k, v in pairs.items() if k not in view_names}
    result = evaluate_locomo(
        args.file,
        store=args.store,
        k=args.k,
        limit=args.limit,
        seed=args.seed,
        answer=args.answer,
        reader=args.reader,
        settings=Settings(retrieval=args.locomo_retrieval, **views),
        progress=sys.stderr.isatty(),
        **memory_options(args),
        **config,
    )
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    metrics = [m for m in result if m.startswith("recall@")]
    metrics += ["f1", "abstained"] if args.answer else []
    print(f"{'category':16} {'questions':>9} " + " ".join(f"{m:>9}" for m in metrics))
    for c, row in result["per_category"].items():
        name = f"{c} {CATEGORIES[int(c)]}"
        print(f"{name:16} {row['questions']:9d} " + " ".join(f"{row[m]:9.3f}" for m in metrics))
    print(f"{'all':16} {result['questions']:9d} " + " ".join(f"{result[m]:9.3f}" for m in metrics))
    return 0


def add_locomo_parser(eval_subparsers: Any) -> argparse.ArgumentParser:
    """Register ``engram eval locomo`` on the ``eval`` subparsers."""
    p = eval_subparsers.add_parser(
        "locomo",
        help="evidence recall@5/@10 (and answer F1) on a LoCoMo-format JSON file",
        description="Stores each conversation in its own namespace and measures, for every "
        "question of categories 1-4, the share of its evidence turns among the top k. "
        "Uses --store when given (kept, so a re-run embeds nothing), else a temporary store.",
    )
    p.add_argument("file", help="LoCoMo JSON (a list of conversations with qa)")
    p.add_argument("--k", type=int, default=10, help="turns given to the model (default 10)")
    p.add_argument(
        "--limit",
        type=int,
        help="a seeded sample of N questions spread over the conversations (default: all)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the --limit sample (default 0)")
    p.add_argument(
        "--answers",
        "--answer",
        dest="answer",
        action="store_true",
        help="also answer from memory and report token F1 per category",
    )
    p.add_argument("--reader", choices=READERS, help="answer reader (default: config, auto)")
    p.add_argument(
        "--retrieval",
        dest="locomo_retrieval",  # not the global --retrieval URL (where search runs)
        choices=["views", "plain", "agent"],
        default="views",
        help="views: turns + contexts + sentences (default); plain: hybrid search of turns; "
        "agent: turns stored and recalled through AgentMemory (turn windows and its turn "
        "ranker; --recall ranker=none: windows alone)",
    )
    p.add_argument(
        "--recall",
        action="append",
        metavar="KEY=VALUE",
        help="a view setting of engram.evaluate.locomo.Settings (speaker=0, ranker=none, ...) or "
        "a recall setting of engram.config.Config (repeatable; default: the config's)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_eval_locomo)
    return p


def cmd_episodes(args: argparse.Namespace) -> int:
    """``engram episodes record|lesson|show|recall|values``."""
    from engram.agents.episodes import EpisodicMemory
    from engram.memory import Memory

    store = args.store or os.environ.get("ENGRAM_STORE") or "engram.db"
    with Memory(store, **memory_options(args)) as mem:
        ep = EpisodicMemory(mem, args.namespace, gamma=args.gamma)
        action = args.episodes_command
        if action == "record":
            out: Any = ep.record(
                args.episode, args.state, args.action, args.reward, done=args.done
            ).to_dict()
        elif action == "lesson":
            out = {"id": ep.add_lesson(args.episode, args.text)}
        elif action == "show":
            out = {
                "steps": [s.to_dict() for s in ep.steps(args.episode)],
                "lessons": ep.lessons(args.episode),
            }
        elif action == "recall":
            found = ep.recall(args.state, args.k, action=args.action)
            out = [s.to_dict() for s in found]
        else:
            values = ep.values(args.state, args.actions, args.k, min_similarity=args.min_similarity)
            out = {a: v.to_dict() for a, v in values.items()}
    json.dump(out, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


def add_episodes_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``engram episodes`` (episodic memory of a namespace; prints JSON)."""
    p = subparsers.add_parser(
        "episodes",
        help="episodic memory: record steps and lessons, recall similar states, action values",
    )
    esub = p.add_subparsers(dest="episodes_command", required=True, metavar="ACTION")

    def sub(name: str, help: str) -> argparse.ArgumentParser:
        s = esub.add_parser(name, help=help)
        s.add_argument("--namespace", default="episodes", help="default 'episodes'")
        s.add_argument("--gamma", type=float, default=0.9, help="discount (default 0.9)")
        s.set_defaults(func=cmd_episodes)
        return s

    r = sub("record", "store one step of an episode")
    r.add_argument("episode", help="the episode id")
    r.add_argument("--state", required=True, help="the state, as text")
    r.add_argument("--action", required=True, help="the action taken in the state")
    r.add_argument("--reward", type=float, required=True, help="the reward that followed")
    r.add_argument("--done", action="store_true", help="the episode ends with this step")
    le = sub("lesson", "store a lesson written after an episode")
    le.add_argument("episode", help="the episode the lesson is about")
    le.add_argument("text", help="the lesson, as text")
    sh = sub("show", "an episode's steps with their returns, and its lessons")
    sh.add_argument("episode", help="the episode id")
    rc = sub("recall", "the stored steps nearest to a state, with actions and returns")
    rc.add_argument("state", help="the current state, as text")
    rc.add_argument("--k", type=int, default=5, help="similar past steps to recall")
    rc.add_argument("--action", help="only steps that took this action (default: any)")
    v = sub("values", "a value estimate per candidate action from its nearest steps")
    v.add_argument("state", help="the current state, as text")
    v.add_argument("--actions", nargs="+", required=True, help="the candidate actions")
    v.add_argument("--k", type=int, default=3, help="nearest stored steps per action")
    v.add_argument(
        "--min-similarity", type=float, default=0.0, help="ignore steps less similar than this"
    )
    return p
