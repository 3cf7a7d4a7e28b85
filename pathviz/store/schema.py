"""The path file's schema, and the names, errors and row type that every part of
pathviz.store shares: an HDF5 regularization path, written by one process and read live
by many.

Schema 1 (``SCHEMA_VERSION = "1.3"``); every name below is a constant of this module. Readers
accept any 1.x file: 1.1 added the ``model`` and ``data`` attributes and the compact-subnetwork
metrics, 1.2 the ``environment`` attribute, 1.3 the ``members`` of layers whose groups span
tensors, all optional for readers.

Root attributes, written before SWMR starts:
    schema_version   "1.3"; readers refuse another major version
    config           JSON of the run config
    model            JSON {"name", "kwargs", "input_shape", "num_classes", "params_total",
                     "flops_total"}: what rebuilds the model and its full size (optional)
    data             JSON {"dataset", "n_train", "n_val", "n_test", "val_fraction",
                     "split_seed"}: the data the metrics were measured on (optional)
    environment      JSON of what made the numbers (``pathviz.numerics.environment``): pathviz,
                     torch, numpy and numba versions, the pinned ``cpu_isa`` and what torch ran
                     (``cpu_capability``), threads, deterministic, device (optional)
    layers           JSON list, in model order, of the layers with a Gamma:
                     {"name", "param", "kind": "conv"|"linear"|"heads"|"mlp", "shape",
                     "penalty", "groups"}, and for a layer whose groups span tensors
                     (attention heads, MLP neurons) "members": [{"param", "shape", "view",
                     "dim"}], every tensor of its groups (the first is "param"): group g is
                     index g of axis "dim" of the tensor reshaped to "view"
    metrics          JSON list of the metric names (the datasets under metrics/)
    weights          JSON list of the saved tensors: {"name", "shape", "dtype"} (state_dict order)

Datasets, all chunked and resizable along axis 0, appended once per snapshot and then flushed:
    snapshots/iteration  [N] int64     optimizer steps taken at the snapshot (0: before training)
    snapshots/epoch      [N] float64   iteration / iterations per epoch
    snapshots/time       [N] float64   seconds of training so far
    metrics/<name>       [N] float64   train_loss, train_acc, lr, sparsity (fraction of groups
                                       outside the support, all layers); where evaluated (NaN
                                       elsewhere): val_loss, val_acc, test_loss, test_acc (of W),
                                       val_acc_sparse, test_acc_sparse (of the compact
                                       subnetwork that export writes), params_kept, flops_kept
                                       (its size, from ``pathviz.prune.compact_size``); and any
                                       extra names given to the writer. Only train_loss,
                                       train_acc and lr are required.
    layers/<name>/gamma_norm  [N, G] float32   ||Gamma_g||, 0 outside the support
    layers/<name>/weight_norm [N, G] float32   ||W_g||
    layers/<name>/nnz         [N, G] int32     nonzero entries of Gamma_g
    weights/iteration    [K] int64     iterations that have full weights (K <= N)
    weights/<tensor>     [K, *shape]   every parameter and buffer of the model (state_dict)
    gamma/<param>        [K, *shape]   Gamma of each layer (of each of its members), at the same
                                       iterations

Run status lives in a JSON sidecar next to the file (see ``pathviz.runs``), because attributes
cannot change while SWMR is on. Entry time per group (first snapshot with gamma_norm > 0) is
derived by :class:`PathReader`, not stored.

Files are not trusted. A writer killed mid-flush can leave datasets of different lengths, and
a damaged object header can make HDF5 loop forever inside one call (seen in about 1 of 200
SIGKILLs). So before this process touches a file, a helper process opens it and reads every
dataset under an inactivity timeout (:func:`probe`); readers are then bounded by the shortest
length across a snapshot's datasets, and a file with a hung or unreadable dataset raises
:class:`PathDamagedError` ("N snapshots readable") instead of hanging the app.
:func:`repair_path_file` (used on resume) cuts such a file to its consistent length.

Values are checked too, before anything uses them (:mod:`pathviz.store.validate` holds the
rules): iterations are whole numbers from 0 to ``MAX_ITERATION`` that strictly increase (both
``snapshots/iteration`` and ``weights/iteration``), counting datasets have an integer dtype,
norms are never NaN or negative, nnz never negative. A file that breaks one raises
:class:`PathInvalidError`, one sentence naming the dataset, the rule and the fix.

The package ``pathviz.store`` re-exports every name here with the writer (``writer.py``),
the reader (``reader.py``), the helper-process check (``helper.py``) and the repair
(``repair.py``). It needs numpy and h5py only, so the app can read paths without importing
torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

SCHEMA_VERSION = "1.3"

ATTR_SCHEMA = "schema_version"
ATTR_CONFIG = "config"
ATTR_LAYERS = "layers"
ATTR_METRICS = "metrics"
ATTR_WEIGHTS = "weights"
ATTR_MODEL = "model"
ATTR_DATA = "data"
ATTR_ENVIRONMENT = "environment"

SNAPSHOTS = "snapshots"
ITERATION = "snapshots/iteration"
EPOCH = "snapshots/epoch"
TIME = "snapshots/time"
METRICS = "metrics"
LAYERS = "layers"
GAMMA_NORM = "gamma_norm"
WEIGHT_NORM = "weight_norm"
NNZ = "nnz"
LAYER_FIELDS = (GAMMA_NORM, WEIGHT_NORM, NNZ)
WEIGHTS = "weights"
WEIGHTS_ITERATION = "weights/iteration"
GAMMA = "gamma"

STANDARD_METRICS = ("train_loss", "train_acc", "lr", "val_loss", "val_acc", "val_acc_sparse",
                    "test_loss", "test_acc", "test_acc_sparse", "sparsity", "params_kept",
                    "flops_kept")
REQUIRED_METRICS = ("train_loss", "train_acc", "lr")

# rows per chunk of the per-snapshot datasets: uncompressed, so re-flushing a partly filled chunk
# rewrites it in place; 64 rows keep a 5000-snapshot layer read to ~80 chunk reads
CHUNK_ROWS = 64

# refuse single reads larger than this: a hostile file may declare absurd shapes
MAX_READ_BYTES = 1 << 30

# the largest iteration a file may hold: the largest integer a browser (JavaScript) holds exactly
MAX_ITERATION = 2 ** 53 - 1


class PathFileError(Exception):
    """A path file that cannot be read: the message says what is wrong and what to do."""


class PathDamagedError(PathFileError):
    """A path file with datasets that hang or fail to read; ``readable`` snapshots are intact.

    Resume (or :func:`repair_path_file`) cuts the file to them.
    """

    def __init__(self, message: str, readable: int) -> None:
        super().__init__(message)
        self.readable = readable


class PathInvalidError(PathFileError):
    """A path file whose values break a rule of the schema (see :mod:`pathviz.store.validate`):
    ``rule`` names the rule ("iterations increase", "iteration range", "statistics") and
    ``dataset`` the dataset that breaks it. No repair makes such a file sound."""

    def __init__(self, message: str, rule: str, dataset: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.dataset = dataset


@dataclass
class Snapshot:
    """One row of the path: where training is, its metrics, and per-layer group statistics.

    ``layers[name] = (gamma_norm [G] float32, weight_norm [G] float32, nnz [G] int32)``.
    """

    iteration: int
    epoch: float
    time: float
    metrics: Mapping[str, float]
    layers: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]]


MEMBERS = "members"  # key of a layer record: the tensors of groups that span several


def gamma_tensors(layer: Mapping) -> list[tuple[str, tuple[int, ...]]]:
    """(parameter, shape) of every tensor that holds a share of ``layer``'s Gamma: its
    ``members`` when its groups span tensors, else its one ``param``. Older files (no
    ``members``) read as the latter."""
    members = layer.get(MEMBERS)
    if members:
        return [(m["param"], tuple(m["shape"])) for m in members]
    return [(layer["param"], tuple(layer["shape"]))]


def _layer_path(name: str, field: str) -> str:
    return f"{LAYERS}/{name}/{field}"


def _safe(name: str) -> str:
    """An HDF5 object name for a tensor or layer name (dots are fine, slashes are not)."""
    if "/" in name or not name:
        raise ValueError(f"invalid name for the path file: {name!r}")
    return name


def _is_row_dataset(name: str) -> bool:
    """A dataset with one row per snapshot (as opposed to one row per weight save)."""
    return name.startswith((f"{SNAPSHOTS}/", f"{METRICS}/", f"{LAYERS}/"))


def _str(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _short(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return msg[:200]
