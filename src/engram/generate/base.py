"""The ``Generator`` interface shared by every text generator, plus small helpers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

from engram.errors import GenerationError

ROLES = ("system", "user", "assistant")

Message = dict[str, str]


@runtime_checkable
class Generator(Protocol):
    """Anything that turns OpenAI-style chat messages into text.

    ``messages`` are ``{"role": "system" | "user" | "assistant", "content": str}`` dicts.
    ``temperature == 0`` means greedy (deterministic) decoding. ``stop`` strings end the
    output; the stop string itself is never part of it.
    """

    model_id: str
    context_window: int

    def count_tokens(self, text: str) -> int:
        """Number of tokens ``text`` takes for this model (exact or approximate)."""
        ...

    def stream(
        self,
        messages: list[Message],
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        """Yield pieces of the reply as they are produced."""
        ...

    def complete(
        self,
        messages: list[Message],
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> str:
        """The whole reply (the join of :meth:`stream`)."""
        ...


def stop_policy(generator: object) -> list[str] | None:
    """Where ``generator``'s answers stop unless configured: its own ``default_stop``
    (optional: a generator without one stops by itself)."""
    stop = getattr(generator, "default_stop", None)
    return list(stop) if stop else None


class BaseGenerator(ABC):
    """Convenience base: implement ``stream`` and ``count_tokens``; ``complete`` joins them."""

    model_id: str
    context_window: int

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Number of tokens ``text`` takes for this model."""

    @abstractmethod
    def stream(
        self,
        messages: list[Message],
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        """Yield pieces of the reply as they are produced."""

    def complete(
        self,
        messages: list[Message],
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> str:
        """The whole reply: the join of :meth:`stream`."""
        return "".join(
            self.stream(messages, max_tokens=max_tokens, temperature=temperature, stop=stop)
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model_id={self.model_id!r})"


def validate_messages(messages: Any) -> list[Message]:
    """Check that ``messages`` is a non-empty list of ``{"role", "content"}`` dicts."""
    if not isinstance(messages, list | tuple) or not messages:
        raise GenerationError("messages must be a non-empty list of {'role', 'content'} dicts")
    out: list[Message] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise GenerationError(f"messages[{i}] must be a dict, got {type(message).__name__}")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise GenerationError(
                f"messages[{i}] has role {role!r}; expected one of {', '.join(ROLES)}"
            )
        if not isinstance(content, str):
            raise GenerationError(f"messages[{i}] content must be a string")
        out.append({"role": role, "content": content})
    return out


def validate_options(max_tokens: Any, temperature: Any, stop: Any) -> list[str]:
    """Check generation options; returns ``stop`` as a list without empty strings."""
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise GenerationError(f"max_tokens must be a positive integer, got {max_tokens!r}")
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not temperature >= 0
    ):
        raise GenerationError(f"temperature must be a number >= 0, got {temperature!r}")
    if stop is None:
        return []
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list | tuple) or not all(isinstance(s, str) for s in stop):
        raise GenerationError("stop must be a string or a list of strings")
    return [s for s in stop if s]


class StopFilter:
    """Cuts a stream of text pieces at the first stop string, even one split across pieces.

    Text that could be the start of a stop string is held back until it is decided.
    Feed pieces with :meth:`push`; when :attr:`stopped` turns true, stop producing and
    do not call :meth:`flush` (there is nothing more to emit).
    """

    def __init__(self, stop: Sequence[str] | None):
        self.stops = [s for s in (stop or []) if s]
        self._held = ""
        self.stopped = False

    def push(self, piece: str) -> str:
        """Add ``piece``; return the text that is now safe to emit."""
        if self.stopped or not piece:
            return ""
        if not self.stops:
            return piece
        text = self._held + piece
        cut = min((i for i in (text.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self._held = ""
            return text[:cut]
        keep = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(text)), keep, -1):
                if text.endswith(s[:k]):
                    keep = k
                    break
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        """Release held-back text at the end of the stream."""
        held, self._held = self._held, ""
        return "" if self.stopped else held


def apply_stop(pieces: Iterable[str], stop: Sequence[str] | None) -> Iterator[str]:
    """Yield ``pieces`` cut at the first stop string (non-empty pieces only)."""
    stop_filter = StopFilter(stop)
    for piece in pieces:
        out = stop_filter.push(piece)
        if out:
            yield out
        if stop_filter.stopped:
            return
    tail = stop_filter.flush()
    if tail:
        yield tail
