"""Retrieval quality of the torch and the int8 ONNX MiniLM embedders, same data, same run.

SciFact (test split) on a seeded sub-corpus: every judged document plus ``--distractors``
random others, so both embedders fit in minutes on two cores. Each embedder indexes the same
sub-corpus into its own store; ``engram eval beir``'s scorer reports nDCG@10 per mode::

    python -m bench.embedder_quality ../shared/data/beir/scifact --distractors 1500
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def subset(folder: Path, out: Path, distractors: int, seed: int) -> int:
    """Write a BEIR folder at ``out``: judged documents + seeded distractors; returns its size."""
    (out / "qrels").mkdir(parents=True)
    shutil.copy(folder / "qrels" / "test.tsv", out / "qrels" / "test.tsv")
    shutil.copy(folder / "queries.jsonl", out / "queries.jsonl")
    with open(folder / "qrels" / "test.tsv", encoding="utf-8") as f:
        judged = {row["corpus-id"] for row in csv.DictReader(f, delimiter="\t")}
    with gzip.open(folder / "corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        lines = f.readlines()
    keep = [ln for ln in lines if json.loads(ln)["_id"] in judged]
    rest = [ln for ln in lines if json.loads(ln)["_id"] not in judged]
    keep += random.Random(seed).sample(rest, min(distractors, len(rest)))
    (out / "corpus.jsonl").write_text("".join(keep), encoding="utf-8")
    return len(keep)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folder", help="a BEIR SciFact folder")
    p.add_argument("--distractors", type=int, default=1500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--embedders", default="local,onnx")
    a = p.parse_args(argv)
    from engram.evaluate.beir import evaluate_beir

    with tempfile.TemporaryDirectory() as tmp:
        n = subset(Path(a.folder), Path(tmp) / "scifact", a.distractors, a.seed)
        print(f"sub-corpus: {n} documents", flush=True)
        for name in a.embedders.split(","):
            t0 = time.perf_counter()
            rows = evaluate_beir(
                Path(tmp) / "scifact",
                modes=("keyword", "vector", "hybrid"),
                embedder=name,
                threads=a.threads,
            )
            secs = time.perf_counter() - t0
            for r in rows:
                r.update(embedder=name, documents=n, seconds=round(secs, 1))
                print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
