"""``python -m pathviz.baselines RUN``: pruning baselines at every saved iteration's widths.

    python -m pathviz.baselines checkpoints/demo
    python -m pathviz.baselines checkpoints/demo --methods magnitude,taylor --iterations 510,990
    python -m pathviz.baselines checkpoints/demo --reference self --epochs 2

For each saved iteration N (``--iterations all``, the default, or a comma-separated list) and each
method (``--methods``, default every method the model allows), the dense reference is pruned
to the path's widths at N (see :mod:`pathviz.tickets.baselines`), evaluated as it is (one-shot)
and after a short finetune of ``--epochs`` (default 1; 0 for one-shot only) with the run's
momentum SGD, learning rate and batch size on its training split. Results go to
``<run>/baselines.json`` after every measurement, so running the command again skips what is
done (resumable; Ctrl-C or SIGTERM stops after the current measurement).

Exit codes: 0 done or stopped, 2 bad input (one sentence, nothing written).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import signal
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from pathviz import prune, runs
from pathviz.cli import EXIT_OK, EXIT_USAGE, Parser, UsageError
from pathviz.data import DataError, check_classes, load_dataset, split_validation
from pathviz.store import PathFileError, PathReader
from pathviz.tickets import supports as sp
from pathviz.tickets import training, variants
from pathviz.tickets.baselines import (
    METHODS,
    REFERENCES,
    RESULTS_SCHEMA,
    BaselineError,
    entry_key,
    read_results,
)
from pathviz.tickets.reference import sgd_reference, taylor_batches

log = logging.getLogger("pathviz.baselines")

__all__ = ["UsageError", "Job", "prepare", "measure", "run", "main"]


@dataclass
class Job:
    """Everything a run of the command needs, checked; ``paths`` is the run's one
    :class:`pathviz.runs.RunPaths`, resolved by :func:`prepare`."""

    paths: runs.RunPaths
    iterations: list[int]
    methods: list[str]
    reference: str  # "self" or the SGD run's folder name
    reference_dir: Path | None
    reference_model: torch.nn.Module | None  # the SGD sibling's network; None for "self"
    reference_iteration: int | None
    epochs: int
    seed: int
    data: Any  # DataBundle (train/val/test split as the run had it)
    settings: Any  # pathviz.tickets.training.Settings

    @property
    def run_dir(self) -> Path:
        """The run's folder, as the user named it (for messages)."""
        return self.paths.dir


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m pathviz.baselines", description=__doc__)
    p.add_argument("run_dir", help="the SLBI run folder, e.g. checkpoints/demo")
    p.add_argument("--methods", help=f"comma-separated, of {', '.join(METHODS)} (default: every "
                                     f"method the model allows; slimming needs BatchNorm)")
    p.add_argument("--iterations", default="all",
                   help="all (every iteration with saved weights, the default) or N,M,...")
    p.add_argument("--reference", default="sgd", choices=REFERENCES,
                   help="the dense network pruned: sgd (the sibling run trained with "
                        "--optimizer sgd, its last saved weights; default) or self (this "
                        "run's W at each N)")
    p.add_argument("--epochs", type=int, default=1,
                   help="epochs of the short finetune after pruning (default 1; 0: one-shot "
                        "only)")
    p.add_argument("--seed", type=int, default=0, help="seed of the finetune (default 0)")
    p.add_argument("--data-root", help="folder of the dataset files (not needed for digits)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _iterations(text: str, saved: list[int], run_dir: Path) -> list[int]:
    if text.strip() == "all":
        return list(saved)
    try:
        its = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--iterations {text!r}: give all or whole numbers separated by commas, "
                         f"e.g. 510,990") from None
    if not its:
        raise UsageError("--iterations is empty; give all or N,M")
    for it in its:
        if it not in saved:
            if saved and it > max(saved):  # past the end: name the run's last, not neighbours
                raise UsageError(f"--iterations: {it} is past the end of the run in {run_dir}; "
                                 f"its last saved weights are at iteration {max(saved)}")
            near = sorted(sorted(saved, key=lambda s: abs(s - it))[:3])
            raise UsageError(f"--iterations: {it} has no saved weights in {run_dir}; iterations "
                             f"with weights near it: {', '.join(map(str, near)) or 'none'}")
    return sorted(set(its))


