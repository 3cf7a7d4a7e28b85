"""Run folders: names, file names, listing, status, and starting/stopping a training worker.

This package owns every file name of a run (:mod:`pathviz.runs.paths`); nothing else builds
run paths. Its modules, bottom up: ``paths`` (names, :class:`RunPaths`), ``atomic`` (atomic
writes, the full-disk rules), ``status``, ``listing``, ``manifest`` (what pathviz wrote),
``lock`` (the worker lock) and ``worker`` (start/stop); the names below are its interface. It needs
no torch, so the app can list and follow runs without loading it.

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


from pathviz.runs.atomic import (
    disk_full_reason,
    disk_full_target,
    is_disk_full,
    write_bytes_atomic,
    write_json_atomic,
)
from pathviz.runs.claim import Claim, claim_early, log_to, unclaim
from pathviz.runs.listing import (
    RunInfo,
    list_runs,
)
from pathviz.runs.lock import (
    HOLDER_WAIT,
    acquire_lock,
    lock_held,
    lock_holder,
    release_lock,
)
from pathviz.runs.manifest import (
    check_run_dir,
    claim_run_dir,
    clean_stale_temps,
    clear_run,
    is_run_dir,
    record_files,
    remove_my_temps,
)
from pathviz.runs.paths import (
    BASELINES_FILE,
    BASELINES_LOCK,
    CONFIG_FILE,
    DISK_FULL,
    ENV_ROOT,
    EXPORTS_DIR,
    HEARTBEAT_TIMEOUT,
    LOCK_FILE,
    LOG_FILE,
    MANIFEST_FILE,
    PATH_FILE,
    RESUME_FILE,
    RUN_FILES,
    STATES,
    STATUS_FILE,
    RunError,
    RunPaths,
    checkpoints_root,
    paths_for_dir,
    resolve_inside,
    run_paths,
    validate_name,
)
from pathviz.runs.status import (
    effective_state,
    is_alive,
    process_start_time,
    read_status,
    write_status,
)
from pathviz.runs.worker import (
    MAX_LOCAL_PROCESSES,
    start_worker,
    stop_group,
    stop_worker,
    worker_command,
)

__all__ = ["Claim", "claim_early", "log_to", "unclaim", "disk_full_reason",
           "BASELINES_FILE", "BASELINES_LOCK", "CONFIG_FILE", "DISK_FULL", "ENV_ROOT",
           "EXPORTS_DIR", "HEARTBEAT_TIMEOUT", "HOLDER_WAIT", "LOCK_FILE", "LOG_FILE",
           "MANIFEST_FILE", "MAX_LOCAL_PROCESSES", "PATH_FILE", "RESUME_FILE", "RUN_FILES",
           "RunError", "RunInfo", "RunPaths", "STATES", "STATUS_FILE", "acquire_lock",
           "check_run_dir", "checkpoints_root", "claim_run_dir", "clean_stale_temps",
           "clear_run", "disk_full_target", "effective_state", "is_alive", "is_disk_full",
           "is_run_dir", "list_runs", "lock_held", "lock_holder", "paths_for_dir",
           "process_start_time",
           "read_status", "record_files", "release_lock", "remove_my_temps", "resolve_inside",
           "run_paths", "start_worker", "stop_group", "stop_worker", "validate_name",
           "worker_command",
           "write_bytes_atomic", "write_json_atomic", "write_status"]
