"""The iteration picker: slider, step buttons, a number box, play, and Follow live.

State lives in ``st.session_state`` (``snap``: the snapshot index) and in the URL
(``?iteration=`` when the user picked one, ``?play=1`` while playing). Rules:

- A finished or stopped run opens at its last snapshot unless the URL names an iteration.
- An explicit ``?iteration=`` wins over Follow live until the user turns Follow live back on.
- A bad ``?iteration=`` is clamped (or ignored) with a visible note.
- Moving the slider, a step button or the number box stops Follow live.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from pathviz.store import nearest
from pathviz.ui import url
from pathviz.ui.context import RunView
from pathviz.ui.urlstate import parse_flag, parse_iteration

PLAY_FRAMES = 80  # a play-through of any run takes about this many frames
PLAY_INTERVAL = 0.4  # seconds per play frame


def _reset_for(view: RunView) -> None:
    """New run (or a replaced file, or a Back/Forward step): forget the position, apply the URL."""
    ss = st.session_state
    token = (view.info.name, view.ident)
    if ss.get("scrub_for") == token and not url.navigated():
        return
    ss.scrub_for = token
    iters = view.iterations
    idx, note = parse_iteration(url.get("iteration"), iters)
    ss.url_note = note
    ss.snap = len(iters) - 1 if idx is None else idx
    # an explicit iteration in the link wins over following the newest snapshot
    ss.follow = idx is None
    playing, play_note = parse_flag(url.get("play"), "play")
    ss.playing = playing
    ss.play_note = play_note
    for k in ("snap_it", "snap_ix", "goto"):
        ss.pop(k, None)


def _index_at(iters: np.ndarray, iteration: int) -> int:
    i = int(np.searchsorted(iters, iteration, side="right")) - 1
    return int(min(max(i, 0), len(iters) - 1))


def scrub_ui(view: RunView, at_iteration: Callable[[int, int], None] | None = None,
             show_line: bool = True) -> int:
    """Draw the picker and ``at_iteration(index, iteration)``; returns the snapshot index.

    ``show_line`` False leaves out the "Iteration N · epoch ..." line under the picker (the
    presentation mode's own status line names the iteration).

    With evenly spaced snapshots the slider runs over iterations (its thumb shows the iteration);
    otherwise over snapshot indices (``select_slider`` would ship every label to the browser).
    """
    ss = st.session_state
    _reset_for(view)
    iters, epochs = view.iterations, view.data["epochs"]
    n = len(iters)
    step = int(iters[1] - iters[0]) if n > 1 else 1
    uniform = n > 1 and step > 0 and bool(np.array_equal(iters, iters[0] + step * np.arange(n)))
    key = "snap_it" if uniform else "snap_ix"

    def to_index(v: int) -> int:
        return int(min(max((v - iters[0]) // step if uniform else v, 0), n - 1))

    def to_value(i: int) -> int:
        return int(iters[0] + step * i) if uniform else int(i)

    def moved(new_index: int) -> None:
        ss.snap = int(min(max(new_index, 0), n - 1))
        ss.follow = False
        ss.url_note = None

    if "pending_iteration" in ss:  # a click on a plot or a jump, applied before drawing
        moved(_index_at(iters, int(ss.pop("pending_iteration"))))
    if view.live and ss.get("follow", True):
        ss.snap = n - 1
    if ss.get("playing"):
        if ss.pop("play_started", False) and ss.snap >= n - 1:
            ss.snap = 0  # pressing play at the end plays from the start
        else:
            ss.snap = min(ss.snap + max(1, n // PLAY_FRAMES), n - 1)
        if ss.snap >= n - 1:
            ss.playing = False
            ss.play_ended = True
    ss.snap = int(min(max(ss.snap, 0), n - 1))
    idx = ss.snap
    ss[key] = to_value(idx)
    ss.goto = int(iters[idx])
    for note in (ss.get("url_note"), ss.get("play_note")):
        if note:
            st.warning(note, icon=":material/link:")
    help_ = ("Drag to scrub along the path, or focus it and use the arrow keys. The line below "
             "gives the epoch and says whether weights were saved here (exportable).")
    if uniform:
        st.slider("Iteration", int(iters[0]), int(iters[-1]), step=step, key=key, help=help_,
                  on_change=lambda: moved(to_index(ss[key])))
    else:
        st.slider("Snapshot", 0, max(n - 1, 1), key=key, disabled=n < 2, help=help_,
                  on_change=lambda: moved(to_index(ss[key])))
    c = st.columns([1, 1, 2.2, 1.2, 1.8] if view.live else [1, 1, 2.2, 1.2],
                   vertical_alignment="bottom")
    c[0].button("Back", key="step_back", disabled=idx == 0,
                help="One snapshot earlier", on_click=lambda: moved(ss.snap - 1),
                width="stretch")
    c[1].button("Next", key="step_next",
                disabled=idx >= n - 1, help="One snapshot later",
                on_click=lambda: moved(ss.snap + 1), width="stretch")
    c[2].number_input("Go to iteration", min_value=int(iters[0]), max_value=int(iters[-1]),
                      step=max(step, 1), key="goto",
                      help="Type an iteration; the snapshot at or before it is shown.",
                      on_change=lambda: moved(_index_at(iters, int(ss.goto))))
    playing = bool(ss.get("playing"))
    if c[3].button("Pause" if playing else "Play", key="play",
                   icon=":material/pause:" if playing else ":material/play_arrow:",
                   help="Play the path from here", width="stretch"):
        ss.playing = not playing
        ss.play_started = ss.playing
        ss.follow = False if ss.playing else ss.follow
        ss.play_note = None
        st.rerun(scope="app")  # the play cadence changes the fragment's timer
    if view.live:
        c[4].toggle("Follow live", key="follow",
                    help="Keep showing the newest snapshot as the run trains.")
    it = int(iters[idx])
    has_w = it in set(view.data["weight_iterations"].tolist())
    near = nearest(view.data["weight_iterations"], it)
    if show_line:
        st.markdown(f"**Iteration {it:,}** · epoch {float(epochs[idx]):.2f} · snapshot {idx + 1} "
                    f"of {n}" + (" · weights saved here (exportable)" if has_w else
                                 " · no weights here" + (
                                     f" (nearest: {', '.join(f'{x:,}' for x in near)})"
                                     if near else "")))
    _sync_url(it, following=view.live and bool(ss.get("follow")), playing=bool(ss.get("playing")))
    if at_iteration is not None:
        at_iteration(idx, it)
    return idx


def _sync_url(iteration: int, following: bool, playing: bool) -> None:
    """The URL names the iteration unless following the newest; ``play=1`` while playing.

    While playing, the iteration stays where play started (every frame would otherwise be a
    history entry); the frame where play stops is written once.
    """
    if following:
        url.want("iteration", None)
    elif not playing and url.get("iteration") != str(iteration):
        url.want("iteration", str(iteration))
    if playing and url.get("play") != "1":
        url.want("play", "1")
    elif not playing and url.get("play") is not None:
        url.want("play", None)


def clickable(fig: go.Figure) -> go.Figure:
    """``fig`` as an unpickled copy of it is (``go.Figure(fig.to_dict())``), for figures built
    in ``st.cache_data`` functions and drawn with ``on_select``.

    The cache hands out unpickled copies, whose spec lists some keys in another order than the
    freshly built figure's, and Streamlit derives a chart's widget id from its spec: without
    this, the first click after a figure was built is sent to a widget that the next run no
    longer has, and is lost.
    """
    return go.Figure(fig.to_dict())


def pick_from_chart(event: Any, key: str) -> None:
    """A point clicked on a chart (its customdata is an iteration) becomes the selected
    iteration, applied before the next run draws; a selection already applied is ignored, so
    the rerun it causes does not pick it again."""
    points = getattr(getattr(event, "selection", None), "points", None) or []
    if not points:
        return
    cd = points[0].get("customdata")
    it = cd[0] if isinstance(cd, list) else cd
    if it is None or st.session_state.get(f"applied:{key}") == it:
        return
    st.session_state[f"applied:{key}"] = it
    st.session_state.pending_iteration = int(it)
    st.rerun()
