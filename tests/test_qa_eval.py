"""``engram eval qa`` on a tiny SQuAD-format file, with the real default models."""

from __future__ import annotations

import json

import pytest

from engram.cli import main
from engram.evaluate.qa import exact_match, token_f1

PASSAGES = {
    "Harbour Ferry": "The harbour ferry was launched in 1911 by the shipwright Mara Quist. "
    "It carries 120 passengers and crosses the bay in 25 minutes.",
    "Glass Museum": "The glass museum opened in 1987 in a former brewery. "
    "Its largest piece is a chandelier with 4,000 crystals.",
}
QUESTIONS = [
    ("Harbour Ferry", "Who launched the harbour ferry?", "Mara Quist"),
    ("Harbour Ferry", "How many passengers does the harbour ferry carry?", "120"),
    ("Glass Museum", "How many crystals does the glass museum's chandelier have?", "4,000"),
]


def squad_file(path):
    data = []
    for title, context in PASSAGES.items():
        qas = [
            {"id": f"q{i}", "question": q, "answers": [{"text": a, "answer_start": 0}]}
            for i, (t, q, a) in enumerate(QUESTIONS)
            if t == title
        ]
        data.append({"title": title, "paragraphs": [{"context": context, "qas": qas}]})
    path.write_text(json.dumps({"version": "1.1", "data": data}))
    return path


def test_squad_scores():
    assert exact_match("the Mara Quist.", ["Mara Quist"]) == 1.0
    assert token_f1("Mara", ["Mara Quist"]) == pytest.approx(2 / 3)
    assert token_f1("", ["Mara Quist"]) == 0.0


@pytest.mark.slow
def test_eval_qa_reports_every_mode_and_writes_per_question_details(tmp_path, capsys):
    details = tmp_path / "details.jsonl"
    code = main(
        [
            "eval",
            "qa",
            str(squad_file(tmp_path / "tiny.json")),
            "--mode",
            "all",
            "--keep-store",
            str(tmp_path / "qa.db"),
            "--details",
            str(details),
            "--json",
        ]
    )
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["mode"] for r in rows] == ["memory", "closed-book", "no-gold"]
    lines = [json.loads(line) for line in details.read_text().splitlines()]
    assert len(lines) == 3 * len(QUESTIONS)
    for row in rows:
        mine = [d for d in lines if d["mode"] == row["mode"]]
        assert row["questions"] == len(mine) == len(QUESTIONS)
        assert row["recall@5"] == 1.0  # two passages: each question's is always recalled
        # the summary is the mean of the per-question lines
        assert row["f1"] == pytest.approx(sum(d["f1"] for d in mine) / len(mine), abs=1e-3)
        abstained = sum(d["answer"] is None for d in mine) / len(mine)
        assert row["abstained"] == pytest.approx(abstained, abs=1e-3)
    memory = [d for d in lines if d["mode"] == "memory"]
    assert rows[0]["reader"] == "extract" and all(0 <= d["confidence"] <= 1 for d in memory)
    # extract answers are verbatim spans of the passages
    text = " ".join(PASSAGES.values())
    assert all(d["answer"] is None or d["answer"] in text for d in memory)
    assert rows[0]["f1"] > rows[1]["f1"]  # memory beats the model alone
