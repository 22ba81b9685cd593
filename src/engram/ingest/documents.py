"""PDF and Word (``.docx``) files as Documents, one per page or per heading section.

Each Document's ``source`` carries an anchor into the file, so a citation points inside it:
``handbook.pdf#page=3`` (1-based page) or ``report.docx#heading=travel-costs`` (the section's
heading as a slug; text before the first heading has no anchor). Ids are the file's absolute path
with the same anchor. ``pypdf`` reads PDFs and ``python-docx`` reads Word files; without them a
file is refused with an install hint.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engram.errors import IngestError
from engram.types import Document

_SLUG = re.compile(r"[^a-z0-9]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def _title_of(path: Path, title: Any) -> str:
    text = " ".join(str(title).split()) if title else ""
    return text or path.stem


# -- PDF --------------------------------------------------------------------------------------
def _pdf_reader(data: bytes, source: str) -> Any:
    try:
        import pypdf
    except ImportError:
        raise IngestError(
            "reading PDF files needs pypdf: pip install pypdf (or Engram's 'files' extra)", source
        ) from None
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise IngestError("the PDF is encrypted; save an unencrypted copy", source)
        return reader
    except IngestError:
        raise
    except Exception as exc:  # pypdf raises many kinds for damaged files
        raise IngestError(f"cannot read PDF: {exc}", source) from None


def load_pdf(data: bytes, path: Path, source: str, doc_id: str) -> Iterator[Document]:
    """One Document per page that has text; metadata ``page`` (1-based) and ``pages``."""
    reader = _pdf_reader(data, source)
    try:
        info = reader.metadata
        pages = list(reader.pages)
    except Exception as exc:
        raise IngestError(f"cannot read PDF: {exc}", source) from None
    title = _title_of(path, info.title if info else None)
    found = 0
    for number, page in enumerate(pages, 1):
        try:
            text = page.extract_text() or ""
        except Exception as exc:
            raise IngestError(f"cannot read the text of page {number}: {exc}", source) from None
        text = _BLANK_LINES.sub("\n\n", text.replace("\r\n", "\n")).strip()
        if not text:
            continue
        found += 1
        anchor = f"#page={number}"
        meta = {"page": number, "pages": len(pages), "file": source, "format": "pdf"}
        yield Document(text, doc_id + anchor, source + anchor, title, meta)
    if pages and not found:
        raise IngestError("the PDF has no extractable text (a scan? run OCR on it first)", source)


# -- DOCX -------------------------------------------------------------------------------------
def _docx_document(data: bytes, source: str) -> Any:
    try:
        import docx
    except ImportError:
        raise IngestError(
            "reading Word files needs python-docx: pip install python-docx "
            "(or Engram's 'files' extra)",
            source,
        ) from None
    try:
        return docx.Document(io.BytesIO(data))
    except Exception as exc:  # a zip that is not a Word document, a damaged file
        raise IngestError(f"cannot read Word document: {exc}", source) from None


def _heading_level(style_name: str) -> int | None:
    """1 for ``Title``/``Heading 1``, n for ``Heading n``; None for body styles."""
    if style_name == "Title":
        return 1
    m = re.fullmatch(r"Heading (\d)", style_name)
    return int(m.group(1)) if m else None


def _blocks(document: Any) -> Iterator[tuple[int | None, str]]:
    """``(heading level or None, text)`` for each paragraph and table row, in order."""
    from docx.table import Table

    for block in document.iter_inner_content():
        if isinstance(block, Table):
            for row in block.rows:
                cells = list(dict.fromkeys(c.text.strip() for c in row.cells if c.text.strip()))
                if cells:
                    yield None, " | ".join(cells)
            continue
        text = block.text.strip()
        if text:
            style = block.style.name if block.style is not None else ""
            yield _heading_level(style), text


def _slug(heading: str, used: dict[str, int]) -> str:
    base = _SLUG.sub("-", heading.lower()).strip("-")[:80] or "section"
    used[base] = used.get(base, 0) + 1
    return base if used[base] == 1 else f"{base}-{used[base]}"


def load_docx(data: bytes, path: Path, source: str, doc_id: str) -> Iterator[Document]:
    """One Document per heading section (headings above it lead its text)."""
    document = _docx_document(data, source)
    title = _title_of(path, document.core_properties.title)
    stack: list[tuple[int, str]] = []  # the open headings, outermost first
    body: list[str] = []
    used: dict[str, int] = {}
    section = 0

    def flush() -> Iterator[Document]:
        nonlocal section
        if not body:
            return
        heading = stack[-1][1] if stack else ""
        anchor = f"#heading={_slug(heading, used)}" if heading else ""
        text = "\n\n".join([*(h for _, h in stack), "\n".join(body)])
        meta = {"heading": heading, "section": section, "file": source, "format": "docx"}
        section += 1
        yield Document(text, doc_id + anchor, source + anchor, title, meta)
        body.clear()

    for level, text in _blocks(document):
        if level is None:
            body.append(text)
            continue
        yield from flush()
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, text))
    yield from flush()
