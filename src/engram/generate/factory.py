"""Create generators by name: ``create_generator("local" | "llamacpp" | "openai", ...)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engram.errors import GenerationError
from engram.generate.base import Generator
from engram.generate.llamacpp import LlamaCppGenerator
from engram.generate.local import LocalGenerator
from engram.generate.openai import OpenAIGenerator

GeneratorFactory = Callable[..., Generator]

GENERATORS: dict[str, GeneratorFactory] = {
    "local": LocalGenerator,  # type: ignore[dict-item]  # a Generator by structure
    "llamacpp": LlamaCppGenerator,
    "openai": OpenAIGenerator,
}


def register_generator(name: str, cls: GeneratorFactory) -> None:
    """Make ``create_generator(name, **options)`` call ``cls(**options)`` (replacing any)."""
    if not isinstance(name, str) or not name.strip():
        raise GenerationError("a generator name must be a non-empty string")
    if not callable(cls):
        raise GenerationError(f"generator {name!r} must be a class or callable")
    GENERATORS[name.strip().lower()] = cls


def create_generator(kind: str = "local", **options: Any) -> Generator:
    """Build the generator registered as ``kind`` with ``options`` as keyword arguments."""
    key = kind.strip().lower() if isinstance(kind, str) else kind
    factory = GENERATORS.get(key)
    if factory is None:
        raise GenerationError(
            f"unknown generator {kind!r}; known: {', '.join(sorted(GENERATORS))} "
            "(add one with register_generator)"
        )
    try:
        return factory(**options)
    except TypeError as exc:
        raise GenerationError(f"bad options for the {key!r} generator: {exc}") from exc
