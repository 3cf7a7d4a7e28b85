"""The training worker: trains a model with SLBI and records its regularization path.

    python -m pathviz.train --preset demo --out checkpoints/demo
    python -m pathviz.train --out checkpoints/demo --resume

Exit codes: 0 finished or stopped (SIGTERM/Ctrl-C), 1 failed (e.g. diverged), 2 bad input.
Bad input (a flag, a model or dataset name, a missing data folder, an existing run folder) is
refused with the folder as it was: what the flags and the folder tell is checked before
anything is written; a new run then writes config.json at once (the app names the run's model
and dataset from it while torch pins and the data load), and a start refused after that (data
that do not load, an unknown model) removes what it wrote.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from pathviz import distributed, numerics, resume, runs, store
from pathviz.cli import EXIT_USAGE, Parser, UsageError
from pathviz.config import (
    PRESETS,
    ConfigError,
    RunConfig,
    add_config_arguments,
    config_from_args,
    config_from_json,
)
from pathviz.data import DataError, check_root_wanted, load_dataset, split_validation
from pathviz.distributed import RanksDiverged
from pathviz.models import UnknownModelError, build_model
from pathviz.plan import Plan, make_optimizer, pin_numerics, resolve_device
from pathviz.runs import disk_full_reason
from pathviz.store import PathFileError
from pathviz.trainer import Trainer

__all__ = ["main", "build_parser", "prepare", "check_args", "load_plan", "build_plan", "Plan",
           "Trainer", "RanksDiverged", "UsageError", "make_optimizer", "pin_numerics",
           "disk_full_reason"]

log = logging.getLogger("pathviz.train")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m pathviz.train", description=__doc__)
    p.add_argument("--preset", help=f"start from a preset: {', '.join(PRESETS)}")
    p.add_argument("--config", help="JSON or TOML file of settings (flags override it)")
    p.add_argument("--out", help="run folder (default: checkpoints/<preset or model>-<time>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the stopped or killed run in --out from its resume state")
    p.add_argument("--overwrite", action="store_true",
                   help="delete the run already in --out and start again")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_arguments(p)
    return p


def prepare(args: argparse.Namespace) -> Plan:
    """Check everything the run needs; raise UsageError (or a library error) on bad input."""
    cfg, paths = check_args(args)
    return load_plan(args, cfg, paths)


def check_args(args: argparse.Namespace) -> tuple[RunConfig, runs.RunPaths]:
    """The quick half of :func:`prepare`: the config and the run folder, checked without
    pinning the numerics or loading anything, so that :func:`main` can claim the folder and
    write config.json before the slow half (the app's header reads the run's model and dataset
    there while the worker starts). Raises UsageError (or a library error) on bad input."""
    out = args.out
    if args.resume and out is None:
        raise UsageError("--resume needs --out, the folder of the run to continue")
    if out is None:
        stem = args.preset or getattr(args, "model", None) or "run"
        out = str(runs.checkpoints_root() / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        paths = runs.paths_for_dir(out)
    except runs.RunError as e:
        raise UsageError(f"--out {out!r}: {e}") from None
    if args.resume:
        if args.overwrite:
            raise UsageError("--resume and --overwrite contradict each other; pick one")
        if not paths.resume.exists():
            raise UsageError(f"{paths.dir} has no resume state ({runs.RESUME_FILE}); it cannot be "
                             f"resumed")
        given = sorted(k for k in vars(args) if k in RunConfig.__dataclass_fields__
                       and k not in resume.OVERRIDABLE)
        if given or args.preset or args.config:
            flags = [f"--{k.replace('_', '-')}" for k in given] or ["--preset/--config"]
            raise UsageError(f"--resume continues the run with its own config; drop "
                             f"{' '.join(flags)}")
        try:
            cfg = config_from_json(json.loads(paths.config.read_text()), str(paths.config))
        except (OSError, ValueError, RecursionError) as e:  # RecursionError: nested too deep
            raise UsageError(f"{paths.config} cannot be read ({str(e).splitlines()[0]}); the run "
                             f"cannot be resumed") from None
        if "impl" in vars(args) and args.impl != cfg.impl:
            raise UsageError(f"--impl {args.impl} differs from the run's {cfg.impl}, and another "
                             f"SLBI implementation would not continue the path bit for bit; "
                             f"drop --impl")
        cfg = cfg.replace(**{k: getattr(args, k) for k in resume.OVERRIDABLE if k in vars(args)})
        status = runs.read_status(paths)
        if status.get("state") == "finished":
            raise UsageError(f"run {paths.name!r} already finished; nothing to resume")
    else:
        cfg = config_from_args(args)
        if paths.has_run() and not args.overwrite:
            # a folder of someone else's files (their own config.json): --overwrite would refuse
            # it too, so the advice is another folder (check_run_dir's sentence)
            runs.check_run_dir(paths)
            raise UsageError(f"{paths.dir} already holds a run; pass --resume to continue it or "
                             f"--overwrite to start again")
    cfg.validate()
    if not args.resume:  # what can be known without loading anything is refused before a claim
        # digits reads no root: refused, never silently ignored (a run made before this check
        # may hold one in its config, and still resumes)
        check_root_wanted(cfg.dataset, cfg.data_root)
        problem = numerics.machine_problem(cfg.cpu_isa)
        if problem:
            raise UsageError(problem)
        resolve_device(cfg.device)
    return cfg, paths


def load_plan(args: argparse.Namespace, cfg: RunConfig, paths: runs.RunPaths) -> Plan:
    """The slow half of :func:`prepare`: pin the numerics, check the model name and load the
    data; raises UsageError (or a library error) on bad input."""
    return build_plan(cfg, paths, args.resume, args.overwrite, not args.no_progress,
                      check_model=True)


def build_plan(cfg: RunConfig, paths: runs.RunPaths, resume: bool, overwrite: bool,
               progress: bool, check_model: bool = False) -> Plan:
    """The :class:`Plan` of a checked config, on any rank: the numerics pinned (the one place
    a worker pins them: before torch computes anything, as build_model initialises weights),
    the model name checked (``check_model``: where the input is validated), the data loaded
    and split."""
    environment = pin_numerics(cfg)
    if check_model:
        build_model(cfg.model)  # unknown model names fail here, before anything is written
    data = split_validation(load_dataset(cfg.dataset, cfg.data_root), cfg.val_fraction,
                            cfg.split_seed)
    return Plan(cfg, paths, data, resolve_device(cfg.device), resume, overwrite, progress,
                environment)


_INPUT_ERRORS = (UsageError, ConfigError, DataError, UnknownModelError, runs.RunError,
                 resume.ResumeError)


def _level_of(argv: list[str] | None) -> str:
    """The ``cpu_isa`` the command line asks for, read without computing anything: the run's
    own (config.json) on --resume, else the flags' and presets'. Input that does not parse gets
    the default level here; rank 0's ``prepare`` then reports it."""
    try:
        args = build_parser().parse_args(argv)
        if args.resume and args.out:
            path = runs.paths_for_dir(args.out).config
            return config_from_json(json.loads(path.read_text()), str(path)).cpu_isa
        return config_from_args(args).cpu_isa
    except (UsageError, ConfigError, runs.RunError, OSError, ValueError, RecursionError):
        return numerics.DEFAULT_LEVEL


