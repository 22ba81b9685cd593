"""Sentence splitting and token-bounded chunking with overlap.

Everything here runs in time linear in the text length: sentences are found with one regex
scan, ``count_tokens`` is called once per sentence (plus once per chunk for custom counters),
never on a growing string.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from engram.types import Chunk

__all__ = ["approx_tokens", "chunk_text", "split_sentences"]

CountTokens = Callable[[str], int]

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
# One "word piece" is a CJK character, up to 6 word characters, or one punctuation mark.
_PIECE = re.compile(rf"[{_CJK}]|[^\W{_CJK}]{{1,6}}|[^\w\s]")


def approx_tokens(text: str) -> int:
    """Fast approximation of a subword tokenizer's (WordPiece/BPE) token count.

    Counts one token per punctuation mark, one per CJK character and one per started run of
    6 letters/digits in a word ("the" = 1, "information" = 2). English prose comes out at about
    1.2-1.3 tokens per word, slightly above typical embedding tokenizers, so chunks sized
    with it rarely overflow a model's real limit. It is additive over whitespace-separated
    pieces, which keeps chunking linear.
    """
    return len(_PIECE.findall(text))


# ---------------------------------------------------------------------------------------------
# Sentence splitting

# Abbreviations after which a period does not end a sentence (compared lowercased).
# fmt: off
_ABBREVIATIONS = frozenset(
    {
        "mr", "mrs", "ms", "mx", "dr", "prof", "sr", "jr", "st", "mt",
        "rev", "fr", "gen", "col", "capt", "lt", "sgt", "cmdr", "gov", "sen",
        "rep", "hon", "pres", "fig", "figs", "eq", "eqs", "vs", "al", "cf",
        "approx", "ca", "dept", "est", "resp", "viz",
    }
)
# fmt: on

# Abbreviations that do not end a sentence when a number follows ("No. 5", "Jan. 12").
# fmt: off
_NUMBER_ABBREVIATIONS = frozenset(
    {
        "no", "nos", "vol", "vols", "p", "pp", "ch", "sec", "art", "jan",
        "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov",
        "dec",
    }
)
# fmt: on
_DOTTED = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]")  # e.g, i.e, U.S, a.m
_OPENERS = "\"'“‘([«"
_CLOSERS = "\"'”’)\\]»"
_TERMINAL = ".!?:;…。！？"
# A sentence end: terminal punctuation, optional closing quotes/brackets, then whitespace; or a
# CJK full stop, which needs no whitespace after it.
_SENTENCE_END = re.compile(rf"([.!?…]+)[{_CLOSERS}]*\s+|[。！？]+[{_CLOSERS}」』]*\s*")
_LINE = re.compile(r"\S[^\n]*")
_LIST_NUMBER = re.compile(r"\d+[.)](?:\s|$)")


def _ends_sentence(text: str, m: re.Match[str], start: int) -> bool:
    """Whether the punctuation matched by ``m`` ends the sentence begun at ``start``."""
    punct = m.group(1)
    if punct is None:  # CJK full stop
        return True
    nxt = text[m.end()] if m.end() < len(text) else ""
    if not nxt:
        return True
    if not (
        nxt.isupper() or nxt.isdigit() or nxt in _OPENERS or (nxt.isalpha() and not nxt.islower())
    ):
        return False
    if punct != ".":
        return True
    # The word before the period, without leading brackets/quotes (bounded scan).
    stop = m.start()
    k = stop
    floor = max(0, stop - 32)
    while k > floor and not text[k - 1].isspace() and text[k - 1] not in _OPENERS:
        k -= 1
    word = text[k:stop]
    if not word:
        return True
    if k <= start and word.isdigit():  # a list number: "1. Add the lentils"
        return False
    if len(word) == 1 and word.isalpha():  # an initial: "J. R. Tolkien"
        return False
    if _DOTTED.fullmatch(word):
        return False
    low = word.lower()
    if low in _ABBREVIATIONS:
        return False
    return not (low in _NUMBER_ABBREVIATIONS and nxt.isdigit())


def _blocks(text: str) -> list[tuple[int, int]]:
    """Spans of text between hard breaks.

    Every newline is a hard break, except a soft wrap: a line that does not end in terminal
    punctuation followed (no blank line between) by a line that starts with a lowercase letter
    or a digit (not a "1." list number) continues the same block.
    """
    blocks: list[tuple[int, int]] = []
    for m in _LINE.finditer(text):
        start = m.start()
        end = start + len(m.group().rstrip())
        if blocks:
            prev_start, prev_end = blocks[-1]
            first = text[start]
            if (
                (first.islower() or (first.isdigit() and not _LIST_NUMBER.match(text, start)))
                and text[prev_end - 1] not in _TERMINAL
                and text.count("\n", prev_end, start) == 1
            ):
                blocks[-1] = (prev_start, end)
                continue
        blocks.append((start, end))
    return blocks


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans ``(start, end)`` of the sentences of ``text``, in order.

    A sentence ends at ``.``, ``!`` or ``?`` (plus closing quotes/brackets) followed by
    whitespace and an uppercase letter, digit, or opening quote/bracket; at a CJK full stop; and
    at newlines (see soft wraps below). Common abbreviations ("e.g.", "i.e.", "Dr.", "Mr.",
    "Fig.", "et al.", "vs.", initials) do not end a sentence; decimal numbers never do. A single
    newline between a line without terminal punctuation and a line starting lowercase (or with a
    digit that is not a list number) is a soft wrap, not a break, and a list number ("1.") at
    the start of a sentence does not end it. Spans exclude surrounding whitespace;
    whitespace-only text gives ``[]``.
    """
    spans: list[tuple[int, int]] = []
    for block_start, block_end in _blocks(text):
        start = block_start
        for m in _SENTENCE_END.finditer(text, block_start, block_end):
            if m.end() >= block_end or not _ends_sentence(text, m, start):
                continue
            end = m.end()
            while end > start and text[end - 1].isspace():
                end -= 1
            if end > start:
                spans.append((start, end))
            start = m.end()
        if block_end > start:
            spans.append((start, block_end))
    return spans


