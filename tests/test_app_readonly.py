"""The app in read-only mode through AppTest: the controls that write are absent, the header
says so, a replayed Stop is refused at the write point, and nothing on the page turns it off."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from pathviz import readonly, runs
from tests.conftest import make_run, plain
from tests.test_readonly import tree

APP = str(Path(__file__).parents[1] / "app.py")


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    r = tmp_path / "checkpoints"
    r.mkdir()
    monkeypatch.setenv("PATHVIZ_CHECKPOINTS", str(r))
    monkeypatch.setenv("PATHVIZ_REFRESH", "0")
    monkeypatch.delenv(readonly.ENV, raising=False)
    monkeypatch.setattr(readonly, "_active", False)  # restored after the test
    return r


@pytest.fixture
def teacher(root):
    """A run training under a live process of its own session (a sleep standing in for the
    worker): a Stop that got through would end it."""
    paths = make_run(root, "class", n=30, state="running")
    proc = subprocess.Popen(["sleep", "120"], start_new_session=True)
    runs.write_status(paths, state="running", pid=proc.pid,
                      pid_start=runs.process_start_time(proc.pid), heartbeat=time.time(),
                      iteration=145, total_iterations=300)
    yield paths, proc
    proc.kill()
    proc.wait()


def run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def app(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in query.items():
        at.query_params[k] = v
    return run(at)


def labels(at: AppTest) -> set[str]:
    return {b.label for b in at.button} | {t.label for t in at.toggle}


def text(at: AppTest) -> str:
    return " ".join(plain(str(e.value)) for kind in ("markdown", "caption", "subheader", "info",
                                               "error", "warning") for e in at.get(kind))


def test_the_flag_after_double_dash_turns_it_on(root, teacher, monkeypatch):
    monkeypatch.setattr(sys, "argv", [APP, "--read-only"])  # streamlit run app.py -- --read-only
    at = app()
    assert "Stop" not in labels(at) and "New run" not in labels(at)
    assert "read-only" in text(at)


def test_an_unknown_option_is_one_sentence_and_nothing_else(root, teacher, monkeypatch):
    monkeypatch.setattr(sys, "argv", [APP, "--readonly"])
    at = app()
    assert [plain(e.value) for e in at.error] == [
        "The app was started with '--readonly', which it does not know; the only option "
        "after '--' is --read-only (streamlit run app.py -- --read-only)."]
    assert not at.button and not at.toggle  # no page with controls under a teacher's typo


def test_the_controls_that_write_are_absent_and_the_header_says_so(root, teacher, monkeypatch):
    at = app()
    assert {"Stop", "New run"} <= labels(at)  # the same page with every control
    assert "read-only" not in text(at)
    monkeypatch.setenv(readonly.ENV, "1")
    at = app()
    assert "Stop" not in labels(at) and "Resume" not in labels(at)
    assert "New run" not in labels(at)
    assert "read-only" in at.subheader[0].value and "read-only" in text(at)
    assert at.get("progress")  # the live view itself is there


def test_no_resume_and_no_demo(root, monkeypatch):
    monkeypatch.setenv(readonly.ENV, "1")
    at = app()  # no runs: the empty page
    assert "Start the demo run" not in labels(at)
    assert "cannot start the demo" in text(at)
    monkeypatch.setattr(readonly, "_active", False)  # this test writes the next run itself
    paths = make_run(root, "old", n=10, state="stopped")
    paths.resume.write_bytes(b"x")
    at = app(run="old")
    assert "Resume" not in labels(at)


def test_export_is_built_in_memory_and_tickets_do_not_retrain(root, monkeypatch):
    make_run(root, "r", n=30)
    monkeypatch.setenv(readonly.ENV, "1")
    at = app(run="r", view="export", iteration="0")
    assert "Build for download" in labels(at)
    assert "Export" not in labels(at)
    assert not [c for c in at.checkbox if c.label.startswith("Replace")]
    at = app(run="r", view="tickets", iteration="0")
    assert "Retrain in background" not in labels(at)
    assert "cannot retrain" in text(at)


def test_a_replayed_stop_is_refused_in_one_sentence(root, teacher, monkeypatch):
    """The page was drawn with every control (its Stop's callback is registered in the
    session); then the server is read-only and the browser replays the click: the refusal is
    at the write point, runs.stop_worker, not only in the hidden button."""
    paths, proc = teacher
    at = app()
    stop = next(b for b in at.button if b.label == "Stop")
    readonly.configure(["--read-only"], {})
    before = tree(root)
    stop.click()
    run(at)
    assert any("read-only" in plain(e.value) and "cannot stop a training run" in plain(e.value)
               for e in at.error)
    time.sleep(0.2)
    assert proc.poll() is None and tree(root) == before


@pytest.mark.parametrize("query", [
    {"read_only": "0"}, {"readonly": "false"}, {"read-only": "off"}, {"mode": "edit"},
    {"PATHVIZ_READ_ONLY": "0"}, {"admin": "1"},
])
def test_nothing_on_the_page_turns_it_off(root, teacher, monkeypatch, query):
    monkeypatch.setenv(readonly.ENV, "1")
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in query.items():
        at.query_params[k] = v
    for key in ("read_only", "readonly", "read-only", "PATHVIZ_READ_ONLY"):
        at.session_state[key] = False
    run(at)
    monkeypatch.delenv(readonly.ENV)  # even the environment changing later does not
    for _ in range(2):
        run(at)
        assert "Stop" not in labels(at) and "New run" not in labels(at)
        assert "read-only" in at.subheader[0].value
    assert readonly.active()


@pytest.mark.parametrize("address, warned", [("localhost", False), ("0.0.0.0", True),
                                              (None, True)])
def test_a_page_on_every_interface_with_every_control_says_so(root, teacher, address, warned):
    from streamlit import config

    old = config.get_option("server.address")
    config.set_option("server.address", address)
    try:
        at = app()
        assert any("every network interface" in plain(w.value) for w in at.warning) is warned
        config.set_option("server.address", "0.0.0.0")
        readonly.configure(["--read-only"], {})
        at = app()  # read-only on every interface is the class set-up: nothing to warn of
        assert not any("every network interface" in plain(w.value) for w in at.warning)
    finally:
        config.set_option("server.address", old)
