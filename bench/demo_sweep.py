"""Sweep the demo preset's nu/lambda over seeds and print what decides whether the demo tells
the paper's story: where the suggested stop falls, how much it keeps, how the layers end.

    python bench/demo_sweep.py --seeds 0,1,2 --set nu=50,lam=0.25 --set nu=25,lam=0.45
    python bench/demo_sweep.py --preset vit_demo --seeds 0,1,2     # any preset

Each --set is a comma-separated list of RunConfig overrides on top of the demo preset. Runs go
to a temporary folder; every figure comes from ``pathviz.inspect``'s own functions.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pathviz import jsonsafe
from pathviz.analysis import stop_of
from pathviz.config import PRESETS, RunConfig
from pathviz.store import PathReader


def _value(key: str, text: str):
    kind = RunConfig.__dataclass_fields__[key].type
    if "int" in str(kind) and "." not in text:
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


def run_one(out: Path, overrides: dict, seed: int, preset: str = "demo") -> dict:
    args = [sys.executable, "-m", "pathviz.train", "--preset", preset, "--out", str(out),
            "--seed", str(seed), "--no-progress"]
    for k, v in overrides.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    t0 = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    with PathReader(out / "path.h5") as r:
        d = stop_of(r)
        n = int(r.iterations[-1])
        last = r.n_snapshots - 1
        snap = r.snapshot(last)
        sel = {layer["name"]: float((snap[layer["name"]]["gamma_norm"] > 0).mean())
               for layer in r.layers}
        entries = {layer["name"]: r.entry_times(layer["name"]) for layer in r.layers}
        first = {k: int(r.iterations[e[e >= 0].min()]) if (e >= 0).any() else -1
                 for k, e in entries.items()}
        test_w = float(r.metric("test_acc")[-1])
        # issue 9: the first iteration where W* (the compact model) is within 1 point of its
        # best validation accuracy
        v, its = r.metric("val_acc_sparse"), r.iterations
        ok = np.isfinite(v)
        near = int(its[ok][np.argmax(v[ok] >= np.nanmax(v) - 0.01)]) if ok.any() else -1
        size = (out / "path.h5").stat().st_size
    s = d.stop
    return {"seed": seed, "seconds": seconds, "iterations": n, "size_mb": size / 1e6,
            "stop": None if s is None else s.to_json(), "reason": d.reason,
            "selected": sel, "first_entry": first, "final_test_acc": test_w,
            "within_1pt": near}


def main() -> None:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--preset", default="demo", choices=sorted(PRESETS))
    p.add_argument("--set", action="append", default=[], help="k=v,k=v overrides")
    p.add_argument("--json", help="also write the rows to this file")
    a = p.parse_args()
    sets = [dict((kv.split("=")[0], _value(*kv.split("="))) for kv in s.split(",") if kv)
            for s in (a.set or [""])]
    rows = []
    base = PRESETS[a.preset]
    print(f"{a.preset} preset: nu={base.nu} lam={base.lam} epochs={base.epochs} lr={base.lr}")
    with tempfile.TemporaryDirectory() as tmp:
        for i, over in enumerate(sets):
            for seed in (int(x) for x in a.seeds.split(",")):
                row = run_one(Path(tmp) / f"s{i}-{seed}", over, seed, a.preset)
                row["set"] = over
                rows.append(row)
                s = row["stop"]
                sel = " ".join(f"{100 * v:.0f}" for v in row["selected"].values())
                ent = " ".join(str(v) for v in row["first_entry"].values())
                if s:
                    print(f"{over} seed {seed}: stop {s['iteration']}/{row['iterations']} "
                          f"({s['iteration'] / row['iterations']:.2f}), params "
                          f"{s['params_kept']}/{s['params_total']} "
                          f"({s['params_kept'] / s['params_total']:.2f}), val "
                          f"{100 * s['val_acc']:.1f}±{100 * s['val_se']:.1f}, test(compact) "
                          f"{100 * s['test_acc_sparse']:.1f}, final W "
                          f"{100 * row['final_test_acc']:.1f}, W* within 1 pt at "
                          f"{row['within_1pt'] / row['iterations']:.2f} | selected% {sel} | "
                          f"first entry {ent} | {row['seconds']:.0f}s {row['size_mb']:.1f}MB",
                          flush=True)
                else:
                    print(f"{over} seed {seed}: no stop ({row['reason']}) | selected% {sel} | "
                          f"first entry {ent} | {row['seconds']:.0f}s", flush=True)
    if a.json:
        Path(a.json).write_text(jsonsafe.dumps(rows, indent=1, default=float))  # NaN: null
    ok = [r for r in rows if r["stop"]]
    if ok:
        print("median stop fraction", np.median([r["stop"]["iteration"] / r["iterations"]
                                                for r in ok]))


if __name__ == "__main__":
    main()