# ---------------------------------------------------------------------------------------------
# Chunking


def _split_long(
    text: str, start: int, end: int, tokens: int, max_tokens: int, count: CountTokens
) -> list[tuple[int, int, int]]:
    """Split the span ``text[start:end]`` (``tokens`` tokens) into pieces of <= ``max_tokens``.

    Cuts at whitespace where possible (else inside a word); piece sizes are guessed from the
    span's characters-per-token, so each piece is counted about once: linear time.
    """
    pieces: list[tuple[int, int, int]] = []
    chars_per_token = (end - start) / max(tokens, 1)
    pos = start
    while pos < end:
        while pos < end and text[pos].isspace():
            pos += 1
        if pos >= end:
            break
        target = max(1, int(max_tokens * chars_per_token * 0.95))
        while True:
            cut = min(end, pos + target)
            if cut < end:
                ws = max(text.rfind(" ", pos, cut + 1), text.rfind("\n", pos, cut + 1))
                if ws > pos:
                    cut = ws
            piece_end = cut
            while piece_end > pos and text[piece_end - 1].isspace():
                piece_end -= 1
            n = count(text[pos:piece_end])
            if n <= max_tokens or piece_end - pos <= 1:
                break
            # Too big: shrink the guess in proportion and retry.
            target = max(1, min(piece_end - pos - 1, int((piece_end - pos) * max_tokens / n * 0.9)))
        pieces.append((pos, piece_end, n))
        pos = cut
    return pieces


def chunk_text(
    text: str,
    max_tokens: int = 256,
    overlap: int = 32,
    count_tokens: CountTokens | None = None,
) -> list[Chunk]:
    """Pack whole sentences of ``text`` into chunks of at most ``max_tokens`` tokens.

    Each chunk after the first starts with trailing sentences of the previous chunk that total
    at most ``overlap`` tokens. A sentence longer than ``max_tokens`` is split on word
    boundaries (inside a word only if a single word is too long). ``count_tokens`` defaults to
    :func:`approx_tokens`; with a custom counter each chunk is re-counted once and shrunk if the
    counter is not additive. ``Chunk.start``/``end`` are character offsets into ``text`` and
    ``text[start:end] == chunk.text`` (no surrounding whitespace). Empty text gives ``[]``.
    Runs in time linear in ``len(text)``.
    """
    if not isinstance(max_tokens, int) or max_tokens < 8:
        raise ValueError(f"max_tokens must be an integer >= 8, got {max_tokens!r}")
    if not isinstance(overlap, int) or not 0 <= overlap < max_tokens:
        raise ValueError(
            f"overlap must be an integer with 0 <= overlap < max_tokens ({max_tokens}), "
            f"got {overlap!r}"
        )
    count = count_tokens or approx_tokens
    verify = count_tokens is not None and count_tokens is not approx_tokens

    units: list[tuple[int, int, int]] = []  # (start, end, tokens), each <= max_tokens
    for start, end in split_sentences(text):
        n = count(text[start:end])
        if n <= max_tokens:
            units.append((start, end, n))
        else:
            units.extend(_split_long(text, start, end, n, max_tokens, count))
    if not units:
        return []

    chunks: list[Chunk] = []
    i = 0
    min_j = 1  # a chunk must reach past the previous chunk's last unit
    while i < len(units):
        j, total = i, 0
        while j < len(units) and total + units[j][2] <= max_tokens:
            total += units[j][2]
            j += 1
        j = max(j, i + 1)
        if verify:
            while j - i > 1 and count(text[units[i][0] : units[j - 1][1]]) > max_tokens:
                if j - 1 >= min_j:
                    j -= 1
                else:
                    i += 1  # drop overlap rather than progress
        chunks.append(
            Chunk(text[units[i][0] : units[j - 1][1]], len(chunks), units[i][0], units[j - 1][1])
        )
        if j >= len(units):
            break
        # Overlap: trailing units of this chunk, at most `overlap` tokens, leaving room for the
        # next new unit so that every chunk makes progress.
        k, carried = j, 0
        nxt = units[j][2]
        while (
            k - 1 > i
            and carried + units[k - 1][2] <= overlap
            and carried + units[k - 1][2] + nxt <= max_tokens
        ):
            carried += units[k - 1][2]
            k -= 1
        i, min_j = k, j + 1
    return chunks
