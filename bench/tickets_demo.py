"""The winning-ticket experiment end to end, with its controls, on one dataset.

    python bench/tickets_demo.py                       # digits (bundled)
    python bench/tickets_demo.py --dataset mnist --data-root DIR
    python bench/tickets_demo.py --idx-from-digits     # digits written as real MNIST IDX files,
                                                       # read back through the mnist loader

Steps, each through the public CLI (so this is what a user gets):
1. the SLBI path (``pathviz.train --preset demo``) and one SGD baseline per seed
   (``--optimizer sgd``, same data, schedule and seed);
2. the suggested stop (``pathviz.analysis.stop_of``) and its compact export;
3. ``pathviz.retrain`` of all six inits x seeds at the stop and at two other supports (one
   sparser, one denser), two retrains at a time;
4. a table of params, FLOPs and test accuracy (mean ± std over seeds) with each ticket's verdict
   against its controls (``pathviz.tickets.summary``).

Everything lands in ``--out`` (default a fresh temp folder); the table is also written there as
``table.md`` and the rows as ``summary.json``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pathviz import jsonsafe, tickets  # noqa: E402
from pathviz.store import PathReader  # noqa: E402

MODES = "rewind,rewind:{k},finetune,reinit,random-support,uniform"


def sh(cmd: list[str], log: Path | None = None) -> str:
    """Run a pathviz CLI; stop the benchmark with its output if it fails."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if log is not None:
        log.write_text(p.stdout + p.stderr)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
    return p.stdout


def write_idx_from_digits(root: Path) -> None:
    """Digits (28x28 as pathviz serves them) as the four uncompressed MNIST IDX files."""
    from pathviz.data import load_dataset

    d = load_dataset("digits")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)

    def idx(path: Path, a: np.ndarray) -> None:
        a = np.ascontiguousarray(a, dtype=np.uint8)
        with open(path, "wb") as f:
            f.write(bytes([0, 0, 0x08, a.ndim]))
            f.write(np.array(a.shape, dtype=">i4").tobytes())
            f.write(a.tobytes())

    for split, x, y in (("train", d.train_x, d.train_y), ("t10k", d.test_x, d.test_y)):
        idx(raw / f"{split}-images-idx3-ubyte", x.numpy()[:, 0])
        idx(raw / f"{split}-labels-idx1-ubyte", y.numpy())


def pick_stop(run: Path) -> tuple[int, str]:
    """The suggested stop, or (if this pathviz has no stop rule) the sparsest saved iteration
    within one point of the best sparse validation accuracy."""
    from pathviz import analysis

    with PathReader(run / "path.h5") as r:
        if hasattr(analysis, "stop_of"):
            d = analysis.stop_of(r)
            if d.stop is not None:
                return int(d.stop.iteration), "pathviz.analysis.stop_of"
        m = r.metric("val_acc_sparse" if "val_acc_sparse" in r.metric_names
                     else "test_acc_sparse")
        pk, its, w = r.metric("params_kept"), r.iterations, set(r.weight_iterations.tolist())
    ok = [i for i, it in enumerate(its) if int(it) in w and np.isfinite(m[i])]
    best = max(m[i] for i in ok)
    i = min((i for i in ok if m[i] >= best - 0.01), key=lambda i: (pk[i], its[i]))
    return int(its[i]), "fallback: sparsest saved iteration within 1 point of the best"


def other_supports(run: Path, stop: int) -> tuple[int, int]:
    """A sparser and a denser saved support: about half the stop's kept parameters, and
    halfway from the stop to the densest saved support."""
    with PathReader(run / "path.h5") as r:
        pk, its = r.metric("params_kept"), r.iterations
        saved = [int(i) for i in r.weight_iterations]
    kept = {it: float(pk[int(np.searchsorted(its, it, side="right")) - 1]) for it in saved}
    at = kept[stop]
    sparser = [it for it in saved if it < stop and kept[it] < 0.8 * at and kept[it] > 0]
    denser = [it for it in saved if it > stop and kept[it] > at]
    lo = min(sparser or [s for s in saved if s < stop] or [stop],
             key=lambda it: abs(kept[it] - 0.5 * at))
    hi_target = at + 0.5 * (max(kept.values()) - at)
    hi = min(denser or [s for s in saved if s > stop] or [stop],
             key=lambda it: abs(kept[it] - hi_target))
    return lo, hi


def fmt_acc(s: dict) -> str:
    if s["mean"] is None:
        return "n/a"
    std = "" if s["std"] is None else f" ± {100 * s['std']:.2f}"
    return f"{100 * s['mean']:.2f}{std} (n={s['n']})"


