"""Fine-tuning versus memory on SQuAD-format data: LoRA on the local model against retrieval.

The experiment picks training articles and, in each, a few passages with several questions.
One question per passage (round-robin, up to ``questions`` per article) is held out for
evaluation; the others become the training question-answer pairs. Then:

* variant ``passages``: causal-LM LoRA on the passage text (packed blocks);
* variant ``qa``: the pairs are stored in a temporary Engram store (documents with
  question/answer metadata), exported with :mod:`engram.export` as chat records and
  LoRA-fine-tuned on the assistant reply only;
* every held-out question is answered closed-book and with memory (Engram recall over the same
  passages + the cited prompt, :meth:`Memory.answer`) by the base model and each fine-tune;
* forgetting: questions and passages of articles no model was trained on, base against
  fine-tunes (closed-book answers and negative log-likelihoods).

Scores are SQuAD exact match and token F1 (:mod:`engram.evaluate.qa`); costs are training
seconds and, per answer, seconds and generated tokens.
"""

from __future__ import annotations

import copy
import json
import math
import os
import platform
import random
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engram.errors import EngramError
from engram.evaluate.qa import (
    SHORT_ANSWER,
    closed_book,
    exact_match,
    load_squad,
    normalize_answer,
    strip_citations,
    token_f1,
)
from engram.evaluate.stats import bootstrap_ci, overlap
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


# --------------------------------------------------------------------------- training


Example = tuple[list[int], list[int]]  # input ids, labels (-100: not trained)


def passage_examples(texts: list[str], tokenizer: Any, block_tokens: int) -> list[Example]:
    """The texts, each ended by EOS, packed into blocks of ``block_tokens`` tokens."""
    stream: list[int] = []
    for text in texts:
        stream += tokenizer.encode(text, add_special_tokens=False) + [tokenizer.eos_token_id]
    blocks = [stream[i : i + block_tokens] for i in range(0, len(stream), block_tokens)]
    return [(b, list(b)) for b in blocks if len(b) > 1]


def chat_examples(records: list[dict[str, Any]], tokenizer: Any) -> list[Example]:
    """Chat records tokenised with the chat template; only the assistant reply is trained."""
    out: list[Example] = []
    for record in records:
        messages = record["messages"]
        prompt = tokenizer.apply_chat_template(
            messages[:-1], add_generation_prompt=True, tokenize=False
        )
        full = tokenizer.apply_chat_template(messages, tokenize=False).rstrip("\n")
        if not full.startswith(prompt):
            raise EngramError("the chat template does not extend the prompt with the reply")
        prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
        reply_ids = tokenizer.encode(full[len(prompt) :], add_special_tokens=False)
        out.append((prompt_ids + reply_ids, [-100] * len(prompt_ids) + reply_ids))
    return out


def _batches(examples: list[Example], size: int, seed: int) -> Iterator[list[Example]]:
    rng = random.Random(seed)
    while True:
        order = rng.sample(examples, len(examples))
        for start in range(0, len(order), size):
            yield order[start : start + size]


def _collate(batch: list[Example], pad_id: int, device: str) -> dict[str, Any]:
    import torch

    width = max(len(ids) for ids, _ in batch)
    ids = [x + [pad_id] * (width - len(x)) for x, _ in batch]
    labels = [y + [-100] * (width - len(y)) for _, y in batch]
    mask = [[1] * len(x) + [0] * (width - len(x)) for x, _ in batch]
    return {
        "input_ids": torch.tensor(ids, device=device),
        "labels": torch.tensor(labels, device=device),
        "attention_mask": torch.tensor(mask, device=device),
    }


