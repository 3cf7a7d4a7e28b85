"""PathRecorder on a hand-written training loop."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

from pathviz.groups import slbi_param_groups
from pathviz.optim import SLBI
from pathviz.recorder import PathRecorder, layers_of
from pathviz.store import PathReader


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 6 * 6, 12),
                         nn.ReLU(), nn.Linear(12, 3))


def test_hand_written_loop_records_a_path_the_app_can_read(tmp_path):
    model = _model()
    opt = SLBI(slbi_param_groups(model, lam=0.4), lr=0.2, nu=2.0)
    path = tmp_path / "mine.h5"
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 1, 8, 8, generator=gen), torch.randint(0, 3, (64,), generator=gen)
    saved_gamma = {}
    with PathRecorder(model, opt, path, config={"note": "mine"}, metrics=["grad_norm"],
                      weights_every=5, iterations_per_epoch=10,
                      example_input=torch.zeros(1, 1, 8, 8)) as rec:
        rec.record(0)
        for it in range(1, 21):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            rec.record(it, train_loss=loss.item(), grad_norm=1.5)
            if it == 10:
                saved_gamma = {n: opt.gamma(p).clone() for n, p in model.named_parameters()
                               if n in ("0.weight", "3.weight")}
                support_at_10 = opt.support(model[0].weight).sum().item()
    with PathReader(path) as r:
        # SLBI's own settings are stored, so the app's Compare names ν, λ and κ
        assert r.config == {"note": "mine", "optimizer": "slbi", "lr": 0.2, "kappa": 1.0,
                            "nu": 2.0, "lam": 0.4, "momentum": 0.9, "weight_decay": 0.0}
        from pathviz.ui.compare import _legend_name

        assert _legend_name("mine", r.config) == "mine (ν=2, λ=0.4, κ=1)"
        assert r.environment["torch"] == torch.__version__ and r.environment["device"] == "cpu"
        assert [layer["name"] for layer in r.layers] == ["0", "3"]
        assert r.iterations.tolist() == list(range(21))
        assert r.epochs.tolist() == [i / 10 for i in range(21)]
        assert r.weight_iterations.tolist() == [0, 5, 10, 15, 20]
        assert np.isnan(r.metric("train_loss")[0]) and r.metric("grad_norm")[1] == 1.5
        g10 = r.gamma_at(10)
        for name, t in saved_gamma.items():
            np.testing.assert_array_equal(g10[name], t.numpy())
        assert r.support_sizes("0")[10] == support_at_10
        assert 0 < support_at_10 < 6, "the test wants a partly selected layer"
        # params_kept: the compact subnetwork's numel, stored at the weight saves only
        k0, k3 = r.support_sizes("0")[-1], r.support_sizes("3")[-1]
        want = k0 * 9 + k0 + (k0 * 36) * k3 + k3 + k3 * 3 + 3
        kept = r.metric("params_kept")
        assert kept[-1] == want and np.isnan(kept[1]) and np.isfinite(kept[5])
        assert r.metric("lr")[-1] == 0.2
        # a custom model: the file says so, and export will say it cannot rebuild it
        assert r.model_info["custom"] is True and r.model_info["name"] == "Sequential"
        assert r.model_info["params_total"] == sum(p.numel() for p in model.parameters())


def test_recorder_refuses_bad_setups(tmp_path):
    model = _model()
    with pytest.raises(TypeError, match="torch optimizer"):
        PathRecorder(model, object(), tmp_path / "a.h5")
    with pytest.raises(ValueError, match="no parameter with a Gamma"):
        layers_of(model, SLBI(model.parameters()))
    with pytest.raises(ValueError, match="no parameter with a Gamma"):
        PathRecorder(model, SLBI(model.parameters()), tmp_path / "b.h5")
    assert not (tmp_path / "b.h5").exists()
    # any other optimizer records a baseline: metrics, no Gamma layers
    with PathRecorder(model, torch.optim.SGD(model.parameters(), lr=0.1), tmp_path / "c.h5",
                      weights_every=1) as rec:
        rec.record(0, train_loss=1.0)
    with PathReader(tmp_path / "c.h5") as r:
        assert r.layers == [] and r.metric("train_loss").tolist() == [1.0]
    (tmp_path / "exists.h5").write_bytes(b"keep me")
    opt = SLBI(slbi_param_groups(model))
    with pytest.raises(FileExistsError):
        PathRecorder(model, opt, tmp_path / "exists.h5")
    assert (tmp_path / "exists.h5").read_bytes() == b"keep me"


@pytest.mark.parametrize("linear", ["group", "l1"])
def test_device_statistics_come_back_in_one_transfer_and_equal_the_cpu_kernel(tmp_path,
                                                                             linear):
    """On a GPU a snapshot's statistics are computed on the device and copied once
    (``_device_stats``). Run on the CPU here, they equal the numba kernel's, layer by layer, for
    group and l1 layers; with CUDA the recorder takes that path by itself."""
    model = _model()
    opt = SLBI(slbi_param_groups(model, lam=0.4, linear=linear), lr=0.2, nu=2.0)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 1, 8, 8, generator=gen), torch.randint(0, 3, (64,), generator=gen)
    for _ in range(10):  # the support is partly filled here
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    with PathRecorder(model, opt, tmp_path / "p.h5", iterations_per_epoch=1) as rec:
        ref, ref_sparsity = rec.layer_stats()
        got, sparsity = rec._device_stats()
    assert 0 < ref_sparsity < 1 and sparsity == ref_sparsity
    assert list(got) == list(ref)
    for name in ref:
        for a, b in zip(got[name], ref[name]):
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cuda_model_records_the_same_statistics(tmp_path):
    model = _model()
    opt = SLBI(slbi_param_groups(model, lam=0.4), lr=0.2, nu=2.0)
    with PathRecorder(model, opt, tmp_path / "cpu.h5", iterations_per_epoch=1) as rec:
        ref, _ = rec.layer_stats()
    model.cuda()
    opt = SLBI(slbi_param_groups(model, lam=0.4), lr=0.2, nu=2.0)
    with PathRecorder(model, opt, tmp_path / "gpu.h5", iterations_per_epoch=1) as rec:
        got, _ = rec.layer_stats()
    for name in ref:
        for a, b in zip(got[name], ref[name]):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=0)


def test_an_iteration_that_does_not_increase_is_refused_before_it_is_written(tmp_path):
    """The store refuses a file whose iterations do not strictly increase, so the recorder
    refuses such a record at once (one sentence) and the file stays readable."""
    model = _model()
    opt = SLBI(slbi_param_groups(model), lr=0.1)
    path = tmp_path / "mine.h5"
    with PathRecorder(model, opt, path, example_input=torch.zeros(1, 1, 8, 8)) as rec:
        rec.record(0, weights=True)
        rec.record(5)
        for bad, why in ((5, "iteration 5 is not above the last one recorded (5)"),
                         (3, "iteration 3 is not above the last one recorded (5)"),
                         (6.0, "must be a whole number >= 0, got 6.0"),
                         (-1, "must be a whole number >= 0, got -1")):
            with pytest.raises(ValueError, match=re.escape(why)):
                rec.record(bad)
        rec.record_weights(5)
        with pytest.raises(ValueError, match=re.escape("record_weights: iteration 3 is not "
                                                       "above the last one recorded (5)")):
            rec.record_weights(3)
        rec.record(7)
    with PathReader(path) as r:
        assert r.iterations.tolist() == [0, 5, 7] and r.weight_iterations.tolist() == [0, 5]


class _Encoder(nn.Module):
    """A user's own transformer: tokens of 4 features, 2 encoder layers of 4 heads, mean pool."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(4, 16)
        layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.encoder(self.embed(x)).mean(dim=1))


