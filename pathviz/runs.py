"""Run folders: names, file names, listing, status, and starting/stopping a training worker.

This module owns every file name of a run; nothing else builds run paths. It needs no torch, so
the app can list and follow runs without loading it.

A run folder ``<root>/<name>/`` holds:
    path.h5       the regularization path (pathviz.store)
    config.json   the full run config
    status.json   state, pid, progress and heartbeat, replaced atomically by the worker
    resume.pt     model, optimizer and loop state for --resume, replaced atomically
    train.log     the worker's log
    worker.lock   flock-ed by the live worker, so a run can never train twice at once
    manifest.json marks a folder pathviz created and lists the files it wrote there, so
                  --overwrite removes only those
    exports/      exported subnetworks and their reports

A run folder is data, never code: nothing here unpickles or executes anything from it, and
paths from it are resolved (:func:`resolve_inside`) before they are read or written.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pathviz import jsonsafe, readonly

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

__all__ = ["RunPaths", "RunInfo", "RunError", "checkpoints_root", "validate_name", "run_paths",
           "list_runs", "read_status", "write_status", "effective_state", "start_worker",
           "stop_worker", "acquire_lock", "release_lock", "resolve_inside", "check_run_dir",
           "claim_run_dir", "record_files", "clear_run", "clean_stale_temps", "is_disk_full",
           "disk_full_target", "write_json_atomic", "write_bytes_atomic"]


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


def paths_for_dir(run_dir: str | os.PathLike) -> RunPaths:
    """The files of the run in an explicit folder (the CLI's ``--out`` / ``RUN_DIR``)."""
    d = Path(run_dir)
    validate_name(d.resolve().name)
    return RunPaths(d)


# ---- status ------------------------------------------------------------------------------


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temp file and move it into place, so readers never see half a file.

    A non-finite number is written as null (:mod:`pathviz.jsonsafe`), so every JSON parser
    reads the file.

    On a full disk the temp file is removed and an OSError naming ``path`` raised (see
    :func:`write_bytes_atomic`); :func:`write_status` has a last resort for the status.
    """
    write_bytes_atomic(path, jsonsafe.dumps(data, indent=1, sort_keys=True).encode())


def write_bytes_atomic(path: Path, data: bytes, sync: bool = False) -> None:
    """Write ``data`` to a temp file next to ``path`` and move it into place.

    Plain file I/O, so a full disk is an ``OSError`` with its errno (ENOSPC, EDQUOT, EFBIG),
    whatever library made the bytes: serialise to memory first (``torch.save`` to a
    ``BytesIO``, h5py to a file image) and hand the bytes here. On any failure the temp file is
    removed; a disk-full error is raised again with ``filename`` set to ``path`` (not the temp
    name), so the one-sentence reason can say which file could not be written. ``sync`` also
    fsyncs before the rename: a filesystem that allocates late (NFS, btrfs) may report the
    full disk only then; it costs a disk round trip, so the status heartbeat goes without.
    """
    refused = readonly.refusal(f"write {Path(path).name}")
    if refused:  # every run file the app writes comes through here: the last net
        raise RunError(refused)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            if sync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno in DISK_FULL:
            raise OSError(e.errno, os.strerror(e.errno), str(path)) from e
        raise


def _write_in_place(path: Path, data: Any) -> None:
    """Overwrite ``path`` in place within its existing size (padded with spaces, still valid
    JSON), so it needs no new disk blocks: the last resort for a status on a full disk."""
    text = jsonsafe.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    size = path.stat().st_size
    if len(text) > max(size, 4096 - 1):
        raise OSError(errno.ENOSPC, "no room to record the status", str(path))
    with open(path, "r+b") as f:
        f.write(text + b" " * max(0, size - len(text)))
        f.flush()


def write_status(paths: RunPaths, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into the status sidecar (atomically) and return the new status."""
    status = read_status(paths) if paths.status.exists() else {}
    status.pop("problem", None)
    status.update(fields, updated=time.time())
    try:
        write_json_atomic(paths.status, status)
    except OSError as e:
        if not is_disk_full(e) or not paths.status.is_file():
            raise
        _write_in_place(paths.status, status)  # a full disk must not hide how the run ended
    return status


# the status fields that readers use, and the JSON each must be (a shared run's status.json
# is data from anywhere: a field of another kind is dropped, so no reader meets it)
_STATUS_TYPES: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(("state", "reason", "problem"), (str,)),
    **dict.fromkeys(("snapshots", "iteration", "total_iterations", "processes", "pid",
                     "pid_start"), (int,)),
    **dict.fromkeys(("updated", "heartbeat", "epoch", "elapsed"), (int, float)),
    "config": (dict,)}
