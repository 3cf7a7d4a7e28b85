"""prune: masks, coupled channel removal, the zero-channel guard, exact parameter counts."""

from __future__ import annotations

import copy

import pytest
import torch

from pathviz import prune
from pathviz.groups import gamma_layers
from pathviz.models import build_model, count_params, widths_of


def _setup(name: str, keep: dict[str, list[int]] | None = None, seed: int = 0, **kw):
    """A model in eval mode with random BN stats, and Gammas keeping the given channels."""
    torch.manual_seed(seed)
    model = build_model(name, **kw)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    model.eval()
    layers = [s.to_json() for s in gamma_layers(model)]
    gen = torch.Generator().manual_seed(seed + 1)
    gammas = {}
    for layer in layers:
        g = torch.randn(layer["shape"], generator=gen)
        n = layer["shape"][0]
        if keep is not None and layer["name"] in keep:
            mask = torch.zeros(n, dtype=torch.bool)
            mask[keep[layer["name"]]] = True
        else:
            mask = torch.rand(n, generator=gen) < 0.5
        g[~mask] = 0
        gammas[layer["param"]] = g.numpy()
    return model, layers, gammas


def _masked_and_compact(model, layers, gammas, x):
    plan, dg = prune.plan_pruning(model, layers, gammas, x[:1])
    masked = prune.apply_mask(model, layers, gammas, plan, dg)
    comp = copy.deepcopy(masked)
    prune.compact(comp, plan, prune.dependency_graph(comp, x[:1]))
    return plan, masked, comp


@pytest.mark.parametrize("name,kw,shape", [
    ("lenet5", {}, (8, 1, 28, 28)),
    ("cifar_vgg_16", {"widths": [8, 8, 16, 16, 16, 16, 16, 24, 24, 24, 24, 24, 24]},
     (8, 3, 32, 32)),
    ("cifar_resnet_20", {}, (8, 3, 32, 32)),
])
def test_compact_matches_masked(name, kw, shape):
    model, layers, gammas = _setup(name, **kw)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(5))
    plan, masked, comp = _masked_and_compact(model, layers, gammas, x)
    with torch.no_grad():
        diff = (masked(x) - comp(x)).abs().max().item()
    assert diff < 1e-5
    assert count_params(comp) < count_params(masked)
    # and the masked model really is W * 1[Gamma != 0]
    masks = prune.support_masks(layers, gammas)
    mods = dict(masked.named_modules())
    for layer in layers:
        w = mods[layer["name"]].weight
        outside = ~masks[layer["name"]]
        assert w[outside].abs().sum() == 0


def test_lenet_compact_has_exactly_the_implied_parameter_count():
    keep = {"conv1": [0, 2, 5], "conv2": list(range(0, 16, 3)), "conv3": list(range(40)),
            "fc1": list(range(0, 84, 2))}
    model, layers, gammas = _setup("lenet5", keep)
    x = torch.randn(2, 1, 28, 28)
    plan, masked, comp = _masked_and_compact(model, layers, gammas, x)
    k1, k2, k3, k4 = 3, 6, 40, 42
    implied = (k1 * 25 + k1) + (k2 * k1 * 25 + k2) + (k3 * k2 * 25 + k3) + (k4 * k3 + k4) + \
        (10 * k4 + 10)
    assert count_params(comp) == implied
    assert widths_of(comp) == [k1, k2, k3, k4]
    assert plan.kept == {"conv1": 3, "conv2": 6, "conv3": 40, "fc1": 42}
    assert prune.count(comp, x[:1])[0] == implied


def test_zero_channel_guard_keeps_the_strongest():
    model, layers, gammas = _setup("lenet5", {"conv2": []})
    x = torch.randn(2, 1, 28, 28)
    strongest = int(model.conv2.weight.detach().reshape(16, -1).norm(dim=1).argmax())
    plan, masked, comp = _masked_and_compact(model, layers, gammas, x)
    assert comp.conv2.out_channels == 1
    assert any("conv2: no filter is in the support; kept the strongest one "
               f"(channel {strongest})" in w for w in plan.warnings)
    with torch.no_grad():
        assert (masked(x) - comp(x)).abs().max() < 1e-5


