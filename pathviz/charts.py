"""Pure functions from path arrays to the chart specs that the page's player draws (numpy, and
plotly's colour scales only).

The Layer view's figure (filters by entry time above their paths) and the Metrics view's two
figures (the metrics against iteration, accuracy against size) are drawn in the browser by
``pathviz/ui/player.js`` on a canvas, like the Overview heatmap: no plotly bundle to parse and no
thousands of SVG nodes to lay out on a first load. A spec says everything the page draws:

- ``title``, ``subtitle`` and ``legend`` (``[{name, color, width, dash, dot, ring}]``);
- ``x``: the shared horizontal axis (``title``, ``lo``, ``hi``, ``log``, ``fmt``); ``top``: an
  optional second axis above the first panel (glmnet's df axis: groups selected);
- ``stop``: the suggested stop, a dashed orange line on every panel of an iteration chart;
- ``mode``: ``"iteration"`` (x is the iteration: a click anywhere selects the snapshot nearest
  the pointer, the position is a dotted red line) or ``"points"`` (a click selects the nearest
  point's snapshot, the position is a red ring on the last point at or before it);
- ``panels``: stacked plots, each with a ``weight`` (share of the height), a ``title``, a ``y``
  axis (``title``, ``lo``, ``hi``, ``fmt``: ``pct0``, ``pct1``, ``num``, ``si``, ``rank``,
  ``none``), an optional ``y2`` on the right, and what it holds: ``heat`` (uint8 levels, one
  column per iteration in ``x``, one text per row for the hover), ``band`` (a shaded y range),
  ``hline``, ``series`` (lines and dots; NaN breaks a line; ``hover`` lists its value at the
  pointer's iteration) and ``strip`` (ticks at given iterations, for the saved weights).

Numbers are numpy arrays here; :mod:`pathviz.ui.chart` encodes them for the page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.colors as pc

from pathviz.plots import (
    MAX_LINE_POINTS,
    METRIC_LABELS,
    OUTSIDE_COLOR,
    PALETTE,
    SCALE,
    STOP_COLOR,
    StopMark,
    decimate,
    level_colorbar,
    level_scale,
    levels,
)

__all__ = ["layer_chart", "metrics_chart", "tradeoff_chart", "compare_chart", "accuracy_floor",
           "band_range", "entry_bins"]

ITERATION = "iteration"
BAND_COLOR = "rgba(255, 127, 14, 0.15)"
MAX_PATH_POINTS = 30_000  # all filter paths of a layer together: one per 4 px of 120 filters
MAX_HEATMAP_COLUMNS = 800


def accuracy_floor(values: Sequence[np.ndarray]) -> float:
    """Where an accuracy axis starts: the lowest value shown, rounded down to 10 % (0 without
    data), so that the axis spans the data rather than 0-100 % with the data in its top tenth."""
    finite = [np.asarray(v, np.float64)[np.isfinite(v)] for v in values]
    finite = [v for v in finite if v.size]
    if not finite:
        return 0.0
    low = float(min(v.min() for v in finite))
    return float(min(max(np.floor(low * 10 + 1e-9) / 10, 0.0), 0.9))


def band_range(stop: StopMark) -> tuple[float, float]:
    """The y range of the zoomed stop panel: two band widths below the band, one above its top
    (the best), so the band fills a third of the panel whatever its width."""
    lo, hi = stop.band
    width = hi - lo if hi > lo else 0.005
    return lo - 2 * width, min(hi + width, 1.0 + 0.25 * width)


def entry_bins(entry_iterations: np.ndarray, k: int = 5) -> list[tuple[np.ndarray, str]]:
    """Filters grouped by when they entered: up to ``k`` groups of about equal size in order of
    entry (filters entering at the same iteration stay together), then never.

    Equal counts rather than equal iteration spans: most filters enter early, and equal spans
    gave one colour to most of them (11 of 16 filters of the demo's conv2). ``entry_iterations``
    [G] holds the entry iteration (-1: never). Returns (mask, label) pairs.
    """
    e = np.asarray(entry_iterations, dtype=np.int64)
    entered = e >= 0
    out: list[tuple[np.ndarray, str]] = []
    times = np.sort(e[entered])
    if times.size:
        # cut after the entry times where the running count passes each k-th of the filters
        uniq, counts = np.unique(times, return_counts=True)
        done = np.cumsum(counts)
        groups = np.minimum((done - 1) * k // times.size, k - 1)
        for j in np.unique(groups):
            members = uniq[groups == j]
            mask = entered & np.isin(e, members)
            a, z = int(members.min()), int(members.max())
            span = f"{a:,}" if a == z else f"{a:,}–{z:,}"
            out.append((mask, f"entered at {span} ({int(mask.sum())})"))
    if (~entered).any():
        out.append((~entered, f"never entered ({int((~entered).sum())})"))
    return out


def _lines(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One NaN-separated polyline through the columns of y [N, K] against x [N] (float32: the
    lines have no hover, and float32 holds every iteration below 2**24 exactly)."""
    n, k = y.shape
    xs = np.empty((k, n + 1), dtype=np.float32)
    ys = np.empty((k, n + 1), dtype=np.float32)
    xs[:, :n] = x
    xs[:, n] = np.nan
    ys[:, :n] = y.T
    ys[:, n] = np.nan
    return xs.ravel(), ys.ravel()


def _finite_max(arrays: Sequence[np.ndarray]) -> float:
    """The largest finite value of ``arrays`` (0 without one): a diverged run's inf or NaN
    does not stretch an axis to nothing."""
    tops = [float(a[np.isfinite(a)].max()) for a in (np.asarray(v, np.float64) for v in arrays)
            if np.isfinite(a).any()]
    return max(tops, default=0.0)


def _finite_min_positive(arrays: Sequence[np.ndarray]) -> float:
    """The smallest finite positive value of ``arrays`` (0 without one)."""
    lows = [float(a[np.isfinite(a) & (a > 0)].min()) for a in
            (np.asarray(v, np.float64) for v in arrays) if (np.isfinite(a) & (a > 0)).any()]
    return min(lows, default=0.0)


def _x_axis(iterations: np.ndarray, log_x: bool) -> dict[str, Any]:
    its = np.asarray(iterations, np.float64)
    lo = float(its[0]) if its.size else 0.0
    hi = float(its[-1]) if its.size else 1.0
    if log_x:  # iteration 0 cannot be drawn on a log axis
        positive = its[its > 0]
        lo = float(positive[0]) if positive.size else 1.0
        hi = max(hi, lo * 10)
    return {"title": ITERATION + (" (log scale)" if log_x else ""), "lo": lo,
            "hi": hi if hi > lo else lo + 1.0, "log": bool(log_x), "fmt": "int"}


def _stop(stop: StopMark | None) -> dict[str, Any] | None:
    return None if stop is None else {"x": int(stop.iteration),
                                      "label": f"{stop.label} {stop.iteration:,}"}


def _stop_legend(stop: StopMark | None) -> list[dict[str, Any]]:
    if stop is None:
        return []
    return [{"name": f"{stop.label} (iteration {stop.iteration:,})", "color": STOP_COLOR,
             "width": 2, "dash": [6, 4]}]


def level_ticks(top: float) -> list[list]:
    """The level colour bar's ticks [fraction of the bar, text], from the server's figures'
    colour bar (:func:`pathviz.plots.level_colorbar`): 0 is outside, 1..255 map to (0, top]."""
    bar = level_colorbar(top, "")
    return [[(float(v) + 0.5) / 256, t] for v, t in zip(bar["tickvals"], bar["ticktext"])]


def df_ticks(support: np.ndarray, iterations: np.ndarray, groups: int, k: int = 8,
              positive: bool = False) -> list[list]:
    """The top axis's ticks [iteration, count]: where the groups selected first reach evenly
    spaced counts (a step of 1, 2 or 5 times a power of ten, at most ``k + 1`` ticks up to
    ``groups``), so the axis reads 0, 4, 8, 12 rather than the counts at evenly spaced
    iterations (0, 5, 11, 12, 12, 12). A jump past a count is labelled with the count reached;
    ``positive`` leaves out iteration 0 (a log axis)."""
    sup = np.asarray(support, np.int64)
    its = np.asarray(iterations, np.float64)[: len(sup)]
    if positive:
        sup, its = sup[its > 0], its[its > 0]
    if sup.size == 0:
        return []
    top = max(int(sup.max()), 1)
    raw = max(top, groups // 2, 1) / k
    mag = 10 ** np.floor(np.log10(raw))
    step = max(1, int(next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)))
    out: list[list] = []
    for target in range(0, top + 1, step):
        reached = np.flatnonzero(sup >= target)
        if reached.size and (not out or its[reached[0]] > out[-1][0]):
            out.append([float(its[reached[0]]), str(int(sup[reached[0]]))])
    return out


def layer_chart(gamma_norm: np.ndarray, weight_norm: np.ndarray, iterations: np.ndarray,
                entry: np.ndarray, layer: str = "", log_x: bool = False,
                show_gamma: bool = False, stop: StopMark | None = None,
                names: Sequence[str] | None = None, unit: str = "filter") -> dict[str, Any]:
    """The Layer view: entry-order heatmap above the filter paths, on one shared iteration axis.

    ``gamma_norm`` and ``weight_norm`` are [N, G]; ``entry`` [G] the entry snapshot index (-1:
    never). Top: filters sorted by entry (rows) x iterations (columns), uint8 levels of
    ||Gamma_g||, columns decimated to MAX_HEATMAP_COLUMNS. Bottom: ||W_g|| of every filter (and
    ||Gamma_g|| dashed with ``show_gamma``), coloured by when the filter entered, decimated to
    screen resolution (MAX_PATH_POINTS in all). The top axis gives the number of selected
    groups (glmnet's df axis). With ``names`` ([G], e.g. "block 2 · head 3") the rows are named
    (on the axis where there are at most 32); ``unit`` is what the title calls a group.
    """
    n, g = gamma_norm.shape
    its = np.asarray(iterations, np.float64)[:n]
    key = np.where(entry < 0, np.iinfo(np.int64).max, entry)
    order = np.argsort(key, kind="stable")
    cols = decimate(n, MAX_HEATMAP_COLUMNS)
    top = float(gamma_norm.max()) if gamma_norm.size and gamma_norm.max() > 0 else 1.0
    z = levels(gamma_norm[np.ix_(cols, order)].T, top)  # [G rows in entry order, columns]
    entry_it = np.where(entry >= 0, its[np.clip(entry, 0, max(n - 1, 0))], -1)
    rank_text = [f"entry rank {r} · {names[f] if names is not None else f'{unit} {f}'}"
                 + (f" (entered at {int(entry_it[f]):,})" if entry_it[f] >= 0 else
                    " (never entered)") for r, f in enumerate(order.tolist())]
    heat = {"z": z.ravel(), "rows": int(g), "cols": int(len(cols)), "x": its[cols],
            "rowText": rank_text, "scale": level_scale()}
    rows_axis: dict[str, Any] = {"title": f"{unit}, in order of entry", "lo": -0.5,
                                 "hi": g - 0.5, "fmt": "rank"}
    if names is not None and g <= 32:
        rows_axis["labels"] = [str(names[f]) for f in order.tolist()]
    per_line = max(20, min(MAX_LINE_POINTS, MAX_PATH_POINTS // max(g, 1)))
    rows = decimate(n, per_line)
    x = its[rows]
    bins = entry_bins(entry_it)
    entered_bins = [b for b in bins if not b[1].startswith("never")]
    colors = pc.sample_colorscale(SCALE, [i / max(len(entered_bins) - 1, 1) * 0.9
                                          for i in range(len(entered_bins))])
    color_of = {label: c for (_, label), c in zip(entered_bins, colors)}
    series, legend = [], _stop_legend(stop)
    for mask, label in bins:
        color = color_of.get(label, OUTSIDE_COLOR)
        xs, ys = _lines(x, weight_norm[rows][:, mask])
        series.append({"name": f"‖W‖, {label}", "x": xs, "y": ys, "color": color, "width": 1})
        legend.append({"name": f"‖W‖, {label}", "color": color, "width": 2})
        if show_gamma:
            xs, ys = _lines(x, gamma_norm[rows][:, mask])
            series.append({"name": f"‖Γ‖, {label}", "x": xs, "y": ys, "color": color,
                           "width": 1, "dash": [4, 3]})
    if show_gamma:
        legend.append({"name": "group ‖Γ‖ (dashed)", "color": "#444444", "width": 1,
                       "dash": [4, 3]})
    shown = [weight_norm[rows]] + ([gamma_norm[rows]] if show_gamma else [])
    y_top = _finite_max(shown)
    support = (gamma_norm > 0).sum(axis=1)
    top_ticks = df_ticks(support, its, g, positive=log_x)
    return {
        "title": f"{layer}: {unit}s by entry time",
        "subtitle": "grey: outside the support; click to select an iteration, drag across "
                    "to zoom in",
        "mode": ITERATION, "x": _x_axis(its, log_x), "stop": _stop(stop), "legend": legend,
        "legendTitle": "path colour:",
        "top": {"title": f"groups selected (of {g})",
                "ticks": top_ticks},
        "panels": [
            {"weight": 0.5, "y": rows_axis, "heat": heat,
             "colorbar": {"title": "group ‖Γ‖", "scale": level_scale(), "ticks": level_ticks(top)}},
            {"weight": 0.5, "title": f"{layer}: regularization path of every {unit}",
             "y": {"title": "group norm", "lo": 0.0, "hi": y_top * 1.05 if y_top > 0 else 1.0,
                   "fmt": "num"}, "series": series},
        ],
    }


# One colour per meaning (Okabe-Ito): the colour says which data and which weights, the panel
# says which quantity, so accuracy and loss of one split share a colour and one legend entry.
# Orange is the stop's alone (its line, the 1-SE band and set).
METRIC_COLORS = {"train_acc": ("#7f7f7f", [2, 3]), "val_acc": ("#56B4E9", None),
                 "test_acc": ("#0072B2", None), "val_acc_sparse": ("#CC79A7", None),
                 "test_acc_sparse": ("#D55E00", None), "train_loss": ("#7f7f7f", [2, 3]),
                 "val_loss": ("#56B4E9", None), "test_loss": ("#0072B2", None),
                 "sparsity": ("#009E73", None), "params_kept": ("#000000", None)}
MEANING = {"train_acc": "train (W)", "train_loss": "train (W)", "val_acc": "validation (W)",
           "val_loss": "validation (W)", "test_acc": "test (W)", "test_loss": "test (W)",
           "val_acc_sparse": "validation, compact subnetwork (W*)",
           "test_acc_sparse": "test, compact subnetwork (W*)"}
PANEL_OF = {"train_acc": "acc", "val_acc": "acc", "test_acc": "acc", "val_acc_sparse": "acc",
            "test_acc_sparse": "acc", "train_loss": "loss", "val_loss": "loss",
            "test_loss": "loss", "sparsity": "sparse", "params_kept": "sparse"}
SAVED = "weights saved here (exportable)"
SAVED_IN_SET = "weights saved, in the 1-SE set (the stop's candidates)"


def metrics_chart(iterations: np.ndarray, metrics: Mapping[str, np.ndarray],
                  stop: StopMark | None = None, weight_iterations: np.ndarray | None = None,
                  log_x: bool = False) -> dict[str, Any]:
    """Accuracy, the stop's band (zoomed), loss, sparsity / parameters kept, and the iterations
    with saved weights, against iteration on a shared x-axis.

    Every line has a legend entry, and the hover gives each line's value at the pointer's
    iteration. With a stop and the compact subnetwork's validation accuracy, a panel zoomed to
    the 1-SE band shows which evaluated iterations are in the 1-SE set (orange points), not a
    span. Iterations with saved weights (exportable) are ticks in a strip of their own at the
    bottom, so they do not pose as data; the ones in the 1-SE set (the stop's candidates) are
    orange. Axes start at meaningful values: accuracy at its lowest value rounded down to 10 %,
    loss, sparsity and parameters at 0. Only the metrics present are drawn; the caller says
    which are missing.
    """
    it = np.asarray(iterations, np.float64)
    members = np.asarray(stop.members if stop is not None else (), dtype=np.int64)
    zoom = stop is not None and "val_acc_sparse" in metrics and bool(
        np.isfinite(np.asarray(metrics["val_acc_sparse"], np.float64)).any())
    saves = (np.asarray(weight_iterations, dtype=np.int64) if weight_iterations is not None
             else np.zeros(0, np.int64))
    acc_names = [k for k in ("train_acc", "val_acc", "test_acc", "val_acc_sparse",
                             "test_acc_sparse") if k in metrics]
    floor = accuracy_floor([metrics[k] for k in acc_names])
    kept = np.asarray(metrics.get("params_kept", np.zeros(0)), np.float64)
    kept = kept[np.isfinite(kept)]
    top = float(kept.max()) if kept.size and kept.max() > 0 else 1.0
    loss_top = _finite_max([metrics[k] for k in ("train_loss", "val_loss", "test_loss")
                            if k in metrics])
    panels: dict[str, dict[str, Any]] = {
        "acc": {"weight": 0.32, "title": "accuracy", "series": [],
                "y": {"title": "accuracy", "lo": floor, "hi": 1.0 + 0.02 * (1.0 - floor),
                      "fmt": "pct0"}},
    }
    if zoom:
        assert stop is not None
        lo, hi = band_range(stop)
        panels["zoom"] = {"weight": 0.2, "title": "near the best, zoomed: the 1-SE band and set",
                          "series": [], "band": [float(stop.band[0]), float(stop.band[1])],
                          "hline": {"y": float(stop.band[0]), "color": STOP_COLOR},
                          "y": {"title": "val. acc.", "lo": lo, "hi": hi, "fmt": "pct1"}}
    # loss on a log axis: it falls by orders of magnitude, and a linear axis to its first value
    # leaves the rest of the run flat at the bottom
    loss_low = _finite_min_positive([metrics[k] for k in ("train_loss", "val_loss", "test_loss")
                                     if k in metrics])
    log_loss = loss_low > 0 and loss_top > loss_low * 4
    panels["loss"] = {"weight": 0.18, "title": "loss", "series": [],
                      "y": {"title": "loss (log)" if log_loss else "loss",
                            "lo": loss_low / 1.25 if log_loss else 0.0,
                            "hi": loss_top * (1.25 if log_loss else 1.05) if loss_top > 0
                            else 1.0, "fmt": "num", "log": log_loss}}
    panels["sparse"] = {"weight": 0.22, "title": "sparsity and parameters kept", "series": [],
                        "y": {"title": "fraction outside", "lo": 0.0, "hi": 1.02,
                              "fmt": "pct0"}}
    if "params_kept" in metrics:
        panels["sparse"]["y2"] = {"title": "parameters kept", "lo": 0.0, "hi": top * 1.05,
                                  "fmt": "si"}
    legend = []

    def series(name: str, key: str, dot: int = 3, show: bool = True) -> None:
        if name not in metrics:
            return
        y = np.asarray(metrics[name], dtype=np.float64)
        ok = np.flatnonzero(np.isfinite(y))
        if ok.size == 0:
            return
        idx = ok[decimate(len(ok), MAX_LINE_POINTS)]  # about one point per two pixels
        label = METRIC_LABELS.get(name, name)
        color, dash = METRIC_COLORS[name]
        secondary = name == "params_kept"
        panels[key]["series"].append({
            "name": label, "x": it[idx], "y": y[idx].astype(np.float32), "color": color,
            "width": 1.5, "dash": dash, "dot": dot, "hover": True, "axis": 2 if secondary else 1,
            "fmt": "si" if secondary else panels[key]["y"]["fmt"].replace("pct0", "pct1")})
        entry = MEANING.get(name, label)
        if show and all(e["name"] != entry for e in legend):
            legend.append({"name": entry, "color": color, "width": 1.5, "dash": dash, "dot": dot})

    for name, key in PANEL_OF.items():
        series(name, key)
    if zoom:
        assert stop is not None
        series("val_acc_sparse", "zoom", dot=5, show=False)
        y = np.asarray(metrics["val_acc_sparse"], dtype=np.float64)
        inside = np.flatnonzero(np.isin(it, members) & np.isfinite(y))
        name = f"within 1 SE of the best: the 1-SE set ({len(inside)} evaluated iterations)"
        panels["zoom"]["series"].append({
            "name": "in the 1-SE set", "x": it[inside], "y": y[inside].astype(np.float32),
            "color": STOP_COLOR, "width": 0, "dot": 8, "ring": True, "hover": True,
            "fmt": "pct1"})
        legend.append({"name": name, "color": STOP_COLOR, "width": 0, "dot": 8, "ring": True})
        legend.append({"name": "the 1-SE band", "color": BAND_COLOR, "width": 10})
    if len(saves):
        wi = saves[decimate(len(saves), 1000)]
        strip = []
        for picked, name, color in ((~np.isin(wi, members), SAVED, "#444444"),
                                    (np.isin(wi, members), SAVED_IN_SET, STOP_COLOR)):
            if picked.any():
                strip.append({"name": name, "x": wi[picked].astype(np.float64), "color": color})
                legend.append({"name": name, "color": color, "width": 0, "tick": True})
        panels["saves"] = {"weight": 0.05, "title": "iterations with saved weights (exportable)",
                           "strip": strip, "y": {"title": "", "lo": 0.0, "hi": 1.0,
                                                 "fmt": "none"}}
    order = [k for k in ("acc", "zoom", "loss", "sparse", "saves") if k in panels]
    return {"title": "", "subtitle": "", "mode": ITERATION, "x": _x_axis(it, log_x),
            "stop": _stop(stop), "legend": _stop_legend(stop) + legend, "top": None,
            "panels": [panels[k] for k in order]}


def tradeoff_chart(params_kept: np.ndarray, acc: np.ndarray, iterations: np.ndarray,
                   stop: StopMark | None = None, acc_label: str = "validation accuracy, "
                   "compact subnetwork") -> dict[str, Any]:
    """Accuracy against parameters kept, one point per evaluated snapshot, coloured by its
    iteration; the suggested stop is a ring, the 1-SE set orange points over the band.

    A click selects the nearest point's snapshot; the page rings the point of the selected
    iteration (the last evaluated snapshot at or before it).
    """
    a = np.asarray(acc, dtype=np.float64)
    kept = np.asarray(params_kept, dtype=np.float64)
    ok = np.flatnonzero(np.isfinite(a) & np.isfinite(kept))
    it = np.asarray(iterations, np.float64)[ok]
    kept, a = kept[ok], a[ok]
    span = float(it.max() - it.min()) if it.size else 0.0
    shade = ((it - it.min()) / span * 0.8 + 0.2) if span > 0 else np.full(len(it), 0.6)
    colors = np.round(shade * 255).astype(np.uint8)
    series = [{"name": "evaluated snapshots", "x": kept, "y": a.astype(np.float32),
               "color": "#c7c7c7", "width": 1.5, "dot": 6, "levels": colors,
               "scale": pc.get_colorscale("Blues")}]
    legend = [{"name": "evaluated snapshots (colour: iteration, light to dark)",
               "color": pc.sample_colorscale("Blues", [0.75])[0], "width": 1.5,
               "dot": 6}]
    floor = accuracy_floor([a])
    panel: dict[str, Any] = {"weight": 1.0, "series": series,
                             "y": {"title": acc_label, "lo": floor,
                                   "hi": 1.0 + 0.02 * (1.0 - floor), "fmt": "pct0"}}
    if stop is not None:
        panel["band"] = [float(stop.band[0]), float(stop.band[1])]
        inside = np.isin(it, np.asarray(stop.members, dtype=np.int64))
        if inside.any():
            name = f"within 1 SE of the best ({int(inside.sum())} evaluated iterations)"
            series.append({"name": name, "x": kept[inside], "y": a[inside].astype(np.float32),
                           "color": STOP_COLOR, "width": 0, "dot": 9})
            legend.append({"name": name, "color": STOP_COLOR, "width": 0, "dot": 9})
        hit = np.flatnonzero(it == stop.iteration)
        if hit.size:
            i = int(hit[-1])
            name = f"{stop.label} (iteration {stop.iteration:,})"
            series.append({"name": name, "x": kept[i:i + 1], "y": a[i:i + 1].astype(np.float32),
                           "color": STOP_COLOR, "width": 0, "dot": 16, "ring": True})
            legend.append({"name": name, "color": STOP_COLOR, "width": 0, "dot": 12,
                           "ring": True})
    return {"title": f"{acc_label} against parameters kept", "subtitle": "",
            "mode": "points", "stop": None, "top": None, "legend": legend,
            "x": {"title": "parameters kept (compact subnetwork)", "lo": 0.0,
                  "hi": float(kept.max()) * 1.05 if kept.size and kept.max() > 0 else 1.0,
                  "log": False, "fmt": "si"},
            "points": {"x": kept, "y": a.astype(np.float32), "it": it,
                       "index": ok.astype(np.int32), "xlabel": "params kept",
                       "ylabel": acc_label},
            "panels": [panel]}


COMPARE_DASHES = [None, [6, 4], [2, 3], [6, 3, 2, 3]]


def compare_chart(series: Mapping[str, tuple[np.ndarray, np.ndarray]],
                  log_x: bool = False) -> dict[str, Any]:
    """The Compare view: support size (fraction of groups selected) against iteration, one line
    per run (``series``: legend name -> (iterations, fraction)).

    Runs get distinct Okabe-Ito colours, and distinct dashes after the eighth; the hover gives
    each run's fraction at the pointer's iteration. The page marks the iteration selected for
    the current run (no player runs on this view: the server sends it with the spec)."""
    lines, legend, its = [], [], []
    for k, (name, (it, frac)) in enumerate(series.items()):
        idx = decimate(len(it), 2000)  # about one point per pixel of a wide plot
        x = np.asarray(it, np.float64)[idx]
        style = {"color": PALETTE[k % len(PALETTE)], "width": 2.5,
                 "dash": COMPARE_DASHES[(k // len(PALETTE)) % len(COMPARE_DASHES)]}
        lines.append({"name": name, "x": x, "y": np.asarray(frac, np.float32)[idx],
                      "hover": True, "fmt": "pct1", **style})
        legend.append({"name": name, **style})
        its.append(x)
    allx = np.unique(np.concatenate(its)) if its else np.zeros(0)
    return {"title": "support size against iteration", "subtitle": "", "mode": ITERATION,
            "x": _x_axis(allx, log_x), "stop": None, "top": None, "legend": legend,
            "legendTitle": "run (ν, λ, κ):",
            "panels": [{"weight": 1.0, "series": lines,
                        "y": {"title": "fraction of groups selected", "lo": 0.0, "hi": 1.02,
                              "fmt": "pct0"}}]}
