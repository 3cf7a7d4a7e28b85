"""Several training processes on PyTorch's own engine: torchrun + DistributedDataParallel.

    torchrun --standalone --nproc_per_node=2 -m pathviz.train --preset demo --out RUN

The worker (:mod:`pathviz.train`) asks :func:`from_env` whether torchrun started it. With one
process it trains exactly as before; with N it wraps the model in DDP and uses this module for
the parts that involve other ranks:

- **Data.** Every rank walks the single-process batch order (:class:`pathviz.data.BatchLoader`,
  seeded by ``(seed, epoch)``) and keeps the interleaved share ``batch[rank::world]``, as
  ``torch.utils.data.DistributedSampler`` does over a permutation. The N shards of an iteration
  are therefore the single-process batch, augmentation included, and a run can be resumed with
  another number of processes: the global batch sequence does not depend on N.
- **Gradients.** Each rank's loss is ``sum(CE over its shard) * world / global_batch``; DDP
  averages gradients over ranks, so every rank gets the gradient of the global mean loss (also
  when a last batch does not split evenly). SLBI's Gamma, z and momentum follow from that
  all-reduced gradient alone, so every rank computes the same update (:func:`fingerprint`
  proves it at each resume save).
- **Evaluation.** Rank r evaluates the batches r, r+N, ... of the fixed evaluation order and the
  per-batch sums are all-reduced and added in batch order, so given the same weights the
  figures are bit-identical to the single-process :func:`pathviz.evaluate.evaluate`.
- **Agreement.** Stop requests (SIGTERM on any rank) and a non-finite loss on any rank are
  all-reduced before backward every iteration, so all ranks leave the loop at the same
  iteration and no rank waits in a collective that the others never enter.
- **Failure.** A rank that fails (an exception, a lost peer) posts ``rank R: reason`` in
  torchrun's key-value store (:func:`report_failure`) and leaves; its peers' collectives then
  fail, torchrun ends them, and rank 0 reads the first posted reason
  (:func:`first_failure`) into the run's status: ``failed: rank R: reason``.
- **Backends.** The control plane (plan, resume state, messages) is gloo on every device; on
  CUDA an nccl group (:attr:`Dist.group`) carries DDP's gradients and every collective on
  device tensors, so nothing leaves the GPU for them.

Only rank 0 touches the run folder (lock, manifest, config, status, log, path file, resume
state); the other ranks get the validated plan and the resume state from it by broadcast.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as tdist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

__all__ = ["Dist", "from_env", "init", "on_device", "barrier", "shutdown", "ShardedBatches",
           "wrap_model", "local_loss", "agree_flags", "all_sum", "broadcast_object",
           "evaluate_sharded", "fingerprint", "sync_buffers", "all_fingerprints", "report_failure",
           "first_failure", "FAILURE_KEY"]

# a rank stuck in a collective gives up after this long (a dead peer, a hung filesystem on
# rank 0) instead of gloo's default 30 minutes; torchrun then ends the other ranks
COLLECTIVE_TIMEOUT = datetime.timedelta(seconds=float(os.environ.get("PATHVIZ_DIST_TIMEOUT",
                                                                     "300")))


@dataclass(frozen=True)
class Dist:
    """Who this process is among the torchrun processes of one run."""

    rank: int
    world: int
    local_rank: int
    # the process group of collectives on device tensors: None (the default gloo group) on the
    # CPU, an nccl group on CUDA (see :func:`on_device`)
    group: Any = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def writer(self) -> bool:
        """Rank 0 writes every file of the run; the others write nothing."""
        return self.rank == 0


def from_env() -> Dist | None:
    """The torchrun identity from ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; None for a single
    process (also ``torchrun --nproc_per_node=1``, which then trains exactly as without it)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        return None
    if world <= 1:
        return None
    return Dist(rank=rank, world=world, local_rank=local)


def init(d: Dist) -> None:
    """Join the default process group (gloo, torchrun's env rendezvous): the control plane,
    which carries the plan and the resume state before the device is known."""
    if tdist.is_initialized():
        return
    tdist.init_process_group("gloo", timeout=COLLECTIVE_TIMEOUT)


def on_device(d: Dist, device: torch.device) -> tuple[Dist, torch.device]:
    """This rank on the run's device: ``cuda:LOCAL_RANK`` with an nccl group for its device
    collectives (a collective: call on every rank), or the CPU and the default gloo group.

    The backend follows the run's ``--device``, not whether the machine has CUDA."""
    if device.type != "cuda":
        return d, device
    torch.cuda.set_device(d.local_rank)
    group = tdist.new_group(backend="nccl", timeout=COLLECTIVE_TIMEOUT)
    return dataclasses.replace(d, group=group), torch.device("cuda", d.local_rank)


