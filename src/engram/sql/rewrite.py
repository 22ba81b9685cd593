"""Find ``similar(...)`` / ``keywords(...)`` in a statement and rewrite it to read their rows
from common table expressions (``similar_1``, ``keywords_2``, ...) that Engram fills from
recall; map positions in the rewritten text back to the user's statement."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engram.sql.tokens import SqlError, Token, single_statement, tokenize

TABLE_FUNCTIONS = ("similar", "keywords")
READ_STARTS = ("SELECT", "WITH", "VALUES", "(")
COLUMNS = ("chunk_id", "doc_id", "score", "rank", "namespace")
_TYPES = ("bigint", "text", "double precision", "integer", "text")
MAX_K = 1000


@dataclass
class Call:
    """One table-function call: what to recall, and the name it is read under."""

    function: str
    text: str
    k: int
    mode: str
    name: str
    start: int  # 0-based span in the user's statement
    end: int
    rows: list[tuple[Any, ...]] = field(default_factory=list)


@dataclass
class Piece:
    text: str
    origin: int  # 0-based offset in the user's statement this piece stands for
    verbatim: bool


@dataclass
class Statement:
    """A parsed statement: its calls, and the pieces it is rebuilt from."""

    original: str
    dialect: str
    calls: list[Call]
    pieces: list[Piece]
    with_at: int | None  # index of the piece after ``WITH [RECURSIVE]``, if the user wrote one

    def body(self) -> str:
        """The user's statement with each call replaced by its table name."""
        return "".join(p.text for p in self.pieces)

    def render(self, ctes: Sequence[str]) -> tuple[str, list[Piece]]:
        """The statement to run: ``ctes`` prepended (merged into the user's WITH)."""
        if not ctes:
            return self.body(), list(self.pieces)
        joined = ",\n  ".join(ctes)
        if self.with_at is None:
            pieces = [Piece(f"WITH\n  {joined}\n", 0, False), *self.pieces]
        else:
            at = self.with_at
            head = self.pieces[:at]
            pieces = [*head, Piece(f"\n  {joined},\n ", head[-1].origin, False), *self.pieces[at:]]
        return "".join(p.text for p in pieces), pieces

    def position(self, pieces: list[Piece], offset: int) -> int:
        """The 1-based position in the user's statement of 0-based ``offset`` in the text
        built from ``pieces``."""
        at = 0
        for p in pieces:
            if offset < at + len(p.text):
                return (p.origin + (offset - at) if p.verbatim else p.origin) + 1
            at += len(p.text)
        return len(self.original) + 1


def _unquote(tok: Token) -> str:
    return tok.text[1:-1].replace("''", "'")


def _argument(tok: Token, params: Any, dialect: str) -> Any:
    if tok.kind == "string" and tok.text.startswith("'"):
        return _unquote(tok)
    if tok.kind == "number" and tok.text.isdigit():
        return int(tok.text)
    if tok.kind == "param":
        name = tok.text[2:-2] if tok.text.startswith("%(") else tok.text[1:]
        if isinstance(params, Mapping) and name in params:
            return params[name]
        raise SqlError(
            f"parameter {tok.text} in a table function needs a named value in params", tok.start + 1
        )
    raise SqlError(
        "similar() and keywords() take literal arguments: similar('text', k, 'mode')",
        tok.start + 1,
    )


