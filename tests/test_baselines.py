"""pathviz.baselines: supports at the path's widths, the CLI, its results file and bad input.

The LeNet-5 run is the hand-made path file of test_retrain (support at iteration 20 known); the
residual checks use ResNet-20 with Gammas chosen by hand, as test_prune does.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pathviz import baselines, prune, retrain, runs
from pathviz.models import build_model, count_params, widths_of
from pathviz.tickets import baselines_cli as cli
from pathviz.tickets import supports as sp
from tests.conftest import VIT_RUN_ITERATION, make_vit_run
from tests.test_prune import _setup
from tests.test_retrain import KEEP, write_run

PATH_WIDTHS = [len(KEEP[k]) for k in ("conv1", "conv2", "conv3", "fc1")]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    d, _ = write_run(root)
    write_run(root, "demo-sgd", {"optimizer": "sgd"})
    return d


@pytest.fixture(scope="module")
def sup(run) -> retrain.Support:
    return retrain.load_support(run, 20)


def _batches(n: int = 2):
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(8, 1, 28, 28, generator=g), torch.randint(0, 10, (8,), generator=g))
            for _ in range(n)]


def _path_params(run: Path) -> int:
    sup_ = retrain.load_support(run, 20)
    return count_params(sp.compact_copy(sup_.model, sup_.plan, sup_.example))


@pytest.mark.parametrize("method", ["magnitude", "taylor"])
def test_per_layer_widths_equal_the_path_support(sup, method) -> None:
    scores = sp.score_sets(sup.model, sup.plan, sup.example, method, _batches())
    plan = sp.baseline_plan(sup.plan, scores)
    small = sp.compact_copy(sup.model, plan, sup.example)
    assert widths_of(small) == PATH_WIDTHS
    assert plan.kept == {k: len(v) for k, v in KEEP.items()}
    # a different choice than the path's own (the scores are not Gamma)
    assert sp.kept_of(plan) != KEEP


def test_magnitude_keeps_the_largest_filters(sup) -> None:
    ref = build_model("lenet5", num_classes=10, in_channels=1, input_size=28)
    ref.load_state_dict(sup.model.state_dict())
    big = [1, 5, 9, 20, 40, 41, 42, 50, 60, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 83]
    assert len(big) == len(KEEP["fc1"])
    with torch.no_grad():
        ref.fc1.weight[big] *= 50.0
    plan = sp.baseline_plan(sup.plan, sp.score_sets(ref, sup.plan, sup.example, "magnitude"))
    assert sp.kept_of(plan)["fc1"] == big


def test_global_magnitude_matches_the_parameter_count(sup) -> None:
    scores = sp.score_sets(sup.model, sup.plan, sup.example, "global-magnitude")
    target = count_params(sp.compact_copy(sup.model, sup.plan, sup.example))
    plan = sp.global_plan(sup.model, sup.plan, scores, target, sup.example)
    got = count_params(sp.compact_copy(sup.model, plan, sup.example))
    # one more or one fewer channel in the narrowest step would be farther from the target
    assert abs(got - target) <= 0.05 * target
    assert all(n >= 1 for n in plan.kept.values())


def test_slimming_is_refused_without_batchnorm(sup) -> None:
    with pytest.raises(baselines.BaselineError, match="no BatchNorm layer"):
        sp.score_sets(sup.model, sup.plan, sup.example, "slimming")


def test_slimming_respects_residual_couplings() -> None:
    stream = ["conv1", "layer1.0.conv2", "layer1.1.conv2", "layer1.2.conv2"]
    keep = {n: [0, 1, 2] for n in stream}
    model, layers, gammas = _setup("cifar_resnet_20", keep)
    x = torch.randn(2, 3, 32, 32)
    plan, _ = prune.plan_pruning(model, layers, gammas, x[:1])
    # one BN of the residual stream says channels 9, 10, 11 matter most
    with torch.no_grad():
        model.layer1[1].bn2.weight[[9, 10, 11]] = 30.0
    scores = sp.score_sets(model, plan, x[:1], "slimming")
    base = sp.baseline_plan(plan, scores)
    stream_set = next(s for s in base.sets if "layer1.1.conv2" in s["members"])
    assert set(stream) <= set(stream_set["members"])
    assert sp.kept_of(base)[stream_set["root"]] == [9, 10, 11]
    small = sp.compact_copy(model, base, x[:1])
    path_small = sp.compact_copy(model, plan, x[:1])
    assert widths_of(small) == widths_of(path_small)
    for b in range(3):  # the whole stream keeps the same three channels
        assert small.layer1[b].conv2.out_channels == 3 and small.layer1[b].bn2.num_features == 3
    torch.testing.assert_close(small.layer1[1].bn2.weight, torch.full((3,), 30.0))
    with torch.no_grad():
        assert small(x).shape == (2, 10)
    rebuilt = build_model("cifar_resnet_20", widths=widths_of(small))
    rebuilt.load_state_dict(small.state_dict())


def test_cli_writes_resumable_results_with_exact_params(run, sup, capsys) -> None:
    argv = [str(run), "--iterations", "20", "--methods", "magnitude,global-magnitude",
            "--epochs", "1", "--no-progress"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "one-shot -> +1 epoch; reference demo-sgd (iteration 20)" in out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("20 "))
    assert line.split()[1] == f"{_path_params(run):,}"
    entries = baselines.read_results(run)
    assert {(e["method"], e["iteration"], e["reference"]) for e in entries} == {
        ("magnitude", 20, "demo-sgd"), ("global-magnitude", 20, "demo-sgd")}
    mag = next(e for e in entries if e["method"] == "magnitude")
    assert mag["path_params"] == mag["params"]
    assert mag["widths"] == {k: len(v) for k, v in KEEP.items()}
    assert 0.0 <= mag["oneshot"]["test_acc"] <= 1.0 and mag["finetuned"]["test_acc"] is not None
    # the compact network of the stored support has exactly the params reported, and its
    # state_dict loads into the narrow model family (what export's compact state_dict holds)
    from pathviz.export import load_run_model

    ref = load_run_model(run.parent / "demo-sgd", 20)[0]
    for e in entries:
        plan = sp.plan_from_kept(sup.plan, e["support"])
        small = sp.compact_copy(ref, plan, sup.example)
        assert count_params(small) == e["params"]
        rebuilt = build_model("lenet5", widths=widths_of(small), in_channels=1)
        rebuilt.load_state_dict(small.state_dict())
        assert count_params(rebuilt) == e["params"]
    # resumable: a second call measures nothing new and keeps the file as it was
    before = runs.paths_for_dir(run).baselines.read_text()
    assert cli.main(argv) == 0
    assert runs.paths_for_dir(run).baselines.read_text() == before
    manifest = json.loads(runs.paths_for_dir(run).manifest.read_text())
    assert runs.BASELINES_FILE in manifest["files"]
    rows = baselines.summary(run)
    assert [r["method"] for r in rows] == ["global-magnitude", "magnitude"]


def test_reference_self_prunes_the_run_at_n(run, capsys) -> None:
    assert cli.main([str(run), "--iterations", "20", "--methods", "magnitude", "--epochs", "0",
                     "--reference", "self", "--no-progress"]) == 0
    e = next(e for e in baselines.read_results(run) if e["reference"] == "self")
    assert e["reference_iteration"] == 20 and e["finetuned"] is None
    assert "one-shot; reference self (W at N)" in capsys.readouterr().out


@pytest.mark.parametrize("args,msg", [
    (["--methods", "slimming"], "has no BatchNorm layer"),
    (["--methods", "l2"], "choose from magnitude"),
    (["--iterations", "7"], "7 has no saved weights"),
    (["--iterations", "99999"], "99999 is past the end of the run"),
    (["--iterations", "x"], "give all or whole numbers"),
    (["--epochs", "-1"], "--epochs must be >= 0"),
    (["--reference", "other"], "invalid choice"),
])
def test_bad_input_is_one_sentence_and_writes_nothing(tmp_path, args, msg, capsys) -> None:
    d, _ = write_run(tmp_path)
    write_run(tmp_path, "demo-sgd", {"optimizer": "sgd"})
    before = sorted(p.name for p in d.iterdir())
    assert cli.main([str(d), *args, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1 and "Traceback" not in err
    assert sorted(p.name for p in d.iterdir()) == before


def test_missing_sgd_sibling_and_sgd_run_are_refused(tmp_path, capsys) -> None:
    d, _ = write_run(tmp_path)
    assert cli.main([str(d), "--no-progress"]) == 2
    assert "no SGD sibling run" in capsys.readouterr().err
    s, _ = write_run(tmp_path, "plain", {"optimizer": "sgd"})
    assert cli.main([str(s), "--no-progress"]) == 2
    assert "no Gamma layers" in capsys.readouterr().err
    assert cli.main([str(tmp_path / "nothing"), "--no-progress"]) == 2
    assert "has no path file" in capsys.readouterr().err


def test_corrupt_results_file_is_reported_not_replaced(tmp_path, capsys) -> None:
    d, _ = write_run(tmp_path)
    runs.paths_for_dir(d).baselines.write_text("{not json")
    assert cli.main([str(d), "--reference", "self", "--no-progress"]) == 2
    assert "cannot be read" in capsys.readouterr().err
    assert runs.paths_for_dir(d).baselines.read_text() == "{not json"


def test_chart_points_hold_the_path_the_baselines_and_the_references(tmp_path) -> None:
    from pathviz.tickets.points import chart_points

    d, _ = write_run(tmp_path)
    write_run(tmp_path, "demo-sgd", {"optimizer": "sgd"})
    assert cli.main([str(d), "--iterations", "20", "--methods", "magnitude", "--epochs", "1",
                     "--no-progress"]) == 0
    e = baselines.read_results(d)[0]
    points, problem = chart_points(d)
    assert problem is None
    kinds = {}
    for p in points:
        kinds.setdefault(p["kind"], []).append(p)
    assert [p["iteration"] for p in kinds["path"]] == [0, 5, 10, 15, 20]
    assert kinds["path"][-1]["acc"] == pytest.approx(0.8)  # test_acc_sparse at 20
    (one,), (fin,) = kinds["oneshot"], kinds["finetuned"]
    assert one["params"] == fin["params"] == e["params"] and one["flops"] == e["flops"]
    assert one["acc"] == e["oneshot"]["test_acc"] and fin["acc"] == e["finetuned"]["test_acc"]
    assert fin["series"] == "magnitude, finetuned 1 epoch (from SGD run demo-sgd)"
    assert {p["method"] for p in kinds["reference"]} == {"sgd", "slbi-w"}
    runs.paths_for_dir(d).baselines.write_text("oops")
    points, problem = chart_points(d)
    assert "cannot be read" in problem and not any(p["kind"] == "oneshot" for p in points)


def _resnet_run(root: Path) -> Path:
    """A cifar_resnet_20 run on digits (weights at iterations 0 and 10, BatchNorm scales
    spread out; channels 9-11 of the first residual stream strongest in one coupled BN) whose
    support at 10 keeps three channels of that stream and half of every other layer."""
    from pathviz.groups import gamma_layers
    from pathviz.store import PathWriter, Snapshot

    paths = runs.run_paths("rn", root)
    paths.dir.mkdir(parents=True)
    torch.manual_seed(0)
    model = build_model("cifar_resnet_20", num_classes=10, in_channels=1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
        model.layer1[1].bn2.weight[[9, 10, 11]] = 30.0
    layers = [s.to_json() for s in gamma_layers(model)]
    sd = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    weights = [{"name": k, "shape": list(v.shape), "dtype": str(v.dtype)} for k, v in sd.items()]
    cfg = {"model": "cifar_resnet_20", "dataset": "digits", "lr": 0.05, "batch_size": 64,
           "momentum": 0.9, "weight_decay": 0.0, "val_fraction": 0.2, "split_seed": 0,
           "optimizer": "slbi", "seed": 0}
    stream = {"conv1", "layer1.0.conv2", "layer1.1.conv2", "layer1.2.conv2"}
    with PathWriter(paths.path, config=cfg, layers=layers, weights=weights) as w:
        for it in (0, 10):
            gam, stats = {}, {}
            for layer in layers:
                g = np.zeros(layer["shape"], np.float32)
                if it == 10:
                    g[[0, 1, 2] if layer["name"] in stream else slice(0, None, 2)] = 0.3
                gam[layer["param"]] = g
                gn = np.linalg.norm(g.reshape(len(g), -1), axis=1).astype(np.float32)
                stats[layer["name"]] = (gn, gn + 1, (gn > 0).astype(np.int32))
            w.append(Snapshot(it, it / 10, float(it), {"train_loss": 1.0, "train_acc": 0.5,
                                                      "lr": 0.05}, stats))
            w.append_weights(it, sd, gam)
    paths.config.write_text(json.dumps(cfg))
    return paths.dir


def test_slimming_on_a_resnet_run_keeps_the_residual_stream_together(tmp_path) -> None:
    d = _resnet_run(tmp_path)
    assert cli.main([str(d), "--methods", "slimming,magnitude", "--iterations", "10",
                     "--reference", "self", "--epochs", "0", "--no-progress"]) == 0
    e = next(e for e in baselines.read_results(d) if e["method"] == "slimming")
    sup_ = retrain.load_support(d, 10)
    stream_set = next(s for s in sup_.plan.sets if "layer1.1.conv2" in s["members"])
    assert {"conv1", "layer1.0.conv2", "layer1.2.conv2"} <= set(stream_set["members"])
    # the BatchNorm scales of the whole stream chose its three channels, for every member
    assert e["support"][stream_set["root"]] == [9, 10, 11]
    assert all(e["widths"][m] == 3 for m in stream_set["members"])
    assert e["widths"] == dict(sup_.plan.kept) and e["params"] == e["path_params"]
    small = sp.compact_copy(sup_.model, sp.plan_from_kept(sup_.plan, e["support"]), sup_.example)
    assert count_params(small) == e["params"]
    for b in range(3):
        assert small.layer1[b].conv2.out_channels == small.layer1[b].bn2.num_features == 3
    torch.testing.assert_close(small.layer1[1].bn2.weight, torch.full((3,), 30.0))
    assert e["oneshot"]["test_acc"] is not None and e["finetuned"] is None


def test_a_second_command_on_the_same_run_is_refused_while_one_measures(tmp_path,
                                                                         capsys) -> None:
    d, _ = write_run(tmp_path)
    with cli.measuring(d):
        assert runs.paths_for_dir(d).baselines_lock.exists()
        assert cli.main([str(d), "--reference", "self", "--iterations", "20", "--epochs", "0",
                         "--no-progress"]) == 2
        assert "is being measured by another python -m pathviz.baselines" in \
            capsys.readouterr().err
    assert not runs.paths_for_dir(d).baselines.exists()
    assert not runs.paths_for_dir(d).baselines_lock.exists()  # released and removed
    assert cli.main([str(d), "--reference", "self", "--iterations", "20", "--epochs", "0",
                     "--methods", "magnitude", "--no-progress"]) == 0
    assert not runs.paths_for_dir(d).baselines_lock.exists()


def test_baselines_on_a_vit_run_cut_heads_and_neurons_to_the_paths_widths(tmp_path,
                                                                          capsys) -> None:
    """On a real vit_tiny run every baseline keeps as many heads and MLP neurons per block as
    the path (global-magnitude: about as many parameters), its compact network has exactly the
    reported parameters and rebuilds as vit_tiny; magnitude keeps the head of largest L1."""
    from pathviz.store import PathReader

    run_dir, it = make_vit_run(tmp_path), VIT_RUN_ITERATION
    sup = retrain.load_support(run_dir, it)
    assert cli.main([str(run_dir), "--iterations", str(it), "--methods",
                     "magnitude,taylor,global-magnitude", "--reference", "self", "--epochs", "1",
                     "--no-progress"]) == 0
    entries = {e["method"]: e for e in baselines.read_results(run_dir)}
    with PathReader(run_dir / runs.PATH_FILE) as r:
        path_params = int(r.metric("params_kept")[np.flatnonzero(r.iterations == it)[0]])
    for method in ("magnitude", "taylor"):
        e = entries[method]
        assert e["path_params"] == e["params"] == path_params, method
        assert e["widths"] == dict(sup.plan.kept)
        assert [len(e["support"][f"blocks.{b}.attn"]) for b in range(4)] == [1, 1, 1, 1]
    g = entries["global-magnitude"]
    assert abs(g["params"] - path_params) <= 0.05 * path_params
    for e in entries.values():
        small = sp.compact_copy(sup.model, sp.plan_from_kept(sup.plan, e["support"]),
                                sup.example)
        assert count_params(small) == e["params"]
        rebuilt = build_model("vit_tiny", widths=widths_of(small))
        rebuilt.load_state_dict(small.state_dict())
        assert e["finetuned"]["test_acc"] is not None
    attn = sup.model.blocks[1].attn  # 4 heads of 16 dims on a 64-wide stream
    l1 = attn.qkv.weight.abs().reshape(3, 4, -1).sum(dim=(0, 2)) + \
        attn.proj.weight.abs().reshape(64, 4, 16).sum(dim=(0, 2))
    assert entries["magnitude"]["support"]["blocks.1.attn"] == [int(l1.argmax())]
    # slimming needs BatchNorm, which a ViT has not: one sentence, exit 2
    capsys.readouterr()
    assert cli.main([str(run_dir), "--iterations", str(it), "--methods", "slimming",
                     "--reference", "self", "--no-progress"]) == 2
    assert "has no BatchNorm layer" in capsys.readouterr().err
