"""The worker's snapshots: train-metric sums, when weights are saved, what is evaluated."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from pathviz.config import RunConfig
from pathviz.data import DATASETS
from pathviz.evaluate import Evaluator, eval_loader
from pathviz.groups import slbi_param_groups
from pathviz.models import build_model
from pathviz.optim import SLBI
from pathviz.recorder import layers_of
from pathviz.snapshots import Snapshotter

INFO = DATASETS["digits"]


def _snapshotter(optimizer: str = "slbi", **cfg) -> Snapshotter:
    torch.manual_seed(0)
    model = build_model("lenet5", num_classes=10, in_channels=1, input_size=28)
    if optimizer == "slbi":
        opt = SLBI(slbi_param_groups(model, lam=1.0), lr=0.1)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (40, 1, 28, 28), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (40,), generator=g)
    ev = Evaluator(eval_loader(x[:20], y[:20], INFO), eval_loader(x[20:], y[20:], INFO))
    return Snapshotter(RunConfig(**cfg), model, opt, layers_of(model, opt), ev,
                       torch.zeros(1, 1, 28, 28), torch.device("cpu"))


def test_train_sums_give_the_mean_loss_and_accuracy_and_restart_at_each_snapshot():
    s = _snapshotter(snapshot_every=1, eval_every=10, weights_every=10)
    out = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0]])
    y = torch.tensor([0, 0, 0])
    s.count(torch.tensor(6.0), out, y)            # 3 images, 2 right
    s.count(torch.tensor(1.0), out[:1], y[:1])    # 1 image, right
    m = s.take(3, final=False, epoch=0.5, elapsed=1.0, recorder=None)
    assert m["train_loss"] == pytest.approx(7 / 4) and m["train_acc"] == pytest.approx(3 / 4)
    assert "val_acc" not in m  # iteration 3 is neither an evaluation nor a weights iteration
    assert s.sums.tolist() == [0.0, 0.0, 0.0]
    assert "train_loss" not in s.take(4, final=False, epoch=1.0, elapsed=1.0, recorder=None)


def test_weights_come_by_cadence_at_both_ends_and_when_the_support_moved():
    s = _snapshotter(weights_every=50, eval_every=10, weights_on_change=3)
    assert s.wants_weights(0, final=False) and s.wants_weights(50, final=False)
    assert s.wants_weights(17, final=True) and not s.wants_weights(17, final=False)
    p = s._params[0]  # conv1: 6 filters
    gamma = s.opt.state[p]["gamma"] = torch.zeros_like(p)
    s.opt.state[p]["z"] = torch.zeros_like(p)
    gamma[:2] = 1.0
    assert s.support_changed() == 2 and not s.wants_weights(17, final=False)
    gamma[2] = 1.0
    assert s.support_changed() == 3 and s.wants_weights(17, final=False)
    m = s.take(17, final=False, epoch=1.0, elapsed=1.0, recorder=None)
    # a weights iteration is evaluated, so it is a candidate for the stop rule
    assert {"val_acc", "test_acc", "val_acc_sparse", "params_kept"} <= set(m)
    assert s.support_changed() == 0  # counted from the weights just saved
    gamma[0] = 0.0                   # a filter that leaves counts too
    assert s.support_changed() == 1


def test_the_sparse_figures_are_the_compact_subnetworks_own():
    from pathviz.evaluate import evaluate
    from pathviz.prune import subnetwork

    s = _snapshotter()
    for p in s._params:
        s.opt.state[p]["gamma"] = torch.zeros_like(p)
        s.opt.state[p]["z"] = torch.zeros_like(p)
    s.opt.state[s._params[0]]["gamma"][:3] = 1.0  # conv1: 3 of 6 filters
    s.opt.state[s._params[1]]["gamma"][:40] = 1.0
    s.opt.state[s._params[2]]["gamma"][:30] = 1.0
    m = s.take(10, final=False, epoch=1.0, elapsed=1.0, recorder=None)
    sub = subnetwork(s.model, [x.to_json() for x in s.layers], s.gammas(), s.example)
    assert m["params_kept"] == sum(p.numel() for p in sub.compact.parameters())
    assert m["val_acc_sparse"] == evaluate(sub.compact, s.evaluator.val)[1]
    assert m["params_kept"] < sum(p.numel() for p in s.model.parameters())


def test_a_baseline_without_gamma_records_dense_figures_only():
    s = _snapshotter("sgd", weights_on_change=1)
    assert not s.has_gamma and s.layers == [] and s.support_changed() == 0
    m = s.take(10, final=False, epoch=1.0, elapsed=1.0, recorder=None)
    assert "val_acc" in m and "val_acc_sparse" not in m


def test_count_is_the_cross_entropy_sum_the_step_computed():
    s = _snapshotter()
    out, y = torch.randn(5, 10), torch.randint(0, 10, (5,))
    loss = F.cross_entropy(out, y)
    s.count(loss.detach().double() * 5, out, y)
    assert math.isclose(s.sums[0].item() / 5, loss.item(), rel_tol=1e-6)
    assert s.sums[2].item() == 5
