"""Overview: every layer's filters at the selected iteration, and the support size per layer."""

from __future__ import annotations

import csv
import io

import streamlit as st

from pathviz import analysis, plots
from pathviz.ui.context import RunView
from pathviz.ui.data import load_entries, load_snapshot
from pathviz.ui.text import clean_rows, inert_plotly

OVERVIEW_KEY = "overview"
OVERVIEW_TITLE = "Gamma support by layer at iteration {it}"  # the player writes {it} too


def overview_ui(view: RunView, index: int, iteration: int) -> None:
    """The per-layer support heatmap and table at one snapshot (light: redrawn on every move)."""
    layers = view.data["layers"]
    names = [layer["name"] for layer in layers]
    snap = load_snapshot(view.path, view.ident, index)
    labels = {k: inert_plotly(k) for k in names}  # plotly draws tags in tick labels
    # heads and MLP neurons by name ("block 2 · head 3"); conv/linear runs hover as before
    named = {labels[layer["name"]]: plots.group_names(layer) for layer in layers
             if layer["kind"] in ("heads", "mlp")}
    st.plotly_chart(plots.overview_heatmap([labels[k] for k in names],
                                           {labels[k]: snap[k]["gamma_norm"] for k in names},
                                           title=OVERVIEW_TITLE.format(it=f"{iteration:,}"),
                                           names=named or None),
                    width="stretch", key=OVERVIEW_KEY)
    entries = load_entries(view.path, view.ident, view.n)
    its = view.iterations
    entry_its = {k: its[e[e >= 0]] if (e >= 0).any() else e[e >= 0] for k, e in entries.items()}
    st.markdown("**Support size per layer**")
    st.dataframe(clean_rows(analysis.support_table(layers, snap, entry_its)), hide_index=True,
                 width="stretch")


def entries_csv(view: RunView) -> bytes:
    """Per-group entry iterations as CSV: layer, group, entry iteration (empty: never)."""
    entries = load_entries(view.path, view.ident, view.n)
    its = view.iterations
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["layer", "group", "entry_iteration", "entry_snapshot"])
    for layer, e in entries.items():
        for g, i in enumerate(e.tolist()):
            w.writerow([layer, g, int(its[i]) if i >= 0 else "", i if i >= 0 else ""])
    return buf.getvalue().encode()


def entries_csv_ui(view: RunView) -> None:
    """Download of when each filter entered the support (static: built once per file state)."""
    st.download_button("Download entry iterations (CSV)", data=entries_csv(view),
                       file_name=f"{view.info.name}-entries.csv", mime="text/csv",
                       key="entries_csv", icon=":material/download:")
