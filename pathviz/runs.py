"""Run folders: names, file names, listing, status, and starting/stopping a training worker.

This module owns every file name of a run; nothing else builds run paths. It needs no torch, so
the app can list and follow runs without loading it.

A run folder ``<root>/<name>/`` holds:
    path.h5       the regularization path (pathviz.store)
    config.json   the full run config
    status.json   state, pid, progress and heartbeat, replaced atomically by the worker
    resume.pt     model, optimizer and loop state for --resume, replaced atomically
    train.log     the worker's log
    worker.lock   held (O_EXCL) by the live worker, so a run can never train twice at once
    exports/      exported subnetworks and their reports
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PATH_FILE = "path.h5"
CONFIG_FILE = "config.json"
STATUS_FILE = "status.json"
RESUME_FILE = "resume.pt"
LOG_FILE = "train.log"
LOCK_FILE = "worker.lock"
EXPORTS_DIR = "exports"
RUN_FILES = (PATH_FILE, CONFIG_FILE, STATUS_FILE, RESUME_FILE, LOG_FILE)

STATES = ("starting", "running", "finished", "failed", "stopped")
ENV_ROOT = "PATHVIZ_CHECKPOINTS"
HEARTBEAT_TIMEOUT = 30.0  # seconds without a heartbeat before a "running" run counts as dead

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")

__all__ = ["RunPaths", "RunInfo", "RunError", "checkpoints_root", "validate_name", "run_paths",
           "list_runs", "read_status", "write_status", "effective_state", "start_worker",
           "stop_worker", "acquire_lock", "release_lock"]


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
    def exports(self) -> Path:
        return self.dir / EXPORTS_DIR

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


def paths_for_dir(run_dir: str | os.PathLike) -> RunPaths:
    """The files of the run in an explicit folder (the CLI's ``--out`` / ``RUN_DIR``)."""
    d = Path(run_dir)
    validate_name(d.resolve().name)
    return RunPaths(d)


# ---- status ------------------------------------------------------------------------------


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temp file and move it into place, so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def write_status(paths: RunPaths, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into the status sidecar (atomically) and return the new status."""
    status = read_status(paths) if paths.status.exists() else {}
    status.pop("problem", None)
    status.update(fields, updated=time.time())
    write_json_atomic(paths.status, status)
    return status


def read_status(paths: RunPaths) -> dict[str, Any]:
    """The status sidecar; ``{"state": "unknown", "problem": ...}`` if missing or unreadable."""
    try:
        with open(paths.status) as f:
            data = json.load(f)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        return data
    except FileNotFoundError:
        return {"state": "unknown", "problem": "no status file"}
    except (OSError, ValueError) as e:
        return {"state": "unknown", "problem": f"unreadable status file ({e})"}


def process_start_time(pid: int) -> int | None:
    """Kernel start time of ``pid`` (clock ticks since boot), or None if it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name may hold spaces and parentheses: split after the last ')'
    rest = stat[stat.rindex(")") + 2:].split()
    if rest[0] in ("Z", "X"):
        return None
    return int(rest[19])


def is_alive(pid: int | None, start_time: int | None) -> bool:
    """True if ``pid`` runs and is the same process that recorded ``start_time`` (PIDs recycle)."""
    if not pid:
        return False
    st = process_start_time(int(pid))
    return st is not None and (start_time is None or st == int(start_time))


def effective_state(status: dict[str, Any]) -> tuple[str, str]:
    """(state, reason) as a user should see it: a "running" run whose worker died is "stopped"."""
    state = status.get("state", "unknown")
    reason = status.get("reason", "") or status.get("problem", "")
    if state in ("running", "starting"):
        alive = is_alive(status.get("pid"), status.get("pid_start"))
        stale = time.time() - float(status.get("heartbeat", status.get("updated", 0))) > \
            HEARTBEAT_TIMEOUT
        if state == "starting" and status.get("pid") is None and not stale:
            return state, reason  # the starter has not recorded the pid yet
        if not alive:
            if state == "starting":
                return "failed", "the worker exited before training started; see train.log"
            return "stopped", "the worker exited without saying why (killed?); resume it"
    return state, reason


# ---- listing -----------------------------------------------------------------------------


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
            updated=float(status.get("updated", d.stat().st_mtime))))
    return sorted(out, key=lambda r: -r.updated)


