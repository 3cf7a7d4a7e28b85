"""What checking a path file's values costs (issue 20, item 3), measured in one run:

1. the helper process's pass over every row (``pathviz.store.helper._probe_in_helper``, run in
   this process here), with the value rules of ``pathviz.store.validate.first_bad_value`` and
   without them; the difference is the rules' cost, paid once per process and file state;
2. the time inside ``first_bad_value`` alone, over the same blocks (read separately);
3. a reader's open once the helper's answer is cached (what every app rerun pays): the
   iteration rules, one vectorised pass over [N] and [K].

    python bench/path_validate.py [--snapshots 10000] [--repeats 3] [--keep FILE]

The synthetic file is shaped like cifar_vgg_16 plus its classifier (16 layers, 5258 groups;
about 600 MB at 10,000 snapshots): random norms, no weights. Wall-clock time on a shared 2-core
machine varies by +-15% between identical runs; (2) is the steadier figure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import h5py
import numpy as np

from pathviz.store import PathReader, PathWriter, Snapshot, helper
from pathviz.store.validate import first_bad_value

GROUPS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512, 10]


def write(path: str, n: int) -> None:
    layers = [{"name": f"l{i}", "param": f"l{i}.weight", "kind": "conv", "shape": [g, 1],
               "penalty": "group", "groups": g} for i, g in enumerate(GROUPS)]
    rng = np.random.default_rng(0)
    with PathWriter(path, config={}, layers=layers, flush_interval=1e9) as w:
        for i in range(n):
            stats = {lay["name"]: (rng.random(lay["groups"], dtype=np.float32),
                                   rng.random(lay["groups"], dtype=np.float32),
                                   np.ones(lay["groups"], np.int32)) for lay in layers}
            w.append(Snapshot(i * 10, i / 10, i * 0.1,
                              {"train_loss": 1.0, "train_acc": 0.5, "lr": 0.1}, stats))
            if i % 1000 == 999:
                w.flush()


def probe_seconds(path: str, check: bool) -> float:
    real = helper.first_bad_value
    if not check:
        helper.first_bad_value = lambda name, block: None
    try:
        t = time.perf_counter()
        helper._probe_in_helper(path, 0, 0, {}, lambda msg: None)
        return time.perf_counter() - t
    finally:
        helper.first_bad_value = real


def check_seconds(path: str) -> tuple[float, float]:
    """(MiB of layer statistics, seconds inside first_bad_value over them in 64-row blocks)."""
    spent = size = 0.0
    with h5py.File(path, "r") as f:
        names: list[str] = []
        f["layers"].visit(lambda n: names.append(f"layers/{n}")
                          if isinstance(f[f"layers/{n}"], h5py.Dataset) else None)
        for name in names:
            d = f[name]
            for b in range(0, d.shape[0], 64):
                block = d[b:b + 64]
                t = time.perf_counter()
                first_bad_value(name, block)
                spent += time.perf_counter() - t
                size += block.nbytes
    return size / 2 ** 20, spent


def main() -> None:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    p.add_argument("--snapshots", type=int, default=10000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--keep", help="write the file here (and keep it) instead of a temp file")
    a = p.parse_args()
    path = a.keep or os.path.join(tempfile.mkdtemp(), "path.h5")
    if not os.path.exists(path):
        write(path, a.snapshots)
    print(f"{a.snapshots} snapshots, {sum(GROUPS)} groups, "
          f"{os.path.getsize(path) / 1e6:.0f} MB")
    with_rules = [probe_seconds(path, True) for _ in range(a.repeats)]
    without = [probe_seconds(path, False) for _ in range(a.repeats)]
    print(f"helper pass over every row: {statistics.median(with_rules):.2f} s with the value "
          f"rules, {statistics.median(without):.2f} s without (median of {a.repeats})")
    mib, spent = check_seconds(path)
    print(f"inside first_bad_value: {spent:.2f} s over {mib:.0f} MiB of layer statistics")
    with PathReader(path):
        pass  # the helper's answer is cached from here on
    t = time.perf_counter()
    for _ in range(20):
        with PathReader(path) as r:
            assert r.n_snapshots == a.snapshots
    print(f"reader open with the helper's answer cached: "
          f"{(time.perf_counter() - t) / 20 * 1000:.1f} ms (iteration rules included)")
    if not a.keep:
        os.unlink(path)


if __name__ == "__main__":
    main()
