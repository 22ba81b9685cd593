"""``engram export``: fine-tuning datasets (chat or QA JSON lines) from what memory holds.

Question-answer pairs come from three places, each with its provenance (document keys and
chunk ids):

* stored pairs: documents whose metadata has ``question`` and ``answer`` (a string or a list,
  the first is used), optionally ``context`` and ``source_doc`` (the key of the document the
  pair is about; its chunk that holds the answer becomes the context);
* conversation turns (metadata ``kind="turn"``, as ``AgentMemory`` stores them): a turn and
  the next turn of another speaker in the same session become a user/assistant pair;
* with ``generate=True``, the model writes one pair per cluster of the other documents'
  chunks, citing them; a pair whose answer is not in the cited chunks is dropped.

Pairs are deduplicated (normalised question and answer) and split into train and validation
by source document, deterministically for a seed, so no document feeds both splits.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from engram.errors import EngramError, NamespaceError
from engram.stored import StoredChunk, StoredDocument, chunk_vectors, iter_documents
from engram.turns import spoken_text

if TYPE_CHECKING:
    from engram.generate.base import Generator
    from engram.memory import Memory

FORMATS = ("chat-jsonl", "qa-jsonl")
DEFAULT_SYSTEM = "Reply with the answer only: a short phrase, not a sentence."
GENERATE_SYSTEM = (
    "You write quiz questions about numbered passages. Write one question that the passages "
    "answer and its short answer, taken word for word from a passage, then the passage number "
    "in brackets. Use exactly this form:\nQuestion: ...\nAnswer: ... [n]"
)
_QUESTION = re.compile(r"question\s*:\s*(.+)", re.IGNORECASE)
_ANSWER = re.compile(r"answer\s*:\s*(.+)", re.IGNORECASE)
_CITES = re.compile(r"\[\s*(\d+)\s*\]")
_SPACES = re.compile(r"\s+")


@dataclass
class QAPair:
    """One question-answer pair with its provenance.

    ``group`` is the source document the split keeps together; ``sources`` lists
    ``{"doc_id", "chunk_ids"}`` of the documents the pair comes from.
    """

    question: str
    answer: str
    context: str
    sources: list[dict[str, Any]]
    group: str
    origin: str  # "stored", "turns" or "generated"

    @property
    def id(self) -> str:
        """A stable id: a hash of the normalised question and answer."""
        return hashlib.sha256(_dedup_key(self).encode("utf-8")).hexdigest()[:16]


@dataclass
class ExportResult:
    """The split pairs and a manifest (counts, options, provenance summary)."""

    train: list[QAPair]
    validation: list[QAPair]
    manifest: dict[str, Any]


# --------------------------------------------------------------------------- reading


def check_exportable(memory: Memory, namespace: str) -> int:
    """Raise a clear error for an unknown or empty namespace; return its document count."""
    from engram.memory import check_namespace

    check_namespace(namespace)
    known = {n["name"]: n for n in memory.namespaces()}
    if namespace not in known:
        names = ", ".join(sorted(known)) or "(none yet)"
        raise NamespaceError(f"unknown namespace {namespace!r}; known: {names}")
    documents = int(known[namespace].get("documents") or 0)
    if documents == 0:
        raise EngramError(f"namespace {namespace!r} is empty: nothing to export")
    return documents


# --------------------------------------------------------------------------- pairs


def normalize(text: str) -> str:
    """Lowercase, punctuation and articles removed, single spaces (SQuAD normalisation)."""
    from engram.evaluate.qa import normalize_answer

    return normalize_answer(text)


def _dedup_key(pair: QAPair) -> str:
    return f"{normalize(pair.question)}\x00{normalize(pair.answer)}"


def _clean(text: Any) -> str:
    return _SPACES.sub(" ", str(text)).strip() if text is not None else ""


def _first_answer(value: Any) -> str:
    if isinstance(value, list | tuple):
        value = next((v for v in value if _clean(v)), "")
    return _clean(value)


def _answer_chunk(chunks: list[StoredChunk], answer: str) -> StoredChunk | None:
    wanted = normalize(answer)
    for chunk in chunks:
        if wanted and wanted in normalize(chunk.text):
            return chunk
    return chunks[0] if chunks else None


def stored_pairs(docs: list[StoredDocument]) -> list[QAPair]:
    """Pairs from documents whose metadata holds ``question`` and ``answer``."""
    by_key = {d.key: d for d in docs}
    pairs: list[QAPair] = []
    for doc in docs:
        question = _clean(doc.metadata.get("question"))
        answer = _first_answer(doc.metadata.get("answer"))
        if not question or not answer:
            continue
        sources = [{"doc_id": doc.key, "chunk_ids": [c.id for c in doc.chunks]}]
        context = _clean(doc.metadata.get("context"))
        origin_key = _clean(doc.metadata.get("source_doc"))
        target = by_key.get(origin_key) if origin_key else None
        if target is not None:
            chunk = _answer_chunk(target.chunks, answer)
            if chunk is not None:
                sources.append({"doc_id": target.key, "chunk_ids": [chunk.id]})
                context = context or chunk.text
        elif origin_key:
            sources.append({"doc_id": origin_key, "chunk_ids": []})
        group = origin_key or doc.source or doc.key
        pairs.append(QAPair(question, answer, context, sources, group, "stored"))
    return pairs


def _turn_text(doc: StoredDocument) -> str:
    return _clean(spoken_text(doc.text, str(doc.metadata.get("speaker", ""))))


def turn_pairs(docs: list[StoredDocument], assistant: str | None = None) -> list[QAPair]:
    """Pairs from conversation turns: a turn and the next turn (of another speaker) in the same
    session. With ``assistant``, only replies by that speaker count."""
    sessions: dict[str, list[StoredDocument]] = {}
    for doc in docs:
        if doc.metadata.get("kind") == "turn":
            sessions.setdefault(str(doc.metadata.get("session", "")), []).append(doc)
    pairs: list[QAPair] = []
    for session, turns in sessions.items():
        turns.sort(key=lambda d: (int(d.metadata.get("turn", 0) or 0), d.created_at))
        for first, second in zip(turns, turns[1:], strict=False):
            a, b = first.metadata.get("speaker"), second.metadata.get("speaker")
            if a == b or (assistant is not None and b != assistant):
                continue
            question, answer = _turn_text(first), _turn_text(second)
            if not question or not answer:
                continue
            sources = [
                {"doc_id": d.key, "chunk_ids": [c.id for c in d.chunks]} for d in (first, second)
            ]
            group = f"session:{session}" if session else f"turn:{first.key}"
            pairs.append(QAPair(question, answer, "", sources, group, "turns"))
    return pairs


def _parse_generated(text: str) -> tuple[str, str, list[int]]:
    question = answer = ""
    for line in text.splitlines():
        if not question and (m := _QUESTION.search(line)):
            question = m.group(1)
        elif question and not answer and (m := _ANSWER.search(line)):
            answer = m.group(1)
    cited = [int(n) for n in _CITES.findall(answer)]
    answer = _clean(_CITES.sub(" ", answer).rstrip(". "))
    return _clean(question), answer, cited


def generated_pairs(
    memory: Memory,
    docs: list[StoredDocument],
    generator: Generator,
    *,
    limit: int = 50,
    passages: int = 3,
    max_tokens: int = 64,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[QAPair], dict[str, int]]:
    """Have ``generator`` write one pair per cluster of the chunks of ``docs`` (at most
    ``limit`` clusters, ``passages`` chunks each), citing the chunks by number.

    A pair is kept only when its answer (normalised) occurs in a cited chunk, or, when the
    model cites nothing valid, in one of the cluster's chunks (then cited by attribution).
    Returns the pairs and counts ``{"clusters", "kept", "rejected"}``.
    """
    from engram.cluster import cluster_hits
    from engram.types import Hit

    owner: dict[int, StoredDocument] = {}
    hits: list[Hit] = []
    for doc in docs:
        for position, chunk in enumerate(doc.chunks):
            owner[chunk.id] = doc
            # earlier chunks of a document rank first inside a cluster
            hits.append(
                Hit(id=chunk.id, text=chunk.text, score=1.0 / (1 + position), doc_id=doc.key)
            )
    counts = {"clusters": 0, "kept": 0, "rejected": 0}
    if not hits:
        return [], counts
    vectors = chunk_vectors(memory, [h.id for h in hits])
    for h in hits:
        h.vector = vectors.get(h.id)
    clusters = cluster_hits(hits, threshold=memory.config.cluster_threshold)[:limit]
    pairs: list[QAPair] = []
    for n, cluster in enumerate(clusters, 1):
        members = cluster.hits[:passages]
        numbered = "\n\n".join(f"[{i}] {h.text}" for i, h in enumerate(members, 1))
        reply = generator.complete(
            [
                {"role": "system", "content": GENERATE_SYSTEM},
                {"role": "user", "content": f"Passages:\n{numbered}\n\nWrite the question."},
            ],
            max_tokens=max_tokens,
            temperature=0.0,
        )
        question, answer, cited = _parse_generated(reply)
        wanted = normalize(answer)
        valid = [members[i - 1] for i in dict.fromkeys(cited) if 1 <= i <= len(members)]
        backing = [h for h in valid if wanted and wanted in normalize(h.text)]
        if not backing:
            backing = [h for h in members if wanted and wanted in normalize(h.text)][:1]
        counts["clusters"] += 1
        if not question or not wanted or not backing or normalize(question) == wanted:
            counts["rejected"] += 1
        else:
            counts["kept"] += 1
            by_doc: dict[str, list[int]] = {}
            for h in backing:
                by_doc.setdefault(owner[h.id].key, []).append(h.id)
            sources = [{"doc_id": k, "chunk_ids": v} for k, v in by_doc.items()]
            context = "\n\n".join(h.text for h in backing)
            group = owner[backing[0].id].source or owner[backing[0].id].key
            pairs.append(QAPair(question, answer, context, sources, group, "generated"))
        if progress:
            progress(f"generated {n}/{len(clusters)} ({counts['kept']} kept)")
    return pairs, counts


def dedupe(pairs: list[QAPair]) -> tuple[list[QAPair], int]:
    """Drop pairs whose normalised question and answer repeat an earlier one (their sources
    are merged into the first); returns the pairs kept and the number dropped."""
    kept: dict[str, QAPair] = {}
    for pair in pairs:
        key = _dedup_key(pair)
        first = kept.get(key)
        if first is None:
            kept[key] = pair
            continue
        for source in pair.sources:
            if source not in first.sources:
                first.sources.append(source)
    return list(kept.values()), len(pairs) - len(kept)


def split_pairs(
    pairs: list[QAPair], train_share: float = 0.9, seed: int = 0
) -> tuple[list[QAPair], list[QAPair]]:
    """Split by ``group`` (source document): groups ordered by a seeded hash go to validation
    until it holds ``1 - train_share`` of the pairs. Deterministic; no group in both."""
    if not 0.0 < train_share <= 1.0:
        raise EngramError(f"--split must be in (0, 1], got {train_share}")
    groups: dict[str, list[QAPair]] = {}
    for pair in pairs:
        groups.setdefault(pair.group, []).append(pair)
    if train_share == 1.0 or len(groups) < 2:
        return list(pairs), []

    def rank(group: str) -> str:
        return hashlib.sha256(f"{seed}\x00{group}".encode()).hexdigest()

    target = round(len(pairs) * (1.0 - train_share))
    held: set[str] = set()
    count = 0
    for group in sorted(groups, key=rank):
        if count >= max(1, target) or len(held) == len(groups) - 1:
            break
        held.add(group)
        count += len(groups[group])
    train = [p for p in pairs if p.group not in held]
    validation = [p for p in pairs if p.group in held]
    return train, validation


# --------------------------------------------------------------------------- records


def chat_record(
    pair: QAPair,
    system: str = DEFAULT_SYSTEM,
    *,
    with_context: bool = False,
    provenance: bool = True,
) -> dict[str, Any]:
    """``{"messages": [system, user, assistant], "metadata": {...}}`` (OpenAI / TRL format)."""
    user = pair.question
    if with_context and pair.context:
        user = f"Context:\n{pair.context}\n\nQuestion: {pair.question}"
    messages = [{"role": "user", "content": user}, {"role": "assistant", "content": pair.answer}]
    if system:
        messages.insert(0, {"role": "system", "content": system})
    record: dict[str, Any] = {"messages": messages}
    if provenance:
        record["metadata"] = {"id": pair.id, "origin": pair.origin, "sources": pair.sources}
    return record


def qa_record(pair: QAPair) -> dict[str, Any]:
    """``{"question", "answer", "context", "sources", "id", "origin"}``."""
    return {
        "question": pair.question,
        "answer": pair.answer,
        "context": pair.context,
        "sources": pair.sources,
        "id": pair.id,
        "origin": pair.origin,
    }


def to_record(pair: QAPair, fmt: str, **options: Any) -> dict[str, Any]:
    if fmt == "chat-jsonl":
        return chat_record(pair, **options)
    if fmt == "qa-jsonl":
        return qa_record(pair)
    raise EngramError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")


# --------------------------------------------------------------------------- export


def collect_pairs(
    memory: Memory,
    namespace: str,
    *,
    generate: bool = False,
    generator: Generator | None = None,
    max_generated: int = 50,
    assistant: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[QAPair], dict[str, Any]]:
    """All pairs of ``namespace`` (stored, turns, and generated when asked), deduplicated.

    Returns the pairs and counts by origin (plus ``duplicates`` and generation counts).
    """
    documents = check_exportable(memory, namespace)
    docs = list(iter_documents(memory, namespace))
    pairs = stored_pairs(docs) + turn_pairs(docs, assistant)
    counts: dict[str, Any] = {"documents": documents, "stored": 0, "turns": 0, "generated": 0}
    for p in pairs:
        counts[p.origin] += 1
    if generate:
        plain = [
            d
            for d in docs
            if not (d.metadata.get("question") and d.metadata.get("answer"))
            and d.metadata.get("kind") != "turn"
        ]
        made, gen_counts = generated_pairs(
            memory, plain, generator or memory.generator, limit=max_generated, progress=progress
        )
        pairs += made
        counts["generated"] = len(made)
        counts["generation"] = gen_counts
    pairs, counts["duplicates"] = dedupe(pairs)
    if not pairs:
        hint = "" if generate else "; pass --generate to have the model write pairs from chunks"
        raise EngramError(
            f"namespace {namespace!r} holds no question-answer pairs (documents with "
            f"question/answer metadata, or conversation turns){hint}"
        )
    return pairs, counts


def export_dataset(
    memory: Memory,
    namespace: str,
    fmt: str = "chat-jsonl",
    *,
    split: float = 0.9,
    seed: int = 0,
    system: str = DEFAULT_SYSTEM,
    with_context: bool = False,
    generate: bool = False,
    generator: Generator | None = None,
    max_generated: int = 50,
    assistant: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> ExportResult:
    """Collect, deduplicate and split the pairs of ``namespace``; see the module docstring."""
    if fmt not in FORMATS:
        raise EngramError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    pairs, counts = collect_pairs(
        memory,
        namespace,
        generate=generate,
        generator=generator,
        max_generated=max_generated,
        assistant=assistant,
        progress=progress,
    )
    train, validation = split_pairs(pairs, split, seed)
    manifest = {
        "namespace": namespace,
        "format": fmt,
        "store": memory.path if "://" not in memory.path else memory.path.split("@")[-1],
        "split": split,
        "seed": seed,
        "counts": {
            "train": len(train),
            "validation": len(validation),
            "pairs": len(pairs),
            "train_groups": len({p.group for p in train}),
            "validation_groups": len({p.group for p in validation}),
            **counts,
        },
        "system": system if fmt == "chat-jsonl" else None,
        "with_context": with_context if fmt == "chat-jsonl" else None,
    }
    return ExportResult(train, validation, manifest)


def write_jsonl(records: list[dict[str, Any]], handle: TextIO) -> None:
    for record in records:
        handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def write_export(
    result: ExportResult,
    out: str | Path | None,
    *,
    provenance: bool = True,
    stream: TextIO | None = None,
) -> dict[str, Any]:
    """Write ``train.jsonl``, ``validation.jsonl`` and ``manifest.json`` into ``out``, or,
    with ``out=None``, every record to ``stream`` (stdout) tagged with its split."""
    fmt = result.manifest["format"]
    options: dict[str, Any] = {}
    if fmt == "chat-jsonl":
        options = {
            "system": result.manifest["system"],
            "with_context": bool(result.manifest["with_context"]),
            "provenance": provenance,
        }
    splits = {"train": result.train, "validation": result.validation}
    if out is None:
        handle = stream or sys.stdout
        for name, pairs in splits.items():
            for pair in pairs:
                record = to_record(pair, fmt, **options)
                if "metadata" in record:
                    record["metadata"]["split"] = name
                elif fmt == "qa-jsonl":
                    record["split"] = name
                write_jsonl([record], handle)
        return result.manifest
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise EngramError(f"--out {folder} exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, pairs in splits.items():
            with open(folder / f"{name}.jsonl", "w", encoding="utf-8") as handle:
                write_jsonl([to_record(p, fmt, **options) for p in pairs], handle)
        manifest = {**result.manifest, "files": {n: f"{n}.jsonl" for n in splits}}
        (folder / "manifest.json").write_text(
            json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
    except OSError as exc:
        raise EngramError(f"cannot write the export into {folder}: {exc}") from exc
    return manifest
