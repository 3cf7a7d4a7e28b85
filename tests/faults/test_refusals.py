"""Refusals change nothing (issue 20, item 5): every exit-2 path of train, retrain, export and
inspect leaves the run folder byte-identical, locks and stale temp files included.

The folder under test is what a SIGKILL leaves: status "running" with a dead pid, the killed
worker's ``worker.lock`` (its bytes name the dead pid), a stale temp file, and a resume state.
Before the fix a refused ``--resume`` took the stale lock over and released it (unlinked),
and cleaned the temp file.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from pathviz import runs
from tests.faults.zygote import Zygote

ARGS = ["--preset", "demo", "--epochs", "6", "--weights-every", "10", "--no-progress"]


def snapshot(d: Path) -> dict[str, bytes | None]:
    """Every path under ``d`` (folders as None) and every file's bytes."""
    out: dict[str, bytes | None] = {}
    for p in sorted(d.rglob("*")):
        rel = p.relative_to(d).as_posix()
        out[rel] = None if p.is_dir() and not p.is_symlink() else (
            os.readlink(p).encode() if p.is_symlink() else p.read_bytes())
    return out


@pytest.fixture(scope="module")
def zygote():
    with Zygote() as z:
        yield z


@pytest.fixture(scope="module")
def killed(zygote, tmp_path_factory) -> Path:
    """A run SIGKILLed mid-run, after its first resume states, with a stale temp file."""
    run = tmp_path_factory.mktemp("killed") / "run"
    pid = zygote.start([*ARGS, "--out", str(run)], run.parent / "log")
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            if json.loads((run / runs.STATUS_FILE).read_text()).get("iteration", 0) >= 25:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    assert zygote.wait() == -signal.SIGKILL
    assert (run / runs.LOCK_FILE).is_file() and (run / runs.RESUME_FILE).is_file()
    assert str(pid) in (run / runs.LOCK_FILE).read_text()
    (run / f".{runs.STATUS_FILE}.{pid}.tmp").write_text("{half a stat")  # a dead writer's
    return run


@pytest.fixture
def folder(killed, tmp_path) -> Path:
    """A fresh copy of the killed run for one test (the copy keeps every byte)."""
    d = tmp_path / "run"
    shutil.copytree(killed, d, symlinks=True)
    return d


def _edit_config(run: Path) -> None:
    cfg = json.loads((run / runs.CONFIG_FILE).read_text())
    cfg["lr"] = cfg["lr"] * 2
    (run / runs.CONFIG_FILE).write_text(json.dumps(cfg))


def _truncate_resume(run: Path) -> None:
    p = run / runs.RESUME_FILE
    p.write_bytes(p.read_bytes()[:1000])


def _finish(run: Path) -> None:
    st = json.loads((run / runs.STATUS_FILE).read_text())
    st["state"] = "finished"
    (run / runs.STATUS_FILE).write_text(json.dumps(st))


def _drop_resume(run: Path) -> None:
    (run / runs.RESUME_FILE).unlink()


# (what the folder gets first, the command line after "python -m pathviz.train", a word of the
# one-sentence refusal)
TRAIN_REFUSALS = {
    "edited config (the issue's case)": (_edit_config, ["--resume"], "differs from the settings"),
    "truncated resume state": (_truncate_resume, ["--resume"], "cannot be loaded"),
    "a flag with --resume": (None, ["--resume", "--lr", "0.5"], "drop --lr"),
    "--resume and --overwrite": (None, ["--resume", "--overwrite"], "contradict"),
    "another --impl": (None, ["--resume", "--impl", "foreach"], "drop --impl"),
    "finished already": (_finish, ["--resume"], "already finished"),
    "no resume state": (_drop_resume, ["--resume"], "has no resume state"),
    "a run already there": (None, ARGS, "already holds a run"),
    "a bad flag": (None, ["--resume", "--bogus"], "unrecognized arguments"),
}


