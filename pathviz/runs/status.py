"""The status sidecar (``status.json``): written atomically by the worker, read strictly
(a field of the wrong kind is dropped), and the state a reader should show (a worker that
stopped beating is dead, whatever its file says)."""

from __future__ import annotations

import json
import time
from typing import Any

from pathviz.runs.atomic import _write_in_place, is_disk_full, write_json_atomic
from pathviz.runs.paths import HEARTBEAT_TIMEOUT, RunPaths


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
