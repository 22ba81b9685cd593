"""``engram export``: write a fine-tuning dataset from a namespace (see ``engram.export``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from engram.errors import EngramError
from engram.export import DEFAULT_SYSTEM, FORMATS, export_dataset, write_export

# --------------------------------------------------------------------------- command line


def cmd_export(args: Any) -> int:
    """``engram export``."""
    import os

    from engram.memory import Memory

    store = args.store or os.environ.get("ENGRAM_STORE") or "engram.db"
    if "://" not in store and not Path(store).exists():
        raise EngramError(f"{store}: no such store (give --store or set ENGRAM_STORE)")
    from engram.cli_help import memory_options

    options = memory_options(args)
    system = args.system
    if args.system_file:
        try:
            system = Path(args.system_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise EngramError(f"cannot read --system-file {args.system_file}: {exc}") from exc
    progress = (lambda m: print(f"\r{m}", end="", file=sys.stderr)) if sys.stderr.isatty() else None
    with Memory(store, **options) as mem:
        result = export_dataset(
            mem,
            args.namespace,
            args.format,
            split=args.split,
            seed=args.seed,
            system=system,
            with_context=args.with_context,
            generate=args.generate,
            max_generated=args.max_generated,
            assistant=args.assistant,
            progress=progress,
        )
    if progress and args.generate:
        print(file=sys.stderr)
    manifest = write_export(result, args.out, provenance=not args.bare)
    counts = manifest["counts"]
    if args.out is not None:
        print(
            f"wrote {counts['train']} train and {counts['validation']} validation records "
            f"({args.format}) to {args.out}; {counts['duplicates']} duplicates removed"
        )
    return 0


def _share(value: str) -> float:

    try:
        share = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not 0.0 < share <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return share


def add_export_parser(sub: Any) -> None:
    """Register ``engram export`` on the ``engram`` subparsers."""
    e = sub.add_parser(
        "export",
        help="write a fine-tuning dataset (chat or QA JSON lines) from a namespace",
        description=(
            "Question-answer pairs from a namespace: documents with question/answer metadata, "
            "conversation turns, and with --generate pairs the model writes from clusters of "
            "chunks (kept only when the answer is in a cited chunk). Deduplicated, with "
            "provenance (doc ids, chunk ids), split into train/validation by source document."
        ),
    )
    e.add_argument("--namespace", default="default", help="namespace to export (default default)")
    e.add_argument("--format", choices=FORMATS, default="chat-jsonl", help="default chat-jsonl")
    e.add_argument(
        "--split",
        type=_share,
        default=0.9,
        help="share of pairs for training, by source document (default 0.9; 1 = no validation)",
    )
    e.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    e.add_argument(
        "--out",
        metavar="DIR",
        help="write DIR/train.jsonl, validation.jsonl, manifest.json "
        "(default: every record to stdout, tagged with its split)",
    )
    e.add_argument("--system", default=DEFAULT_SYSTEM, help="system message of chat records")
    e.add_argument(
        "--system-file", metavar="FILE", help="read the system message from FILE (default: none)"
    )
    e.add_argument(
        "--with-context",
        action="store_true",
        help="put the source passage in the user message (chat-jsonl)",
    )
    e.add_argument(
        "--bare", action="store_true", help="chat records without the metadata (provenance) key"
    )
    e.add_argument(
        "--generate",
        action="store_true",
        help="also have the model write one pair per cluster of the other documents' chunks",
    )
    e.add_argument(
        "--max-generated", type=int, default=50, help="clusters to generate from (default 50)"
    )
    e.add_argument(
        "--generator",
        choices=["local", "llamacpp", "openai"],
        help="model for --generate (default local SmolLM2-135M-Instruct)",
    )
    e.add_argument(
        "--assistant",
        metavar="SPEAKER",
        help="turns: only replies by SPEAKER are answers (default: every speaker)",
    )
    e.set_defaults(func=cmd_export)
