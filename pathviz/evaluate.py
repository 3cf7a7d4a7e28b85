"""Loss and accuracy of a model on a data split, and the thread pinning that makes them repeatable.

The worker's ``val_acc``/``test_acc``/``*_sparse`` metrics and export's report both call
:func:`evaluate` with the same batch size and order, so an accuracy shown for the sparse model is
the exported file's accuracy on the same data.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pathviz.data import BatchLoader, DatasetInfo

__all__ = ["EVAL_BATCH", "eval_loader", "evaluate", "pin_threads"]

EVAL_BATCH = 512


def eval_loader(x: torch.Tensor, y: torch.Tensor, info: DatasetInfo,
                device: torch.device | str = "cpu") -> BatchLoader:
    """A fixed-order, un-augmented loader over (x, y) in batches of :data:`EVAL_BATCH`."""
    return BatchLoader(x, y, info, EVAL_BATCH, shuffle=False, augment=False, device=device)


@torch.no_grad()
def evaluate(model: nn.Module, loader: BatchLoader) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` over ``loader``; the model's mode is kept."""
    was = model.training
    model.eval()
    loss = torch.zeros((), dtype=torch.float64)
    correct = n = 0
    try:
        for x, y in loader.epoch(0):
            out = model(x)
            loss += F.cross_entropy(out, y, reduction="sum").double().cpu()
            correct += int((out.argmax(1) == y).sum())
            n += int(y.shape[0])
    finally:
        model.train(was)
    if n == 0:
        return float("nan"), float("nan")
    return float(loss) / n, correct / n


def pin_threads(threads: int, deterministic: bool = True) -> None:
    """Fix what decides the numbers on the CPU: the intra-op thread count and, where torch has
    them, deterministic algorithms.

    CPU convolutions and matrix products split their reductions by thread, so the same run on
    a machine with another core count gave another path. The worker stores ``threads`` in the
    run config and calls this before building the model, and again on resume; export calls it
    too, so its accuracy is computed exactly as the worker's was.
    """
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is optional
        numba = None
    if numba is not None:
        from pathviz import _fused

        # numba's OpenMP layer resets the process's OpenMP thread count when it starts, which
        # MKL/oneDNN then follow: start it first, then set torch's count (measured: without
        # this, NUMBA_NUM_THREADS=4 changed the demo's weights in the last bit)
        _fused.launch()
        # the fused SLBI kernel has no cross-row reductions, so this only keeps timings honest
        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    torch.set_num_threads(int(threads))
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
