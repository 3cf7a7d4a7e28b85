"""URL parameters: any string gives a safe value and at most one plain sentence (property tests)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pathviz.ui import urlstate as u
from pathviz.ui.text import BREAK

ITERS = np.arange(0, 300, 5)  # snapshots at 0, 5, ..., 295


@given(st.text(max_size=60))
def test_any_iteration_text_gives_an_index_in_range_or_the_default(raw):
    idx, note = u.parse_iteration(raw, ITERS)
    assert idx is None or 0 <= idx < len(ITERS)
    if raw and (idx is None or int(ITERS[idx]) != u.parse_int(raw)):
        assert note and note.endswith(".")  # anything not taken as is is said, in one sentence
    if note:
        assert "\n" not in note


@given(st.integers(min_value=-10**18, max_value=10**18))
def test_whole_numbers_clamp_to_the_run(value):
    idx, note = u.parse_iteration(str(value), ITERS)
    expected = int(np.clip(np.searchsorted(ITERS, value, side="right") - 1, 0, len(ITERS) - 1))
    assert idx == expected
    assert (note is None) == (value in ITERS.tolist())


@pytest.mark.parametrize("raw, idx, phrase", [
    ("²", None, "not a whole number"), ("-1", 0, "before this run's first snapshot"),
    ("1e9", None, "not a whole number"), ("abc", None, "not a whole number"),
    ("1000000000", 59, "after this run's last snapshot"), ("52", 10, "no snapshot at"),
    ("55", 11, None), ("", None, None), (None, None, None), ("9" * 5000, None, "not a whole"),
])
def test_iteration_examples(raw, idx, phrase):
    got, note = u.parse_iteration(raw, ITERS)
    assert got == idx
    assert (note is None) if phrase is None else (phrase in note)


@given(st.text(max_size=80))
def test_user_text_in_notes_is_escaped_and_short(raw):
    for note in (u.parse_view(raw)[1], u.parse_layer(raw, ["conv1"])[1],
                 u.parse_compare(raw, ["a", "b"], "a")[1], u.parse_flag(raw, "play")[1],
                 u.parse_iteration(raw, ITERS)[1]):
        if note is None:
            continue
        assert len(note) < 400
        quoted = re.findall(r"“(.*?)”", note, flags=re.S)
        for q in quoted:
            assert not re.search(r"(?<!\\)[*_`\[\]<>$:#|~]", q), (raw, note)
            assert all(c.isprintable() or c == BREAK for c in q)  # the joiner that stops links


@given(st.text(max_size=30))
def test_view_is_always_a_known_view(raw):
    slug, note = u.parse_view(raw)
    assert slug in u.VIEWS
    assert (note is None) == (raw == "" or raw.strip().lower() in u.VIEWS)


@given(st.lists(st.sampled_from(["a", "b", "c", "zz", "a b", ",", ""]), max_size=12))
def test_compare_keeps_known_runs_in_order_without_duplicates(parts):
    raw = ",".join(parts)
    chosen, note = u.parse_compare(raw, ["a", "b", "c"], "a")
    wanted = [p.strip() for p in raw.split(",") if p.strip()]
    assert chosen == list(dict.fromkeys(p for p in wanted if p in ("a", "b", "c")))[:8] or \
        (not raw and chosen == ["a"])
    assert (note is not None) == any(p not in ("a", "b", "c") for p in wanted)


def test_layer_and_flag_defaults():
    assert u.parse_layer("conv2", ["conv1", "conv2"]) == ("conv2", None)
    name, note = u.parse_layer("x_y", ["conv1"])
    assert name == "conv1" and "x\\_y" in note
    assert u.parse_flag("1", "play") == (True, None)
    assert u.parse_flag("OFF", "play") == (False, None)
    assert u.parse_flag("maybe", "play")[0] is False


def test_md_escape_leaves_plain_words_alone():
    assert u.md_escape("conv1 weights") == "conv1 weights"
    assert u.md_escape("**bold** :red[x] $x$") == r"\*\*bold\*\* \:red\[x\] \$x\$"
