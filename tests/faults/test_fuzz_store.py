"""Fuzzing the path file reader and its validator (issue 35, item 3): a sound path file is
truncated, has bytes flipped or zeroed, or is edited with h5py (datasets of the wrong dtype,
row shape or length, deleted or replaced by groups, iterations shuffled, repeated or out of
range, root attributes missing or not the JSON they should be). Whatever the file holds,
opening it and every accessor after a successful open either work or raise
:class:`~pathviz.store.PathFileError` in one sentence; ``python -m pathviz.inspect`` on the
run says one sentence with exit 2 (or prints its summary); and nothing on disk changes.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import assume, event, given
from hypothesis import strategies as st

from pathviz import inspect as inspect_cli
from pathviz import runs
from pathviz.store import PathFileError, PathReader, helper
from tests.faults.fuzz import fuzz, one_sentence, tree_hash
from tests.test_store import write_file

_COUNT = itertools.count()
ROOT_ATTRS = ("schema_version", "config", "layers", "metrics", "weights", "model", "data",
              "environment")


@pytest.fixture(scope="module")
def base_file(tmp_path_factory) -> Path:
    """A sound path file: 8 snapshots, weights at 3 of them."""
    p = tmp_path_factory.mktemp("base") / "path.h5"
    write_file(p)
    return p


class Base:
    """The sound file's bytes and dataset names (a class, so hypothesis does not print the
    bytes when it reports a case)."""

    def __init__(self, p: Path) -> None:
        self.data = p.read_bytes()
        names: list[str] = []
        with h5py.File(p, "r") as f:
            f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        self.names = sorted(names)

    def __repr__(self) -> str:
        return f"<sound path file, {len(self.data)} bytes>"


@pytest.fixture(scope="module")
def base(base_file) -> Base:
    return Base(base_file)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(autouse=True)
def short_reads(monkeypatch):
    # a damaged file that hangs the helper costs this many seconds per dataset, not 3
    monkeypatch.setattr(helper, "READ_TIMEOUT", 1.5)


def _fresh(work: Path, data: bytes) -> Path:
    """A new run folder holding ``data`` as its path file (a new inode each time, so the
    probe's cache never answers for an earlier case)."""
    d = work / f"run{next(_COUNT)}"
    d.mkdir()
    (d / runs.PATH_FILE).write_bytes(data)
    return d


def _read_everything(p: Path) -> None:
    """Open ``p`` and call every accessor; only PathFileError may come out, in one sentence."""
    try:
        with PathReader(p) as r:
            event("opened")
            n = len(r)
            r.iterations, r.epochs, r.times, r.metrics()  # noqa: B018
            if n:
                r.snapshot(0), r.snapshot(-1)  # noqa: B018
            for layer in r.layers:
                r.layer_path(layer["name"]), r.entry_times(layer["name"])  # noqa: B018
                r.support_sizes(layer["name"])
            for it in r.weight_iterations.tolist():
                r.weights_at(it), r.gamma_at(it)  # noqa: B018
            r.fingerprint()
            r.refresh()
    except PathFileError as e:
        one_sentence(str(e))
        event(f"refused: {type(e).__name__}")


def _check(work: Path, data: bytes) -> None:
    d = _fresh(work, data)
    before = tree_hash(d)
    helper._PROBED.clear()
    _read_everything(d / runs.PATH_FILE)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = inspect_cli.main([str(d), "--json"])
    if rc == 0:
        json.loads(out.getvalue())
    else:
        assert rc == 2, (rc, err.getvalue())
        one_sentence(err.getvalue(), "pathviz.inspect: error: ")
    assert tree_hash(d) == before, "reading the file changed the run folder"
    shutil.rmtree(d)


# ---- bytes: truncations, flipped and zeroed bytes ------------------------------------------


@fuzz(40)
@given(cut=st.floats(0, 1, exclude_max=True))
def test_a_truncated_file_is_one_sentence(base, work, cut):
    data = base.data
    _check(work, data[:int(cut * len(data))])


@fuzz(60)
@given(flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
                      min_size=1, max_size=12))
def test_flipped_bytes_are_one_sentence_or_read_soundly(base, work, flips):
    data = bytearray(base.data)
    for at, bits in flips:
        data[int(at * len(data))] ^= bits
    _check(work, bytes(data))


@fuzz(25)
@given(at=st.floats(0, 1, exclude_max=True), size=st.integers(1, 4096),
       fill=st.sampled_from([0x00, 0xFF]))
def test_a_zeroed_or_erased_block_is_one_sentence_or_read_soundly(base, work, at, size, fill):
    data = bytearray(base.data)
    start = int(at * len(data))
    data[start:start + size] = bytes([fill]) * len(data[start:start + size])
    _check(work, bytes(data))


# ---- structure: h5py edits of a sound file --------------------------------------------------

DTYPES = ["int8", "uint8", "int16", "uint32", "int64", "uint64", "float16", "float32",
          "float64", "bool", "S4", "complex64"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                  max_size=4),
    max_leaves=12)


