"""Does the path find better structure than standard pruning? The comparison end to end.

    python bench/baselines_demo.py                     # digits (bundled)
    python bench/baselines_demo.py --idx-from-digits   # digits written as MNIST IDX files
    python bench/baselines_demo.py --dataset mnist --data-root DIR

Steps, each through the public CLI (so this is what a user gets):
1. the SLBI path (``pathviz.train --preset demo``) and its SGD sibling (``--optimizer sgd``, same
   data, schedule and seed), the dense reference of the baselines;
2. ``pathviz.baselines`` at every saved iteration (one-shot and 1-epoch finetune);
3. ``pathviz.retrain`` of the path's tickets (finetune, rewind), a control (reinit) and the
   pruning baselines (magnitude, taylor, global-magnitude) x seeds at the suggested stop and at a
   sparser and a denser support (chosen as bench/tickets_demo.py chooses them);
4. a table: method, params, FLOPs, test accuracy mean ± SE over seeds, and the verdict against
   the path's finetune ticket at the same support (beats / ties / loses, 2-SE rule, from
   ``pathviz.tickets.summary``).

Everything lands in ``--out`` (default a fresh temp folder); the table is also written there as
``table.md``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from tickets_demo import other_supports, pick_stop, sh, write_idx_from_digits  # noqa: E402

from pathviz import tickets  # noqa: E402

MODES = "finetune,rewind,reinit,magnitude,taylor,global-magnitude"
ORDER = ("finetune", "rewind", "reinit", "magnitude", "slimming", "taylor", "global-magnitude")
VERDICT = {"beats": "beats", "ties with": "ties", "loses to": "loses"}


def table(run: Path, iterations: list[int]) -> str:
    rows = tickets.summary(run)
    lines = ["| support | method | params | FLOPs | test acc % (mean ± SE) | vs the path's "
             "finetune |", "|---|---|---|---|---|---|"]
    for it in iterations:
        rs = sorted((r for r in rows if r["iteration"] == it),
                    key=lambda r: ORDER.index(r["init"]) if r["init"] in ORDER else 99)
        for r in rs:
            t = r["test_acc"]
            acc = "n/a" if t["mean"] is None else (
                f"{100 * t['mean']:.2f}" + ("" if t["se"] is None else f" ± {100 * t['se']:.2f}"))
            vs = "-"
            for c in r.get("vs_tickets") or []:
                if c["init"] == "finetune" and c["diff"] is not None:
                    se = "" if c["se"] is None else f" ± {100 * c['se']:.2f}"
                    vs = f"{VERDICT.get(c['verdict'], c['verdict'])} ({100 * c['diff']:+.2f}{se})"
            lines.append(f"| {it:,} | {r['init']} ({r['kind']}) | {r['params']:,} | "
                         f"{r['flops']:,} | {acc} | {vs} |")
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
    p.add_argument("--epochs", type=int, default=20, help="retraining epochs (default 20)")
    p.add_argument("--jobs", type=int, default=2, help="processes at a time (default 2)")
    a = p.parse_args()
    out = Path(a.out or tempfile.mkdtemp(prefix="baselines_demo-"))
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if a.idx_from_digits:
        write_idx_from_digits(out / "data")
        a.dataset, a.data_root = "mnist", str(out / "data")
    if a.dataset != "digits" and not a.data_root:
        sys.exit("--dataset mnist needs --data-root (or --idx-from-digits)")
    data = ["--dataset", a.dataset, "--data-root", a.data_root] if a.dataset != "digits" else []
    root = ["--data-root", a.data_root] if a.data_root else []
    py = sys.executable
    slbi = out / "slbi"
    jobs = [[py, "-m", "pathviz.train", "--preset", "demo", *data, "--out", str(slbi),
             "--no-progress"],
            [py, "-m", "pathviz.train", "--preset", "demo", *data, "--optimizer", "sgd",
             "--out", str(out / "sgd"), "--no-progress"]]
    with ThreadPoolExecutor(a.jobs) as ex:
        list(ex.map(sh, jobs))
    print(f"[{time.time() - t0:5.0f}s] the path and its SGD sibling are trained", flush=True)
    sh([py, "-m", "pathviz.baselines", str(slbi), "--no-progress", *root], out / "baselines.log")
    print(f"[{time.time() - t0:5.0f}s] pathviz.baselines done (table in {out}/baselines.log)",
          flush=True)
    stop, how = pick_stop(slbi)
    lo, hi = other_supports(slbi, stop)
    its = sorted({lo, stop, hi})
    print(f"suggested stop: iteration {stop} ({how}); sparser {lo}, denser {hi}", flush=True)
    cmds = [[py, "-m", "pathviz.retrain", str(slbi), "--iteration", str(it), "--init", MODES,
             "--epochs", str(a.epochs), "--seeds", a.seeds, "--no-progress", *root]
            for it in its]
    with ThreadPoolExecutor(a.jobs) as ex:
        list(ex.map(lambda c: sh(c, out / f"retrain-{c[5]}.log"), cmds))
    text = table(slbi, its)
    (out / "table.md").write_text(text + "\n")
    print(f"[{time.time() - t0:5.0f}s] done; dataset {a.dataset}"
          f"{' (digits as IDX)' if a.idx_from_digits else ''}, {a.epochs} epochs of "
          f"retraining, seeds {a.seeds}, out {out}\n")
    print(text)


if __name__ == "__main__":
    main()
