"""The rules a path file must meet before anything uses it, written once for every reader.

A path file is data from anywhere (a colleague's run folder, a download, a hand edit), so the
reader checks it in three steps, each refusing with one sentence that names the dataset, the
rule broken and the fix (:class:`~pathviz.store.schema.PathFileError`, or its subclass
:class:`~pathviz.store.schema.PathInvalidError` for values):

1. structure, on open (:func:`check_specs`, :func:`check_datasets`): the root attributes are
   JSON of the right kind, the layer/metric/weight records are ones a writer could have made,
   every promised dataset exists with the row shape its record gives (``gamma_norm`` rows as
   long as the layer's group count, ``gamma/<param>`` rows of the layer's shape), and datasets
   that count things (``snapshots/iteration``, ``weights/iteration``, ``layers/*/nnz``) hold
   whole numbers, so NaN cannot appear where an integer belongs;
2. the iteration arrays, on every open and refresh (:func:`check_iterations`): whole numbers
   from 0 to :data:`~pathviz.store.schema.MAX_ITERATION` (the largest a browser holds exactly),
   strictly increasing. One vectorised pass over [N] and [K] int64: cheap at any size;
3. the per-group statistics (:func:`first_bad_value`): norms never NaN or negative (a NaN
   Gamma norm would leave a group's support and entry time undefined), counts never negative.
   These are the bulk of a file, so they are not read again here: the helper process
   (:mod:`pathviz.store.helper`) already reads every row once, and incrementally as a live
   file grows; it applies this function to each block it reads and reports the first bad row,
   which the reader refuses when that row is among the snapshots it shows.

A killed writer's ragged tail stays what it was: rows past the shortest dataset are not
shown, and not judged. A file still under (or left by) a writer may also show trailing
iterations of 0 after larger ones, rows whose data HDF5 had not flushed yet (its fill value):
:func:`unflushed_tail` leaves those out in the same way, instead of calling the file reversed.
"""

from __future__ import annotations

import json

import h5py
import numpy as np

from pathviz.store.schema import (
    EPOCH,
    GAMMA,
    ITERATION,
    LAYER_FIELDS,
    LAYERS,
    MAX_ITERATION,
    MEMBERS,
    METRICS,
    NNZ,
    TIME,
    WEIGHTS,
    WEIGHTS_ITERATION,
    PathFileError,
    PathInvalidError,
    _layer_path,
    _str,
    gamma_tensors,
)

__all__ = ["check_specs", "check_datasets", "check_iterations", "first_bad_value",
           "unflushed_tail", "FIX"]

FIX = "delete the run or restore the file"
# whole-number datasets: an integer dtype, so that no NaN can stand for a count
WHOLE = "iu"


def json_attr(path: str, attrs, name: str, kind: type, default=None):
    """A root attribute parsed as JSON of ``kind``; ``default`` when absent (None: required)."""
    if name not in attrs:
        if default is not None:
            return default
        raise PathFileError(f"{path} is not a valid path file: the {name!r} attribute is "
                            f"missing; {FIX}")
    try:
        value = json.loads(_str(attrs[name]))
    except (ValueError, TypeError, UnicodeDecodeError):
        value = None
    if not isinstance(value, kind):
        raise PathFileError(f"{path} is not a valid path file: the {name!r} attribute is not a "
                            f"JSON {kind.__name__}; {FIX}")
    return value


def check_specs(path: str, layers: list, metrics: list, weights: list) -> None:
    """Refuse layer, metric and weight records that a pathviz writer could not have made."""
    def bad(what: str) -> PathFileError:
        return PathFileError(f"{path} is not a valid path file: {what}; {FIX}")

    def shape_ok(s) -> bool:
        return isinstance(s, list) and all(isinstance(v, int) and not isinstance(v, bool)
                                           and 0 <= v < 2 ** 31 for v in s)

    for layer in layers:
        if not (isinstance(layer, dict) and isinstance(layer.get("name"), str)
                and isinstance(layer.get("param"), str) and layer["name"] and layer["param"]
                and "/" not in layer["name"] and "/" not in layer["param"]
                and isinstance(layer.get("groups"), int) and not isinstance(layer["groups"], bool)
                and 0 <= layer["groups"] < 2 ** 31 and shape_ok(layer.get("shape"))):
            raise bad(f"layer record {str(layer)[:80]!r} is malformed")
        members = layer.get(MEMBERS)
        if members is not None and not (isinstance(members, list) and members and all(
                isinstance(m, dict) and isinstance(m.get("param"), str) and m["param"]
                and "/" not in m["param"] and shape_ok(m.get("shape"))
                and shape_ok(m.get("view")) and isinstance(m.get("dim"), int)
                and not isinstance(m["dim"], bool) and 0 <= m["dim"] < len(m["view"])
                and m["view"][m["dim"]] == layer["groups"] for m in members)):
            raise bad(f"the members of layer {layer['name'][:60]!r} are malformed")
    if len({layer["name"] for layer in layers}) != len(layers):
        raise bad("two layers share a name")
    if not all(isinstance(m, str) and m and "/" not in m for m in metrics):
        raise bad("the metric names are not plain strings")
    for w in weights:
        ok = (isinstance(w, dict) and isinstance(w.get("name"), str) and w["name"]
              and "/" not in w["name"] and shape_ok(w.get("shape")))
        if ok:
            try:
                ok = np.dtype(w.get("dtype")).kind in "biuf"
            except TypeError:
                ok = False
        if not ok:
            raise bad(f"weight record {str(w)[:80]!r} is malformed")


