"""BM25 over whole documents and over their titles (``keyword_scope = "document"``).

One row per document version: a row holds the document's text (its chunks joined, overlaps
read once) and, in the ``titles`` index beside it, its title. When any chunk of a document
changes, its row is deleted and a new row (the next row number) holds its current text, so a
row id is never reused, as the segmented index requires. The index also keeps which document
each live chunk belongs to, to turn a search scope (allowed chunk ids) into allowed rows and
a recalled document back into its chunks.

Both indexes are saved together (the titles first, in ``<folder>/title``); if they are out of
step on load (a save interrupted between the two) the index is rebuilt from the store, as when
it was never saved; a file failing its checksum is reported as damage.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engram.index.base import mask_of, positions_of
from engram.index.keyword import Counted, KeywordIndex
from engram.store.base import DocumentChunks

log = logging.getLogger(__name__)
Ids = Sequence[int] | np.ndarray  # row, chunk or document ids

_NONE = np.zeros(0, dtype=np.int64)


def join_chunks(chunks: Sequence[tuple[int, int, int, str]]) -> str:
    """A document's text from its chunks ``(id, start, end, text)`` in position order: where
    a chunk's span overlaps the text already read, only its new part is taken."""
    out: list[str] = []
    covered = 0
    for _, start, end, text in chunks:
        if end - start != len(text) or end <= start:  # no usable span: the whole chunk
            out.append(text if not out else " " + text)
            continue
        if start >= covered:
            out.append(text if not out else " " + text)
        elif end > covered:
            out.append(text[covered - start :])
        covered = max(covered, end)
    return "".join(out)


