"""What ``engram sql`` costs on top of the recall it wraps, on the bundled sample corpus::

    python -m bench.sql_overhead [--store PATH | --store postgresql://...] [--runs 30]

Adds the samples to the store (unchanged documents are skipped), then reports the median time
of ``Memory.search(query, k=5)``, of ``Memory.sql`` over ``similar(query, 5)`` joined with
``documents`` (the same recall plus the statement), and of a statement without recall.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

QUERY = "nightly hotel cap London"
JOINED = (
    f"SELECT d.title, s.score FROM similar('{QUERY}', 5) s "
    "JOIN documents d ON d.id = s.doc_id ORDER BY s.score DESC"
)
PLAIN = "SELECT count(*) FROM documents d JOIN chunks c ON c.doc_id = d.id"


def _median_ms(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", default="/tmp/engram-bench/sql/samples.db")
    p.add_argument("--runs", type=int, default=30)
    args = p.parse_args(argv)
    from engram.memory import Memory
    from engram.samples import load_samples

    if "://" not in args.store:
        Path(args.store).parent.mkdir(parents=True, exist_ok=True)
    with Memory(args.store) as mem:
        mem.add(load_samples())
        out = {
            "search_ms": _median_ms(lambda: mem.search(QUERY, k=5), args.runs),
            "sql_similar_ms": _median_ms(lambda: mem.sql(JOINED), args.runs),
            "sql_plain_ms": _median_ms(lambda: mem.sql(PLAIN), args.runs),
        }
    print(json.dumps({"store": mem.store.path, "runs": args.runs, **out}, indent=2))
    return out


if __name__ == "__main__":
    main()
