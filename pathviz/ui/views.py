"""The run page below the header: stop line, view switcher, iteration picker and the view.

Light views (Overview, Layer, Metrics, Filters) put the picker and everything that changes with
the iteration in one fragment, so a scrub step reruns and resends only that; their heavy figures
are drawn outside it once and a marker moves over them (:mod:`pathviz.ui.marker`).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from pathviz import runs
from pathviz.store import PathFileError, PathInvalidError
from pathviz.ui import data as d
from pathviz.ui import url
from pathviz.ui.context import RunView
from pathviz.ui.player import PlayerSpec
from pathviz.ui.text import inert
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


def load_view(info: runs.RunInfo, live: bool) -> RunView | None:
    """The run's file read into a :class:`RunView`, or None after one message saying why."""
    try:
        n = d.snapshot_count(info.paths.path, live=live)
        ident = d.ident(info.paths.path)
    except (PathFileError, FileNotFoundError) as e:
        # a file a starting worker has not finished creating is not an error yet; a file whose
        # values break a rule of the schema is, live or not
        if live and not isinstance(e, PathInvalidError):
            st.info("Waiting for the worker to write its first snapshot...")
        else:
            st.error(inert(f"This run's path file cannot be shown: {e}"))
        return None
    if n == 0:
        st.info("Waiting for the first snapshot...")
        return None
    path = str(info.paths.path)
    try:
        data = d.load_overview(path, ident, n)
        decision = d.load_stop(path, ident, n)
    except PathFileError as e:
        st.error(inert(f"This run's path file cannot be shown: {e}"))
        return None
    model, dataset = d.run_identity(info, data)
    return RunView(info=info, path=path, ident=ident, n=n, data=data, decision=decision,
                   live=live, model=model, dataset=dataset)


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


NO_PICKER = ("compare", "about")


def player_spec(slug: str) -> PlayerSpec | None:
    """What the browser player redraws on a light view; None for the other views (Export and
    Tickets act on the position the server holds, set with the server's picker)."""
    if slug == "overview":
        from pathviz.ui.overview import OVERVIEW_KEY, OVERVIEW_TITLE

        return PlayerSpec(heat_key=OVERVIEW_KEY, heat_title=OVERVIEW_TITLE)
    if slug == "layer":
        from pathviz.ui.layer import CAPTION_KEY

        return PlayerSpec(layer_caption_key=CAPTION_KEY, layer=st.session_state.get("layer"))
    if slug in ("metrics", "filters"):  # (the Metrics figures take the position from the page)
        return PlayerSpec()
    return None


def run_body_ui(info: runs.RunInfo, slug: str, root: Path, live: bool,
                scrub_fragment: bool, playing: bool) -> None:
    """Everything drawn from the path file; a damaged file shows one message here only."""
    from pathviz.ui.header import progress_ui
    from pathviz.ui.scrub import PLAY_INTERVAL, scrub_ui

    if live:
        progress_ui(info)
    view = load_view(info, live)
    if view is None:
        return
    if slug in STOP_VIEWS:
        stop_line_ui(view)
    if slug == "layer":
        from pathviz.ui.layer import layer_choice_ui

        layer_choice_ui(view)

    def at_iteration(index: int, iteration: int) -> None:
        try:
            if slug == "overview":
                from pathviz.ui.overview import overview_ui

                overview_ui(view, index, iteration)
            elif slug == "layer":
                from pathviz.ui.layer import layer_at_ui

                layer_at_ui(view, index, iteration)
            elif slug == "filters":
                from pathviz.ui.filters import filters_ui

                filters_ui(view, index, iteration)
            elif slug == "export":
                from pathviz.ui.export import export_ui

                export_ui(view, iteration, root)
            elif slug == "tickets":
                tickets_view_ui(view, iteration)
        except PathFileError as e:
            st.error(inert(f"This run's path file cannot be shown: {e}"))

    spec = player_spec(slug)

    def picker() -> None:
        scrub_ui(view, at_iteration, player=spec)
        url.flush_fragment()

    if slug in NO_PICKER:
        pass  # the iteration does not change these views: no slider that does nothing
    elif scrub_fragment:
        st.fragment(picker, run_every=PLAY_INTERVAL if playing else None)()
    else:
        picker()
    try:
        if slug == "layer":
            from pathviz.ui.layer import layer_ui

            layer_ui(view)
        elif slug == "metrics":
            from pathviz.ui.metrics import metrics_ui

            metrics_ui(view)
        elif slug == "compare":
            from pathviz.ui.compare import compare_ui
            from pathviz.ui.scrub import held_iteration

            compare_ui(info.name, root, selected=held_iteration(view))
        elif slug == "about":
            from pathviz.ui.about import about_ui

            about_ui()
        if slug == "overview":
            from pathviz.ui.overview import entries_csv_ui

            entries_csv_ui(view)
    except PathFileError as e:
        st.error(inert(f"This run's path file cannot be shown: {e}"))


def tickets_view_ui(view: RunView, iteration: int) -> None:
    """The Tickets view from :mod:`pathviz.ui.tickets` (another module's work)."""
    try:
        from pathviz.ui.tickets import tickets_ui
    except ImportError as e:
        st.info(inert(f"The Tickets view is not available in this installation ({e})."))
        return
    tickets_ui(view.info.paths.dir, view.info.name, iteration)
