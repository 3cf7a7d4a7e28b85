"""SLBI optimizer: hand-checked updates, implementation agreement, SGD equivalence, state."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from pathviz import _fused
from pathviz.groups import gamma_layers, slbi_param_groups
from pathviz.optim import IMPLS, SLBI, support_mask

IMPLS_AVAILABLE = [i for i in IMPLS if i != "auto" and (i != "fused" or _fused.AVAILABLE)]


@pytest.mark.parametrize("impl", IMPLS_AVAILABLE)
def test_one_step_group_penalty_by_hand(impl):
    # one group per row; row 0 ends inside the support, row 1 outside
    w = torch.tensor([[1.0, 2.0], [0.5, -0.5]], dtype=torch.float64, requires_grad=True)
    w.grad = torch.tensor([[10.0, -20.0], [1.0, 1.0]], dtype=torch.float64)
    opt = SLBI([{"params": [w], "penalty": "group"}], lr=0.5, kappa=2.0, nu=0.25, lam=1.5,
               momentum=0.9, impl=impl)
    opt.step()
    # m = g; W = W - lr*kappa*m - lr*kappa/nu*(W - 0) = W - 1*g - 4*W = -3W - g
    assert w.detach().tolist() == [[-13.0, 14.0], [-2.5, 0.5]]
    # z = lr/nu * W_old = 2 * W_old
    z = opt.state[w]["z"]
    assert z.tolist() == [[2.0, 4.0], [1.0, -1.0]]
    # row 0: ||z|| = sqrt(20) > 1.5 -> Gamma = kappa*(1 - 1.5/sqrt(20))*z
    # row 1: ||z|| = sqrt(2) < 1.5 -> Gamma = 0
    s = 2.0 * (1 - 1.5 / math.sqrt(20.0))
    gamma = opt.state[w]["gamma"]
    assert gamma[0].tolist() == pytest.approx([2.0 * s, 4.0 * s], abs=1e-14)
    assert gamma[1].tolist() == [0.0, 0.0]
    assert opt.support(w).tolist() == [True, False]
    assert opt.w_star(w).tolist() == [[-13.0, 14.0], [0.0, 0.0]]
    assert opt.state[w]["momentum_buffer"].tolist() == [[10.0, -20.0], [1.0, 1.0]]


@pytest.mark.parametrize("impl", IMPLS_AVAILABLE)
def test_one_step_l1_penalty_by_hand(impl):
    w = torch.tensor([3.0, -1.0, 0.25], dtype=torch.float64, requires_grad=True)
    w.grad = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)
    opt = SLBI([{"params": [w], "penalty": "l1"}], lr=1.0, kappa=1.0, nu=1.0, lam=0.5,
               momentum=0.0, impl=impl)
    opt.step()
    # W = W - g - W = -g ; z = W_old ; Gamma = soft(z, 0.5)
    assert w.detach().tolist() == [-1.0, -1.0, -1.0]
    assert opt.state[w]["z"].tolist() == [3.0, -1.0, 0.25]
    assert opt.state[w]["gamma"].tolist() == [2.5, -0.5, 0.0]
    assert opt.support(w).tolist() == [True, True, False]
    # second step with the coupling to a nonzero Gamma: W_old = -1, Gamma = [2.5, -0.5, 0]
    w.grad = torch.zeros(3, dtype=torch.float64)
    opt.step()
    assert w.detach().tolist() == [2.5, -0.5, 0.0]  # W - (W - Gamma) = Gamma
    assert opt.state[w]["z"].tolist() == [-0.5, -1.5, -0.75]


def test_sqrt_group_scale_and_per_group_lambda():
    w = torch.ones(2, 4, dtype=torch.float64, requires_grad=True)
    w.grad = torch.zeros_like(w)
    # z = lr/nu*W = 1 per entry, ||z_row|| = 2. lam*sqrt(4) = 2*0.9 = 1.8 < 2 -> inside
    opt = SLBI([{"params": [w], "penalty": "group", "group_scale": "sqrt", "lam": 0.9}],
               lr=1.0, nu=1.0, kappa=1.0, lam=100.0, momentum=0.0, impl="single")
    opt.step()
    assert opt.support(w).tolist() == [True, True]
    assert opt.state[w]["gamma"][0, 0].item() == pytest.approx(1 - 1.8 / 2)
    w2 = torch.ones(2, 4, dtype=torch.float64, requires_grad=True)
    w2.grad = torch.zeros_like(w2)
    opt2 = SLBI([{"params": [w2], "penalty": "group", "group_scale": "sqrt", "lam": 1.1}],
                lr=1.0, nu=1.0, momentum=0.0, impl="single")
    opt2.step()
    assert opt2.support(w2).tolist() == [False, False]


def _random_problem(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(6, 3, 3, 3, dtype=torch.float64, generator=g),
            torch.randn(5, 8, dtype=torch.float64, generator=g),
            torch.randn(8, dtype=torch.float64, generator=g)]


def _run(impl: str, penalty: str, nesterov: bool, wd: float, steps: int = 20,
         device: str = "cpu", channels_last: bool = False):
    params = [t.clone().to(device) for t in _random_problem()]
    if channels_last:
        params[0] = params[0].contiguous(memory_format=torch.channels_last)
    params = [t.requires_grad_() for t in params]
    groups = [{"params": params[:2], "penalty": penalty}, {"params": params[2:], "penalty": None}]
    opt = SLBI(groups, lr=0.05, kappa=2.0, nu=0.5, lam=0.4, momentum=0.9, nesterov=nesterov,
               weight_decay=wd, impl=impl)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, dtype=torch.float64, generator=gen).to(device)
        opt.step()
    return params, opt


@pytest.mark.parametrize("penalty", ["group", "l1"])
@pytest.mark.parametrize("nesterov,wd", [(False, 0.0), (True, 1e-3)])
@pytest.mark.parametrize("impl", [i for i in IMPLS_AVAILABLE if i != "single"])
def test_fast_paths_match_single_tensor(impl, penalty, nesterov, wd):
    ref, ref_opt = _run("single", penalty, nesterov, wd)
    got, opt = _run(impl, penalty, nesterov, wd)
    support_sizes = []
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
        assert set(opt.state[a]) == set(ref_opt.state[b])
        for key in opt.state[a]:
            torch.testing.assert_close(opt.state[a][key], ref_opt.state[b][key], rtol=0, atol=1e-12)
    for p in ref[:2]:
        support_sizes.append(int(ref_opt.support(p).sum()))
    # the check is only meaningful if Gamma is partly, not wholly, selected
    assert any(0 < s for s in support_sizes)


def _assert_same_run(got, opt, ref, ref_opt, atol: float) -> None:
    for a, b in zip(got, ref):
        torch.testing.assert_close(a.cpu(), b.cpu(), rtol=0, atol=atol)
        assert set(opt.state[a]) == set(ref_opt.state[b])
        for key in opt.state[a]:
            torch.testing.assert_close(opt.state[a][key].cpu(), ref_opt.state[b][key].cpu(),
                                       rtol=0, atol=atol)
    assert any(0 < int(ref_opt.support(p).sum()) for p in ref[:2])  # Gamma is not empty


@pytest.mark.parametrize("penalty", ["group", "l1"])
@pytest.mark.parametrize("impl", ["single", "foreach", "auto"])
def test_channels_last_parameters_take_the_same_steps(impl, penalty):
    """A channels-last conv weight (``--channels-last``) gets the row-major step: Gamma and z
    are kept row-major, so each filter is one row for the group prox. (``auto`` leaves the
    numba kernel, which needs contiguous rows, for foreach; an explicit ``fused`` refuses.)"""
    ref, ref_opt = _run("single", penalty, True, 1e-3)
    got, opt = _run(impl, penalty, True, 1e-3, channels_last=True)
    assert got[0].is_contiguous(memory_format=torch.channels_last)
    _assert_same_run(got, opt, ref, ref_opt, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("penalty", ["group", "l1"])
@pytest.mark.parametrize("impl", ["auto", "foreach", "single"])
def test_the_cuda_step_matches_the_cpu_reference(impl, penalty):
    """The device path (``auto`` picks foreach on CUDA) against the CPU reference, in float64."""
    ref, ref_opt = _run("single", penalty, True, 1e-3)
    got, opt = _run(impl, penalty, True, 1e-3, device="cuda")
    assert got[0].is_cuda and opt.state[got[0]]["gamma"].is_cuda
    _assert_same_run(got, opt, ref, ref_opt, atol=1e-10)


@pytest.mark.parametrize("impl", IMPLS_AVAILABLE)
@pytest.mark.parametrize("nesterov,wd,kappa", [(False, 0.0, 1.0), (True, 1e-2, 0.5)])
def test_penalty_none_is_torch_sgd(impl, nesterov, wd, kappa):
    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    b = copy.deepcopy(a)
    lr = 0.1
    slbi = SLBI(a.parameters(), lr=lr, kappa=kappa, momentum=0.9, nesterov=nesterov,
                weight_decay=wd, impl=impl)
    sgd = torch.optim.SGD(b.parameters(), lr=lr * kappa, momentum=0.9, nesterov=nesterov,
                          weight_decay=wd)
    x, y = torch.randn(16, 4), torch.randn(16, 2)
    for _ in range(10):
        for model, opt in ((a, slbi), (b, sgd)):
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def _tiny_cnn():
    torch.manual_seed(3)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 4 * 4, 8), nn.ReLU(), nn.Linear(8, 3))


def _train(model, opt, steps, start=0):
    gen = torch.Generator().manual_seed(100)
    batches = [(torch.randn(8, 1, 6, 6, generator=gen), torch.randint(0, 3, (8,), generator=gen))
               for _ in range(start + steps)]
    for x, y in batches[start:]:
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


@pytest.mark.parametrize("impl", IMPLS_AVAILABLE)
def test_state_dict_round_trip_continues_bit_identically(impl):
    model = _tiny_cnn()
    opt = SLBI(slbi_param_groups(model, lam=0.05), lr=0.1, nu=10.0, impl=impl)
    _train(model, opt, 5)
    saved_model = copy.deepcopy(model.state_dict())
    saved_opt = copy.deepcopy(opt.state_dict())
    _train(model, opt, 5, start=5)

    fresh = _tiny_cnn()
    fresh.load_state_dict(saved_model)
    opt2 = SLBI(slbi_param_groups(fresh, lam=0.05), lr=0.1, nu=10.0, impl=impl)
    opt2.load_state_dict(saved_opt)
    _train(fresh, opt2, 5, start=5)
    for pa, pb in zip(model.parameters(), fresh.parameters()):
        assert torch.equal(pa, pb)
        for key in opt.state[pa]:
            assert torch.equal(opt.state[pa][key], opt2.state[pb][key])


@pytest.mark.parametrize("name,value", [
    ("lr", -0.1), ("kappa", 0.0), ("nu", -1.0), ("lam", -0.5), ("momentum", 1.5),
    ("weight_decay", -1e-4), ("lr", float("nan")),
])
def test_invalid_hyperparameters_name_the_value(name, value):
    w = torch.zeros(2, 2, requires_grad=True)
    with pytest.raises(ValueError, match=rf"Invalid {name} value: {value!r}"):
        SLBI([w], **{name: value})


def test_invalid_penalty_impl_and_nesterov():
    w = torch.zeros(2, 2, requires_grad=True)
    with pytest.raises(ValueError, match="Invalid penalty value: 'l2'"):
        SLBI([{"params": [w], "penalty": "l2"}])
    with pytest.raises(ValueError, match="Invalid group_scale value: 'cube'"):
        SLBI([w], group_scale="cube")
    with pytest.raises(ValueError, match="Invalid impl: 'gpu'"):
        SLBI([w], impl="gpu")
    with pytest.raises(ValueError, match="nesterov"):
        SLBI([w], momentum=0.0, nesterov=True)


@pytest.mark.parametrize("impl", IMPLS_AVAILABLE)
def test_works_under_lr_scheduler(impl):
    w = torch.ones(3, 2, dtype=torch.float64, requires_grad=True)
    opt = SLBI([{"params": [w], "penalty": "group"}], lr=1.0, kappa=1.0, nu=1e9, lam=1e9,
               momentum=0.0, impl=impl)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.1)
    deltas = []
    for _ in range(3):
        before = w.detach().clone()
        w.grad = torch.ones_like(w)
        opt.step()
        sched.step()
        deltas.append((before - w.detach())[0, 0].item())
    # huge nu and lambda: W moves by lr*kappa*g (coupling ~1e-9); lr decays 1, 0.1, 0.01
    assert deltas == pytest.approx([1.0, 0.1, 0.01], rel=1e-6)


def test_slbi_param_groups_and_layers():
    model = _tiny_cnn()
    groups = slbi_param_groups(model, lam=0.7)
    assert [g["penalty"] for g in groups] == ["group", None]
    assert groups[0]["layer_names"] == ["0.weight", "4.weight"]
    assert groups[0]["lam"] == 0.7 and "lam" not in groups[1]
    assert set(groups[1]["layer_names"]) == {"0.bias", "1.weight", "1.bias", "4.bias", "6.weight",
                                              "6.bias"}
    groups = slbi_param_groups(model, conv="l1", linear=None, last_linear="group")
    assert [(g["penalty"], g["layer_names"]) for g in groups[:2]] == [
        ("l1", ["0.weight"]), ("group", ["6.weight"])]
    specs = gamma_layers(model)
    assert [(s.name, s.kind, s.shape, s.groups) for s in specs] == [
        ("0", "conv", (4, 1, 3, 3), 4), ("4", "linear", (8, 64), 8)]
    with pytest.raises(ValueError, match="Invalid conv penalty"):
        gamma_layers(model, conv="ridge")
    # first_dense: the input convolution has no Gamma and trains with the rest
    assert [s.name for s in gamma_layers(model, first_dense=True)] == ["4"]
    groups = slbi_param_groups(model, first_dense=True)
    assert groups[0]["layer_names"] == ["4.weight"] and "0.weight" in groups[1]["layer_names"]


def test_a_conv_classifier_is_the_last_layer_and_stays_dense():
    """SqueezeNet ends in a 1x1 conv whose outputs are the classes: it is the classifier (the
    ``last_linear`` penalty, dense by default), not a conv layer whose filters could be cut."""
    from pathviz.models import build_model

    model = build_model("tv_squeezenet1_1", num_classes=3)
    names = [s.name for s in gamma_layers(model)]
    assert "classifier.1" not in names and names[-1] == "features.12.expand3x3"
    specs = gamma_layers(model, last_linear="l1")
    assert (specs[-1].name, specs[-1].penalty) == ("classifier.1", "l1")


def test_support_and_w_star_reject_params_without_gamma():
    model = _tiny_cnn()
    opt = SLBI(slbi_param_groups(model))
    with pytest.raises(ValueError, match="no Gamma"):
        opt.support(model[0].bias)
    assert opt.support(model[0].weight).tolist() == [False] * 4  # empty before the first step
    with pytest.raises(ValueError, match="not managed"):
        opt.support(torch.zeros(2, requires_grad=True))


def test_fused_float32_matches_reference_on_a_real_model():
    if not _fused.AVAILABLE:
        pytest.skip("numba not installed")
    models = [_tiny_cnn(), _tiny_cnn()]
    opts = [SLBI(slbi_param_groups(m, lam=0.05), lr=0.1, nu=10.0, impl=i)
            for m, i in zip(models, ("fused", "single"))]
    for m, o in zip(models, opts):
        _train(m, o, 10)
    for pa, pb in zip(*(m.parameters() for m in models)):
        torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-5)


def test_support_mask_groups_filters_and_single_weights():
    g = torch.zeros(3, 2, 2, 2)
    g[1, 0, 1, 1] = 0.5
    assert support_mask(g, "group").tolist() == [False, True, False]
    assert support_mask(g, "l1").sum() == 1 and support_mask(g, "l1").numel() == 24


# ---- groups that span tensors (attention heads, MLP neurons) --------------------------------

E, H = 8, 2  # embedding width and heads of the attention layer below: head_dim 4


def _head_index_masks() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per head h: bool masks of its entries in in_proj (3E, E) and out_proj (E, E), built from
    the index arithmetic of nn.MultiheadAttention (rows c*E + h*d + j; columns h*d + j), not
    from the spans the optimizer reads."""
    d = E // H
    out = []
    for h in range(H):
        a = torch.zeros(3 * E, E, dtype=torch.bool)
        for c in range(3):
            a[c * E + h * d:c * E + (h + 1) * d] = True
        b = torch.zeros(E, E, dtype=torch.bool)
        b[:, h * d:(h + 1) * d] = True
        out.append((a, b))
    return out


