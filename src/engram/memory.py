"""The facade: ``Memory(path).add / search / delete / reindex``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engram.config import Config
from engram.embed import Embedder, create_embedder
from engram.embed.binding import bind_embedder, recorded_embedder, resolve_embedder
from engram.embed.queries import QueryVectors
from engram.errors import EngramError, NamespaceError
from engram.identity import content_hash, document_identity, document_key
from engram.index.keyword import KeywordIndex
from engram.index.vector import FlatVectorIndex
from engram.ingest.bulk import batch_size, load_batches
from engram.ingest.report import AddReport
from engram.ingest.writer import DocumentWriter, vector_rows
from engram.recall import EvidenceFloor, Recaller, RecallSettings
from engram.recall.settings import check_recall_config
from engram.retrieval import Retrieval, chosen_url, open_retrieval
from engram.retrieval.local import LocalRetrieval
from engram.store import open_store
from engram.store.base import ChunkRecord
from engram.store.filters import parse_where
from engram.stored import StoredDocument
from engram.types import DEFAULT_NAMESPACE, Chunk, Document, Hit
from engram.validate import check_namespace, check_query, has_words

if TYPE_CHECKING:
    from engram.answer import Answer, AnswerSettings
    from engram.generate.base import Generator

__all__ = [  # the names other modules import from here (kept where they moved from)
    "DEFAULT_NAMESPACE",
    "AddReport",
    "Memory",
    "check_namespace",
    "check_query",
    "content_hash",
    "document_identity",
    "document_key",
    "has_words",
]


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
        check_recall_config(self.config)
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
        self._queries = QueryVectors()
        self.last_rerank_seconds = 0.0  # time the last search spent reranking (rerank_top)
        try:  # the URL given, else $ENGRAM_RETRIEVAL, else the store's own default
            self.retrieval: Retrieval = open_retrieval(
                self.store, self.config, chosen_url(retrieval)
            )
        except BaseException:
            self.store.close()
            raise
        self.recaller = Recaller(
            self.retrieval,
            rows=self.store.hit_rows,
            embed=self.embed_query,
            dim=lambda: self._check_embedder().dim,
            scope=self._scope,
            stages=self,
        )
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
        return recorded_embedder(self.store)

    def _resolve_embedder(self, spec: str | Embedder | None) -> str | Embedder:
        return resolve_embedder(self.store, self.path, spec)

    def _check_embedder(self) -> Embedder:
        """The embedder, recorded in the store on first use and checked against it after."""
        return bind_embedder(self.store, self.retrieval, self.embedder, self._embedder_spec)

    # -- derived indexes ------------------------------------------------------------------
    def optimize(self) -> dict[str, Any]:
        """Build or extend the approximate vector index now, in bulk, and save every index
        (otherwise done when a save finds enough new rows). Returns what the index holds."""
        run = getattr(self.retrieval, "optimize", None)
        return run() if callable(run) else {}

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
                        on_error=on_error,  # type: ignore[arg-type]  # checked by load_path
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
        """Chunk, embed and store ``docs`` (see ``ingest.writer.DocumentWriter``)."""
        check_namespace(namespace)
        report = report or AddReport()
        emb = self._check_embedder()
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=0, unit=" chunks", desc="embedding", leave=False)
        writer = DocumentWriter(self.store, namespace, emb, self.config, report, bar, created_at)
        try:
            writer.write(docs, metadata)
        finally:
            if bar is not None:
                bar.close()
            self.sync()
        return report

    def import_vectors(
        self,
        docs: Sequence[Document],
        vectors: np.ndarray,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        batch: int | None = None,
    ) -> int:
        """Bulk-load documents with vectors computed elsewhere: one chunk per document, no
        chunking or embedding, ``batch`` (``bulk.batch_size``) documents per transaction.
        Returns documents written. Rows are committed and searchable on return; the index
        files are written by the next ``save()``, ``optimize()`` or ``close()`` (one save after
        many calls: a crash meanwhile only makes the next open catch up from the store)."""
        check_namespace(namespace)
        emb = self._check_embedder()
        rows = vector_rows(docs, vectors, emb, batch or batch_size(self.retrieval))
        return load_batches(self.store, self.retrieval, rows, namespace, emb.model_id)

    def delete(
        self,
        ids: str | Sequence[str] | None = None,
        *,
        where: Any = None,
        namespace: str | None = DEFAULT_NAMESPACE,
        chunk_ids: Sequence[int] | None = None,
        reason: str = "",
        action: str = "delete",
    ) -> int:
        """Delete documents by id and/or filter (or single chunks); returns chunks removed.
        ``action`` names the deletion in the audit log (``delete``, ``forget``, ``expire``)."""
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
            action=action,
        )
        self.sync()
        return n

    # -- documents (for agents, the server, export: nothing outside reaches the store) --
    def namespace_exists(self, namespace: str) -> bool:
        return bool(self.store.namespace_exists(namespace))

    def namespace_stats(self, namespace: str) -> dict[str, Any] | None:
        """Counts and times of ``namespace`` with the store's embedding model (None: unknown)."""
        stats = self.store.namespace_stats(namespace)
        if stats is None:
            return None
        dim = self.store.get_setting("embedding_dim")
        model = self.store.get_setting("embedding_model")
        return {**stats, "embedding_model": model, "embedding_dim": int(dim or 0) or None}

    def documents(
        self,
        namespace: str,
        where: Any = None,
        *,
        newest_first: bool = False,
        limit: int | None = None,
    ) -> list[StoredDocument]:
        """Whole documents of ``namespace`` matching ``where``, oldest first by ``created_at``."""
        rows = self.store.select_documents(
            namespace, parse_where(where), newest_first=newest_first, limit=limit
        )
        return [StoredDocument.from_row(row) for row in rows]

    def list_documents(
        self, namespace: str, limit: int = 100, offset: int = 0
    ) -> tuple[int, list[dict[str, Any]]]:
        """``(total, page)``: one page of ``namespace``'s documents as JSON-ready dicts."""
        total, docs = self.store.list_documents(namespace, limit, offset)
        return int(total), list(docs)

    def get_document(self, namespace: str, doc_id: str) -> dict[str, Any] | None:
        return self.store.get_document(namespace, doc_id)

    def count_documents(
        self, namespace: str, ids: Sequence[str] | None = None, where: Any = None
    ) -> int:
        return int(self.store.count_documents(namespace, doc_keys=ids, where=parse_where(where)))

    def chunk_vectors(self, chunk_ids: Sequence[int]) -> dict[int, np.ndarray]:
        """Stored vectors of these chunks, by chunk id."""
        ids, mat = self.store.chunk_vectors(list(chunk_ids))
        return {int(i): mat[n] for n, i in enumerate(ids)}

    def metadata_max(self, namespace: str, key: str, where: Any = None) -> float | None:
        """The largest numeric ``metadata[key]`` among documents matching ``where``."""
        return self.store.metadata_max(namespace, key, parse_where(where))

    def copy_document(self, doc: StoredDocument, namespace: str) -> None:
        """Write a stored document into ``namespace`` with its stored vectors (not re-embedded)."""
        vectors = self.chunk_vectors([c.id for c in doc.chunks])
        records = [
            ChunkRecord(Chunk(c.text, c.position, c.start, c.end), c.content_hash, vectors[c.id])
            for c in doc.chunks
            if c.id in vectors
        ]
        new = Document(doc.text, doc.key, doc.source, doc.title, doc.metadata)
        model = self.store.get_setting("embedding_model") or ""
        self.store.write_document(
            namespace, new, doc.key, doc.content_hash, records, model, created_at=doc.created_at
        )

    def drop_namespace(self, namespace: str, reason: str = "") -> int:
        """Drop ``namespace`` and everything in it (audited); returns chunks removed."""
        n = int(self.store.drop_namespace(namespace, reason=reason))
        self.sync()
        return n

    def audit(self, namespace: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The newest audit records (of ``namespace``), newest first."""
        return list(self.store.audit(namespace, limit=limit))

    def purge(self) -> None:
        """Rebuild the derived indexes and purge the store's files (SQLite: truncate the
        write-ahead log; PostgreSQL: ``VACUUM``), so nothing deleted survives anywhere."""
        self.reindex()
        self.store.purge()

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
        """The query's vector; the last few are kept, so recall and reading embed it once."""
        return self._queries.get(self._check_embedder(), query)

    def similarities(self, query: str, texts: list[str]) -> list[float]:
        """The embedding cosine of each of ``texts`` to ``query``."""
        if not texts:
            return []
        vectors = self._check_embedder().embed(texts)
        return [float(v) for v in np.asarray(vectors) @ self.embed_query(query)]

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
        their ranks, and ``fused``) to explain its place. See ``recall.Recaller``.
        """
        settings = self.recall_settings(
            k, mode=mode, alpha=alpha, fusion=fusion, candidates=candidates
        )
        return self.recaller.recall(
            query,
            settings,
            namespace,
            where,
            query_vector=query_vector,
            with_vectors=with_vectors,
        )

    def recall_settings(self, k: int, **overrides: Any) -> RecallSettings:
        """This memory's recall settings for ``k`` hits, with ``mode``, ``alpha``, ``fusion``,
        ``candidates`` overridden where given (checked)."""
        return RecallSettings.from_config(self.config, k=k, **overrides)

    def _scope(self, namespace: str | Sequence[str] | None, where: Any) -> Any:
        """The retrieval scope of ``namespace`` and ``where``, the indexes caught up first."""
        namespaces = self._resolve_namespaces(namespace)
        parsed = parse_where(where)
        self.sync()
        return self.retrieval.scope(namespaces, parsed)

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
    def recall_evidence(
        self,
        question: str,
        k: int | None = None,
        *,
        namespace: Any = None,
        where: Any = None,
        **search: Any,
    ) -> list[Hit]:
        """Hits for answering, the question embedded once.

        Each hit gets its cosine to the question (``scores["similarity"]``) and the share of
        the question's terms it contains (``scores["coverage"]``); it is evidence when the
        cosine reaches ``config.min_similarity`` or the coverage ``config.min_term_coverage``
        (a long passage that holds the question's rare words can sit at a low cosine).
        ``search`` takes ``mode``, ``alpha``, ``fusion``, ``candidates`` as in ``search``.
        """
        settings = self.recall_settings(k or self.config.answer_k, **search)
        floor = EvidenceFloor.from_config(self.config)
        return self.recaller.evidence(question, settings, floor, namespace, where)

    def answer_settings(self, generator: Generator | None = None) -> AnswerSettings:
        """The answer stage's settings, from this memory's config."""
        from engram.answer import AnswerSettings

        return AnswerSettings.from_config(self.config, generator or self.generator)

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
            similarity=lambda texts: self.similarities(question, texts),
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
