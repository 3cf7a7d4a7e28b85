"""Untrusted text (from a URL, a file or a form) as the page shows it: literally, never as a link,
an image, HTML, or text that reads in another direction.

Streamlit renders ``st.warning``/``st.caption``/``st.markdown``/labels/``help`` as GitHub markdown,
and GitHub markdown turns a bare ``http://…``, ``www.…`` or ``name@host`` into a link *after*
parsing, so backslash escapes alone do not stop it (an escaped ``[x](http://…)`` still leaves a
live ``http://…)``). :func:`inert` therefore also puts an invisible word joiner after every ``@``,
after a ``:`` that is not followed by a space, and after a ``www`` before a dot: no URL scheme,
e-mail address or emoji shortcode survives, and the text reads the same (``conv2: 4`` stays
searchable as it is). Plotly draws a subset of HTML (``<a href>``, ``<br>``…) in titles,
legends, tick labels and hovers: :func:`inert_plotly` is the same text for figures. Where
Streamlit shows text as it is (option labels of a select box, table cells), :func:`clean` (and
:func:`clean_rows`) keeps it printable and free of bidi controls; the other two build on it.

Pure (no Streamlit), so tests throw arbitrary strings at it.
"""

from __future__ import annotations

import html
import re

BREAK = "\u2060"  # WORD JOINER: invisible, not a word character, not a space
# bidi embeddings, overrides and isolates: they reorder what follows them on the line
BIDI = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))
_MD_SPECIAL = set("\\`*_{}[]()#+-.!|<>~$:&=\"'^%@/")
# what GitHub markdown links from: a scheme (``x:`` then no space), ``@``, ``www.`` (also a
# trailing ``www``: the caller's next character may be a dot)
_LINKY = re.compile(r":(?!\s)|@|www(?=\.|$)", re.IGNORECASE)


def md_escape(text: str) -> str:
    """``text`` with every ASCII punctuation mark that markdown, its ``:directive[]``/``:emoji:``
    syntax, LaTeX (``$``) or HTML could read backslash-escaped (CommonMark allows escaping any
    ASCII punctuation). Not enough for untrusted text on its own: use :func:`inert`."""
    return "".join("\\" + c if c in _MD_SPECIAL else c for c in str(text))


def clean(text: object, limit: int | None = None) -> str:
    """``text`` as one printable line: line breaks and tabs become spaces; bidi controls,
    zero-width and other non-printable characters become ``?``; cut at ``limit`` characters
    (with ``…``)."""
    out = "".join(" " if c in "\t\n\r\v\f" else c if c.isprintable() and c not in BIDI
                  else "?" for c in str(text))
    if limit is not None and len(out) > limit:
        out = out[: max(limit - 1, 0)] + "…"
    return out


def inert(text: object, limit: int | None = None) -> str:
    """Markdown source that Streamlit shows as the literal ``text`` (cleaned and cut by
    :func:`clean`): markdown escaped, and nothing that auto-links (URL schemes, ``www.``,
    e-mail addresses) or reads as an emoji shortcode. The one way this app shows a run name,
    layer name, file name, URL value, config value or error message in markdown."""
    return md_escape(_LINKY.sub(lambda m: m.group(0) + BREAK, clean(text, limit)))


def inert_plotly(text: object, limit: int | None = None) -> str:
    """``text`` (cleaned by :func:`clean`) for a plotly title, legend, axis label or hover:
    ``&``, ``<`` and ``>`` as entities, so plotly draws no tag (``<a href>``, ``<br>``…) from
    it and shows the literal text."""
    return html.escape(clean(text, limit), quote=False)


def clean_rows(rows: list[dict]) -> list[dict]:
    """Table rows for ``st.dataframe`` (plain text cells: no markdown, no HTML) with every text
    cell cleaned by :func:`clean`, so no bidi control reorders a row."""
    return [{k: clean(v) if isinstance(v, str) else v for k, v in row.items()} for row in rows]


# shown where a view draws the support and the run has none
NO_GAMMA = ("This run has no Γ layers (trained with --optimizer sgd, for example), so it has no "
            "support to show; its metrics are on Metrics & stopping.")
