"""The fine-tuning experiment's settings and data: ``ExperimentConfig``, the SQuAD selection
(training articles, held-out and forgetting questions) and the result records."""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engram.errors import EngramError
from engram.evaluate.qa import SHORT_ANSWER, load_squad
from engram.types import Document

VARIANTS = ("passages", "qa")
PASSAGES_NAMESPACE = "passages"
QA_NAMESPACE = "qa"
Log = Callable[[str], None]


@dataclass
class ExperimentConfig:
    """Sizes and training options (defaults fit ~30 minutes on 2 CPU cores)."""

    articles: int = 3  # training articles
    passages: int = 4  # passages per training article (each with 2+ questions)
    questions: int = 4  # held-out questions per training article
    forget_articles: int = 2  # untrained articles for the forgetting measure (0: none)
    forget_questions: int | None = None  # default: as many as held-out questions
    steps: int = 24  # optimizer steps per variant
    batch: int = 8
    block_tokens: int = 128  # passage blocks (variant passages)
    lr: float = 1e-3
    rank: int = 16
    alpha: float | None = None  # LoRA alpha, default 2 * rank
    seed: int = 0
    device: str = "cpu"  # cpu | cuda | auto
    threads: int | None = None  # torch CPU threads, default $ENGRAM_THREADS or 1
    max_tokens: int = 32  # per answer
    variants: tuple[str, ...] = VARIANTS
    system: str = SHORT_ANSWER

    def check(self) -> None:
        """Raise EngramError on an option out of range."""
        positive = ("articles", "passages", "questions", "steps", "batch", "rank", "max_tokens")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise EngramError(f"--{name} must be a positive integer, got {value!r}")
        if self.forget_articles < 0:
            raise EngramError(f"--forget-articles must be >= 0, got {self.forget_articles}")
        if self.forget_questions is not None and self.forget_questions < 1:
            raise EngramError(f"--forget-questions must be >= 1, got {self.forget_questions}")
        if self.block_tokens < 16:
            raise EngramError(f"--block-tokens must be at least 16, got {self.block_tokens}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise EngramError(f"--lr must be a positive number, got {self.lr}")
        if self.threads is not None and self.threads < 1:
            raise EngramError(f"threads must be a positive integer, got {self.threads}")
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown or not self.variants:
            raise EngramError(f"unknown variant(s) {unknown}; use {', '.join(VARIANTS)}")
        if self.device not in ("cpu", "cuda", "auto") and not self.device.startswith("cuda:"):
            raise EngramError(f"--device must be cpu, cuda or auto, got {self.device!r}")


@dataclass
class Selection:
    """What the experiment trains on and asks."""

    articles: list[str]
    passages: list[Document]
    train_qa: list[dict[str, Any]]
    heldout: list[dict[str, Any]]
    forget_articles: list[str]
    forget: list[dict[str, Any]]
    forget_passages: list[Document]


@dataclass
class TrainedModel:
    """A merged fine-tune, its generator and training statistics."""

    variant: str
    model: Any
    generator: Any
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExperimentResult:
    """The JSON-ready report plus the live models (base and fine-tunes) for inspection."""

    report: dict[str, Any]
    base: Any
    trained: dict[str, TrainedModel]


def cpu_count() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; ``cuda`` must be available."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EngramError("--device cuda was asked for, but torch sees no CUDA device")
    return device


# --------------------------------------------------------------------------- data


def load_data(path: str | Path) -> tuple[list[Document], list[dict[str, Any]]]:
    """:func:`load_squad` with clear errors for a missing file or another format."""
    path = Path(path)
    if not path.is_file():
        raise EngramError(f"{path}: no such file")
    try:
        docs, questions = load_squad(path)
    except (KeyError, TypeError, AttributeError) as exc:
        raise EngramError(f"{path}: not a SQuAD-format JSON file (missing {exc})") from exc
    if not questions:
        raise EngramError(f"{path}: holds no questions")
    return docs, questions


def select(
    docs: list[Document], questions: list[dict[str, Any]], cfg: ExperimentConfig
) -> Selection:
    """Seeded choice of training articles, passages, held-out and forgetting questions."""
    rng = random.Random(cfg.seed)
    by_passage: dict[str, list[dict[str, Any]]] = {}
    for q in questions:
        if q["answers"] and any(a.strip() for a in q["answers"]):
            by_passage.setdefault(q["passage"], []).append(q)
    articles: dict[str, list[Document]] = {}
    for doc in docs:
        articles.setdefault(doc.title, []).append(doc)
    eligible = [
        title
        for title, paras in articles.items()
        if sum(len(by_passage.get(p.id or "", [])) >= 2 for p in paras) >= cfg.passages
    ]
    if len(eligible) < cfg.articles:
        raise EngramError(
            f"--articles {cfg.articles} is too many: the file has {len(eligible)} article(s) "
            f"with at least {cfg.passages} passages of 2+ questions (lower --passages?)"
        )
    chosen = sorted(rng.sample(eligible, cfg.articles), key=list(articles).index)
    others = [
        t for t in articles if t not in chosen and any(p.id in by_passage for p in articles[t])
    ]
    if cfg.forget_articles > len(others):
        raise EngramError(
            f"--forget-articles {cfg.forget_articles} is too many: only {len(others)} other "
            "article(s) have questions"
        )
    forget_titles = sorted(rng.sample(others, cfg.forget_articles), key=list(articles).index)

    passages: list[Document] = []
    train_qa: list[dict[str, Any]] = []
    heldout: list[dict[str, Any]] = []
    for title in chosen:
        paras = [p for p in articles[title] if len(by_passage.get(p.id or "", [])) >= 2]
        picked = sorted(rng.sample(paras, cfg.passages), key=articles[title].index)
        pools = {
            p.id: rng.sample(by_passage[p.id or ""], len(by_passage[p.id or ""])) for p in picked
        }
        capacity = sum(len(pool) - 1 for pool in pools.values())
        if cfg.questions > capacity:
            raise EngramError(
                f"--questions {cfg.questions} is too many for article {title!r}: its "
                f"{cfg.passages} passages can hold out {capacity} (each keeps one for training)"
            )
        held: list[dict[str, Any]] = []
        while len(held) < cfg.questions:
            for p in picked:
                if len(held) < cfg.questions and len(pools[p.id]) > 1:
                    held.append(pools[p.id].pop())
        heldout += held
        passages += picked
        train_qa += [q for p in picked for q in pools[p.id]]

    forget_pool = [
        q for t in forget_titles for p in articles[t] for q in by_passage.get(p.id or "", [])
    ]
    wanted = cfg.forget_questions or len(heldout)
    if forget_titles and wanted > len(forget_pool):
        raise EngramError(
            f"--forget-questions {wanted} is too many: the forgetting articles have "
            f"{len(forget_pool)} questions"
        )
    forget = sorted(rng.sample(forget_pool, wanted), key=forget_pool.index) if forget_titles else []
    by_id = {d.id: d for d in docs}
    forget_passages = [by_id[pid] for pid in dict.fromkeys(q["passage"] for q in forget)]
    return Selection(chosen, passages, train_qa, heldout, forget_titles, forget, forget_passages)


def qa_documents(selection: Selection) -> list[Document]:
    """The training pairs as documents with question/answer metadata (export's stored pairs)."""
    text_of = {p.id: p.text for p in selection.passages}
    return [
        Document(
            text=f"{q['question']}\n{q['answers'][0]}",
            id=f"qa:{q['id']}",
            source=q["passage"],
            title=q["article"],
            metadata={
                "question": q["question"],
                "answer": q["answers"][0],
                "source_doc": q["passage"],
                "context": text_of[q["passage"]],
            },
        )
        for q in selection.train_qa
    ]
