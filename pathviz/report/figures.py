"""Figures for a paper: the support path, the Overview heatmap at one iteration and the
accuracy-vs-size chart, as SVG and 300 dpi PNG, in the app's colours and words.

Drawn with matplotlib's object API (``matplotlib.figure.Figure``, no pyplot and no global
state): it writes vector SVG and PNG at any dpi without a browser (plotly's image export needs
kaleido and a Chromium of its own), and it is the plotting library journals' own tooling
expects. Text is stored as glyph outlines, so a figure looks the same on every machine and
holds nothing a viewer could run or follow.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from pathviz import plots
from pathviz.ui.context import RunView
from pathviz.ui.data import load_snapshot, load_support
from pathviz.ui.player import level_rows

DPI = 300
NAMES = ("path", "overview", "size")  # the figures, each written as NAME.svg and NAME.png
_MARKERS = {"circle": "o", "square": "s", "diamond": "D", "triangle-up": "^", "cross": "P",
            "x": "X", "star": "*", "star-triangle-up": "^", "triangle-down": "v",
            "hexagon": "h", "pentagon": "p", "line-ew": "_"}
_DASH = {"solid": "-", "dot": ":", "dash": "--"}


def level_cmap() -> ListedColormap:
    """The app's heatmap colours as 256 levels: 0 grey (outside the support), 1..255 Viridis
    (:func:`pathviz.plots.level_scale`, interpolated as plotly and the page do)."""
    scale = plots.level_scale()

    def rgb(c: str) -> np.ndarray:
        if c.startswith("#"):
            return np.array([int(c[k:k + 2], 16) for k in (1, 3, 5)], float)
        return np.array([float(v) for v in c[c.index("(") + 1:-1].split(",")[:3]])

    stops = [(float(f), rgb(c)) for f, c in scale]
    out = np.zeros((256, 3))
    for lv in range(256):
        f = lv / 255
        j = 0
        while j < len(stops) - 2 and stops[j + 1][0] < f:
            j += 1
        (f0, c0), (f1, c1) = stops[j], stops[j + 1]
        t = min(max((f - f0) / (f1 - f0), 0.0), 1.0) if f1 > f0 else 0.0
        out[lv] = np.round(c0 + (c1 - c0) * t)
    return ListedColormap(out / 255.0, name="pathviz_levels")


def path_figure(view: RunView) -> Figure:
    """The support path: % of each layer's filters in the support against iteration, all
    layers together in black, the suggested stop dashed orange."""
    layers = view.data["layers"]
    support = load_support(view.path, view.ident, view.n)
    x, lines = plots.support_series(np.asarray(view.iterations)[: view.n],
                                    {la["name"]: support[la["name"]] for la in layers},
                                    {la["name"]: int(la["groups"]) for la in layers})
    fig = Figure(figsize=(7.0, 4.2))
    ax = fig.add_subplot()
    for ln in lines:
        ax.plot(x, ln["y"], color=ln["color"], lw=ln["width"] * 0.6, label=ln["name"])
    stop = view.stop
    if stop is not None:
        ax.axvline(stop.iteration, color=plots.STOP_COLOR, ls="--", lw=1.5,
                   label=f"suggested stop {stop.iteration:,}")
    w = plots.SUPPORT_PATH_WORDS
    ax.set(title=f"{w['title']}: {w['subtitle']}", xlabel=w["xtitle"], ylabel=w["ytitle"],
           ylim=(0, 102))
    if len(x) > 1:
        ax.set_xlim(float(x[0]), float(x[-1]))
    ax.grid(color="#ececec")
    ax.legend(fontsize=8, loc="lower right", frameon=False)
    fig.tight_layout()
    return fig


def overview_figure(view: RunView, index: int) -> Figure:
    """The Overview heatmap at snapshot ``index``: one row per layer, its groups in position
    order across [0, 1], coloured as the app colours them (each layer scaled by its largest
    norm, :func:`pathviz.ui.player.level_rows`), with the app's words around the cells."""
    layers = view.data["layers"]
    snap = load_snapshot(view.path, view.ident, index)
    frame = plots.heatmap_frame([int(la["groups"]) for la in layers])
    fig = Figure(figsize=(7.0, 1.6 + 0.4 * len(layers)))
    ax = fig.add_subplot()
    cmap = level_cmap()
    im = None
    for k, la in enumerate(layers):
        lv = level_rows(snap[la["name"]]["gamma_norm"][None, :])
        edges = np.linspace(0.0, 1.0, lv.shape[1] + 1)
        im = ax.pcolormesh(edges, [k - 0.5, k + 0.5], lv.astype(float), cmap=cmap, vmin=0,
                           vmax=255, shading="flat", rasterized=lv.shape[1] > 256)
    ax.set_ylim(len(layers) - 0.5, -0.5)  # the first layer on top, as in the app
    ax.set_xlim(0, 1)
    ax.set_yticks(range(len(layers)), [str(la["name"]) for la in layers])
    ax.set(xlabel=frame["xtitle"], ylabel="layer")
    it = int(view.iterations[index])
    ax.set_title(f"Gamma support by layer at iteration {it:,}\n{frame['subtitle']}",
                 fontsize=9)
    if im is not None:
        bar = fig.colorbar(im, ax=ax, ticks=[t[0] for t in frame["ticks"]])
        bar.ax.set_yticklabels([t[1] for t in frame["ticks"]])
        bar.set_label(frame["colorbar"])
    fig.tight_layout()
    return fig


