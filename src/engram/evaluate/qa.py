"""``engram eval qa``: SQuAD-format question answering, with memory and closed-book."""

from __future__ import annotations

import gzip
import json
import random
import re
import string
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import IO, Any

from engram.answer.citations import strip_citations  # re-exported: the one citation regex
from engram.errors import EngramError
from engram.types import Document

SHORT_ANSWER = "Reply with the answer only: a short phrase, not a sentence."


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 normalisation: lowercase, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, golds: list[str]) -> float:
    return float(any(normalize_answer(prediction) == normalize_answer(g) for g in golds))


def token_f1(prediction: str, golds: list[str]) -> float:
    def f1(pred: str, gold: str) -> float:
        p, g = normalize_answer(pred).split(), normalize_answer(gold).split()
        common = Counter(p) & Counter(g)
        same = sum(common.values())
        if same == 0:
            return 0.0
        precision, recall = same / len(p), same / len(g)
        return 2 * precision * recall / (precision + recall)

    return max((f1(prediction, g) for g in golds), default=0.0)


def load_squad(path: str | Path) -> tuple[list[Document], list[dict[str, Any]]]:
    """Passages as Documents (id ``title#n``) and questions with their gold passage and answers."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            data = json.load(f)["data"]
    except (OSError, ValueError, KeyError) as exc:
        raise EngramError(f"{path}: not a SQuAD-format JSON file ({exc})") from exc
    docs, questions = [], []
    for article in data:
        for n, para in enumerate(article["paragraphs"]):
            pid = f"{article['title']}#{n}"
            docs.append(Document(text=para["context"], id=pid, title=article["title"], source=pid))
            for qa in para["qas"]:
                questions.append(
                    {
                        "id": qa["id"],
                        "question": qa["question"],
                        "passage": pid,
                        "answers": [a["text"] for a in qa["answers"]],
                        "article": article["title"],
                    }
                )
    return docs, questions


def sample(
    questions: list[dict[str, Any]], limit: int | None, seed: int = 0
) -> list[dict[str, Any]]:
    if not limit or limit >= len(questions):
        return questions
    picked = sorted(random.Random(seed).sample(range(len(questions)), limit))
    return [questions[i] for i in picked]


def closed_book(
    generator: Any,
    question: str,
    *,
    system: str = SHORT_ANSWER,
    max_tokens: int = 128,
    stop: list[str] | None = None,
) -> str:
    """The model's answer to ``question`` alone: the system message and the question."""
    return generator.complete(
        [{"role": "system", "content": system}, {"role": "user", "content": question}],
        max_tokens=max_tokens,
        stop=stop,
    )


QA_MODES = ("memory", "closed-book", "no-gold")


def _predict(mem: Any, mode: str, q: dict[str, Any], reader: str | None) -> Any:
    """The answer to one question in ``mode`` (an ``Answer``, or a string for closed-book)."""
    if mode == "closed-book":
        return closed_book(
            mem.generator,
            q["question"],
            max_tokens=mem.config.answer_max_tokens,
            stop=mem.config.answer_stop,
        )
    # no-gold: the question's own passage is kept out of recall, so memory holds no answer
    # (unless another passage repeats it): the right response is to abstain.
    where = {"doc_id": {"$ne": q["passage"]}} if mode == "no-gold" else None
    hits = mem.recall_evidence(q["question"], where=where)
    return mem.answer(q["question"], hits, persona=SHORT_ANSWER, reader=reader)


def _detail(mode: str, q: dict[str, Any], result: Any, prediction: str, f1: float) -> str:
    """One question's outcome as a JSON line (``--details``)."""
    answered = isinstance(result, str) or not result.no_answer
    row = {
        "mode": mode,
        "question": q["question"],
        "answers": q["answers"],
        "answer": prediction if answered else None,
        "guess": strip_citations(result if isinstance(result, str) else result.raw or ""),
        "confidence": None if isinstance(result, str) else round(result.confidence, 4),
        "f1": round(f1, 4),
    }
    return json.dumps(row, ensure_ascii=False) + "\n"


def _score_mode(
    mem: Any,
    mode: str,
    questions: list[dict[str, Any]],
    reader: str | None,
    progress: Callable[[str], None] | None,
    details: IO[str] | None = None,
) -> dict[str, Any]:
    em = f1 = abstained = 0.0
    seconds: list[float] = []
    used = ""
    for i, q in enumerate(questions):
        started = time.perf_counter()
        result = _predict(mem, mode, q, reader)
        seconds.append(time.perf_counter() - started)
        if isinstance(result, str):
            prediction = result
        else:
            used = result.reader or used
            abstained += result.no_answer
            prediction = "" if result.no_answer else result.answer
        prediction = strip_citations(prediction)
        score = token_f1(prediction, q["answers"])
        em += exact_match(prediction, q["answers"])
        f1 += score
        if details:
            details.write(_detail(mode, q, result, prediction, score))
        if progress:
            progress(f"{mode} {i + 1}/{len(questions)}")
    n = max(1, len(questions))
    ordered = sorted(seconds) or [0.0]
    return {
        "mode": mode,
        "reader": used or None,
        "exact_match": round(em / n, 4),
        "f1": round(f1 / n, 4),
        "abstained": round(abstained / n, 4),
        "seconds_per_question": round(sum(seconds) / n, 2),
        "seconds_p50": round(ordered[len(ordered) // 2], 2),
        "seconds_p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2),
    }


def evaluate_qa(
    path: str | Path,
    modes: tuple[str, ...] = ("memory",),
    limit: int | None = None,
    store: str | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    reader: str | None = None,
    details: str | Path | None = None,
    **memory_options: Any,
) -> list[dict[str, Any]]:
    """Index the passages, answer each (sampled) question per mode, and score.

    Modes: ``memory`` (recall + cited prompt + reader), ``closed-book`` (the same model with no
    memory) and ``no-gold`` (memory with each question's own passage kept out of recall: the
    share that abstains is the figure to read). Passage recall@1/@5 measures retrieval; exact
    match and token F1 the answers (an abstention scores 0). ``reader`` overrides the config's;
    ``details`` names a JSON-lines file that gets every question's answer, guess and confidence.
    """
    from engram.memory import Memory

    unknown = set(modes) - set(QA_MODES)
    if unknown:
        raise EngramError(f"unknown qa mode {sorted(unknown)[0]!r}: use {', '.join(QA_MODES)}")
    docs, questions = load_squad(path)
    questions = sample(questions, limit, seed)
    # SQuAD answers are short spans: cap the answer length and stop at the first line break.
    memory_options.setdefault("answer_max_tokens", 32)
    memory_options.setdefault("answer_stop", ["\n"])
    results = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        Memory(store or str(Path(tmp) / "qa.db"), **memory_options) as mem,
        open(details, "w", encoding="utf-8") if details else nullcontext() as out,
    ):
        mem.add_documents(docs)
        r1 = r5 = 0.0
        for q in questions:
            ranked = list(dict.fromkeys(h.doc_id for h in mem.search(q["question"], k=10)))
            r1 += q["passage"] in ranked[:1]
            r5 += q["passage"] in ranked[:5]
        n = max(1, len(questions))
        for mode in modes:
            row = _score_mode(mem, mode, questions, reader, progress, out)
            results.append(
                {
                    "mode": mode,
                    "questions": len(questions),
                    "recall@1": round(r1 / n, 4),
                    "recall@5": round(r5 / n, 4),
                    **row,
                    "generator": mem.generator.model_id,
                }
            )
    return results
