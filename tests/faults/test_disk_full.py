"""A full disk, in our words, wherever it happens (issue 20, item 2).

Each writer of a run (status.json, resume.pt, manifest.json, the path file, a ticket's seed
file) meets a tmpfs with a few pages left, and says which file it could not write; the worker
meets tmpfs of several sizes and fails in one sentence that names the file and the iteration,
with advice that works: after the tmpfs grows, --resume continues (bit for bit as an
uninterrupted run) where a resume state exists, --overwrite starts again where none does.
"""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest
import torch

from pathviz import resume, runs, tickets, train
from pathviz.store import PathFileError, PathReader, PathWriter, Snapshot
from tests.conftest import path_contents
from tests.faults.tmpfs import PAGE, fill, resize, tmpfs
from tests.faults.zygote import Zygote

LAYERS = [{"name": "l0", "param": "l0.weight", "kind": "linear", "shape": [64, 64],
           "penalty": "group", "groups": 64}]
WEIGHTS = [{"name": "l0.weight", "shape": [64, 64], "dtype": "float32"}]
FREE = [0, PAGE, 8 * PAGE]  # what the writer finds left: nothing, one page, a few pages


def _no_temps(d) -> bool:
    return not [p for p in os.listdir(d) if p.endswith(".tmp")]


def _assert_names(e: BaseException, paths: runs.RunPaths, name: str, iteration: int = 7):
    assert runs.is_disk_full(e), e
    assert runs.disk_full_target(e, paths) == name
    reason, _ = train.disk_full_reason(e, paths, iteration)
    assert reason == f"disk full at iteration {iteration}: {name} could not be written"


@pytest.mark.parametrize("free", FREE)
def test_resume_state_on_a_full_disk_is_an_oserror_naming_resume_pt(tmp_path, free):
    """torch.save straight to the file raised RuntimeError 'unexpected pos' (issue 20)."""
    with tmpfs(tmp_path / "m", 2 * 1024 * 1024) as m:
        paths = runs.RunPaths(m / "run")
        paths.dir.mkdir()
        resume.save_state(paths, {"iteration": 1, "x": torch.zeros(10)})
        before = paths.resume.read_bytes()
        fill(m, free)
        with pytest.raises(OSError) as ei:
            resume.save_state(paths, {"iteration": 2, "x": torch.zeros(100_000)})
        assert ei.value.errno == errno.ENOSPC
        _assert_names(ei.value, paths, "resume.pt")
        assert paths.resume.read_bytes() == before  # the last good state is kept
        assert _no_temps(paths.dir)
        assert train.disk_full_reason(ei.value, paths, 7)[1] == \
            "free space, then continue with --resume"


@pytest.mark.parametrize("free", FREE[:2])
def test_a_first_status_on_a_full_disk_names_status_json(tmp_path, free):
    with tmpfs(tmp_path / "m", 256 * 1024) as m:
        paths = runs.RunPaths(m / "run")
        paths.dir.mkdir()
        fill(m, free)
        # one page holds the temp file, but then the big status needs more
        with pytest.raises(OSError) as ei:
            runs.write_status(paths, state="running", config={"x": "y" * (2 * PAGE)})
        _assert_names(ei.value, paths, "status.json")
        assert _no_temps(paths.dir) and not paths.status.exists()
        assert "start again with --overwrite" in train.disk_full_reason(ei.value, paths, 0)[1]


@pytest.mark.parametrize("free", FREE[:2])
def test_the_manifest_on_a_full_disk_names_manifest_json(tmp_path, free):
    with tmpfs(tmp_path / "m", 256 * 1024) as m:
        paths = runs.RunPaths(m / "run")
        paths.dir.mkdir()
        fill(m, free)
        with pytest.raises(OSError) as ei:
            runs.claim_run_dir(paths)
            runs.record_files(paths, *[f"exports/{'x' * 70}{i}.pt" for i in range(80)])
        _assert_names(ei.value, paths, "manifest.json")
        assert _no_temps(paths.dir)


