"""Gamma's groups in tensor terms: which entries of which tensors form one group.

A conv filter or linear row is one row of its weight (:func:`group_rows`); a group that spans
tensors (an attention head: q, k, v rows and output-projection columns) is one index along an
axis of each tensor's :data:`Span` view. :func:`support_mask` is the one rule that says which groups
are in Gamma's support; :func:`group_lambda` is the threshold of a parameter's groups. The
optimizer (:mod:`pathviz.optim`), its update functions (:mod:`pathviz.slbi_update`), pruning,
the recorder and resume all read groups through this module, so they agree on what a group is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import Tensor

__all__ = ["Span", "span_view", "support_mask", "group_rows", "check_spans", "group_lambda"]

# How one parameter of a group that spans tensors holds its share of the groups: the parameter
# viewed as ``shape`` (a plain view of the contiguous tensor) has one group per index of axis
# ``dim``. E.g. head h of an attention layer: ``in_proj_weight`` (3E, E) as (3, H, E/H*E), dim 1
# (its q, k and v rows), and ``out_proj.weight`` (E, E) as (E, H, E/H), dim 1 (its columns).
Span = tuple[tuple[int, ...], int]


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


def group_rows(t: Tensor) -> Tensor:
    """``t`` as (groups, entries) rows: one row per output unit, a view of ``t``."""
    # (out, in*kh*kw): one group per filter / linear row
    return t.view(t.shape[0], -1) if t.dim() > 0 else t.view(1, 1)


def check_spans(group: dict[str, Any]) -> None:
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


def group_lambda(p: Tensor, group: dict[str, Any]) -> float:
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
