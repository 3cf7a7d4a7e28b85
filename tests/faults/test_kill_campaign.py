"""The kill campaigns (issue 20, item 6): a real worker SIGKILLed at random times, each kill
followed by a resume, every finished chain compared bit for bit with an uninterrupted run; and
readers following live writers, with 0 errors.

CI runs a few kills; ``PATHVIZ_FULL_CAMPAIGN=1`` runs the full campaign (200 worker kills, 4
readers on 5000 snapshots), or set the counts with ``PATHVIZ_WORKER_KILLS`` and
``PATHVIZ_READER_SNAPSHOTS``. The bare-writer campaign is tests/faults/test_sigkill_writer.py
(``PATHVIZ_FAULT_KILLS``, 500 by default). Each test prints its figures (``pytest -s``).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from pathviz import runs
from pathviz.store import PathFileError, PathReader, PathWriter, Snapshot
from tests.conftest import path_contents
from tests.faults.zygote import ROOT, Zygote

FULL = os.environ.get("PATHVIZ_FULL_CAMPAIGN") == "1"
WORKER_KILLS = int(os.environ.get("PATHVIZ_WORKER_KILLS", "200" if FULL else "4"))
READER_SNAPSHOTS = int(os.environ.get("PATHVIZ_READER_SNAPSHOTS", "5000" if FULL else "300"))
READERS = 4 if FULL else 2
SUBPROCESS_EVERY = 10  # every 10th kill is of `python -m pathviz.train`, not a forked worker
ARGS = ["--preset", "demo", "--epochs", "3", "--weights-every", "10", "--no-progress"]
TOTAL = 3 * 18  # iterations of ARGS


class Follower(threading.Thread):
    """A reader that follows the run's path file while the worker writes it: every open must
    give whole rows in order that agree bit for bit with the uninterrupted run's."""

    def __init__(self, path: Path, ref: dict[str, np.ndarray]) -> None:
        super().__init__(daemon=True)
        self.path, self.ref = path, ref
        self.stop = threading.Event()
        self.reads = self.unreadable = 0
        self.errors: list[str] = []

    def run(self) -> None:
        ref_it, ref_loss = self.ref["snapshots/iteration"], self.ref["metrics/train_loss"]
        while not self.stop.is_set():
            if not self.path.exists():
                time.sleep(0.005)
                continue
            try:
                with PathReader(self.path, allow_damaged=True) as r:
                    its, loss = r.iterations, r.metric("train_loss")
                n = len(its)
                if not (np.array_equal(its, ref_it[:n]) and
                        np.array_equal(loss[:n], ref_loss[:n], equal_nan=True)):
                    self.errors.append(f"rows differ from the uninterrupted run's ({n} rows)")
                self.reads += 1
            except PathFileError:
                self.unreadable += 1  # mid-creation (before SWMR) or replaced: one sentence
            except Exception as e:  # anything else is an error of the reader
                self.errors.append(f"{type(e).__name__}: {e}")
            time.sleep(0.01)


