"""Retrained tickets on disk: the schema of ``<run>/tickets/``, its readers and the honest summary.

A *ticket* is one retraining variant of the support at one iteration (``python -m
pathviz.retrain``): the compact subnetwork with one initialisation, trained with plain momentum
SGD for one budget, over one or more seeds. Its controls are the same retraining with another
initialisation or another structure of the same size. This module reads them without torch, so
the app and ``pathviz.inspect --json`` (key ``tickets``) can show them.

Layout (schema ``TICKET_SCHEMA = "1.0"``; every name is a constant below)::

    <run>/tickets/
        launch.json                the last background launch: {pid, pid_start, cmd, log, started}
        launch.log                 its output
        <name>/                    one variant, e.g. it510-rewind-epochs70
            ticket.json            what the variant is (keys below); seeds grow when added
            seed_<s>.h5            one per seed, rewritten atomically after every epoch
            seed_<s>.resume.pt     model and optimizer after the last finished epoch (torch)
            status.json, worker.lock   state, progress, heartbeat and the lock of the retrain
                                   process, as in a run folder (pathviz.runs names)

``ticket.json``::

    schema_version "1.0"; name; run (folder name); iteration N (the support); init (the MODE:
    rewind, rewind:K, finetune, reinit, random-support, uniform, or a pruning baseline:
    magnitude, slimming, taylor, global-magnitude, global-magnitude-reinit); kind ("ticket" for
    rewind, rewind:K and finetune, "baseline" for the pruning baselines, "control" for the
    others); reference (baselines: the SGD run's folder name or "self"; null otherwise);
    source_iteration (the saved iteration the initial weights come from: 0, K or N, for a
    baseline the reference's; null for a fresh initialisation); epochs (asked);
    budget ("epochs" or "flops"); epochs_run (trained: epochs, or for ``flops`` epochs scaled by
    flops_full / flops so each variant spends the full model's training FLOPs); lr, lr_schedule,
    batch_size, momentum, weight_decay, nesterov; model, dataset; widths and widths_full;
    params, flops (the trained network: parameters and multiply-accumulates of one forward pass);
    params_full, flops_full (the full model); kept {layer: groups kept}; groups {layer: groups};
    seeds (every seed asked so far); created (unix time).

``seed_<s>.h5`` (HDF5, plain, never under SWMR: the file is small and replaced whole, so a reader
never sees half a file and a killed retrain leaves the last finished epoch)::

    attrs   schema_version "1.0"; ticket (name); seed; complete (1 once every epoch is done);
            diverged (1 if the loss became non-finite and training stopped); support (JSON
            {layer: [kept group indices]}: for random-support the support that seed drew)
    epoch            [E+1] int64    0 is the network before retraining
    iteration        [E+1] int64    SGD steps taken
    time             [E+1] float64  seconds of retraining
    metrics/<name>   [E+1] float64  train_loss, train_acc (NaN at epoch 0), lr, val_loss,
                                    val_acc, test_loss, test_acc (of the retrained network)

The summary reports each variant's *final* test accuracy (last epoch, never the best one: that
would pick on the test set), as mean, sample std and standard error (std / sqrt(seeds)) over
seeds, and compares each ticket with the controls at the same iteration and budget: it *beats* a
control when the mean difference exceeds two standard errors of the difference.
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pathviz import runs

TICKET_SCHEMA = "1.0"
TICKET_FILE = "ticket.json"
SEED_FILE = "seed_{seed}.h5"
RESUME_FILE = "seed_{seed}.resume.pt"
LAUNCH_FILE = "launch.json"
LAUNCH_LOG = "launch.log"

ATTR_SCHEMA = "schema_version"
ATTR_TICKET = "ticket"
ATTR_SEED = "seed"
ATTR_COMPLETE = "complete"
ATTR_DIVERGED = "diverged"
ATTR_SUPPORT = "support"
EPOCH = "epoch"
ITERATION = "iteration"
TIME = "time"
METRICS = "metrics"
SEED_METRICS = ("train_loss", "train_acc", "lr", "val_loss", "val_acc", "test_loss", "test_acc")

MODES = ("rewind", "rewind:K", "finetune", "reinit", "random-support", "uniform",
         "magnitude", "slimming", "taylor", "global-magnitude", "global-magnitude-reinit")
TICKET_MODES = ("rewind", "finetune")  # plus rewind:K
CONTROL_MODES = ("reinit", "random-support", "uniform")
# pruning baselines (pathviz.baselines): the path's widths chosen by a pruning method from a
# dense reference, finetuned from its pruned weights; global-magnitude-reinit is the globally
# chosen widths freshly initialised (the per-layer methods' reinit is ``reinit`` itself: same
# widths)
BASELINE_MODES = ("magnitude", "slimming", "taylor", "global-magnitude",
                  "global-magnitude-reinit")
BUDGETS = ("epochs", "flops")
# settings that make two retrainings the same variant (seeds may be added later)
SETTINGS = ("iteration", "init", "epochs", "budget", "lr", "lr_schedule", "batch_size",
            "momentum", "weight_decay", "nesterov", "dataset", "reference")
Z_BEATS = 2.0  # a difference counts when it exceeds this many standard errors

__all__ = ["TICKET_SCHEMA", "MODES", "BUDGETS", "TicketError", "parse_mode", "mode_kind",
           "default_name", "ticket_dir", "list_tickets", "read_ticket", "read_seed",
           "write_seed", "ticket_state", "summary", "references", "curves", "sgd_baselines",
           "retrain_command", "start_retrain", "launch_state", "stop_retrain", "rows_to_csv"]


class TicketError(ValueError):
    """A ticket request or folder that cannot be used; the message says why."""


# ---- names -----------------------------------------------------------------------------------


def parse_mode(mode: str) -> tuple[str, int | None]:
    """(``base``, K) of an init MODE: ``rewind:60`` -> ("rewind", 60); others have K None."""
    base, sep, k = mode.strip().partition(":")
    if base == "rewind" and sep:
        if not k.isdigit():
            raise TicketError(f"--init {mode!r}: rewind:K needs a saved iteration K, e.g. "
                              f"rewind:60")
        return "rewind", int(k)
    if sep or base not in MODES or base == "rewind:K":
        raise TicketError(f"unknown --init {mode!r}; choose one of {', '.join(MODES)}")
    return base, None


def mode_kind(mode: str) -> str:
    """``"ticket"`` for the inits that keep the path's weights, ``"baseline"`` for a pruning
    method's support, ``"control"`` otherwise."""
    base = parse_mode(mode)[0]
    return "ticket" if base in TICKET_MODES else "baseline" if base in BASELINE_MODES \
        else "control"