def _read_config(paths: RunPaths) -> dict[str, Any] | None:
    try:
        with open(paths.config) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


# ---- the worker lock ---------------------------------------------------------------------


def acquire_lock(paths: RunPaths) -> None:
    """Take the run's worker lock for this process; RunError if a live worker holds it."""
    paths.dir.mkdir(parents=True, exist_ok=True)
    me = {"pid": os.getpid(), "pid_start": process_start_time(os.getpid())}
    for _ in range(2):
        try:
            fd = os.open(paths.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(paths.lock.read_text() or "{}")
            except (OSError, ValueError):
                holder = {}
            if holder and is_alive(holder.get("pid"), holder.get("pid_start")):
                raise RunError(f"run {paths.name!r} is already being trained by process "
                               f"{holder['pid']}; stop it first") from None
            if not holder and time.time() - _mtime(paths.lock) < 5:
                raise RunError(f"run {paths.name!r} is being started by another process") from None
            paths.lock.unlink(missing_ok=True)  # stale: its worker is gone
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return
    raise RunError(f"could not take the lock of run {paths.name!r}")


def release_lock(paths: RunPaths) -> None:
    """Drop the lock if this process holds it."""
    try:
        holder = json.loads(paths.lock.read_text())
    except (OSError, ValueError):
        return
    if holder.get("pid") == os.getpid():
        paths.lock.unlink(missing_ok=True)


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except OSError:
        return 0.0


# ---- starting and stopping ---------------------------------------------------------------


def worker_command(paths: RunPaths, args: Sequence[str] = (), resume: bool = False) -> list[str]:
    """The command line that trains (or resumes) the run in ``paths``."""
    cmd = [sys.executable, "-m", "pathviz.train", "--out", str(paths.dir), "--no-progress"]
    if resume:
        cmd.append("--resume")
    return cmd + list(args)


def start_worker(paths: RunPaths, args: Sequence[str] = (), resume: bool = False) -> int:
    """Start the training worker as its own process session; returns its pid.

    The worker itself takes the run's lock, so a second start (a double click, a second tab) exits
    at once with "already being trained" in the log and leaves the first alone.
    """
    lock_holder = _lock_holder(paths)
    if lock_holder:
        raise RunError(f"run {paths.name!r} is already being trained by process {lock_holder}")
    status = read_status(paths)
    if status.get("state") in ("starting", "running") and is_alive(status.get("pid"),
                                                                    status.get("pid_start")):
        raise RunError(f"run {paths.name!r} is already being trained by process "
                       f"{status['pid']}")
    if not resume and paths.has_run():
        raise RunError(f"run {paths.name!r} already exists; choose another name or resume it")
    if resume and not paths.resume.exists():
        raise RunError(f"run {paths.name!r} has no resume state to continue from")
    paths.dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        write_status(paths, state="starting", reason="", pid=None)
    with open(paths.log, "ab") as log:
        proc = subprocess.Popen(worker_command(paths, args, resume), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if not resume:
        write_status(paths, pid=proc.pid, pid_start=process_start_time(proc.pid))
    return proc.pid


def _lock_holder(paths: RunPaths) -> int | None:
    try:
        holder = json.loads(paths.lock.read_text())
    except (OSError, ValueError):
        return None
    return holder.get("pid") if is_alive(holder.get("pid"), holder.get("pid_start")) else None


def stop_worker(paths: RunPaths, timeout: float = 15.0) -> bool:
    """SIGTERM the run's worker (it flushes and marks itself stopped), SIGKILL after ``timeout``.

    Returns True if a live worker was stopped, False if none was running.
    """
    status = read_status(paths)
    pid = _lock_holder(paths) or (status.get("pid") if is_alive(status.get("pid"),
                                                                 status.get("pid_start")) else None)
    if not pid:
        return False
    start = process_start_time(pid)
    try:
        os.killpg(os.getpgid(pid), signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not is_alive(pid, start):
            return True
        time.sleep(0.05)
    try:
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    except ProcessLookupError:
        pass
    write_status(paths, state="stopped", reason="killed after not stopping within "
                 f"{timeout:.0f}s", heartbeat=time.time())
    return True
