"""The Layer and Metrics views' figures, drawn by the page on a canvas.

A figure is a spec from :mod:`pathviz.charts`; this module encodes its arrays compactly
(base64 of little-endian bytes) and mounts it with a small component that runs the player's
script (:mod:`pathviz.ui.jsbundle`, ``mountChart``). The page draws the figure once per spec
and box size, and a step only moves the position's marker over it, so neither a step nor a
pause resends or redraws it. The server's reruns that do not change the figure send the same
spec id, which the page recognises.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import numpy as np
import streamlit as st

from pathviz.ui import jsbundle

_DTYPES = {np.dtype(np.float64): "f8", np.dtype(np.float32): "f4", np.dtype(np.uint8): "u1",
           np.dtype(np.int32): "i4"}
_component = None


def encode(obj: Any) -> Any:
    """``obj`` with every numpy array as ``{"b64": ..., "dtype": "f8" | "f4" | "u1" | "i4"}``
    (other integer arrays as i4, other floats as f8) and numpy scalars as Python numbers."""
    if isinstance(obj, np.ndarray):
        dt = obj.dtype if obj.dtype in _DTYPES else (
            np.dtype(np.int32) if obj.dtype.kind in "iub" else np.dtype(np.float64))
        a = np.ascontiguousarray(obj, dtype=dt.newbyteorder("<"))
        return {"b64": base64.b64encode(a.tobytes()).decode(), "dtype": _DTYPES[dt]}
    if isinstance(obj, dict):
        return {str(k): encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [encode(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def prepare(spec: dict[str, Any], height: int, font: int = 12) -> dict[str, Any]:
    """The component's data for a spec: the encoded spec, its id (a digest: the page redraws
    only when it changes) and the box's height in pixels."""
    enc = encode({**spec, "font": font})
    digest = hashlib.blake2b(json.dumps(enc, sort_keys=True).encode(), digest_size=8).hexdigest()
    return {"chart": enc, "id": digest, "height": int(height)}


def chart_ui(key: str, data: dict[str, Any]) -> None:
    """Mount the figure ``data`` (from :func:`prepare`) in a container keyed ``key``: the page
    finds it as ``.st-key-<key> .pv-chart``."""
    global _component
    if _component is None:
        _component = st.components.v2.component("pathviz_chart", js=jsbundle.script(),
                                                isolate_styles=False)
    with st.container(key=key):
        _component(data={**data, "key": key}, key=f"{key}_component")


_line_component = None


def line_ui(iteration: int, epoch: float, index: int, n: int,
            weight_iterations: np.ndarray) -> None:
    """The line "Iteration N · epoch E · snapshot i of n · weights saved here (exportable)"
    (or the nearest saved weights) under the server's picker: the page writes it with the
    player's own ``lineText`` (pathviz/ui/js/position.js), so the rule lives in one place."""
    global _line_component
    if _line_component is None:
        _line_component = st.components.v2.component("pathviz_line", js=jsbundle.script(),
                                                     isolate_styles=False)
    line = {"it": int(iteration), "epoch": float(epoch), "index": int(index), "n": int(n),
            "weights": [int(w) for w in np.asarray(weight_iterations).tolist()]}
    _line_component(data={"position": line}, key="pathviz_line")
