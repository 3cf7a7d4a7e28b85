"""Every point of the accuracy-against-size chart, torch-free: the path, the baselines, the
retrained tickets and baselines, and the full networks.

One flat list of rows feeds both the figure (:func:`pathviz.plots.size_accuracy`) and its CSV,
so the file a user downloads holds exactly what the chart draws. Each row::

    series     the legend entry it belongs to (method, retrained or not, and what tells its
               variants apart: epochs, budget, iteration, reference)
    method     the style key: "path", a baseline method, a retraining init, "sgd" or "slbi-w"
    kind       "path" (W* along the path), "oneshot", "finetuned" (baseline curves), "retrained"
               (mean over seeds, with SE) or "reference" (full networks: a horizontal line)
    iteration, params, flops, acc (test accuracy, fraction), se (None for one run), seeds,
    epochs, budget, reference (the dense network a baseline came from)
"""

from __future__ import annotations

import csv
import io
import os
from typing import Any

import numpy as np

from pathviz import runs, tickets
from pathviz.store import PathFileError, PathReader
from pathviz.tickets.baselines import BaselineError, read_results

POINT_COLUMNS = ("series", "method", "kind", "iteration", "params", "flops", "acc", "se",
                 "seeds", "epochs", "budget", "reference")
PATH_SERIES = "SLBI path W* (not retrained)"

__all__ = ["POINT_COLUMNS", "PATH_SERIES", "path_points", "baseline_points", "retrained_points",
           "reference_points", "chart_points", "points_csv"]


def _row(**kw: Any) -> dict[str, Any]:
    return {k: kw.get(k) for k in POINT_COLUMNS}


def path_points(run_dir: str | os.PathLike | runs.RunPaths) -> list[dict[str, Any]]:
    """The compact W* at every evaluated snapshot (its params, FLOPs and test accuracy, as the
    worker stored them)."""
    try:
        with PathReader(runs.paths_for_dir(run_dir).path) as r:
            names = set(r.metric_names)
            if not {"test_acc_sparse", "params_kept"} <= names:
                return []
            its = r.iterations
            acc, params = r.metric("test_acc_sparse"), r.metric("params_kept")
            flops = r.metric("flops_kept") if "flops_kept" in names else np.full(len(its), np.nan)
    except (PathFileError, OSError):
        return []
    out = []
    for i in np.flatnonzero(np.isfinite(acc) & np.isfinite(params)):
        out.append(_row(series=PATH_SERIES, method="path", kind="path", iteration=int(its[i]),
                        params=int(params[i]),
                        flops=int(flops[i]) if np.isfinite(flops[i]) else None,
                        acc=float(acc[i]), seeds=1))
    return out


def _ref_words(reference: str | None) -> str:
    if reference is None:
        return "dense reference not recorded"
    return "from W at N" if reference == "self" else f"from SGD run {reference}"


def baseline_points(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``pathviz.baselines`` results as two curves per (method, reference, epochs, seed): the
    one-shot accuracy and the finetuned one."""
    out = []
    for e in entries:
        common = dict(method=e["method"], iteration=e["iteration"], params=e["params"],
                      flops=e.get("flops"), seeds=1, reference=e.get("reference"))
        seed = f", seed {e['seed']}" if e.get("seed") else ""
        one = (e.get("oneshot") or {}).get("test_acc")
        if one is not None:
            out.append(_row(**common, kind="oneshot", acc=one, epochs=0,
                            series=f"{e['method']}, one-shot, not retrained "
                                   f"({_ref_words(e.get('reference'))})"))
        fin = (e.get("finetuned") or {}).get("test_acc")
        if fin is not None:
            n = e["epochs"]
            out.append(_row(**common, kind="finetuned", acc=fin, epochs=n,
                            series=f"{e['method']}, finetuned {n} epoch{'s' * (n != 1)} "
                                   f"({_ref_words(e.get('reference'))}{seed})"))
    return out


def _init_words(row: dict[str, Any]) -> str:
    kind = row["kind"]
    if kind == "ticket":
        return f"{row['init']} (path ticket)"
    if kind == "baseline":
        return f"{row['init']} ({_ref_words(row.get('reference'))})"
    return f"{row['init']} (control)"


def retrained_points(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Retrained variants (:func:`pathviz.tickets.summary` rows with a result): mean and SE
    over seeds. Variants that differ in epochs, budget or iteration are separate series."""
    out = []
    for r in rows:
        t = r["test_acc"]
        if t["mean"] is None:
            continue
        budget = "" if r["budget"] == "epochs" else f", {r['budget']} budget"
        n, ep = r["seeds"], r["epochs_run"]
        out.append(_row(
            series=f"{_init_words(r)}, retrained {ep} epoch{'s' * (ep != 1)}{budget}, support at "
                   f"{r['iteration']:,} ({n} seed{'s' * (n != 1)})",
            method=r["init"].split(":")[0] if not r["init"].startswith("rewind:") else "rewind:K",
            kind="retrained", iteration=r["iteration"], params=r["params"], flops=r["flops"],
            acc=t["mean"], se=t["se"], seeds=n, epochs=r["epochs_run"], budget=r["budget"],
            reference=r.get("reference")))
    return out


def reference_points(refs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The full networks of :func:`pathviz.tickets.references`: the SGD baseline and the SLBI
    W at the end of the run (the per-iteration rows are already on the path)."""
    out = []
    for ref in refs:
        t = ref["test_acc"]
        if t["mean"] is None:  # a horizontal line: it needs no size
            continue
        if ref["label"] == "SGD baseline":
            n = t["n"]
            series, method = f"full SGD ({n} run{'s' * (n != 1)}: {', '.join(ref['runs'])})", \
                "sgd"
        elif ref["label"] == "SLBI W (end of run)":
            series, method = "full SLBI W (end of run)", "slbi-w"
        else:
            continue
        out.append(_row(series=series, method=method, kind="reference",
                        iteration=ref["iteration"], params=ref["params"], flops=ref["flops"],
                        acc=t["mean"], se=t["se"], seeds=t["n"]))
    return out


def chart_points(run_dir: str | os.PathLike | runs.RunPaths,
                 baselines: list[str | os.PathLike] | None = None
                 ) -> tuple[list[dict[str, Any]], str | None]:
    """(every point of the chart, a sentence when the baselines file cannot be read)."""
    paths = runs.paths_for_dir(run_dir)  # once: the calls below get this object
    problem = None
    try:
        entries = read_results(paths)
    except BaselineError as e:
        entries, problem = [], str(e)
    rows = tickets.summary(paths, baselines)
    refs = tickets.references(paths, (), baselines=baselines)
    return (path_points(paths) + baseline_points(entries) + retrained_points(rows)
            + reference_points(refs)), problem


def points_csv(points: list[dict[str, Any]]) -> str:
    """The chart's points as CSV (accuracies as fractions, one line per point)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(POINT_COLUMNS), extrasaction="ignore")
    w.writeheader()
    for p in points:
        w.writerow({k: "" if p.get(k) is None else p[k] for k in POINT_COLUMNS})
    return buf.getvalue()
