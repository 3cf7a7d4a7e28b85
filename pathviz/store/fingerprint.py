"""The fingerprint of a path: one line that two people compare to know they have the same
path, e.g. after training the demo on two machines."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from pathviz.store.schema import (
    EPOCH,
    ITERATION,
    LAYER_FIELDS,
    METRICS,
    WEIGHTS_ITERATION,
    _layer_path,
)

__all__ = ["PathValues", "fingerprint"]


class PathValues(Protocol):
    """What the fingerprint reads of a path (a :class:`pathviz.store.PathReader` has it all);
    a protocol, so this module needs no reader and the reader can import it."""

    iterations: np.ndarray
    epochs: np.ndarray
    metric_names: Sequence[str]
    layers: Sequence[dict[str, Any]]
    n_snapshots: int
    weight_iterations: np.ndarray

    def metric(self, name: str) -> np.ndarray: ...

    def layer_path(self, name: str, field: str, rows: slice = ...) -> np.ndarray: ...


def fingerprint(r: PathValues) -> str:
    """A hash of the path's contents, so two people can check in one line that they have the
    same path: 16 hex digits of a SHA-256 over the snapshot iterations and epochs, every
    metric, every layer's gamma_norm, weight_norm and nnz, and the iterations with saved
    weights, in a fixed order, as little-endian bytes (NaNs made canonical). Wall times are
    left out, as they differ between any two runs; so are the weights themselves, which the
    norms and metrics follow.
    """
    h = hashlib.sha256()

    def feed(name: str, a: np.ndarray) -> None:
        a = np.ascontiguousarray(a)
        if a.dtype.kind == "f":
            a = np.where(np.isnan(a), np.nan, a).astype(a.dtype.newbyteorder("<"))
        else:
            a = a.astype(a.dtype.newbyteorder("<"))
        h.update(f"{name}:{a.dtype.str}:{a.shape}\n".encode())
        h.update(a.tobytes())

    feed(ITERATION, r.iterations)
    feed(EPOCH, r.epochs)
    for m in sorted(r.metric_names):
        feed(f"{METRICS}/{m}", r.metric(m))
    step = 1024
    for layer in r.layers:
        for field in LAYER_FIELDS:
            parts = [r.layer_path(layer["name"], field, slice(i, i + step))
                     for i in range(0, r.n_snapshots, step)] or \
                    [r.layer_path(layer["name"], field, slice(0, 0))]
            feed(_layer_path(layer["name"], field), np.concatenate(parts))
    feed(WEIGHTS_ITERATION, r.weight_iterations)
    return h.hexdigest()[:16]
