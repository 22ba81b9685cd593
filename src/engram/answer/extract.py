"""The extractive reader: a verbatim span of an evidence sentence, picked by the model.

A 135M-parameter model writes poor answers in its own words but ranks candidate answers well:
given the evidence sentences and the question, the likelihood that it answers with exactly a
given span (and then stops) is a good score. So the reader

1. ranks the sentences of the recalled passages by the question's (rare) words they contain;
2. lists the short spans of the best few sentences that could answer (``spans.py``);
3. scores every span by the unchanged model's log-likelihood of it as the whole reply, one
   forward pass per start word with the prompt's key/value cache shared (``reply_logprobs``);
4. adds light priors (the span has the kind of content the question asks for; it does not
   repeat the question) and picks the best;
5. turns the evidence into a calibrated confidence and abstains below a threshold.

The answer, its evidence sentence and its citation always come from the passages.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

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


def select_evidence(question: str, sources: list[Source], count: int) -> list[Sentence]:
    """The ``count`` sentences of ``sources`` that share the most with ``question``.

    For a question about time, the date in a chosen sentence's source title (a conversation
    turn is titled with its session's date) joins the evidence right after that sentence.
    """
    passages = [(s.number, s.text or s.hit.text) for s in sources]
    chosen = [s for s in rank_sentences(question, passages)[:count] if s.matched]
    if answer_type(question) != "time":
        return chosen
    titles = {s.number: s.hit.title.strip() for s in sources}
    out: list[Sentence] = []
    for sentence in chosen:
        out.append(sentence)
        title = titles.get(sentence.source, "")
        if any(ch.isdigit() for ch in title) and all(o.text != title for o in out):
            out.append(Sentence(title, sentence.source, -1, sentence.score, sentence.matched))
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
RANK_PENALTY = 4.0  # per rank of the span's sentence below the best
DISTANCE_PENALTY = 1.5  # per word between the span and the nearest question word (up to 5)


def span_score(s: Scored, rank: int) -> float:
    c = s.candidate
    return (
        s.logprob / max(1, s.tokens) ** LENGTH_POWER
        + END_WEIGHT * s.end_logprob
        + TYPE_BONUS * c.type_match
        - QUESTION_PENALTY * c.question_share
        - RANK_PENALTY * rank
        - DISTANCE_PENALTY * c.distance
    )


# Confidence: a logistic model of "the picked span is right" (token F1 >= 0.5) over the evidence
# sentence's coverage of the question and the best span's score, fitted on 100 other SQuAD
# questions from ../shared/data (seeded sample 11), each answered with its passage in memory and
# with it kept out of recall (AUC 0.79; see docs/answers.md).
CONFIDENCE_BIAS = -1.854
CONFIDENCE_COVERAGE = 3.089
CONFIDENCE_SCORE = 0.245


def confidence(evidence: Sentence, best: float) -> float:
    z = CONFIDENCE_BIAS + CONFIDENCE_COVERAGE * evidence.score + CONFIDENCE_SCORE * best
    return 1 / (1 + math.exp(-z))


def extract(
    question: str,
    sources: list[Source],
    generator: object,
    settings: ExtractSettings,
    *,
    prompt_only: bool = False,
) -> Extraction:
    """Pick the best answer span for ``question`` from ``sources`` (see the module docstring)."""
    evidence = select_evidence(question, sources, settings.sentences)
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
    order = {id(s): k for k, s in enumerate(evidence)}
    for s in scored:
        s.score = span_score(s, order[id(s.candidate.sentence)])
    best = max(scored, key=lambda s: s.score)
    return Extraction(best, evidence, confidence(best.candidate.sentence, best.score), messages)
