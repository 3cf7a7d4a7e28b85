"""PathWriter: creates a path file and appends snapshots to it under SWMR (schema in
:mod:`pathviz.store.schema`).

A writer that fails to write (a full disk) is marked broken and its file is parked in
``_ABANDONED`` instead of being closed: closing would retry the failed writes, and HDF5 can
crash doing so. ``_ABANDONED`` is one list for the process, mutated in place and never
rebound, so ``pathviz.store._ABANDONED`` (which the worker reads) is this same object.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import h5py
import numpy as np
from h5py import h5s

from pathviz import jsonsafe
from pathviz.store.schema import (
    ATTR_CONFIG,
    ATTR_DATA,
    ATTR_ENVIRONMENT,
    ATTR_LAYERS,
    ATTR_METRICS,
    ATTR_MODEL,
    ATTR_SCHEMA,
    ATTR_WEIGHTS,
    CHUNK_ROWS,
    EPOCH,
    GAMMA,
    GAMMA_NORM,
    ITERATION,
    LAYER_FIELDS,
    METRICS,
    NNZ,
    SCHEMA_VERSION,
    STANDARD_METRICS,
    TIME,
    WEIGHT_NORM,
    WEIGHTS,
    WEIGHTS_ITERATION,
    PathFileError,
    Snapshot,
    _layer_path,
    _safe,
    _short,
    gamma_tensors,
)

__all__ = ["PathWriter"]

# files of writers that failed to write: never closed (see PathWriter.close)
_ABANDONED: list[h5py.File] = []


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
                 data: Mapping[str, Any] | None = None,
                 environment: Mapping[str, Any] | None = None) -> None:
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
        try:
            f = h5py.File(self.path, "w", libver="latest")
        except OSError as e:  # e.g. no room for the file's first blocks: say which file
            if e.filename is None:
                e.filename = self.path
            raise
        try:
            f.attrs[ATTR_SCHEMA] = SCHEMA_VERSION
            # jsonsafe: a NaN in a config or a model's info is null, never a bare NaN literal
            f.attrs[ATTR_CONFIG] = jsonsafe.dumps(dict(config), sort_keys=True)
            f.attrs[ATTR_LAYERS] = jsonsafe.dumps(self.layers)
            f.attrs[ATTR_METRICS] = jsonsafe.dumps(self.metric_names)
            f.attrs[ATTR_WEIGHTS] = jsonsafe.dumps(self.weights)
            if model is not None:
                f.attrs[ATTR_MODEL] = jsonsafe.dumps(dict(model), sort_keys=True)
            if data is not None:
                f.attrs[ATTR_DATA] = jsonsafe.dumps(dict(data), sort_keys=True)
            if environment is not None:
                f.attrs[ATTR_ENVIRONMENT] = jsonsafe.dumps(dict(environment), sort_keys=True)
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
                for param, shape in gamma_tensors(layer):
                    p = f"{GAMMA}/{_safe(param)}"
                    d[p] = self._make(f, p, shape, np.float32, rows=1)
            f.swmr_mode = True
        except (OSError, RuntimeError) as e:  # a failed write (a full disk): h5py's words
            # closing would retry the failed writes, and HDF5 can fail doing so ("Can't destroy
            # cache"): park the file as a broken writer does (see close)
            _ABANDONED.append(f)
            err = PathFileError(f"{self.path} could not be created ({_short(e)})")
            err.filename = self.path
            raise err from e
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
            raise self._failed(e) from e

    def _failed(self, e: BaseException) -> PathFileError:
        """The error for a failed write: one sentence, and ``filename`` (the file it was for)
        so that a worker can name it in its disk-full reason."""
        err = PathFileError(f"{self.path} could not be written ({_short(e)}); its flushed "
                            f"snapshots are intact")
        err.filename = self.path
        return err

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
            for param, _ in gamma_tensors(layer):
                self._row(f"{GAMMA}/{param}", k, gammas[param])
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
            raise self._failed(e) from e

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
