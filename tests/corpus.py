"""A small generated corpus with known facts and metadata, for store tests."""

from __future__ import annotations

from engram.types import Document

TOPICS = ["astronomy", "cooking", "gardening", "sailing", "finance", "medicine"]
FACTS = {
    "astronomy": "The telescope observed a distant galaxy and measured its redshift.",
    "cooking": "Simmer the tomato sauce with garlic and basil for twenty minutes.",
    "gardening": "Water the roses at dawn and prune dead branches in early spring.",
    "sailing": "Reef the mainsail when the wind rises above twenty knots.",
    "finance": "The quarterly report showed revenue growth and lower operating costs.",
    "medicine": "The clinical trial tested a vaccine dose on adult volunteers.",
}


def corpus(n: int = 60) -> list[Document]:
    """``n`` documents; each has a unique word ``uniqN`` and metadata topic/year/rank/tags."""
    docs = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        docs.append(
            Document(
                id=f"doc-{i}",
                text=f"Note {i} on {topic}: {FACTS[topic]} Reference code uniq{i}. "
                "Every note ends with a short summary report.",
                source=f"notes/{topic}/{i}.txt",
                title=f"{topic} note {i}",
                metadata={
                    "topic": topic,
                    "year": 2000 + i % 10,
                    "rank": i,
                    "tags": ["even" if i % 2 == 0 else "odd", topic],
                },
            )
        )
    return docs
