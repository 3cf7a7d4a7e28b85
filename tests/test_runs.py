"""Run folders: names, status, listing, the worker lock, start and stop."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import threading
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
    assert [r.processes for r in listed] == [1, 1]
    runs.write_status(runs.run_paths("old", tmp_path), processes=2)  # a DDP run
    runs.write_status(runs.run_paths("new", tmp_path), processes="2")  # not a count: 1
    assert {r.name: r.processes for r in runs.list_runs(tmp_path)} == {"old": 2, "new": 1}
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


# ---- issue 12: names, links, manifests, temp files ------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@pytest.mark.parametrize("bad", ["x\n", "run\n", "a\r", "ok\x00", "\u0661"])
def test_names_with_a_trailing_newline_or_odd_characters_are_refused(tmp_path, bad):
    with pytest.raises(runs.RunError, match="invalid run name"):
        runs.validate_name(bad)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=90))
def test_a_valid_name_never_leaves_the_root(name):
    import re

    try:
        runs.validate_name(name)
    except runs.RunError:
        assert not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}", name)
        return
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}", name)
    assert "/" not in name and "\n" not in name and name not in (".", "..")


def test_resolve_inside_follows_links_and_refuses_what_leaves_the_root(tmp_path):
    root = tmp_path / "ckpt"
    (root / "run" / "exports").mkdir(parents=True)
    outside = tmp_path / "secret.txt"
    outside.write_text("s")
    (root / "run" / "exports" / "leak.pt").symlink_to(outside)
    (root / "run" / "exports" / "ok.pt").write_text("x")
    (root / "run" / "exports" / "alias.pt").symlink_to(root / "run" / "exports" / "ok.pt")
    assert runs.resolve_inside(root / "run/exports/alias.pt", root) == \
        (root / "run/exports/ok.pt").resolve()
    with pytest.raises(runs.RunError, match=r"secret\.txt, outside .*ckpt; remove the link"):
        runs.resolve_inside(root / "run/exports/leak.pt", root)
    with pytest.raises(runs.RunError, match="outside"):
        runs.resolve_inside(root / ".." / "secret.txt", root)


def test_list_runs_skips_run_folders_that_link_outside_the_root(tmp_path):
    from tests.conftest import make_run

    root = tmp_path / "ckpt"
    root.mkdir()
    elsewhere = make_run(tmp_path / "other", "far", n=3)
    make_run(root, "near", n=3)
    (root / "linked").symlink_to(elsewhere.dir)
    (root / "alias").symlink_to(root / "near")
    assert sorted(r.name for r in runs.list_runs(root)) == ["alias", "near"]


def test_starting_in_a_folder_with_a_users_config_json_advises_another_folder(tmp_path):
    """Issue 36, defect 3 (the app's start): "already exists; ... resume it" was advice that
    fails for a folder of someone else's files; nothing is started or written."""
    paths = runs.run_paths("mine", tmp_path)
    paths.dir.mkdir()
    paths.config.write_text('{"my": 1}')
    with pytest.raises(runs.RunError, match=r"holds files that pathviz did not write; choose "
                       r"a new or empty folder for the run$"):
        runs.start_worker(paths)
    assert os.listdir(paths.dir) == ["config.json"]


def test_a_refused_taker_names_the_live_holder_not_the_stale_pid_still_in_the_file(tmp_path):
    """Issue 36, defect 1, step by step: the holder has the flock but its file still names a
    killed worker (the moment between flock and write); the refusal waits for the holder's
    own pid, and without one says that a stale lock was taken over."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    paths = runs.RunPaths(tmp_path / "r")
    paths.dir.mkdir()
    paths.lock.write_text(json.dumps({"pid": dead.pid, "pid_start": 1}))
    holder = os.open(paths.lock, os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a taker that has not written yet
    try:
        late = threading.Timer(0.3, lambda: paths.lock.write_text(json.dumps(
            {"pid": os.getppid(), "pid_start": runs.process_start_time(os.getppid())})))
        late.start()
        with pytest.raises(runs.RunError, match=rf"by process {os.getppid()}; stop it first$"):
            runs.acquire_lock(paths)
        late.join()
        paths.lock.write_text(json.dumps({"pid": dead.pid, "pid_start": 1}))  # never updated
        with pytest.raises(runs.RunError, match=rf"by another process \(which took over the "
                           rf"stale lock of process {dead.pid}, which has exited\); stop it "
                           rf"first$"):
            runs.acquire_lock(paths)
    finally:
        os.close(holder)
    runs.acquire_lock(paths)  # free now: taken over
    assert json.loads(paths.lock.read_text())["pid"] == os.getpid()
    runs.release_lock(paths)


def test_check_run_dir_refuses_files_links_and_foreign_folders(tmp_path):
    f = tmp_path / "afile"
    f.write_text("mine")
    with pytest.raises(runs.RunError, match="is a file, not a folder"):
        runs.check_run_dir(runs.RunPaths(f))
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "status.json").write_text('{"mine": 1}')
    with pytest.raises(runs.RunError, match="holds files that pathviz did not write"):
        runs.check_run_dir(runs.RunPaths(foreign))
    (tmp_path / "link").symlink_to(foreign)
    with pytest.raises(runs.RunError, match="is a symbolic link"):
        runs.check_run_dir(runs.RunPaths(tmp_path / "link"))
    assert (foreign / "status.json").read_text() == '{"mine": 1}' and f.read_text() == "mine"
    runs.check_run_dir(runs.RunPaths(tmp_path / "new"))  # absent: fine
    (tmp_path / "empty").mkdir()
    runs.check_run_dir(runs.RunPaths(tmp_path / "empty"))  # empty: fine


def test_clear_run_removes_only_what_the_manifest_lists(tmp_path):
    p = runs.RunPaths(tmp_path / "r")
    runs.claim_run_dir(p)
    for f in (runs.PATH_FILE, runs.CONFIG_FILE, runs.RESUME_FILE, runs.LOG_FILE):
        (p.dir / f).write_text("run")
    p.exports.mkdir()
    (p.exports / "made.pt").write_text("export")
    (p.exports / "user-notes.txt").write_text("keep me")
    (p.dir / "README.md").write_text("keep me too")
    outside = tmp_path / "outside.txt"
    outside.write_text("outside")
    runs.record_files(p, "exports/made.pt")
    runs.check_run_dir(p)  # a pathviz folder may be reused
    runs.clear_run(p)
    left = sorted(x.relative_to(p.dir).as_posix() for x in p.dir.rglob("*"))
    assert left == ["README.md", "exports", "exports/user-notes.txt", "manifest.json",
                    "train.log"]
    assert outside.read_text() == "outside"
    with pytest.raises(runs.RunError, match="not inside the run folder"):
        runs.record_files(p, "../outside.txt")
    q = runs.RunPaths(tmp_path / "foreign")
    q.dir.mkdir()
    (q.dir / "config.json").write_text("{}")
    with pytest.raises(runs.RunError, match="was not made by pathviz"):
        runs.clear_run(q)
    assert (q.dir / "config.json").exists()


def test_stale_temp_files_of_dead_writers_are_cleaned_when_the_lock_is_taken(tmp_path):
    p = runs.RunPaths(tmp_path / "t")
    p.dir.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (p.dir / f".resume.pt.{dead.pid}.tmp").write_text("half")
    (p.dir / f".path.h5.{dead.pid}.tmp").write_text("half")
    (p.dir / f".status.json.{os.getppid()}.tmp").write_text("live writer")  # alive: kept
    (p.dir / "notes.tmp").write_text("not ours")
    runs.acquire_lock(p)
    try:
        assert sorted(os.listdir(p.dir)) == sorted(
            [f".status.json.{os.getppid()}.tmp", "notes.tmp", "worker.lock"])
    finally:
        runs.release_lock(p)


def test_status_still_records_failure_on_a_full_disk(tmp_path, monkeypatch):
    import errno

    p = runs.RunPaths(tmp_path / "full")
    p.dir.mkdir()
    runs.write_status(p, state="running", iteration=5, config={"model": "lenet5" * 20})

    def no_room(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(json, "dump", no_room)  # the temp-file route fails like a full disk
    runs.write_status(p, state="failed", reason="disk full at iteration 7")
    st = runs.read_status(p)
    assert (st["state"], st["reason"], st["iteration"]) == ("failed", "disk full at iteration 7", 5)
    assert sorted(os.listdir(p.dir)) == ["status.json"]


def test_lock_is_released_by_the_kernel_when_its_holder_dies(tmp_path):
    p = runs.RunPaths(tmp_path / "k")
    code = ("import sys, time; from pathviz import runs; from pathlib import Path; "
            f"runs.acquire_lock(runs.RunPaths(Path({str(p.dir)!r}))); print('held', flush=True); "
            "time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "held\n"
    with pytest.raises(runs.RunError, match=f"already being trained by process {proc.pid}"):
        runs.acquire_lock(p)
    assert runs.lock_held(p)
    proc.kill()
    proc.wait()
    assert not runs.lock_held(p)
    runs.acquire_lock(p)  # the dead holder's file is taken over
    assert json.loads(p.lock.read_text())["pid"] == os.getpid()
    runs.release_lock(p)


def test_several_processes_start_under_torchrun(tmp_path):
    paths = runs.run_paths("r", tmp_path)
    one = runs.worker_command(paths, ["--epochs", "2"])
    assert one[1:3] == ["-m", "pathviz.train"] and "torch.distributed.run" not in one
    two = runs.worker_command(paths, ["--epochs", "2"], resume=True, processes=2)
    assert two[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    assert two[5:] == ["-m", "pathviz.train", "--out", str(paths.dir), "--no-progress",
                       "--resume", "--epochs", "2"]
    for bad in (0, 65, 1.5, "2"):
        with pytest.raises(runs.RunError, match="number of processes"):
            runs.start_worker(paths, [], processes=bad)
    assert not paths.dir.exists()  # nothing written