def _call(sig: list[Token], i: int, params: Any, dialect: str, n: int) -> tuple[Call, int]:
    """The call whose name is ``sig[i]``; returns it and the index after its ``)``."""
    word = sig[i]
    fn = word.text.lower()
    args: list[Any] = []
    j = i + 2
    expect_value = True
    while j < len(sig) and sig[j].text != ")":
        tok = sig[j]
        if expect_value:
            args.append(_argument(tok, params, dialect))
        elif tok.text != ",":
            raise SqlError(f"expected ',' or ')' in {fn}()", tok.start + 1)
        expect_value = not expect_value
        j += 1
    if j == len(sig):
        raise SqlError(f"{fn}( is not closed", word.start + 1)
    limit = 3 if fn == "similar" else 2
    if not args or len(args) > limit or expect_value:
        usage = "similar('text' [, k [, mode]])" if fn == "similar" else "keywords('text' [, k])"
        raise SqlError(f"{fn}() takes {usage}", word.start + 1)
    text, k, mode = args[0], args[1] if len(args) > 1 else 10, args[2] if len(args) > 2 else ""
    if not isinstance(text, str) or not text.strip():
        raise SqlError(f"{fn}(): the first argument is the query text", word.start + 1)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise SqlError(f"{fn}(): k must be an integer from 1 to {MAX_K}", word.start + 1)
    if fn == "keywords":
        mode = "keyword"
    elif mode not in ("", "hybrid", "keyword", "vector"):
        raise SqlError(f"{fn}(): mode must be 'hybrid', 'keyword' or 'vector'", word.start + 1)
    call = Call(fn, text, k, mode, f"{fn}_{n}", word.start, sig[j].end)
    return call, j + 1


def parse(statement: str, dialect: str, params: Any = None) -> Statement:
    """Check that ``statement`` is one read statement and find its table-function calls."""
    if not isinstance(statement, str):
        raise SqlError("the statement must be text")
    if "\x00" in statement:
        raise SqlError("the statement contains a NUL character", statement.index("\x00") + 1)
    try:
        statement.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise SqlError("the statement contains invalid Unicode", exc.start + 1) from None
    sig = single_statement(tokenize(statement, dialect))
    first = sig[0]
    if first.upper not in READ_STARTS:
        raise SqlError(
            f"engram sql is read-only: {first.text.upper()} statements are refused; "
            "give one SELECT (or WITH ... SELECT)",
            first.start + 1,
        )
    calls: list[Call] = []
    i = 0
    while i < len(sig):
        tok = sig[i]
        if (
            tok.kind == "word"
            and tok.text.lower() in TABLE_FUNCTIONS
            and i + 1 < len(sig)
            and sig[i + 1].text == "("
        ):
            before = sig[i - 1].upper if i else ""
            if before not in ("FROM", "JOIN", ",", "LATERAL"):
                raise SqlError(f"{tok.text}() is a table: use it in FROM or JOIN", tok.start + 1)
            call, i = _call(sig, i, params, dialect, len(calls) + 1)
            calls.append(call)
        else:
            i += 1
    pieces: list[Piece] = []
    at = 0
    for call in calls:
        pieces.append(Piece(statement[at : call.start], at, True))
        pieces.append(Piece(call.name, call.start, False))
        at = call.end
    pieces.append(Piece(statement[at:], at, True))
    with_at = None
    if first.upper == "WITH":
        cut = sig[1].end if len(sig) > 1 and sig[1].upper == "RECURSIVE" else first.end
        head, rest = pieces[0], pieces[1:]  # the first piece holds WITH (calls come later)
        split = [Piece(head.text[:cut], 0, True), Piece(head.text[cut:], cut, True)]
        pieces, with_at = [*split, *rest], 1
    return Statement(statement, dialect, calls, pieces, with_at)


def literal(value: Any) -> str:
    """``value`` as an SQL literal both dialects read the same way."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def call_cte(call: Call) -> str:
    """``similar_1(chunk_id, ...) AS (VALUES ...)`` holding the call's rows."""
    head = f"{call.name}({', '.join(COLUMNS)}) AS "
    if not call.rows:
        nulls = ", ".join(f"CAST(NULL AS {t})" for t in _TYPES)
        return head + f"(SELECT {nulls} WHERE 1 = 0)"
    rows = []
    for r, row in enumerate(call.rows):
        values = [literal(v) for v in row]
        if r == 0:  # the first row fixes the column types
            values = [f"CAST({v} AS {t})" for v, t in zip(values, _TYPES, strict=True)]
        rows.append("(" + ", ".join(values) + ")")
    return head + "(VALUES " + ", ".join(rows) + ")"