def _in_child(fn, *args) -> dict:
    """Run ``fn(*args)`` in a forked child and return the dict it returns. A writer that failed
    leaves its HDF5 file open on purpose (PathWriter.close), and HDF5 may crash finalising it
    at exit, so the child leaves with os._exit, as the worker does."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            out = fn(*args)
        except BaseException as e:
            out = {"error": repr(e)}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def _fill_the_path_file(m, free: int) -> dict:
    paths = runs.RunPaths(m / "run")
    paths.dir.mkdir()
    fill(m, free + 64 * PAGE)  # room for the file and its first rows
    w = PathWriter(paths.path, config={}, layers=LAYERS, weights=WEIGHTS, flush_interval=0)
    flushed = 0
    try:
        for i in range(10_000):
            g = np.full(64, i, np.float32)
            w.append(Snapshot(i, i, i, {"train_loss": 1.0, "train_acc": 0.5, "lr": 0.1},
                              {"l0": (g, g, np.full(64, i, np.int32))}))
            w.append_weights(i, {"l0.weight": np.full((64, 64), i, np.float32)},
                             {"l0.weight": np.zeros((64, 64), np.float32)})
            flushed = i + 1
    except PathFileError as e:
        w.close()
        _assert_names(e, paths, "path.h5")
        with PathReader(paths.path, allow_damaged=True) as r:
            return {"flushed": flushed, "n": r.n_snapshots, "rows": r.iterations.tolist()}
    return {"error": "the disk never filled"}


def _create_the_path_file(m) -> dict:
    paths = runs.RunPaths(m / "run")
    paths.dir.mkdir()
    fill(m, PAGE)
    try:
        PathWriter(paths.path, config={}, layers=LAYERS, weights=WEIGHTS)
    except (PathFileError, OSError) as e:
        _assert_names(e, paths, "path.h5", iteration=0)
        return {"ok": True}
    return {"error": "the path file was created on a full disk"}


@pytest.mark.parametrize("free", FREE)
def test_the_path_file_on_a_full_disk_names_path_h5_and_keeps_its_flushed_rows(tmp_path, free):
    with tmpfs(tmp_path / "m", 512 * 1024) as m:
        got = _in_child(_fill_the_path_file, m, free)
    assert "error" not in got, got
    assert got["n"] >= got["flushed"] - 1 and got["rows"] == list(range(got["n"]))


def test_a_path_file_that_cannot_be_created_names_path_h5(tmp_path):
    with tmpfs(tmp_path / "m", 256 * 1024) as m:
        assert _in_child(_create_the_path_file, m) == {"ok": True}


@pytest.mark.parametrize("free", FREE)
def test_a_ticket_seed_file_on_a_full_disk_names_it_and_keeps_the_last_one(tmp_path, free):
    with tmpfs(tmp_path / "m", 512 * 1024) as m:
        paths = runs.RunPaths(m / "run")
        tdir = paths.tickets / "it10-winning-full2"
        tdir.mkdir(parents=True)
        seed = tickets.seed_path(tdir, 0)
        row = {"epoch": 0, "iteration": 0, "time": 0.0, "train_loss": 1.0}
        tickets.write_seed(seed, ticket="t", seed=0, rows=[row], complete=False)
        before = seed.read_bytes()
        fill(m, free)
        with pytest.raises(OSError) as ei:
            tickets.write_seed(seed, ticket="t", seed=0, rows=[row] * 20_000, complete=False)
        _assert_names(ei.value, paths, "tickets/it10-winning-full2/seed_0.h5")
        assert seed.read_bytes() == before and _no_temps(tdir)
        assert tickets.read_seed(seed)["epoch"].tolist() == [0]


@pytest.mark.parametrize("size,name", [(16 * 1024, "seed_0.h5"), (128 * 1024, "seed_0.resume.pt")])
def test_a_retrain_on_a_full_disk_says_which_file_and_the_same_command_resumes_it(
        tmp_path, capsys, size, name):
    """pathviz.retrain on a full disk: one sentence naming the ticket file and exit 2 (before,
    torch's 'unexpected pos' traceback for the resume state); after freeing space the same
    command finishes, with the numbers of a retrain that never failed."""
    from pathviz import retrain
    from tests.test_retrain import write_run

    argv = ["--iteration", "20", "--init", "reinit", "--epochs", "2", "--seeds", "0",
            "--no-progress"]
    ref_dir, _ = write_run(tmp_path / "ref")
    assert retrain.main([str(ref_dir), *argv]) == 0
    run_dir, _ = write_run(tmp_path / "full")
    with tmpfs(run_dir / "tickets", size) as t:
        assert retrain.main([str(run_dir), *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err == (f"pathviz.retrain: error: disk full: tickets/it20-reinit-epochs2/{name} "
                       f"could not be written; free space, then run the same command to resume "
                       f"(finished epochs are kept)")
        assert _no_temps(t / "it20-reinit-epochs2")
        resize(t, 4 * 1024 * 1024)
        assert retrain.main([str(run_dir), *argv]) == 0
        got = tickets.read_seed(tickets.seed_path(t / "it20-reinit-epochs2", 0))
    want = tickets.read_seed(tickets.seed_path(ref_dir / "tickets" / "it20-reinit-epochs2", 0))
    assert got["complete"] and want["complete"]
    for k in ("test_acc", "train_loss", "val_acc"):
        np.testing.assert_array_equal(got["metrics"][k], want["metrics"][k])


# ---- the worker ------------------------------------------------------------------------------

ARGS = ["--preset", "demo", "--epochs", "2", "--no-progress"]  # 36 iterations, saves at 30, 36
# tmpfs size -> (the file that cannot be written, its iteration, whether a resume state exists):
# the first four fail before any resume state, the last two after the one at iteration 30
SIZES = {4 * 1024: ("manifest.json", 0, False), 8 * 1024: ("config.json", 0, False),
         64 * 1024: ("path.h5", 0, False), 1200 * 1024: ("path.h5", 30, True),
         2048 * 1024: ("resume.pt", 30, True)}


@pytest.fixture(scope="module")
def zygote():
    with Zygote() as z:
        yield z


@pytest.fixture(scope="module")
def reference(zygote, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    assert zygote.run([*ARGS, "--out", str(out)], out.parent / "log") == 0
    return path_contents(out)


@pytest.mark.parametrize("size", SIZES)
def test_the_worker_on_a_full_disk_says_what_and_when_and_its_advice_works(
        tmp_path, zygote, reference, size):
    name, it, resumable = SIZES[size]
    log = tmp_path / "log"
    with tmpfs(tmp_path / "m", size) as m:
        run = m / "run"
        assert zygote.run([*ARGS, "--out", str(run)], log) == 2
        err = log.read_text().strip().splitlines()
        assert "Traceback" not in log.read_text() and "Logging error" not in log.read_text()
        sentence = f"disk full at iteration {it}: {name} could not be written"
        advice = ("free space, then continue with --resume" if resumable else
                  "no resume state was saved yet, so free space, then start again with "
                  "--overwrite")
        assert err[-1] == f"pathviz.train: error: {sentence}; {advice}"
        files = os.listdir(run) if run.exists() else []
        assert _no_temps(run) if files else True
        assert runs.LOCK_FILE not in files
        if runs.MANIFEST_FILE in files:
            st = json.loads((run / runs.STATUS_FILE).read_text())
            assert (st["state"], st["reason"], st["iteration"]) == ("failed", sentence, it)
        assert (runs.RESUME_FILE in files) == resumable
        resize(m, 64 * 1024 * 1024)  # free space, then do as told
        follow = ["--out", str(run), "--resume", "--no-progress"] if resumable else \
            [*ARGS, "--out", str(run), "--overwrite"]
        assert zygote.run(follow, log) == 0, log.read_text()[-2000:]
        assert json.loads((run / runs.STATUS_FILE).read_text())["state"] == "finished"
        got = path_contents(run)
    assert got.keys() == reference.keys()
    for k in got:
        assert np.array_equal(got[k], reference[k], equal_nan=True), k


# ---- pathviz.baselines -----------------------------------------------------------------------

@pytest.mark.parametrize("free", [0, 2 * PAGE])
def test_baselines_on_a_full_disk_say_which_file_and_the_same_command_resumes_them(
        tmp_path, capsys, free):
    """pathviz.baselines on a full disk (issue 20, item 2): one sentence naming baselines.json
    and exit 2, no temp file and no lock left; after freeing space the same command measures
    what is missing, to the results of a command that never failed."""
    import shutil

    from pathviz import baselines
    from pathviz.tickets.baselines_cli import main
    from tests.test_retrain import write_run

    argv = ["--iterations", "20", "--methods", "magnitude,taylor", "--epochs", "1",
            "--no-progress"]
    ref_root = tmp_path / "ref"
    ref_dir, _ = write_run(ref_root)
    write_run(ref_root, "demo-sgd", {"optimizer": "sgd"})
    assert main([str(ref_dir), *argv]) == 0
    want = baselines.read_results(ref_dir)
    src = tmp_path / "src"
    write_run(src)
    write_run(src, "demo-sgd", {"optimizer": "sgd"})
    size = 2 * sum(f.stat().st_size for f in src.rglob("*") if f.is_file()) + 64 * PAGE
    with tmpfs(tmp_path / "mnt", size) as t:
        shutil.copytree(src, t, dirs_exist_ok=True)
        run_dir = t / ref_dir.name
        fill(t, free)
        capsys.readouterr()
        assert main([str(run_dir), *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err == ("pathviz.baselines: error: disk full: baselines.json could not be "
                       "written; free space, then run the same command to resume (finished "
                       "measurements are kept)")
        assert _no_temps(run_dir) and not runs.paths_for_dir(run_dir).baselines_lock.exists()
        resize(t, size + 4 * 1024 * 1024)
        assert main([str(run_dir), *argv]) == 0
        got = baselines.read_results(run_dir)
    key = ("method", "iteration", "params", "widths", "support", "oneshot", "finetuned")
    assert [{k: e[k] for k in key} for e in got] == [{k: e[k] for k in key} for e in want]


# ---- the status after a full disk (issue 36, defect 5) ---------------------------------------

_ENOSPC_AT = r"""
import errno, os, sys
from pathviz import numerics
numerics.apply_env(numerics.DEFAULT_LEVEL)
from pathviz import resume, train
real = resume.save_state
at = int(sys.argv[1])

def save_state(paths, state):  # the disk fills when the resume state of iteration `at` is due
    if state["iteration"] == at:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(paths.resume))
    return real(paths, state)

