"""A run's names: the file names of a run folder, the run name rules, the checkpoints root,
and :class:`RunPaths`, the one object every caller passes for a run's files. Nothing else
builds a run path."""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass
from pathlib import Path

PATH_FILE = "path.h5"
CONFIG_FILE = "config.json"
STATUS_FILE = "status.json"
RESUME_FILE = "resume.pt"
LOG_FILE = "train.log"
LOCK_FILE = "worker.lock"
MANIFEST_FILE = "manifest.json"
BASELINES_FILE = "baselines.json"  # pathviz.baselines: pruning baselines along the path
BASELINES_LOCK = "baselines.lock"  # held (flock) while python -m pathviz.baselines measures
EXPORTS_DIR = "exports"
RUN_FILES = (PATH_FILE, CONFIG_FILE, STATUS_FILE, RESUME_FILE, LOG_FILE)
# errno values that mean "no room to write": a full disk, a quota, a file size limit
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_TMP = re.compile(r"\A\.(.+)\.(\d+)\.tmp\Z")

STATES = ("starting", "running", "finished", "failed", "stopped")
ENV_ROOT = "PATHVIZ_CHECKPOINTS"
HEARTBEAT_TIMEOUT = 30.0  # seconds without a heartbeat before a "running" run counts as dead

# \Z, not $: "$" also matches before a trailing newline, so "x\n" would pass
_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,79}\Z")



class RunError(Exception):
    """A run that cannot be found, named, started or stopped; the message says why."""


def checkpoints_root() -> Path:
    """The folder of runs: ``$PATHVIZ_CHECKPOINTS`` or ``./checkpoints``."""
    return Path(os.environ.get(ENV_ROOT) or "checkpoints")


def validate_name(name: str) -> str:
    """A run name is letters, digits, '.', '_' and '-' (no path separators, no leading dot)."""
    if not isinstance(name, str) or not _NAME.match(name) or name in (".", ".."):
        raise RunError(f"invalid run name {name!r}: use letters, digits, '.', '_' and '-' "
                       f"(at most 80, not starting with '.' or '-')")
    return name


@dataclass(frozen=True)
class RunPaths:
    """Every file of one run."""

    dir: Path

    @property
    def name(self) -> str:
        return self.dir.name

    @property
    def path(self) -> Path:
        return self.dir / PATH_FILE

    @property
    def config(self) -> Path:
        return self.dir / CONFIG_FILE

    @property
    def status(self) -> Path:
        return self.dir / STATUS_FILE

    @property
    def resume(self) -> Path:
        return self.dir / RESUME_FILE

    @property
    def log(self) -> Path:
        return self.dir / LOG_FILE

    @property
    def lock(self) -> Path:
        return self.dir / LOCK_FILE

    @property
    def manifest(self) -> Path:
        return self.dir / MANIFEST_FILE

    @property
    def exports(self) -> Path:
        return self.dir / EXPORTS_DIR

    @property
    def baselines(self) -> Path:
        """Pruning baselines at the path's widths (pathviz.baselines), JSON."""
        return self.dir / BASELINES_FILE

    @property
    def baselines_lock(self) -> Path:
        """Held while ``python -m pathviz.baselines`` measures this run; gone afterwards."""
        return self.dir / BASELINES_LOCK

    @property
    def tickets(self) -> Path:
        """Retrained subnetworks (winning tickets and their controls), see pathviz.tickets."""
        return self.dir / "tickets"

    def tmp(self, path: Path) -> Path:
        """A temporary sibling of ``path`` in the same folder, for atomic replacement."""
        return path.with_name(f".{path.name}.{os.getpid()}.tmp")

    def has_run(self) -> bool:
        """True when the folder already holds a run's files (a lone status file is a pending
        start, written by :func:`start_worker` before the worker writes anything)."""
        return any((self.dir / f).exists() for f in (PATH_FILE, CONFIG_FILE, RESUME_FILE))


def run_paths(name: str, root: str | os.PathLike | None = None) -> RunPaths:
    """The files of run ``name`` under ``root``; refuses names that would leave ``root``."""
    validate_name(name)
    root = Path(root) if root is not None else checkpoints_root()
    d = (root / name)
    if d.resolve().parent != root.resolve():
        raise RunError(f"run {name!r} resolves outside {root}")
    return RunPaths(d)


def resolve_inside(path: str | os.PathLike, root: str | os.PathLike) -> Path:
    """``path`` with every symlink resolved; RunError if that lies outside ``root``.

    Use it before reading or writing anything under a run folder, so a link planted in a shared
    run cannot point a download or an export at a file elsewhere.
    """
    real_root = Path(root).resolve()
    real = Path(path).resolve()
    if real != real_root and real_root not in real.parents:
        raise RunError(f"{path} resolves to {real}, outside {real_root}; remove the link or "
                       f"copy the file into the run folder")
    return real


def paths_for_dir(run_dir: str | os.PathLike | RunPaths) -> RunPaths:
    """The files of the run in an explicit folder (the CLI's ``--out`` / ``RUN_DIR``); a
    :class:`RunPaths` is returned as it is, so a caller resolves a run's folder once and passes
    that one object down."""
    if isinstance(run_dir, RunPaths):
        return run_dir
    d = Path(run_dir)
    validate_name(d.resolve().name)
    return RunPaths(d)
