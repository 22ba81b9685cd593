"""The ``milvus`` retrieval backend: BM25 and vector search in a Milvus collection.

The SQL store (SQLite or PostgreSQL) stays the source of truth; one Milvus collection holds,
per chunk, what is derived from it: the keyword field (the chunk's analysed terms, scored by
Milvus's BM25 function), the vector, the namespace (the partition key) and the document's
fields and metadata in typed views (``engram.retrieval.milvus_filter``), so filters run inside
both searches and ``k`` results come back when ``k`` match.

The collection catches up from the store's changelog like the local index files: its
properties record the store it belongs to and the last change applied (the watermark), moved
only after the rows are written. A crash between the SQL commit and the Milvus write leaves
the watermark behind, and the next open applies the missing changes again (adds are upserts,
deletes are by id: applying twice is harmless). ``reindex`` rebuilds it from SQL.

URLs: ``milvus://HOST:PORT/NAME`` (a Milvus server or cluster; ``user:password@`` for one
with authentication; ``milvus+https://`` for TLS) and ``milvus-lite:PATH`` (Milvus Lite, the
embedded form, in this process: one process at a time per PATH). Needs the ``milvus`` extra.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np

from engram.config import Config
from engram.errors import EmbeddingMismatchError, EngramError
from engram.index.analyzer import analyze
from engram.index.vector import top_k
from engram.retrieval.base import EVERYTHING, NOTHING, Candidates, Scope, net_changes
from engram.retrieval.milvus_filter import (
    FALSE,
    TRUE,
    Unsupported,
    and_,
    compile_filter,
    literal,
    typed_metadata,
)
from engram.store.base import Store
from engram.types import DEFAULT_NAMESPACE

log = logging.getLogger(__name__)

FORMAT = "1"  # the collection layout; another value means: rebuild
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
_MAX_VARCHAR = 65_535  # bytes, Milvus's longest VARCHAR
_MAX_TOPK = 16_384  # Milvus's largest limit per search
_BATCH = 2_000  # rows per insert
_TIMEOUT = 10.0  # seconds to reach the server
_ID_SCOPE_MAX = 1_000_000  # a SQL-resolved scope larger than this is refused
# Keepalive pings no more often than gRPC servers accept by default (5 minutes, and only
# during calls): pymilvus pings every 10 s, which Milvus Lite's gRPC server answers by closing
# the connection ("too_many_pings"), failing the calls in flight.
_GRPC = {"grpc.keepalive_time_ms": 360_000, "grpc.keepalive_permit_without_calls": False}


@dataclass(frozen=True)
class MilvusScope:
    """A scope resolved for Milvus: its boolean expression, and for a scope that SQL listed
    (``exact_filter_max``) the chunk ids, which the vector search then scores exactly."""

    expr: str
    ids: np.ndarray | None = None


@dataclass(frozen=True)
class MilvusTarget:
    """Where a retrieval URL points: a client URI, credentials, the collection name."""

    uri: str
    collection: str
    token: str = ""
    lite_path: str | None = None

    def shown(self) -> str:
        if self.lite_path:
            return f"milvus-lite:{self.lite_path}"
        return f"{self.uri}/{self.collection}"


def parse_url(url: str) -> MilvusTarget:
    """``milvus://HOST:PORT/NAME`` or ``milvus-lite:PATH`` (collection ``engram``)."""
    scheme, sep, rest = url.partition(":")
    scheme = scheme.lower()
    if scheme == "milvus-lite":
        path = rest.removeprefix("//") if rest.startswith("//") else rest
        if not sep or not path.strip():
            raise EngramError(f"retrieval {url!r}: write milvus-lite:PATH (a folder for its data)")
        return MilvusTarget(uri="", collection="engram", lite_path=path)
    if scheme not in ("milvus", "milvus+https", "milvus+http") or not rest.startswith("//"):
        raise EngramError(f"retrieval {url!r}: write milvus://HOST:PORT/NAME or milvus-lite:PATH")
    parts = urlsplit(url)
    try:
        host, port = parts.hostname, parts.port or 19530
    except ValueError as exc:
        raise EngramError(f"retrieval {url!r}: bad port ({exc})") from exc
    name = parts.path.strip("/")
    if not host:
        raise EngramError(f"retrieval {url!r}: no host (write milvus://HOST:PORT/NAME)")
    if not _NAME.match(name):
        raise EngramError(
            f"retrieval {url!r}: name the collection after the host (milvus://HOST:PORT/NAME); "
            "a name is letters, digits and _, not starting with a digit"
        )
    token = ""
    if parts.username:
        token = unquote(parts.username) + ":" + unquote(parts.password or "")
    http = "https" if scheme == "milvus+https" else "http"
    return MilvusTarget(uri=f"{http}://{host}:{port}", collection=name, token=token)


