"""Run state as shown: a just-resumed run reads "starting"; the time left waits until stable."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from pathviz import runs
from pathviz.ui.live import ETA_RECENT_MIN, ETA_SAMPLES, shown_state, time_left, time_left_text


def _info(tmp_path, state: str, updated: float) -> runs.RunInfo:
    return runs.RunInfo(name="r", paths=runs.run_paths("r", tmp_path), state=state, reason="",
                        model="lenet5", dataset="digits", snapshots=1, iteration=0,
                        total_iterations=10, updated=updated)


def test_a_resumed_run_shows_starting_until_the_worker_reports(tmp_path):
    me = {"pid": os.getpid(), "pid_start": runs.process_start_time(os.getpid()),
          "at": time.time()}
    assert shown_state(_info(tmp_path, "stopped", me["at"] - 5), me) == "starting"
    # the worker wrote its sidecar after the launch: its word counts
    assert shown_state(_info(tmp_path, "stopped", me["at"] + 5), me) == "stopped"
    assert shown_state(_info(tmp_path, "running", me["at"] - 5), me) == "running"
    dead = {**me, "pid_start": -1}  # not the process that was launched
    assert shown_state(_info(tmp_path, "stopped", me["at"] - 5), dead) == "stopped"
    assert shown_state(_info(tmp_path, "stopped", 0), None) == "stopped"


def _replay(samples, total: int, every: float = 1.0):
    """What the header would show, one refresh every ``every`` seconds: (time, iteration,
    (fewest, most) seconds left or None)."""
    kept, out, next_t = [], [], samples[0][0]
    for t, it in samples:
        if t < next_t:
            continue
        next_t = t + every
        if not kept or kept[-1][1] != it:
            kept.append((t, it))
            del kept[:-ETA_SAMPLES]
        out.append((t, it, time_left(kept, total)))
    return out


def _holds(left, truth: float) -> bool:
    """The range shown holds the truth (to 10 %), or says "under a minute" near the end."""
    low, high = left
    return 0.9 * low <= truth <= 1.1 * high or (high < 60 and truth < 75)


def _run(rates: list[tuple[float, float]], total: int = 2520, seed: int = 0):
    """(samples every 0.5 s, finish time) of a run going at ``rate`` iterations/s from each
    ``(start time, rate)`` on, with 10 % noise."""
    rng = np.random.default_rng(seed)
    t, it, samples = 0.0, 0.0, []
    while it < total:
        rate = [r for start, r in rates if t >= start][-1]
        samples.append((t, int(it)))
        t += 0.5
        it += rate * 0.5 * (1 + 0.1 * rng.standard_normal())
    return samples, t + 3.0  # the final evaluation and save


def test_time_left_shows_early_on_the_recorded_demo_run_and_holds_the_truth():
    """A real demo run on a crowded machine (its rate swung between 2 and 11 iterations/s; the
    old estimate waited for a calm and said "estimating time left..." from iteration 262 to
    2,440): a range shows within the first 20 % of the run, and the ranges hold the truth."""
    rec = json.loads((Path(__file__).parent / "data" / "eta_demo_trace.json").read_text())
    samples = [(float(t), int(i)) for t, i in rec["samples"]]
    total, finished = rec["total_iterations"], rec["finished_at"]
    for every in (1.0, 2.0):  # the live refresh cadence
        shown = [(t, it, left) for t, it, left in _replay(samples, total, every) if left]
        assert shown[0][1] < 0.2 * total, shown[0]
        # once shown, shown at every refresh to the end
        assert len(shown) >= 0.9 * sum(1 for t, _, _ in _replay(samples, total, every)
                                       if t >= shown[0][0])
        held = [_holds(left, finished - t) for t, _, left in shown]
        assert sum(held) >= 0.9 * len(held), sum(held) / len(held)  # 94 % at 1 s and 2 s
        for t, _, (low, high) in shown:  # and none is far off
            truth = finished - t
            assert low <= 1.5 * truth and truth <= 1.5 * high, (t, low, high, truth)


@pytest.mark.parametrize("rates", [
    [(0, 4.0), (60, 14.0)],  # a slow start (data loading, a busy machine) then full speed
    [(0, 14.0), (60, 4.0)],  # another job starts on the machine
    [(0, 10.0), (40, 3.0), (100, 12.0)],  # down and up again
])
def test_time_left_follows_a_run_whose_speed_changes(rates):
    """Shown within the first 20 % of the run; after each change of speed the range holds the
    true time left again within the recent window (20 s) plus a refresh, and keeps holding
    it until the next change."""
    samples, finished = _run(rates)
    shown = [(t, it, left) for t, it, left in _replay(samples, 2520, 2.0) if left]
    assert shown[0][1] < 0.2 * 2520, shown[0]
    changes = [start for start, _ in rates[1:]]
    for t, _, left in shown:
        since = [t - c for c in changes if t >= c]
        settled = not since or min(since) > ETA_RECENT_MIN + 4
        before_change = any(0 <= c - t for c in changes)
        if settled and not before_change:
            assert _holds(left, finished - t), (t, left, finished - t)


def test_a_steady_run_gets_one_figure_and_the_start_waits_for_progress():
    steady = [(float(t), 10 * t) for t in range(0, 40)]
    assert time_left(steady[:2], 1000) is None  # too few samples
    assert time_left([(0.0, 0), (3.0, 0), (9.0, 0)], 1000) is None  # no progress yet
    assert time_left(steady[:5], 1000) is None  # progress for less than 6 s
    low, high = time_left(steady, 1000)
    assert low == pytest.approx(61 / 1.2) and high == pytest.approx(61 * 1.2)
    assert time_left_text(low, high) == "about 1 min 2 s left"  # the middle of the range
    # a run that has just sped up 3x: the range spans both speeds
    faster = steady[:20] + [(float(t), 190 + 30 * (t - 19)) for t in range(20, 40)]
    low, high = time_left(faster, 3000)
    assert high / low > 2 and time_left_text(low, high).endswith("min left")


def test_time_left_text():
    assert time_left_text(10, 50) == "under a minute left"
    assert time_left_text(100, 120) == "about 1 min 50 s left"
    assert time_left_text(130, 290) == "2–5 min left"
    assert time_left_text(30, 200) == "30 s to 3 min 20 s left"
    assert time_left_text(3000, 9000) == "50 min to 2 h 30 min left"


def test_the_servers_garbage_is_collected_at_most_once_per_interval(monkeypatch):
    from pathviz.ui import live

    monkeypatch.setattr(live, "_gc_last", [float("-inf")])
    calls: list[int] = []

    def collect() -> None:
        calls.append(1)

    every = live.GC_EVERY_S
    assert live.collect_garbage(1000.0, collect)  # the first page run of the server collects
    assert not live.collect_garbage(1000.0 + every / 2, collect)  # another session, soon after
    assert live.collect_garbage(1000.0 + every, collect)
    assert len(calls) == 2
