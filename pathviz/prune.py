"""Masks from Gamma, and the physically smaller network they imply.

At a weight iteration the sparse model is ``W* = W * 1[Gamma != 0]`` (DessiLBI). Output channels
are removed *physically* only when a whole coupled set is outside the support: a channel that a
residual addition or concatenation ties to other layers goes only if every coupled layer's group
for it is outside. Couplings come from torch-pruning's dependency graph (Torch-Pruning, Fang et
al. 2023), which also removes the matching BatchNorm channels, biases and the next layers' input
slices; we use it rather than hand-written surgery because it traces residual and concatenation
couplings in any torchvision model.

The masked model zeroes W outside the support and also silences the channels that the compact
model removes (their bias and BatchNorm affine set to 0, so they output exactly 0). Compact is
that masked model with those channels cut, so the two compute the same function.

Transformer blocks (``pathviz.groups``): an MLP neuron outside the support goes with its fc1 row
and fc2 column, through the dependency graph like any linear row. A head outside the support
goes with its q, k, v rows and output-projection columns, cut with torch-pruning's layer
functions, and the module's ``num_heads`` drops: this needs an attention module whose stream
width is not tied to its heads (``pathviz.models.Attention``). ``nn.MultiheadAttention`` ties
``embed_dim = num_heads * head_dim``, so its heads outside the support are masked (they output
exactly 0) but stay in the compact model, and the plan says so in a warning.
"""

from __future__ import annotations

import copy
import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from pathviz.optim import span_view, support_mask

log = logging.getLogger("pathviz.prune")

__all__ = ["PruneError", "PrunePlan", "Subnetwork", "plan_pruning", "apply_mask", "compact",
           "count", "subnetwork"]


class PruneError(RuntimeError):
    """torch-pruning cannot cut this model: one sentence naming the model and the cause."""


@dataclass
class PrunePlan:
    """What to remove: per coupled set, the root layer and the channels to cut."""

    sets: list[dict[str, Any]] = field(default_factory=list)  # {root, handler, remove, members}
    heads: list[dict[str, Any]] = field(default_factory=list)  # {root, remove, heads, head_dim}
    kept: dict[str, int] = field(default_factory=dict)  # Gamma layer name -> channels kept
    groups: dict[str, int] = field(default_factory=dict)  # Gamma layer name -> channels before
    warnings: list[str] = field(default_factory=list)


def _spans(layer: dict[str, Any]) -> list[tuple[tuple[int, ...], int]]:
    return [(tuple(m["view"]), int(m["dim"])) for m in layer["members"]]


