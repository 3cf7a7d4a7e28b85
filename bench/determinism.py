"""What pinning the worker's numerics costs: training speed of the demo with the thread count
fixed by the run config (``--threads``) and deterministic algorithms, against torch's default
(all cores, non-deterministic allowed), interleaved in one run.

    python bench/determinism.py [--iterations 200] [--rounds 3]

Prints iterations per second for each setting and the ratio to the default. The worker pins
``threads`` (default 1) so a path is bit-identical on every machine, whatever its core count.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F

from pathviz.config import PRESETS
from pathviz.data import BatchLoader, load_dataset, split_validation
from pathviz.evaluate import pin_threads
from pathviz.models import build_model
from pathviz.train import make_optimizer

DEFAULT_THREADS = torch.get_num_threads()


def steps_per_second(threads: int | None, deterministic: bool, iterations: int) -> float:
    if threads is None:
        torch.set_num_threads(DEFAULT_THREADS)
        torch.use_deterministic_algorithms(False)
    else:
        pin_threads(threads, deterministic)
    cfg = PRESETS["demo"]
    torch.manual_seed(0)
    data = split_validation(load_dataset("digits"), cfg.val_fraction, cfg.split_seed)
    model = build_model("lenet5", num_classes=10, in_channels=1, input_size=28)
    opt = make_optimizer(model, cfg)
    loader = BatchLoader(data.train_x, data.train_y, data.info, cfg.batch_size, shuffle=True,
                         augment=False)
    done, epoch = 0, 0
    t0 = time.perf_counter()
    while done < iterations:
        for x, y in loader.epoch(epoch):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()
            done += 1
            if done == iterations:
                break
        epoch += 1
    return iterations / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    settings = {f"default ({DEFAULT_THREADS} threads)": (None, False),
                "pinned 1 thread, deterministic": (1, True),
                "pinned 2 threads, deterministic": (2, True),
                "pinned 1 thread, not deterministic": (1, False)}
    rates: dict[str, list[float]] = {k: [] for k in settings}
    steps_per_second(1, True, 20)  # warm-up: numba compilation, allocator
    for _ in range(a.rounds):
        for name, (threads, det) in settings.items():
            rates[name].append(steps_per_second(threads, det, a.iterations))
    base = max(rates[next(iter(settings))])
    print(f"{time.strftime('%Y-%m-%d')} · {os.cpu_count()} CPU cores · demo (LeNet-5, digits, "
          f"batch 64), {a.iterations} iterations, best of {a.rounds} interleaved rounds")
    for name, r in rates.items():
        print(f"{name:<36} {max(r):7.1f} it/s   x{max(r) / base:.2f} of default")


if __name__ == "__main__":
    main()
