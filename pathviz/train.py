"""The training worker: trains a model with SLBI and records its regularization path.

    python -m pathviz.train --preset demo --out checkpoints/demo
    python -m pathviz.train --out checkpoints/demo --resume

Exit codes: 0 finished or stopped (SIGTERM/Ctrl-C), 1 failed (e.g. diverged), 2 bad input.
Bad input (a flag, a model or dataset name, a missing data folder, an existing run folder) is
refused before anything is written.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from pathviz import distributed, runs
from pathviz.config import PRESETS, ConfigError, RunConfig, add_config_arguments, config_from_args
from pathviz.data import BatchLoader, DataBundle, DataError, load_dataset, split_validation
from pathviz.evaluate import eval_loader, evaluate, pin_threads
from pathviz.groups import slbi_param_groups
from pathviz.models import UnknownModelError, build_model
from pathviz.optim import SLBI
from pathviz.prune import subnetwork
from pathviz.recorder import PathRecorder, layers_of, model_info
from pathviz.store import PathFileError, PathReader, copy_path

log = logging.getLogger("pathviz.train")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
HEARTBEAT_EVERY = 1.0  # seconds between status updates


class UsageError(Exception):
    """Bad input: one sentence, exit code 2, nothing written."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m pathviz.train", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
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


@dataclass
class Plan:
    """A validated run: what to train and where; nothing on disk has been touched yet."""

    cfg: RunConfig
    paths: runs.RunPaths
    data: DataBundle
    device: torch.device
    resume: bool
    overwrite: bool
    progress: bool


_RESUME_OVERRIDABLE = {"device", "impl"}


def prepare(args: argparse.Namespace) -> Plan:
    """Check everything the run needs; raise UsageError (or a library error) on bad input."""
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
                       and k not in _RESUME_OVERRIDABLE)
        if given or args.preset or args.config:
            flags = [f"--{k.replace('_', '-')}" for k in given] or ["--preset/--config"]
            raise UsageError(f"--resume continues the run with its own config; drop "
                             f"{' '.join(flags)}")
        import json

        from pathviz.config import config_from_json

        try:
            cfg = config_from_json(json.loads(paths.config.read_text()), str(paths.config))
        except (OSError, ValueError) as e:
            raise UsageError(f"{paths.config} cannot be read ({str(e).splitlines()[0]}); the run "
                             f"cannot be resumed") from None
        if "impl" in vars(args) and args.impl != cfg.impl:
            raise UsageError(f"--impl {args.impl} differs from the run's {cfg.impl}, and another "
                             f"SLBI implementation would not continue the path bit for bit; "
                             f"drop --impl")
        cfg = cfg.replace(**{k: getattr(args, k) for k in _RESUME_OVERRIDABLE if k in vars(args)})
        status = runs.read_status(paths)
        if status.get("state") == "finished":
            raise UsageError(f"run {paths.name!r} already finished; nothing to resume")
    else:
        cfg = config_from_args(args)
        if paths.has_run() and not args.overwrite:
            raise UsageError(f"{paths.dir} already holds a run; pass --resume to continue it or "
                             f"--overwrite to start again")
    cfg.validate()
    build_model(cfg.model)  # unknown model names fail here, before anything is written
    data = split_validation(load_dataset(cfg.dataset, cfg.data_root), cfg.val_fraction,
                            cfg.split_seed)
    return Plan(cfg, paths, data, _device(cfg.device), args.resume, args.overwrite,
                not args.no_progress)


