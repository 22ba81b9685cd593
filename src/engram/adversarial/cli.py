"""``engram eval poisoning``: registered by ``engram.cli`` with
``add_poisoning_parser(eval_subparsers)``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

MODES = {"on": ("on",), "off": ("off",), "both": ("off", "on")}


def cmd_eval_poisoning(args: argparse.Namespace) -> int:
    from engram.adversarial.poisoning import run_poisoning
    from engram.cli_help import memory_options

    options = memory_options(args)
    log = None if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "results.jsonl").write_text("", encoding="utf-8")
    report = run_poisoning(
        MODES[args.defences], limit=args.limit, kinds=args.kinds, log=log, out=args.out, **options
    )
    if args.out:
        text = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
        (Path(args.out) / "report.json").write_text(text, encoding="utf-8")
    if args.json:
        json.dump(report, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return 0
    modes = report["defences"]
    print(
        f"{report['attacks']} attacks, generator {report['generator']}, clean accuracy "
        f"{report['clean_accuracy']}, {report['seconds']} s"
    )
    print(f"{'attack success rate':26}" + "".join(f"{'defences ' + m:>14}" for m in modes))
    for kind, n in report["kinds"].items():
        row = "".join(f"{report['per_kind'][m][kind]:14.3f}" for m in modes)
        print(f"  {kind + f' ({n})':24}{row}")
    print(f"  {'all':24}" + "".join(f"{report['attack_success_rate'][m]:14.3f}" for m in modes))
    print(
        f"{'instruction takeovers':26}"
        + "".join(f"{report['instruction_takeovers'][m]:14d}" for m in modes)
    )
    print(
        f"{'poison in evidence':26}"
        + "".join(f"{report['poison_in_evidence_rate'][m]:14.3f}" for m in modes)
    )
    return 0


def add_poisoning_parser(eval_subparsers: Any) -> argparse.ArgumentParser:
    """Register ``engram eval poisoning`` on the ``eval`` subparsers."""
    from engram.adversarial.poisoning import KINDS
    from engram.adversarial.poisoning import __doc__ as doc

    p = eval_subparsers.add_parser(
        "poisoning",
        help="attack success rate of memory poisoning against ask, with and without defences",
        description=doc,
    )
    p.add_argument(
        "--defences",
        choices=list(MODES),
        default="both",
        help="run with defences on, off or both (default both)",
    )
    p.add_argument(
        "--limit", type=int, help="only N attacks, taken in turn from each kind (default: all)"
    )
    p.add_argument(
        "--kinds", nargs="+", choices=KINDS, help="only these kinds of attack (default: all)"
    )
    p.add_argument(
        "--generator", choices=["local", "llamacpp", "openai"], help="answer model (default local)"
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="write results.jsonl (as it goes) and report.json (default: none)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=cmd_eval_poisoning)
    return p
