"""Shared helpers: make run folders with synthetic (but schema-exact) paths."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pathviz import numerics

# every test process runs at the default pinned level, set before torch computes anything, so
# tests that train or evaluate in this process see the numbers the worker would
numerics.apply_env(numerics.DEFAULT_LEVEL)

from pathviz import runs  # noqa: E402
from pathviz.store import PathWriter, Snapshot  # noqa: E402

GROUPS = {"conv1": 6, "conv2": 16, "fc1": 40}


def make_run(root: Path, name: str, n: int = 60, state: str = "finished", nu: float = 50.0,
             weights_every: int = 10, groups: dict[str, int] = GROUPS,
             uneven_end: bool = False) -> runs.RunPaths:
    """A run folder whose path has ``n`` snapshots; group g of a layer enters at snapshot ~2g."""
    paths = runs.run_paths(name, root)
    paths.dir.mkdir(parents=True)
    layers = []
    for lname, g in groups.items():
        kind = "conv" if lname.startswith("conv") else "linear"
        shape = [g, 1, 3, 3] if kind == "conv" else [g, 8]
        layers.append({"name": lname, "param": f"{lname}.weight", "kind": kind, "shape": shape,
                       "penalty": "group", "groups": g})
    weights = [{"name": f"{layer['name']}.weight", "shape": layer["shape"], "dtype": "float32"}
               for layer in layers]
    cfg = {"model": "lenet5", "dataset": "digits", "nu": nu, "lam": 0.45}
    rng = np.random.default_rng(0)
    total = n - 1
    model = {"name": "lenet5", "num_classes": 10, "kwargs": {}, "params_total": 4000,
             "flops_total": 90000, "input_shape": [1, 28, 28]}
    data = {"dataset": "digits", "n_train": 1150, "n_val": 287, "n_test": 360}
    with PathWriter(paths.path, config=cfg, layers=layers, weights=weights, model=model,
                    data=data) as w:
        for i in range(n):
            stats = {}
            kept = 0.0
            for layer in layers:
                g = layer["groups"]
                entered = np.arange(g) * 2 * n // (3 * g) < i
                gn = np.where(entered, 0.1 + 0.05 * i + np.arange(g) * 0.01, 0).astype(np.float32)
                stats[layer["name"]] = (gn, (gn + 0.5).astype(np.float32),
                                        (entered * 9).astype(np.int32))
                kept += entered.sum() * int(np.prod(layer["shape"][1:]))
            frac = np.mean(np.concatenate([s[0] > 0 for s in stats.values()]))
            acc = min(0.5 + 0.02 * i, 0.97)
            iteration = i * 5 - (2 if uneven_end and i == total else 0)
            w.append(Snapshot(iteration, i / 10, i * 0.1, {
                "train_loss": 1 / (i + 1), "train_acc": acc, "lr": 0.05, "sparsity": 1 - frac,
                **({"test_acc": acc - 0.01, "test_loss": 1 / (i + 2), "val_acc": acc,
                    "val_acc_sparse": acc - 0.02, "test_acc_sparse": acc - 0.03,
                    "params_kept": kept, "flops_kept": 20 * kept}
                   if i % 2 == 0 else {})}, stats))
            if i % weights_every == 0 or i == total:
                w.append_weights(iteration, {f"{layer['name']}.weight": rng.standard_normal(
                    layer["shape"]).astype(np.float32) for layer in layers},
                    {layer["param"]: np.zeros(layer["shape"], np.float32) for layer in layers})
    paths.config.write_text(json.dumps(cfg))
    runs.write_status(paths, state=state, reason="", snapshots=n, iteration=total * 5,
                      total_iterations=total * 5, config=cfg, heartbeat=0)
    return paths


def record_lenet_run(d: Path, weights_every: int, epochs: int = 2,
                     stop_at: int | None = None) -> int:
    """Train a real LeNet-5 on digits with SLBI (seed 0, lam 0.3, lr 0.05, nu 5) for ``epochs``
    epochs, or until iteration ``stop_at``, into ``d/path.h5``, weights every
    ``weights_every``: a run an export can rebuild. Returns the last iteration. torch is
    imported here: most tests never need it."""
    import torch

    from pathviz.data import BatchLoader, load_dataset
    from pathviz.groups import slbi_param_groups
    from pathviz.models import build_model
    from pathviz.optim import SLBI
    from pathviz.recorder import PathRecorder

    torch.manual_seed(0)
    data = load_dataset("digits")
    model = build_model("lenet5")
    opt = SLBI(slbi_param_groups(model, lam=0.3), lr=0.05, nu=5.0)
    loader = BatchLoader(data.train_x, data.train_y, data.info, 64, shuffle=True, augment=False)
    cfg = {"model": "lenet5", "dataset": "digits", "data_root": None}
    it = 0
    with PathRecorder(model, opt, d / runs.PATH_FILE, config=cfg, weights_every=weights_every,
                      iterations_per_epoch=len(loader), dataset="digits") as rec:
        rec.record(0)
        for epoch in range(epochs):
            for x, y in loader.epoch(epoch):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
                it += 1
                rec.record(it)
                if it == stop_at:
                    return it
    return it


def path_contents(run: Path) -> dict[str, np.ndarray]:
    """Every dataset of a run's path file except the wall-clock times: what two runs that
    should be the same path must agree on, bit for bit."""
    import h5py

    out: dict[str, np.ndarray] = {}
    with h5py.File(run / runs.PATH_FILE, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()])
                     if isinstance(obj, h5py.Dataset) and name != "snapshots/time" else None)
    return out


def plain(markdown: str) -> str:
    """What a reader sees of markdown that :func:`pathviz.ui.text.inert` escaped: backslash
    escapes and word joiners removed (the emphasis markers of the app's own markup stay)."""
    import re

    return re.sub(r"\\(.)", r"\1", markdown).replace("\u2060", "")


def line_of(at) -> dict | None:
    """The position the server's picker shows, as it tells the page to write its line
    ("Iteration N · epoch E · snapshot i of n · ..."; the page's ``lineText`` writes it, tested
    in tests/js/position.test.js): ``{"it", "epoch", "index", "n", "weights"}``, or None where no
    picker is drawn."""
    import json

    for e in at.get("bidi_component"):
        if e.proto.component_name == "pathviz_line":
            return json.loads(e.proto.json)["position"]
    return None


#: the saved iteration of :func:`make_vit_run` whose support removes heads in every block (1,
#: 0, 0, 0 heads in the support: blocks 1-3 keep their strongest) and MLP neurons in every
#: block (16, 9, 6, 7 of 128 in the support)
VIT_RUN_ITERATION = 51


def make_vit_run(root: Path, name: str = "vit") -> Path:
    """A real vit_tiny/digits run of 54 iterations (3 epochs) trained by the worker, with a
    lambda low enough that heads and MLP neurons enter within it and weights saved at every
    change of the support: the ViT run that the tickets, baselines and app tests retrain,
    prune and show. The worker pins its numerics, so its supports are the same everywhere."""
    import subprocess
    import sys

    out = root / name
    subprocess.run([sys.executable, "-m", "pathviz.train", "--model", "vit_tiny", "--dataset",
                    "digits", "--epochs", "3", "--lr", "0.1", "--nu", "10", "--lam", "0.0295",
                    "--mlp-lam", "0.027", "--group-scale", "sqrt", "--first-layer-dense",
                    "--weights-every", "6", "--eval-every", "6", "--weights-on-change", "1",
                    "--out", str(out), "--no-progress"], check=True, capture_output=True,
                   timeout=600)
    return out


@pytest.fixture(scope="session")
def exact_figures() -> Callable[[str], bool]:
    """Whether this machine computes the golden figures bit for bit, and a say-why when not.

    The figures that tests and docs print as exact were recorded on a CPU whose op digests
    (``python -m pathviz.digests``) are kept in ``pathviz/digests/references``. They
    hold here when this machine's digests equal a reference's on every op the project runs
    (one that holds them all). Where no reference does, a test calls ``exact_figures(what)``:
    it warns, naming the ops that differ, and returns False; the test then checks the path's
    properties only. Never silent: the warning is in pytest's summary."""
    import subprocess
    import sys
    import warnings

    from pathviz import digests

    p = subprocess.run([sys.executable, "-m", "pathviz.digests"],
                       capture_output=True, text=True, timeout=600)
    here = json.loads(p.stdout)
    why = "no reference file"
    for path in digests.reference_files("avx2"):
        ops, _, n = digests.compare(here, json.loads(path.read_text()))
        if n == len(here["digests"]) and not ops:
            why = ""
            break
        if n == len(here["digests"]):
            why = f"{path.name} differs in {', '.join(ops)}"

    def check(what: str) -> bool:
        if why:
            warnings.warn(f"{what}: not comparing the exact golden figures, because this CPU's "
                          f"kernels round differently from the references' ({why}); checking "
                          f"the path's properties instead", stacklevel=2)
        return not why

    return check
