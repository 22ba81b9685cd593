"""Build the answer prompt: clusters of numbered, delimited passages within a token budget."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from engram.cluster import Cluster
from engram.prompt.sanitize import escape_delimiters, neutralize_instructions
from engram.types import Hit

NO_ANSWER = "I don't know: memory holds no answer to that."
TEMPLATE_DIR = Path(__file__).parent / "templates"
SYSTEM_TEMPLATE = "system.j2"
USER_TEMPLATE = "user.j2"
ELLIPSIS = " …"
# Separator between the system and user message in ``Prompt.text``.
MESSAGE_SEPARATOR = "\n\n"

_WORD = re.compile(r"\S+")
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s)")


@dataclass
class Source:
    """A passage as numbered in the prompt; ``cluster`` indexes the clusters given to the builder.

    ``sanitized`` is true when instructions or delimiters were neutralised in the quoted text,
    ``truncated`` when the passage was cut to fit the budget; ``text`` is the text as quoted.
    """

    number: int
    hit: Hit
    cluster: int
    sanitized: bool = False
    truncated: bool = False
    text: str = ""


@dataclass
class Prompt:
    """The rendered prompt.

    ``messages`` are OpenAI-style system and user messages; ``text`` is exactly their contents
    joined by a blank line (what ``--show-prompt`` prints); ``tokens`` is ``count_tokens(text)``.
    ``dropped`` lists hits that did not fit the budget.
    """

    messages: list[dict[str, str]]
    sources: list[Source]
    text: str
    tokens: int
    dropped: list[Hit] = field(default_factory=list)


@lru_cache(maxsize=16)
def _environment(
    template_dir: str | None, overrides: tuple[tuple[str, str], ...]
) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = []
    if overrides:
        loaders.append(jinja2.DictLoader(dict(overrides)))
    if template_dir is not None:
        loaders.append(jinja2.FileSystemLoader(template_dir))
    loaders.append(jinja2.FileSystemLoader(TEMPLATE_DIR))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def _one_line(text: str) -> str:
    return " ".join(escape_delimiters(text)[0].split())


@dataclass
class _Candidate:
    cluster: int
    position: int
    hit: Hit
    text: str
    title: str
    sanitized: bool


def _prepare(cluster_index: int, position: int, hit: Hit) -> _Candidate:
    text, removed = neutralize_instructions(hit.text)
    text, escaped = escape_delimiters(text)
    title, title_removed = neutralize_instructions(hit.title)
    title = _one_line(title)
    return _Candidate(
        cluster_index, position, hit, text.strip(), title, removed or escaped or title_removed
    )


class _Renderer:
    """Renders a selection of candidates and counts its tokens."""

    def __init__(
        self,
        question: str,
        clusters: list[Cluster],
        count_tokens: Callable[[str], int],
        persona: str | None,
        pinned: list[str],
        no_answer: str,
        env: jinja2.Environment,
    ) -> None:
        self.clusters = clusters
        self.count_tokens = count_tokens
        self.system_template = env.get_template(SYSTEM_TEMPLATE)
        self.user_template = env.get_template(USER_TEMPLATE)
        self.base: dict[str, Any] = {
            "question": question.strip(),
            "persona": (persona or "").strip(),
            "pinned": [escape_delimiters(p)[0].strip() for p in pinned if p and p.strip()],
            "no_answer": no_answer,
        }
        self.system = self.system_template.render(**self.base).strip()

    def render(self, chosen: dict[int, tuple[_Candidate, str]]) -> tuple[str, str, list[Source]]:
        """System and user text for ``chosen`` (candidate id -> (candidate, quoted text))."""
        by_cluster: dict[int, list[tuple[_Candidate, str]]] = {}
        for cand, text in chosen.values():
            by_cluster.setdefault(cand.cluster, []).append((cand, text))
        views: list[dict[str, Any]] = []
        sources: list[Source] = []
        for ci in sorted(by_cluster):
            passages = []
            for cand, text in sorted(by_cluster[ci], key=lambda item: item[0].position):
                number = len(sources) + 1
                sources.append(
                    Source(number, cand.hit, ci, cand.sanitized, text != cand.text, text)
                )
                passages.append(
                    {"number": number, "text": text, "title": cand.title, "id": cand.hit.id}
                )
            cluster = self.clusters[ci]
            views.append(
                {
                    "label": _one_line(cluster.label) or f"Topic {ci + 1}",
                    "keywords": cluster.keywords,
                    "passages": passages,
                }
            )
        user = self.user_template.render(**self.base, clusters=views).strip()
        return self.system, user, sources

    def tokens(self, chosen: dict[int, tuple[_Candidate, str]]) -> int:
        system, user, _ = self.render(chosen)
        return self.count_tokens(system + MESSAGE_SEPARATOR + user)


def _truncate(text: str, fits: Callable[[str], bool]) -> str | None:
    """Longest prefix of ``text`` cut at a word boundary (at a sentence end when that keeps at
    least half of it) that ``fits`` with " …" appended, or None when not even one word fits."""
    ends = [m.end() for m in _WORD.finditer(text)]
    lo, hi = 0, len(ends) - 1  # find the largest index whose prefix fits
    best = -1
    while lo <= hi:
        mid = (lo + hi) // 2
        if fits(text[: ends[mid]] + ELLIPSIS):
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    if best < 0:
        return None
    cut = ends[best]
    sentence_ends = [m.end() for m in _SENTENCE_END.finditer(text + " ", 0, cut + 1)]
    if sentence_ends and sentence_ends[-1] >= cut / 2 and sentence_ends[-1] < cut:
        shorter = text[: sentence_ends[-1]] + ELLIPSIS
        if fits(shorter):
            return shorter
    return text[:cut] + ELLIPSIS


def build_prompt(
    question: str,
    clusters: list[Cluster],
    *,
    count_tokens: Callable[[str], int],
    budget: int = 1500,
    persona: str | None = None,
    pinned: list[str] | None = None,
    template_dir: str | None = None,
    templates: Mapping[str, str] | None = None,
    no_answer: str = NO_ANSWER,
) -> Prompt:
    """Render the answer prompt for ``question`` from ``clusters`` within ``budget`` tokens.

    Passages are added best score first while ``count_tokens`` of the whole rendered prompt stays
    within ``budget``; they are shown grouped by cluster and numbered [1], [2]... in display
    order. The first passage is truncated rather than dropped when it alone is too long; later
    ones that do not fit are skipped. Persona and ``pinned`` memories are always included (so the
    result can exceed ``budget`` only when they alone do). Templates ``system.j2`` and
    ``user.j2`` come from ``templates`` (name -> source), then ``template_dir``, then the package.
    """
    overrides = tuple(sorted((templates or {}).items()))
    env = _environment(str(template_dir) if template_dir is not None else None, overrides)
    renderer = _Renderer(
        question, clusters, count_tokens, persona, list(pinned or []), no_answer, env
    )
    candidates = [
        _prepare(ci, pos, hit)
        for ci, cluster in enumerate(clusters)
        for pos, hit in enumerate(cluster.hits)
    ]
    order = sorted(range(len(candidates)), key=lambda i: (-candidates[i].hit.score, i))
    chosen: dict[int, tuple[_Candidate, str]] = {}
    dropped: list[Hit] = []
    for i in order:
        cand = candidates[i]
        trial = {**chosen, i: (cand, cand.text)}
        if renderer.tokens(trial) <= budget:
            chosen = trial
            continue
        if not chosen:

            def fits(text: str, i: int = i, cand: _Candidate = cand) -> bool:
                return renderer.tokens({i: (cand, text)}) <= budget

            cut = _truncate(cand.text, fits)
            if cut is not None:
                chosen = {i: (cand, cut)}
                continue
        dropped.append(cand.hit)
    system, user, sources = renderer.render(chosen)
    text = system + MESSAGE_SEPARATOR + user
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    return Prompt(messages, sources, text, count_tokens(text), dropped)
