"""The helper-process check of a path file (:func:`probe`): every risky HDF5 call of a
file runs first in a helper process, under an inactivity timeout.

A damaged object header can make HDF5 loop forever inside one call, and a killed writer can
leave datasets of different lengths. The helper opens the file and reads every dataset;
one that hangs or crashes it is marked bad, and the check goes on without it. Readers then
read only the consistent rows (:func:`_consistent`) in their own process.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pathviz.store.schema import (
    CHUNK_ROWS,
    EPOCH,
    GAMMA,
    ITERATION,
    LAYERS,
    MAX_READ_BYTES,
    METRICS,
    REQUIRED_METRICS,
    SNAPSHOTS,
    TIME,
    WEIGHTS,
    WEIGHTS_ITERATION,
    _is_row_dataset,
    _short,
)
from pathviz.store.validate import first_bad_value

__all__ = ["probe", "READ_TIMEOUT"]

# seconds a helper may spend on one dataset (or 64 rows of it) before the file counts as damaged
READ_TIMEOUT = float(os.environ.get("PATHVIZ_READ_TIMEOUT") or 3.0)


def _probe_in_helper(path: str, from_n: int, from_k: int, skip: Mapping[str, str],
                     emit) -> dict[str, Any]:
    """Open ``path`` and read every dataset from row ``from_n`` (``from_k`` for weights).

    Runs in the helper process. ``emit({"at": name})`` before each risky call tells the parent
    where a hang happened. Returns ``{"lengths": {dataset: rows}, "bad": {dataset: why}}`` or
    ``{"error": why}`` when the file cannot be opened at all. ``"invalid"`` gives, per layer
    statistic, the first row that breaks a rule of :func:`pathviz.store.validate.first_bad_value`
    (checked here because this is where every row is read anyway).
    """
    emit({"at": "<open>"})
    swmr = False
    try:
        f = h5py.File(path, "r", libver="latest")
    except OSError as e:
        if "already open for write" not in str(e):
            return {"error": "open", "detail": _short(e)}
        try:
            swmr = True
            f = h5py.File(path, "r", libver="latest", swmr=True)
        except OSError as e:
            return {"error": "swmr", "detail": _short(e)}
    lengths: dict[str, int] = {}
    bad: dict[str, str] = dict(skip)
    invalid: dict[str, list] = {}  # dataset: [first row breaking a rule, its value as text]
    with f:
        # the root attributes first: a damaged global heap can make reading one loop forever
        # in HDF5, and the reader reads them all on open
        emit({"at": "<attributes>"})
        try:
            for key in f.attrs:
                f.attrs[key]
        except Exception:  # noqa: BLE001, S110 - one that fails is the reader's to report
            pass
        emit({"at": "<groups>"})
        names = []
        for top in (SNAPSHOTS, METRICS, WEIGHTS, GAMMA, LAYERS):
            g = f.get(top)
            if not isinstance(g, h5py.Group):
                continue
            for key in g.keys():
                if top == LAYERS:
                    emit({"at": f"{top}/{key}"})
                    sub = g.get(key)
                    if isinstance(sub, h5py.Group):
                        names += [f"{top}/{key}/{k}" for k in sub.keys()]
                else:
                    names.append(f"{top}/{key}")
        for name in names:
            if name in bad:
                continue
            emit({"at": name})
            try:
                d = f[name]
                if not isinstance(d, h5py.Dataset):
                    continue
                if swmr:
                    d.refresh()
                if d.ndim == 0 or d.dtype.kind not in "biuf":
                    continue  # the reader's structure check says what is wrong with it
                n = d.shape[0]
                row = int(np.prod(d.shape[1:], dtype=np.int64))
                if row * d.dtype.itemsize > MAX_READ_BYTES:
                    bad[name] = f"absurd row shape {d.shape[1:]}"
                    continue
                if _is_row_dataset(name):
                    step = max(1, min(CHUNK_ROWS, MAX_READ_BYTES // max(1, row * d.dtype.itemsize)))
                    for b in range(min(from_n, n), n, step):
                        emit({"at": name, "row": b})
                        block = d[b:b + step]
                        hit = None if name in invalid else first_bad_value(name, block)
                        if hit is not None:  # the reader refuses it if it shows that row
                            invalid[name] = [b + hit[0], hit[1]]
                elif row > 0:  # weights: one element per row touches every chunk's index entry
                    first = (0,) * (d.ndim - 1)
                    for b in range(min(from_k, n), n):
                        emit({"at": name, "row": b})
                        d[(b, *first)]
                lengths[name] = n
            except Exception as e:  # noqa: BLE001 - any failure of a damaged file is reported
                bad[name] = _short(e)
    return {"lengths": lengths, "bad": bad, "swmr": swmr, "invalid": invalid}


def _serve() -> None:
    """The helper process: one JSON request per stdin line, JSON progress and result lines."""
    out = sys.stdout

    def emit(msg: dict[str, Any]) -> None:
        out.write(json.dumps(msg) + "\n")
        out.flush()

    for line in sys.stdin:
        req = json.loads(line)
        try:
            res = _probe_in_helper(req["path"], req["from_n"], req["from_k"], req["skip"], emit)
        except Exception as e:  # noqa: BLE001
            res = {"error": "probe", "detail": _short(e)}
        emit({"result": res})


class _Helper:
    """One long-lived helper process per reading process, replaced when it hangs or crashes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self._buf = b""

    def _start(self) -> subprocess.Popen:
        here = str(Path(__file__).resolve().parents[2])  # the folder that holds pathviz/
        env = {**os.environ, "PYTHONPATH": here + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self._buf = b""
        return subprocess.Popen(
            [sys.executable, "-c", "from pathviz.store.helper import _serve; _serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self._close_pipes(self.proc)
            self.proc = None

    @staticmethod
    def _close_pipes(proc: subprocess.Popen) -> None:
        for pipe in (proc.stdin, proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass

    def close(self) -> None:
        """End the helper (EOF on its stdin ends its loop), wait for it and close its pipes: at
        exit, so a CLI leaves no child behind and Python has no unclosed file to warn about
        (``ResourceWarning`` on stderr, which e.g. the ONNX exporter turns on)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        self._close_pipes(proc)
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def ask(self, req: dict[str, Any], timeout: float) -> tuple[dict[str, Any] | None, str | None]:
        """(result, None), or (None, the dataset it was at) when it hung or died."""
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
        proc = self.proc
        at = None
        try:
            proc.stdin.write((json.dumps(req) + "\n").encode())
            proc.stdin.flush()
        except OSError:
            self.kill()
            return None, "<start>"
        fd = proc.stdout.fileno()
        # the first answer includes the helper's start (imports), so it gets a longer timeout
        wait = timeout + 10.0
        while True:
            while b"\n" not in self._buf:
                ready, _, _ = select.select([fd], [], [], wait)
                chunk = os.read(fd, 65536) if ready else b""
                if not chunk:
                    self.kill()
                    return None, at
                self._buf += chunk
            line, self._buf = self._buf.split(b"\n", 1)
            msg = json.loads(line)
            if "result" in msg:
                return msg["result"], None
            at = msg["at"]
            wait = timeout


_HELPER = _Helper()
atexit.register(_HELPER.close)
_PROBED: dict[tuple[str, int, int], tuple[tuple[int, int], dict[str, Any]]] = {}


def probe(path: str | os.PathLike, timeout: float | None = None) -> dict[str, Any]:
    """Check a path file in a helper process: ``{"lengths", "bad", "swmr"}`` or ``{"error"}``.

    Every dataset is opened and read (weights: one element per row) with at most ``timeout``
    seconds between steps; a dataset that hangs or crashes the helper is marked bad and the check
    goes on without it. Results are kept per file (inode) and extended incrementally as the
    file grows, so a live run costs only its new rows.
    """
    timeout = READ_TIMEOUT if timeout is None else timeout
    real = os.path.realpath(path)
    st = os.stat(real)
    key = (real, st.st_ino, st.st_dev)
    stamp = (st.st_size, st.st_mtime_ns)
    old = _PROBED.get(key)
    if old is not None and old[0] == stamp:
        return old[1]
    from_n = from_k = 0
    skip: dict[str, str] = {}
    if old is not None and "lengths" in old[1]:
        prev = old[1]
        from_n, from_k = _consistent(prev["lengths"], prev["bad"])[:2]
        skip = dict(prev["bad"])
    with _HELPER.lock:
        for _ in range(16):
            res, at = _HELPER.ask({"path": real, "from_n": from_n, "from_k": from_k,
                                   "skip": skip}, timeout)
            if res is not None:
                break
            if at is None or at.startswith("<") or at in skip or \
                    (at.startswith(f"{LAYERS}/") and at.count("/") == 1):
                res = {"error": "hang", "detail": f"reading {at or 'the file'} did not finish "
                                                  f"within {timeout:g} s"}
                break
            skip[at] = f"hung or crashed the reader (no answer within {timeout:g} s)"
        else:
            res = {"error": "hang", "detail": "too many damaged datasets"}
    if old is not None and "lengths" in res and "lengths" in old[1]:
        res["lengths"] = {**old[1]["lengths"], **res["lengths"]}
        res["invalid"] = {**res.get("invalid", {}), **old[1].get("invalid", {})}  # earliest
    if "error" not in res or not old:
        _PROBED[key] = (stamp, res)
    return res


def _consistent(lengths: Mapping[str, int], bad: Mapping[str, str]) -> tuple[int, int, bool]:
    """(snapshots, weight rows, required data lost) that every readable dataset holds."""
    required = (ITERATION, EPOCH, TIME, WEIGHTS_ITERATION) + tuple(
        f"{METRICS}/{m}" for m in REQUIRED_METRICS)
    lost = any(b in required or b.startswith(f"{LAYERS}/") for b in bad)
    rows = [v for k, v in lengths.items() if _is_row_dataset(k) and k not in bad]
    wrows = [v for k, v in lengths.items() if not _is_row_dataset(k) and k not in bad]
    n = 0 if lost or not rows else min(rows)
    k = 0 if any(not _is_row_dataset(b) for b in bad) or not wrows else min(wrows)
    return n, k, lost