def _reference_slbi(ws, grads_per_step, *, lr, kappa, nu, lam, momentum, wd, nesterov,
                    lam_scale=1.0):
    """SLBI on [in_proj, out_proj] with one group per head, from design.md section 3 alone:
    m = mom*m + g (m = g first); W = W_old - lr*kappa*d - lr*kappa/nu*(W_old - Gamma);
    z = z + lr/nu*(W_old - Gamma); Gamma = kappa*prox(z), the prox per head over both tensors."""
    ws = [w.clone() for w in ws]
    ms = [None, None]
    zs = [torch.zeros_like(w) for w in ws]
    gs = [torch.zeros_like(w) for w in ws]
    masks = _head_index_masks()
    for grads in grads_per_step:
        for i in range(2):
            g = grads[i] + wd * ws[i]
            ms[i] = g.clone() if ms[i] is None else momentum * ms[i] + g
            d = g + momentum * ms[i] if nesterov else ms[i]
            w_old = ws[i]
            ws[i] = w_old - lr * kappa * d - lr * kappa / nu * (w_old - gs[i])
            zs[i] = zs[i] + lr / nu * (w_old - gs[i])
        new = [torch.zeros_like(w) for w in ws]
        for a, b in masks:
            norm = math.sqrt(float((zs[0][a] ** 2).sum() + (zs[1][b] ** 2).sum()))
            lam_h = lam * lam_scale
            s = kappa * (1 - lam_h / norm) if norm > lam_h else 0.0
            new[0][a] = s * zs[0][a]
            new[1][b] = s * zs[1][b]
        gs = new
    return ws, zs, gs, ms


