"""pathviz.retrain: the six initialisations, training, resume, the CLI and its bad input.

The run here is a real LeNet-5 path file written with PathWriter: weights at iterations 0, 10
and 20 and a Gamma at 20 whose support is chosen by hand, so every expected tensor is known.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pathviz import retrain, runs, tickets
from pathviz.groups import gamma_layers
from pathviz.models import build_model, count_params, widths_of
from pathviz.store import PathReader, PathWriter, Snapshot
from tests.conftest import VIT_RUN_ITERATION, make_vit_run

# the support at iteration 20, per layer: kept output groups
KEEP = {"conv1": [0, 2, 4], "conv2": [1, 3, 5, 7, 8, 13], "conv3": list(range(0, 120, 3)),
        "fc1": list(range(0, 84, 4))}
CFG = {"model": "lenet5", "dataset": "digits", "lr": 0.05, "batch_size": 64, "momentum": 0.9,
       "weight_decay": 0.0, "nesterov": False, "lr_schedule": "none", "epochs": 2,
       "val_fraction": 0.2, "split_seed": 0, "threads": 1, "optimizer": "slbi", "seed": 0}


def write_run(root: Path, name: str = "demo", cfg: dict | None = None) -> tuple[Path, dict]:
    """A finished LeNet-5 run folder; returns (folder, {iteration: state_dict as numpy})."""
    cfg = {**CFG, **(cfg or {})}
    paths = runs.run_paths(name, root)
    paths.dir.mkdir(parents=True)
    torch.manual_seed(0)
    model = build_model("lenet5", num_classes=10, in_channels=1, input_size=28)
    sgd = cfg["optimizer"] == "sgd"
    layers = [] if sgd else [s.to_json() for s in gamma_layers(model)]
    sd0 = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    rng = np.random.default_rng(1)
    states = {it: {k: (v + 0.05 * it / 10 * rng.standard_normal(v.shape)).astype(v.dtype)
                   for k, v in sd0.items()} for it in (10, 20)}
    states[0] = sd0
    weights = [{"name": k, "shape": list(v.shape), "dtype": str(v.dtype)} for k, v in sd0.items()]
    with PathWriter(paths.path, config=cfg, layers=layers, weights=weights) as w:
        for i, it in enumerate((0, 5, 10, 15, 20)):
            stats = {}
            for layer in layers:
                g = layer["groups"]
                gn = np.zeros(g, np.float32)
                if it == 20:
                    gn[KEEP[layer["name"]]] = 1.0
                stats[layer["name"]] = (gn, gn + 1, (gn > 0).astype(np.int32))
            w.append(Snapshot(it, i / 4, float(i), {
                "train_loss": 1.0, "train_acc": 0.5, "lr": 0.05, "test_acc": 0.5 + 0.1 * i,
                "test_acc_sparse": 0.4 + 0.1 * i, "params_kept": 1000.0 * (i + 1)}, stats))
            if it in states:
                gam = {}
                for layer in layers:
                    g = np.zeros(layer["shape"], np.float32)
                    if it == 20:
                        g[KEEP[layer["name"]]] = 0.3
                    gam[layer["param"]] = g
                w.append_weights(it, states[it], gam)
    paths.config.write_text(json.dumps(cfg))
    return paths.dir, states


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, dict]:
    return write_run(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def sup(run) -> retrain.Support:
    return retrain.load_support(run[0], 20)


def _kept_slices(sd: dict, keep: dict) -> dict[str, np.ndarray]:
    """What the compact LeNet's tensors must be: rows of kept outputs, columns of kept inputs."""
    c1, c2, c3, f1 = (np.array(keep[k]) for k in ("conv1", "conv2", "conv3", "fc1"))
    return {"conv1.weight": sd["conv1.weight"][c1], "conv1.bias": sd["conv1.bias"][c1],
            "conv2.weight": sd["conv2.weight"][c2][:, c1], "conv2.bias": sd["conv2.bias"][c2],
            "conv3.weight": sd["conv3.weight"][c3][:, c2], "conv3.bias": sd["conv3.bias"][c3],
            "fc1.weight": sd["fc1.weight"][f1][:, c3], "fc1.bias": sd["fc1.bias"][f1],
            "fc2.weight": sd["fc2.weight"][:, f1], "fc2.bias": sd["fc2.bias"]}


