"""Experiments that compare ways of giving a model knowledge (``engram experiment``)."""

from engram.experiment.finetune import (
    ExperimentConfig,
    ExperimentResult,
    run_experiment,
)

__all__ = ["ExperimentConfig", "ExperimentResult", "run_experiment"]
