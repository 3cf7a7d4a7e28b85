"""The run page below the header: stop line, view switcher, iteration picker and the view.

Light views (Overview, Layer, Metrics, Filters) put the picker and everything that changes with
the iteration in one fragment, so a scrub step reruns and resends only that; their heavy figures
are drawn outside it once and the page moves a marker over them (:mod:`pathviz.ui.chart`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from pathviz import runs
from pathviz.store import PathFileError
from pathviz.ui import url
from pathviz.ui.about import about_ui
from pathviz.ui.compare import compare_ui
from pathviz.ui.context import RunView, load_view
from pathviz.ui.export import export_ui
from pathviz.ui.filters import filters_ui
from pathviz.ui.header import progress_ui
from pathviz.ui.layer import CAPTION_KEY, layer_at_ui, layer_choice_ui, layer_ui
from pathviz.ui.metrics import metrics_ui
from pathviz.ui.overview import OVERVIEW_KEY, OVERVIEW_TITLE, entries_csv_ui, overview_ui
from pathviz.ui.player import PlayerSpec
from pathviz.ui.scrub import PLAY_INTERVAL, held_iteration, scrub_ui
from pathviz.ui.text import inert
from pathviz.ui.tickets import tickets_ui
from pathviz.ui.urlstate import SLUG_OF, VIEWS, parse_view

LIGHT_VIEWS = ("overview", "layer", "metrics", "filters")
# the views where the suggested stop is what the reader acts on (jump to it, export it, retrain
# it); About and Compare have no use for it, and the Layer and Filters views keep the space
# for their figure (the stop is marked in the Layer figure itself)
STOP_VIEWS = ("overview", "metrics", "export", "tickets")
STOP_KEY = "stop_line"

# The run page, not the presentation screen: less padding above and beside the page, so that
# every view's main figure starts on the first screen at 1024x768 (checked by the figure's
# bounding box in tests/e2e/test_layout_e2e.py); the stop line in one row of small type.
PAGE_CSS = """
<style>
.block-container, [data-testid="stMainBlockContainer"] {
  padding-top: 4rem !important; padding-left: 2rem !important; padding-right: 2rem !important;
  padding-bottom: 3rem !important;}
.st-key-stop_line p {font-size: 0.9rem; margin: 0 !important;}
.st-key-view_title [data-testid="stButtonGroup"] {flex-wrap: nowrap !important;}
.st-key-view_title button {padding-left: 0.6rem !important; padding-right: 0.6rem !important;
  white-space: nowrap;}
</style>
"""


def page_style_ui() -> None:
    """The run page's compact layout (see :data:`PAGE_CSS`); the style takes no room."""
    st.html(PAGE_CSS)


def view_switch_ui() -> str:
    """The view switcher; the choice lives in the URL (``?view=``). Returns the view's slug."""
    ss = st.session_state
    if "view_title" not in ss or url.navigated():
        slug, note = parse_view(url.get("view"))
        ss.view_title, ss.view_note = VIEWS[slug], note
    # one row of views at 1024 px too: no wrap, tighter buttons (PAGE_CSS)
    title = st.segmented_control("View", list(VIEWS.values()), key="view_title",
                                 label_visibility="collapsed", width="content",
                                 on_change=lambda: ss.__setitem__("view_note", None))
    if ss.get("view_note"):
        st.warning(ss.view_note, icon=":material/link:")
    if title is None:  # a click on the selected view deselects it: keep it
        title = ss.get("last_view_title", VIEWS["overview"])
    ss.last_view_title = title
    slug = SLUG_OF[title]
    if url.get("view") != slug:
        url.want("view", slug)
    return slug


def stop_line_ui(view: RunView) -> None:
    """The library's suggested stop in one line (iteration, the compact subnetwork's accuracy
    on each split, the parameters kept), its details in a popover, and a Jump button; or why
    there is none. Every accuracy names its split and its weights: W* is the compact
    subnetwork (W masked by Γ's support, channels removed), evaluated by the worker."""
    s = view.stop
    if s is None:
        st.caption(inert(f"No stopping point to suggest yet: {view.decision.reason}."))
        return
    accs = [f"validation {100 * s.val_acc:.1f}%"]
    if s.test_acc_sparse is not None:
        accs.append(f"test {100 * s.test_acc_sparse:.1f}%")
    kept = f"{s.params_kept:,} parameters kept"
    if s.params_total:
        kept = f"{100 * s.params_kept / s.params_total:.1f}% of the parameters kept"
    details = [f"Validation accuracy of the compact subnetwork W* {100 * s.val_acc:.1f}% (best "
               f"{100 * s.best_val_acc:.1f}% at iteration {s.best_iteration:,}; 1 SE = "
               f"{100 * s.val_se:.1f} points)"]
    if s.test_acc_sparse is not None:
        details.append(f"test accuracy of the compact subnetwork W* "
                       f"{100 * s.test_acc_sparse:.1f}% (reported, not used to choose)")
    count = f"{s.params_kept:,} parameters kept"
    if s.params_total:
        count += f" of {s.params_total:,} ({100 * s.params_kept / s.params_total:.1f}%)"
    details.append(count)
    if s.flops_kept is not None and s.flops_total:
        details.append(f"{100 * s.flops_kept / s.flops_total:.1f}% of the FLOPs")
    # columns, not a horizontal container: the sentence wraps inside its own column on a
    # narrow page while the two buttons keep their row
    with st.container(key=STOP_KEY):
        c1, c2, c3 = st.columns([5, 1.15, 1.15], vertical_alignment="center", gap="small")
        c1.markdown(f"**Suggested stop: iteration {s.iteration:,}** · "
                    + inert(f"compact W*: {', '.join(accs)} · {kept}"))
        with c2.popover("Details", width="content"):
            st.markdown(inert("; ".join(details) + ".") + "\n\n" + inert(f"Rule: {s.rule}."))
        if c3.button("Jump", key="jump", icon=":material/my_location:", width="content",
                     help="Select the suggested stop"):
            st.session_state.pending_iteration = s.iteration
            st.rerun()


