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
import copy
import io
import logging
import math
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pathviz import prune, runs, tickets
from pathviz.data import (
    DataBundle,
    DataError,
    check_classes,
    load_dataset,
    make_loader,
    split_validation,
)
from pathviz.evaluate import eval_loader, evaluate
from pathviz.export import ExportError, load_run_model, resolve_iteration
from pathviz.models import build_model, count_params, widths_of
from pathviz.store import PathFileError, PathReader

log = logging.getLogger("pathviz.retrain")

EXIT_OK, EXIT_USAGE = 0, 2
HEARTBEAT_EVERY = 1.0

__all__ = ["UsageError", "Support", "load_support", "build_variant", "random_plan",
           "uniform_widths", "retrain_seed", "main"]


class UsageError(Exception):
    """Bad input: one sentence, exit code 2, nothing written."""


# ---- the support and the six initialisations -----------------------------------------------


@dataclass
class Support:
    """The support at iteration N of a run, and what every variant is built from."""

    run_dir: Path
    iteration: int
    cfg: dict[str, Any]
    layers: list[dict[str, Any]]
    gammas: dict[str, Any]
    model: nn.Module  # full model with the weights of iteration N (eval mode)
    plan: prune.PrunePlan
    example: torch.Tensor  # one input of the model's shape
    arch: dict[str, Any]  # model.pathviz_arch: rebuilds the family with other widths
    params_full: int = 0
    flops_full: int = 0
    _weights: dict[int, nn.Module] = field(default_factory=dict)
    # the pruning baselines' dense reference (None: W at N) and Taylor's batches
    reference: nn.Module | None = None
    reference_name: str | None = None  # the SGD run's folder name, or "self"
    reference_iteration: int | None = None
    batches: list | None = None
    _baselines: dict[str, prune.PrunePlan] = field(default_factory=dict)

    def baseline_plan(self, method: str) -> prune.PrunePlan:
        """The plan of a pruning method at this support's widths (computed once)."""
        from pathviz.baselines import supports as sp

        if method not in self._baselines:
            ref = self.reference if self.reference is not None else self.model
            scores = sp.score_sets(ref, self.plan, self.example, method, self.batches)
            if method == "global-magnitude":
                target = count_params(_compact(copy.deepcopy(self.model), self.plan,
                                               self.example))
                self._baselines[method] = sp.global_plan(ref, self.plan, scores, target,
                                                         self.example)
            else:
                self._baselines[method] = sp.baseline_plan(self.plan, scores)
        return self._baselines[method]

    def model_at(self, iteration: int) -> nn.Module:
        """A fresh copy of the full model with the weights saved at ``iteration``."""
        if iteration not in self._weights:
            self._weights[iteration] = _load(self.run_dir, iteration)[0]
        return copy.deepcopy(self._weights[iteration])


def _load(run_dir: Path, iteration: int):
    try:
        return load_run_model(run_dir, iteration)
    except ExportError as e:
        raise UsageError(str(e)) from None


def load_support(run_dir: str | Path, iteration: int) -> Support:
    """Read the run at ``iteration`` (which must have saved weights) and plan its compaction."""
    run_dir = Path(run_dir)
    model, layers, gammas, cfg = _load(run_dir, iteration)
    if not layers:
        raise UsageError(f"{run_dir} has no Gamma layers (an SGD run?), so it has no support "
                         f"to retrain")
    from pathviz.data import DATASET_NAMES, dataset_info

    info = dataset_info(cfg.get("dataset"))  # for the input shape: no data root needed
    if info is None:
        raise UsageError(f"{run_dir} was trained on {cfg.get('dataset')!r}, not on a pathviz "
                         f"dataset ({', '.join(DATASET_NAMES)}), so it cannot be retrained here")
    shape = cfg.get("input_shape") or (info.in_channels, info.image_size, info.image_size)
    example = torch.zeros(1, *shape)
    plan, _ = prune.plan_pruning(model, layers, gammas, example)
    params_full = count_params(model)
    _, flops_full = prune.count(model, example)
    return Support(run_dir, int(iteration), cfg, layers, gammas, model, plan, example,
                   dict(model.pathviz_arch), params_full, flops_full)


