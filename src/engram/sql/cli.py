"""``engram sql "STATEMENT" [--json|--csv] [--explain]``: one read-only statement over the
store, with ``similar()`` / ``keywords()`` as tables (docs/sql.md)."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Any

from engram.cli_help import parse_pairs

HELP = (
    "one read-only SQL statement over the views documents and chunks, with "
    "similar('text', k, mode) and keywords('text', k) as tables (see docs/sql.md)"
)


def _params(pairs: list[str] | None) -> dict[str, Any] | None:
    return parse_pairs(pairs, "--param", "NAME=VALUE") or None


def _namespace(names: list[str] | None) -> str | list[str] | None:
    if not names:
        return None
    return names[0] if len(names) == 1 else names


def _cell(value: Any, width: int = 60) -> str:
    text = "" if value is None else str(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def print_table(columns: list[str], rows: list[list[Any]]) -> None:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def cmd_sql(args: argparse.Namespace) -> int:
    from engram.cli import _memory, _print_json

    statement = sys.stdin.read() if args.statement == "-" else args.statement
    with _memory(args) as mem:
        result = mem.sql(
            statement,
            _params(args.param),
            namespace=_namespace(args.namespace),
            limit=args.limit,
            timeout=args.timeout,
            explain=args.explain,
        )
    out = result.to_dict()
    if args.explain:
        if args.json:
            _print_json(out)
        else:
            print(result.statement)
        return 0
    if args.json:
        _print_json(out)
    elif args.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(out["columns"])
        for row in out["rows"]:
            writer.writerow([json.dumps(v) if isinstance(v, dict | list) else v for v in row])
    else:
        print_table(out["columns"], out["rows"])
    if result.truncated:
        print(f"engram: only the first {args.limit} rows (raise --limit)", file=sys.stderr)
    return 0


def add_sql_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sql", help=HELP, description=HELP)
    p.add_argument("statement", help="the statement (- reads it from stdin)")
    p.add_argument(
        "--namespace",
        action="append",
        help="namespace the views and similar() cover (repeat for several; default "
        "'default'; '*' for all)",
    )
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print {columns, rows, truncated}")
    fmt.add_argument("--csv", action="store_true", help="print CSV with a header row")
    p.add_argument("--explain", action="store_true", help="print the rewritten statement only")
    p.add_argument(
        "--param", action="append", metavar="NAME=VALUE", help="a named parameter (default: none)"
    )
    p.add_argument("--limit", type=int, default=1000, help="most rows returned (default 1000)")
    p.add_argument("--timeout", type=float, default=10.0, help="time limit in seconds (10)")
    p.set_defaults(func=cmd_sql)