def _assert_equal_to(model: torch.nn.Module, expected: dict[str, np.ndarray]) -> None:
    got = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    assert set(got) == set(expected)
    for k, v in expected.items():
        np.testing.assert_array_equal(got[k], v, err_msg=k)


def test_rewind_is_iteration_zero_on_the_kept_groups(sup, run) -> None:
    model, kept = retrain.build_variant(sup, "rewind", seed=0)
    assert kept == KEEP
    assert widths_of(model) == [len(KEEP[k]) for k in ("conv1", "conv2", "conv3", "fc1")]
    _assert_equal_to(model, _kept_slices(run[1][0], KEEP))


def test_late_rewind_is_iteration_k_on_the_kept_groups(sup, run) -> None:
    model, _ = retrain.build_variant(sup, "rewind:10", seed=0)
    _assert_equal_to(model, _kept_slices(run[1][10], KEEP))


def test_finetune_is_w_star_at_n(sup, run) -> None:
    model, _ = retrain.build_variant(sup, "finetune", seed=0)
    _assert_equal_to(model, _kept_slices(run[1][20], KEEP))
    # and it computes what the masked full model W* computes
    full = build_model("lenet5", num_classes=10, in_channels=1, input_size=28)
    full.load_state_dict({k: torch.from_numpy(v) for k, v in run[1][20].items()})
    with torch.no_grad():
        for layer, keep in KEEP.items():
            mod = dict(full.named_modules())[layer]
            drop = torch.ones(mod.weight.shape[0], dtype=torch.bool)
            drop[keep] = False
            mod.weight[drop] = 0
            mod.bias[drop] = 0
        x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(model.eval()(x), full.eval()(x), rtol=1e-5, atol=1e-5)


def test_reinit_has_the_shapes_and_new_weights(sup) -> None:
    ticket, _ = retrain.build_variant(sup, "rewind", seed=0)
    fresh, _ = retrain.build_variant(sup, "reinit", seed=0)
    other, _ = retrain.build_variant(sup, "reinit", seed=1)
    a, b, c = ticket.state_dict(), fresh.state_dict(), other.state_dict()
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    for k in a:
        if k.endswith("weight"):
            assert not torch.equal(a[k], b[k]), k  # not the start weights
            assert not torch.equal(b[k], c[k]), k  # and the seed matters
    again, _ = retrain.build_variant(sup, "reinit", seed=0)
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in b.items())


def test_random_support_keeps_each_layers_group_count(sup, run) -> None:
    ticket, _ = retrain.build_variant(sup, "rewind", seed=0)
    supports = []
    for seed in range(3):
        model, kept = retrain.build_variant(sup, "random-support", seed=seed)
        assert widths_of(model) == widths_of(ticket)
        assert {k: len(v) for k, v in kept.items()} == {k: len(v) for k, v in KEEP.items()}
        # the chosen groups, with their iteration-0 weights
        _assert_equal_to(model, _kept_slices(run[1][0], kept))
        supports.append(kept)
    assert supports[0] != KEEP and supports[0] != supports[1]


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.6, 0.9])
def test_uniform_is_within_two_percent_of_the_target(sup, fraction) -> None:
    full = widths_of(sup.model)
    target = int(fraction * count_params(sup.model))
    widths = retrain.uniform_widths(sup.arch, full, target)
    model = build_model("lenet5", num_classes=10, in_channels=1, input_size=28, widths=widths)
    assert abs(count_params(model) - target) <= 0.02 * target
    ratios = np.array(widths) / np.array(full)
    assert ratios.max() - ratios.min() < 0.35  # one factor, up to rounding of thin layers


def test_uniform_variant_matches_the_ticket_size(sup) -> None:
    ticket, _ = retrain.build_variant(sup, "rewind", seed=0)
    model, _ = retrain.build_variant(sup, "uniform", seed=0)
    target = count_params(ticket)
    assert abs(count_params(model) - target) <= 0.02 * target
    assert widths_of(model) != widths_of(ticket)


