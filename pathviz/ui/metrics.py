"""Metrics & stopping: the metrics against iteration and accuracy against size, both clickable.

Both figures are drawn by the page on canvases from :mod:`pathviz.charts` specs and are static
while scrubbing (the page's marker shows the selected iteration); a click selects an iteration.
Plots whose metrics the file lacks are replaced by a note.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
import streamlit as st

from pathviz import charts, plots
from pathviz.ui.chart import chart_ui, prepare
from pathviz.ui.context import RunView
from pathviz.ui.data import Ident

METRICS_KEY = "metrics_plot"
TRADEOFF_KEY = "tradeoff_plot"
TRADEOFF_HEIGHT = 440


@st.cache_data(max_entries=16, show_spinner=False)
def _metrics_figure(path: str, ident: Ident, n: int, stop: plots.StopMark | None, log_x: bool,
                    _data: dict[str, Any]) -> dict[str, Any]:
    spec = charts.metrics_chart(_data["iterations"], _data["metrics"], stop,
                                _data["weight_iterations"], log_x=log_x)
    return prepare(spec, 300 + 140 * len(spec["panels"]))


@st.cache_data(max_entries=16, show_spinner=False)
def _tradeoff_figure(path: str, ident: Ident, n: int, stop: plots.StopMark | None,
                     which: tuple[str, str], _data: dict[str, Any]) -> dict[str, Any]:
    m = _data["metrics"]
    return prepare(charts.tradeoff_chart(m["params_kept"], m[which[0]], _data["iterations"],
                                         stop, acc_label=which[1]), TRADEOFF_HEIGHT)


def tradeoff_series(view: RunView) -> tuple[str, str] | None:
    """(accuracy metric, its label) for the size trade-off plot, or None if the file lacks one."""
    if not view.has_metric("params_kept"):
        return None
    for name in ("val_acc_sparse", "test_acc_sparse"):
        if view.has_metric(name):
            return name, plots.METRIC_LABELS[name]
    return None


def metrics_csv(view: RunView) -> bytes:
    """Every per-snapshot metric as CSV: iteration, epoch, then one column per metric."""
    m = view.data["metrics"]
    names = list(m)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["iteration", "epoch", *names])
    for i, it in enumerate(view.iterations):
        w.writerow([int(it), f"{float(view.data['epochs'][i]):.6g}",
                    *["" if not np.isfinite(m[k][i]) else f"{float(m[k][i]):.9g}"
                      for k in names]])
    return buf.getvalue().encode()


def metrics_ui(view: RunView) -> None:
    """The metrics plot, the trade-off plot and the CSV download."""
    absent = [plots.METRIC_LABELS.get(k, k) for k in
              ("val_acc_sparse", "test_acc", "params_kept") if not view.has_metric(k)]
    log_x = st.toggle("Log iteration axis", key="metrics_log_x")
    chart_ui(METRICS_KEY, _metrics_figure(view.path, view.ident, view.n, view.stop_mark(),
                                          log_x, view.data))
    # how to read it goes under the figure, so that the figure starts on the first screen
    st.caption("Click anywhere on a plot to select that iteration, drag across it to zoom in "
               "(double-click: zoom out); hover for the values. "
               "Dashed orange: the suggested stop; orange rings (zoomed panel): the iterations "
               "within 1 SE of the best validation accuracy, the 1-SE set; ticks at the "
               "bottom: saved weights.")
    if absent:
        st.caption(f"Not in this run's file (not recorded, or not evaluated yet): "
                   f"{'; '.join(absent)}.")
    which = tradeoff_series(view)
    if which is None:
        st.info("The accuracy-against-size plot needs the parameters kept and an accuracy of the "
                "compact subnetwork, which this run's file does not have.")
    else:
        chart_ui(TRADEOFF_KEY, _tradeoff_figure(view.path, view.ident, view.n, view.stop_mark(),
                                                which, view.data))
    # built when clicked (see pathviz.ui.overview.entries_csv_ui)
    st.download_button("Download the metrics (CSV)", data=lambda: metrics_csv(view),
                       file_name=f"{view.info.name}-metrics.csv", mime="text/csv",
                       key="metrics_csv", icon=":material/download:")
