"""A document of many chunks is embedded and committed in bounded batches, shows a progress bar
with its total, and an interrupted add resumes after the chunks already committed."""

from __future__ import annotations

import pytest

from engram.ingest import chunk_text
from engram.memory import Memory, document_identity
from engram.types import Document

N_SENTENCES = 240


def _big() -> Document:
    text = " ".join(
        f"Sentence {i} records that observer {i} logged item {i * 7} on shelf {i % 13}."
        for i in range(N_SENTENCES)
    )
    return Document(id="big", text=text, source="big.txt")


class Interrupting:
    """The real embedder, interrupted (as by Ctrl-C) after ``calls`` batches."""

    def __init__(self, inner, calls: int):
        self.inner, self.calls = inner, calls
        self.dim, self.model_id, self.max_tokens = inner.dim, inner.model_id, inner.max_tokens
        self.count_tokens = inner.count_tokens

    def embed(self, texts):
        if self.calls == 0:
            raise KeyboardInterrupt
        self.calls -= 1
        return self.inner.embed(texts)


def _chunks_of(mem: Memory) -> list[int]:
    rows = mem.store.conn.execute("SELECT position FROM chunks ORDER BY position").fetchall()
    return [r[0] for r in rows]


def test_large_document_commits_in_batches_and_resumes(tmp_path, embedder):
    path = tmp_path / "big.db"
    options = {"embed_batch": 4, "chunk_tokens": 24}  # 16 chunks per commit, 4 per embed call
    doc = _big()
    with Memory(path, embedder=Interrupting(embedder, calls=10), **options) as mem:
        with pytest.raises(KeyboardInterrupt):
            mem.add([doc])
        committed = _chunks_of(mem)
        assert committed == list(range(32))  # two whole batches of 16, nothing half-written
        assert mem.store.document_hash("default", "big").startswith("partial:")
        assert mem.search("observer 3 logged", k=1, mode="keyword")  # committed is searchable

    with Memory(path, embedder=embedder, **options) as mem:
        count = embedder.count_tokens
        total = len(chunk_text(doc.text, max_tokens=24, overlap=12, count_tokens=count))
        report = mem.add([_big()])
        assert report.added == 1 and report.chunks == total - 32
        assert report.embedded == total - 32  # the committed chunks are not embedded again
        assert _chunks_of(mem) == list(range(total))
        assert mem.store.document_hash("default", "big") == document_identity(_big())[1]
        assert mem.add([_big()]).unchanged == 1
        assert mem.stats()["chunks"] == total


def test_progress_bar_knows_its_total(tmp_path, embedder, capsys):
    with Memory(tmp_path / "p.db", embedder=embedder, embed_batch=8, chunk_tokens=24) as mem:
        report = mem.add([_big()], progress=True)
    err = capsys.readouterr().err
    assert report.chunks > 16 and f"/{report.chunks}" in err  # "n/total chunks"
