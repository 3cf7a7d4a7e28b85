"""Which parameters get a Gamma, and their group structure.

A *layer* here is a conv or linear module whose weight is coupled with a Gamma. With the
``"group"`` penalty it has one group per output unit (a conv filter or a linear row); with
``"l1"`` every element is a group. Biases and normalisation layers never get a Gamma.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from pathviz.optim import PENALTIES

__all__ = ["LayerSpec", "gamma_layers", "slbi_param_groups"]


@dataclass(frozen=True)
class LayerSpec:
    """One layer with a Gamma: module name, parameter name, kind, weight shape, penalty, groups."""

    name: str
    param: str
    kind: str  # "conv" | "linear"
    shape: tuple[int, ...]
    penalty: str
    groups: int

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LayerSpec:
        return cls(name=d["name"], param=d["param"], kind=d["kind"], shape=tuple(d["shape"]),
                   penalty=d["penalty"], groups=int(d["groups"]))


def _candidates(model: nn.Module) -> list[tuple[str, nn.Module, str]]:
    """(module name, module, kind) for every conv and linear layer, in model order."""
    out = []
    for name, mod in model.named_modules():
        if isinstance(mod, nn.modules.conv._ConvNd):
            out.append((name, mod, "conv"))
        elif isinstance(mod, nn.Linear):
            out.append((name, mod, "linear"))
    return out


def gamma_layers(model: nn.Module, conv: str | None = "group", linear: str | None = "group",
                 last_linear: str | None = None, first_dense: bool = False) -> list[LayerSpec]:
    """The layers of ``model`` that get a Gamma under these penalties, in model order.

    ``last_linear`` is the penalty of the classifier (the last conv or linear layer: a linear
    one usually, SqueezeNet's 1x1 conv); ``None`` keeps it dense, since pruning output classes
    makes no sense under the group penalty. ``first_dense``
    keeps the first layer (the input convolution) dense: it has few filters, each reading the
    raw image, so a group penalty there mostly decides when, not whether, they enter.
    """
    for label, pen in (("conv", conv), ("linear", linear), ("last_linear", last_linear)):
        if pen not in PENALTIES:
            raise ValueError(f"Invalid {label} penalty: {pen!r}; expected one of {PENALTIES}")
    cands = _candidates(model)
    # the classifier is the last conv or linear layer: with no linear layer after it, a last
    # conv's outputs are the classes (SqueezeNet's 1x1 conv head), and so not prunable groups
    last = len(cands) - 1 if cands else None
    specs = []
    for i, (name, mod, kind) in enumerate(cands):
        pen = last_linear if i == last else (conv if kind == "conv" else linear)
        if pen is None or (first_dense and i == 0):
            continue
        w = mod.weight
        groups = w.shape[0] if pen == "group" else w.numel()
        specs.append(LayerSpec(name=name, param=f"{name}.weight" if name else "weight", kind=kind,
                               shape=tuple(w.shape), penalty=pen, groups=groups))
    return specs


def slbi_param_groups(model: nn.Module, conv: str | None = "group", linear: str | None = "group",
                      last_linear: str | None = None, first_dense: bool = False,
                      **overrides: Any) -> list[dict[str, Any]]:
    """Param groups for :class:`pathviz.optim.SLBI`: one per penalty in use, then the rest.

    Conv and linear weights get a Gamma with the given penalty (``None``: no Gamma; nor the
    first layer with ``first_dense``); biases, norm
    layers and any other parameter go in a final group with ``penalty=None``. ``overrides`` (e.g.
    ``lam=0.5, group_scale="sqrt"``) are set on the groups with a Gamma only. Each group also
    carries ``layer_names``, the parameter names, which the optimizer ignores.
    """
    specs = gamma_layers(model, conv=conv, linear=linear, last_linear=last_linear,
                         first_dense=first_dense)
    by_penalty: dict[str, dict[str, Any]] = {}
    params = dict(model.named_parameters())
    taken = set()
    for spec in specs:
        g = by_penalty.setdefault(spec.penalty, {"params": [], "layer_names": [],
                                                 "penalty": spec.penalty, **overrides})
        g["params"].append(params[spec.param])
        g["layer_names"].append(spec.param)
        taken.add(spec.param)
    rest = {"params": [], "layer_names": [], "penalty": None}
    for name, p in params.items():
        if name not in taken and p.requires_grad:
            rest["params"].append(p)
            rest["layer_names"].append(name)
    groups = list(by_penalty.values())
    if rest["params"]:
        groups.append(rest)
    return groups