def barrier() -> None:
    """Wait until every rank is here (a collective: call on every rank)."""
    tdist.barrier()


def shutdown() -> None:
    """Leave the process group (no-op when none was joined)."""
    if tdist.is_available() and tdist.is_initialized():
        tdist.destroy_process_group()


class ShardedBatches:
    """This rank's share of each single-process batch: ``(x[rank::world], y[rank::world], n)``
    with ``n`` the global batch size. Same ``len`` and ``epoch(e, start=k)`` as the loader."""

    def __init__(self, loader: Any, d: Dist) -> None:
        self.loader, self.d = loader, d

    def __len__(self) -> int:
        return len(self.loader)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor,
                                                                   int]]:
        r, w = self.d.rank, self.d.world
        if hasattr(self.loader, "batch_len"):  # a loader that decodes only this rank's share
            batches = self.loader.epoch(epoch, start=start, within=(r, w))
            for b, (x, y) in zip(range(start, len(self.loader)), batches):
                yield x, y, self.loader.batch_len(b)
            return
        for x, y in self.loader.epoch(epoch, start=start):
            yield x[r::w], y[r::w], int(y.shape[0])


def wrap_model(model: nn.Module, device: torch.device, d: Dist | None = None) -> nn.Module:
    """``model`` in DDP.

    The wrapped module is ``model`` itself, so the optimizer, the state dict and the recorder
    keep using the plain model; only the forward pass goes through the wrapper. On CUDA the
    caller converts BatchNorm to SyncBatchNorm first, before it builds the optimizer (the
    conversion raises on the CPU/gloo, so CPU ranks normalise over their own share).
    """
    group = None if d is None else d.group
    if device.type == "cuda":
        return DDP(model, device_ids=[device.index], process_group=group)
    return DDP(model, process_group=group)


