"""Filters: the first conv layer with a Gamma (not always the network's first layer: a run
with a dense input layer shows conv2), its filters as images, framed when in the support."""

from __future__ import annotations

import numpy as np
import streamlit as st

from pathviz import plots
from pathviz.ui.context import RunView
from pathviz.ui.data import load_snapshot, load_weight
from pathviz.ui.text import inert, inert_plotly


def filters_ui(view: RunView, index: int, iteration: int) -> None:
    """The filter mosaic at the nearest saved weights at or before the selected iteration."""
    first = next((layer for layer in view.data["layers"] if layer["kind"] == "conv"
                  and layer["penalty"] == "group" and len(layer["shape"]) == 4), None)
    if first is None:
        kinds = {layer["kind"] for layer in view.data["layers"]}
        st.info("No filters to draw: this model's input convolution has no Γ"
                + (" (a transformer's patch embedding stays dense; its heads and MLP neurons "
                   "are in the Overview and Layer views)." if kinds & {"heads", "mlp"} else
                   ", and no other conv layer has group sparsity."))
        return
    wits = view.data["weight_iterations"]
    if len(wits) == 0:
        st.info("No weights saved yet.")
        return
    wit = int(wits[np.searchsorted(wits, iteration, side="right") - 1]) \
        if iteration >= wits[0] else int(wits[0])
    w = load_weight(view.path, view.ident, wit, first["param"])
    channels = int(first["shape"][1])
    st.caption(f"{inert(first['name'])}, the first convolution with a Γ: {first['shape'][0]} "
               "filters"
               + (f", each shown as the mean over its {channels} input channels"
                  if channels > 1 else "") + ".")
    inside = load_snapshot(view.path, view.ident, index)[first["name"]]["gamma_norm"] > 0
    if wit != iteration:
        st.caption(f"Weights are saved every few iterations: showing iteration {wit:,}, the "
                   f"nearest saved one {'before' if wit < iteration else 'after'} "
                   f"{iteration:,}; the frames show the support at {iteration:,}.")
    st.plotly_chart(plots.filters_image(w, inside, wit, layer=inert_plotly(first["name"])),
                    width="stretch", key="filters")