def _recreate(f: h5py.File, name: str, data: np.ndarray) -> None:
    del f[name]
    if data.ndim == 0:
        f.create_dataset(name, data=data)
    else:
        f.create_dataset(name, data=data, maxshape=(None, *data.shape[1:]), chunks=True)


@st.composite
def edits(draw, names: list[str]):
    """One edit of the file: a function of an open h5py.File, and what it does (for the log)."""
    kind = draw(st.sampled_from(["dtype", "shape", "length", "delete", "group", "values",
                                 "iterations", "attr-delete", "attr-json", "attr-text",
                                 "attr-type", "layer-record"]))
    name = draw(st.sampled_from(names))
    if kind == "dtype":
        dtype = draw(st.sampled_from(DTYPES))
        return kind, name, lambda f: _recreate(f, name, f[name][()].astype(dtype))
    if kind == "shape":
        shape = tuple(draw(st.lists(st.integers(0, 6), max_size=4)))
        fill = draw(st.floats(-1e3, 1e3))
        return kind, (name, shape), lambda f: _recreate(
            f, name, np.full(shape, fill, f[name].dtype))
    if kind == "length":
        n = draw(st.integers(0, 14))
        seed = draw(st.integers(0, 9))

        def length(f):
            a = f[name][()]
            if a.ndim == 0:
                a = a.reshape(1)
            extra = np.random.default_rng(seed).integers(0, 100, (max(0, n - len(a)),
                                                                   *a.shape[1:]))
            _recreate(f, name, np.concatenate([a[:n], extra.astype(a.dtype)]))
        return kind, (name, n), length
    if kind == "delete":
        return kind, name, lambda f: f.__delitem__(name)
    if kind == "group":
        def group(f):
            del f[name]
            f.create_group(name)
        return kind, name, group
    if kind == "values":
        value = draw(st.sampled_from([np.nan, np.inf, -np.inf, -1, 0, 2 ** 31 - 1, 1e300,
                                      -2 ** 62]))
        index = draw(st.integers(0, 100))

        def values(f):
            a = f[name][()]
            if a.size == 0:
                return
            flat = a.reshape(-1).copy()
            with np.errstate(all="ignore"):
                flat[index % flat.size] = np.array(value).astype(a.dtype)
            f[name][...] = flat.reshape(a.shape)
        return kind, (name, value, index), values
    if kind == "iterations":
        target = draw(st.sampled_from(["snapshots/iteration", "weights/iteration"]))
        how = draw(st.sampled_from(["shuffle", "repeat", "random", "reverse"]))
        seed = draw(st.integers(0, 99))

        def iterations(f):
            a = f[target][()]
            rng = np.random.default_rng(seed)
            if how == "shuffle":
                a = rng.permutation(a)
            elif how == "repeat":
                a[rng.integers(1, len(a))] = a[rng.integers(0, len(a))]
            elif how == "reverse":
                a = a[::-1]
            else:
                a = rng.integers(-2 ** 62, 2 ** 62, len(a))
            f[target][...] = a
        return kind, (target, how, seed), iterations
    attr = draw(st.sampled_from(ROOT_ATTRS))
    if kind == "attr-delete":
        return kind, attr, lambda f: f.attrs.__delitem__(attr)
    if kind == "attr-json":
        value = json.dumps(draw(json_values))
        return kind, (attr, value), lambda f: f.attrs.__setitem__(attr, value)
    if kind == "attr-text":
        value = draw(st.text(max_size=30).filter(lambda s: "\x00" not in s))
        return kind, (attr, value), lambda f: f.attrs.__setitem__(attr, value)
    if kind == "attr-type":
        value = draw(st.sampled_from([np.int64(7), np.arange(3), np.float64("nan"),
                                      np.array([b"x", b"y"]), b"\xff\xfe"]))
        return kind, (attr, value), lambda f: f.attrs.__setitem__(attr, value)
    # a layer record edited one field at a time, as a hand edit of the JSON would
    field = draw(st.sampled_from(["name", "param", "groups", "shape", "kind", "penalty",
                                  "members"]))
    value = draw(json_values)

    def layer_record(f):
        layers = json.loads(f.attrs["layers"])
        layers[0][field] = value
        f.attrs["layers"] = json.dumps(layers)
    return kind, (field, value), layer_record


@fuzz(120)
@given(data=st.data())
def test_an_edited_file_is_one_sentence_or_read_soundly(base, work, data):
    many = data.draw(st.lists(edits(base.names), min_size=1, max_size=3), label="edits")
    d = _fresh(work, base.data)
    p = d / runs.PATH_FILE
    try:
        with h5py.File(p, "a", libver="latest") as f:
            for _, _, edit in many:
                edit(f)
    except (KeyError, ValueError, TypeError, OSError, OverflowError):
        assume(False)  # an edit h5py cannot make (e.g. a field of a deleted dataset)
    edited = p.read_bytes()
    shutil.rmtree(d)
    _check(work, edited)