def _mha_spans():
    mha = nn.MultiheadAttention(E, H)
    groups = slbi_param_groups(mha)
    (spanning,) = [g for g in groups if g.get("spans")]
    return spanning["spans"]


@pytest.mark.parametrize("nesterov,wd,scale", [(False, 0.0, None), (True, 1e-3, "sqrt")])
@pytest.mark.parametrize("impl", IMPLS_AVAILABLE)
def test_head_groups_match_a_per_tensor_reference(impl, nesterov, wd, scale):
    gen = torch.Generator().manual_seed(3)
    w0 = [torch.randn(3 * E, E, dtype=torch.float64, generator=gen),
          torch.randn(E, E, dtype=torch.float64, generator=gen)]
    steps = [[torch.randn(w.shape, dtype=torch.float64, generator=gen) for w in w0]
             for _ in range(25)]
    a, b = _head_index_masks()[0]  # head 0 weaker: it stays out, head 1 enters
    for t in (w0, *steps):
        t[0][a] *= 0.2
        t[1][b] *= 0.2
    hp = dict(lr=0.05, kappa=2.0, nu=0.5, momentum=0.9)
    lam = 5.0 if scale is None else 5.0 / math.sqrt(3 * 4 * E + E * 4)
    params = [w.clone().requires_grad_() for w in w0]
    opt = SLBI([{"params": params, "penalty": "group", "spans": _mha_spans(),
                 "group_scale": scale}], lam=lam, weight_decay=wd, nesterov=nesterov,
               impl=impl, **hp)
    for grads in steps:
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
    ws, zs, gs, ms = _reference_slbi(w0, steps, lam=lam, wd=wd, nesterov=nesterov,
                                     lam_scale=1.0 if scale is None else
                                     math.sqrt(3 * 4 * E + E * 4), **hp)
    for i, p in enumerate(params):
        for got, want in ((p.detach(), ws[i]), (opt.state[p]["z"], zs[i]),
                          (opt.state[p]["gamma"], gs[i]),
                          (opt.state[p]["momentum_buffer"], ms[i])):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    # a path, not all or nothing: head 1 in the support, head 0 out
    assert opt.support(params[0]).tolist() == opt.support(params[1]).tolist() == [False, True]
    # the groups really span both tensors: Gamma of the head in the support is nonzero on its
    # q, k, v rows and on its out_proj columns, zero everywhere else
    a, b = _head_index_masks()[1]
    assert (opt.state[params[0]]["gamma"][a] != 0).all()
    assert (opt.state[params[0]]["gamma"][~a] == 0).all()
    assert (opt.state[params[1]]["gamma"][b] != 0).all()
    assert (opt.state[params[1]]["gamma"][~b] == 0).all()


