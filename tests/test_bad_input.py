"""Bad input gets a clear error (or is handled) and loses nothing already stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engram.errors import IngestError


def _count(mem) -> int:
    return mem.stats()["chunks"]


def test_empty_file_is_handled(mem, tmp_path):
    f = tmp_path / "empty.txt"
    f.write_text("")
    (tmp_path / "blank.md").write_text("  \n\t\n")
    report = mem.add([f, tmp_path / "blank.md"])
    assert report.added == 0 and report.skipped == 2  # reported, not silently dropped
    assert "empty.txt: no text to add" in report.errors[0] and "blank.md" in report.errors[1]
    assert _count(mem) == 60


def test_binary_file_is_refused(mem, tmp_path):
    f = tmp_path / "blob.txt"
    f.write_bytes(b"\x00\x01\x02binary\x00" * 100)
    with pytest.raises(IngestError, match="binary"):
        mem.add(f)
    assert _count(mem) == 60


def test_invalid_utf8_names_the_offset(mem, tmp_path):
    f = tmp_path / "latin1.txt"
    f.write_bytes("caf\u00e9 au lait".encode("latin-1"))
    with pytest.raises(IngestError, match="UTF-8") as err:
        mem.add(f)
    assert "latin1.txt" in str(err.value)
    assert _count(mem) == 60


def test_malformed_jsonl_line_keeps_earlier_records(mem, tmp_path):
    f = tmp_path / "records.jsonl"
    f.write_text(
        json.dumps({"id": "r1", "text": "First record about volcanoes."})
        + "\n"
        + "{not json\n"
        + json.dumps({"id": "r3", "text": "Third record about glaciers."})
        + "\n"
    )
    with pytest.raises(IngestError, match=":2"):
        mem.add(f)
    # the record before the bad line was kept; nothing older was lost
    assert mem.search("volcanoes", mode="keyword")[0].doc_id == "r1"
    assert _count(mem) == 61
    # skipping mode reports the line and keeps going
    report = mem.add(f, on_error="skip")
    assert len(report.errors) == 1 and ":2" in report.errors[0]
    assert mem.search("glaciers", mode="keyword")[0].doc_id == "r3"


def test_huge_file_is_refused_with_the_limit(mem, tmp_path):
    f = tmp_path / "huge.txt"
    with open(f, "w") as out:
        line = "A line of filler text about nothing in particular. " * 20 + "\n"
        for _ in range(50 * 2**20 // len(line) + 1):
            out.write(line)
    assert f.stat().st_size >= 50 * 2**20
    with pytest.raises(IngestError, match="max-file-mb"):
        mem.add(f)
    assert _count(mem) == 60


def test_bad_file_in_a_folder_is_skipped_and_reported(mem, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "good.md").write_text("# Good\nPenguins huddle together to keep warm.")
    (folder / "bad.txt").write_bytes(b"ok \xc3\x28 broken")
    report = mem.add(Path(folder), on_error="skip")
    assert report.added == 1 and len(report.errors) == 1 and "bad.txt" in report.errors[0]
    assert mem.search("penguins", mode="keyword")[0].title == "Good"


@pytest.mark.parametrize("query", ["", "   ", "?!", "... -- ,,,"])
def test_empty_or_punctuation_query_is_an_error(mem, query, capsys, monkeypatch):
    from engram.cli import main
    from engram.errors import QueryError

    for mode in ("hybrid", "keyword", "vector"):
        with pytest.raises(QueryError, match="at least one letter or digit"):
            mem.search(query, mode=mode)
    with pytest.raises(QueryError):
        mem.ask(query)
    mem.save()
    monkeypatch.setenv("ENGRAM_STORE", mem.path)
    assert main(["search", query]) == 1
    assert "empty query" in capsys.readouterr().err
    assert mem.search("uniq7", k=1, mode="keyword")  # a real query still works


def test_folder_walk_reports_each_skip_once_and_exits_0(tmp_path, capsys, monkeypatch, embedder):
    from engram.cli import main

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.md").write_text("# Good\nPenguins huddle together to keep warm.")
    (folder / "empty.txt").write_text("")
    (folder / "blank.txt").write_text("   \n\n ")
    (folder / "rows.json").write_text(json.dumps([{"name": f"r{i}"} for i in range(43)]))
    (folder / "bad.txt").write_bytes(b"ok \xc3\x28 broken")
    monkeypatch.setenv("ENGRAM_STORE", str(tmp_path / "s.db"))
    assert main(["add", str(folder)]) == 0
    out, err = capsys.readouterr()
    assert "added 1," in out and "skipped 46 inputs (4 sources)" in out
    lines = err.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith("skipped: ") for line in lines), lines
    assert any("rows.json: 43 records skipped; first:" in line for line in lines)
    assert any("empty.txt: no text to add" in line for line in lines)
    assert main(["add", str(folder), "--strict"]) == 1  # skips are errors under --strict
    capsys.readouterr()
    assert main(["add", str(folder / "rows.json")]) == 1  # nothing at all could be read
