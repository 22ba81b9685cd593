"""Does the sample PDF crowd the notes out? Answer recall over the sample questions, with and
without the PDF's pages in the store.

    python -m bench.sample_pdf QUESTIONS.jsonl

QUESTIONS.jsonl holds ``{"question": ..., "answers": [...]}`` lines about the sample notes (the
project's samples_qa ``dev.jsonl``); questions without answers are left out. A question counts
as found at k when one of the top k hits contains an answer as a whole word (case-insensitive).
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path

from engram.memory import Memory
from engram.samples import load_samples


def _found(hit_text: str, answers: list[str]) -> bool:
    text = hit_text.lower()
    return any(re.search(r"\b" + re.escape(a.lower()) + r"(?!\w)", text) for a in answers)


def measure(store: Path, docs: list, questions: list[dict]) -> dict[str, int]:
    top1 = top5 = pdf = 0
    with Memory(store, threads=1) as mem:
        mem.add(docs)
        for q in questions:
            hits = mem.search(q["question"], k=5)
            found = [_found(h.text, q["answers"]) for h in hits]
            top1 += bool(found and found[0])
            top5 += any(found)
            pdf += sum("#page=" in h.source for h in hits)
    return {"questions": len(questions), "top1": top1, "top5": top5, "pdf_hits_in_top5": pdf}


def main(argv: list[str]) -> int:
    lines = Path(argv[1]).read_text(encoding="utf-8").splitlines()
    questions = [q for q in map(json.loads, filter(None, lines)) if q["answers"]]
    docs = load_samples()
    notes = [d for d in docs if "#page=" not in d.source]
    with tempfile.TemporaryDirectory() as tmp:
        for label, subset in (("notes only", notes), ("notes + PDF", docs)):
            print(label, json.dumps(measure(Path(tmp, f"{len(subset)}.db"), subset, questions)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
