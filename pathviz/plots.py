"""Pure functions from path arrays to plotly figures (numpy and plotly only, no torch).

The heavy figures (the Layer view's heatmap and paths, the metrics plot) do not depend on the
selected iteration: they are built once per (run, snapshot count) and the page moves a marker over
them (:mod:`pathviz.ui.marker`), so scrubbing sends a few bytes instead of megabytes. Figures that
can select an iteration carry it in ``customdata`` so that a click gives it back
(``st.plotly_chart(..., on_select="rerun")``). Heatmaps are sent as uint8 levels with a colour
scale whose first level is the neutral "outside the support" grey.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["group_names", "unit_plural", "overview_heatmap", "support_path", "layer_figure",
           "metrics_plot", "tradeoff_plot",
           "filters_image", "compare_plot", "decimate", "levels", "StopMark", "METRIC_LABELS",
           "PALETTE", "size_accuracy", "log_ticks", "METHOD_STYLE"]

OUTSIDE_COLOR = "#d6d6d6"  # filters outside the support: neutral grey, not a colour of the scale
SELECTED_COLOR = "#d62728"
STOP_COLOR = "#ff7f0e"
BAND_COLOR = "rgba(255, 127, 14, 0.15)"
SCALE = "Viridis"
# all filter paths of a layer together, drawn as SVG: in a browser without GPU raster (a
# projector laptop, headless Chromium) WebGL (scattergl) cost the Layer view's first load
# twice its time (bench/app_browser.py), and 30k points are one per 4 px of a 120-filter layer
MAX_PATH_POINTS = 30_000
MAX_LINE_POINTS = 600  # per filter path: about one point per two pixels of a wide plot
MAX_HEATMAP_COLUMNS = 800
MAX_PICK_TICKS = 400  # clickable iteration ticks under the Layer view's path plot
PICK_COLOR = "#7f7f7f"
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
    import plotly.colors as pc

    viridis = pc.get_colorscale(SCALE)
    edge = 0.5 / 255
    return ([[0.0, OUTSIDE_COLOR], [edge, OUTSIDE_COLOR]]
            + [[edge + (1 - edge) * p, c] for p, c in viridis])


def _level_colorbar(top: float, title: str) -> dict:
    """A colour bar labelled in the data's units (levels 1..255 map to (0, top])."""
    fracs = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    return dict(title=dict(text=title, side="right"), tickmode="array",
                tickvals=[0] + (1 + 254 * fracs[1:]).tolist(),
                ticktext=["0 (outside)"] + [f"{top * f:.3g}" for f in fracs[1:]])


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
    bar = _level_colorbar(1.0, "‖Γ_g‖ ÷ layer's largest")
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
        colorbar=_level_colorbar(1.0, frame["colorbar"])))
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


def support_path(iterations: np.ndarray, support: Mapping[str, np.ndarray],
                 groups: Mapping[str, int], stop: StopMark | None = None) -> go.Figure:
    """The support path of a run: the share of each layer's filters in the support against
    iteration (``support`` layer -> [N] counts, ``groups`` layer -> G), and of all layers
    together (thick black), with the suggested stop dashed orange and named on its line.
    Lines are decimated to MAX_LINE_POINTS per layer; x is the iteration, so a page marker can
    point at one."""
    x, lines = support_series(iterations, support, groups)
    fig = go.Figure()
    for line in lines:
        fig.add_trace(go.Scatter(x=x, y=line["y"], mode="lines", name=line["name"],
                                 line=dict(color=line["color"], width=line["width"]),
                                 hovertemplate="iteration %{x}: %{y:.0f} %<extra>"
                                               f"{line['layer']}</extra>"))
    if stop is not None:  # named on the line itself: the legend stays one short row
        fig.add_vline(x=stop.iteration, line_color=STOP_COLOR, line_dash="dash", line_width=2,
                      annotation_text=f"{stop.label} {stop.iteration:,}",
                      annotation_position="bottom right" if stop.iteration < (x[0] + x[-1]) / 2
                      else "bottom left", annotation_font_color=STOP_COLOR)
    words = SUPPORT_PATH_WORDS
    fig.update_layout(title=_title(words["title"], words["subtitle"]),
                      xaxis=dict(title=words["xtitle"], range=[float(x[0]), float(x[-1])]
                                 if len(x) > 1 else None),
                      yaxis=dict(title=words["ytitle"], range=[0, 102],
                                 ticksuffix=" %"),
                      # the legend in a row between the subtitle and the plot: never over a
                      # line, the page's marker or the axis title
                      margin=dict(l=10, r=10, t=top_margin(subtitle=True) + 28, b=40),
                      legend=dict(orientation="h", yanchor="bottom", y=1.01, x=0))
    return fig


