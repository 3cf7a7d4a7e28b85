"""SLBI: the Split Linearized Bregman Iteration optimizer of DessiLBI (Fu et al., ICML 2020).

The optimizer couples each weight tensor W with a sparse variable Gamma. Gamma's support grows from
empty along the iterations, which is the regularization path pathviz records and shows.

This module holds the class (the equations, hyperparameter checks, the choice of implementation
and the inspection helpers). The update functions live in :mod:`pathviz.slbi_update`, the group
structure (spans, support masks, group lambdas) in :mod:`pathviz.spans`; ``Span``,
``span_view`` and ``support_mask`` are re-exported here, where callers have always found them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from pathviz import _fused
from pathviz.slbi_update import (
    Scratch,
    _foreach_slbi,
    _fused_job,
    _fused_slbi_groups,
    _sgd,
    _single_tensor_slbi,
)
from pathviz.spans import Span, check_spans, group_lambda, span_view, support_mask

PENALTIES = ("group", "l1", None)
GROUP_SCALES = (None, "sqrt")
IMPLS = ("auto", "fused", "foreach", "single")

__all__ = ["SLBI", "PENALTIES", "IMPLS", "Span", "support_mask", "span_view"]


class SLBI(Optimizer):
    r"""Split LBI with momentum, in the form of the official DessiLBI code.

    For a parameter W with a Gamma, one ``step`` does (W_old is W before the step, g its gradient)::

        g     = g + weight_decay * W_old                       # only if weight_decay != 0
        m     = momentum * m + g      (m = g on the first step)
        d     = g + momentum * m if nesterov else m
        W     = W_old - lr*kappa*d - lr*kappa/nu * (W_old - Gamma)
        z     = z + lr/nu * (W_old - Gamma)                    # z is the paper's V
        Gamma = kappa * prox_lam(z)

    with ``prox`` per penalty: ``"group"`` (one group per output unit, i.e. row of
    ``W.view(out, -1)``): ``z_g * max(0, 1 - lam_g/||z_g||)``; ``"l1"`` (elementwise):
    ``sign(z) * max(0, |z| - lam)``. ``lam_g = lam * sqrt(|g|)`` when the group sets
    ``group_scale="sqrt"``, else ``lam``. Parameters whose group has ``penalty=None`` take a plain
    momentum SGD step of ``lr*kappa`` (bit-identical to ``torch.optim.SGD(lr=lr*kappa)``).

    A param group may set ``balance``, a name shared with other groups: before the step, the
    loss gradient of each group so named is scaled, in place (like ``clip_grad_norm_``), so that
    its RMS over the group's tensors equals the mean RMS over the groups of that name
    (``g *= mean_j(rms_j) / rms_i``). Within a group the gradient keeps its direction; across
    groups it evens out the scale. In a ViT read through its class token, the last block's
    heads get a small fraction of the first block's gradient, so the coupling pulls them to 0
    first whatever their use; ``balance="heads"`` on every attention layer removes that bias
    (README, "The vit_demo preset"). Weight decay is added after the scaling.

    A param group may also set ``spans``, one :data:`Span` per parameter: then its parameters
    together hold one set of G groups, group g being the entries at index g of each parameter's
    span axis, and ``||z_g||`` (and so the prox) is taken over all of them, across tensors. The
    W, z and momentum updates are elementwise and do not change. ``lam_g`` with ``"sqrt"`` uses
    the group's size over all its tensors.

    Where kappa applies: in the W step (both terms are scaled by ``lr*kappa``) and in
    ``Gamma = kappa * prox(z)``; not in the z step (``lr/nu``). This is design.md section 3.

    Where this differs from the paper: the paper's Algorithm 1 writes the W step without momentum
    and with ``kappa`` on the loss gradient only; like the official code we apply momentum to the
    loss gradient alone (not to the coupling term) and scale both terms by ``lr*kappa``. Gamma and z
    start at zero, so Gamma's support starts empty (inverse scale space).

    Args:
        params: parameters or param groups. A group may set ``penalty`` (``"group"``, ``"l1"``,
            ``None``), ``lam`` and ``group_scale``; see :func:`pathviz.groups.slbi_param_groups`.
        lr, kappa, nu, lam, momentum, weight_decay, nesterov: as in the equations above.
        penalty: default penalty for groups that do not set one (``None``: no Gamma).
        group_scale: ``None`` or ``"sqrt"``.
        impl: ``"auto"`` (fused on CPU when numba is installed, else foreach), ``"fused"`` (one
            pass per group row, CPU only), ``"foreach"`` (``torch._foreach_*``), ``"single"`` (the
            plain per-tensor reference). All give the same numbers up to float rounding.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 0.1,
        kappa: float = 1.0,
        nu: float = 100.0,
        lam: float = 1.0,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        penalty: str | None = None,
        group_scale: str | None = None,
        impl: str = "auto",
    ) -> None:
        if impl not in IMPLS:
            raise ValueError(f"Invalid impl: {impl!r}; expected one of {IMPLS}")
        self.impl = impl
        self._scratch = Scratch()
        defaults = dict(lr=lr, kappa=kappa, nu=nu, lam=lam, momentum=momentum,
                        weight_decay=weight_decay, nesterov=nesterov, penalty=penalty,
                        group_scale=group_scale)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        _check_hyperparameters(self.param_groups[-1])
        check_spans(self.param_groups[-1])

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("impl", "auto")
        self.__dict__.setdefault("_scratch", Scratch())

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        """Take one SLBI step on every parameter that has a gradient; returns the closure's loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        _balance_gradients(self.param_groups)
        fused = []  # the fused path takes every group of the step in one compiled call
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            spans = group.get("spans")
            if spans is not None and len(params) != len(group["params"]):
                # the group norm needs every tensor's z: a part-step would mix two iterations
                raise RuntimeError("SLBI: a param group with spans needs a gradient for every "
                                   "one of its parameters (or for none)")
            if any(p.grad.is_sparse for p in params):
                raise RuntimeError("SLBI does not support sparse gradients")
            grads = [p.grad for p in params]
            # each param's state looked up once: a tensor's hash is a Python-level call
            states = [self.state[p] for p in params]
            if group["penalty"] is None:
                bufs = [st.get("momentum_buffer") for st in states]
                _sgd(params, grads, bufs, lr=group["lr"] * group["kappa"],
                     momentum=group["momentum"], weight_decay=group["weight_decay"],
                     nesterov=group["nesterov"], foreach=self.impl != "single")
                if group["momentum"] != 0:
                    for st, b in zip(states, bufs):
                        st["momentum_buffer"] = b
                continue
            for p, st in zip(params, states):
                if "gamma" not in st:
                    # row-major whatever the parameter's layout (e.g. channels-last): the
                    # group prox views each filter as one contiguous row
                    st["gamma"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
                    st["z"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
            kw = dict(lr=group["lr"], kappa=group["kappa"], nu=group["nu"],
                      momentum=group["momentum"], weight_decay=group["weight_decay"],
                      nesterov=group["nesterov"], penalty=group["penalty"])
            lams = [group_lambda(p, group) for p in params]
            kw["spans"] = spans
            gammas = [st["gamma"] for st in states]
            zs = [st["z"] for st in states]
            bufs = [st.get("momentum_buffer") for st in states]
            impl = self._choose_impl(params, grads)
            if impl == "fused":
                # scratch stands in for m only without momentum
                scratch = ([self._scratch.get(p) for p in params] if group["momentum"] == 0
                           else None)
                fused.append(_fused_job(params, grads, bufs, zs, gammas, lams, **kw,
                                        scratch=scratch))
            elif impl == "foreach":
                _foreach_slbi(params, grads, bufs, zs, gammas, lams, **kw,
                              scratch=[self._scratch.get(p) for p in params])
            else:
                _single_tensor_slbi(params, grads, bufs, zs, gammas, lams, **kw)
            if group["momentum"] != 0:
                for st, b in zip(states, bufs):
                    st["momentum_buffer"] = b
        if fused:
            _fused_slbi_groups(fused)
        return loss

    def _choose_impl(self, params: list[Tensor], grads: list[Tensor]) -> str:
        if self.impl == "fused":
            if not _fused.AVAILABLE:
                raise RuntimeError("impl='fused' needs numba: pip install numba")
            if not _fused.supports(params, grads):
                raise RuntimeError("impl='fused' needs contiguous float32/float64 CPU tensors")
            return "fused"
        if self.impl == "auto":
            if _fused.AVAILABLE and _fused.supports(params, grads):
                return "fused"
            return "foreach"
        return self.impl

    # ---- inspection helpers ------------------------------------------------------------------

    def _gamma_group(self, p: Tensor) -> dict[str, Any]:
        for group in self.param_groups:
            if any(q is p for q in group["params"]):
                if group["penalty"] is None:
                    raise ValueError("this parameter has no Gamma (its group has penalty=None)")
                return group
        raise ValueError("this parameter is not managed by this optimizer")

    def gamma(self, p: Tensor) -> Tensor:
        """Gamma of ``p`` (zeros before the first step); same shape as ``p``."""
        self._gamma_group(p)
        st = self.state[p]
        return st["gamma"] if "gamma" in st else torch.zeros_like(p)

    def support(self, p: Tensor) -> Tensor:
        """Bool mask of the groups of ``p`` in Gamma's support.

        Shape ``(out,)`` for ``penalty="group"`` (one entry per output unit), ``(G,)`` for a
        group with ``spans`` (one entry per group it shares with the other tensors), ``p.shape``
        for ``"l1"`` (every element is its own group).
        """
        group = self._gamma_group(p)
        if group.get("spans") is not None:
            return support_mask([self.gamma(q) for q in group["params"]], "group",
                                group["spans"])
        return support_mask(self.gamma(p), group["penalty"])

    def w_star(self, p: Tensor) -> Tensor:
        """W masked by Gamma's support, ``W * 1[Gamma_g != 0]``: the sparse model at this step."""
        group = self._gamma_group(p)
        mask = self.support(p)
        if group.get("spans") is not None:
            i = next(i for i, q in enumerate(group["params"]) if q is p)
            out = p.detach().clone()
            v = span_view(out, group["spans"][i])
            v.mul_(mask.to(out.dtype).reshape(-1, *([1] * (v.dim() - 1))))
            return out
        if group["penalty"] == "group":
            mask = mask.reshape(-1, *([1] * (p.dim() - 1)))
        return p.detach() * mask