def make_optimizer(model: torch.nn.Module, cfg: RunConfig) -> torch.optim.Optimizer:
    """SLBI with Gamma on the layers the config's penalties name, or, for ``optimizer="sgd"``,
    ``torch.optim.SGD`` with the same lr, momentum, weight decay and Nesterov flag (the baseline
    the tickets view compares against; its path file has metrics and no Gamma layers)."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay, nesterov=cfg.nesterov)
    groups = slbi_param_groups(model, conv=cfg.conv_penalty, linear=cfg.linear_penalty,
                               last_linear=cfg.last_linear_penalty,
                               first_dense=cfg.first_layer_dense, lam=cfg.lam,
                               group_scale=cfg.group_scale)
    return SLBI(groups, lr=cfg.lr, kappa=cfg.kappa, nu=cfg.nu, lam=cfg.lam,
                momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.nesterov,
                impl=cfg.impl)


def _device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {spec} asked for CUDA, but torch sees no CUDA device; "
                         f"use --device cpu or auto")
    return torch.device(spec)


class Trainer:
    """Runs one plan: the loop, snapshots, resume state, status and signals.

    With ``dist`` (one of several torchrun processes) the forward pass goes through DDP on this
    rank's share of each batch, evaluation is sharded, and only rank 0 (``self.writer``) touches
    the run folder; :mod:`pathviz.distributed` holds those pieces.
    """

    def __init__(self, plan: Plan, dist: distributed.Dist | None = None) -> None:
        self.plan = plan
        self.dist = dist
        self.writer = dist is None or dist.writer
        self.cfg = cfg = plan.cfg
        self.paths = plan.paths
        info = plan.data.info
        if plan.device.type == "cpu":
            pin_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        extra = {"input_size": info.image_size} if cfg.model == "lenet5" else {}
        self.model = build_model(cfg.model, num_classes=info.num_classes,
                                 in_channels=info.in_channels, **extra).to(plan.device)
        if dist is not None and plan.device.type == "cuda":
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.opt = make_optimizer(self.model, cfg)
        d = plan.data
        self.train_loader = BatchLoader(d.train_x, d.train_y, info, cfg.batch_size, shuffle=True,
                                        augment=info.augment, seed=cfg.seed, device=plan.device)
        # the module the forward pass goes through: DDP all-reduces the gradients in backward
        self.net = self.model
        if dist is not None:
            self.net = distributed.wrap_model(self.model, plan.device)
            self.train_loader = distributed.ShardedBatches(self.train_loader, dist)
        self.val_loader = eval_loader(d.val_x, d.val_y, info, plan.device)
        self.test_loader = eval_loader(d.test_x, d.test_y, info, plan.device)
        # one input of the model's shape: torch-pruning traces the model with it
        self.example = torch.zeros(1, info.in_channels, info.image_size, info.image_size,
                                   device=plan.device)
        self.model_info = model_info(self.model, self.example, dataset=info.name)
        self.data_info = {"dataset": info.name, "n_train": len(d.train_y), "n_val": len(d.val_y),
                          "n_test": len(d.test_y), "val_fraction": cfg.val_fraction,
                          "split_seed": cfg.split_seed}
        self._has_gamma = isinstance(self.opt, SLBI)
        # the Gamma layers, known on every rank (the recorder exists on rank 0 only)
        self._layers = layers_of(self.model, self.opt)
        named = dict(self.model.named_parameters())
        self._layer_params = [named[s.param] for s in self._layers]
        self._support_at_weights: list[torch.Tensor] | None = None
        self.ipe = len(self.train_loader)
        self.total = cfg.epochs * self.ipe
        self.iteration = 0
        self.elapsed = 0.0
        self._acc = torch.zeros(3, dtype=torch.float64, device=plan.device)  # loss, correct, n
        self._stop: str | None = None
        self._stop_requested: str | None = None  # a signal to this rank, not yet agreed on
        self._fingerprints: dict[str, Any] | None = None
        self._last_beat = 0.0
        # seconds spent writing the path (snapshots, weights) and resume state, for bench/
        self.snapshot_seconds = 0.0
        self.resume_seconds = 0.0
        self.recorder: PathRecorder | None = None

    # ---- the run -----------------------------------------------------------------------------

    def run(self) -> int:
        paths = self.paths
        error = None
        if self.writer:
            try:
                runs.acquire_lock(paths)
                if not self.plan.resume:
                    runs.claim_run_dir(paths)
                elif runs.read_status(paths).get("state") == "finished":  # by a rival resume
                    runs.release_lock(paths)
                    raise runs.RunError(f"run {paths.name!r} already finished; nothing to "
                                        f"resume")
            except runs.RunError as e:
                error = str(e)
        if self.dist is not None:  # every rank leaves when rank 0 cannot have the run
            error = distributed.broadcast_object(error, self.dist)
        if error is not None:
            if self.writer:
                print(f"pathviz.train: error: {error}", file=sys.stderr)
            return EXIT_USAGE
        old_handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM,
                                                                       signal.SIGINT)}
        handler = _log_to(paths) if self.writer else None
        try:
            try:
                return self._run()
            except RanksDiverged as e:
                return self._fail(str(e))
        finally:
            for s, h in old_handlers.items():
                signal.signal(s, h)
            if self.recorder is not None:
                try:
                    self.recorder.close()
                except PathFileError as e:
                    log.error("%s", e)
            if handler is not None:
                runs.release_lock(paths)
                logging.getLogger("pathviz").removeHandler(handler)
                handler.close()

    def _run(self) -> int:
        cfg, paths = self.cfg, self.paths
        if self.plan.resume:
            self._resume()
        else:
            if self.writer:
                if self.plan.overwrite:
                    _clear_run(paths)
                runs.write_json_atomic(paths.config, cfg.to_json())
                self.recorder = PathRecorder(self.model, self.opt, paths.path,
                                             config=cfg.to_json(), iterations_per_epoch=self.ipe,
                                             model_info=self.model_info,
                                             data_info=self.data_info, example_input=self.example)
            self._snapshot(final=False)
            self._save_resume()
        if self.writer:
            on = f"{self.plan.device}" if self.dist is None else \
                f"{self.plan.device}, {self.dist.world} processes"
            log.info("training %s on %s (%s), %d iterations of %d per epoch, from iteration %d",
                     cfg.model, cfg.dataset, on, self.total, self.ipe, self.iteration)
        self._beat("running", force=True)
        bar = _progress(self.plan.progress and self.writer, self.total, self.iteration)
        t_start = time.time() - self.elapsed
        try:
            while self.iteration < self.total and self._stop is None:
                epoch = self.iteration // self.ipe
                for batch in self.train_loader.epoch(epoch, start=self.iteration % self.ipe):
                    if not self._train_step(*batch):
                        self.elapsed = time.time() - t_start
                        return self._fail(f"diverged at iteration {self.iteration + 1} "
                                          f"(loss is not finite)")
                    self.iteration += 1
                    self.elapsed = time.time() - t_start
                    it = self.iteration
                    final = it == self.total
                    if it % cfg.snapshot_every == 0 or final:
                        self._snapshot(final=final)
                    if it % cfg.weights_every == 0 or final:
                        self._save_resume()
                    if bar is not None:
                        bar.update(1)
                        if it % 10 == 0 or final:
                            bar.set_postfix(self._postfix(), refresh=False)
                    self._beat("running")
                    if self._stop is not None:
                        break
        finally:
            if bar is not None:
                bar.close()
        if self._stop is not None and self.iteration < self.total:
            self._save_resume()
            if self.recorder is not None:
                self.recorder.flush()
            self._beat("stopped", reason=f"stopped by {self._stop} at iteration {self.iteration}",
                       force=True)
            if self.writer:
                log.info("stopped at iteration %d; resume with --resume", self.iteration)
            return EXIT_OK
        if self.recorder is not None:
            self.recorder.flush()
        self._beat("finished", force=True)
        if self.writer:
            log.info("finished: %d iterations in %.1fs", self.iteration, self.elapsed)
        return EXIT_OK

    def _train_step(self, x: torch.Tensor, y: torch.Tensor, n_global: int | None = None
                    ) -> bool:
        if self.dist is not None:
            return self._train_step_sharded(x, y, n_global)
        self._set_lr()
        self.opt.zero_grad(set_to_none=True)
        out = self.model(x)
        loss = F.cross_entropy(out, y)
        if not torch.isfinite(loss):
            return False
        loss.backward()
        self.opt.step()
        self._count(loss.detach().double() * y.shape[0], out, y)
        return True

    def _set_lr(self) -> None:
        """The learning rate of this iteration (cosine decays it to 0 over the run)."""
        cfg = self.cfg
        if cfg.lr_schedule == "cosine":
            lr = cfg.lr * 0.5 * (1 + math.cos(math.pi * self.iteration / self.total))
            for g in self.opt.param_groups:
                g["lr"] = lr

    @torch.no_grad()
    def _count(self, loss_sum: torch.Tensor, out: torch.Tensor, y: torch.Tensor) -> None:
        """Add one batch's summed loss, correct predictions and size to the train metrics."""
        self._acc += torch.stack([loss_sum.double(), (out.argmax(1) == y).sum().double(),
                                  torch.tensor(float(y.shape[0]), dtype=torch.float64,
                                               device=y.device)])

    def _train_step_sharded(self, x: torch.Tensor, y: torch.Tensor, n_global: int) -> bool:
        """One DDP step on this rank's shard; False (on every rank) if any rank's loss is not
        finite. A stop asked of any rank is agreed on here, before backward, so all ranks
        finish this step and leave the loop together."""
        d = self.dist
        self._set_lr()
        self.opt.zero_grad(set_to_none=True)
        out = self.net(x)
        loss, loss_sum = distributed.local_loss(out, y, n_global, d.world)
        bad, stop = distributed.agree_flags(
            [not bool(torch.isfinite(loss_sum)), self._stop_requested is not None],
            self.plan.device)
        if stop and self._stop is None:
            self._stop = self._stop_requested or "a signal to another rank"
        if bad:
            return False
        loss.backward()  # DDP all-reduces the gradients here
        self.opt.step()
        self._count(loss_sum, out, y)
        return True

    def _evaluate(self, model: torch.nn.Module, loader: BatchLoader) -> tuple[float, float]:
        if self.dist is not None:
            return distributed.evaluate_sharded(model, loader, self.dist)
        return evaluate(model, loader)

    def evaluate(self) -> dict[str, float]:
        """Validation and test loss/accuracy of W (the dense model being trained)."""
        val_loss, val_acc = self._evaluate(self.model, self.val_loader)
        test_loss, test_acc = self._evaluate(self.model, self.test_loader)
        return {"val_loss": val_loss, "val_acc": val_acc, "test_loss": test_loss,
                "test_acc": test_acc}

    def evaluate_sparse(self) -> dict[str, float]:
        """Size and validation/test accuracy of the compact subnetwork that export would write
        at this iteration (the same :func:`pathviz.prune.subnetwork` and evaluation)."""
        layers = [s.to_json() for s in self._layers]
        gammas = {s.param: self.opt.gamma(p).detach()
                  for s, p in zip(self._layers, self._layer_params)}
        sub = subnetwork(self.model, layers, gammas, self.example)
        return {"val_acc_sparse": self._evaluate(sub.compact, self.val_loader)[1],
                "test_acc_sparse": self._evaluate(sub.compact, self.test_loader)[1],
                "params_kept": float(sub.params), "flops_kept": float(sub.flops)}

    def _support_now(self) -> list[torch.Tensor]:
        return [_support(self.opt.gamma(p), s.penalty)
                for s, p in zip(self._layers, self._layer_params)]

    def _support_changed(self) -> int:
        """Groups that entered or left the support since the last saved weights."""
        now = self._support_now()
        if self._support_at_weights is None:
            return sum(int(m.sum()) for m in now)
        return sum(int((a != b).sum()) for a, b in zip(now, self._support_at_weights))

    def _snapshot(self, final: bool) -> None:
        cfg, it = self.cfg, self.iteration
        metrics: dict[str, float] = {}
        acc = self._acc if self.dist is None else distributed.all_sum(self._acc)
        loss_sum, correct, n = acc.tolist()
        if n > 0:
            metrics["train_loss"] = loss_sum / n
            metrics["train_acc"] = correct / n
        self._acc.zero_()
        weights = it % cfg.weights_every == 0 or final or it == 0
        if not weights and cfg.weights_on_change and self._has_gamma:
            weights = self._support_changed() >= cfg.weights_on_change
        # every saved iteration is evaluated, so each one is a candidate for the stop rule
        if it % cfg.eval_every == 0 or final or weights:
            metrics.update(self.evaluate())
            if self._has_gamma:
                metrics.update(self.evaluate_sparse())
        t0 = time.perf_counter()
        if self.recorder is not None:
            self.recorder.record(it, epoch=it / self.ipe, elapsed=self.elapsed, weights=weights,
                                 **metrics)
        if weights and self._has_gamma:
            self._support_at_weights = self._support_now()
        self.snapshot_seconds += time.perf_counter() - t0
        self._metrics = metrics

    def _postfix(self) -> dict[str, Any]:
        m = getattr(self, "_metrics", {})
        inside, groups = self.recorder.last_support  # as of the last snapshot
        return {"epoch": f"{self.iteration / self.ipe:.2f}",
                "loss": f"{m.get('train_loss', float('nan')):.3f}",
                "acc": f"{m.get('train_acc', float('nan')):.3f}",
                "support": f"{inside}/{groups}"}

    # ---- resume ------------------------------------------------------------------------------

    def _save_resume(self) -> None:
        """Write the resume state atomically; the path file is flushed first so no row is lost.

        With several ranks, their training states are checked to be bit-identical first (a
        fingerprint each, gathered), the train-loss sums are all-reduced, and rank 0 writes the
        one resume file, which a run with any number of processes can continue.
        """
        acc = self._acc
        if self.dist is not None:
            acc = distributed.all_sum(self._acc)
            prints = distributed.all_fingerprints(self.model, self.opt, self.dist,
                                                  self.plan.device)
            self._fingerprints = {"iteration": self.iteration, "fingerprints": prints}
            if len(set(prints)) > 1:
                raise RanksDiverged(f"the {self.dist.world} processes hold different weights "
                                    f"or optimizer states at iteration {self.iteration}")
        if not self.writer:
            return
        t0 = time.perf_counter()
        self.recorder.flush()
        state = {"iteration": self.iteration, "elapsed": self.elapsed,
                 "model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                 "acc": acc.cpu(), "rng": torch.get_rng_state(),
                 "config": self.cfg.to_json()}
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        tmp = self.paths.tmp(self.paths.resume)
        torch.save(state, tmp)
        os.replace(tmp, self.paths.resume)
        self.resume_seconds += time.perf_counter() - t0

    def _resume(self) -> None:
        """Continue from the resume state: rank 0 reads it (and keeps the path's rows up to
        it); with several ranks it sends the state to the others, whatever the number of
        processes that wrote it."""
        if self.dist is None:
            self._load_resume()
            return
        error = state = None
        if self.writer:
            try:
                state = self._load_resume()
            except UsageError as e:
                error = str(e)
            support = self._support_at_weights
            state = None if error else {
                "model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "iteration": self.iteration, "elapsed": self.elapsed, "rng": state["rng"],
                "support": None if support is None else [m.cpu() for m in support]}
        error, state = distributed.broadcast_object((error, _to_cpu(state)), self.dist)
        if error is not None:
            raise UsageError(error)
        if self.writer:
            return
        dev = self.plan.device
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.iteration, self.elapsed = int(state["iteration"]), float(state["elapsed"])
        torch.set_rng_state(state["rng"])
        # rank 0 carries the train-loss sums since the last snapshot; the others start at 0
        self._acc = torch.zeros(3, dtype=torch.float64, device=dev)
        if state["support"] is not None:
            self._support_at_weights = [m.to(dev) for m in state["support"]]

    def _load_resume(self) -> dict[str, Any]:
        paths = self.paths
        try:
            state = torch.load(paths.resume, map_location=self.plan.device, weights_only=True)
            self.model.load_state_dict(state["model"])
            self.opt.load_state_dict(state["optimizer"])
        except Exception as e:  # a truncated or foreign file: say so, touch nothing
            raise UsageError(f"{paths.resume} cannot be loaded ({type(e).__name__}); the run "
                             f"cannot be resumed: start it again with --overwrite") from None
        recorded = state.get("config") if isinstance(state, dict) else None
        if isinstance(recorded, dict):
            mine = {k: v for k, v in self.cfg.to_json().items() if k not in _RESUME_OVERRIDABLE}
            theirs = {k: v for k, v in recorded.items() if k not in _RESUME_OVERRIDABLE}
            changed = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            if changed:
                raise UsageError(f"{paths.config} differs from the settings the run was trained "
                                 f"with ({', '.join(changed)}); restore it, or start a new run "
                                 f"with the new settings")
        self.iteration = int(state["iteration"])
        self.elapsed = float(state["elapsed"])
        self._acc = state["acc"].to(self.plan.device)
        torch.set_rng_state(state["rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        # keep the readable rows up to the resume point in a fresh file, then swap it in
        tmp = paths.tmp(paths.path)
        try:
            writer = copy_path(paths.path, tmp, self.iteration)
        except PathFileError as e:
            tmp.unlink(missing_ok=True)
            raise UsageError(f"{e}; the run cannot be resumed") from None
        os.replace(tmp, paths.path)
        self.recorder = PathRecorder.continuing(self.model, self.opt, writer,
                                                iterations_per_epoch=self.ipe)
        if self._has_gamma:
            with PathReader(paths.path) as r:  # the support at the last saved weights
                wits = r.weight_iterations
                g = r.gamma_at(int(wits[-1])) if len(wits) else None
            if g is not None:
                self._support_at_weights = [
                    _support(torch.as_tensor(g[s.param]).to(p.device), s.penalty)
                    for s, p in zip(self.recorder.layers, self.recorder._params)]
        log.info("resumed at iteration %d with %d snapshots kept", self.iteration,
                 writer.n_snapshots)
        return state

    # ---- status and signals ------------------------------------------------------------------

    def _on_signal(self, signum, frame) -> None:
        if self.dist is None:
            self._stop = signal.Signals(signum).name
        else:  # the ranks agree on it in the next step, so all of them stop at one iteration
            self._stop_requested = signal.Signals(signum).name

    def _beat(self, state: str, reason: str = "", force: bool = False) -> None:
        if not self.writer:
            return
        now = time.time()
        if not force and now - self._last_beat < HEARTBEAT_EVERY:
            return
        self._last_beat = now
        it = self.iteration
        rate = it / self.elapsed if self.elapsed > 0 else 0.0
        eta = (self.total - it) / rate if rate > 0 and state == "running" else None
        runs.write_status(
            self.paths, state=state, reason=reason, pid=os.getpid(),
            pid_start=runs.process_start_time(os.getpid()), heartbeat=now, iteration=it,
            total_iterations=self.total, epoch=it / self.ipe, elapsed=self.elapsed, eta=eta,
            snapshots=self.recorder.writer.n_snapshots if self.recorder else 0,
            config=self.cfg.to_json(), **self._dist_status())

    def _dist_status(self) -> dict[str, Any]:
        """Status fields of a multi-process run: its process count, and the ranks' state
        fingerprints at the last resume save (equal when the ranks agree bit for bit)."""
        if self.dist is None:
            return {}
        return {"processes": self.dist.world, "ranks": self._fingerprints}

    def _fail(self, reason: str) -> int:
        if self.writer:
            log.error("%s", reason)
        if self.recorder is not None:
            self.recorder.flush()
        self._beat("failed", reason=reason, force=True)
        return EXIT_FAILED


class RanksDiverged(RuntimeError):
    """The processes of a multi-process run no longer hold the same training state."""


def _to_cpu(obj: Any) -> Any:
    """``obj`` with every tensor moved to the CPU (for a pickled broadcast)."""
    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def _support(gamma: torch.Tensor, penalty: str) -> torch.Tensor:
    """Flat bool mask of the groups of a Gamma tensor in the support (as SLBI.support)."""
    if penalty == "group":
        return (gamma.reshape(gamma.shape[0], -1) != 0).any(dim=1)
    return (gamma != 0).flatten()


def _clear_run(paths: runs.RunPaths) -> None:
    """--overwrite: remove the old run's files (the lock is ours, listed exports go too)."""
    runs.clear_run(paths)  # only what the manifest lists: never a file pathviz did not write


def _log_to(paths: runs.RunPaths) -> logging.Handler:
    """Log to the run's train.log, and to stderr when stderr is not that same file."""
    root = logging.getLogger("pathviz")
    root.setLevel(logging.INFO)
    fh = logging.FileHandler(paths.log)
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root.addHandler(fh)
    try:
        same = os.path.samestat(os.fstat(2), os.stat(paths.log))
    except OSError:
        same = False
    if not same and not any(isinstance(h, logging.StreamHandler) and
                            not isinstance(h, logging.FileHandler) for h in root.handlers):
        sh = logging.StreamHandler()
        sh.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(sh)
    return fh


def _progress(enabled: bool, total: int, initial: int):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="it", dynamic_ncols=True, leave=True)


_INPUT_ERRORS = (UsageError, ConfigError, DataError, UnknownModelError, runs.RunError)


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
        cfg = RunConfig.from_json(outcome["config"])
        data = split_validation(load_dataset(cfg.dataset, cfg.data_root), cfg.val_fraction,
                                cfg.split_seed)
        plan = Plan(cfg, runs.RunPaths(Path(outcome["out"])), data, _device(cfg.device),
                    outcome["resume"], outcome["overwrite"], progress=False)
    plan.device = distributed.device_for(d, plan.device)
    return plan


def _main_distributed(argv: list[str] | None, d: distributed.Dist) -> int:
    """One of several torchrun processes: join the group, agree on the plan, train."""
    if not d.writer:
        logging.getLogger("pathviz").setLevel(logging.WARNING)  # rank 0 tells the story
    distributed.init(d, cuda=torch.cuda.is_available())
    try:
        plan = _plan_on_every_rank(argv, d)
        if isinstance(plan, str):
            if d.writer:
                print(f"pathviz.train: error: {plan}", file=sys.stderr)
            return EXIT_USAGE
        rc = Trainer(plan, dist=d).run()  # the trainer and its DDP wrapper are released here
        # the ranks leave together: one that tore gloo down while rank 0 still wrote the run's
        # files could abort at exit (seen once: SIGABRT in rank 1 after a finished run)
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
        plan = prepare(args)
    except _INPUT_ERRORS as e:
        print(f"pathviz.train: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    trainer = None
    try:
        if not plan.resume:
            runs.check_run_dir(plan.paths)
        trainer = Trainer(plan)
        return trainer.run()
    except (UsageError, runs.RunError) as e:
        print(f"pathviz.train: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, PathFileError) as e:
        if not runs.is_disk_full(e):
            raise
        where = f" at iteration {trainer.iteration}" if trainer is not None else ""
        try:
            runs.write_status(plan.paths, state="failed", reason=f"disk full{where}")
        except OSError:
            pass
        runs.remove_my_temps(plan.paths)
        runs.release_lock(plan.paths)
        print(f"pathviz.train: error: the disk is full{where}; free space, then continue with "
              f"--resume", file=sys.stderr)
        from pathviz import store

        if store._ABANDONED and argv is None:
            # the path file was left open (closing it retries the failed writes, and HDF5 may
            # crash at exit doing so); leave now, as a killed writer would, with a clean status
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_USAGE)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
