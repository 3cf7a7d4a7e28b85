"""Copying and repairing path files: the rows every dataset holds go to a new file that
replaces the old one atomically (used by resume, and on files a killed writer left).
"""

from __future__ import annotations

import os

import numpy as np

from pathviz.store.reader import PathReader
from pathviz.store.schema import LAYER_FIELDS, Snapshot
from pathviz.store.writer import PathWriter

__all__ = ["copy_path", "repair_path_file"]


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
                       model=r.model_info or None, data=r.data_info or None,
                       environment=r.environment or None)
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
