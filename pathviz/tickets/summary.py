"""The honest summary of a run's tickets: mean, SE and verdicts, the references beside them
(full SLBI W, W* at N, the SGD baseline), the curves per epoch and the CSV (torch-free)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pathviz import runs
from pathviz.data import DATASETS
from pathviz.store import PathFileError, PathReader
from pathviz.tickets.schema import (
    EPOCH,
    Z_BEATS,
    TicketError,
    list_tickets,
    mode_kind,
    read_seed,
    read_ticket,
    seed_path,
    seeds_on_disk,
    ticket_state,
)

__all__ = ["summary", "references", "curves", "sgd_baselines", "rows_to_csv"]


# ---- statistics ------------------------------------------------------------------------------


def _stats(values: Sequence[float]) -> dict[str, Any]:
    """mean, sample std and standard error of finite ``values`` (None where undefined)."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
    n = int(v.size)
    mean = float(v.mean()) if n else None
    std = float(v.std(ddof=1)) if n > 1 else None
    se = std / math.sqrt(n) if std is not None else None
    return {"mean": mean, "std": std, "se": se, "n": n}


def _final(seed: dict[str, Any], name: str) -> float:
    a = seed["metrics"].get(name)
    if a is None or not len(a):
        return float("nan")
    return float(a[-1])


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def _chance(dataset: str | None) -> float | None:
    """Accuracy of guessing on a pathviz dataset (1 / classes), None if unknown."""
    info = DATASETS.get(dataset or "")
    return 1.0 / info.num_classes if info else None


def _compare(t: dict[str, Any], c: dict[str, Any]) -> dict[str, Any]:
    """Ticket row vs control row: difference of mean test accuracy, its SE and the verdict."""
    ta, ca = t["test_acc"], c["test_acc"]
    out = {"control": c["name"], "init": c["init"], "diff": None, "se": None,
           "verdict": "not enough seeds"}
    if ta["mean"] is None or ca["mean"] is None:
        return out
    diff = ta["mean"] - ca["mean"]
    out["diff"] = diff
    if ta["se"] is None or ca["se"] is None:
        return out
    se = math.sqrt(ta["se"] ** 2 + ca["se"] ** 2)
    out["se"] = se
    if se == 0:
        out["verdict"] = "beats" if diff > 0 else "loses to" if diff < 0 else "ties with"
    else:
        out["verdict"] = ("beats" if diff > Z_BEATS * se else
                          "loses to" if diff < -Z_BEATS * se else "ties with")
    return out


def _verdict(row: dict[str, Any], comps: list[dict[str, Any]]) -> str:
    """One plain sentence: does this ticket beat its controls, by how much, with the SE."""
    if not comps:
        return "no controls at this iteration and budget yet: retrain reinit, random-support " \
               "and uniform to test it"
    parts = []
    for c in comps:
        if c["diff"] is None:
            parts.append(f"{c['init']}: no result yet")
        elif c["se"] is None:
            parts.append(f"{c['init']}: {100 * c['diff']:+.2f} points (one seed: no SE)")
        else:
            parts.append(f"{c['verdict']} {c['init']} by {100 * c['diff']:+.2f} ± "
                         f"{100 * c['se']:.2f} points (SE)")
    decided = [c for c in comps if c["se"] is not None]
    if decided and len(decided) == len(comps) and all(c["verdict"] == "beats" for c in decided):
        head = "beats every control"
    elif any(c["verdict"] == "loses to" for c in decided):
        head = "does worse than a control"
    elif decided:
        head = "does not clearly beat its controls"
    else:
        head = "undecided (needs 2+ seeds per variant)"
    return f"{head}: " + "; ".join(parts)