def size_figure(points: list[dict[str, Any]], stop: int | None) -> Figure | None:
    """Test accuracy against parameters kept: the path's compact W*, each baseline one-shot
    (dotted) and finetuned (solid), retrained tickets (mean ± SE), the full networks (dashed),
    in the app's per-method colours and markers. None when no point has a size."""
    pts = [p for p in points if p.get("acc") is not None
           and (p["kind"] == "reference" or (p.get("params") or 0) > 0)]
    sizes = [float(p["params"]) for p in pts if p["kind"] != "reference"]
    if not sizes:
        return None
    series: dict[str, list[dict[str, Any]]] = {}
    for p in pts:
        series.setdefault(p["series"], []).append(p)
    fig = Figure(figsize=(7.0, 4.6))
    ax = fig.add_subplot()
    ax.set_xscale("log")
    ticks, labels = plots.log_ticks(min(sizes), max(sizes))
    for name, ps in sorted(series.items()):
        kind, method = ps[0]["kind"], ps[0]["method"]
        color, symbol = plots.METHOD_STYLE.get(method, ("#7f7f7f", "circle"))
        marker = _MARKERS.get(symbol, "o")
        ps = sorted(ps, key=lambda p: float(p["params"] or 0))
        if kind == "reference":
            ax.axhline(100 * ps[0]["acc"], color=color, ls="--" if method == "sgd" else ":",
                       lw=1.5, label=name)
        elif kind == "retrained":
            ax.errorbar([float(p["params"]) for p in ps], [100 * p["acc"] for p in ps],
                        yerr=[100 * (p["se"] or 0.0) for p in ps], fmt=marker, color=color,
                        mec="#333333", ms=7, capsize=3, label=name)
        else:
            ax.plot([float(p["params"]) for p in ps], [100 * p["acc"] for p in ps],
                    ls=_DASH[plots.KIND_DASH[kind]], marker=marker, color=color,
                    lw=2 if kind == "path" else 1.2, ms=4, label=name,
                    alpha=1.0 if kind != "oneshot" else 0.75)
    at = [p for p in pts if p["kind"] == "path" and p["iteration"] == stop]
    if at:
        ax.plot([float(at[0]["params"])], [100 * at[0]["acc"]], "D", mfc="none",
                mec=plots.STOP_COLOR, mew=2, ms=12, label=f"suggested stop: W* at {stop:,}")
    ax.set_xticks(ticks, labels)
    ax.set_xlim(ticks[0], ticks[-1])
    ax.set(xlabel=plots.SIZE_AXES["params"], ylabel="test accuracy (%)",
           title="Test accuracy against size")
    ax.grid(color="#ececec")
    ax.legend(fontsize=7, loc="lower right", frameon=False)
    fig.tight_layout()
    return fig


def svg_text(fig: Figure) -> str:
    """The figure as an ``<svg>`` element to put inside a page (no XML prolog, no date)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg"):]


def write(fig: Figure, out: Path, name: str) -> list[Path]:
    """``name``.svg and ``name``.png (300 dpi) in folder ``out``."""
    files = [out / f"{name}.svg", out / f"{name}.png"]
    fig.savefig(files[0], format="svg", metadata={"Date": None})
    fig.savefig(files[1], format="png", dpi=DPI)
    return files
