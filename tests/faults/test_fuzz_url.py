"""Fuzzing the app's URL parameters (issue 35, item 3): the whole page, through Streamlit's
AppTest harness, opened with ``?run=``, ``?iteration=``, ``?view=``, ``?layer=``,
``?compare=``, ``?play=``, ``?present=`` and unknown parameters holding good values and hostile
ones (markdown links, HTML, control characters and NUL, path traversal, 10,000 characters,
numbers past 2**63, NaN). Every case asserts: the page runs with no exception, a value the
app cannot use is named in a note on the page (the run and the view, which every page shows),
and nothing under the folder of runs is written. The parsers themselves have their own
property tests (tests/test_ui_urlstate.py); this is where a user meets them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from pathviz import runs
from pathviz.ui import urlstate
from tests.conftest import make_run
from tests.faults.fuzz import fuzz, tree_hash

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")

HOSTILE = ["", " ", "0", "-1", "-0", "9" * 30, "9" * 400, "1e9", "nan", "inf", "0x10", "²",
           "[x](http://e.x)", "![i](http://e.x/i.png)", "<img src=x onerror=alert(1)>",
           "**b**", "`c`", "$x$", "\x00", "a\nb", "\u202e", "../..", "/etc/passwd", "..",
           "alpha ", "ALPHA", "alpha,alpha,alpha", ",,,", "x" * 10_000, "🙂", "%00", "%2e%2e"]
text = st.text(max_size=40)


def values(good: list[str]):
    return st.sampled_from(good) | st.sampled_from(HOSTILE) | text


PARAMS = {
    "run": values(["alpha", "beta"]),
    "iteration": values(["0", "5", "45", "95", "12"]),
    "view": values(list(urlstate.VIEWS)),
    "layer": values(["conv1", "conv2", "fc1"]),
    "compare": values(["alpha,beta", "beta", "alpha,gamma"]),
    "play": values(["1", "0", "on"]),
    "present": values(["1", "0"]),
    "zz" + "x" * 5: values(["1"]),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("url") / "checkpoints"
    root.mkdir()
    make_run(root, "alpha", n=20)
    make_run(root, "beta", n=12)
    return root


@fuzz(30)
@given(query=st.fixed_dictionaries({}, optional=PARAMS))
def test_any_url_gives_a_page_with_notes_and_writes_nothing(world, monkeypatch, query):
    monkeypatch.setenv("PATHVIZ_CHECKPOINTS", str(world))
    monkeypatch.setenv("PATHVIZ_REFRESH", "0")
    before = tree_hash(world)
    at = AppTest.from_file(APP, default_timeout=120)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    page = "\n".join([w.value for w in at.warning] + [c.value for c in at.caption] +
                     [i.value for i in at.info] + [m.value for m in at.markdown])
    page = re.sub(r"\\(.)", r"\1", page)
    run = query.get("run")
    shown = run in (None, "alpha", "beta")  # any other name opens the run picker, no views
    if not shown:
        assert "choose a run in the sidebar's *Run* list" in page, (run, page[:2000])
        event("note: run")
    present = urlstate.parse_flag(query.get("present"), "present")[0]
    if shown and urlstate.parse_view(query.get("view"))[1] and not present:
        assert "does not exist; showing the Overview" in page, (query.get("view"), page[:2000])
        event("note: view")
    assert tree_hash(world) == before, f"the page for {query!r} wrote under the runs"
    assert not any(p.name.startswith(".") and p.name.endswith(".tmp")
                   for p in world.rglob("*")), "a temp file was left"
    assert sorted(p.name for p in world.iterdir()) == ["alpha", "beta"]
    assert runs.read_status(runs.run_paths("alpha", world))["state"] == "finished"
