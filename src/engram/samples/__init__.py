"""A small built-in corpus for demos and tests: Markdown notes with ``topic``/``year`` metadata
and one three-page PDF (``makerspace-handbook.pdf``, written by ``scripts/make_sample_pdf.py``),
loaded as one document per page with sources such as ``makerspace-handbook.pdf#page=2``.

Loading the folder with :func:`engram.ingest.load_path` also picks up ``questions.txt`` as a
plain-text document; use :func:`load_samples` to get only the corpus.
"""

from __future__ import annotations

from pathlib import Path

from engram.types import Document

SAMPLES_DIR = Path(__file__).resolve().parent
"""Folder holding the sample documents and ``questions.txt``."""


PDF_METADATA = {"topic": "makerspace", "year": 2025}
"""Metadata given to the sample PDF's pages (the Markdown notes carry theirs in front matter)."""


def sample_paths() -> list[Path]:
    """Paths of the sample documents (Markdown notes and the PDF), sorted."""
    return sorted([*SAMPLES_DIR.glob("*.md"), *SAMPLES_DIR.glob("*.pdf")])


def load_samples() -> list[Document]:
    """The sample corpus as Documents (ids are absolute paths, with ``#page=N`` for the PDF)."""
    from engram.ingest import load_path

    docs = []
    for path in sample_paths():
        for doc in load_path(path):
            if path.suffix == ".pdf":
                doc.metadata.update(PDF_METADATA)
            docs.append(doc)
    return docs


def sample_questions() -> list[str]:
    """Demo questions, each answerable from one sample; the last is NOT answerable from them."""
    text = (SAMPLES_DIR / "questions.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]