def _balance_gradients(groups: list[dict[str, Any]]) -> None:
    """Scale, in place, the gradients of the param groups that share a ``balance`` name so each
    group's gradient RMS (over all its tensors, summed in float64) is the mean over the set."""
    sets: dict[str, list[tuple[list[Tensor], float]]] = {}
    for group in groups:
        name = group.get("balance")
        if name is None:  # most groups: nothing to gather on each step
            continue
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            continue
        sq = sum(float((p.grad.double() ** 2).sum()) for p in params)
        n = sum(p.numel() for p in params)
        sets.setdefault(name, []).append((params, (sq / n) ** 0.5))
    for members in sets.values():
        ref = sum(rms for _, rms in members) / len(members)
        for params, rms in members:
            factor = ref / max(rms, 1e-12)
            for p in params:
                p.grad.mul_(factor)


def _check_hyperparameters(group: dict[str, Any]) -> None:
    """Raise a ValueError naming the first bad hyperparameter of a param group."""
    checks = [
        ("lr", group["lr"] >= 0), ("kappa", group["kappa"] > 0), ("nu", group["nu"] > 0),
        ("lam", group["lam"] >= 0), ("momentum", 0 <= group["momentum"] < 1),
        ("weight_decay", group["weight_decay"] >= 0),
    ]
    for name, ok in checks:
        value = group[name]
        if (not isinstance(value, (int, float)) or isinstance(value, bool)
                or not math.isfinite(value)):
            raise ValueError(f"Invalid {name} value: {value!r} (must be a finite number)")
        if not ok:
            raise ValueError(f"Invalid {name} value: {value!r}")
    if group["nesterov"] and group["momentum"] == 0:
        raise ValueError("Invalid nesterov value: True needs momentum > 0")
    balance = group.get("balance")
    if balance is not None and not isinstance(balance, str):
        raise ValueError(f"Invalid balance value: {balance!r} (must be a name or None)")
    if group["penalty"] not in PENALTIES:
        raise ValueError(
            f"Invalid penalty value: {group['penalty']!r}; expected one of {PENALTIES}")
    if group["group_scale"] not in GROUP_SCALES:
        raise ValueError(
            f"Invalid group_scale value: {group['group_scale']!r}; expected one of {GROUP_SCALES}")
