"""pathviz.ui.data: the snapshot count that the sessions following one run share."""

from __future__ import annotations

import shutil

from pathviz.ui import data
from tests.conftest import make_run


def grow(tmp_path, paths, n: int) -> None:
    """The same file (inode) grown to ``n`` snapshots, as a worker appends them."""
    longer = make_run(tmp_path / f"n{n}", "r", n=n)
    shutil.copyfile(longer.path, paths.path)


def test_live_sessions_share_one_count_for_a_moment(tmp_path, monkeypatch):
    paths = make_run(tmp_path / "root", "r", n=10)
    assert data.snapshot_count(paths.path, live=True) == 10
    grow(tmp_path, paths, 12)
    # within the window every live session gets the count already read: one read for all
    assert data.snapshot_count(paths.path, live=True) == 10
    monkeypatch.setattr(data, "SHARED_COUNT_S", 0.0)  # the window has passed
    assert data.snapshot_count(paths.path, live=True) == 12


def test_a_run_that_is_not_live_gets_its_exact_count(tmp_path):
    paths = make_run(tmp_path / "root", "r", n=10)
    assert data.snapshot_count(paths.path, live=True) == 10
    grow(tmp_path, paths, 14)  # its last snapshots, then "finished"
    assert data.snapshot_count(paths.path) == 14
    assert data.snapshot_count(paths.path, live=True) == 14  # the newest read is shared
