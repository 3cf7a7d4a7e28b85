"""analysis: the stopping rule and support tables."""

from __future__ import annotations

import numpy as np
import pytest

from pathviz.analysis import StopRule, binomial_se, stop_of, suggest_stop, support_table
from pathviz.store import PathReader
from tests.conftest import make_run

IT = np.array([0, 10, 20, 30, 40, 50])
W = IT  # every snapshot has weights


def test_one_se_rule_takes_the_sparsest_within_one_standard_error_of_the_best():
    acc = np.array([0.1, 0.5, 0.90, 0.94, 0.95, 0.94])
    kept = np.array([10, 20, 30, 40, 50, 60])
    d = suggest_stop(IT, acc, kept, weight_iterations=W, n_val=400, chance=0.1)
    se = np.sqrt(0.95 * 0.05 / 400)  # 1.09 points: 0.94 qualifies, 0.90 does not
    s = d.stop
    assert d.reason is None and (s.index, s.iteration, s.params_kept) == (3, 30, 40)
    assert s.val_se == pytest.approx(se) and s.threshold == pytest.approx(0.95 - se)
    assert (s.best_iteration, s.best_val_acc, s.n_val) == (40, 0.95, 400)
    assert "1 standard error" in s.rule
    # "within X points": 6 points reach back to 0.90
    d = suggest_stop(IT, acc, kept, weight_iterations=W, n_val=400, rule=StopRule("points", 6))
    assert d.stop.iteration == 20 and "6 points" in d.stop.rule
    # more validation data, smaller SE: only the best itself qualifies
    assert suggest_stop(IT, acc, kept, weight_iterations=W, n_val=100_000).stop.iteration == 40


def test_binomial_se():
    assert binomial_se(0.9, 100) == pytest.approx(0.03)
    assert np.isnan(binomial_se(0.9, 0))


def test_ties_go_to_the_earlier_snapshot():
    d = suggest_stop(np.array([0, 1, 2]), np.array([0.9, 0.9, 0.9]), np.array([5, 5, 5]),
                     weight_iterations=np.array([0, 1, 2]), n_val=100)
    assert d.stop.index == 0


def test_stop_reports_test_accuracy_but_never_chooses_on_it():
    acc = np.array([0.1, 0.5, 0.90, 0.94, 0.95, 0.94])
    test = np.array([0.1, 0.5, 0.99, 0.2, 0.3, 0.4])  # test would pick iteration 20
    d = suggest_stop(IT, acc, np.arange(6), weight_iterations=W, n_val=400, test_acc=test,
                     flops_kept=np.arange(6) * 7.0, params_total=100, flops_total=70)
    s = d.stop
    assert (s.iteration, s.test_acc_sparse, s.flops_kept) == (30, 0.2, 21)
    assert (s.params_total, s.flops_total) == (100, 70)


def test_support_table():
    layers = [{"name": "a", "kind": "conv", "penalty": "group", "groups": 4}]
    rows = support_table(layers, {"a": {"gamma_norm": np.array([0, 1, 0, 2.0])}},
                         {"a": np.array([-1, 30, -1, 10])})
    assert rows == [{"layer": "a", "kind": "conv", "penalty": "group", "groups": 4,
                     "in support": 2, "selected %": 50.0, "first entry (iteration)": 10}]


def test_true_reasons_when_there_is_no_stop():
    acc = np.array([0.1, 0.5, 0.90, 0.94, 0.95, 0.94])
    kept = np.arange(6)
    d = suggest_stop(IT, acc, kept, weight_iterations=np.array([0, 10]), n_val=400)
    assert d.stop is None
    assert d.reason.startswith("no weights saved between iterations 30 and 50")
    d = suggest_stop(IT, np.full(6, np.nan), kept, weight_iterations=W, n_val=400)
    assert d.stop is None and "not been evaluated" in d.reason
    chance = np.array([0.1, 0.11, 0.09, 0.1, 0.12, 0.1])
    d = suggest_stop(IT, chance, kept, weight_iterations=W, n_val=300, chance=0.1)
    assert d.stop is None and "still at chance" in d.reason and "12.0%" in d.reason
    assert "no validation split" in suggest_stop(IT, acc, kept, weight_iterations=W,
                                                 n_val=0).reason


def test_stop_of_reads_a_path_file(tmp_path):
    run = make_run(tmp_path, "stop")
    with PathReader(run.path) as r:
        d = stop_of(r)
        m = r.metrics()
        want = suggest_stop(r.iterations, m["val_acc_sparse"], m["params_kept"],
                            weight_iterations=r.weight_iterations,
                            n_val=r.data_info["n_val"], chance=0.1,
                            test_acc=m["test_acc_sparse"], flops_kept=m["flops_kept"],
                            params_total=r.model_info["params_total"],
                            flops_total=r.model_info["flops_total"])
    assert d == want and d.stop is not None


def test_rule_parsing():
    assert StopRule.parse("1se") == StopRule()
    assert StopRule.parse("points:2.5") == StopRule("points", 2.5)
    for bad in ("2se", "points:", "points:x", "points:-1"):
        with pytest.raises(ValueError, match="stop rule"):
            StopRule.parse(bad)
