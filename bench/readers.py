"""Readers side by side on SQuAD-format data, in one process, interleaved per question.

Conditions (same recalled hits for every condition of a question):

* ``extract/local``: the extract reader on the bundled SmolLM2-135M-Instruct;
* ``generate/local``: free generation by the same model from the cited prompt;
* ``generate/endpoint``: free generation through an OpenAI-compatible endpoint (Engram's own
  loopback server wrapping the same model: the HTTP path any hosted model would take);
* ``closed-book/local``: the same model with no memory.

Usage::

    python -m bench.readers ../shared/data/squad_v1.1/dev-v1.1.first24.json.gz \\
        --limit 60 --store /tmp/squad.db --json

Prints token F1, exact match, the share of abstentions and p50/p95 seconds per question for
each condition.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from engram.evaluate.qa import (
    SHORT_ANSWER,
    closed_book,
    exact_match,
    load_squad,
    sample,
    strip_citations,
    token_f1,
)
from engram.generate import OpenAIGenerator, serve_openai_compatible
from engram.memory import Memory


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values) or [0.0]
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run(path: str, limit: int, store: str, seed: int) -> list[dict[str, Any]]:
    docs, questions = load_squad(path)
    questions = sample(questions, limit, seed)
    mem = Memory(store, answer_max_tokens=32, answer_stop=["\n"])
    server = None
    try:
        mem.add_documents(docs)
        local = mem.generator
        server, base_url = serve_openai_compatible(local)
        remote = OpenAIGenerator(
            base_url=base_url, model="smollm2", api_key="bench", tokenizer=local.count_tokens
        )
        conditions = {
            "extract/local": lambda q, hits: mem.answer(
                q, hits, persona=SHORT_ANSWER, reader="extract"
            ),
            "generate/local": lambda q, hits: mem.answer(
                q, hits, persona=SHORT_ANSWER, reader="generate"
            ),
            "generate/endpoint": lambda q, hits: mem.answer(
                q, hits, persona=SHORT_ANSWER, reader="generate", generator=remote
            ),
            "closed-book/local": lambda q, hits: closed_book(local, q, max_tokens=32, stop=["\n"]),
        }
        scores: dict[str, dict[str, list[float]]] = {
            name: {"f1": [], "em": [], "abstained": [], "seconds": []} for name in conditions
        }
        for q in questions:
            started = time.perf_counter()
            hits = mem.recall_evidence(q["question"])
            recall = time.perf_counter() - started
            for name, answer in conditions.items():
                started = time.perf_counter()
                result = answer(q["question"], hits)
                spent = time.perf_counter() - started + (0 if name.startswith("closed") else recall)
                text = (
                    result
                    if isinstance(result, str)
                    else ("" if result.no_answer else result.answer)
                )
                text = strip_citations(text)
                row = scores[name]
                row["f1"].append(token_f1(text, q["answers"]))
                row["em"].append(exact_match(text, q["answers"]))
                row["abstained"].append(float(not isinstance(result, str) and result.no_answer))
                row["seconds"].append(spent)
    finally:
        if server is not None:
            server.shutdown()
        mem.close()
    n = max(1, len(questions))
    return [
        {
            "condition": name,
            "questions": len(questions),
            "f1": round(sum(s["f1"]) / n, 4),
            "exact_match": round(sum(s["em"]) / n, 4),
            "abstained": round(sum(s["abstained"]) / n, 4),
            "seconds_p50": round(_percentile(s["seconds"], 0.5), 2),
            "seconds_p95": round(_percentile(s["seconds"], 0.95), 2),
        }
        for name, s in scores.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="SQuAD v1.1-format .json or .json.gz")
    parser.add_argument("--limit", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--store", default=str(Path("/tmp/engram-bench-readers.db")))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = run(args.file, args.limit, args.store, args.seed)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'condition':20} {'F1':>6} {'EM':>6} {'abstain':>7} {'p50 s':>6} {'p95 s':>6}")
    for r in rows:
        print(
            f"{r['condition']:20} {r['f1']:6.3f} {r['exact_match']:6.3f} {r['abstained']:7.3f} "
            f"{r['seconds_p50']:6.2f} {r['seconds_p95']:6.2f}"
        )


if __name__ == "__main__":
    main()
