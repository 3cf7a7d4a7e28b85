"""Starting a training worker in its own session, and stopping one (SIGTERM to its process
group, then SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

from pathviz import readonly
from pathviz.runs.lock import lock_holder
from pathviz.runs.manifest import check_run_dir, claim_run_dir
from pathviz.runs.paths import RunError, RunPaths
from pathviz.runs.status import is_alive, process_start_time, read_status, write_status

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
    holder = lock_holder(paths)
    if holder:
        raise RunError(f"run {paths.name!r} is already being trained by process {holder}")
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


def stop_group(pid: int, start: int | None, timeout: float) -> str:
    """SIGTERM the process group of ``pid`` and wait up to ``timeout`` seconds for ``pid`` (the
    process started at ``start``, so a recycled pid does not count) to end, then SIGKILL the
    group: the one stop loop of a worker and a background retrain. Returns "gone" when there
    was no such process to signal, "stopped" when it ended within ``timeout``, "killed"
    otherwise."""
    try:
        os.killpg(os.getpgid(pid), signal.SIGTERM)
    except ProcessLookupError:
        return "gone"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not is_alive(pid, start):
            return "stopped"
        time.sleep(0.05)
    try:
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    except ProcessLookupError:
        pass
    return "killed"


def stop_worker(paths: RunPaths, timeout: float = 15.0) -> bool:
    """SIGTERM the run's worker (it flushes and marks itself stopped), SIGKILL after ``timeout``.

    Returns True if a live worker was stopped, False if none was running.
    """
    refused = readonly.refusal("stop a training run")
    if refused:  # a student's browser cannot stop the teacher's run, whatever it sends
        raise RunError(refused)
    status = read_status(paths)
    pid = lock_holder(paths) or (status.get("pid") if is_alive(status.get("pid"),
                                                                 status.get("pid_start")) else None)
    if not pid:
        return False
    how = stop_group(pid, process_start_time(pid), timeout)
    if how != "killed":
        return how == "stopped"
    write_status(paths, state="stopped", reason="killed after not stopping within "
                 f"{timeout:.0f}s", heartbeat=time.time())
    return True
