"""The path file: an HDF5 regularization path, written by one process and read live by many.

Schema 1 (``SCHEMA_VERSION = "1.1"``); every name below is a constant of this module. Readers
accept any 1.x file: 1.1 added the ``model`` and ``data`` attributes and the compact-subnetwork
metrics, all optional for readers.

Root attributes, written before SWMR starts:
    schema_version   "1.1"; readers refuse another major version
    config           JSON of the run config
    model            JSON {"name", "kwargs", "input_shape", "num_classes", "params_total",
                     "flops_total"}: what rebuilds the model and its full size (optional)
    data             JSON {"dataset", "n_train", "n_val", "n_test", "val_fraction",
                     "split_seed"}: the data the metrics were measured on (optional)
    layers           JSON list, in model order, of the layers with a Gamma:
                     {"name", "param", "kind": "conv"|"linear", "shape", "penalty", "groups"}
    metrics          JSON list of the metric names (the datasets under metrics/)
    weights          JSON list of the saved tensors: {"name", "shape", "dtype"} (state_dict order)

Datasets, all chunked and resizable along axis 0, appended once per snapshot and then flushed:
    snapshots/iteration  [N] int64     optimizer steps taken at the snapshot (0: before training)
    snapshots/epoch      [N] float64   iteration / iterations per epoch
    snapshots/time       [N] float64   seconds of training so far
    metrics/<name>       [N] float64   train_loss, train_acc, lr, sparsity (fraction of groups
                                       outside the support, all layers); where evaluated (NaN
                                       elsewhere): val_loss, val_acc, test_loss, test_acc (of W),
                                       val_acc_sparse, test_acc_sparse (of the compact
                                       subnetwork that export writes), params_kept, flops_kept
                                       (its size, from ``pathviz.prune.compact_size``); and any
                                       extra names given to the writer. Only train_loss,
                                       train_acc and lr are required.
    layers/<name>/gamma_norm  [N, G] float32   ||Gamma_g||, 0 outside the support
    layers/<name>/weight_norm [N, G] float32   ||W_g||
    layers/<name>/nnz         [N, G] int32     nonzero entries of Gamma_g
    weights/iteration    [K] int64     iterations that have full weights (K <= N)
    weights/<tensor>     [K, *shape]   every parameter and buffer of the model (state_dict)
    gamma/<param>        [K, *shape]   Gamma of each layer, at the same iterations

Run status lives in a JSON sidecar next to the file (see ``pathviz.runs``), because attributes
cannot change while SWMR is on. Entry time per group (first snapshot with gamma_norm > 0) is
derived by :class:`PathReader`, not stored.

Files are not trusted. A writer killed mid-flush can leave datasets of different lengths, and
a damaged object header can make HDF5 loop forever inside one call (seen in about 1 of 200
SIGKILLs). So before this process touches a file, a helper process opens it and reads every
dataset under an inactivity timeout (:func:`probe`); readers are then bounded by the shortest
length across a snapshot's datasets, and a file with a hung or unreadable dataset raises
:class:`PathDamagedError` ("N snapshots readable") instead of hanging the app.
:func:`repair_path_file` (used on resume) cuts such a file to its consistent length.

This module needs numpy and h5py only, so the app can read paths without importing torch.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np
from h5py import h5s

SCHEMA_VERSION = "1.1"

ATTR_SCHEMA = "schema_version"
ATTR_CONFIG = "config"
ATTR_LAYERS = "layers"
ATTR_METRICS = "metrics"
ATTR_WEIGHTS = "weights"
ATTR_MODEL = "model"
ATTR_DATA = "data"

SNAPSHOTS = "snapshots"
ITERATION = "snapshots/iteration"
EPOCH = "snapshots/epoch"
TIME = "snapshots/time"
METRICS = "metrics"
LAYERS = "layers"
GAMMA_NORM = "gamma_norm"
WEIGHT_NORM = "weight_norm"
NNZ = "nnz"
LAYER_FIELDS = (GAMMA_NORM, WEIGHT_NORM, NNZ)
WEIGHTS = "weights"
WEIGHTS_ITERATION = "weights/iteration"
GAMMA = "gamma"

STANDARD_METRICS = ("train_loss", "train_acc", "lr", "val_loss", "val_acc", "val_acc_sparse",
                    "test_loss", "test_acc", "test_acc_sparse", "sparsity", "params_kept",
                    "flops_kept")
REQUIRED_METRICS = ("train_loss", "train_acc", "lr")

# rows per chunk of the per-snapshot datasets: uncompressed, so re-flushing a partly filled chunk
# rewrites it in place; 64 rows keep a 5000-snapshot layer read to ~80 chunk reads
CHUNK_ROWS = 64

# seconds a helper may spend on one dataset (or 64 rows of it) before the file counts as damaged
READ_TIMEOUT = float(os.environ.get("PATHVIZ_READ_TIMEOUT") or 3.0)
# refuse single reads larger than this: a hostile file may declare absurd shapes
MAX_READ_BYTES = 1 << 30

__all__ = ["SCHEMA_VERSION", "PathWriter", "PathReader", "PathFileError", "PathDamagedError",
           "Snapshot", "STANDARD_METRICS", "REQUIRED_METRICS", "copy_path", "probe",
           "repair_path_file"]


class PathFileError(Exception):
    """A path file that cannot be read: the message says what is wrong and what to do."""


# files of writers that failed to write: never closed (see PathWriter.close)
_ABANDONED: list[h5py.File] = []


class PathDamagedError(PathFileError):
    """A path file with datasets that hang or fail to read; ``readable`` snapshots are intact.

    Resume (or :func:`repair_path_file`) cuts the file to them.
    """

    def __init__(self, message: str, readable: int) -> None:
        super().__init__(message)
        self.readable = readable


@dataclass
class Snapshot:
    """One row of the path: where training is, its metrics, and per-layer group statistics.

    ``layers[name] = (gamma_norm [G] float32, weight_norm [G] float32, nnz [G] int32)``.
    """

    iteration: int
    epoch: float
    time: float
    metrics: Mapping[str, float]
    layers: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]]


def _layer_path(name: str, field: str) -> str:
    return f"{LAYERS}/{name}/{field}"


def _safe(name: str) -> str:
    """An HDF5 object name for a tensor or layer name (dots are fine, slashes are not)."""
    if "/" in name or not name:
        raise ValueError(f"invalid name for the path file: {name!r}")
    return name


class PathWriter:
    """Creates a path file and appends snapshots to it under SWMR, so readers can follow it.

    Every dataset is created in ``__init__`` before SWMR starts; afterwards the writer only appends
    (HDF5 does not stop late creation, but SWMR readers would not see it reliably).

    Snapshots are written in blocks: ``append`` keeps a snapshot in memory until
    ``flush_interval`` seconds have passed since the last write, then writes everything pending as
    one block per dataset and flushes. Written one row at a time, a snapshot per iteration would
    cost more than a small model's iteration (about 30 us per dataset row); a writer thread does
    not help, because h5py holds the GIL and stalls the training thread. When iterations are
    slower than ``flush_interval`` every snapshot is flushed as it comes; ``flush_interval=0``
    forces that. ``flush()`` and ``close()`` write what is pending.
    """

    def __init__(self, path: str | os.PathLike, *, config: Mapping[str, Any],
                 layers: Sequence[Mapping[str, Any]], weights: Sequence[Mapping[str, Any]] = (),
                 metrics: Iterable[str] = STANDARD_METRICS, flush_interval: float = 0.25,
                 model: Mapping[str, Any] | None = None,
                 data: Mapping[str, Any] | None = None) -> None:
        self.path = os.fspath(path)
        self.flush_interval = float(flush_interval)
        self.metric_names = list(dict.fromkeys(metrics))
        self.layers = [dict(layer) for layer in layers]
        self.weights = [dict(w) for w in weights]
        self._n = 0
        self._k = 0
        self._pending: list[Snapshot] = []
        self._last_write = time.monotonic()
        self._broken = False
        f = h5py.File(self.path, "w", libver="latest")
        try:
            f.attrs[ATTR_SCHEMA] = SCHEMA_VERSION
            f.attrs[ATTR_CONFIG] = json.dumps(dict(config), sort_keys=True)
            f.attrs[ATTR_LAYERS] = json.dumps(self.layers)
            f.attrs[ATTR_METRICS] = json.dumps(self.metric_names)
            f.attrs[ATTR_WEIGHTS] = json.dumps(self.weights)
            if model is not None:
                f.attrs[ATTR_MODEL] = json.dumps(dict(model), sort_keys=True)
            if data is not None:
                f.attrs[ATTR_DATA] = json.dumps(dict(data), sort_keys=True)
            d = {}
            d[ITERATION] = self._make(f, ITERATION, (), np.int64)
            d[EPOCH] = self._make(f, EPOCH, (), np.float64)
            d[TIME] = self._make(f, TIME, (), np.float64)
            for m in self.metric_names:
                d[f"{METRICS}/{m}"] = self._make(f, f"{METRICS}/{_safe(m)}", (), np.float64)
            for layer in self.layers:
                g = int(layer["groups"])
                for field, dt in ((GAMMA_NORM, np.float32), (WEIGHT_NORM, np.float32),
                                  (NNZ, np.int32)):
                    p = _layer_path(_safe(layer["name"]), field)
                    d[p] = self._make(f, p, (g,), dt)
            d[WEIGHTS_ITERATION] = self._make(f, WEIGHTS_ITERATION, (), np.int64, rows=1)
            for w in self.weights:
                p = f"{WEIGHTS}/{_safe(w['name'])}"
                d[p] = self._make(f, p, tuple(w["shape"]), np.dtype(w["dtype"]), rows=1)
            for layer in self.layers:
                p = f"{GAMMA}/{_safe(layer['param'])}"
                d[p] = self._make(f, p, tuple(layer["shape"]), np.float32, rows=1)
            f.swmr_mode = True
        except BaseException:
            f.close()
            raise
        self._f: h5py.File | None = f
        self._d = d

    @staticmethod
    def _make(f: h5py.File, name: str, shape: tuple[int, ...], dtype,
              rows: int = CHUNK_ROWS) -> _Appender:
        # every dataset chunked (SWMR readers fail on contiguous ones) and unlimited along axis 0
        d = f.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape), dtype=dtype,
                             chunks=(rows, *shape))
        return _Appender(d)

    # ---- appending ---------------------------------------------------------------------------

    @property
    def n_snapshots(self) -> int:
        """Snapshots handed to the writer so far (written or pending)."""
        return self._n

    def append(self, snap: Snapshot) -> None:
        """Append one snapshot; its arrays must not be modified afterwards (they may be pending)."""
        self._check()
        missing = [m for m in snap.metrics if m not in self.metric_names]
        if missing:
            raise ValueError(f"metrics {missing} were not declared when the path file was created; "
                             f"declared: {self.metric_names}")
        self._n += 1
        self._pending.append(snap)
        if time.monotonic() - self._last_write >= self.flush_interval:
            self.flush()

    def append_weights(self, iteration: int, tensors: Mapping[str, np.ndarray],
                       gammas: Mapping[str, np.ndarray]) -> None:
        """Append full weights (every declared tensor) and every layer's Gamma at ``iteration``."""
        self._check()
        names = {w["name"] for w in self.weights}
        if set(tensors) != names:
            raise ValueError(f"weights must name exactly the declared tensors; missing "
                             f"{sorted(names - set(tensors))}, "
                             f"extra {sorted(set(tensors) - names)}")
        self._k += 1
        try:
            self._write_pending()
            self._write_weights(iteration, tensors, gammas)
            self._f.flush()
        except (OSError, RuntimeError) as e:
            self._broken = True
            raise PathFileError(f"{self.path} could not be written ({_short(e)}); its flushed "
                                f"snapshots are intact") from e

    def _write_pending(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, []
            self._write_snapshots(pending)
        self._last_write = time.monotonic()

    def _check(self) -> None:
        if self._f is None:
            raise PathFileError(f"{self.path} is closed")
        if self._broken:
            raise PathFileError(f"{self.path} could not be written (the disk may be full); "
                                f"its flushed snapshots are intact")

    def _row(self, name: str, n: int, value) -> None:
        self._d[name].write(n, [value])

    def _write_snapshots(self, snaps: list[Snapshot]) -> None:
        n = self._d[ITERATION].rows
        d = self._d
        d[EPOCH].write(n, [s.epoch for s in snaps])
        d[TIME].write(n, [s.time for s in snaps])
        for m in self.metric_names:
            d[f"{METRICS}/{m}"].write(n, [s.metrics.get(m, np.nan) for s in snaps])
        for layer in self.layers:
            name = layer["name"]
            for k, field in enumerate(LAYER_FIELDS):
                d[_layer_path(name, field)].write(n, [s.layers[name][k] for s in snaps])
        # iteration last: a reader takes its length as the number of complete snapshots
        d[ITERATION].write(n, [s.iteration for s in snaps])

    def _write_weights(self, iteration: int, tensors: Mapping[str, np.ndarray],
                       gammas: Mapping[str, np.ndarray]) -> None:
        k = self._d[WEIGHTS_ITERATION].rows
        for w in self.weights:
            self._row(f"{WEIGHTS}/{w['name']}", k, tensors[w["name"]])
        for layer in self.layers:
            self._row(f"{GAMMA}/{layer['param']}", k, gammas[layer["param"]])
        self._row(WEIGHTS_ITERATION, k, iteration)

    def flush(self) -> None:
        """Write every pending snapshot and flush the file, so readers see it all.

        A failed write (a full disk) marks the writer broken and re-raises: what was flushed
        before stays readable, and nothing more is written to the file.
        """
        self._check()
        try:
            self._write_pending()
            self._f.flush()
        except (OSError, RuntimeError) as e:  # h5py reports a failed write as RuntimeError
            self._broken = True
            raise PathFileError(f"{self.path} could not be written ({_short(e)}); its flushed "
                                f"snapshots are intact") from e

    def close(self) -> None:
        """Write what is pending, flush and close; safe to call twice. A broken writer (see
        :meth:`flush`) is closed without writing, so its file keeps the last good flush."""
        if self._f is None:
            return
        try:
            if not self._broken:
                self.flush()
        finally:
            f, self._f = self._f, None
            if self._broken:
                # closing would retry the failed writes, and HDF5 can crash doing so; the file
                # is left as a killed writer leaves it, every flushed snapshot readable
                _ABANDONED.append(f)
            else:
                f.close()

    def __enter__(self) -> PathWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Appender:
    """Appends rows to one dataset through h5py's low-level API (about 3x faster per row)."""

    def __init__(self, d: h5py.Dataset) -> None:
        self.id = d.id
        self.dtype = d.dtype
        self.row_shape = tuple(d.shape[1:])
        self.rows = d.shape[0]
        self._zeros = (0,) * len(self.row_shape)

    def write(self, n: int, rows: Sequence) -> None:
        """Write ``rows`` (a sequence of row values) at rows n, n+1, ...; grows the dataset."""
        k = len(rows)
        arr = np.ascontiguousarray(np.asarray(rows, dtype=self.dtype)).reshape(
            (k, *self.row_shape))
        self.id.set_extent((n + k, *self.row_shape))
        space = self.id.get_space()
        space.select_hyperslab((n, *self._zeros), (k, *self.row_shape))
        self.id.write(h5s.create_simple(arr.shape), space, arr)
        self.rows = n + k


# ---- probing: every risky HDF5 call of a file runs first in a helper process -----------------


def _is_row_dataset(name: str) -> bool:
    """A dataset with one row per snapshot (as opposed to one row per weight save)."""
    return name.startswith((f"{SNAPSHOTS}/", f"{METRICS}/", f"{LAYERS}/"))


def _probe_in_helper(path: str, from_n: int, from_k: int, skip: Mapping[str, str],
                     emit) -> dict[str, Any]:
    """Open ``path`` and read every dataset from row ``from_n`` (``from_k`` for weights).

    Runs in the helper process. ``emit({"at": name})`` before each risky call tells the parent
    where a hang happened. Returns ``{"lengths": {dataset: rows}, "bad": {dataset: why}}`` or
    ``{"error": why}`` when the file cannot be opened at all.
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
    with f:
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
                        d[b:b + step]
                elif row > 0:  # weights: one element per row touches every chunk's index entry
                    first = (0,) * (d.ndim - 1)
                    for b in range(min(from_k, n), n):
                        emit({"at": name, "row": b})
                        d[(b, *first)]
                lengths[name] = n
            except Exception as e:  # noqa: BLE001 - any failure of a damaged file is reported
                bad[name] = _short(e)
    return {"lengths": lengths, "bad": bad, "swmr": swmr}


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
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = {**os.environ, "PYTHONPATH": here + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self._buf = b""
        return subprocess.Popen(
            [sys.executable, "-c", "from pathviz.store import _serve; _serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

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


# ---- reading -------------------------------------------------------------------------------


def _json_attr(path: str, attrs, name: str, kind: type, default=None):
    if name not in attrs:
        if default is not None:
            return default
        raise PathFileError(f"{path} is not a valid path file: the {name!r} attribute is "
                            f"missing; delete the run or restore the file")
    try:
        value = json.loads(_str(attrs[name]))
    except (ValueError, TypeError, UnicodeDecodeError):
        value = None
    if not isinstance(value, kind):
        raise PathFileError(f"{path} is not a valid path file: the {name!r} attribute is not a "
                            f"JSON {kind.__name__}; delete the run or restore the file")
    return value


def _check_specs(path: str, layers: list, metrics: list, weights: list) -> None:
    """Refuse layer, metric and weight records that a pathviz writer could not have made."""
    def bad(what: str) -> PathFileError:
        return PathFileError(f"{path} is not a valid path file: {what}; delete the run or "
                             f"restore the file")

    def shape_ok(s) -> bool:
        return isinstance(s, list) and all(isinstance(v, int) and not isinstance(v, bool)
                                           and 0 <= v < 2 ** 31 for v in s)

    for layer in layers:
        if not (isinstance(layer, dict) and isinstance(layer.get("name"), str)
                and isinstance(layer.get("param"), str) and layer["name"] and layer["param"]
                and "/" not in layer["name"] and "/" not in layer["param"]
                and isinstance(layer.get("groups"), int) and not isinstance(layer["groups"], bool)
                and 0 <= layer["groups"] < 2 ** 31 and shape_ok(layer.get("shape"))):
            raise bad(f"layer record {str(layer)[:80]!r} is malformed")
    if len({layer["name"] for layer in layers}) != len(layers):
        raise bad("two layers share a name")
    if not all(isinstance(m, str) and m and "/" not in m for m in metrics):
        raise bad("the metric names are not plain strings")
    for w in weights:
        ok = (isinstance(w, dict) and isinstance(w.get("name"), str) and w["name"]
              and "/" not in w["name"] and shape_ok(w.get("shape")))
        if ok:
            try:
                ok = np.dtype(w.get("dtype")).kind in "biuf"
            except TypeError:
                ok = False
        if not ok:
            raise bad(f"weight record {str(w)[:80]!r} is malformed")


class PathReader:
    """Reads a path file lazily, also while its writer is still appending (SWMR).

    Nothing is loaded up front except the root attributes; every accessor reads only the slices
    it needs, bounded by the number of snapshots that every per-snapshot dataset holds. The file
    is first checked by :func:`probe` in a helper process, so a damaged file raises
    :class:`PathDamagedError` instead of hanging; ``allow_damaged=True`` opens it anyway with its
    readable snapshots (lost optional metrics read as NaN). Call :meth:`refresh` to see
    snapshots appended since opening.
    """

    def __init__(self, path: str | os.PathLike, *, allow_damaged: bool = False,
                 timeout: float | None = None) -> None:
        self.path = os.fspath(path)
        self._timeout = timeout
        self._allow_damaged = allow_damaged
        if not os.path.exists(self.path):
            raise PathFileError(f"no path file at {self.path}")
        if not os.path.isfile(self.path):
            raise PathFileError(f"{self.path} is not a file; a run's path file is a regular file")
        self._bad: dict[str, str] = {}
        self._limit = self._probe()  # before this process opens the file
        self._f = self._open()
        try:
            attrs = self._f.attrs
            if ATTR_SCHEMA not in attrs:
                raise PathFileError(f"{self.path} is an HDF5 file but not a pathviz path file "
                                    f"(no {ATTR_SCHEMA} attribute)")
            version = _str(attrs[ATTR_SCHEMA])
            if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
                raise PathFileError(
                    f"{self.path} has schema version {version}, this pathviz reads "
                    f"{SCHEMA_VERSION}; open it with a pathviz that matches its major version")
            self.schema_version = version
            self.config: dict[str, Any] = _json_attr(self.path, attrs, ATTR_CONFIG, dict)
            self.layers: list[dict[str, Any]] = _json_attr(self.path, attrs, ATTR_LAYERS, list)
            self.metric_names: list[str] = _json_attr(self.path, attrs, ATTR_METRICS, list)
            self.weight_specs: list[dict[str, Any]] = _json_attr(self.path, attrs, ATTR_WEIGHTS,
                                                                 list)
            _check_specs(self.path, self.layers, self.metric_names, self.weight_specs)
            # schema 1.1: what rebuilds the model and what data the metrics are on ({} in 1.0)
            self.model_info: dict[str, Any] = _json_attr(self.path, attrs, ATTR_MODEL, dict, {})
            self.data_info: dict[str, Any] = _json_attr(self.path, attrs, ATTR_DATA, dict, {})
            self._check_datasets()
            self._iter = self._f[ITERATION]
            self._witer = self._f[WEIGHTS_ITERATION]
            self._handles = {ITERATION: self._iter, WEIGHTS_ITERATION: self._witer}
        except PathFileError:
            self._f.close()
            raise
        except (KeyError, ValueError, TypeError, OSError) as e:
            self._f.close()
            raise PathFileError(f"{self.path} is damaged or incomplete ({_short(e)})") from None
        self._layer_names = [layer["name"] for layer in self.layers]
        self._n = self._k = 0
        self._opened = False
        self.refresh()

    def _probe(self) -> tuple[int, int]:
        """Check the file in the helper; (snapshots, weight rows) safe to read in-process."""
        res = probe(self.path, self._timeout)
        if "error" in res:
            detail = res.get("detail", "")
            if res["error"] == "open":
                raise PathFileError(
                    f"{self.path} is not a readable path file ({detail}); it may be truncated "
                    f"or corrupt: delete the run or restore the file")
            if res["error"] == "swmr":
                raise PathFileError(
                    f"{self.path} is being written but cannot be read yet ({detail}); it may "
                    f"still be being created: try again in a moment")
            raise PathDamagedError(f"{self.path} is damaged: 0 snapshots readable ({detail}); "
                                   f"delete the run or restore the file", 0)
        self._bad = dict(res["bad"])
        n, k, _ = _consistent(res["lengths"], self._bad)
        if self._bad and not self._allow_damaged:
            first = sorted(self._bad)[0]
            raise PathDamagedError(
                f"{self.path} is damaged: {n} snapshots readable ({first}: "
                f"{self._bad[first]}); resume the run to cut the file to them, or delete it", n)
        return n, k

    def _check_datasets(self) -> None:
        """Every dataset the attributes promise exists, with a numeric dtype and the row shape."""
        expect: list[tuple[str, tuple[int, ...], str]] = [
            (ITERATION, (), "iu"), (EPOCH, (), "iuf"), (TIME, (), "iuf"),
            (WEIGHTS_ITERATION, (), "iu")]
        expect += [(f"{METRICS}/{m}", (), "biuf") for m in self.metric_names]
        for layer in self.layers:
            expect += [(_layer_path(layer["name"], f), (layer["groups"],), "biuf")
                       for f in LAYER_FIELDS]
            expect.append((f"{GAMMA}/{layer['param']}", tuple(layer["shape"]), "biuf"))
        expect += [(f"{WEIGHTS}/{w['name']}", tuple(w["shape"]), "biuf")
                   for w in self.weight_specs]
        for name, row, kinds in expect:
            if name in self._bad:
                continue
            d = self._f.get(name)
            if not isinstance(d, h5py.Dataset):
                raise PathFileError(f"{self.path} is not a valid path file: dataset {name} is "
                                    f"missing; delete the run or restore the file")
            if d.dtype.kind not in kinds or d.ndim != 1 + len(row) or tuple(d.shape[1:]) != row:
                raise PathFileError(
                    f"{self.path} is not a valid path file: dataset {name} is {d.dtype} "
                    f"{d.shape}, expected rows of shape {row}; delete the run or restore the file")

    def _open(self) -> h5py.File:
        # A plain open checks the file's end against its superblock and so catches truncation;
        # an SWMR open skips that check and can spin on a truncated file. Only a file under (or
        # left by) a writer refuses the plain open, and those are read as SWMR.
        try:
            self.swmr = False
            return h5py.File(self.path, "r", libver="latest")
        except OSError as e:
            if "already open for write" not in str(e):
                raise PathFileError(
                    f"{self.path} is not a readable path file ({_short(e)}); it may be truncated "
                    f"or corrupt: delete the run or restore the file") from None
        try:
            self.swmr = True
            return h5py.File(self.path, "r", libver="latest", swmr=True)
        except OSError as e:
            raise PathFileError(
                f"{self.path} is being written but cannot be read yet ({_short(e)}); it may "
                f"still be being created: try again in a moment") from None

    # ---- bookkeeping -------------------------------------------------------------------------

    @property
    def damaged(self) -> dict[str, str]:
        """Datasets that hung or failed in the check, with why (empty for a sound file)."""
        return dict(self._bad)

    def refresh(self) -> int:
        """See rows appended since the last refresh; returns the number of complete snapshots.

        New rows of a live file are checked by the helper first; the count is the shortest
        length across every per-snapshot dataset, so a killed writer's ragged rows are ignored.
        """
        if self.swmr and self._opened:  # the first refresh uses the check of __init__
            self._limit = self._probe()
        self._opened = True
        if self.swmr:
            self._iter.refresh()
            self._witer.refresh()
        self._n = min(self._limit[0], self._iter.shape[0])
        self._k = min(self._limit[1], self._witer.shape[0])
        return self._n

    def __len__(self) -> int:
        return self._n

    @property
    def n_snapshots(self) -> int:
        return self._n

    def layer(self, name: str) -> dict[str, Any]:
        """The layer record (name, param, kind, shape, penalty, groups) of a layer name."""
        try:
            return self.layers[self._layer_names.index(name)]
        except ValueError:
            raise KeyError(
                f"no layer {name!r} in {self.path}; layers: {self._layer_names}") from None

    def _dataset(self, name: str) -> h5py.Dataset:
        if name in self._bad:
            raise PathDamagedError(f"{self.path} is damaged: {name} cannot be read "
                                   f"({self._bad[name]}); resume the run to cut the file, or "
                                   f"delete it", self._n)
        # one handle per dataset for the reader's life: under SWMR a second handle to a dataset
        # that another handle has refreshed can read stale (fill-value) chunks
        d = self._handles.get(name)
        if d is None:
            d = self._handles[name] = self._f[name]
        if self.swmr:
            d.refresh()
        return d

    def _read(self, name: str, sel=slice(None), limit: int | None = None) -> np.ndarray:
        d = self._dataset(name)
        n = min(self._n if limit is None else limit, d.shape[0])
        if isinstance(sel, slice):
            start, stop, step = sel.indices(n)
            rows = slice(start, stop, step) if stop > start else None
            count = len(range(start, stop, step)) if rows is not None else 0
        else:
            sel = int(sel)
            if not 0 <= sel < n:
                raise IndexError(f"snapshot {sel} out of range 0..{n - 1}")
            rows, count = sel, 1
        if rows is None:
            return np.empty((0, *d.shape[1:]), d.dtype)
        size = count * int(np.prod(d.shape[1:], dtype=np.int64)) * d.dtype.itemsize
        if size > MAX_READ_BYTES:
            raise PathFileError(f"{self.path}: reading {name} would take {size >> 20} MiB, more "
                                f"than the {MAX_READ_BYTES >> 20} MiB a read may take; read fewer "
                                f"rows")
        try:
            return d[rows]
        except OSError as e:
            raise PathFileError(f"{self.path} is damaged: reading {name} failed "
                                f"({_short(e)})") from None

    # ---- snapshots and metrics ---------------------------------------------------------------

    @property
    def iterations(self) -> np.ndarray:
        """[N] int64 iteration of every snapshot."""
        return self._read(ITERATION).astype(np.int64, copy=False)

    @property
    def epochs(self) -> np.ndarray:
        return self._read(EPOCH).astype(np.float64, copy=False)

    @property
    def times(self) -> np.ndarray:
        return self._read(TIME).astype(np.float64, copy=False)

    def index_of(self, iteration: int) -> int:
        """Snapshot index at ``iteration``, or of the nearest snapshot before it (0 if none)."""
        it = self.iterations
        i = int(np.searchsorted(it, iteration, side="right")) - 1
        return max(i, 0)

    def metric(self, name: str) -> np.ndarray:
        """[N] float64 one metric over all snapshots (NaN where not evaluated, or lost)."""
        if name not in self.metric_names:
            raise KeyError(f"no metric {name!r}; metrics: {self.metric_names}")
        if f"{METRICS}/{name}" in self._bad:
            return np.full(self._n, np.nan)
        return self._read(f"{METRICS}/{name}").astype(np.float64, copy=False)

    def metrics(self, names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        return {m: self.metric(m) for m in (names or self.metric_names)}

    def snapshot(self, index: int) -> dict[str, dict[str, np.ndarray]]:
        """Row ``index`` of every layer: ``{layer: {gamma_norm, weight_norm, nnz}}``, [G] each."""
        if index < 0:
            index += self._n
        return {name: {field: self._read(_layer_path(name, field), index)
                       for field in LAYER_FIELDS} for name in self._layer_names}

    def layer_path(self, name: str, field: str = GAMMA_NORM,
                   rows: slice = slice(None)) -> np.ndarray:
        """[N, G] one field of one layer over the snapshots in ``rows``."""
        self.layer(name)
        if field not in LAYER_FIELDS:
            raise KeyError(f"no field {field!r}; fields: {LAYER_FIELDS}")
        return self._read(_layer_path(name, field), rows)

    def entry_times(self, name: str) -> np.ndarray:
        """[G] int64 first snapshot index where each group's Gamma is nonzero; -1 if never."""
        return entry_indices(self.layer_path(name, GAMMA_NORM))

    def support_sizes(self, name: str) -> np.ndarray:
        """[N] groups in the support of one layer at each snapshot."""
        return (self.layer_path(name, GAMMA_NORM) > 0).sum(axis=1)

    # ---- weights -----------------------------------------------------------------------------

    @property
    def weight_iterations(self) -> np.ndarray:
        """[K] int64 the iterations that have full weights and Gamma."""
        return self._read(WEIGHTS_ITERATION, limit=self._k).astype(np.int64, copy=False)

    def _weight_row(self, iteration: int) -> int:
        its = self.weight_iterations
        hits = np.flatnonzero(its == iteration)
        if hits.size == 0:
            near = nearest(its, iteration)
            raise KeyError(f"iteration {iteration} has no saved weights; nearest iterations with "
                           f"weights: {', '.join(map(str, near)) or 'none yet'}")
        return int(hits[-1])

    def weights_at(self, iteration: int) -> dict[str, np.ndarray]:
        """Every saved tensor (state_dict order) at a weight iteration."""
        k = self._weight_row(iteration)
        return {w["name"]: self._read(f"{WEIGHTS}/{w['name']}", k, limit=self._k)
                for w in self.weight_specs}

    def gamma_at(self, iteration: int) -> dict[str, np.ndarray]:
        """Gamma of every layer, keyed by parameter name, at a weight iteration."""
        k = self._weight_row(iteration)
        return {layer["param"]: self._read(f"{GAMMA}/{layer['param']}", k, limit=self._k)
                for layer in self.layers}

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> PathReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def entry_indices(gamma_norm: np.ndarray) -> np.ndarray:
    """[G] int64 first row of a [N, G] gamma_norm path where each group is nonzero; -1 if never."""
    inside = gamma_norm > 0
    first = inside.argmax(axis=0).astype(np.int64)
    first[~inside.any(axis=0)] = -1
    return first


def nearest(values: np.ndarray, target: int, k: int = 2) -> list[int]:
    """Up to ``k`` values nearest to ``target`` (ties: the earlier first), in ascending order."""
    if len(values) == 0:
        return []
    order = np.argsort(np.abs(values.astype(np.int64) - target), kind="stable")[:k]
    return sorted(int(values[i]) for i in order)


def copy_path(src: str | os.PathLike, dst: str | os.PathLike, upto_iteration: int, *,
              flush_interval: float = 0.25) -> PathWriter:
    """Start a new path file at ``dst`` holding the rows of ``src`` up to ``upto_iteration``.

    ``src`` may have been left by a killed writer, or be damaged: only the snapshots that every
    dataset holds are copied (lost optional metrics become NaN). Returns the open writer, ready to
    append; the caller moves ``dst`` into place with ``os.replace``.
    """
    with PathReader(src, allow_damaged=True) as r:
        w = PathWriter(dst, config=r.config, layers=r.layers, weights=r.weight_specs,
                       metrics=r.metric_names, flush_interval=flush_interval,
                       model=r.model_info or None, data=r.data_info or None)
        try:
            its = r.iterations
            keep = int(np.searchsorted(its, upto_iteration, side="right"))
            epochs, times = r.epochs, r.times
            mets = r.metrics()
            paths = {(layer["name"], f): r.layer_path(layer["name"], f, slice(0, keep))
                     for layer in r.layers for f in LAYER_FIELDS}
            for i in range(keep):
                w.append(Snapshot(int(its[i]), float(epochs[i]), float(times[i]),
                                  {m: float(v[i]) for m, v in mets.items()},
                                  {layer["name"]: tuple(paths[(layer["name"], f)][i]
                                                        for f in LAYER_FIELDS)
                                   for layer in r.layers}))
            for it in r.weight_iterations:
                if it <= upto_iteration:
                    w.append_weights(int(it), r.weights_at(int(it)), r.gamma_at(int(it)))
            w.flush()
        except BaseException:
            w.close()
            raise
    return w


def repair_path_file(path: str | os.PathLike) -> int:
    """Cut a killed or damaged path file to the snapshots every dataset holds; returns them.

    The readable rows go to a new file that replaces ``path`` atomically, so the result opens
    with a plain (non-SWMR) open and holds no ragged or damaged dataset.
    """
    path = os.fspath(path)
    tmp = os.path.join(os.path.dirname(path) or ".",
                       f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        w = copy_path(path, tmp, upto_iteration=np.iinfo(np.int64).max)
        n = w.n_snapshots
        w.close()
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return n


def _str(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _short(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return msg[:200]
