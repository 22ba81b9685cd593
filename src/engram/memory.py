"""The facade: ``Memory(path).add / search / delete / reindex``."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engram.config import Config
from engram.embed import Embedder, create_embedder
from engram.embed.factory import DEFAULT_EMBEDDER, embedder_name_for
from engram.errors import (
    EmbeddingMismatchError,
    EngramError,
    IngestError,
    NamespaceError,
    QueryError,
)
from engram.index.analyzer import analyze
from engram.index.keyword import KeywordIndex
from engram.index.vector import FlatVectorIndex
from engram.recall.fusion import FUSIONS, blend, rrf
from engram.retrieval import Retrieval, open_retrieval
from engram.retrieval.local import LocalRetrieval
from engram.store import open_store
from engram.store.base import ChunkRecord
from engram.store.filters import parse_where
from engram.types import DEFAULT_NAMESPACE, Chunk, Document, Hit

if TYPE_CHECKING:
    from engram.answer import Answer, AnswerSettings
    from engram.generate.base import Generator

log = logging.getLogger(__name__)
_NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@\-]{0,127}$")
MODES = ("hybrid", "keyword", "vector")


def check_namespace(name: str) -> str:
    if not isinstance(name, str) or not _NAMESPACE.match(name):
        raise NamespaceError(
            f"invalid namespace {name!r}: 1-128 characters, letters, digits and _ . : @ -, "
            "starting with a letter or digit"
        )
    return name


def has_words(text: Any) -> bool:
    """Whether ``text`` holds a letter or digit: something a query can search for."""
    return isinstance(text, str) and any(ch.isalnum() for ch in text)


def check_query(query: Any) -> str:
    """``query`` itself, or ``QueryError`` when it is empty or only punctuation."""
    if not has_words(query):
        raise QueryError(
            f"empty query {query!r}: a query needs at least one letter or digit"
            if isinstance(query, str)
            else f"a query must be text, got {type(query).__name__}"
        )
    return query


def content_hash(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


def document_identity(doc: Document) -> tuple[str, str]:
    """``(key, digest)``: the document's key (its id, else a hash of its text) and a hash of
    everything stored about it, so re-adding an unchanged document does nothing."""
    meta = json.dumps(doc.metadata, sort_keys=True, ensure_ascii=False, default=str)
    digest = content_hash(doc.text, doc.title, doc.source, meta)
    return doc.id or f"sha256:{content_hash(doc.text)[:32]}", digest


@dataclass
class AddReport:
    """What an ``add`` did: documents added, updated, unchanged, skipped (with errors)."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    empty: int = 0
    chunks: int = 0
    embedded: int = 0
    errors: list[str] = field(default_factory=list)  # every skipped input, with its reason
    ignored: list[str] = field(default_factory=list)  # folder entries not read, with why
    by_source: dict[str, list[str]] = field(default_factory=dict, repr=False)

    def skip(self, error: IngestError) -> None:
        self.errors.append(str(error))
        self.by_source.setdefault(error.source or "input", []).append(str(error))

    @property
    def skipped(self) -> int:
        return len(self.errors)

    def skip_summary(self) -> list[str]:
        """One line per source that had skips: the reason, or a count and the first reason
        (a JSON array of 43 rows without text gives one line, not 43)."""
        lines = []
        for source, reasons in self.by_source.items():
            if len(reasons) == 1:
                lines.append(reasons[0])
            else:
                lines.append(f"{source}: {len(reasons)} records skipped; first: {reasons[0]}")
        return lines

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "by_source"}
        return {**out, "skipped": self.skipped}