@pytest.mark.parametrize("impl", IMPLS_AVAILABLE)
def test_a_head_enters_on_its_norm_over_all_its_tensors(impl):
    # after one step z = lr/nu * W_old = W_old. Head 0 has 0.3 on each of its 3*4*8 in_proj
    # entries and 0.4 on each of its 8*4 out_proj entries: sqrt(96*0.09 + 32*0.16) = sqrt(13.76)
    # = 3.709; either tensor alone (2.94, 2.26) is below lam = 3.5, together above it
    a, b = _head_index_masks()[0]
    w = [torch.zeros(3 * E, E, dtype=torch.float64), torch.zeros(E, E, dtype=torch.float64)]
    w[0][a], w[1][b] = 0.3, 0.4
    params = [t.requires_grad_() for t in w]
    for p in params:
        p.grad = torch.zeros_like(p)
    opt = SLBI([{"params": params, "penalty": "group", "spans": _mha_spans()}], lr=1.0,
               kappa=1.0, nu=1.0, lam=3.5, momentum=0.0, impl=impl)
    opt.step()
    assert opt.support(params[0]).tolist() == [True, False]
    s = 1 - 3.5 / math.sqrt(13.76)
    gamma = opt.state[params[1]]["gamma"]
    assert gamma[b].tolist() == pytest.approx([0.4 * s] * 32, abs=1e-14)
    assert support_mask([opt.state[p]["gamma"] for p in params], "group",
                        _mha_spans()).tolist() == [True, False]
    # W* zeroes head 1's rows and columns only; here W = W_old - (W_old - 0) = 0 everywhere,
    # so check the mask on a fresh value instead
    with torch.no_grad():
        params[1].fill_(1.0)
    ws = opt.w_star(params[1])
    assert (ws[b] == 1).all() and (ws[~b] == 0).all()


