"""The worker's resume state: written atomically at each weight save, read back by ``--resume``.

``resume.pt`` holds what the path file does not: the iteration, the elapsed time, the model's
and the optimizer's state (Gamma, z, momentum), the train-loss sums since the last snapshot, the
RNG state and the config it was trained with. It is loaded with ``weights_only=True``: a run
folder may come from someone else, and nothing in it is unpickled as code. The path file is cut
back to the resume point on resume, so the continued path has no gap and no duplicate row.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from pathviz import numerics, runs
from pathviz.config import RunConfig, stored_settings
from pathviz.optim import support_mask
from pathviz.store import PathFileError, PathReader, PathWriter, copy_path

log = logging.getLogger("pathviz.train")  # the worker's logger: its resume notes go with its log

__all__ = ["ResumeError", "OVERRIDABLE", "save_state", "load_state", "keep_rows",
           "support_at_last_weights", "warn_other_environment"]

# settings a resume may change: they do not change the numbers
OVERRIDABLE = frozenset({"device", "impl", "workers", "tensorboard"})


class ResumeError(ValueError):
    """The run cannot be resumed: one sentence naming the file and the fix."""


def save_state(paths: runs.RunPaths, state: dict[str, Any]) -> None:
    """Write ``state`` to the run's resume file atomically (a temp file, then a rename).

    ``torch.save`` serialises to memory and the bytes go to disk with plain file I/O
    (:func:`pathviz.runs.write_bytes_atomic`): written straight to a file on a full disk,
    torch raises ``RuntimeError: [enforce fail at inline_container.cc] unexpected pos``, while
    this way the full disk is an ``OSError`` (ENOSPC) naming ``resume.pt``, no temp file is left
    and the previous resume state stays in place.
    """
    buf = io.BytesIO()
    torch.save(state, buf)
    runs.write_bytes_atomic(paths.resume, buf.getbuffer(), sync=True)


def load_state(paths: runs.RunPaths, device: torch.device, model: nn.Module,
               opt: torch.optim.Optimizer, config: dict[str, Any]) -> dict[str, Any]:
    """Load the resume state into ``model`` and ``opt`` and return it.

    Raises ResumeError when the file is truncated or foreign, or when ``config`` (the run's
    config.json) differs from the settings it was trained with in anything but
    :data:`OVERRIDABLE`.
    """
    try:
        state = torch.load(paths.resume, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
    except Exception as e:  # a truncated or foreign file: say so, touch nothing
        raise ResumeError(f"{paths.resume} cannot be loaded ({type(e).__name__}); the run "
                          f"cannot be resumed: start it again with --overwrite") from None
    recorded = state.get("config")
    if isinstance(recorded, dict):
        # a setting added since the run started counts as its default on both sides
        # (older than the run: the value that made it, config.LEGACY_DEFAULTS)
        defaults = RunConfig().to_json()
        mine = {k: v for k, v in {**defaults, **stored_settings(config)}.items()
                if k not in OVERRIDABLE}
        theirs = {k: v for k, v in {**defaults, **stored_settings(recorded)}.items()
                  if k not in OVERRIDABLE}
        changed = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        if changed:
            raise ResumeError(f"{paths.config} differs from the settings the run was trained "
                              f"with ({', '.join(changed)}); restore it, or start a new run "
                              f"with the new settings")
    return state


def keep_rows(paths: runs.RunPaths, iteration: int) -> PathWriter:
    """Keep the path file's readable rows up to ``iteration`` in a fresh file, swap it in and
    return its writer (open for appending)."""
    tmp = paths.tmp(paths.path)
    try:
        writer = copy_path(paths.path, tmp, iteration)
    except (PathFileError, OSError, RuntimeError) as e:
        tmp.unlink(missing_ok=True)
        if runs.is_disk_full(e):  # no room for the copy: the worker's disk-full sentence
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(paths.path)) from e
        if not isinstance(e, PathFileError):
            raise
        raise ResumeError(f"{e}; the run cannot be resumed") from None
    os.replace(tmp, paths.path)
    return writer


def support_at_last_weights(path: os.PathLike | str, layers: Iterable[Any],
                            params: Iterable[torch.Tensor]) -> list[torch.Tensor] | None:
    """Each Gamma layer's support mask at the path's last saved weights (None without any),
    so that ``weights_on_change`` counts from there after a resume."""
    with PathReader(path) as r:
        wits = r.weight_iterations
        g = r.gamma_at(int(wits[-1])) if len(wits) else None
    if g is None:
        return None
    return [support_mask([torch.as_tensor(g[m.param]).to(p.device) for m in s.members],
                         s.penalty, [m.span for m in s.members]) if s.members else
            support_mask(torch.as_tensor(g[s.param]).to(p.device), s.penalty)
            for s, p in zip(layers, params)]


def warn_other_environment(paths: runs.RunPaths, environment: dict[str, Any]) -> None:
    """A resume with other library versions (or another GPU) than the run started with goes
    on, but the rest of the path is no longer the one an uninterrupted run would give: say so
    in the log, naming what changed (``environment``: this process's, as pinned)."""
    try:
        recorded = json.loads(paths.config.read_text()).get("environment") or {}
    except (OSError, ValueError, AttributeError, RecursionError):
        return
    changed = numerics.differences(recorded, environment) if isinstance(recorded, dict) else []
    if changed:
        log.warning("resumed with another environment than the run started with (%s): the "
                    "path goes on, but not bit for bit as an uninterrupted run would",
                    "; ".join(changed))
