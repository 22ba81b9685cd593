"""The extractive reader: a verbatim span of an evidence sentence, picked by the model.

A 135M-parameter model writes poor answers in its own words but ranks candidate answers well:
given the evidence sentences and the question, the likelihood that it answers with exactly a
given span (and then stops) is a good score. So the reader

1. ranks the sentences of the recalled passages by the question's (rare) words they contain
   and, given an embedder, by their embedding cosine to the question;
2. lists the short spans of the best few sentences that could answer (``spans.py``);
3. scores every span by the unchanged model's log-likelihood of it as the whole reply, one
   forward pass per start word with the prompt's key/value cache shared (``reply_logprobs``);
4. adds light priors (the span has the kind of content the question asks for; it does not
   repeat the question; its sentence is the best evidence; it sits near the question's words)
   and picks the best;
5. turns the evidence into a calibrated confidence and abstains below a threshold.

The answer, its evidence sentence and its citation always come from the passages.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace

from engram.answer.evidence import Sentence, rank_sentences
from engram.answer.spans import Candidate, answer_type, candidate_spans
from engram.errors import GenerationError
from engram.generate.base import Message
from engram.prompt import Source

SYSTEM = "Answer the question with a short phrase copied from the passage."
# Two worked examples (written for Engram, not from any evaluation set) show the model the form.
EXAMPLES: list[Message] = [
    {
        "role": "user",
        "content": "Passage: The bridge was opened in 1932 by the mayor, Ada Lind, after four "
        "years of work.\nQuestion: Who opened the bridge?",
    },
    {"role": "assistant", "content": "Ada Lind"},
    {
        "role": "user",
        "content": "Passage: The library holds about 40,000 books and lends them for three "
        "weeks.\nQuestion: How long can books be borrowed?",
    },
    {"role": "assistant", "content": "three weeks"},
]
# Contrastive scoring: a span's likelihood under a question-free prompt over the same passage,
# times this weight, is subtracted, so spans the model likes whatever is asked lose ground.
BASELINE_QUESTION = "What is mentioned in the passage?"
BASELINE_WEIGHT = 0.25


@dataclass
class ExtractSettings:
    """How the extractive reader reads. The defaults live in ``Config`` (``extract_*``)."""

    sentences: int
    max_words: int
    min_confidence: float
    sentence_answers: bool  # answer why/how questions with the whole evidence sentence
    similarity_weight: float  # weight of the embedding cosine in ranking evidence sentences


# The embedding cosine of each text to the question (``Memory.similarities``).
Similarity = Callable[[list[str]], list[float]]


@dataclass
class Scored:
    """A candidate with its model log-probabilities and final score."""

    candidate: Candidate
    logprob: float  # of the span's tokens as the reply
    end_logprob: float  # of stopping right after it
    tokens: int
    score: float = 0.0


@dataclass
class Extraction:
    """The reader's pick: the best span (or ``None``), its evidence and a confidence."""

    best: Scored | None
    evidence: list[Sentence]
    confidence: float
    messages: list[Message]


def _passage(evidence: list[Sentence]) -> str:
    ordered = sorted(evidence, key=lambda s: (s.source, s.position))
    return " ".join(s.text for s in ordered)


def reading_messages(question: str, evidence: list[Sentence]) -> list[Message]:
    """The exact prompt the model reads: two examples, the evidence sentences, the question."""
    return [
        {"role": "system", "content": SYSTEM},
        *EXAMPLES,
        {"role": "user", "content": f"Passage: {_passage(evidence)}\nQuestion: {question}"},
    ]


def baseline_messages(evidence: list[Sentence]) -> list[Message]:
    """The same passage with a question that asks for nothing in particular."""
    content = f"Passage: {_passage(evidence)}\nQuestion: {BASELINE_QUESTION}"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": content}]


def select_evidence(
    question: str,
    sources: list[Source],
    count: int,
    similarity: Similarity | None = None,
    weight: float = 0.0,
) -> list[Sentence]:
    """The ``count`` sentences of ``sources`` that best match ``question``.

    A sentence must share a term with the question; it is ranked by the idf-weighted share of
    the question's terms it holds plus ``weight`` times its embedding cosine to the question
    (when ``similarity`` is given), which finds the sentence that says the same in other words.
    For a question about time, the date in a chosen sentence's source title (a conversation
    turn is titled with its session's date) joins the evidence right after that sentence.
    """
    passages = [(s.number, s.text or s.hit.text) for s in sources]
    titles = {s.number: s.hit.title.strip() for s in sources}
    matched = [s for s in rank_sentences(question, passages, titles=titles) if s.matched]
    if similarity is not None and matched:  # the cosine also feeds the confidence
        for sentence, cosine in zip(matched, similarity([s.text for s in matched]), strict=True):
            sentence.similarity = cosine
    for sentence in matched:
        sentence.relevance = sentence.score + weight * sentence.similarity
    matched.sort(key=lambda s: -s.relevance)
    chosen = matched[:count]
    if answer_type(question) != "time":
        return chosen
    out: list[Sentence] = []
    for sentence in chosen:
        out.append(sentence)
        title = titles.get(sentence.source, "")
        if any(ch.isdigit() for ch in title) and all(o.text != title for o in out):
            out.append(replace(sentence, text=title, position=-1))
    return out


