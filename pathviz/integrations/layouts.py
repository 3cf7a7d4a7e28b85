"""Head and MLP-neuron groups of the common Hugging Face transformer layouts.

A *head* (kind ``"heads"``) is every entry that only one attention head reads or writes: its
query, key and value rows and its columns of the output projection. With grouped-query
attention (Llama, Mistral, Qwen) several query heads share one key/value head, and removing a
key/value head removes them all, so a group is one key/value head: its ``k_proj`` and
``v_proj`` rows, the rows of the query heads that share it and the ``o_proj`` columns they
feed. An MLP *neuron* (kind ``"mlp"``) is its row of the layers that read the stream
(``gate_proj`` and ``up_proj`` of a gated MLP, BERT's ``intermediate.dense``) and its column of
the layer that writes it back. Each group is a :class:`pathviz.groups.Member` view per tensor
(the optimizer's ``spans``), so SLBI, the recorder, the app and export read them like the
groups of the project's own ``vit_tiny``.

The layouts are found by module structure, not by class, so forks that keep the attribute
names (RoBERTa, DeiT, Qwen2, Mistral, ...) work too:

- ``q_proj``/``k_proj``/``v_proj``/``o_proj`` linears with ``head_dim`` (Llama family);
- ``query``/``key``/``value`` linears with ``attention_head_size`` and a sibling
  ``output.dense`` (BERT, RoBERTa, ViT);
- ``c_attn``/``c_proj`` ``Conv1D`` with ``num_heads``/``head_dim`` (GPT-2; a ``Conv1D`` weight
  is (in, out), so a head is columns of ``c_attn`` and rows of ``c_proj``);
- ``gate_proj``/``up_proj``/``down_proj`` (gated MLP), ``intermediate.dense`` + ``output.dense``
  (BERT), ``fc1``/``fc2`` (ViT) and ``c_fc``/``c_proj`` (GPT-2).

This module needs torch only: the layouts are read from the modules, never from
``transformers`` itself.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from pathviz.groups import LayerSpec, Member

__all__ = ["LayoutError", "transformer_layers", "transformer_param_groups"]


class LayoutError(ValueError):
    """No head groups found: the message names the module the search stopped at and how to
    pass the groups by hand."""


def _linear(mod: nn.Module | None) -> bool:
    return isinstance(mod, nn.Linear)


def _conv1d(mod: nn.Module | None) -> bool:
    """``transformers.pytorch_utils.Conv1D`` (GPT-2): a linear whose weight is (in, out)."""
    return type(mod).__name__ == "Conv1D" and getattr(mod, "weight", None) is not None \
        and getattr(mod, "nf", None) == mod.weight.shape[1]


def _gqa_heads(name: str, mod: nn.Module) -> list[Member] | None:
    """Llama/Mistral/Qwen attention: one group per key/value head (see the module docstring)."""
    q, k, v, o = (getattr(mod, a, None) for a in ("q_proj", "k_proj", "v_proj", "o_proj"))
    d = getattr(mod, "head_dim", None)
    if not (all(_linear(m) for m in (q, k, v, o)) and isinstance(d, int) and d > 0):
        return None
    e = q.in_features
    if k.out_features % d or q.out_features % k.out_features or o.in_features != q.out_features:
        return None
    g = k.out_features // d  # key/value heads: the groups
    r = q.out_features // k.out_features  # query heads per key/value head
    # query head i reads key/value head i // r, so the r query heads of group j are
    # consecutive rows of q_proj: (G, r*d*E) views them
    return [Member(f"{name}.q_proj.weight", (g * r * d, e), (g, r * d * e), 0),
            Member(f"{name}.k_proj.weight", (g * d, e), (g, d * e), 0),
            Member(f"{name}.v_proj.weight", (g * d, e), (g, d * e), 0),
            Member(f"{name}.o_proj.weight", (o.out_features, g * r * d),
                   (o.out_features, g, r * d), 1)]


def _bert_heads(name: str, mod: nn.Module) -> list[Member] | None:
    """BERT/RoBERTa/ViT: ``mod`` holds the self-attention (``query``/``key``/``value``) and the
    output projection (``output.dense``) as children."""
    for child_name, child in mod.named_children():
        q, k, v = (getattr(child, a, None) for a in ("query", "key", "value"))
        d = getattr(child, "attention_head_size", None)
        out = getattr(getattr(mod, "output", None), "dense", None)
        if not (all(_linear(m) for m in (q, k, v, out)) and isinstance(d, int) and d > 0):
            continue
        h, e = q.out_features // d, q.in_features
        if q.out_features != h * d or out.in_features != h * d:
            continue
        pre = f"{name}.{child_name}"
        return [Member(f"{pre}.{a}.weight", (h * d, e), (h, d * e), 0)
                for a in ("query", "key", "value")] + \
            [Member(f"{name}.output.dense.weight", (out.out_features, h * d),
                    (out.out_features, h, d), 1)]
    return None


def _gpt2_heads(name: str, mod: nn.Module) -> list[Member] | None:
    """GPT-2: fused ``c_attn`` Conv1D (E, 3E) as (E, 3, H, d) and ``c_proj`` (E, E) rows."""
    qkv, proj = getattr(mod, "c_attn", None), getattr(mod, "c_proj", None)
    h, d = getattr(mod, "num_heads", None), getattr(mod, "head_dim", None)
    if not (_conv1d(qkv) and _conv1d(proj) and isinstance(h, int) and isinstance(d, int)):
        return None
    e_in, width = qkv.weight.shape
    if width != 3 * h * d or proj.weight.shape[0] != h * d:
        return None
    e_out = proj.weight.shape[1]
    return [Member(f"{name}.c_attn.weight", (e_in, 3 * h * d), (e_in, 3, h, d), 2),
            Member(f"{name}.c_proj.weight", (h * d, e_out), (h, d * e_out), 0)]


def _mlp(name: str, mod: nn.Module) -> tuple[str, list[Member]] | None:
    """(layer name, neuron members) of a gated MLP, ViT's fc1/fc2, BERT's intermediate +
    output (named after ``intermediate``: it follows the attention in model order), or GPT-2's
    MLP."""
    gate, up, down = (getattr(mod, a, None) for a in ("gate_proj", "up_proj", "down_proj"))
    if all(_linear(m) for m in (gate, up, down)) and gate.out_features == up.out_features \
            == down.in_features:
        m, e = gate.out_features, gate.in_features
        return name, [Member(f"{name}.gate_proj.weight", (m, e), (m, e), 0),
                      Member(f"{name}.up_proj.weight", (m, e), (m, e), 0),
                      Member(f"{name}.down_proj.weight", (down.out_features, m),
                             (down.out_features, m), 1)]
    fc1 = getattr(getattr(mod, "intermediate", None), "dense", None)
    fc2 = getattr(getattr(mod, "output", None), "dense", None)
    if _linear(fc1) and _linear(fc2) and fc1.out_features == fc2.in_features:
        m, e = fc1.out_features, fc1.in_features
        return f"{name}.intermediate", [
            Member(f"{name}.intermediate.dense.weight", (m, e), (m, e), 0),
            Member(f"{name}.output.dense.weight", (fc2.out_features, m), (fc2.out_features, m),
                   1)]
    fc1, fc2 = getattr(mod, "fc1", None), getattr(mod, "fc2", None)
    if _linear(fc1) and _linear(fc2) and fc1.out_features == fc2.in_features:
        m, e = fc1.out_features, fc1.in_features
        return name, [Member(f"{name}.fc1.weight", (m, e), (m, e), 0),
                      Member(f"{name}.fc2.weight", (fc2.out_features, m), (fc2.out_features, m),
                             1)]
    fc1, fc2 = getattr(mod, "c_fc", None), getattr(mod, "c_proj", None)
    if _conv1d(fc1) and _conv1d(fc2) and fc1.weight.shape[1] == fc2.weight.shape[0]:
        e, m = fc1.weight.shape
        return name, [Member(f"{name}.c_fc.weight", (e, m), (e, m), 1),
                      Member(f"{name}.c_proj.weight", (m, fc2.weight.shape[1]),
                             (m, fc2.weight.shape[1]), 0)]
    return None


def _looks_like_attention(mod: nn.Module) -> bool:
    return "attention" in type(mod).__name__.lower() or "attn" in type(mod).__name__.lower()


def transformer_layers(model: nn.Module, *, heads: bool = True, mlp: bool = True
                       ) -> list[LayerSpec]:
    """The head and MLP-neuron layers of a Hugging Face transformer, in model order.

    Raises :class:`LayoutError` when ``heads`` is asked for and no attention module has a
    layout this module knows: the sentence names the first module that looks like attention
    (the one the search stopped at) and how to pass the groups by hand.
    """
    specs: list[LayerSpec] = []
    covered: set[str] = set()  # modules whose weights a found group already spans
    for name, mod in model.named_modules():
        if not name or any(name.startswith(c + ".") or name == c for c in covered):
            continue
        found = None
        if heads:
            for kind_fn in (_gqa_heads, _bert_heads, _gpt2_heads):
                members = kind_fn(name, mod)
                if members:
                    found = ("heads", name, members)
                    break
        if found is None and mlp:
            neurons = _mlp(name, mod)
            if neurons:
                found = ("mlp", *neurons)
        if found is None:
            continue
        kind, lname, members = found
        specs.append(LayerSpec(name=lname, param=members[0].param, kind=kind,
                               shape=members[0].shape, penalty="group",
                               groups=members[0].view[members[0].dim], members=tuple(members)))
        if kind == "heads":
            covered.add(name)
        else:  # the MLP's own linears, not the module (BERT's layer also holds the attention)
            covered.update(m.param.rpartition(".")[0] for m in members)
    order = {n: i for i, (n, _) in enumerate(model.named_modules())}
    specs.sort(key=lambda s: order.get(s.name, len(order)))
    if heads and not any(s.kind == "heads" for s in specs):
        stop = next((n for n, m in model.named_modules() if n and _looks_like_attention(m)),
                    None)
        where = (f"stopped at {stop} ({type(dict(model.named_modules())[stop]).__name__}), "
                 f"whose layout it does not know" if stop else
                 "found no module that looks like attention")
        raise LayoutError(f"no attention heads found in {type(model).__name__}: the search "
                          f"{where}; pass the groups by hand as SLBI param groups with spans "
                          f"(docs/integrations.md, 'Groups by hand'), or heads=False for the "
                          f"MLP neurons only")
    return specs


def transformer_param_groups(model: nn.Module, *, heads: bool | dict[str, Any] = True,
                             mlp: bool | dict[str, Any] = True, **overrides: Any
                             ) -> list[dict[str, Any]]:
    """Param groups for :class:`pathviz.optim.SLBI`: one per head or neuron layer (with
    ``spans``, ``layer`` and ``kind``), then every other parameter with ``penalty=None``
    (embeddings, norms, biases, the classifier: plain momentum SGD).

    ``heads``/``mlp``: False leaves those groups out; a dict sets options on those groups only
    (e.g. ``mlp={"lam": 2.0}``, ``heads={"balance": "heads", "nu": 50.0}``), over
    ``overrides``, which apply to every group with a Gamma.
    """
    specs = transformer_layers(model, heads=bool(heads), mlp=bool(mlp))
    params = dict(model.named_parameters())
    per_kind = {"heads": heads if isinstance(heads, dict) else {},
                "mlp": mlp if isinstance(mlp, dict) else {}}
    groups, taken = [], set()
    for spec in specs:
        groups.append({"params": [params[m.param] for m in spec.members],
                       "layer_names": [m.param for m in spec.members], "penalty": "group",
                       **overrides, **per_kind[spec.kind],
                       "spans": [m.span for m in spec.members], "layer": spec.name,
                       "kind": spec.kind})
        taken.update(m.param for m in spec.members)
    rest = [(n, p) for n, p in params.items() if n not in taken and p.requires_grad]
    if rest:
        groups.append({"params": [p for _, p in rest], "layer_names": [n for n, _ in rest],
                       "penalty": None})
    return groups
