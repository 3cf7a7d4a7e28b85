"""Fused SLBI kernels: the step of every tensor with a Gamma in one call, compiled by numba.

Kept apart from ``optim.py`` so that numba stays optional: without it, ``AVAILABLE`` is False and
the optimizer uses its ``torch._foreach_*`` path.

Why the kernels look the way they do (issue 37 measured each; bench/README.md):

- one compiled call takes every tensor of a step, by address (:func:`step_many`), split into
  work items of whole rows: one call per tensor cost more than the arithmetic on small models;
- the elementwise loops index slices from 0, so numba drops its negative-index wraparound and
  LLVM vectorizes them; scalars come in the arrays' dtype (a float64 scalar would promote every
  float32 element op: slower, and other bits);
- each row's group norm is a float64 sum of float32 squares taken element by element in column
  order, as it always was: the last bit of Gamma, and so the golden figures, depend on that
  order. It runs 4 rows in the lanes of one vector (:func:`_sumsq_typer`), 8 rows at a time,
  after the rows' elementwise pass: the same adds in the same order, at a fraction of the time;
- there are no per-element branches for the first step or weight decay (a zero momentum buffer
  gives ``m = g`` exactly, and ``wd = 0`` adds an exact zero).
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
if AVAILABLE:
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic


def supports(params: list[torch.Tensor], grads: list[torch.Tensor]) -> bool:
    """True when every tensor is a contiguous float32/float64 CPU tensor the kernels can take."""
    for p, g in zip(params, grads):
        # is_cpu and dtype identity: no device object built per tensor on every step
        if not p.is_cpu or (p.dtype is not torch.float32 and p.dtype is not torch.float64):
            return False
        if g.dtype is not p.dtype or not (p.is_contiguous() and g.is_contiguous()):
            return False
    return True


KIND_UPDATE, KIND_GROUP, KIND_L1 = 0, 1, 2
# addrs columns: w, g, m, z, gamma; meta columns: rows, cols, kind, nesterov
# hyper columns: a = lr*kappa, b = lr*kappa/nu, c = lr/nu, momentum, weight_decay, kappa, lam


def _elementwise(w, g, m, z, gam, a, b, c, mom, wd, nesterov):
    # m, W and z over 1-D (sliced) arrays: the same operations, in the same order and
    # precision, as the per-row kernel this replaced (so the same bits). No reduction, and
    # indices from range(0, n) (numba drops the negative-index wraparound, which a loop from
    # another start keeps), so LLVM vectorizes it
    if nesterov:
        for k in range(w.shape[0]):
            wk = w[k]
            gk = g[k] + wd * wk
            mk = mom * m[k] + gk
            m[k] = mk
            diff = wk - gam[k]
            w[k] = wk - a * (gk + mom * mk) - b * diff
            z[k] = z[k] + c * diff
    else:
        for k in range(w.shape[0]):
            wk = w[k]
            mk = mom * m[k] + (g[k] + wd * wk)
            m[k] = mk
            diff = wk - gam[k]
            w[k] = wk - a * mk - b * diff
            z[k] = z[k] + c * diff


def _l1(w, g, m, z, gam, a, b, c, mom, wd, nesterov, kappa, lam):
    _elementwise(w, g, m, z, gam, a, b, c, mom, wd, nesterov)
    for k in range(z.shape[0]):
        zk = z[k]
        gam[k] = kappa * (zk - min(max(zk, -lam), lam))


def _shrink(z, gam, acc, kappa, lam):
    # Gamma_g = kappa * max(0, 1 - lam/||z_g||) * z_g for one row, from its sum of squares
    norm = math.sqrt(acc)
    s = kappa * (1.0 - lam / norm) if norm > lam else 0.0
    s = z.dtype.type(s)
    for k in range(z.shape[0]):
        gam[k] = s * z[k]


def _group(w, g, m, z, gam, rows, cols, a, b, c, mom, wd, nesterov, kappa, lam):
    # the rows of 1-D (sliced) arrays, 8 at a time: the elementwise pass over the 8 rows
    # (vectorized), then each row's sum of squares of z, in float64, element by element in
    # column order as before. Such a sum is a chain of dependent adds, one add latency per
    # element; the 8 rows' chains run side by side, which the CPU overlaps: the same sums,
    # faster.
    r = 0
    while r + 8 <= rows:
        lo = r * cols
        hi = lo + 8 * cols
        _elementwise(w[lo:hi], g[lo:hi], m[lo:hi], z[lo:hi], gam[lo:hi], a, b, c, mom, wd,
                     nesterov)
        z0 = z[lo:lo + cols]
        z1 = z[lo + cols:lo + 2 * cols]
        z2 = z[lo + 2 * cols:lo + 3 * cols]
        z3 = z[lo + 3 * cols:lo + 4 * cols]
        z4 = z[lo + 4 * cols:lo + 5 * cols]
        z5 = z[lo + 5 * cols:lo + 6 * cols]
        z6 = z[lo + 6 * cols:lo + 7 * cols]
        z7 = z[lo + 7 * cols:hi]
        s0, s1, s2, s3, s4, s5, s6, s7 = _sumsq((z0, z1, z2, z3, z4, z5, z6, z7), cols // 4,
                                                (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0))
        for j in range(cols - cols % 4, cols):  # the last columns, after the others
            v0 = z0[j]
            v1 = z1[j]
            v2 = z2[j]
            v3 = z3[j]
            v4 = z4[j]
            v5 = z5[j]
            v6 = z6[j]
            v7 = z7[j]
            s0 += v0 * v0
            s1 += v1 * v1
            s2 += v2 * v2
            s3 += v3 * v3
            s4 += v4 * v4
            s5 += v5 * v5
            s6 += v6 * v6
            s7 += v7 * v7
        _shrink(z0, gam[lo:lo + cols], s0, kappa, lam)
        _shrink(z1, gam[lo + cols:lo + 2 * cols], s1, kappa, lam)
        _shrink(z2, gam[lo + 2 * cols:lo + 3 * cols], s2, kappa, lam)
        _shrink(z3, gam[lo + 3 * cols:lo + 4 * cols], s3, kappa, lam)
        _shrink(z4, gam[lo + 4 * cols:lo + 5 * cols], s4, kappa, lam)
        _shrink(z5, gam[lo + 5 * cols:lo + 6 * cols], s5, kappa, lam)
        _shrink(z6, gam[lo + 6 * cols:lo + 7 * cols], s6, kappa, lam)
        _shrink(z7, gam[lo + 7 * cols:hi], s7, kappa, lam)
        r += 8
    while r < rows:
        lo = r * cols
        hi = lo + cols
        _elementwise(w[lo:hi], g[lo:hi], m[lo:hi], z[lo:hi], gam[lo:hi], a, b, c, mom, wd,
                     nesterov)
        z0 = z[lo:hi]
        s0 = 0.0
        for j in range(cols):
            v0 = z0[j]
            s0 += v0 * v0
        _shrink(z0, gam[lo:hi], s0, kappa, lam)
        r += 1


def _ptr_typer(typingctx, addr, like):
    # a raw address (int64) as a pointer to ``like``'s dtype: lets one compiled call take
    # every tensor of a step, each by its address, instead of one call (and one argument
    # unboxing, one thread launch) per tensor
    sig = types.CPointer(like.dtype)(addr, like)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(signature.return_type))

    return sig, codegen


def _work_item(addrs, meta, hyper, chunks, q):
    # one work item: rows [r0, r1) of tensor t
    t = chunks[q, 0]
    r0 = chunks[q, 1]
    r1 = chunks[q, 2]
    n = meta[t, 0] * meta[t, 1]
    cols = meta[t, 1]
    kind = meta[t, 2]
    nesterov = meta[t, 3] != 0
    lo = r0 * cols
    hi = r1 * cols
    # this work item's rows of each tensor, as 1-D arrays
    w = numba.carray(_ptr(addrs[t, 0], hyper), n)[lo:hi]
    g = numba.carray(_ptr(addrs[t, 1], hyper), n)[lo:hi]
    m = numba.carray(_ptr(addrs[t, 2], hyper), n)[lo:hi]
    z = numba.carray(_ptr(addrs[t, 3], hyper), n)[lo:hi]
    gam = numba.carray(_ptr(addrs[t, 4], hyper), n)[lo:hi]
    a = hyper[t, 0]
    b = hyper[t, 1]
    c = hyper[t, 2]
    mom = hyper[t, 3]
    wd = hyper[t, 4]
    kappa = hyper[t, 5]
    lam = hyper[t, 6]
    if kind == 1:
        _group_rows(w, g, m, z, gam, r1 - r0, cols, a, b, c, mom, wd, nesterov, kappa, lam)
    elif kind == 2:
        _l1(w, g, m, z, gam, a, b, c, mom, wd, nesterov, kappa, lam)
    else:
        _elementwise(w, g, m, z, gam, a, b, c, mom, wd, nesterov)


def _mask(lanes: tuple[int, ...]) -> ir.Constant:
    """A shufflevector mask: which lanes of the two inputs (0-3 the first, 4-7 the second)."""
    return ir.Constant(ir.VectorType(ir.IntType(32), len(lanes)), list(lanes))


def _sumsq_typer(typingctx, rows, steps, acc):
    # ``rows``: a tuple of 4k contiguous 1-D arrays of one dtype (k tiles of 4 rows); ``acc``:
    # their running sums. Adds the squares of the first 4*steps elements of each row to its
    # sum, one element after the other in column order (each row's own chain of float64
    # adds, as the scalar loop does), with 4 rows in the 4 lanes of one vector: a 4x4 tile of
    # squares is transposed so that lane r gets row r's columns j, j+1, j+2, j+3 in turn. The
    # same IEEE operations in the same order, so the same bits, at a quarter of the adds.
    if not isinstance(rows, types.UniTuple) or len(rows) % 4 or len(acc) != len(rows):
        return None
    arr = rows.dtype
    if arr.ndim != 1 or arr.layout != "C" or arr.dtype not in (types.float32, types.float64):
        return None
    sig = types.UniTuple(types.float64, len(rows))(rows, steps, acc)

    def codegen(context, builder, signature, args):
        tiles = len(rows) // 4
        elt = context.get_value_type(arr.dtype)
        f64 = ir.DoubleType()
        vec, dvec = ir.VectorType(elt, 4), ir.VectorType(f64, 4)
        arrays = cgutils.unpack_tuple(builder, args[0], len(rows))
        data = [context.make_array(arr)(context, builder, a).data for a in arrays]
        sums = cgutils.unpack_tuple(builder, args[2], len(rows))
        slots = []
        for t in range(tiles):
            v = ir.Constant(dvec, ir.Undefined)
            for r in range(4):
                v = builder.insert_element(v, sums[4 * t + r], ir.Constant(ir.IntType(32), r))
            slot = cgutils.alloca_once(builder, dvec)
            builder.store(v, slot)
            slots.append(slot)
        size = context.get_abi_sizeof(elt)
        with cgutils.for_range(builder, args[1]) as loop:
            j = builder.mul(loop.index, ir.Constant(loop.index.type, 4))
            for t in range(tiles):
                sq = []
                for r in range(4):
                    ptr = builder.bitcast(builder.gep(data[4 * t + r], [j]), vec.as_pointer())
                    x = builder.load(ptr, align=size)
                    x = builder.fmul(x, x)
                    sq.append(builder.fpext(x, dvec) if arr.dtype == types.float32 else x)
                lo01 = builder.shuffle_vector(sq[0], sq[1], _mask((0, 4, 1, 5)))
                hi01 = builder.shuffle_vector(sq[0], sq[1], _mask((2, 6, 3, 7)))
                lo23 = builder.shuffle_vector(sq[2], sq[3], _mask((0, 4, 1, 5)))
                hi23 = builder.shuffle_vector(sq[2], sq[3], _mask((2, 6, 3, 7)))
                first = _mask((0, 1, 4, 5))
                second = _mask((2, 3, 6, 7))
                s = builder.load(slots[t])
                for col in (builder.shuffle_vector(lo01, lo23, first),  # column j
                            builder.shuffle_vector(lo01, lo23, second),  # j + 1
                            builder.shuffle_vector(hi01, hi23, first),  # j + 2
                            builder.shuffle_vector(hi01, hi23, second)):  # j + 3
                    s = builder.fadd(s, col)
                builder.store(s, slots[t])
        out = []
        for t in range(tiles):
            v = builder.load(slots[t])
            out.extend(builder.extract_element(v, ir.Constant(ir.IntType(32), r))
                       for r in range(4))
        return context.make_tuple(builder, signature.return_type, out)

    return sig, codegen


def _step_parallel(addrs, meta, hyper, chunks):
    for q in numba.prange(chunks.shape[0]):
        _item(addrs, meta, hyper, chunks, q)


def _step_serial(addrs, meta, hyper, chunks):
    # its own function, not the one above compiled without parallel: numba's cache keys a
    # function's compiled code by its signature, not its flags
    for q in range(chunks.shape[0]):
        _item(addrs, meta, hyper, chunks, q)


if AVAILABLE:
    _inline = numba.njit(cache=True, nogil=True, inline="always")
    _ptr = intrinsic(_ptr_typer)
    _sumsq = intrinsic(_sumsq_typer)
    _elementwise = _inline(_elementwise)
    _l1 = _inline(_l1)
    _shrink = _inline(_shrink)
    _group_rows = _inline(_group)
    _item = _inline(_work_item)
    _STEP = numba.njit(parallel=True, cache=True, nogil=True)(_step_parallel)
    _STEP_SERIAL = numba.njit(cache=True, nogil=True)(_step_serial)


#: below this many elements in a step, the kernel runs on the calling thread: starting the
#: worker threads costs more than they save
PARALLEL_MIN = 1 << 17
#: elements per work item (whole rows, a multiple of the 4-row block where rows allow) for
#: numba's static split of the step among its threads
CHUNK = 1 << 15

_chunk_tables: dict[bytes, np.ndarray] = {}


def _chunks(meta: np.ndarray) -> np.ndarray:
    """Work items (tensor, first row, end row) of about CHUNK elements, cached by the layout."""
    key = meta.tobytes()
    table = _chunk_tables.get(key)
    if table is None:
        items = []
        for t, (rows, cols, _, _) in enumerate(meta.tolist()):
            per = max(1, CHUNK // max(cols, 1))
            per = max(8, per // 8 * 8)
            items.extend((t, r, min(r + per, rows)) for r in range(0, rows, per))
        table = np.array(items, np.int64).reshape(-1, 3)
        if len(_chunk_tables) > 64:  # layouts change only when the model does
            _chunk_tables.clear()
        _chunk_tables[key] = table
    return table


def step_many(tensors: list[tuple[torch.Tensor, ...]], rows: list[tuple[int, int]],
              kinds: list[int], nesterov: list[bool], hyper: list[tuple[float, ...]]) -> None:
    """One SLBI step in place on many tensors of one dtype, in one compiled call.

    ``tensors[i]`` is (W, grad, m, z, Gamma), contiguous CPU tensors of the same shape and
    dtype (``m`` all zeros before the first step), viewed as ``rows[i]`` = (rows, cols); the
    kind is :data:`KIND_GROUP` (group prox per row), :data:`KIND_L1` (elementwise prox) or
    :data:`KIND_UPDATE` (m, W and z only: Gamma is read, not written, for groups that span
    tensors, whose prox needs every tensor's z first). ``hyper[i]`` is (lr, kappa, nu,
    momentum, weight_decay, lam).
    """
    if not AVAILABLE:  # pragma: no cover
        raise RuntimeError("the fused SLBI kernel needs numba: pip install numba")
    if not tensors:
        return
    dtype = np.float32 if tensors[0][0].dtype == torch.float32 else np.float64
    addrs = np.array([[t.data_ptr() for t in ts] for ts in tensors], np.int64)
    meta = np.array([(r, c, k, n) for (r, c), k, n in zip(rows, kinds, nesterov)], np.int64)
    # the scalars rounded to the tensors' dtype from the same float64 products as ever: a
    # float64 scalar would promote every float32 element op (slower, and other bits)
    h = np.array([(lr * kappa, lr * kappa / nu, lr / nu, mom, wd, kappa, lam)
                  for lr, kappa, nu, mom, wd, lam in hyper], dtype)
    chunks = _chunks(meta)
    total = int(meta[:, 0] @ meta[:, 1])
    if total < PARALLEL_MIN or numba.get_num_threads() == 1:
        _STEP_SERIAL(addrs, meta, h, chunks)
    else:
        _STEP(addrs, meta, h, chunks)


def launch() -> None:
    """Start numba's threading layer now, with a step on a 1x1 tensor.

    Its OpenMP layer, when it starts, sets the process's OpenMP thread count to
    ``NUMBA_NUM_THREADS``, and MKL/oneDNN under torch then use that many threads: a later torch
    result would depend on the machine's core count. :func:`pathviz.numerics.pin` calls
    this before it sets torch's thread count.
    """
    if AVAILABLE:
        ts = tuple(torch.zeros(1, 1) for _ in range(5))
        addrs = np.array([[t.data_ptr() for t in ts]], np.int64)
        meta = np.array([(1, 1, KIND_GROUP, 0)], np.int64)
        h = np.array([(0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0)], np.float32)
        _STEP(addrs, meta, h, _chunks(meta))


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
