"""``engram experiment finetune-vs-memory`` (and ``episodic``): registered by ``engram.cli`` with
``add_experiment_parser(subparsers)``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from engram.errors import EngramError


def _variants(value: str) -> tuple[str, ...]:
    from engram.experiment.finetune import VARIANTS

    names = tuple(v.strip() for v in value.split(",") if v.strip())
    bad = [v for v in names if v not in VARIANTS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"use a comma-separated subset of {', '.join(VARIANTS)}")
    return names


def cmd_finetune_vs_memory(args: argparse.Namespace) -> int:
    try:
        import peft  # noqa: F401
    except ImportError as exc:
        raise EngramError(
            "the experiment needs peft: pip install 'engram-store[finetune]'"
        ) from exc
    from engram.experiment.finetune import ExperimentConfig, run_experiment
    from engram.experiment.report import format_text, plot

    cfg = ExperimentConfig(
        articles=args.articles,
        passages=args.passages,
        questions=args.questions,
        forget_articles=args.forget_articles,
        forget_questions=args.forget_questions,
        steps=args.steps,
        batch=args.batch,
        block_tokens=args.block_tokens,
        lr=args.lr,
        rank=args.rank,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        max_tokens=args.max_tokens,
        variants=args.variants,
    )
    started = time.perf_counter()

    def log(message: str) -> None:
        if not args.quiet:
            print(
                f"[{time.perf_counter() - started:7.1f} s] {message}", file=sys.stderr, flush=True
            )

    result = run_experiment(args.file, cfg, embedder=args.embedder, out=args.out, log=log)
    if args.out:
        plot(result.report, f"{args.out}/experiment.png")
    if args.json:
        json.dump(result.report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(format_text(result.report))
    return 0


def _add_training_options(f: Any, d: Any) -> None:
    """Training, answering and output options of ``finetune-vs-memory`` (defaults from
    ``ExperimentConfig`` ``d``)."""
    f.add_argument(
        "--steps",
        type=int,
        default=d.steps,
        help="optimizer steps per variant (default %(default)s)",
    )
    f.add_argument(
        "--batch", type=int, default=d.batch, help="examples per step (default %(default)s)"
    )
    f.add_argument(
        "--block-tokens",
        type=int,
        default=d.block_tokens,
        help="passage block length in tokens (default %(default)s)",
    )
    f.add_argument(
        "--lr", type=float, default=d.lr, help="AdamW learning rate (default %(default)s)"
    )
    f.add_argument(
        "--rank",
        type=int,
        default=d.rank,
        help="LoRA rank (alpha = 2 x rank) (default %(default)s)",
    )
    f.add_argument("--seed", type=int, default=d.seed, help="default %(default)s")
    f.add_argument(
        "--device",
        choices=["cpu", "cuda", "auto"],
        default=d.device,
        help="where to train and answer (default %(default)s; auto: cuda when available)",
    )
    f.add_argument(
        "--max-tokens",
        type=int,
        default=d.max_tokens,
        help="tokens per answer (default %(default)s)",
    )
    f.add_argument(
        "--variants",
        type=_variants,
        default=d.variants,
        help="fine-tunes to train: passages,qa (default both)",
    )
    f.add_argument(
        "--out",
        metavar="DIR",
        help="write report.json, predictions.jsonl, the adapters, datasets and a plot "
        "(default: print the report only)",
    )


def add_experiment_parser(sub: Any) -> None:
    """Register ``engram experiment`` and its ``finetune-vs-memory`` command."""
    from engram.experiment.finetune import ExperimentConfig

    d = ExperimentConfig()
    e = sub.add_parser("experiment", help="run a reproducible experiment")
    esub = e.add_subparsers(dest="experiment_command", required=True, metavar="EXPERIMENT")
    f = esub.add_parser(
        "finetune-vs-memory",
        help="LoRA fine-tuning versus memory on SQuAD-format data (needs peft)",
        description=(
            "Picks training articles of a SQuAD-format file, holds out questions, LoRA-fine-tunes "
            "the local model on the passages (variant passages) and on the other questions' "
            "answers exported from memory as chat (variant qa), then answers the held-out "
            "questions closed-book and with memory, with the base model and each fine-tune, and "
            "measures forgetting on untrained articles. Exact match, token F1, training time and "
            "cost per answer. Torch uses --threads (global option) threads, default "
            "$ENGRAM_THREADS or 1 (more threads on a busy small machine are slower)."
        ),
    )
    f.add_argument("file", metavar="SQUAD_JSON", help="SQuAD v1.1-format .json or .json.gz")
    f.add_argument(
        "--articles", type=int, default=d.articles, help="training articles (default %(default)s)"
    )
    f.add_argument(
        "--passages",
        type=int,
        default=d.passages,
        help="passages per training article (default %(default)s)",
    )
    f.add_argument(
        "--questions",
        type=int,
        default=d.questions,
        help="held-out questions per article (default %(default)s)",
    )
    f.add_argument(
        "--forget-articles",
        type=int,
        default=d.forget_articles,
        help="untrained articles for the forgetting measure (default %(default)s; 0: none)",
    )
    f.add_argument(
        "--forget-questions", type=int, help="their questions asked (default: as many as held out)"
    )
    _add_training_options(f, d)
    f.add_argument("--json", action="store_true", help="print the report as JSON")
    f.add_argument("--quiet", action="store_true", help="no progress on stderr")
    f.set_defaults(func=cmd_finetune_vs_memory)

    from engram.experiment.episodic import add_episodic_parser

    add_episodic_parser(esub)
