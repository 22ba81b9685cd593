"""Reads of chunks and their vectors (ids, texts, vectors, rebuild batches); part of
``SqlStore``, written once for both dialects (the hooks are ``SqlStore``'s)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np


class ChunkReads:
    """Chunk rows read by id, or all of them in id order."""

    P = "?"
    _vector_column = "vector"

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        raise NotImplementedError

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        raise NotImplementedError

    def _in(self, column: str, values: Sequence[Any], kind: str = "bigint") -> Iterator[tuple]:
        raise NotImplementedError

    def _vector(self, value: Any) -> np.ndarray:
        raise NotImplementedError

    def chunk_ids(self) -> np.ndarray:
        """Sorted ids of every chunk."""
        rows = self._all("SELECT id FROM chunks ORDER BY id")
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def count_chunks(self) -> int:
        return int(self._one("SELECT count(*) FROM chunks"))

    def chunks_without_vector(self) -> int:
        return int(
            self._one(
                "SELECT count(*) FROM chunks c WHERE NOT EXISTS "
                "(SELECT 1 FROM vectors v WHERE v.chunk_id = c.id)"
            )
        )

    def chunk_texts(self, ids: Sequence[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        for c, p in self._in("id", [int(i) for i in ids]):
            out.update(self._all(f"SELECT id, text FROM chunks WHERE {c}", p))
        return out

    def existing(self, ids: Sequence[int]) -> set[int]:
        out: set[int] = set()
        for c, p in self._in("id", [int(i) for i in ids]):
            out.update(r[0] for r in self._all(f"SELECT id FROM chunks WHERE {c}", p))
        return out

    def chunk_vectors(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, matrix)`` of the chunks among ``ids`` that still exist, in id order."""
        rows: list[tuple] = []
        for c, p in self._in("chunk_id", [int(i) for i in ids]):
            rows += self._all(f"SELECT chunk_id, {self._vector_column} FROM vectors WHERE {c}", p)
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        rows.sort(key=lambda r: r[0])
        mat = np.vstack([self._vector(r[1]) for r in rows]).astype(np.float32, copy=False)
        return np.array([r[0] for r in rows], dtype=np.int64), mat

    def iter_chunks(self, batch: int = 5000) -> Iterator[list[tuple[int, str, np.ndarray]]]:
        """Every chunk with its text and vector, in id order, in batches (for rebuilds)."""
        last = 0
        while True:
            rows = self._all(
                f"SELECT c.id, c.text, v.{self._vector_column} FROM chunks c JOIN vectors v "
                f"ON v.chunk_id = c.id WHERE c.id > {self.P} ORDER BY c.id LIMIT {self.P}",
                (last, batch),
            )
            if not rows:
                return
            yield [(r[0], r[1], self._vector(r[2])) for r in rows]
            last = rows[-1][0]
