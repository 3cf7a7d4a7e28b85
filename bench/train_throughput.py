"""Training throughput (images/s) of SLBI against torch.optim.SGD, same model, batch and data.

    python bench/train_throughput.py [--models cifar_resnet_20,cifar_resnet_56,cifar_vgg_16]
        [--batch-size 64] [--iters 12] [--warmup 3] [--threads 2] [--device cpu] [--profile]

One training iteration is what the worker does (``pathviz.train``): zero_grad, forward,
cross-entropy, the finite-loss check, backward, optimizer step. SLBI is the worker's optimizer
(:func:`pathviz.train.make_optimizer` with the cifar presets' settings: lam 0.1, weight decay
1e-4, lr 0.1, momentum 0.9); the baseline is ``torch.optim.SGD(momentum=0.9,
weight_decay=1e-4, foreach=True)``. Both models start from the same weights and see the same
synthetic batches (random images of the dataset's shape, random labels), and their iterations
are interleaved (SGD, SLBI, SGD, ...), so a machine that slows down (shared cores) slows both.
Figures are medians over ``--iters`` iterations after ``--warmup``.

It also times the path recorder (:class:`pathviz.recorder.PathRecorder`) on the SLBI model: one
snapshot without weights (group norms of every Gamma layer, written to an HDF5 file), one with
the full weights, and what they cost per iteration at every iteration and at the preset's
cadence (cifar presets: a snapshot every 17 iterations, weights every 3910).

``--profile`` adds torch.profiler tables of one SLBI and one SGD iteration per model.
"""

from __future__ import annotations

import argparse
import copy
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from pathviz.config import PRESETS
from pathviz.models import build_model
from pathviz.numerics import pin
from pathviz.train import make_optimizer


def _shape(name: str) -> tuple[int, int, dict]:
    """(channels, size, build kwargs) of the data the model trains on."""
    if name == "lenet5":
        return 1, 28, {"in_channels": 1, "input_size": 28}
    return 3, 32, {"in_channels": 3}


def _step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor,
          y: torch.Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    if not torch.isfinite(loss):  # the worker's check: one host sync per iteration
        raise RuntimeError("diverged")
    loss.backward()
    opt.step()


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_model(name: str, batch: int, iters: int, warmup: int, device: str
                ) -> dict[str, float]:
    """Median seconds per training iteration for SGD and SLBI, and the recorder's costs."""
    c, size, kw = _shape(name)
    torch.manual_seed(0)
    base = build_model(name, num_classes=10, **kw).to(device)
    preset = PRESETS["cifar_vgg16"]  # lr 0.1, lam 0.1, weight decay 1e-4, momentum 0.9
    models = {"sgd": base, "slbi": copy.deepcopy(base)}
    opts = {"sgd": torch.optim.SGD(models["sgd"].parameters(), lr=preset.lr, momentum=0.9,
                                   weight_decay=preset.weight_decay, foreach=True),
            "slbi": make_optimizer(models["slbi"], preset.replace(model=name))}
    gen = torch.Generator().manual_seed(1)
    batches = [(torch.randn(batch, c, size, size, generator=gen).to(device),
                torch.randint(0, 10, (batch,), generator=gen).to(device)) for _ in range(4)]
    times: dict[str, list[float]] = {"sgd": [], "slbi": []}
    for i in range(warmup + iters):
        x, y = batches[i % len(batches)]
        for k in ("sgd", "slbi"):
            _sync(device)
            t0 = time.perf_counter()
            _step(models[k], opts[k], x, y)
            _sync(device)
            if i >= warmup:
                times[k].append(time.perf_counter() - t0)
    out = {k: statistics.median(v) for k, v in times.items()}
    out.update(_recorder_costs(models["slbi"], opts["slbi"], name, batches[0][0][:1]))
    return out


def _recorder_costs(model: torch.nn.Module, opt: torch.optim.Optimizer, name: str,
                    example: torch.Tensor, repeats: int = 5) -> dict[str, float]:
    """Median seconds of one snapshot without weights and of one with them."""
    from pathviz.recorder import PathRecorder

    with tempfile.TemporaryDirectory() as tmp:
        rec = PathRecorder(model, opt, Path(tmp) / "path.h5", config={"model": name},
                           iterations_per_epoch=391, example_input=example)
        rec.record(0, train_loss=1.0, weights=True)  # file layout, first flush
        plain, weights = [], []
        for i in range(1, 1 + repeats):
            t0 = time.perf_counter()
            rec.record(i, train_loss=1.0)
            rec.flush()
            plain.append(time.perf_counter() - t0)
        for i in range(1 + repeats, 1 + 2 * repeats):
            t0 = time.perf_counter()
            rec.record(i, train_loss=1.0, weights=True)
            rec.flush()
            weights.append(time.perf_counter() - t0)
        rec.close()
    return {"snap": statistics.median(plain), "snap_w": statistics.median(weights)}


def profile_model(name: str, batch: int, device: str) -> None:
    """torch.profiler tables of one SLBI and one SGD iteration (after two warm-up ones)."""
    from torch.profiler import ProfilerActivity, profile

    c, size, kw = _shape(name)
    torch.manual_seed(0)
    preset = PRESETS["cifar_vgg16"]
    for k in ("sgd", "slbi"):
        model = build_model(name, num_classes=10, **kw).to(device)
        opt = (torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4,
                               foreach=True) if k == "sgd"
               else make_optimizer(model, preset.replace(model=name)))
        x = torch.randn(batch, c, size, size, device=device)
        y = torch.randint(0, 10, (batch,), device=device)
        for _ in range(2):
            _step(model, opt, x, y)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            _step(model, opt, x, y)
        print(f"\n--- {name}, {k}: top 12 by self CPU time ---")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def main() -> None:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="cifar_resnet_20,cifar_resnet_56,cifar_vgg_16")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--iters", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    pin("avx2", args.threads)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · {platform.node()} · "
          f"{platform.machine()} · torch {torch.__version__} · {args.threads} threads · "
          f"device {args.device} · batch {args.batch_size} · median of {args.iters} "
          f"interleaved iterations")
    print(f"{'model':16} {'SGD img/s':>10} {'SLBI img/s':>11} {'SLBI/SGD':>9} "
          f"{'snap ms':>8} {'+weights ms':>12} {'snap/iter':>10} {'@17 its':>8}")
    for name in models:
        r = bench_model(name, args.batch_size, args.iters, args.warmup, args.device)
        b = args.batch_size
        print(f"{name:16} {b / r['sgd']:10.1f} {b / r['slbi']:11.1f} "
              f"{r['sgd'] / r['slbi']:8.3f}x {r['snap'] * 1e3:8.1f} {r['snap_w'] * 1e3:12.1f} "
              f"{r['snap'] / r['slbi']:9.1%} {r['snap'] / 17 / r['slbi']:7.2%}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of this process: {peak:.0f} MiB")
    print("snap: one snapshot without weights (group norms, HDF5 append, flush); snap/iter: "
          "its cost relative to one SLBI iteration when taken every iteration; @17 its: at "
          "the cifar presets' cadence (snapshot_every=17)")
    if args.profile:
        for name in models:
            profile_model(name, args.batch_size, args.device)


if __name__ == "__main__":
    main()