def default_name(iteration: int, mode: str, budget: str, epochs: int,
                 reference: str | None = None) -> str:
    """Folder name of a variant, e.g. ``it510-rewind-k30-epochs70``; a baseline pruned from the
    run's own W (``reference="self"``) ends in ``-self``."""
    base, k = parse_mode(mode)
    slug = base if k is None else f"{base}-k{k}"
    tail = "-self" if reference == "self" else ""
    return f"it{int(iteration)}-{slug}-{budget}{int(epochs)}{tail}"


def ticket_dir(run_dir: str | os.PathLike, name: str) -> Path:
    """``<run>/tickets/<name>`` (the name is checked like a run name)."""
    return runs.paths_for_dir(run_dir).tickets / runs.validate_name(name)


def seed_path(tdir: Path, seed: int) -> Path:
    return tdir / SEED_FILE.format(seed=int(seed))


def resume_path(tdir: Path, seed: int) -> Path:
    return tdir / RESUME_FILE.format(seed=int(seed))


# ---- reading and writing ---------------------------------------------------------------------


def read_ticket(tdir: str | os.PathLike) -> dict[str, Any]:
    """The variant description ``ticket.json`` of a ticket folder."""
    p = Path(tdir) / TICKET_FILE
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise TicketError(f"{p} cannot be read ({e})") from None
    if str(data.get("schema_version", "")).split(".")[0] != TICKET_SCHEMA.split(".")[0]:
        raise TicketError(f"{p} has schema {data.get('schema_version')!r}; this pathviz reads "
                          f"{TICKET_SCHEMA}")
    return data


def list_tickets(run_dir: str | os.PathLike) -> list[Path]:
    """Ticket folders of a run (those with a ``ticket.json``), sorted by name."""
    root = runs.paths_for_dir(run_dir).tickets
    if not root.is_dir():
        return []
    return sorted(d for d in root.iterdir() if (d / TICKET_FILE).is_file())


def seeds_on_disk(tdir: Path) -> list[int]:
    """Seeds that have a seed file, sorted."""
    out = []
    for p in tdir.glob("seed_*.h5"):
        s = p.stem[len("seed_"):]
        if s.isdigit():
            out.append(int(s))
    return sorted(out)


