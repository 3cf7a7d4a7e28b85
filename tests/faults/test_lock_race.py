"""The worker lock under contention (issue 12, defect 4): stale-lock takeovers by many takers at
once have exactly one winner, every time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from pathviz import runs

TRIALS, TAKERS = 100, 8


def _taker(paths: runs.RunPaths, go: float, w: int, hold_r: int) -> None:
    """In a forked child: wait for the common start, try the lock, report, hold until told."""
    while time.time() < go:
        pass
    try:
        runs.acquire_lock(paths)
        won = b"W"
    except runs.RunError:
        won = b"L"
    os.write(w, won)
    os.read(hold_r, 1)  # a winner holds the lock until every taker has answered
    os._exit(0)


def test_stale_lock_takeover_has_exactly_one_winner_each_time(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    winners = []
    for trial in range(TRIALS):
        paths = runs.RunPaths(tmp_path / f"r{trial}")
        paths.dir.mkdir()
        paths.lock.write_text(json.dumps({"pid": dead.pid, "pid_start": 1}))  # stale
        r, w = os.pipe()
        hold_r, hold_w = os.pipe()
        go = time.time() + 0.05
        pids = []
        for _ in range(TAKERS):
            pid = os.fork()
            if pid == 0:
                _taker(paths, go, w, hold_r)
            pids.append(pid)
        answers = b"".join(os.read(r, 1) for _ in range(TAKERS))
        os.write(hold_w, b"x" * TAKERS)
        for pid in pids:
            os.waitpid(pid, 0)
        for fd in (r, w, hold_r, hold_w):
            os.close(fd)
        winners.append(answers.count(b"W"))
    assert winners == [1] * TRIALS


# ---- two real resumes of a killed worker's run (issue 36, defect 1) ---------------------------

# A server that has imported the worker forks the jobs, as tests/faults/zygote.py does, so each
# trial pays no import: it makes one killed worker's run, then per trial copies it and starts
# two `pathviz.train --resume` at the same moment. The first to exit is the refused one; the
# other (the winner, training) is killed once it has been named.
_RACE = r"""
import json, os, shutil, signal, sys, time
from pathviz import numerics
numerics.apply_env(numerics.DEFAULT_LEVEL)  # as tests/conftest.py: before torch computes
import pathviz.train

def child(argv, log, go):
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    while time.time() < go:
        pass
    rc = 70
    try:
        rc = pathviz.train.main(argv)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)

base, trials, tmp = sys.argv[1], int(sys.argv[2]), sys.argv[3]
pid = os.fork()
if pid == 0:
    child(["--preset", "demo", "--epochs", "20", "--out", base, "--no-progress"],
          os.path.join(tmp, "base.log"), 0)
while not os.path.exists(os.path.join(base, "resume.pt")):
    time.sleep(0.01)
os.kill(pid, signal.SIGKILL)  # the killed worker: its lock file names it, and it is gone
os.waitpid(pid, 0)
print(json.dumps({"dead": pid, "lock": open(os.path.join(base, "worker.lock")).read()}),
      flush=True)
for t in range(trials):
    run = os.path.join(tmp, f"copy{t}")
    shutil.copytree(base, run)
    go = time.time() + 0.2
    pids = []
    for k in range(2):
        p = os.fork()
        if p == 0:
            child(["--out", run, "--resume", "--no-progress"],
                  os.path.join(tmp, f"t{t}-{k}.log"), go)
        pids.append(p)
    first, st = os.waitpid(-1, 0)
    other = pids[1 - pids.index(first)]
    os.kill(other, signal.SIGKILL)
    os.waitpid(other, 0)
    log = open(os.path.join(tmp, f"t{t}-{pids.index(first)}.log")).read()
    print(json.dumps({"first": first, "other": other, "rc": os.waitstatus_to_exitcode(st),
                      "log": log}), flush=True)
"""

RACE_TRIALS = 8


def test_two_resumes_of_a_killed_workers_run_name_the_live_winner(tmp_path):
    """Before, the refused resume named the killed worker (its pid was still in the lock file
    for the moment between the winner's flock and its write) in 10 of 26 trials."""
    from tests.faults.zygote import ROOT

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _RACE, str(tmp_path / "base"),
                           str(RACE_TRIALS), str(tmp_path)], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    dead = lines[0]["dead"]
    assert json.loads(lines[0]["lock"])["pid"] == dead  # the stale lock the two race for
    assert len(lines) == 1 + RACE_TRIALS
    for t in lines[1:]:
        assert t["rc"] == 2, t["log"][-2000:]
        assert t["log"].strip().splitlines()[-1] == (
            f"pathviz.train: error: run 'copy{lines.index(t) - 1}' is already being trained by "
            f"process {t['other']}; stop it first"), (dead, t)
