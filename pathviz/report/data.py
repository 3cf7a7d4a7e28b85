"""What a report holds about a run, read once: the inspect summary, the player's data and the
figures' specs (numpy and h5py only; no torch).

The numbers of the stop's summary are :func:`pathviz.inspect.summary`'s, the same dict that
``python -m pathviz.inspect RUN --json`` prints, so the report and inspect never disagree.
The player's data is what the app sends the browser player (:mod:`pathviz.ui.player`), built
from the same functions, whole rather than in per-render parts: every snapshot's iterations,
epochs and support counts, and the Overview's colour levels of every ``stride``-th snapshot
(``stride`` 1 below the app's :data:`pathviz.ui.player.BUDGET`; the page says so otherwise).
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pathviz import charts, inspect, plots, runs
from pathviz.analysis import StopRule, stop_of
from pathviz.store import PathFileError, PathReader

# the app's cached loaders (decorated at import) run here without a Streamlit server: their
# "no runtime" warning says nothing to a report's user (a filter, as Streamlit resets its
# loggers' levels when it reads its config)
logging.getLogger("streamlit.runtime.caching.cache_data_api").addFilter(
    lambda rec: "No runtime found" not in rec.getMessage())

from pathviz.ui import player  # noqa: E402
from pathviz.ui.chart import prepare  # noqa: E402
from pathviz.ui.context import RunView  # noqa: E402
from pathviz.ui.data import ident as file_ident  # noqa: E402
from pathviz.ui.data import load_entries, load_layer, load_overview, load_support  # noqa: E402
from pathviz.ui.layer import CAPTION_KEY, FIGURE_KEY, HEIGHT  # noqa: E402
from pathviz.ui.metrics import METRICS_KEY, TRADEOFF_HEIGHT, TRADEOFF_KEY  # noqa: E402
from pathviz.ui.overview import OVERVIEW_KEY, OVERVIEW_TITLE  # noqa: E402
from pathviz.ui.present import FONT_SIZE, HEAT_TITLE, HEATMAP_KEY, PATH_KEY, STATUS_KEY, entry_order  # noqa: E402
from pathviz.ui.text import clean  # noqa: E402

PLAYER_KEY = "report"  # the page's one run file


class ReportError(Exception):
    """A run that cannot be reported, in one sentence."""


@dataclass(frozen=True)
class RunReport:
    """Everything the page shows: ``summary`` (inspect's dict), ``player`` (the player's data),
    ``charts`` (chart key or ``layer:<name>`` -> the chart component's data), ``stride`` (every
    how-many-th snapshot's heatmap is held), ``index`` the snapshot the page opens at."""

    name: str
    summary: dict[str, Any]
    player: dict[str, Any]
    present: dict[str, Any]
    layers: dict[str, dict[str, Any]]
    charts: dict[str, dict[str, Any]]
    stride: int
    index: int
    n: int


def _b64(a: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype=np.dtype(dtype).newbyteorder("<"))
                            .tobytes()).decode()


def open_view(run_dir: str | Path) -> RunView:
    """The run as the app's views see it. Raises :class:`ReportError` (one sentence) for a
    folder that is not a readable run."""
    try:
        paths = runs.paths_for_dir(run_dir)
    except runs.RunError as e:
        raise ReportError(str(e)) from None
    if not paths.dir.is_dir():
        raise ReportError(f"{run_dir} is not a folder; pass the folder of a run "
                          f"(e.g. checkpoints/demo)")
    if not paths.path.exists():
        raise ReportError(f"{run_dir} has no {runs.PATH_FILE}; pass the folder of a run "
                          f"(e.g. checkpoints/demo)")
    path = str(paths.path)
    try:
        with PathReader(path) as r:
            n = r.n_snapshots
            decision = stop_of(r, StopRule())
        if n == 0:
            raise ReportError(f"{run_dir}'s path file has no snapshot yet; report it once the "
                              f"run has written one")
        ident = file_ident(path)
        data = load_overview(path, ident, n)
    except (PathFileError, OSError) as e:
        raise ReportError(f"{run_dir}'s path file cannot be read ({e})") from None
    status = runs.read_status(paths) if paths.status.exists() else {}
    state = runs.effective_state(status)[0] if status else "unknown"
    model = str(data["model_info"].get("name") or data["config"].get("model") or "?")
    dataset = str(data["data_info"].get("dataset") or data["config"].get("dataset") or "?")
    info = runs.RunInfo(name=paths.name, paths=paths, state=state, reason="", model=model,
                        dataset=dataset, snapshots=n, iteration=int(data["iterations"][-1]),
                        total_iterations=int(data["iterations"][-1]), updated=0.0)
    return RunView(info=info, path=path, ident=ident, n=n, data=data, decision=decision,
                   live=False, model=model, dataset=dataset)


def start_index(view: RunView, iteration: str) -> int:
    """The snapshot the page opens at: ``"stop"`` (the suggested stop, else the last) or an
    iteration the path recorded. Raises :class:`ReportError` for any other value."""
    its = np.asarray(view.iterations)
    if iteration == "stop":
        stop = view.stop
        hit = np.flatnonzero(its == stop.iteration) if stop is not None else np.array([])
        return int(hit[0]) if hit.size else view.n - 1
    try:
        it = int(iteration)
    except ValueError:
        raise ReportError(f"--iteration must be stop or an iteration number, got "
                          f"{clean(iteration, 40)!r}") from None
    hit = np.flatnonzero(its == it)
    if not hit.size:
        raise ReportError(f"iteration {it} is not one of the path's snapshots (iterations "
                          f"{int(its[0])} to {int(its[-1])}); pass one the path recorded, "
                          f"or stop")
    return int(hit[0])


