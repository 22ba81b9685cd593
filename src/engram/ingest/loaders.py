"""Turn files, folders, streams and Python objects into :class:`~engram.types.Document`.

Supported formats (by file extension):

* plain text: ``.txt .text .rst .log``
* Markdown: ``.md .markdown`` (``---`` front matter of ``key: value`` lines -> metadata,
  ``title`` key or first ``# heading`` -> title)
* HTML: ``.html .htm`` (script/style/nav dropped, block structure kept, ``<title>`` -> title)
* records: ``.json`` (an object or a list of objects), ``.jsonl`` (one object per line),
  ``.csv`` (header row with a ``text`` or ``content`` column)
* documents: ``.pdf`` (one Document per page, source ``file.pdf#page=N``) and ``.docx`` (one per
  heading section, source ``file.docx#heading=SLUG``); see :mod:`engram.ingest.documents`

Records have a string ``text`` (``content`` is accepted too), optional ``title``, ``id``,
``metadata`` (an object) and ``source``; any other top-level field goes into metadata.

Ids: a text-like file's id is its resolved absolute path; a record's id is its ``id`` field, else
``"{absolute path}#{line}"`` (JSONL/CSV: 1-based line where the record starts) or
``"{absolute path}#{index}"`` (JSON: 0-based position). ``source`` is the path as given/walked.
Stream and Python inputs have no stable path: documents without an explicit id get ``id=None``.

Every problem raises :class:`~engram.errors.IngestError` naming the file (and line or byte
offset); with ``on_error="skip"`` bad records and bad files are passed to ``on_skip`` instead.
"""

from __future__ import annotations

import codecs
import io
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Literal

from engram.errors import IngestError
from engram.ingest.formats import (
    _csv,
    _html,
    _json,
    _jsonl,
    _markdown,
    _plain,
    _record,
    _Reporter,
    _type_name,
    parse_front_matter,
)
from engram.types import Document

__all__ = [
    "DEFAULT_MAX_BYTES",
    "FORMATS",
    "load_path",
    "load_records",
    "load_stream",
    "parse_front_matter",
]

log = logging.getLogger("engram.ingest")

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
"""Largest file read by default (20 MB; ``--max-file-mb`` on the command line)."""

FORMATS: dict[str, str] = {
    ".txt": "text",
    ".text": "text",
    ".rst": "text",
    ".log": "text",
    ".md": "md",
    ".markdown": "md",
    ".html": "html",
    ".htm": "html",
    ".json": "json",
    ".jsonl": "jsonl",
    ".csv": "csv",
    ".pdf": "pdf",
    ".docx": "docx",
}
"""File extension -> format name understood by :func:`load_stream`."""

OnError = Literal["raise", "skip"]
OnSkip = Callable[[IngestError], None]
OnIgnored = Callable[[str, str], None]

_BINARY_PROBE = 8192
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_SUPPORTED = " ".join(FORMATS)
_MB = 1024 * 1024


# ---------------------------------------------------------------------------------------------
# Decoding


def _check_binary(head: bytes, source: str) -> None:
    nul = head.find(b"\0", 0, _BINARY_PROBE)
    if nul >= 0:
        raise IngestError(
            f"looks like a binary file (NUL byte at byte offset {nul}), not UTF-8 text; "
            f"supported formats: {_SUPPORTED}",
            source,
        )


def _utf8_error(
    exc: UnicodeDecodeError, data: bytes, source: str, base: int = 0, line: int | None = None
) -> IngestError:
    offset = base + exc.start
    if line is None:
        line = data.count(b"\n", 0, exc.start) + 1
    bad = data[exc.start : exc.start + 4].hex(" ")
    return IngestError(
        f"invalid UTF-8 at byte offset {offset} (bytes {bad}): {exc.reason}; re-encode the "
        f"file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 FILE > FILE.utf8`)",
        source,
        line,
    )


def _decode(data: bytes, source: str) -> str:
    """Decode a whole file: UTF-8 (BOM stripped) or UTF-16 with a BOM; newlines normalized."""
    if data.startswith(_UTF16_BOMS):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise IngestError(
                f"invalid UTF-16 at byte offset {exc.start}: {exc.reason}; re-encode the file "
                "as UTF-8",
                source,
            ) from None
    else:
        _check_binary(data, source)
        bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
        try:
            text = data[bom:].decode("utf-8") if bom else data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _utf8_error(exc, data[bom:], source, base=bom) from None
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def _size_error(size: int, limit: int, source: str) -> IngestError:
    return IngestError(
        f"file is {size / _MB:.1f} MB ({size} bytes), over the {limit / _MB:g} MB limit; "
        "raise the limit with --max-file-mb (max_bytes= in Python) or split the file",
        source,
    )


