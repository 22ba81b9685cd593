"""Tests for engram.ingest: loaders (every format and every bad input) and chunking."""

from __future__ import annotations

import codecs
import io
import json
import re
from pathlib import Path

import pytest

from engram.errors import IngestError
from engram.ingest import (
    DEFAULT_MAX_BYTES,
    approx_tokens,
    chunk_text,
    load_path,
    load_records,
    load_stream,
    split_sentences,
)
from engram.samples import SAMPLES_DIR, load_samples, sample_questions
from engram.types import Document


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def load(path: Path, **kw) -> list[Document]:
    return list(load_path(path, **kw))


# ---------------------------------------------------------------------------------------------
# Formats


@pytest.mark.parametrize("ext", [".txt", ".text", ".rst", ".log"])
def test_plain_text(tmp_path: Path, ext: str) -> None:
    p = write(tmp_path / f"notes{ext}", "Hello world.\r\nSecond line.\n")
    (doc,) = load(p)
    assert doc.text == "Hello world.\nSecond line.\n"
    assert doc.id == str(p.resolve())
    assert doc.source == str(p)
    assert doc.title == ""
    assert doc.metadata == {}


def test_extensionless_file_is_text(tmp_path: Path) -> None:
    (doc,) = load(write(tmp_path / "README", "Read me."))
    assert doc.text == "Read me."


def test_markdown_front_matter_and_heading(tmp_path: Path) -> None:
    p = write(
        tmp_path / "a.md",
        "---\ntopic: travel\nyear: 2024\nscore: 4.5\ndraft: false\nname: 'Quoted'\n"
        "tags: [a, b, 3]\n# a comment\n---\n\nIntro line.\n\n# The Title\n\nBody.\n",
    )
    (doc,) = load(p)
    assert doc.title == "The Title"
    assert doc.metadata == {
        "topic": "travel",
        "year": 2024,
        "score": 4.5,
        "draft": False,
        "name": "Quoted",
        "tags": ["a", "b", 3],
    }
    assert doc.text.startswith("Intro line.")
    assert "topic:" not in doc.text
    assert doc.id == str(p.resolve())


def test_markdown_title_key_wins_and_no_front_matter(tmp_path: Path) -> None:
    (doc,) = load(write(tmp_path / "a.markdown", "---\ntitle: Given\n---\n# Heading\nx\n"))
    assert doc.title == "Given" and "title" not in doc.metadata
    (doc,) = load(write(tmp_path / "b.md", "---\nnot closed\n# H\n"))
    assert doc.metadata == {} and doc.text.startswith("---")
    (doc,) = load(write(tmp_path / "c.md", "no heading here"))
    assert doc.title == ""


def test_html(tmp_path: Path) -> None:
    html = """<!doctype html><html><head><title> My  Page </title>
    <style>body { color: red }</style><script>var x = "hidden";</script></head>
    <body><nav><a href="/">Home</a> | <a href="/x">Menu</a></nav>
    <h1>Heading</h1><p>First   paragraph
    continues.</p><div>Second &amp; block<br>with a break</div>
    <ul><li>one</li><li>two</li></ul><script>alert(1)</script></body></html>"""
    (doc,) = load(write(tmp_path / "page.html", html))
    assert doc.title == "My Page"
    assert doc.text == (
        "Heading\n\nFirst paragraph continues.\n\nSecond & block\nwith a break\n\none\ntwo"
    )
    for hidden in ("hidden", "alert", "color", "Menu", "Home"):
        assert hidden not in doc.text


def test_html_title_falls_back_to_h1(tmp_path: Path) -> None:
    (doc,) = load(write(tmp_path / "page.htm", "<h1>Only <b>H1</b></h1><p>x</p>"))
    assert doc.title == "Only H1"


def test_json_list_and_object(tmp_path: Path) -> None:
    records = [
        {"text": "one", "id": 7, "title": "T", "lang": "en", "metadata": {"k": 1}},
        {"text": "two", "source": "https://example.org/2", "metadata": None},
        {"text": "   "},
        {"content": "three"},
    ]
    p = write(tmp_path / "r.json", json.dumps(records))
    docs = load(p)
    base = str(p.resolve())
    assert [d.text for d in docs] == ["one", "two", "three"]
    assert docs[0].id == "7" and docs[0].title == "T"
    assert docs[0].metadata == {"lang": "en", "k": 1}
    assert docs[0].source == str(p)
    assert docs[1].id == f"{base}#1" and docs[1].source == "https://example.org/2"
    assert docs[2].id == f"{base}#3"
    (doc,) = load(write(tmp_path / "o.json", '{"text": "single", "n": 2}'))
    assert doc.id == f"{(tmp_path / 'o.json').resolve()}#0" and doc.metadata == {"n": 2}