def _start(zygote: Zygote, argv: list[str], log: Path, real: bool):
    if not real:
        return zygote.start(argv, log), None
    out = open(log, "w")
    proc = subprocess.Popen([sys.executable, "-m", "pathviz.train", *argv], cwd=ROOT,
                            stdout=out, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    out.close()
    return proc.pid, proc


def _wait(zygote: Zygote, proc, timeout: float | None = None) -> int | None:
    if proc is None:
        return zygote.wait()
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def _iteration(run: Path) -> int:
    try:
        return int(json.loads((run / runs.STATUS_FILE).read_text()).get("iteration", 0))
    except (OSError, ValueError, TypeError):
        return -1


def _kill_time(zygote: Zygote, proc, run: Path, target: int, extra: float) -> int | None:
    """Wait until the job's status passes ``target`` (a negative one: at once), then ``extra``
    seconds; the job's exit code if it ended first, else None (time to kill it)."""
    while _iteration(run) < target:
        if proc is not None and proc.poll() is not None:
            return proc.returncode
        if proc is None and not os.path.exists(f"/proc/{zygote.pid}/stat"):
            break
        time.sleep(0.01)
    if proc is None:
        time.sleep(extra)
        return None
    return _wait(zygote, proc, timeout=extra)


def test_sigkilled_workers_resume_bit_for_bit_and_followers_see_no_error(tmp_path):
    rng = random.Random(20)
    with Zygote() as zygote:
        ref_dir = tmp_path / "ref"
        assert zygote.run([*ARGS, "--out", str(ref_dir)], tmp_path / "ref.log") == 0
        ref = path_contents(ref_dir)
        kills = chains = resumes = overwrites = real_kills = jobs = late = 0
        followers: list[Follower] = []
        started = time.monotonic()
        while kills < WORKER_KILLS:
            run = tmp_path / f"chain{chains}"
            argv = [*ARGS, "--out", str(run)]
            while True:  # one chain: kill, resume, ... until the worker finishes
                real = jobs % SUBPROCESS_EVERY == 0
                jobs += 1
                follower = Follower(run / runs.PATH_FILE, ref)
                follower.start()
                followers.append(follower)
                pid, proc = _start(zygote, argv, tmp_path / "job.log", real)
                # a random time of the job's life: one kill in ten during its start, the others
                # once its status has passed a random iteration, plus a random fraction of a
                # second (the status beats once a second), so a loaded machine moves the kills
                # with the training, not past it
                target = rng.randrange(-TOTAL // 10, TOTAL)
                rc = _kill_time(zygote, proc, run, target, rng.uniform(0.0, 0.4 if target >= 0
                                                                       else 2.0))
                if rc is None and kills < WORKER_KILLS:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                rc = _wait(zygote, proc) if rc is None else rc
                follower.stop.set()
                follower.join()
                if rc == 0:
                    break
                st = json.loads((run / runs.STATUS_FILE).read_text()) if (
                    run / runs.STATUS_FILE).is_file() else {}
                if rc == -signal.SIGKILL and st.get("state") == "finished":
                    late += 1  # killed after it finished its run, on its way out: not counted
                    break
                assert rc == -signal.SIGKILL, (tmp_path / "job.log").read_text()[-3000:]
                kills += 1
                real_kills += real
                if (run / runs.RESUME_FILE).is_file():
                    argv = ["--out", str(run), "--resume", "--no-progress"]
                    resumes += 1
                else:  # killed before its first resume state: the advice is --overwrite
                    argv = [*ARGS, "--out", str(run), "--overwrite"]
                    overwrites += 1
            got = path_contents(run)
            assert got.keys() == ref.keys()
            for k in got:
                assert np.array_equal(got[k], ref[k], equal_nan=True), (chains, k)
            assert runs.LOCK_FILE not in os.listdir(run)
            chains += 1
        wall = time.monotonic() - started
    errors = [e for f in followers for e in f.errors]
    reads = sum(f.reads for f in followers)
    unreadable = sum(f.unreadable for f in followers)
    print(f"\n{kills} SIGKILLs of a worker ({real_kills} of `python -m pathviz.train`), "
          f"{resumes} followed by --resume, {overwrites} by --overwrite (killed before the "
          f"first resume state); {chains} chains, each bit-identical to the uninterrupted "
          f"run ({late} more kills came after the run had finished); followers: {reads} "
          f"reads, {len(errors)} errors, {unreadable} opens refused "
          f"in one sentence; {wall:.0f} s")
    assert kills >= WORKER_KILLS and errors == []


# ---- readers following a live bare writer ----------------------------------------------------

LAYERS = [{"name": f"l{i}", "param": f"l{i}.weight", "kind": "linear", "shape": [g, 3],
           "penalty": "group", "groups": g} for i, g in enumerate((3, 5, 7))]


def _writer(path: str, n: int, ready_w: int) -> None:
    with PathWriter(path, config={}, layers=LAYERS, flush_interval=0) as w:
        os.write(ready_w, b"r")
        for i in range(n):
            w.append(Snapshot(i, i / 10, i * 0.1, {"train_loss": float(i), "train_acc": 0.5,
                                                   "lr": 0.1},
                              {lay["name"]: (np.full(lay["groups"], i, np.float32),
                                             np.ones(lay["groups"], np.float32),
                                             np.full(lay["groups"], i, np.int32))
                               for lay in LAYERS}))


def _reader(path: str, n: int, out_w: int) -> None:
    reads = errors = 0
    first_error = ""
    seen = 0
    while seen < n:
        try:
            with PathReader(path) as r:
                its = r.iterations
                k = len(its)
                ok = its.tolist() == list(range(k)) and k >= seen
                if k:
                    last = r.snapshot(k - 1)
                    ok = ok and all(last[lay["name"]]["nnz"].tolist() == [k - 1] * lay["groups"]
                                    for lay in LAYERS)
                    ok = ok and r.metric("train_loss")[k - 1] == k - 1
                seen = max(seen, k)
            reads += 1
            if not ok:
                errors += 1
                first_error = first_error or f"inconsistent rows at {k}"
        except Exception as e:
            errors += 1
            first_error = first_error or f"{type(e).__name__}: {e}"
    os.write(out_w, json.dumps({"reads": reads, "errors": errors,
                                "first": first_error}).encode())


def test_readers_following_a_live_writer_see_no_error(tmp_path):
    path = str(tmp_path / "live.h5")
    r, w = os.pipe()
    writer = os.fork()
    if writer == 0:
        os.close(r)
        try:
            _writer(path, READER_SNAPSHOTS, w)
        finally:
            os._exit(0)
    os.close(w)
    os.read(r, 1)  # created, SWMR on
    os.close(r)
    readers = []
    for _ in range(READERS):
        rr, rw = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(rr)
            try:
                _reader(path, READER_SNAPSHOTS, rw)
            finally:
                os._exit(0)
        os.close(rw)
        readers.append((pid, rr))
    results = []
    for pid, rr in readers:
        with os.fdopen(rr) as f:
            results.append(json.loads(f.read()))
        os.waitpid(pid, 0)
    os.waitpid(writer, 0)
    reads = sum(x["reads"] for x in results)
    errors = sum(x["errors"] for x in results)
    print(f"\n{READERS} readers followed a live writer through {READER_SNAPSHOTS} snapshots: "
          f"{reads} reads, {errors} errors")
    assert errors == 0, [x["first"] for x in results]
    assert all(x["reads"] > 0 for x in results)

