"""Run folders: names, status, listing, the worker lock, start and stop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from pathviz import runs


@pytest.mark.parametrize("bad", ["../escape", "a/b", ".hidden", "", "-flag", "x" * 81, "..",
                                 "sp ace", "semi;colon"])
def test_bad_run_names_are_refused(tmp_path, bad):
    with pytest.raises(runs.RunError, match="invalid run name"):
        runs.run_paths(bad, tmp_path)


def test_run_paths_owns_the_file_names(tmp_path):
    p = runs.run_paths("demo", tmp_path)
    assert p.dir == tmp_path / "demo" and p.path.name == "path.h5"
    assert {p.config.name, p.status.name, p.resume.name, p.log.name, p.lock.name} == {
        "config.json", "status.json", "resume.pt", "train.log", "worker.lock"}
    assert not p.has_run()


def test_status_is_atomic_and_unreadable_status_is_reported(tmp_path):
    p = runs.run_paths("r1", tmp_path)
    p.dir.mkdir()
    runs.write_status(p, state="running", iteration=3)
    runs.write_status(p, iteration=4)
    st = runs.read_status(p)
    assert st["state"] == "running" and st["iteration"] == 4
    assert not [f for f in os.listdir(p.dir) if f.endswith(".tmp")]
    p.status.write_text("{half")
    assert runs.read_status(p)["state"] == "unknown"
    assert "unreadable status" in runs.read_status(p)["problem"]


def test_effective_state_of_a_dead_worker(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    st = {"state": "running", "pid": dead.pid, "pid_start": 1, "heartbeat": time.time()}
    assert runs.effective_state(st)[0] == "stopped"
    me = {"state": "running", "pid": os.getpid(),
          "pid_start": runs.process_start_time(os.getpid()), "heartbeat": time.time()}
    assert runs.effective_state(me) == ("running", "")
    # a recycled pid: same number, other start time
    assert runs.effective_state({**me, "pid_start": me["pid_start"] + 1})[0] == "stopped"
    assert runs.effective_state({"state": "failed", "reason": "diverged at iteration 3"}) == (
        "failed", "diverged at iteration 3")


def test_list_runs(tmp_path):
    for name, state in (("old", "finished"), ("new", "failed")):
        p = runs.run_paths(name, tmp_path)
        p.dir.mkdir()
        p.config.write_text(json.dumps({"model": "lenet5", "dataset": "digits"}))
        runs.write_status(p, state=state, reason="boom" if state == "failed" else "",
                          snapshots=7, iteration=70, total_iterations=100)
        time.sleep(0.01)
    (tmp_path / "empty").mkdir()
    (tmp_path / "stray.txt").write_text("x")
    listed = runs.list_runs(tmp_path)
    assert [r.name for r in listed] == ["new", "old"]
    assert (listed[0].state, listed[0].reason, listed[0].model, listed[0].snapshots) == (
        "failed", "boom", "lenet5", 7)
    assert runs.list_runs(tmp_path / "missing") == []


def test_lock_refuses_a_second_live_holder(tmp_path):
    p = runs.run_paths("locked", tmp_path)
    runs.acquire_lock(p)
    with pytest.raises(runs.RunError, match="already being trained by process"):
        runs.acquire_lock(p)
    runs.release_lock(p)
    assert not p.lock.exists()
    # a stale lock (its process is gone) is taken over
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    p.lock.write_text(json.dumps({"pid": dead.pid, "pid_start": 1}))
    runs.acquire_lock(p)
    assert json.loads(p.lock.read_text())["pid"] == os.getpid()
    runs.release_lock(p)


def test_start_twice_is_impossible_and_stop_marks_stopped(tmp_path):
    p = runs.run_paths("bg", tmp_path)
    args = ["--preset", "demo", "--epochs", "50"]
    pid = runs.start_worker(p, args)
    with pytest.raises(runs.RunError, match="already exists|already being trained"):
        runs.start_worker(p, args)
    deadline = time.time() + 120
    while time.time() < deadline and runs.read_status(p).get("iteration", 0) < 3:
        time.sleep(0.05)
    assert runs.effective_state(runs.read_status(p))[0] == "running"
    assert runs.list_runs(tmp_path)[0].state == "running"
    with pytest.raises(runs.RunError, match="already being trained"):
        runs.start_worker(p, resume=True)
    assert runs.stop_worker(p) is True
    assert runs.process_start_time(pid) is None
    st = runs.read_status(p)
    assert st["state"] == "stopped" and "SIGTERM" in st["reason"]
    assert runs.list_runs(tmp_path)[0].resumable
    assert runs.stop_worker(p) is False
