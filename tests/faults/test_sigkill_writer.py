"""SIGKILL of a bare PathWriter at random moments, hundreds of times (issue 12, defect 3): every
file that got past its creation opens, every read returns within 5 s, and no reader raises
anything but PathFileError (one sentence; PathDamagedError says how many snapshots are left)."""

from __future__ import annotations

import os
import random
import signal
import time

import numpy as np

from pathviz.store import PathDamagedError, PathReader, PathWriter, Snapshot

KILLS = int(os.environ.get("PATHVIZ_FAULT_KILLS", "500"))
LAYERS = [{"name": f"l{i}", "param": f"l{i}.weight", "kind": "linear", "shape": [g, 3],
           "penalty": "group", "groups": g} for i, g in enumerate((3, 5, 7))]
WEIGHTS = [{"name": "l0.weight", "shape": [3, 3], "dtype": "float32"}]


def _write_forever(path: str, ready_w: int) -> None:
    w = PathWriter(path, config={}, layers=LAYERS, weights=WEIGHTS, flush_interval=0)
    os.write(ready_w, b"r")  # created, SWMR on: from here on the file must stay readable
    i = 0
    while True:
        w.append(Snapshot(i, i / 10, i * 0.1, {"train_loss": 1.0, "train_acc": 0.5, "lr": 0.1},
                          {lay["name"]: (np.full(lay["groups"], i, np.float32),
                                         np.ones(lay["groups"], np.float32),
                                         np.full(lay["groups"], i, np.int32)) for lay in LAYERS}))
        if i % 7 == 0:
            w.append_weights(i, {"l0.weight": np.full((3, 3), i, np.float32)},
                             {lay["param"]: np.zeros(lay["shape"], np.float32) for lay in LAYERS})
        i += 1


def _kill_writers(folder, n: int, seed: int = 0) -> list[str]:
    """Fork a writer per file and SIGKILL it after a random 0-25 ms of appending."""
    rng = random.Random(seed)
    paths = []
    for j in range(n):
        p = str(folder / f"k{j}.h5")
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(r)
                _write_forever(p, w)
            finally:
                os._exit(0)
        os.close(w)
        os.read(r, 1)
        os.close(r)
        time.sleep(rng.uniform(0.0, 0.025))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        paths.append(p)
    return paths


def test_hundreds_of_sigkilled_writers_leave_files_that_open_and_never_hang(tmp_path):
    files = _kill_writers(tmp_path, KILLS)
    opened = damaged = 0
    slowest = 0.0
    for p in files:
        t = time.monotonic()
        try:
            with PathReader(p) as r:
                n = r.n_snapshots
                its = r.iterations
                assert its.tolist() == list(range(n))  # rows are whole and in order
                for lay in LAYERS:
                    assert r.layer_path(lay["name"], "nnz").shape == (n, lay["groups"])
                if n:
                    assert r.snapshot(n - 1)["l2"]["nnz"].tolist() == [n - 1] * 7
                    assert r.metric("lr").shape == (n,)
                for it in r.weight_iterations:
                    assert r.weights_at(int(it))["l0.weight"][0, 0] == it
            opened += 1
        except PathDamagedError as e:
            damaged += 1
            # the count the error carries is the one it says, and the one a reader then opens
            assert f"is damaged: {e.readable} snapshots readable" in str(e)
            with PathReader(p, allow_damaged=True) as r:
                assert r.n_snapshots == e.readable
                assert r.iterations.tolist() == list(range(r.n_snapshots))
        slowest = max(slowest, time.monotonic() - t)
        assert time.monotonic() - t < 5.0, p
    print(f"{KILLS} SIGKILLs: {opened} opened whole, {damaged} damaged (readable part opened), "
          f"slowest open and read {slowest:.2f} s")
    assert opened + damaged == KILLS
