"""``AddReport``: what one ``Memory.add`` did."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engram.errors import IngestError


@dataclass
class AddReport:
    """What an ``add`` did: documents added, updated, unchanged, skipped (with errors)."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    empty: int = 0
    chunks: int = 0
    embedded: int = 0
    errors: list[str] = field(default_factory=list)  # every skipped input, with its reason
    ignored: list[str] = field(default_factory=list)  # folder entries not read, with why
    by_source: dict[str, list[str]] = field(default_factory=dict, repr=False)

    def skip(self, error: IngestError) -> None:
        self.errors.append(str(error))
        self.by_source.setdefault(error.source or "input", []).append(str(error))

    @property
    def skipped(self) -> int:
        return len(self.errors)

    def count(self, status: str) -> None:
        """One more document ``added``, ``updated`` or (anything else) unchanged."""
        if status == "added":
            self.added += 1
        elif status == "updated":
            self.updated += 1
        else:
            self.unchanged += 1

    def skip_summary(self) -> list[str]:
        """One line per source that had skips: the reason, or a count and the first reason
        (a JSON array of 43 rows without text gives one line, not 43)."""
        lines = []
        for source, reasons in self.by_source.items():
            if len(reasons) == 1:
                lines.append(reasons[0])
            else:
                lines.append(f"{source}: {len(reasons)} records skipped; first: {reasons[0]}")
        return lines

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "by_source"}
        return {**out, "skipped": self.skipped}