def _levels(view: RunView) -> tuple[dict[str, Any], int]:
    """The Overview's colour levels of every stride-th snapshot and the last, as the app
    ships them when a view opens (no refinement: a file has no server to ask)."""
    sum_g = int(sum(int(layer["groups"]) for layer in view.data["layers"]))
    stride = player.stride_for(view.n, max(sum_g, 1))
    rows = player.shipped_rows(0, view.n, stride)
    blob = player.load_levels(view.path, view.ident, tuple(int(i) for i in rows))
    return ({"sumG": sum_g, "stride": stride,
             "rows": {"index": _b64(rows, "i4"), "data": _b64(blob, "u1")}}, stride)


def build(run_dir: str | Path, iteration: str = "stop") -> RunReport:
    """Read run ``run_dir`` into a :class:`RunReport`. Raises :class:`ReportError`."""
    view = open_view(run_dir)
    index = start_index(view, iteration)
    try:
        summary = inspect.summary(run_dir)
    except (ValueError, runs.RunError, PathFileError) as e:
        raise ReportError(f"{run_dir} cannot be summarised ({e})") from None
    summary.pop("dir", None)  # the file names nothing outside the run
    n, layers = view.n, view.data["layers"]
    its = np.asarray(view.iterations, np.float64)[:n]

    support = load_support(view.path, view.ident, n)
    selected = sum(support.values(), np.zeros(n, np.int32))
    overview = player.PlayerSpec(heat_key=OVERVIEW_KEY, heat_title=OVERVIEW_TITLE)
    data: dict[str, Any] = {
        "key": PLAYER_KEY, "index": index, "seq": 0, "follow": False, "autoplay": False,
        "debounce": player.DEBOUNCE_MS, "ack": 0, "serverPlaying": False,
        "weights": _b64(view.data["weight_iterations"], "f8"), "wstar": player._w_star(view),
        "base": {"iterations": _b64(its, "f8"),
                 "epochs": _b64(np.asarray(view.data["epochs"], np.float32)[:n], "f4"),
                 "selected": _b64(selected, "i4")},
        "line": True,
    }
    present: dict[str, Any] = {}
    stride = 1
    if layers:
        data["levels"], stride = _levels(view)
        data["heat"] = player._heat_spec(view, overview)
        entries = load_entries(view.path, view.ident, n)
        ordered = player.PlayerSpec(
            heat_key=HEATMAP_KEY, heat_title=HEAT_TITLE, heat_font=FONT_SIZE, path_key=PATH_KEY,
            order={k: entry_order(entries[k]) for k in (la["name"] for la in layers)})
        total = int(sum(int(la["groups"]) for la in layers))
        present = {"heat": player._heat_spec(view, ordered),
                   "path": player._path_spec(view, ordered),
                   "status": {"key": STATUS_KEY, "total": total}}
    stop = view.stop_mark()
    per_layer: dict[str, dict[str, Any]] = {}
    figs: dict[str, dict[str, Any]] = {}
    for la in layers:
        name, kind = la["name"], la["kind"]
        lp = load_layer(view.path, view.ident, n, name)
        named = kind in ("heads", "mlp")
        record = {"name": name, "kind": kind, "groups": lp["gamma_norm"].shape[1]}
        spec = charts.layer_chart(lp["gamma_norm"], lp["weight_norm"], view.iterations,
                                  lp["entry"], clean(name), stop=stop,
                                  names=plots.group_names(record) if named else None,
                                  unit=plots.UNITS[kind] if named else "filter")
        figs[f"layer:{name}"] = {**prepare(spec, HEIGHT), "key": FIGURE_KEY}
        per_layer[name] = {
            "support": np.asarray(lp["support"]).astype(int).tolist(),
            "caption": {"key": CAPTION_KEY, "name": name,
                        "groups": int(lp["gamma_norm"].shape[1]),
                        "units": player.caption_units(view, name)}}
    m = view.data["metrics"]
    spec = charts.metrics_chart(view.iterations, m, stop, view.data["weight_iterations"])
    figs["metrics"] = {**prepare(spec, 300 + 140 * len(spec["panels"])), "key": METRICS_KEY}
    if view.has_metric("params_kept"):
        for acc, label in (("val_acc_sparse", plots.METRIC_LABELS["val_acc_sparse"]),
                           ("test_acc_sparse", plots.METRIC_LABELS["test_acc_sparse"])):
            if view.has_metric(acc):
                figs["tradeoff"] = {**prepare(charts.tradeoff_chart(
                    m["params_kept"], m[acc], view.iterations, stop, acc_label=label),
                    TRADEOFF_HEIGHT), "key": TRADEOFF_KEY}
                break
    return RunReport(name=view.info.name, summary=summary, player=data, present=present,
                     layers=per_layer, charts=figs, stride=stride, index=index, n=n)
