"""Scoring for the fine-tuning experiment: negative log-likelihoods, answer examples, exact
match / F1 / contains-answer over predictions."""

from __future__ import annotations

from typing import Any

from engram.evaluate.qa import exact_match, normalize_answer, token_f1
from engram.experiment.lora import Example, chat_examples

# --------------------------------------------------------------------------- scoring


def _nll(model: Any, ids: list[int], labels: list[int], device: str) -> tuple[float, int]:
    import torch

    n = sum(1 for y in labels[1:] if y != -100)
    if n == 0:
        return 0.0, 0
    with torch.inference_mode():
        out = model(
            input_ids=torch.tensor([ids], device=device),
            labels=torch.tensor([labels], device=device),
        )
    return float(out.loss) * n, n


def mean_nll(model: Any, examples: list[Example], device: str) -> float:
    """Token-weighted mean negative log-likelihood (nats per trained token) of ``examples``."""
    total = count = 0.0
    for ids, labels in examples:
        s, n = _nll(model, ids, labels, device)
        total, count = total + s, count + n
    return round(total / count, 4) if count else float("nan")


def answer_examples(questions: list[dict[str, Any]], tokenizer: Any, system: str) -> list[Example]:
    """Closed-book chat prompt + gold answer (the first), for answer likelihoods."""
    records = [
        {
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": q["question"]},
                {"role": "assistant", "content": q["answers"][0]},
            ]
        }
        for q in questions
    ]
    return chat_examples(records, tokenizer)


class _Timer:
    def __init__(self) -> None:
        self.seconds = 0.0
        self.tokens = 0
        self.calls = 0


def contains_answer(prediction: str, golds: list[str]) -> float:
    """1.0 when a normalised gold answer occurs, as whole words, in the normalised prediction
    (a verbose but right answer; exact match and F1 penalise the extra words)."""
    text = f" {normalize_answer(prediction)} "
    return float(any(g and f" {g} " in text for g in map(normalize_answer, golds)))


def _score(predictions: list[str], questions: list[dict[str, Any]]) -> dict[str, float]:
    n = max(1, len(questions))
    pairs = list(zip(predictions, questions, strict=True))
    em = sum(exact_match(p, q["answers"]) for p, q in pairs)
    f1 = sum(token_f1(p, q["answers"]) for p, q in pairs)
    contains = sum(contains_answer(p, q["answers"]) for p, q in pairs)
    return {
        "exact_match": round(em / n, 4),
        "f1": round(f1 / n, 4),
        "contains_answer": round(contains / n, 4),
    }
