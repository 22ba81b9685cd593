"""``engram eval beir``: index a BEIR folder into a temporary store and score retrieval."""

from __future__ import annotations

import csv
import gzip
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from engram.errors import EngramError
from engram.evaluate.metrics import mrr_at_k, ndcg_at_k, recall_at_k
from engram.types import Document


def _open(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _first(folder: Path, *names: str) -> Path:
    for name in names:
        if (folder / name).exists():
            return folder / name
    raise EngramError(f"{folder}: none of {', '.join(names)} found (is this a BEIR folder?)")


def load_beir(
    folder: str | Path, split: str = "test"
) -> tuple[Iterator[Document], dict[str, str], dict[str, dict[str, int]]]:
    """``(documents, queries, qrels)``; only queries judged in ``split`` are kept."""
    folder = Path(folder)
    qrels: dict[str, dict[str, int]] = {}
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.exists():
        raise EngramError(
            f"{qrels_path} not found; splits here: "
            f"{', '.join(p.stem for p in (folder / 'qrels').glob('*.tsv'))}"
        )
    with _open(qrels_path) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    queries: dict[str, str] = {}
    with _open(_first(folder, "queries.jsonl", "queries.jsonl.gz")) as f:
        for line in f:
            o = json.loads(line)
            if o["_id"] in qrels:
                queries[o["_id"]] = o["text"]
    corpus_path = _first(folder, "corpus.jsonl", "corpus.jsonl.gz")

    def documents() -> Iterator[Document]:
        with _open(corpus_path) as f:
            for line in f:
                o = json.loads(line)
                title = o.get("title") or ""
                text = f"{title}\n{o['text']}" if title else o["text"]
                yield Document(text=text, id=str(o["_id"]), title=title, source=str(o["_id"]))

    return documents(), queries, qrels


def doc_ranking(hits: list[Any]) -> list[str]:
    """Documents in the order of their best chunk."""
    return list(dict.fromkeys(h.doc_id for h in hits))


def evaluate_beir(
    folder: str | Path,
    split: str = "test",
    modes: tuple[str, ...] = ("hybrid",),
    store: str | None = None,
    limit: int | None = None,
    progress: bool = False,
    **memory_options: Any,
) -> list[dict[str, Any]]:
    """Index ``folder`` (into ``store`` or a temporary one) and score each mode."""
    from engram.memory import Memory

    docs, queries, qrels = load_beir(folder, split)
    if limit:
        queries = dict(list(queries.items())[:limit])
    with tempfile.TemporaryDirectory() as tmp:
        path = store or str(Path(tmp) / "beir.db")
        with Memory(path, **memory_options) as mem:
            mem.add_documents(docs, progress=progress)
            results = []
            vectors = {}
            if any(m != "keyword" for m in modes):  # embed every query once, in batches
                embedded = mem.embedder.embed(list(queries.values()))
                vectors = dict(zip(queries, embedded, strict=True))
            for mode in modes:
                totals = {"ndcg@10": 0.0, "recall@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0}
                mem.last_rerank_seconds = 0.0
                rerank_seconds = 0.0
                for qid, text in queries.items():
                    hits = mem.search(
                        text, k=300, mode=mode, candidates=300, query_vector=vectors.get(qid)
                    )
                    ranked = doc_ranking(hits)
                    rerank_seconds += mem.last_rerank_seconds
                    mem.last_rerank_seconds = 0.0
                    rel = qrels[qid]
                    totals["ndcg@10"] += ndcg_at_k(ranked, rel, 10)
                    totals["recall@10"] += recall_at_k(ranked, rel, 10)
                    totals["recall@100"] += recall_at_k(ranked, rel, 100)
                    totals["mrr@10"] += mrr_at_k(ranked, rel, 10)
                n = max(1, len(queries))
                row: dict[str, Any] = {key: round(v / n, 4) for key, v in totals.items()}
                row.update(mode=mode, queries=len(queries), dataset=Path(folder).name, split=split)
                if mem.config.rerank_top:
                    row["rerank_seconds_per_query"] = round(rerank_seconds / n, 3)
                results.append(row)
    return results
