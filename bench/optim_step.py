"""Time one SLBI.step against one torch.optim.SGD(momentum=0.9, foreach=True).step.

Prints ratios measured in this one run (medians over repeats), on the parameters of
cifar_resnet_20 and cifar_vgg_16 with random gradients, on the CPU (or --device):

    python bench/optim_step.py [--repeats 30] [--device cpu]

Target (issue 2): SLBI fast path <= 2.0x SGD foreach on cifar_vgg_16.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from pathviz.groups import slbi_param_groups
from pathviz.models import build_model
from pathviz.optim import SLBI


def _median_step(opt: torch.optim.Optimizer, repeats: int, device: str) -> float:
    for _ in range(3):  # warm-up: state allocation, numba compile/cache load
        opt.step()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench(name: str, repeats: int, device: str) -> dict[str, float]:
    """Median step seconds for SGD foreach and SLBI fast/foreach/single on one model's params."""
    torch.manual_seed(0)
    model = build_model(name).to(device)
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-2
    out = {}
    out["sgd"] = _median_step(torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9,
                                              foreach=True), repeats, device)
    for impl in ("auto", "foreach", "single"):
        groups = slbi_param_groups(model, lam=0.1)
        out[impl] = _median_step(SLBI(groups, lr=0.01, impl=impl), repeats, device)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    print(f"{'model':16} {'SGD ms':>8} {'fast ms':>8} {'fast/SGD':>9} {'foreach/SGD':>12} "
          f"{'single/SGD':>11} {'single/fast':>12}")
    for name in ("cifar_resnet_20", "cifar_vgg_16"):
        r = bench(name, args.repeats, args.device)
        print(f"{name:16} {r['sgd'] * 1e3:8.2f} {r['auto'] * 1e3:8.2f} "
              f"{r['auto'] / r['sgd']:9.2f}x "
              f"{r['foreach'] / r['sgd']:11.2f}x {r['single'] / r['sgd']:10.2f}x "
              f"{r['single'] / r['auto']:11.2f}x")


if __name__ == "__main__":
    main()
