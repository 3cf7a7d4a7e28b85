"""The page's URL as the views read and write it: one history entry per action, Back and Forward.

Streamlit's browser side turns every change of ``st.query_params`` made by the script into a
``history.pushState`` (and into a ``replaceState`` while it replays a Back/Forward step), and on
``popstate`` it reruns the script with the restored URL and ``is_history_navigation`` set. Two
things are needed on this side for Back and Forward to work:

- **One entry per action.** A run that changes the view and the layer would otherwise write the
  URL twice, leaving an intermediate entry that Back shows as "nothing happened". So the views
  record what they want with :func:`want` (and read with :func:`get`, which sees those wishes) and
  the page writes them at once with :func:`flush`: at the end of a full run, or at the end of a
  fragment's own run.
- **The URL wins on Back/Forward.** The views keep their choices in ``st.session_state`` and
  read the URL only when a run opens; :func:`navigated` tells them that this run replays a
  history entry, so they read the URL again (see ``app.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

_PENDING = "_url_pending"  # key -> wanted value (None: remove), not yet written
_FULL_RUN = "_url_full_run"  # True while the whole script runs (fragments then do not flush)


def get(key: str) -> str | None:
    """``?key=`` as this run will leave it: a value recorded with :func:`want`, else the URL's."""
    pending = st.session_state.get(_PENDING, {})
    if key in pending:
        return pending[key]
    return st.query_params.get(key)


def want(key: str, value: str | None) -> None:
    """Record that the URL should say ``?key=value`` (``None``: no ``key``), for :func:`flush`."""
    st.session_state.setdefault(_PENDING, {})[key] = value


def flush() -> None:
    """Write the recorded changes in one ``st.query_params`` update (so one history entry), or
    nothing if the URL says that already."""
    pending = st.session_state.pop(_PENDING, None)
    if not pending:
        return
    current = st.query_params.to_dict()
    wanted = dict(current)
    for key, value in pending.items():
        if value is None:
            wanted.pop(key, None)
        else:
            wanted[key] = value
    if wanted != current:
        st.query_params.from_dict(wanted)


def flush_fragment() -> None:
    """At the end of a fragment: flush if this is the fragment's own run (in a full run the
    page flushes once at its end, so that one action stays one history entry)."""
    if not st.session_state.get(_FULL_RUN):
        flush()


@contextmanager
def full_run() -> Iterator[None]:
    """Around the whole page: fragments inside leave the URL to this, which flushes at the end
    (also when the run ends early with ``st.rerun``)."""
    st.session_state[_FULL_RUN] = True
    try:
        yield
    finally:
        st.session_state[_FULL_RUN] = False
        flush()


def navigated() -> bool:
    """True when this run replays a Back/Forward step: the URL, not the session, says what to show.

    Streamlit (1.67) marks such reruns on the script's run context; older versions do not, and
    there Back and Forward only change the address bar.
    """
    ctx = get_script_run_ctx()
    return bool(ctx is not None and getattr(ctx, "is_history_navigation", False))
