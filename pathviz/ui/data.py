"""Cached reads of a run's path file for the views (numpy and h5py only, no torch).

Arrays are cached with ``st.cache_data`` keyed on the file's identity (inode, device) and its
snapshot count, so a live run is reread as it grows and a resumed (replaced) file is never
confused with its predecessor. Each loader opens, reads and closes the file: cheap, and safe
while a writer appends.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from pathviz import runs
from pathviz.analysis import StopDecision, StopRule, stop_of
from pathviz.store import PathFileError, PathReader, entry_indices

Ident = tuple[int, int]


def ident(path: os.PathLike | str) -> Ident:
    """(inode, device) of a file: changes when the file is replaced, e.g. on resume."""
    s = os.stat(path)
    return s.st_ino, s.st_dev


# Sessions that follow a run that trains share one snapshot count of its file for this many
# seconds. The run appends snapshots many times a second: with a count of its own, each of a
# class's thirty sessions asked the loaders below (cached on the count) for a count no other
# session had asked for, so every session reread the file on its own. Shared, they ask for the
# same few counts, and one read serves them all.
SHARED_COUNT_S = 1.0
_counts: dict[tuple[str, Ident], tuple[float, tuple[int, int], int]] = {}
_counts_lock = threading.Lock()


def snapshot_count(path: os.PathLike | str, live: bool = False) -> int:
    """Snapshots written so far. Read from the file (opened and closed) only when it changed
    since the last count of this server; for a ``live`` run (the refresh of a run that
    trains), at most once per :data:`SHARED_COUNT_S` for every session. A run that is not live
    always gets its exact count: a run that has just finished lands on its last snapshot."""
    st_ = os.stat(path)
    key = (str(path), (st_.st_ino, st_.st_dev))  # a replaced file (a resume) is another file
    stamp = (st_.st_mtime_ns, st_.st_size)
    now = time.monotonic()
    with _counts_lock:
        hit = _counts.get(key)
    if hit is not None and (hit[1] == stamp or (live and now - hit[0] < SHARED_COUNT_S)):
        return hit[2]
    with PathReader(path) as r:
        n = r.n_snapshots
    with _counts_lock:
        if len(_counts) > 256:  # runs come and go: forget the stale ones
            _counts.clear()
        _counts[key] = (now, stamp, n)
    return n


@st.cache_data(max_entries=32, show_spinner=False)
def load_overview(path: str, ident: Ident, n: int) -> dict[str, Any]:
    """Everything small about a run: iterations, epochs, metrics, layers, config, identity."""
    with PathReader(path) as r:
        return {"iterations": r.iterations[:n], "epochs": r.epochs[:n],
                "weight_iterations": r.weight_iterations, "metrics": r.metrics(),
                "layers": r.layers, "config": r.config, "model_info": r.model_info,
                "data_info": r.data_info, "metric_names": list(r.metric_names)}


@st.cache_data(max_entries=256, show_spinner=False)
def load_snapshot(path: str, ident: Ident, index: int) -> dict[str, dict[str, np.ndarray]]:
    """Row ``index`` of every layer (gamma_norm, weight_norm, nnz)."""
    with PathReader(path) as r:
        return r.snapshot(index)


@st.cache_data(max_entries=32, show_spinner=False)
def load_layer(path: str, ident: Ident, n: int, layer: str) -> dict[str, np.ndarray]:
    """[N, G] gamma_norm and weight_norm of one layer, its entry snapshots [G] and support [N]."""
    with PathReader(path) as r:
        gn = r.layer_path(layer, "gamma_norm", slice(0, n))
        return {"gamma_norm": gn, "weight_norm": r.layer_path(layer, "weight_norm", slice(0, n)),
                "entry": entry_indices(gn), "support": (gn > 0).sum(axis=1)}


@st.cache_data(max_entries=32, show_spinner=False)
def load_entries(path: str, ident: Ident, n: int) -> dict[str, np.ndarray]:
    """Entry snapshot index [G] of every group of every layer (-1: never entered)."""
    with PathReader(path) as r:
        return {layer["name"]: entry_indices(r.layer_path(layer["name"], "gamma_norm",
                                                          slice(0, n)))
                for layer in r.layers}


@st.cache_data(max_entries=16, show_spinner=False)
def load_weight(path: str, ident: Ident, iteration: int, name: str) -> np.ndarray:
    """One saved tensor at a weight iteration."""
    with PathReader(path) as r:
        return r.weights_at(iteration)[name]


@st.cache_data(max_entries=32, show_spinner=False)
def load_stop(path: str, ident: Ident, n: int, kind: str = "1se",
              points: float = 1.0) -> StopDecision:
    """The library's stop decision for the file as of ``n`` snapshots."""
    with PathReader(path) as r:
        return stop_of(r, StopRule(kind=kind, points=points))


def run_identity(info: runs.RunInfo, data: dict[str, Any]) -> tuple[str, str]:
    """(model, dataset) from the status/config sidecars, else from the path file itself."""
    model = info.model if info.model not in ("", "?") else ""
    dataset = info.dataset if info.dataset not in ("", "?") else ""
    model = model or str(data["model_info"].get("name") or data["config"].get("model") or "?")
    dataset = dataset or str(data["data_info"].get("dataset") or data["config"].get("dataset")
                             or "?")
    return model, dataset


def identity_of(info: runs.RunInfo) -> tuple[str, str]:
    """(model, dataset) of a run for its header: sidecars first, then the path file's attributes
    (a run copied without its status.json/config.json still says what it is)."""
    if info.model not in ("", "?") and info.dataset not in ("", "?"):
        return info.model, info.dataset
    try:
        with PathReader(info.paths.path) as r:
            data = {"model_info": r.model_info, "data_info": r.data_info, "config": r.config}
    except (PathFileError, OSError):
        return info.model, info.dataset
    return run_identity(info, data)


def inside_root(path: os.PathLike | str, root: os.PathLike | str) -> Path | None:
    """``path`` resolved, if it lies inside ``root`` (symlinks followed); otherwise None."""
    try:
        return runs.resolve_inside(path, root)
    except (ValueError, runs.RunError):
        return None


@st.cache_data(max_entries=16, show_spinner=False)
def load_support(path: str, ident: Ident, n: int) -> dict[str, np.ndarray]:
    """Filters in the support [N] per layer, for the support path (counts only are kept)."""
    with PathReader(path) as r:
        return {layer["name"]: (r.layer_path(layer["name"], "gamma_norm", slice(0, n)) > 0
                                ).sum(axis=1).astype(np.int32) for layer in r.layers}