def check_datasets(path: str, f: h5py.File, layers: list, metrics: list, weights: list,
                   skip) -> None:
    """Every dataset the attributes promise exists, with a numeric dtype and the row shape;
    counting datasets hold whole numbers. Datasets in ``skip`` (damaged) are not looked at."""
    expect: list[tuple[str, tuple[int, ...], str]] = [
        (ITERATION, (), WHOLE), (EPOCH, (), "iuf"), (TIME, (), "iuf"),
        (WEIGHTS_ITERATION, (), WHOLE)]
    expect += [(f"{METRICS}/{m}", (), "biuf") for m in metrics]
    for layer in layers:
        expect += [(_layer_path(layer["name"], fld), (layer["groups"],),
                    WHOLE if fld == NNZ else "biuf") for fld in LAYER_FIELDS]
        expect += [(f"{GAMMA}/{param}", shape, "biuf") for param, shape in gamma_tensors(layer)]
    expect += [(f"{WEIGHTS}/{w['name']}", tuple(w["shape"]), "biuf") for w in weights]
    for name, row, kinds in expect:
        if name in skip:
            continue
        d = f.get(name)
        if not isinstance(d, h5py.Dataset):
            raise PathFileError(f"{path} is not a valid path file: dataset {name} is missing; "
                                f"{FIX}")
        if d.dtype.kind not in kinds or d.ndim != 1 + len(row) or tuple(d.shape[1:]) != row:
            what = "whole numbers (an integer type) in rows" if kinds == WHOLE else "rows"
            raise PathFileError(
                f"{path} is not a valid path file: dataset {name} is {d.dtype} {d.shape}, "
                f"expected {what} of shape {row}; {FIX}")


def unflushed_tail(values: np.ndarray) -> int:
    """How many rows to keep of an iteration array read from a file under a writer: trailing
    zeros after a larger value are rows HDF5 has grown but not yet filled, so they are left
    out (a single leading 0 is iteration 0, before training)."""
    nonzero = np.flatnonzero(values)
    if nonzero.size == 0:
        return min(len(values), 1)
    return int(nonzero[-1]) + 1


def check_iterations(path: str, name: str, values: np.ndarray) -> None:
    """Raise :class:`PathInvalidError` unless ``values`` are whole numbers from 0 to
    ``MAX_ITERATION``, strictly increasing; ``name`` is the dataset they came from."""
    if values.size == 0:
        return
    row = "snapshot" if name == ITERATION else "weight row"
    out = np.flatnonzero((values < 0) | (values > MAX_ITERATION))
    if out.size:
        i = int(out[0])
        raise PathInvalidError(
            f"{path} is not a valid path file: {name} holds {int(values[i])} at {row} {i}, "
            f"but iterations are whole numbers from 0 to {MAX_ITERATION}; {FIX}",
            rule="iteration range", dataset=name)
    down = np.flatnonzero(np.diff(values) <= 0)
    if down.size:
        i = int(down[0]) + 1
        raise PathInvalidError(
            f"{path} is not a valid path file: {name} goes from {int(values[i - 1])} to "
            f"{int(values[i])} at {row} {i}, but iterations must strictly increase; {FIX}",
            rule="iterations increase", dataset=name)


def _is_layer_field(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 3 and parts[0] == LAYERS and parts[2] in LAYER_FIELDS


def first_bad_value(name: str, block: np.ndarray) -> tuple[int, str] | None:
    """(row within ``block``, the value as text) of the first row of a layer statistic that
    breaks its rule (norms and counts are numbers >= 0: no NaN, no negative), or None. Other
    datasets: None. One pass over the block when it is sound."""
    if not _is_layer_field(name) or block.size == 0 or block.dtype.kind == "b":
        return None
    if block.min() >= 0:  # the common case in one allocation-free pass (NaN fails it too)
        return None
    rows = block.reshape(len(block), -1)
    good = rows >= 0
    r = int(np.flatnonzero(~good.all(axis=1))[0])
    value = rows[r][~good[r]][0]
    return r, ("NaN" if np.isnan(value) else f"{value:g}")


def invalid_value(path: str, name: str, row: int, value: str, iteration: int) -> PathInvalidError:
    """The one sentence for a layer statistic that :func:`first_bad_value` found."""
    rule = ("nonzero counts are never negative" if name.endswith(f"/{NNZ}") else
            "norms are never NaN or negative")
    return PathInvalidError(
        f"{path} is not a valid path file: {name} holds {value} at snapshot {row} (iteration "
        f"{iteration}), but {rule}; {FIX}", rule="statistics", dataset=name)