class Memory:
    """A memory store: SQL rows plus keyword and vector retrieval.

    ``path`` is a SQLite file (created if missing unless ``create=False``; derived index files
    live in ``<path>.index/``) or a ``postgresql://`` URL (retrieval runs inside the database).
    With ``create=False`` a location holding no store raises ``StoreNotFoundError``.
    ``retrieval`` is a retrieval backend URL (``engram.retrieval``; None: the store's own).
    """

    def __init__(
        self,
        path: str | Path = "engram.db",
        *,
        embedder: str | Embedder | None = None,
        generator: str | Generator | None = None,
        config: Config | None = None,
        create: bool = True,
        retrieval: str | None = None,
        **options: Any,
    ):
        self.config = (config or Config()).replace(**options) if options else (config or Config())
        if self.config.mode not in MODES:
            raise EngramError(f"unknown mode {self.config.mode!r}; use one of {MODES}")
        self.path = str(path)
        self.store = open_store(self.path, create=create)
        try:
            self._embedder_spec = self._resolve_embedder(
                embedder if embedder is not None else self.config.embedder
            )
        except EngramError:
            self.store.close()
            raise
        self._embedder: Embedder | None = None
        self._generator_spec = generator if generator is not None else self.config.generator
        self._generator: Generator | None = None
        # $ENGRAM_RETRIEVAL when none is named; "local" is the store's own default (index
        # files beside a SQLite store, search inside the database for PostgreSQL)
        retrieval = retrieval or os.environ.get("ENGRAM_RETRIEVAL") or None
        if retrieval and retrieval.strip().lower() == "local":
            retrieval = None
        try:
            self.retrieval: Retrieval = open_retrieval(self.store, self.config, retrieval)
        except BaseException:
            self.store.close()
            raise
        self.sync()

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def keyword(self) -> KeywordIndex | None:
        """The keyword index file (``local`` retrieval; None for other backends)."""
        local = self.retrieval if isinstance(self.retrieval, LocalRetrieval) else None
        return local.keyword_index if local else None

    @property
    def vector(self) -> FlatVectorIndex | None:
        """The vector index file (``local`` retrieval; None for other backends)."""
        local = self.retrieval if isinstance(self.retrieval, LocalRetrieval) else None
        return local.vector_index if local else None

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Save the indexes and close the store."""
        with suppress(Exception):
            self.save()
        with suppress(Exception):
            self.retrieval.close()
        self.store.close()

    def save(self) -> None:
        """Persist the derived indexes (they also catch up from the changelog on open)."""
        self.retrieval.save()

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            spec = self._embedder_spec
            opts = dict(self.config.embedder_options)
            if isinstance(spec, str) and spec in ("local", "onnx") and self.config.threads:
                opts.setdefault("threads", self.config.threads)
            self._embedder = create_embedder(spec, **opts)
        return self._embedder

    @property
    def generator(self) -> Generator:
        if self._generator is None:
            from engram.generate import create_generator

            spec = self._generator_spec
            if not isinstance(spec, str):
                self._generator = spec
            else:
                opts = dict(self.config.generator_options)
                if spec in ("local", "llamacpp") and self.config.threads:
                    opts.setdefault("threads", self.config.threads)
                self._generator = create_generator(spec, **opts)
        return self._generator

    def recorded_embedder(self) -> str | None:
        """The embedder name this store was made with (None for a new or custom one)."""
        return self.store.get_setting("embedder") or embedder_name_for(
            self.store.get_setting("embedding_model")
        )

    def _resolve_embedder(self, spec: str | Embedder | None) -> str | Embedder:
        """The embedder named, else the store's, else the default; a name that differs from
        the one the store was made with is refused before anything is embedded."""
        recorded = self.recorded_embedder()
        if spec is None:
            return recorded or DEFAULT_EMBEDDER
        if isinstance(spec, str) and recorded and spec != recorded:
            raise EmbeddingMismatchError(
                f"{self.path} was made with the {recorded!r} embedder "
                f"({self.store.get_setting('embedding_model')}); it cannot use {spec!r}. "
                "Leave the embedder out (the store's own is used) or add into a new store."
            )
        return spec

    def _check_embedder(self) -> Embedder:
        emb = self.embedder
        model = self.store.get_setting("embedding_model")
        if model is None:
            # the dimension first: a process that sees the model also sees its dimension
            self.store.set_setting("embedding_dim", str(emb.dim))
            self.store.set_setting("embedding_model", emb.model_id)
            spec = self._embedder_spec
            name = spec if isinstance(spec, str) else embedder_name_for(emb.model_id)
            if name:
                self.store.set_setting("embedder", name)
            self.retrieval.set_dim(emb.dim)
        elif model != emb.model_id or int(self.store.get_setting("embedding_dim")) != emb.dim:
            raise EmbeddingMismatchError(
                f"{self.store.path} holds vectors of {model} "
                f"({self.store.get_setting('embedding_dim')} dims), but this Memory embeds with "
                f"{emb.model_id} ({emb.dim} dims). Open it with the same embedder, or add into a "
                "new store."
            )
        return emb

    # -- derived indexes ------------------------------------------------------------------
    def sync(self) -> int:
        """Bring the retrieval indexes up to the store's changelog; returns changes applied."""
        return self.retrieval.sync()

    def reindex(self) -> dict[str, int]:
        """Rebuild the keyword and vector indexes from the store."""
        return self.retrieval.reindex()

    def index_metadata(self, *keys: str) -> list[str]:
        """Index these metadata keys in SQL (SQLite), so a selective filter on them reads
        only the matching rows; worth it for keys filtered on often (tenant, user, source
        type) in large stores. Returns the names of the indexes made or already there."""
        names = [self.store.index_metadata(key) for key in keys]
        return [n for n in names if n]

    # -- writes ---------------------------------------------------------------------------
    def add(
        self,
        items: Any,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        metadata: dict[str, Any] | None = None,
        progress: bool = False,
        on_error: str = "raise",
    ) -> AddReport:
        """Add documents: text, dicts, ``Document``s, ``Path``s (files or folders), or a list.

        Unchanged documents (same id and content) are skipped without embedding. Each document
        is committed on its own, so an interrupted add resumes where it stopped.
        """
        from engram.ingest import load_path, load_records

        check_namespace(namespace)
        report = AddReport()
        skip = report.skip

        def documents() -> Iterator[Document]:
            batch = items if isinstance(items, list | tuple) else [items]
            for item in batch:
                if isinstance(item, Path):
                    yield from load_path(
                        item,
                        max_bytes=int(self.config.max_file_mb * 2**20),
                        on_error=on_error,
                        on_skip=skip,
                        on_ignored=lambda path, why: report.ignored.append(f"{path}: {why}"),
                    )
                else:
                    yield from load_records([item])

        self.add_documents(
            documents(), namespace=namespace, metadata=metadata, progress=progress, report=report
        )
        return report

    def add_documents(
        self,
        docs: Iterable[Document],
        *,
        namespace: str = DEFAULT_NAMESPACE,
        metadata: dict[str, Any] | None = None,
        progress: bool = False,
        report: AddReport | None = None,
        created_at: float | None = None,
    ) -> AddReport:
        from engram.ingest import chunk_text

        check_namespace(namespace)
        report = report or AddReport()
        emb = self._check_embedder()
        limit = max(8, min(self.config.chunk_tokens, emb.max_tokens - 2))
        overlap = min(self.config.chunk_overlap, limit // 2)
        pending: list[tuple[Document, str, str, list]] = []
        n_pending = 0
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=0, unit=" chunks", desc="embedding", leave=False)
        try:
            for doc in docs:
                if metadata:
                    doc.metadata = {**metadata, **doc.metadata}
                if not doc.text or not doc.text.strip():
                    report.empty += 1
                    continue
                key, digest = document_identity(doc)
                if self.store.document_hash(namespace, key) == digest:
                    report.unchanged += 1
                    continue
                chunks = chunk_text(
                    doc.text, max_tokens=limit, overlap=overlap, count_tokens=emb.count_tokens
                )
                if not chunks:
                    report.empty += 1
                    continue
                if bar is not None:
                    bar.total += len(chunks)  # known once chunked, before any embedding
                    bar.refresh()
                if len(chunks) > self._commit_chunks:  # a large file: bounded batches
                    self._flush(pending, namespace, emb, report, bar, created_at)
                    pending, n_pending = [], 0
                    marker = "partial:" + content_hash(digest, emb.model_id, f"{limit}/{overlap}")
                    self._add_large(
                        (doc, key, digest, chunks), marker, namespace, emb, report, bar, created_at
                    )
                    continue
                pending.append((doc, key, digest, chunks))
                n_pending += len(chunks)
                if n_pending >= self.config.embed_batch:
                    self._flush(pending, namespace, emb, report, bar, created_at)
                    pending, n_pending = [], 0
        except IngestError:
            # Keep the documents read before the bad input, then report it.
            self._flush(pending, namespace, emb, report, bar, created_at)
            raise
        else:
            self._flush(pending, namespace, emb, report, bar, created_at)
        finally:
            if bar is not None:
                bar.close()
            self.sync()
        return report

    @property
    def _commit_chunks(self) -> int:
        """Chunks per transaction when a large document is written in batches."""
        return max(4 * self.config.embed_batch, 16)

    def _records(
        self, chunks: Sequence[Chunk], emb: Embedder, report: AddReport, bar: Any
    ) -> list[ChunkRecord]:
        """Chunks with vectors: stored ones reused, the rest embedded ``embed_batch`` at a
        time (the progress bar moves after each batch)."""
        hashes = [content_hash(c.text) for c in chunks]
        cached = self.store.vectors_for_hashes(hashes, emb.model_id)
        todo = list(dict.fromkeys(h for h in hashes if h not in cached))
        texts = dict(zip(hashes, (c.text for c in chunks), strict=True))
        step = max(1, self.config.embed_batch)
        for start in range(0, len(todo), step):
            part = todo[start : start + step]
            vecs = emb.embed([texts[h] for h in part])
            if vecs.shape != (len(part), emb.dim):
                raise EmbeddingMismatchError(
                    f"embedder {emb.model_id} returned vectors of shape {vecs.shape}, "
                    f"expected ({len(part)}, {emb.dim})"
                )
            cached.update(zip(part, vecs, strict=True))
            report.embedded += len(part)
            if bar is not None:
                bar.update(len(part))
        if bar is not None:
            bar.update(len(chunks) - len(todo))  # reused vectors and repeated chunks
        return [ChunkRecord(c, h, cached[h]) for c, h in zip(chunks, hashes, strict=True)]

    def _count(self, report: AddReport, status: str) -> None:
        if status == "added":
            report.added += 1
        elif status == "updated":
            report.updated += 1
        else:
            report.unchanged += 1

    def _flush(
        self,
        pending: list,
        namespace: str,
        emb: Embedder,
        report: AddReport,
        bar: Any,
        created_at: float | None,
    ) -> None:
        if not pending:
            return
        records = iter(self._records([c for *_, cs in pending for c in cs], emb, report, bar))
        for doc, key, digest, chunks in pending:
            result = self.store.write_document(
                namespace,
                doc,
                key,
                digest,
                [next(records) for _ in chunks],
                emb.model_id,
                created_at=doc.created_at if doc.created_at is not None else created_at,
            )
            self._count(report, result.status)
            report.chunks += len(result.added)

    def _add_large(
        self,
        item: tuple[Document, str, str, list[Chunk]],
        marker: str,
        namespace: str,
        emb: Embedder,
        report: AddReport,
        bar: Any,
        created_at: float | None,
    ) -> None:
        """Write a document of many chunks in transactions of ``_commit_chunks`` chunks, so
        memory stays bounded and progress is committed as it goes. Until the last batch the
        stored document's hash is ``marker``: an interrupted add of the same text resumes
        after the chunks already stored; the final hash marks it complete."""
        doc, key, digest, chunks = item
        state = self.store.document_state(namespace, key)
        doc_id = state[0] if state is not None and state[1] == marker else None
        done = self.store.chunk_positions(doc_id) if doc_id is not None else set()
        status = "updated" if state is not None and doc_id is None else "added"
        step = self._commit_chunks
        for start in range(0, len(chunks), step):
            batch = [c for c in chunks[start : start + step] if c.position not in done]
            if bar is not None:
                bar.update(min(step, len(chunks) - start) - len(batch))  # stored before
            if not batch:
                continue
            records = self._records(batch, emb, report, bar)
            if doc_id is None:
                when = doc.created_at if doc.created_at is not None else created_at
                result = self.store.write_document(
                    namespace, doc, key, marker, records, emb.model_id, created_at=when
                )
                doc_id, added = result.document_id, result.added
            else:
                added = self.store.append_chunks(doc_id, records, emb.model_id)
            report.chunks += len(added)
        self.store.set_content_hash(doc_id, digest)
        self._count(report, status)

    def import_vectors(
        self,
        docs: Sequence[Document],
        vectors: np.ndarray,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        batch: int = 5000,
    ) -> int:
        """Bulk-load documents with vectors computed elsewhere: one chunk per document, no
        chunking or embedding, many documents per transaction. Returns documents written."""
        check_namespace(namespace)
        emb = self._check_embedder()
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (len(docs), emb.dim):
            raise EmbeddingMismatchError(
                f"vectors have shape {vectors.shape}, expected ({len(docs)}, {emb.dim})"
            )
        written = 0
        for start in range(0, len(docs), batch):
            part = docs[start : start + batch]
            rows = []
            for doc, vec in zip(part, vectors[start : start + batch], strict=True):
                key, digest = document_identity(doc)
                chunk = Chunk(doc.text, 0, 0, len(doc.text))
                rows.append((doc, key, digest, [ChunkRecord(chunk, content_hash(doc.text), vec)]))
            written += self.store.write_documents(namespace, rows, emb.model_id)
            # One index save at the end, not one per save_every_changes rows: each save
            # rewrites the HNSW graph. A crash meanwhile loses nothing (the indexes catch up).
            self.retrieval.sync(autosave=False)
        self.save()
        return written

    def delete(
        self,
        ids: str | Sequence[str] | None = None,
        *,
        where: Any = None,
        namespace: str | None = DEFAULT_NAMESPACE,
        chunk_ids: Sequence[int] | None = None,
        reason: str = "",
    ) -> int:
        """Delete documents by id and/or filter (or single chunks); returns chunks removed."""
        if isinstance(ids, str):
            ids = [ids]
        if namespace is not None:
            self._known_namespaces([namespace])
        n = self.store.delete(
            namespace=namespace,
            doc_keys=ids,
            where=parse_where(where),
            chunk_ids=chunk_ids,
            reason=reason,
        )
        self.sync()
        return n

    # -- reads ----------------------------------------------------------------------------
    def namespaces(self) -> list[dict[str, Any]]:
        return self.store.namespaces()

    def _known_namespaces(self, names: Sequence[str]) -> list[str]:
        for name in names:
            check_namespace(name)
            if not self.store.namespace_exists(name):
                known = [n["name"] for n in self.store.namespaces()]
                raise NamespaceError(
                    f"unknown namespace {name!r}; known: {', '.join(known) or '(none yet)'}"
                )
        return list(names)

    def _resolve_namespaces(self, namespace: str | Sequence[str] | None) -> list[str] | None:
        """``None`` -> the default namespace; ``"*"`` -> all; names must exist."""
        if namespace == "*":
            return None
        names = (
            [namespace or DEFAULT_NAMESPACE]
            if namespace is None or isinstance(namespace, str)
            else list(namespace)
        )
        if names == [DEFAULT_NAMESPACE] and self.store.max_seq() == 0:
            return names  # an empty store: nothing to find, no error
        return self._known_namespaces(names)

    def embed_query(self, query: str) -> np.ndarray:
        emb = self._check_embedder()
        return emb.embed([query])[0]

    def search(
        self,
        query: str,
        k: int = 10,
        mode: str | None = None,
        where: Any = None,
        namespace: str | Sequence[str] | None = None,
        *,
        alpha: float | None = None,
        fusion: str | None = None,
        candidates: int | None = None,
        with_vectors: bool = False,
        query_vector: np.ndarray | None = None,
    ) -> list[Hit]:
        """Hybrid (default), keyword or vector recall; filters apply inside each retriever.

        Every hit carries each stage's scores in ``hit.scores`` (``keyword``, ``vector``,
        their ranks, and ``fused``) to explain its place.
        """
        mode = mode or self.config.mode
        if mode not in MODES:
            raise EngramError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
        fusion = fusion or self.config.fusion
        if fusion not in FUSIONS:
            raise EngramError(f"unknown fusion {fusion!r}; use one of {', '.join(FUSIONS)}")
        alpha = self.config.alpha if alpha is None else alpha
        if not 0.0 <= alpha <= 1.0:
            raise EngramError(f"alpha must be between 0 and 1, got {alpha}")
        if not isinstance(k, int) or k < 1:
            raise EngramError(f"k must be a positive integer, got {k!r}")
        if not (mode == "vector" and query_vector is not None):  # a vector needs no words
            check_query(query)
        namespaces = self._resolve_namespaces(namespace)
        where = parse_where(where)
        self.sync()
        scope = self.retrieval.scope(namespaces, where)
        if scope.empty:
            return []
        # Single-retriever modes fuse nothing, so k candidates are enough.
        n = max(k, candidates or (self.config.candidates if mode == "hybrid" else k))
        kw = self.retrieval.keyword(query, n, scope) if mode in ("hybrid", "keyword") else []
        vec: list[tuple[int, float]] = []
        if mode in ("hybrid", "vector"):
            if query_vector is None:
                query_vector = self.embed_query(query)
            elif np.shape(query_vector) != (self._check_embedder().dim,):
                raise EmbeddingMismatchError(
                    f"query_vector has shape {np.shape(query_vector)}, the store holds "
                    f"{self.embedder.dim}-dim vectors"
                )
            vec = self.retrieval.vector(query_vector, n, scope)
        if mode == "keyword":
            fused = dict(kw)
        elif mode == "vector":
            fused = dict(vec)
        elif fusion == "rrf":
            fused = (
                rrf([kw, vec], k=self.config.rrf_k, weights=[1 - alpha, alpha])
                if alpha not in (0.0, 1.0)
                else dict(kw if alpha == 0 else vec)
            )
        else:
            fused = blend(kw, vec, alpha)
        ranked = sorted(fused.items(), key=lambda x: (-x[1], x[0]))
        kw_rank = {cid: (r, s) for r, (cid, s) in enumerate(kw, 1)}
        vec_rank = {cid: (r, s) for r, (cid, s) in enumerate(vec, 1)}
        hits: list[Hit] = []
        # Rows come from the store, so a chunk deleted after the index saw it is never returned.
        # The best k first: more are read only when some of those were deleted meanwhile.
        for start in range(0, len(ranked), k):
            part = ranked[start : start + k]
            rows = self.store.hit_rows([cid for cid, _ in part])
            for cid, score in part:
                row = rows.get(cid)
                if row is None:
                    continue
                scores = {"fused": score}
                if cid in kw_rank:
                    scores["keyword_rank"], scores["keyword"] = kw_rank[cid]
                if cid in vec_rank:
                    scores["vector_rank"], scores["vector"] = vec_rank[cid]
                hits.append(Hit(id=cid, score=score, scores=scores, **row))
                if len(hits) == k:
                    break
            if len(hits) == k:
                break
        if with_vectors and hits:
            vectors = self.retrieval.vectors_for([h.id for h in hits])
            for h in hits:
                h.vector = vectors.get(h.id)
        return hits

    def get(self, chunk_ids: Sequence[int]) -> list[Hit]:
        rows = self.store.hit_rows(chunk_ids)
        return [Hit(id=i, score=0.0, **rows[i]) for i in chunk_ids if i in rows]

    def stats(self) -> dict[str, Any]:
        out = self.store.stats()
        out["embedder"] = self.recorded_embedder()
        out["indexes"] = self.retrieval.stats()
        return out

    def sql(
        self,
        statement: str,
        params: Any = None,
        *,
        namespace: str | Sequence[str] | None = None,
        limit: int = 1000,
        timeout: float = 10.0,
        explain: bool = False,
    ) -> Any:
        """One read-only SQL statement over the views ``documents`` and ``chunks`` of
        ``namespace`` (as in ``search``), with ``similar('text', k, mode)`` and
        ``keywords('text', k)`` as tables of recall hits; returns an ``SqlResult``.
        See docs/sql.md."""
        from engram.sql import run_sql

        return run_sql(
            self,
            statement,
            params,
            namespace=namespace,
            limit=limit,
            timeout=timeout,
            explain=explain,
        )

    # -- answers --------------------------------------------------------------------------
    def recall_evidence(self, question: str, k: int | None = None, **search: Any) -> list[Hit]:
        """Hits for answering, the question embedded once.

        Each hit gets its cosine to the question (``scores["similarity"]``) and the share of
        the question's terms it contains (``scores["coverage"]``); it is evidence when the
        cosine reaches ``config.min_similarity`` or the coverage ``config.min_term_coverage``
        (a long passage that holds the question's rare words can sit at a low cosine).
        """
        mode = search.get("mode") or self.config.mode
        query_vector = self.embed_query(question)
        if mode in ("hybrid", "vector"):
            search["query_vector"] = query_vector
        hits = self.search(question, k=k or self.config.answer_k, with_vectors=True, **search)
        terms = set(analyze(question, self.config.language))
        out = []
        for h in hits:
            h.scores["similarity"] = (
                float(np.dot(h.vector, query_vector)) if h.vector is not None else 0.0
            )
            found = terms & set(analyze(f"{h.title} {h.text}", self.config.language))
            h.scores["coverage"] = len(found) / len(terms) if terms else 0.0
            if (
                h.scores["similarity"] >= self.config.min_similarity
                or h.scores["coverage"] >= self.config.min_term_coverage
            ):
                out.append(h)
        return out

    def answer_settings(self, generator: Generator | None = None) -> AnswerSettings:
        """The answer stage's settings, from this memory's config."""
        from engram.answer import AnswerSettings, ReadSettings
        from engram.answer.extract import ExtractSettings
        from engram.prompt import NO_ANSWER

        c = self.config
        stop = c.answer_stop
        if stop is None:
            stop = getattr(generator or self.generator, "default_stop", None)
        return AnswerSettings(
            budget=c.answer_budget,
            cluster_threshold=c.cluster_threshold,
            reader=c.reader,
            read=ReadSettings(
                max_tokens=c.answer_max_tokens,
                stop=stop or None,
                require_grounding=c.require_grounding,
                no_answer=NO_ANSWER,
                extract=ExtractSettings(
                    sentences=c.extract_sentences,
                    max_words=c.extract_max_words,
                    min_confidence=c.extract_min_confidence,
                    sentence_answers=c.extract_sentence_answers,
                ),
            ),
        )

    def answer(
        self,
        question: str,
        hits: list[Hit],
        *,
        persona: str | None = None,
        pinned: list[str] | None = None,
        generator: Generator | None = None,
        on_token: Any = None,
        prompt_only: bool = False,
        reader: str | None = None,
    ) -> Answer:
        """Answer ``question`` from given ``hits`` (clusters, cited prompt, reader, model).

        ``reader`` overrides ``config.reader`` (``auto``, ``extract`` or ``generate``).
        """
        from engram.answer import answer_from_hits

        generator = generator or self.generator
        settings = self.answer_settings(generator)
        if reader:
            settings.reader = reader
        return answer_from_hits(
            question,
            hits,
            generator,
            settings,
            persona=persona,
            pinned=pinned,
            on_token=on_token,
            prompt_only=prompt_only,
        )

    def ask(
        self,
        question: str,
        *,
        k: int | None = None,
        namespace: Any = None,
        where: Any = None,
        mode: str | None = None,
        persona: str | None = None,
        pinned: list[str] | None = None,
        generator: Generator | None = None,
        on_token: Any = None,
        prompt_only: bool = False,
        reader: str | None = None,
    ) -> Answer:
        """Recall evidence for ``question`` and have the model answer with citations.

        When nothing relevant enough is recalled the model is not called and the answer says
        that memory holds no answer. ``on_token`` receives the answer as it streams.
        """
        hits = self.recall_evidence(question, k=k, namespace=namespace, where=where, mode=mode)
        return self.answer(
            question,
            hits,
            persona=persona,
            pinned=pinned,
            generator=generator,
            on_token=on_token,
            prompt_only=prompt_only,
            reader=reader,
        )
