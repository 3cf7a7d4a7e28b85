"""Overview: every layer's filters at the selected iteration, and the support size per layer."""

from __future__ import annotations

import csv
import io

import streamlit as st

from pathviz import analysis, plots
from pathviz.ui.context import RunView
from pathviz.ui.data import load_entries, load_snapshot
from pathviz.ui.player import heat_slot
from pathviz.ui.text import NO_GAMMA, clean_rows

OVERVIEW_KEY = "overview"
OVERVIEW_TITLE = "Gamma support by layer at iteration {it}"  # the player writes {it} too


def overview_ui(view: RunView, index: int, iteration: int) -> None:
    """The per-layer support heatmap and table at one snapshot (light: redrawn on every move)."""
    layers = view.data["layers"]
    if not layers:
        st.info(NO_GAMMA)
        return
    snap = load_snapshot(view.path, view.ident, index)
    # drawn by the browser player from the levels it holds (no plotly figure: a first load
    # that needs no plotly is a second faster); the hover names heads and MLP neurons
    heat_slot(OVERVIEW_KEY, plots.heatmap_height(len(layers)))
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
    """Download of when each filter entered the support, built when it is clicked: a live
    run's page reruns every refresh, and bytes built each time were work (and a media file,
    whose replacement the browser reported as a 404) for every session."""
    st.download_button("Download entry iterations (CSV)", data=lambda: entries_csv(view),
                       file_name=f"{view.info.name}-entries.csv", mime="text/csv",
                       key="entries_csv", icon=":material/download:")
