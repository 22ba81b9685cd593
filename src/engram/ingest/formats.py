"""Text formats: what each input format becomes as documents (plain text, Markdown with
front matter, HTML, JSON, JSON lines, CSV), and the ``_Reporter`` that raises or reports a
bad record. ``loaders`` reads bytes and hands the text here."""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from html.parser import HTMLParser
from typing import Any

from engram.errors import IngestError
from engram.types import Document

log = logging.getLogger("engram.ingest")

OnSkip = Callable[[IngestError], None]

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
    special: dict[str, int] = {
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
