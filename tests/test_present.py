"""Presentation mode's pure parts: the status line and W* nearest an iteration."""

from __future__ import annotations

import numpy as np

from pathviz.ui.present import entry_order, status_line, w_star_near


def test_w_star_is_the_nearest_evaluation_validation_first():
    its = np.array([0, 10, 20, 30])
    nan = np.nan
    metrics = {"val_acc_sparse": np.array([0.5, nan, 0.8, nan]),
               "test_acc_sparse": np.array([0.4, 0.6, 0.7, 0.9])}
    assert w_star_near(its, metrics, 20) == (0.8, 20, "validation")
    assert w_star_near(its, metrics, 30) == (0.8, 20, "validation")
    assert w_star_near(its, metrics, 10) == (0.5, 0, "validation")  # a tie: the earlier one
    assert w_star_near(its, {"test_acc_sparse": metrics["test_acc_sparse"]}, 30) == (0.9, 30,
                                                                                     "test")
    assert w_star_near(its, {"val_acc_sparse": np.full(4, nan)}, 10) is None
    assert w_star_near(its, {}, 10) is None


def test_status_line():
    assert (status_line(900, 89, 220, (0.976, 900, "validation"))
            == "iteration 900 · 89 of 220 filters selected · W* 97.6 %")
    assert status_line(1234, 5, 6, (0.5, 1200, "test")).endswith("W* 50.0 % (at 1,200)")
    assert status_line(7, 0, 6, None) == "iteration 7 · 0 of 6 filters selected · W* n/a"


def test_entry_order_puts_never_last_and_keeps_ties_in_place():
    np.testing.assert_array_equal(entry_order(np.array([3, -1, 0, 3, 1])), [2, 4, 0, 3, 1])
