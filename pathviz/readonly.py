"""Read-only viewer mode: one switch, read once per process, that only ever turns on.

A teacher serves one app to a class (``streamlit run app.py -- --read-only``, or
``PATHVIZ_READ_ONLY=1`` for a hosted set-up): every view that reads works, and nothing on the
server changes. The app turns the switch on once at start (:func:`configure`); the functions
that write or start a process (``runs.start_worker``, ``runs.stop_worker``, the tickets'
``start_retrain`` and ``stop_retrain``, ``export.export`` into a run, the baselines) then
refuse with :func:`refusal`'s one sentence, whatever a page, a crafted URL or a replayed form
asks. The switch lives in this process only: nothing a browser sends reaches it, and there is
no function that turns it off (a test restores it with ``monkeypatch``).

Torch-free and imports nothing from pathviz, so every layer may ask it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

FLAG = "--read-only"
ENV = "PATHVIZ_READ_ONLY"
ON_WORDS = ("1", "true", "yes", "on")
OFF_WORDS = ("", "0", "false", "no", "off")

_active = False  # the process-wide switch: set by configure(), never cleared


class ReadOnlySettingError(ValueError):
    """The app's own arguments or ``PATHVIZ_READ_ONLY`` hold something it does not know."""


def wanted(argv: Sequence[str], environ: Mapping[str, str]) -> bool:
    """Whether the app's arguments (those after ``--`` in ``streamlit run app.py -- ...``) or
    the environment ask for read-only mode. Unknown arguments and values raise
    :class:`ReadOnlySettingError` with one sentence: a teacher's typo must not serve a class a
    page with every control."""
    unknown = [a for a in argv if a != FLAG]
    if unknown:
        raise ReadOnlySettingError(
            f"The app was started with {unknown[0]!r}, which it does not know; the only option "
            f"after '--' is {FLAG} (streamlit run app.py -- {FLAG}).")
    value = environ.get(ENV, "").strip().lower()
    if value not in ON_WORDS + OFF_WORDS:
        raise ReadOnlySettingError(
            f"{ENV}={environ.get(ENV)!r} is neither on nor off; set it to 1 for a read-only "
            f"app or 0 (or leave it unset) for one with every control.")
    return FLAG in argv or value in ON_WORDS


def configure(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> bool:
    """Turn read-only mode on for this process if ``argv`` or the environment ask for it;
    returns whether it is on. Only ever turns it on: a later call that does not ask leaves it
    on. Raises :class:`ReadOnlySettingError` for a setting it does not know (the switch is
    then turned on, so that a page shown anyway changes nothing)."""
    global _active
    try:
        if wanted(argv, os.environ if environ is None else environ):
            _active = True
    except ReadOnlySettingError:
        _active = True  # fail closed
        raise
    return _active


def active() -> bool:
    """Whether this process serves a read-only app."""
    return _active


def refusal(action: str) -> str | None:
    """One sentence refusing ``action`` (e.g. "stop a training run") in read-only mode, or None
    when the app may do it. The write points raise their own error class with it."""
    if not _active:
        return None
    return (f"This app is read-only (started with {FLAG} or {ENV}=1), so it cannot {action}; "
            f"whoever runs the server can do it from their own copy of the app or the command "
            f"line.")
