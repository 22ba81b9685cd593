"""Linear rankers: a weighted sum of standardised features, fitted by logistic regression.

Shared by the LoCoMo turn ranker of the evaluation views (``evaluate/locomo_rank.py``) and the
turn ranker of ``AgentMemory.recall`` (``agents/turn_rank.py``); each names its own features.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

R = TypeVar("R", bound="LinearRanker")


@dataclass(frozen=True)
class LinearRanker:
    """``((x - mean) / scale) @ coef + intercept`` over one row of features per candidate."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float = 0.0

    def __post_init__(self) -> None:
        if not len(self.mean) == len(self.scale) == len(self.coef):
            raise ValueError("a linear ranker needs as many means and scales as weights")

    def score(self, x: np.ndarray) -> np.ndarray:
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        return np.asarray(z @ np.asarray(self.coef) + self.intercept)

    @classmethod
    def from_table(
        cls: type[R],
        features: Sequence[str],
        table: Mapping[str, tuple[float, float, float]],
        intercept: float,
    ) -> R:
        """A ranker from ``{feature: (mean, scale, weight)}``, in the order of ``features``."""
        return cls(
            mean=tuple(table[f][0] for f in features),
            scale=tuple(table[f][1] for f in features),
            coef=tuple(table[f][2] for f in features),
            intercept=intercept,
        )


def fit_logistic(
    rows: list[tuple[np.ndarray, np.ndarray]],
    c: float = 0.01,
    steps: int = 50,
    cls: type[R] = LinearRanker,  # type: ignore[assignment]
) -> R:
    """Logistic regression of the labels (1: relevant) on standardised features, minimising
    ``0.5 * |w|^2 + c * logloss`` (the intercept is not penalised) by Newton steps.

    ``rows`` holds each query's ``(features, labels)``.
    """
    x = np.vstack([f for f, _ in rows])
    y = np.concatenate([lab for _, lab in rows]).astype(np.float64)
    if not len(y) or y.min() == y.max():
        raise ValueError("fitting a ranker needs both relevant and other candidates")
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    w = np.zeros(z.shape[1])
    penalty = np.ones(z.shape[1]) / c
    penalty[-1] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(z @ w)))
        grad = z.T @ (p - y) + penalty * w
        hess = (z * (p * (1 - p))[:, None]).T @ z + np.diag(penalty) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return cls(
        tuple(mean.round(6).tolist()),
        tuple(scale.round(6).tolist()),
        tuple(w[:-1].round(6).tolist()),
        round(float(w[-1]), 6),
    )
