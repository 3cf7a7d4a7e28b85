"""Writing a run's files so that readers never see half a file (temp file, then rename), and
the full-disk rules: which errors mean no room, and which file they could not write."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

from pathviz import jsonsafe, readonly
from pathviz.runs.paths import _TMP, DISK_FULL, RunError, RunPaths


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


def disk_full_reason(e: BaseException, paths: RunPaths, iteration: int
                     ) -> tuple[str, str]:
    """(reason, advice) for a full disk: ``disk full at iteration N: resume.pt could not be
    written`` (the file the error names, relative to the run folder), and what to do that
    works: continue with --resume where a resume state exists, else start again with
    --overwrite (``--resume`` would refuse a run without ``resume.pt``)."""
    what = disk_full_target(e, paths) or "a file of the run"
    reason = f"disk full at iteration {iteration}: {what} could not be written"
    if paths.resume.is_file():
        return reason, "free space, then continue with --resume"
    return reason, ("no resume state was saved yet, so free space, then start again with "
                    "--overwrite")
