"""The support at iteration N of a run and every network a retrain starts from: the path's
tickets (rewind, rewind:K, finetune), the controls (reinit, random-support, uniform) and the
pruning baselines (magnitude, slimming, taylor, global-magnitude, global-magnitude-reinit)."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pathviz import prune, tickets
from pathviz.cli import UsageError  # re-exported: the tickets CLIs' one usage error
from pathviz.data import DATASET_NAMES, dataset_info
from pathviz.models import build_model, count_params, widths_of
from pathviz.run_model import ExportError, load_run_model
from pathviz.tickets import supports as sp

log = logging.getLogger("pathviz.retrain")

__all__ = ["UsageError", "Support", "load_support", "build_variant", "random_plan",
           "uniform_widths"]


# ---- the support and the six initialisations -----------------------------------------------


@dataclass
class Support:
    """The support at iteration N of a run, and what every variant is built from."""

    run_dir: Path
    iteration: int
    cfg: dict[str, Any]
    layers: list[dict[str, Any]]
    gammas: dict[str, Any]
    model: nn.Module  # full model with the weights of iteration N (eval mode)
    plan: prune.PrunePlan
    example: torch.Tensor  # one input of the model's shape
    arch: dict[str, Any]  # model.pathviz_arch: rebuilds the family with other widths
    params_full: int = 0
    flops_full: int = 0
    _weights: dict[int, nn.Module] = field(default_factory=dict)
    # the pruning baselines' dense reference (None: W at N) and Taylor's batches
    reference: nn.Module | None = None
    reference_name: str | None = None  # the SGD run's folder name, or "self"
    reference_iteration: int | None = None
    batches: list | None = None
    _baselines: dict[str, prune.PrunePlan] = field(default_factory=dict)

    def baseline_plan(self, method: str) -> prune.PrunePlan:
        """The plan of a pruning method at this support's widths (computed once)."""
        if method not in self._baselines:
            ref = self.reference if self.reference is not None else self.model
            scores = sp.score_sets(ref, self.plan, self.example, method, self.batches)
            if method == "global-magnitude":
                target = count_params(_compact(copy.deepcopy(self.model), self.plan,
                                               self.example))
                self._baselines[method] = sp.global_plan(ref, self.plan, scores, target,
                                                         self.example)
            else:
                self._baselines[method] = sp.baseline_plan(self.plan, scores)
        return self._baselines[method]

    def model_at(self, iteration: int) -> nn.Module:
        """A fresh copy of the full model with the weights saved at ``iteration``."""
        if iteration not in self._weights:
            self._weights[iteration] = _load(self.run_dir, iteration)[0]
        return copy.deepcopy(self._weights[iteration])


def _load(run_dir: Path, iteration: int):
    try:
        return load_run_model(run_dir, iteration)
    except ExportError as e:
        raise UsageError(str(e)) from None


def load_support(run_dir: str | Path, iteration: int) -> Support:
    """Read the run at ``iteration`` (which must have saved weights) and plan its compaction."""
    run_dir = Path(run_dir)
    model, layers, gammas, cfg = _load(run_dir, iteration)
    if not layers:
        raise UsageError(f"{run_dir} has no Gamma layers (an SGD run?), so it has no support "
                         f"to retrain")

    info = dataset_info(cfg.get("dataset"))  # for the input shape: no data root needed
    if info is None:
        raise UsageError(f"{run_dir} was trained on {cfg.get('dataset')!r}, not on a pathviz "
                         f"dataset ({', '.join(DATASET_NAMES)}), so it cannot be retrained here")
    shape = cfg.get("input_shape") or (info.in_channels, info.image_size, info.image_size)
    example = torch.zeros(1, *shape)
    plan, _ = prune.plan_pruning(model, layers, gammas, example)
    params_full = count_params(model)
    _, flops_full = prune.count(model, example)
    return Support(run_dir, int(iteration), cfg, layers, gammas, model, plan, example,
                   dict(model.pathviz_arch), params_full, flops_full)


def _compact(model: nn.Module, plan: prune.PrunePlan, example: torch.Tensor) -> nn.Module:
    prune.compact(model, plan, prune.dependency_graph(model, example))
    return model


def _rebuild(arch: dict[str, Any], widths: list[int]) -> nn.Module:
    kw = {k: v for k, v in arch.items() if k not in ("name", "widths")}
    return build_model(arch["name"], widths=widths, **kw)