def _baseline_verdict(comps: list[dict[str, Any]]) -> str:
    """One plain sentence: does this pruning baseline beat the path's tickets of its size?"""
    if not comps:
        return ("no ticket at this iteration, budget and epochs yet: retrain rewind or finetune "
                "to compare the path's support with this baseline")
    parts = []
    for c in comps:
        if c["diff"] is None:
            parts.append(f"{c['init']}: no result yet")
        elif c["se"] is None:
            parts.append(f"{c['init']}: {100 * c['diff']:+.2f} points (one seed: no SE)")
        else:
            parts.append(f"{c['verdict']} the path's {c['init']} by {100 * c['diff']:+.2f} ± "
                         f"{100 * c['se']:.2f} points (SE)")
    return "against the path's tickets of the same size: " + "; ".join(parts)


def summary(run_dir: str | os.PathLike | runs.RunPaths,
            baselines: Sequence[str | os.PathLike] | None = None) -> list[dict[str, Any]]:
    """One JSON-serialisable row per retrained variant of the run, in name order.

    Each row: name, iteration, init, kind ("ticket"/"control"), budget, epochs_run, seeds (done,
    i.e. complete), seeds_asked, running (seeds still training), params, flops, params_full,
    flops_full, params_kept and flops_kept (fractions of the full model), test_acc and val_acc
    (``{"mean", "std", "se", "n"}`` of the final epoch over complete seeds, fractions; None
    where undefined), diverged (seeds whose loss became non-finite), collapsed (complete seeds
    whose final test accuracy is under 1.5x chance: rewinding sometimes never leaves chance),
    state (of the folder's retrain process); reference (the dense network a baseline was
    pruned from: the SGD run's folder name or "self"; None for the other modes); for baselines
    ``vs_tickets`` (one comparison per ticket at the same iteration, budget and epochs) and
    ``verdict``; for tickets
    also ``vs_controls`` (one comparison per control at the same iteration, budget and epochs:
    control, init, diff, se, verdict) and ``verdict`` (a sentence). Where an SGD baseline
    exists (``baselines``, default :func:`sgd_baselines`: the full model trained with plain SGD,
    its final test accuracy averaged over those runs), every row also has ``vs_baseline``
    (diff, se, verdict against it) and the ticket's verdict ends with that comparison.
    """
    paths = runs.paths_for_dir(run_dir)  # once: the calls below get this object
    rows = []
    for tdir in list_tickets(paths):
        try:
            t = read_ticket(tdir)
        except TicketError:
            continue
        finals, vals, diverged, running = [], [], 0, 0
        for s in seeds_on_disk(tdir):
            try:
                seed = read_seed(seed_path(tdir, s))
            except TicketError:
                continue
            if not seed["complete"]:
                running += 1
                continue
            diverged += int(seed["diverged"])
            finals.append(_final(seed, "test_acc"))
            vals.append(_final(seed, "val_acc"))
        test = _stats(finals)
        chance = _chance(t.get("dataset"))
        collapsed = sum(1 for a in finals if chance and np.isfinite(a) and a < 1.5 * chance)
        pf, ff = t.get("params_full") or 0, t.get("flops_full") or 0
        rows.append({
            "name": t["name"], "iteration": int(t["iteration"]), "init": t["init"],
            "kind": t.get("kind", mode_kind(t["init"])), "budget": t["budget"],
            "epochs": int(t["epochs"]), "epochs_run": int(t["epochs_run"]),
            "seeds": test["n"], "seeds_asked": len(t.get("seeds", [])), "running": running,
            "params": int(t["params"]), "flops": int(t["flops"]),
            "params_full": int(pf), "flops_full": int(ff),
            "params_kept": t["params"] / pf if pf else None,
            "flops_kept": t["flops"] / ff if ff else None,
            "test_acc": test, "val_acc": _stats(vals), "diverged": diverged,
            "collapsed": collapsed, "reference": t.get("reference"),
            "state": ticket_state(tdir)["state"],
        })
    base = _baseline(paths, baselines) if rows else None
    for r in rows:
        if base is not None:
            r["vs_baseline"] = _compare(r, base)
        if r["kind"] == "baseline":
            same = [t for t in rows if t["kind"] == "ticket" and t["iteration"] == r["iteration"]
                    and t["budget"] == r["budget"] and t["epochs"] == r["epochs"]]
            r["vs_tickets"] = [_compare(r, t) for t in same]
            r["verdict"] = _baseline_verdict(r["vs_tickets"])
        if r["kind"] != "ticket":
            continue
        controls = [c for c in rows if c["kind"] == "control" and c["iteration"] == r["iteration"]
                    and c["budget"] == r["budget"] and c["epochs"] == r["epochs"]]
        comps = [_compare(r, c) for c in controls]
        r["vs_controls"] = comps
        r["verdict"] = _verdict(r, comps)
        if r["collapsed"]:
            r["verdict"] += (f". {r['collapsed']} of {r['seeds']} seeds collapsed (final test "
                             f"accuracy under 1.5x chance)")
        if base is not None:
            b = r["vs_baseline"]
            n = base["test_acc"]["n"]
            if b["diff"] is None:
                pass
            elif b["se"] is None:
                r["verdict"] += (f". Against full SGD ({n} run{'s' * (n > 1)}): "
                                 f"{100 * b['diff']:+.2f} points (no SE)")
            else:
                r["verdict"] += (f". Against full SGD ({n} runs): {b['verdict']} it by "
                                 f"{100 * b['diff']:+.2f} ± {100 * b['se']:.2f} points (SE)")
    return rows


