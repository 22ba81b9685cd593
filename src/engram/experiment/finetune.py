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

import json
import platform
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engram.errors import EngramError
from engram.evaluate.qa import (
    closed_book,
    strip_citations,
    token_f1,
)
from engram.evaluate.stats import bootstrap_ci, overlap
from engram.experiment.lora import (
    Example,
    chat_examples,
    passage_examples,
    train_lora,
)
from engram.experiment.scoring import (
    _score,
    _Timer,
    answer_examples,
    mean_nll,
)
from engram.experiment.setup import (
    PASSAGES_NAMESPACE,
    QA_NAMESPACE,
    VARIANTS,
    ExperimentConfig,
    ExperimentResult,
    Log,
    Selection,
    TrainedModel,
    cpu_count,
    load_data,
    qa_documents,
    resolve_device,
    select,
)
from engram.types import Document

__all__ = [  # kept importable from here
    "VARIANTS",
    "ExperimentConfig",
    "ExperimentResult",
    "load_data",
    "run_experiment",
    "select",
]


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

    from engram.generate.local import default_threads
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
    folder = _output_folder(out)

    generator = _base_generator(generator, threads, device)
    log(
        f"{len(selection.articles)} articles, {len(selection.passages)} passages, "
        f"{len(selection.train_qa)} training pairs, {len(selection.heldout)} held-out and "
        f"{len(selection.forget)} forgetting questions; device {device}, {threads} threads"
    )

    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="engram-experiment-") as tmp:
        mem = Memory(
            Path(tmp) / "experiment.db",
            embedder=embedder,
            generator=generator,
            answer_max_tokens=cfg.max_tokens,
            answer_stop=["\n"],
            threads=threads,
        )
        try:
            exported_pairs, trained, outcomes, predictions = _in_memory(
                mem, selection, cfg, generator, (device, threads), folder, log, timings
            )
        finally:
            mem.close()

    report = _report(
        path,
        cfg,
        selection,
        exported_pairs,
        (device, threads, generator.model_id),
        trained,
        outcomes,
        {**timings, "total_seconds": round(time.perf_counter() - started, 1)},
    )
    if folder is not None:
        _write_outputs(folder, report, predictions)
    return ExperimentResult(report, generator, trained)


def _in_memory(
    mem: Any,
    selection: Selection,
    cfg: ExperimentConfig,
    generator: Any,
    run: tuple[str, int],
    folder: Path | None,
    log: Log,
    timings: dict[str, float],
) -> tuple[int, dict[str, TrainedModel], tuple[Any, Any, Any], list[Any]]:
    """Store and export the data, train each variant and answer every condition; returns
    the exported pair count, the trained models, (rows, forgetting, likelihood), predictions."""
    from engram.export import chat_record, export_dataset, write_export

    device, threads = run
    tokenizer = generator.tokenizer
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
    trained = _train_all(cfg, generator, datasets, device, threads, folder, log)
    models = {"base": generator, **{f"ft-{v}": t.generator for v, t in trained.items()}}
    report_rows, predictions = _answer_all(mem, models, selection, cfg, log)
    forgetting = _forgetting(models, selection, cfg, log)
    likelihood = _likelihoods(models, selection, cfg, tokenizer, device)
    return (
        exported.manifest["counts"]["pairs"],
        trained,
        (report_rows, forgetting, likelihood),
        predictions,
    )


def _output_folder(out: str | Path | None) -> Path | None:
    folder = Path(out) if out is not None else None
    if folder is not None:
        if folder.exists() and not folder.is_dir():
            raise EngramError(f"--out {folder} exists and is not a folder")
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def _base_generator(generator: Any, threads: int, device: str) -> Any:
    """The base ``LocalGenerator`` (default SmolLM2 on ``device``), loaded and checked."""
    from engram.generate.local import LocalGenerator

    if generator is None:
        generator = LocalGenerator(threads=threads, device=device)
    if not isinstance(generator, LocalGenerator):
        raise EngramError("the experiment fine-tunes a local transformers model (LocalGenerator)")
    generator.load()
    if str(next(generator.model.parameters()).device).split(":")[0] != device.split(":")[0]:
        raise EngramError(
            f"the base generator runs on {generator.device}, the experiment on {device}"
        )
    return generator


def _train_all(
    cfg: ExperimentConfig,
    generator: Any,
    datasets: dict[str, list[Example]],
    device: str,
    threads: int,
    folder: Path | None,
    log: Log,
) -> dict[str, TrainedModel]:
    """One LoRA fine-tune of the base model per variant, each wrapped as a generator."""
    import torch

    from engram.generate.local import LocalGenerator

    trained: dict[str, TrainedModel] = {}
    for variant in cfg.variants:
        log(f"training {variant}: {len(datasets[variant])} examples")
        save_to = folder / f"adapter-{variant}" if folder is not None else None
        torch.set_num_threads(threads)
        model, stats = train_lora(
            generator.model,
            generator.tokenizer,
            datasets[variant],
            cfg,
            device,
            save_to=save_to,
            log=log,
            label=variant,
        )
        gen = LocalGenerator.from_model(
            model,
            generator.tokenizer,
            model_id=f"{generator.model_id}+lora-{variant}",
            threads=generator.threads,
        )
        trained[variant] = TrainedModel(variant, model, gen, stats)
        log(
            f"trained {variant} in {stats['seconds']} s, loss {stats['loss_first']} -> "
            f"{stats['loss_last']}"
        )
    return trained


def _report(
    path: str | Path,
    cfg: ExperimentConfig,
    selection: Selection,
    exported_pairs: int,
    run: tuple[str, int, str],
    trained: dict[str, TrainedModel],
    outcomes: tuple[list[dict[str, Any]], Any, Any],
    timings: dict[str, float],
) -> dict[str, Any]:
    """``report.json``: data, config, environment, training, results and timings."""
    import peft
    import torch
    import transformers

    device, threads, model_id = run
    report_rows, forgetting, likelihood = outcomes
    return {
        "experiment": "finetune-vs-memory",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "data": {
            "file": str(path),
            "articles": selection.articles,
            "passages": [p.id for p in selection.passages],
            "training_pairs": len(selection.train_qa),
            "exported_pairs": exported_pairs,
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
            "model": model_id,
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
        "timings": timings,
    }


def _write_outputs(folder: Path, report: dict[str, Any], predictions: list[Any]) -> None:
    (folder / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    with open(folder / "predictions.jsonl", "w", encoding="utf-8") as f:
        for p in predictions:
            f.write(json.dumps(p, ensure_ascii=False) + "\n")


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
