"""The SLBI update rule as pure functions over lists of tensors, one per implementation.

:func:`_single_tensor_slbi` is the reference, written as the equations in
:class:`pathviz.optim.SLBI`'s docstring read; :func:`_foreach_slbi` (``torch._foreach_*``,
allocation-free with :class:`Scratch`) and :func:`_fused_slbi` (numba, every tensor of a step in
one call: :func:`_fused_job` gathers a param group, :func:`_fused_slbi_groups` runs them all)
give the same numbers up to float rounding, as tests/test_optim.py checks. :func:`_sgd` is the
plain momentum step of parameters without a Gamma. The optimizer class only gathers the lists
and calls one of them (house style, after torch.optim.sgd).
"""

from __future__ import annotations

import torch
from torch import Tensor

from pathviz import _fused
from pathviz.numerics import sqrt_
from pathviz.spans import Span, group_rows, span_view

__all__ = ["Scratch"]


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
    rows = group_rows(z)
    norm = rows.norm(dim=1, keepdim=True)
    scale = torch.where(norm > lam, 1 - lam / norm, torch.zeros_like(norm))
    return (rows * scale).view_as(z)


def _prox_spans(zs: list[Tensor], lam: float, spans: list[Span]) -> list[Tensor]:
    """Group soft-threshold of groups that span tensors: ||z_g|| over every tensor's share."""
    views = [span_view(z, span) for z, span in zip(zs, spans)]
    sq = sum((v * v).reshape(v.shape[0], -1).sum(dim=1) for v in views)
    norm = sqrt_(sq)  # not Tensor.sqrt: MKL's vector sqrt rounds by CPU vendor (numerics.VML_OPS)
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
    norm = sqrt_(sq)  # not Tensor.sqrt_: MKL's vector sqrt rounds by CPU vendor
    scale = torch.where(norm > lam, kappa * (1 - lam / norm), torch.zeros_like(norm))
    for v, gm, span in zip(views, gammas, spans):
        torch.mul(v, scale.reshape(-1, *([1] * (v.dim() - 1))), out=span_view(gm, span))


class Scratch:
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
            rows = group_rows(z)
            norm = torch.linalg.vector_norm(rows, dim=1, keepdim=True)
            scale = torch.where(norm > lam, 1 - lam / norm, torch.zeros_like(norm))
            torch.mul(rows, scale, out=group_rows(gm))
    torch._foreach_mul_(gammas, kappa)


def _fused_slbi(params: list[Tensor], grads: list[Tensor], bufs: list[Tensor | None],
                zs: list[Tensor], gammas: list[Tensor], lams: list[float], *, lr: float,
                kappa: float, nu: float, momentum: float, weight_decay: float, nesterov: bool,
                penalty: str, scratch: list[Tensor] | None = None,
                spans: list[Span] | None = None) -> None:
    """SLBI step as one pass per group row (numba, CPU): m, W, z and ||z_g|| then Gamma_g.

    A row is one filter, small enough to stay in cache, so each tensor crosses memory once.
    Without momentum the kernel still reads and writes m, in ``scratch`` (one tensor like each
    param, zeroed before each step; allocated here if not given).
    With ``spans`` a group is not a row: the kernel does the elementwise m, W and z pass and
    Gamma comes from the groups' norms across the tensors afterwards.
    """
    _fused_slbi_groups([_fused_job(params, grads, bufs, zs, gammas, lams, lr=lr, kappa=kappa,
                                   nu=nu, momentum=momentum, weight_decay=weight_decay,
                                   nesterov=nesterov, penalty=penalty, scratch=scratch,
                                   spans=spans)])


class _FusedJob:
    """One param group's share of a fused step: its tensors, row shapes, kind and scalars,
    gathered so that :func:`_fused_slbi_groups` takes every group of a step in one call."""

    __slots__ = ("tensors", "rows", "kind", "nesterov", "hyper", "zs", "gammas", "lam", "kappa",
                 "spans")

    def __init__(self) -> None:
        self.tensors: list[tuple[Tensor, ...]] = []
        self.rows: list[tuple[int, int]] = []


def _fused_job(params: list[Tensor], grads: list[Tensor], bufs: list[Tensor | None],
               zs: list[Tensor], gammas: list[Tensor], lams: list[float], *, lr: float,
               kappa: float, nu: float, momentum: float, weight_decay: float, nesterov: bool,
               penalty: str, scratch: list[Tensor] | None = None,
               spans: list[Span] | None = None) -> _FusedJob:
    """Gather one param group for :func:`_fused_slbi_groups`; fills ``bufs`` (zeros before the
    first step: mom*0 + g == g, so the first step's m = g, exactly)."""
    job = _FusedJob()
    job.kind = (_fused.KIND_UPDATE if spans is not None
                else _fused.KIND_L1 if penalty == "l1" else _fused.KIND_GROUP)
    job.nesterov = bool(nesterov)
    job.hyper = [(lr, kappa, nu, momentum, weight_decay, lam) for lam in lams]
    job.zs, job.gammas, job.spans, job.kappa = zs, gammas, spans, kappa
    job.lam = lams[0] if lams else 0.0
    for i, w in enumerate(params):
        if momentum == 0:  # the kernel reads m: mom*0 + g == g
            m = scratch[i].zero_() if scratch is not None else torch.zeros_like(w)
        else:
            if bufs[i] is None:
                bufs[i] = torch.zeros_like(w)
            m = bufs[i]
        rows = w.shape[0] if w.dim() > 0 else 1
        job.rows.append((rows, w.numel() // rows if rows else 0))
        job.tensors.append((w, grads[i], m, zs[i], gammas[i]))
    return job


def _fused_slbi_groups(jobs: list[_FusedJob]) -> None:
    """Run the fused step of every gathered param group: one compiled call per dtype, then the
    prox of the groups that span tensors (it needs every tensor's new z)."""
    by_dtype: dict[torch.dtype, tuple[list, list, list, list, list]] = {}
    for job in jobs:
        for ts, rc, hy in zip(job.tensors, job.rows, job.hyper):
            lists = by_dtype.get(ts[0].dtype)
            if lists is None:
                lists = by_dtype[ts[0].dtype] = ([], [], [], [], [])
            lists[0].append(ts)
            lists[1].append(rc)
            lists[2].append(job.kind)
            lists[3].append(job.nesterov)
            lists[4].append(hy)
    for tensors, rows, kinds, nest, hyper in by_dtype.values():
        _fused.step_many(tensors, rows, kinds, nest, hyper)
    for job in jobs:
        if job.spans is not None:
            _span_gammas_(job.zs, job.gammas, job.lam, job.kappa, job.spans)
