"""The browser-side player: scrubbing and play without a server round trip per frame.

The path's data for the current view goes to the browser once per page session, compactly
(base64 arrays in the component's JSON): iterations, epochs and filters selected per snapshot,
the saved-weight iterations, the W* evaluations, and for views with the Overview heatmap the
uint8 colour levels of every snapshot (every ``stride``-th above :data:`BUDGET` bytes, the
stride a power of two, refined to the full rows within :data:`REFINE` snapshots of a paused
position). A live run sends only its new rows. The page's script (the modules of
``pathviz/ui/js/``, joined by :mod:`pathviz.ui.jsbundle`) then steps, plays, loops and redraws
in the page (heatmap, titles, the line under the player, the presentation status line, the
Layer caption, the iteration markers: each computed there only) and tells the server the
position when the user pauses (debounced by
:data:`DEBOUNCE_MS`), which then updates what needs it: tables, Export, the URL.

The server's own picker (:mod:`pathviz.ui.scrub`) stays on the page as the fallback and the
state the server keeps; the player hides it once its script runs, and a server-side move (a
link, Back/Forward, Jump, a chart click, the *Go to iteration* box, Follow live) reaches the
player through a sequence number.
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

from pathviz import plots
from pathviz.analysis import W_STAR_METRICS
from pathviz.store import PathReader
from pathviz.ui import jsbundle
from pathviz.ui.context import RunView
from pathviz.ui.data import Ident, load_layer, load_support

BUDGET = 3_000_000  # bytes of colour levels shipped for a view before decimating snapshots
REFINE = 32  # snapshots each side of a paused position sent at full resolution
DEBOUNCE_MS = 300  # the server hears of a position this long after the last step
KEY = "pathviz_player"

_component = None


@dataclass(frozen=True)
class PlayerSpec:
    """What the player redraws on a view.

    ``heat``: the Overview heatmap's chart key, its title with ``{it}`` for the iteration, and
    the filter order per layer (None: position order); ``status_key``: the presentation
    status line's container key; ``layer``: the Layer view's layer (its caption follows);
    ``show_line``: the "Iteration N · epoch ..." line under the player (the presentation
    mode's status line names the iteration instead); ``heat_font``: the heatmap's type size in
    pixels (larger in presentation mode). The heatmap itself is drawn in the page, in the box
    that :func:`heat_slot` puts under ``heat_key``; ``path_key``: the box where the page draws
    the support path (:func:`pathviz.plots.support_series`) with the position marked on it.
    """

    heat_key: str | None = None
    heat_title: str = ""
    order: dict[str, np.ndarray] | None = None
    status_key: str | None = None
    layer_caption_key: str | None = None
    layer: str | None = None
    show_line: bool = True
    heat_font: int = 12
    path_key: str | None = None


def _b64(a: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype=np.dtype(dtype).newbyteorder("<"))
                            .tobytes()).decode()


def stride_for(n: int, row_bytes: int, budget: int | None = None) -> int:
    """The smallest power of two ``k`` such that every k-th of ``n`` rows fits ``budget``
    (default :data:`BUDGET`)."""
    budget = BUDGET if budget is None else budget
    k = 1
    while -(-n // k) * row_bytes > budget and k < n:
        k *= 2
    return k


def shipped_rows(start: int, n: int, stride: int) -> np.ndarray:
    """Snapshot indices in [start, n) that the browser holds: every ``stride``-th and the last."""
    rows = np.arange(-(-start // stride) * stride, n, stride, dtype=np.int64)
    if n > start and (rows.size == 0 or rows[-1] != n - 1):
        rows = np.append(rows, n - 1)
    return rows


def level_rows(gamma_norm: np.ndarray) -> np.ndarray:
    """uint8 colour levels [R, G] of ``gamma_norm`` [R, G], each row scaled by its largest
    norm, exactly as :func:`pathviz.plots.overview_heatmap` colours one snapshot."""
    gn = np.asarray(gamma_norm, np.float32)
    top = gn.max(axis=1, keepdims=True) if gn.shape[1] else np.ones((len(gn), 1), np.float32)
    top = np.where(top > 0, top, np.float32(1.0)).astype(np.float32)
    return plots.levels(gn / top, 1.0)


@st.cache_data(max_entries=16, show_spinner=False)
def load_levels(path: str, ident: Ident, rows: tuple[int, ...]) -> np.ndarray:
    """Colour levels [len(rows), sum of G] of the given snapshots, layers side by side."""
    idx = np.asarray(rows, np.int64)
    if idx.size == 0:
        return np.zeros((0, 0), np.uint8)
    # shipped rows are an arithmetic run, maybe with the last snapshot off its stride
    regular = idx.size < 2 or np.array_equal(idx, idx[0] + (idx[1] - idx[0]) * np.arange(idx.size))
    head, tail = (idx, idx[:0]) if regular else (idx[:-1], idx[-1:])
    step = int(head[1] - head[0]) if head.size > 1 else 1
    out = []
    with PathReader(path) as r:
        for layer in r.layers:
            parts = [r.layer_path(layer["name"], "gamma_norm",
                                  slice(int(head[0]), int(head[-1]) + 1, step))]
            parts += [r.layer_path(layer["name"], "gamma_norm", slice(int(i), int(i) + 1))
                      for i in tail]
            out.append(level_rows(np.concatenate(parts)))
    if not out:  # a run without Γ layers (an SGD baseline): no cells to colour
        return np.zeros((idx.size, 0), np.uint8)
    return np.concatenate(out, axis=1)


# Colour levels of the rows already read, per run file, for every session of this server: a
# row of a path file never changes once written, and each level row depends on its own row
# only. Sessions following one run each ask for the rows their browser lacks, which start
# where that session's last render ended: keyed on those ranges, each session read the file on
# its own (issue 35: thirty students); here the new rows are read once, for all of them.
SHARED_LEVEL_RUNS = 4  # run files whose rows are kept (a class follows one or two)
_levels: dict[tuple[str, Ident], dict[int, np.ndarray]] = {}
_levels_lock = threading.Lock()


def _arithmetic_runs(rows: list[int]) -> list[tuple[int, ...]]:
    """``rows`` (increasing) cut into arithmetic runs, the shape :func:`load_levels` reads in
    one slice."""
    out: list[list[int]] = []
    for i in rows:
        cur = out[-1] if out else None
        if cur is not None and (len(cur) < 2 or i - cur[-1] == cur[1] - cur[0]):
            cur.append(i)
        else:
            out.append([i])
    return [tuple(r) for r in out]


def shared_levels(path: str, ident: Ident, rows: tuple[int, ...]) -> np.ndarray:
    """:func:`load_levels` of ``rows`` through the per-run row cache: only rows no session has
    asked for yet are read."""
    key = (path, ident)
    with _levels_lock:
        store = _levels.pop(key, None) or {}
        _levels[key] = store  # the most recently used run last
        while len(_levels) > SHARED_LEVEL_RUNS:
            _levels.pop(next(iter(_levels)))
        missing = sorted({i for i in rows if i not in store})
    for run in _arithmetic_runs(missing):
        blob = load_levels(path, ident, run)
        with _levels_lock:
            store.update(zip(run, blob))
    with _levels_lock:
        got = [store[i] for i in rows]
    if not got:
        return np.zeros((0, 0), np.uint8)
    return np.stack(got)


def _heat_spec(view: RunView, spec: PlayerSpec) -> dict[str, Any]:
    """The heatmap's cell map (which filters each cell shows), per layer, and its colours."""
    layers = view.data["layers"]
    widths = [int(layer["groups"]) for layer in layers]
    columns = plots.heatmap_columns(widths)
    out, off = [], 0
    for layer, g in zip(layers, widths):
        order = spec.order.get(layer["name"]) if spec.order is not None else None
        perm, lo, hi = plots.heatmap_cells(g, columns, order)
        out.append({"off": off, "perm": _b64(perm, "i4"), "lo": _b64(lo, "i4"),
                    "hi": _b64(hi, "i4")})
        off += g
    # the words around the cells, and each group's name for the hover where a layer's groups
    # have names of their own (heads, MLP neurons; filters are "filter N")
    names = [plots.group_names(layer) if layer["kind"] in ("heads", "mlp") else None
             for layer in layers]
    return {"key": spec.heat_key, "title": spec.heat_title, "columns": columns, "layers": out,
            "scale": plots.level_scale(), "labels": [str(layer["name"]) for layer in layers],
            "names": names, "font": spec.heat_font,
            **plots.heatmap_frame(widths, ordered=spec.order is not None,
                                  unit="group" if any(names) else "filter")}


def _path_spec(view: RunView, spec: PlayerSpec) -> dict[str, Any]:
    """The support path's lines (decimated, % of each layer), the stop and the words around
    them; small, so it is sent whole with every render (a live run's path grows)."""
    layers = view.data["layers"]
    support = load_support(view.path, view.ident, view.n)
    x, lines = plots.support_series(np.asarray(view.iterations)[: view.n],
                                    {lay["name"]: support[lay["name"]] for lay in layers},
                                    {lay["name"]: int(lay["groups"]) for lay in layers})
    stop = view.stop_mark()
    return {"key": spec.path_key, "x": _b64(x, "f8"), "font": spec.heat_font,
            "lines": [{"name": ln["name"], "color": ln["color"], "width": ln["width"],
                       "y": _b64(ln["y"], "f4")} for ln in lines],
            "stop": None if stop is None else {"it": int(stop.iteration),
                                               "label": f"{stop.label} {stop.iteration:,}"},
            **plots.SUPPORT_PATH_WORDS}


def _slot(key: str, cls: str, label: str, height: int | None) -> None:
    """An empty box of class ``cls`` in a container keyed ``key``, where the player draws."""
    style = f' style="height:{int(height)}px"' if height is not None else ""
    with st.container(key=key):
        st.html(f'<div class="{cls}" role="img" aria-label="{label}"{style}></div>')


def heat_slot(key: str, height: int | None = None) -> None:
    """Where the player draws a heatmap: an empty box in a container keyed ``key`` (``height``
    pixels high; None: the page's CSS sizes it). The server sends no figure for it, so a view
    with only this heatmap never loads plotly, the largest part of a first load."""
    _slot(key, "pv-heatfig", "heatmap", height)


def text_slot(key: str) -> None:
    """Where the player writes a line about the position (the presentation status line, the
    Layer caption): the page computes it, the server never does (one source of truth)."""
    with st.container(key=key):
        st.html('<p class="pv-text" aria-live="polite"></p>')


def path_slot(key: str) -> None:
    """Where the player draws the support path (presentation mode: the page's CSS sizes it)."""
    _slot(key, "pv-pathfig", "support path", None)


def _w_star(view: RunView) -> dict[str, list] | None:
    its = view.iterations
    for name, split in W_STAR_METRICS:
        acc = view.data["metrics"].get(name)
        if acc is None:
            continue
        acc = np.asarray(acc, np.float64)[: len(its)]
        ok = np.flatnonzero(np.isfinite(acc))
        if ok.size:
            return {"it": its[ok].astype(np.float64).tolist(), "acc": acc[ok].tolist(),
                    "split": split}
    return None


def caption_units(view: RunView, layer: str) -> str:
    """What the caption calls the layer's groups: heads or MLP neurons in a transformer block,
    else "filters" (sent to the page, which writes the caption)."""
    record = next((r for r in view.data["layers"] if r["name"] == layer), {})
    return plots.unit_plural(record) if record.get("kind") in ("heads", "mlp") else "filters"


def player_data(view: RunView, spec: PlayerSpec, index: int, seq: int, follow: bool,
                autoplay: bool, sent: dict[str, Any], refine: bool) -> dict[str, Any]:
    """The component's data for this render; ``sent`` (the session's record of what the
    browser holds, per run file) is updated to include it.

    The first render of a run file sends the whole base; later ones only rows the browser
    lacks (a live run's new snapshots, levels for a view that first needs them, the refined
    rows around a paused position).
    """
    n = view.n
    key = f"{view.path}|{view.ident[0]}:{view.ident[1]}"
    its = np.asarray(view.iterations, np.float64)[:n]
    epochs = np.asarray(view.data["epochs"], np.float32)[:n]
    # filters in the support per snapshot, summed over the layers (the presentation's counts)
    selected = sum(load_support(view.path, view.ident, n).values(), np.zeros(n, np.int32))
    out: dict[str, Any] = {
        "key": key, "index": int(index), "seq": int(seq), "follow": bool(follow),
        "autoplay": bool(autoplay), "debounce": DEBOUNCE_MS,
        "ack": int(st.session_state.get("pv_ack", 0)),
        "serverPlaying": bool(st.session_state.get("playing")),
        "weights": _b64(view.data["weight_iterations"], "f8"), "wstar": _w_star(view),
    }
    have = sent.get(key)
    if have is None:
        out["base"] = {"iterations": _b64(its, "f8"), "epochs": _b64(epochs, "f4"),
                       "selected": _b64(selected, "i4")}
        have = sent[key] = {"n": n, "levels": 0, "stride": 0}
    elif have["n"] < n:
        a = have["n"]
        out["append"] = {"start": a, "iterations": _b64(its[a:], "f8"),
                         "epochs": _b64(epochs[a:], "f4"), "selected": _b64(selected[a:], "i4")}
        have["n"] = n
    out["line"] = spec.show_line
    if spec.status_key is not None:
        total = int(sum(int(layer["groups"]) for layer in view.data["layers"]))
        out["status"] = {"key": spec.status_key, "total": total}
    if spec.layer_caption_key is not None and spec.layer is not None:
        lp = load_layer(view.path, view.ident, n, spec.layer)
        out["layerSupport"] = np.asarray(lp["support"]).astype(int).tolist()
        units = caption_units(view, spec.layer)
        out["layerCaption"] = {"key": spec.layer_caption_key, "name": spec.layer,
                               "groups": int(lp["gamma_norm"].shape[1]), "units": units}
    if spec.path_key is not None:
        out["path"] = _path_spec(view, spec)
    if spec.heat_key is not None:
        out["heat"] = _heat_spec(view, spec)
        sum_g = int(sum(int(layer["groups"]) for layer in view.data["layers"]))
        stride = stride_for(n, max(sum_g, 1))
        levels: dict[str, Any] = {"sumG": sum_g, "stride": stride}
        start = have["levels"] if have["stride"] == stride else 0
        if stride != have["stride"] and have["stride"]:
            start = have["levels"]  # the browser prunes to the new stride itself
        rows = shipped_rows(start, n, stride)
        if rows.size:
            blob = shared_levels(view.path, view.ident, tuple(int(i) for i in rows))
            levels["rows"] = {"index": _b64(rows, "i4"), "data": _b64(blob, "u1")}
        have["levels"], have["stride"] = n, stride
        if refine and stride > 1:
            lo, hi = max(0, index - REFINE), min(n, index + REFINE + 1)
            near = np.arange(lo, hi, dtype=np.int64)
            blob = shared_levels(view.path, view.ident, tuple(int(i) for i in near))
            levels["refine"] = {"index": _b64(near, "i4"), "data": _b64(blob, "u1")}
        out["levels"] = levels
    return out


def player_ui(view: RunView, spec: PlayerSpec, index: int, follow: bool, autoplay: bool,
              refine: bool) -> None:
    """Mount the player for ``view`` at snapshot ``index`` (the server's position).

    A report from the page (the position where the user paused, the page's first run, or a
    page that lost its copy) is kept in ``st.session_state.pv_report`` for
    :func:`pathviz.ui.scrub.scrub_ui` to apply before it draws.
    """
    global _component
    ss = st.session_state
    if _component is None:
        _component = st.components.v2.component("pathviz_player", js=jsbundle.script(),
                                                 isolate_styles=False)
    st.html(jsbundle.style())
    sent = ss.setdefault("pv_sent", {})
    data = player_data(view, spec, index, int(ss.get("pv_seq", 0)), follow, autoplay, sent,
                       refine)

    def on_report() -> None:
        value = ss.get(KEY)
        rep = dict(value).get("report") if value is not None else None
        if isinstance(rep, dict):
            ss.pv_report = rep

    _component(data=data, key=KEY, on_report_change=on_report)
