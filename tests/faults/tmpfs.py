"""A small private tmpfs stands in for a full disk (root in CI: ``mount -t tmpfs``)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

PAGE = 4096  # tmpfs counts whole pages


def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


@contextlib.contextmanager
def tmpfs(where: Path, size: int) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` bytes on ``where`` (skip the test if this machine cannot),
    and always unmount it (lazily: a writer that failed leaves its HDF5 file open)."""
    where.mkdir(parents=True, exist_ok=True)
    r = _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where))
    if r.returncode != 0:
        pytest.skip(f"a small tmpfs stands in for a full disk, and mounting one needs root "
                    f"({r.stderr.strip() or 'mount failed'})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def resize(where: Path, size: int) -> None:
    """Free space: grow the tmpfs on ``where`` to ``size`` bytes, files kept."""
    r = _mount("-o", f"remount,size={size}", str(where))
    assert r.returncode == 0, r.stderr


def fill(where: Path, free: int) -> Path:
    """Take all but ``free`` bytes (whole pages) of the tmpfs with one ballast file."""
    ballast = where / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        while True:
            try:
                os.write(fd, b"\0" * (64 * PAGE))
            except OSError:
                break
        while True:
            try:
                os.write(fd, b"\0" * PAGE)
            except OSError:
                break
        os.ftruncate(fd, max(0, os.fstat(fd).st_size - free))
    finally:
        os.close(fd)
    return ballast
