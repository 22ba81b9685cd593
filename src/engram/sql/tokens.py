"""A small SQL tokenizer: enough to find statement boundaries, the first keyword and the
``similar(...)`` / ``keywords(...)`` table functions, while respecting string literals,
quoted identifiers and comments of both dialects (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from engram.errors import EngramError


class SqlError(EngramError):
    """A statement ``engram sql`` refuses or that failed; ``position`` is 1-based, or None."""

    def __init__(self, message: str, position: int | None = None):
        super().__init__(message + (f" (at position {position})" if position else ""))
        self.position = position


@dataclass(frozen=True)
class Token:
    kind: str  # word, qident, string, number, param, punct, space, comment
    text: str
    start: int  # 0-based offset in the statement

    @property
    def end(self) -> int:
        return self.start + len(self.text)

    @property
    def upper(self) -> str:
        return self.text.upper()


_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*")
_NUMBER = re.compile(r"(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_PARAMS = {
    "sqlite": re.compile(r"\?\d*|[:@$][A-Za-z_][A-Za-z0-9_]*"),
    "postgres": re.compile(r"\$\d+|%\([A-Za-z_][A-Za-z0-9_]*\)s|%s"),
}
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_CLOSE = {'"': '"', "`": "`", "[": "]"}


def _quoted(sql: str, i: int, quote: str, *, backslash: bool = False) -> int:
    """End offset of a quoted run starting at ``i`` (doubled quotes escape)."""
    j = i + 1
    while True:
        k = sql.find(quote, j)
        if backslash:
            b = sql.find("\\", j)
            if 0 <= b < k:
                j = b + 2
                continue
        if k < 0:
            raise SqlError("unterminated quoted text", i + 1)
        if sql.startswith(quote, k + 1) and quote in "'\"":
            j = k + 2
            continue
        return k + 1


def _block_comment(sql: str, i: int, nested: bool) -> int:
    depth, j = 0, i
    while j < len(sql):
        if sql.startswith("/*", j):
            depth = depth + 1 if nested or depth == 0 else depth
            j += 2
        elif sql.startswith("*/", j):
            depth -= 1
            j += 2
            if depth == 0:
                return j
        else:
            j += 1
    raise SqlError("unterminated /* comment", i + 1)


def _one(sql: str, i: int, dialect: str) -> tuple[str, int]:
    """``(kind, end)`` of the token starting at ``i``."""
    c, pg = sql[i], dialect == "postgres"
    if m := _SPACE.match(sql, i):
        return "space", m.end()
    if sql.startswith("--", i):
        end = sql.find("\n", i)
        return "comment", len(sql) if end < 0 else end
    if sql.startswith("/*", i):
        return "comment", _block_comment(sql, i, nested=pg)
    if c == "'":
        return "string", _quoted(sql, i, "'")
    if pg and c in "eE" and sql.startswith("'", i + 1):
        return "string", _quoted(sql, i + 1, "'", backslash=True)
    if c in "xXbBnN" and sql.startswith("'", i + 1):
        return "string", _quoted(sql, i + 1, "'")
    if pg and c in "uU" and sql.startswith("&'", i + 1):
        return "string", _quoted(sql, i + 2, "'")
    if pg and c in "uU" and sql.startswith('&"', i + 1):
        return "qident", _quoted(sql, i + 2, '"')
    if pg and c == "$" and (m := _DOLLAR_TAG.match(sql, i)):
        end = sql.find(m.group(0), m.end())
        if end < 0:
            raise SqlError("unterminated $-quoted text", i + 1)
        return "string", end + len(m.group(0))
    if c == '"' or (not pg and c in "`["):
        return "qident", _quoted(sql, i, _CLOSE[c])
    if m := _PARAMS[dialect].match(sql, i):
        return "param", m.end()
    if m := _WORD.match(sql, i):
        return "word", m.end()
    if m := _NUMBER.match(sql, i):
        return "number", m.end()
    return "punct", i + 1


def tokenize(sql: str, dialect: str = "sqlite") -> list[Token]:
    """Every token of ``sql`` (spaces and comments included) with its offset."""
    out, i = [], 0
    while i < len(sql):
        kind, end = _one(sql, i, dialect)
        out.append(Token(kind, sql[i:end], i))
        i = end
    return out


def significant(tokens: list[Token]) -> list[Token]:
    return [t for t in tokens if t.kind not in ("space", "comment")]


def single_statement(tokens: list[Token]) -> list[Token]:
    """The significant tokens of the one statement; refuses none or more than one."""
    sig = significant(tokens)
    while sig and sig[-1].text == ";":
        sig.pop()
    if not sig:
        raise SqlError("empty statement: give one SELECT")
    for t in sig:
        if t.text == ";":
            raise SqlError("only one statement at a time: this ';' ends the first", t.start + 1)
    return sig