@dataclass(frozen=True)
class View:
    """How the run page draws one view: each part is None where the view has none.

    ``above``: under the stop line, above the picker (the Layer view's layer choice);
    ``at``: what changes with the picked position, drawn inside the picker's fragment, called
    with (view, index, iteration, root); ``below``: under the picker, drawn once per page run,
    called with (view, root); ``player``: what the browser player redraws (light views only;
    Export and Tickets act on the position the server holds); ``picker``: False where the
    iteration does not change the view (no slider that does nothing).
    """

    above: Callable[[RunView], None] | None = None
    at: Callable[[RunView, int, int, Path], None] | None = None
    below: Callable[[RunView, Path], None] | None = None
    player: Callable[[], PlayerSpec] | None = None
    picker: bool = True


def tickets_view_ui(view: RunView, iteration: int) -> None:
    """The Tickets view at the picked iteration (:mod:`pathviz.ui.tickets`)."""
    tickets_ui(view.info.paths, view.info.name, iteration)


# every view of the run page, by slug (pathviz.ui.urlstate.VIEWS): the one place a view is wired
VIEW_TABLE: dict[str, View] = {
    "overview": View(at=lambda v, i, it, root: overview_ui(v, i, it),
                     below=lambda v, root: entries_csv_ui(v),
                     player=lambda: PlayerSpec(heat_key=OVERVIEW_KEY, heat_title=OVERVIEW_TITLE)),
    "layer": View(above=layer_choice_ui, at=lambda v, i, it, root: layer_at_ui(v, i, it),
                  below=lambda v, root: layer_ui(v),
                  player=lambda: PlayerSpec(layer_caption_key=CAPTION_KEY,
                                            layer=st.session_state.get("layer"))),
    # (the Metrics figures take the position from the page)
    "metrics": View(below=lambda v, root: metrics_ui(v), player=PlayerSpec),
    "filters": View(at=lambda v, i, it, root: filters_ui(v, i, it), player=PlayerSpec),
    "export": View(at=lambda v, i, it, root: export_ui(v, it, root)),
    "tickets": View(at=lambda v, i, it, root: tickets_view_ui(v, it)),
    "compare": View(below=lambda v, root: compare_ui(v.info.name, root,
                                                     selected=held_iteration(v)),
                    picker=False),
    "about": View(below=lambda v, root: about_ui(), picker=False),
}


def player_spec(slug: str) -> PlayerSpec | None:
    """What the browser player redraws on a light view; None for the other views."""
    make = VIEW_TABLE[slug].player
    return None if make is None else make()


def run_body_ui(info: runs.RunInfo, slug: str, root: Path, live: bool,
                scrub_fragment: bool, playing: bool) -> None:
    """Everything drawn from the path file; a damaged file shows one message here only."""
    if live:
        progress_ui(info)
    view = load_view(info, live)
    if view is None:
        return
    parts = VIEW_TABLE[slug]
    if slug in STOP_VIEWS:
        stop_line_ui(view)
    if parts.above is not None:
        parts.above(view)

    def at_iteration(index: int, iteration: int) -> None:
        if parts.at is None:
            return
        try:
            parts.at(view, index, iteration, root)
        except PathFileError as e:
            st.error(inert(f"This run's path file cannot be shown: {e}"))

    spec = player_spec(slug)

    def picker() -> None:
        scrub_ui(view, at_iteration, player=spec)
        url.flush_fragment()

    if not parts.picker:
        pass  # the iteration does not change these views: no slider that does nothing
    elif scrub_fragment:
        st.fragment(picker, run_every=PLAY_INTERVAL if playing else None)()
    else:
        picker()
    if parts.below is not None:
        try:
            parts.below(view, root)
        except PathFileError as e:
            st.error(inert(f"This run's path file cannot be shown: {e}"))
