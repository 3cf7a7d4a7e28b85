"""What pinning the numerics costs: training speed of the demo (LeNet-5 on digits) and the
vit_demo (vit_tiny on digits), the SLBI step included, at each ``cpu_isa`` level against
``native`` (the machine's own kernels), and the thread pin against torch's default thread
count, interleaved in one run.

    python bench/determinism.py [--iterations 300] [--rounds 3] [--presets demo,vit_demo]
                                [--clock wall|cpu] [--breakdown]

Each setting runs in a fresh process, since the libraries fix their kernels at their first
computation; the rounds interleave the settings so a busy machine slows them alike. Prints
iterations per second for each (best of the rounds) and the ratio to ``native`` at the same
thread count. The worker's default is ``avx2`` with 1 thread.

``--clock cpu`` times by the process's CPU time instead of the wall clock: on a machine shared
with other work it leaves out the time the process waited for a core (with more than one thread
it also counts threads that spin, so read it for the 1-thread rows). ``--breakdown`` adds, at 1
thread, ``native`` with MKL's ``COMPATIBLE`` branch alone and ``avx2`` without it: which of
the pin's settings costs the time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from pathviz import numerics

CHILD = "--child"


#: the --breakdown settings: a label, the level the child pins, and variables set before it
BREAKDOWN = {
    "native+MKL": ("native", {"MKL_CBWR": "COMPATIBLE"}),
    "avx2-MKL": ("native", {k: v for k, v in numerics.LEVELS["avx2"].items()
                            if k != "MKL_CBWR"}),
}


def child(preset: str, level: str, threads: int | None, iterations: int, clock: str) -> None:
    """Time ``iterations`` training steps of ``preset`` in this process, pinned to ``level``;
    print it/s."""
    numerics.pin(level, threads)
    import torch
    import torch.nn.functional as F

    from pathviz.config import PRESETS
    from pathviz.data import BatchLoader, load_dataset, split_validation
    from pathviz.models import build_model
    from pathviz.train import make_optimizer

    cfg = PRESETS[preset]
    torch.manual_seed(0)
    data = split_validation(load_dataset(cfg.dataset), cfg.val_fraction, cfg.split_seed)
    extra = {"input_size": data.info.image_size} if cfg.model == "lenet5" else {}
    model = build_model(cfg.model, num_classes=data.info.num_classes,
                        in_channels=data.info.in_channels, **extra)
    opt = make_optimizer(model, cfg)
    loader = BatchLoader(data.train_x, data.train_y, data.info, cfg.batch_size, shuffle=True,
                         augment=False)

    def steps(n: int) -> None:
        done, epoch = 0, 0
        while done < n:
            for x, y in loader.epoch(epoch):
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(x), y).backward()
                opt.step()
                done += 1
                if done == n:
                    return
            epoch += 1

    now = time.process_time if clock == "cpu" else time.perf_counter
    steps(30)  # warm-up: numba compilation, allocator, oneDNN primitives
    t0 = now()
    steps(iterations)
    print(f"{iterations / (now() - t0):.3f} "
          f"{torch.backends.cpu.get_cpu_capability()}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == CHILD:
        preset, level, threads, n = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
        level = BREAKDOWN[level][0] if level in BREAKDOWN else level
        return child(preset, level, None if threads == "default" else int(threads), n,
                     sys.argv[6])
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--presets", default="demo,vit_demo", help="comma-separated presets")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall clock, or the process's CPU time (for a shared machine)")
    p.add_argument("--breakdown", action="store_true",
                   help="also native with MKL's COMPATIBLE branch alone, and avx2 without it")
    a = p.parse_args()
    levels = [lv for lv in ("native", "avx2", "avx512", "baseline")
              if numerics.machine_problem(lv) is None]
    settings = [(lv, "1") for lv in levels] + [("native", "default"), ("avx2", "default")]
    if a.breakdown and "avx2" in levels:
        settings += [(name, "1") for name in BREAKDOWN]
    env = {k: v for k, v in os.environ.items()
           if k not in numerics.LEVELS["avx2"] and not k.endswith("_NUM_THREADS")}
    presets = a.presets.split(",")
    keys = [(pr, lv, th) for pr in presets for lv, th in settings]
    rates: dict[tuple[str, str, str], list[float]] = {k: [] for k in keys}
    caps: dict[tuple[str, str, str], str] = {}
    for _ in range(a.rounds):
        for key in keys:
            extra = BREAKDOWN[key[1]][1] if key[1] in BREAKDOWN else {}
            out = subprocess.run([sys.executable, __file__, CHILD, *key, str(a.iterations),
                                  a.clock], capture_output=True, text=True,
                                 env={**env, **extra}, check=True).stdout.split()
            rates[key].append(float(out[0]))
            caps[key] = out[1]
    print(f"{time.strftime('%Y-%m-%d')} · {os.cpu_count()} CPU cores · {numerics._cpu_name()} · "
          f"{a.iterations} training iterations (SLBI step included), best of {a.rounds} "
          f"interleaved rounds, a fresh process each, "
          f"{'CPU time' if a.clock == 'cpu' else 'wall clock'}")
    for preset, level, threads in keys:
        best = max(rates[(preset, level, threads)])
        base = max(rates[(preset, "native", threads)])
        tn = "1 thread" if threads == "1" else f"torch's default ({os.cpu_count()} threads)"
        print(f"{preset:<9} cpu_isa {level:<10} {tn:<30} ATen "
              f"{caps[(preset, level, threads)]:<8} {best:7.1f} it/s   x{best / base:.2f} of "
              f"native")


if __name__ == "__main__":
    main()
