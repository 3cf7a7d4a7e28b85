"""Path file costs, measured in one run:

1. demo training time with a snapshot every iteration, against snapshots off (only the first and
   last), both evaluating only at the ends, so the difference is the snapshot work alone;
2. PathReader: one snapshot across all layers, and one layer's whole path, on a synthetic path of
   5000 snapshots shaped like cifar_vgg_16 (13 conv layers, 4224 filters);
3. file size per snapshot.

    python bench/path_io.py [--repeats 5] [--snapshots 5000]

Wall-clock time on a shared 2-core machine varies by +-15% between identical runs, more than the
5% being measured, so the bench also prints the time spent inside the snapshot code as a fraction
of the same run's training loop, which that noise scales alike.

Targets (issue 3): snapshot overhead <= 5% of demo training; one-snapshot read <= 20 ms;
one-layer read <= 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from pathviz import runs
from pathviz.store import PathReader, PathWriter, Snapshot


def demo_training_seconds(out: Path, snapshots: bool) -> tuple[float, float, float]:
    """(loop seconds, seconds in snapshot code, seconds saving resume state) of one demo run."""
    from pathviz.train import Trainer, build_parser, prepare

    epochs = 40  # of the demo's 140: 720 iterations of 18 per epoch
    total = epochs * 18
    cadence = ["--snapshot-every", "1", "--weights-every", "30"] if snapshots else \
        ["--snapshot-every", str(total), "--weights-every", str(total)]
    args = build_parser().parse_args(["--preset", "demo", "--epochs", str(epochs), "--out",
                                      str(out), "--no-progress", "--eval-every", str(total),
                                      "--weights-on-change", "0", *cadence])
    trainer = Trainer(prepare(args))
    assert trainer.run() == 0
    loop = float(json.loads((out / runs.STATUS_FILE).read_text())["elapsed"])
    return loop, trainer.snapshot_seconds, trainer.resume_seconds


def vgg_layers() -> list[dict]:
    from pathviz.groups import gamma_layers
    from pathviz.models import build_model

    return [s.to_json() for s in gamma_layers(build_model("cifar_vgg_16"))]


def synthetic_vgg_path(path: Path, n: int) -> list[dict]:
    layers = vgg_layers()
    rng = np.random.default_rng(0)
    entry = {layer["name"]: rng.integers(0, n, layer["groups"]) for layer in layers}
    with PathWriter(path, config={"model": "cifar_vgg_16"}, layers=layers, flush_interval=0) as w:
        for i in range(n):
            stats = {}
            for layer in layers:
                g = layer["groups"]
                inside = entry[layer["name"]] <= i
                gn = np.where(inside, rng.random(g, dtype=np.float32), 0).astype(np.float32)
                stats[layer["name"]] = (gn, rng.random(g, dtype=np.float32),
                                        (inside * 9).astype(np.int32))
            w.append(Snapshot(i * 20, i / 20, i * 0.1, {"train_loss": 1.0, "lr": 0.1,
                                                        "sparsity": 0.5}, stats))
    return layers


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5, help="demo runs per setting")
    ap.add_argument("--snapshots", type=int, default=5000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        on, off, frac, resume = [], [], [], []
        for k in range(args.repeats):  # alternate, so drift hits both alike
            loop, snap, res = demo_training_seconds(tmp / f"on{k}", snapshots=True)
            on.append(loop)
            frac.append(snap / loop)
            resume.append(res / loop)
            off.append(demo_training_seconds(tmp / f"off{k}", snapshots=False)[0])
        m_on, m_off = statistics.median(on), statistics.median(off)
        print(f"demo training, median of {args.repeats}: snapshots every iteration {m_on:.2f}s, "
              f"off {m_off:.2f}s -> ratio {m_on / m_off:.3f} "
              f"(wall-clock, across runs: {min(on):.2f}-{max(on):.2f}s vs "
              f"{min(off):.2f}-{max(off):.2f}s)")
        print(f"time inside snapshot code, within the same runs: median "
              f"{100 * statistics.median(frac):.2f}% of the training loop (target <= 5%); "
              f"resume-state saves every 30 iterations: {100 * statistics.median(resume):.2f}%")
        demo_file = tmp / "on0" / runs.PATH_FILE
        with PathReader(demo_file) as r:
            n = r.n_snapshots
        print(f"demo path file: {os.path.getsize(demo_file) / n / 1024:.1f} KiB per snapshot "
              f"({n} snapshots, weights every 30 included)")

        path = tmp / "vgg.h5"
        t0 = time.perf_counter()
        layers = synthetic_vgg_path(path, args.snapshots)
        print(f"synthetic cifar_vgg_16 path: {args.snapshots} snapshots x "
              f"{sum(x['groups'] for x in layers)} groups written in "
              f"{time.perf_counter() - t0:.1f}s; "
              f"{os.path.getsize(path) / args.snapshots / 1024:.1f} KiB per snapshot")
        rng = np.random.default_rng(1)
        with PathReader(path) as r:
            idx = iter(rng.integers(0, args.snapshots, 10_000).tolist())
            snap = median_ms(lambda: r.snapshot(next(idx)), 50)
            per_layer = [median_ms(lambda name=layer["name"]: r.layer_path(name), 5)
                         for layer in layers]
        cold = median_ms(lambda: PathReader(path).snapshot(123), 20)
        print(f"one snapshot across all {len(layers)} layers: median {snap:.2f} ms "
              f"(target <= 20 ms); with open+close per read {cold:.2f} ms")
        print(f"one layer's whole path: median {statistics.median(per_layer):.2f} ms, "
              f"largest layer {max(per_layer):.2f} ms (target <= 50 ms)")


if __name__ == "__main__":
    main()
