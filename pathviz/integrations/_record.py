"""A run folder recorded from someone else's training loop (Hugging Face, Lightning).

Both callbacks meet the same problem: the trainer tells them about one step in several events
(the optimizer step, then the logged loss, then the evaluation), and the path file takes one
snapshot per iteration, written once. :class:`RunSession` holds the snapshot of the latest
step open, merges what each event brings, and writes it when the next step starts (the weights
have not moved in between) or when training ends. It also owns the run folder (manifest and
``status.json``, so the app lists the run as running, then finished) and the optional
TensorBoard scalars.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from pathviz import runs
from pathviz.analysis import stop_of
from pathviz.integrations.tensorboard import PathScalars
from pathviz.optim import SLBI, support_mask
from pathviz.recorder import PathRecorder
from pathviz.store import PathReader

log = logging.getLogger("pathviz.integrations")

__all__ = ["RunSession", "unwrap_optimizer", "check_optimizer", "params_kept", "w_star_swapped"]


def unwrap_optimizer(optimizer: Any) -> Any:
    """The optimizer inside the wrappers trainers put around it (accelerate's
    ``AcceleratedOptimizer``, Lightning's ``LightningOptimizer``)."""
    for _ in range(5):  # wrappers nest at most a few deep
        if isinstance(optimizer, SLBI):
            break
        inner = getattr(optimizer, "optimizer", None) or getattr(optimizer, "_optimizer", None)
        if inner is None or inner is optimizer:
            break
        optimizer = inner
    return optimizer


def check_optimizer(optimizer: Any, where: str) -> SLBI:
    """The SLBI under ``optimizer``, or a ValueError (one sentence, said before training
    starts) for an optimizer that cannot record a path: not SLBI, or SLBI without a Gamma."""
    opt = unwrap_optimizer(optimizer)
    if not isinstance(opt, SLBI):
        raise ValueError(f"{where} records a path only with pathviz's SLBI optimizer, but "
                         f"training uses {type(opt).__name__}; build one with "
                         f"pathviz.integrations.hf.slbi_optimizer(model) (or "
                         f"transformer_param_groups) and pass it to the trainer")
    if not any(g.get("penalty") for g in opt.param_groups):
        raise ValueError(f"{where}: the SLBI optimizer has no parameter with a Gamma (every "
                         f"param group has penalty=None); build its groups with "
                         f"pathviz.integrations.layouts.transformer_param_groups(model)")
    return opt


def params_kept(model: nn.Module, optimizer: SLBI) -> int:
    """Parameters of the model less the weights of every group outside Gamma's support (a
    head's q/k/v rows and output columns, a neuron's rows and column): the size of the
    subnetwork, per layer and without padding."""
    total = sum(p.numel() for p in model.parameters())
    removed = 0
    for group in optimizer.param_groups:
        if not group.get("penalty"):
            continue
        params = group["params"]
        if group.get("spans") is not None:
            inside = support_mask([optimizer.gamma(p) for p in params], "group", group["spans"])
            out = int((~inside).sum())
            removed += out * sum(p.numel() // span[0][span[1]]
                                 for p, span in zip(params, group["spans"]))
            continue
        for p in params:
            inside = optimizer.support(p)
            per = p[0].numel() if group["penalty"] == "group" and p.dim() > 0 else 1
            removed += int((~inside).sum()) * per
    return int(total - removed)


class w_star_swapped:  # noqa: N801 - a context manager used as ``with w_star_swapped(...)``
    """Within the block every parameter with a Gamma holds W* (W outside the support zeroed);
    W is put back on exit, bit for bit."""

    def __init__(self, optimizer: SLBI) -> None:
        self.optimizer = optimizer
        self.saved: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __enter__(self) -> w_star_swapped:
        with torch.no_grad():
            for group in self.optimizer.param_groups:
                if not group.get("penalty"):
                    continue
                for p in group["params"]:
                    self.saved.append((p, p.detach().clone()))
            for p, _ in self.saved:  # every W* from the untouched W and Gamma
                p.data.copy_(self.optimizer.w_star(p))
        return self

    def __exit__(self, *exc: Any) -> None:
        with torch.no_grad():
            for p, w in self.saved:
                p.data.copy_(w)
        self.saved.clear()


class RunSession:
    """One run folder being recorded: the folder, the recorder and the open snapshot.

    Args:
        out: the run folder (created; refused if it holds files pathviz did not write, or a
            run unless ``overwrite``).
        every: write a snapshot every this many optimizer steps (evaluations add their own).
        weights_every: save full weights every this many steps (0: at evaluations and at the
            end only; export needs weights at the iteration it cuts).
        tensorboard: a folder for TensorBoard event files of the same scalars, or None.
    """

    def __init__(self, out: str | os.PathLike, *, every: int = 10, weights_every: int = 0,
                 overwrite: bool = False, tensorboard: str | os.PathLike | None = None) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a whole number >= 1, got {every!r}")
        if isinstance(weights_every, bool) or not isinstance(weights_every, int) or \
                weights_every < 0:
            raise ValueError(f"weights_every must be a whole number >= 0, got "
                             f"{weights_every!r}")
        self.paths = runs.paths_for_dir(out)
        self.every, self.weights_every = every, weights_every
        self.overwrite = overwrite
        self.tensorboard = tensorboard
        self.recorder: PathRecorder | None = None
        self.scalars = None
        self.pending: dict[str, Any] | None = None  # {"iteration", "metrics", "weights"}
        self.last_metrics: dict[str, float] = {}

    @property
    def active(self) -> bool:
        return self.recorder is not None

    def start(self, model: nn.Module, optimizer: SLBI, *, config: Mapping[str, Any],
              model_info: Mapping[str, Any], data_info: Mapping[str, Any],
              iterations_per_epoch: int | None) -> None:
        """Claim the folder and open the path file (after :func:`check_optimizer`)."""
        runs.check_run_dir(self.paths)
        if self.paths.path.exists():
            if not self.overwrite:
                raise FileExistsError(f"{self.paths.dir} already holds a run; pass "
                                      f"overwrite=True or choose another folder")
            runs.clear_run(self.paths)
        runs.claim_run_dir(self.paths)
        if self.tensorboard is not None:
            self.scalars = PathScalars(self.tensorboard,
                                       params_total=model_info.get("params_total"))
        self.recorder = PathRecorder(model, optimizer, self.paths.path, config=config,
                                     model_info=model_info, data_info=data_info,
                                     iterations_per_epoch=iterations_per_epoch,
                                     weights_every=0)
        runs.write_status(self.paths, state="running", pid=os.getpid(),
                          pid_start=runs.process_start_time(os.getpid()), started=time.time(),
                          heartbeat=time.time())

    def step_done(self, iteration: int) -> None:
        """An optimizer step made ``iteration``: the previous snapshot is complete; open this
        one if it is on the cadence."""
        if iteration != (self.pending or {}).get("iteration"):
            self.write_pending()
        if iteration % self.every == 0:
            self.add(iteration)
        if self.weights_every and iteration % self.weights_every == 0:
            self.add(iteration, weights=True)

    def add(self, iteration: int, weights: bool = False, **metrics: float) -> None:
        """Merge ``metrics`` into the snapshot of ``iteration`` (opening it if needed)."""
        if self.pending is not None and self.pending["iteration"] != iteration:
            self.write_pending()
        if self.pending is None:
            self.pending = {"iteration": int(iteration), "metrics": {}, "weights": False}
        self.pending["metrics"].update({k: float(v) for k, v in metrics.items()})
        self.pending["weights"] |= weights

    def write_pending(self) -> None:
        """Write the open snapshot (the weights have not moved since its step)."""
        if self.pending is None or self.recorder is None:
            self.pending = None
            return
        p, self.pending = self.pending, None
        metrics = dict(p["metrics"])
        metrics.setdefault("params_kept", params_kept(self.recorder.model,
                                                      self.recorder.optimizer))
        for k in ("train_loss", "train_acc"):  # the last measured, so the curve has no gaps
            if k not in metrics and k in self.last_metrics:
                metrics[k] = self.last_metrics[k]
        self.recorder.record(p["iteration"], weights=p["weights"], **metrics)
        if self.scalars is not None:
            stats, _ = self.recorder.layer_stats()
            self.scalars.snapshot(p["iteration"], metrics, stats)
        runs.write_status(self.paths, heartbeat=time.time(), iteration=p["iteration"])

    def finish(self, iteration: int | None, state: str = "finished", reason: str = "") -> None:
        """Write the open snapshot and the final weights, close the file, say how it ended."""
        if self.recorder is None:
            return
        try:
            if iteration is not None and iteration > 0:
                if self.recorder.last_iteration == iteration and self.pending is None:
                    self.recorder.record_weights(iteration)
                else:
                    self.add(iteration, weights=True)
            self.write_pending()
        finally:
            self.recorder.close()
            self.recorder = None
            runs.write_status(self.paths, state=state, reason=reason, ended=time.time())
        if self.scalars is not None:
            with PathReader(self.paths.path) as r:
                self.scalars.stop(stop_of(r))
            self.scalars.close()
            self.scalars = None
