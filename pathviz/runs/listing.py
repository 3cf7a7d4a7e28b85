"""Listing the runs under a checkpoints root, each as a :class:`RunInfo`."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pathviz.runs.paths import _NAME, RunError, RunPaths, checkpoints_root, resolve_inside
from pathviz.runs.status import effective_state, read_status


@dataclass(frozen=True)
class RunInfo:
    """One line of the run picker."""

    name: str
    paths: RunPaths
    state: str
    reason: str
    model: str
    dataset: str
    snapshots: int
    iteration: int
    total_iterations: int
    updated: float
    processes: int = 1  # torchrun processes that trained it (status.json, DDP runs)

    @property
    def resumable(self) -> bool:
        return self.state in ("stopped", "failed") and self.paths.resume.exists()


def list_runs(root: str | os.PathLike | None = None) -> list[RunInfo]:
    """Every run folder under ``root``, newest first; unreadable ones are listed with a reason."""
    root = Path(root) if root is not None else checkpoints_root()
    if not root.is_dir():
        return []
    out = []
    for d in root.iterdir():
        if not d.is_dir() or not _NAME.match(d.name):
            continue
        if d.is_symlink():
            try:
                resolve_inside(d, root)
            except RunError:
                continue  # a link to elsewhere is not a run of this root
        paths = RunPaths(d)
        if not paths.has_run() and not paths.status.exists():
            continue
        status = read_status(paths)
        state, reason = effective_state(status)
        cfg = status.get("config") or _read_config(paths) or {}
        out.append(RunInfo(
            name=d.name, paths=paths, state=state, reason=reason,
            model=str(cfg.get("model", "?")), dataset=str(cfg.get("dataset", "?")),
            snapshots=int(status.get("snapshots", 0)), iteration=int(status.get("iteration", 0)),
            total_iterations=int(status.get("total_iterations", 0)),
            updated=float(status.get("updated", d.stat().st_mtime)),
            processes=_processes(status)))
    return sorted(out, key=lambda r: -r.updated)


def _processes(status: dict[str, Any]) -> int:
    """The process count a status records (1 for a single process or a bad value)."""
    n = status.get("processes")
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1


def _read_config(paths: RunPaths) -> dict[str, Any] | None:
    try:
        with open(paths.config) as f:
            data = json.load(f)
    except (OSError, ValueError, RecursionError):  # RecursionError: nested too deep to parse
        return None
    return data if isinstance(data, dict) else None