def random_plan(plan: prune.PrunePlan, seed: int) -> prune.PrunePlan:
    """A plan that keeps as many channels in every coupled set (and heads in every attention
    layer) as ``plan``, chosen at random (seeded); the layers' group counts are therefore
    those of the support."""
    rng = np.random.default_rng(int(seed))
    sets, heads = [], []
    for s in plan.sets:
        n = int(s["channels"])
        keep = n - len(s["remove"])
        kept = set(rng.choice(n, size=keep, replace=False).tolist())
        sets.append({**s, "remove": [i for i in range(n) if i not in kept]})
    for h in plan.heads:  # attention heads: as many as the support keeps, at random
        n = int(h["heads"])
        kept = set(rng.choice(n, size=n - len(h["remove"]), replace=False).tolist())
        heads.append({**h, "remove": [i for i in range(n) if i not in kept]})
    return prune.PrunePlan(sets=sets, heads=heads, kept=dict(plan.kept),
                           groups=dict(plan.groups), warnings=list(plan.warnings))


def _param_count(arch: dict[str, Any], widths: list[int]) -> int:
    with torch.device("meta"):  # no memory, no init: only the shapes
        return count_params(_rebuild(arch, widths))


def uniform_widths(arch: dict[str, Any], full: list[int], target: int) -> list[int]:
    """Widths ``round(f * full)`` with the one factor f whose network has about ``target``
    parameters; then single-layer +-1 steps while they bring the count closer (rounding alone
    can miss by a few percent on small nets)."""
    def widths(f: float) -> list[int]:
        return [max(1, int(round(f * w))) for w in full]

    lo, hi = 0.0, 1.0
    for _ in range(40):  # the count is monotone in f: bisect for the crossing
        mid = (lo + hi) / 2
        if _param_count(arch, widths(mid)) <= target:
            lo = mid
        else:
            hi = mid
    best = min((widths(lo), widths(hi)), key=lambda w: abs(_param_count(arch, w) - target))
    err = abs(_param_count(arch, best) - target)
    for _ in range(4 * len(full)):
        step = None
        for i in range(len(full)):
            for d in (-1, 1):
                w = list(best)
                w[i] += d
                if not 1 <= w[i] <= full[i]:
                    continue
                try:
                    e = abs(_param_count(arch, w) - target)
                except ValueError:  # a width tied to another (residual stream)
                    continue
                if e < err:
                    step, err = w, e
        if step is None:
            break
        best = step
    return best


def build_variant(sup: Support, mode: str, seed: int) -> tuple[nn.Module, dict[str, list[int]]]:
    """The network a variant starts from (train mode), and the kept group indices per layer.

    ``seed`` seeds the fresh initialisations (reinit, uniform) and the random support.
    """
    base, k = tickets.parse_mode(mode)
    kept = sp.kept_of(sup.plan)
    if base == "finetune":
        model = copy.deepcopy(sup.model)
        dg = prune.dependency_graph(model, sup.example)
        prune.apply_mask(model, sup.layers, sup.gammas, sup.plan, dg)
        model = _compact(model, sup.plan, sup.example)
    elif base == "rewind":
        model = _compact(sup.model_at(0 if k is None else k), sup.plan, sup.example)
    elif base == "random-support":
        plan = random_plan(sup.plan, seed)
        kept = sp.kept_of(plan)
        model = _compact(sup.model_at(0), plan, sup.example)
    elif base == "reinit":
        widths = widths_of(_compact(copy.deepcopy(sup.model), sup.plan, sup.example))
        torch.manual_seed(int(seed))
        model = _rebuild(sup.arch, widths)
    elif base in tickets.BASELINE_MODES:
        method = "global-magnitude" if base == "global-magnitude-reinit" else base
        plan = sup.baseline_plan(method)
        ref = sup.reference if sup.reference is not None else sup.model
        model = sp.compact_copy(ref, plan, sup.example)
        kept = sp.kept_of(plan)
        if base == "global-magnitude-reinit":
            widths = widths_of(model)
            torch.manual_seed(int(seed))
            model = _rebuild(sup.arch, widths)
    else:  # uniform
        target = count_params(_compact(copy.deepcopy(sup.model), sup.plan, sup.example))
        full = widths_of(sup.model)
        widths = uniform_widths(sup.arch, full, target)
        torch.manual_seed(int(seed))
        model = _rebuild(sup.arch, widths)
        kept = {}
    model.pathviz_arch = {**sup.arch, "widths": widths_of(model)}
    return model.train(), kept
