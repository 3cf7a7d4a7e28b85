"""Record the SLBI path of any ``LightningModule`` trained by ``lightning.Trainer``.

    class Net(lightning.LightningModule):
        ...
        def configure_optimizers(self):
            return slbi_optimizer(self, lr=0.1, nu=10.0, lam=0.5)  # conv/linear groups

    trainer = lightning.Trainer(max_epochs=3, callbacks=[PathCallback("checkpoints/mine")])
    trainer.fit(Net(), train_loader, val_loader)

The callback counts ``trainer.global_step``, Lightning's optimizer steps, so with
``accumulate_grad_batches`` a snapshot follows an optimizer step, never a micro-batch. Under a
distributed strategy (DDP) every process checks the optimizer and only global rank 0 writes;
SLBI runs on every rank on the same averaged gradients, so rank 0's Gamma is the run's.

The validation curve comes from what the module logs (``val_loss``, ``val_acc`` and
``train_acc`` by default; other names through ``metric_names``). With ``sparse_eval`` the
callback also measures W* (the subnetwork) on the validation batches, which the app's stop rule
needs: for batches ``(input, target)`` and a forward that returns class scores; any other batch
leaves ``val_acc_sparse`` unmeasured. Under DDP that is rank 0's share of the batches.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from pathviz.groups import slbi_param_groups
from pathviz.integrations import require
from pathviz.integrations._record import RunSession, check_optimizer, w_star_swapped
from pathviz.optim import SLBI
from pathviz.recorder import model_info

pl = require("lightning.pytorch", "lightning", "pathviz.integrations.lightning")

__all__ = ["PathCallback", "slbi_optimizer"]

# path metric -> the name a LightningModule usually logs it under
METRIC_NAMES = {"val_loss": "val_loss", "val_acc": "val_acc", "train_acc": "train_acc",
                "test_acc": "test_acc"}


def slbi_optimizer(module: nn.Module, lr: float = 0.1, kappa: float = 1.0, nu: float = 100.0,
                   lam: float = 1.0, momentum: float = 0.9, weight_decay: float = 0.0,
                   **groups: Any) -> SLBI:
    """SLBI over the module's conv and linear layers (and the head and neuron groups of any
    transformer block, :func:`pathviz.groups.slbi_param_groups`), for
    ``configure_optimizers``. ``groups`` go to ``slbi_param_groups`` (e.g. ``conv="group"``,
    ``last_linear=None``)."""
    return SLBI(slbi_param_groups(module, **groups), lr=lr, kappa=kappa, nu=nu, lam=lam,
                momentum=momentum, weight_decay=weight_decay)


def _float(v: Any) -> float | None:
    try:
        return float(v.item() if isinstance(v, torch.Tensor) else v)
    except (TypeError, ValueError, RuntimeError):
        return None


@torch.no_grad()
def _accuracy(module: nn.Module, loaders: Any) -> float:
    """Accuracy of ``module`` on ``(input, target)`` batches; NaN for any other batch."""
    loaders = loaders if isinstance(loaders, (list, tuple)) else [loaders]
    right = total = 0
    was = module.training
    module.eval()
    try:
        for batch in loaders[0] if loaders and loaders[0] is not None else ():
            if not (isinstance(batch, (list, tuple)) and len(batch) == 2 and
                    isinstance(batch[1], torch.Tensor)):
                return float("nan")
            x, y = (t.to(module.device) if isinstance(t, torch.Tensor) else t for t in batch)
            scores = module(x)
            if not isinstance(scores, torch.Tensor) or scores.shape[:-1] != y.shape:
                return float("nan")
            right += int((scores.argmax(dim=-1) == y).sum())
            total += y.numel()
    finally:
        module.train(was)
    return right / total if total else float("nan")


class PathCallback(pl.Callback):
    """A Lightning ``Callback`` that records the SLBI path to a run folder.

    Args:
        out, every, weights_every, overwrite, tensorboard: as
            :class:`pathviz.integrations.hf.PathCallback`.
        sparse_eval: measure W* on the validation batches (see the module docstring).
        eval_examples: the validation set's size (the stop rule's standard error needs it);
            by default read from the module's or datamodule's ``val_dataloader``.
        metric_names: the logged names of ``val_loss``, ``val_acc``, ``train_acc`` and
            ``test_acc``, where the module logs them under others.

    A module whose optimizer cannot record a path (not SLBI, or SLBI without a Gamma) is
    refused in ``on_fit_start``, before the first step.
    """

    def __init__(self, out: str | os.PathLike, *, every: int = 10, weights_every: int = 0,
                 sparse_eval: bool = True, overwrite: bool = False,
                 tensorboard: str | os.PathLike | None = None,
                 eval_examples: int | None = None,
                 metric_names: Mapping[str, str] | None = None) -> None:
        self.session = RunSession(out, every=every, weights_every=weights_every,
                                  overwrite=overwrite, tensorboard=tensorboard)
        self.sparse_eval = sparse_eval
        self.eval_examples = eval_examples
        unknown = set(metric_names or {}) - set(METRIC_NAMES)
        if unknown:
            raise ValueError(f"metric_names: {sorted(unknown)} are not path metrics; give "
                             f"names for {sorted(METRIC_NAMES)}")
        self.metric_names = {**METRIC_NAMES, **dict(metric_names or {})}
        self.optimizer: SLBI | None = None
        self._last_step = -1

    def _n_val(self, trainer: Any, module: nn.Module) -> int | None:
        if self.eval_examples is not None:
            return self.eval_examples
        # loaders given to fit() wait in the validation loop's data source until it first
        # runs (Lightning's own attribute: tried, not relied on); else the hooks that make them
        source = getattr(getattr(getattr(getattr(trainer, "fit_loop", None), "epoch_loop",
                                         None), "val_loop", None), "_data_source", None)
        owners = [getattr(source, "instance", None), getattr(trainer, "datamodule", None),
                  module]
        for owner in owners:
            try:
                loader = owner if isinstance(owner, DataLoader) else owner.val_dataloader()
                if isinstance(loader, (list, tuple)):
                    loader = loader[0]
                return len(loader.dataset)
            except Exception:  # noqa: BLE001 - no loader there (Lightning raises its own)
                continue
        return None

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        opts = trainer.optimizers
        self.optimizer = check_optimizer(opts[0] if opts else None, "pathviz's Lightning "
                                         "PathCallback")
        if len(opts) > 1:
            raise ValueError("pathviz's Lightning PathCallback records one optimizer; "
                             "configure_optimizers returned several")
        if not trainer.is_global_zero:
            return
        n_val = self._n_val(trainer, pl_module)
        config = {"integration": "lightning.Trainer", "model": type(pl_module).__name__,
                  "max_epochs": trainer.max_epochs, "max_steps": trainer.max_steps,
                  "accumulate_grad_batches": trainer.accumulate_grad_batches,
                  "world_size": trainer.world_size}
        self.session.start(pl_module, self.optimizer, config=config,
                           model_info=model_info(pl_module),
                           data_info={"n_val": n_val} if n_val else {},
                           iterations_per_epoch=None)
        self._last_step = trainer.global_step
        self.session.add(trainer.global_step)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        # the training loader is set up between on_fit_start and here: now its length is known
        batches = getattr(trainer, "num_training_batches", None)
        if self.session.active and isinstance(batches, int) and batches > 0:
            per_epoch = max(batches // max(trainer.accumulate_grad_batches, 1), 1)
            self.session.recorder.iterations_per_epoch = per_epoch

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any,
                             batch_idx: int) -> None:
        if self.session.active:
            self.session.write_pending()

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = trainer.global_step
        if not self.session.active or step == self._last_step:
            return  # a micro-batch of gradient accumulation: no optimizer step yet
        self._last_step = step
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        self.session.step_done(step)
        metrics = {"train_loss": _float(loss)}
        acc = trainer.callback_metrics.get(self.metric_names["train_acc"])
        metrics["train_acc"] = _float(acc) if acc is not None else None
        metrics = {k: v for k, v in metrics.items() if v is not None}
        self.session.last_metrics.update(metrics)
        if (self.session.pending or {}).get("iteration") == step:
            self.session.add(step, **metrics)

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if not self.session.active or trainer.sanity_checking:
            return
        found = {}
        for path_name in ("val_loss", "val_acc"):
            v = trainer.callback_metrics.get(self.metric_names[path_name])
            if v is not None and _float(v) is not None:
                found[path_name] = _float(v)
        if self.sparse_eval:
            loaders = trainer.val_dataloaders
            if "val_acc" not in found:
                found["val_acc"] = _accuracy(pl_module, loaders)
            with w_star_swapped(self.optimizer):
                found["val_acc_sparse"] = _accuracy(pl_module, loaders)
        self.session.add(trainer.global_step, weights=True, **found)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self.session.finish(trainer.global_step)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if self.session.active:
            first = (str(exception).strip().splitlines() or [""])[0][:200]
            self.session.finish(None, state="failed",
                                reason=f"{type(exception).__name__}: {first}")
