"""Pure functions from path arrays to plotly figures (numpy and plotly only, no torch).

Every figure that can select an iteration carries it in ``customdata`` so that a click on a point
(``st.plotly_chart(..., on_select="rerun")``) gives the iteration back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["overview_heatmap", "layer_heatmap", "path_plot", "metrics_plot", "tradeoff_plot",
           "filters_image", "compare_plot", "decimate"]

OUTSIDE_COLOR = "#d6d6d6"  # filters outside the support: neutral grey, not a colour of the scale
SELECTED_COLOR = "#d62728"
INSIDE_COLOR = "#1f77b4"
SCALE = "Viridis"
MAX_PATH_POINTS = 100_000
MAX_HEATMAP_COLUMNS = 800


def decimate(n: int, limit: int) -> np.ndarray:
    """Indices of at most ``limit`` of ``n`` evenly spread items, first and last included."""
    if n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


def _vline(fig: go.Figure, x: float, **kw) -> None:
    fig.add_vline(x=x, line_color=SELECTED_COLOR, line_width=2, line_dash="dot", **kw)


def overview_heatmap(layer_names: Sequence[str], gamma_norms: Mapping[str, np.ndarray],
                     columns: int = 128, title: str = "") -> go.Figure:
    """Layers x filters (normalised index 0..1), coloured by ||Gamma_g|| / the layer's maximum.

    Each layer's G filters are spread over ``columns`` cells (a filter covers G/columns of the
    row); cells of filters outside the support are left empty and show the neutral background.
    """
    z = np.full((len(layer_names), columns), np.nan, dtype=np.float32)
    text = []
    for r, name in enumerate(layer_names):
        gn = np.asarray(gamma_norms[name], dtype=np.float32)
        g = len(gn)
        idx = np.arange(columns) * g // columns  # the filter each cell shows
        vals = gn[idx]
        top = vals.max() if vals.size and vals.max() > 0 else 1.0
        z[r, :] = np.where(vals > 0, vals / top, np.nan)
        text.append([f"{name}: filter {int(i)} of {g}" for i in idx])
    fig = go.Figure(go.Heatmap(
        z=z, x=np.linspace(0, 1, columns, dtype=np.float32), y=list(layer_names),
        colorscale=SCALE, zmin=0, zmax=1, text=text, hoverongaps=False,
        hovertemplate="%{text}<br>||Γ|| / layer max = %{z:.3f}<extra></extra>",
        colorbar=dict(title="‖Γ_g‖ / max")))
    # fixed axes: with no filter selected yet every cell is empty and plotly would lose both
    fig.update_layout(title=title or "Gamma support by layer (grey: outside the support)",
                      plot_bgcolor=OUTSIDE_COLOR, xaxis_title="filter (normalised index)",
                      xaxis=dict(range=[0, 1]),
                      # first layer on top, in the empty state too (a reversed autorange
                      # is ignored on an axis without data)
                      yaxis=dict(type="category", categoryorder="array",
                                 categoryarray=list(layer_names)[::-1]),
                      height=110 + 34 * len(layer_names),
                      margin=dict(l=10, r=10, t=40, b=40))
    return fig


def layer_heatmap(gamma_norm: np.ndarray, iterations: np.ndarray, entry: np.ndarray,
                  selected_iteration: int, layer: str = "") -> go.Figure:
    """Filters sorted by entry time (y) x iterations (x), coloured by ||Gamma_g||.

    ``gamma_norm`` is [N, G]; ``entry`` is [G] the entry snapshot index (-1: never, drawn last).
    Columns are decimated to at most MAX_HEATMAP_COLUMNS snapshots.
    """
    n, g = gamma_norm.shape
    key = np.where(entry < 0, np.iinfo(np.int64).max, entry)
    order = np.argsort(key, kind="stable")
    cols = decimate(n, MAX_HEATMAP_COLUMNS)
    z = gamma_norm[np.ix_(cols, order)].T.astype(np.float32)
    z[z <= 0] = np.nan
    fig = go.Figure(go.Heatmap(
        z=z, x=np.asarray(iterations)[cols], y=np.arange(g), customdata=order[:, None].repeat(
            len(cols), 1), colorscale=SCALE, hoverongaps=False,
        hovertemplate="iteration %{x}<br>filter %{customdata} (rank %{y})<br>||Γ|| = %{z:.4g}"
                      "<extra></extra>", colorbar=dict(title="‖Γ_g‖")))
    _vline(fig, selected_iteration)
    fig.update_layout(title=f"{layer}: filters by entry time (grey: outside the support)",
                      plot_bgcolor=OUTSIDE_COLOR, xaxis_title="iteration",
                      yaxis_title="filter, in order of entry", height=420,
                      margin=dict(l=10, r=10, t=40, b=40))
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


def path_plot(weight_norm: np.ndarray, iterations: np.ndarray, inside: np.ndarray,
              selected_iteration: int, gamma_norm: np.ndarray | None = None,
              layer: str = "") -> go.Figure:
    """||W_g|| (and optionally ||Gamma_g||, dashed) of every filter against iteration.

    Filters in the support at the selected iteration are coloured, the others grey; all paths of
    a class share one WebGL trace (NaN-separated), decimated to about MAX_PATH_POINTS points.
    """
    n, g = weight_norm.shape
    rows = decimate(n, max(2, MAX_PATH_POINTS // max(g, 1)))
    x = np.asarray(iterations, dtype=np.float32)[rows]
    fig = go.Figure()
    for mask, color, label in ((~inside, OUTSIDE_COLOR, "outside the support"),
                               (inside, INSIDE_COLOR, "in the support")):
        if not mask.any():
            continue
        xs, ys = _lines(x, weight_norm[rows][:, mask])
        fig.add_trace(go.Scattergl(x=xs, y=ys, mode="lines", line=dict(color=color, width=1),
                                   name=f"‖W_g‖, {label} ({int(mask.sum())})",
                                   hoverinfo="skip"))
        if gamma_norm is not None:
            xs, ys = _lines(x, gamma_norm[rows][:, mask])
            fig.add_trace(go.Scattergl(x=xs, y=ys, mode="lines",
                                       line=dict(color=color, width=1, dash="dash"),
                                       name=f"‖Γ_g‖, {label}", hoverinfo="skip"))
    _vline(fig, selected_iteration)
    fig.update_layout(title=f"{layer}: regularization path of every filter",
                      xaxis_title="iteration", yaxis_title="group norm", height=420,
                      legend=dict(orientation="h", y=-0.2), margin=dict(l=10, r=10, t=40, b=40))
    return fig


def metrics_plot(iterations: np.ndarray, metrics: Mapping[str, np.ndarray],
                 selected_iteration: int, suggested_iteration: int | None = None,
                 weight_iterations: np.ndarray | None = None) -> go.Figure:
    """Accuracy, loss, and sparsity / parameters kept against iteration; points are clickable.

    ``weight_iterations`` (those with saved weights, i.e. exportable) are marked with diamonds
    along the bottom of the accuracy panel.
    """
    it = np.asarray(iterations)
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=("accuracy", "loss", "sparsity and parameters kept"),
                        specs=[[{}], [{}], [{"secondary_y": True}]])

    def series(name: str, row: int, color: str, dash: str | None = None,
               secondary: bool = False) -> None:
        if name not in metrics:
            return
        y = np.asarray(metrics[name], dtype=np.float64)
        ok = np.isfinite(y)
        if not ok.any():
            return
        idx = np.flatnonzero(ok)
        idx = idx[decimate(len(idx), 4000)]
        fig.add_trace(go.Scatter(x=it[idx], y=y[idx], customdata=it[idx], name=name,
                                 mode="lines+markers", marker=dict(size=4),
                                 line=dict(color=color, dash=dash)), row=row, col=1,
                      secondary_y=secondary if row == 3 else None)

    series("train_acc", 1, "#7f7f7f", "dot")
    series("test_acc", 1, INSIDE_COLOR)
    series("test_acc_sparse", 1, "#ff7f0e")
    series("train_loss", 2, "#7f7f7f", "dot")
    series("test_loss", 2, INSIDE_COLOR)
    series("sparsity", 3, "#2ca02c")
    series("params_kept", 3, "#9467bd", secondary=True)
    if weight_iterations is not None and len(weight_iterations):
        wi = np.asarray(weight_iterations)[decimate(len(weight_iterations), 2000)]
        fig.add_trace(go.Scatter(x=wi, y=np.zeros(len(wi)), customdata=wi, mode="markers",
                                 name="weights saved (exportable)",
                                 marker=dict(symbol="diamond", size=7, color="#444")),
                      row=1, col=1)
    for row in (1, 2, 3):
        fig.add_vline(x=selected_iteration, line_color=SELECTED_COLOR, line_dash="dot",
                      row=row, col=1)
        if suggested_iteration is not None:
            fig.add_vline(x=suggested_iteration, line_color="#ff7f0e", line_dash="dash",
                          row=row, col=1)
    fig.update_layout(height=620, clickmode="event+select", margin=dict(l=10, r=10, t=40, b=40),
                      legend=dict(orientation="h", y=-0.08))
    fig.update_xaxes(title_text="iteration", row=3, col=1)
    return fig


def tradeoff_plot(params_kept: np.ndarray, test_acc: np.ndarray, iterations: np.ndarray,
                  selected_iteration: int, suggested_iteration: int | None = None) -> go.Figure:
    """Test accuracy against parameters kept, one clickable point per evaluated snapshot."""
    acc = np.asarray(test_acc, dtype=np.float64)
    ok = np.isfinite(acc)
    it = np.asarray(iterations)[ok]
    kept = np.asarray(params_kept, dtype=np.float64)[ok]
    fig = go.Figure(go.Scatter(
        x=kept, y=acc[ok], customdata=it, mode="lines+markers", name="evaluated snapshots",
        marker=dict(size=6, color=it, colorscale="Blues", showscale=True,
                    colorbar=dict(title="iteration")), line=dict(color="#c7c7c7"),
        hovertemplate="iteration %{customdata}<br>params kept %{x:,.0f}<br>"
                      "test acc %{y:.2%}<extra></extra>"))
    for iteration, color, label in ((selected_iteration, SELECTED_COLOR, "selected"),
                                    (suggested_iteration, "#ff7f0e", "suggested stop")):
        if iteration is None:
            continue
        hit = np.flatnonzero(it == iteration)
        if hit.size:
            i = hit[-1]
            fig.add_trace(go.Scatter(x=[kept[i]], y=[acc[ok][i]], customdata=[iteration],
                                     mode="markers", name=label,
                                     marker=dict(size=14, color=color, symbol="circle-open",
                                                 line=dict(width=3))))
    fig.update_layout(title="test accuracy of the sparse model against parameters kept",
                      xaxis_title="parameters kept",
                      yaxis_title="test accuracy", yaxis_tickformat=".0%", height=420,
                      clickmode="event+select", margin=dict(l=10, r=10, t=40, b=40),
                      legend=dict(orientation="h", y=-0.2))
    return fig


def filters_image(weight: np.ndarray, inside: np.ndarray, iteration: int) -> go.Figure:
    """First-layer filters [out, in, kh, kw] as a grid of images; unselected ones are greyed out.

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
    fig.update_layout(title=f"first-layer filters at iteration {iteration} "
                            f"(framed: selected, {int(np.count_nonzero(inside))} of {out})",
                      xaxis=dict(visible=False, scaleanchor="y"),
                      yaxis=dict(visible=False, autorange="reversed"), plot_bgcolor="white",
                      height=120 + 60 * rows, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def compare_plot(series: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> go.Figure:
    """Support size (fraction of groups selected) against iteration, one line per run."""
    fig = go.Figure()
    for name, (it, frac) in series.items():
        idx = decimate(len(it), 4000)
        fig.add_trace(go.Scatter(x=np.asarray(it)[idx], y=np.asarray(frac)[idx], name=name,
                                 mode="lines"))
    fig.update_layout(title="support size against iteration", xaxis_title="iteration",
                      yaxis_title="fraction of groups selected", yaxis_tickformat=".0%",
                      height=420, margin=dict(l=10, r=10, t=40, b=40))
    return fig