def connect(target: MilvusTarget) -> Any:
    """A ``MilvusClient`` for the target; a clear error when the package or server is missing."""
    try:
        from pymilvus import MilvusClient
    except ImportError as exc:
        raise EngramError(
            "the milvus retrieval needs pymilvus: pip install 'engram-store[milvus]'"
        ) from exc
    uri = target.uri
    if target.lite_path is not None:
        uri = _lite_uri(target.lite_path)
    try:
        return MilvusClient(uri=uri, token=target.token, timeout=_TIMEOUT, grpc_options=_GRPC)
    except Exception as exc:
        raise EngramError(f"cannot reach Milvus at {target.shown()}: {_first_line(exc)}") from None


_LITE_USERS: dict[str, int] = {}  # Milvus Lite folder -> retrievals of this process using it


def _lite_uri(path: str) -> str:
    try:
        from milvus_lite import server_manager_instance
    except ImportError as exc:
        raise EngramError(
            "milvus-lite: retrieval needs Milvus Lite: pip install 'engram-store[milvus]'"
        ) from exc
    uri = server_manager_instance.start_and_get_uri(path)
    if uri is not None:
        _LITE_USERS[path] = _LITE_USERS.get(path, 0) + 1
    if uri is None:
        raise EngramError(
            f"milvus-lite:{path} cannot be opened (is another process using it? serve it with "
            "`milvus-lite server --data-dir PATH` and use milvus://127.0.0.1:PORT/NAME)"
        )
    return uri


def _release_lite(path: str) -> None:
    """Stop this process's Milvus Lite server for ``path`` once nothing here uses it, so that
    another process may open the folder."""
    _LITE_USERS[path] = _LITE_USERS.get(path, 1) - 1
    if _LITE_USERS[path] <= 0:
        del _LITE_USERS[path]
        from milvus_lite import server_manager_instance

        server_manager_instance.release_server(path)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", "") or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _cut(text: str, limit: int = _MAX_VARCHAR) -> str:
    """``text`` within ``limit`` UTF-8 bytes, cut at a character boundary."""
    data = text.encode("utf-8")
    return text if len(data) <= limit else data[:limit].decode("utf-8", "ignore")