def test_jsonl(tmp_path: Path) -> None:
    p = write(
        tmp_path / "r.jsonl",
        '{"text": "a", "id": "x1"}\n\n   \n{"text": "b", "tag": "t"}\r\n{"text": ""}\n',
    )
    docs = load(p)
    assert [(d.text, d.id) for d in docs] == [("a", "x1"), ("b", f"{p.resolve()}#4")]
    assert docs[1].metadata == {"tag": "t"}


def test_csv(tmp_path: Path) -> None:
    p = write(
        tmp_path / "r.csv",
        "id,Title,content,price,count,note\n"
        'a1,First,"Hello, world",3.5,7,cheap\n'
        ',Second,"multi\nline",,-2,\n'
        ",,   ,1,1,1\n"
        "\n"
        ",Third,last,x,0,\n",
    )
    docs = load(p)
    assert [d.text for d in docs] == ["Hello, world", "multi\nline", "last"]
    assert docs[0].id == "a1" and docs[0].title == "First"
    assert docs[0].metadata == {"price": 3.5, "count": 7, "note": "cheap"}
    assert docs[1].id == f"{p.resolve()}#3" and docs[1].metadata == {"count": -2}
    assert docs[2].id == f"{p.resolve()}#7" and docs[2].metadata == {"price": "x", "count": 0}


def test_csv_text_column_preferred_over_content(tmp_path: Path) -> None:
    (doc,) = load(write(tmp_path / "r.csv", "content,text\nmeta,body\n"))
    assert doc.text == "body" and doc.metadata == {"content": "meta"}


def test_bom_and_utf16(tmp_path: Path) -> None:
    (doc,) = load(write(tmp_path / "a.txt", codecs.BOM_UTF8 + "héllo".encode()))
    assert doc.text == "héllo"
    (doc,) = load(write(tmp_path / "b.md", codecs.BOM_UTF8 + b"---\nyear: 1\n---\nx"))
    assert doc.metadata == {"year": 1}
    (doc,) = load(write(tmp_path / "c.txt", "ünïcode €".encode("utf-16")))
    assert doc.text == "ünïcode €"
    docs = load(write(tmp_path / "d.jsonl", '{"text": "a"}\n{"text": "b"}\n'.encode("utf-16")))
    assert [d.text for d in docs] == ["a", "b"]
    docs = load(write(tmp_path / "e.jsonl", codecs.BOM_UTF8 + b'{"text": "a"}\n'))
    assert [d.text for d in docs] == ["a"]


@pytest.mark.parametrize(
    "name,content",
    [
        ("a.txt", ""),
        ("b.txt", "  \n\t\n"),
        ("c.md", "---\ntopic: x\n---\n\n"),
        ("d.html", "<html><script>x</script></html>"),
        ("e.json", "  "),
        ("f.json", "[]"),
        ("g.jsonl", "\n\n"),
        ("h.csv", ""),
        ("i.csv", "text,title\n"),
    ],
)
def test_empty_inputs_yield_nothing(tmp_path: Path, name: str, content: str) -> None:
    assert load(write(tmp_path / name, content)) == []


def test_folder_walk(tmp_path: Path) -> None:
    write(tmp_path / "b.txt", "B")
    write(tmp_path / "a.md", "A")
    write(tmp_path / "sub" / "c.jsonl", '{"text": "C"}\n')
    write(tmp_path / "sub" / "deeper" / "d.html", "<p>D</p>")
    write(tmp_path / ".hidden.txt", "hidden")
    write(tmp_path / ".git" / "e.txt", "hidden dir")
    write(tmp_path / "image.png", b"\x89PNG\0\0")
    write(tmp_path / "Makefile", "all:")
    write(tmp_path / "UPPER.TXT", "U")
    assert [d.text for d in load(tmp_path)] == ["U", "A", "B", "C", "D"]
    assert [d.text for d in load(tmp_path, recursive=False)] == ["U", "A", "B"]
    assert load(tmp_path)[0].source == str(tmp_path / "UPPER.TXT")


# ---------------------------------------------------------------------------------------------
# Bad input


def error_of(path: Path, **kw) -> IngestError:
    with pytest.raises(IngestError) as info:
        load(path, **kw)
    return info.value