class DocumentIndex(KeywordIndex):
    """BM25 of whole documents (rows: document versions) and of their titles."""

    kind = "document"

    def __init__(
        self,
        directory: str | Path | None = None,
        k1: float = 0.9,
        b: float = 0.4,
        language: str = "english",
    ):
        self.titles = KeywordIndex(
            Path(directory) / "title" if directory else None, k1=k1, b=b, language=language
        )
        super().__init__(directory, k1=k1, b=b, language=language)

    def reset(self) -> None:
        super().reset()
        self.titles.reset()
        self.map_chunks = _NONE  # live chunk ids, ascending
        self.map_docs = _NONE  # the document of each
        self.row_docs = _NONE  # the document of each row (row id = position)
        self._forget_lookups()

    def _forget_lookups(self) -> None:
        """The derived lookups are out of date: made again when next asked for (a bulk load
        adds many batches before a query)."""
        self._lookups: tuple[np.ndarray, ...] | None = None

    def _lookup(self) -> tuple[np.ndarray, ...]:
        """``(live_docs, live_rows, doc_sorted, doc_chunks)``: live rows by document, chunks
        by document."""
        if self._lookups is None:
            rows = np.arange(len(self.row_docs), dtype=np.int64)
            if self.deleted:
                rows = rows[~mask_of(rows, self.deleted_ids())]
            order = np.argsort(self.row_docs[rows], kind="stable")
            by_doc = np.argsort(self.map_docs, kind="stable")
            self._lookups = (
                self.row_docs[rows][order],
                rows[order],
                self.map_docs[by_doc],
                self.map_chunks[by_doc],
            )
        return self._lookups

    # -- writes ---------------------------------------------------------------------------
    def documents_of(self, chunk_ids: Sequence[int]) -> np.ndarray:
        """The documents of those of ``chunk_ids`` the index holds."""
        wanted = np.unique(np.asarray(chunk_ids, dtype=np.int64))
        return np.unique(self.map_docs[positions_of(self.map_chunks, wanted)])

    def rows_of(self, doc_ids: np.ndarray) -> np.ndarray:
        """Live rows of these documents, ascending."""
        live_docs, live_rows, _, _ = self._lookup()
        pos = positions_of(live_docs, np.unique(doc_ids))
        return np.sort(live_rows[pos])

    def drop_documents(self, doc_ids: Iterable[int]) -> None:
        """Delete the rows and chunk entries of these documents."""
        docs = np.unique(np.asarray(list(doc_ids), dtype=np.int64))
        if not len(docs):
            return
        rows = self.rows_of(docs).tolist()
        self.remove(rows)
        self.titles.remove(rows)
        keep = ~np.isin(self.map_docs, docs)
        self.map_chunks, self.map_docs = self.map_chunks[keep], self.map_docs[keep]
        self._forget_lookups()

    def add_documents(self, docs: Mapping[int, DocumentChunks]) -> None:
        """One new row per document (its current title and chunks)."""
        if not docs:
            return
        ids = sorted(docs)
        rows = range(self.n_docs, self.n_docs + len(ids))
        self.add([(r, join_chunks(docs[d][1]), None) for r, d in zip(rows, ids, strict=True)])
        self._add_titles(rows, [docs[d][0] for d in ids])
        chunks = [(c[0], d) for d in ids for c in docs[d][1]]
        self._map(ids, [c for c, _ in chunks], [d for _, d in chunks])

    def add_single_chunks(
        self,
        doc_ids: Ids,
        chunk_ids: Ids,
        titles: Sequence[str],
        counted: Counted,
    ) -> None:
        """One new row per document of one chunk, its text given as counted terms (``add_counted``'s
        ``lengths, cols, tids, tfs``; a bulk load's word pool counted them)."""
        if not len(doc_ids):
            return
        rows = range(self.n_docs, self.n_docs + len(doc_ids))
        self.add_counted(list(rows), *counted)
        self._add_titles(rows, titles)
        self._map(doc_ids, chunk_ids, doc_ids)

    def _add_titles(self, rows: range, titles: Sequence[str]) -> None:
        """The titles of new rows into the title field."""
        if any(titles):
            self.titles.add([(r, t, None) for r, t in zip(rows, titles, strict=True)])
        else:  # no titles (bulk loads often have none): nothing to analyse
            none = np.zeros(0, dtype=np.int64)
            self.titles.add_counted(list(rows), np.zeros(len(rows), np.int64), none, none, none)

    def _map(self, row_docs: Ids, chunks: Ids, docs: Ids) -> None:
        """Record the documents of new rows and the document of each new chunk."""
        self.row_docs = np.concatenate([self.row_docs, np.asarray(row_docs, dtype=np.int64)])
        cids = np.concatenate([self.map_chunks, np.asarray(chunks, dtype=np.int64)])
        dids = np.concatenate([self.map_docs, np.asarray(docs, dtype=np.int64)])
        n = len(self.map_chunks)
        new = cids[n:]
        if (n and len(new) and new[0] <= cids[n - 1]) or np.any(np.diff(new) <= 0):
            order = np.argsort(cids, kind="stable")  # not just appended in order (bulk loads)
            cids, dids = cids[order], dids[order]
        self.map_chunks, self.map_docs = cids, dids
        self._forget_lookups()

    def freeze(self) -> None:
        super().freeze()
        self.titles.freeze()

    # -- queries --------------------------------------------------------------------------
    def allowed_rows(self, allowed_chunks: np.ndarray | None) -> np.ndarray | None:
        """Rows of the documents with a chunk among ``allowed_chunks`` (None: every row)."""
        if allowed_chunks is None:
            return None
        pos = positions_of(self.map_chunks, np.asarray(allowed_chunks, dtype=np.int64))
        return self.rows_of(self.map_docs[pos])

    def search_documents(
        self, query: str, k: int, allowed: np.ndarray | None, title_weight: float = 0.0
    ) -> list[tuple[int, float]]:
        """The top ``k`` rows by ``BM25(text) + title_weight * BM25(title)``."""
        body = self.search(query, k, allowed)
        if not title_weight:
            return body
        title = self.titles.search(query, k, allowed)
        if not title:  # no title holds a query term: the body's ranking stands
            return body
        union = np.unique(np.array([r for r, _ in body + title], dtype=np.int64))
        if not len(union):
            return []
        b = dict(self.search(query, len(union), union))
        t = dict(self.titles.search(query, len(union), union))
        scores = {int(r): b.get(r, 0.0) + title_weight * t.get(r, 0.0) for r in union}
        return sorted(scores.items(), key=lambda x: (-x[1], x[0]))[:k]

    def chunks_of_row(self, row: int, allowed_chunks: np.ndarray | None) -> np.ndarray:
        """The chunk ids (ascending) of the document held in ``row``, within scope."""
        doc = self.row_docs[row]
        _, _, doc_sorted, doc_chunks = self._lookup()
        lo, hi = np.searchsorted(doc_sorted, [doc, doc + 1])
        chunks = np.sort(doc_chunks[lo:hi])
        if allowed_chunks is not None and len(chunks):
            allowed = np.asarray(allowed_chunks, dtype=np.int64)
            pos = np.minimum(np.searchsorted(allowed, chunks), max(len(allowed) - 1, 0))
            chunks = chunks[allowed[pos] == chunks] if len(allowed) else chunks[:0]
        return chunks

    def live_chunk_ids(self) -> np.ndarray:
        """The chunk ids the index holds (for ``engram check``)."""
        return self.map_chunks

    # -- persistence ----------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        return {**super().params(), "rows": "documents"}

    def _save_extra(self, seg_dir: Path, tag: str) -> dict[str, Any]:
        out = super()._save_extra(seg_dir, tag)
        name = f"docmap-{tag}.npz"
        with open(seg_dir / name, "wb") as f:
            np.savez(f, chunks=self.map_chunks, docs=self.map_docs, rows=self.row_docs)
        return {**out, "file_docmap": name}

    def _load_extra(self, seg_dir: Path, manifest: dict[str, Any]) -> None:
        super()._load_extra(seg_dir, manifest)
        z = np.load(seg_dir / manifest["file_docmap"])
        self.map_chunks, self.map_docs = z["chunks"], z["docs"]
        self.row_docs = z["rows"]
        if len(self.row_docs) != self.n_docs or len(self.map_chunks) != len(self.map_docs):
            raise ValueError("document map does not match the rows")

    def save(self) -> None:
        """The titles first, then the rows: the rows' manifest is what commits the pair."""
        if self.directory is None or not self.dirty:
            return
        self.titles.last_seq, self.titles.dirty = self.last_seq, True
        self.titles.save()
        super().save()

    def load(self) -> bool:
        if not super().load():
            self.titles.reset()
            return False
        if self.titles.load() and (self.titles.last_seq, self.titles.n_docs) == (
            self.last_seq,
            self.n_docs,
        ):
            self._forget_lookups()
            return True
        if self.titles.damaged:  # a file failing its checksum
            self.damaged = [f"title {d}" for d in self.titles.damaged]
        else:  # missing, or saved at another change (a save interrupted between the two)
            log.info("document index at %s: titles out of step; rebuilding", self.directory)
        self.reset()
        return False

    def verify(self) -> list[str]:
        return super().verify() + [f"title {p}" for p in self.titles.verify()]
