"""Layer: one layer's filters by entry time above their paths, on one iteration axis.

The figure's spec (:func:`pathviz.charts.layer_chart`) is built once per (run, snapshot count,
layer, options) and cached; the page draws it on a canvas and scrubbing only moves the
position's marker over it (see :mod:`pathviz.ui.chart`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

from pathviz import charts, plots
from pathviz.ui import url
from pathviz.ui.chart import chart_ui, prepare
from pathviz.ui.context import RunView
from pathviz.ui.data import Ident, load_layer
from pathviz.ui.player import text_slot
from pathviz.ui.text import clean
from pathviz.ui.urlstate import parse_layer

FIGURE_KEY = "layer_fig"
HEIGHT = 800


@st.cache_data(max_entries=16, show_spinner=False)
def _figure(path: str, ident: Ident, n: int, layer: str, log_x: bool, show_gamma: bool,
            stop: plots.StopMark | None, iterations: np.ndarray,
            kind: str | None = None) -> dict[str, Any]:
    """The figure's spec for the page, built once per (file, snapshot count, options)."""
    lp = load_layer(path, ident, n, layer)
    # heads and MLP neurons are named in the hover ("block 2 · head 3"); filters as before.
    # The page draws names as plain text (a canvas, textContent): nothing in them is markup,
    # and clean() takes out the bidi controls that would reorder them.
    named = kind in ("heads", "mlp")
    record = {"name": layer, "kind": kind, "groups": lp["gamma_norm"].shape[1]}
    return prepare(charts.layer_chart(lp["gamma_norm"], lp["weight_norm"], iterations,
                                      lp["entry"], clean(layer), log_x=log_x,
                                      show_gamma=show_gamma, stop=stop,
                                      names=plots.group_names(record) if named else None,
                                      unit=plots.UNITS[kind] if named else "filter"), HEIGHT)


def layer_choice_ui(view: RunView) -> str | None:
    """The layer picker; the choice lives in the URL (``?layer=``)."""
    names = [layer["name"] for layer in view.data["layers"]]
    ss = st.session_state
    if ss.get("layer_for") != view.info.name or ss.get("layer") not in names or url.navigated():
        chosen, note = parse_layer(url.get("layer"), names)
        ss.layer_for, ss.layer, ss.layer_note = view.info.name, chosen, note
    if ss.get("layer_note"):
        st.warning(ss.layer_note, icon=":material/link:")
    # the picker and the figure's two switches in one row: the figure starts higher
    c1, c2, c3 = st.columns([2.2, 1.6, 1.4], vertical_alignment="bottom")
    layer = c1.selectbox("Layer", names, key="layer", format_func=clean,
                         on_change=lambda: ss.__setitem__("layer_note", None))
    if names:
        c2.toggle("Show ‖Γ_g‖ too (dashed)", value=False, key="show_gamma")
        c3.toggle("Log iteration axis", value=False, key="log_x",
                  help="Spreads the early iterations, where most filters enter. Iteration 0 "
                       "cannot be drawn on a log axis.")
    if layer is not None and url.get("layer") != layer:
        url.want("layer", layer)
    return layer


CAPTION_KEY = "layer_at"


def layer_at_ui(view: RunView, index: int, iteration: int) -> None:
    """Where the page writes, per move, how many of the layer's groups are in the support
    (``captionText`` in pathviz/ui/js/position.js, from the counts the player was sent)."""
    if st.session_state.get("layer") is None:
        return
    text_slot(CAPTION_KEY)


def layer_ui(view: RunView) -> None:
    """The Layer figure (static while scrubbing: the page moves a marker over it)."""
    layer = st.session_state.get("layer")
    if layer is None:
        st.info("This run has no layer with a Gamma to draw.")
        return
    # the switches are drawn beside the layer picker (layer_choice_ui)
    show_gamma = bool(st.session_state.get("show_gamma", False))
    log_x = bool(st.session_state.get("log_x", False))
    kind = next((r["kind"] for r in view.data["layers"] if r["name"] == layer), None)
    data = _figure(view.path, view.ident, view.n, layer, log_x, show_gamma, view.stop_mark(),
                   view.iterations, kind)
    chart_ui(FIGURE_KEY, data)
    # under the figure, so that the figure starts on the first screen
    st.caption("Click anywhere on the figure to select that iteration, drag across it to zoom "
               "in (double-click: zoom out); hover for the values. "
               "Dashed orange: the suggested stop (the Metrics view shows which iterations are "
               "within 1 SE of the best).")