class MilvusRetrieval:
    """The ``Retrieval`` protocol answered by one Milvus collection (see the module doc)."""

    name = "milvus"

    def __init__(self, store: Store, config: Config, url: str):
        self.store, self.config, self.url = store, config, url
        self.target = parse_url(url)
        self.collection = self.target.collection
        self.client = connect(self.target)
        self.store_id = self._store_id()
        self.dim: int | None = None
        self.last_seq = 0
        self._unflushed = 0  # changes written since the last flush
        try:
            self._open_collection()
        except EngramError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise EngramError(f"Milvus at {self.target.shown()}: {_first_line(exc)}") from None

    # -- the collection -------------------------------------------------------------------
    def _store_id(self) -> str:
        """The store's identity, recorded in the collection so that two stores never share
        one by mistake (made once, kept in the store's settings)."""
        sid = self.store.get_setting("store_id")
        if not sid:
            sid = uuid.uuid4().hex
            self.store.set_setting("store_id", sid)
        return sid

    def _properties(self) -> dict[str, str]:
        info = self.client.describe_collection(self.collection)
        return dict(info.get("properties") or {})

    def _open_collection(self) -> None:
        dim = self.store.get_setting("embedding_dim")
        if not self.client.has_collection(self.collection):
            if dim:
                self._create(int(dim))
            return
        props = self._properties()
        owner = props.get("engram.store")
        if owner and owner != self.store_id:
            raise EngramError(
                f"Milvus collection {self.collection!r} holds the index of another store; "
                "name another collection for this one (milvus://HOST:PORT/OTHER)"
            )
        if props.get("engram.format") != FORMAT or (dim and props.get("engram.dim") != dim):
            log.info("Milvus collection %s has another layout; rebuilding", self.collection)
            self.client.drop_collection(self.collection)
            if dim:
                self._create(int(dim))
            return
        self.dim = int(props["engram.dim"])
        self.last_seq = int(props.get("engram.last_seq", "0"))
        self._load()

    def _load(self) -> None:
        """Load the collection for searching (a restarted Milvus keeps it released)."""
        state = self.client.get_load_state(self.collection).get("state")
        if "Loaded" not in str(state):
            self.client.load_collection(self.collection)

    def _create(self, dim: int) -> None:
        from pymilvus import DataType, Function, FunctionType

        s = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        s.add_field("id", DataType.INT64, is_primary=True)
        s.add_field(
            "terms",
            DataType.VARCHAR,
            max_length=_MAX_VARCHAR,
            enable_analyzer=True,
            analyzer_params={"tokenizer": "standard"},
        )
        s.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        s.add_field("dense", DataType.FLOAT_VECTOR, dim=dim)
        s.add_field("namespace", DataType.VARCHAR, max_length=256, is_partition_key=True)
        for name in ("doc_key", "source", "title"):
            s.add_field(name, DataType.VARCHAR, max_length=_MAX_VARCHAR)
        s.add_field("created_at", DataType.DOUBLE)
        for name in ("mt", "mv", "mx", "ma_n", "ma_s"):
            s.add_field(name, DataType.JSON)
        s.add_function(
            Function(
                name="bm25",
                function_type=FunctionType.BM25,
                input_field_names=["terms"],
                output_field_names=["sparse"],
            )
        )
        index = self.client.prepare_index_params()
        index.add_index(
            field_name="dense",
            index_type="HNSW",
            metric_type="IP",
            params={"M": self.config.hnsw_m, "efConstruction": self.config.hnsw_ef_construction},
        )
        index.add_index(
            field_name="sparse",
            index_type="SPARSE_INVERTED_INDEX",
            metric_type="BM25",
            params={"bm25_k1": self.config.bm25_k1, "bm25_b": self.config.bm25_b},
        )
        self.client.create_collection(
            self.collection, schema=s, index_params=index, consistency_level="Strong"
        )
        self.dim, self.last_seq = dim, 0
        self._set_watermark(0)

    def _set_watermark(self, seq: int) -> None:
        self.client.alter_collection_properties(
            self.collection,
            properties={
                "engram.store": self.store_id,
                "engram.format": FORMAT,
                "engram.dim": str(self.dim),
                "engram.last_seq": str(seq),
            },
        )
        self.last_seq = seq

    def set_dim(self, dim: int) -> None:
        if self.dim is None:
            self._create(dim)
        elif self.dim != dim:
            raise EmbeddingMismatchError(
                f"Milvus collection {self.collection!r} holds {self.dim}-dim vectors, not {dim}"
            )

    def close(self) -> None:
        client, self.client = getattr(self, "client", None), None
        if client is not None:
            with suppress(Exception):  # closing a dead connection
                client.close()
            if self.target.lite_path is not None:
                _release_lite(self.target.lite_path)

    # -- queries --------------------------------------------------------------------------
    def scope(self, namespaces: Sequence[str] | None, where: dict | None) -> Scope:
        """Resolved to a Milvus boolean expression (None: everything)."""
        if namespaces is not None and not namespaces:
            return NOTHING
        only_default = namespaces is not None and list(namespaces) == [DEFAULT_NAMESPACE]
        if only_default and self.store.namespace_count() <= 1:
            namespaces = None  # the only namespace: no condition to check per row
        if not where and namespaces is None:
            return EVERYTHING
        names = tuple(namespaces) if namespaces is not None else None
        in_names = TRUE
        if names is not None:
            in_names = f"namespace in [{', '.join(literal(n) for n in names)}]"
        expr, ids = in_names, None
        if where:
            condition, ids = self._filter_expression(names, where)
            expr = and_(in_names, condition)
        if expr == FALSE:
            return NOTHING
        return Scope(names, where, resolved=None if expr == TRUE else MilvusScope(expr, ids))

    def _filter_expression(
        self, names: tuple[str, ...] | None, where: dict
    ) -> tuple[str, np.ndarray | None]:
        """``where`` as a Milvus expression, with the chunk ids when SQL listed them: the ids
        when they are few (``exact_filter_max``; a primary-key list is the cheapest filter
        for any Milvus), else the compiled typed-metadata expression (or the ids, for a
        filter it cannot express)."""
        limit = int(self.config.exact_filter_max)
        compiled: str | None = None
        try:
            compiled = compile_filter(where)
        except Unsupported as why:
            log.debug("filter %s resolved in SQL (%s)", where, why)
        if compiled is not None and limit <= 0:
            return compiled, None
        ids = self.store.allowed_ids(list(names) if names else None, where)
        few = len(ids) <= limit
        if compiled is None or few:
            return self._id_list(ids), ids if few else None
        return compiled, None

    @staticmethod
    def _id_list(ids: np.ndarray) -> str:
        if not len(ids):
            return FALSE
        if len(ids) > _ID_SCOPE_MAX:
            raise EngramError(
                f"this filter selects {len(ids)} chunks by id; Milvus takes at most "
                f"{_ID_SCOPE_MAX} that way: narrow it, or use a condition on metadata"
            )
        return f"id in [{', '.join(str(int(i)) for i in ids)}]"

    def _search(self, field: str, data: Any, n: int, scope: Scope, params: dict) -> Candidates:
        if n <= 0 or self.dim is None:
            return []
        found = self.client.search(
            self.collection,
            data=[data],
            anns_field=field,
            limit=min(n, _MAX_TOPK),
            filter=scope.resolved.expr if scope.resolved is not None else "",
            output_fields=["id"],
            search_params=params,
            consistency_level="Strong",
        )
        return [(int(hit["id"]), float(hit["distance"])) for hit in found[0]]

    def keyword(self, query: str, n: int, scope: Scope) -> Candidates:
        """Top ``n`` by BM25 over the chunk's analysed terms (any term matches)."""
        terms = list(dict.fromkeys(analyze(query, self.config.language)))
        if not terms:
            return []
        hits = self._search("sparse", " ".join(terms), n, scope, {"metric_type": "BM25"})
        # BM25 scores are positive; Milvus Lite reports them negated (a distance)
        return [(i, abs(s)) for i, s in hits]

    def vector(self, vector: np.ndarray, n: int, scope: Scope) -> Candidates:
        """Top ``n`` by inner product (HNSW, ``ef`` at least ``n``)."""
        q = np.ascontiguousarray(vector, dtype=np.float32).ravel()
        if self.dim is not None and q.shape[0] != self.dim:
            raise EmbeddingMismatchError(
                f"query has {q.shape[0]} dims, the Milvus collection holds {self.dim}"
            )
        listed: MilvusScope | None = scope.resolved
        if listed is not None and listed.ids is not None:
            return self._exact(q, n, listed.ids)
        ef = max(int(self.config.hnsw_ef_search), min(n, _MAX_TOPK))
        params = {"metric_type": "IP", "params": {"ef": ef}}
        return self._search("dense", q.tolist(), n, scope, params)

    def _exact(self, q: np.ndarray, n: int, ids: np.ndarray) -> Candidates:
        """Top ``n`` of a listed scope by inner product over its vectors in SQL (exact, as
        the embedded store searches small scopes: a graph walked under a narrow filter
        misses neighbours)."""
        if n <= 0 or not len(ids):
            return []
        found, mat = self.store.chunk_vectors(ids.tolist())
        if not len(found):
            return []
        ids, scores = top_k(np.asarray(found, dtype=np.int64), mat @ q, n)
        return [(int(i), float(s)) for i, s in zip(ids, scores, strict=True)]

    def vectors_for(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        """From SQL, the source of truth (the same vectors Milvus holds)."""
        found, mat = self.store.chunk_vectors(ids)
        return {int(i): mat[p] for p, i in enumerate(found)}

    def stats(self) -> dict[str, Any]:
        rows = 0
        if self.dim is not None:
            got = self.client.query(
                self.collection, filter="", output_fields=["count(*)"], consistency_level="Strong"
            )
            rows = int(got[0]["count(*)"]) if got else 0
        where = self.target.shown()
        common = {"rows": rows, "deleted": 0, "last_change": self.last_seq, "at": where}
        return {
            "keyword": {**common, "index": "milvus BM25 function (sparse inverted index)"},
            "vector": {**common, "index": "milvus HNSW (inner product)", "dim": self.dim},
        }

    # -- upkeep: catch up from the changelog ----------------------------------------------
    def save(self) -> None:
        """Seal the rows written since the last flush (a bulk load flushes once, here)."""
        if self._unflushed and self.client is not None and self.dim is not None:
            self._flush()

    def sync(self, autosave: bool = True) -> int:
        """Apply the store's changes after the watermark; returns changes applied."""
        head = self.store.max_seq()
        if self.dim is None:
            dim = self.store.get_setting("embedding_dim")
            if not dim:
                return 0
            self._create(int(dim))
        if head > self.last_seq:  # another process may have moved it
            self.last_seq = int(self._properties().get("engram.last_seq", "0"))
        if self.last_seq > head:  # the store was replaced under the collection
            log.warning("Milvus collection %s is ahead of its store; rebuilding", self.collection)
            return self.reindex()["vector"]
        if self.last_seq == 0 and head > 0:
            return self._rebuild()
        applied = 0
        while self.last_seq < head:
            changes = self.store.changes_since(self.last_seq, limit=_BATCH * 5)
            if not changes:
                break
            self._apply(changes)
            applied += len(changes)
        self._unflushed += applied
        if autosave and self._unflushed:
            self._flush()
        return applied

    def _flush(self) -> None:
        """Seal what was written into indexed segments (Milvus Lite otherwise rescans its
        unsealed rows on every search)."""
        self.client.flush(self.collection)
        self._unflushed = 0

    def _apply(self, changes: list[tuple[int, str, int]]) -> None:
        ids, removed = net_changes(changes)
        if removed:
            self.client.delete(self.collection, ids=removed)
        for start in range(0, len(ids), _BATCH):
            rows = self._rows(ids[start : start + _BATCH])
            if rows:
                self.client.upsert(self.collection, rows)
        self._set_watermark(changes[-1][0])

    def _rows(self, ids: Sequence[int], vectors: dict[int, np.ndarray] | None = None) -> list:
        """Milvus rows of the chunks among ``ids`` that still exist in the store."""
        hits = self.store.hit_rows(ids)
        if vectors is None:
            found, mat = self.store.chunk_vectors(list(hits))
            vectors = {int(i): mat[p] for p, i in enumerate(found)}
        rows = []
        for cid, hit in hits.items():
            vec = vectors.get(cid)
            if vec is None:
                continue
            if len(vec) != self.dim:
                raise EmbeddingMismatchError(
                    f"store holds {len(vec)}-dim vectors, Milvus collection expects {self.dim}"
                )
            metadata = hit["metadata"] if isinstance(hit["metadata"], dict) else {}
            rows.append(
                {
                    "id": int(cid),
                    "terms": _cut(" ".join(analyze(hit["text"], self.config.language))),
                    "dense": np.asarray(vec, dtype=np.float32).tolist(),
                    "namespace": hit["namespace"],
                    "doc_key": _cut(hit["doc_id"]),
                    "source": _cut(hit["source"] or ""),
                    "title": _cut(hit["title"] or ""),
                    "created_at": float(hit["created_at"]),
                    **typed_metadata(metadata),
                }
            )
        return rows

    def _rebuild(self) -> int:
        """Fill the (empty) collection from the store; the watermark is the head read first,
        so changes made meanwhile are applied again by the next sync (harmlessly)."""
        head = self.store.max_seq()
        n = 0
        for batch in self.store.iter_chunks(batch=_BATCH):
            vectors = {int(cid): vec for cid, _, vec in batch}
            rows = self._rows(list(vectors), vectors)
            if rows:  # an upsert: rows of a rebuild cut short may be there already
                self.client.upsert(self.collection, rows)
                n += len(rows)
        self._flush()
        self._set_watermark(head)
        return n

    def reindex(self) -> dict[str, int]:
        """Drop the collection and fill it again from the store."""
        if self.client.has_collection(self.collection):
            self.client.drop_collection(self.collection)
        self.dim, self.last_seq = None, 0
        dim = self.store.get_setting("embedding_dim")
        if not dim:
            return {"keyword": 0, "vector": 0}
        self._create(int(dim))
        n = self._rebuild()
        return {"keyword": n, "vector": n}
