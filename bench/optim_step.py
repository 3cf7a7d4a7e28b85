"""Time one SLBI.step against one torch.optim.SGD(momentum=0.9, foreach=True).step.

Prints, for the parameters of cifar_vgg_16 and cifar_resnet_20 with random gradients, the
ratio SLBI step / SGD step with the group and the l1 penalty, at 1 and 2 threads, all in this
one run: the two optimizers' steps interleaved round by round (a busy machine slows both
alike), each round's ratio taken from the medians of its steps, and the median over rounds
printed. The process is pinned first to the training default (``cpu_isa`` avx2), so the
kernels are the ones a run uses.

    python bench/optim_step.py [--rounds 7] [--steps 9] [--threads 1,2] [--device cpu]
                               [--clock wall|cpu]

``--clock cpu`` times each step by the calling thread's CPU time (``time.thread_time``)
instead of the wall clock: on a machine shared with other work it leaves out the time the
thread waited for a core. It sees only the calling thread, so it is for ``--threads 1``.

On CUDA (``--device cuda``) SLBI (foreach) is timed against SGD foreach and SGD fused.

Targets (issue 37): SLBI <= 1.2x SGD foreach on cifar_vgg_16, <= 1.5x on cifar_resnet_20.
"""

from __future__ import annotations

import argparse
import statistics
import time

MODELS = ("cifar_vgg_16", "cifar_resnet_20")
PENALTIES = ("group", "l1")


def _median_step(step, steps: int, sync, now=time.perf_counter) -> float:
    times = []
    for _ in range(steps):
        sync()
        t0 = now()
        step()
        sync()
        times.append(now() - t0)
    return statistics.median(times)


def bench(name: str, penalty: str, rounds: int, steps: int, device: str,
          now=time.perf_counter) -> dict[str, float]:
    """Median over rounds of (SLBI step / SGD step) and the SGD and SLBI medians in ms."""
    import torch

    from pathviz.groups import slbi_param_groups
    from pathviz.models import build_model
    from pathviz.optim import SLBI

    torch.manual_seed(0)
    model = build_model(name).to(device)
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-2
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    opts = {"sgd": torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, foreach=True),
            "slbi": SLBI(slbi_param_groups(model, conv=penalty, linear=penalty, lam=0.1),
                         lr=0.01)}
    if device.startswith("cuda"):
        opts["sgd_fused"] = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9,
                                            fused=True)
    for opt in opts.values():  # warm-up: state allocation, numba's cache load, chunk tables
        for _ in range(3):
            opt.step()
    times: dict[str, list[float]] = {k: [] for k in opts}
    for _ in range(rounds):
        for k, opt in opts.items():
            times[k].append(_median_step(opt.step, steps, sync, now))
    out = {"ratio": statistics.median(s / g for s, g in zip(times["slbi"], times["sgd"])),
           "sgd_ms": statistics.median(times["sgd"]) * 1e3,
           "slbi_ms": statistics.median(times["slbi"]) * 1e3}
    if "sgd_fused" in times:
        out["ratio_fused"] = statistics.median(
            s / g for s, g in zip(times["slbi"], times["sgd_fused"]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=9, help="steps per optimizer per round")
    ap.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall clock, or the calling thread's CPU time (1 thread, shared machine)")
    args = ap.parse_args()
    if args.clock == "cpu" and (args.device != "cpu" or args.threads != "1"):
        ap.error("--clock cpu times the calling thread only: use it with --threads 1 on the CPU")
    now = time.thread_time if args.clock == "cpu" else time.perf_counter
    from pathviz import numerics

    numerics.pin(numerics.DEFAULT_LEVEL, 1)  # the worker's kernels, before torch computes
    import numba
    import torch

    threads = [int(t) for t in args.threads.split(",")]
    print(f"{time.strftime('%Y-%m-%d')} · {numerics._cpu_name()} · torch {torch.__version__} · "
          f"numba {numba.__version__} · cpu_isa {numerics.DEFAULT_LEVEL} · device {args.device} "
          f"· median of {args.rounds} interleaved rounds of {args.steps} steps · "
          f"{'CPU time' if args.clock == 'cpu' else 'wall clock'}")
    head = f"{'model':16} {'penalty':8} {'threads':>7} {'SGD ms':>8} {'SLBI ms':>8} {'SLBI/SGD':>9}"
    print(head + ("  SLBI/SGD fused" if args.device.startswith("cuda") else ""))
    for n in threads:
        torch.set_num_threads(n)
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        for name in MODELS:
            for penalty in PENALTIES:
                r = bench(name, penalty, args.rounds, args.steps, args.device, now)
                line = (f"{name:16} {penalty:8} {n:7d} {r['sgd_ms']:8.2f} {r['slbi_ms']:8.2f} "
                        f"{r['ratio']:8.2f}x")
                if "ratio_fused" in r:
                    line += f"  {r['ratio_fused']:14.2f}x"
                print(line, flush=True)


if __name__ == "__main__":
    main()
