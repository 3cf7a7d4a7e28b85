"""Fused SLBI kernels: one pass per group row, compiled by numba for the CPU.

Kept apart from ``optim.py`` so that numba stays optional: without it, ``AVAILABLE`` is False and
the optimizer uses its ``torch._foreach_*`` path.

Why the kernels look the way they do: scalars are cast to the arrays' dtype before the call, else
every float32 element op is promoted to float64 and the loop runs about 1.6x slower; there are no
per-element branches for the first step or weight decay (a zero momentum buffer gives ``m = g``
exactly, and ``wd = 0`` adds an exact zero).
"""

from __future__ import annotations

import math

import numpy as np
import torch

try:
    import numba
except ImportError:  # pragma: no cover - exercised only where numba is absent
    numba = None

AVAILABLE = numba is not None


def supports(params: list[torch.Tensor], grads: list[torch.Tensor]) -> bool:
    """True when every tensor is a contiguous float32/float64 CPU tensor the kernels can take."""
    for p, g in zip(params, grads):
        if p.device.type != "cpu" or p.dtype not in (torch.float32, torch.float64):
            return False
        if g.dtype != p.dtype or not (p.is_contiguous() and g.is_contiguous()):
            return False
    return True


def _group_kernel(w, g, m, z, gam, a, b, c, mom, wd, nesterov, kappa, lam):
    # (rows, cols) views: one group per row. a = lr*kappa, b = lr*kappa/nu, c = lr/nu
    rows, cols = w.shape
    for i in numba.prange(rows):
        acc = 0.0
        for j in range(cols):
            wij = w[i, j]
            gij = g[i, j] + wd * wij
            mij = mom * m[i, j] + gij
            m[i, j] = mij
            d = gij + mom * mij if nesterov else mij
            diff = wij - gam[i, j]
            w[i, j] = wij - a * d - b * diff
            zij = z[i, j] + c * diff
            z[i, j] = zij
            acc += zij * zij
        norm = math.sqrt(acc)
        s = kappa * (1.0 - lam / norm) if norm > lam else 0.0
        s = z.dtype.type(s)
        for j in range(cols):
            gam[i, j] = s * z[i, j]


def _l1_kernel(w, g, m, z, gam, a, b, c, mom, wd, nesterov, kappa, lam):
    rows, cols = w.shape
    for i in numba.prange(rows):
        for j in range(cols):
            wij = w[i, j]
            gij = g[i, j] + wd * wij
            mij = mom * m[i, j] + gij
            m[i, j] = mij
            d = gij + mom * mij if nesterov else mij
            diff = wij - gam[i, j]
            w[i, j] = wij - a * d - b * diff
            zij = z[i, j] + c * diff
            z[i, j] = zij
            gam[i, j] = kappa * (zij - min(max(zij, -lam), lam))


def _update_kernel(w, g, m, z, gam, a, b, c, mom, wd, nesterov, kappa, lam):
    # m, W and z only (Gamma is read, not written): for groups that span tensors, whose prox
    # needs every tensor's z first
    rows, cols = w.shape
    for i in numba.prange(rows):
        for j in range(cols):
            wij = w[i, j]
            gij = g[i, j] + wd * wij
            mij = mom * m[i, j] + gij
            m[i, j] = mij
            d = gij + mom * mij if nesterov else mij
            diff = wij - gam[i, j]
            w[i, j] = wij - a * d - b * diff
            z[i, j] = z[i, j] + c * diff


if AVAILABLE:
    _jit = numba.njit(parallel=True, cache=True, nogil=True)
    _GROUP = _jit(_group_kernel)
    _L1 = _jit(_l1_kernel)
    _UPDATE = _jit(_update_kernel)


def launch() -> None:
    """Start numba's threading layer now, with a step on a 1x1 array.

    Its OpenMP layer, when it starts, sets the process's OpenMP thread count to
    ``NUMBA_NUM_THREADS``, and MKL/oneDNN under torch then use that many threads: a later torch
    result would depend on the machine's core count. :func:`pathviz.numerics.pin` calls
    this before it sets torch's thread count.
    """
    if AVAILABLE:
        a = np.zeros((1, 1), np.float32)
        step(a, a.copy(), a.copy(), a.copy(), a.copy(), lr=0.0, kappa=1.0, nu=1.0, momentum=0.0,
             weight_decay=0.0, nesterov=False, lam=1.0, l1=False)


def step(w: np.ndarray, g: np.ndarray, m: np.ndarray, z: np.ndarray, gam: np.ndarray, *,
         lr: float, kappa: float, nu: float, momentum: float, weight_decay: float,
         nesterov: bool, lam: float, l1: bool, prox: bool = True) -> None:
    """One SLBI step in place on (rows, cols) arrays; ``m`` holds zeros before the first step.

    ``prox=False`` updates m, W and z only and leaves Gamma as it was."""
    if not AVAILABLE:  # pragma: no cover
        raise RuntimeError("the fused SLBI kernel needs numba: pip install numba")
    t = w.dtype.type
    kernel = _UPDATE if not prox else _L1 if l1 else _GROUP
    kernel(w, g, m, z, gam, t(lr * kappa), t(lr * kappa / nu), t(lr / nu), t(momentum),
           t(weight_decay), bool(nesterov), t(kappa), t(lam))


def _row_stats_kernel(w, gam, gn, wn, nnz):
    # per row: ||Gamma_g||, ||W_g|| and the nonzero count of Gamma_g, in one pass
    rows, cols = w.shape
    for i in range(rows):
        a = 0.0
        b = 0.0
        c = 0
        for j in range(cols):
            g = gam[i, j]
            x = w[i, j]
            a += g * g
            b += x * x
            c += g != 0
        gn[i] = math.sqrt(a)
        wn[i] = math.sqrt(b)
        nnz[i] = c


if AVAILABLE:
    # fastmath lets LLVM reorder the sums and vectorize them: these are display statistics
    _ROW_STATS = numba.njit(cache=True, nogil=True, fastmath=True)(_row_stats_kernel)


def row_stats(w: np.ndarray, gam: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(||Gamma_g||, ||W_g||, nnz(Gamma_g)) per row of two (rows, cols) arrays: float32, int32."""
    rows = w.shape[0]
    gn = np.empty(rows, np.float32)
    wn = np.empty(rows, np.float32)
    nnz = np.empty(rows, np.int32)
    _ROW_STATS(w, gam, gn, wn, nnz)
    return gn, wn, nnz
