"""Record a regularization path from any training loop that uses :class:`pathviz.optim.SLBI`.

    recorder = PathRecorder(model, opt, "checkpoints/mine/path.h5", dataset="digits",
                            weights_every=100)
    for it, (x, y) in enumerate(loader, 1):
        ...; opt.step()
        recorder.record(it, train_loss=loss.item())
    recorder.close()

The training worker (``pathviz.train``) uses the same class, so a hand-written loop gets a file
the app shows exactly like a worker's. The file stores what export needs to rebuild the model:
its zoo name and constructor arguments (``model.pathviz_arch``, set by
:func:`pathviz.models.build_model`), the dataset, and the layer map. At every weight save the
recorder also stores the size of the compact subnetwork (``params_kept``/``flops_kept``), from
the same :func:`pathviz.prune.subnetwork` that export uses.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from pathviz import _fused, numerics
from pathviz.data import dataset_info
from pathviz.groups import LayerSpec, Member
from pathviz.numerics import sqrt_
from pathviz.optim import SLBI, span_view
from pathviz.prune import count, subnetwork
from pathviz.store import STANDARD_METRICS, PathWriter, Snapshot

__all__ = ["PathRecorder", "layers_of", "model_info"]


def model_info(model: nn.Module, example: torch.Tensor | None = None,
               dataset: str | None = None) -> dict[str, Any]:
    """What rebuilds ``model`` and its full size, for the path file's ``model`` attribute.

    ``name``/``kwargs`` come from ``model.pathviz_arch`` (zoo models); a custom model gets its
    class name and ``"custom": True``, which export reports as not rebuildable. ``flops_total``
    needs an ``example`` input (or a ``dataset`` whose image shape gives one).
    """
    arch = dict(getattr(model, "pathviz_arch", None) or {})
    info: dict[str, Any] = {"params_total": int(sum(p.numel() for p in model.parameters()))}
    if arch:
        info["name"] = arch.pop("name")
        info["num_classes"] = arch.get("num_classes")
        info["kwargs"] = arch
    else:
        info.update(name=type(model).__name__, custom=True)
    d = dataset_info(dataset) if example is None else None  # imagefolder too: shape only
    if d is not None:
        device = next(iter(model.parameters())).device
        example = torch.zeros(1, d.in_channels, d.image_size, d.image_size, device=device)
    if example is not None:
        was = model.training
        info["input_shape"] = list(example.shape[1:])
        info["flops_total"] = count(model.eval(), example)[1]
        model.train(was)
    return info


_model_info = model_info


def layers_of(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[LayerSpec]:
    """The layers of ``model`` whose weight has a Gamma in ``optimizer``, in model order.

    A param group with ``spans`` is one layer whose groups span its tensors (attention heads,
    MLP neurons): named by the group's ``layer`` (else the module its tensors share), of the
    group's ``kind``. Any other optimizer (e.g. the ``torch.optim.SGD`` baseline) has none: an
    empty list.
    """
    if not isinstance(optimizer, SLBI):
        return []
    names = {id(p): n for n, p in model.named_parameters()}
    order = {n: i for i, (n, _) in enumerate(model.named_modules())}
    penalty = {}
    specs = []
    for group in optimizer.param_groups:
        if group["penalty"] is None:
            continue
        if group.get("spans") is None:
            for p in group["params"]:
                penalty[id(p)] = group["penalty"]
            continue
        if any(id(p) not in names for p in group["params"]):
            raise ValueError("a param group with spans holds a tensor that is not a parameter "
                             "of the model")
        members = tuple(Member(names[id(p)], tuple(p.shape), tuple(view), int(dim))
                        for p, (view, dim) in zip(group["params"], group["spans"]))
        # the module its tensors share, e.g. "blocks.0.attn" for blocks.0.attn.{qkv,proj}
        name = group.get("layer") or ".".join(os.path.commonprefix(
            [m.param.split(".")[:-1] for m in members])) or members[0].param
        specs.append(LayerSpec(name=name, param=members[0].param,
                               kind=group.get("kind") or "linear", shape=members[0].shape,
                               penalty="group", groups=members[0].view[members[0].dim],
                               members=members))
    for name, mod in model.named_modules():
        w = getattr(mod, "weight", None)
        if not isinstance(w, torch.Tensor) or id(w) not in penalty:
            continue
        pen = penalty[id(w)]
        kind = "conv" if isinstance(mod, nn.modules.conv._ConvNd) else "linear"
        specs.append(LayerSpec(name=name, param=f"{name}.weight" if name else "weight", kind=kind,
                               shape=tuple(w.shape), penalty=pen,
                               groups=w.shape[0] if pen == "group" else w.numel()))
    if not specs:
        raise ValueError("the optimizer has no parameter with a Gamma (every group has "
                         "penalty=None); build its groups with pathviz.groups.slbi_param_groups")

    def position(spec: LayerSpec) -> int:
        module = spec.name if spec.name in order else spec.param.rpartition(".")[0]
        return order.get(module, len(order))

    return sorted(specs, key=position)


def _span_stats(spec: LayerSpec, ws: list[torch.Tensor], gammas: list[torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(||Gamma_g||, ||W_g||, nnz(Gamma_g)) per group of a layer whose groups span tensors:
    sums over every member's share, as (G,) tensors on the parameters' device."""
    g2 = w2 = nnz = 0
    for m, w, gm in zip(spec.members, ws, gammas):
        gv = span_view(gm.detach().contiguous(), m.span).reshape(spec.groups, -1)
        wv = span_view(w.detach().contiguous(), m.span).reshape(spec.groups, -1)
        g2 = g2 + (gv.double() ** 2).sum(dim=1)
        w2 = w2 + (wv.double() ** 2).sum(dim=1)
        nnz = nnz + (gv != 0).sum(dim=1)
    # numerics.sqrt_, not Tensor.sqrt: MKL's vector sqrt rounds by CPU vendor
    return sqrt_(g2).float(), sqrt_(w2).float(), nnz