# (the others are read with int()/float() as they are, so null is of the wrong kind there)
_MAY_BE_NONE = ("reason", "problem", "pid", "pid_start", "config", "epoch", "elapsed",
                "processes")


def _sound_field(key: str, value: Any) -> bool:
    kinds = _STATUS_TYPES.get(key)
    if kinds is None or (value is None and key in _MAY_BE_NONE):
        return True
    if isinstance(value, bool) or not isinstance(value, kinds):
        return False
    if isinstance(value, (int, float)):  # finite (NaN and inf fail it), and a C long holds it
        return abs(value) < 2 ** 63
    return True


def read_status(paths: RunPaths) -> dict[str, Any]:
    """The status sidecar; ``{"state": "unknown", "problem": ...}`` if missing or unreadable.
    Fields of the wrong kind (text for a count, NaN, 1e999, a list for the config) are
    dropped and named in ``problem``."""
    try:
        with open(paths.status) as f:
            data = json.load(f)
        if not isinstance(data, dict):
            raise ValueError("not an object")
    except FileNotFoundError:
        return {"state": "unknown", "problem": "no status file"}
    except (OSError, ValueError, RecursionError) as e:
        return {"state": "unknown", "problem": f"unreadable status file ({_first_line(e)})"}
    bad = sorted(k for k, v in data.items() if not _sound_field(k, v))
    if bad:
        data = {k: v for k, v in data.items() if k not in bad}
        data.setdefault("problem", f"status file fields {', '.join(bad)} are unusable; ignored")
    return data


def _first_line(e: BaseException) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0][:200]


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


# ---- the worker lock ---------------------------------------------------------------------

# lock files this process holds: resolved path -> open descriptor (flock lives on the descriptor)
_HELD: dict[str, int] = {}
# what each held lock file held before this process took it: its bytes, or None when this
# process created it (release_lock(restore=True) puts that back)
_PRIOR: dict[str, bytes | None] = {}


def acquire_lock(paths: RunPaths, clean: bool = True) -> None:
    """Take the run's worker lock for this process; RunError if another process holds it.

    The lock is ``fcntl.flock`` on ``worker.lock``: the kernel drops it when its holder dies, so
    a stale lock is simply free and takeover needs no guessing. The holder unlinks the file on
    release; a taker that locked a file which was unlinked meanwhile (its inode is no longer at
    the path) retries, so two takers can never both win. The file holds the holder's pid and
    start time for display only. Stale temp files of dead writers are removed once it is held,
    unless ``clean`` is False (a caller that may still refuse, and must then leave the folder
    as it found it, cleans them with :func:`clean_stale_temps` once it goes on).
    """
    paths.dir.mkdir(parents=True, exist_ok=True)
    key = str(paths.lock.resolve())
    if key in _HELD:
        raise RunError(f"run {paths.name!r} is already being trained by process {os.getpid()} "
                       f"(this one); stop it first")
    for _ in range(100):
        try:
            fd = os.open(paths.lock, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_NOFOLLOW, 0o644)
            created = True
        except FileExistsError:
            try:
                fd = os.open(paths.lock, os.O_RDWR | os.O_NOFOLLOW)
            except FileNotFoundError:  # released between the two opens: try again
                continue
            created = False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = _current_holder(paths)
            if holder is None:  # its holder let go while we looked: try again
                continue
            raise RunError(f"run {paths.name!r} is already being trained by {holder}; stop it "
                           f"first") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(paths.lock, follow_symlinks=False).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # its holder released (and unlinked) it between our open and flock
            os.close(fd)
            continue
        me = json.dumps({"pid": os.getpid(), "pid_start": process_start_time(os.getpid())})
        prior = None if created else _read_fd(fd)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, me.encode(), 0)
        except OSError as e:  # a full disk: put the file back as it was, and say which file
            _restore(paths, fd, prior)
            if e.errno in DISK_FULL:
                raise OSError(e.errno, os.strerror(e.errno), str(paths.lock)) from e
            raise
        _HELD[key] = fd
        _PRIOR[key] = prior
        if clean:
            clean_stale_temps(paths)
        return
    raise RunError(f"could not take the lock of run {paths.name!r}; try again")


HOLDER_WAIT = 2.0  # seconds a refused taker waits for the holder to write its pid


