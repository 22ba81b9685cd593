"""Request bodies (checked: strict types, bounded sizes, values SQLite can store) and the
response models that document the API."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_K = 200
MAX_ITEMS = 1000
MAX_METADATA_DEPTH = 16
NAMESPACE_PATTERN = r"^(\*|[A-Za-z0-9][A-Za-z0-9_.:@\-]{0,127})$"


# -- request bodies ---------------------------------------------------------------------------
def _check_json_values(data: Any) -> None:
    """Refuse what SQLite cannot store or compare: lone surrogates, NaN and infinities,
    integers beyond 64 bits, and nesting deeper than ``MAX_METADATA_DEPTH``."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_METADATA_DEPTH:
            raise ValueError(f"nested more than {MAX_METADATA_DEPTH} levels deep")
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("text contains invalid Unicode (a lone surrogate)") from None
        elif isinstance(value, float) and not math.isfinite(value):
            raise ValueError("numbers must be finite (no NaN or Infinity)")
        elif isinstance(value, int) and not -(2**63) <= value < 2**63:
            raise ValueError("integers must fit in 64 bits")
        elif isinstance(value, dict):
            for k, v in value.items():
                stack.append((k, depth + 1))
                stack.append((v, depth + 1))
        elif isinstance(value, list | tuple):
            stack.extend((v, depth + 1) for v in value)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _values(cls, data: Any) -> Any:
        _check_json_values(data)
        return data


Where = dict[str, Any] | str | None
_WHERE_DOC = (
    'Filter: an object such as {"year": {"$gte": 2020}} or the short text form '
    "'year>=2020 and topic=plants' (see docs/server.md)"
)


class SearchRequest(_Body):
    query: str = Field(min_length=1, max_length=10_000)
    k: int = Field(10, ge=1, le=MAX_K)
    mode: Literal["hybrid", "keyword", "vector"] | None = None
    where: Where = Field(None, description=_WHERE_DOC)
    alpha: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False)
    fusion: Literal["blend", "rrf", "learned"] | None = None
    clusters: bool = False


class DocumentIn(_Body):
    text: str
    id: Annotated[str, Field(min_length=1, max_length=512)] | int | None = Field(
        None, description="the document's id (default: sha256 of the text)"
    )
    title: str | None = Field(None, max_length=2000)
    source: str | None = Field(None, max_length=2000)
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: float | str | None = Field(None, description="seconds since the epoch or ISO-8601")


class AddDocumentsRequest(_Body):
    documents: list[DocumentIn] = Field(min_length=1, max_length=MAX_ITEMS)


class TurnIn(_Body):
    speaker: str = Field(min_length=1, max_length=200)
    text: str
    time: float | str | None = Field(
        None, description="seconds since the epoch or ISO-8601 (default: now)"
    )
    session: str | None = Field(None, max_length=200)
    metadata: dict[str, Any] = Field(default_factory=dict)


class TurnsRequest(_Body):
    turns: list[TurnIn] = Field(min_length=1, max_length=MAX_ITEMS)


class DeleteRequest(_Body):
    where: Where = Field(None, description=_WHERE_DOC)
    ids: list[Annotated[str, Field(min_length=1, max_length=512)]] | None = Field(
        None, max_length=MAX_ITEMS
    )
    reason: str = Field("", max_length=1000)


class AskRequest(_Body):
    question: str = Field(min_length=1, max_length=10_000)
    k: int | None = Field(None, ge=1, le=50)
    where: Where = Field(None, description=_WHERE_DOC)
    stream: bool = False


# -- response documentation (the handlers return plain dicts) ---------------------------------
class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class HitOut(BaseModel):
    id: int
    score: float
    text: str
    doc_id: str
    source: str
    title: str
    namespace: str
    metadata: dict[str, Any]
    created_at: float
    scores: dict[str, float]


class ClusterOut(BaseModel):
    label: str
    keywords: list[str]
    score: float
    ids: list[int]


class SearchResponse(BaseModel):
    results: list[HitOut]
    clusters: list[ClusterOut] | None = None


class AddResponse(BaseModel):
    added: int
    updated: int
    unchanged: int
    empty: int
    chunks: int
    embedded: int
    errors: list[str]
    ids: list[str]


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {c: {"model": ErrorResponse} for c in (401, 403, 422, *codes)}
