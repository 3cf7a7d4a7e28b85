"""pathviz app: follow, scrub and read the regularization path of SLBI training runs.

    streamlit run app.py
    streamlit run app.py -- --read-only      (a class: see docs/class.md)

Entry and page layout only: the sidebar, the run header and the body come from
``pathviz.ui.*`` (one module per view); runs from ``pathviz.runs``, data from
``pathviz.store.PathReader``, figures from ``pathviz.plots``. Torch is never imported here, so
the app starts in about a second.
"""

from __future__ import annotations

from pathviz import numerics

# the Export view computes accuracies in this process: pin its CPU kernels to the default level
# before torch is ever imported, so they equal the worker's (a run at another level is refused
# there in one sentence, see pathviz.export.pin_run)
numerics.apply_env(numerics.DEFAULT_LEVEL)

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import streamlit as st  # noqa: E402

from pathviz import readonly, runs  # noqa: E402
from pathviz.ui import present as pm  # noqa: E402
from pathviz.ui import url  # noqa: E402
from pathviz.ui.data import identity_of  # noqa: E402
from pathviz.ui.header import launched, run_header_ui, start_run  # noqa: E402
from pathviz.ui.live import collect_garbage, shown_state  # noqa: E402
from pathviz.ui.scrub import PLAY_INTERVAL  # noqa: E402
from pathviz.ui.sidebar import new_run_ui, refresh_ui, run_picker_ui, runs_table_ui  # noqa: E402
from pathviz.ui.text import inert  # noqa: E402
from pathviz.ui.views import LIGHT_VIEWS, page_style_ui, run_body_ui, view_switch_ui  # noqa: E402

st.set_page_config(page_title="pathviz", page_icon="📈", layout="wide")

ROOT = runs.checkpoints_root()
try:  # from the server's own argv and environment, never from a page; it only turns on
    # (`streamlit run app.py -- ARGS` sets sys.argv to [app.py, *ARGS]; under another program,
    # e.g. pytest's AppTest, its arguments are not the app's)
    readonly.configure(sys.argv[1:] if Path(sys.argv[0]).name == Path(__file__).name else [])
    SETTING_PROBLEM = None
except readonly.ReadOnlySettingError as e:
    SETTING_PROBLEM = str(e)  # the switch is on (fail closed); the page says why and stops
DEMO_NAME = "demo"


def empty_ui() -> None:
    """No runs yet: what the app is for, and the demo button."""
    st.title("pathviz")
    st.markdown(
        "See the **regularization path** of DessiLBI training: which filters a network selects, "
        "and when, as the sparse variable Γ grows from empty.\n\n"
        f"There are no runs in {inert(str(ROOT))} yet. The demo trains LeNet-5 on "
        "scikit-learn's bundled digits for about a minute on a laptop CPU; the views follow it "
        "live.")
    # an ARM machine (or an x86-64 one without AVX2) cannot take the default pinned level:
    # the demo then runs on the machine's own kernels, and says so, instead of failing
    unpinned = numerics.machine_problem(numerics.DEFAULT_LEVEL) is not None
    if unpinned:
        st.info("This CPU cannot run the pinned AVX2 kernels (an ARM machine, or an x86-64 CPU "
                "without AVX2), so the demo runs with this machine's own kernels "
                "(--cpu-isa native): its figures differ from the README's in the last digits.")
    if readonly.active():
        st.info("This page is read-only: it cannot start the demo. Whoever runs the server "
                "starts runs; they appear here as they train.")
        return
    if st.button("Start the demo run", type="primary"):
        start_run(runs.run_paths(DEMO_NAME, ROOT),
                  ["--preset", "demo", *(["--cpu-isa", "native"] if unpinned else [])])


def main() -> None:
    if SETTING_PROBLEM:
        st.error(inert(SETTING_PROBLEM))
        return
    all_runs = runs.list_runs(ROOT)
    st.sidebar.title("pathviz")
    if readonly.active():
        st.sidebar.caption(":violet-badge[read-only] Nothing on this page starts, stops or "
                           "writes anything on the server.")
    elif st.get_option("server.address") in (None, "", "0.0.0.0", "::"):
        # started outside the repository (its .streamlit/config.toml binds localhost), or
        # bound to every interface on purpose: whoever reaches the port has every control
        st.sidebar.warning("This app listens on every network interface and is not "
                           "read-only, so anyone who reaches it can start and stop runs; add "
                           "-- --read-only, or bind it with --server.address localhost (see "
                           "docs/class.md).", icon=":material/lan:")
    choice = run_picker_ui(all_runs, ROOT)
    present = choice is not None and pm.present_state()  # the projector screen: no sidebar
    if choice is not None and not present:
        with st.sidebar:
            pm.present_toggle_ui()
    refresh = refresh_ui()
    any_live = any(r.state in ("running", "starting") for r in all_runs)
    with st.sidebar:
        st.fragment(runs_table_ui, run_every=refresh if any_live and refresh > 0 else None)(ROOT)
    new_run_ui([r.name for r in all_runs], ROOT)
    if choice is None:
        if not all_runs:
            empty_ui()
        return  # else the picker waits for a choice, under the link's note
    info = next(r for r in all_runs if r.name == choice)
    if not present:
        page_style_ui()
    state = (pm.present_header_ui if present else run_header_ui)(info, *identity_of(info))
    live = state in ("running", "starting")
    slug = "present" if present else view_switch_ui()
    playing = bool(st.session_state.get("playing"))
    scrub_fragment = not live and (present or slug in LIGHT_VIEWS)
    body_ui = pm.present_body_ui if present else run_body_ui

    def tick() -> None:
        current = next((r for r in runs.list_runs(ROOT) if r.name == choice), info)
        now = shown_state(current, launched(choice))
        body_ui(current, slug, ROOT, live=now in ("running", "starting"),
                scrub_fragment=scrub_fragment, playing=playing)
        url.flush_fragment()
        collect_garbage()  # a live page's refresh runs this fragment only
        if now != state or st.session_state.pop("play_ended", False):
            st.rerun(scope="app")  # the refresh cadence changes: redraw the whole page once

    if live:
        st.fragment(tick, run_every=PLAY_INTERVAL if playing else (refresh or None))()
    elif playing and not scrub_fragment:
        st.fragment(tick, run_every=PLAY_INTERVAL)()
    else:
        tick()


with url.full_run():  # the URL is written once per run: one browser history entry per action
    main()
collect_garbage()