def _current_holder(paths: RunPaths) -> str | None:
    """Who holds the run's lock now, in words (``process 123``), for a refusal; None when the
    lock turns out to be free.

    A process that takes over a stale lock writes its own pid into the file only after its
    flock succeeded, so for a moment the file still names the dead worker before it (or
    nothing, between truncate and write). Naming that pid would send the user after a process
    that is gone, so the file is read again until it names a live process with the start
    time it recorded (PIDs recycle). A holder that never says who it is (for
    :data:`HOLDER_WAIT`) is described as what it is: a process that took over a stale lock.
    """
    deadline = time.monotonic() + HOLDER_WAIT
    stale = None
    while True:
        info = _lock_info(paths)
        pid = info.get("pid")
        if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0:
            start = info.get("pid_start")
            if is_alive(pid, start if isinstance(start, int) else None):
                return f"process {pid}"
            stale = pid
        if not lock_held(paths):
            return None
        if time.monotonic() > deadline:
            left = f" of process {stale}, which has exited" if stale else ""
            return f"another process (which took over the stale lock{left})"
        time.sleep(0.01)


def release_lock(paths: RunPaths, restore: bool = False) -> None:
    """Drop the lock if this process holds it (the file is unlinked while still locked).

    With ``restore`` (a refusal: the caller changed nothing else) the lock file is left as it
    was before :func:`acquire_lock`: a stale lock file of a killed worker keeps its bytes, and
    one this process created is removed.
    """
    key = str(paths.lock.resolve())
    fd = _HELD.pop(key, None)
    prior = _PRIOR.pop(key, None)
    if fd is None:
        return
    if restore:
        _restore(paths, fd, prior)
        return
    try:
        paths.lock.unlink(missing_ok=True)
    finally:
        os.close(fd)


def _read_fd(fd: int) -> bytes:
    out = b""
    while True:
        chunk = os.pread(fd, 65536, len(out))
        if not chunk:
            return out
        out += chunk


def _restore(paths: RunPaths, fd: int, prior: bytes | None) -> None:
    """Close a lock descriptor, leaving the file as it was: ``prior`` bytes, or no file."""
    try:
        if prior is None:
            paths.lock.unlink(missing_ok=True)
        else:
            os.ftruncate(fd, 0)
            os.pwrite(fd, prior, 0)
    finally:
        os.close(fd)


