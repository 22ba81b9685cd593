"""Prompt stage: numbered, delimited memory passages grouped by cluster, within a token budget."""

from engram.prompt.builder import (
    MESSAGE_SEPARATOR,
    NO_ANSWER,
    TEMPLATE_DIR,
    Prompt,
    Source,
    build_prompt,
)
from engram.prompt.sanitize import REMOVED, escape_delimiters, neutralize_instructions

__all__ = [
    "MESSAGE_SEPARATOR",
    "NO_ANSWER",
    "REMOVED",
    "TEMPLATE_DIR",
    "Prompt",
    "Source",
    "build_prompt",
    "escape_delimiters",
    "neutralize_instructions",
]
