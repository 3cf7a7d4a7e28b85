"""What the worker records at a snapshot, and when it saves weights.

:class:`Snapshotter` keeps the training-loss sums between snapshots (on the device, so a
training step never waits for the host), decides whether a snapshot carries full weights (the
fixed cadence, the first and last snapshot, and ``weights_on_change``: a support that moved by
that many groups since the last saved weights, so that each change can be exported), evaluates
W and the compact subnetwork on the iterations that are candidates for the stop rule, and hands
the row to the :class:`pathviz.recorder.PathRecorder` (rank 0 only).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from pathviz.config import RunConfig
from pathviz.evaluate import Evaluator
from pathviz.optim import SLBI
from pathviz.recorder import LayerSpec, PathRecorder

__all__ = ["Snapshotter"]


class Snapshotter:
    """Train-metric sums, the weights decision and the evaluation of one run's snapshots.

    Args:
        cfg: the run's config (``snapshot_every``, ``weights_every``, ``eval_every``,
            ``weights_on_change``).
        model, opt: the network and its optimizer (SLBI, or a baseline without Gamma).
        layers: the Gamma layers (:func:`pathviz.recorder.layers_of`), known on every rank.
        evaluator: W's and the subnetwork's figures (sharded over ranks when it has ``dist``).
        example: one input of the model's shape, which torch-pruning traces.
        all_sum: sums a tensor over the ranks (identity for one process).
    """

    def __init__(self, cfg: RunConfig, model: nn.Module, opt: torch.optim.Optimizer,
                 layers: list[LayerSpec], evaluator: Evaluator, example: torch.Tensor,
                 device: torch.device, all_sum: Any = None) -> None:
        self.cfg, self.model, self.opt, self.layers = cfg, model, opt, layers
        self.evaluator, self.example, self.device = evaluator, example, device
        self._all_sum = all_sum or (lambda t: t)
        self.has_gamma = isinstance(opt, SLBI)
        named = dict(model.named_parameters())
        self._params = [named[s.param] for s in layers]
        self.sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss, correct, n
        self.support_at_weights: list[torch.Tensor] | None = None
        self.metrics: dict[str, float] = {}
        self.seconds = 0.0  # spent writing rows and weights, for bench/

    # ---- train metrics -----------------------------------------------------------------------

    @torch.no_grad()
    def count(self, loss_sum: torch.Tensor, out: torch.Tensor, y: torch.Tensor) -> None:
        """Add one batch's summed loss, correct predictions and size (no host sync)."""
        self.sums += torch.stack([loss_sum.double(), (out.argmax(1) == y).sum().double(),
                                  torch.tensor(float(y.shape[0]), dtype=torch.float64,
                                               device=self.sums.device)])

    def global_sums(self) -> torch.Tensor:
        """The train sums over every rank since the last snapshot (a collective with ranks)."""
        return self._all_sum(self.sums)

    # ---- support -----------------------------------------------------------------------------

    def support_now(self) -> list[torch.Tensor]:
        """Each Gamma layer's support mask, on the device."""
        return [self.opt.support(p) for p in self._params]

    def support_changed(self) -> int:
        """Groups that entered or left the support since the last saved weights (one host
        transfer for all layers)."""
        now = self.support_now()
        if not now:
            return 0
        if self.support_at_weights is None:
            return int(torch.stack([m.sum() for m in now]).sum())
        return int(torch.stack([(a != b).sum() for a, b in zip(now, self.support_at_weights)])
                   .sum())

    # ---- the snapshot ------------------------------------------------------------------------

    def due(self, iteration: int, final: bool) -> bool:
        """Whether ``iteration`` gets a snapshot."""
        return iteration % self.cfg.snapshot_every == 0 or final

    def wants_weights(self, iteration: int, final: bool) -> bool:
        """The cadence, the first and last snapshot, or a support that moved enough."""
        cfg = self.cfg
        if iteration % cfg.weights_every == 0 or final or iteration == 0:
            return True
        return bool(cfg.weights_on_change and self.has_gamma
                    and self.support_changed() >= cfg.weights_on_change)

    def gammas(self) -> dict[str, torch.Tensor]:
        """Every Gamma layer's tensor by parameter name."""
        named = dict(self.model.named_parameters())
        # a layer whose groups span tensors has a share of Gamma in each of its members
        return {name: self.opt.gamma(named[name]).detach() for s in self.layers
                for name in ([m.param for m in s.members] or [s.param])}

    def take(self, iteration: int, *, final: bool, epoch: float, elapsed: float,
             recorder: PathRecorder | None) -> dict[str, float]:
        """Record the snapshot of ``iteration`` (every rank calls this: evaluation is shared);
        returns its metrics. Every iteration with weights is evaluated, so each one is a
        candidate for the stop rule."""
        metrics: dict[str, float] = {}
        loss_sum, correct, n = self.global_sums().tolist()  # one transfer
        if n > 0:
            metrics["train_loss"] = loss_sum / n
            metrics["train_acc"] = correct / n
        self.sums.zero_()
        weights = self.wants_weights(iteration, final)
        if iteration % self.cfg.eval_every == 0 or final or weights:
            metrics.update(self.evaluator.dense(self.model))
            if self.has_gamma:
                metrics.update(self.evaluator.sparse(
                    self.model, [s.to_json() for s in self.layers], self.gammas(), self.example))
        t0 = time.perf_counter()
        if recorder is not None:
            recorder.record(iteration, epoch=epoch, elapsed=elapsed, weights=weights, **metrics)
        if weights and self.has_gamma:
            self.support_at_weights = self.support_now()
        self.seconds += time.perf_counter() - t0
        self.metrics = metrics
        return metrics