def train_lora(
    base_model: Any,
    tokenizer: Any,
    examples: list[Example],
    cfg: ExperimentConfig,
    device: str,
    *,
    save_to: Path | None = None,
    log: Log | None = None,
    label: str = "",
) -> tuple[Any, dict[str, Any]]:
    """LoRA-fine-tune a copy of ``base_model`` on ``examples`` for ``cfg.steps`` steps (AdamW,
    constant learning rate, gradients clipped at 1). The base model is left unchanged.

    Returns the copy with the adapter merged into its weights, and training statistics.
    """
    import torch
    from peft import LoraConfig, get_peft_model

    if not examples:
        raise EngramError(f"no training examples for variant {label!r}")
    torch.manual_seed(cfg.seed)
    model = copy.deepcopy(base_model).to(device)
    lora = LoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha if cfg.alpha is not None else 2 * cfg.rank,
        lora_dropout=0.0,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():  # deprecation notes between peft and transformers
        warnings.simplefilter("ignore", FutureWarning)
        model = get_peft_model(model, lora)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=0.0
    )
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    batches = _batches(examples, cfg.batch, cfg.seed)
    losses: list[float] = []
    tokens = 0
    model.train()
    started = time.perf_counter()
    for step in range(cfg.steps):
        inputs = _collate(next(batches), pad_id, device)
        loss = model(**inputs).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(
            [p for p in model.parameters() if p.requires_grad], max_norm=1.0
        )
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(round(float(loss.detach()), 4))
        tokens += int(inputs["attention_mask"].sum())
        if log:
            log(f"train {label} step {step + 1}/{cfg.steps} loss {losses[-1]:.3f}")
    seconds = time.perf_counter() - started
    model.eval()
    if save_to is not None:
        model.save_pretrained(str(save_to))
    merged = model.merge_and_unload()
    merged.eval()
    n_tokens = sum(len(x) for x, _ in examples)
    stats = {
        "examples": len(examples),
        "example_tokens": n_tokens,
        "steps": cfg.steps,
        "epochs": round(tokens / max(1, n_tokens), 2),
        "tokens_trained": tokens,
        "trainable_parameters": trainable,
        "seconds": round(seconds, 1),
        "seconds_per_step": round(seconds / cfg.steps, 2),
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "losses": losses,
    }
    if save_to is not None:
        stats["adapter"] = str(save_to)
    return merged, stats


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


# --------------------------------------------------------------------------- the experiment