def _cli(*args: str) -> int:
    return retrain.main([*args, "--no-progress"])


def test_two_seed_cli_writes_the_tickets_and_adds_seeds_later(tmp_path, capsys) -> None:
    run_dir, _ = write_run(tmp_path)
    assert _cli(str(run_dir), "--iteration", "20", "--init", "rewind,reinit", "--epochs", "1",
                "--seeds", "0,1") == 0
    names = [p.name for p in tickets.list_tickets(run_dir)]
    assert names == ["it20-reinit-epochs1", "it20-rewind-epochs1"]
    for name in names:
        t = tickets.read_ticket(run_dir / "tickets" / name)
        assert t["seeds"] == [0, 1] and t["epochs_run"] == 1 and t["params_full"] == 61706
        for s in (0, 1):
            seed = tickets.read_seed(run_dir / "tickets" / name / f"seed_{s}.h5")
            assert seed["complete"] and seed["epoch"].tolist() == [0, 1]
            assert 0 <= seed["metrics"]["test_acc"][-1] <= 1
            assert not (run_dir / "tickets" / name / f"seed_{s}.resume.pt").exists()
        assert tickets.ticket_state(run_dir / "tickets" / name)["state"] == "finished"
    rows = {r["init"]: r for r in tickets.summary(run_dir)}
    assert rows["rewind"]["seeds"] == 2 and rows["rewind"]["vs_controls"][0]["init"] == "reinit"
    assert "points (SE)" in rows["rewind"]["verdict"]
    out = capsys.readouterr().out
    assert "it20-rewind-epochs1" in out and "over 2 seed(s)" in out
    # the same command with one more seed trains only that seed
    before = (run_dir / "tickets" / "it20-rewind-epochs1" / "seed_0.h5").stat().st_mtime_ns
    assert _cli(str(run_dir), "--iteration", "20", "--init", "rewind", "--epochs", "1",
                "--seeds", "0,1,2") == 0
    assert (run_dir / "tickets" / "it20-rewind-epochs1" / "seed_0.h5").stat().st_mtime_ns == \
        before
    assert tickets.read_ticket(run_dir / "tickets" / "it20-rewind-epochs1")["seeds"] == [0, 1, 2]
    assert tickets.summary(run_dir)[1]["seeds"] == 3


def test_flops_budget_scales_epochs(tmp_path) -> None:
    run_dir, _ = write_run(tmp_path)
    sup_ = retrain.load_support(run_dir, 20)
    assert _cli(str(run_dir), "--iteration", "20", "--init", "reinit", "--epochs", "1",
                "--budget", "flops", "--seeds", "0") == 0
    t = tickets.read_ticket(run_dir / "tickets" / "it20-reinit-flops1")
    assert t["flops"] < t["flops_full"] == sup_.flops_full
    assert t["epochs_run"] == round(t["flops_full"] / t["flops"]) >= 2
    seed = tickets.read_seed(run_dir / "tickets" / "it20-reinit-flops1" / "seed_0.h5")
    assert seed["epoch"][-1] == t["epochs_run"]


