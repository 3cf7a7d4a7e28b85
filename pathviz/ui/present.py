"""Presentation mode: one screen for a projector (``?present=1``, or the *Presentation* toggle).

The sidebar and Streamlit's top bar are hidden and the type is larger; the page is one line
that says what is happening at the selected iteration (iteration, filters selected of all
Γ layers, the compact subnetwork's accuracy W*), the scrubber, and the Overview heatmap
(optionally with each layer's filters sorted by entry time, which shows the inverse scale
space) beside the run's support path, which fills the rest of the screen.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from pathviz import readonly, runs
from pathviz.ui import url
from pathviz.ui.context import load_view
from pathviz.ui.data import load_entries
from pathviz.ui.header import (
    READ_ONLY_BADGE,
    land_when_finished,
    launched,
    progress_ui,
    shown_identity,
)
from pathviz.ui.live import shown_state
from pathviz.ui.player import PlayerSpec, heat_slot, path_slot, text_slot
from pathviz.ui.scrub import PLAY_INTERVAL, scrub_ui
from pathviz.ui.text import NO_GAMMA, inert
from pathviz.ui.urlstate import parse_flag

KEY = "present"  # session key of the toggle; ``?present=1`` in the URL
STATUS_KEY = "present_status"
HEATMAP_KEY = "present_heatmap"
PATH_KEY = "present_path"
PLOTS_KEY = "present_plots"
HEAT_TITLE = "Γ support at iteration {it}"  # the player writes {it} too
FONT_SIZE = 16  # the figures' text in presentation mode, in pixels (12 elsewhere)

# Hide the sidebar and its expand control, and Streamlit's top bar; larger type; the two plots
# fill the viewport below the controls (their height is the viewport's minus what stands above
# them, measured at 1024x768 and 1920x1080 by tests/e2e/test_present_e2e.py).
CSS = """
<style>
section[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"],
[data-testid="stExpandSidebarButton"], header[data-testid="stHeader"] {display: none !important;}
html {font-size: 18px;}
@media (min-width: 1600px) {html {font-size: 22px;}}
.block-container, [data-testid="stMainBlockContainer"] {
  padding-top: 0.8rem !important; padding-bottom: 0.5rem !important; max-width: 100% !important;}
.st-key-present_status p {font-size: 1.45rem; font-weight: 600; line-height: 1.3;
  margin: 0 !important;}
.st-key-present_heatmap, [data-testid="stLayoutWrapper"]:has(> .st-key-present_heatmap) {
  flex: 2 1 0 !important; min-width: 0;}
.st-key-present_path, [data-testid="stLayoutWrapper"]:has(> .st-key-present_path) {
  flex: 3 1 0 !important; min-width: 0;}
[data-testid="stLayoutWrapper"]:has(> .st-key-present_plots), .st-key-present_plots {
  flex: 0 0 auto !important; height: calc(100vh - 19.5rem) !important; min-height: 300px;}
.st-key-present_heatmap .pv-heatfig, .st-key-present_path .pv-pathfig {
  height: calc(100vh - 20rem); min-height: 290px;}
</style>
"""


def present_state() -> bool:
    """Whether the page is in presentation mode: the URL's ``?present=`` when a run opens (or
    on Back/Forward), then the toggle. A value that is not on or off is off with one note."""
    ss = st.session_state
    if KEY not in ss or url.navigated():
        on, note = parse_flag(url.get("present"), "present")
        ss[KEY], ss.present_note = on, note
    on = bool(ss[KEY])
    if on and url.get("present") != "1":
        url.want("present", "1")
    elif not on and url.get("present") is not None:
        url.want("present", None)
    if on:
        st.html(CSS)
    return on


def present_toggle_ui() -> bool:
    """The one toggle that turns presentation mode on and off (and the URL note, if any)."""
    ss = st.session_state
    on = st.toggle("Presentation", key=KEY,
                   help="A projector screen: no sidebar, larger type, the Overview heatmap "
                        "beside the support path, and one line saying what is happening. "
                        "In the URL: ?present=1.",
                   on_change=lambda: ss.__setitem__("present_note", None))
    if ss.get("present_note"):
        st.warning(ss.present_note, icon=":material/link:")
    return bool(on)


def entry_order(entry: np.ndarray) -> np.ndarray:
    """Filter indices sorted by entry snapshot (never-entered last, ties by position)."""
    e = np.asarray(entry, np.int64)
    return np.argsort(np.where(e < 0, np.iinfo(np.int64).max, e), kind="stable")


def present_header_ui(info: runs.RunInfo, model: str, dataset: str) -> str:
    """The run in one line (name, model on dataset, state) beside the toggle; returns the
    state shown (as the full header does, and a followed run that ends lands on its last
    snapshot)."""
    state = shown_state(info, launched(info.name))
    land_when_finished(info.name, state)
    model, dataset = shown_identity(info, model, dataset)
    c = st.columns([5, 2.2, 2.2], vertical_alignment="center")
    c[0].markdown(f"**{inert(info.name)}** · " + inert(f"{model} on {dataset} · {state}")
                  + (f" {READ_ONLY_BADGE}" if readonly.active() else ""))
    with c[1]:
        st.toggle("Sort by entry", key="present_sort", value=True,
                  help="Each layer's filters in the order they entered the support: the "
                       "inverse scale space (important filters first).")
    with c[2]:
        present_toggle_ui()
    if state == "failed":
        st.error(inert(f"This run failed: {info.reason or 'see its train.log'}"))
    return state


def present_body_ui(info: runs.RunInfo, slug: str, root: Path, live: bool,
                    scrub_fragment: bool, playing: bool) -> None:
    """The presentation screen below its header line (same signature as
    :func:`pathviz.ui.views.run_body_ui`, so the page draws either)."""
    if live:
        progress_ui(info)
    view = load_view(info, live)
    if view is None:
        return
    layers = view.data["layers"]
    names = [layer["name"] for layer in layers]
    sort = bool(st.session_state.get("present_sort", True))

    def at_iteration(index: int, iteration: int) -> None:
        # the status line ("iteration N · k of G filters selected · W* ...") is written by
        # the page (statusText in pathviz/ui/js/position.js) from what the player was sent
        text_slot(STATUS_KEY)
        # both drawn by the browser player from what it was sent: no plotly on this screen
        if not layers:
            st.info(NO_GAMMA)
            return
        with st.container(key=PLOTS_KEY, horizontal=True, gap="small"):
            heat_slot(HEATMAP_KEY)
            path_slot(PATH_KEY)

    order = None
    if sort:
        entries = load_entries(view.path, view.ident, view.n)
        order = {k: entry_order(entries[k]) for k in names}
    spec = PlayerSpec(heat_key=HEATMAP_KEY, heat_title=HEAT_TITLE, order=order,
                      status_key=STATUS_KEY, show_line=False, heat_font=FONT_SIZE,
                      path_key=PATH_KEY)

    def picker() -> None:
        # the status line names the iteration
        scrub_ui(view, at_iteration, show_line=False, player=spec)
        url.flush_fragment()

    if scrub_fragment:
        st.fragment(picker, run_every=PLAY_INTERVAL if playing else None)()
    else:
        picker()