def _plan_on_every_rank(argv: list[str] | None, d: distributed.Dist) -> Plan | str:
    """Rank 0 validates the input and the run folder; the others get its plan by broadcast
    (they never look at the run folder). Returns the plan, or rank 0's one-sentence error."""
    outcome: dict[str, Any] | None = None
    plan = None
    if d.writer:
        try:
            plan = prepare(build_parser().parse_args(argv))
            if not plan.resume:
                runs.check_run_dir(plan.paths)
            outcome = {"config": plan.cfg.to_json(), "out": str(plan.paths.dir),
                       "resume": plan.resume, "overwrite": plan.overwrite}
        except _INPUT_ERRORS as e:
            outcome = {"error": str(e)}
    outcome = distributed.broadcast_object(outcome, d)
    if "error" in outcome:
        return outcome["error"]
    if plan is None:
        plan = build_plan(RunConfig.from_json(outcome["config"]),
                          runs.RunPaths(Path(outcome["out"])), outcome["resume"],
                          outcome["overwrite"], progress=False)
    return plan


def _main_distributed(argv: list[str] | None, d: distributed.Dist) -> int:
    """One of several torchrun processes: join the group, agree on the plan, train."""
    if not d.writer:
        logging.getLogger("pathviz").setLevel(logging.WARNING)  # rank 0 tells the story
    # the collectives below compute with torch, so every rank takes the run's CPU kernels now,
    # before them (build_plan's pin_numerics then checks that it did)
    numerics.apply_env(_level_of(argv))
    distributed.init(d)
    try:
        plan = _plan_on_every_rank(argv, d)
        if isinstance(plan, str):
            if d.writer:
                print(f"pathviz.train: error: {plan}", file=sys.stderr)
            return EXIT_USAGE
        # the run's --device decides the backend of the device collectives (nccl on CUDA)
        d, plan.device = distributed.on_device(d, plan.device)
        trainer = Trainer(plan, dist=d)
        rc = trainer.run()
        leave_if_abandoned(rc)
        if not trainer.lost_rank:
            # the ranks leave together: one that tore gloo down while rank 0 still wrote the
            # run's files could abort at exit (seen once: SIGABRT in rank 1 after a finished run)
            del trainer  # the trainer and its DDP wrapper are released here
            distributed.barrier()
        return rc
    except _INPUT_ERRORS as e:
        if d.writer:
            print(f"pathviz.train: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        distributed.shutdown()


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit code. Under torchrun with several processes each one
    is a DDP rank (see :mod:`pathviz.distributed`)."""
    d = distributed.from_env()
    if d is not None:
        return _main_distributed(argv, d)
    try:
        args = build_parser().parse_args(argv)
        cfg, paths = check_args(args)
    except _INPUT_ERRORS as e:
        print(f"pathviz.train: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    trainer = None
    claim = None
    try:
        if not args.resume:
            runs.check_run_dir(paths)
            if not args.overwrite:  # (--overwrite clears the old run only once the data loaded)
                claim = runs.claim_early(paths, cfg.to_json())
        try:
            plan = load_plan(args, cfg, paths)
            plan.claimed = claim is not None
            trainer = Trainer(plan)
        except BaseException as e:
            if claim is not None and not (isinstance(e, OSError) and runs.is_disk_full(e)):
                runs.unclaim(paths, claim)  # a refused start leaves the folder as it found it
            raise
        return trainer.run()
    except _INPUT_ERRORS as e:
        print(f"pathviz.train: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, PathFileError) as e:
        if not runs.is_disk_full(e):
            raise
        return disk_full_exit(e, paths, trainer, leave=argv is None)


def disk_full_exit(e: BaseException, paths: runs.RunPaths, trainer: Trainer | None,
                   leave: bool) -> int:
    """The one exit of a worker on a full disk: free what this process holds (its temp files
    and the lock, so the status fits), mark the run failed with the file that could not be
    written and the iteration, say so on stderr with what to do, and return EXIT_USAGE (or,
    with ``leave``, exit at once when the path file was abandoned)."""
    iteration = trainer.iteration if trainer is not None else 0
    reason, advice = disk_full_reason(e, paths, iteration)
    # our temp files and the lock go first: the room they free lets the status be written
    runs.remove_my_temps(paths)
    runs.release_lock(paths)
    if paths.manifest.is_file():
        # (without a manifest the folder is not yet a run's: a status alone would make
        # --overwrite refuse it as "files that pathviz did not write")
        # the iteration the reason names: the last heartbeat's (up to a second older, or
        # the start's) would contradict it in the app and in inspect
        where = {"iteration": iteration}
        if trainer is not None:
            where["epoch"] = iteration / trainer.ipe
        try:
            runs.write_status(paths, state="failed", reason=reason, eta=None, **where)
        except OSError:
            pass
    print(f"pathviz.train: error: {reason}; {advice}", file=sys.stderr)
    if leave:
        leave_if_abandoned(EXIT_USAGE)
    return EXIT_USAGE


def exit_now(rc: int) -> None:
    """Flush the logs and the standard streams and leave with ``rc`` without the interpreter's
    teardown (no atexit handlers, no C++ static destructors)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


def leave_if_abandoned(rc: int) -> None:
    """Exit now with ``rc`` when a path file was left open on a full disk (closing it retries
    the failed writes, and HDF5 may crash at exit doing so), as a killed writer would: the
    status is already written."""
    if store._ABANDONED:
        exit_now(rc)


if __name__ == "__main__":
    code = main()
    if distributed.from_env() is not None:
        # a torchrun rank whose run has ended (files closed, process group left): the
        # interpreter's teardown aborted one rank in some runs ("terminate called without an
        # active exception", SIGABRT, after "finished"), which torchrun reports as a failed run
        exit_now(code)
    sys.exit(code)
