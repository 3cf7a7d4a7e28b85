"""Evaluation: the figures the worker records and export reports."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pathviz.data import DATASETS
from pathviz.evaluate import EVAL_BATCH, Evaluator, eval_loader, evaluate
from pathviz.models import build_model

INFO = DATASETS["digits"]


def _data(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g),
            torch.randint(0, 10, (n,), generator=g))


def _model():
    torch.manual_seed(0)
    return build_model("lenet5", num_classes=10, in_channels=1, input_size=28)


def test_evaluate_is_the_mean_cross_entropy_and_accuracy_over_every_image():
    x, y = _data(EVAL_BATCH + 37)  # two batches, the last one short
    model = _model().train()
    loss, acc = evaluate(model, eval_loader(x, y, INFO))
    assert model.training  # the mode is given back
    model.eval()
    with torch.no_grad():
        xs = (x.float() / 255 - INFO.mean[0]) / INFO.std[0]
        out = model(xs)
    assert loss == pytest.approx(F.cross_entropy(out, y).item(), rel=1e-6)
    assert acc == int((out.argmax(1) == y).sum()) / len(y)


def test_an_empty_split_gives_nan_not_an_error():
    x, y = _data(0)
    loss, acc = evaluate(_model(), eval_loader(x, y, INFO))
    assert loss != loss and acc != acc


def test_the_evaluator_reports_both_splits_of_w():
    (xv, yv), (xt, yt) = _data(50, 1), _data(60, 2)
    model = _model()
    ev = Evaluator(eval_loader(xv, yv, INFO), eval_loader(xt, yt, INFO))
    m = ev.dense(model)
    assert (m["val_loss"], m["val_acc"]) == evaluate(model, ev.val)
    assert (m["test_loss"], m["test_acc"]) == evaluate(model, ev.test)
    assert m["val_acc"] != m["test_acc"] or m["val_loss"] != m["test_loss"]
