"""Retraining one seed: plain momentum SGD on the run's training split, rows per epoch, written
after every epoch and resumable from the last finished one."""

from __future__ import annotations

import io
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from pathviz import runs, tickets
from pathviz.data import (
    DataBundle,
    make_loader,
)
from pathviz.evaluate import eval_loader, evaluate

log = logging.getLogger("pathviz.retrain")

HEARTBEAT_EVERY = 1.0

__all__ = ["Settings", "retrain_seed"]


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
