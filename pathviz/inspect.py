"""What the app shows about a run, headless: ``python -m pathviz.inspect RUN_DIR [--json]``.

    python -m pathviz.inspect checkpoints/demo            # a readable summary
    python -m pathviz.inspect checkpoints/demo --json     # the same, as one JSON object
    python -m pathviz.inspect checkpoints/demo --rule points:1

The JSON object is a documented interface (see the README): ``iterations``, ``params_total``,
``flops_total``, ``stop`` (null, or ``iteration``, ``params_kept``, ``flops_kept``,
``val_acc``, ``val_se``, ``test_acc_sparse``, ``rule`` and more), ``stop_reason``, ``layers``,
``final``, ``status``, ``config``, ``model``, ``data``, ``tickets``, ``baselines`` (the
pruning baselines of ``python -m pathviz.baselines``: method, iteration, reference, epochs,
params, flops, one-shot and finetuned test accuracy), ``environment`` (what
made the numbers: versions, pinned ``cpu_isa``, device; ``{}`` for older files) and
``fingerprint`` (16 hex digits hashing the path's supports, norms and metrics, not its wall
times: two people with the same fingerprint have the same path). Every figure comes from
the same functions the app uses (``pathviz.analysis.stop_of`` and the path file's metrics), so
the two never disagree. Exit codes: 0, or 2 with one sentence for a folder that is not a
readable run.

Reading only: nothing here imports torch or writes to the run folder.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from pathviz import jsonsafe, runs, tickets
from pathviz.analysis import StopRule, stop_of
from pathviz.cli import Parser
from pathviz.store import PathFileError, PathReader
from pathviz.tickets import baselines

__all__ = ["summary", "main"]


def _num(v: Any) -> Any:
    """JSON-safe number: NaN/inf become None, numpy scalars become Python ones."""
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if not math.isfinite(float(v)) else float(v)
    return v


def _last_finite(iterations: np.ndarray, values: np.ndarray) -> tuple[int | None, Any]:
    ok = np.flatnonzero(np.isfinite(values))
    if ok.size == 0:
        return None, None
    return int(iterations[ok[-1]]), _num(values[ok[-1]])


def _tickets(run_dir: Path) -> list[dict[str, Any]]:
    try:
        return tickets.summary(run_dir)
    except (OSError, ValueError, KeyError) as e:
        return [{"error": f"tickets could not be read ({e})"}]


def _baselines(run_dir: Path) -> list[dict[str, Any]]:
    try:
        return baselines.summary(run_dir)
    except baselines.BaselineError as e:
        return [{"error": str(e)}]


def summary(run_dir: str | Path, rule: StopRule | None = None) -> dict[str, Any]:
    """The run's summary as a JSON-able dict (the ``--json`` output).

    Raises ``runs.RunError`` or ``PathFileError`` (one sentence each) when ``run_dir`` is not a
    readable run.
    """
    paths = runs.paths_for_dir(run_dir)
    if not paths.path.exists():
        raise runs.RunError(f"{paths.dir} has no {runs.PATH_FILE}; pass the folder of a run "
                            f"(e.g. checkpoints/demo)")
    status = runs.read_status(paths) if paths.status.exists() else {}
    state, reason = runs.effective_state(status) if status else ("unknown", "no status file")
    with PathReader(paths.path) as r:
        its = r.iterations
        names = set(r.metric_names)
        metrics = r.metrics()
        info, data = r.model_info, r.data_info
        decision = stop_of(r, rule)
        layers = []
        if r.n_snapshots:
            snap = r.snapshot(r.n_snapshots - 1)
            for layer in r.layers:
                gn = snap[layer["name"]]["gamma_norm"]
                entry = r.entry_times(layer["name"])
                entered = entry[entry >= 0]
                layers.append({
                    "name": layer["name"], "kind": layer["kind"], "penalty": layer["penalty"],
                    "groups": int(layer["groups"]), "in_support": int(np.count_nonzero(gn > 0)),
                    "selected": float(np.count_nonzero(gn > 0) / max(int(layer["groups"]), 1)),
                    "first_entry": int(its[entered.min()]) if entered.size else None})
        final: dict[str, Any] = {}
        for name in ("test_acc", "test_acc_sparse", "val_acc", "val_acc_sparse", "params_kept",
                     "flops_kept", "train_loss", "train_acc"):
            if name in names:
                it, v = _last_finite(its, metrics[name])
                final[name] = v
                final[f"{name}_iteration"] = it
        out = {
            "run": paths.name, "dir": str(paths.dir), "schema_version": r.schema_version,
            "status": {"state": state, "reason": reason,
                       "iteration": status.get("iteration"),
                       "total_iterations": status.get("total_iterations")},
            "config": r.config, "model": info, "data": data,
            "iterations": int(its[-1]) if len(its) else 0,
            "snapshots": int(r.n_snapshots),
            "weight_iterations": [int(i) for i in r.weight_iterations],
            "params_total": info.get("params_total"), "flops_total": info.get("flops_total"),
            "layers": layers, "final": final,
            "stop": None if decision.stop is None else
            {k: _num(v) for k, v in decision.stop.to_json().items()},
            "stop_reason": decision.reason,
            "environment": r.environment,
            "fingerprint": r.fingerprint(),
        }
    out["tickets"] = _tickets(paths.dir)
    out["baselines"] = _baselines(paths.dir)
    return out


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _made_by(env: dict[str, Any]) -> str:
    """`` (torch 2.14.1, cpu_isa avx2 on cpu)``: what made the numbers, if the file says."""
    if not env:
        return ""
    parts = [f"torch {env['torch']}" if env.get("torch") else None,
             f"cpu_isa {env['cpu_isa']}" if env.get("cpu_isa") else None]
    text = ", ".join(p for p in parts if p)
    if env.get("device"):
        text += f" on {env['device']}"
    return f" ({text})" if text else ""


def _text(s: dict[str, Any]) -> str:
    model, data = s["model"], s["data"]
    lines = [f"run {s['run']} ({s['dir']})",
             f"  status: {s['status']['state']}" + (f" ({s['status']['reason']})"
                                                   if s["status"]["reason"] else ""),
             f"  model: {model.get('name', '?')}, {s['params_total']:,} params"
             # a recorded model without an example input has no MAC count
             + (f", {s['flops_total']:,} MACs" if s["flops_total"] else "")
             if s["params_total"] else f"  model: {model.get('name', '?')}",
             f"  data: {data.get('dataset', '?')} (train {data.get('n_train', '?')}, "
             f"validation {data.get('n_val', '?')}, test {data.get('n_test', '?')})",
             f"  iterations: {s['iterations']} ({s['snapshots']} snapshots, "
             f"{len(s['weight_iterations'])} with weights)",
             f"  fingerprint: {s['fingerprint']}" + _made_by(s["environment"])]
    if s["layers"]:
        lines.append("  support at the last snapshot:")
        for layer in s["layers"]:
            first = layer["first_entry"]
            lines.append(f"    {layer['name']:<24} {layer['in_support']:>5}/{layer['groups']:<5} "
                         f"selected {100 * layer['selected']:5.1f}%   first entry "
                         f"{'-' if first is None else first}")
    f = s["final"]
    lines.append(f"  last evaluation: W test {_pct(f.get('test_acc'))}, compact subnetwork "
                 f"test {_pct(f.get('test_acc_sparse'))}")
    stop = s["stop"]
    if stop is None:
        lines.append(f"  suggested stop: none ({s['stop_reason']})")
    else:
        kept = stop["params_kept"] / s["params_total"] if s["params_total"] else None
        lines += [f"  suggested stop: iteration {stop['iteration']}",
                  f"    rule: {stop['rule']}",
                  f"    validation accuracy {100 * stop['val_acc']:.1f}% ± "
                  f"{100 * stop['val_se']:.1f} (SE; best {100 * stop['best_val_acc']:.1f}% at "
                  f"iteration {stop['best_iteration']})",
                  f"    test accuracy of the compact subnetwork {_pct(stop['test_acc_sparse'])}",
                  f"    params kept {stop['params_kept']:,}" +
                  (f" of {s['params_total']:,} ({100 * kept:.1f}%)" if kept is not None else "")
                  + (f", MACs kept {stop['flops_kept']:,}" if stop["flops_kept"] is not None
                     else "")]
    for t in s["tickets"]:
        if "error" in t:
            lines.append(f"  tickets: {t['error']}")
    bl = s.get("baselines") or []
    if any("error" in b for b in bl):
        lines.append(f"  baselines: {next(b['error'] for b in bl if 'error' in b)}")
    elif bl:
        methods = sorted({b["method"] for b in bl})
        n, its = len(bl), len({b["iteration"] for b in bl})
        lines.append(f"  baselines: {n} measurement{'s' * (n != 1)} ({', '.join(methods)}) at "
                     f"{its} iteration{'s' * (its != 1)}; python -m "
                     f"pathviz.baselines {s['dir']} prints them")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit code."""
    p = Parser(prog="python -m pathviz.inspect", description=__doc__, error=ValueError)
    p.add_argument("run_dir", help="the run folder, e.g. checkpoints/demo")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--rule", default="1se", help="stop rule: 1se (default) or points:X")
    try:
        args = p.parse_args(argv)
        rule = StopRule.parse(args.rule)
        s = summary(args.run_dir, rule)
    except (ValueError, runs.RunError, PathFileError) as e:
        print(f"pathviz.inspect: error: {e}", file=sys.stderr)
        return 2
    # jsonsafe: a NaN anywhere (a ticket's, a baseline's) is null, never a bare NaN literal
    print(jsonsafe.dumps(s, indent=1, default=_num) if args.json else _text(s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
