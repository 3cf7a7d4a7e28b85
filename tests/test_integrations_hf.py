"""pathviz.integrations.hf and .layouts on tiny transformers built from configs (no download)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

from pathviz.integrations import MissingExtraError, require  # noqa: E402
from pathviz.integrations.hf import (  # noqa: E402
    ExportError,
    PathCallback,
    compact_transformer,
    example_inputs,
    export_pretrained,
    slbi_optimizer,
    slbi_optimizer_cls_and_kwargs,
)
from pathviz.integrations.layouts import transformer_layers  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
T = transformers
SMALL = dict(hidden_size=32, intermediate_size=24, num_hidden_layers=2)


def build(arch: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if arch == "llama":
        return T.LlamaForSequenceClassification(T.LlamaConfig(
            vocab_size=40, **SMALL, num_attention_heads=8, num_key_value_heads=4, head_dim=4,
            max_position_embeddings=16, num_labels=3, pad_token_id=0))
    if arch == "qwen2":  # q/k/v biases: they go with their rows
        return T.Qwen2ForSequenceClassification(T.Qwen2Config(
            vocab_size=40, **SMALL, num_attention_heads=4, num_key_value_heads=2, head_dim=8,
            max_position_embeddings=16, num_labels=3, pad_token_id=0))
    if arch == "mistral":
        return T.MistralForSequenceClassification(T.MistralConfig(
            vocab_size=40, **SMALL, num_attention_heads=4, num_key_value_heads=4, head_dim=8,
            max_position_embeddings=16, num_labels=3, pad_token_id=0))
    if arch == "bert":
        return T.BertForSequenceClassification(T.BertConfig(
            vocab_size=40, **SMALL, num_attention_heads=4, max_position_embeddings=16,
            num_labels=3))
    if arch == "roberta":
        return T.RobertaForSequenceClassification(T.RobertaConfig(
            vocab_size=40, **SMALL, num_attention_heads=4, max_position_embeddings=20,
            num_labels=3))
    if arch == "gpt2":
        return T.GPT2ForSequenceClassification(T.GPT2Config(
            vocab_size=40, n_embd=32, n_layer=2, n_head=4, n_inner=24, n_positions=16,
            num_labels=3, pad_token_id=0, bos_token_id=1, eos_token_id=1))
    if arch == "vit":
        return T.ViTForImageClassification(T.ViTConfig(
            image_size=8, patch_size=4, num_channels=1, **SMALL, num_attention_heads=4,
            num_labels=3))
    raise KeyError(arch)


# (layer name, kind, groups) of layer 0, and the member tensors of its head group
LAYOUTS = {
    "llama": ("model.layers.0.self_attn", 4, ["q_proj", "k_proj", "v_proj", "o_proj"],
              "model.layers.0.mlp", ["gate_proj", "up_proj", "down_proj"]),
    "qwen2": ("model.layers.0.self_attn", 2, ["q_proj", "k_proj", "v_proj", "o_proj"],
              "model.layers.0.mlp", ["gate_proj", "up_proj", "down_proj"]),
    "mistral": ("model.layers.0.self_attn", 4, ["q_proj", "k_proj", "v_proj", "o_proj"],
                "model.layers.0.mlp", ["gate_proj", "up_proj", "down_proj"]),
    "bert": ("bert.encoder.layer.0.attention", 4, ["self.query", "self.key", "self.value",
                                                   "output.dense"],
             "bert.encoder.layer.0.intermediate", ["intermediate.dense", "output.dense"]),
    "roberta": ("roberta.encoder.layer.0.attention", 4, ["self.query", "self.key",
                                                         "self.value", "output.dense"],
                "roberta.encoder.layer.0.intermediate", ["intermediate.dense",
                                                         "output.dense"]),
    "gpt2": ("transformer.h.0.attn", 4, ["c_attn", "c_proj"], "transformer.h.0.mlp",
             ["c_fc", "c_proj"]),
    "vit": ("vit.layers.0.attention", 4, ["q_proj", "k_proj", "v_proj", "o_proj"],
            "vit.layers.0.mlp", ["fc1", "fc2"]),
}


@pytest.mark.parametrize("arch", sorted(LAYOUTS))
def test_layouts_find_a_head_and_neuron_layer_per_block(arch):
    model = build(arch)
    specs = transformer_layers(model)
    heads, h, head_members, mlp, mlp_members = LAYOUTS[arch]
    assert [s.kind for s in specs] == ["heads", "mlp", "heads", "mlp"]
    assert (specs[0].name, specs[0].groups) == (heads, h)
    assert (specs[1].name, specs[1].groups) == (mlp, 24)
    block = heads.rpartition(".")[0]
    assert [m.param[len(block) + 1:-len(".weight")] for m in specs[0].members] == [
        f"{heads.rpartition('.')[2]}.{n}" for n in head_members]
    assert [m.param.rpartition(".")[0].rpartition(".")[2] for m in specs[1].members] == [
        n.rpartition(".")[2] for n in mlp_members]
    params = dict(model.named_parameters())
    for spec in specs:  # every span views its tensor with the layer's group count
        for m in spec.members:
            assert tuple(params[m.param].shape) == m.shape
            assert m.view[m.dim] == spec.groups


def _random_gammas(model, specs, seed=1):
    """Gamma tensors with half of each layer's heads and about half of its neurons in the
    support, as an SLBI run would have them: nonzero entries only inside."""
    gen = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    gammas = {}
    for spec in specs:
        if spec.kind == "heads":  # half the heads, so the head count still divides the width
            inside = torch.zeros(spec.groups, dtype=torch.bool)
            inside[torch.randperm(spec.groups, generator=gen)[:spec.groups // 2]] = True
        else:
            inside = torch.rand(spec.groups, generator=gen) < 0.5
            inside[0], inside[-1] = True, False
        for m in spec.members:
            g = torch.randn(params[m.param].shape, generator=gen)
            v = g.view(m.view).movedim(m.dim, 0)
            v.mul_(inside.float().reshape(-1, *([1] * (v.dim() - 1))))
            gammas[m.param] = g
    return gammas


@pytest.mark.parametrize("arch", sorted(LAYOUTS))
def test_compact_matches_masked_and_round_trips_save_pretrained(arch, tmp_path):
    model = build(arch)
    specs = transformer_layers(model)
    masked, small, report = compact_transformer(model, specs, _random_gammas(model, specs))
    assert report["max_abs_diff"] < 1e-5
    assert report["params_after"] < report["params_before"]
    assert sum(p.numel() for p in small.parameters()) == report["params_after"]
    kept_mlp = max(v["in_support"] for v in report["kept"].values() if v["kind"] == "mlp")
    key = "n_inner" if arch == "gpt2" else "intermediate_size"
    assert getattr(small.config, key) == kept_mlp < 24
    if arch in ("llama", "qwen2", "mistral"):  # grouped-query heads go, config and all
        kv = small.config.num_key_value_heads
        assert kv == model.config.num_key_value_heads // 2 and not report["warnings"]
        assert small.config.num_attention_heads % kv == 0
    else:  # head size tied to the head count: masked, and said so
        assert small.config.num_attention_heads if arch != "gpt2" else small.config.n_head
        assert report["warnings"] and "masked (they output 0) but not removed" in \
            report["warnings"][0]
    small.save_pretrained(tmp_path / "m")
    again = type(small).from_pretrained(tmp_path / "m").eval()
    x = example_inputs(model)
    with torch.no_grad():
        diff = (again(**x).logits - masked(**x).logits).abs().max()
    assert float(diff) < 1e-5
    assert sum(p.numel() for p in again.parameters()) == report["params_after"]


def test_a_layout_it_does_not_know_names_the_module():
    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.self_attention = torch.nn.MultiheadAttention(8, 2)

    from pathviz.integrations.layouts import LayoutError

    with pytest.raises(LayoutError, match=r"stopped at 0\.self_attention "
                                          r"\(MultiheadAttention\).*by hand"):
        transformer_layers(torch.nn.Sequential(Block()))
    # the MLP neurons alone need no heads
    assert transformer_layers(torch.nn.Sequential(Block()), heads=False) == []


def test_a_missing_extra_is_named_in_one_sentence():
    with pytest.raises(MissingExtraError, match=r'pip install "pathviz\[hf\]"$'):
        require("no_such_module_pathviz", "hf", "this feature")


def examples(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(1, 40, (n, 8), generator=g)
    return [{"input_ids": a, "labels": b} for a, b in zip(x, (x[:, 0] % 3).long())]


def args(tmp_path, steps=40, **kw):
    return T.TrainingArguments(
        output_dir=str(tmp_path / "tr"), max_steps=steps, per_device_train_batch_size=16,
        eval_strategy="steps", eval_steps=20, logging_steps=10, save_strategy="no",
        lr_scheduler_type="constant", report_to=[], use_cpu=True, disable_tqdm=True, seed=0,
        **kw)


def test_the_trainer_refuses_an_optimizer_without_a_path_before_the_first_step(tmp_path):
    model = build("bert")
    before = [p.detach().clone() for p in model.parameters()]
    trainer = T.Trainer(model=model, args=args(tmp_path), train_dataset=examples(64, 0),
                        eval_dataset=examples(16, 1))
    PathCallback.attach(trainer, tmp_path / "run")
    with pytest.raises(ValueError, match=r"only with pathviz's SLBI optimizer, but training "
                                         r"uses AdamW"):
        trainer.train()
    assert not (tmp_path / "run").exists()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_a_tiny_bert_through_the_trainer_records_exports_and_reloads(tmp_path):
    """BERT with optimizer_cls_and_kwargs and gradient accumulation: the path's iterations are
    optimizer steps; inspect sees heads and neurons; the export reloads and matches."""
    model = build("bert")
    run = tmp_path / "bert-run"
    trainer = T.Trainer(
        model=model, args=args(tmp_path, steps=40, gradient_accumulation_steps=2),
        train_dataset=examples(640, 0), eval_dataset=examples(96, 1),
        optimizer_cls_and_kwargs=slbi_optimizer_cls_and_kwargs(
            model, lr=0.1, nu=10.0, lam=0.2, mlp={"lam": 0.05}))
    callback = PathCallback.attach(trainer, run, every=5)
    assert callback.eval_examples == 96
    trainer.train()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "pathviz.inspect", str(run), "--json"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    s = json.loads(out.stdout)
    assert s["iterations"] == 40  # optimizer steps, not the 80 micro-batches
    assert s["status"]["state"] == "finished"
    layers = {d["name"]: d for d in s["layers"]}
    assert layers["bert.encoder.layer.0.attention"]["kind"] == "heads"
    assert layers["bert.encoder.layer.0.intermediate"]["kind"] == "mlp"
    assert any(d["in_support"] > 0 for d in s["layers"] if d["kind"] == "heads")
    assert any(d["in_support"] > 0 for d in s["layers"] if d["kind"] == "mlp")
    report = export_pretrained(run, 40, tmp_path / "small")
    assert report["reload_max_abs_diff"] < 1e-5 and report["max_abs_diff"] < 1e-5
    again = T.AutoModelForSequenceClassification.from_pretrained(tmp_path / "small")
    assert again.config.intermediate_size == report["config_changes"]["intermediate_size"]
    assert sum(p.numel() for p in again.parameters()) == report["params_after"]
    # a second export into the same folder is refused; so is a run without a transformers model
    with pytest.raises(ExportError, match="is not an empty folder"):
        export_pretrained(run, 40, tmp_path / "small")
    with pytest.raises(ExportError, match="has no path file"):
        export_pretrained(tmp_path / "nothing", 40, tmp_path / "small2")


def test_slbi_optimizer_gives_heads_and_neurons_their_own_options():
    model = build("llama")
    opt = slbi_optimizer(model, lam=0.5, mlp={"lam": 0.1}, heads={"balance": "heads"})
    spanned = [g for g in opt.param_groups if g.get("spans")]
    assert [g["kind"] for g in spanned] == ["heads", "mlp", "heads", "mlp"]
    assert [g["lam"] for g in spanned] == [0.5, 0.1, 0.5, 0.1]
    assert [g.get("balance") for g in spanned] == ["heads", None, "heads", None]
    rest = [g for g in opt.param_groups if not g.get("spans")]
    assert len(rest) == 1 and rest[0]["penalty"] is None
    n = sum(p.numel() for g in opt.param_groups for p in g["params"])
    assert n == sum(p.numel() for p in model.parameters())  # every parameter, once
