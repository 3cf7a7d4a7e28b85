"""The resume half of :class:`pathviz.trainer.Trainer`: writing the resume state at a
snapshot and continuing from it, with one process or several (rank 0 reads the file and sends
the state to the others, whatever the number of processes that wrote it).

:class:`Resumable` is a mixin: it works on the trainer's own attributes (``model``, ``opt``,
``snaps``, ``dist``, ``writer``, ``paths``, ``plan``, ``cfg``, ``iteration``, ``elapsed``,
``recorder``, ``ipe``), so the loop in :mod:`pathviz.trainer` reads as the loop. What the state
holds and how it is checked is :mod:`pathviz.resume`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch

from pathviz import distributed, resume, runs
from pathviz.distributed import RanksDiverged
from pathviz.recorder import PathRecorder

__all__ = ["Resumable"]

log = logging.getLogger("pathviz.train")  # the worker's logger: resume notes go with its log


class Resumable:
    """Saving and loading the resume state, for the trainer that inherits it."""

    def _save_resume(self) -> None:
        """Write the resume state atomically; the path file is flushed first so no row is lost.

        With several ranks, their training states are checked to be bit-identical first (a
        fingerprint each, gathered), the train-loss sums are all-reduced, and rank 0 writes the
        one resume file, which a run with any number of processes can continue.
        """
        sums = self.snaps.sums
        if self.dist is not None:
            distributed.sync_buffers(self.model, self.dist)
            sums = self.snaps.global_sums()
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
                 "acc": sums.cpu(), "rng": torch.get_rng_state(),
                 "config": self.cfg.to_json()}
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        resume.save_state(self.paths, state)
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
            except resume.ResumeError as e:
                error = str(e)
            support = self.snaps.support_at_weights
            state = None if error else {
                "model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "iteration": self.iteration, "elapsed": self.elapsed, "rng": state["rng"],
                "support": None if support is None else [m.cpu() for m in support]}
        error, state = distributed.broadcast_object((error, distributed.to_cpu(state)), self.dist)
        if error is not None:
            raise resume.ResumeError(error)
        if self.writer:
            return
        dev = self.plan.device
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.iteration, self.elapsed = int(state["iteration"]), float(state["elapsed"])
        torch.set_rng_state(state["rng"])
        # rank 0 carries the train-loss sums since the last snapshot; the others start at 0
        self.snaps.sums.zero_()
        if state["support"] is not None:
            self.snaps.support_at_weights = [m.to(dev) for m in state["support"]]

    def _load_resume(self) -> dict[str, Any]:
        paths = self.paths
        state = resume.load_state(paths, self.plan.device, self.model, self.opt,
                                  self.cfg.to_json())
        self.iteration = int(state["iteration"])
        self.elapsed = float(state["elapsed"])
        self.snaps.sums.copy_(state["acc"].to(self.plan.device))
        torch.set_rng_state(state["rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self._refusing = False  # the resume state is good: from here on the run goes on
        runs.clean_stale_temps(paths)
        writer = resume.keep_rows(paths, self.iteration)
        self.recorder = PathRecorder.continuing(self.model, self.opt, writer,
                                                iterations_per_epoch=self.ipe)
        self._follow_tensorboard()
        if self.snaps.has_gamma:
            self.snaps.support_at_weights = resume.support_at_last_weights(
                paths.path, self.recorder.layers, self.recorder._params)
        log.info("resumed at iteration %d with %d snapshots kept", self.iteration,
                 writer.n_snapshots)
        resume.warn_other_environment(self.paths, self.environment)
        return state