def _compact(model: nn.Module, plan: prune.PrunePlan, example: torch.Tensor) -> nn.Module:
    prune.compact(model, plan, prune.dependency_graph(model, example))
    return model


def _rebuild(arch: dict[str, Any], widths: list[int]) -> nn.Module:
    kw = {k: v for k, v in arch.items() if k not in ("name", "widths")}
    return build_model(arch["name"], widths=widths, **kw)


def random_plan(plan: prune.PrunePlan, seed: int) -> prune.PrunePlan:
    """A plan that keeps as many channels in every coupled set as ``plan``, chosen at random
    (seeded); the layers' group counts are therefore those of the support."""
    rng = np.random.default_rng(int(seed))
    sets = []
    for s in plan.sets:
        n = int(s["channels"])
        keep = n - len(s["remove"])
        kept = set(rng.choice(n, size=keep, replace=False).tolist())
        sets.append({**s, "remove": [i for i in range(n) if i not in kept]})
    return prune.PrunePlan(sets=sets, kept=dict(plan.kept), groups=dict(plan.groups),
                           warnings=list(plan.warnings))


def _param_count(arch: dict[str, Any], widths: list[int]) -> int:
    with torch.device("meta"):  # no memory, no init: only the shapes
        return count_params(_rebuild(arch, widths))


def uniform_widths(arch: dict[str, Any], full: list[int], target: int) -> list[int]:
    """Widths ``round(f * full)`` with the one factor f whose network has about ``target``
    parameters; then single-layer +-1 steps while they bring the count closer (rounding alone
    can miss by a few percent on small nets)."""
    def widths(f: float) -> list[int]:
        return [max(1, int(round(f * w))) for w in full]

    lo, hi = 0.0, 1.0
    for _ in range(40):  # the count is monotone in f: bisect for the crossing
        mid = (lo + hi) / 2
        if _param_count(arch, widths(mid)) <= target:
            lo = mid
        else:
            hi = mid
    best = min((widths(lo), widths(hi)), key=lambda w: abs(_param_count(arch, w) - target))
    err = abs(_param_count(arch, best) - target)
    for _ in range(4 * len(full)):
        step = None
        for i in range(len(full)):
            for d in (-1, 1):
                w = list(best)
                w[i] += d
                if not 1 <= w[i] <= full[i]:
                    continue
                try:
                    e = abs(_param_count(arch, w) - target)
                except ValueError:  # a width tied to another (residual stream)
                    continue
                if e < err:
                    step, err = w, e
        if step is None:
            break
        best = step
    return best


def build_variant(sup: Support, mode: str, seed: int) -> tuple[nn.Module, dict[str, list[int]]]:
    """The network a variant starts from (train mode), and the kept group indices per layer.

    ``seed`` seeds the fresh initialisations (reinit, uniform) and the random support.
    """
    base, k = tickets.parse_mode(mode)
    kept = {s["root"]: [i for i in range(s["channels"]) if i not in set(s["remove"])]
            for s in sup.plan.sets}
    if base == "finetune":
        model = copy.deepcopy(sup.model)
        dg = prune.dependency_graph(model, sup.example)
        prune.apply_mask(model, sup.layers, sup.gammas, sup.plan, dg)
        model = _compact(model, sup.plan, sup.example)
    elif base == "rewind":
        model = _compact(sup.model_at(0 if k is None else k), sup.plan, sup.example)
    elif base == "random-support":
        plan = random_plan(sup.plan, seed)
        kept = {s["root"]: [i for i in range(s["channels"]) if i not in set(s["remove"])]
                for s in plan.sets}
        model = _compact(sup.model_at(0), plan, sup.example)
    elif base == "reinit":
        widths = widths_of(_compact(copy.deepcopy(sup.model), sup.plan, sup.example))
        torch.manual_seed(int(seed))
        model = _rebuild(sup.arch, widths)
    elif base in tickets.BASELINE_MODES:
        from pathviz.baselines import supports as sp

        method = "global-magnitude" if base == "global-magnitude-reinit" else base
        plan = sup.baseline_plan(method)
        ref = sup.reference if sup.reference is not None else sup.model
        model = sp.compact_copy(ref, plan, sup.example)
        kept = sp.kept_of(plan)
        if base == "global-magnitude-reinit":
            widths = widths_of(model)
            torch.manual_seed(int(seed))
            model = _rebuild(sup.arch, widths)
    else:  # uniform
        target = count_params(_compact(copy.deepcopy(sup.model), sup.plan, sup.example))
        full = widths_of(sup.model)
        widths = uniform_widths(sup.arch, full, target)
        torch.manual_seed(int(seed))
        model = _rebuild(sup.arch, widths)
        kept = {}
    model.pathviz_arch = {**sup.arch, "widths": widths_of(model)}
    return model.train(), kept


