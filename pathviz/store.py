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

This module needs numpy and h5py only, so the app can read paths without importing torch.
"""

from __future__ import annotations

import json
import os
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

__all__ = ["SCHEMA_VERSION", "PathWriter", "PathReader", "PathFileError", "Snapshot",
           "STANDARD_METRICS", "REQUIRED_METRICS", "copy_path"]


class PathFileError(Exception):
    """A path file that cannot be read: the message says what is wrong and what to do."""


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
        self._write_pending()
        self._write_weights(iteration, tensors, gammas)
        self._f.flush()

    def _write_pending(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, []
            self._write_snapshots(pending)
        self._last_write = time.monotonic()

    def _check(self) -> None:
        if self._f is None:
            raise PathFileError(f"{self.path} is closed")

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
        """Write every pending snapshot and flush the file, so readers see it all."""
        self._check()
        self._write_pending()
        self._f.flush()

    def close(self) -> None:
        """Write what is pending, flush and close; safe to call twice."""
        if self._f is None:
            return
        try:
            self.flush()
        finally:
            self._f.close()
            self._f = None

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


class PathReader:
    """Reads a path file lazily, also while its writer is still appending (SWMR).

    Nothing is loaded up front except the root attributes; every accessor reads only the slices
    it needs. Call :meth:`refresh` to see snapshots appended since opening.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise PathFileError(f"no path file at {self.path}")
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
            self.config: dict[str, Any] = json.loads(_str(attrs[ATTR_CONFIG]))
            self.layers: list[dict[str, Any]] = json.loads(_str(attrs[ATTR_LAYERS]))
            self.metric_names: list[str] = json.loads(_str(attrs[ATTR_METRICS]))
            self.weight_specs: list[dict[str, Any]] = json.loads(_str(attrs[ATTR_WEIGHTS]))
            # schema 1.1: what rebuilds the model and what data the metrics are on ({} in 1.0)
            self.model_info: dict[str, Any] = (json.loads(_str(attrs[ATTR_MODEL]))
                                               if ATTR_MODEL in attrs else {})
            self.data_info: dict[str, Any] = (json.loads(_str(attrs[ATTR_DATA]))
                                              if ATTR_DATA in attrs else {})
            self._iter = self._f[ITERATION]
            self._witer = self._f[WEIGHTS_ITERATION]
        except PathFileError:
            self._f.close()
            raise
        except (KeyError, ValueError, OSError) as e:
            self._f.close()
            raise PathFileError(f"{self.path} is damaged or incomplete ({_short(e)})") from None
        self._layer_names = [layer["name"] for layer in self.layers]
        self.refresh()

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

    def refresh(self) -> int:
        """See rows appended since the last refresh; returns the number of complete snapshots."""
        if self.swmr:
            self._iter.refresh()
            self._witer.refresh()
        self._n = self._iter.shape[0]
        self._k = self._witer.shape[0]
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
        d = self._f[name]
        if self.swmr:
            d.refresh()
        return d

    def _read(self, name: str, sel=slice(None)) -> np.ndarray:
        d = self._dataset(name)
        n = min(self._n, d.shape[0])
        if isinstance(sel, slice):
            start, stop, step = sel.indices(n)
            rows = slice(start, stop, step) if stop > start else None
        else:
            if not 0 <= sel < n:
                raise IndexError(f"snapshot {sel} out of range 0..{n - 1}")
            rows = sel
        if rows is None:
            return np.empty((0, *d.shape[1:]), d.dtype)
        try:
            return d[rows]
        except OSError as e:
            raise PathFileError(f"{self.path} is damaged: reading {name} failed "
                                f"({_short(e)})") from None

    # ---- snapshots and metrics ---------------------------------------------------------------

    @property
    def iterations(self) -> np.ndarray:
        """[N] int64 iteration of every snapshot."""
        return self._iter[: self._n]

    @property
    def epochs(self) -> np.ndarray:
        return self._read(EPOCH)

    @property
    def times(self) -> np.ndarray:
        return self._read(TIME)

    def index_of(self, iteration: int) -> int:
        """Snapshot index at ``iteration``, or of the nearest snapshot before it (0 if none)."""
        it = self.iterations
        i = int(np.searchsorted(it, iteration, side="right")) - 1
        return max(i, 0)

    def metric(self, name: str) -> np.ndarray:
        """[N] float64 one metric over all snapshots (NaN where not evaluated)."""
        if name not in self.metric_names:
            raise KeyError(f"no metric {name!r}; metrics: {self.metric_names}")
        return self._read(f"{METRICS}/{name}")

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
        return self._witer[: self._k]

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
        out = {}
        for w in self.weight_specs:
            out[w["name"]] = self._dataset(f"{WEIGHTS}/{w['name']}")[k]
        return out

    def gamma_at(self, iteration: int) -> dict[str, np.ndarray]:
        """Gamma of every layer, keyed by parameter name, at a weight iteration."""
        k = self._weight_row(iteration)
        out = {}
        for layer in self.layers:
            out[layer["param"]] = self._dataset(f"{GAMMA}/{layer['param']}")[k]
        return out

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

    ``src`` may have been left by a killed writer (it is read as an SWMR reader would). Returns
    the open writer, ready to append; the caller moves ``dst`` into place with ``os.replace``.
    """
    with PathReader(src) as r:
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


def _str(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _short(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return msg[:200]