def _lines(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One NaN-separated polyline through the columns of y [N, K] against x [N]."""
    n, k = y.shape
    xs = np.empty((k, n + 1), dtype=np.float32)
    ys = np.empty((k, n + 1), dtype=np.float32)
    xs[:, :n] = x
    xs[:, n] = np.nan
    ys[:, :n] = y.T
    ys[:, n] = np.nan
    return xs.ravel(), ys.ravel()


def entry_bins(entry_iterations: np.ndarray, k: int = 5) -> list[tuple[np.ndarray, str]]:
    """Filters grouped by when they entered: up to ``k`` equal-width iteration bins, then never.

    ``entry_iterations`` [G] holds the entry iteration (-1: never). Returns (mask, label) pairs.
    """
    e = np.asarray(entry_iterations, dtype=np.int64)
    entered = e >= 0
    out: list[tuple[np.ndarray, str]] = []
    if entered.any():
        lo, hi = int(e[entered].min()), int(e[entered].max())
        edges = np.linspace(lo, hi + 1, min(k, hi - lo + 1) + 1)
        b = np.clip(np.searchsorted(edges, e, side="right") - 1, 0, len(edges) - 2)
        for j in range(len(edges) - 1):
            mask = entered & (b == j)
            if mask.any():
                a, z = int(e[mask].min()), int(e[mask].max())
                span = f"{a:,}" if a == z else f"{a:,}–{z:,}"
                out.append((mask, f"entered at {span} ({int(mask.sum())})"))
    if (~entered).any():
        out.append((~entered, f"never entered ({int((~entered).sum())})"))
    return out


def layer_figure(gamma_norm: np.ndarray, weight_norm: np.ndarray, iterations: np.ndarray,
                 entry: np.ndarray, layer: str = "", log_x: bool = False,
                 show_gamma: bool = False, stop: StopMark | None = None,
                 names: Sequence[str] | None = None, unit: str = "filter") -> go.Figure:
    """The Layer view: entry-order heatmap above the filter paths, on one shared iteration axis.

    ``gamma_norm`` and ``weight_norm`` are [N, G]; ``entry`` [G] the entry snapshot index (-1:
    never). Top: filters sorted by entry (y) x iterations (x), uint8 levels of ||Gamma_g||,
    columns decimated to MAX_HEATMAP_COLUMNS. Bottom: ||W_g|| of every filter (and ||Gamma_g||
    dashed with ``show_gamma``), coloured by when the filter entered, decimated to screen
    resolution. A top axis gives the number of selected groups (glmnet's df axis); a row of
    ticks at the bottom of the path panel (customdata = iteration) makes iterations clickable.
    With ``names`` ([G], e.g. "block 2 · head 3") the heatmap's hover names each row's group;
    ``unit`` is what the title calls a group.
    """
    n, g = gamma_norm.shape
    its = np.asarray(iterations)
    key = np.where(entry < 0, np.iinfo(np.int64).max, entry)
    order = np.argsort(key, kind="stable")
    cols = decimate(n, MAX_HEATMAP_COLUMNS)
    top = float(gamma_norm.max()) if gamma_norm.size and gamma_norm.max() > 0 else 1.0
    z = levels(gamma_norm[np.ix_(cols, order)].T, top)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        row_heights=[0.5, 0.5],
                        subplot_titles=("", f"{layer}: regularization path of every {unit}"))
    x_cols = its[cols].astype(np.float32)
    # named groups: the rows are categories named in entry order, so the hover says which
    # group a row is (one name per row, not one per cell)
    y_rows = np.arange(g, dtype=np.int32) if names is None else [str(names[i]) for i in order]
    fig.add_trace(go.Heatmap(
        z=z, x=x_cols, y=y_rows, colorscale=level_scale(), zmin=0,
        zmax=255, colorbar=dict(**_level_colorbar(top, "‖Γ_g‖"), len=0.45, y=0.78),
        hovertemplate="iteration %{x}<br>" + ("entry rank %{y}" if names is None else "%{y}")
        + "<br>level %{z} of 255<extra></extra>",
        name="‖Γ_g‖", showlegend=False), row=1, col=1)
    per_line = max(20, min(MAX_LINE_POINTS, MAX_PATH_POINTS // max(g, 1)))
    rows = decimate(n, per_line)
    x = its[rows].astype(np.float32)
    entry_it = np.where(entry >= 0, its[np.clip(entry, 0, n - 1)], -1)
    bins = entry_bins(entry_it)
    import plotly.colors as pc

    entered_bins = [b for b in bins if not b[1].startswith("never")]
    colors = pc.sample_colorscale(SCALE, [i / max(len(entered_bins) - 1, 1) * 0.9
                                          for i in range(len(entered_bins))])
    color_of = {label: c for (_, label), c in zip(entered_bins, colors)}
    for mask, label in bins:
        color = color_of.get(label, OUTSIDE_COLOR)
        xs, ys = _lines(x, weight_norm[rows][:, mask])
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=color, width=1),
                                 name=f"‖W_g‖, {label}", hoverinfo="skip",
                                 legendgroup=label), row=2, col=1)
        if show_gamma:
            xs, ys = _lines(x, gamma_norm[rows][:, mask])
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines",
                                     line=dict(color=color, width=1, dash="dash"),
                                     name=f"‖Γ_g‖, {label}", hoverinfo="skip",
                                     legendgroup=label), row=2, col=1)
    # a row of ticks along the bottom of the path panel: a click on one picks its iteration
    # (Streamlit reports no selection for a heatmap cell or a line without hover)
    picks = cols[decimate(len(cols), MAX_PICK_TICKS)]
    fig.add_trace(go.Scatter(x=its[picks].astype(np.float32), y=np.zeros(len(picks), np.float32),
                             customdata=its[picks].astype(np.int32), mode="markers",
                             marker=dict(symbol="line-ns-open", size=9, color=PICK_COLOR,
                                         line=dict(width=1, color=PICK_COLOR)),
                             name="click a tick: select its iteration",
                             hovertemplate="iteration %{customdata}<extra>click to select</extra>"),
                  row=2, col=1)
    support = (gamma_norm > 0).sum(axis=1)
    ticks = cols[decimate(len(cols), 8)]
    if log_x:
        ticks = ticks[its[ticks] > 0]
    # the df axis: groups selected, on top, matched to the shared iteration axis
    # (invisible: NaN on a numeric axis; on the named rows' category axis a NaN would be a
    # category of its own, so it sits on the first row, transparent)
    fig.add_trace(go.Scatter(x=its[ticks].astype(np.float32),
                             y=np.full(len(ticks), np.nan) if names is None
                             else [y_rows[0]] * len(ticks),
                             xaxis="x3", yaxis="y", showlegend=False, hoverinfo="skip",
                             mode="markers", marker=dict(opacity=0) if names is not None
                             else None))
    axis_type = "log" if log_x else "linear"
    fig.update_layout(xaxis3=dict(overlaying="x", side="top", matches="x", type=axis_type,
                                  tickmode="array", tickvals=its[ticks].tolist(),
                                  ticktext=[str(int(support[t])) for t in ticks],
                                  title=dict(text=f"groups selected (of {g})", standoff=2)))
    _mark_stop(fig, stop, rows=(1, 2))
    fig.update_xaxes(type=axis_type)
    fig.update_xaxes(title_text="iteration" + (" (log scale)" if log_x else ""), row=2, col=1)
    fig.update_yaxes(title_text=f"{unit}, in order of entry", row=1, col=1)
    if names is not None:
        fig.update_yaxes(type="category", showticklabels=g <= 32, row=1, col=1)
    fig.update_yaxes(title_text="group norm", row=2, col=1)
    # the top axis (groups selected) takes about 50 px above the heatmap, under the title
    fig.update_layout(title=_title(f"{layer}: {unit}s by entry time",
                                   "grey: outside the support"),
                      height=800, margin=dict(l=10, r=10, t=top_margin(subtitle=True) + 50, b=40),
                      legend=dict(orientation="h", y=-0.08, title_text="path colour: "))
    return fig


def _mark_stop(fig: go.Figure, stop: StopMark | None, rows: Sequence[int]) -> None:
    """The stop: a dashed orange line on each of ``rows``, with one legend entry."""
    if stop is None:
        return
    for row in rows:
        fig.add_vline(x=stop.iteration, line_color=STOP_COLOR, line_dash="dash", line_width=2,
                      row=row, col=1)
    # a legend entry for the lines (shapes have no legend of their own)
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=f"{stop.label} "
                             f"(iteration {stop.iteration:,})",
                             line=dict(color=STOP_COLOR, dash="dash", width=2)),
                  row=rows[0], col=1)


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


def metrics_plot(iterations: np.ndarray, metrics: Mapping[str, np.ndarray],
                 stop: StopMark | None = None, weight_iterations: np.ndarray | None = None,
                 log_x: bool = False) -> go.Figure:
    """Accuracy, the stop's band (zoomed), loss, sparsity / parameters kept, and the iterations
    with saved weights, against iteration on a shared x-axis.

    Every line has a legend entry; points are clickable (customdata = iteration). With a stop
    and the compact subnetwork's validation accuracy, a panel zoomed to the 1-SE band shows
    which evaluated iterations are in the 1-SE set (orange points), not a span. Iterations with
    saved weights (exportable) are ticks in a strip of their own at the bottom, so they do not
    pose as data; the ones in the 1-SE set (the stop's candidates) are orange. Axes start at
    meaningful values: accuracy at its lowest value rounded down to 10 %, loss, sparsity and
    parameters at 0. Only the metrics present are drawn; the caller says which are missing.
    """
    it = np.asarray(iterations)
    members = np.asarray(stop.members if stop is not None else (), dtype=np.int64)
    zoom = stop is not None and "val_acc_sparse" in metrics and bool(
        np.isfinite(np.asarray(metrics["val_acc_sparse"], np.float64)).any())
    saves = (np.asarray(weight_iterations, dtype=np.int64) if weight_iterations is not None
             else np.zeros(0, np.int64))
    panels = [("acc", "accuracy", 0.32)]
    if zoom:
        panels.append(("zoom", "near the best, zoomed: the 1-SE band and set", 0.2))
    panels += [("loss", "loss", 0.18), ("sparse", "sparsity and parameters kept", 0.22)]
    if len(saves):
        panels.append(("saves", "iterations with saved weights (exportable)", 0.05))
    row = {key: r + 1 for r, (key, _, _) in enumerate(panels)}
    heights = np.array([h for _, _, h in panels])
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.05,
                        subplot_titles=[t for _, t, _ in panels],
                        row_heights=(heights / heights.sum()).tolist(),
                        specs=[[{"secondary_y": key == "sparse"}] for key, _, _ in panels])

    def series(name: str, key: str, color: str, dash: str | None = None,
               secondary: bool = False, show: bool = True, size: int = 3) -> None:
        if name not in metrics:
            return
        y = np.asarray(metrics[name], dtype=np.float64)
        ok = np.flatnonzero(np.isfinite(y))
        if ok.size == 0:
            return
        idx = ok[decimate(len(ok), MAX_LINE_POINTS)]  # about one point per two pixels
        label = METRIC_LABELS.get(name, name)
        fig.add_trace(go.Scatter(x=it[idx], y=y[idx].astype(np.float32), customdata=it[idx],
                                 name=label, mode="lines+markers", legendgroup=name,
                                 showlegend=show, marker=dict(size=size),
                                 line=dict(color=color, dash=dash, width=1.5),
                                 hovertemplate="iteration %{customdata}<br>%{y:.4g}"
                                               "<extra>" + label + "</extra>"),
                      row=row[key], col=1, secondary_y=secondary if key == "sparse" else None)

    acc_names = ("train_acc", "val_acc", "test_acc", "val_acc_sparse", "test_acc_sparse")
    series("train_acc", "acc", "#7f7f7f", "dot")
    series("val_acc", "acc", "#56B4E9")
    series("test_acc", "acc", "#0072B2")
    series("val_acc_sparse", "acc", "#E69F00")
    series("test_acc_sparse", "acc", "#D55E00")
    series("train_loss", "loss", "#7f7f7f", "dot")
    series("val_loss", "loss", "#56B4E9")
    series("test_loss", "loss", "#0072B2")
    series("sparsity", "sparse", "#009E73")
    series("params_kept", "sparse", "#CC79A7", secondary=True)
    if zoom:
        assert stop is not None
        series("val_acc_sparse", "zoom", "#E69F00", show=False, size=5)
        y = np.asarray(metrics["val_acc_sparse"], dtype=np.float64)
        inside = np.flatnonzero(np.isin(it, members) & np.isfinite(y))
        fig.add_trace(go.Scatter(
            x=it[inside], y=y[inside].astype(np.float32), customdata=it[inside],
            mode="markers", name=f"within 1 SE of the best: the 1-SE set ({len(inside)} "
                                 f"evaluated iterations)",
            marker=dict(size=8, color=STOP_COLOR, line=dict(width=1, color="#7f3f00")),
            hovertemplate="iteration %{customdata}<br>%{y:.2%}<extra>in the 1-SE set</extra>"),
            row=row["zoom"], col=1)
        fig.add_hrect(y0=stop.band[0], y1=stop.band[1], fillcolor=BAND_COLOR, line_width=0,
                      layer="below", row=row["zoom"], col=1)
        fig.add_hline(y=stop.band[0], line_color=STOP_COLOR, line_width=1, line_dash="dot",
                      row=row["zoom"], col=1)
        fig.update_yaxes(range=list(band_range(stop)), tickformat=".1%",
                         title_text="val. acc.", row=row["zoom"], col=1)
    if len(saves):
        wi = saves[decimate(len(saves), 1000)]
        for picked, name, color in ((~np.isin(wi, members), "weights saved here (exportable)",
                                     "#444444"),
                                    (np.isin(wi, members), "weights saved, in the 1-SE set "
                                                           "(the stop's candidates)", STOP_COLOR)):
            if not picked.any():
                continue
            x = wi[picked]
            fig.add_trace(go.Scatter(x=x, y=np.full(len(x), 0.5, np.float32), customdata=x,
                                     mode="markers", name=name,
                                     marker=dict(symbol="line-ns-open", size=14, color=color,
                                                 line=dict(width=2, color=color)),
                                     hovertemplate="iteration %{customdata}: weights saved"
                                                   "<extra></extra>"), row=row["saves"], col=1)
        fig.update_yaxes(range=[0, 1], showticklabels=False, showgrid=False, zeroline=False,
                         fixedrange=True, row=row["saves"], col=1)
    _mark_stop(fig, stop, rows=list(row.values()))
    axis_type = "log" if log_x else "linear"
    fig.update_xaxes(type=axis_type)
    fig.update_xaxes(title_text="iteration" + (" (log scale)" if log_x else ""),
                     row=len(panels), col=1)
    floor = accuracy_floor([metrics[k] for k in acc_names if k in metrics])
    fig.update_yaxes(title_text="accuracy", tickformat=".0%", range=[floor, 1.0 + 0.02 *
                                                                     (1.0 - floor)],
                     row=row["acc"], col=1)
    fig.update_yaxes(title_text="loss", rangemode="tozero", row=row["loss"], col=1)
    fig.update_yaxes(title_text="fraction outside", tickformat=".0%", range=[0, 1.02],
                     row=row["sparse"], col=1, secondary_y=False)
    kept = np.asarray(metrics.get("params_kept", np.zeros(0)), np.float64)
    kept = kept[np.isfinite(kept)]
    top = float(kept.max()) if kept.size and kept.max() > 0 else 1.0
    # from 0, with plotly's own round ticks (left to itself, the secondary axis copies the
    # primary's tick positions and labels them 1.31711, 15.8283k, ...)
    fig.update_yaxes(title_text="parameters kept", range=[0, top * 1.05], tickmode="auto",
                     nticks=5, tickformat="~s", showgrid=False, row=row["sparse"], col=1,
                     secondary_y=True)
    height = 260 + 140 * len(panels)
    # the legend sits at the figure's bottom edge (container coordinates: a fixed 12 px above
    # it) and plotly grows the bottom margin to hold it, so however many rows it wraps into
    # at a narrow width it stays below the "iteration" axis title; placed under the plot in
    # plot coordinates instead, it climbed into the title when it wrapped (the plot shrinks)
    fig.update_layout(height=height, clickmode="event+select",
                      margin=dict(l=10, r=10, t=top_margin(title=False) + 30, b=40),
                      legend=dict(orientation="h", yref="container", y=12 / height,
                                  yanchor="bottom"))
    return fig


def tradeoff_plot(params_kept: np.ndarray, acc: np.ndarray, iterations: np.ndarray,
                  stop: StopMark | None = None, acc_label: str = "validation accuracy, "
                  "compact subnetwork") -> go.Figure:
    """Accuracy against parameters kept, one clickable point per evaluated snapshot.

    The selected iteration is drawn by the page's marker; the suggested stop is a ring here.
    """
    a = np.asarray(acc, dtype=np.float64)
    kept = np.asarray(params_kept, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(kept)
    it = np.asarray(iterations)[ok]
    kept, a = kept[ok], a[ok]
    fig = go.Figure(go.Scatter(
        x=kept, y=a.astype(np.float32), customdata=it, mode="lines+markers",
        name="evaluated snapshots (colour: iteration)",
        marker=dict(size=6, color=it, colorscale="Blues", showscale=True,
                    colorbar=dict(title="iteration")), line=dict(color="#c7c7c7"),
        hovertemplate="iteration %{customdata}<br>params kept %{x:,.0f}<br>"
                      f"{acc_label} " "%{y:.2%}<extra></extra>"))
    if stop is not None:
        hit = np.flatnonzero(it == stop.iteration)
        if hit.size:
            i = hit[-1]
            fig.add_trace(go.Scatter(x=[kept[i]], y=[a[i]], customdata=[stop.iteration],
                                     mode="markers", name=f"{stop.label} (iteration "
                                                          f"{stop.iteration:,})",
                                     marker=dict(size=16, color=STOP_COLOR, symbol="circle-open",
                                                 line=dict(width=3))))
        inside = np.isin(it, np.asarray(stop.members, dtype=np.int64))
        if inside.any():
            fig.add_trace(go.Scatter(x=kept[inside], y=a[inside].astype(np.float32),
                                     customdata=it[inside], mode="markers",
                                     name=f"within 1 SE of the best ({int(inside.sum())} "
                                          f"evaluated iterations)",
                                     marker=dict(size=9, color=STOP_COLOR, opacity=0.8),
                                     hovertemplate="iteration %{customdata}<br>params kept "
                                                   "%{x:,.0f}<br>%{y:.2%}<extra>in the 1-SE "
                                                   "set</extra>"))
        fig.add_hrect(y0=stop.band[0], y1=stop.band[1], fillcolor=BAND_COLOR, line_width=0,
                      layer="below")
    floor = accuracy_floor([a])
    fig.update_layout(title=_title(f"{acc_label} against parameters kept"),
                      xaxis=dict(title="parameters kept (compact subnetwork)",
                                 rangemode="tozero", tickformat="~s"),
                      yaxis=dict(title=acc_label, tickformat=".0%",
                                 range=[floor, 1.0 + 0.02 * (1.0 - floor)]), height=420,
                      clickmode="event+select", margin=dict(l=10, r=10, t=top_margin(), b=40),
                      legend=dict(orientation="h", y=-0.2))
    return fig


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


def compare_plot(series: Mapping[str, tuple[np.ndarray, np.ndarray]],
                 log_x: bool = False) -> go.Figure:
    """Support size (fraction of groups selected) against iteration, one line per run.

    Runs get distinct colours from a qualitative (colour-blind safe) palette and distinct dashes
    after the eighth; the legend names each run with its ν, λ and κ (the caller's keys).
    """
    fig = go.Figure()
    dashes = ["solid", "dash", "dot", "dashdot"]
    for k, (name, (it, frac)) in enumerate(series.items()):
        idx = decimate(len(it), 4000)
        fig.add_trace(go.Scatter(x=np.asarray(it)[idx], y=np.asarray(frac, np.float32)[idx],
                                 name=name, mode="lines",
                                 line=dict(color=PALETTE[k % len(PALETTE)], width=2.5,
                                           dash=dashes[(k // len(PALETTE)) % len(dashes)])))
    fig.update_layout(title=_title("support size against iteration"), xaxis_title="iteration"
                      + (" (log scale)" if log_x else ""), xaxis_type="log" if log_x else "linear",
                      yaxis_title="fraction of groups selected", yaxis_tickformat=".0%",
                      yaxis_range=[0, 1.02], height=480,
                      margin=dict(l=10, r=10, t=top_margin(), b=40),
                      legend=dict(orientation="h", y=-0.25, title_text="run (ν, λ, κ): "))
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
