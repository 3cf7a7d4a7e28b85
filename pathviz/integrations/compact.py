"""Cut a ``transformers`` model to the support of its path: the heads and MLP neurons outside
it removed, the same function computed (used by :mod:`pathviz.integrations.hf`'s export).

:func:`compact_transformer` removes the heads and neurons outside the support; the result is
still the same ``transformers`` class, with its config's ``intermediate_size`` (GPT-2:
``n_inner``) and, for grouped-query layouts, ``num_key_value_heads``/``num_attention_heads``
set to what is kept, so ``save_pretrained``/``from_pretrained`` round-trip it. A config has one
width for all layers, so every layer keeps the largest count any layer keeps; the extra groups
of the other layers are outside the support, zero, and change no output. BERT, ViT and GPT-2
derive their head size from ``hidden_size / num_attention_heads``, which no config can keep
while heads go, so their heads outside the support are masked (they output exactly 0), not
removed, and the report says so.

It needs torch, not ``transformers`` itself: it works on the model object it is given.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from pathviz.groups import LayerSpec
from pathviz.optim import span_view, support_mask

__all__ = ["compact_transformer", "example_inputs", "model_logits"]


def _cut_axis(member: Any) -> int:
    """The weight axis a member's groups are cut along: 0 when the view groups its leading
    axis (rows), else 1 (the view keeps axis 0 whole and splits axis 1)."""
    return 0 if member.dim == 0 else 1


def _cut(model: nn.Module, member: Any, keep: torch.Tensor) -> None:
    """Keep only groups ``keep`` (sorted indices) of one member tensor, and the matching
    entries of its module's bias when the cut runs along the module's outputs."""
    mod_name, _, pname = member.param.rpartition(".")
    mod = model.get_submodule(mod_name)
    w = getattr(mod, pname)
    groups = member.view[member.dim]
    v = span_view(w.detach().contiguous(), member.span).index_select(0, keep)
    axis = _cut_axis(member)
    shape = list(w.shape)
    shape[axis] = shape[axis] * len(keep) // groups
    new = v.movedim(0, member.dim).reshape(shape)
    setattr(mod, pname, nn.Parameter(new.clone(), requires_grad=w.requires_grad))
    conv1d = type(mod).__name__ == "Conv1D"
    out_axis = 1 if conv1d else 0
    bias = getattr(mod, "bias", None)
    if axis == out_axis and isinstance(bias, torch.Tensor):
        # the bias follows the output axis: view it as the weight's view without the other axis
        bview = member.view[1:] if conv1d else (groups, bias.numel() // groups)
        bdim = member.dim - 1 if conv1d else 0
        b = span_view(bias.detach().contiguous(), (tuple(bview), bdim)).index_select(0, keep)
        mod.bias = nn.Parameter(b.movedim(0, bdim).reshape(-1).clone(),
                                requires_grad=bias.requires_grad)
    if isinstance(mod, nn.Linear):
        mod.out_features, mod.in_features = mod.weight.shape
    elif conv1d:
        mod.nf = mod.weight.shape[1]


def _heads_removable(config: Any) -> bool:
    """True where the config states the head size apart from the head count (the Llama
    family's ``head_dim`` and ``num_key_value_heads``), so fewer heads still reload."""
    d = config.to_dict()
    return isinstance(d.get("head_dim"), int) and isinstance(d.get("num_key_value_heads"), int)


def _supports(layers: list[LayerSpec], gammas: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    return {s.name: support_mask([torch.as_tensor(gammas[m.param]) for m in s.members],
                                 "group", [m.span for m in s.members]) for s in layers}


def _mask(model: nn.Module, layers: list[LayerSpec], inside: Mapping[str, torch.Tensor]) -> None:
    """In place: every member's entries of a group outside the support set to 0 (W*)."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for spec in layers:
            keep = inside[spec.name]
            for m in spec.members:
                v = span_view(params[m.param].data, m.span)
                v.mul_(keep.to(v.dtype).reshape(-1, *([1] * (v.dim() - 1))))


def example_inputs(model: nn.Module, batch: int = 2, seq: int = 8) -> dict[str, torch.Tensor]:
    """A fixed input batch for the model's main input (token ids or pixels), to compare the
    masked and compact outputs."""
    gen = torch.Generator().manual_seed(0)
    config = model.config
    name = getattr(model, "main_input_name", "input_ids")
    if name == "pixel_values":
        size = int(config.image_size)
        return {name: torch.randn(batch, int(config.num_channels), size, size, generator=gen)}
    ids = torch.randint(1, int(config.vocab_size), (batch, seq), generator=gen)
    return {name: ids}


def model_logits(model: nn.Module, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        out = model(**inputs)
    return out.logits if hasattr(out, "logits") else out[0]


def compact_transformer(model: nn.Module, layers: list[LayerSpec],
                        gammas: Mapping[str, Any]) -> tuple[nn.Module, nn.Module, dict[str, Any]]:
    """(masked, compact, report) copies of ``model`` for the support of ``gammas`` (the
    model is untouched). ``masked`` is W*; ``compact`` computes the same function with the
    heads and neurons outside the support removed (see the module docstring for which and
    why), its config updated. ``report`` has params before/after, kept groups per layer, the
    config changes, ``max_abs_diff`` (compact vs masked on :func:`example_inputs`) and the
    warnings."""
    inside = _supports(layers, gammas)
    masked = copy.deepcopy(model).eval()
    _mask(masked, layers, inside)
    small = copy.deepcopy(masked)
    config = small.config
    warnings: list[str] = []
    removable = {"mlp": True, "heads": _heads_removable(config)}
    kept_per_layer = {s.name: int(inside[s.name].sum()) for s in layers}
    width = {}
    for kind in ("heads", "mlp"):
        counts = [kept_per_layer[s.name] for s in layers if s.kind == kind]
        if counts:
            width[kind] = max(max(counts), 1)  # never an empty layer
    if "heads" in width and removable["heads"]:
        d = config.to_dict()
        ratio = int(d["num_attention_heads"]) // int(d["num_key_value_heads"])
        most = max(s.groups for s in layers if s.kind == "heads")
        # the config checks hidden_size % num_attention_heads == 0 (the head size is stated
        # apart, but the check stays): pad to the next count it accepts with zero groups
        while int(d["hidden_size"]) % (width["heads"] * ratio) and width["heads"] < most:
            width["heads"] += 1
    changes: dict[str, int] = {}
    for spec in layers:
        if not removable[spec.kind]:
            out = spec.groups - kept_per_layer[spec.name]
            if out:
                warnings.append(f"{spec.name}: {type(small).__name__} derives its head size "
                                f"from hidden_size / num_attention_heads, so its {out} heads "
                                f"outside the support are masked (they output 0) but not "
                                f"removed")
            continue
        mask = inside[spec.name]
        # pad to the widest layer with groups outside the support: zero, so outputs agree
        order = torch.cat([torch.nonzero(mask).flatten(), torch.nonzero(~mask).flatten()])
        keep = order[:width[spec.kind]].sort().values
        for m in spec.members:
            _cut(small, m, keep)
    if "heads" in width and removable["heads"]:
        changes.update(num_key_value_heads=width["heads"],
                       num_attention_heads=width["heads"] * ratio)
        for spec in layers:
            if spec.kind == "heads":
                mod = small.get_submodule(spec.name)
                if hasattr(mod, "num_key_value_heads"):
                    mod.num_key_value_heads = width["heads"]
                if hasattr(mod, "num_heads"):
                    mod.num_heads = width["heads"] * ratio
    if "mlp" in width:
        key = "n_inner" if "n_inner" in config.to_dict() and not hasattr(
            config, "intermediate_size") else "intermediate_size"
        changes[key] = width["mlp"]
    for k, v in changes.items():
        setattr(config, k, v)
    diff = float((model_logits(small, example_inputs(small)) -
                  model_logits(masked, example_inputs(masked))).abs().max())
    report = {"params_before": int(sum(p.numel() for p in model.parameters())),
              "params_after": int(sum(p.numel() for p in small.parameters())),
              "kept": {s.name: {"kind": s.kind, "groups": s.groups,
                                "in_support": kept_per_layer[s.name]} for s in layers},
              "config_changes": changes, "max_abs_diff": diff, "warnings": warnings}
    return masked, small.eval(), report
