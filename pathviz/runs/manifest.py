"""What pathviz wrote: the manifest that marks a folder as a run and lists its files, so
--overwrite removes only those, and the temp files a dead writer left."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pathviz.runs.atomic import write_json_atomic
from pathviz.runs.paths import (
    _TMP,
    LOCK_FILE,
    LOG_FILE,
    MANIFEST_FILE,
    RUN_FILES,
    RunError,
    RunPaths,
)
from pathviz.runs.status import process_start_time
from pathviz.store import PathFileError, PathReader


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
