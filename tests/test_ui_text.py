"""Untrusted text: literal in markdown and in plotly, nothing that links, loads or reorders."""

from __future__ import annotations

import html
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pathviz.ui.text import BIDI, BREAK, clean, clean_rows, inert, inert_plotly

# what GitHub markdown (remark-gfm, as Streamlit uses it) turns into a link after parsing: a
# scheme, www., an e-mail address; and the emoji shortcodes that remark-emoji replaces
_AUTOLINK = re.compile(r"[a-z][a-z0-9+.-]*:/|www\.|[-.\w+]+@[-\w]+(\.[-\w]+)+|:[\w+-]+:", re.I)
_PUNCT = re.compile(r"[^,;?\w\s]", re.A)  # ASCII punctuation that markdown may read


def _unescaped(md: str) -> bool:
    """True if ``md`` holds ASCII punctuation that no backslash escapes."""
    return bool(_PUNCT.search(re.sub(r"\\.", "", md, flags=re.S).encode("ascii", "ignore")
                              .decode()))


HOSTILE = [
    "[click me](http://evil.example/phish)", "http://evil.example/a", "HTTPS://evil.example",
    "ftp://evil.example/f", "www.evil.example", "WWW.evil.example/x", "x@evil.example",
    "mailto:x@evil.example", "![x](http://127.0.0.1:9/a.png)",
    '<a href="http://evil.example/h">h</a>', "<img src=http://127.0.0.1:9/i.png>",
    "<script>alert(1)</script>", "\u202eexe.txt", "a\u2066b\u2069c", ":smile: :material/link:",
    "**bold** $x$ :red[x]", "line\nbreak\ttab", "wwww.evil.example", "<http://evil.example>",
]


def _shown(md: str) -> str:
    """The text markdown shows for ``md`` made of escapes and plain characters."""
    return re.sub(r"\\(.)", r"\1", md)


@pytest.mark.parametrize("raw", HOSTILE)
def test_inert_markdown_shows_the_text_and_nothing_links(raw):
    md = inert(raw)
    assert not _unescaped(md), md  # no markdown, HTML, LaTeX
    shown = _shown(md)
    assert not _AUTOLINK.search(shown), shown  # nothing auto-links, nothing is a shortcode
    assert shown.replace(BREAK, "") == clean(raw)  # reads as written
    assert not set(shown) & BIDI and "\n" not in shown


@pytest.mark.parametrize("raw", HOSTILE)
def test_inert_plotly_draws_no_tag(raw):
    text = inert_plotly(raw)
    assert "<" not in text and ">" not in text
    assert not re.search(r"&(?!amp;|lt;|gt;)", text)
    assert html.unescape(text) == clean(raw)
    assert not set(text) & BIDI


def test_examples():
    assert inert("conv1 weights") == "conv1 weights"
    assert inert("conv2: 4 of 16") == "conv2\\: 4 of 16"  # no joiner before a space
    assert inert("http://e.x") == f"http\\:{BREAK}\\/\\/e\\.x"
    assert inert("www.e.x") == f"www{BREAK}\\.e\\.x"
    assert inert("run-www") == f"run\\-www{BREAK}"  # the caller's next character may be a dot
    assert inert("a@b.c") == f"a\\@{BREAK}b\\.c"
    assert inert("\u202eabc\u2069") == "?abc?"
    assert inert("x" * 50, limit=10) == "x" * 9 + "…"
    assert inert_plotly("<b>a & b</b>") == "&lt;b&gt;a &amp; b&lt;/b&gt;"
    assert inert(f"x{BREAK}y") == "x?y"  # a joiner in the input is not taken for ours
    assert clean_rows([{"layer": "\u202ex", "groups": 3}]) == [{"layer": "?x", "groups": 3}]


@given(st.text(max_size=80))
def test_any_text_is_inert(raw):
    md = inert(raw)
    shown = _shown(md)
    assert not _unescaped(md)
    assert not _AUTOLINK.search(shown)
    assert shown.replace(BREAK, "") == clean(raw)
    assert all(c.isprintable() or c == BREAK for c in md)
    assert html.unescape(inert_plotly(raw)) == clean(raw)