def _group_stats(w: torch.Tensor, gamma: torch.Tensor, groups: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(||Gamma_g||, ||W_g||, nnz(Gamma_g)) per output unit, as float32/float32/int32 arrays."""
    if (_fused.AVAILABLE and w.device.type == "cpu" and w.dtype == gamma.dtype
            and w.dtype in (torch.float32, torch.float64) and w.is_contiguous()
            and gamma.is_contiguous()):
        # one pass per row in numba: ~10x cheaper than six small torch reductions per layer
        return _fused.row_stats(w.view(groups, -1).numpy(), gamma.view(groups, -1).numpy())
    g2 = gamma.reshape(groups, -1)
    return (torch.linalg.vector_norm(g2, dim=1).float().cpu().numpy(),
            torch.linalg.vector_norm(w.reshape(groups, -1), dim=1).float().cpu().numpy(),
            (g2 != 0).sum(dim=1).int().cpu().numpy())


def _sparsity(stats: dict[str, tuple[np.ndarray, ...]]) -> float:
    """The fraction of all groups outside the support (NaN without Gamma layers)."""
    total = sum(len(s[0]) for s in stats.values())
    out = sum(int(np.count_nonzero(s[0] == 0)) for s in stats.values())
    return out / total if total else float("nan")


def _optimizer_config(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The hyperparameters of SLBI's first param group with a Gamma (lr, kappa, nu, lam, momentum,
    weight_decay), so a recorded run shows its ν, λ and κ wherever a trained run does; a
    ``config`` given to the recorder overrides them."""
    if not isinstance(optimizer, SLBI):
        return {"optimizer": type(optimizer).__name__.lower()}
    # the first group with a Gamma: its lam is the one the path shows (biases have none)
    group = next((g for g in optimizer.param_groups if g.get("penalty")),
                 optimizer.param_groups[0])
    keys = ("lr", "kappa", "nu", "lam", "momentum", "weight_decay")
    return {"optimizer": "slbi", **{k: group[k] for k in keys
                                    if isinstance(group.get(k), (int, float))}}


def _environment(model: nn.Module) -> dict[str, Any]:
    """What makes this process's numbers (:func:`pathviz.numerics.environment`): the pinned
    level if :func:`pathviz.numerics.pin` ran here, else ``native``; the model's device."""
    try:
        device = str(next(iter(model.parameters())).device)
    except StopIteration:
        device = "cpu"
    return numerics.environment(numerics.pinned_level() or "native", device=device)


def _check_iteration(iteration: Any, last: int | None, call: str) -> None:
    """One sentence (ValueError) for an iteration the path file could not hold: not a whole
    number, negative, or not above ``last``, the previous one of the same kind."""
    if isinstance(iteration, bool) or not isinstance(iteration, (int, np.integer)) or \
            iteration < 0:
        raise ValueError(f"{call}: the iteration must be a whole number >= 0, got "
                         f"{iteration!r}")
    if last is not None and iteration <= last:
        raise ValueError(f"{call}: iteration {int(iteration)} is not above the last one "
                         f"recorded ({last}); iterations must strictly increase (count "
                         f"optimizer steps, not epochs or batches within an epoch)")


class PathRecorder:
    """Writes snapshots of an SLBI run to a path file that the app can show live.

    Args:
        model, optimizer: the network and its SLBI optimizer (any other torch optimizer records a
            baseline: metrics only, no Gamma layers).
        path: the ``.h5`` file to create (an existing file is never overwritten).
        dataset: its name in :data:`pathviz.data.DATASET_NAMES`, if it is one: stored, so
            the app names the run and export can rebuild its input and test set.
        example_input: one input batch of the model's shape (else taken from ``dataset``); with
            it, weight saves also store the compact subnetwork's ``params_kept``/``flops_kept``.
        model_info, data_info: override what is stored in the ``model``/``data`` attributes
            (the worker passes its own, with the validation split's size).
        config: anything JSON-able that describes the run (stored in the file, over SLBI's own
            lr, kappa, nu, lam, momentum and weight_decay, which are stored by default).
        environment: what made the numbers (default: :func:`pathviz.numerics.environment` of
            this process: library versions, the pinned CPU level, the device).
        metrics: extra metric names beyond ``store.STANDARD_METRICS`` that ``record`` will get.
        weights_every: save full weights and Gamma every this many iterations (0: only when
            ``record(..., weights=True)`` or at ``close``-time via ``record_final``).
        flush_interval: seconds between writes to disk (see :class:`pathviz.store.PathWriter`).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                 path: str | os.PathLike, *, config: Mapping[str, Any] | None = None,
                 metrics: Iterable[str] = (), weights_every: int = 0,
                 iterations_per_epoch: int | None = None, flush_interval: float = 0.25,
                 overwrite: bool = False, dataset: str | None = None,
                 example_input: torch.Tensor | None = None,
                 model_info: Mapping[str, Any] | None = None,
                 data_info: Mapping[str, Any] | None = None,
                 environment: Mapping[str, Any] | None = None) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError("PathRecorder needs a torch optimizer (pathviz.optim.SLBI for a path)")
        if os.path.exists(path) and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True or choose another file")
        self._setup(model, optimizer, weights_every, iterations_per_epoch)
        if isinstance(optimizer, SLBI) and not self.layers:
            raise ValueError("the optimizer has no parameter with a Gamma (every group has "
                             "penalty=None); build its groups with "
                             "pathviz.groups.slbi_param_groups")
        if example_input is None and dataset is not None:
            d = dataset_info(dataset)  # the input shape; imagefolder's needs no root
            if d is not None:
                example_input = torch.zeros(1, d.in_channels, d.image_size, d.image_size,
                                            device=next(iter(model.parameters())).device)
        self.example = example_input
        if model_info is None:
            model_info = _model_info(model, example_input)
        if data_info is None:
            data_info = {"dataset": dataset} if dataset else {}
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        state = model.state_dict()
        weights = [{"name": k, "shape": list(v.shape), "dtype": str(v.cpu().numpy().dtype)}
                   for k, v in state.items()]
        self.writer = PathWriter(path, config={**_optimizer_config(optimizer),
                                               **dict(config or {})},
                                 layers=[s.to_json() for s in self.layers], weights=weights,
                                 metrics=list(STANDARD_METRICS) + list(metrics),
                                 flush_interval=flush_interval, model=model_info,
                                 data=data_info or None,
                                 environment=environment if environment is not None else
                                 _environment(model))

    @classmethod
    def continuing(cls, model: nn.Module, optimizer: torch.optim.Optimizer, writer: PathWriter,
                   *, weights_every: int = 0, iterations_per_epoch: int | None = None,
                   example_input: torch.Tensor | None = None) -> PathRecorder:
        """A recorder that appends to an already open writer (used by resume)."""
        self = cls.__new__(cls)
        self._setup(model, optimizer, weights_every, iterations_per_epoch)
        self.example = example_input
        self.writer = writer
        return self

    def _setup(self, model: nn.Module, optimizer: torch.optim.Optimizer, weights_every: int,
               iterations_per_epoch: int | None) -> None:
        self.model, self.optimizer = model, optimizer
        self.layers = layers_of(model, optimizer)
        params = dict(model.named_parameters())
        self._params = [params[s.param] for s in self.layers]
        # every tensor of each layer's Gamma: its members where its groups span tensors
        self._members = [[params[m.param] for m in s.members] or [params[s.param]]
                         for s in self.layers]
        self.weights_every = int(weights_every)
        self.iterations_per_epoch = iterations_per_epoch
        self._t0 = time.time()
        self.last_iteration: int | None = None
        self.last_weights_iteration: int | None = None
        self.last_support: tuple[int, int] = (0, 0)  # (groups in the support, all groups)

    @torch.no_grad()
    def layer_stats(self) -> tuple[dict[str, tuple[np.ndarray, ...]], float]:
        """Per-layer (gamma_norm, weight_norm, nnz) and the sparsity (fraction of groups out).

        On the CPU each layer's rows go through the numba kernel; on a GPU every layer's
        statistics are computed there and come back in one transfer per snapshot."""
        if self._params and self._params[0].device.type != "cpu":
            return self._device_stats()
        stats = {}
        for spec, p, members in zip(self.layers, self._params, self._members):
            gamma = self.optimizer.gamma(p)
            if spec.members:
                gn, wn, nnz = _span_stats(spec, members,
                                          [self.optimizer.gamma(q) for q in members])
                gn, wn, nnz = gn.cpu().numpy(), wn.cpu().numpy(), nnz.int().cpu().numpy()
            elif spec.penalty == "group":
                gn, wn, nnz = _group_stats(p.detach(), gamma, spec.groups)
            else:
                gn = gamma.detach().abs().flatten().float().cpu().numpy()
                wn = p.detach().abs().flatten().float().cpu().numpy()
                nnz = (gn != 0).astype(np.int32)
            stats[spec.name] = (gn, wn, nnz)
        return stats, _sparsity(stats)

    def _device_stats(self) -> tuple[dict[str, tuple[np.ndarray, ...]], float]:
        """:meth:`layer_stats` computed on the parameters' device: one float32 vector of
        (gamma_norm, weight_norm, nnz) per layer, concatenated, then one copy to the host."""
        parts = []
        for spec, p, members in zip(self.layers, self._params, self._members):
            g = self.optimizer.gamma(p).detach()
            if spec.members:
                gn, wn, nnz = _span_stats(spec, members,
                                          [self.optimizer.gamma(q) for q in members])
                parts += [gn, wn, nnz.float()]
            elif spec.penalty == "group":
                g2, w2 = g.reshape(spec.groups, -1), p.detach().reshape(spec.groups, -1)
                parts += [torch.linalg.vector_norm(g2, dim=1).float(),
                          torch.linalg.vector_norm(w2, dim=1).float(),
                          (g2 != 0).sum(dim=1).float()]
            else:
                gn = g.abs().flatten().float()
                parts += [gn, p.detach().abs().flatten().float(), (gn != 0).float()]
        flat = torch.cat(parts).cpu().numpy()  # the one transfer
        stats = {}
        at = 0
        for spec in self.layers:
            n = spec.groups  # rows for group, every weight for l1
            gn, wn, nnz = (flat[at + i * n:at + (i + 1) * n] for i in range(3))
            at += 3 * n
            stats[spec.name] = (gn.copy(), wn.copy(), nnz.astype(np.int32))
        return stats, _sparsity(stats)

    def subnetwork(self) -> Any:
        """The masked and compact subnetwork of the current support
        (:class:`pathviz.prune.Subnetwork`), e.g. to evaluate it in your own loop and pass
        ``val_acc_sparse``/``test_acc_sparse`` to :meth:`record`. Needs ``example_input`` or a
        known ``dataset``."""
        if self.example is None:
            raise ValueError("the recorder has no example input: pass dataset= or "
                             "example_input= when creating it")
        gammas = {name: self.optimizer.gamma(q).detach() for name, q in self._gamma_tensors()}
        return subnetwork(self.model, [s.to_json() for s in self.layers], gammas, self.example)

    def record(self, iteration: int, *, epoch: float | None = None, elapsed: float | None = None,
               weights: bool | None = None, **metrics: float) -> None:
        """Append a snapshot at ``iteration`` with the given metrics (others are NaN).

        ``sparsity`` is computed here; ``lr`` defaults to the optimizer's. Full weights are
        added when ``weights`` is True, or by ``weights_every`` when None; with them come
        ``params_kept``/``flops_kept`` of the compact subnetwork, unless given.

        Raises ValueError, before anything is written, for an iteration that is not a whole
        number above the last one recorded: the store refuses a file whose iterations do not
        strictly increase, so recording one would make the whole run unreadable.
        """
        _check_iteration(iteration, self.last_iteration, "record")
        stats, sparsity = self.layer_stats()
        groups = sum(len(s[0]) for s in stats.values())
        self.last_support = (groups - round(groups * sparsity) if groups else 0, groups)
        metrics.setdefault("lr", float(self.optimizer.param_groups[0]["lr"]))
        metrics.setdefault("sparsity", sparsity)
        if weights is None:
            weights = self.weights_every > 0 and iteration % self.weights_every == 0
        if weights and self.layers and self.example is not None and "params_kept" not in metrics:
            sub = self.subnetwork()
            metrics["params_kept"], metrics["flops_kept"] = float(sub.params), float(sub.flops)
        if epoch is None:
            epoch = iteration / self.iterations_per_epoch if self.iterations_per_epoch else np.nan
        if elapsed is None:
            elapsed = time.time() - self._t0
        self.writer.append(Snapshot(int(iteration), float(epoch), float(elapsed),
                                    {k: float(v) for k, v in metrics.items()}, stats))
        self.last_iteration = int(iteration)
        if weights:
            self.record_weights(iteration)

    @torch.no_grad()
    def record_weights(self, iteration: int) -> None:
        """Append the full state_dict and every layer's Gamma at ``iteration``."""
        if self.last_weights_iteration == iteration:
            return
        _check_iteration(iteration, self.last_weights_iteration, "record_weights")
        tensors = {k: v.detach().cpu().numpy().copy() for k, v in self.model.state_dict().items()}
        gammas = {name: self.optimizer.gamma(q).detach().float().cpu().numpy().copy()
                  for name, q in self._gamma_tensors()}
        self.writer.append_weights(int(iteration), tensors, gammas)
        self.last_weights_iteration = int(iteration)

    def _gamma_tensors(self) -> list[tuple[str, torch.Tensor]]:
        """(parameter name, parameter) of every tensor with a share of a layer's Gamma."""
        return [(m.param, q) for s, members in zip(self.layers, self._members)
                for m, q in zip(s.members, members)] + \
            [(s.param, p) for s, p in zip(self.layers, self._params) if not s.members]

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()

    def __enter__(self) -> PathRecorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
