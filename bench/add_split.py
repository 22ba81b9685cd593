"""Where ``engram add`` spends its time on SciFact: embedding against everything else::

    python -m bench.add_split --docs 200 --variants unsorted,default

Each variant adds the same first ``--docs`` SciFact documents to a fresh store with the ONNX
int8 MiniLM (the default embedder) wrapped in a timer; "store" is the rest of ``Memory.add`` +
``save()`` (chunking, token counting, SQL rows, keyword and vector indexes). Variants:
``unsorted`` batches texts in their given order (the embedder before this change), ``default``
batches texts of similar length on one thread per core; ``threadsN`` runs it on N threads;
``torch`` is the torch MiniLM on one thread (the default embedder before the ONNX one).
Variants run one after another in one process, in the order given, after one warm-up
embedding per variant.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import now
from bench.quality import SCIFACT, load


class TimedEmbedder:
    """Forwards to an embedder and adds up the wall time of its ``embed`` calls."""

    def __init__(self, inner: Any):
        self.inner, self.seconds = inner, 0.0
        self.model_id, self.dim, self.max_tokens = inner.model_id, inner.dim, inner.max_tokens

    def embed(self, texts):
        t0 = now()
        try:
            return self.inner.embed(texts)
        finally:
            self.seconds += now() - t0

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)


def embedder_for(variant: str) -> Any:
    from engram.embed.local import SentenceTransformerEmbedder
    from engram.embed.onnx import OnnxEmbedder

    if variant == "torch":  # the default before the ONNX one: torch MiniLM, one thread
        emb: Any = SentenceTransformerEmbedder(threads=1)
    else:
        threads = int(variant[len("threads") :]) if variant.startswith("threads") else None
        emb = OnnxEmbedder(threads=threads)  # None: the default, one thread per core
    if variant == "unsorted":
        emb.embed = emb._embed_sorted  # batches in the given order
    emb.embed(["warm up"])
    return emb


def run_variant(variant: str, docs: list) -> dict:
    from engram.memory import Memory

    timed = TimedEmbedder(embedder_for(variant))
    tmp = Path(tempfile.mkdtemp(prefix="add-split-"))
    try:
        t0, c0 = now(), time.process_time()
        with Memory(tmp / "a.db", embedder=timed) as mem:
            rep = mem.add(docs)
            mem.save()
        total = now() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    store = total - timed.seconds
    return {
        "variant": variant,
        "docs": len(docs),
        "chunks": rep.chunks,
        "seconds": round(total, 2),
        "cpu_s": round(time.process_time() - c0, 2),
        "embed_s": round(timed.seconds, 2),
        "store_s": round(store, 2),
        "store_share_of_embed": round(store / timed.seconds, 4) if timed.seconds else None,
        "chunks_per_s": round(rep.chunks / total, 1),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--folder", default=SCIFACT)
    p.add_argument("--docs", type=int, default=200)
    p.add_argument("--variants", default="unsorted,default")
    p.add_argument("--out", default="/tmp/engram-bench/results/add_split.json")
    a = p.parse_args(argv)
    docs = load(a.folder)[0][: a.docs]
    rows = []
    for variant in a.variants.split(","):
        rows.append(run_variant(variant, docs))
        print(json.dumps(rows[-1]), flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"rows": rows}, indent=1))


if __name__ == "__main__":
    main()
