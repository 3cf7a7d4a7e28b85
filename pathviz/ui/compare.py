"""Compare: support size against iteration for several runs (e.g. two values of ν)."""

from __future__ import annotations

import streamlit as st

from pathviz import charts, runs
from pathviz.store import PathFileError, PathReader
from pathviz.ui import jsbundle, url
from pathviz.ui.chart import chart_ui, prepare
from pathviz.ui.text import clean, inert
from pathviz.ui.urlstate import COMPARE_MAX, parse_compare, quote

PLOT_KEY = "compare_plot"


def _legend_name(name: str, config: dict) -> str:
    """The run and its ν, λ, κ: what tells two paths of one model apart (the page writes it as
    text, never markup)."""
    parts = [f"{sym}={config[k]:g}" if isinstance(config.get(k), (int, float)) else f"{sym}=?"
             for sym, k in (("ν", "nu"), ("λ", "lam"), ("κ", "kappa"))]
    return f"{clean(name)} ({', '.join(parts)})"


def compare_ui(current: str, root, selected: int | None = None) -> None:
    """The run chooser (kept in ``?compare=``) and the comparison plot, with ``selected`` (the
    iteration selected in the other views for the current run) marked on it."""
    names = [r.name for r in runs.list_runs(root)]
    ss = st.session_state
    if ss.get("compare_for") != current or "compare" not in ss or url.navigated():
        chosen, note = parse_compare(url.get("compare"), names, current)
        ss.compare_for, ss.compare, ss.compare_note = current, chosen, note
    if ss.get("compare_note"):
        st.warning(ss.compare_note, icon=":material/link:")
    chosen = st.multiselect("Runs to compare (e.g. two values of ν)", names, key="compare",
                            max_selections=COMPARE_MAX, format_func=clean,
                            on_change=lambda: ss.__setitem__("compare_note", None))
    value = ",".join(chosen)
    if url.get("compare") != value:
        url.want("compare", value)
    series = {}
    for name in chosen:
        try:
            with PathReader(runs.run_paths(name, root).path) as r:
                if "sparsity" not in r.metric_names:
                    st.warning(f"{quote(name)} has no sparsity metric, so its support size "
                               f"cannot be drawn.")
                    continue
                series[_legend_name(name, r.config)] = (r.iterations, 1 - r.metric("sparsity"))
        except (PathFileError, KeyError, runs.RunError) as e:
            st.warning(f"{quote(name)}: {inert(e)}")
    if series:
        log_x = st.toggle("Log iteration axis", key="compare_log_x")
        st.html(jsbundle.style())  # no player on this view: the figure's look comes here
        chart_ui(PLOT_KEY, {**prepare(charts.compare_chart(series, log_x=log_x), height=480),
                            "mark": selected})
        if selected is not None:
            st.caption(inert(f"Dotted red line: iteration {selected:,}, the one selected for "
                             f"{current} in the other views."))
    elif not chosen:
        st.info("Pick one or more runs to compare.")
