"""``engram demo``: the main job on the bundled samples, from the command line."""

from __future__ import annotations

import argparse


def cmd_demo(args: argparse.Namespace) -> int:
    """``engram demo``: add the sample corpus, show hybrid and filtered search, ask."""
    from engram.cli import _memory, _print_answer_sources, _snippet
    from engram.samples import load_samples, sample_questions

    with _memory(args, create=True) as mem:
        report = mem.add(load_samples())
        print(
            f"Sample corpus: {report.added} added, {report.unchanged} unchanged, "
            f"{mem.stats()['chunks']} chunks in {mem.path}\n"
        )
        questions = sample_questions()
        print(f"== Hybrid search: {questions[0]}")
        for h in mem.search(questions[0], k=3):
            print(
                f"  {h.score:.3f}  kw={h.scores.get('keyword', 0):.2f} "
                f"vec={h.scores.get('vector', 0):.2f}  {h.title}: {_snippet(h.text, 90)}"
            )
        print("\n== Filtered search, topic=work and year>=2024: acknowledge a page")
        where = {"topic": "work", "year": {"$gte": 2024}}
        for h in mem.search("acknowledge a page", k=3, where=where):
            print(
                f"  {h.score:.3f}  [{h.metadata.get('topic')}, {h.metadata.get('year')}] "
                f"{h.title}: {_snippet(h.text, 70)}"
            )
        if args.no_answers:
            return 0
        for q in questions[: args.questions] + questions[-1:]:
            print(f"\n== Q: {q}\nA: ", end="", flush=True)
            answer = mem.ask(q, on_token=lambda p: print(p, end="", flush=True))
            print()
            _print_answer_sources(answer)
    return 0
