"""What a starting worker does to its run folder before it trains: claim it (take the lock,
mark it as pathviz's, write config.json) so the app names the run at once, undo that claim when
the start is refused after it, and log into the run's ``train.log``."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from pathviz.runs.atomic import is_disk_full, write_json_atomic
from pathviz.runs.lock import acquire_lock, release_lock
from pathviz.runs.manifest import claim_run_dir, clean_stale_temps
from pathviz.runs.paths import RunPaths


@dataclass
class Claim:
    """What :func:`claim_early` found before it wrote, so :func:`unclaim` can put it back."""

    made_dir: bool
    made_manifest: bool


def claim_early(paths: RunPaths, config: dict[str, Any]) -> Claim:
    """Take the run's lock, claim its folder and write config.json (``config``, the run
    config's JSON, without the environment, which is known once the numerics are pinned:
    :meth:`pathviz.trainer.Trainer._run` rewrites the file with it), so that the run's model
    and dataset are on disk while torch pins and the data load. RunError if another process
    holds the lock (nothing written then)."""
    claim = Claim(made_dir=not paths.dir.exists(), made_manifest=not paths.manifest.exists())
    acquire_lock(paths, clean=False)
    try:
        clean_stale_temps(paths)
        claim_run_dir(paths)
        write_json_atomic(paths.config, config)
    except BaseException as e:
        if not (isinstance(e, OSError) and is_disk_full(e)):  # main reports a full disk
            unclaim(paths, claim)
        raise
    return claim


def unclaim(paths: RunPaths, claim: Claim) -> None:
    """Undo :func:`claim_early` for a start refused after it (a dataset whose files do not
    load, an unknown model): config.json goes, and the manifest, the lock and the folder go
    where this process made them; a killed worker's lock file keeps its bytes."""
    paths.config.unlink(missing_ok=True)
    if claim.made_manifest:
        paths.manifest.unlink(missing_ok=True)
    release_lock(paths, restore=True)
    if claim.made_dir:
        try:
            paths.dir.rmdir()
        except OSError:
            pass  # not empty: someone else wrote there meanwhile; leave it


def log_to(paths: RunPaths) -> logging.Handler:
    """Log to the run's train.log, and to stderr when stderr is not that same file."""
    root = logging.getLogger("pathviz")
    root.setLevel(logging.INFO)
    fh = logging.FileHandler(paths.log, delay=True)  # a refusal logs nothing: no new file
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root.addHandler(fh)
    try:
        same = os.path.samestat(os.fstat(2), os.stat(paths.log))
    except OSError:
        same = False
    if not same and not any(isinstance(h, logging.StreamHandler) and
                            not isinstance(h, logging.FileHandler) for h in root.handlers):
        sh = logging.StreamHandler()
        sh.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(sh)
    return fh
