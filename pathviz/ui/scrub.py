"""The iteration picker: slider, step buttons, a number box, play, and Follow live.

State lives in ``st.session_state`` (``snap``: the snapshot index) and in the URL
(``?iteration=`` when the user picked one, ``?play=1`` while playing). Rules:

- A finished or stopped run opens at its last snapshot unless the URL names an iteration.
- An explicit ``?iteration=`` wins over Follow live until the user turns Follow live back on.
- A bad ``?iteration=`` is clamped (or ignored) with a visible note.
- Moving the slider, a step button or the number box stops Follow live.

The session keys that hold the position on the server side (all of them; the browser player
holds its own position and reports it):

- ``snap``: the snapshot index, the one position; ``scrub_for``: the run (name, file) it is for;
- the widgets' own keys: ``snap_it`` or ``snap_ix`` (the slider over iterations or over
  indices), ``goto`` (the number box), ``follow`` (the toggle), and ``assigned`` (values the
  server put in them, which a live page may send back);
- ``playing`` (server-side play), ``play_started`` (Play pressed: at the end, start over) and
  ``play_ended`` (the app redraws with its slower timer);
- ``pending_iteration``: a Jump or a chart click, applied before drawing;
- ``url_note``, ``play_note``: what was wrong with the link's ``iteration`` and ``play``;
- the player's (:mod:`pathviz.ui.player`): ``pv_report`` (the page's last report), ``pv_ack``
  (the last report applied), ``pv_at`` (the index the page was last told or told us),
  ``pv_seq`` (counts server-side moves), ``pv_sent`` (what the page holds, per run file) and
  ``pv_handover`` (a ``?play=1`` link handed from the server's timer to the page).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import numpy as np
import streamlit as st

from pathviz.ui import url
from pathviz.ui.chart import line_ui
from pathviz.ui.context import RunView
from pathviz.ui.player import PlayerSpec, player_ui
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


def held_iteration(view: RunView) -> int | None:
    """The iteration selected for ``view``'s run without drawing a picker (the Compare view
    marks it): the picker's position if it last showed this run, else the link's
    ``?iteration=``, else the newest snapshot; None for a run without snapshots."""
    ss = st.session_state
    iters = view.iterations
    if len(iters) == 0:
        return None
    if ss.get("scrub_for") == (view.info.name, view.ident) and "snap" in ss:
        return int(iters[min(int(ss.snap), len(iters) - 1)])
    idx, _ = parse_iteration(url.get("iteration"), iters)
    return int(iters[len(iters) - 1 if idx is None else idx])


def _index_at(iters: np.ndarray, iteration: int) -> int:
    i = int(np.searchsorted(iters, iteration, side="right")) - 1
    return int(min(max(i, 0), len(iters) - 1))


def _apply_report(view: RunView, iters: np.ndarray) -> bool:
    """Apply what the browser player reported (see :mod:`pathviz.ui.player`); True if the
    position came from it (a pause), so refined rows around it are sent back."""
    ss = st.session_state
    rep = ss.pop("pv_report", None)
    if not isinstance(rep, dict):
        return False
    t = rep.get("t")
    if not isinstance(t, int) or t <= int(ss.get("pv_ack", 0)):
        return False  # a report applied already (the page may send it again with a later run)
    ss.pv_ack = t
    sent = ss.setdefault("pv_sent", {})
    key = rep.get("key")
    if rep.get("need"):  # a reloaded page lost its copy: send it again
        sent.pop(key, None)
    if isinstance(rep.get("have"), int) and key in sent and rep["have"] < sent[key]["n"]:
        have = max(rep["have"], 0)  # the page lacks rows it was sent: send them again
        sent[key]["n"] = have
        sent[key]["levels"] = min(sent[key]["levels"], have)
    if rep.get("alive") and ss.get("playing"):
        # a ?play=1 link: the page plays from now on, not the server: the page is redrawn
        # without the server's play timer ("restart"), then the page plays ("autoplay")
        ss.playing = False
        ss.pv_handover = "restart"
    it = rep.get("iteration")
    if isinstance(it, (int, float)) and "index" in rep:
        ss.snap = _index_at(iters, int(it))
        ss.pv_at = ss.snap
        ss.follow = bool(rep.get("follow"))
        ss.url_note = None
        ss.play_note = None
        ss.playing = False
        return True
    return False


def scrub_ui(view: RunView, at_iteration: Callable[[int, int], None] | None = None,
             show_line: bool = True, player: PlayerSpec | None = None) -> int:
    """Draw the picker and ``at_iteration(index, iteration)``; returns the snapshot index.

    ``show_line`` False leaves out the "Iteration N · epoch ..." line under the picker (the
    presentation mode's own status line names the iteration).

    With ``player`` the browser player (:mod:`pathviz.ui.player`) steps and plays in the page;
    the slider, Back, Next, Play and the line stay below it as the server-side fallback, which
    the player hides once its script runs. *Go to iteration* and *Follow live* stay visible.

    With evenly spaced snapshots the slider runs over iterations (its thumb shows the iteration);
    otherwise over snapshot indices (``select_slider`` would ship every label to the browser).
    """
    ss = st.session_state
    _reset_for(view)
    iters = view.iterations
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

    def changed(new_index: int) -> None:
        """A widget's change that names another snapshot than the one shown is a move. While
        a run is live the page can send back a value that the server itself put in the slider
        or the number box a refresh or two ago (the bounds grow under them); such a value is
        not the user's and must not switch Follow live off."""
        new_index = int(min(max(new_index, 0), n - 1))
        if new_index == ss.get("snap"):
            return
        if view.live and new_index in ss.get("assigned", ()):
            return
        moved(new_index)

    from_player = player is not None and _apply_report(view, iters)
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
    ss.assigned = ([idx] + [i for i in ss.get("assigned", []) if i != idx])[:4]
    for note in (ss.get("url_note"), ss.get("play_note")):
        if note:
            st.warning(note, icon=":material/link:")
    if player is not None:
        if ss.get("pv_handover") == "restart":
            ss.pv_handover = "autoplay"
            st.rerun(scope="app")  # drop the server's play timer: the page plays now
        moved_by_server = ss.get("pv_at") != idx
        if moved_by_server:  # a link, Jump, a click, the number box or following the newest
            ss.pv_seq = int(ss.get("pv_seq", 0)) + 1
            ss.pv_at = idx
        player_ui(view, player, idx, follow=view.live and bool(ss.get("follow")),
                  autoplay=ss.pop("pv_handover", None) == "autoplay",
                  refine=from_player or moved_by_server)
    with st.container(key="pv_fallback") if player is not None else nullcontext():
        _picker_widgets(view, iters, uniform, key, step, idx, moved, changed, to_index,
                        show_line, goto=player is None)
    if player is not None:
        c = st.columns([2.2, 1.8, 3] if view.live else [2.2, 4.8], vertical_alignment="bottom")
        _goto_ui(c[0], iters, step, changed, live=view.live)
        if view.live:
            c[1].toggle("Follow live", key="follow",
                        help="Keep showing the newest snapshot as the run trains.")
    it = int(iters[idx])
    _sync_url(it, following=view.live and bool(ss.get("follow")), playing=bool(ss.get("playing")))
    if at_iteration is not None:
        at_iteration(idx, it)
    return idx


def _goto_ui(where: Any, iters: np.ndarray, step: int, changed: Callable[[int], None],
             live: bool) -> None:
    """The *Go to iteration* box (no upper bound while live: a bound that grows every
    refresh makes the page resend the box's value)."""
    ss = st.session_state
    where.number_input("Go to iteration", min_value=int(iters[0]),
                       max_value=None if live else int(iters[-1]),
                       step=max(step, 1), key="goto",
                       help="Type an iteration; the snapshot at or before it is shown.",
                       on_change=lambda: changed(_index_at(iters, int(ss.goto))))


def _picker_widgets(view: RunView, iters: np.ndarray, uniform: bool, key: str, step: int,
                    idx: int, moved: Callable[[int], None], changed: Callable[[int], None],
                    to_index: Callable[[int], int], show_line: bool, goto: bool) -> None:
    """The server-side picker: slider, Back, Next, (Go to iteration), Play, (Follow live) and
    the line saying where it is."""
    ss = st.session_state
    n = len(iters)
    epochs = view.data["epochs"]
    help_ = ("Drag to scrub along the path, or focus it and use the arrow keys. The line below "
             "gives the epoch and says whether weights were saved here (exportable).")

    def slid() -> None:
        # a change sent by a page for a slider this session no longer holds (its key was
        # dropped when the run or the link changed, or the slider switched between iterations
        # and snapshots while a live run grew) names nothing: ignored, not a KeyError shown
        # in the page (seen with a class of sessions following a live run)
        if ss.get(key) is not None:
            changed(to_index(ss[key]))

    if uniform:
        st.slider("Iteration", int(iters[0]), int(iters[-1]), step=step, key=key, help=help_,
                  on_change=slid)
    else:
        st.slider("Snapshot", 0, max(n - 1, 1), key=key, disabled=n < 2, help=help_,
                  on_change=slid)
    live_toggle = view.live and goto
    widths = [1, 1, 2.2, 1.2] if goto else [1, 1, 1.2, 3.4]
    c = st.columns(widths + [1.8] if live_toggle else widths, vertical_alignment="bottom")
    c[0].button("Back", key="step_back", disabled=idx == 0,
                help="One snapshot earlier", on_click=lambda: moved(ss.snap - 1),
                width="stretch")
    c[1].button("Next", key="step_next",
                disabled=idx >= n - 1, help="One snapshot later",
                on_click=lambda: moved(ss.snap + 1), width="stretch")
    if goto:
        _goto_ui(c[2], iters, step, changed, live=view.live)
    play_col = c[3] if goto else c[2]
    playing = bool(ss.get("playing"))
    if play_col.button("Pause" if playing else "Play", key="play",
                   icon=":material/pause:" if playing else ":material/play_arrow:",
                   help="Play the path from here", width="stretch"):
        ss.playing = not playing
        ss.play_started = ss.playing
        ss.follow = False if ss.playing else ss.follow
        ss.play_note = None
        st.rerun(scope="app")  # the play cadence changes the fragment's timer
    if live_toggle:
        c[4].toggle("Follow live", key="follow",
                    help="Keep showing the newest snapshot as the run trains.")
    if show_line:  # written by the page (the player's lineText): one rule for the line
        line_ui(int(iters[idx]), float(epochs[idx]), idx, n, view.data["weight_iterations"])


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
