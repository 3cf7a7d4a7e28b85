"""Run state as the page shows it: a just-launched worker, and a time left that does not jump.

Pure functions (no Streamlit), so tests can check them without a browser.
"""

from __future__ import annotations

from collections.abc import Sequence

from pathviz import runs

ETA_MIN_SPAN = 8.0  # seconds of progress before any time left is shown
ETA_WINDOW = 60.0  # the rate is measured over the last minute of progress
ETA_AGREE = 0.25  # shown once two successive estimates agree within 25%


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


def eta_seconds(samples: Sequence[tuple[float, int]], total: int,
                previous: float | None = None) -> tuple[float | None, float | None]:
    """(time left to show or None, raw estimate) from (wall time, iteration) samples.

    The rate is a least-squares slope over the last :data:`ETA_WINDOW` seconds; nothing is
    shown until the samples span :data:`ETA_MIN_SPAN` seconds and this estimate agrees with
    ``previous`` (the raw estimate of the last call, moved to now) within :data:`ETA_AGREE`.
    """
    if len(samples) < 3:
        return None, None
    t_end = samples[-1][0]
    recent = [(t, i) for t, i in samples if t >= t_end - ETA_WINDOW]
    if len(recent) < 3 or recent[-1][0] - recent[0][0] < ETA_MIN_SPAN:
        return None, None
    ts = [t for t, _ in recent]
    its = [float(i) for _, i in recent]
    mt, mi = sum(ts) / len(ts), sum(its) / len(its)
    var = sum((t - mt) ** 2 for t in ts)
    rate = sum((t - mt) * (i - mi) for t, i in zip(ts, its)) / var if var > 0 else 0.0
    if rate <= 0:
        return None, None
    raw = max(total - recent[-1][1], 0) / rate
    if previous is None or previous <= 0:
        return None, raw
    agree = abs(raw - previous) / max(previous, 1.0) <= ETA_AGREE
    return (raw if agree else None), raw