def read_seed(path: str | os.PathLike) -> dict[str, Any]:
    """One seed file: ``{"seed", "complete", "diverged", "support", "epoch", "iteration",
    "time", "metrics": {name: [E+1] float64}}``."""
    try:
        with h5py.File(path, "r") as f:
            a = f.attrs
            return {"seed": int(a[ATTR_SEED]), "complete": bool(a[ATTR_COMPLETE]),
                    "diverged": bool(a[ATTR_DIVERGED]),
                    "support": json.loads(_str(a.get(ATTR_SUPPORT, "{}"))),
                    EPOCH: f[EPOCH][()], ITERATION: f[ITERATION][()], TIME: f[TIME][()],
                    "metrics": {k: f[f"{METRICS}/{k}"][()] for k in f[METRICS]}}
    except (OSError, KeyError, ValueError) as e:
        raise TicketError(f"{path} cannot be read ({e})") from None


def write_seed(path: str | os.PathLike, *, ticket: str, seed: int, rows: Sequence[dict],
               complete: bool, diverged: bool = False,
               support: dict[str, list[int]] | None = None) -> None:
    """Replace a seed file with ``rows`` (dicts with epoch, iteration, time and the metrics),
    atomically (a temp file moved into place).

    The file is made in memory and written with plain file I/O
    (:func:`pathviz.runs.write_bytes_atomic`): on a full disk that is an ``OSError`` naming
    ``path``, the temp file is removed and the previous seed file stays (h5py writing straight
    to disk reports a full disk in its own words, or at close, or not at all).
    """
    path = Path(path)
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.attrs[ATTR_SCHEMA] = TICKET_SCHEMA
        f.attrs[ATTR_TICKET] = ticket
        f.attrs[ATTR_SEED] = int(seed)
        f.attrs[ATTR_COMPLETE] = int(bool(complete))
        f.attrs[ATTR_DIVERGED] = int(bool(diverged))
        f.attrs[ATTR_SUPPORT] = json.dumps(support or {})
        f[EPOCH] = np.array([r[EPOCH] for r in rows], np.int64)
        f[ITERATION] = np.array([r[ITERATION] for r in rows], np.int64)
        f[TIME] = np.array([r[TIME] for r in rows], np.float64)
        g = f.create_group(METRICS)
        for m in SEED_METRICS:
            g[m] = np.array([r.get(m, np.nan) for r in rows], np.float64)
    runs.write_bytes_atomic(path, buf.getbuffer())


def ticket_state(tdir: Path) -> dict[str, Any]:
    """Status of a ticket folder as a user should see it: state, reason, seed, epoch, done,
    total (iterations over all seeds), from its status sidecar."""
    st = runs.read_status(runs.RunPaths(tdir))
    state, reason = runs.effective_state(st)
    return {"state": state, "reason": reason, "seed": st.get("seed"), "epoch": st.get("epoch"),
            "epochs": st.get("epochs"), "done": int(st.get("done", 0)),
            "total": int(st.get("total", 0))}


