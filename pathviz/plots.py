"""Pure functions from path arrays to figures (numpy and plotly only, no torch), and the words
and colours that the page's own drawings share with them.

The views that follow the position (the Overview heatmap, presentation mode, the Layer and
Metrics figures) are drawn by the page's player (:mod:`pathviz.ui.player`; the Layer and
Metrics specs are in :mod:`pathviz.charts`). The plotly figures here are for the other views
(Filters, Compare, Tickets, Baselines) and for the server's copy of the Overview heatmap, which
tests compare with the page's. Heatmaps are uint8 levels with a colour scale whose first level
is the neutral "outside the support" grey.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.colors as pc
import plotly.graph_objects as go

__all__ = ["group_names", "unit_plural", "overview_heatmap", "filters_image",
           "decimate", "levels", "StopMark", "METRIC_LABELS",
           "PALETTE", "size_accuracy", "log_ticks", "METHOD_STYLE"]

OUTSIDE_COLOR = "#d6d6d6"  # filters outside the support: neutral grey, not a colour of the scale
SELECTED_COLOR = "#d62728"
STOP_COLOR = "#ff7f0e"
SCALE = "Viridis"
MAX_LINE_POINTS = 600  # per filter path: about one point per two pixels of a wide plot
MAX_OVERVIEW_COLUMNS = 1024
# Okabe-Ito: a qualitative palette that stays distinguishable for colour-blind readers
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
           "#000000"]
METRIC_LABELS = {
    "train_acc": "train accuracy (W)", "val_acc": "validation accuracy (W)",
    "test_acc": "test accuracy (W)", "val_acc_sparse": "validation accuracy, compact subnetwork",
    "test_acc_sparse": "test accuracy, compact subnetwork", "train_loss": "train loss",
    "val_loss": "validation loss", "test_loss": "test loss",
    "sparsity": "groups outside the support (fraction)",
    "params_kept": "parameters kept, compact subnetwork", "lr": "learning rate",
}


@dataclass(frozen=True)
class StopMark:
    """What the plots mark of a stop decision: the stop, its 1-SE band and the set inside it.

    ``band`` is (best validation accuracy - SE, best); ``members`` the evaluated iterations
    whose validation accuracy (compact subnetwork) lies in it: the 1-SE set is drawn as these
    points, never as a span of iterations (the accuracy dips out of the band and back in).
    """

    iteration: int
    band: tuple[float, float]
    members: tuple[int, ...] = ()
    label: str = "suggested stop"


def decimate(n: int, limit: int) -> np.ndarray:
    """Indices of at most ``limit`` of ``n`` evenly spread items, first and last included."""
    if n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max(limit, 2)).round().astype(np.int64))


def levels(values: np.ndarray, top: float) -> np.ndarray:
    """uint8 colour levels: 0 for values <= 0 (outside the support), 1..255 for (0, top]."""
    v = np.asarray(values, dtype=np.float32)
    scale = 254.0 / top if top > 0 else 0.0
    out = np.zeros(v.shape, np.uint8)
    pos = v > 0
    out[pos] = (1 + np.clip(np.rint(v[pos] * scale), 0, 254)).astype(np.uint8)
    return out


def level_scale() -> list:
    """Level 0 grey, levels 1..255 Viridis (a step at the first level, not a blend)."""
    viridis = pc.get_colorscale(SCALE)
    edge = 0.5 / 255
    return ([[0.0, OUTSIDE_COLOR], [edge, OUTSIDE_COLOR]]
            + [[edge + (1 - edge) * p, c] for p, c in viridis])


def level_colorbar(top: float, title: str) -> dict:
    """A colour bar labelled in the data's units (levels 1..255 map to (0, top]); level 0 is
    the grey of groups outside the support, labelled as the figures' subtitles say it."""
    fracs = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    return dict(title=dict(text=title, side="right"), tickmode="array",
                tickvals=[0] + (1 + 254 * fracs[1:]).tolist(),
                ticktext=["grey: outside"] + [f"{top * f:.3g}" for f in fracs[1:]])


TOOLBAR_PX = 34  # the plotly toolbar and Streamlit's chart toolbar, shown on hover: no text here


