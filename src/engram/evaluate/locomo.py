"""``engram eval locomo``: evidence recall (and optionally answer F1) on LoCoMo-format data.

Each conversation goes into its own namespace. Every turn is stored three ways, all dated by
its session's time and tagged with its ``dia_id``:

* ``kind="turn"``: ``"Speaker: text [shares <image caption>]"``, the memory itself;
* ``kind="context"``: the turn with the two turns before it and the one after it (same
  session), so a reply is found by the words of the question it answers;
* ``kind="sentence"``: each sentence of the turn alone, so one sentence of a long turn is not
  drowned by the rest in its embedding.

A question is scored per turn from three searches: BM25 over turns, BM25 over contexts and
the best sentence's cosine (each min-max normalised over its candidates), blended
``(1 - alpha) / 2, (1 - alpha) / 2, alpha``; a turn then gains a share of its neighbours'
scores, and, when the question names a time ("in May 2023", "on 3 June, 2023"), turns dated
in that range or in the two weeks after it gain a bonus. The best ``ranker_pool`` turns of
that blend are then re-ordered by a learned linear ranker (``ranker="learned"``, the default;
``locomo_rank``: logistic regression over each turn's view scores and ranks, its neighbours,
speaker, time, session, length and form, fitted on the evidence of ``locomo_dev5.json``).
``retrieval="plain"`` is the baseline: hybrid search over the turns alone; ``"agent"``
stores and recalls the turns through ``AgentMemory`` (``locomo_agent``), as an agent would.
"""

from __future__ import annotations

import json
import random
import re
import string
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engram.answer.citations import CITATION_MARKER
from engram.errors import EngramError
from engram.evaluate.locomo_rank import (
    DEFAULT_RANKER,
    Candidates,
    TurnRanker,
    rerank,
)
from engram.ingest.chunking import split_sentences
from engram.memory import Memory
from engram.stored import iter_documents, latest_time
from engram.timeparse import TimeRange, parse_time_range
from engram.turns import speakers_named
from engram.types import Document, Hit

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
SCORED = (1, 2, 3, 4)
_EVIDENCE = re.compile(r"D(\d+):(\d+)")
_SESSION_TIME = re.compile(
    r"(\d{1,2}):(\d{2})\s*([ap]m)\s+on\s+(\d{1,2})\s+([A-Za-z]+),?\s+(\d{4})", re.IGNORECASE
)


@dataclass
class Turn:
    dia_id: str
    session: int
    index: int  # position in its session
    speaker: str
    text: str
    caption: str
    time: float
    when: str  # the session's date and time as written

    @property
    def content(self) -> str:
        """``"Speaker: text"`` plus the shared image's caption, if any."""
        shared = f" [shares {self.caption}]" if self.caption else ""
        return f"{self.speaker}: {self.text.strip()}{shared}"


@dataclass
class Question:
    question: str
    answer: str
    category: int
    evidence: list[str]


@dataclass
class Conversation:
    sample_id: str
    turns: list[Turn]
    questions: list[Question] = field(default_factory=list)

    @property
    def namespace(self) -> str:
        return "locomo-" + re.sub(r"[^A-Za-z0-9_.:@-]", "-", self.sample_id)


def parse_session_time(text: str) -> float:
    """Seconds since the epoch (UTC) of a LoCoMo session time like "1:56 pm on 8 May, 2023"."""
    m = _SESSION_TIME.search(text)
    if not m:
        raise EngramError(f"cannot read the session time {text!r}")
    hour, minute, half, day, month, year = m.groups()
    stamp = f"{int(hour)}:{minute} {half.upper()} {int(day)} {month[:3].title()} {year}"
    try:
        dt = datetime.strptime(stamp, "%I:%M %p %d %b %Y")
    except ValueError as exc:
        raise EngramError(f"cannot read the session time {text!r}") from exc
    return dt.replace(tzinfo=UTC).timestamp()


def normalise_evidence(refs: Iterable[str]) -> list[str]:
    """Evidence ids as ``D<session>:<turn>``: split joined ids ("D8:6; D9:17"), drop leading
    zeros ("D30:05") and malformed ones ("D")."""
    out: list[str] = []
    for ref in refs:
        for m in _EVIDENCE.finditer(str(ref)):
            out.append(f"D{int(m.group(1))}:{int(m.group(2))}")
    return list(dict.fromkeys(out))