def prepare(args: argparse.Namespace) -> Job:
    """Check everything; raise UsageError on bad input. Nothing is written here."""
    run_dir = Path(args.run_dir)
    try:
        paths = runs.paths_for_dir(run_dir)
    except runs.RunError as e:
        raise UsageError(str(e)) from None
    if not paths.path.exists():
        raise UsageError(f"{run_dir} has no path file; pass the folder of an SLBI run (e.g. "
                         f"checkpoints/demo)")
    try:
        with PathReader(paths.path) as r:
            saved = [int(i) for i in r.weight_iterations]
            has_layers = bool(r.layers)
            cfg = dict(r.config)
    except PathFileError as e:
        raise UsageError(str(e)) from None
    if not has_layers or cfg.get("optimizer") == "sgd":
        raise UsageError(f"{run_dir} has no Gamma layers (an SGD run?), so it has no path to "
                         f"compare with; pass the SLBI run's folder")
    if not saved:
        raise UsageError(f"{run_dir} has no saved weights yet")
    try:
        read_results(paths)  # a corrupt results file is reported, not overwritten
    except BaselineError as e:
        raise UsageError(str(e)) from None
    iterations = _iterations(args.iterations, saved, run_dir)
    if not 0 <= args.epochs < 2 ** 31:
        raise UsageError(f"--epochs must be >= 0 and below 2**31, got {args.epochs}")
    if not 0 <= args.seed < 2 ** 32:
        raise UsageError(f"--seed must be >= 0 and below 2**32, got {args.seed}")
    sup = variants.load_support(run_dir, iterations[0])  # raises variants.UsageError
    bn = sp.has_batchnorm(sup.model)
    if args.methods is None:
        methods = [m for m in METHODS if bn or m != "slimming"]
    else:
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        bad = [m for m in methods if m not in METHODS]
        if bad or not methods:
            raise UsageError(f"--methods {args.methods!r}: choose from {', '.join(METHODS)}")
        if len(set(methods)) != len(methods):
            raise UsageError(f"--methods {args.methods!r} names a method twice")
        if "slimming" in methods and not bn:
            raise UsageError(f"slimming scores channels by their BatchNorm scale, and "
                             f"{cfg.get('model')} has no BatchNorm layer; choose magnitude, "
                             f"taylor or global-magnitude")
    ref_dir, ref_it, ref_model = None, None, None
    reference = "self"
    if args.reference == "sgd":
        ref_dir, ref_it, ref_model = sgd_reference(run_dir, sup.model)  # BaselineError
        reference = ref_dir.name
    try:
        data = load_dataset(cfg["dataset"], args.data_root)
        check_classes(data, sup.model, args.data_root)
    except (DataError, KeyError) as e:
        raise UsageError(str(e)) from None
    data = split_validation(data, float(cfg.get("val_fraction") or 0.0),
                            int(cfg.get("split_seed", 0)))
    if cfg.get("lr") is None:
        raise UsageError(f"{run_dir} does not record its learning rate")
    st = training.Settings(epochs=max(args.epochs, 1), budget="epochs", lr=float(cfg["lr"]),
                          lr_schedule=cfg.get("lr_schedule") or "none",
                          batch_size=int(cfg.get("batch_size") or 64),
                          momentum=float(cfg.get("momentum", 0.9)),
                          weight_decay=float(cfg.get("weight_decay", 0.0)),
                          nesterov=bool(cfg.get("nesterov", False)),
                          threads=int(cfg.get("threads", 1)))
    return Job(paths, iterations, methods, reference, ref_dir, ref_model, ref_it, args.epochs,
               args.seed, data, st)