# ---- training one seed ---------------------------------------------------------------------


@dataclass
class Settings:
    """How every variant of one command is trained."""

    epochs: int
    budget: str
    lr: float
    lr_schedule: str
    batch_size: int
    momentum: float
    weight_decay: float
    nesterov: bool
    threads: int
    device: str = "cpu"
    workers: int = 0  # image-decoding processes (imagefolder); the batches do not depend on it


class _Progress:
    """The CLI bar, the status sidecar's heartbeat and the stop flag, shared by all seeds."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="it", dynamic_ncols=True)
        self.stop: str | None = None
        self.done = 0  # iterations done in the current ticket folder
        self._beat = 0.0

    def step(self, paths: runs.RunPaths | None, **status: Any) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        now = time.time()
        if paths is not None and now - self._beat >= HEARTBEAT_EVERY:
            self._beat = now
            runs.write_status(paths, heartbeat=now, done=self.done, **status)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def retrain_seed(model: nn.Module, data: DataBundle, st: Settings, epochs: int, seed: int, *,
                 seed_file: Path | None = None, resume_file: Path | None = None,
                 ticket: str = "", support: dict[str, list[int]] | None = None,
                 progress: _Progress | None = None, paths: runs.RunPaths | None = None,
                 status: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Train ``model`` for ``epochs`` with momentum SGD; returns one row per epoch (0 = before
    training). With ``seed_file`` the rows are written after every epoch and ``resume_file``
    lets a later call continue from the last finished epoch."""
    info = data.info
    dev = torch.device(st.device)
    model.to(dev)
    torch.manual_seed(int(seed))
    opt = torch.optim.SGD(model.parameters(), lr=st.lr, momentum=st.momentum,
                          weight_decay=st.weight_decay, nesterov=st.nesterov)
    train = make_loader(data.train_x, data.train_y, info, st.batch_size, shuffle=True,
                        augment=info.augment, seed=int(seed), device=dev, workers=st.workers)
    # the worker's evaluation (same batches, same order), so accuracies compare with the path's
    val = (eval_loader(data.val_x, data.val_y, info, dev, workers=st.workers)
           if data.val_x is not None and len(data.val_y) else None)
    test = eval_loader(data.test_x, data.test_y, info, dev, workers=st.workers)
    ipe, total = len(train), epochs * len(train)
    rows: list[dict[str, Any]] = []
    start, elapsed, diverged = 0, 0.0, False
    if resume_file is not None and resume_file.exists():
        state = torch.load(resume_file, map_location=dev, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"].cpu())
        start, elapsed = int(state["epoch"]), float(state["elapsed"])
        old = tickets.read_seed(seed_file)  # type: ignore[arg-type]
        rows = [{"epoch": int(e), "iteration": int(i), "time": float(t),
                 **{m: float(v[j]) for m, v in old["metrics"].items()}}
                for j, (e, i, t) in enumerate(zip(old["epoch"], old["iteration"], old["time"]))]
        rows = rows[: start + 1]  # a row written after the last resume state is redone
        log.info("%s seed %d: resumed after epoch %d", ticket, seed, start)

    def lr_at(it: int) -> float:
        if st.lr_schedule == "cosine":
            return st.lr * 0.5 * (1 + math.cos(math.pi * it / total))
        return st.lr

    def record(epoch: int, train_loss: float, train_acc: float) -> None:
        vl, va = evaluate(model, val) if val is not None else (float("nan"), float("nan"))
        tl, ta = evaluate(model, test)
        rows.append({"epoch": epoch, "iteration": epoch * ipe, "time": elapsed,
                     "train_loss": train_loss, "train_acc": train_acc,
                     "lr": lr_at(epoch * ipe), "val_loss": vl, "val_acc": va,
                     "test_loss": tl, "test_acc": ta})

    def save(epoch: int, complete: bool) -> None:
        if seed_file is None:
            return
        tickets.write_seed(seed_file, ticket=ticket, seed=seed, rows=rows, complete=complete,
                           diverged=diverged, support=support)
        if resume_file is not None and not complete:
            # serialised in memory, written with plain file I/O: a full disk is then an OSError
            # naming the file, not torch's "unexpected pos" (runs.write_bytes_atomic)
            buf = io.BytesIO()
            torch.save({"epoch": epoch, "elapsed": elapsed, "model": model.state_dict(),
                        "optimizer": opt.state_dict(), "rng": torch.get_rng_state()}, buf)
            runs.write_bytes_atomic(resume_file, buf.getbuffer())

    if not rows:
        record(0, float("nan"), float("nan"))
        save(0, complete=False)
    model.train()
    for epoch in range(start, epochs):
        t0 = time.time()
        loss_sum, correct, n = 0.0, 0, 0
        for b, (x, y) in enumerate(train.epoch(epoch)):
            it = epoch * ipe + b
            for g in opt.param_groups:
                g["lr"] = lr_at(it)
            opt.zero_grad(set_to_none=True)
            out = model(x)
            loss = F.cross_entropy(out, y)
            if not torch.isfinite(loss):
                diverged = True
                break
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach()) * len(y)
            correct += int((out.argmax(1) == y).sum())
            n += len(y)
            if progress is not None:
                progress.step(paths, **(status or {}), epoch=epoch, seed=seed)
                if progress.stop is not None:
                    return rows
        elapsed += time.time() - t0
        record(epoch + 1, loss_sum / max(n, 1), correct / max(n, 1))
        if diverged:
            log.warning("%s seed %d diverged in epoch %d (loss not finite); stopped it",
                        ticket, seed, epoch + 1)
            break
        save(epoch + 1, complete=epoch + 1 == epochs)
    if diverged:
        save(rows[-1]["epoch"], complete=True)
    if resume_file is not None:
        resume_file.unlink(missing_ok=True)
    return rows