def test_interrupted_retrain_resumes_to_the_same_numbers(tmp_path, sup) -> None:
    from pathviz.data import load_dataset, split_validation

    data = split_validation(load_dataset("digits"), 0.2, 0)
    st = retrain.Settings(epochs=2, budget="epochs", lr=0.05, lr_schedule="cosine",
                          batch_size=64, momentum=0.9, weight_decay=0.0, nesterov=False,
                          threads=1)
    torch.set_num_threads(1)
    model, _ = retrain.build_variant(sup, "rewind", 0)
    whole = retrain.retrain_seed(model, data, st, 2, seed=3)

    class StopAfter(retrain._Progress):
        def __init__(self, n: int) -> None:
            super().__init__(0, enabled=False)
            self.n = n

        def step(self, paths, **status) -> None:
            super().step(paths, **status)
            if self.done >= self.n:
                self.stop = "SIGTERM"

    sf, rf = tmp_path / "seed_3.h5", tmp_path / "seed_3.resume.pt"
    model, _ = retrain.build_variant(sup, "rewind", 0)
    retrain.retrain_seed(model, data, st, 2, seed=3, seed_file=sf, resume_file=rf,
                         progress=StopAfter(25))  # stops inside epoch 2 (18 steps per epoch)
    assert rf.exists() and not tickets.read_seed(sf)["complete"]
    assert tickets.read_seed(sf)["epoch"].tolist() == [0, 1]
    model, _ = retrain.build_variant(sup, "rewind", 0)
    retrain.retrain_seed(model, data, st, 2, seed=3, seed_file=sf, resume_file=rf)
    done = tickets.read_seed(sf)
    assert done["complete"] and not rf.exists()
    np.testing.assert_array_equal(done["metrics"]["test_acc"], [r["test_acc"] for r in whole])
    np.testing.assert_array_equal(done["metrics"]["train_loss"][1:],
                                  [r["train_loss"] for r in whole][1:])


@pytest.mark.parametrize("args, says", [
    (["--init", "prune-it"], "unknown --init 'prune-it'"),
    (["--init", "rewind:x"], "rewind:K needs a saved iteration"),
    (["--init", "rewind", "--iteration", "7"], "iteration 7 has no saved weights"),
    (["--init", "rewind:15"], "the rewind point 15 has no saved weights"),
    (["--init", "rewind", "--iteration", "99999"], "--iteration 99999 is past the end of the run"),
    (["--init", "rewind", "--seeds", "a"], "--seeds 'a'"),
    (["--init", "rewind", "--epochs", "0"], "--epochs must be >= 1"),
    (["--init", "rewind", "--device", "tpu"], "--device must be cpu, cuda or cuda:N"),
])
def test_bad_input_is_one_sentence_exit_2_nothing_written(tmp_path, capsys, args, says) -> None:
    run_dir, _ = write_run(tmp_path)
    before = sorted(p.name for p in run_dir.iterdir())
    argv = [str(run_dir), "--epochs", "1", "--iteration", "20", *args]
    assert retrain.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and err.startswith("pathviz.retrain: error:") and "\n" not in err
    assert sorted(p.name for p in run_dir.iterdir()) == before  # no tickets/ folder


def test_missing_run_and_sgd_run_are_refused(tmp_path, capsys) -> None:
    assert retrain.main([str(tmp_path / "nope"), "--iteration", "0", "--init", "rewind",
                         "--epochs", "1"]) == 2
    assert "has no path file" in capsys.readouterr().err
    run_dir, _ = write_run(tmp_path, "sgd", {"optimizer": "sgd"})
    assert retrain.main([str(run_dir), "--iteration", "20", "--init", "rewind",
                         "--epochs", "1"]) == 2
    assert "no Gamma layers" in capsys.readouterr().err
    assert not (run_dir / "tickets").exists()


def test_other_settings_in_an_existing_folder_are_refused(tmp_path, capsys) -> None:
    run_dir, _ = write_run(tmp_path)
    assert _cli(str(run_dir), "--iteration", "20", "--init", "reinit", "--epochs", "1") == 0
    assert _cli(str(run_dir), "--iteration", "20", "--init", "reinit", "--epochs", "1",
                "--lr", "0.01") == 2
    assert "other settings (lr)" in capsys.readouterr().err


def _with_stop(run_dir: Path, val: dict[int, float]) -> Path:
    """Give ``run_dir`` validation accuracies of the compact subnetwork at the given iterations
    and a validation split of 287, so that the stop rule has something to pick."""
    import h5py

    with h5py.File(run_dir / runs.PATH_FILE, "a") as f:
        its = f["snapshots/iteration"][:].tolist()
        for it, acc in val.items():
            f["metrics/val_acc_sparse"][its.index(it)] = acc
        f.attrs["data"] = json.dumps({"dataset": "digits", "n_val": 287})
    return run_dir


