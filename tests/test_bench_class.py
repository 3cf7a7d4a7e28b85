"""The class bench's bookkeeping (bench/class_server.py): when a snapshot was written and how
long a page took to hold it. No timings: the figures are computed from given times."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "class_server", Path(__file__).resolve().parents[1] / "bench" / "class_server.py")
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)


def test_a_count_read_while_the_file_changed_is_not_kept():
    first: dict[int, float] = {}
    bench.record_write(first, 10, 100.0, 100.5)  # written again while counting: unknown write
    assert first == {}
    bench.record_write(first, 12, 100.5, 100.5)
    bench.record_write(first, 12, 101.0, 101.0)  # a later poll of the same count keeps the first
    assert first == {12: 100.5}


def test_worst_delay_is_from_each_write_to_the_first_page_that_held_it():
    written = {10: 100.0, 12: 101.0, 15: 103.0, 20: 200.0}
    seen = [(99.0, 8), (102.5, 12), (104.0, 16)]
    # 10 and 12 arrive together at 102.5 (2.5 s and 1.5 s), 15 at 104.0 (1.0 s); 20 is
    # outside the window
    assert bench.worst_delay(written, seen, 100.0, 150.0) == pytest.approx(2.5)
    assert bench.worst_delay(written, seen, 102.0, 150.0) == pytest.approx(1.0)
    assert bench.worst_delay(written, seen, 150.0, 160.0) == 0.0  # nothing written then
    assert math.isinf(bench.worst_delay(written, seen, 100.0, 250.0))  # 20 never arrived
