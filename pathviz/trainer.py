"""The training loop of one run (:class:`Trainer`): its steps, snapshots, resume state,
status, signals and failures. The command line that builds its :class:`pathviz.plan.Plan` is
:mod:`pathviz.train`.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
import time
import traceback
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from pathviz import distributed, resume, runs
from pathviz.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from pathviz.data import make_loader
from pathviz.distributed import RanksDiverged
from pathviz.evaluate import Evaluator, eval_loader
from pathviz.integrations.tensorboard import follow, write_stop
from pathviz.models import build_model
from pathviz.plan import Plan, make_optimizer
from pathviz.prune import PruneError
from pathviz.recorder import PathRecorder, layers_of, model_info
from pathviz.snapshots import Snapshotter
from pathviz.store import PathFileError
from pathviz.trainer_resume import Resumable

__all__ = ["Trainer"]

log = logging.getLogger("pathviz.train")

HEARTBEAT_EVERY = 1.0  # seconds between status updates


class Trainer(Resumable):
    """Runs one plan: the training loop, its status, signals and failures.

    The pieces it drives each live in their own module, with their own tests:
    :class:`pathviz.snapshots.Snapshotter` (train metrics, what a snapshot records, when weights
    are saved), :class:`pathviz.evaluate.Evaluator` (W's and the compact subnetwork's figures),
    :mod:`pathviz.resume` (the resume state; :class:`pathviz.trainer_resume.Resumable` saves
    and loads it for the loop) and :mod:`pathviz.distributed` (the process group).
    With ``dist`` (one of several torchrun processes) the forward pass goes through DDP on this
    rank's share of each batch and only rank 0 (``self.writer``) touches the run folder.

    On the CPU the finite-loss check runs every iteration, before the step, as it costs
    nothing there; on a GPU it would stall the device every iteration, so the flag is kept on
    the device and checked (and, with several ranks, agreed on) only where a snapshot or resume
    state is written (``check_every_step``).
    """

    def __init__(self, plan: Plan, dist: distributed.Dist | None = None) -> None:
        self.plan = plan
        self.dist = dist
        self.writer = dist is None or dist.writer
        self.cfg = cfg = plan.cfg
        self.paths = plan.paths
        dev = plan.device
        info = plan.data.info
        self.environment = plan.environment  # pinned as the plan was built (train.build_plan)
        torch.manual_seed(cfg.seed)
        extra = {"input_size": info.image_size} if cfg.model == "lenet5" else {}
        self.model = build_model(cfg.model, num_classes=info.num_classes,
                                 in_channels=info.in_channels, **extra).to(dev)
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if dist is not None and dev.type == "cuda":
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.opt = make_optimizer(self.model, cfg)
        d = plan.data
        self.train_loader = make_loader(d.train_x, d.train_y, info, cfg.batch_size,
                                        shuffle=True, augment=info.augment, seed=cfg.seed,
                                        device=dev, workers=cfg.workers)
        # the module the forward pass goes through: DDP all-reduces the gradients in backward
        self.net = self.model
        if dist is not None:
            self.net = distributed.wrap_model(self.model, dev, dist)
            self.train_loader = distributed.ShardedBatches(self.train_loader, dist)
        evaluator = Evaluator(eval_loader(d.val_x, d.val_y, info, dev, workers=cfg.workers),
                              eval_loader(d.test_x, d.test_y, info, dev, workers=cfg.workers),
                              dist)
        # one input of the model's shape: torch-pruning traces the model with it
        self.example = torch.zeros(1, info.in_channels, info.image_size, info.image_size,
                                   device=dev)
        self.model_info = model_info(self.model, self.example, dataset=info.name)
        self.data_info = {"dataset": info.name, "n_train": len(d.train_y), "n_val": len(d.val_y),
                          "n_test": len(d.test_y), "val_fraction": cfg.val_fraction,
                          "split_seed": cfg.split_seed}
        # the Gamma layers, known on every rank (the recorder exists on rank 0 only)
        self._layers = layers_of(self.model, self.opt)
        all_sum = None if dist is None else (lambda t: distributed.all_sum(t, dist))
        self.snaps = Snapshotter(cfg, self.model, self.opt, self._layers, evaluator,
                                 self.example, dev, all_sum)
        self.ipe = len(self.train_loader)
        self.total = cfg.epochs * self.ipe
        self.iteration = 0
        self.elapsed = 0.0
        self.check_every_step = dev.type == "cpu"
        self._nonfinite = torch.zeros((), dtype=torch.bool, device=dev)
        self._checked_at = 0  # the iteration of the last finite-loss check
        self._stop: str | None = None
        self._stop_requested: str | None = None  # a signal to this rank, not yet agreed on
        self._fingerprints: dict[str, Any] | None = None
        self._last_beat = 0.0
        self.resume_seconds = 0.0  # spent writing resume state, for bench/
        self.recorder: PathRecorder | None = None
        self.scalars = None  # --tensorboard: pathviz.integrations.tensorboard.PathScalars
        self.lost_rank = False  # a rank failed: the others are gone, no closing barrier

    @property
    def snapshot_seconds(self) -> float:
        """Seconds spent writing the path (snapshots and weights), for bench/."""
        return self.snaps.seconds

    # ---- the run -----------------------------------------------------------------------------

    def run(self) -> int:
        """Train to the end, a stop or a failure; returns the exit code."""
        paths = self.paths
        error = None
        # until the run goes on (its folder claimed, or its resume state loaded and its path
        # cut back) a refusal leaves the folder as it found it: the lock file of a killed
        # worker keeps its bytes, and the stale temp files stay until then
        self._refusing = True
        if self.writer:
            try:
                if not self.plan.claimed:  # (else main holds the lock already)
                    runs.acquire_lock(paths, clean=False)
                if not self.plan.resume:
                    self._refusing = False
                    runs.clean_stale_temps(paths)
                    runs.claim_run_dir(paths)
                elif runs.read_status(paths).get("state") == "finished":  # by a rival resume
                    runs.release_lock(paths, restore=True)
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
        handler = runs.log_to(paths) if self.writer else None
        try:
            try:
                return self._run()
            except RanksDiverged as e:
                return self._fail(str(e))
            except Exception as e:
                if isinstance(e, _NOT_A_RANK_FAILURE) or (self.dist is None
                                                          and runs.is_disk_full(e)):
                    raise  # bad input (exit 2) and a full disk (main says how to go on)
                if handler is not None:  # the whole story for a bug report, in train.log only
                    handler.stream.write(traceback.format_exc())
                    handler.flush()
                if self.dist is None:
                    return self._fail(_reason(e))
                self.lost_rank = True
                return self._rank_failed(e)
        finally:
            for s, h in old_handlers.items():
                signal.signal(s, h)
            if self.recorder is not None:
                try:
                    self.recorder.close()
                except PathFileError as e:
                    log.error("%s", e)
            if self.scalars is not None:
                write_stop(self.scalars, paths.path)
            if handler is not None:
                runs.release_lock(paths, restore=self._refusing)
                logging.getLogger("pathviz").removeHandler(handler)
                handler.close()

    def _run(self) -> int:
        cfg, paths = self.cfg, self.paths
        if self.plan.resume:
            self._resume()
        else:
            if self.writer:
                if self.plan.overwrite:
                    runs.clear_run(paths)
                runs.write_json_atomic(paths.config, {**cfg.to_json(),
                                                      "environment": self.environment})
                self.recorder = PathRecorder(self.model, self.opt, paths.path,
                                             config=cfg.to_json(), iterations_per_epoch=self.ipe,
                                             model_info=self.model_info,
                                             data_info=self.data_info, example_input=self.example,
                                             environment=self.environment)
                self._follow_tensorboard()
            self._snapshot(final=False)
            self._save_resume()
        self._checked_at = self.iteration
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
                        return self._fail(self._diverged)
                    self.iteration += 1
                    self.elapsed = time.time() - t_start
                    it = self.iteration
                    final = it == self.total
                    snap = self.snaps.due(it, final)
                    save = it % cfg.weights_every == 0 or final
                    if (snap or save) and not self.check_every_step and not self._check():
                        return self._fail(self._diverged)
                    if snap:
                        self._snapshot(final=final)
                    if save:
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

    # ---- one step ----------------------------------------------------------------------------

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """The forward pass, in bf16 autocast with ``--amp`` and channels-last input with
        ``--channels-last``."""
        if self.cfg.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.plan.device.type, dtype=torch.bfloat16,
                            enabled=self.cfg.amp):
            return self.net(x)

    def _train_step(self, x: torch.Tensor, y: torch.Tensor, n_global: int | None = None
                    ) -> bool:
        """One SLBI step; False (on every rank) when the loss is not finite. Loss and accuracy
        go into the device-side sums; nothing here waits for the device unless
        ``check_every_step``."""
        self._set_lr()
        self.opt.zero_grad(set_to_none=True)
        out = self._forward(x)
        if self.dist is None:
            loss = F.cross_entropy(out.float(), y)
            loss_sum = loss.detach().double() * y.shape[0]
        else:
            loss, loss_sum = distributed.local_loss(out.float(), y, n_global, self.dist.world)
        if self.check_every_step:
            if not self._agree(~torch.isfinite(loss_sum)):
                return False
        else:
            self._nonfinite |= ~torch.isfinite(loss_sum)
        loss.backward()  # with DDP, the gradients are all-reduced here
        self.opt.step()
        self.snaps.count(loss_sum, out, y)
        return True

    def _agree(self, bad: torch.Tensor) -> bool:
        """True when no rank's loss is non-finite since the last check; a stop asked of any
        rank is agreed on here too, so all ranks finish this step and leave together."""
        it = self.iteration
        if self.dist is None:
            if bool(bad):
                self._diverged = (f"diverged at iteration {it + 1} (loss is not finite)"
                                  if self.check_every_step else
                                  f"diverged between iterations {self._checked_at + 1} and {it} "
                                  f"(loss is not finite)")
                return False
            return True
        bad_rank, stop_rank = distributed.agree_flags(
            [bad, self._stop_requested is not None], self.dist, self.plan.device)
        if stop_rank is not None and self._stop is None:
            self._stop = self._stop_requested or f"a signal to rank {stop_rank}"
        if bad_rank is not None:
            when = (f"at iteration {it + 1}" if self.check_every_step else
                    f"between iterations {self._checked_at + 1} and {it}")
            self._diverged = f"rank {bad_rank}: diverged {when} (loss is not finite)"
            return False
        return True

    def _check(self) -> bool:
        """The deferred finite-loss check (and stop agreement) before a snapshot or a save."""
        ok = self._agree(self._nonfinite)
        self._checked_at = self.iteration
        return ok

    def _set_lr(self) -> None:
        """The learning rate of this iteration (cosine decays it to 0 over the run)."""
        cfg = self.cfg
        if cfg.lr_schedule == "cosine":
            lr = cfg.lr * 0.5 * (1 + math.cos(math.pi * self.iteration / self.total))
            for g in self.opt.param_groups:
                g["lr"] = lr

    # ---- snapshots ---------------------------------------------------------------------------

    def _snapshot(self, final: bool) -> None:
        it = self.iteration
        if self.dist is not None:  # one model on every rank for the shared evaluation
            distributed.sync_buffers(self.model, self.dist)
        self.snaps.take(it, final=final, epoch=it / self.ipe, elapsed=self.elapsed,
                        recorder=self.recorder)

    def _follow_tensorboard(self) -> None:
        """--tensorboard: every snapshot's scalars also go to TensorBoard event files."""
        if self.cfg.tensorboard:
            self.scalars = follow(self.recorder, self.cfg.tensorboard)

    def _postfix(self) -> dict[str, Any]:
        m = self.snaps.metrics
        inside, groups = self.recorder.last_support  # as of the last snapshot
        return {"epoch": f"{self.iteration / self.ipe:.2f}",
                "loss": f"{m.get('train_loss', float('nan')):.3f}",
                "acc": f"{m.get('train_acc', float('nan')):.3f}",
                "support": f"{inside}/{groups}"}

    # ---- status, signals and failures --------------------------------------------------------

    def _on_signal(self, signum, frame) -> None:
        if self.dist is None:
            self._stop = signal.Signals(signum).name
        else:  # the ranks agree on it in the next check, so all of them stop at one iteration
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
        # on a full disk (what failed, or a second victim of it) each step does what it can:
        # the status is written in place as a last resort, and the reason is on stderr too
        for step in ((lambda: self.recorder.flush()) if self.recorder is not None else None,
                     lambda: self._beat("failed", reason=reason, force=True)):
            try:
                if step is not None:
                    step()
            except (OSError, PathFileError) as e:
                if not runs.is_disk_full(e):
                    raise
        return EXIT_FAILED

    def _rank_failed(self, e: BaseException) -> int:
        """An exception on this rank of a multi-process run, or a collective that failed
        because a peer is gone. Every rank posts ``rank R: reason`` (the first post wins);
        rank 0 waits briefly for a peer's post when its own error is only the lost peer, and
        writes the first reason into the status. Returns EXIT_FAILED."""
        d = self.dist
        reason = _reason(e)
        if self.writer and runs.is_disk_full(e):  # rank 0 writes the folder: say it our way
            why, advice = runs.disk_full_reason(e, self.paths, self.iteration)
            reason = f"{why}; {advice}"
            print(f"pathviz.train: error: {reason}", file=sys.stderr)
        if not self.writer:
            print(f"pathviz.train: rank {d.rank}: {reason}", file=sys.stderr)
            distributed.report_failure(d, reason)
            return EXIT_FAILED
        if isinstance(e, torch.distributed.DistError):  # a peer left first: wait for its reason
            distributed.first_failure(wait=3.0)
        distributed.report_failure(d, reason)
        first = distributed.first_failure(wait=0.0) or f"rank {d.rank}: {reason}"
        return self._fail(first)


# errors that mean bad input or a full disk, not a failed rank: they keep their own handling
_NOT_A_RANK_FAILURE = (resume.ResumeError,)




def _reason(e: BaseException) -> str:
    """An unexpected error in one line: our own sentence for a model torch-pruning cannot cut,
    else the exception's type and the first line of its message."""
    if isinstance(e, PruneError):
        return str(e)
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else 'no message'}"


def _progress(enabled: bool, total: int, initial: int):
    if not enabled:
        return None
    return tqdm(total=total, initial=initial, unit="it", dynamic_ncols=True, leave=True)