def _path_at(paths: runs.RunPaths, iteration: int) -> dict[str, Any]:
    """The path's own compact W* at ``iteration``: its test and validation accuracy."""
    with PathReader(paths.path) as r:
        its = r.iterations
        i = int(np.searchsorted(its, iteration, side="right")) - 1
        out = {}
        for k in ("test_acc_sparse", "val_acc_sparse"):
            v = r.metric(k)[i] if k in r.metric_names and i >= 0 else float("nan")
            out[k] = float(v) if np.isfinite(v) else None
    return out


def measure(job: Job, sup: Any, method: str, reference: torch.nn.Module,
            scores: sp.Scores) -> dict[str, Any]:
    """One entry of the results file: the baseline of ``method`` at ``sup``'s widths, one-shot
    and finetuned."""
    path_params, path_flops = prune.count(sp.compact_copy(sup.model, sup.plan, sup.example),
                                          sup.example)
    if method == "global-magnitude":
        plan = sp.global_plan(reference, sup.plan, scores, path_params, sup.example)
    else:
        plan = sp.baseline_plan(sup.plan, scores)
    small = sp.compact_copy(reference, plan, sup.example)
    params, flops = prune.count(small, sup.example)
    rows = training.retrain_seed(small.train(), job.data, job.settings, job.epochs, job.seed,
                                ticket=f"{method}@{sup.iteration}")
    one, last = rows[0], rows[-1]

    def accs(row: dict[str, Any]) -> dict[str, Any]:
        return {k: (float(row[k]) if np.isfinite(row[k]) else None)
                for k in ("test_acc", "val_acc")}

    path = _path_at(job.paths, sup.iteration)
    return {"method": method, "iteration": int(sup.iteration), "reference": job.reference,
            "reference_iteration": (sup.iteration if job.reference == "self"
                                    else job.reference_iteration),
            "epochs": int(job.epochs), "seed": int(job.seed),
            "params": int(params), "flops": int(flops), "params_full": int(sup.params_full),
            "flops_full": int(sup.flops_full), "path_params": int(path_params),
            "path_flops": int(path_flops), "path_test_acc": path["test_acc_sparse"],
            "path_val_acc": path["val_acc_sparse"],
            "widths": dict(plan.kept), "support": sp.kept_of(plan),
            "oneshot": accs(one), "finetuned": accs(last) if job.epochs > 0 else None,
            "notes": list(scores.notes), "created": time.time()}


def _save(paths: runs.RunPaths, entries: list[dict[str, Any]]) -> None:
    runs.write_json_atomic(paths.baselines, {"schema_version": RESULTS_SCHEMA,
                                             "run": paths.name, "results": entries})
    runs.record_files(paths, runs.BASELINES_FILE)  # --overwrite of the run removes it too


@contextlib.contextmanager
def measuring(run_dir: Path | runs.RunPaths) -> Iterator[None]:
    """Hold ``<run>/baselines.lock`` (``flock``: the kernel drops it if this process dies) while
    measuring, so two commands never write ``baselines.json`` at once; UsageError if another
    holds it. The file is removed on release."""
    paths = runs.paths_for_dir(run_dir)
    lock = paths.baselines_lock
    for _ in range(100):
        fd = os.open(lock, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UsageError(f"{paths.dir} is being measured by another python -m "
                             f"pathviz.baselines; wait for it to finish or stop it") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock, follow_symlinks=False).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # its holder released (and removed) it meanwhile: take the new one
    else:
        raise UsageError(f"could not take {lock}; try again")
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)