def support_masks(layers: list[dict[str, Any]], gammas: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Per Gamma layer: bool per group (``"group"``, and per group across its tensors where
    its groups span several) or per element (``"l1"``): Gamma != 0."""
    out = {}
    for layer in layers:
        if layer.get("members"):
            out[layer["name"]] = support_mask(
                [torch.as_tensor(gammas[m["param"]]) for m in layer["members"]], "group",
                _spans(layer))
        else:
            out[layer["name"]] = support_mask(torch.as_tensor(gammas[layer["param"]]),
                                              layer["penalty"])
    return out


def dependency_graph(model: nn.Module, example: torch.Tensor) -> tp.DependencyGraph:
    """torch-pruning's graph of ``model`` (it traces through autograd, so grad is switched on)."""
    with torch.enable_grad(), warnings.catch_warnings():
        # a ViT's class token and position embedding are parameters outside any layer; they
        # span the residual stream, which pathviz never cuts, so the warning says nothing here
        warnings.filterwarnings("ignore", message="Unwrapped parameters")
        return tp.DependencyGraph().build_dependency(model, example_inputs=example)


def _removable_heads(mod: nn.Module) -> bool:
    """True for an attention module whose heads can be cut out (``qkv``/``proj``/``num_heads``,
    as ``pathviz.models.Attention``); False for ``nn.MultiheadAttention``."""
    return not isinstance(mod, nn.MultiheadAttention) and isinstance(
        getattr(mod, "qkv", None), nn.Linear) and isinstance(getattr(mod, "proj", None), nn.Linear)


def _head_rows(h: int, heads: int, head_dim: int) -> list[int]:
    """Rows of head ``h`` in a packed [q; k; v] projection of ``heads`` heads."""
    return [c * heads * head_dim + h * head_dim + j for c in range(3) for j in range(head_dim)]


def _handler_name(dep) -> str:
    return getattr(dep.handler, "__name__", str(dep.handler))


def plan_pruning(model: nn.Module, layers: list[dict[str, Any]], gammas: dict[str, Any],
                 example: torch.Tensor) -> tuple[PrunePlan, tp.DependencyGraph]:
    """Decide which output channels go, honouring couplings and the no-empty-layer guard."""
    dg = dependency_graph(model, example)
    names = dict(model.named_modules())
    masks = support_masks(layers, gammas)
    group_layers = {layer["name"]: layer for layer in layers
                    if layer["penalty"] == "group" and layer["kind"] != "heads"}
    plan = PrunePlan()
    for layer in layers:
        if layer["kind"] == "heads":
            _plan_heads(plan, names[layer["name"]], layer, masks[layer["name"]], gammas)
    done: set[str] = set()
    for name, layer in group_layers.items():
        if name in done:
            continue
        mod = names[name]
        handler = (tp.prune_conv_out_channels if layer["kind"] == "conv"
                   else tp.prune_linear_out_channels)
        n = layer["groups"]
        group = dg.get_pruning_group(mod, handler, idxs=list(range(n)))
        removable = torch.ones(n, dtype=torch.bool)
        members = []
        for item in group.items:
            dep = item.dep
            tname = dg._module2name.get(dep.target.module)
            if _handler_name(dep) != "prune_out_channels" or tname not in group_layers:
                continue
            members.append(tname)
            inside = masks[tname]
            for i in item.idxs:
                if bool(inside[int(i)]):
                    removable[int(getattr(i, "root_idx", i))] = False
        members = sorted(set(members) | {name})
        done.update(members)
        if bool(removable.all()):
            # never leave a layer empty: keep the strongest channel of the set
            strength = torch.as_tensor(gammas[layer["param"]]).reshape(n, -1).norm(dim=1)
            if float(strength.max()) == 0:
                strength = mod.weight.detach().reshape(n, -1).norm(dim=1)
            keep = int(strength.argmax())
            removable[keep] = False
            plan.warnings.append(f"{', '.join(members)}: no filter is in the support; kept the "
                                 f"strongest one (channel {keep}) so the network still runs")
        remove = torch.nonzero(removable).flatten().tolist()
        plan.sets.append({"root": name, "kind": layer["kind"], "remove": remove,
                          "members": members, "channels": n})
        for mname in members:
            plan.groups[mname] = group_layers[mname]["groups"]
            plan.kept[mname] = n - len(remove)
    for w in plan.warnings:  # export puts them in its report; the worker meets them every eval
        log.debug("%s", w)
    return plan, dg


def _plan_heads(plan: PrunePlan, mod: nn.Module, layer: dict[str, Any], inside: torch.Tensor,
                gammas: dict[str, Any]) -> None:
    """Add the heads of one attention layer that are outside the support to ``plan``."""
    name, n = layer["name"], int(layer["groups"])
    plan.groups[name] = n
    if not _removable_heads(mod):
        plan.kept[name] = n
        if not bool(inside.all()):
            plan.warnings.append(f"{name}: nn.MultiheadAttention ties its width to its heads, so "
                                 f"its {int((~inside).sum())} heads outside the support are "
                                 f"masked (they output 0) but not removed")
        return
    remove = (~inside).clone()
    if bool(remove.all()):
        strength = sum((span_view(torch.as_tensor(gammas[m["param"]]).contiguous(),
                                  (tuple(m["view"]), int(m["dim"]))).reshape(n, -1) ** 2
                        ).sum(dim=1) for m in layer["members"])
        keep = int(strength.argmax())
        remove[keep] = False
        plan.warnings.append(f"{name}: no head is in the support; kept the strongest one "
                             f"(head {keep}) so the network still runs")
    idx = torch.nonzero(remove).flatten().tolist()
    plan.heads.append({"root": name, "remove": idx, "heads": n, "head_dim": mod.head_dim})
    plan.kept[name] = n - len(idx)


@torch.no_grad()
def apply_mask(model: nn.Module, layers: list[dict[str, Any]], gammas: dict[str, Any],
               plan: PrunePlan, dg: tp.DependencyGraph) -> nn.Module:
    """In place: W <- W * 1[Gamma != 0]; channels the plan removes output exactly zero."""
    names = dict(model.named_modules())
    params = dict(model.named_parameters())
    masks = support_masks(layers, gammas)
    for layer in layers:
        if layer.get("members"):
            keep = masks[layer["name"]]
            for m, span in zip(layer["members"], _spans(layer)):
                v = span_view(params[m["param"]].data, span)
                v.mul_(keep.to(v.dtype).reshape(-1, *([1] * (v.dim() - 1))))
            continue
        w = names[layer["name"]].weight
        g = torch.as_tensor(gammas[layer["param"]], dtype=w.dtype)
        if layer["penalty"] == "group":
            keep = (g.reshape(g.shape[0], -1) != 0).any(dim=1)
            w.mul_(keep.reshape(-1, *([1] * (w.dim() - 1))).to(w.dtype))
        else:
            w.mul_((g != 0).to(w.dtype))
    for s in plan.sets:
        if not s["remove"]:
            continue
        mod = names[s["root"]]
        handler = tp.prune_conv_out_channels if s["kind"] == "conv" else \
            tp.prune_linear_out_channels
        group = dg.get_pruning_group(mod, handler, idxs=s["remove"])
        for item in group.items:
            target = item.dep.target.module
            if _handler_name(item.dep) != "prune_out_channels" or not isinstance(
                    target, (nn.modules.conv._ConvNd, nn.Linear, nn.modules.batchnorm._BatchNorm)):
                continue
            idx = torch.tensor([int(i) for i in item.idxs], dtype=torch.long)
            for pname in ("weight", "bias"):
                p = getattr(target, pname, None)
                if isinstance(p, torch.Tensor):
                    p.index_fill_(0, idx, 0.0)
    for h in plan.heads:  # a removed head's q, k, v biases too: it then outputs exactly 0
        qkv = names[h["root"]].qkv
        if qkv.bias is not None and h["remove"]:
            rows = [r for i in h["remove"] for r in _head_rows(i, h["heads"], h["head_dim"])]
            qkv.bias.index_fill_(0, torch.tensor(rows, dtype=torch.long), 0.0)
    return model


def compact(model: nn.Module, plan: PrunePlan, dg: tp.DependencyGraph) -> nn.Module:
    """In place: physically remove the plan's channels (and everything coupled to them)."""
    names = dict(model.named_modules())
    for s in plan.sets:
        if not s["remove"]:
            continue
        handler = tp.prune_conv_out_channels if s["kind"] == "conv" else \
            tp.prune_linear_out_channels
        group = dg.get_pruning_group(names[s["root"]], handler, idxs=s["remove"])
        if not dg.check_pruning_group(group):
            raise RuntimeError(f"torch-pruning refused to prune {s['root']}: it would empty a "
                               f"layer")
        group.prune()
    for h in plan.heads:
        if not h["remove"]:
            continue
        mod = names[h["root"]]
        rows = [r for i in h["remove"] for r in _head_rows(i, h["heads"], h["head_dim"])]
        cols = [i * h["head_dim"] + j for i in h["remove"] for j in range(h["head_dim"])]
        tp.prune_linear_out_channels(mod.qkv, rows)
        tp.prune_linear_in_channels(mod.proj, cols)
        mod.num_heads = h["heads"] - len(h["remove"])
    return model


def count(model: nn.Module, example: torch.Tensor) -> tuple[int, int]:
    """(parameters, multiply-accumulates of one forward pass on ``example``)."""
    with torch.no_grad():
        macs, params = tp.utils.count_ops_and_params(model, example)
    return int(params), int(macs)


@dataclass
class Subnetwork:
    """The sparse model of a support, both ways, and the size of the compact one.

    ``params`` and ``flops`` are *the* count of what is kept: the worker stores them as the
    ``params_kept``/``flops_kept`` metrics, the stop rule reports them and export writes them in
    its report, so every place shows the size of the file export writes.
    """

    masked: nn.Module  # full shape, W * 1[Gamma != 0], removed channels output 0
    compact: nn.Module  # the same function with the removed channels cut out
    plan: PrunePlan
    params: int  # parameters of ``compact`` (its numel)
    flops: int  # multiply-accumulates of one forward pass of ``compact`` on one example


def subnetwork(model: nn.Module, layers: list[dict[str, Any]], gammas: dict[str, Any],
               example: torch.Tensor) -> Subnetwork:
    """Masked and compact copies of ``model`` for the support of ``gammas`` (model untouched).

    ``example`` is one input batch of the model's input shape (its values do not matter). Both
    copies are in eval mode.
    """
    was = model.training
    base = copy.deepcopy(model).eval()
    model.train(was)
    try:
        plan, dg = plan_pruning(base, layers, gammas, example)
        masked = apply_mask(base, layers, gammas, plan, dg)
        small = copy.deepcopy(masked)
        compact(small, plan, dependency_graph(small, example))
    except RuntimeError:
        raise
    except Exception as e:  # torch-pruning's tracing or surgery gave up on this architecture
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise PruneError(f"torch-pruning cannot cut {type(model).__name__} "
                         f"({type(e).__name__}: {first}), so its compact subnetwork cannot be "
                         f"built, scored or exported; pick another model") from e
    params, flops = count(small, example)
    return Subnetwork(masked, small.eval(), plan, params, flops)