def _title(text: str, subtitle: str | None = None) -> dict:
    """A figure title that no toolbar covers: left-aligned, below the toolbar strip at the
    top of the chart (both toolbars sit at its top right on hover). Plotly never wraps a
    title, so callers keep it short and put the rest in ``subtitle``."""
    out: dict = dict(text=text, x=0, xanchor="left", xref="container", y=1, yref="container",
                     yanchor="top", pad=dict(t=TOOLBAR_PX, l=10))
    if subtitle:
        out["subtitle"] = dict(text=subtitle)
    return out


def top_margin(title: bool = True, subtitle: bool = False) -> int:
    """The top margin that holds the toolbar strip, the title and its subtitle."""
    return TOOLBAR_PX + (26 if title else 6) + (20 if subtitle else 0)


def heatmap_columns(widths: Sequence[int]) -> int:
    """Cells per row of the Overview heatmap: the widest layer's filter count, at most
    MAX_OVERVIEW_COLUMNS."""
    return int(min(max(max(widths, default=1), 1), MAX_OVERVIEW_COLUMNS))


def heatmap_cells(g: int, columns: int, order: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which filters of a ``g``-filter layer each of ``columns`` heatmap cells shows.

    Returns ``(perm, lo, hi)``: the layer's filters in display order ``perm`` [g] (``order``,
    e.g. by entry time, or position order), and for cell c the filters ``perm[lo[c]:hi[c]]``
    [columns] (one filter spread over several cells when ``g <= columns``; the largest of
    several filters when ``g > columns``). The browser player draws cells with the same map.
    """
    perm = np.asarray(order, np.int64) if order is not None else np.arange(g)
    lo = np.arange(columns) * g // columns
    hi = np.append(lo[1:], g) if g > columns else lo + 1
    return perm, lo, hi


_BLOCK = re.compile(r"^(?:[A-Za-z]+_)*(\d+)$")  # "2" in blocks.2, "1" in encoder_layer_1
UNITS = {"conv": "filter", "linear": "neuron", "heads": "head", "mlp": "MLP neuron"}


def group_names(layer: Mapping) -> list[str]:
    """A name per group of a layer record (the path file's ``layers`` entry), for hovers and
    captions: ``"block 2 · head 3"`` and ``"block 2 · MLP neuron 17"`` in a transformer block
    (the block is the first number in the layer's name, as in ``blocks.2.attn``),
    ``"filter 5"``/``"neuron 5"`` for a conv/linear layer."""
    unit = UNITS.get(layer.get("kind"), "group")
    prefix = ""
    if layer.get("kind") in ("heads", "mlp"):
        for part in str(layer["name"]).split("."):
            m = _BLOCK.match(part)
            if m:
                prefix = f"block {int(m.group(1))} · "
                break
    return [f"{prefix}{unit} {i}" for i in range(int(layer["groups"]))]


def unit_plural(layer: Mapping) -> str:
    """What a layer's groups are called, plural: "filters", "heads", "MLP neurons"."""
    return UNITS.get(layer.get("kind"), "group") + "s"


def heatmap_height(rows: int) -> int:
    """The Overview heatmap's height in pixels for ``rows`` layers (title, axes and 34 px a
    layer)."""
    return max(300, 160 + 34 * rows)


def heatmap_frame(widths: Sequence[int], ordered: bool = False,
                  unit: str = "filter") -> dict[str, Any]:
    """The Overview heatmap's words around its cells, for the server's figure and the
    browser player's drawing alike: the subtitle (grey cells, and whether a cell aggregates
    filters), the x-axis title, the colour bar's title and ticks ``[[level, text], ...]``.
    ``unit`` names a cell's group ("group" where a transformer's heads and MLP neurons
    share the figure with filters)."""
    widest = max(widths, default=1)
    columns = heatmap_columns(widths)
    note = (f"each cell is the largest of up to {-(-widest // columns)} {unit}s"
            if widest > columns else f"every {unit} shown")
    bar = level_colorbar(1.0, "group ‖Γ‖ ÷ layer's largest")
    return {"subtitle": f"grey: outside the support; {note}",
            "xtitle": f"{unit}s in order of entry (first on the left)" if ordered
            else f"{unit} position in its layer (0 = first, 1 = last)",
            "colorbar": bar["title"]["text"],
            "ticks": [[float(v), t] for v, t in zip(bar["tickvals"], bar["ticktext"])]}


def overview_heatmap(layer_names: Sequence[str], gamma_norms: Mapping[str, np.ndarray],
                     title: str = "", order: Mapping[str, np.ndarray] | None = None,
                     names: Mapping[str, Sequence[str]] | None = None) -> go.Figure:
    """Layers x filters at one snapshot, coloured by ||Gamma_g|| / the layer's largest.

    Full resolution: the row width is the widest layer's filter count G_max (up to
    MAX_OVERVIEW_COLUMNS), and a layer of G filters spreads each filter over G_max/G cells, so
    every filter has at least one cell. Only layers wider than MAX_OVERVIEW_COLUMNS are
    aggregated (the largest norm of the filters sharing a cell), and the title says so.
    With ``order`` (layer -> [G] filter indices, e.g. by entry time) each row shows its filters
    in that order; the hover still names each filter by its position in the layer. With
    ``names`` (layer -> [G] names, e.g. from :func:`group_names`) the hover names each group so
    ("block 2 · head 3").
    """
    widths = [len(gamma_norms[name]) for name in layer_names]
    widest = max(widths, default=1)
    columns = heatmap_columns(widths)
    z = np.zeros((len(layer_names), columns), np.uint8)
    first = np.zeros((len(layer_names), columns), np.int16 if widest < 2**15 else np.int32)
    for r, name in enumerate(layer_names):
        gn = np.asarray(gamma_norms[name], dtype=np.float32)
        g = len(gn)
        if g == 0:
            continue
        perm, lo, hi = heatmap_cells(g, columns, order[name] if order is not None else None)
        gn = gn[perm]
        top = float(gn.max()) if gn.max() > 0 else 1.0
        if g <= columns:
            vals = gn[lo]  # the filter each cell shows
        else:  # more filters than cells: each cell shows the largest of its filters
            vals = np.maximum.reduceat(gn, lo)
        z[r] = levels(vals / top, 1.0)
        first[r] = perm[lo]
    text = None
    rows = list(layer_names)
    if names is not None:
        text = [[str(names[name][i]) if name in names and len(gamma_norms[name]) else ""
                 for i in first[r]] for r, name in enumerate(layer_names)]
        # plotly does not carry a heatmap's text through a reordered category axis (a hover
        # would name another layer's group): give the rows bottom-up instead, first layer on top
        z, first, text, rows = z[::-1], first[::-1], text[::-1], rows[::-1]
    frame = heatmap_frame(widths, ordered=order is not None)
    fig = go.Figure(go.Heatmap(
        z=z, x=np.arange(columns, dtype=np.float32) / max(columns - 1, 1),
        y=rows, customdata=first, colorscale=level_scale(), zmin=0, zmax=255,
        text=text,
        hovertemplate=("%{y}, filter %{customdata}" if text is None else "%{y}: %{text}")
        + "<br>level %{z} of 255 (0: outside the support)<extra></extra>",
        colorbar=level_colorbar(1.0, frame["colorbar"])))
    # a short title and a subtitle: plotly never wraps titles, so a long one is cut on a
    # narrow page and runs into the colour bar and the toolbar (top right)
    fig.update_layout(
        title=_title(title or "Gamma support by layer", frame["subtitle"]),
        xaxis=dict(range=[-0.5 / columns, 1 + 0.5 / columns], title=frame["xtitle"]),
        # first layer on top (a reversed autorange is ignored on an axis without data)
        yaxis=dict(type="category", categoryorder="array", categoryarray=list(layer_names)[::-1],
                   title="layer") if text is None else dict(type="category", title="layer"),
        height=heatmap_height(len(layer_names)),
        margin=dict(l=10, r=10, t=top_margin(subtitle=True), b=40))
    return fig


SUPPORT_PATH_WORDS = {"title": "Support path", "subtitle": "filters in the support, per layer",
                      "xtitle": "iteration", "ytitle": "filters selected (% of layer)"}


def support_series(iterations: np.ndarray, support: Mapping[str, np.ndarray],
                   groups: Mapping[str, int]) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """The support path's lines, for the server's figure and the browser player's drawing:
    iterations [M] (decimated to MAX_LINE_POINTS) and per layer, then all layers together,
    ``{"layer", "name" ("conv2 (16)"), "color", "width", "y"}`` with y [M] in % of the
    layer's filters."""
    its = np.asarray(iterations)
    rows = decimate(len(its), MAX_LINE_POINTS)
    total = sum(int(groups[k]) for k in support) or 1
    overall = np.zeros(len(its), np.float64)
    lines = []
    for k, (name, counts) in enumerate(support.items()):
        c = np.asarray(counts, np.float64)[: len(its)]
        overall += c
        g = max(int(groups[name]), 1)
        lines.append({"layer": name, "name": f"{name} ({g})", "color": PALETTE[k % len(PALETTE)],
                      "width": 2.5, "y": (100 * c[rows] / g).astype(np.float32)})
    lines.append({"layer": "all", "name": f"all ({total})", "color": "#000000", "width": 4,
                  "y": (100 * overall[rows] / total).astype(np.float32)})
    return its[rows].astype(np.float64), lines


def filters_image(weight: np.ndarray, inside: np.ndarray, iteration: int,
                  layer: str = "conv") -> go.Figure:
    """The filters [out, in, kh, kw] of conv layer ``layer`` as a grid of images; unselected
    ones are greyed out.

    Each filter is min-max scaled on its own (the mean over input channels for colour inputs).
    Selected filters get a coloured frame.
    """
    w = np.asarray(weight, dtype=np.float32)
    if w.ndim != 4:
        raise ValueError(f"expected conv weights [out, in, kh, kw], got shape {w.shape}")
    out, _, kh, kw = w.shape
    img = w.mean(axis=1)
    lo = img.reshape(out, -1).min(axis=1)[:, None, None]
    hi = img.reshape(out, -1).max(axis=1)[:, None, None]
    img = (img - lo) / np.where(hi > lo, hi - lo, 1)
    cols = int(np.ceil(np.sqrt(out)))
    rows = int(np.ceil(out / cols))
    pad = 1
    mosaic = np.full((rows * (kh + pad) + pad, cols * (kw + pad) + pad), np.nan, np.float32)
    fig = go.Figure()
    for f in range(out):
        r, c = divmod(f, cols)
        y0, x0 = pad + r * (kh + pad), pad + c * (kw + pad)
        tile = img[f] if inside[f] else 0.25 + 0.5 * img[f] * 0.3
        mosaic[y0:y0 + kh, x0:x0 + kw] = tile
        if inside[f]:
            fig.add_shape(type="rect", x0=x0 - 0.5, x1=x0 + kw - 0.5, y0=y0 - 0.5,
                          y1=y0 + kh - 0.5, line=dict(color=SELECTED_COLOR, width=2))
    fig.add_trace(go.Heatmap(z=mosaic, colorscale="Greys", reversescale=True, showscale=False,
                             hoverongaps=False, hoverinfo="skip"))
    fig.update_layout(title=_title(f"{layer} filters at iteration {iteration:,}",
                                   f"framed: selected, {int(np.count_nonzero(inside))} of {out}; "
                                   f"each scaled to its own range"),
                      xaxis=dict(visible=False, scaleanchor="y"),
                      yaxis=dict(visible=False, autorange="reversed"), plot_bgcolor="white",
                      height=160 + 60 * rows,
                      margin=dict(l=10, r=10, t=top_margin(subtitle=True), b=10))
    return fig


# ---- accuracy against size: the path, pruning baselines, retrained tickets --------------------

# one colour-blind-safe colour (Okabe-Ito, plus a neutral grey) and one marker per method; the
# path's finetune ticket shares the path's black (it is W* retrained)
METHOD_STYLE: dict[str, tuple[str, str]] = {
    "path": ("#000000", "circle"), "finetune": ("#000000", "circle"),
    "magnitude": ("#0072B2", "square"), "slimming": ("#E69F00", "diamond"),
    "taylor": ("#009E73", "triangle-up"), "global-magnitude": ("#CC79A7", "cross"),
    "global-magnitude-reinit": ("#CC79A7", "x"), "rewind": ("#D55E00", "star"),
    "rewind:K": ("#D55E00", "star-triangle-up"), "reinit": ("#56B4E9", "triangle-down"),
    "random-support": ("#999999", "hexagon"), "uniform": ("#F0E442", "pentagon"),
    "sgd": ("#999999", "line-ew"), "slbi-w": ("#000000", "line-ew"),
}
KIND_DASH = {"path": "solid", "oneshot": "dot", "finetuned": "solid", "reference": "dash"}
SIZE_AXES = {"params": "parameters kept (compact network, log scale)",
             "flops": "multiply-accumulates per input (compact network, log scale)"}


def log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Tick values 1, 2, 5 x 10^k covering [lo, hi] (both ends labelled: the log axis's own
    ticks can leave the smallest points unlabelled), with SI text (20k, 1.5M)."""
    if not (lo > 0 and hi >= lo):
        return [], []
    vals = []
    k = int(np.floor(np.log10(lo)))
    while 10.0 ** k <= hi * 10:
        for m in (1, 2, 5):
            vals.append(m * 10.0 ** k)
        k += 1
    below = [v for v in vals if v <= lo]
    above = [v for v in vals if v >= hi]
    inside = [v for v in vals if lo < v < hi]
    vals = ([below[-1]] if below else []) + inside + ([above[0]] if above else [])

    def si(v: float) -> str:
        for d, s in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if v >= d:
                return f"{v / d:g}{s}"
        return f"{v:g}"
    return vals, [si(v) for v in vals]


def _count(v: int | None) -> str:
    return "?" if v is None else f"{int(v):,}"


def size_accuracy(points: Sequence[Mapping], x: str = "params", selected: int | None = None,
                  stop: int | None = None, y_floor: float | None = None) -> go.Figure:
    """Test accuracy against the size of the network (``x``: "params" or "flops"), from the
    rows of :func:`pathviz.tickets.points.chart_points`.

    Lines: the path's compact W* and each baseline one-shot (dotted) and finetuned (solid).
    Points with error bars (SE over seeds): retrained tickets and baselines. Dashed horizontal
    lines: the full SGD and SLBI networks. The ``selected`` iteration and the suggested
    ``stop`` are rings on the path's line. Accuracies are drawn in percent; ``y_floor`` (a
    percentage) starts the accuracy axis there, to zoom on the top of the chart.

    Retrained variants of one support share a size, so each retrained series is drawn a little
    to the side (a fixed 1.5% step on the log axis); the hover and ``customdata[1]``/``[2]``
    give the true parameter and FLOP counts, and the CSV holds them.
    """
    if x not in SIZE_AXES:
        raise ValueError(f"x must be params or flops, got {x!r}")
    # a log axis cannot show a size of 0 (a run's first snapshots can keep nothing)
    pts = [p for p in points if p.get("acc") is not None
           and (p["kind"] == "reference" or (p.get(x) is not None and float(p[x]) > 0))]
    fig = go.Figure()
    sizes = [float(p[x]) for p in pts if p["kind"] != "reference"]
    lo, hi = (min(sizes), max(sizes)) if sizes else (1.0, 10.0)
    # the axis runs from the tick at or below the smallest size to the one at or above the
    # largest, so both ends carry a label
    tickvals, ticktext = log_ticks(lo, hi)
    refs_x = [tickvals[0], tickvals[-1]]
    series: dict[str, list[Mapping]] = {}
    for p in pts:
        series.setdefault(p["series"], []).append(p)
    order = {"path": 0, "finetuned": 1, "oneshot": 2, "retrained": 3, "reference": 4}
    retrained = sorted(n for n, ps in series.items() if ps[0]["kind"] == "retrained")
    dodge = {n: 1.0 + 0.015 * (k - (len(retrained) - 1) / 2) for k, n in enumerate(retrained)}
    for name, ps in sorted(series.items(), key=lambda kv: (order[kv[1][0]["kind"]], kv[0])):
        kind, method = ps[0]["kind"], ps[0]["method"]
        color, symbol = METHOD_STYLE.get(method, ("#7f7f7f", "circle"))
        ps = sorted(ps, key=lambda p: (float(p[x]), p["iteration"] or 0))
        custom = [[p["iteration"] if p["iteration"] is not None else -1, p["params"],
                   p["flops"] if p["flops"] is not None else -1, p["seeds"] or 1,
                   100 * p["se"] if p["se"] is not None else 0.0] for p in ps]
        hover = (f"{name}<br>iteration %{{customdata[0]:,}}<br>%{{customdata[1]:,}} params, "
                 f"%{{customdata[2]:,}} MACs<br>test accuracy %{{y:.2f}}%")
        if kind == "reference":
            p = ps[0]
            fig.add_trace(go.Scatter(
                x=refs_x, y=[100 * p["acc"]] * 2, mode="lines", name=name,
                line=dict(color=color, dash="dash" if method == "sgd" else "dot", width=2),
                hovertemplate=f"{name}<br>{_count(p['params'])} params<br>test accuracy "
                              "%{y:.2f}%<extra></extra>"))
        elif kind == "retrained":
            fig.add_trace(go.Scatter(
                x=[float(p[x]) * dodge[name] for p in ps], y=[100 * p["acc"] for p in ps],
                mode="markers", name=name, customdata=custom,
                marker=dict(size=12, color=color, symbol=symbol,
                            line=dict(width=1, color="#333333")),
                error_y=dict(type="data", array=[100 * (p["se"] or 0.0) for p in ps],
                             visible=True, thickness=1.5),
                hovertemplate=hover + " ± %{customdata[4]:.2f} (SE, %{customdata[3]} seeds)"
                                      "<extra></extra>"))
        else:
            fig.add_trace(go.Scatter(
                x=[float(p[x]) for p in ps], y=[100 * p["acc"] for p in ps],
                mode="lines+markers", name=name, customdata=custom,
                line=dict(color=color, dash=KIND_DASH[kind], width=3 if kind == "path" else 1.5),
                marker=dict(size=6 if kind == "path" else 5, color=color, symbol=symbol),
                opacity=1.0 if kind != "oneshot" else 0.75,
                hovertemplate=hover + "<extra></extra>"))
    path = {p["iteration"]: p for p in pts if p["kind"] == "path"}
    for it, label, symbol in ((stop, "suggested stop", "diamond-open"),
                              (selected, "selected iteration", "circle-open")):
        p = path.get(it) if it is not None else None
        if p is None:
            continue
        fig.add_trace(go.Scatter(
            x=[float(p[x])], y=[100 * p["acc"]], mode="markers",
            name=f"{label}: W* at {it:,}",
            marker=dict(size=20, color=STOP_COLOR if label == "suggested stop" else
                        SELECTED_COLOR, symbol=symbol, line=dict(width=3)),
            hovertemplate=f"{label}: iteration {it:,}<br>%{{x:,}}<br>%{{y:.2f}}%<extra></extra>"))
    accs = [100 * p["acc"] for p in pts]
    bottom = max(0.0, min(accs) - 2) if accs else 0.0
    if y_floor is not None:
        bottom = float(y_floor)
    fig.update_layout(
        title=_title("Test accuracy against size: the path, pruning baselines, retrained "
                     "networks"),
        xaxis=dict(title=SIZE_AXES[x], type="log", tickvals=tickvals, ticktext=ticktext,
                   range=[float(np.log10(refs_x[0])), float(np.log10(refs_x[1]))]),
        yaxis=dict(title="test accuracy (%)", range=[bottom, 100.5]),
        # the plot keeps about 420 px; the legend below it takes one line per trace
        height=420 + 20 * len(fig.data), margin=dict(l=10, r=10, t=top_margin(), b=40),
        legend=dict(orientation="h", y=-0.18, yanchor="top", font=dict(size=11)))
    return fig
