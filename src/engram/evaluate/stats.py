"""Small statistics for reports: bootstrap confidence intervals of a mean."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def bootstrap_ci(
    values: Sequence[float], *, resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (seeded, so reproducible)."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return (round(float(low), 4), round(float(high), 4))


def overlap(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether two intervals ``(low, high)`` overlap."""
    return a[0] <= b[1] and b[0] <= a[1]
