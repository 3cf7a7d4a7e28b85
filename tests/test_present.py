"""Presentation mode's pure parts (the status line and W* nearest an iteration are the page's:
tests/js/position.test.js)."""

from __future__ import annotations

import numpy as np

from pathviz.ui.present import entry_order


def test_entry_order_puts_never_last_and_keeps_ties_in_place():
    np.testing.assert_array_equal(entry_order(np.array([3, -1, 0, 3, 1])), [2, 4, 0, 3, 1])