def test_span_groups_are_checked_in_init():
    w = torch.zeros(3 * E, E, requires_grad=True)
    o = torch.zeros(E, E, requires_grad=True)
    spans = _mha_spans()
    with pytest.raises(ValueError, match="needs penalty='group'"):
        SLBI([{"params": [w, o], "penalty": "l1", "spans": spans}])
    with pytest.raises(ValueError, match="1 spans for 2 parameters"):
        SLBI([{"params": [w, o], "penalty": "group", "spans": spans[:1]}])
    with pytest.raises(ValueError, match="does not view a parameter"):
        SLBI([{"params": [w, o], "penalty": "group", "spans": [spans[1], spans[0]]}])
    with pytest.raises(ValueError, match="different group counts"):
        SLBI([{"params": [w, o], "penalty": "group", "spans": [spans[0], ((E, E), 1)]}])
    opt = SLBI([{"params": [w, o], "penalty": "group", "spans": spans}])
    w.grad = torch.zeros_like(w)  # o has no gradient: a part-step would mix iterations
    with pytest.raises(RuntimeError, match="every one of its parameters"):
        opt.step()


def test_head_groups_round_trip_state_dict():
    torch.manual_seed(0)
    models = [nn.MultiheadAttention(E, H, batch_first=True) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    opts = [SLBI(slbi_param_groups(m), lr=0.1, nu=1.0, lam=0.05) for m in models]
    x = torch.randn(4, 5, E, generator=torch.Generator().manual_seed(1))

    def step(m, o):
        o.zero_grad()
        m(x, x, x)[0].square().mean().backward()
        o.step()

    for _ in range(3):
        step(models[0], opts[0])
    models[1].load_state_dict(models[0].state_dict())
    opts[1].load_state_dict(copy.deepcopy(opts[0].state_dict()))
    for m, o in zip(models, opts):
        for _ in range(3):
            step(m, o)
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        assert torch.equal(a, b)


def test_transformer_blocks_get_head_and_neuron_groups():
    """torchvision's ViT and the zoo's vit_tiny: one head layer and one MLP layer per block,
    the projections into the residual stream without groups of their own, the rest as before."""
    from torchvision.models import VisionTransformer

    from pathviz.models import build_model

    tv = VisionTransformer(image_size=32, patch_size=16, num_layers=2, num_heads=2, hidden_dim=16,
                           mlp_dim=24, num_classes=3)
    specs = gamma_layers(tv)
    pre = "encoder.layers.encoder_layer_"
    assert [(s.name, s.kind, s.groups) for s in specs] == [
        ("conv_proj", "conv", 16), (f"{pre}0.self_attention", "heads", 2),
        (f"{pre}0.mlp.0", "mlp", 24), (f"{pre}1.self_attention", "heads", 2),
        (f"{pre}1.mlp.0", "mlp", 24)]
    heads = specs[1]
    assert [(m.param, m.shape, m.view, m.dim) for m in heads.members] == [
        (f"{pre}0.self_attention.in_proj_weight", (48, 16), (3, 2, 128), 1),
        (f"{pre}0.self_attention.out_proj.weight", (16, 16), (16, 2, 8), 1)]
    assert [m.param for m in specs[2].members] == [f"{pre}0.mlp.0.weight", f"{pre}0.mlp.3.weight"]
    # without the output columns a head is its q, k, v rows and a neuron its fc1 row
    lean = gamma_layers(tv, out_columns=False)
    assert [len(s.members) for s in lean] == [0, 1, 0, 1, 0]
    groups = slbi_param_groups(tv, first_dense=True, lam=0.3)
    spanning = [g for g in groups if g.get("spans")]
    assert len(spanning) == 4 and all(g["lam"] == 0.3 for g in spanning)
    assert [g["kind"] for g in groups if g.get("kind")] == ["heads", "mlp", "heads", "mlp"]
    taken = [n for g in groups for n in g["layer_names"]]
    assert sorted(taken) == sorted(n for n, _ in tv.named_parameters())  # each once
    # the records round-trip through the path file's JSON
    from pathviz.groups import LayerSpec

    assert [LayerSpec.from_json(s.to_json()) for s in specs] == specs
    assert "members" not in specs[0].to_json()  # conv/linear records are as before

    vit = build_model("vit_tiny")
    specs = gamma_layers(vit, first_dense=True)
    assert [(s.name, s.kind, s.groups) for s in specs[:2]] == [
        ("blocks.0.attn", "heads", 4), ("blocks.0.mlp.fc1", "mlp", 128)]
    assert [(m.param, m.view) for m in specs[0].members] == [
        ("blocks.0.attn.qkv.weight", (3, 4, 16 * 64)), ("blocks.0.attn.proj.weight", (64, 4, 16))]
    assert len(specs) == 8 and "head" not in [s.name for s in specs]  # the classifier: dense


@pytest.mark.parametrize("impl", IMPLS_AVAILABLE)
def test_balance_evens_out_the_gradient_scale_of_the_groups_that_share_its_name(impl):
    """Two attention layers whose gradients differ 50-fold in scale take the steps of an
    unbalanced SLBI fed with each gradient scaled to the pair's mean RMS; a third group, not
    named, keeps its gradient."""
    gen = torch.Generator().manual_seed(5)
    w0 = [torch.randn(3 * E, E, dtype=torch.float64, generator=gen) for _ in range(3)]
    grads = [torch.randn(3 * E, E, dtype=torch.float64, generator=gen) * s
             for s in (5.0, 0.1, 3.0)]
    rms = [float(g.pow(2).mean().sqrt()) for g in grads[:2]]
    want_grads = [grads[0] * (sum(rms) / 2 / rms[0]), grads[1] * (sum(rms) / 2 / rms[1]),
                  grads[2]]

    def run(balance):
        params = [w.clone().requires_grad_() for w in w0]
        opt = SLBI([{"params": [params[0]], "balance": balance},
                    {"params": [params[1]], "balance": balance},
                    {"params": [params[2]]}], lr=0.1, nu=2.0, lam=0.5, penalty="group",
                   weight_decay=1e-3, impl=impl)
        for p, g in zip(params, grads if balance else want_grads):
            p.grad = g.clone()
        opt.step()
        return params

    got, want = run("heads"), run(None)
    for p, q in zip(got, want):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=0, atol=1e-12)
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=1e-12)
    a, b = (float(p.grad.pow(2).mean().sqrt()) for p in got[:2])
    assert a == pytest.approx(b, rel=1e-12) and a == pytest.approx(sum(rms) / 2, rel=1e-12)
    assert torch.equal(got[2].grad, grads[2])
    with pytest.raises(ValueError, match="Invalid balance value: 1"):
        SLBI([{"params": [torch.zeros(2, 2, requires_grad=True)], "balance": 1}])