def test_residual_coupling_is_respected():
    # stage 1 of ResNet-20: the stem and every block's conv2 share one residual stream.
    stream = ["conv1", "layer1.0.conv2", "layer1.1.conv2", "layer1.2.conv2"]
    keep = {n: [0, 1, 2] for n in stream}
    keep["layer1.1.conv2"] = [0, 1, 2, 7]  # channel 7 is selected in one coupled layer only
    keep["layer1.0.conv1"] = [4, 5]  # an inner conv is free: it narrows on its own
    model, layers, gammas = _setup("cifar_resnet_20", keep)
    x = torch.randn(4, 3, 32, 32)
    plan, masked, comp = _masked_and_compact(model, layers, gammas, x)
    assert comp.conv1.out_channels == 4  # channels 0, 1, 2 and 7 survive in the whole stream
    for b in range(3):
        assert comp.layer1[b].conv2.out_channels == 4
        assert comp.layer1[b].bn2.num_features == 4
    assert comp.layer1[0].conv1.out_channels == 2
    assert comp.layer2[0].conv1.in_channels == 4 and comp.layer2[0].shortcut[0].in_channels == 4
    stream_set = next(s for s in plan.sets if "layer1.1.conv2" in s["members"])
    assert set(stream) <= set(stream_set["members"]) and 7 not in stream_set["remove"]
    with torch.no_grad():
        assert (masked(x) - comp(x)).abs().max() < 1e-5
    rebuilt = build_model("cifar_resnet_20", widths=widths_of(comp))
    rebuilt.load_state_dict(comp.state_dict())


def test_narrow_vgg_compact_has_exactly_the_implied_parameter_count():
    widths = [8, 8, 16, 16, 16, 16, 16, 24, 24, 24, 24, 24, 24]
    model, layers, gammas = _setup("cifar_vgg_16", widths=widths, seed=3)
    x = torch.randn(2, 3, 32, 32)
    plan, masked, comp = _masked_and_compact(model, layers, gammas, x)
    kept = [plan.kept[layer["name"]] for layer in layers]
    ins = [3] + kept[:-1]
    implied = sum(9 * i * o + 2 * o for i, o in zip(ins, kept)) + kept[-1] * 10 + 10
    assert count_params(comp) == implied
    assert kept != widths  # the plan really narrowed something


def test_a_model_torch_pruning_cannot_cut_is_named_in_one_sentence():
    """ShuffleNet's channel shuffle defeats torch-pruning's surgery: the worker and export get
    a PruneError that names the model and the cause, not a ZeroDivisionError from inside."""
    from pathviz.groups import gamma_layers
    from pathviz.models import build_model
    from pathviz.prune import PruneError, subnetwork

    model = build_model("tv_shufflenet_v2_x0_5", num_classes=3)
    layers = gamma_layers(model)
    gammas = {s.param: torch.zeros(s.shape) for s in layers}
    with pytest.raises(PruneError, match=r"^torch-pruning cannot cut ShuffleNetV2 \(.*; pick "
                                         r"another model$"):
        subnetwork(model, [s.to_json() for s in layers], gammas, torch.zeros(1, 3, 64, 64))


def _span_gammas(model, layers, keep: dict[str, list[int]], seed: int = 0):
    """Random Gammas for layers whose groups span tensors, zero outside ``keep`` (per layer),
    written into each member through its span, so the support is exactly ``keep``."""
    from pathviz.optim import span_view

    gen = torch.Generator().manual_seed(seed)
    gammas = {}
    for layer in layers:
        inside = torch.zeros(layer["groups"], dtype=torch.bool)
        inside[keep[layer["name"]]] = True
        for m in layer.get("members") or [{"param": layer["param"], "shape": layer["shape"],
                                            "view": layer["shape"], "dim": 0}]:
            g = torch.randn(m["shape"], generator=gen)
            v = span_view(g, (tuple(m["view"]), m["dim"]))
            v.mul_(inside.float().reshape(-1, *([1] * (v.dim() - 1))))
            gammas[m["param"]] = g.numpy()
    return gammas


