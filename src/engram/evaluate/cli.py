"""``engram eval beir | qa | answers`` (and the suites other packages add: locomo, poisoning)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from engram.cli_help import config_pairs
from engram.config import READERS


def _print_json(obj: Any) -> None:
    from engram.cli import _print_json as print_json

    print_json(obj)


def cmd_eval_beir(args: argparse.Namespace) -> int:
    from engram.evaluate.beir import evaluate_beir

    modes = ("keyword", "vector", "hybrid") if args.mode == "all" else (args.mode,)
    options: dict[str, Any] = {}
    if args.threads:
        options["threads"] = args.threads
    if args.fusion:
        options["fusion"] = args.fusion
    if args.alpha is not None:
        options["alpha"] = args.alpha
    if args.chunk_tokens:
        options["chunk_tokens"] = args.chunk_tokens
    options.update(config_pairs(args.recall))
    results = evaluate_beir(
        args.folder,
        split=args.split,
        modes=modes,
        store=args.keep_store,
        limit=args.limit,
        progress=sys.stderr.isatty(),
        **options,
    )
    if args.json:
        _print_json(results[0] if len(results) == 1 else results)
    else:
        print(f"{'mode':8} {'nDCG@10':>8} {'R@10':>7} {'R@100':>7} {'MRR@10':>7}  queries")
        for r in results:
            print(
                f"{r['mode']:8} {r['ndcg@10']:8.4f} {r['recall@10']:7.4f} "
                f"{r['recall@100']:7.4f} {r['mrr@10']:7.4f}  {r['queries']}"
            )
    return 0


def cmd_eval_qa(args: argparse.Namespace) -> int:
    from engram.evaluate.qa import evaluate_qa

    modes: tuple[str, ...] = ("memory", "closed-book") if args.mode == "both" else (args.mode,)
    if args.mode == "all":
        modes = ("memory", "closed-book", "no-gold")
    options: dict[str, Any] = {}
    if args.threads:
        options["threads"] = args.threads
    progress = (lambda m: print(f"\r{m}", end="", file=sys.stderr)) if sys.stderr.isatty() else None
    results = evaluate_qa(
        args.file,
        modes=modes,
        limit=args.limit,
        store=args.keep_store,
        seed=args.seed,
        progress=progress,
        reader=args.reader,
        details=args.details,
        **options,
    )
    if args.json:
        _print_json(results[0] if len(results) == 1 else results)
    else:
        print(
            f"{'mode':12} {'reader':9} {'R@1':>6} {'R@5':>6} {'EM':>6} {'F1':>6} "
            f"{'abstain':>7} {'p50 s':>6} {'p95 s':>6}  questions"
        )
        for r in results:
            print(
                f"{r['mode']:12} {r['reader'] or '-':9} {r['recall@1']:6.3f} "
                f"{r['recall@5']:6.3f} {r['exact_match']:6.3f} {r['f1']:6.3f} "
                f"{r['abstained']:7.3f} {r['seconds_p50']:6.2f} {r['seconds_p95']:6.2f}  "
                f"{r['questions']}"
            )
    return 0


def cmd_eval_answers(args: argparse.Namespace) -> int:
    from engram.cli import _memory
    from engram.evaluate.answers import evaluate_answers

    with _memory(args, create=args.samples) as mem:
        if args.samples:
            from engram.samples import load_samples

            mem.add(load_samples())
        report = evaluate_answers(mem, args.file, reader=args.reader)
    if args.json:
        _print_json(report)
        return 0
    for r in report["rows"]:
        shown = r["answer"] if r["verdict"] != "abstained" else f"(abstained; guess {r['guess']!r})"
        print(f"{r['verdict']:16} {r['confidence']:.2f}  {r['question']}\n{'':22}{shown}")
    print(
        f"\nright {report['right']}/{report['answerable']}, wrong {report['wrong']}, "
        f"abstained {report['abstained']}; abstained where memory holds no answer "
        f"{report['abstained_right']}/{report['unanswerable']}"
    )
    return 0


def add_eval_parsers(sub: Any) -> Any:
    """``eval`` and its built-in suites; returns the suite subparsers for others to extend."""
    e = sub.add_parser("eval", help="evaluate retrieval or answers")
    esub = e.add_subparsers(dest="eval_command", required=True, metavar="SUITE")
    b = esub.add_parser("beir", help="nDCG@10, recall@10/100, MRR@10 on a BEIR folder")
    b.add_argument("folder", help="a BEIR folder: corpus.jsonl, queries.jsonl, qrels/")
    b.add_argument("--split", default="test", help="qrels split")
    b.add_argument(
        "--mode",
        choices=["hybrid", "keyword", "vector", "all"],
        default="hybrid",
        help="retrievers",
    )
    b.add_argument(
        "--fusion", choices=["blend", "rrf", "learned"], help="fusion method (default: blend)"
    )
    b.add_argument("--alpha", type=float, help="vector weight in fusion (default: 0.5)")
    b.add_argument("--chunk-tokens", type=int, help="chunk size in tokens (default: 200)")
    b.add_argument("--limit", type=int, help="evaluate only the first N queries (default: all)")
    b.add_argument(
        "--recall",
        action="append",
        metavar="KEY=VALUE",
        help="a recall setting of engram.config.Config, e.g. doc_pool_decay=0 (repeatable; "
        "default: the config's)",
    )
    b.add_argument(
        "--keep-store", metavar="PATH", help="index into PATH and keep it (default: a temp file)"
    )
    b.add_argument("--json", action="store_true", help="print JSON")
    b.set_defaults(func=cmd_eval_beir)

    qa = esub.add_parser("qa", help="SQuAD-format QA: passage recall@1/5, exact match, F1")
    qa.add_argument("file", help="a SQuAD-format JSON file")
    qa.add_argument(
        "--mode",
        choices=["memory", "closed-book", "no-gold", "both", "all"],
        default="memory",
        help="memory, closed-book, no-gold (the gold passage kept out of recall: abstaining "
        "is right), both (memory + closed-book) or all (default: memory)",
    )
    qa.add_argument("--reader", choices=READERS, help="answer reader (default: config, auto)")
    qa.add_argument(
        "--limit", type=int, help="answer a seeded sample of N questions (default: all)"
    )
    qa.add_argument("--seed", type=int, default=0, help="seed of the sample")
    qa.add_argument(
        "--keep-store", metavar="PATH", help="index into PATH and keep it (default: a temp file)"
    )
    qa.add_argument(
        "--details",
        metavar="FILE",
        help="also write one JSON line per question and mode (answer, guess, confidence, f1; "
        "default: none)",
    )
    qa.add_argument("--json", action="store_true", help="print JSON")
    qa.set_defaults(func=cmd_eval_qa)

    ans = esub.add_parser(
        "answers",
        help="ask the questions of a JSON-lines file (question, answers) and judge each answer "
        "right, wrong or abstained (an empty answers list means abstaining is right)",
    )
    ans.add_argument("file", help="a JSON-lines file: one {question, answers} object a line")
    ans.add_argument("--samples", action="store_true", help="add the sample corpus first")
    ans.add_argument("--reader", choices=READERS, help="answer reader (default: config, auto)")
    ans.add_argument("--json", action="store_true", help="print JSON")
    ans.set_defaults(func=cmd_eval_answers)
    return esub
