"""The stages' settings come from Config alone: recall, the evidence floor, the answer stage
and clustering agree with it (``search --clusters`` cuts clusters where ``ask`` does)."""

from __future__ import annotations

import inspect

import pytest

from engram.answer import AnswerSettings
from engram.cluster import cluster_hits
from engram.config import Config
from engram.errors import EngramError
from engram.recall import EvidenceFloor, RecallSettings


class Stops:
    model_id, context_window = "stops", 2048
    default_stop = ["\n\n"]


def test_answer_settings_take_every_value_from_config():
    c = Config()
    s = AnswerSettings.from_config(c, Stops())
    assert s.read.max_tokens == c.answer_max_tokens == 128
    assert s.cluster_threshold == c.cluster_threshold == 0.7
    assert (s.budget, s.reader) == (c.answer_budget, c.reader)
    assert s.read.stop == ["\n\n"]  # the generator's own stop policy when the config has none
    assert AnswerSettings.from_config(c.replace(answer_stop=["END"]), Stops()).read.stop == ["END"]
    assert AnswerSettings.from_config(c, object()).read.stop is None  # no policy: none
    # no defaults of its own: every field must be given
    params = inspect.signature(AnswerSettings).parameters.values()
    assert all(p.default is inspect.Parameter.empty for p in params)


def test_clusters_default_to_the_config_threshold():
    default = inspect.signature(cluster_hits).parameters["threshold"].default
    assert default == Config().cluster_threshold


def test_recall_settings_from_config_and_their_checks():
    c = Config()
    s = RecallSettings.from_config(c, k=5)
    assert (s.mode, s.fusion, s.alpha, s.rrf_k) == (c.mode, c.fusion, c.alpha, c.rrf_k)
    assert s.candidates == c.candidates  # hybrid fuses the configured pool
    assert RecallSettings.from_config(c, k=5, mode="keyword").candidates == 5
    assert RecallSettings.from_config(c, k=500).candidates == 500
    for bad, message in (
        ({"mode": "fuzzy"}, "unknown mode"),
        ({"fusion": "max"}, "unknown fusion"),
        ({"alpha": 1.5}, "alpha must be between 0 and 1"),
    ):
        with pytest.raises(EngramError, match=message):
            RecallSettings.from_config(c, k=5, **bad)
    with pytest.raises(EngramError, match="k must be a positive integer"):
        RecallSettings.from_config(c, k=0)
    floor = EvidenceFloor.from_config(c.replace(min_similarity=0.4))
    assert (floor.min_similarity, floor.min_term_coverage) == (0.4, c.min_term_coverage)
