"""Read-only mode: the switch, and the refusals at every write point (not only hidden buttons)."""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path

import pytest

from pathviz import readonly, runs, tickets
from tests.conftest import make_run


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` (and every folder) with its content's hash."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            if p.is_file() else "dir" for p in sorted(root.rglob("*"))}


@pytest.fixture
def off(monkeypatch):
    """The process switch off, restored after the test (monkeypatch): a test turns it on
    with :func:`on` once it has written its files."""
    monkeypatch.setattr(readonly, "_active", False)


def on() -> None:
    assert readonly.configure(["--read-only"], {}) is True


@pytest.fixture
def teacher_run(tmp_path):
    """A run that is training: its status names a live process of its own session (a sleep
    standing in for the teacher's worker), so a Stop that got through would kill it."""
    paths = make_run(tmp_path / "checkpoints", "class", n=20, state="running")
    proc = subprocess.Popen(["sleep", "120"], start_new_session=True)
    runs.write_status(paths, state="running", pid=proc.pid,
                      pid_start=runs.process_start_time(proc.pid), heartbeat=time.time())
    yield paths, proc
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("argv, env, on", [
    ([], {}, False), (["--read-only"], {}, True), ([], {"PATHVIZ_READ_ONLY": "1"}, True),
    ([], {"PATHVIZ_READ_ONLY": " TRUE "}, True), ([], {"PATHVIZ_READ_ONLY": "on"}, True),
    ([], {"PATHVIZ_READ_ONLY": "0"}, False), ([], {"PATHVIZ_READ_ONLY": ""}, False),
    (["--read-only"], {"PATHVIZ_READ_ONLY": "0"}, True),  # either asks: on
])
def test_what_asks_for_read_only(argv, env, on):
    assert readonly.wanted(argv, env) is on


@pytest.mark.parametrize("argv, env, words", [
    (["--readonly"], {}, "'--readonly'"), (["--read-only", "x"], {}, "'x'"),
    ([], {"PATHVIZ_READ_ONLY": "maybe"}, "'maybe'"),
])
def test_an_unknown_setting_is_one_sentence_and_fails_closed(off, argv, env, words):
    with pytest.raises(readonly.ReadOnlySettingError) as e:
        readonly.configure(argv, env)
    msg = str(e.value)
    assert words in msg and msg.count(". ") == 0 and "\n" not in msg
    assert readonly.active()  # a page shown anyway changes nothing


def test_the_switch_only_turns_on(off):
    assert readonly.configure([], {}) is False and readonly.refusal("x") is None
    assert readonly.configure([], {"PATHVIZ_READ_ONLY": "1"}) is True
    # a later configure that does not ask (another rerun, another page) leaves it on
    assert readonly.configure([], {"PATHVIZ_READ_ONLY": "0"}) is True
    assert readonly.active() and not hasattr(readonly, "disable")


def test_a_student_cannot_stop_the_teachers_run(off, teacher_run):
    paths, proc = teacher_run
    on()
    before = tree(paths.dir)
    with pytest.raises(runs.RunError, match="read-only.*cannot stop a training run"):
        runs.stop_worker(paths, timeout=1)
    time.sleep(0.2)
    assert proc.poll() is None  # still training
    assert tree(paths.dir) == before


def test_the_same_stop_goes_through_without_read_only(teacher_run, off):
    paths, proc = teacher_run  # the refusal above is the switch's doing, not a broken stop
    assert runs.stop_worker(paths, timeout=5) is True
    assert proc.wait(timeout=5) is not None


def test_no_run_is_started_or_resumed(off, tmp_path):
    root = tmp_path / "checkpoints"
    paths = make_run(root, "old", n=10, state="stopped")
    paths.resume.write_bytes(b"state")
    on()
    before = tree(root)
    for name, resume in (("new", False), ("old", True)):
        with pytest.raises(runs.RunError, match="read-only.*cannot start or resume"):
            runs.start_worker(runs.run_paths(name, root), ["--preset", "demo"], resume=resume)
    assert tree(root) == before  # no folder, no status, no log, no lock


def test_run_files_are_not_written(off, tmp_path):
    paths = make_run(tmp_path, "r", n=5)
    on()
    before = tree(tmp_path)
    with pytest.raises(runs.RunError, match="read-only"):
        runs.write_status(paths, state="stopped")
    with pytest.raises(runs.RunError, match="read-only"):
        runs.write_json_atomic(paths.dir / "anything.json", {})
    assert tree(tmp_path) == before


def test_no_retrain_is_started_or_stopped(off, tmp_path):
    paths = make_run(tmp_path, "r", n=20)
    on()
    before = tree(tmp_path)
    with pytest.raises(tickets.TicketError, match="read-only.*cannot start a retrain"):
        tickets.start_retrain(paths.dir, 0, ["rewind"], epochs=1, seeds=[0], reference="self")
    with pytest.raises(tickets.TicketError, match="read-only.*cannot stop a retrain"):
        tickets.stop_retrain(paths.dir)
    assert tree(tmp_path) == before


def test_no_export_is_written_into_the_run(off, tmp_path):
    from pathviz import export as ex

    paths = make_run(tmp_path, "r", n=20)
    on()
    before = tree(tmp_path)
    for out in (None, paths.dir / "mine.pt2", tmp_path / "beside.pt2"):
        with pytest.raises(ex.ExportError, match="read-only.*cannot write an export"):
            ex.export(paths.dir, 0, "compact", "pt2", out)
    assert tree(tmp_path) == before