def test_iteration_stop_retrains_the_suggested_stop(tmp_path, capsys) -> None:
    """``--iteration stop`` is inspect's stop (10 here: as accurate as 20 and sparser, not the
    last saved iteration) and trains exactly what ``--iteration 10`` trains."""
    from pathviz import inspect

    val = {10: 0.9, 20: 0.9}
    a = _with_stop(write_run(tmp_path / "a")[0], val)
    b = _with_stop(write_run(tmp_path / "b")[0], val)
    assert inspect.summary(a)["stop"]["iteration"] == 10
    assert _cli(str(a), "--iteration", "stop", "--init", "reinit", "--epochs", "1") == 0
    assert _cli(str(b), "--iteration", "10", "--init", "reinit", "--epochs", "1") == 0
    assert [p.name for p in tickets.list_tickets(a)] == ["it10-reinit-epochs1"]
    ta, tb = (tickets.read_ticket(r / "tickets" / "it10-reinit-epochs1") for r in (a, b))
    assert ta["iteration"] == tb["iteration"] == 10 and ta["params"] == tb["params"]
    sa, sb = (tickets.read_seed(r / "tickets" / "it10-reinit-epochs1" / "seed_0.h5")
              for r in (a, b))
    for name in ("test_acc", "train_loss"):
        np.testing.assert_array_equal(sa["metrics"][name], sb["metrics"][name])


