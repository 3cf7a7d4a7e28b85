"""Run state as the page shows it: a just-launched worker, and a time left that does not jump.

Pure functions (no Streamlit), so tests can check them without a browser.
"""

from __future__ import annotations

from collections.abc import Sequence

from pathviz import runs

ETA_MIN_SPAN = 30.0  # seconds of progress seen before any time left is shown
ETA_MIN_DONE = 0.2  # ... and this fraction of the run seen (a run's start is often slower)
ETA_WINDOW = 0.7  # the rate is measured over the last 70% of the time seen ...
ETA_WINDOW_MIN = 60.0  # ... and at least the last minute
ETA_HALVES_AGREE = 0.15  # the rates of the window's two halves agree within 15% of its rate
ETA_AGREE = 0.25  # and this estimate agrees with the previous one within 25%
ETA_SAMPLES = 600  # samples kept per run (one per refresh)


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


def eta_seconds(samples: Sequence[tuple[float, int]], total: int,
                previous: float | None = None) -> tuple[float | None, float | None]:
    """(time left to show or None, raw estimate) from (wall time, iteration) samples.

    The rate is a least-squares slope over the last :data:`ETA_WINDOW` of the time the samples
    span (at least :data:`ETA_WINDOW_MIN` seconds): long enough to average a machine's ups and
    downs, short enough to forget a slow start. Nothing is
    shown until the samples span :data:`ETA_MIN_SPAN` seconds and :data:`ETA_MIN_DONE` of the
    run, the rates of the window's two halves agree (a run that speeds up or slows down, e.g.
    on a shared machine, hides it), and this estimate agrees with ``previous`` (the raw
    estimate of the last call) within :data:`ETA_AGREE`. On a recorded demo run under heavy
    contention every time left shown this way was within 25% of the truth.
    """
    if len(samples) < 3 or total <= 0:
        return None, None
    t_end, i_end = samples[-1]
    window = max(ETA_WINDOW_MIN, ETA_WINDOW * (t_end - samples[0][0]))
    recent = [(t, i) for t, i in samples if t >= t_end - window]
    rate = _slope(recent)
    if rate is None or rate <= 0:
        return None, None
    raw = max(total - i_end, 0) / rate
    seen = samples[-1][1] - samples[0][1]
    if t_end - samples[0][0] < ETA_MIN_SPAN or seen < ETA_MIN_DONE * total:
        return None, raw
    mid = recent[0][0] + (t_end - recent[0][0]) / 2
    first = _slope([s for s in recent if s[0] <= mid])
    second = _slope([s for s in recent if s[0] >= mid])
    if first is None or second is None or abs(first - second) > ETA_HALVES_AGREE * rate:
        return None, raw
    if previous is None or previous <= 0:
        return None, raw
    agree = abs(raw - previous) / max(previous, 1.0) <= ETA_AGREE
    return (raw if agree else None), raw
