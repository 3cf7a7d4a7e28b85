"""The path's scalars as TensorBoard events, so a TensorBoard user sees them beside other runs.

    tb = PathScalars("runs/tb/mine")               # a folder of TensorBoard event files
    tb.snapshot(iteration, metrics, stats)         # what PathRecorder.record wrote
    tb.stop(decision)                              # the suggested stop, once the path has one
    tb.close()

The worker (``python -m pathviz.train --tensorboard DIR``) and the Trainer and Lightning
callbacks (``tensorboard=DIR``) call it after every snapshot. Tags:

- ``support/<layer>``: groups (filters, rows, heads, neurons) in Gamma's support;
- ``support/fraction_groups``: the fraction of all groups in the support (1 - sparsity);
- ``params/fraction_selected``: parameters of the compact subnetwork over all parameters;
- ``accuracy/{train,val,test}`` of W and ``accuracy/{val,test}_sparse`` of W* (the
  subnetwork), ``loss/{train,val,test}``, ``lr``;
- ``stop/iteration`` (the suggested stop; its step is that iteration) and
  ``stop/val_acc_sparse`` once known.

Only finite values are written: a metric not measured at a snapshot (NaN) is left out, as
TensorBoard expects of a scalar that was not logged.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from pathviz.analysis import stop_of
from pathviz.integrations import require
from pathviz.store import PathFileError, PathReader

__all__ = ["PathScalars", "TAGS", "follow", "write_stop"]

# path metric -> TensorBoard tag
TAGS = {"train_acc": "accuracy/train", "val_acc": "accuracy/val", "test_acc": "accuracy/test",
        "val_acc_sparse": "accuracy/val_sparse", "test_acc_sparse": "accuracy/test_sparse",
        "train_loss": "loss/train", "val_loss": "loss/val", "test_loss": "loss/test",
        "lr": "lr"}


class PathScalars:
    """Writes one run's path scalars to TensorBoard event files in ``logdir``.

    ``params_total`` (the model's parameter count) turns ``params_kept`` into
    ``params/fraction_selected``; without it that tag is not written.
    """

    def __init__(self, logdir: str | os.PathLike, params_total: int | None = None) -> None:
        tb = require("torch.utils.tensorboard", "tensorboard", "Writing TensorBoard scalars")
        if os.path.exists(logdir) and not os.path.isdir(logdir):
            raise ValueError(f"the TensorBoard folder {logdir} is a file; give a folder")
        self.writer = tb.SummaryWriter(log_dir=os.fspath(logdir))
        self.params_total = params_total

    def _scalar(self, tag: str, value: Any, step: int) -> None:
        v = float(value)
        if math.isfinite(v):
            self.writer.add_scalar(tag, v, global_step=int(step))

    def snapshot(self, iteration: int, metrics: Mapping[str, float],
                 stats: Mapping[str, tuple[np.ndarray, ...]]) -> None:
        """Scalars of one snapshot: ``metrics`` as recorded, ``stats`` the recorder's
        (gamma_norm, weight_norm, nnz) per layer."""
        for name, tag in TAGS.items():
            if name in metrics:
                self._scalar(tag, metrics[name], iteration)
        total = 0
        inside = 0
        for layer, (gn, *_rest) in stats.items():
            n = int(np.count_nonzero(np.asarray(gn) > 0))
            self._scalar(f"support/{layer}", n, iteration)
            inside += n
            total += len(gn)
        if total:
            self._scalar("support/fraction_groups", inside / total, iteration)
        kept = metrics.get("params_kept")
        if kept is not None and self.params_total:
            self._scalar("params/fraction_selected", float(kept) / self.params_total, iteration)

    def stop(self, decision: Any) -> None:
        """The suggested stop (a :class:`pathviz.analysis.StopDecision`); nothing when the
        path has none."""
        stop = getattr(decision, "stop", None)
        if stop is None:
            return
        self._scalar("stop/iteration", stop.iteration, stop.iteration)
        self._scalar("stop/val_acc_sparse", stop.val_acc, stop.iteration)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def follow(recorder: Any, logdir: str | os.PathLike) -> PathScalars:
    """TensorBoard scalars of every snapshot ``recorder`` (a :class:`pathviz.recorder.
    PathRecorder`) writes from now on: its ``record`` is wrapped to write them after it.
    The worker's ``--tensorboard`` uses this; call :meth:`PathScalars.stop` and
    :meth:`PathScalars.close` when the run ends."""
    info = getattr(recorder.writer, "model_info", None) or {}
    total = info.get("params_total") if isinstance(info, dict) else None
    if total is None:
        total = sum(p.numel() for p in recorder.model.parameters())
    scalars = PathScalars(logdir, params_total=int(total))
    record = recorder.record

    def record_and_write(iteration: int, **kwargs: Any) -> None:
        record(iteration, **kwargs)
        metrics = {k: v for k, v in kwargs.items() if k not in ("epoch", "elapsed", "weights")}
        metrics.setdefault("lr", float(recorder.optimizer.param_groups[0]["lr"]))
        stats, _ = recorder.layer_stats()  # the weights have not moved since record's
        scalars.snapshot(iteration, metrics, stats)

    recorder.record = record_and_write
    return scalars


def write_stop(scalars: PathScalars, path: str | os.PathLike) -> None:
    """The suggested stop of the (closed) path file ``path``, if it has one, then close."""
    try:
        with PathReader(path) as r:
            scalars.stop(stop_of(r))
    except PathFileError:  # a damaged path: the scalars so far stand, without a stop
        pass
    scalars.close()