def _reference_row_step(w, g, m, z, gam, *, lr, kappa, nu, momentum, weight_decay, nesterov,
                        lam, l1):
    """The per-row kernel the fused step replaced, in numpy and a Python loop: every element
    op in the arrays' dtype with the scalars rounded to it, each row's sum of squares in
    float64, one element after the other. What the fused step must give, bit for bit."""
    t = w.dtype.type
    a, b, c = t(lr * kappa), t(lr * kappa / nu), t(lr / nu)
    mom, wd, kap, lm = t(momentum), t(weight_decay), t(kappa), t(lam)
    w0 = w.copy()
    gg = g + wd * w0
    m[...] = mom * m + gg
    d = gg + mom * m if nesterov else m
    diff = w0 - gam
    w[...] = w0 - a * d - b * diff
    z[...] = z + c * diff
    if l1:
        gam[...] = kap * (z - np.minimum(np.maximum(z, -lm), lm))
        return
    for i in range(z.shape[0]):
        acc = 0.0
        for v in z[i] * z[i]:
            acc += float(v)
        norm = math.sqrt(acc)
        s = t(float(kap) * (1.0 - float(lm) / norm) if norm > float(lm) else 0.0)
        gam[i] = s * z[i]


@pytest.mark.skipif(not _fused.AVAILABLE, reason="numba not installed")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("l1", [False, True])
@pytest.mark.parametrize("nesterov,wd", [(False, 0.0), (True, 1e-2)])
def test_the_fused_step_gives_the_per_row_kernels_bits(dtype, l1, nesterov, wd):
    """Bit for bit, whatever the layout: rows in and out of blocks of 8, columns in and out of
    vectors of 4, a tensor split into several work items, values over many magnitudes (where
    another order of the float64 sums would round differently), three steps, and the same
    with the threaded kernel."""
    rng = np.random.default_rng(0)
    shapes = [(21, 37), (300, 130), (8, 4), (3, 1), (16, 4608), (16, 4608)]
    arrays = []
    for rows, cols in shapes:
        scale = np.exp(rng.uniform(-12, 3, (rows, cols)))
        arrays.append([(rng.standard_normal((rows, cols)) * scale).astype(dtype)
                       for _ in range(5)])
        arrays[-1][2] *= 0  # m starts at zero
        arrays[-1][4][rng.random((rows, cols)) < 0.5] = 0  # Gamma partly empty
    # the last: in each row a few large z among many whose squares are near half a unit in the
    # last place of the float64 sum, so that a sum in another order (numpy's pairwise, or 4
    # partial sums: what a vectorized reduction does) rounds otherwise in most rows
    big = rng.random(shapes[-1]) < 0.02
    arrays[-1][3][...] = np.where(big, 2.0 ** 10,
                                  2.0 ** -13.5 * rng.uniform(0.5, 1.5, shapes[-1]))
    for i in (0, 1, 4):
        arrays[-1][i] *= dtype(1e-9)
    hyper = dict(lr=0.3, kappa=1.5, nu=0.7, momentum=0.9, weight_decay=wd, lam=0.05)
    ref = [[a.copy() for a in arrs] for arrs in arrays]
    got = [[torch.from_numpy(a.copy()) for a in arrs] for arrs in arrays]
    threaded = [[t.clone() for t in ts] for ts in got]
    kind = _fused.KIND_L1 if l1 else _fused.KIND_GROUP
    hy = [tuple(hyper[k] for k in ("lr", "kappa", "nu", "momentum", "weight_decay", "lam"))]
    for _ in range(3):
        for arrs in ref:
            _reference_row_step(*arrs, **hyper, nesterov=nesterov, l1=l1)
        _fused.step_many([tuple(ts) for ts in got], shapes, [kind] * len(shapes),
                         [nesterov] * len(shapes), hy * len(shapes))
        ts = [tuple(t) for t in threaded]
        addrs = np.array([[t.data_ptr() for t in x] for x in ts], np.int64)
        meta = np.array([(r, c, kind, nesterov) for r, c in shapes], np.int64)
        h = np.array([(0.3 * 1.5, 0.3 * 1.5 / 0.7, 0.3 / 0.7, 0.9, wd, 1.5, 0.05)] * len(ts),
                     dtype)
        _fused._STEP(addrs, meta, h, _fused._chunks(meta))
    assert len(_fused._chunks(np.array([(300, 130, kind, 0)], np.int64))) > 1
    for arrs, ts, th in zip(ref, got, threaded):
        for a, t, u in zip(arrs, ts, th):
            np.testing.assert_array_equal(t.numpy(), a, strict=True)
            np.testing.assert_array_equal(u.numpy(), a, strict=True)
    # the check means something only if some groups entered and others did not
    entered = [np.abs(arrs[4]).sum(axis=1) > 0 for arrs in ref]
    assert any(e.any() for e in entered) and not all(e.all() for e in entered)