@pytest.mark.parametrize("case", TRAIN_REFUSALS)
def test_a_refused_train_leaves_the_killed_run_byte_identical(zygote, folder, case):
    prepare, argv, words = TRAIN_REFUSALS[case]
    if prepare is not None:
        prepare(folder)
    before = snapshot(folder)
    log = folder.parent / "log"
    assert zygote.run([*argv, "--out", str(folder), "--no-progress"], log) == 2
    err = log.read_text().strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pathviz.train: error: ") and words in err[0], err
    after = snapshot(folder)
    assert after.keys() == before.keys()
    assert [k for k in before if before[k] != after[k]] == []


def test_a_resume_refused_while_a_live_worker_holds_the_lock_changes_nothing(zygote, folder):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # a live holder of the lock (a worker that is training)
        try:
            os.close(r)
            runs.acquire_lock(runs.RunPaths(folder))
            os.write(w, b"x")
            time.sleep(600)
        finally:
            os._exit(0)
    os.close(w)
    try:
        assert os.read(r, 1) == b"x", "the holder could not take the lock"
        before = snapshot(folder)
        log = folder.parent / "log"
        assert zygote.run(["--out", str(folder), "--resume", "--no-progress"], log) == 2
        assert "is already being trained by process" in log.read_text()
        assert snapshot(folder) == before
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_after_the_refusal_the_fixed_run_resumes_and_takes_the_stale_lock_over(zygote, folder):
    """The refusal kept the killed worker's lock file; it is no obstacle: a resume of the
    restored config takes it over, cleans the stale temp file and finishes."""
    good = (folder / runs.CONFIG_FILE).read_bytes()
    _edit_config(folder)
    log = folder.parent / "log"
    assert zygote.run(["--out", str(folder), "--resume", "--no-progress"], log) == 2
    (folder / runs.CONFIG_FILE).write_bytes(good)
    assert zygote.run(["--out", str(folder), "--resume", "--no-progress"], log) == 0
    names = os.listdir(folder)
    assert runs.LOCK_FILE not in names and not [n for n in names if n.endswith(".tmp")]
    assert json.loads((folder / runs.STATUS_FILE).read_text())["state"] == "finished"


# ---- retrain, export, inspect (their refusals, on the same killed folder) ------------------

OTHER_REFUSALS = {
    "export: no weights at that iteration": ("export", ["--iteration", "7"]),
    "export: an unknown mode": ("export", ["--iteration", "0", "--mode", "bogus"]),
    "export: an unknown format": ("export", ["--iteration", "0", "--format", "bogus"]),
    "export: a bad flag": ("export", ["--iteration", "0", "--bogus"]),
    "inspect: a bad flag": ("inspect", ["--bogus"]),
    "retrain: no weights at that iteration": ("retrain", ["--iteration", "7", "--init",
                                                          "rewind", "--epochs", "1"]),
    "retrain: an unknown init": ("retrain", ["--iteration", "0", "--init", "bogus",
                                             "--epochs", "1"]),
    "retrain: zero epochs": ("retrain", ["--iteration", "0", "--init", "rewind",
                                         "--epochs", "0"]),
}


@pytest.mark.parametrize("case", OTHER_REFUSALS)
def test_a_refused_retrain_export_or_inspect_leaves_the_folder_byte_identical(folder, case,
                                                                              capsys):
    import importlib

    tool, argv = OTHER_REFUSALS[case]
    before = snapshot(folder)
    main = importlib.import_module(f"pathviz.{tool}").main  # in this process: no 5 s start
    try:
        rc = main([str(folder), *argv])
    except SystemExit as e:
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2, err[-2000:]
    assert "Traceback" not in err
    after = snapshot(folder)
    assert after.keys() == before.keys()
    assert [k for k in before if before[k] != after[k]] == []


def test_snapshot_sees_a_removed_lock_and_a_changed_byte(tmp_path):
    """The comparison above can fail: a removed lock file and one changed byte both show."""
    (tmp_path / "worker.lock").write_text("{}")
    (tmp_path / "a").write_bytes(b"xy")
    before = snapshot(tmp_path)
    (tmp_path / "worker.lock").unlink()
    (tmp_path / "a").write_bytes(b"xz")
    after = snapshot(tmp_path)
    assert after.keys() != before.keys() and after["a"] != before["a"]

