"""SLBI: the Split Linearized Bregman Iteration optimizer of DessiLBI (Fu et al., ICML 2020).

The optimizer couples each weight tensor W with a sparse variable Gamma. Gamma's support grows from
empty along the iterations, which is the regularization path pathviz records and shows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from pathviz import _fused

PENALTIES = ("group", "l1", None)
GROUP_SCALES = (None, "sqrt")
IMPLS = ("auto", "fused", "foreach", "single")

__all__ = ["SLBI", "PENALTIES", "IMPLS", "Span", "support_mask", "span_view"]

# How one parameter of a group that spans tensors holds its share of the groups: the parameter
# viewed as ``shape`` (a plain view of the contiguous tensor) has one group per index of axis
# ``dim``. E.g. head h of an attention layer: ``in_proj_weight`` (3E, E) as (3, H, E/H*E), dim 1
# (its q, k and v rows), and ``out_proj.weight`` (E, E) as (E, H, E/H), dim 1 (its columns).
Span = tuple[tuple[int, ...], int]


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
        self._scratch = _Scratch()
        defaults = dict(lr=lr, kappa=kappa, nu=nu, lam=lam, momentum=momentum,
                        weight_decay=weight_decay, nesterov=nesterov, penalty=penalty,
                        group_scale=group_scale)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        _check_hyperparameters(self.param_groups[-1])
        _check_spans(self.param_groups[-1])

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("impl", "auto")
        self.__dict__.setdefault("_scratch", _Scratch())

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        """Take one SLBI step on every parameter that has a gradient; returns the closure's loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
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
            if group["penalty"] is None:
                bufs = [self.state[p].get("momentum_buffer") for p in params]
                _sgd(params, grads, bufs, lr=group["lr"] * group["kappa"],
                     momentum=group["momentum"], weight_decay=group["weight_decay"],
                     nesterov=group["nesterov"], foreach=self.impl != "single")
                if group["momentum"] != 0:
                    for p, b in zip(params, bufs):
                        self.state[p]["momentum_buffer"] = b
                continue
            for p in params:
                st = self.state[p]
                if "gamma" not in st:
                    # row-major whatever the parameter's layout (e.g. channels-last): the
                    # group prox views each filter as one contiguous row
                    st["gamma"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
                    st["z"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
            kw = dict(lr=group["lr"], kappa=group["kappa"], nu=group["nu"],
                      momentum=group["momentum"], weight_decay=group["weight_decay"],
                      nesterov=group["nesterov"], penalty=group["penalty"])
            lams = [_group_lambda(p, group) for p in params]
            kw["spans"] = spans
            gammas = [self.state[p]["gamma"] for p in params]
            zs = [self.state[p]["z"] for p in params]
            bufs = [self.state[p].get("momentum_buffer") for p in params]
            impl = self._choose_impl(params, grads)
            if impl == "fused":
                _fused_slbi(params, grads, bufs, zs, gammas, lams, **kw,
                            scratch=[self._scratch.get(p) for p in params])
            elif impl == "foreach":
                _foreach_slbi(params, grads, bufs, zs, gammas, lams, **kw,
                              scratch=[self._scratch.get(p) for p in params])
            else:
                _single_tensor_slbi(params, grads, bufs, zs, gammas, lams, **kw)
            if group["momentum"] != 0:
                for p, b in zip(params, bufs):
                    self.state[p]["momentum_buffer"] = b
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


def span_view(t: Tensor, span: Span) -> Tensor:
    """``t`` seen as (G, ...), its groups along axis 0: a view (no copy), so writing into it
    writes ``t``. ``t`` must be contiguous."""
    shape, dim = span
    return t.view(shape).movedim(dim, 0)


def support_mask(gamma: Tensor | Sequence[Tensor], penalty: str,
                 spans: Sequence[Span] | None = None) -> Tensor:
    """Bool mask of Gamma's support: one entry per output unit (row) for ``"group"``, one per
    element (``gamma.shape``) for ``"l1"``; with ``spans``, ``gamma`` is the list of the
    group's tensors and the mask has one entry per group across them, (G,). The one rule that
    the optimizer, the worker's weight saves, resume and pruning all use."""
    if spans is not None:
        gammas = [gamma] if isinstance(gamma, Tensor) else list(gamma)
        out = None
        for gm, span in zip(gammas, spans, strict=True):
            v = span_view(gm.contiguous(), span)
            inside = (v.reshape(v.shape[0], -1) != 0).any(dim=1)
            out = inside if out is None else out | inside
        return out
    if penalty == "group":
        return (gamma.reshape(gamma.shape[0], -1) != 0).any(dim=1)
    return gamma != 0


def _check_spans(group: dict[str, Any]) -> None:
    """Normalise a group's ``spans`` to tuples and raise a ValueError naming what does not fit:
    one span per parameter, each a view of its (contiguous) parameter with the same group
    count G on its axis, under the ``"group"`` penalty."""
    spans = group.get("spans")
    if spans is None:
        return
    params = group["params"]
    if group["penalty"] != "group":
        raise ValueError(f"Invalid spans: a group spanning tensors needs penalty='group', got "
                         f"{group['penalty']!r}")
    if len(spans) != len(params):
        raise ValueError(f"Invalid spans: {len(spans)} spans for {len(params)} parameters "
                         f"(one per parameter)")
    norm, counts = [], set()
    for i, (p, span) in enumerate(zip(params, spans)):
        try:
            shape, dim = tuple(int(v) for v in span[0]), int(span[1])
        except (TypeError, ValueError, IndexError):
            raise ValueError(f"Invalid spans[{i}]: {span!r}; expected (shape, dim)") from None
        if math.prod(shape) != p.numel() or not 0 <= dim < len(shape):
            raise ValueError(f"Invalid spans[{i}]: {span!r} does not view a parameter of shape "
                             f"{tuple(p.shape)} (shape must hold its {p.numel()} entries and "
                             f"dim be one of its axes)")
        if not p.is_contiguous():
            raise ValueError(f"Invalid spans[{i}]: the parameter is not contiguous")
        counts.add(shape[dim])
        norm.append((shape, dim))
    if len(counts) != 1:
        raise ValueError(f"Invalid spans: the parameters hold different group counts "
                         f"{sorted(counts)}; every span's axis must have the same length")
    group["spans"] = norm


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
    if group["penalty"] not in PENALTIES:
        raise ValueError(
            f"Invalid penalty value: {group['penalty']!r}; expected one of {PENALTIES}")
    if group["group_scale"] not in GROUP_SCALES:
        raise ValueError(
            f"Invalid group_scale value: {group['group_scale']!r}; expected one of {GROUP_SCALES}")


def _group_lambda(p: Tensor, group: dict[str, Any]) -> float:
    """Lambda for every group of ``p``: scaled by sqrt(group size) when group_scale='sqrt'
    (with ``spans``, the size over all the group's tensors)."""
    lam = float(group["lam"])
    if group["group_scale"] == "sqrt":
        if group.get("spans") is not None:
            size = sum(q.numel() // span[0][span[1]]
                       for q, span in zip(group["params"], group["spans"]))
        else:
            size = p[0].numel() if group["penalty"] == "group" and p.dim() > 0 else 1
        lam *= math.sqrt(size)
    return lam


def _rows(t: Tensor) -> Tensor:
    # (out, in*kh*kw): one group per filter / linear row
    return t.view(t.shape[0], -1) if t.dim() > 0 else t.view(1, 1)


def _sgd(params: list[Tensor], grads: list[Tensor], bufs: list[Tensor | None], *, lr: float,
         momentum: float, weight_decay: float, nesterov: bool, foreach: bool) -> None:
    """Momentum SGD exactly as torch.optim.SGD (dampening 0); fills ``bufs`` in place."""
    if foreach:
        if weight_decay != 0:
            grads = torch._foreach_add(grads, params, alpha=weight_decay)
        if momentum != 0:
            new = [i for i, b in enumerate(bufs) if b is None]
            old = [i for i, b in enumerate(bufs) if b is not None]
            if old:
                ob = [bufs[i] for i in old]
                torch._foreach_mul_(ob, momentum)
                torch._foreach_add_(ob, [grads[i] for i in old])
            for i in new:
                bufs[i] = torch.clone(grads[i]).detach()
            if nesterov:
                grads = torch._foreach_add(grads, bufs, alpha=momentum)
            else:
                grads = bufs
        torch._foreach_add_(params, grads, alpha=-lr)
        return
    for i, p in enumerate(params):
        g = grads[i]
        if weight_decay != 0:
            g = g.add(p, alpha=weight_decay)
        if momentum != 0:
            if bufs[i] is None:
                bufs[i] = torch.clone(g).detach()
            else:
                bufs[i].mul_(momentum).add_(g)
            g = g.add(bufs[i], alpha=momentum) if nesterov else bufs[i]
        p.add_(g, alpha=-lr)


def _single_tensor_slbi(params: list[Tensor], grads: list[Tensor], bufs: list[Tensor | None],
                        zs: list[Tensor], gammas: list[Tensor], lams: list[float], *, lr: float,
                        kappa: float, nu: float, momentum: float, weight_decay: float,
                        nesterov: bool, penalty: str, spans: list[Span] | None = None) -> None:
    """Reference SLBI step, one tensor at a time, written as the equations read.

    With ``spans`` the prox comes after every tensor's z step: its group norm needs them all.
    """
    for i, w in enumerate(params):
        g = grads[i]
        if weight_decay != 0:
            g = g + weight_decay * w
        if momentum != 0:
            if bufs[i] is None:
                bufs[i] = torch.clone(g).detach()
            else:
                bufs[i].mul_(momentum).add_(g)
            d = g + momentum * bufs[i] if nesterov else bufs[i]
        else:
            d = g
        diff = w - gammas[i]
        w.sub_(lr * kappa * d + (lr * kappa / nu) * diff)
        zs[i].add_((lr / nu) * diff)
        if spans is None:
            gammas[i].copy_(kappa * _prox(zs[i], lams[i], penalty))
    if spans is not None:
        for gm, p in zip(gammas, _prox_spans(zs, lams[0], spans)):
            gm.copy_(kappa * p)


def _prox(z: Tensor, lam: float, penalty: str) -> Tensor:
    """prox of lam*penalty at z: group soft-threshold per row, or elementwise soft-threshold."""
    if penalty == "l1":
        return z.sign() * (z.abs() - lam).clamp(min=0)
    rows = _rows(z)
    norm = rows.norm(dim=1, keepdim=True)
    scale = torch.where(norm > lam, 1 - lam / norm, torch.zeros_like(norm))
    return (rows * scale).view_as(z)


def _prox_spans(zs: list[Tensor], lam: float, spans: list[Span]) -> list[Tensor]:
    """Group soft-threshold of groups that span tensors: ||z_g|| over every tensor's share."""
    views = [span_view(z, span) for z, span in zip(zs, spans)]
    sq = sum((v * v).reshape(v.shape[0], -1).sum(dim=1) for v in views)
    norm = sq.sqrt()
    scale = torch.where(norm > lam, 1 - lam / norm, torch.zeros_like(norm))
    return [(v * scale.reshape(-1, *([1] * (v.dim() - 1)))).movedim(0, span[1]).reshape(z.shape)
            for v, z, span in zip(views, zs, spans)]


def _span_gammas_(zs: list[Tensor], gammas: list[Tensor], lam: float, kappa: float,
                  spans: list[Span]) -> None:
    """In place: Gamma = kappa * prox(z) for groups that span tensors, written through views."""
    views = [span_view(z, span) for z, span in zip(zs, spans)]
    sq = None
    for v in views:
        part = torch.linalg.vector_norm(v.reshape(v.shape[0], -1), dim=1) ** 2
        sq = part if sq is None else sq.add_(part)
    norm = sq.sqrt_()
    scale = torch.where(norm > lam, kappa * (1 - lam / norm), torch.zeros_like(norm))
    for v, gm, span in zip(views, gammas, spans):
        torch.mul(v, scale.reshape(-1, *([1] * (v.dim() - 1))), out=span_view(gm, span))


class _Scratch:
    """One persistent scratch tensor per parameter, so the foreach path allocates nothing per step.

    Fresh temporaries cost more than the arithmetic on CPU (new pages are faulted in every step).
    """

    def __init__(self) -> None:
        self._bufs: dict[int, Tensor] = {}

    def get(self, p: Tensor) -> Tensor:
        key = id(p)
        buf = self._bufs.get(key)
        if buf is None or buf.shape != p.shape or buf.dtype != p.dtype or buf.device != p.device:
            buf = torch.empty_like(p)
            self._bufs[key] = buf
        return buf


def _foreach_slbi(params: list[Tensor], grads: list[Tensor], bufs: list[Tensor | None],
                  zs: list[Tensor], gammas: list[Tensor], lams: list[float], *, lr: float,
                  kappa: float, nu: float, momentum: float, weight_decay: float, nesterov: bool,
                  penalty: str, scratch: list[Tensor] | None = None,
                  spans: list[Span] | None = None) -> None:
    """SLBI step over lists of tensors with in-place torch._foreach_* ops.

    ``scratch`` (one tensor like each param) makes the step allocation-free; without it the step
    allocates its temporaries.
    """
    if scratch is None:
        scratch = [torch.empty_like(p) for p in params]
    # d: the descent direction of the loss, built in bufs (momentum) or scratch (no momentum)
    if momentum != 0:
        new = {i for i, b in enumerate(bufs) if b is None}
        for i in new:
            bufs[i] = torch.clone(grads[i]).detach()
            if weight_decay != 0:
                bufs[i].add_(params[i], alpha=weight_decay)
        old = [i for i in range(len(bufs)) if i not in new]
        if old:
            ob = [bufs[i] for i in old]
            torch._foreach_mul_(ob, momentum)
            torch._foreach_add_(ob, [grads[i] for i in old])
            if weight_decay != 0:
                torch._foreach_add_(ob, [params[i] for i in old], alpha=weight_decay)
        if nesterov:
            torch._foreach_copy_(scratch, grads)
            if weight_decay != 0:
                torch._foreach_add_(scratch, params, alpha=weight_decay)
            torch._foreach_add_(scratch, bufs, alpha=momentum)
            direction = scratch
        else:
            direction = bufs
    else:
        torch._foreach_copy_(scratch, grads)
        if weight_decay != 0:
            torch._foreach_add_(scratch, params, alpha=weight_decay)
        direction = scratch
    # scratch may hold the direction; apply it to W after diff is taken from W_old
    if direction is scratch:
        diffs = [torch.sub(w, gm) for w, gm in zip(params, gammas)]
    else:
        torch._foreach_copy_(scratch, params)
        torch._foreach_sub_(scratch, gammas)
        diffs = scratch
    torch._foreach_add_(zs, diffs, alpha=lr / nu)
    torch._foreach_add_(params, direction, alpha=-lr * kappa)
    torch._foreach_add_(params, diffs, alpha=-lr * kappa / nu)
    if spans is not None:
        _span_gammas_(zs, gammas, lams[0], kappa, spans)
        return
    for z, gm, lam in zip(zs, gammas, lams):
        if penalty == "l1":
            torch.clamp(z, -lam, lam, out=gm)
            torch.sub(z, gm, out=gm)
        else:
            rows = _rows(z)
            norm = torch.linalg.vector_norm(rows, dim=1, keepdim=True)
            scale = torch.where(norm > lam, 1 - lam / norm, torch.zeros_like(norm))
            torch.mul(rows, scale, out=_rows(gm))
    torch._foreach_mul_(gammas, kappa)


def _fused_slbi(params: list[Tensor], grads: list[Tensor], bufs: list[Tensor | None],
                zs: list[Tensor], gammas: list[Tensor], lams: list[float], *, lr: float,
                kappa: float, nu: float, momentum: float, weight_decay: float, nesterov: bool,
                penalty: str, scratch: list[Tensor], spans: list[Span] | None = None) -> None:
    """SLBI step as one pass per group row (numba, CPU): m, W, z and ||z_g|| then Gamma_g.

    A row is one filter, small enough to stay in cache, so each tensor crosses memory once.
    Without momentum the kernel still writes m, into ``scratch`` (kept at zero beforehand).
    With ``spans`` a group is not a row: the kernel does the elementwise m, W and z pass and
    Gamma comes from the groups' norms across the tensors afterwards.
    """
    for i, w in enumerate(params):
        if momentum == 0:
            m = scratch[i].zero_()
        else:
            if bufs[i] is None:
                bufs[i] = torch.zeros_like(w)  # mom*0 + g == g: the first step's m = g, exactly
            m = bufs[i]
        _fused.step(_rows(w.detach()).numpy(), _rows(grads[i]).numpy(), _rows(m).numpy(),
                    _rows(zs[i]).numpy(), _rows(gammas[i]).numpy(), lr=lr, kappa=kappa, nu=nu,
                    momentum=momentum, weight_decay=weight_decay, nesterov=nesterov,
                    lam=lams[i], l1=penalty == "l1", prox=spans is None)
    if spans is not None:
        _span_gammas_(zs, gammas, lams[0], kappa, spans)