def _baseline(paths: runs.RunPaths,
              baselines: Sequence[str | os.PathLike] | None) -> dict[str, Any] | None:
    """The SGD baseline as a pseudo-row for :func:`_compare`, or None without one."""
    dirs = [Path(b) for b in baselines] if baselines is not None else sgd_baselines(paths)
    # each baseline is a run of its own: its paths, once each
    accs = [a for a in (_final_metric(runs.paths_for_dir(b).path, "test_acc") for b in dirs)
            if a is not None]
    if not accs:
        return None
    return {"name": "SGD baseline", "init": "SGD baseline", "test_acc": _stats(accs)}


# ---- the references: full SLBI W, W* at N, SGD baseline --------------------------------------


def _read_config(run_dir: Path | runs.RunPaths) -> dict[str, Any] | None:
    try:
        cfg = json.loads(runs.paths_for_dir(run_dir).config.read_text())
        return cfg if isinstance(cfg, dict) else None
    except (OSError, ValueError, RecursionError, runs.RunError):
        return None


def sgd_baselines(run_dir: str | os.PathLike | runs.RunPaths) -> list[Path]:
    """Sibling run folders trained with ``"optimizer": "sgd"`` on the same dataset and model;
    the one with the same seed first."""
    cfg = _read_config(run_dir) or {}
    run_dir = run_dir.dir if isinstance(run_dir, runs.RunPaths) else Path(run_dir)
    found = []
    parent = run_dir.resolve().parent
    for d in sorted(parent.iterdir()) if parent.is_dir() else []:
        if not d.is_dir() or d.resolve() == run_dir.resolve():
            continue
        c = _read_config(d)
        if not c or c.get("optimizer") != "sgd":
            continue
        if c.get("dataset") == cfg.get("dataset") and c.get("model") == cfg.get("model"):
            found.append((c.get("seed") != cfg.get("seed"), d.name, d))
    return [d for *_, d in sorted(found)]


def _final_metric(path: Path, name: str) -> float | None:
    try:
        with PathReader(path) as r:
            if name not in r.metric_names:
                return None
            a = r.metric(name)
    except (PathFileError, OSError):
        return None
    a = a[np.isfinite(a)]
    return float(a[-1]) if a.size else None


