"""Baseline supports: which groups each pruning method keeps, at the path's widths.

Scores come from torch-pruning's importance criteria over its dependency graph, so channels that
a residual addition or a BatchNorm couples to others are scored and removed as one group (the
same coupled sets :func:`pathviz.prune.plan_pruning` builds for the path's own support). Nothing
here writes files.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
import torch_pruning as tp
from torch import nn

from pathviz import prune
from pathviz.tickets.baselines import METHODS, BaselineError

log = logging.getLogger("pathviz.baselines")

TAYLOR_BATCHES = 8  # training batches whose summed gradient the Taylor score uses

__all__ = ["TAYLOR_BATCHES", "has_batchnorm", "Scores", "score_sets", "baseline_plan",
           "global_plan", "kept_of", "plan_from_kept", "compact_copy"]


def has_batchnorm(model: nn.Module) -> bool:
    """True when the model has a BatchNorm layer (network slimming needs one)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _importance(method: str):
    if method in ("magnitude", "global-magnitude"):
        # L1 (p=1) of the filter/neuron and of everything coupled to it; the default "mean"
        # normaliser makes layers comparable, as torch-pruning's own global pruning does
        return tp.importance.GroupMagnitudeImportance(p=1)
    if method == "slimming":
        return tp.importance.BNScaleImportance()
    if method == "taylor":
        return tp.importance.GroupTaylorImportance()
    raise BaselineError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")


def _handler(kind: str):
    return tp.prune_conv_out_channels if kind == "conv" else tp.prune_linear_out_channels


@dataclass
class Scores:
    """Per coupled set of the path's plan (by its root layer): one score per channel; per
    attention layer whose heads the plan can remove: one score per head."""

    by_root: dict[str, torch.Tensor] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _taylor_gradients(model: nn.Module, batches: Any) -> None:
    """Sum the cross-entropy gradient of ``batches`` (eval mode: BatchNorm statistics kept)."""
    model.eval()
    model.zero_grad(set_to_none=True)
    with torch.enable_grad():
        for x, y in batches:
            F.cross_entropy(model(x), y).backward()


def score_sets(reference: nn.Module, plan: prune.PrunePlan, example: torch.Tensor, method: str,
               batches: Any = None) -> Scores:
    """Score every channel of every coupled set of ``plan``, and every head of its attention
    layers, in a copy of ``reference``.

    ``batches`` (an iterable of (x, y)) is needed by ``taylor`` only. ``slimming`` scores a set
    without BatchNorm (e.g. a VGG classifier layer) by magnitude and says so in ``notes``.
    """
    if method == "slimming" and not has_batchnorm(reference):
        name = getattr(reference, "pathviz_arch", {}).get("name", type(reference).__name__)
        raise BaselineError(f"slimming scores channels by their BatchNorm scale, and {name} has "
                            f"no BatchNorm layer; choose magnitude, taylor or global-magnitude")
    model = copy.deepcopy(reference).eval()
    if method == "taylor":
        if batches is None:
            raise BaselineError("taylor needs training batches for its gradients")
        _taylor_gradients(model, batches)
    dg = prune.dependency_graph(model, example)
    names = dict(model.named_modules())
    imp = _importance(method)
    out = Scores()
    for s in plan.sets:
        group = dg.get_pruning_group(names[s["root"]], _handler(s["kind"]),
                                     idxs=list(range(int(s["channels"]))))
        with torch.no_grad():
            score = imp(group)
        if score is None and method == "slimming":
            score = _importance("magnitude")(group)
            out.notes.append(f"{', '.join(s['members'])}: no BatchNorm in its group, scored by "
                             f"L1 magnitude")
        if score is None:
            raise BaselineError(f"torch-pruning's {method} importance gave no score for "
                                f"{s['root']}")
        out.by_root[s["root"]] = score.detach().flatten().to(torch.float64)
    for h in plan.heads:
        if method == "slimming":
            out.notes.append(f"{h['root']}: attention heads have no BatchNorm, scored by L1 "
                             f"magnitude")
        out.by_root[h["root"]] = _head_scores(names[h["root"]], h,
                                              "taylor" if method == "taylor" else "magnitude")
    model.zero_grad(set_to_none=True)
    return out


def _head_scores(mod: nn.Module, h: dict[str, Any], method: str) -> torch.Tensor:
    """One score per head of the attention module ``mod`` (a ``plan.heads`` entry ``h``),
    computed as torch-pruning scores a coupled set, which its graph cannot build for heads:
    per member tensor (the head's q, k, v rows; its output-projection columns) the sum of
    ``|w|`` (magnitude, p=1) or ``|w * grad|`` (taylor) over the head's entries, averaged over
    the two members and divided by the mean over the heads (its "mean" group reduction and
    normaliser), so head and neuron scores compare in the global ranking."""
    n, d = int(h["heads"]), int(h["head_dim"])
    parts = []
    for w, view in ((mod.qkv.weight, (3, n, -1)), (mod.proj.weight, (-1, n, d))):
        t = w.detach()
        if method == "taylor":
            if w.grad is None:
                raise BaselineError("taylor needs training batches for its gradients")
            t = t * w.grad
        parts.append(t.abs().reshape(view).movedim(1, 0).reshape(n, -1).sum(dim=1))
    score = torch.stack(parts).mean(dim=0).to(torch.float64)
    return score / score.mean()


