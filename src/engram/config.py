"""One config object for a Memory; every default works offline on a laptop."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class Config:
    # ingest
    chunk_tokens: int = 200  # capped at the embedder's input limit
    chunk_overlap: int = 32
    embed_batch: int = 64
    max_file_mb: float = 20.0
    # recall
    mode: str = "hybrid"  # hybrid | keyword | vector
    fusion: str = "blend"  # blend | rrf
    alpha: float = 0.5  # blend weight of vectors: 0 keywords only, 1 vectors only
    rrf_k: int = 60
    candidates: int = 100  # per retriever, before fusion
    bm25_k1: float = 0.9
    bm25_b: float = 0.4
    language: str = "english"
    # models
    embedder: str = "local"
    embedder_options: dict[str, Any] = field(default_factory=dict)
    threads: int | None = None
    # derived index housekeeping
    save_every_changes: int = 20_000
    compact_deleted_share: float = 0.25

    def replace(self, **changes: Any) -> Config:
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise TypeError(f"unknown config option(s): {', '.join(sorted(unknown))}")
        return Config(**{**asdict(self), **changes})