def references(run_dir: str | os.PathLike | runs.RunPaths, iterations: Sequence[int] = (),
               baselines: Sequence[str | os.PathLike] | None = None) -> list[dict[str, Any]]:
    """Rows to draw beside the tickets: the full SLBI W at the end of the run; at each of
    ``iterations``, SLBI W and the compact W* (no retraining); and the SGD baseline (mean over
    the runs in ``baselines``, default :func:`sgd_baselines`). Each row: label, iteration (None
    for end-of-run rows), params, flops, test_acc ``{"mean", "std", "se", "n"}``, runs."""
    paths = runs.paths_for_dir(run_dir)
    out: list[dict[str, Any]] = []
    try:
        r = PathReader(paths.path)
    except (PathFileError, OSError):
        return out
    with r:
        info = r.model_info
        m = {k: r.metric(k) for k in ("test_acc", "test_acc_sparse", "params_kept", "flops_kept")
             if k in r.metric_names}
        its = r.iterations
    full_params = info.get("params_total")
    full_flops = info.get("flops_total")
    if full_params is None:  # path files of schema 1.0: take it from a ticket of this run
        for tdir in list_tickets(paths):
            t = read_ticket(tdir)
            full_params, full_flops = t.get("params_full"), t.get("flops_full")
            break
    acc = m.get("test_acc")
    if acc is not None and np.isfinite(acc).any():
        out.append({"label": "SLBI W (end of run)", "iteration": int(its[-1]),
                    "params": full_params, "flops": full_flops,
                    "test_acc": _stats([float(acc[np.isfinite(acc)][-1])]), "runs": [paths.name]})
    for it in sorted(set(int(i) for i in iterations)):
        i = int(np.searchsorted(its, it, side="right")) - 1
        if i < 0:
            continue
        if acc is not None and np.isfinite(acc[i]):
            out.append({"label": f"SLBI W at {it}", "iteration": it, "params": full_params,
                        "flops": full_flops, "test_acc": _stats([float(acc[i])]),
                        "runs": [paths.name]})
        sp = m.get("test_acc_sparse")
        if sp is not None and np.isfinite(sp[i]) and "params_kept" in m:
            fk = m.get("flops_kept")
            out.append({"label": f"SLBI W* at {it}", "iteration": it,
                        "params": int(m["params_kept"][i]),
                        "flops": int(fk[i]) if fk is not None and np.isfinite(fk[i]) else None,
                        "test_acc": _stats([float(sp[i])]), "runs": [paths.name]})
    base = [Path(b) for b in baselines] if baselines is not None else sgd_baselines(paths)
    accs, names = [], []
    for b in base:
        a = _final_metric(runs.paths_for_dir(b).path, "test_acc")
        if a is not None:
            accs.append(a)
            names.append(Path(b).name)
    if accs:
        out.append({"label": "SGD baseline", "iteration": None, "params": full_params,
                    "flops": full_flops, "test_acc": _stats(accs), "runs": names})
    return out


def curves(run_dir: str | os.PathLike | runs.RunPaths) -> list[dict[str, Any]]:
    """Test accuracy per epoch of every seed of every variant: rows ``{"name", "init", "seed",
    "epoch": [..], "test_acc": [..], "complete"}`` (lists, JSON-serialisable)."""
    out = []
    for tdir in list_tickets(run_dir):
        try:
            t = read_ticket(tdir)
        except TicketError:
            continue
        for s in seeds_on_disk(tdir):
            try:
                seed = read_seed(seed_path(tdir, s))
            except TicketError:
                continue
            out.append({"name": t["name"], "init": t["init"], "seed": s,
                        "epoch": seed[EPOCH].tolist(),
                        "test_acc": seed["metrics"]["test_acc"].tolist(),
                        "complete": seed["complete"]})
    return out


def rows_to_csv(rows: list[dict[str, Any]]) -> str:
    """The summary rows as CSV (one line per variant; accuracies as fractions)."""
    cols = ["name", "iteration", "init", "kind", "reference", "budget", "epochs", "epochs_run",
            "seeds", "params",
            "params_kept", "flops", "flops_kept", "test_acc_mean", "test_acc_std", "test_acc_se",
            "val_acc_mean", "diverged", "collapsed", "verdict"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        flat = dict(r)
        for k in ("mean", "std", "se"):
            flat[f"test_acc_{k}"] = r["test_acc"][k]
        flat["val_acc_mean"] = r["val_acc"]["mean"]
        w.writerow(flat)
    return buf.getvalue()
