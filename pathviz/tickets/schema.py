"""The tickets' files: names, the schema constants, reading and writing (torch-free).

The layout and every key are specified in :mod:`pathviz.tickets` (its docstring).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pathviz import jsonsafe, runs

TICKET_SCHEMA = "1.0"
TICKET_FILE = "ticket.json"
SEED_FILE = "seed_{seed}.h5"
RESUME_FILE = "seed_{seed}.resume.pt"
LAUNCH_FILE = "launch.json"
LAUNCH_LOG = "launch.log"

ATTR_SCHEMA = "schema_version"
ATTR_TICKET = "ticket"
ATTR_SEED = "seed"
ATTR_COMPLETE = "complete"
ATTR_DIVERGED = "diverged"
ATTR_SUPPORT = "support"
EPOCH = "epoch"
ITERATION = "iteration"
TIME = "time"
METRICS = "metrics"
SEED_METRICS = ("train_loss", "train_acc", "lr", "val_loss", "val_acc", "test_loss", "test_acc")

MODES = ("rewind", "rewind:K", "finetune", "reinit", "random-support", "uniform",
         "magnitude", "slimming", "taylor", "global-magnitude", "global-magnitude-reinit")
TICKET_MODES = ("rewind", "finetune")  # plus rewind:K
CONTROL_MODES = ("reinit", "random-support", "uniform")
# pruning baselines (pathviz.baselines): the path's widths chosen by a pruning method from a
# dense reference, finetuned from its pruned weights; global-magnitude-reinit is the globally
# chosen widths freshly initialised (the per-layer methods' reinit is ``reinit`` itself: same
# widths)
BASELINE_MODES = ("magnitude", "slimming", "taylor", "global-magnitude",
                  "global-magnitude-reinit")
BUDGETS = ("epochs", "flops")
# settings that make two retrainings the same variant (seeds may be added later)
SETTINGS = ("iteration", "init", "epochs", "budget", "lr", "lr_schedule", "batch_size",
            "momentum", "weight_decay", "nesterov", "dataset", "reference")
Z_BEATS = 2.0  # a difference counts when it exceeds this many standard errors

__all__ = ["TICKET_SCHEMA", "TICKET_FILE", "SEED_FILE", "RESUME_FILE", "LAUNCH_FILE",
           "LAUNCH_LOG", "SEED_METRICS", "MODES", "TICKET_MODES", "CONTROL_MODES",
           "BASELINE_MODES", "BUDGETS", "SETTINGS", "Z_BEATS", "TicketError", "parse_mode",
           "mode_kind", "default_name", "ticket_dir", "seed_path", "resume_path", "read_ticket",
           "list_tickets", "seeds_on_disk", "read_seed", "write_seed", "ticket_state"]


class TicketError(ValueError):
    """A ticket request or folder that cannot be used; the message says why."""


# ---- names -----------------------------------------------------------------------------------


def parse_mode(mode: str) -> tuple[str, int | None]:
    """(``base``, K) of an init MODE: ``rewind:60`` -> ("rewind", 60); others have K None."""
    base, sep, k = mode.strip().partition(":")
    if base == "rewind" and sep:
        if not k.isdigit():
            raise TicketError(f"--init {mode!r}: rewind:K needs a saved iteration K, e.g. "
                              f"rewind:60")
        return "rewind", int(k)
    if sep or base not in MODES or base == "rewind:K":
        raise TicketError(f"unknown --init {mode!r}; choose one of {', '.join(MODES)}")
    return base, None


def mode_kind(mode: str) -> str:
    """``"ticket"`` for the inits that keep the path's weights, ``"baseline"`` for a pruning
    method's support, ``"control"`` otherwise."""
    base = parse_mode(mode)[0]
    return "ticket" if base in TICKET_MODES else "baseline" if base in BASELINE_MODES \
        else "control"


def default_name(iteration: int, mode: str, budget: str, epochs: int,
                 reference: str | None = None) -> str:
    """Folder name of a variant, e.g. ``it510-rewind-k30-epochs70``; a baseline pruned from the
    run's own W (``reference="self"``) ends in ``-self``."""
    base, k = parse_mode(mode)
    slug = base if k is None else f"{base}-k{k}"
    tail = "-self" if reference == "self" else ""
    return f"it{int(iteration)}-{slug}-{budget}{int(epochs)}{tail}"


def ticket_dir(run_dir: str | os.PathLike | runs.RunPaths, name: str) -> Path:
    """``<run>/tickets/<name>`` (the name is checked like a run name)."""
    return runs.paths_for_dir(run_dir).tickets / runs.validate_name(name)


def seed_path(tdir: Path, seed: int) -> Path:
    return tdir / SEED_FILE.format(seed=int(seed))


def resume_path(tdir: Path, seed: int) -> Path:
    return tdir / RESUME_FILE.format(seed=int(seed))


# ---- reading and writing ---------------------------------------------------------------------