def test_invalid_utf8(tmp_path: Path) -> None:
    p = write(tmp_path / "latin.txt", b"line one\ncaf\xe9 au lait\n")
    err = error_of(p)
    msg = str(err)
    assert str(p) in msg
    assert "invalid UTF-8 at byte offset 12" in msg
    assert "re-encode" in msg
    assert err.line == 2 and err.source == str(p)


def test_invalid_utf8_in_jsonl_line(tmp_path: Path) -> None:
    p = write(tmp_path / "r.jsonl", b'{"text": "ok"}\n{"text": "caf\xe9"}\n')
    err = error_of(p)
    assert err.line == 2
    assert "byte offset 28" in str(err) and "UTF-8" in str(err)


def test_binary_file(tmp_path: Path) -> None:
    p = write(tmp_path / "data.txt", b"abc\x00\x01\x02" * 10)
    msg = str(error_of(p))
    assert "looks like a binary file" in msg and str(p) in msg
    p = write(tmp_path / "data.jsonl", b"\x00\x01")
    assert "looks like a binary file" in str(error_of(p))


def test_malformed_json(tmp_path: Path) -> None:
    p = write(tmp_path / "bad.json", '[\n  {"text": "a"},\n  {"text": "b",}\n]')
    err = error_of(p)
    assert "malformed JSON" in str(err) and "line 3" in str(err) and str(p) in str(err)
    assert err.line == 3
    p = write(tmp_path / "num.json", "42")
    assert "object or a list of objects" in str(error_of(p))


def test_malformed_jsonl_line(tmp_path: Path) -> None:
    p = write(tmp_path / "bad.jsonl", '{"text": "a"}\n{"text": "b"\n{"text": "c"}\n')
    err = error_of(p)
    assert err.line == 2
    assert f"{p}:2:" in str(err) and "malformed JSON on line 2" in str(err)


def test_record_without_text(tmp_path: Path) -> None:
    p = write(tmp_path / "r.jsonl", '{"body": "a", "id": 1}\n')
    msg = str(error_of(p))
    assert "no 'text' field" in msg and "body, id" in msg and f"{p}:1" in msg
    p = write(tmp_path / "r.json", '["just a string"]')
    assert "item 0 is a string, expected an object" in str(error_of(p))


def test_record_with_non_string_text(tmp_path: Path) -> None:
    p = write(tmp_path / "r.jsonl", '{"text": "ok"}\n{"text": 12}\n')
    err = error_of(p)
    assert "'text' must be a string, got an integer" in str(err) and err.line == 2
    p = write(tmp_path / "m.json", '{"text": "x", "metadata": [1]}')
    assert "'metadata' must be an object" in str(error_of(p))


