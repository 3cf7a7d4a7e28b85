"""Loss and accuracy of a model on a data split, and the thread pinning that makes them repeatable.

The worker's ``val_acc``/``test_acc``/``*_sparse`` metrics (:class:`Evaluator`) and export's
report both call :func:`evaluate` with the same batch size and order, so an accuracy shown for
the sparse model is the exported file's accuracy on the same data. Sums stay on the model's
device until the end of a split: one transfer per split, not one per batch.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pathviz import distributed
from pathviz.data import BatchLoader, DatasetInfo, Loader, make_loader
from pathviz.prune import subnetwork

__all__ = ["EVAL_BATCH", "Evaluator", "eval_loader", "evaluate"]

EVAL_BATCH = 512


def eval_loader(x: Any, y: torch.Tensor, info: DatasetInfo, device: torch.device | str = "cpu",
                workers: int = 0) -> Loader:
    """A fixed-order, un-augmented loader over (x, y) in batches of :data:`EVAL_BATCH`
    (``workers`` decode images in parallel for an image folder; the batches do not change)."""
    return make_loader(x, y, info, EVAL_BATCH, shuffle=False, augment=False, device=device,
                       workers=workers)


@torch.no_grad()
def evaluate(model: nn.Module, loader: BatchLoader) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` over ``loader``; the model's mode is kept."""
    was = model.training
    model.eval()
    device = getattr(loader, "device", "cpu")
    loss = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    n = 0
    try:
        for x, y in loader.epoch(0):
            out = model(x)
            # float64 sums added in batch order: the same figure on every device and in export
            loss += F.cross_entropy(out, y, reduction="sum").double()
            correct += (out.argmax(1) == y).sum()
            n += int(y.shape[0])
    finally:
        model.train(was)
    if n == 0:
        return float("nan"), float("nan")
    return float(loss) / n, int(correct) / n


class Evaluator:
    """The worker's figures at a snapshot: W's and the compact subnetwork's validation and test
    accuracy, and the subnetwork's size.

    The sparse figures come from :func:`pathviz.prune.subnetwork`, the function export uses, so
    they are the exported file's. With ``dist`` (several torchrun processes) each split's batches
    are shared among the ranks (:func:`pathviz.distributed.evaluate_sharded`), with the same
    result. Evaluation runs in float32 without autocast, as export does, also in ``--amp`` runs.
    """

    def __init__(self, val: BatchLoader, test: BatchLoader, dist: object | None = None) -> None:
        self.val, self.test, self.dist = val, test, dist

    def loss_acc(self, model: nn.Module, loader: BatchLoader) -> tuple[float, float]:
        """(mean cross-entropy, accuracy) of ``model`` on ``loader``."""
        if self.dist is not None:
            return distributed.evaluate_sharded(model, loader, self.dist)
        return evaluate(model, loader)

    def dense(self, model: nn.Module) -> dict[str, float]:
        """Validation and test loss/accuracy of W (the dense model being trained)."""
        val_loss, val_acc = self.loss_acc(model, self.val)
        test_loss, test_acc = self.loss_acc(model, self.test)
        return {"val_loss": val_loss, "val_acc": val_acc, "test_loss": test_loss,
                "test_acc": test_acc}

    def sparse(self, model: nn.Module, layers: list[dict], gammas: dict[str, torch.Tensor],
               example: torch.Tensor) -> dict[str, float]:
        """Size and validation/test accuracy of the compact subnetwork that export would write
        for the support of ``gammas``."""
        sub = subnetwork(model, layers, gammas, example)
        return {"val_acc_sparse": self.loss_acc(sub.compact, self.val)[1],
                "test_acc_sparse": self.loss_acc(sub.compact, self.test)[1],
                "params_kept": float(sub.params), "flops_kept": float(sub.flops)}