def read_ticket(tdir: str | os.PathLike) -> dict[str, Any]:
    """The variant description ``ticket.json`` of a ticket folder."""
    p = Path(tdir) / TICKET_FILE
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError, RecursionError) as e:  # RecursionError: nested too deep
        raise TicketError(f"{p} cannot be read ({str(e)[:200]})") from None
    if not isinstance(data, dict):
        raise TicketError(f"{p} is not a ticket description (not a JSON object)")
    if str(data.get("schema_version", "")).split(".")[0] != TICKET_SCHEMA.split(".")[0]:
        raise TicketError(f"{p} has schema {str(data.get('schema_version'))[:40]!r}; this "
                          f"pathviz reads {TICKET_SCHEMA}")
    for key, kind in _TICKET_TYPES.items():
        value = data.get(key)
        if (value is None and (key in _TICKET_REQUIRED or key in data)
                and key not in _TICKET_NULLABLE) or not (value is None or (
                isinstance(value, kind) and not isinstance(value, bool)
                and (not isinstance(value, (int, float)) or abs(value) < 2 ** 63))):
            raise TicketError(f"{p} is damaged: {key} is {str(value)[:40]!r}; delete the "
                              f"ticket folder and retrain it")
    return data


# the fields readers use, and what each must be (a shared run's tickets are data from anywhere)
_TICKET_TYPES: dict[str, type | tuple[type, ...]] = {
    **dict.fromkeys(("name", "init", "budget", "kind", "dataset", "reference"), str),
    **dict.fromkeys(("iteration", "epochs", "epochs_run", "params", "flops"), int),
    **dict.fromkeys(("params_full", "flops_full", "lr"), (int, float)), "seeds": list}
_TICKET_NULLABLE = ("kind", "dataset", "reference", "params_full", "flops_full", "lr")
_TICKET_REQUIRED = ("name", "iteration", "init", "budget", "epochs", "epochs_run", "params",
                    "flops")


def list_tickets(run_dir: str | os.PathLike | runs.RunPaths) -> list[Path]:
    """Ticket folders of a run (those with a ``ticket.json``), sorted by name."""
    root = runs.paths_for_dir(run_dir).tickets
    if not root.is_dir():
        return []
    return sorted(d for d in root.iterdir() if (d / TICKET_FILE).is_file())


def seeds_on_disk(tdir: Path) -> list[int]:
    """Seeds that have a seed file, sorted."""
    out = []
    for p in tdir.glob("seed_*.h5"):
        s = p.stem[len("seed_"):]
        if s.isdigit():
            out.append(int(s))
    return sorted(out)


def read_seed(path: str | os.PathLike) -> dict[str, Any]:
    """One seed file: ``{"seed", "complete", "diverged", "support", "epoch", "iteration",
    "time", "metrics": {name: [E+1] float64}}``."""
    try:
        with h5py.File(path, "r") as f:
            a = f.attrs
            return {"seed": int(a[ATTR_SEED]), "complete": bool(a[ATTR_COMPLETE]),
                    "diverged": bool(a[ATTR_DIVERGED]),
                    "support": json.loads(_str(a.get(ATTR_SUPPORT, "{}"))),
                    EPOCH: f[EPOCH][()], ITERATION: f[ITERATION][()], TIME: f[TIME][()],
                    "metrics": {k: f[f"{METRICS}/{k}"][()] for k in f[METRICS]}}
    except (OSError, KeyError, ValueError) as e:
        raise TicketError(f"{path} cannot be read ({e})") from None


def write_seed(path: str | os.PathLike, *, ticket: str, seed: int, rows: Sequence[dict],
               complete: bool, diverged: bool = False,
               support: dict[str, list[int]] | None = None) -> None:
    """Replace a seed file with ``rows`` (dicts with epoch, iteration, time and the metrics),
    atomically (a temp file moved into place).

    The file is made in memory and written with plain file I/O
    (:func:`pathviz.runs.write_bytes_atomic`): on a full disk that is an ``OSError`` naming
    ``path``, the temp file is removed and the previous seed file stays (h5py writing straight
    to disk reports a full disk in its own words, or at close, or not at all).
    """
    path = Path(path)
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.attrs[ATTR_SCHEMA] = TICKET_SCHEMA
        f.attrs[ATTR_TICKET] = ticket
        f.attrs[ATTR_SEED] = int(seed)
        f.attrs[ATTR_COMPLETE] = int(bool(complete))
        f.attrs[ATTR_DIVERGED] = int(bool(diverged))
        f.attrs[ATTR_SUPPORT] = jsonsafe.dumps(support or {})
        f[EPOCH] = np.array([r[EPOCH] for r in rows], np.int64)
        f[ITERATION] = np.array([r[ITERATION] for r in rows], np.int64)
        f[TIME] = np.array([r[TIME] for r in rows], np.float64)
        g = f.create_group(METRICS)
        for m in SEED_METRICS:
            g[m] = np.array([r.get(m, np.nan) for r in rows], np.float64)
    runs.write_bytes_atomic(path, buf.getbuffer())


def ticket_state(tdir: Path) -> dict[str, Any]:
    """Status of a ticket folder as a user should see it: state, reason, seed, epoch, done,
    total (iterations over all seeds), from its status sidecar."""
    st = runs.read_status(runs.RunPaths(tdir))
    state, reason = runs.effective_state(st)
    return {"state": state, "reason": reason, "seed": st.get("seed"), "epoch": st.get("epoch"),
            "epochs": st.get("epochs"), "done": int(st.get("done", 0)),
            "total": int(st.get("total", 0))}


def _str(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
