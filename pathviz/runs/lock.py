"""The worker lock (``worker.lock``, flock-ed): a run trains in one process at a time, and
who holds it."""

from __future__ import annotations

import fcntl
import json
import os
import time
from typing import Any

from pathviz.runs.manifest import clean_stale_temps
from pathviz.runs.paths import DISK_FULL, RunError, RunPaths
from pathviz.runs.status import is_alive, process_start_time

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


def lock_holder(paths: RunPaths) -> int | None:
    """The pid of the live process that holds the run's lock now, or None (a start refuses
    while there is one; the tickets CLI names it)."""
    if not lock_held(paths):
        return None
    info = _lock_info(paths)
    pid, start = info.get("pid"), info.get("pid_start")
    # with its start time: a recycled pid of a killed worker is not the holder
    return int(pid) if isinstance(pid, int) and is_alive(
        pid, start if isinstance(start, int) else None) else None
