"""analysis: the stopping rule and support tables."""

from __future__ import annotations

import numpy as np

from pathviz.analysis import suggest_stop, support_table


def test_suggest_stop_takes_the_sparsest_within_one_point_of_the_best():
    it = np.arange(6) * 10
    acc = np.array([np.nan, 0.80, 0.95, 0.951, 0.96, 0.90])
    kept = np.array([10, 20, 30, 25, 50, 60])
    s = suggest_stop(it, acc, kept)
    # best 0.96; within 1 point: 0.95 (30 kept), 0.951 (25 kept), 0.96 (50) -> 25 kept
    assert (s.index, s.iteration, s.params_kept) == (3, 30, 25.0)
    assert "within 1 point of the best" in s.rule
    assert suggest_stop(it, np.full(6, np.nan), kept) is None


def test_suggest_stop_breaks_ties_by_the_earlier_snapshot():
    s = suggest_stop(np.array([0, 1, 2]), np.array([0.9, 0.9, 0.9]), np.array([5, 5, 5]))
    assert s.index == 0


def test_support_table():
    layers = [{"name": "a", "kind": "conv", "penalty": "group", "groups": 4}]
    rows = support_table(layers, {"a": {"gamma_norm": np.array([0, 1, 0, 2.0])}},
                         {"a": np.array([-1, 30, -1, 10])})
    assert rows == [{"layer": "a", "kind": "conv", "penalty": "group", "groups": 4,
                     "in support": 2, "selected %": 50.0, "first entry (iteration)": 10}]


def test_suggest_stop_can_be_limited_to_exportable_iterations():
    it = np.arange(6) * 10
    acc = np.array([0.5, 0.80, 0.95, 0.951, 0.96, 0.90])
    kept = np.array([10, 20, 30, 25, 50, 60])
    s = suggest_stop(it, acc, kept, eligible=np.array([0, 20, 40]))
    assert s.iteration == 20 and "among those with saved weights" in s.rule
    assert suggest_stop(it, acc, kept, eligible=np.array([0, 10])) is None  # none near the best


def test_no_suggestion_while_every_sparse_model_is_at_chance():
    it = np.arange(4) * 10
    acc = np.array([0.10, 0.11, 0.10, 0.12])
    assert suggest_stop(it, acc, np.arange(4), min_acc=0.15) is None
    acc[3] = 0.6
    assert suggest_stop(it, acc, np.arange(4), min_acc=0.15).iteration == 30