def _read_file(path: Path, source: str, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise _size_error(size, max_bytes, source)
        with path.open("rb") as fh:
            return fh.read()
    except OSError as exc:
        raise IngestError(f"cannot read file: {exc.strerror or exc}", source) from None


def _read_stream(stream: IO[Any], source: str, max_bytes: int) -> str:
    try:
        data = stream.read(max_bytes + 1)
    except UnicodeDecodeError as exc:
        raise IngestError(f"input is not valid text: {exc}", source) from None
    if len(data) > max_bytes:
        raise IngestError(
            f"input is over the {max_bytes / _MB:g} MB limit; raise the limit with "
            "--max-file-mb (max_bytes= in Python)",
            source,
        )
    if isinstance(data, str):
        data = data.removeprefix("\ufeff")
        return data.replace("\r\n", "\n").replace("\r", "\n") if "\r" in data else data
    return _decode(data, source)


def _byte_lines(head: bytes, fh: IO[bytes]) -> Iterator[bytes]:
    """Lines of ``head`` followed by the rest of ``fh`` (binary), split on ``\\n``."""
    carry = b""
    for line in io.BytesIO(head):
        if line.endswith(b"\n"):
            yield line
        else:
            carry = line
    if carry:
        yield carry + fh.readline()
    yield from fh


def _text_lines(fh: IO[bytes], source: str, report: _Reporter) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of a binary stream, decoded line by line (streaming)."""
    head = fh.read(_BINARY_PROBE)
    if head.startswith(_UTF16_BOMS):  # rare: decode the whole thing
        text = _decode(head + fh.read(), source)
        yield from enumerate(text.split("\n"), 1)
        return
    _check_binary(head, source)
    offset = 0
    if head.startswith(codecs.BOM_UTF8):
        head = head[len(codecs.BOM_UTF8) :]
        offset = len(codecs.BOM_UTF8)
    for lineno, raw in enumerate(_byte_lines(head, fh), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            report(_utf8_error(exc, raw, source, base=offset, line=lineno))
            line = None
        offset += len(raw)
        if line is not None:
            yield lineno, line.rstrip("\r\n")


# ---------------------------------------------------------------------------------------------
# Public API


def _parse(
    fmt: str, text: str, source: str, doc_id: str | None, report: _Reporter
) -> Iterator[Document]:
    if fmt == "text":
        return _plain(text, source, doc_id)
    if fmt == "md":
        return _markdown(text, source, doc_id)
    if fmt == "html":
        return _html(text, source, doc_id)
    if fmt == "json":
        return _json(text, source, doc_id, report)
    if fmt == "csv":
        return _csv(text, source, doc_id, report)
    if fmt == "jsonl":
        return _jsonl(enumerate(text.split("\n"), 1), source, doc_id, report)
    raise ValueError(f"unknown format {fmt!r}; expected one of: {', '.join(_STREAM_FORMATS)}")


_STREAM_FORMATS = ("text", "md", "html", "json", "jsonl", "csv")


def _load_file(path: Path, fmt: str, max_bytes: int, report: _Reporter) -> Iterator[Document]:
    source = str(path)
    doc_id = str(path.resolve())
    if fmt in ("pdf", "docx"):
        from engram.ingest.documents import load_docx, load_pdf

        loader = load_pdf if fmt == "pdf" else load_docx
        yield from loader(_read_file(path, source, max_bytes), path, source, doc_id)
        return
    if fmt == "jsonl":
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise _size_error(size, max_bytes, source)
            fh = path.open("rb")
        except OSError as exc:
            raise IngestError(f"cannot read file: {exc.strerror or exc}", source) from None
        with fh:
            yield from _jsonl(_text_lines(fh, source, report), source, doc_id, report)
        return
    text = _decode(_read_file(path, source, max_bytes), source)
    yield from _parse(fmt, text, source, doc_id, report)


def _walk(root: Path, recursive: bool, on_ignored: OnIgnored) -> Iterator[Path]:
    """Files under ``root`` with a known extension, sorted; every other entry is passed to
    ``on_ignored(path, reason)``: hidden files and folders, unsupported types, subfolders
    when not ``recursive``."""

    def fail(exc: OSError) -> None:
        raise IngestError(f"cannot read folder: {exc.strerror or exc}", str(exc.filename or root))

    for dirpath, dirnames, filenames in os.walk(root, onerror=fail):
        kept = []
        for d in sorted(dirnames):
            if d.startswith("."):
                on_ignored(str(Path(dirpath, d)) + os.sep, "hidden folder")
            elif not recursive:
                on_ignored(str(Path(dirpath, d)) + os.sep, "subfolder (not recursive)")
            else:
                kept.append(d)
        dirnames[:] = kept
        for name in sorted(filenames):
            suffix = Path(name).suffix.lower()
            if name.startswith("."):
                on_ignored(str(Path(dirpath, name)), "hidden file")
            elif suffix not in FORMATS:
                kind = f"'{suffix}'" if suffix else "without an extension"
                on_ignored(str(Path(dirpath, name)), f"unsupported file type {kind}")
            else:
                yield Path(dirpath, name)


def _log_ignored(path: str, reason: str) -> None:
    log.info("not ingested: %s (%s)", path, reason)


def load_path(
    path: str | os.PathLike[str],
    *,
    recursive: bool = True,
    max_bytes: int = DEFAULT_MAX_BYTES,
    on_error: OnError = "raise",
    on_skip: OnSkip | None = None,
    on_ignored: OnIgnored | None = None,
) -> Iterator[Document]:
    """Documents from a file or a folder (walked in sorted order).

    In folders, hidden files/folders and unknown extensions are not read: each is passed to
    ``on_ignored(path, reason)`` (default: logged at INFO level); an explicit
    file must have a supported extension (files without one are read as plain text). Files over
    ``max_bytes`` are refused. With ``on_error="skip"``, bad records and bad files are passed to
    ``on_skip`` (default: logged as warnings) and loading continues; with ``"raise"`` the first
    :class:`IngestError` propagates. A missing path or unsupported file raises at once (when
    called); problems inside files surface while iterating.
    """
    report = _Reporter(on_error, on_skip)
    p = Path(path)
    if p.is_dir():
        files: Iterable[tuple[Path, str]] = (
            (f, FORMATS[f.suffix.lower()]) for f in _walk(p, recursive, on_ignored or _log_ignored)
        )
    elif p.is_file():
        suffix = p.suffix.lower()
        if suffix and suffix not in FORMATS:
            raise IngestError(f"unsupported file type '{suffix}'; supported: {_SUPPORTED}", str(p))
        files = [(p, FORMATS.get(suffix, "text"))]
    elif p.exists():
        raise IngestError("not a regular file or folder", str(p))
    else:
        raise IngestError("no such file or folder", str(p))
    return _load_files(files, max_bytes, report)


EMPTY_REASON = "no text to add (empty or whitespace only)"


def _load_files(
    files: Iterable[tuple[Path, str]], max_bytes: int, report: _Reporter
) -> Iterator[Document]:
    for file, fmt in files:
        before, found = report.count, 0
        try:
            for doc in _load_file(file, fmt, max_bytes, report):
                found += 1
                yield doc
        except IngestError as exc:
            report(exc)
        if not found and report.count == before:  # nothing read and nothing said why
            report.notice(IngestError(EMPTY_REASON, str(file)))


def load_stream(
    stream: IO[bytes] | IO[str],
    name: str = "stdin",
    format: str = "text",
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    on_error: OnError = "raise",
    on_skip: OnSkip | None = None,
) -> Iterator[Document]:
    """Documents from an open binary or text stream (e.g. ``sys.stdin.buffer``).

    ``format`` is one of ``text md html json jsonl csv``; ``name`` is used as the source. JSONL
    is read line by line; other formats read at most ``max_bytes``. Documents without an
    explicit id get ``id=None`` (a stream has no stable path).
    """
    if format not in _STREAM_FORMATS:
        raise ValueError(
            f"unknown format {format!r}; expected one of: {', '.join(_STREAM_FORMATS)}"
        )
    report = _Reporter(on_error, on_skip)
    return _load_stream(stream, name, format, max_bytes, report)


def _load_stream(
    stream: IO[Any], name: str, format: str, max_bytes: int, report: _Reporter
) -> Iterator[Document]:
    probe = stream.read(0)
    if format == "jsonl":
        lines: Iterable[tuple[int, str]]
        if isinstance(probe, str):
            lines = (
                (n, (line.removeprefix("\ufeff") if n == 1 else line).rstrip("\r\n"))
                for n, line in enumerate(stream, 1)
            )
        else:
            lines = _text_lines(stream, name, report)
        try:
            yield from _jsonl(lines, name, None, report)
        except UnicodeDecodeError as exc:
            raise IngestError(f"input is not valid text: {exc}", name) from None
        return
    text = _read_stream(stream, name, max_bytes)
    yield from _parse(format, text, name, None, report)


def load_records(
    items: Iterable[Document | dict[str, Any] | str],
    source: str = "python",
    *,
    on_error: OnError = "raise",
    on_skip: OnSkip | None = None,
) -> Iterator[Document]:
    """Documents from Python objects: Documents, record dicts (like JSON records) or strings.

    Empty or whitespace-only texts are dropped; Documents without a ``source`` get ``source``.
    Items without an explicit id get ``id=None``.
    """
    report = _Reporter(on_error, on_skip)
    if isinstance(items, (str, dict, Document)):
        items = [items]
    return _load_records(items, source, report)


def _load_records(
    items: Iterable[Document | dict[str, Any] | str], source: str, report: _Reporter
) -> Iterator[Document]:
    for index, item in enumerate(items):
        where = f"item {index}"
        try:
            if isinstance(item, Document):
                if not isinstance(item.text, str):
                    raise IngestError(
                        f"{where}: Document.text must be a string, got {_type_name(item.text)}",
                        source,
                    )
                if not item.text.strip():
                    continue
                if not item.source:
                    item = Document(item.text, item.id, source, item.title, dict(item.metadata))
                yield item
            elif isinstance(item, str):
                if item.strip():
                    yield Document(item, None, source)
            else:
                doc = _record(item, source, None, where, None)
                if doc is not None:
                    yield doc
        except IngestError as exc:
            report(exc)
