"""``engram eval answers``: answers judged as a user sees them: right, wrong, or abstained.

The file holds one JSON object a line: ``question`` and ``answers``, the accepted answer
strings (any one, matched as whole words in the answer, case-insensitive). An empty
``answers`` list means memory does not hold the answer: the right response is to abstain.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from engram.errors import EngramError


def load_questions(path: str | Path) -> list[dict[str, Any]]:
    """The questions of a JSON-lines file, checked."""
    out = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise EngramError(f"cannot read {path}: {exc.strerror or exc}") from exc
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise EngramError(f"{path}:{n}: not JSON ({exc})") from exc
        if not isinstance(row, dict) or not isinstance(row.get("question"), str):
            raise EngramError(f"{path}:{n}: needs a 'question' string")
        answers = row.get("answers", [])
        if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            raise EngramError(f"{path}:{n}: 'answers' must be a list of strings")
        out.append({"question": row["question"], "answers": answers})
    return out


def is_right(answer: str, accepted: list[str]) -> bool:
    """Whether any accepted string occurs in ``answer`` as whole words (case-insensitive)."""
    for a in accepted:
        pattern = r"(?<!\w)" + re.escape(a.strip()) + r"(?!\w)"
        if a.strip() and re.search(pattern, answer, re.IGNORECASE):
            return True
    return False


def judge(answer: Any, accepted: list[str]) -> str:
    """``right``, ``wrong``, ``abstained`` (no answer where one exists) or ``abstained-right``."""
    if not accepted:
        return "abstained-right" if answer.no_answer else "wrong"
    if answer.no_answer:
        return "abstained"
    return "right" if is_right(answer.answer, accepted) else "wrong"


def evaluate_answers(mem: Any, path: str | Path, reader: str | None = None) -> dict[str, Any]:
    """Ask every question of ``path`` against ``mem`` and count the verdicts."""
    rows = []
    for q in load_questions(path):
        started = time.perf_counter()
        answer = mem.ask(q["question"], reader=reader)
        rows.append(
            {
                "question": q["question"],
                "accepted": q["answers"],
                "answer": answer.answer,
                "guess": answer.raw if answer.no_answer else "",
                "confidence": round(answer.confidence, 4),
                "verdict": judge(answer, q["answers"]),
                "seconds": round(time.perf_counter() - started, 2),
            }
        )
    answerable = [r for r in rows if r["accepted"]]
    unanswerable = [r for r in rows if not r["accepted"]]
    return {
        "questions": len(rows),
        "answerable": len(answerable),
        "right": sum(r["verdict"] == "right" for r in answerable),
        "wrong": sum(r["verdict"] == "wrong" for r in rows),
        "abstained": sum(r["verdict"] == "abstained" for r in answerable),
        "unanswerable": len(unanswerable),
        "abstained_right": sum(r["verdict"] == "abstained-right" for r in unanswerable),
        "rows": rows,
    }
