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
import csv
import io
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import IO, Any, Literal

from engram.errors import IngestError
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
# Error handling


class _Reporter:
    """Raises or reports an :class:`IngestError` depending on ``on_error``."""

    def __init__(self, on_error: str, on_skip: OnSkip | None):
        if on_error not in ("raise", "skip"):
            raise ValueError(f'on_error must be "raise" or "skip", got {on_error!r}')
        self.skip = on_error == "skip"
        self.on_skip = on_skip
        self.count = 0  # errors reported so far

    def __call__(self, error: IngestError) -> None:
        if not self.skip:
            raise error
        self.notice(error)

    def notice(self, error: IngestError) -> None:
        """Report an input skipped for a reason that is no error (an empty file): never
        raises, whatever ``on_error`` says."""
        self.count += 1
        if self.on_skip is not None:
            self.on_skip(error)
        else:
            log.warning("skipped: %s", error)


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
# Text formats

_FRONT_KEY = re.compile(r"^([A-Za-z_][\w.-]*)\s*:\s*(.*?)\s*$")
_INT = re.compile(r"[-+]?\d+")
_FLOAT = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
_HEADING = re.compile(r"^#[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


def _scalar(value: str) -> Any:
    """A front-matter or CSV value: int, float, bool, null, quoted string or plain string."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    if _INT.fullmatch(value):
        return int(value)
    if _FLOAT.fullmatch(value):
        return float(value)
    low = value.lower()
    if low == "true":
        return True
    if low == "false":
        return False
    if low in ("null", "none", "~"):
        return None
    return value


def parse_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """Split ``---`` front matter off Markdown text: ``(metadata, body)``.

    Only simple ``key: value`` lines are understood (numbers, booleans, quoted strings and
    ``[a, b]`` lists are parsed); comment lines and anything else are ignored. Text without a
    closing ``---`` (or ``...``) line has no front matter.
    """
    if not text.startswith("---\n"):
        return {}, text
    close = re.search(r"^(?:---|\.\.\.)[ \t]*$", text[4:], re.MULTILINE)
    if close is None:
        return {}, text
    meta: dict[str, Any] = {}
    for line in text[4 : 4 + close.start()].splitlines():
        m = _FRONT_KEY.match(line)
        if not m:
            continue
        key, value = m.groups()
        if value.startswith("[") and value.endswith("]"):
            inner = value[1:-1].strip()
            meta[key] = [_scalar(v.strip()) for v in inner.split(",")] if inner else []
        elif value:
            meta[key] = _scalar(value)
    body = text[4 + close.end() :].lstrip("\n")
    return meta, body


def _markdown(text: str, source: str, doc_id: str | None) -> Iterator[Document]:
    meta, body = parse_front_matter(text)
    if not body.strip():
        return
    title = meta.pop("title", None)
    if title is None:
        m = _HEADING.search(body)
        title = m.group(1) if m else ""
    yield Document(body, doc_id, source, str(title), meta)


def _plain(text: str, source: str, doc_id: str | None) -> Iterator[Document]:
    if text.strip():
        yield Document(text, doc_id, source)


class _HTMLText(HTMLParser):
    """Collects readable text from HTML: paragraphs for blocks, no script/style/nav."""

    SKIP = frozenset({"script", "style", "nav", "noscript", "template", "svg"})
    # fmt: off
    BLOCK = frozenset(
        {
            "p", "div", "section", "article", "main", "header", "footer", "aside", "blockquote",
            "pre", "ul", "ol", "li", "dl", "dt", "dd", "table", "thead",
            "tbody", "tfoot", "tr", "h1", "h2", "h3", "h4", "h5", "h6",
            "hr", "figure", "figcaption", "form", "fieldset", "address", "details", "summary",
            "caption",
        }
    )
    # fmt: on
    LINE = frozenset({"br", "li", "tr", "dt", "dd"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip_depth = 0
        self.pre_depth = 0
        self.in_title = False
        self.title: list[str] = []
        self.h1: list[str] | None = None
        self.h1_done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self.in_title = True
        elif tag in self.SKIP:
            self.skip_depth += 1
        elif tag in self.LINE:
            self.parts.append("\n")
        elif tag in self.BLOCK:
            self.parts.append("\n\n")
        elif tag in ("td", "th"):
            self.parts.append(" ")
        if tag == "pre":
            self.pre_depth += 1
        if tag == "h1" and not self.h1_done:
            self.h1 = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        elif tag in self.SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif tag in self.LINE:
            pass  # list items, rows: one newline, added at the start tag
        elif tag in self.BLOCK:
            self.parts.append("\n\n")
        if tag == "pre":
            self.pre_depth = max(0, self.pre_depth - 1)
        if tag == "h1" and self.h1 is not None:
            self.h1_done = True

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag == "hr":
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title.append(data)
            return
        if self.skip_depth:
            return
        if self.h1 is not None and not self.h1_done:
            self.h1.append(data)
        self.parts.append(data if self.pre_depth else re.sub(r"\s+", " ", data))

    def result(self) -> tuple[str, str]:
        text = "".join(self.parts)
        text = re.sub(r"[ \t]*\n[ \t]*", "\n", text)
        text = re.sub(r"\n{3,}", "\n\n", text).strip()
        title = " ".join("".join(self.title).split())
        if not title and self.h1:
            title = " ".join("".join(self.h1).split())
        return text, title


def _html(text: str, source: str, doc_id: str | None) -> Iterator[Document]:
    parser = _HTMLText()
    parser.feed(text)
    parser.close()
    body, title = parser.result()
    if body:
        yield Document(body, doc_id, source, title)


# ---------------------------------------------------------------------------------------------
# Records


def _type_name(value: Any) -> str:
    names = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "null",
    }
    return names.get(type(value), f"a {type(value).__name__}")


def _record(
    obj: Any, source: str, default_id: str | None, where: str, line: int | None
) -> Document | None:
    """Build a Document from a record dict (None for empty text); IngestError if invalid."""
    if not isinstance(obj, dict):
        raise IngestError(
            f"{where} is {_type_name(obj)}, expected an object with a 'text' field", source, line
        )
    key = "text" if "text" in obj else "content" if "content" in obj else None
    if key is None:
        fields = ", ".join(map(str, obj)) or "none"
        raise IngestError(f"{where} has no 'text' field (fields: {fields})", source, line)
    text = obj[key]
    if not isinstance(text, str):
        raise IngestError(
            f"{where}: '{key}' must be a string, got {_type_name(text)}", source, line
        )
    if not text.strip():
        return None
    meta = obj.get("metadata", {})
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise IngestError(
            f"{where}: 'metadata' must be an object, got {_type_name(meta)}", source, line
        )
    reserved = {key, "title", "id", "metadata", "source"}
    extra = {k: v for k, v in obj.items() if k not in reserved}
    extra.update(meta)
    rid = obj.get("id")
    title = obj.get("title")
    rsource = obj.get("source")
    return Document(
        text=text,
        id=str(rid) if rid is not None and rid != "" else default_id,
        source=rsource if isinstance(rsource, str) and rsource else source,
        title="" if title is None else str(title),
        metadata=extra,
    )


def _json(text: str, source: str, base_id: str | None, report: _Reporter) -> Iterator[Document]:
    if not text.strip():
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IngestError(
            f"malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
            source,
            exc.lineno,
        ) from None
    if isinstance(data, dict):
        items, single = [data], True
    elif isinstance(data, list):
        items, single = data, False
    else:
        raise IngestError(
            f"JSON must be an object or a list of objects, got {_type_name(data)}", source
        )
    for index, obj in enumerate(items):
        where = "the JSON object" if single else f"item {index}"
        try:
            doc = _record(obj, source, base_id and f"{base_id}#{index}", where, None)
        except IngestError as exc:
            report(exc)
            continue
        if doc is not None:
            yield doc


def _jsonl(
    lines: Iterable[tuple[int, str]], source: str, base_id: str | None, report: _Reporter
) -> Iterator[Document]:
    for lineno, line in lines:
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            report(
                IngestError(
                    f"malformed JSON on line {lineno}: {exc.msg} (column {exc.colno})",
                    source,
                    lineno,
                )
            )
            continue
        try:
            doc = _record(obj, source, base_id and f"{base_id}#{lineno}", "record", lineno)
        except IngestError as exc:
            report(exc)
            continue
        if doc is not None:
            yield doc


def _csv_value(value: str) -> Any:
    value = value.strip()
    if _INT.fullmatch(value):
        return int(value)
    if _FLOAT.fullmatch(value):
        return float(value)
    return value


def _csv(text: str, source: str, base_id: str | None, report: _Reporter) -> Iterator[Document]:
    if not text.strip():
        return
    csv.field_size_limit(max(csv.field_size_limit(), min(sys.maxsize, 2**31 - 1)))
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except csv.Error as exc:
        raise IngestError(f"malformed CSV header: {exc}", source, 1) from None
    names = [h.strip() for h in header]
    lower = [n.lower() for n in names]
    text_col = next((lower.index(k) for k in ("text", "content") if k in lower), None)
    if text_col is None:
        raise IngestError(
            "CSV has no 'text' or 'content' column (columns: "
            f"{', '.join(names) or 'none'}); add a header row naming the text column",
            source,
            1,
        )
    special = {
        k: lower.index(k)
        for k in ("title", "id", "source")
        if k in lower and lower.index(k) != text_col
    }
    while True:
        lineno = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            report(IngestError(f"malformed CSV: {exc}", source, lineno))
            continue
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= text_col:
            report(IngestError(f"row has {len(row)} cells, no text column", source, lineno))
            continue
        body = row[text_col]
        if not body.strip():
            continue
        meta = {
            names[c]: _csv_value(v)
            for c, v in enumerate(row[: len(names)])
            if c != text_col and c not in special.values() and v.strip() and names[c]
        }

        def cell(key: str, row: list[str] = row) -> str:
            col = special.get(key)
            return row[col].strip() if col is not None and col < len(row) else ""

        yield Document(
            text=body,
            id=cell("id") or (base_id and f"{base_id}#{lineno}"),
            source=cell("source") or source,
            title=cell("title"),
            metadata=meta,
        )


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
