"""Which parameters get a Gamma, and their group structure.

A *layer* here is a conv or linear module whose weight is coupled with a Gamma. With the
``"group"`` penalty it has one group per output unit (a conv filter or a linear row); with
``"l1"`` every element is a group. Biases and normalisation layers never get a Gamma.

In a transformer block (a module with an attention module as a direct child) the groups are
the units one can remove: a *head* (kind ``"heads"``) is its q, k and v rows of the input
projection and its columns of the output projection; an MLP *neuron* (kind ``"mlp"``) is its
row of the first linear layer and its column of the second. Such a group spans several
tensors (``LayerSpec.members``); its norm is taken over all its entries (the optimizer's
``spans``). The projections that write the residual stream (``out_proj``, the MLP's second
linear) never get row groups of their own: removing one of their rows would cut the stream.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from pathviz.optim import PENALTIES

__all__ = ["KINDS", "LayerSpec", "Member", "gamma_layers", "slbi_param_groups"]

KINDS = ("conv", "linear", "heads", "mlp")


@dataclass(frozen=True)
class Member:
    """One tensor's share of a layer whose groups span tensors: the parameter, its shape, and
    the view (``shape`` -> ``view``) whose axis ``dim`` indexes the groups (a
    :data:`pathviz.optim.Span`)."""

    param: str
    shape: tuple[int, ...]
    view: tuple[int, ...]
    dim: int

    @property
    def span(self) -> tuple[tuple[int, ...], int]:
        return self.view, self.dim


@dataclass(frozen=True)
class LayerSpec:
    """One layer with a Gamma: module name, parameter name, kind, weight shape, penalty, groups.

    ``members`` is empty for a conv or linear layer (its groups are rows of ``param``); for a
    layer whose groups span tensors it lists every tensor with its span, the first being
    ``param``/``shape``.
    """

    name: str
    param: str
    kind: str  # one of KINDS
    shape: tuple[int, ...]
    penalty: str
    groups: int
    members: tuple[Member, ...] = ()

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape)
        d.pop("members")
        if self.members:  # absent for conv/linear layers: their records read as before
            d["members"] = [{"param": m.param, "shape": list(m.shape), "view": list(m.view),
                             "dim": m.dim} for m in self.members]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LayerSpec:
        members = tuple(Member(m["param"], tuple(m["shape"]), tuple(m["view"]), int(m["dim"]))
                        for m in d.get("members") or ())
        return cls(name=d["name"], param=d["param"], kind=d["kind"], shape=tuple(d["shape"]),
                   penalty=d["penalty"], groups=int(d["groups"]), members=members)


def _attention(name: str, mod: nn.Module, out_columns: bool) -> list[Member] | None:
    """The members of the head groups of an attention module, or None if it is not one whose
    heads we know: ``nn.MultiheadAttention`` with one packed input projection, or a module with
    ``qkv``/``proj`` linears and ``num_heads``/``head_dim`` (``pathviz.models.Attention``)."""
    pre = f"{name}." if name else ""
    if isinstance(mod, nn.MultiheadAttention):
        if not mod._qkv_same_embed_dim or mod.in_proj_weight is None:
            return None
        h, e = mod.num_heads, mod.embed_dim
        d = e // h
        # in_proj_weight (3E, E): rows [q; k; v], each E = H*d rows, head-major within
        members = [Member(f"{pre}in_proj_weight", (3 * e, e), (3, h, d * e), 1)]
        if out_columns:
            members.append(Member(f"{pre}out_proj.weight", (e, e), (e, h, d), 1))
        return members
    qkv, proj = getattr(mod, "qkv", None), getattr(mod, "proj", None)
    h, d = getattr(mod, "num_heads", None), getattr(mod, "head_dim", None)
    if isinstance(qkv, nn.Linear) and isinstance(proj, nn.Linear) and isinstance(h, int) \
            and isinstance(d, int) and qkv.out_features == 3 * h * d \
            and proj.in_features == h * d:
        e_in, e_out = qkv.in_features, proj.out_features
        members = [Member(f"{pre}qkv.weight", (3 * h * d, e_in), (3, h, d * e_in), 1)]
        if out_columns:
            members.append(Member(f"{pre}proj.weight", (e_out, h * d), (e_out, h, d), 1))
        return members
    return None


def _is_attention(mod: nn.Module) -> bool:
    return _attention("", mod, False) is not None


def _blocks(model: nn.Module, out_columns: bool
            ) -> tuple[dict[str, LayerSpec], set[str]]:
    """The head and neuron layers of every transformer block, keyed by the module that starts
    them in model order (the attention module, the MLP's first linear), and the names of every
    linear these groups cover (so they get no row groups of their own)."""
    specs: dict[str, LayerSpec] = {}
    covered: set[str] = set()
    for aname, amod in model.named_modules():
        members = _attention(aname, amod, out_columns)
        if members is None:
            continue
        specs[aname] = LayerSpec(name=aname, param=members[0].param, kind="heads",
                                 shape=members[0].shape, penalty="group",
                                 groups=members[0].view[1], members=tuple(members))
        covered.update(f"{aname}.{n}" if n and aname else n or aname
                       for n, m in amod.named_modules() if isinstance(m, nn.Linear))
    for bname, block in model.named_modules():
        pre = f"{bname}." if bname else ""
        attn = [(f"{pre}{n}", m) for n, m in block.named_children() if _is_attention(m)]
        if not attn:
            continue
        inside = tuple(f"{a}." for a, _ in attn)
        linears = [(f"{pre}{n}", m) for n, m in block.named_modules()
                   if isinstance(m, nn.Linear) and not f"{pre}{n}".startswith(inside)
                   and f"{pre}{n}" not in covered]
        if len(linears) == 2 and linears[0][1].out_features == linears[1][1].in_features:
            (n1, fc1), (n2, fc2) = linears
            m, e_in, e_out = fc1.out_features, fc1.in_features, fc2.out_features
            members = [Member(f"{n1}.weight", (m, e_in), (m, e_in), 0)]
            if out_columns:
                members.append(Member(f"{n2}.weight", (e_out, m), (e_out, m), 1))
            specs[n1] = LayerSpec(name=n1, param=f"{n1}.weight", kind="mlp", shape=(m, e_in),
                                  penalty="group", groups=m,
                                  members=tuple(members) if out_columns else ())
            covered.update((n1, n2))
    return specs, covered


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
                 last_linear: str | None = None, first_dense: bool = False,
                 out_columns: bool = True) -> list[LayerSpec]:
    """The layers of ``model`` that get a Gamma under these penalties, in model order.

    ``last_linear`` is the penalty of the classifier (the last conv or linear layer: a linear
    one usually, SqueezeNet's 1x1 conv); ``None`` keeps it dense, since pruning output classes
    makes no sense under the group penalty. ``first_dense``
    keeps the first layer (the input convolution) dense: it has few filters, each reading the
    raw image, so a group penalty there mostly decides when, not whether, they enter.

    With ``linear="group"`` the layers of transformer blocks get head and MLP-neuron groups
    (see the module docstring); ``out_columns=False`` leaves the output projection's columns
    out of them (a head is then its q, k, v rows only, a neuron its first-layer row).
    """
    for label, pen in (("conv", conv), ("linear", linear), ("last_linear", last_linear)):
        if pen not in PENALTIES:
            raise ValueError(f"Invalid {label} penalty: {pen!r}; expected one of {PENALTIES}")
    cands = _candidates(model)
    # the classifier is the last conv or linear layer: with no linear layer after it, a last
    # conv's outputs are the classes (SqueezeNet's 1x1 conv head), and so not prunable groups
    last = len(cands) - 1 if cands else None
    blocks, covered = _blocks(model, out_columns) if linear == "group" else ({}, set())
    order = {name: i for i, (name, _) in enumerate(model.named_modules())}
    specs = []
    for i, (name, mod, kind) in enumerate(cands):
        if name in covered:
            continue
        pen = last_linear if i == last else (conv if kind == "conv" else linear)
        if pen is None or (first_dense and i == 0):
            continue
        w = mod.weight
        groups = w.shape[0] if pen == "group" else w.numel()
        specs.append(LayerSpec(name=name, param=f"{name}.weight" if name else "weight", kind=kind,
                               shape=tuple(w.shape), penalty=pen, groups=groups))
    specs += blocks.values()
    return sorted(specs, key=lambda s: order[s.name])


def slbi_param_groups(model: nn.Module, conv: str | None = "group", linear: str | None = "group",
                      last_linear: str | None = None, first_dense: bool = False,
                      out_columns: bool = True, **overrides: Any) -> list[dict[str, Any]]:
    """Param groups for :class:`pathviz.optim.SLBI`: one per penalty in use, then the rest.

    Conv and linear weights get a Gamma with the given penalty (``None``: no Gamma; nor the
    first layer with ``first_dense``); biases, norm
    layers and any other parameter go in a final group with ``penalty=None``. ``overrides`` (e.g.
    ``lam=0.5, group_scale="sqrt"``) are set on the groups with a Gamma only. Each group also
    carries ``layer_names``, the parameter names, which the optimizer ignores.

    A layer whose groups span tensors (attention heads, MLP neurons with ``out_columns``) gets
    a param group of its own holding its tensors, with ``spans`` (what the optimizer's group
    norm reads) and ``layer``/``kind`` (the recorder's name and kind for it).
    """
    specs = gamma_layers(model, conv=conv, linear=linear, last_linear=last_linear,
                         first_dense=first_dense, out_columns=out_columns)
    by_penalty: dict[str, dict[str, Any]] = {}
    params = dict(model.named_parameters())
    taken = set()
    spanning = []
    for spec in specs:
        if spec.members:
            spanning.append({"params": [params[m.param] for m in spec.members],
                             "layer_names": [m.param for m in spec.members],
                             "penalty": spec.penalty, **overrides,
                             "spans": [m.span for m in spec.members],
                             "layer": spec.name, "kind": spec.kind})
            taken.update(m.param for m in spec.members)
            continue
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
    groups = list(by_penalty.values()) + spanning
    if rest["params"]:
        groups.append(rest)
    return groups
