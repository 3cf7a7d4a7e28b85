"""What the IEEE square root of span groups costs: vit_demo's and the demo's training iteration
with ``pathviz.numerics.sqrt_`` (numpy's IEEE sqrt, the default since issue 29) against
``Tensor.sqrt_`` (MKL's vector sqrt, which rounds by CPU vendor), interleaved in one process.

    python bench/sqrt_cost.py [--iters 200] [--warmup 20]

One iteration is what the worker does: zero_grad, forward, cross-entropy, backward, the SLBI step
(the presets' own optimizer, :func:`pathviz.train.make_optimizer`), plus the recorder's per-layer
statistics (a snapshot every iteration, as both presets take). Both variants train their own copy
of the model from the same weights on the same batches; they alternate iteration by iteration,
so a machine that slows down slows both. Prints the median seconds per iteration of each and the
ratio (numpy / torch): 1.00 means the fix costs nothing.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time

from pathviz.numerics import pin


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    a = ap.parse_args()
    env = pin("avx2", threads=1)
    import torch
    import torch.nn.functional as F

    from pathviz import recorder, slbi_update
    from pathviz.config import PRESETS
    from pathviz.models import build_model
    from pathviz.train import make_optimizer

    def torch_sqrt(t: torch.Tensor) -> torch.Tensor:
        return t.sqrt_()

    ieee = slbi_update.sqrt_
    print(f"{env['cpu']}, torch {torch.__version__}, cpu_isa avx2, 1 thread, "
          f"{platform.machine()}")
    print(f"{'preset':<10} {'numpy sqrt s/it':>16} {'Tensor.sqrt s/it':>17} {'ratio':>7}")
    for preset, model_name, batch in (("vit_demo", "vit_tiny", 32), ("demo", "lenet5", 64)):
        torch.manual_seed(0)
        base = build_model(model_name, num_classes=10, in_channels=1)
        variants = {}
        for name, fn in (("numpy", ieee), ("torch", torch_sqrt)):
            m = copy.deepcopy(base)
            opt = make_optimizer(m, PRESETS[preset])
            variants[name] = (m, opt, fn, recorder.layers_of(m, opt))
        x = torch.randn(batch, 1, 28, 28)
        y = torch.arange(batch) % 10
        times: dict[str, list[float]] = {"numpy": [], "torch": []}
        for i in range(a.warmup + a.iters):
            for name, (m, opt, fn, specs) in variants.items():
                slbi_update.sqrt_ = recorder.sqrt_ = fn
                t0 = time.perf_counter()
                opt.zero_grad()
                F.cross_entropy(m(x), y).backward()
                opt.step()
                params = dict(m.named_parameters())
                for spec in specs:
                    if spec.members:
                        ws = [params[mem.param] for mem in spec.members]
                        recorder._span_stats(spec, ws, [opt.gamma(w) for w in ws])
                if i >= a.warmup:
                    times[name].append(time.perf_counter() - t0)
        slbi_update.sqrt_ = recorder.sqrt_ = ieee
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"{preset:<10} {med['numpy']:>16.5f} {med['torch']:>17.5f} "
              f"{med['numpy'] / med['torch']:>7.3f}")


if __name__ == "__main__":
    main()