def test_iteration_stop_without_a_stop_is_one_sentence_exit_2(tmp_path, capsys) -> None:
    run_dir, _ = write_run(tmp_path)
    before = sorted(p.name for p in run_dir.iterdir())
    assert retrain.main([str(run_dir), "--iteration", "stop", "--init", "rewind",
                         "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(
        "pathviz.retrain: error: --iteration stop: the run has no suggested stop because the "
        "compact subnetwork has not been evaluated on the validation split yet")
    assert "pass an iteration with saved weights instead (e.g. --iteration 20" in err
    assert sorted(p.name for p in run_dir.iterdir()) == before  # no tickets/ folder
    assert retrain.main([str(run_dir), "--iteration", "x", "--init", "rewind",
                         "--epochs", "1"]) == 2
    assert "--iteration must be a whole number or stop, got 'x'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        retrain.build_parser().parse_args(["--help"])
    assert e.value.code == 0 and "--iteration N|stop" in capsys.readouterr().out


def test_pruning_baselines_retrain_like_tickets(tmp_path, capsys) -> None:
    from pathviz.export import load_run_model
    from pathviz.tickets import supports as sp

    run_dir, _ = write_run(tmp_path)
    write_run(tmp_path, "demo-sgd", {"optimizer": "sgd"})
    assert _cli(str(run_dir), "--iteration", "20", "--init",
                "finetune,magnitude,global-magnitude-reinit", "--epochs", "1",
                "--seeds", "0,1") == 0
    t = tickets.read_ticket(run_dir / "tickets" / "it20-magnitude-epochs1")
    assert t["kind"] == "baseline" and t["reference"] == "demo-sgd"
    assert t["source_iteration"] == 20  # the SGD run's last saved weights
    assert t["widths"] == [len(KEEP[k]) for k in ("conv1", "conv2", "conv3", "fc1")]
    g = tickets.read_ticket(run_dir / "tickets" / "it20-global-magnitude-reinit-epochs1")
    assert g["source_iteration"] is None and g["reference"] == "demo-sgd"
    # seed 0 starts from the SGD reference pruned to the magnitude support
    seed = tickets.read_seed(run_dir / "tickets" / "it20-magnitude-epochs1" / "seed_0.h5")
    sup_ = retrain.load_support(run_dir, 20)
    ref = load_run_model(run_dir.parent / "demo-sgd", 20)[0]
    plan = sp.plan_from_kept(sup_.plan, seed["support"])
    assert seed["support"] == sp.kept_of(sp.baseline_plan(
        sup_.plan, sp.score_sets(ref, sup_.plan, sup_.example, "magnitude")))
    assert count_params(sp.compact_copy(ref, plan, sup_.example)) == t["params"]
    rows = {r["init"]: r for r in tickets.summary(run_dir)}
    assert rows["magnitude"]["kind"] == "baseline" and rows["magnitude"]["reference"] == \
        "demo-sgd"
    assert rows["magnitude"]["vs_tickets"][0]["init"] == "finetune"
    assert rows["magnitude"]["verdict"].startswith("against the path's tickets of the same size")
    assert "vs_controls" in rows["finetune"] and all(
        c["init"] != "magnitude" for c in rows["finetune"]["vs_controls"])
    # --reference self prunes W at N, in its own folder
    assert _cli(str(run_dir), "--iteration", "20", "--init", "taylor", "--epochs", "1",
                "--reference", "self") == 0
    s = tickets.read_ticket(run_dir / "tickets" / "it20-taylor-epochs1-self")
    assert s["reference"] == "self" and s["source_iteration"] == 20


def test_slimming_on_lenet_and_no_sgd_sibling_are_one_sentence(tmp_path, capsys) -> None:
    run_dir, _ = write_run(tmp_path)
    assert _cli(str(run_dir), "--iteration", "20", "--init", "slimming", "--epochs", "1",
                "--reference", "self") == 2
    err = capsys.readouterr().err
    assert "lenet5 has no BatchNorm layer" in err and err.count("\n") == 1
    assert _cli(str(run_dir), "--iteration", "20", "--init", "magnitude", "--epochs", "1") == 2
    assert "no SGD sibling run" in capsys.readouterr().err
    assert not (run_dir / "tickets").exists()


def _params_kept(run_dir: Path, iteration: int) -> int:
    """The worker's ``params_kept`` of the compact subnetwork at ``iteration``."""
    with PathReader(run_dir / runs.PATH_FILE) as r:
        return int(r.metric("params_kept")[np.flatnonzero(r.iterations == iteration)[0]])


def test_a_vit_run_retrains_its_heads_and_neurons(tmp_path, capsys) -> None:
    """On a real vit_tiny run the tickets and controls are the path's size: rewind and reinit
    keep the support's heads and neurons, random-support as many of each in every block (other
    ones), uniform about as many parameters; rewind starts from the kept heads' weights at 0."""
    from pathviz.tickets import supports as sp

    run_dir, it = make_vit_run(tmp_path), VIT_RUN_ITERATION
    sup = retrain.load_support(run_dir, it)
    assert {h["root"]: len(h["remove"]) for h in sup.plan.heads} == {
        f"blocks.{b}.attn": 3 for b in range(4)}
    assert _cli(str(run_dir), "--iteration", str(it), "--init",
                "rewind,reinit,random-support,uniform", "--epochs", "1", "--seeds", "0") == 0
    kept = _params_kept(run_dir, it)
    widths = [1, 1, 1, 1, 16, 9, 6, 7]  # heads of blocks 0-3, then their MLP neurons
    for init in ("rewind", "reinit", "random-support", "uniform"):
        t = tickets.read_ticket(run_dir / "tickets" / f"it{it}-{init}-epochs1")
        if init == "uniform":
            assert abs(t["params"] - kept) <= 0.02 * kept
            continue
        assert t["params"] == kept and t["widths"] == widths, init
        assert t["kept"] == dict(sup.plan.kept) and t["kept"]["blocks.0.attn"] == 1
    assert "it51-rewind-epochs1" in capsys.readouterr().out
    # random-support: as many heads and neurons per block as the ticket, not the same ones
    ticket = sp.kept_of(sup.plan)
    _, chosen = retrain.build_variant(sup, "random-support", seed=0)
    assert {k: len(v) for k, v in chosen.items()} == {k: len(v) for k, v in ticket.items()}
    assert chosen != ticket
    # rewind: block 0's kept head with its iteration-0 q, k, v rows and projection columns
    model, _ = retrain.build_variant(sup, "rewind", seed=0)
    (h,) = ticket["blocks.0.attn"]
    w0 = sup.model_at(0).blocks[0].attn
    rows = [c * 64 + h * 16 + j for c in range(3) for j in range(16)]
    assert torch.equal(model.blocks[0].attn.qkv.weight, w0.qkv.weight[rows])
    assert torch.equal(model.blocks[0].attn.proj.weight, w0.proj.weight[:, h * 16:(h + 1) * 16])
