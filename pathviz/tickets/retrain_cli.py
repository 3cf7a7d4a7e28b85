"""Retrain the support at an iteration: the winning ticket and the controls that test it.

    python -m pathviz.retrain checkpoints/demo --iteration stop --init rewind --epochs 70 \\
        --seeds 0,1,2
    python -m pathviz.retrain checkpoints/demo --iteration stop \\
        --init rewind,finetune,reinit,random-support,uniform --epochs 70 --seeds 0,1,2

``--iteration stop`` is the run's suggested stop (:func:`pathviz.analysis.stop_of`, as
``pathviz.inspect`` and the app show it); any iteration with saved weights can be given instead.

The network is the compact subnetwork of the support at N (as ``pathviz.export`` writes it,
channels cut physically), trained with plain momentum SGD (``torch.optim.SGD``, the run's
momentum, weight decay and batch size) on the run's training split. ``--init`` (one MODE or a
comma-separated list, trained one after the other):

    rewind          the run's iteration-0 weights on the kept groups (DessiLBI authors; Frankle &
                    Carbin's lottery ticket)
    rewind:K        the weights saved at iteration K on the kept groups (late rewinding)
    finetune        W* at N: the trained weights on the support
    reinit          a fresh initialisation of the same narrow network ("scratch", Liu et al.,
                    Rethinking the Value of Network Pruning)
    random-support  as many groups per layer as the support, chosen at random (per seed), with
                    the iteration-0 weights
    uniform         every layer narrowed by one factor to the support's parameter count, fresh
                    initialisation
    magnitude, slimming, taylor, global-magnitude
                    a pruning baseline (pathviz.baselines): the support's widths chosen by that
                    method from the dense reference (--reference: the SGD sibling run's last
                    weights, or self: W at N), finetuned from the pruned reference weights
    global-magnitude-reinit
                    global-magnitude's widths, fresh initialisation (the per-layer methods
                    keep the support's widths, so their reinit is reinit itself)

``--budget flops`` trains each variant for epochs x (full model FLOPs / its FLOPs), so every
variant spends the full model's training FLOPs (Liu et al.'s Scratch-B).

Only structured (group) supports narrow the network; layers with an element-wise (l1) Gamma are
retrained dense. Each variant writes ``<run>/tickets/<name>/`` (schema in ``pathviz.tickets``);
running the same command again resumes every unfinished seed from its last finished epoch, and
adding seeds to a finished variant trains only the new ones.

Exit codes: 0 done or stopped (SIGTERM/Ctrl-C; run it again to resume), 2 bad input (one
sentence, nothing written).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pathviz import prune, runs, tickets
from pathviz.cli import EXIT_OK, EXIT_USAGE, Parser
from pathviz.data import (
    DataBundle,
    DataError,
    check_classes,
    load_dataset,
    split_validation,
)
from pathviz.models import count_params, widths_of
from pathviz.run_model import ExportError, resolve_iteration
from pathviz.store import PathFileError, PathReader
from pathviz.tickets import reference
from pathviz.tickets import supports as sp
from pathviz.tickets.baselines import BaselineError
from pathviz.tickets.training import Settings, _Progress, retrain_seed
from pathviz.tickets.variants import Support, UsageError, build_variant, load_support

log = logging.getLogger("pathviz.retrain")

__all__ = ["UsageError", "Variant", "build_parser", "prepare", "run", "main"]


# ---- the command ---------------------------------------------------------------------------


@dataclass
class Variant:
    mode: str
    name: str
    dir: Path
    description: dict[str, Any]


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m pathviz.retrain", description=__doc__)
    p.add_argument("run_dir", help="the run folder, e.g. checkpoints/demo")
    p.add_argument("--iteration", required=True, metavar="N|stop",
                   help="the support to retrain: an iteration with saved weights, or stop: the "
                        "run's suggested stop (as pathviz.inspect shows it)")
    p.add_argument("--init", required=True,
                   help=f"one or more (comma-separated) of {', '.join(tickets.MODES)}")
    p.add_argument("--epochs", type=int, required=True, help="training epochs (the budget)")
    p.add_argument("--lr", type=float, help="learning rate (default: the run's)")
    p.add_argument("--lr-schedule", choices=("none", "cosine"),
                   help="none or cosine (default: the run's)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    p.add_argument("--budget", default="epochs", choices=tickets.BUDGETS,
                   help="epochs: every variant trains --epochs; flops: scaled to the full "
                        "model's training FLOPs")
    p.add_argument("--reference", default="sgd", choices=("sgd", "self"),
                   help="the dense network a pruning baseline is cut from: sgd (the sibling "
                        "run trained with --optimizer sgd, its last weights; default) or self "
                        "(this run's W at N)")
    p.add_argument("--data-root", help="folder of the dataset files (not needed for digits)")
    p.add_argument("--name", help="folder name under <run>/tickets (one --init only)")
    p.add_argument("--device", default="cpu",
                   help="where to train: cpu (default), cuda or cuda:N (the network is built "
                        "on the CPU, then moved)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _device(spec: str) -> str:
    if spec == "cpu":
        return spec
    if not spec.startswith("cuda"):
        raise UsageError(f"--device must be cpu, cuda or cuda:N, got {spec!r}")
    if not torch.cuda.is_available():
        raise UsageError(f"--device {spec} asked for CUDA, but torch sees no CUDA device")
    try:
        torch.device(spec)
    except RuntimeError:
        raise UsageError(f"--device {spec!r} is not a device name (cuda or cuda:N)") from None
    return spec


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--seeds {text!r}: give whole numbers separated by commas, e.g. "
                         f"0,1,2") from None
    if not seeds or any(not 0 <= s < 2 ** 32 for s in seeds) or len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds {text[:40]!r}: give distinct whole numbers from 0 to "
                         f"2**32 - 1, e.g. 0,1,2")
    return seeds


def prepare(args: argparse.Namespace) -> tuple[Support, DataBundle, Settings, list[Variant],
                                               list[int]]:
    """Check everything; raise UsageError on bad input. Nothing is written here."""
    run_dir = Path(args.run_dir)
    try:
        paths = runs.paths_for_dir(run_dir)
    except runs.RunError as e:
        raise UsageError(str(e)) from None
    if not paths.path.exists():
        raise UsageError(f"{run_dir} has no path file; is it a run folder?")
    try:
        args.iteration = resolve_iteration(run_dir, args.iteration)  # a number, or "stop"
    except ExportError as e:
        raise UsageError(str(e)) from None
    modes = [m.strip() for m in args.init.split(",") if m.strip()]
    if not modes:
        raise UsageError(f"--init needs one of {', '.join(tickets.MODES)}")
    try:
        parsed = [tickets.parse_mode(m) for m in modes]
    except tickets.TicketError as e:
        raise UsageError(str(e)) from None
    if len(set(modes)) != len(modes):
        raise UsageError(f"--init {args.init!r} names a mode twice")
    if not 1 <= args.epochs < 2 ** 31:
        raise UsageError(f"--epochs must be >= 1 and below 2**31, got {args.epochs}")
    if args.lr is not None and not 0 < args.lr < float("inf"):  # (NaN fails it too)
        raise UsageError(f"--lr must be a finite number > 0, got {args.lr}")
    if args.name and len(modes) > 1:
        raise UsageError("--name names one folder; give a single --init with it")
    seeds = _seeds(args.seeds)
    device = _device(args.device)
    try:
        with PathReader(paths.path) as r:
            saved = set(int(i) for i in r.weight_iterations)
            has_layers = bool(r.layers)
    except PathFileError as e:
        raise UsageError(str(e)) from None
    if not has_layers:
        raise UsageError(f"{run_dir} has no Gamma layers (an SGD run?), so it has no support to "
                         f"retrain")
    need = {args.iteration} | {0 if k is None else k for b, k in parsed
                               if b in ("rewind", "random-support")}
    for it in sorted(need):
        if it not in saved:
            near = sorted(saved, key=lambda s: abs(s - it))[:3]
            what = "--iteration" if it == args.iteration else "the rewind point"
            if saved and it > max(saved):  # past the end: name the run's last, not neighbours
                raise UsageError(f"{what} {it} is past the end of the run in {run_dir}; its "
                                 f"last saved weights are at iteration {max(saved)}")
            raise UsageError(f"{what} {it} has no saved weights in {run_dir}; iterations with "
                             f"weights near it: {', '.join(map(str, sorted(near))) or 'none'}")
    sup = load_support(run_dir, args.iteration)
    cfg = sup.cfg
    fresh = [m for m, (b, _) in zip(modes, parsed)
             if b in ("reinit", "uniform", "global-magnitude-reinit")]
    if fresh and widths_of(sup.model) is None:
        raise UsageError(f"--init {','.join(fresh)} rebuilds the network with other widths, "
                         f"which only pathviz's own models can (lenet5, cifar_vgg_*, "
                         f"cifar_resnet_*); {cfg.get('model')} supports rewind, finetune and "
                         f"random-support")
    try:
        # the data root comes from this command only: a run folder is data, never code
        data = load_dataset(cfg["dataset"], args.data_root)
        check_classes(data, sup.model, args.data_root)  # an image folder's class count
    except DataError as e:
        raise UsageError(str(e)) from None
    vf = float(cfg.get("val_fraction") or 0.0)
    data = split_validation(data, vf, int(cfg.get("split_seed", 0)))
    base_modes = [b for b, _ in parsed if b in tickets.BASELINE_MODES]
    if base_modes:
        _baseline_reference(sup, args.reference, base_modes, data, cfg)
    if args.lr is None and cfg.get("lr") is None:
        raise UsageError(f"{run_dir} does not record its learning rate; pass --lr")
    st = Settings(epochs=args.epochs, budget=args.budget,
                  lr=float(args.lr if args.lr is not None else cfg["lr"]),
                  lr_schedule=args.lr_schedule or cfg.get("lr_schedule") or "none",
                  batch_size=int(cfg.get("batch_size") or 64),
                  momentum=float(cfg.get("momentum", 0.9)),
                  weight_decay=float(cfg.get("weight_decay", 0.0)),
                  nesterov=bool(cfg.get("nesterov", False)), threads=int(cfg.get("threads", 1)),
                  device=device, workers=int(cfg.get("workers") or 0))
    variants = []
    for mode in modes:
        is_base = tickets.parse_mode(mode)[0] in tickets.BASELINE_MODES
        ref_name = sup.reference_name if is_base else None
        name = args.name or tickets.default_name(args.iteration, mode, args.budget, args.epochs,
                                                 reference=ref_name)
        try:
            tdir = tickets.ticket_dir(paths, name)
        except runs.RunError as e:
            raise UsageError(f"--name: {e}") from None
        desc = {"iteration": int(args.iteration), "init": mode, "epochs": st.epochs,
                "budget": st.budget, "lr": st.lr, "lr_schedule": st.lr_schedule,
                "batch_size": st.batch_size, "momentum": st.momentum,
                "weight_decay": st.weight_decay, "nesterov": st.nesterov,
                "dataset": cfg["dataset"], "reference": ref_name}
        if (tdir / tickets.TICKET_FILE).exists():
            try:
                old = tickets.read_ticket(tdir)
            except tickets.TicketError as e:
                raise UsageError(str(e)) from None
            diff = [k for k in tickets.SETTINGS if old.get(k) != desc[k]]
            if diff:
                raise UsageError(f"{tdir} holds a retrain with other settings ({', '.join(diff)}"
                                 f"); pass --name to keep both")
        holder = runs.lock_holder(runs.RunPaths(tdir))
        if holder:
            raise UsageError(f"{tdir} is being retrained by process {holder}; wait or stop it")
        variants.append(Variant(mode, name, tdir, desc))
    return sup, data, st, variants, seeds


def _baseline_reference(sup: Support, which: str, methods: list[str], data: DataBundle,
                        cfg: dict[str, Any]) -> None:
    """Set the pruning baselines' dense reference and Taylor's batches on ``sup``; UsageError
    for slimming without BatchNorm or a missing SGD sibling."""
    if "slimming" in methods and not sp.has_batchnorm(sup.model):
        raise UsageError(f"slimming scores channels by their BatchNorm scale, and "
                         f"{cfg.get('model')} has no BatchNorm layer; choose magnitude, taylor "
                         f"or global-magnitude")
    if which == "sgd":
        try:
            ref_dir, ref_it, ref = reference.sgd_reference(sup.run_dir, sup.model)
        except BaselineError as e:
            raise UsageError(str(e)) from None
        sup.reference, sup.reference_name, sup.reference_iteration = ref, ref_dir.name, ref_it
    else:
        sup.reference, sup.reference_name, sup.reference_iteration = None, "self", sup.iteration
    if "taylor" in methods:
        sup.batches = reference.taylor_batches(data, int(cfg.get("batch_size") or 64))


def _describe(sup: Support, v: Variant, st: Settings, seeds: list[int]) -> dict[str, Any]:
    """ticket.json for a variant (sizes from the network that seed 0 would train)."""
    model, _ = build_variant(sup, v.mode, seeds[0])
    params = count_params(model)
    _, flops = prune.count(model, sup.example)
    base, k = tickets.parse_mode(v.mode)
    epochs_run = st.epochs if st.budget == "epochs" else \
        max(1, int(round(st.epochs * sup.flops_full / max(flops, 1))))
    source = {"rewind": k or 0, "finetune": sup.iteration, "random-support": 0}.get(base)
    plan = sup.plan
    if base in tickets.BASELINE_MODES:
        plan = sup.baseline_plan("global-magnitude" if base == "global-magnitude-reinit"
                                 else base)
        if base != "global-magnitude-reinit":
            source = sup.reference_iteration
    old = tickets.read_ticket(v.dir) if (v.dir / tickets.TICKET_FILE).exists() else {}
    return {"schema_version": tickets.TICKET_SCHEMA, "name": v.name, "run": sup.run_dir.name,
            **v.description, "kind": tickets.mode_kind(v.mode), "source_iteration": source,
            "epochs_run": epochs_run, "model": sup.cfg["model"], "widths": widths_of(model),
            "widths_full": widths_of(sup.model), "params": params, "flops": flops,
            "params_full": sup.params_full, "flops_full": sup.flops_full,
            "kept": dict(plan.kept), "groups": dict(sup.plan.groups),
            "seeds": sorted(set(old.get("seeds", [])) | set(seeds)),
            "created": old.get("created", time.time())}


def run(sup: Support, data: DataBundle, st: Settings, variants: list[Variant], seeds: list[int],
        progress: bool = True) -> int:
    """Train every variant's unfinished seeds; returns the exit code."""
    # the run's numerics (cpu_isa, threads, deterministic) were pinned by load_run_model,
    # before anything was computed: the worker's kernels, so the worker's numbers
    descs = [_describe(sup, v, st, seeds) for v in variants]
    ipe = -(-len(data.train_y) // st.batch_size)
    todo = [(v, d, s) for v, d in zip(variants, descs) for s in seeds
            if not _complete(v.dir, s)]
    prog = _Progress(sum(d["epochs_run"] * ipe for _, d, _ in todo), progress)
    old = {s: signal.signal(s, lambda signum, _f: setattr(prog, "stop",
                                                          signal.Signals(signum).name))
           for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for v, desc in zip(variants, descs):
            paths = runs.RunPaths(v.dir)
            try:
                runs.acquire_lock(paths)
            except runs.RunError as e:
                print(f"pathviz.retrain: error: {e}", file=sys.stderr)
                return EXIT_USAGE
            try:
                runs.write_json_atomic(v.dir / tickets.TICKET_FILE, desc)
                mine = [s for vv, _, s in todo if vv is v]
                total = desc["epochs_run"] * ipe * len(mine)
                status = {"state": "running", "reason": "", "pid": _pid(),
                          "pid_start": runs.process_start_time(_pid()), "total": total,
                          "epochs": desc["epochs_run"]}
                runs.write_status(paths, done=0, **status)
                prog.done = 0
                for s in mine:
                    # deterministic in (mode, seed), so a resumed seed gets the same shapes
                    model, support = build_variant(sup, v.mode, s)
                    log.info("%s: seed %d, %d epochs", v.name, s, desc["epochs_run"])
                    retrain_seed(model, data, st, desc["epochs_run"], s,
                                 seed_file=tickets.seed_path(v.dir, s),
                                 resume_file=tickets.resume_path(v.dir, s), ticket=v.name,
                                 support=support, progress=prog, paths=paths, status=status)
                    if prog.stop is not None:
                        runs.write_status(paths, state="stopped", heartbeat=time.time(),
                                          reason=f"stopped by {prog.stop}; run the same command "
                                                 f"to resume")
                        log.info("stopped by %s; run the same command to resume", prog.stop)
                        return EXIT_OK
                runs.write_status(paths, state="finished", done=total, heartbeat=time.time())
            except Exception as e:  # noqa: BLE001 - only a full disk is ours to explain
                if not runs.is_disk_full(e):
                    raise
                where = runs.disk_full_target(e, paths) or "a file"
                reason = (f"disk full: tickets/{v.name}/{where} could not be written; free "
                          f"space, then run the same command to resume (finished epochs are "
                          f"kept)")
                try:
                    runs.write_status(paths, state="failed", reason=reason,
                                      heartbeat=time.time())
                except OSError:
                    pass  # no room for the status either: the message below says it all
                print(f"pathviz.retrain: error: {reason}", file=sys.stderr)
                return EXIT_USAGE
            finally:
                runs.release_lock(paths)
    finally:
        prog.close()
        for s, h in old.items():
            signal.signal(s, h)
    return EXIT_OK


def _pid() -> int:
    return os.getpid()


def _complete(tdir: Path, seed: int) -> bool:
    p = tickets.seed_path(tdir, seed)
    if not p.exists():
        return False
    try:
        return tickets.read_seed(p)["complete"]
    except tickets.TicketError:
        return False


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        args = build_parser().parse_args(argv)
        sup, data, st, variants, seeds = prepare(args)
    except (UsageError, runs.RunError) as e:
        print(f"pathviz.retrain: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    code = run(sup, data, st, variants, seeds, progress=not args.no_progress)
    if code == EXIT_OK:
        for row in tickets.summary(sup.run_dir):
            if row["name"] in {v.name for v in variants}:
                t = row["test_acc"]
                std = "" if t["std"] is None else f" ± {100 * t['std']:.2f}"
                mean = "n/a" if t["mean"] is None else f"{100 * t['mean']:.2f}"
                print(f"{row['name']}: {row['params']:,} params "
                      f"({100 * (row['params_kept'] or 0):.1f}%), test acc {mean}{std}% "
                      f"over {row['seeds']} seed(s)")
                if row.get("verdict"):
                    print(f"  {row['verdict']}")
    return code


if __name__ == "__main__":
    sys.exit(main())