def test_file_too_large(tmp_path: Path) -> None:
    p = write(tmp_path / "big.txt", "x" * 3000)
    msg = str(error_of(p, max_bytes=1024 * 1024 // 1000))
    assert "3000 bytes" in msg and "limit" in msg and "--max-file-mb" in msg and str(p) in msg
    p = write(tmp_path / "big.jsonl", '{"text": "x"}\n' * 100)
    assert "--max-file-mb" in str(error_of(p, max_bytes=100))
    assert DEFAULT_MAX_BYTES == 20 * 1024 * 1024


def test_csv_without_text_column(tmp_path: Path) -> None:
    p = write(tmp_path / "r.csv", "name,body\na,b\n")
    msg = str(error_of(p))
    assert "no 'text' or 'content' column" in msg and "name, body" in msg and str(p) in msg


def test_unsupported_and_missing_paths(tmp_path: Path) -> None:
    p = write(tmp_path / "doc.xyz", b"%PDF-1.4")
    assert "unsupported file type '.xyz'" in str(error_of(p))
    assert "no such file" in str(error_of(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match="on_error"):
        load(p, on_error="ignore")
    # Usage errors surface when called, before iterating.
    with pytest.raises(IngestError):
        load_path(tmp_path / "missing")
    with pytest.raises(ValueError):
        load_stream(io.BytesIO(b""), format="pdf")
    with pytest.raises(ValueError):
        load_records([], on_error="nope")


# ---------------------------------------------------------------------------------------------
# on_error="skip"


def test_skip_bad_records(tmp_path: Path) -> None:
    p = write(
        tmp_path / "r.jsonl",
        b'{"text": "a"}\nnot json\n{"text": 5}\n{"no": 1}\n{"text": "caf\xe9"}\n{"text": "b"}\n',
    )
    skipped: list[IngestError] = []
    docs = load(p, on_error="skip", on_skip=skipped.append)
    assert [d.text for d in docs] == ["a", "b"]
    assert [e.line for e in skipped] == [2, 3, 4, 5]
    assert all(e.source == str(p) for e in skipped)


def test_skip_bad_files_in_folder(tmp_path: Path) -> None:
    write(tmp_path / "1.txt", "one")
    write(tmp_path / "2.txt", b"\xff\xfe\xfd garbage \x00")
    write(tmp_path / "3.json", "{broken")
    write(tmp_path / "4.csv", "a,b\n1,2\n")
    write(tmp_path / "5.json", '[{"text": "five"}, 3, {"text": "six"}]')
    write(tmp_path / "6.txt", "x" * 500)
    write(tmp_path / "7.md", "seven")
    skipped: list[IngestError] = []
    docs = load(tmp_path, on_error="skip", on_skip=skipped.append, max_bytes=400)
    assert [d.text for d in docs] == ["one", "five", "six", "seven"]
    assert [Path(e.source).name for e in skipped] == ["2.txt", "3.json", "4.csv", "5.json", "6.txt"]
    with pytest.raises(IngestError):
        load(tmp_path, max_bytes=400)


def test_skip_without_callback_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    p = write(tmp_path / "r.jsonl", '{"text": "a"}\n[1]\n')
    assert [d.text for d in load(p, on_error="skip")] == ["a"]
    assert "expected an object" in caplog.text


# ---------------------------------------------------------------------------------------------
# Streams and Python objects


def test_load_stream_formats() -> None:
    (doc,) = load_stream(io.BytesIO(b"plain text"))
    assert (doc.text, doc.id, doc.source) == ("plain text", None, "stdin")
    (doc,) = load_stream(io.StringIO("---\nyear: 3\n---\n# T\nx"), name="pipe", format="md")
    assert (doc.title, doc.metadata, doc.source) == ("T", {"year": 3}, "pipe")
    (doc,) = load_stream(io.BytesIO(b"<title>H</title><p>x</p>"), format="html")
    assert (doc.title, doc.text) == ("H", "x")
    docs = list(
        load_stream(io.BytesIO(b'[{"text": "a", "id": "k"}, {"text": "b"}]'), format="json")
    )
    assert [(d.text, d.id) for d in docs] == [("a", "k"), ("b", None)]
    docs = list(load_stream(io.BytesIO(b"text,n\nhi,1\n"), format="csv"))
    assert [(d.text, d.metadata) for d in docs] == [("hi", {"n": 1})]
    with pytest.raises(ValueError, match="unknown format"):
        list(load_stream(io.BytesIO(b""), format="pdf"))


def test_load_stream_jsonl_streaming() -> None:
    data = b'\xef\xbb\xbf{"text": "a"}\n\n{"text": "b"}'
    assert [d.text for d in load_stream(io.BytesIO(data), format="jsonl")] == ["a", "b"]
    text = '\ufeff{"text": "a"}\n{"text": "b"}\n'
    assert [d.text for d in load_stream(io.StringIO(text), format="jsonl")] == ["a", "b"]
    # A long stream where a late line is bad: earlier documents come out first.
    lines = b"".join(b'{"text": "%d"}\n' % i for i in range(2000)) + b"{oops\n"
    gen = load_stream(io.BytesIO(lines), name="in", format="jsonl")
    assert next(gen).text == "0"
    with pytest.raises(IngestError, match=r"in:2001: malformed JSON on line 2001"):
        list(gen)


def test_load_stream_errors() -> None:
    with pytest.raises(IngestError, match=r"stdin:1: invalid UTF-8 at byte offset 2"):
        list(load_stream(io.BytesIO(b"ab\xffcd")))
    with pytest.raises(IngestError, match="binary"):
        list(load_stream(io.BytesIO(b"a\x00b")))
    with pytest.raises(IngestError, match="over the .* limit.*--max-file-mb"):
        list(load_stream(io.BytesIO(b"x" * 50), max_bytes=10))


def test_load_records() -> None:
    items = [
        Document("doc text", id="d1", title="D"),
        {"text": "dict text", "id": 3, "k": "v"},
        "plain string",
        "   ",
        {"text": ""},
        Document("with source", source="elsewhere"),
    ]
    docs = list(load_records(items, source="api"))
    assert [d.text for d in docs] == ["doc text", "dict text", "plain string", "with source"]
    assert [d.id for d in docs] == ["d1", "3", None, None]
    assert [d.source for d in docs] == ["api", "api", "api", "elsewhere"]
    assert docs[1].metadata == {"k": "v"}
    with pytest.raises(IngestError, match="item 1 has no 'text' field"):
        list(load_records(["ok", {"body": 1}]))
    skipped: list[IngestError] = []
    got = list(load_records([{"text": 1}, "x"], on_error="skip", on_skip=skipped.append))
    assert [d.text for d in got] == ["x"] and len(skipped) == 1


# ---------------------------------------------------------------------------------------------
# Sentences


def sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text)]


def test_split_sentences_basic() -> None:
    text = 'It rained. Did it stop? Yes! "Good," she said. 42 people came.  Then 3.5 km.'
    assert sentences(text) == [
        "It rained.",
        "Did it stop?",
        "Yes!",
        '"Good," she said.',
        "42 people came.",
        "Then 3.5 km.",
    ]


def test_split_sentences_abbreviations() -> None:
    text = (
        "Dr. Smith and Mr. Jones met Mrs. Lee, e.g. at noon, i.e. lunch. See Fig. 3 for "
        "details. Smith et al. Reported it vs. Jones. The value was 3.14 exactly. "
        "J. R. R. Tolkien wrote it. It cost approx. 5 euros. Room No. 5 is free. The end."
    )
    assert sentences(text) == [
        "Dr. Smith and Mr. Jones met Mrs. Lee, e.g. at noon, i.e. lunch.",
        "See Fig. 3 for details.",
        "Smith et al. Reported it vs. Jones.",
        "The value was 3.14 exactly.",
        "J. R. R. Tolkien wrote it.",
        "It cost approx. 5 euros.",
        "Room No. 5 is free.",
        "The end.",
    ]


def test_split_sentences_lowercase_after_period_not_split() -> None:
    assert sentences("Use the etc. directory. Next one.") == [
        "Use the etc. directory.",
        "Next one.",
    ]


def test_split_sentences_newlines() -> None:
    text = (
        "# Title\n\nFirst para line one\nwrapped continuation. Second.\n\n- item one\n- item two"
        "\n1. Step one. More.\nHeading\nNext line\n\n  \n   Indented last  \n"
    )
    assert sentences(text) == [
        "# Title",
        "First para line one\nwrapped continuation.",
        "Second.",
        "- item one",
        "- item two",
        "1. Step one.",
        "More.",
        "Heading",
        "Next line",
        "Indented last",
    ]
    assert split_sentences("") == [] and split_sentences(" \n\t ") == []


def test_split_sentences_spans_are_trimmed_and_ordered() -> None:
    text = "  Ab cd.   Ef gh!\n\n\tIj kl?  "
    spans = split_sentences(text)
    assert spans == [(2, 8), (11, 17), (20, 26)]


# ---------------------------------------------------------------------------------------------
# Chunking


def word_count(text: str) -> int:
    return len(text.split())


SAMPLE = " ".join(
    f"Sentence number {i} talks about topic {i % 7} with some extra words here." for i in range(60)
)


def check_chunks(text: str, chunks, max_tokens: int, count) -> None:
    assert [c.position for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert text[c.start : c.end] == c.text == c.text.strip()
        assert count(c.text) <= max_tokens
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert a.start < b.start and a.end < b.end


def test_approx_tokens() -> None:
    assert approx_tokens("") == 0
    assert approx_tokens("the cat sat") == 3
    assert approx_tokens("information, please!") == 2 + 1 + 1 + 1
    assert approx_tokens("日本語") == 3
    sentence = "the quick brown fox jumps over the lazy dog near a riverbank"
    n_words = len(sentence.split())
    assert n_words <= approx_tokens(sentence) <= 1.5 * n_words


@pytest.mark.parametrize("count", [None, word_count])
def test_chunk_text_packs_and_overlaps(count) -> None:
    counter = count or approx_tokens
    chunks = chunk_text(SAMPLE, max_tokens=40, overlap=15, count_tokens=count)
    assert len(chunks) > 3
    check_chunks(SAMPLE, chunks, 40, counter)
    sents = sentences(SAMPLE)
    # No sentence lost, and whole sentences only (every chunk is a run of sentences).
    for s in sents:
        assert any(s in c.text for c in chunks)
    for c in chunks:
        assert c.text.startswith("Sentence") and c.text.endswith(".")
    # Overlap: each next chunk starts with the trailing sentences of the previous one.
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.start < a.end
        shared = SAMPLE[b.start : a.end]
        assert 0 < counter(shared) <= 15
    # Chunks are full: adding the next sentence would overflow.
    for a in chunks[:-1]:
        following = [s for s in split_sentences(SAMPLE) if s[0] >= a.end][0]
        assert counter(SAMPLE[a.start : following[1]]) > 40


def test_chunk_text_no_overlap() -> None:
    chunks = chunk_text(SAMPLE, max_tokens=40, overlap=0)
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.start > a.end
    assert "".join(c.text for c in chunks).replace(" ", "") == SAMPLE.replace(" ", "")


def test_chunk_text_small_and_empty() -> None:
    assert chunk_text("") == [] and chunk_text("  \n ") == []
    (c,) = chunk_text("  Just one sentence.  ")
    assert (c.text, c.start, c.end, c.position) == ("Just one sentence.", 2, 20, 0)


def test_chunk_text_splits_huge_sentence() -> None:
    text = "Intro. " + " ".join(f"word{i}" for i in range(1000)) + ". Outro."
    chunks = chunk_text(text, max_tokens=50, overlap=10, count_tokens=word_count)
    check_chunks(text, chunks, 50, word_count)
    covered = " ".join(c.text for c in chunks)
    for i in range(1000):
        assert f"word{i} " in covered + " " or f"word{i}." in covered
    # Pieces are cut on word boundaries.
    for c in chunks:
        assert re.fullmatch(r"(Intro\. )?(word\d+ )*word\d+\.?( Outro\.)?|Outro\.", c.text), c.text
    # Pieces are reasonably full: not more than ~2x the minimum number of chunks.
    assert len(chunks) <= 2 * (1003 // 50 + 1)


def test_chunk_text_splits_giant_word() -> None:
    text = "Start. " + "x" * 5000 + " end."
    chunks = chunk_text(text, max_tokens=16, overlap=0)
    check_chunks(text, chunks, 16, approx_tokens)
    assert "".join(c.text for c in chunks).replace(" ", "") == text.replace(" ", "")


def test_chunk_text_non_additive_counter() -> None:
    # Counts more than the sum of its parts: chunks must still respect the limit.
    def lumpy(s: str) -> int:
        return len(s.split()) + s.count(". ") * 3

    chunks = chunk_text(SAMPLE, max_tokens=30, overlap=8, count_tokens=lumpy)
    check_chunks(SAMPLE, chunks, 30, lumpy)
    for s in sentences(SAMPLE):
        assert any(s in c.text for c in chunks)


def test_chunk_text_count_calls_linear_in_sentences() -> None:
    calls = {"n": 0, "chars": 0}

    def counting(s: str) -> int:
        calls["n"] += 1
        calls["chars"] += len(s)
        return len(s.split())

    text = " ".join(f"This is sentence {i} of a long text." for i in range(20000))
    n_sent = len(split_sentences(text))
    chunks = chunk_text(text, max_tokens=64, overlap=16, count_tokens=counting)
    assert n_sent == 20000
    # One call per sentence plus one verification per chunk; total text counted is O(n).
    assert calls["n"] <= n_sent + len(chunks) + 10
    assert calls["chars"] <= 3 * len(text)


def test_chunk_text_validation() -> None:
    with pytest.raises(ValueError, match="max_tokens must be an integer >= 8"):
        chunk_text("x", max_tokens=4)
    with pytest.raises(ValueError, match="overlap must be"):
        chunk_text("x", max_tokens=16, overlap=16)
    with pytest.raises(ValueError, match="overlap must be"):
        chunk_text("x", overlap=-1)


# ---------------------------------------------------------------------------------------------
# Sample corpus


def test_sample_corpus() -> None:
    docs = load_samples()
    assert 13 <= len(docs) <= 17
    for doc in docs:
        assert isinstance(doc.metadata.get("topic"), str) and doc.metadata["topic"]
        assert isinstance(doc.metadata.get("year"), int)
        assert doc.title
        if "#page=" in doc.source:  # the PDF's pages are short
            assert 50 <= len(doc.text.split()) <= 150
        else:
            assert 150 <= len(doc.text.split()) <= 420
    assert len({d.metadata["topic"] for d in docs}) >= 6
    # The whole folder also loads (questions.txt comes along as a plain document).
    assert len(load(SAMPLES_DIR)) == len(docs) + 1
    questions = sample_questions()
    assert 7 <= len(questions) <= 9
    assert all(q.endswith("?") for q in questions)
