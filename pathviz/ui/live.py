"""Run state as the page shows it: a just-launched worker, and a time left that does not jump.

Pure functions (no Streamlit), so tests can check them without a browser.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Sequence

from pathviz import runs

ETA_MIN_SPAN = 6.0  # seconds of progress seen before a time left is shown: a 45 s demo run
# has done about an eighth of its iterations by then, so the time left shows in its first 20%
ETA_RECENT = 0.3  # the recent rate is measured over the last 30% of the time seen ...
ETA_RECENT_MIN = 20.0  # ... and at least the last 20 s
ETA_MARGIN = 0.2  # the range is widened by 20% either side: a machine's ordinary ups and downs
ETA_ABOUT = 1.5  # a range narrower than this (a steady run: the margins alone) is one figure
ETA_SAMPLES = 600  # samples kept per run (one per refresh)


# A full garbage collection for the whole server at most this often. Streamlit's own, after
# every script run (runner.postScriptGC, off in .streamlit/config.toml), walked every object of
# the process once per session per refresh: with a class following a live run, a third of the
# server's CPU (py-spy, bench/class_server.py). Python's generational collection still runs;
# this one bounds what waits for the oldest generation.
GC_EVERY_S = 10.0
_gc_last = [float("-inf")]
_gc_lock = threading.Lock()


def collect_garbage(now: float | None = None, collect: Callable[[], object] = gc.collect
                    ) -> bool:
    """Collect garbage (all generations) if no session of this server did in the last
    :data:`GC_EVERY_S` seconds; returns whether it collected. Called after each page run."""
    now = time.monotonic() if now is None else now
    with _gc_lock:
        if now - _gc_last[0] < GC_EVERY_S:
            return False
        _gc_last[0] = now
    collect()
    return True


def shown_state(info: runs.RunInfo, launched: dict | None) -> str:
    """The state to show: "starting" while a worker this session launched is alive but has not
    yet reported (its sidecar may still say "stopped" from before a resume)."""
    if info.state in ("running", "starting") or not launched:
        return info.state
    if launched.get("at", 0) < info.updated - 1e-6:
        return info.state  # the sidecar changed after the launch: the worker spoke
    if runs.is_alive(launched.get("pid"), launched.get("pid_start")):
        return "starting"
    return info.state


def _slope(samples: Sequence[tuple[float, int]]) -> float | None:
    """Least-squares iterations per second through (time, iteration) samples."""
    if len(samples) < 3:
        return None
    ts = [t for t, _ in samples]
    its = [float(i) for _, i in samples]
    mt, mi = sum(ts) / len(ts), sum(its) / len(its)
    var = sum((t - mt) ** 2 for t in ts)
    return sum((t - mt) * (i - mi) for t, i in zip(ts, its)) / var if var > 0 else None


def time_left(samples: Sequence[tuple[float, int]], total: int
              ) -> tuple[float, float] | None:
    """(fewest, most) seconds left, from (wall time, iteration) samples; None until the run has
    made progress for :data:`ETA_MIN_SPAN` seconds.

    Two rates bound the time left: the run's average since its first progress, and its recent
    rate (a least-squares slope over the last :data:`ETA_RECENT` of the time seen, at least
    :data:`ETA_RECENT_MIN` seconds). A steady run has the two equal and gets a narrow range; a
    run whose speed changes (a shared machine, a slow start) gets a range as wide as its
    speeds disagree, so it is shown at once and stays honest instead of waiting for a calm
    that may never come. Both ends are widened by :data:`ETA_MARGIN`. After a change of speed
    the recent rate catches up within about :data:`ETA_RECENT_MIN` seconds; on the recorded
    demo run of ``tests/data/eta_demo_trace.json`` (its rate swung between 2 and 11 iterations
    a second) 94 % of the ranges shown held the true time left (to 10 %), and none was off by
    more than half.
    """
    if len(samples) < 3 or total <= 0:
        return None
    begin = next((k for k in range(1, len(samples)) if samples[k][1] > samples[0][1]), None)
    if begin is None:
        return None  # no progress yet (the worker loads its data)
    seen = list(samples[begin - 1:])  # from the last sample before the first progress
    (t0, i0), (t_end, i_end) = seen[0], seen[-1]
    if t_end - t0 < ETA_MIN_SPAN or i_end <= i0:
        return None
    rates = [(i_end - i0) / (t_end - t0)]
    window = max(ETA_RECENT_MIN, ETA_RECENT * (t_end - t0))
    recent = _slope([x for x in seen if x[0] >= t_end - window])
    if recent is not None and recent > 0:
        rates.append(recent)
    left = max(total - i_end, 0)
    return left / max(rates) / (1 + ETA_MARGIN), left / min(rates) * (1 + ETA_MARGIN)


def _duration(seconds: float) -> str:
    """A duration as a person says it: "40 s", "3 min 10 s", "1 h 5 min"."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60} s" if seconds < 600 else \
            f"{round(seconds / 60)} min"
    return f"{seconds} s"


def time_left_text(low: float, high: float) -> str:
    """The time left as shown: "about 2 min 10 s left" when the range is narrow, "2–5 min
    left" when it is not, "under a minute left" at the end (the worker's final evaluation and
    save, after the last iteration, are not in the rate)."""
    if high < 60:
        return "under a minute left"
    if high <= ETA_ABOUT * max(low, 1.0):
        return f"about {_duration((low + high) / 2)} left"
    lo, hi = max(low, 0.0), high
    if lo >= 60 and hi < 3600:  # whole minutes: "2–5 min"
        return f"{int(lo // 60)}–{int(-(-hi // 60))} min left"
    return f"{_duration(lo)} to {_duration(hi)} left"