def test_vit_heads_and_neurons_are_cut_and_compute_the_masked_function():
    torch.manual_seed(0)
    model = build_model("vit_tiny").eval()
    layers = [s.to_json() for s in gamma_layers(model, first_dense=True)]
    keep = {layer["name"]: ([1, 3] if layer["kind"] == "heads" else list(range(0, 128, 3)))
            for layer in layers}
    keep["blocks.2.attn"] = []  # no head in the support: the strongest one stays
    gammas = _span_gammas(model, layers, keep)
    x = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(5))
    sub = prune.subnetwork(model, layers, gammas, x[:1])
    blocks = sub.compact.blocks
    assert [b.attn.num_heads for b in blocks] == [2, 2, 1, 2]
    assert [b.attn.qkv.out_features for b in blocks] == [3 * 2 * 16, 96, 48, 96]
    assert [b.attn.proj.in_features for b in blocks] == [32, 32, 16, 32]
    assert [b.mlp.fc1.out_features for b in blocks] == [43] * 4
    assert [b.mlp.fc2.in_features for b in blocks] == [43] * 4
    assert sub.plan.kept["blocks.0.attn"] == 2 and sub.plan.kept["blocks.0.mlp.fc1"] == 43
    assert any("no head is in the support" in w for w in sub.plan.warnings)
    with torch.no_grad():
        torch.testing.assert_close(sub.compact(x), sub.masked(x), rtol=0, atol=1e-5)
        # the masked model really is sparse: a cut head's rows are zero, a kept head's are not
        qkv = sub.masked.blocks[0].attn.qkv.weight.reshape(3, 4, 16, 64)
        assert (qkv[:, [0, 2]] == 0).all() and (qkv[:, [1, 3]] != 0).any()
        assert not torch.allclose(sub.masked(x), model(x))
    assert sub.params == count_params(sub.compact)
    # a compact ViT rebuilds from (name, widths, state_dict)
    widths = widths_of(sub.compact)
    assert widths == [2, 2, 1, 2] + [43] * 4
    again = build_model("vit_tiny", widths=widths).eval()
    again.load_state_dict(sub.compact.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(again(x), sub.compact(x), rtol=0, atol=0)


def test_multihead_attention_heads_are_masked_not_removed():
    from torchvision.models import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(image_size=32, patch_size=16, num_layers=2, num_heads=2,
                              hidden_dim=16, mlp_dim=24, num_classes=3).eval()
    layers = [s.to_json() for s in gamma_layers(model, first_dense=True)]
    keep = {layer["name"]: ([1] if layer["kind"] == "heads" else list(range(0, 24, 2)))
            for layer in layers}
    gammas = _span_gammas(model, layers, keep)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    sub = prune.subnetwork(model, layers, gammas, x[:1])
    pre = "encoder.layers.encoder_layer_"
    assert sub.plan.kept[f"{pre}0.self_attention"] == 2  # both heads stay in the module
    assert any("masked (they output 0) but not removed" in w for w in sub.plan.warnings)
    assert [sub.compact.encoder.layers[i].mlp[0].out_features for i in range(2)] == [12, 12]
    with torch.no_grad():
        torch.testing.assert_close(sub.compact(x), sub.masked(x), rtol=0, atol=1e-5)
        attn = sub.masked.encoder.layers[0].self_attention
        assert (attn.out_proj.weight[:, :8] == 0).all() and (attn.out_proj.weight[:, 8:] != 0).any()
    assert sub.params == count_params(sub.compact) < count_params(model)
