"""The dense reference a pruning baseline is cut from, and the batches Taylor's score uses.

The default reference is the run's SGD sibling (a folder next to it trained with ``--optimizer
sgd`` on the same model and data, :func:`pathviz.tickets.sgd_baselines`) at its last saved
weights; ``pathviz.baselines`` and ``pathviz.retrain`` both take it from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pathviz import runs, tickets
from pathviz.data import make_loader
from pathviz.run_model import ExportError, load_run_model
from pathviz.store import PathFileError, PathReader
from pathviz.tickets import supports as sp
from pathviz.tickets.baselines import BaselineError

__all__ = ["sgd_reference", "load_reference", "taylor_batches"]


def sgd_reference(run_dir: Path, model: torch.nn.Module) -> tuple[Path, int, torch.nn.Module]:
    """(folder, last saved iteration, model with those weights) of the run's SGD sibling, the
    default dense reference; BaselineError when there is none or it has another architecture."""
    found = tickets.sgd_baselines(run_dir)
    if not found:
        raise BaselineError(f"{run_dir} has no SGD sibling run (a folder next to it trained with "
                         f"--optimizer sgd on the same model and data); train one, or pass "
                         f"--reference self")
    ref_dir = found[0]
    try:
        with PathReader(runs.paths_for_dir(ref_dir).path) as r:
            ws = [int(i) for i in r.weight_iterations]
    except (PathFileError, runs.RunError) as e:
        raise BaselineError(f"the SGD reference {ref_dir}: {e}") from None
    if not ws:
        raise BaselineError(f"the SGD reference {ref_dir} has no saved weights")
    ref = load_reference(ref_dir, ws[-1])
    a, b = ref.state_dict(), model.state_dict()
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        raise BaselineError(f"the SGD reference {ref_dir} has another architecture than "
                         f"{run_dir}; pass --reference self")
    return ref_dir, ws[-1], ref


def load_reference(ref_dir: Path, iteration: int) -> torch.nn.Module:
    try:
        return load_run_model(ref_dir, iteration)[0]
    except ExportError as e:
        raise BaselineError(f"the SGD reference {ref_dir}: {e}") from None


def taylor_batches(data: Any, batch_size: int,
                   seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first TAYLOR_BATCHES batches of the training split in a seeded order, no augmentation
    (the same batches for every iteration and reference)."""
    d = data
    loader = make_loader(d.train_x, d.train_y, d.info, batch_size, shuffle=True,
                         augment=False, seed=seed)
    out = []
    for x, y in loader.epoch(0):
        out.append((x, y))
        if len(out) >= sp.TAYLOR_BATCHES:
            break
    return out
