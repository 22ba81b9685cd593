#!/usr/bin/env python3
"""Write src/engram/samples/makerspace-handbook.pdf: a small real PDF, byte-for-byte reproducible.

The sample corpus holds one PDF so that PDF ingestion, page anchors (``...pdf#page=2``) and
cited answers from a PDF can be shown and tested. This script writes it without any PDF library:
three pages of Helvetica text, an info dictionary with the title, no dates, so the same input
gives the same bytes. Run it again after editing ``PAGES``:

    python scripts/make_sample_pdf.py [OUT]
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

TITLE = "Greenfield Makerspace Member Handbook"
PAGES = [
    (
        "Opening hours and access",
        "The Greenfield Makerspace is open from 08:00 to 22:00 every day except public "
        "holidays. Members enter with a personal key fob; the fob deposit is 25 euros and is "
        "refunded when the membership ends. Guests must be signed in at the front desk by a "
        "member, and each member may bring at most two guests per visit. The last person to "
        "leave switches off the compressor and locks the loading door.",
    ),
    (
        "Laser cutter rules",
        "Only members who have completed the 90-minute laser cutter induction may use the "
        "laser cutter. Never cut PVC or vinyl: when heated they release chlorine gas, which "
        "harms people and corrodes the machine's optics. The fume extractor must run for the "
        "whole job, and the operator stays beside the machine until the job is finished. "
        "Keep the lid closed and the fire blanket within reach.",
    ),
    (
        "3D printer bookings",
        "The three 3D printers are booked through the makerspace calendar, for at most four "
        "hours per booking. PLA filament is charged at 5 cents per gram, weighed after the "
        "print. Failed prints are cleared from the bed by the member who started them, and a "
        "jammed nozzle is reported to the workshop steward rather than taken apart.",
    ),
]

_OUT = (
    Path(__file__).resolve().parents[1] / "src" / "engram" / "samples" / "makerspace-handbook.pdf"
)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _content(heading: str, body: str, number: int) -> bytes:
    """The page's content stream: a heading, wrapped body text and a page number."""
    lines = [
        "BT",
        "/F2 16 Tf 72 740 Td 20 TL",
        f"({_escape(heading)}) Tj",
        "/F1 11 Tf 0 -30 Td 15 TL",
    ]
    for line in textwrap.wrap(body, 88):
        lines.append(f"({_escape(line)}) Tj T*")
    lines += ["ET", "BT /F1 9 Tf 300 40 Td", f"(Page {number}) Tj", "ET"]
    return "\n".join(lines).encode("ascii")


def build_pdf(title: str, pages: list[tuple[str, str]]) -> bytes:
    """A PDF 1.4 file with one page per ``(heading, body)``."""
    n = len(pages)
    # Objects: 1 catalog, 2 page tree, 3-4 fonts, 5 info, then (page, content) pairs.
    page_ids = [6 + 2 * i for i in range(n)]
    kids = " ".join(f"{p} 0 R" for p in page_ids)
    font = "<< /Type /Font /Subtype /Type1 /BaseFont /{} /Encoding /WinAnsiEncoding >>"
    producer = "engram scripts/make_sample_pdf.py"
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode(),
        3: font.format("Helvetica").encode(),
        4: font.format("Helvetica-Bold").encode(),
        5: f"<< /Title ({_escape(title)}) /Producer ({producer}) >>".encode(),
    }
    for i, (heading, body) in enumerate(pages):
        page, content = page_ids[i], page_ids[i] + 1
        stream = _content(heading, body, i + 1)
        objects[page] = (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content} 0 R "
            "/Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> >>"
        ).encode()
        objects[content] = (
            f"<< /Length {len(stream)} >>\nstream\n".encode() + stream + b"\nendstream"
        )
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for num in sorted(objects):
        offsets[num] = len(out)
        out += f"{num} 0 obj\n".encode() + objects[num] + b"\nendobj\n"
    xref = len(out)
    size = max(objects) + 1
    out += f"xref\n0 {size}\n0000000000 65535 f \n".encode()
    for num in range(1, size):
        out += f"{offsets[num]:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {size} /Root 1 0 R /Info 5 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else _OUT
    out.write_bytes(build_pdf(TITLE, PAGES))
    print(f"wrote {out} ({out.stat().st_size} bytes, {len(PAGES)} pages)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