def local_loss(out: torch.Tensor, y: torch.Tensor, n_global: int, world: int
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss to backpropagate, this shard's summed cross-entropy).

    ``sum * world / n_global``: DDP divides the summed gradients by ``world``, which leaves the
    gradient of the global mean loss, whatever the shard sizes.
    """
    total = F.cross_entropy(out, y, reduction="sum")
    return total * (world / n_global), total.detach()


def agree_flags(flags: list[bool | torch.Tensor], d: Dist, device: torch.device
                ) -> list[int | None]:
    """For each flag, the lowest rank where it is true, or None where it is false on every
    rank (one small all-reduce; a flag may be a 0-d bool tensor on the device)."""
    none = float(d.world)
    t = torch.stack([torch.as_tensor(f, device=device).to(torch.float64).reshape(())
                     for f in flags])
    t = torch.where(t != 0, torch.tensor(float(d.rank), dtype=torch.float64, device=device),
                    torch.tensor(none, dtype=torch.float64, device=device))
    tdist.all_reduce(t, op=tdist.ReduceOp.MIN, group=d.group)
    return [None if v >= none else int(v) for v in t.tolist()]


def sync_buffers(model: nn.Module, d: Dist) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank (a collective).

    Without SyncBatchNorm (the CPU) each rank updates the running statistics from its own share
    in the forward pass; DDP puts rank 0's back at the start of the next forward pass
    (``broadcast_buffers``), so they are what training uses. The worker does the same before it
    evaluates or saves, so that every rank evaluates one model and holds one state."""
    for b in model.buffers():
        tdist.broadcast(b, src=0, group=d.group)


def all_sum(t: torch.Tensor, d: Dist) -> torch.Tensor:
    """The sum over ranks of ``t`` (a new tensor; ``t`` is left as it was)."""
    out = t.clone()
    tdist.all_reduce(out, op=tdist.ReduceOp.SUM, group=d.group)
    return out


def broadcast_object(obj: Any, d: Dist) -> Any:
    """Rank 0's ``obj`` on every rank (pickled: only for plans, messages and the resume state,
    which rank 0 has validated)."""
    box = [obj if d.writer else None]
    tdist.broadcast_object_list(box, src=0)
    return box[0]


@torch.no_grad()
def evaluate_sharded(model: nn.Module, loader: Any, d: Dist) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) over ``loader``, the batches split across ranks.

    Rank r evaluates batches r, r+N, ...; per-batch sums go into a (batches, 3) float64 table
    that is all-reduced (each cell has one non-zero term, so the sum is exact) and then added in
    batch order exactly as :func:`pathviz.evaluate.evaluate` adds them.
    """
    was = model.training
    model.eval()
    device = next(iter(model.parameters())).device
    table = torch.zeros(len(loader), 3, dtype=torch.float64, device=device)
    if hasattr(loader, "batch_len"):  # a loader that decodes only this rank's batches
        mine = zip(range(d.rank, len(loader), d.world),
                   loader.epoch(0, among=(d.rank, d.world)))
    else:
        mine = ((b, xy) for b, xy in enumerate(loader.epoch(0)) if b % d.world == d.rank)
    try:
        for b, (x, y) in mine:
            out = model(x)
            table[b, 0] = F.cross_entropy(out, y, reduction="sum").double()
            table[b, 1] = (out.argmax(1) == y).sum().double()
            table[b, 2] = float(y.shape[0])
    finally:
        model.train(was)
    tdist.all_reduce(table, op=tdist.ReduceOp.SUM, group=d.group)
    table = table.cpu()  # one transfer per split
    loss = torch.zeros((), dtype=torch.float64)
    for v in table[:, 0]:
        loss += v
    correct, n = int(table[:, 1].sum()), int(table[:, 2].sum())
    if n == 0:
        return float("nan"), float("nan")
    return float(loss) / n, correct / n


def fingerprint(model: nn.Module, opt: torch.optim.Optimizer) -> int:
    """A 63-bit hash of the bytes of every parameter, buffer and optimizer state tensor (Gamma,
    z, momentum): equal on two ranks only if their training states are bit-identical."""
    h = hashlib.sha256()

    def add(t: torch.Tensor) -> None:
        h.update(t.detach().contiguous().cpu().numpy().tobytes())

    for _, t in sorted(model.state_dict().items()):
        add(t)
    for group in opt.param_groups:
        for p in group["params"]:
            for _, v in sorted(opt.state.get(p, {}).items()):
                if isinstance(v, torch.Tensor):
                    add(v)
    return int.from_bytes(h.digest()[:8], "little") >> 1


def all_fingerprints(model: nn.Module, opt: torch.optim.Optimizer, d: Dist,
                     device: torch.device) -> list[int]:
    """Every rank's :func:`fingerprint`, in rank order (a collective: call on every rank)."""
    mine = torch.tensor([fingerprint(model, opt)], dtype=torch.int64, device=device)
    out = [torch.zeros_like(mine) for _ in range(d.world)]
    tdist.all_gather(out, mine, group=d.group)
    return [int(v) for v in torch.cat(out).tolist()]


# ---- failures ------------------------------------------------------------------------------

FAILURE_KEY = "pathviz/failure"
_store: Any = None


def _failure_store(timeout: float = 5.0) -> Any:
    """A client of torchrun's key-value store (``MASTER_ADDR``/``MASTER_PORT``), which outlives
    the process group: a failing rank can post there even when its peers are gone."""
    global _store
    if _store is None:
        _store = tdist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                                is_master=False, timeout=datetime.timedelta(seconds=timeout),
                                wait_for_workers=False)
    return _store


def report_failure(d: Dist, reason: str) -> None:
    """Post ``rank R: reason`` as the run's failure unless a rank posted one first (best
    effort: a store that is gone already leaves rank 0 its own reason)."""
    message = f"rank {d.rank}: {reason}"
    try:
        _failure_store().compare_set(FAILURE_KEY, "", message)
    except Exception:  # noqa: BLE001 - the store may be gone with torchrun: nothing to add
        pass


def first_failure(wait: float = 2.0) -> str | None:
    """The first failure a rank posted (``rank R: reason``), waiting up to ``wait`` seconds for
    one (a peer that fails posts before it leaves); None when there is none."""
    deadline = time.monotonic() + wait
    while True:
        try:
            store = _failure_store()
            if store.check([FAILURE_KEY]):
                value = store.get(FAILURE_KEY).decode("utf-8", "replace")
                if value:
                    return value
        except Exception:  # noqa: BLE001 - no store: no posted reason
            return None
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)


def to_cpu(obj: Any) -> Any:
    """``obj`` with every tensor moved to the CPU (for a pickled broadcast)."""
    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


class RanksDiverged(RuntimeError):
    """The processes of a multi-process run no longer hold the same training state."""