def load_locomo(path: str | Path) -> list[Conversation]:
    """Conversations of a LoCoMo JSON file (a list of ``{sample_id, conversation, qa}``)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EngramError(f"{path}: cannot read LoCoMo JSON ({exc})") from exc
    if not isinstance(data, list):
        raise EngramError(f"{path}: expected a JSON list of conversations")
    out = []
    for item in data:
        conv = item["conversation"]
        turns: list[Turn] = []
        n = 1
        while f"session_{n}" in conv:
            when = conv.get(f"session_{n}_date_time", "")
            start = parse_session_time(when)
            for i, t in enumerate(conv[f"session_{n}"]):
                turns.append(
                    Turn(
                        dia_id=normalise_evidence([t["dia_id"]])[0],
                        session=n,
                        index=i,
                        speaker=t["speaker"],
                        text=t.get("text") or "",
                        caption=t.get("blip_caption") or "",
                        time=start + i,  # keeps the turns of a session in order
                        when=when,
                    )
                )
            n += 1
        questions = [
            Question(
                q["question"],
                str(q.get("answer", q.get("adversarial_answer", ""))),
                int(q["category"]),
                normalise_evidence(q.get("evidence") or []),
            )
            for q in item.get("qa", [])
        ]
        out.append(Conversation(str(item["sample_id"]), turns, questions))
    return out


# -- ingest ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    """How questions are matched to turns (see the module docstring)."""

    retrieval: str = "views"  # views | plain | agent
    alpha: float = 0.4  # weight of the sentence vectors
    before: int = 2  # context turns before a turn
    after: int = 1  # context turns after a turn
    prev: float = 0.1  # share of the previous turn's score a turn gains
    next: float = 0.05  # share of the next turn's score
    time_bonus: float = 0.2  # for turns in a time range the question names
    time_after_days: float = 14.0  # half the bonus for turns this long after the range
    candidates: int = 100
    speaker: float = 0.1  # bonus for turns by the one speaker the question names
    session: float = 0.0  # share of its session's normalised total score a turn gains
    context_vector: float = 0.2  # weight of the context windows' cosine (a fourth view)
    ranker: str = "learned"  # learned | none: re-order the best turns by locomo_rank
    ranker_pool: int = 100  # how many of the blend's best turns the ranker re-orders

    def __post_init__(self) -> None:
        if self.retrieval not in ("views", "plain", "agent"):
            raise EngramError(f"retrieval must be views, plain or agent, got {self.retrieval!r}")
        if self.ranker not in ("learned", "none"):
            raise EngramError(f"ranker must be learned or none, got {self.ranker!r}")
        if self.ranker_pool < 1:
            raise EngramError(f"ranker_pool must be at least 1, got {self.ranker_pool!r}")


def conversation_documents(conv: Conversation, settings: Settings = Settings()) -> list[Document]:
    """The documents of every turn: the turn, its context window and its sentences."""
    docs = []
    sessions: dict[int, list[Turn]] = {}
    for t in conv.turns:
        sessions.setdefault(t.session, []).append(t)
    for turns in sessions.values():
        for i, t in enumerate(turns):
            base = {"dia_id": t.dia_id, "speaker": t.speaker, "session": t.session}
            docs.append(
                Document(
                    t.content,
                    t.dia_id,
                    title=t.when,
                    metadata={**base, "kind": "turn", "turn": t.index},
                    created_at=t.time,
                )
            )
            window = turns[max(0, i - settings.before) : i + settings.after + 1]
            docs.append(
                Document(
                    "\n".join(w.content for w in window),
                    f"context:{t.dia_id}",
                    metadata={**base, "kind": "context"},
                    created_at=t.time,
                )
            )
            sentences = [t.text[a:b].strip() for a, b in split_sentences(t.text)]
            if t.caption:
                sentences.append(f"[shares {t.caption}]")
            for j, s in enumerate(x for x in sentences if x):
                docs.append(
                    Document(
                        f"{t.speaker}: {s}",
                        f"sentence:{t.dia_id}:{j}",
                        metadata={**base, "kind": "sentence"},
                        created_at=t.time,
                    )
                )
    return docs


def ingest(memory: Memory, conv: Conversation, settings: Settings = Settings()) -> None:
    """Store ``conv`` in its namespace (documents already stored are skipped, not re-embedded)."""
    if settings.retrieval == "agent":  # agent code is loaded only for this mode
        from engram.evaluate.locomo_agent import ingest_agent

        return ingest_agent(memory, conv)
    memory.add_documents(conversation_documents(conv, settings), namespace=conv.namespace)


# -- recall ----------------------------------------------------------------------------------
def _normalised(scores: dict[str, float], limit: int) -> dict[str, float]:
    top = sorted(scores.items(), key=lambda x: -x[1])[:limit]
    if not top:
        return {}
    lo, hi = top[-1][1], top[0][1]
    return {d: (s - lo) / (hi - lo) if hi > lo else 1.0 for d, s in top}


def _by_turn(hits: list[Hit], key: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for h in hits:
        dia = h.metadata.get("dia_id")
        if dia is not None and key in h.scores:
            out[dia] = max(out.get(dia, float("-inf")), h.scores[key])
    return out


def recall_turns(
    memory: Memory,
    namespace: str,
    question: str,
    k: int = 10,
    settings: Settings = Settings(),
    reference: float | None = None,
    ranker: TurnRanker | None = None,
) -> list[tuple[str, float]]:
    """``(dia_id, score)`` of the ``k`` best turns for ``question``, best first.

    ``reference`` is the time relative phrases in the question are read against (default:
    the newest memory's time). With ``settings.ranker == "learned"`` the blend's best
    ``settings.ranker_pool`` turns are re-ordered by ``ranker`` (default ``DEFAULT_RANKER``).
    """
    if settings.retrieval == "agent":
        from engram.evaluate.locomo_agent import agent_turns, agent_window

        return agent_turns(memory, namespace, question, k, agent_window(settings))
    if settings.retrieval == "plain":
        hits = memory.search(question, k=k, namespace=namespace, where={"kind": "turn"})
        return [(h.metadata["dia_id"], h.score) for h in hits]
    found = turn_candidates(memory, namespace, question, settings, reference)
    if settings.ranker == "learned":
        return rerank(found, ranker or DEFAULT_RANKER, settings.ranker_pool)[:k]
    return found.ranked[:k]


def _view_hits(
    memory: Memory, namespace: str, question: str, settings: Settings
) -> dict[str, list[Hit]]:
    """The hits of each view's search (``locomo_rank.VIEWS``)."""
    n = settings.candidates

    def search(kind: str, mode: str, limit: int, **extra: Any) -> list[Hit]:
        where = {"kind": kind}
        return memory.search(question, limit, mode, where, namespace, **extra)

    vector = memory.embed_query(question)  # once for both vector views
    hits = {
        "turn_keyword": search("turn", "keyword", n),
        "context_keyword": search("context", "keyword", n),
        "sentence_vector": search("sentence", "vector", 3 * n, query_vector=vector),
    }
    if settings.context_vector:
        hits["context_vector"] = search("context", "vector", n, query_vector=vector)
    return hits


def turn_candidates(
    memory: Memory,
    namespace: str,
    question: str,
    settings: Settings = Settings(),
    reference: float | None = None,
) -> Candidates:
    """Every turn the views find for ``question``, ranked by their blend (the module
    docstring), with what the learned ranker reads of each."""
    n = settings.candidates
    hits = _view_hits(memory, namespace, question, settings)
    views = {v: _by_turn(h, v.split("_")[1]) for v, h in hits.items()}
    normalised = {v: _normalised(s, n) for v, s in views.items()}
    half = (1 - settings.alpha) / 2
    weights = {
        "turn_keyword": half,
        "context_keyword": half,
        "sentence_vector": settings.alpha,
        "context_vector": settings.context_vector,
    }
    score: defaultdict[str, float] = defaultdict(float)
    for view, part in normalised.items():
        for dia, s in part.items():
            score[dia] += weights[view] * s
    seen = [*hits["turn_keyword"], *hits["context_keyword"], *hits["sentence_vector"]]
    named = speakers_named(question, seen, ignore_case=True)
    if settings.speaker:  # only when the question names exactly one of them
        speaker_bonus(score, question, seen, settings.speaker)
    if settings.session:
        session_share(score, settings.session)
    smoothed = _smoothed(score, settings)
    # Only turns that exist rank (a smoothed neighbour may lie past a session's end).
    docs = {
        d.key: d
        for d in iter_documents(
            memory, namespace, {"kind": "turn", "doc_id": {"$in": list(smoothed)}}
        )
    }
    found = None
    if settings.time_bonus or settings.ranker == "learned":
        if reference is None:
            reference = latest_time(memory, namespace)
        found = parse_time_range(question, reference) if reference is not None else None
    ranked = _time_ranked(smoothed, {d: doc.created_at for d, doc in docs.items()}, found, settings)
    return Candidates(
        ranked=ranked,
        views=views,
        normalised=normalised,
        blended=dict(score),
        texts={d: doc.text for d, doc in docs.items()},
        speakers={d: str(doc.metadata.get("speaker", "")) for d, doc in docs.items()},
        times={d: doc.created_at for d, doc in docs.items()},
        named=named,
        found=found,
        after_s=settings.time_after_days * 86_400,
    )


def _time_ranked(
    smoothed: dict[str, float],
    times: dict[str, float],
    found: TimeRange | None,
    settings: Settings,
) -> list[tuple[str, float]]:
    """The turns of ``times`` by smoothed score plus the time bonus, best first."""
    ranked = []
    for dia, t in times.items():
        s = smoothed[dia]
        if found is not None and settings.time_bonus:
            end = found.end if found.end is not None else float("inf")
            if found.contains(t):
                s += settings.time_bonus
            elif end <= t < end + settings.time_after_days * 86_400:
                s += settings.time_bonus / 2
        ranked.append((dia, s))
    ranked.sort(key=lambda x: (-x[1], x[0]))
    return ranked


def _smoothed(score: dict[str, float], settings: Settings) -> defaultdict[str, float]:
    """Each turn's score, plus its neighbours' shares (``settings.prev`` / ``next``)."""
    smoothed: defaultdict[str, float] = defaultdict(float)
    for dia, s in score.items():
        turn_id = _EVIDENCE.fullmatch(dia)
        assert turn_id is not None  # every key is a turn id ("D<session>:<n>")
        session, number = (int(x) for x in turn_id.groups())
        smoothed[dia] += s
        smoothed[f"D{session}:{number + 1}"] += settings.prev * s  # I am the next one's prev
        smoothed[f"D{session}:{number - 1}"] += settings.next * s
    return smoothed


def speaker_bonus(
    score: defaultdict[str, float], question: str, hits: list[Hit], bonus: float
) -> None:
    """Add ``bonus`` to the turns spoken by the one speaker ``question`` names (by first
    name, as a word); nothing when it names none or several."""
    speakers = {h.metadata.get("dia_id"): h.metadata.get("speaker") for h in hits}
    named = speakers_named(question, hits, ignore_case=True)
    if len(named) != 1:
        return
    for dia in list(score):
        if speakers.get(dia) == named[0]:
            score[dia] += bonus


def session_share(score: defaultdict[str, float], share: float) -> None:
    """Each scored turn gains ``share`` times its session's total score over the best
    session's (a session as one more view: a question's topic spreads over its session)."""
    session = {dia: dia.split(":")[0] for dia in score}  # "D3:7" -> "D3"
    totals: dict[str, float] = {}
    for dia, s in score.items():
        totals[session[dia]] = totals.get(session[dia], 0.0) + s
    best = max(totals.values(), default=0.0)
    if best <= 0:
        return
    for dia in list(score):
        score[dia] += share * totals[session[dia]] / best


# -- scoring ---------------------------------------------------------------------------------
_ARTICLES = re.compile(r"\b(a|an|the|and)\b")


def _answer_tokens(text: str) -> list[str]:
    text = "".join(ch for ch in str(text).lower() if ch not in string.punctuation)
    return _ARTICLES.sub(" ", text).split()


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD-style token F1 (lowercase, no punctuation or articles)."""
    pred, ref = _answer_tokens(prediction), _answer_tokens(gold)
    common = sum((Counter(pred) & Counter(ref)).values())
    if not pred or not ref or not common:
        return float(not pred and not ref)
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def _turn_hits(memory: Memory, namespace: str, ranked: list[tuple[str, float]]) -> list[Hit]:
    """The turn documents of ranked ``dia_id``s as hits scored by rank, titled with their
    session's date (so temporal questions can be answered)."""
    docs = {
        d.key: d
        for d in iter_documents(
            memory, namespace, {"kind": "turn", "doc_id": {"$in": [d for d, _ in ranked]}}
        )
    }
    hits = []
    for dia, score in ranked:
        if dia in docs:
            for h in memory.get([c.id for c in docs[dia].chunks]):
                h.score = score
                hits.append(h)
    return hits


def spread_sample(
    todo: list[tuple[Conversation, Question]], limit: int, seed: int = 0
) -> list[tuple[Conversation, Question]]:
    """A seeded sample of ``limit`` questions spread evenly over the conversations.

    Each conversation's questions are shuffled with ``seed`` and taken in turn, one per
    conversation per round; the sample keeps the file's order.
    """
    if limit >= len(todo):
        return todo
    rng = random.Random(seed)
    by_conv: dict[str, list[int]] = {}
    for i, (conv, _) in enumerate(todo):
        by_conv.setdefault(conv.sample_id, []).append(i)
    queues = [rng.sample(ids, len(ids)) for ids in by_conv.values()]
    picked: list[int] = []
    while len(picked) < limit:
        for queue in queues:
            if queue and len(picked) < limit:
                picked.append(queue.pop())
    return [todo[i] for i in sorted(picked)]


def _scored_questions(
    convs: list[Conversation],
) -> tuple[list[tuple[Conversation, Question]], int]:
    """The questions of the scored categories that name evidence, and how many did not."""
    todo: list[tuple[Conversation, Question]] = []
    skipped = 0
    for conv in convs:
        for q in conv.questions:
            if q.category in SCORED:
                if q.evidence:
                    todo.append((conv, q))
                else:
                    skipped += 1
    return todo, skipped


def _mean(part: list[dict[str, Any]], key: str) -> float:
    return round(sum(r[key] for r in part) / len(part), 4) if part else 0.0


def evaluate_locomo(
    path: str | Path,
    *,
    store: str | Path | None = None,
    k: int = 10,
    limit: int | None = None,
    seed: int = 0,
    answer: bool = False,
    reader: str | None = None,
    settings: Settings = Settings(),
    memory: Memory | None = None,
    progress: bool = False,
    **memory_options: Any,
) -> dict[str, Any]:
    """Evidence recall@5/@10 (and @k) over categories 1-4, overall and per category.

    Conversations are stored in ``store`` (kept; re-running re-embeds nothing) or a temporary
    store, or in ``memory`` when given. ``limit`` keeps a seeded sample of N questions spread
    over the conversations (``spread_sample``). With ``answer``, the model answers each question
    from its top ``k`` turns (through ``reader``, default the config's) and token F1 (the LoCoMo
    paper's metric; an abstention scores 0) and the share of abstentions are reported.
    Questions without evidence ids are skipped (counted in ``skipped``).
    """
    if answer and settings.retrieval == "agent":
        raise EngramError(
            "--answers reads the views' turn documents: use --retrieval views or plain"
        )
    todo, skipped = _scored_questions(load_locomo(path))
    if limit is not None:
        todo = spread_sample(todo, limit, seed)
    ks = sorted({5, 10, k})
    with tempfile.TemporaryDirectory() as tmp:
        mem = memory or Memory(store or Path(tmp) / "locomo.db", **memory_options)
        try:
            needed = {id(c): c for c, _ in todo}
            for i, conv in enumerate(needed.values(), 1):
                if progress:
                    print(f"ingesting {conv.sample_id} ({i}/{len(needed)})", file=sys.stderr)
                ingest(mem, conv, settings)
            rows = []
            for i, (conv, q) in enumerate(todo, 1):
                ranked = recall_turns(mem, conv.namespace, q.question, max(ks), settings)
                found = [d for d, _ in ranked]
                row: dict[str, Any] = {"category": q.category}
                for n in ks:
                    row[f"recall@{n}"] = len(set(found[:n]) & set(q.evidence)) / len(q.evidence)
                if answer:
                    hits = _turn_hits(mem, conv.namespace, ranked[:k])
                    reply = mem.answer(q.question, hits, reader=reader)
                    text = "" if reply.no_answer else CITATION_MARKER.sub(" ", reply.answer)
                    row["f1"] = token_f1(text, q.answer)
                    row["abstained"] = float(reply.no_answer)
                rows.append(row)
                if progress and i % 50 == 0:
                    print(f"{i}/{len(todo)} questions", file=sys.stderr)
        finally:
            if memory is None:
                mem.close()
    metrics = [f"recall@{n}" for n in ks] + (["f1", "abstained"] if answer else [])
    result: dict[str, Any] = {m: _mean(rows, m) for m in metrics}
    result["questions"] = len(rows)
    result["skipped"] = skipped
    result["per_category"] = {
        str(c): {
            "name": CATEGORIES[c],
            "questions": len(part),
            **{m: _mean(part, m) for m in metrics},
        }
        for c in SCORED
        if (part := [r for r in rows if r["category"] == c])
    }
    result["retrieval"] = settings.retrieval
    return result