def _keep_top(score: torch.Tensor, keep: int) -> list[int]:
    """Indices of the ``keep`` highest scores (ties broken by the lower index), sorted."""
    order = sorted(range(len(score)), key=lambda i: (-float(score[i]), i))
    return sorted(order[:keep])


def _units(plan: prune.PrunePlan) -> list[tuple[str, int, list[int]]]:
    """(root, channels, removed) of every coupled set and every attention layer's heads."""
    return [(s["root"], int(s["channels"]), list(s["remove"])) for s in plan.sets] + \
        [(h["root"], int(h["heads"]), list(h["remove"])) for h in plan.heads]


def plan_from_kept(plan: prune.PrunePlan, kept: dict[str, list[int]]) -> prune.PrunePlan:
    """A plan with the same coupled sets (and head layers) as ``plan`` that keeps
    ``kept[root]`` in each."""
    sets, heads, kept_n = [], [], {}
    for s in plan.sets:
        keep = set(int(i) for i in kept[s["root"]])
        if not keep:
            raise BaselineError(f"the support keeps no channel of {s['root']}")
        sets.append({**s, "remove": [i for i in range(int(s["channels"])) if i not in keep]})
        for m in s["members"]:
            kept_n[m] = len(keep)
    for h in plan.heads:
        keep = set(int(i) for i in kept[h["root"]])
        if not keep:
            raise BaselineError(f"the support keeps no head of {h['root']}")
        heads.append({**h, "remove": [i for i in range(int(h["heads"])) if i not in keep]})
        kept_n[h["root"]] = len(keep)
    return prune.PrunePlan(sets=sets, heads=heads, kept=kept_n, groups=dict(plan.groups),
                           warnings=[])


def kept_of(plan: prune.PrunePlan) -> dict[str, list[int]]:
    """Kept channel indices per coupled set (by its root layer), and kept head indices per
    attention layer."""
    return {root: [i for i in range(n) if i not in set(removed)]
            for root, n, removed in _units(plan)}


def baseline_plan(path_plan: prune.PrunePlan, scores: Scores) -> prune.PrunePlan:
    """Per coupled set (and per attention layer), as many channels (heads) as the path keeps:
    the highest-scoring ones."""
    kept = {root: _keep_top(scores.by_root[root], n - len(removed))
            for root, n, removed in _units(path_plan)}
    return plan_from_kept(path_plan, kept)


def compact_copy(model: nn.Module, plan: prune.PrunePlan, example: torch.Tensor) -> nn.Module:
    """A physically narrowed copy of ``model`` (``model`` untouched), eval mode."""
    small = copy.deepcopy(model).eval()
    prune.compact(small, plan, prune.dependency_graph(small, example))
    return small


def _params(model: nn.Module, plan: prune.PrunePlan, example: torch.Tensor) -> int:
    return sum(p.numel() for p in compact_copy(model, plan, example).parameters())


def global_plan(reference: nn.Module, path_plan: prune.PrunePlan, scores: Scores,
                target: int, example: torch.Tensor) -> prune.PrunePlan:
    """One score threshold over every layer (every set keeps at least its best channel, every
    attention layer its best head), chosen
    so that the compact network's parameter count is as close as possible to ``target``."""
    thresholds = sorted({float(v) for t in scores.by_root.values() for v in t})

    def plan_at(k: int) -> prune.PrunePlan:
        # keep the channels scoring >= thresholds[k]; k = 0 keeps everything
        t = thresholds[k] if k < len(thresholds) else float("inf")
        kept = {}
        for root, _, _ in _units(path_plan):
            sc = scores.by_root[root]
            keep = [i for i in range(len(sc)) if float(sc[i]) >= t]
            kept[root] = keep or _keep_top(sc, 1)
        return plan_from_kept(path_plan, kept)

    lo, hi = 0, len(thresholds)  # params(lo) >= target is kept as the invariant below
    p_lo = _params(reference, plan_at(lo), example)
    if p_lo <= target:
        return plan_at(lo)
    p_hi = _params(reference, plan_at(hi), example)
    if p_hi >= target:
        return plan_at(hi)
    while hi - lo > 1:  # params are non-increasing in k: bisect for the crossing
        mid = (lo + hi) // 2
        p = _params(reference, plan_at(mid), example)
        if p >= target:
            lo, p_lo = mid, p
        else:
            hi, p_hi = mid, p
    return plan_at(lo if p_lo - target <= target - p_hi else hi)