def _score_spans(
    generator: object, messages: list[Message], spans: list[Candidate]
) -> list[Scored]:
    """Model log-probabilities for every span: one reply per start word, prefixes read off it."""
    score = getattr(generator, "reply_logprobs", None)
    if score is None:
        raise GenerationError(
            f"the extract reader needs a model it can score with; {generator!r} only generates "
            "(use --reader generate)"
        )
    groups: dict[tuple[int, int], list[Candidate]] = defaultdict(list)
    for c in spans:
        groups[(id(c.sentence), c.start)].append(c)
    texts = [g[0].sentence.text[g[0].start : max(c.end for c in g)] for g in groups.values()]
    out = []
    for group, scored in zip(groups.values(), score(messages, texts), strict=True):
        for c in group:
            found = scored.prefix(c.end - c.start)
            if found is not None:
                out.append(Scored(c, found[0], found[1], found[2]))
    return out


# Span score weights, chosen on 160 SQuAD questions from ../shared/data answered from memory
# (seeded sample 7 of dev-v1.1.first24; see docs/answers.md for the sweep).
LENGTH_POWER = 0.25  # log-likelihood divided by tokens ** LENGTH_POWER
END_WEIGHT = 0.5  # weight of the log-probability of stopping after the span
TYPE_BONUS = 3.0  # the span holds what the question asks for (a number, a time, a name)
QUESTION_PENALTY = 2.0  # times the share of the span's terms the question already has
RANK_PENALTY = 4.0  # the span's sentence is not the best evidence (in full from GAP_SCALE)
GAP_SCALE = 0.2  # relevance below the best sentence's at which the full rank penalty applies
DISTANCE_PENALTY = 1.5  # per word between the span and the nearest question word (up to 5)


def span_score(s: Scored, gap: float) -> float:
    """The span's score; ``gap`` is how far its sentence's relevance is below the best's."""
    c = s.candidate
    return (
        s.logprob / max(1, s.tokens) ** LENGTH_POWER
        + END_WEIGHT * s.end_logprob
        + TYPE_BONUS * c.type_match
        - QUESTION_PENALTY * c.question_share
        - RANK_PENALTY * min(1.0, gap / GAP_SCALE)
        - DISTANCE_PENALTY * c.distance
    )


# Confidence: a logistic model of "the picked span is right" (token F1 >= 0.5), fitted on 100
# SQuAD questions from ../shared/data (seeded sample 11), each answered with its passage in
# memory and with it kept out of recall; see docs/answers.md. Features: the evidence sentence's
# share of the question's terms, its embedding cosine to the question, and the best span's
# score (AUC 0.76). Without an embedder the cosine is unknown: a model fitted on the other two.
@dataclass(frozen=True)
class Calibration:
    bias: float
    coverage: float
    similarity: float
    score: float


CONFIDENCE = Calibration(bias=-3.705, coverage=1.669, similarity=4.007, score=0.138)
CONFIDENCE_LEXICAL = Calibration(bias=-1.545, coverage=2.150, similarity=0.0, score=0.152)


def confidence(evidence: Sentence, best: float, *, with_similarity: bool = True) -> float:
    """The probability that the span picked from ``evidence`` with score ``best`` is right."""
    c = CONFIDENCE if with_similarity else CONFIDENCE_LEXICAL
    z = c.bias + c.coverage * evidence.score + c.similarity * evidence.similarity
    return 1 / (1 + math.exp(-(z + c.score * best)))


def extract(
    question: str,
    sources: list[Source],
    generator: object,
    settings: ExtractSettings,
    *,
    similarity: Similarity | None = None,
    prompt_only: bool = False,
) -> Extraction:
    """Pick the best answer span for ``question`` from ``sources`` (see the module docstring)."""
    evidence = select_evidence(
        question, sources, settings.sentences, similarity, settings.similarity_weight
    )
    messages = reading_messages(question, evidence)
    if prompt_only or not evidence:
        return Extraction(None, evidence, 0.0, messages)
    spans = [
        c for s in evidence for c in candidate_spans(question, s, max_words=settings.max_words)
    ]
    scored = _score_spans(generator, messages, spans)
    baseline = {
        id(b.candidate): b for b in _score_spans(generator, baseline_messages(evidence), spans)
    }
    for sc in scored:
        prior = baseline[id(sc.candidate)]
        sc.logprob -= BASELINE_WEIGHT * prior.logprob
        sc.end_logprob -= BASELINE_WEIGHT * prior.end_logprob
    if not scored:
        return Extraction(None, evidence, 0.0, messages)
    top = max(s.relevance for s in evidence)
    for s in scored:
        s.score = span_score(s, top - s.candidate.sentence.relevance)
    best = max(scored, key=lambda s: s.score)
    sure = confidence(best.candidate.sentence, best.score, with_similarity=similarity is not None)
    return Extraction(best, evidence, sure, messages)