resume.save_state = save_state
sys.exit(train.main(sys.argv[2:]))
"""


@pytest.mark.parametrize("at", [30, 60])
def test_after_a_full_disk_the_status_names_the_iteration_of_the_reason(tmp_path, at):
    """The status kept the last heartbeat's iteration (0, 281, 683) while its reason named
    another (30, 330, 720); the app and inspect showed the stale one."""
    import subprocess
    import sys

    from pathviz import inspect
    from tests.faults.zygote import ROOT

    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-c", _ENOSPC_AT, str(at), *ARGS[:3], "4",
                        "--no-progress", "--out", str(run)], capture_output=True, text=True,
                       cwd=ROOT, env=env, timeout=600)
    assert p.returncode == 2, p.stderr[-2000:]
    sentence = f"disk full at iteration {at}: resume.pt could not be written"
    assert p.stderr.strip().splitlines()[-1] == (
        f"pathviz.train: error: {sentence}; free space, then continue with --resume")
    st = json.loads((run / runs.STATUS_FILE).read_text())
    assert (st["state"], st["reason"], st["iteration"]) == ("failed", sentence, at)
    assert st["epoch"] == at / 18  # 18 iterations per epoch of the demo
    info = next(r for r in runs.list_runs(tmp_path) if r.name == "run")  # what the app lists
    assert (info.state, info.iteration) == ("failed", at)
    assert inspect.summary(run)["status"]["iteration"] == at
