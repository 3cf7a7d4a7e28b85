"""JSON that every parser reads: no ``NaN``, ``Infinity`` or ``-Infinity`` literals.

Python's ``json.dumps`` writes a non-finite float as a bare ``NaN`` or ``Infinity``, which is
not JSON (RFC 8259): ``jq``, JavaScript's ``JSON.parse`` and a strict Python parser refuse the
whole file. Every JSON text pathviz writes (status, manifest, config, export reports, tickets,
baselines, ``inspect --json``, the JSON attributes of the HDF5 files) goes through
:func:`dumps`, which writes such a number as ``null``. Where a null needs explaining (an
export's report) the writer says why next to it; elsewhere a null already means "not
measured".

Ground floor: imports numpy only, so every room may use it.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

__all__ = ["finite", "dumps", "non_finite_keys"]


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None, numpy scalars and arrays turned into
    Python numbers and lists, and tuples into lists (what ``json`` would write anyway)."""
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return finite(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    return obj


def non_finite_keys(obj: Any, prefix: str = "") -> list[str]:
    """Where ``obj`` holds non-finite floats, as dotted keys (``a.b[2]``), for a reason to give
    next to the nulls that :func:`finite` writes in their place."""
    out: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += non_finite_keys(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out += non_finite_keys(v, f"{prefix}[{i}]")
    elif isinstance(obj, (float, np.floating)) and not math.isfinite(float(obj)):
        out.append(prefix)
    return out


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`finite` of ``obj``; raises ValueError rather than ever writing a
    ``NaN`` literal (``allow_nan=False``)."""
    return json.dumps(finite(obj), allow_nan=False, **kwargs)