def run(job: Job, progress: bool = True) -> int:
    """Measure every (iteration, method) not in the results file yet; returns the exit code."""
    entries = read_results(job.paths)
    done = {entry_key(e) for e in entries}
    todo = [(it, m) for it in job.iterations for m in job.methods
            if (m, it, job.reference, job.epochs, job.seed) not in done]
    log.info("%d measurement(s) to do, %d already in %s", len(todo),
             len(job.iterations) * len(job.methods) - len(todo), runs.BASELINES_FILE)
    stop: list[str] = []
    old = {s: signal.signal(s, lambda signum, _f: stop.append(signal.Signals(signum).name))
           for s in (signal.SIGTERM, signal.SIGINT)}
    bar = None
    if progress:
        bar = tqdm(total=len(todo), unit="baseline", dynamic_ncols=True)
    ref_sgd = job.reference_model
    # seed 0, not the finetune's: a support does not depend on the seed it is trained with
    batches = (taylor_batches(job.data, job.settings.batch_size)
               if "taylor" in job.methods else None)
    cache: dict[tuple[str, int], sp.Scores] = {}
    try:
        for it in sorted({it for it, _ in todo}):
            sup = variants.load_support(job.run_dir, it)  # raises UsageError
            reference = ref_sgd if ref_sgd is not None else sup.model
            for m in [m for i, m in todo if i == it]:
                if stop:
                    log.info("stopped by %s; run the same command to resume", stop[0])
                    return EXIT_OK
                # an SGD reference scores the same at every N: score it once per method
                key = (m, -1 if ref_sgd is not None else it)
                if key not in cache:
                    cache[key] = sp.score_sets(reference, sup.plan, sup.example, m, batches)
                entry = measure(job, sup, m, reference, cache[key])
                entries = [e for e in entries if entry_key(e) != entry_key(entry)] + [entry]
                _save(job.paths, entries)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        for s, h in old.items():
            signal.signal(s, h)
    return EXIT_OK


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}"


def table(job: Job) -> str:
    """The results of this command's settings as a text table: one line per iteration, the
    path's compact W* and each method's test accuracy one-shot -> finetuned (a method whose
    parameter count differs from W*'s gives its own in brackets)."""
    rows = [e for e in read_results(job.paths)
            if e["reference"] == job.reference and e["epochs"] == job.epochs
            and e["seed"] == job.seed and e["iteration"] in job.iterations
            and e["method"] in job.methods]
    by_it: dict[int, dict[str, dict[str, Any]]] = {}
    for e in rows:
        by_it.setdefault(e["iteration"], {})[e["method"]] = e
    ref = (f"{job.reference} (iteration {job.reference_iteration})" if job.reference != "self"
           else "self (W at N)")
    what = "one-shot" + (f" -> +{job.epochs} epoch{'s' * (job.epochs != 1)}" if job.epochs
                         else "")
    width = 17 if job.epochs else 8
    lines = [f"test accuracy (%) of each baseline, {what}; reference {ref}",
             f"{'iteration':>9}  {'params':>8}  {'W* %':>6}  "
             + "  ".join(f"{m:>{width}}" for m in job.methods)]
    for it in sorted(by_it):
        got = by_it[it]
        first = next(iter(got.values()))
        cells = []
        for m in job.methods:
            e = got.get(m)
            if e is None:
                cells.append(f"{'-':>{width}}")
                continue
            text = _pct(e["oneshot"]["test_acc"])
            if job.epochs:
                text += f" -> {_pct((e.get('finetuned') or {}).get('test_acc'))}"
            if e["params"] != e["path_params"]:
                text += f" ({e['params']:,})"
            cells.append(f"{text:>{width}}")
        lines.append(f"{it:>9,}  {first['path_params']:>8,}  "
                     f"{_pct(first.get('path_test_acc')):>6}  " + "  ".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        args = build_parser().parse_args(argv)
        job = prepare(args)
        with measuring(job.paths):
            code = run(job, progress=not args.no_progress)
    except (UsageError, variants.UsageError, runs.RunError, BaselineError) as e:
        print(f"pathviz.baselines: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:
        if not runs.is_disk_full(e):
            raise
        # results are written whole after each measurement, so the file keeps every one that
        # finished and the same command measures only the rest
        name = Path(getattr(e, "filename", None) or runs.BASELINES_FILE).name
        print(f"pathviz.baselines: error: disk full: {name} could not be written; free space, "
              f"then run the same command to resume (finished measurements are kept)",
              file=sys.stderr)
        return EXIT_USAGE
    if code == EXIT_OK:
        print(table(job))
    return code
