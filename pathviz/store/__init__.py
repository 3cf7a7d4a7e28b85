"""The path file: an HDF5 regularization path, written by one process and read live by many.

``from pathviz.store import ...`` is the interface; the package is split by concern:

    schema.py   the schema's spec (its docstring) and every HDF5 name as a constant next to
                ``SCHEMA_VERSION``; the errors and the ``Snapshot`` row every part shares
    writer.py   :class:`PathWriter`: creates a file and appends snapshots under SWMR
    helper.py   :func:`probe`: every risky HDF5 call of a file runs first in a helper process,
                under a timeout, so a damaged file is reported instead of hanging the reader
    reader.py   :class:`PathReader`, bounded by what the probe found consistent, and
                :func:`entry_indices` / :func:`nearest`
    validate.py the rules a file must meet before anything uses it (structure, iterations,
                statistics); a file that breaks one raises :class:`PathFileError`, for values
                its subclass :class:`PathInvalidError`, in one sentence
    repair.py   :func:`copy_path` and :func:`repair_path_file` (resume cuts a killed or
                damaged file to its consistent rows)

Every name of the former single module is re-exported here, private ones included (the worker
reads ``_ABANDONED``, the tests patch ``_Appender``; ``from m import x as x`` marks them). Mutable
module globals (``_ABANDONED``, ``_PROBED``, ``_HELPER``) are the very objects of their
submodule, mutated in place and never rebound, so code that reads ``store._ABANDONED`` sees what
the writer appends. Settings (``READ_TIMEOUT``) are copies: to change one, set it on its
submodule (``pathviz.store.helper.READ_TIMEOUT``) or through its environment variable.

The package needs numpy and h5py only, so the app can read paths without importing torch.
"""

from __future__ import annotations

from pathviz.store.helper import _HELPER as _HELPER
from pathviz.store.helper import _PROBED as _PROBED
from pathviz.store.helper import READ_TIMEOUT, probe
from pathviz.store.helper import _consistent as _consistent
from pathviz.store.helper import _Helper as _Helper
from pathviz.store.helper import _probe_in_helper as _probe_in_helper
from pathviz.store.helper import _serve as _serve
from pathviz.store.reader import PathReader, entry_indices, nearest
from pathviz.store.repair import copy_path, repair_path_file
from pathviz.store.schema import (
    ATTR_CONFIG,
    ATTR_DATA,
    ATTR_ENVIRONMENT,
    ATTR_LAYERS,
    ATTR_METRICS,
    ATTR_MODEL,
    ATTR_SCHEMA,
    ATTR_WEIGHTS,
    CHUNK_ROWS,
    EPOCH,
    GAMMA,
    GAMMA_NORM,
    ITERATION,
    LAYER_FIELDS,
    LAYERS,
    MAX_ITERATION,
    MAX_READ_BYTES,
    MEMBERS,
    METRICS,
    NNZ,
    REQUIRED_METRICS,
    SCHEMA_VERSION,
    SNAPSHOTS,
    STANDARD_METRICS,
    TIME,
    WEIGHT_NORM,
    WEIGHTS,
    WEIGHTS_ITERATION,
    PathDamagedError,
    PathFileError,
    PathInvalidError,
    Snapshot,
    gamma_tensors,
)
from pathviz.store.schema import _is_row_dataset as _is_row_dataset
from pathviz.store.schema import _layer_path as _layer_path
from pathviz.store.schema import _safe as _safe
from pathviz.store.schema import _short as _short
from pathviz.store.schema import _str as _str
from pathviz.store.validate import check_specs as _check_specs  # noqa: F401 - former name
from pathviz.store.validate import json_attr as _json_attr  # noqa: F401 - former name
from pathviz.store.writer import _ABANDONED as _ABANDONED
from pathviz.store.writer import PathWriter
from pathviz.store.writer import _Appender as _Appender

__all__ = ["SCHEMA_VERSION", "PathWriter", "PathReader", "PathFileError", "PathDamagedError",
           "PathInvalidError", "MAX_ITERATION",
           "Snapshot", "STANDARD_METRICS", "REQUIRED_METRICS", "copy_path", "probe",
           "repair_path_file", "entry_indices", "nearest",
           # the schema's names
           "ATTR_SCHEMA", "ATTR_CONFIG", "ATTR_LAYERS", "ATTR_METRICS", "ATTR_WEIGHTS",
           "ATTR_MODEL", "ATTR_DATA", "ATTR_ENVIRONMENT", "SNAPSHOTS", "ITERATION", "EPOCH",
           "TIME", "METRICS", "LAYERS", "GAMMA_NORM", "WEIGHT_NORM", "NNZ", "LAYER_FIELDS",
           "WEIGHTS", "WEIGHTS_ITERATION", "GAMMA", "CHUNK_ROWS", "MAX_READ_BYTES", "READ_TIMEOUT",
           "MEMBERS", "gamma_tensors"]
