"""What the URL may say, parsed into safe values with one sentence for anything unusable.

Every function here is pure (no Streamlit), so property tests can throw arbitrary strings at it.
Each returns ``(value, note)``: ``value`` is always safe to use, ``note`` is ``None`` or one
plain sentence for the page, in markdown. Notes quote the user's text through :func:`quote`,
which keeps it short and inert (:func:`pathviz.ui.text.inert`): shown literally, never as a
link, an image or HTML.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pathviz.ui.text import inert, md_escape  # noqa: F401  (md_escape: for older callers)

# URL slug -> view title, in the order of the view switcher
VIEWS: dict[str, str] = {
    "overview": "Overview",
    "layer": "Layer",
    "metrics": "Metrics & stopping",
    "filters": "Filters",
    "export": "Export",
    "compare": "Compare",
    "tickets": "Tickets",
    "about": "About the method",
}
SLUG_OF = {title: slug for slug, title in VIEWS.items()}
DEFAULT_VIEW = "overview"
MAX_DIGITS = 30  # longer digit strings are not iterations (and clamp anyway)
COMPARE_MAX = 8


def quote(text: str, limit: int = 40) -> str:
    """``text`` for a sentence shown as markdown: in quotes, cut at ``limit``, and inert (see
    :func:`pathviz.ui.text.inert`: literal, printable, nothing that links)."""
    return f"“{inert(text, limit)}”"


def parse_int(raw: str) -> int | None:
    """A plain ASCII integer (optional leading '-'), or None: '²', '1e9', '0x10', ' 5' are not."""
    body = raw[1:] if raw.startswith("-") else raw
    if not body or len(body) > MAX_DIGITS or not (body.isascii() and body.isdigit()):
        return None
    return int(raw)


def parse_iteration(raw: str | None, iterations: np.ndarray) -> tuple[int | None, str | None]:
    """The snapshot index that ``?iteration=raw`` selects among ``iterations`` (ascending).

    Returns ``(None, None)`` when the URL names no iteration; ``(None, note)`` when it names
    something that is not an iteration (the caller then uses its default); otherwise the index
    of the snapshot at or before it, clamped into the run, with a note if it was clamped or
    moved to the nearest snapshot.
    """
    if raw is None or raw == "":
        return None, None
    n = len(iterations)
    if n == 0:
        return None, None
    value = parse_int(raw)
    if value is None:
        return None, (f"The link asks for iteration {quote(raw)}, which is not a whole number; "
                      f"showing the default iteration instead.")
    first, last = int(iterations[0]), int(iterations[-1])
    if value < first:
        return 0, (f"The link asks for iteration {value}, before this run's first snapshot; "
                   f"showing iteration {first} instead.")
    if value > last:
        return n - 1, (f"The link asks for iteration {value}, after this run's last snapshot; "
                       f"showing iteration {last} instead.")
    i = int(np.searchsorted(iterations, value, side="right")) - 1
    if int(iterations[i]) != value:
        return i, (f"There is no snapshot at iteration {value}; showing the one before it, "
                   f"iteration {int(iterations[i])}.")
    return i, None


def parse_view(raw: str | None) -> tuple[str, str | None]:
    """The view slug of ``?view=raw`` (one of :data:`VIEWS`), or the Overview with a note."""
    if raw is None or raw == "":
        return DEFAULT_VIEW, None
    key = raw.strip().lower()
    if key in VIEWS:
        return key, None
    return DEFAULT_VIEW, (f"The link asks for a view {quote(raw)} that does not exist; showing "
                          f"the Overview. Views: {', '.join(VIEWS)}.")


def parse_layer(raw: str | None, names: Sequence[str]) -> tuple[str | None, str | None]:
    """The layer named by ``?layer=raw`` if the run has it, else the first layer with a note."""
    default = names[0] if names else None
    if raw is None or raw == "":
        return default, None
    if raw in names:
        return raw, None
    return default, (f"This run has no layer {quote(raw)}; showing "
                     f"{inert(default) if default else 'none'} instead.")


def parse_compare(raw: str | None, runs: Sequence[str], current: str
                  ) -> tuple[list[str], str | None]:
    """The runs of ``?compare=a,b`` that exist (in URL order, no duplicates, at most 8).

    Without the parameter, the current run alone. Unknown names are dropped with a note.
    """
    if raw is None or raw == "":
        return ([current] if current in runs else []), None
    wanted, unknown, out = [p.strip() for p in raw.split(",") if p.strip()], [], []
    for name in wanted:
        if name in runs:
            if name not in out:
                out.append(name)
        else:
            unknown.append(name)
    notes = []
    if unknown:
        notes.append(f"The link names {len(unknown)} run(s) that do not exist here "
                     f"({', '.join(quote(u, 24) for u in unknown[:3])}); they are left out.")
    if len(out) > COMPARE_MAX:
        notes.append(f"Only the first {COMPARE_MAX} runs of the link are compared.")
        out = out[:COMPARE_MAX]
    return out, " ".join(notes) or None


def parse_flag(raw: str | None, name: str) -> tuple[bool, str | None]:
    """``?name=1|0|true|false|yes|no|on|off`` as a bool; anything else is off with a note."""
    if raw is None or raw == "":
        return False, None
    key = raw.strip().lower()
    if key in ("1", "true", "yes", "on"):
        return True, None
    if key in ("0", "false", "no", "off"):
        return False, None
    return False, f"The link's {name}={quote(raw)} is not on or off; it is taken as off."
