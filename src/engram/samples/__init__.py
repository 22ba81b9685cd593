"""A small built-in corpus for demos and tests: Markdown notes with ``topic``/``year`` metadata.

Loading the folder with :func:`engram.ingest.load_path` also picks up ``questions.txt`` as a
plain-text document; use :func:`load_samples` to get only the corpus.
"""

from __future__ import annotations

from pathlib import Path

from engram.types import Document

SAMPLES_DIR = Path(__file__).resolve().parent
"""Folder holding the sample documents and ``questions.txt``."""


def sample_paths() -> list[Path]:
    """Paths of the sample Markdown documents, sorted."""
    return sorted(SAMPLES_DIR.glob("*.md"))


def load_samples() -> list[Document]:
    """The sample corpus as Documents (ids are absolute paths)."""
    from engram.ingest import load_path

    return [doc for path in sample_paths() for doc in load_path(path)]


def sample_questions() -> list[str]:
    """Demo questions, each answerable from one sample; the last is NOT answerable from them."""
    text = (SAMPLES_DIR / "questions.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]
