"""PathReader: reads a path file lazily, also while its writer appends (SWMR), bounded by
what the helper-process check (:mod:`pathviz.store.helper`) found readable; and the small
pure functions over what it returns (:func:`entry_indices`, :func:`nearest`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from typing import Any

import h5py
import numpy as np

from pathviz.store.fingerprint import fingerprint
from pathviz.store.helper import _consistent, probe
from pathviz.store.schema import (
    ATTR_CONFIG,
    ATTR_DATA,
    ATTR_ENVIRONMENT,
    ATTR_LAYERS,
    ATTR_METRICS,
    ATTR_MODEL,
    ATTR_SCHEMA,
    ATTR_WEIGHTS,
    EPOCH,
    GAMMA,
    GAMMA_NORM,
    ITERATION,
    LAYER_FIELDS,
    MAX_READ_BYTES,
    METRICS,
    SCHEMA_VERSION,
    TIME,
    WEIGHTS,
    WEIGHTS_ITERATION,
    PathDamagedError,
    PathFileError,
    _layer_path,
    _short,
    _str,
    gamma_tensors,
)
from pathviz.store.validate import (
    check_datasets,
    check_iterations,
    check_specs,
    invalid_value,
    json_attr,
    unflushed_tail,
)

__all__ = ["PathReader", "entry_indices", "nearest", "file_lock"]

# One open handle per file per process at a time. HDF5 shares one file object (and its metadata
# cache) among the handles of a process on the same file; while a writer appends (SWMR), a
# second handle opened beside a first reads through the first's stale chunk index: rows of
# zeros inside the written range ("iterations go from 63 to 0") or "can't insert duplicate
# key". Four threads reading a training demo run that way failed 60 reads in 1440; one handle
# at a time, none (issue 35: a server whose sessions all follow one live run).
_file_locks: dict[str, threading.RLock] = {}
_file_locks_guard = threading.Lock()


LOCK_WAIT_S = 20.0  # the longest a reader waits for another reader of the same file to close


def file_lock(path: str | os.PathLike) -> threading.RLock:
    """The lock a :class:`PathReader` of ``path`` holds from its open to its close: one per
    file (its real path) in this process; re-entrant, so one thread may nest two readers."""
    key = os.path.realpath(path)
    with _file_locks_guard:
        lock = _file_locks.get(key)
        if lock is None:
            lock = _file_locks[key] = threading.RLock()
        return lock


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
        lock = file_lock(self.path)
        # released by close(): one handle per file at a time; bounded, so that a reader never
        # closed does not stall later reads of the file: after LOCK_WAIT_S, open beside it
        self._lock: threading.RLock | None = lock if lock.acquire(timeout=LOCK_WAIT_S) else None
        try:
            self._f = self._open()
        except BaseException:
            self._release()
            raise
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
            self.config: dict[str, Any] = json_attr(self.path, attrs, ATTR_CONFIG, dict)
            self.layers: list[dict[str, Any]] = json_attr(self.path, attrs, ATTR_LAYERS, list)
            self.metric_names: list[str] = json_attr(self.path, attrs, ATTR_METRICS, list)
            self.weight_specs: list[dict[str, Any]] = json_attr(self.path, attrs, ATTR_WEIGHTS,
                                                                 list)
            check_specs(self.path, self.layers, self.metric_names, self.weight_specs)
            # schema 1.1: what rebuilds the model and what data the metrics are on ({} in 1.0)
            self.model_info: dict[str, Any] = json_attr(self.path, attrs, ATTR_MODEL, dict, {})
            self.data_info: dict[str, Any] = json_attr(self.path, attrs, ATTR_DATA, dict, {})
            # schema 1.2: versions, pinned CPU level and device that made the numbers ({})
            self.environment: dict[str, Any] = json_attr(self.path, attrs, ATTR_ENVIRONMENT,
                                                          dict, {})
            check_datasets(self.path, self._f, self.layers, self.metric_names,
                           self.weight_specs, self._bad)
            self._iter = self._f[ITERATION]
            self._witer = self._f[WEIGHTS_ITERATION]
            self._handles = {ITERATION: self._iter, WEIGHTS_ITERATION: self._witer}
        except PathFileError:
            self.close()
            raise
        except (KeyError, ValueError, TypeError, OSError) as e:
            self.close()
            raise PathFileError(f"{self.path} is damaged or incomplete ({_short(e)})") from None
        self._layer_names = [layer["name"] for layer in self.layers]
        self._n = self._k = 0
        self._opened = False
        try:
            self.refresh()
        except BaseException:
            self.close()
            raise

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
        self._invalid = {k: tuple(v) for k, v in res.get("invalid", {}).items()}
        n, k, _ = _consistent(res["lengths"], self._bad)
        if self._bad and not self._allow_damaged:
            first = sorted(self._bad)[0]
            raise PathDamagedError(
                f"{self.path} is damaged: {n} snapshots readable ({first}: "
                f"{self._bad[first]}); resume the run to cut the file to them, or delete it", n)
        return n, k

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
                    f"{self.path} is not a readable path file ({_short(e)}); it may be "
                    f"truncated or corrupt: delete the run or restore the file") from None
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
        # the rules of pathviz.store.validate, over the rows this reader will show
        for name, attr in ((ITERATION, "_n"), (WEIGHTS_ITERATION, "_k")):
            if name in self._bad:  # damaged: nothing of it is shown (allow_damaged)
                continue
            values = self._read(name, limit=getattr(self, attr)).astype(np.int64, copy=False)
            if self.swmr:  # a writer's grown but unfilled rows are not shown, like a ragged tail
                setattr(self, attr, unflushed_tail(values))
            check_iterations(self.path, name, values[:getattr(self, attr)])
        bad = [(row, name, v) for name, (row, v) in self._invalid.items() if row < self._n]
        if bad:
            row, name, value = min(bad)
            raise invalid_value(self.path, name, row, value, int(self._read(ITERATION, row)))
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

    def fingerprint(self) -> str:
        """16 hex digits hashing the path's contents but not its wall times (see
        :func:`pathviz.store.fingerprint.fingerprint`)."""
        return fingerprint(self)

    # ---- weights -----------------------------------------------------------------------------

    @property
    def weight_iterations(self) -> np.ndarray:
        """[K] int64 the iterations that have full weights and Gamma."""
        return self._read(WEIGHTS_ITERATION, limit=self._k).astype(np.int64, copy=False)

    def _weight_row(self, iteration: int) -> int:
        its = self.weight_iterations
        hits = np.flatnonzero(its == iteration)
        if hits.size == 0:
            end = int(self.iterations[-1]) if self._n else None
            if its.size and end is not None and iteration > end:
                # past the end: name the run's end, not the two nearest saves
                raise KeyError(f"iteration {iteration} is past the end of the run, which ends "
                               f"at iteration {end}" + (
                                   f" (the last with saved weights is {int(its[-1])})"
                                   if end != int(its[-1]) else ""))
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
        return {param: self._read(f"{GAMMA}/{param}", k, limit=self._k)
                for layer in self.layers for param, _ in gamma_tensors(layer)}

    def close(self) -> None:
        """Close the file and let the next reader of it in this process open it."""
        try:
            self._f.close()
        finally:
            self._release()

    def _release(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            try:
                lock.release()
            except RuntimeError:  # closed by a thread other than the one that opened it
                pass

    def __enter__(self) -> PathReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def entry_indices(gamma_norm: np.ndarray) -> np.ndarray:
    """[G] int64 first row of a [N, G] gamma_norm path where each group is nonzero; -1 if never."""
    inside = gamma_norm > 0
    if inside.shape[0] == 0:  # no snapshot yet (a new run, or a file cut to none): none entered
        return np.full(inside.shape[1:], -1, np.int64)
    first = inside.argmax(axis=0).astype(np.int64)
    first[~inside.any(axis=0)] = -1
    return first


def nearest(values: np.ndarray, target: int, k: int = 2) -> list[int]:
    """Up to ``k`` values nearest to ``target`` (ties: the earlier first), in ascending order."""
    if len(values) == 0:
        return []
    order = np.argsort(np.abs(values.astype(np.int64) - target), kind="stable")[:k]
    return sorted(int(values[i]) for i in order)
