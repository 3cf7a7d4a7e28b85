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