def _str(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


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
    from pathviz.data import DATASETS  # numpy-only at import

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


def summary(run_dir: str | os.PathLike,
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
    rows = []
    for tdir in list_tickets(run_dir):
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
    base = _baseline(run_dir, baselines) if rows else None
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


def _baseline(run_dir: str | os.PathLike,
              baselines: Sequence[str | os.PathLike] | None) -> dict[str, Any] | None:
    """The SGD baseline as a pseudo-row for :func:`_compare`, or None without one."""
    paths = [Path(b) for b in baselines] if baselines is not None else sgd_baselines(run_dir)
    accs = [a for a in (_final_metric(runs.paths_for_dir(b).path, "test_acc") for b in paths)
            if a is not None]
    if not accs:
        return None
    return {"name": "SGD baseline", "init": "SGD baseline", "test_acc": _stats(accs)}


# ---- the references: full SLBI W, W* at N, SGD baseline --------------------------------------


def _read_config(run_dir: Path) -> dict[str, Any] | None:
    try:
        cfg = json.loads(runs.paths_for_dir(run_dir).config.read_text())
        return cfg if isinstance(cfg, dict) else None
    except (OSError, ValueError, runs.RunError):
        return None


def sgd_baselines(run_dir: str | os.PathLike) -> list[Path]:
    """Sibling run folders trained with ``"optimizer": "sgd"`` on the same dataset and model;
    the one with the same seed first."""
    run_dir = Path(run_dir)
    cfg = _read_config(run_dir) or {}
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
    from pathviz.store import PathFileError, PathReader

    try:
        with PathReader(path) as r:
            if name not in r.metric_names:
                return None
            a = r.metric(name)
    except (PathFileError, OSError):
        return None
    a = a[np.isfinite(a)]
    return float(a[-1]) if a.size else None


def references(run_dir: str | os.PathLike, iterations: Sequence[int] = (),
               baselines: Sequence[str | os.PathLike] | None = None) -> list[dict[str, Any]]:
    """Rows to draw beside the tickets: the full SLBI W at the end of the run; at each of
    ``iterations``, SLBI W and the compact W* (no retraining); and the SGD baseline (mean over
    the runs in ``baselines``, default :func:`sgd_baselines`). Each row: label, iteration (None
    for end-of-run rows), params, flops, test_acc ``{"mean", "std", "se", "n"}``, runs."""
    from pathviz.store import PathFileError, PathReader

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
        for tdir in list_tickets(run_dir):
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
    base = [Path(b) for b in baselines] if baselines is not None else sgd_baselines(run_dir)
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


def curves(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
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
    import csv
    import io

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


# ---- launching a retrain in the background ---------------------------------------------------


def retrain_command(run_dir: str | os.PathLike, iteration: int, modes: Sequence[str], *,
                    epochs: int, seeds: Sequence[int], budget: str = "epochs",
                    lr: float | None = None, lr_schedule: str | None = None,
                    data_root: str | None = None) -> list[str]:
    """The ``python -m pathviz.retrain`` command line for these variants."""
    cmd = [sys.executable, "-m", "pathviz.retrain", str(run_dir), "--iteration", str(iteration),
           "--init", ",".join(modes), "--epochs", str(epochs),
           "--seeds", ",".join(str(int(s)) for s in seeds), "--budget", budget, "--no-progress"]
    if lr is not None:
        cmd += ["--lr", str(lr)]
    if lr_schedule:
        cmd += ["--lr-schedule", lr_schedule]
    if data_root:
        cmd += ["--data-root", str(data_root)]
    return cmd


def launch_state(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The last background launch of the run: its record plus ``alive`` (bool) and
    ``log_tail`` (last lines of its output); ``{}`` if there was none."""
    root = runs.paths_for_dir(run_dir).tickets
    try:
        rec = json.loads((root / LAUNCH_FILE).read_text())
    except (OSError, ValueError):
        return {}
    rec["alive"] = runs.is_alive(rec.get("pid"), rec.get("pid_start"))
    try:
        rec["log_tail"] = (root / LAUNCH_LOG).read_text(errors="replace")[-2000:]
    except OSError:
        rec["log_tail"] = ""
    return rec


def start_retrain(run_dir: str | os.PathLike, iteration: int, modes: Sequence[str], *,
                  epochs: int, seeds: Sequence[int], budget: str = "epochs",
                  lr: float | None = None, lr_schedule: str | None = None,
                  data_root: str | None = None) -> int:
    """Start ``python -m pathviz.retrain`` as its own process session; returns its pid.

    One background retrain per run at a time (the variants run one after another in it, each
    folder under its own lock): a second start while one lives raises TicketError.
    """
    for m in modes:
        parse_mode(m)
    if budget not in BUDGETS:
        raise TicketError(f"budget must be one of {', '.join(BUDGETS)}, got {budget!r}")
    prev = launch_state(run_dir)
    if prev.get("alive"):
        raise TicketError(f"a retrain of this run is already running (process {prev['pid']}); "
                          f"wait for it or stop it")
    root = runs.paths_for_dir(run_dir).tickets
    root.mkdir(parents=True, exist_ok=True)
    cmd = retrain_command(run_dir, iteration, modes, epochs=epochs, seeds=seeds, budget=budget,
                          lr=lr, lr_schedule=lr_schedule, data_root=data_root)
    with open(root / LAUNCH_LOG, "wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    # reap it when it ends: nothing else in this (long-lived, e.g. the app's) process waits for
    # it, and an exited child that nobody waits for stays a zombie until this process exits
    threading.Thread(target=proc.wait, name=f"reap-retrain-{proc.pid}", daemon=True).start()
    runs.write_json_atomic(root / LAUNCH_FILE, {
        "pid": proc.pid, "pid_start": runs.process_start_time(proc.pid), "cmd": cmd,
        "log": str(root / LAUNCH_LOG), "started": time.time()})
    return proc.pid


def stop_retrain(run_dir: str | os.PathLike, timeout: float = 15.0) -> bool:
    """SIGTERM the run's background retrain (it keeps the last finished epoch of each seed and
    marks its folder stopped); True if one was running."""
    import signal

    rec = launch_state(run_dir)
    if not rec.get("alive"):
        return False
    pid = int(rec["pid"])
    try:
        os.killpg(os.getpgid(pid), signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not runs.is_alive(pid, rec.get("pid_start")):
            return True
        time.sleep(0.05)
    try:
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True