def test_head_and_neuron_groups_of_a_users_transformer_are_recorded(tmp_path):
    torch.manual_seed(0)
    model = _Encoder()
    opt = SLBI(slbi_param_groups(model, lam=0.045, group_scale="sqrt"), lr=0.1, nu=10.0)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 6, 4, generator=gen), torch.randint(0, 3, (64,), generator=gen)
    path = tmp_path / "enc.h5"
    with PathRecorder(model, opt, path, weights_every=10) as rec:
        for it in range(1, 31):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            rec.record(it, train_loss=loss.item())
    attn = model.encoder.layers[0].self_attn
    with PathReader(path) as r:
        layers = {layer["name"]: layer for layer in r.layers}
        assert list(layers) == ["embed", "encoder.layers.0.self_attn", "encoder.layers.0.linear1",
                                "encoder.layers.1.self_attn", "encoder.layers.1.linear1"]
        heads = layers["encoder.layers.0.self_attn"]
        assert (heads["kind"], heads["groups"]) == ("heads", 4)
        assert [m["param"] for m in heads["members"]] == [
            "encoder.layers.0.self_attn.in_proj_weight",
            "encoder.layers.0.self_attn.out_proj.weight"]
        assert layers["encoder.layers.0.linear1"]["kind"] == "mlp"
        # every tensor of a head's Gamma is saved, so export and resume can read the support
        g = r.gamma_at(30)
        np.testing.assert_array_equal(g["encoder.layers.0.self_attn.out_proj.weight"],
                                      opt.gamma(attn.out_proj.weight).numpy())
        # ||Gamma_h|| over the head's q, k, v rows and its out_proj columns
        gq = opt.gamma(attn.in_proj_weight).reshape(3, 4, 4, 16)
        go = opt.gamma(attn.out_proj.weight).reshape(16, 4, 4)
        want = (gq.square().sum(dim=(0, 2, 3)) + go.square().sum(dim=(0, 2))).sqrt()
        gn = r.layer_path("encoder.layers.0.self_attn", "gamma_norm")[-1]
        np.testing.assert_allclose(gn, want.numpy(), rtol=1e-6)
        nnz = r.layer_path("encoder.layers.0.self_attn", "nnz")[-1]
        assert nnz.tolist() == [int((gq[:, h] != 0).sum() + (go[:, h] != 0).sum())
                                for h in range(4)]
        # the recorded support is the optimizer's, layer by layer; the heads are part-selected
        params = dict(model.named_parameters())
        for name, layer in layers.items():
            inside = r.layer_path(name, "gamma_norm")[-1] > 0
            assert inside.tolist() == opt.support(params[layer["param"]]).tolist(), name
            if layer["kind"] == "heads":
                assert 0 < inside.sum() < 4, name