def table(run: Path, iterations: list[int]) -> str:
    rows = tickets.summary(run)
    refs = tickets.references(run, iterations)
    order = {m: i for i, m in enumerate(("rewind", "rewind:", "finetune", "reinit",
                                         "random-support", "uniform"))}
    lines = ["| support | variant | params | params kept | FLOPs kept | test acc % (mean ± std) |",
             "|---|---|---|---|---|---|"]
    for ref in refs:
        if ref["iteration"] is None or ref["label"].startswith("SLBI W ("):
            lines.append(f"| - | {ref['label']} | {ref['params']:,} | 100% | 100% | "
                         f"{fmt_acc(ref['test_acc'])} |")
    for it in iterations:
        for ref in refs:
            if ref["iteration"] == it and ref["label"].startswith("SLBI W*"):
                pf = rows[0]["params_full"] if rows else 0
                lines.append(f"| {it} | W* (no retraining) | {ref['params']:,} | "
                             f"{100 * ref['params'] / pf:.1f}% | - | {fmt_acc(ref['test_acc'])} |")
        rs = sorted((r for r in rows if r["iteration"] == it),
                    key=lambda r: order.get(r["init"].split(":")[0] + (":" if ":" in r["init"]
                                                                       else ""), 9))
        for r in rs:
            lines.append(f"| {it} | {r['init']} | {r['params']:,} | "
                         f"{100 * r['params_kept']:.1f}% | {100 * r['flops_kept']:.1f}% | "
                         f"{fmt_acc(r['test_acc'])} |")
    lines.append("")
    for r in rows:
        if r["kind"] == "ticket":
            lines.append(f"- {r['name']}: {r['verdict']}")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="digits", choices=("digits", "mnist"))
    p.add_argument("--data-root", help="folder with MNIST/raw/*-ubyte (for --dataset mnist)")
    p.add_argument("--idx-from-digits", action="store_true",
                   help="write digits as MNIST IDX files into <out>/data and use them")
    p.add_argument("--out", help="folder for the runs (default: a new temp folder)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, help="retraining epochs (default: the path's epochs)")
    p.add_argument("--path-epochs", type=int, help="epochs of the SLBI path and the baselines "
                                                   "(default: the demo preset's)")
    p.add_argument("--train-args", default="",
                   help="more pathviz.train flags for the path and the baselines, e.g. "
                        "\"--weights-on-change 8\"")
    p.add_argument("--jobs", type=int, default=2, help="retrains at a time (default 2)")
    a = p.parse_args()
    out = Path(a.out or tempfile.mkdtemp(prefix="tickets_demo-"))
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    data = []
    if a.idx_from_digits:
        write_idx_from_digits(out / "data")
        a.dataset, a.data_root = "mnist", str(out / "data")
    if a.dataset != "digits":
        if not a.data_root:
            sys.exit("--dataset mnist needs --data-root (or --idx-from-digits)")
        data = ["--dataset", a.dataset, "--data-root", a.data_root]
    extra = (["--epochs", str(a.path_epochs)] if a.path_epochs else []) + \
        shlex.split(a.train_args)
    seeds = [int(s) for s in a.seeds.split(",")]
    py = sys.executable
    slbi = out / "slbi"
    print(f"[{time.time() - t0:5.0f}s] training the SLBI path -> {slbi}", flush=True)
    jobs = [[py, "-m", "pathviz.train", "--preset", "demo", *data, *extra, "--out", str(slbi),
             "--no-progress"]]
    jobs += [[py, "-m", "pathviz.train", "--preset", "demo", *data, *extra, "--optimizer", "sgd",
              "--seed", str(s), "--out", str(out / f"sgd-seed{s}"), "--no-progress"]
             for s in seeds]
    with ThreadPoolExecutor(a.jobs) as ex:
        list(ex.map(sh, jobs))
    print(f"[{time.time() - t0:5.0f}s] path and {len(seeds)} SGD baselines done", flush=True)
    stop, how = pick_stop(slbi)
    lo, hi = other_supports(slbi, stop)
    print(f"suggested stop: iteration {stop} ({how}); sparser {lo}, denser {hi}")
    for other, what in ((lo, "sparser"), (hi, "denser")):
        if other == stop:
            print(f"note: the path has no saved support {what} than the stop's, so that row is "
                  f"missing")
    exp = sh([py, "-m", "pathviz.export", str(slbi), "--iteration", str(stop), "--mode",
              "compact", "--format", "state_dict", "--out", str(out / f"stop{stop}.pth"),
              *(["--data-root", a.data_root] if a.data_root else [])])
    print(exp.strip())
    with PathReader(slbi / "path.h5") as r:
        k = next((int(i) for i in r.weight_iterations if i > 0), 0)
        epochs = a.epochs or int(r.config["epochs"])
    its = sorted({lo, stop, hi})
    cmds = [[py, "-m", "pathviz.retrain", str(slbi), "--iteration", str(it), "--init",
             MODES.format(k=k), "--epochs", str(epochs), "--seeds", a.seeds, "--no-progress",
             *(["--data-root", a.data_root] if a.data_root else [])] for it in its]
    print(f"[{time.time() - t0:5.0f}s] retraining 6 variants x {len(seeds)} seeds x "
          f"{len(its)} supports, {epochs} epochs each (rewind:K with K={k})", flush=True)
    with ThreadPoolExecutor(a.jobs) as ex:
        list(ex.map(lambda c: sh(c, out / f"retrain-{c[5]}.log"), cmds))
    text = table(slbi, its)
    (out / "table.md").write_text(text + "\n")
    # a diverged seed's NaN is null: the file stays JSON
    (out / "summary.json").write_text(jsonsafe.dumps(tickets.summary(slbi), indent=1))
    print(f"[{time.time() - t0:5.0f}s] done; dataset {a.dataset}"
          f"{' (digits as IDX)' if a.idx_from_digits else ''}, out {out}\n")
    print(text)


if __name__ == "__main__":
    main()
