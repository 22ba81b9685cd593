"""PDF and Word ingestion with page/heading anchors, and folder walks that say what they skipped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import docx
import pytest

from engram.errors import IngestError
from engram.ingest import load_path
from engram.samples import SAMPLES_DIR, load_samples, sample_questions

ROOT = Path(__file__).resolve().parents[1]
PDF = SAMPLES_DIR / "makerspace-handbook.pdf"


def test_sample_pdf_is_reproducible(tmp_path: Path) -> None:
    out = tmp_path / "again.pdf"
    subprocess.run([sys.executable, str(ROOT / "scripts/make_sample_pdf.py"), str(out)], check=True)
    assert out.read_bytes() == PDF.read_bytes()


def test_pdf_pages_are_documents_with_anchors() -> None:
    docs = list(load_path(PDF))
    assert [d.source for d in docs] == [f"{PDF}#page={n}" for n in (1, 2, 3)]
    assert [d.id for d in docs] == [f"{PDF.resolve()}#page={n}" for n in (1, 2, 3)]
    assert {d.title for d in docs} == {"Greenfield Makerspace Member Handbook"}
    assert [d.metadata["page"] for d in docs] == [1, 2, 3]
    assert all(d.metadata["pages"] == 3 and d.metadata["format"] == "pdf" for d in docs)
    assert "chlorine gas" in docs[1].text and "chlorine" not in docs[0].text + docs[2].text
    assert "Laser cutter rules" in docs[1].text


def test_pdf_without_text_and_broken_pdf(tmp_path: Path) -> None:
    import pypdf

    writer = pypdf.PdfWriter()
    writer.add_blank_page(612, 792)  # a page that draws nothing, like a scan without OCR
    scan = tmp_path / "scan.pdf"
    with scan.open("wb") as fh:
        writer.write(fh)
    with pytest.raises(IngestError, match="no extractable text"):
        list(load_path(scan))
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4\nthis is not really a PDF")
    with pytest.raises(IngestError, match="cannot read PDF") as err:
        list(load_path(broken))
    assert str(broken) in str(err.value)
    skipped: list[IngestError] = []
    assert list(load_path(tmp_path, on_error="skip", on_skip=skipped.append)) == []
    assert sorted(Path(e.source).name for e in skipped) == ["broken.pdf", "scan.pdf"]


def _write_docx(path: Path) -> Path:
    d = docx.Document()
    d.core_properties.title = "Team Handbook"
    d.add_paragraph("Read this before your first week.")
    d.add_heading("Travel", level=1)
    d.add_paragraph("Book trains for journeys under four hours.")
    d.add_heading("Hotels", level=2)
    d.add_paragraph("The nightly cap is 180 euros.")
    table = d.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "City", "Cap"
    table.cell(1, 0).text, table.cell(1, 1).text = "Oslo", "210 euros"
    d.add_heading("Equipment", level=1)
    d.add_heading("Laptops", level=2)
    d.add_paragraph("Laptops are replaced every four years.")
    d.add_heading("Travel", level=1)
    d.add_paragraph("A second section with a repeated heading.")
    d.save(str(path))
    return path


def test_docx_sections_are_documents_with_heading_anchors(tmp_path: Path) -> None:
    path = _write_docx(tmp_path / "handbook.docx")
    docs = list(load_path(path))
    anchors = [d.source.removeprefix(str(path)) for d in docs]
    assert anchors == [
        "",
        "#heading=travel",
        "#heading=hotels",
        "#heading=laptops",
        "#heading=travel-2",
    ]
    assert {d.title for d in docs} == {"Team Handbook"}
    hotels = docs[2]
    assert hotels.metadata["heading"] == "Hotels" and hotels.metadata["format"] == "docx"
    # The headings above a section lead its text; table rows come along as text.
    assert hotels.text.startswith("Travel\n\nHotels\n\n") and "Oslo | 210 euros" in hotels.text
    assert docs[3].text.startswith("Equipment\n\nLaptops\n\n")
    assert docs[0].text == "Read this before your first week."
    assert len({d.id for d in docs}) == len(docs)


def test_broken_docx(tmp_path: Path) -> None:
    p = tmp_path / "notes.docx"
    p.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(IngestError, match="cannot read Word document"):
        list(load_path(p))


def test_folder_walk_reports_what_it_skips(tmp_path: Path, make_memory, capsys) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.md").write_text("# A\n\nThe ferry leaves at nine.", encoding="utf-8")
    (tmp_path / "notes" / "photo.png").write_bytes(b"\x89PNG")
    (tmp_path / "notes" / "Makefile").write_text("all:", encoding="utf-8")
    (tmp_path / "notes" / ".secret.txt").write_text("hidden", encoding="utf-8")
    (tmp_path / "notes" / ".git").mkdir()
    (tmp_path / "notes" / "sub").mkdir()
    (tmp_path / "notes" / "sub" / "b.txt").write_text("The bus leaves at ten.", encoding="utf-8")
    _write_docx(tmp_path / "notes" / "handbook.docx")
    seen: list[tuple[str, str]] = []
    docs = list(
        load_path(
            tmp_path / "notes",
            recursive=False,
            on_ignored=lambda p, r: seen.append((Path(p).name, r)),
        )
    )
    assert {Path(d.source.split("#")[0]).name for d in docs} == {"a.md", "handbook.docx"}
    assert sorted(seen) == [
        (".git", "hidden folder"),
        (".secret.txt", "hidden file"),
        ("Makefile", "unsupported file type without an extension"),
        ("photo.png", "unsupported file type '.png'"),
        ("sub", "subfolder (not recursive)"),
    ]
    mem = make_memory()
    report = mem.add(tmp_path / "notes")
    assert report.added == 7 and not report.errors  # a.md, b.txt and 5 Word sections
    assert sorted(e.split(": ", 1)[1] for e in report.ignored) == [
        "hidden file",
        "hidden folder",
        "unsupported file type '.png'",
        "unsupported file type without an extension",
    ]


def test_cli_add_prints_what_it_did_not_ingest(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("Otters hold hands while they sleep.", encoding="utf-8")
    (tmp_path / "in" / "clip.mp4").write_bytes(b"\0\0")
    cmd = [
        sys.executable,
        "-m",
        "engram.cli",
        "--store",
        str(tmp_path / "s.db"),
        "add",
        str(tmp_path / "in"),
    ]
    out = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["added"] == 1
    assert report["ignored"] == [f"{tmp_path / 'in' / 'clip.mp4'}: unsupported file type '.mp4'"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert (
        f"not ingested: {tmp_path / 'in' / 'clip.mp4'}: unsupported file type '.mp4'" in out.stderr
    )


def test_sample_pdf_is_searchable_by_page_and_does_not_crowd_out_the_notes(
    sample_store, make_memory, tmp_path
) -> None:
    import shutil

    shutil.copy(sample_store, tmp_path / "s.db")
    mem = make_memory("s.db")
    hits = mem.search("Why must PVC never be cut with the laser cutter?", k=3)
    assert hits[0].source.endswith("makerspace-handbook.pdf#page=2")
    assert hits[0].metadata["page"] == 2 and hits[0].metadata["topic"] == "makerspace"
    hits = mem.search("makerspace printer filament price per gram", k=1, where={"page": 3})
    assert hits and hits[0].source.endswith("#page=3")
    # The sample questions about the notes still find their note first.
    for question in sample_questions()[:-1]:
        top = mem.search(question, k=1)[0]
        assert top.source.endswith(".md"), (question, top.source)
    assert len(load_samples()) == len(list(SAMPLES_DIR.glob("*.md"))) + 3