def lock_held(paths: RunPaths) -> bool:
    """True if some process holds the run's lock now (this one included)."""
    if str(paths.lock.resolve()) in _HELD:
        return True
    try:
        fd = os.open(paths.lock, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _lock_info(paths: RunPaths) -> dict[str, Any]:
    try:
        data = json.loads(paths.lock.read_text() or "{}")
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except OSError:
        return 0.0


# ---- what pathviz wrote: manifest, overwrite, temp files ---------------------------------


def _read_manifest(paths: RunPaths) -> dict[str, Any] | None:
    try:
        data = json.loads(paths.manifest.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        return None
    return data


def is_run_dir(paths: RunPaths) -> bool:
    """True if pathviz made this folder: it has a manifest, or (runs older than the manifest)
    a path file that is a pathviz path file."""
    if _read_manifest(paths) is not None:
        return True
    if not paths.path.is_file() or paths.path.is_symlink():
        return False
    from pathviz.store import PathFileError, PathReader

    try:
        with open(paths.path, "rb") as f:
            if f.read(8) != b"\x89HDF\r\n\x1a\n":
                return False
        with PathReader(paths.path, allow_damaged=True):
            return True
    except (PathFileError, OSError):
        return False


def check_run_dir(paths: RunPaths) -> None:
    """RunError unless ``paths.dir`` may receive a new run: absent, empty, or made by pathviz.

    A file, a link or a folder of other files is refused, so pointing ``--out`` at the wrong
    place never replaces anyone's ``status.json`` or ``config.json``.
    """
    d = paths.dir
    if d.is_symlink():
        raise RunError(f"{d} is a symbolic link; give the real folder, or a new folder, as the "
                       f"run folder")
    if d.exists() and not d.is_dir():
        raise RunError(f"{d} is a file, not a folder; choose a folder name for the run")
    # a worker killed between taking the lock and writing the manifest leaves worker.lock alone
    if d.is_dir() and any(e.name != LOCK_FILE for e in d.iterdir()) and not is_run_dir(paths):
        raise RunError(f"{d} holds files that pathviz did not write; choose a new or empty "
                       f"folder for the run")


def claim_run_dir(paths: RunPaths) -> None:
    """Create the run folder (after :func:`check_run_dir`) and its manifest."""
    paths.dir.mkdir(parents=True, exist_ok=True)
    if _read_manifest(paths) is None:
        write_json_atomic(paths.manifest, {"created_by": "pathviz", "files": sorted(
            set(RUN_FILES) | {LOCK_FILE, MANIFEST_FILE})})


def record_files(paths: RunPaths, *names: str | os.PathLike) -> None:
    """Add files (relative to the run folder, e.g. ``exports/x.pt``) to the manifest, so that
    --overwrite removes them too. Files not listed are never removed by pathviz."""
    manifest = _read_manifest(paths)
    if manifest is None:  # a run from before the manifest, or a PathRecorder's: its own files
        manifest = {"created_by": "pathviz", "files": sorted(set(RUN_FILES) | {MANIFEST_FILE})}
    files = set(manifest["files"])
    for n in names:
        rel = Path(n)
        if rel.is_absolute():
            rel = rel.relative_to(paths.dir)
        if ".." in rel.parts:
            raise RunError(f"{n} is not inside the run folder {paths.dir}")
        files.add(rel.as_posix())
    manifest["files"] = sorted(files)
    write_json_atomic(paths.manifest, manifest)


def clear_run(paths: RunPaths, keep: Sequence[str] = (LOG_FILE, LOCK_FILE, MANIFEST_FILE)) -> None:
    """--overwrite: remove the files the manifest lists (but not ``keep``), nothing else.

    Each one must resolve inside the run folder and is unlinked, not followed, if it is a link.
    Folders left empty (e.g. ``exports/``) go too.
    """
    manifest = _read_manifest(paths)
    if manifest is None:
        if not is_run_dir(paths):
            raise RunError(f"{paths.dir} was not made by pathviz; it will not be cleared")
        names = [f for f in RUN_FILES]  # a run from before the manifest: its own file names
    else:
        names = [f for f in manifest["files"] if isinstance(f, str)]
    real_dir = paths.dir.resolve()
    dirs = set()
    for name in names:
        if name in keep or Path(name).is_absolute() or ".." in Path(name).parts:
            continue
        p = paths.dir / name
        if p.resolve().parent != real_dir and real_dir not in p.parent.resolve().parents:
            continue
        if p.is_symlink() or p.is_file():
            p.unlink(missing_ok=True)
        if len(Path(name).parts) > 1:
            dirs.add(paths.dir / Path(name).parts[0])
    for d in dirs:
        if d.is_dir() and not d.is_symlink():
            for sub in sorted(d.rglob("*"), reverse=True):
                if sub.is_dir() and not sub.is_symlink() and not any(sub.iterdir()):
                    sub.rmdir()
            if not any(d.iterdir()):
                d.rmdir()


def clean_stale_temps(paths: RunPaths) -> list[str]:
    """Remove ``.<name>.<pid>.tmp`` files of processes that are gone; returns their names."""
    removed = []
    try:
        entries = list(os.scandir(paths.dir))
    except OSError:
        return removed
    for e in entries:
        m = _TMP.match(e.name)
        if not m or not e.is_file(follow_symlinks=False):
            continue
        pid = int(m.group(2))
        if pid == os.getpid() or process_start_time(pid) is not None:
            continue  # its writer is alive (or is us)
        try:
            os.unlink(e.path)
            removed.append(e.name)
        except OSError:
            pass
    return removed


def remove_my_temps(paths: RunPaths) -> None:
    """Remove this process's temp files in the run folder (after a failed write)."""
    for e in list(os.scandir(paths.dir)) if paths.dir.is_dir() else []:
        m = _TMP.match(e.name)
        if m and int(m.group(2)) == os.getpid():
            try:
                os.unlink(e.path)
            except OSError:
                pass


def disk_full_target(e: BaseException, paths: RunPaths) -> str | None:
    """The file a disk-full error could not write, relative to the run folder (``resume.pt``,
    ``path.h5``, ``tickets/x/seed_0.h5``), or None when the error does not say.

    Writers name the file in the error (``OSError.filename``, or ``filename`` set on the
    PathWriter's PathFileError); a temp name ``.<name>.<pid>.tmp`` counts as the file it was
    going to replace.
    """
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        name = getattr(e, "filename", None)
        if isinstance(name, (str, os.PathLike)) and str(name):
            p = Path(name)
            m = _TMP.match(p.name)
            if m:
                p = p.with_name(m.group(1))
            try:
                return p.resolve().relative_to(paths.dir.resolve()).as_posix()
            except (ValueError, OSError):
                return p.name
        e = e.__cause__ or e.__context__
    return None


def is_disk_full(e: BaseException) -> bool:
    """True for an error that means there is no room left to write."""
    while e is not None:
        if isinstance(e, OSError) and e.errno in DISK_FULL:
            return True
        if any(s in str(e) for s in ("No space left", "Disk quota exceeded", "File too large",
                                     "errno = 28", "errno = 122", "errno = 27")):
            return True  # HDF5 (through h5py) reports the errno only in its message
        e = e.__cause__ or e.__context__
    return False


# ---- starting and stopping ---------------------------------------------------------------


# local training processes the app may start for one run (each pins its own threads)
MAX_LOCAL_PROCESSES = 64


def worker_command(paths: RunPaths, args: Sequence[str] = (), resume: bool = False,
                   processes: int = 1) -> list[str]:
    """The command line that trains (or resumes) the run in ``paths``; with ``processes`` > 1,
    that many local processes under torchrun (DDP; see :mod:`pathviz.distributed`)."""
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone",
                     f"--nproc_per_node={int(processes)}"]
    cmd = [*launcher, "-m", "pathviz.train", "--out", str(paths.dir), "--no-progress"]
    if resume:
        cmd.append("--resume")
    return cmd + list(args)


def start_worker(paths: RunPaths, args: Sequence[str] = (), resume: bool = False,
                 processes: int = 1) -> int:
    """Start the training worker as its own process session; returns its pid.

    The worker itself takes the run's lock, so a second start (a double click, a second tab) exits
    at once with "already being trained" in the log and leaves the first alone. ``processes`` > 1
    starts torchrun with that many local ranks in the same session (so Stop reaches all of them);
    they talk over the loopback interface.
    """
    refused = readonly.refusal("start or resume a training run")
    if refused:  # enforced here, not only by the app hiding its buttons (a replayed form)
        raise RunError(refused)
    if not isinstance(processes, int) or not 1 <= processes <= MAX_LOCAL_PROCESSES:
        raise RunError(f"the number of processes must be a whole number from 1 to "
                       f"{MAX_LOCAL_PROCESSES}, got {processes!r}")
    lock_holder = _lock_holder(paths)
    if lock_holder:
        raise RunError(f"run {paths.name!r} is already being trained by process {lock_holder}")
    status = read_status(paths)
    if status.get("state") in ("starting", "running") and is_alive(status.get("pid"),
                                                                    status.get("pid_start")):
        raise RunError(f"run {paths.name!r} is already being trained by process "
                       f"{status['pid']}")
    if not resume and paths.has_run():
        check_run_dir(paths)  # someone else's files: "resume it" would be advice that fails
        raise RunError(f"run {paths.name!r} already exists; choose another name or resume it")
    if resume and not paths.resume.exists():
        raise RunError(f"run {paths.name!r} has no resume state to continue from")
    if not resume:
        check_run_dir(paths)
    claim_run_dir(paths)
    if not resume:
        write_status(paths, state="starting", reason="", pid=None)
    with open(paths.log, "ab") as log:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if processes > 1:  # every rank is local: gloo over loopback works on any machine
            env.setdefault("GLOO_SOCKET_IFNAME", "lo")
        proc = subprocess.Popen(worker_command(paths, args, resume, processes),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env)
    # reap it when it ends, or it stays a zombie under this (long-lived, e.g. the app's) process
    threading.Thread(target=proc.wait, name=f"reap-worker-{proc.pid}", daemon=True).start()
    if not resume:
        write_status(paths, pid=proc.pid, pid_start=process_start_time(proc.pid))
    return proc.pid


def _lock_holder(paths: RunPaths) -> int | None:
    """The pid of the process that holds the run's lock now, or None."""
    if not lock_held(paths):
        return None
    info = _lock_info(paths)
    pid, start = info.get("pid"), info.get("pid_start")
    # with its start time: a recycled pid of a killed worker is not the holder
    return int(pid) if isinstance(pid, int) and is_alive(
        pid, start if isinstance(start, int) else None) else None


def stop_worker(paths: RunPaths, timeout: float = 15.0) -> bool:
    """SIGTERM the run's worker (it flushes and marks itself stopped), SIGKILL after ``timeout``.

    Returns True if a live worker was stopped, False if none was running.
    """
    refused = readonly.refusal("stop a training run")
    if refused:  # a student's browser cannot stop the teacher's run, whatever it sends
        raise RunError(refused)
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