# ---- the command ---------------------------------------------------------------------------


@dataclass
class Variant:
    mode: str
    name: str
    dir: Path
    description: dict[str, Any]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m pathviz.retrain", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
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
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds {text!r}: give distinct whole numbers >= 0, e.g. 0,1,2")
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
    if args.epochs < 1:
        raise UsageError(f"--epochs must be >= 1, got {args.epochs}")
    if args.lr is not None and not args.lr > 0:
        raise UsageError(f"--lr must be > 0, got {args.lr}")
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
            tdir = tickets.ticket_dir(run_dir, name)
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
        holder = runs._lock_holder(runs.RunPaths(tdir))
        if holder:
            raise UsageError(f"{tdir} is being retrained by process {holder}; wait or stop it")
        variants.append(Variant(mode, name, tdir, desc))
    return sup, data, st, variants, seeds


def _baseline_reference(sup: Support, which: str, methods: list[str], data: DataBundle,
                        cfg: dict[str, Any]) -> None:
    """Set the pruning baselines' dense reference and Taylor's batches on ``sup``; UsageError
    for slimming without BatchNorm or a missing SGD sibling."""
    from pathviz.baselines import cli as bcli
    from pathviz.baselines import supports as sp

    if "slimming" in methods and not sp.has_batchnorm(sup.model):
        raise UsageError(f"slimming scores channels by their BatchNorm scale, and "
                         f"{cfg.get('model')} has no BatchNorm layer; choose magnitude, taylor "
                         f"or global-magnitude")
    if which == "sgd":
        try:
            ref_dir, ref_it, ref = bcli.sgd_reference(sup.run_dir, sup.model)
        except bcli.UsageError as e:
            raise UsageError(str(e)) from None
        sup.reference, sup.reference_name, sup.reference_iteration = ref, ref_dir.name, ref_it
    else:
        sup.reference, sup.reference_name, sup.reference_iteration = None, "self", sup.iteration
    if "taylor" in methods:
        sup.batches = bcli.taylor_batches(data, int(cfg.get("batch_size") or 64))


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
    import os

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
    import warnings

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
