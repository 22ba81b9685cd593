"""Ingestion: load documents from files, folders, streams and Python objects; chunk text."""

from engram.ingest.chunking import approx_tokens, chunk_text, split_sentences
from engram.ingest.loaders import (
    DEFAULT_MAX_BYTES,
    FORMATS,
    load_path,
    load_records,
    load_stream,
    parse_front_matter,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "FORMATS",
    "approx_tokens",
    "chunk_text",
    "load_path",
    "load_records",
    "load_stream",
    "parse_front_matter",
    "split_sentences",
]
