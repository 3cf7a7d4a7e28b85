"""Check the ``mnist_lenet`` preset's story without MNIST: sklearn's digits written as MNIST IDX
files, tiled to MNIST's size, trained with the preset as committed, read with pathviz.inspect.

    python bench/mnist_recipe.py --seeds 0,1,2 [--scale 1.0] [--set epochs=2] [--keep DIR]

The images are pathviz's digits (8x8, upsampled to 28x28 as ``--dataset digits`` serves them)
in torchvision's layout (``ROOT/MNIST/raw/*-idx3-ubyte``, uncompressed). The training file holds
``60000 * scale`` images: the digits' 1437 training images split as the preset's
``--val-fraction``/``--split-seed`` split MNIST's training file, so that the positions the worker
will hold out for validation are filled, class by class and in turn (tiled), with the digits
the demo holds out (287), and the other positions with the digits it trains on (1150). So one
epoch has full MNIST's iterations (``48000 * scale / batch_size``) and validation never sees a
training image. The test file is the digits' 360 test images, once.

Why two stops. Validation holds ``12000 * scale`` images but only 287 distinct ones, so its
accuracy moves in steps of 1/287 and is as noisy as 287 images make it, while the worker's
standard error (``pathviz.analysis.stop_of``, from the run's ``n_val``) is that of 12000
independent images: about 0.1 points instead of 1. With it the 1-SE rule ("the sparsest saved
iteration within 1 SE of the best") becomes "the best iteration", which, on a noisy curve that
keeps creeping up, lies near the end of the run. That is an artefact of the copies, not of the
preset, so each seed is reported twice: the stop as the worker computes it (``worker SE``), and
the same rule, through the same ``stop_of``, with the standard error of the distinct validation
images (``distinct SE``: the run's ``n_val`` read as 287). On real MNIST the 12000 validation
images are distinct, so the SE is small there too, but so is the noise it measures.

For each seed it prints ``python -m pathviz.inspect``'s summary of the run, then one line per
stop: the suggested stop (iteration and fraction of the run), params kept, validation accuracy
± SE of the compact subnetwork (W*) at the stop, test accuracy of W* at the stop and of W at the
end, the first iteration where W* is within 1 point of its best validation accuracy (and as a
fraction of the run), each Gamma layer's selected % at the end and first entry, seconds of
training (wall clock of the worker, start-up included) and file size.
This is digits written as IDX, not MNIST: the figures check the recipe's timing on MNIST-sized
epochs, not MNIST's accuracies.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pathviz.analysis import stop_of
from pathviz.config import PRESETS, RunConfig
from pathviz.store import PathReader

PRESET = "mnist_lenet"
MNIST_TRAIN = 60000


def _value(key: str, text: str):
    kind = RunConfig.__dataclass_fields__[key].type
    if "int" in str(kind) and "." not in text:
        return int(text)
    if "bool" in str(kind):
        return text.lower() == "true"
    try:
        return float(text)
    except ValueError:
        return text


def _idx(path: Path, a: np.ndarray) -> None:
    a = np.ascontiguousarray(a, dtype=np.uint8)
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 0x08, a.ndim]))
        f.write(np.array(a.shape, dtype=">i4").tobytes())
        f.write(a.tobytes())


def write_digits_idx(root: Path, n_train: int, cfg: RunConfig) -> dict[str, int]:
    """Write the four IDX files under ``root/MNIST/raw``; returns the image counts."""
    import torch

    from pathviz.data import DataBundle, load_dataset, split_validation

    d = load_dataset("digits")
    # the demo's own split of the digits: what it trains on and what it holds out
    demo = split_validation(d, cfg.val_fraction, cfg.split_seed)
    # labels of the big file: the classes in the digits' proportions, in turn
    y = d.train_y[torch.arange(n_train) % len(d.train_y)]
    # the positions the worker will hold out: split_validation depends on the labels only
    big = split_validation(DataBundle(d.info, torch.arange(n_train), y, d.test_x, d.test_y),
                           cfg.val_fraction, cfg.split_seed)
    x = torch.empty((n_train, 28, 28), dtype=torch.uint8)
    for pos, src_x, src_y in ((big.train_x, demo.train_x, demo.train_y),
                              (big.val_x, demo.val_x, demo.val_y)):
        for c in range(10):
            at = pos[y[pos] == c]
            pool = src_x[src_y == c][:, 0]
            x[at] = pool[torch.arange(len(at)) % len(pool)]  # tiled: copy k is image k mod n_c
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    _idx(raw / "train-images-idx3-ubyte", x.numpy())
    _idx(raw / "train-labels-idx1-ubyte", y.numpy())
    _idx(raw / "t10k-images-idx3-ubyte", d.test_x.numpy()[:, 0])
    _idx(raw / "t10k-labels-idx1-ubyte", d.test_y.numpy())
    return {"train": n_train, "train_distinct": len(demo.train_y), "val": len(big.val_y),
            "val_distinct": len(demo.val_y), "test": len(d.test_y)}


class _DistinctVal:
    """A PathReader seen with ``data_info["n_val"]`` replaced, so that ``stop_of`` applies its
    rule, unchanged, with the standard error of ``n_val`` images (the distinct ones)."""

    def __init__(self, reader: PathReader, n_val: int) -> None:
        self._reader, self._n_val = reader, n_val

    def __getattr__(self, name: str):
        return getattr(self._reader, name)

    @property
    def data_info(self) -> dict:
        return {**self._reader.data_info, "n_val": self._n_val}


def run_one(root: Path, out: Path, overrides: dict, seed: int, val_distinct: int) -> dict:
    args = [sys.executable, "-m", "pathviz.train", "--preset", PRESET, "--dataset", "mnist",
            "--data-root", str(root), "--out", str(out), "--seed", str(seed), "--no-progress"]
    for k, v in overrides.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    print("$", " ".join(args[1:]), flush=True)
    t0 = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    print("$ python -m pathviz.inspect", out, flush=True)
    print(subprocess.run([sys.executable, "-m", "pathviz.inspect", str(out)], check=True,
                         capture_output=True, text=True).stdout, flush=True)
    with PathReader(out / "path.h5") as r:
        d = stop_of(r)  # as the worker, inspect and the app compute it
        dd = stop_of(_DistinctVal(r, val_distinct))  # SE of the distinct validation images
        n = int(r.iterations[-1])
        snap = r.snapshot(r.n_snapshots - 1)
        sel = {layer["name"]: float((snap[layer["name"]]["gamma_norm"] > 0).mean())
               for layer in r.layers}
        entries = {layer["name"]: r.entry_times(layer["name"]) for layer in r.layers}
        first = {k: int(r.iterations[e[e >= 0].min()]) if (e >= 0).any() else -1
                 for k, e in entries.items()}
        test_w = float(r.metric("test_acc")[-1])
        # the first iteration where W* is within 1 point of its best validation accuracy
        v, its = r.metric("val_acc_sparse"), r.iterations
        ok = np.isfinite(v)
        near = int(its[ok][np.argmax(v[ok] >= np.nanmax(v) - 0.01)]) if ok.any() else -1
    size = (out / "path.h5").stat().st_size
    s = d.stop
    return {"seed": seed, "seconds": seconds, "iterations": n, "size_mb": size / 1e6,
            "stop": None if s is None else s.to_json(), "reason": d.reason,
            "stop_distinct": None if dd.stop is None else dd.stop.to_json(),
            "reason_distinct": dd.reason, "selected": sel,
            "first_entry": first, "final_test_acc": test_w, "within_1pt": near}


def main() -> None:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="0")
    p.add_argument("--scale", type=float, default=1.0,
                   help="training images as a fraction of MNIST's 60000 (default 1)")
    p.add_argument("--set", default="", help="k=v,k=v overrides of the preset (exploration)")
    p.add_argument("--keep", help="folder for the IDX files and runs (default: a temporary one)")
    a = p.parse_args()
    over = dict((kv.split("=")[0], _value(*kv.split("="))) for kv in a.set.split(",") if kv)
    cfg = PRESETS[PRESET].replace(**over)
    print(f"{PRESET}: lr={cfg.lr} nu={cfg.nu} lam={cfg.lam} wd={cfg.weight_decay} "
          f"first_layer_dense={cfg.first_layer_dense} batch={cfg.batch_size} "
          f"epochs={cfg.epochs} snapshot/eval/weights every {cfg.snapshot_every}/"
          f"{cfg.eval_every}/{cfg.weights_every}, on change {cfg.weights_on_change}"
          f"{'; overrides ' + str(over) if over else ''}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(a.keep or tmp)
        counts = write_digits_idx(base / "data", int(round(MNIST_TRAIN * a.scale)), cfg)
        print(f"digits as IDX in {base / 'data'}: {counts}", flush=True)
        for seed in (int(x) for x in a.seeds.split(",")):
            row = run_one(base / "data", base / f"run-s{seed}", over, seed,
                          counts["val_distinct"])
            n = row["iterations"]
            sel = " ".join(f"{100 * v:.0f}" for v in row["selected"].values())
            ent = " ".join(str(v) for v in row["first_entry"].values())
            print(f"seed {seed}: {n} iterations, {row['seconds']:.0f}s, {row['size_mb']:.1f}MB, "
                  f"W* within 1 pt of its best at {row['within_1pt']} "
                  f"({row['within_1pt'] / n:.2f}), final W test {100 * row['final_test_acc']:.1f}"
                  f" | selected% ({'/'.join(row['selected'])}) {sel} | first entry {ent}",
                  flush=True)
            for label, s, why in (("worker SE  ", row["stop"], row["reason"]),
                                  ("distinct SE", row["stop_distinct"],
                                   row["reason_distinct"])):
                if s is None:
                    print(f"  {label}: no stop ({why})", flush=True)
                    continue
                print(f"  {label}: n_val {s['n_val']}, stop {s['iteration']} "
                      f"({s['iteration'] / n:.2f}), params {s['params_kept']}/"
                      f"{s['params_total']} ({100 * s['params_kept'] / s['params_total']:.1f}%), "
                      f"val(compact) {100 * s['val_acc']:.1f}±{100 * s['val_se']:.1f} "
                      f"(best {100 * s['best_val_acc']:.1f} at {s['best_iteration']}), "
                      f"test(compact) {100 * s['test_acc_sparse']:.1f}", flush=True)

if __name__ == "__main__":
    main()