def run_experiment(
    path: str | Path,
    cfg: ExperimentConfig | None = None,
    *,
    generator: Any = None,
    embedder: Any = None,
    out: str | Path | None = None,
    log: Log | None = None,
) -> ExperimentResult:
    """Run the whole experiment on the SQuAD-format file ``path``; see the module docstring.

    ``generator`` is the base :class:`LocalGenerator` (default: SmolLM2-135M-Instruct on
    ``cfg.device``); ``embedder`` the memory's embedder (default local). With ``out``, the
    adapters, the exported datasets, the predictions and ``report.json`` are written there.
    """
    import torch

    from engram.export import chat_record, export_dataset, write_export
    from engram.generate.local import LocalGenerator, default_threads
    from engram.memory import Memory

    cfg = cfg or ExperimentConfig()
    cfg.check()
    log = log or (lambda _m: None)
    started = time.perf_counter()
    docs, questions = load_data(path)
    selection = select(docs, questions, cfg)
    device = resolve_device(cfg.device)
    threads = cfg.threads or default_threads()
    torch.set_num_threads(threads)
    folder = Path(out) if out is not None else None
    if folder is not None:
        if folder.exists() and not folder.is_dir():
            raise EngramError(f"--out {folder} exists and is not a folder")
        folder.mkdir(parents=True, exist_ok=True)

    if generator is None:
        generator = LocalGenerator(threads=threads, device=device)
    if not isinstance(generator, LocalGenerator):
        raise EngramError("the experiment fine-tunes a local transformers model (LocalGenerator)")
    generator.load()
    if str(next(generator.model.parameters()).device).split(":")[0] != device.split(":")[0]:
        raise EngramError(
            f"the base generator runs on {generator.device}, the experiment on {device}"
        )
    base_model, tokenizer = generator.model, generator.tokenizer
    log(
        f"{len(selection.articles)} articles, {len(selection.passages)} passages, "
        f"{len(selection.train_qa)} training pairs, {len(selection.heldout)} held-out and "
        f"{len(selection.forget)} forgetting questions; device {device}, {threads} threads"
    )

    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="engram-experiment-") as tmp:
        memory_options: dict[str, Any] = {
            "answer_max_tokens": cfg.max_tokens,
            "answer_stop": ["\n"],
            "threads": threads,
        }
        mem = Memory(
            Path(tmp) / "experiment.db",
            embedder=embedder,
            generator=generator,
            **memory_options,
        )
        try:
            t0 = time.perf_counter()
            mem.add_documents(selection.passages, namespace=PASSAGES_NAMESPACE)
            mem.add_documents(qa_documents(selection), namespace=QA_NAMESPACE)
            timings["ingest_seconds"] = round(time.perf_counter() - t0, 1)
            log(f"memory: {mem.stats()['chunks']} chunks in {timings['ingest_seconds']} s")

            exported = export_dataset(
                mem, QA_NAMESPACE, "chat-jsonl", split=1.0, seed=cfg.seed, system=cfg.system
            )
            qa_records = [chat_record(p, cfg.system) for p in exported.train]
            if folder is not None:
                write_export(exported, folder / "dataset-qa")
                with open(folder / "dataset-passages.jsonl", "w", encoding="utf-8") as f:
                    for p in selection.passages:
                        f.write(json.dumps({"text": p.text, "doc_id": p.id}) + "\n")

            datasets = {
                "passages": passage_examples(
                    [p.text for p in selection.passages], tokenizer, cfg.block_tokens
                ),
                "qa": chat_examples(qa_records, tokenizer),
            }
            trained: dict[str, TrainedModel] = {}
            for variant in cfg.variants:
                log(f"training {variant}: {len(datasets[variant])} examples")
                save_to = folder / f"adapter-{variant}" if folder is not None else None
                torch.set_num_threads(threads)
                model, stats = train_lora(
                    base_model,
                    tokenizer,
                    datasets[variant],
                    cfg,
                    device,
                    save_to=save_to,
                    log=log,
                    label=variant,
                )
                gen = LocalGenerator.from_model(
                    model,
                    tokenizer,
                    model_id=f"{generator.model_id}+lora-{variant}",
                    threads=generator.threads,
                )
                trained[variant] = TrainedModel(variant, model, gen, stats)
                log(
                    f"trained {variant} in {stats['seconds']} s, loss {stats['loss_first']} -> "
                    f"{stats['loss_last']}"
                )

            models = {"base": generator, **{f"ft-{v}": t.generator for v, t in trained.items()}}
            report_rows, predictions = _answer_all(mem, models, selection, cfg, log)
            forgetting = _forgetting(models, selection, cfg, log)
            likelihood = _likelihoods(models, selection, cfg, tokenizer, device)
        finally:
            mem.close()

    import peft
    import transformers

    report = {
        "experiment": "finetune-vs-memory",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "data": {
            "file": str(path),
            "articles": selection.articles,
            "passages": [p.id for p in selection.passages],
            "training_pairs": len(selection.train_qa),
            "exported_pairs": exported.manifest["counts"]["pairs"],
            "heldout_questions": len(selection.heldout),
            "forget_articles": selection.forget_articles,
            "forget_questions": len(selection.forget),
        },
        "config": {
            **asdict(cfg),
            "variants": list(cfg.variants),
            "device": device,
            "threads": threads,
        },
        "environment": {
            "model": generator.model_id,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
            "machine": platform.machine(),
            "cpus": cpu_count(),
            "cuda": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
        },
        "training": {v: t.stats for v, t in trained.items()},
        "results": report_rows,
        "comparison": compare(report_rows),
        "forgetting": forgetting,
        "likelihood": likelihood,
        "timings": {**timings, "total_seconds": round(time.perf_counter() - started, 1)},
    }
    if folder is not None:
        (folder / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        with open(folder / "predictions.jsonl", "w", encoding="utf-8") as f:
            for p in predictions:
                f.write(json.dumps(p, ensure_ascii=False) + "\n")
    return ExperimentResult(report, generator, trained)


def _closed_book(gen: Any, question: str, cfg: ExperimentConfig) -> str:
    return closed_book(gen, question, system=cfg.system, max_tokens=cfg.max_tokens, stop=["\n"])


def gold_nll(gen: Any, messages: list[dict[str, str]], golds: list[str]) -> float:
    """Nats per token of the first gold answer as the model's whole reply to ``messages``
    (its end-of-turn included): a measure of what the model knows that ignores answer format."""
    scored = gen.reply_logprobs(messages, [golds[0]])[0]
    logprobs = [*scored.tokens, scored.ends[-1] if scored.ends else 0.0]
    return -sum(logprobs) / len(logprobs)


def _closed_book_messages(question: str, cfg: ExperimentConfig) -> list[dict[str, str]]:
    return [{"role": "system", "content": cfg.system}, {"role": "user", "content": question}]


@dataclass
class _Condition:
    """What one model x memory condition produced over the held-out questions."""

    timer: _Timer = field(default_factory=lambda: _Timer())
    answers: list[str] = field(default_factory=list)
    nll: list[float] = field(default_factory=list)
    no_answer: int = 0


def _answer_one(
    mem: Any, gen: Any, q: dict[str, Any], hits: list[Any], memory: bool, cfg: ExperimentConfig
) -> tuple[str, str, list[dict[str, str]], bool]:
    """``(raw, answer, prompt messages, abstained)`` of one model for one question."""
    if not memory:
        text = _closed_book(gen, q["question"], cfg)
        return text, text, _closed_book_messages(q["question"], cfg), False
    answer = mem.answer(q["question"], hits, persona=cfg.system, generator=gen)
    messages = (
        answer.prompt.messages if answer.prompt else _closed_book_messages(q["question"], cfg)
    )
    return answer.raw, answer.answer, messages, answer.no_answer


def _answer_all(
    mem: Any,
    models: dict[str, Any],
    selection: Selection,
    cfg: ExperimentConfig,
    log: Log,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every held-out question, every model, closed-book and with memory, interleaved per
    question so that machine load falls on every condition alike. Each condition also gets the
    likelihood of the gold answer under the prompt it answered from."""
    conditions = [(name, memory) for memory in (False, True) for name in models]
    state = {c: _Condition() for c in conditions}
    recalled = 0
    predictions: list[dict[str, Any]] = []
    for i, q in enumerate(selection.heldout):
        t0 = time.perf_counter()
        hits = mem.recall_evidence(q["question"], namespace=PASSAGES_NAMESPACE)
        recall_seconds = time.perf_counter() - t0
        recalled += any(h.doc_id == q["passage"] for h in hits)
        row: dict[str, Any] = {"id": q["id"], "question": q["question"], "gold": q["answers"]}
        for name, memory in conditions:
            gen, st = models[name], state[(name, memory)]
            t0 = time.perf_counter()
            raw, text, messages, abstained = _answer_one(mem, gen, q, hits, memory, cfg)
            st.timer.seconds += time.perf_counter() - t0 + (recall_seconds if memory else 0.0)
            st.timer.tokens += gen.count_tokens(raw) if raw else 0
            st.timer.calls += 1
            st.no_answer += abstained
            st.answers.append(strip_citations("" if abstained else text))
            st.nll.append(gold_nll(gen, messages, q["answers"]))
            row[f"{name}/{'memory' if memory else 'closed-book'}"] = st.answers[-1]
        predictions.append(row)
        log(f"answered {i + 1}/{len(selection.heldout)}")
    rows = [
        _condition_row(name, memory, state[(name, memory)], selection, recalled)
        for name, memory in conditions
    ]
    return rows, predictions


def _condition_row(
    name: str, memory: bool, st: _Condition, selection: Selection, recalled: int
) -> dict[str, Any]:
    n = max(1, len(selection.heldout))
    f1s = [token_f1(a, q["answers"]) for a, q in zip(st.answers, selection.heldout, strict=True)]
    return {
        "condition": f"{name}, {'memory' if memory else 'closed-book'}",
        "model": name,
        "memory": memory,
        "questions": len(selection.heldout),
        **_score(st.answers, selection.heldout),
        "f1_ci95": list(bootstrap_ci(f1s)),
        "gold_answer_nll": round(sum(st.nll) / max(1, len(st.nll)), 4),
        "gold_answer_nll_ci95": list(bootstrap_ci(st.nll)),
        "no_answer": round(st.no_answer / n, 4),
        "gold_passage_recalled": round(recalled / n, 4) if memory else None,
        "seconds_per_answer": round(st.timer.seconds / max(1, st.timer.calls), 2),
        "tokens_per_answer": round(st.timer.tokens / max(1, st.timer.calls), 1),
    }


def compare(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The claim under test: the unchanged base model with memory against every fine-tuned
    model answering closed-book (F1 ratio, and whether the 95% intervals overlap)."""
    base = next(r for r in rows if r["model"] == "base" and r["memory"])
    out = []
    for r in rows:
        if r["memory"] or r["model"] == "base":
            continue
        out.append(
            {
                "against": r["condition"],
                "f1_ratio": round(base["f1"] / r["f1"], 2) if r["f1"] else None,
                "intervals_overlap": overlap(base["f1_ci95"], r["f1_ci95"]),
            }
        )
    return {"memory": base["condition"], "f1": base["f1"], "against": out}


def _forgetting(
    models: dict[str, Any],
    selection: Selection,
    cfg: ExperimentConfig,
    log: Log,
) -> dict[str, Any]:
    """Closed-book answers to questions of untrained articles, per model, against the base."""
    if not selection.forget:
        return {"questions": 0, "articles": [], "models": []}
    answers: dict[str, list[str]] = {name: [] for name in models}
    timers = {name: _Timer() for name in models}
    for i, q in enumerate(selection.forget):
        for name, gen in models.items():
            t0 = time.perf_counter()
            text = _closed_book(gen, q["question"], cfg)
            timers[name].seconds += time.perf_counter() - t0
            timers[name].calls += 1
            answers[name].append(strip_citations(text))
        log(f"forgetting {i + 1}/{len(selection.forget)}")
    rows = []
    base = _score(answers["base"], selection.forget)
    for name in models:
        scores = _score(answers[name], selection.forget)
        rows.append(
            {
                "model": name,
                **scores,
                "delta_exact_match": round(scores["exact_match"] - base["exact_match"], 4),
                "delta_f1": round(scores["f1"] - base["f1"], 4),
                "seconds_per_answer": round(timers[name].seconds / max(1, timers[name].calls), 2),
            }
        )
    return {
        "questions": len(selection.forget),
        "articles": selection.forget_articles,
        "models": rows,
    }


def _likelihoods(
    models: dict[str, Any],
    selection: Selection,
    cfg: ExperimentConfig,
    tokenizer: Any,
    device: str,
) -> dict[str, Any]:
    """Mean NLL (nats per token) under each model of: the trained passages, the training
    pairs' answers, the held-out answers, and the untrained articles' answers and passages."""

    def per_passage(passages: list[Document]) -> list[Example]:
        return [e for p in passages for e in passage_examples([p.text], tokenizer, 10**9)]

    sets = {
        "train_passage_nll": per_passage(selection.passages),
        "train_answer_nll": answer_examples(selection.train_qa, tokenizer, cfg.system),
        "heldout_answer_nll": answer_examples(selection.heldout, tokenizer, cfg.system),
        "forget_answer_nll": answer_examples(selection.forget, tokenizer, cfg.system),
        "forget_passage_nll": per_passage(selection.forget_passages),
    }
    out: dict[str, Any] = {}
    for key, examples in sets.items():
        out[key] = {
            name: (mean_nll(gen.model, examples, device) if examples else None)
            for name, gen in models.items()
        }
    return out
