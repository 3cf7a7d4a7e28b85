"""Path file: write/read round-trip, live SWMR reading, killed writers, bad files."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import h5py
import numpy as np
import pytest

from pathviz import store
from pathviz.store import PathFileError, PathReader, PathWriter, Snapshot, copy_path

LAYERS = [
    {"name": "conv1", "param": "conv1.weight", "kind": "conv", "shape": [4, 1, 3, 3],
     "penalty": "group", "groups": 4},
    {"name": "fc.0", "param": "fc.0.weight", "kind": "linear", "shape": [3, 5], "penalty": "l1",
     "groups": 15},
]
WEIGHTS = [{"name": "conv1.weight", "shape": [4, 1, 3, 3], "dtype": "float32"},
           {"name": "bn.num_batches_tracked", "shape": [], "dtype": "int64"},
           {"name": "fc.0.weight", "shape": [3, 5], "dtype": "float32"}]


def synthetic(i: int) -> Snapshot:
    """Snapshot i of a synthetic path: group g of each layer enters at snapshot g."""
    layers = {}
    for layer in LAYERS:
        g = layer["groups"]
        gn = np.where(np.arange(g) < i, np.arange(g) + 0.5 * i, 0).astype(np.float32)
        layers[layer["name"]] = (gn, (gn + 1).astype(np.float32), (gn > 0).astype(np.int32) * 3)
    metrics = {"train_loss": 1.0 / (i + 1), "train_acc": i / 10, "lr": 0.1,
               "sparsity": 1 - i / 20, "params_kept": 100.0 + i}
    if i % 2 == 0:
        metrics["test_acc"] = 0.5 + i / 100
    return Snapshot(iteration=i * 10, epoch=i / 4, time=i * 0.5, metrics=metrics, layers=layers)


def weights(i: int) -> tuple[dict, dict]:
    t = {"conv1.weight": np.full((4, 1, 3, 3), i, np.float32),
         "bn.num_batches_tracked": np.array(i, np.int64),
         "fc.0.weight": np.arange(15, dtype=np.float32).reshape(3, 5) * i}
    g = {"conv1.weight": np.full((4, 1, 3, 3), -i, np.float32),
         "fc.0.weight": np.ones((3, 5), np.float32) * i}
    return t, g


def write_file(path, n=8, flush_interval=0.1, weights_at=(0, 3, 7)) -> None:
    with PathWriter(path, config={"model": "x", "lr": 0.1}, layers=LAYERS, weights=WEIGHTS,
                    flush_interval=flush_interval) as w:
        for i in range(n):
            w.append(synthetic(i))
            if i in weights_at:
                w.append_weights(i * 10, *weights(i))


@pytest.mark.parametrize("flush_interval", [0.0, 0.1, 1e9])
def test_round_trip_of_every_dataset(tmp_path, flush_interval):
    p = tmp_path / "path.h5"
    write_file(p, flush_interval=flush_interval)
    with PathReader(p) as r:
        assert r.schema_version == store.SCHEMA_VERSION
        assert r.config == {"model": "x", "lr": 0.1}
        assert r.layers == LAYERS and r.weight_specs == WEIGHTS
        assert r.n_snapshots == len(r) == 8
        assert r.iterations.tolist() == [i * 10 for i in range(8)]
        assert r.epochs.tolist() == [i / 4 for i in range(8)]
        assert r.times.tolist() == [i * 0.5 for i in range(8)]
        m = r.metrics()
        assert set(m) == set(store.STANDARD_METRICS)
        assert m["train_loss"].tolist() == [1.0 / (i + 1) for i in range(8)]
        assert m["params_kept"].tolist() == [100.0 + i for i in range(8)]
        ta = m["test_acc"]
        assert ta[::2].tolist() == [0.5 + i / 100 for i in range(0, 8, 2)]
        assert np.isnan(ta[1::2]).all() and np.isnan(m["test_loss"]).all()
        for i in range(8):
            snap = r.snapshot(i)
            for layer in LAYERS:
                exp = synthetic(i).layers[layer["name"]]
                for field, arr in zip(store.LAYER_FIELDS, exp):
                    np.testing.assert_array_equal(snap[layer["name"]][field], arr)
                    assert snap[layer["name"]][field].dtype == arr.dtype
        full = r.layer_path("fc.0", "weight_norm")
        assert full.shape == (8, 15) and full[5, 2] == synthetic(5).layers["fc.0"][1][2]
        assert r.entry_times("conv1").tolist() == [1, 2, 3, 4]
        assert r.entry_times("fc.0").tolist() == list(range(1, 8)) + [-1] * 8
        assert r.support_sizes("conv1").tolist() == [0, 1, 2, 3, 4, 4, 4, 4]
        assert r.weight_iterations.tolist() == [0, 30, 70]
        for i in (0, 3, 7):
            t, g = weights(i)
            got_t, got_g = r.weights_at(i * 10), r.gamma_at(i * 10)
            assert list(got_t) == [w["name"] for w in WEIGHTS]
            for k in t:
                np.testing.assert_array_equal(got_t[k], t[k])
            for k in g:
                np.testing.assert_array_equal(got_g[k], g[k])
        assert r.index_of(35) == 3 and r.index_of(0) == 0 and r.index_of(1000) == 7


def test_iteration_without_weights_names_the_nearest(tmp_path):
    p = tmp_path / "path.h5"
    write_file(p)
    with PathReader(p) as r:
        with pytest.raises(KeyError, match=r"iteration 40 has no saved weights; nearest "
                                           r"iterations with weights: 30, 70"):
            r.weights_at(40)
        with pytest.raises(KeyError, match="nearest iterations with weights: 0, 30"):
            r.gamma_at(10)


def test_writer_refuses_undeclared_names(tmp_path):
    with PathWriter(tmp_path / "p.h5", config={}, layers=LAYERS, weights=WEIGHTS) as w:
        snap = synthetic(1)
        snap.metrics = {**snap.metrics, "bogus": 1.0}
        with pytest.raises(ValueError, match=r"metrics \['bogus'\] were not declared"):
            w.append(snap)
        t, g = weights(1)
        del t["fc.0.weight"]
        with pytest.raises(ValueError, match=r"missing \['fc.0.weight'\]"):
            w.append_weights(10, t, g)


def test_datasets_are_chunked_and_resizable(tmp_path):
    p = tmp_path / "path.h5"
    write_file(p)
    with h5py.File(p, "r") as f:
        def check(name, obj):
            if isinstance(obj, h5py.Dataset):
                assert obj.chunks is not None, name
                assert obj.maxshape[0] is None, name
        f.visititems(check)


def test_unknown_major_version_is_refused(tmp_path):
    p = tmp_path / "path.h5"
    write_file(p)
    with h5py.File(p, "a") as f:
        f.attrs[store.ATTR_SCHEMA] = "2.0"
    with pytest.raises(PathFileError, match=r"schema version 2\.0, this pathviz reads 1\.3"):
        PathReader(p)
    with h5py.File(p, "a") as f:
        f.attrs[store.ATTR_SCHEMA] = "1.7"  # same major: readable
    with PathReader(p) as r:
        assert r.schema_version == "1.7"


def test_corrupt_truncated_and_foreign_files(tmp_path):
    good = tmp_path / "good.h5"
    write_file(good)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(os.urandom(5000))
    with pytest.raises(PathFileError, match="not a readable path file"):
        PathReader(junk)
    trunc = tmp_path / "trunc.h5"
    trunc.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    with pytest.raises(PathFileError, match="truncated"):
        PathReader(trunc)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(PathFileError, match="not a pathviz path file"):
        PathReader(foreign)
    with pytest.raises(PathFileError, match="no path file at"):
        PathReader(tmp_path / "missing.h5")


WRITER_SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from test_store import LAYERS, WEIGHTS, synthetic, weights
    from pathviz.store import PathWriter
    w = PathWriter({path!r}, config={{}}, layers=LAYERS, weights=WEIGHTS)
    for i in range({n}):
        w.append(synthetic(i))
        if i % 3 == 0:
            w.append_weights(i * 10, *weights(i))
        w.flush()
        print("flushed", i + 1, flush=True)
        time.sleep({pause})
    print("done", flush=True)
    time.sleep(60)
""")


def _start_writer(path, n, pause):
    script = WRITER_SCRIPT.format(tests=os.path.dirname(__file__), path=str(path), n=n,
                                  pause=pause)
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)


def test_reader_follows_a_live_writer_in_another_process(tmp_path):
    p = tmp_path / "live.h5"
    proc = _start_writer(p, n=12, pause=0.15)
    try:
        assert proc.stdout.readline().startswith("flushed 1")
        r = PathReader(p)
        seen = []
        deadline = time.time() + 30
        while time.time() < deadline:
            n = r.refresh()
            seen.append(n)
            if n:  # every visible row is complete and correct
                last = n - 1
                assert r.iterations[last] == last * 10
                np.testing.assert_array_equal(r.snapshot(last)["conv1"]["gamma_norm"],
                                              synthetic(last).layers["conv1"][0])
                assert r.layer_path("fc.0").shape == (n, 15)
            if n == 12:
                break
            time.sleep(0.05)
        assert seen[-1] == 12
        assert len(set(seen)) >= 4, f"the reader should see the file grow, saw {seen}"
        assert r.weight_iterations.tolist() == [0, 30, 60, 90]
        r.close()
    finally:
        proc.kill()
        proc.wait()


def test_sigkilled_writer_leaves_every_flushed_snapshot_readable(tmp_path):
    p = tmp_path / "killed.h5"
    proc = _start_writer(p, n=100, pause=0.02)
    flushed = 0
    for line in proc.stdout:
        flushed = int(line.split()[1])
        if flushed >= 7:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with PathReader(p) as r:
        assert r.n_snapshots >= flushed
        n = r.n_snapshots
        assert r.iterations.tolist() == [i * 10 for i in range(n)]
        for i in range(n):
            np.testing.assert_array_equal(r.snapshot(i)["fc.0"]["nnz"],
                                          synthetic(i).layers["fc.0"][2])
    # plain (non-SWMR) opens fail on such a file; copy_path rescues the rows into a new file
    dst = tmp_path / "rescued.h5"
    w = copy_path(p, dst, upto_iteration=40)
    w.append(synthetic(5))
    w.close()
    with PathReader(dst) as r:
        assert r.iterations.tolist() == [0, 10, 20, 30, 40, 50]
        assert r.weight_iterations.tolist() == [0, 30]
        np.testing.assert_array_equal(r.weights_at(30)["fc.0.weight"], weights(3)[0]["fc.0.weight"])


def test_nearest():
    assert store.nearest(np.array([0, 30, 60]), 40) == [30, 60]
    assert store.nearest(np.array([], dtype=np.int64), 4) == []


def test_store_does_not_import_torch():
    code = ("import sys; import pathviz.store, pathviz.runs; "
            "print(json.dumps('torch' in sys.modules))")
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True,
                         text=True, check=True)
    assert json.loads(out.stdout) is False


def test_model_and_data_attributes_round_trip_and_are_optional(tmp_path):
    p = tmp_path / "path.h5"
    model = {"name": "lenet5", "kwargs": {"widths": [6, 16, 120, 84]}, "params_total": 61706}
    data = {"dataset": "digits", "n_train": 1150, "n_val": 287, "n_test": 360}
    with PathWriter(p, config={}, layers=[], model=model, data=data):
        pass
    with PathReader(p) as r:
        assert r.model_info == model and r.data_info == data
    q = tmp_path / "old.h5"
    with PathWriter(q, config={}, layers=[]):
        pass
    with PathReader(q) as r:  # a 1.0 file has neither
        assert r.model_info == {} and r.data_info == {}


# ---- files not to be trusted (issue 12, defects 3 and 9) ---------------------------------


def _ragged(path, short: str, n: int = 6) -> None:
    """A sound file, then one dataset cut to n - 2 rows (as a writer killed mid-flush leaves)."""
    write_file(path, n=n)
    with h5py.File(path, "a", libver="latest") as f:
        f[short].resize(n - 2, axis=0)


@pytest.mark.parametrize("short", ["layers/conv1/gamma_norm", "metrics/lr", "snapshots/epoch"])
def test_reads_are_bounded_by_the_shortest_snapshot_dataset(tmp_path, short):
    p = tmp_path / "ragged.h5"
    _ragged(p, short)
    with PathReader(p) as r:
        assert r.n_snapshots == 4 and r.iterations.tolist() == [0, 10, 20, 30]
        assert r.layer_path("conv1").shape == (4, 4) and r.metric("lr").shape == (4,)
        assert r.snapshot(-1)["conv1"]["nnz"].tolist() == synthetic(3).layers["conv1"][2].tolist()
        with pytest.raises(IndexError, match="snapshot 4 out of range 0..3"):
            r.snapshot(4)


def test_weight_rows_are_bounded_by_the_shortest_weight_dataset(tmp_path):
    p = tmp_path / "wragged.h5"
    write_file(p, n=8)
    with h5py.File(p, "a", libver="latest") as f:
        f["gamma/fc.0.weight"].resize(2, axis=0)
    with PathReader(p) as r:
        assert r.weight_iterations.tolist() == [0, 30]
        with pytest.raises(KeyError, match="iteration 70 has no saved weights"):
            r.weights_at(70)


def _edit(path, fn) -> None:
    with h5py.File(path, "a", libver="latest") as f:
        fn(f)


def _retype(name, dtype):
    def fn(f):
        data = f[name][...]
        del f[name]
        f.create_dataset(name, data=data.astype(dtype), maxshape=(None, *data.shape[1:]),
                         chunks=True)
    return fn


MALFORMED = [
    ("missing iteration", lambda f: f.__delitem__("snapshots/iteration"),
     "dataset snapshots/iteration is missing"),
    ("missing layer field", lambda f: f.__delitem__("layers/conv1/nnz"),
     "dataset layers/conv1/nnz is missing"),
    ("missing metric", lambda f: f.__delitem__("metrics/lr"), "dataset metrics/lr is missing"),
    ("missing weights", lambda f: f.__delitem__("weights/fc.0.weight"),
     "dataset weights/fc.0.weight is missing"),
    ("string iterations", _retype("snapshots/iteration", "S8"),
     "dataset snapshots/iteration is |S8"),
    ("float iterations", _retype("snapshots/iteration", np.float32),
     "dataset snapshots/iteration is float32"),
    ("wrong group count", lambda f: f.attrs.__setitem__(
        "layers", json.dumps([{**LAYERS[0], "groups": 5}, LAYERS[1]])),
     r"dataset layers/conv1/gamma_norm is float32 \(8, 4\), expected rows of shape \(5,\)"),
    ("config not JSON", lambda f: f.attrs.__setitem__("config", "{oops"),
     "the 'config' attribute is not a JSON dict"),
    ("layers not a list", lambda f: f.attrs.__setitem__("layers", '{"a": 1}'),
     "the 'layers' attribute is not a JSON list"),
    ("layer without groups", lambda f: f.attrs.__setitem__(
        "layers", json.dumps([{"name": "conv1", "param": "conv1.weight"}])),
     "layer record .* is malformed"),
    ("layer name with a slash", lambda f: f.attrs.__setitem__(
        "layers", json.dumps([{**LAYERS[0], "name": "../x"}])), "layer record .* is malformed"),
    ("weight dtype unknown", lambda f: f.attrs.__setitem__(
        "weights", json.dumps([{**WEIGHTS[0], "dtype": "complex-ish"}])),
     "weight record .* is malformed"),
    ("metrics attribute missing", lambda f: f.attrs.__delitem__("metrics"),
     "the 'metrics' attribute is missing"),
    ("absurd shape", lambda f: f.attrs.__setitem__(
        "weights", json.dumps([{**WEIGHTS[0], "shape": [2 ** 40]}])),
     "weight record .* is malformed"),
]


@pytest.mark.parametrize("case,edit,message", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_files_are_one_clear_sentence(tmp_path, case, edit, message):
    p = tmp_path / "bad.h5"
    write_file(p)
    _edit(p, edit)
    with pytest.raises(PathFileError, match=message) as e:
        PathReader(p)
    assert "\n" not in str(e.value) and str(e.value).endswith("delete the run or restore the file")


# ---- values that break a rule (issue 20, item 3): one sentence, PathInvalidError ----------


def _set(name, fn):
    """An edit that rewrites one dataset's values in place: ``fn(array) -> array``."""
    def edit(f):
        f[name][...] = fn(f[name][...])
    return edit


def _at(index, value):
    def fn(a):
        a[index] = value
        return a
    return fn


def _retyped_with_nan(name, index):
    """``name`` stored as float64 (as a tool that does not know the schema may write it) with a
    NaN at ``index``: NaN where a whole number belongs."""
    def fn(f):
        data = f[name][...].astype(np.float64)
        data[index] = np.nan
        del f[name]
        f.create_dataset(name, data=data, maxshape=(None, *data.shape[1:]), chunks=True)
    return fn


def _narrowed(name, width):
    """``name`` recreated with rows of ``width`` groups (the layer record says otherwise)."""
    def fn(f):
        data = f[name][:, :width]
        del f[name]
        f.create_dataset(name, data=data, maxshape=(None, width), chunks=True)
    return fn


# (case, edit, the sentence's middle, rule) on write_file's file: iterations 0, 10, .. 70,
# weights at 0, 30, 70; conv1 has 4 groups
INVALID = [
    ("reversed iterations", _set("snapshots/iteration", lambda a: a[::-1]),
     r"snapshots/iteration goes from 70 to 60 at snapshot 1, but iterations must strictly "
     r"increase", "iterations increase"),
    ("repeated iteration", _set("snapshots/iteration", _at(3, 20)),
     r"snapshots/iteration goes from 20 to 20 at snapshot 3", "iterations increase"),
    ("negative iteration", _set("snapshots/iteration", lambda a: a - 20),
     r"snapshots/iteration holds -20 at snapshot 0, but iterations are whole numbers from 0 to "
     r"9007199254740991", "iteration range"),
    ("iteration past 2**53", _set("snapshots/iteration", _at(7, 2 ** 62)),
     r"snapshots/iteration holds 4611686018427387904 at snapshot 7", "iteration range"),
    ("reversed weight iterations", _set("weights/iteration", lambda a: a[::-1]),
     r"weights/iteration goes from 70 to 30 at weight row 1, but iterations must strictly "
     r"increase", "iterations increase"),
    ("negative gamma norm", _set("layers/conv1/gamma_norm", _at((5, 2), -1.5)),
     r"layers/conv1/gamma_norm holds -1.5 at snapshot 5 \(iteration 50\), but norms are never "
     r"NaN or negative", "statistics"),
    ("NaN gamma norm", _set("layers/fc.0/gamma_norm", _at((6, 0), np.nan)),
     r"layers/fc.0/gamma_norm holds NaN at snapshot 6 \(iteration 60\)", "statistics"),
    ("negative weight norm", _set("layers/conv1/weight_norm", _at((0, 3), -np.inf)),
     r"layers/conv1/weight_norm holds -inf at snapshot 0 \(iteration 0\)", "statistics"),
    ("negative nnz", _set("layers/fc.0/nnz", _at((7, 14), -3)),
     r"layers/fc.0/nnz holds -3 at snapshot 7 \(iteration 70\), but nonzero counts are never "
     r"negative", "statistics"),
    ("NaN iteration", _retyped_with_nan("snapshots/iteration", 4),
     r"dataset snapshots/iteration is float64 \(8,\), expected whole numbers", None),
    ("NaN weight iteration", _retyped_with_nan("weights/iteration", 1),
     r"dataset weights/iteration is float64 \(3,\), expected whole numbers", None),
    ("NaN nnz", _retyped_with_nan("layers/conv1/nnz", (2, 1)),
     r"dataset layers/conv1/nnz is float64 \(8, 4\), expected whole numbers", None),
    ("gamma_norm narrower than the groups", _narrowed("layers/conv1/gamma_norm", 3),
     r"dataset layers/conv1/gamma_norm is float32 \(8, 3\), expected rows of shape \(4,\)",
     None),
]


@pytest.mark.parametrize("case,edit,message,rule", INVALID, ids=[c[0] for c in INVALID])
def test_a_file_that_breaks_a_rule_is_one_sentence(tmp_path, case, edit, message, rule):
    """Each rule of pathviz.store.validate: the sentence names the dataset, the rule and the
    fix; values raise PathInvalidError (its rule and dataset set), in every open mode."""
    p = tmp_path / "bad.h5"
    write_file(p)
    _edit(p, edit)
    for allow_damaged in (False, True):
        with pytest.raises(PathFileError, match=message) as e:
            PathReader(p, allow_damaged=allow_damaged)
        msg = str(e.value)
        assert "\n" not in msg and msg.endswith("delete the run or restore the file"), msg
        assert msg.startswith(f"{p} is not a valid path file: ")
        if rule is not None:
            assert isinstance(e.value, store.PathInvalidError) and e.value.rule == rule
            assert e.value.dataset in msg
    with pytest.raises(PathFileError, match=message):  # nothing resumes from such a file
        store.repair_path_file(p)
    assert sorted(os.listdir(tmp_path)) == ["bad.h5"]


def test_a_bad_value_in_a_ragged_tail_is_not_judged(tmp_path):
    """A killed writer's ragged rows are not shown (the consistent prefix is), so a value there
    breaks no rule: here the last gamma_norm row is negative and metrics/lr is 2 rows short."""
    p = tmp_path / "tail.h5"
    write_file(p)
    _edit(p, _set("layers/conv1/gamma_norm", _at((7, 0), -1.0)))
    _edit(p, lambda f: f["metrics/lr"].resize(6, axis=0))
    with PathReader(p) as r:
        assert r.iterations.tolist() == [0, 10, 20, 30, 40, 50]
    _edit(p, lambda f: f["metrics/lr"].resize(8, axis=0))  # the row is shown again: refused
    with pytest.raises(store.PathInvalidError, match="gamma_norm holds -1 at snapshot 7"):
        PathReader(p)


GROW_UNFILLED = textwrap.dedent("""
    import os, sys, h5py
    f = h5py.File(sys.argv[1], "a", libver="latest")
    f.swmr_mode = True
    def grow(name, obj):
        if isinstance(obj, h5py.Dataset) and name.split("/")[0] in ("snapshots", "metrics",
                                                                     "layers"):
            obj.resize(obj.shape[0] + 2, axis=0)
    f.visititems(grow)
    f.flush()
    os._exit(0)  # as a killed writer: the file stays marked open for write
""")


def test_unfilled_rows_of_a_writer_are_not_called_reversed(tmp_path):
    """A file under (or left by) a writer can hold rows grown but not yet filled: iteration 0
    after 70. They are left out like a ragged tail; the same rows in a closed file are refused."""
    p = tmp_path / "live.h5"
    write_file(p)
    subprocess.run([sys.executable, "-c", GROW_UNFILLED, str(p)], check=True, timeout=60)
    with PathReader(p) as r:
        assert r.swmr and r.n_snapshots == 8 and r.iterations[-1] == 70
    assert store.repair_path_file(p) == 8
    with h5py.File(p, "a") as f:  # a closed file with one more row, iteration 0
        for name, d in _datasets(f):
            if store._is_row_dataset(name) and d.shape[0] < 9:
                d.resize(9, axis=0)
    with pytest.raises(store.PathInvalidError, match="goes from 70 to 0 at snapshot 8"):
        PathReader(p)


def test_a_hanging_dataset_is_reported_not_waited_on(tmp_path):
    """A real file left by a SIGKILLed writer whose metrics/test_acc_sparse object header makes
    HDF5 loop forever: the reader answers within the timeout, and repair keeps 11 snapshots."""
    import shutil

    src = os.path.join(os.path.dirname(__file__), "faults", "data", "killed_hang.h5")
    p = tmp_path / "hang.h5"
    shutil.copy(src, p)
    t = time.monotonic()
    with pytest.raises(store.PathDamagedError, match="11 snapshots readable") as e:
        PathReader(p, timeout=1.0)
    assert e.value.readable == 11 and time.monotonic() - t < 5
    with PathReader(p, allow_damaged=True, timeout=1.0) as r:
        assert r.n_snapshots == 11 and np.isnan(r.metric("test_acc_sparse")).all()
        assert r.damaged.keys() == {"metrics/test_acc_sparse"}
    assert store.repair_path_file(p) == 11
    with PathReader(p) as r:  # a sound file now, opened without SWMR
        assert not r.swmr and r.iterations.tolist() == list(range(11)) and not r.damaged


def test_a_ragged_file_is_repaired_to_its_consistent_length(tmp_path):
    """What resume does with a killed writer's ragged file: every dataset cut to 4 rows."""
    p = tmp_path / "ragged.h5"
    _ragged(p, "layers/fc.0/weight_norm")
    assert store.repair_path_file(p) == 4
    with h5py.File(p, "r") as f:
        rows = {name: d.shape[0] for name, d in _datasets(f) if name.startswith(
            ("snapshots/", "metrics/", "layers/"))}
    assert set(rows.values()) == {4}
    with PathReader(p) as r:
        assert r.iterations.tolist() == [0, 10, 20, 30] and r.weight_iterations.tolist() == [0, 30]
    assert sorted(os.listdir(tmp_path)) == ["ragged.h5"]  # no temp file left


def _datasets(f: h5py.File):
    out = []
    f.visititems(lambda name, obj: out.append((name, obj)) if isinstance(obj, h5py.Dataset)
                 else None)
    return out


def test_a_writer_that_cannot_write_is_broken_and_never_closed(tmp_path):
    """A full disk (issue 12, defect 5): the failed flush is one sentence, later appends are
    refused, close() does not retry the writes (HDF5 could crash doing so) but parks the file
    in store._ABANDONED, and another process still reads every flushed snapshot."""
    import errno

    p = tmp_path / "full.h5"
    w = PathWriter(p, config={}, layers=LAYERS, weights=WEIGHTS, flush_interval=0)
    for i in range(3):
        w.append(synthetic(i))
    w.flush()
    real_write = store._Appender.write

    def no_room(self, n, rows):
        raise OSError(errno.ENOSPC, "No space left on device")

    store._Appender.write = no_room
    try:
        with pytest.raises(PathFileError, match=r"could not be written \(\[Errno 28\] No space "
                                                r"left on device\); its flushed snapshots are "
                                                r"intact\Z"):
            w.append(synthetic(3))
    finally:
        store._Appender.write = real_write
    with pytest.raises(PathFileError, match=r"could not be written \(the disk may be full\)"):
        w.append(synthetic(4))
    abandoned = len(store._ABANDONED)
    w.close()
    w.close()  # twice is fine
    assert len(store._ABANDONED) == abandoned + 1 and store._ABANDONED[-1].id.valid
    code = ("import sys; from pathviz.store import PathReader; "
            "r = PathReader(sys.argv[1]); print(r.iterations.tolist())")
    out = subprocess.run([sys.executable, "-c", code, str(p)], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[0, 10, 20]"
    store._ABANDONED.pop().close()


def test_the_package_keeps_every_name_and_the_same_mutable_globals():
    """pathviz.store is a package now; the names other modules use stay where they were, and
    its mutable globals are the submodules' own objects (train.py reads store._ABANDONED)."""
    from pathviz.store import helper, reader, repair, schema, validate, writer

    assert store._ABANDONED is writer._ABANDONED and store._PROBED is helper._PROBED
    assert store._HELPER is helper._HELPER and store._Appender is writer._Appender
    assert (store.PathReader, store.PathWriter, store.copy_path, store.probe) == \
        (reader.PathReader, writer.PathWriter, repair.copy_path, helper.probe)
    assert store.SCHEMA_VERSION == schema.SCHEMA_VERSION == "1.3"
    for name in ("ATTR_SCHEMA", "STANDARD_METRICS", "REQUIRED_METRICS", "LAYER_FIELDS",
                 "PathFileError", "PathDamagedError", "Snapshot", "entry_indices", "nearest",
                 "repair_path_file", "_serve", "_consistent", "READ_TIMEOUT", "MAX_READ_BYTES",
                 "PathInvalidError", "MAX_ITERATION", "_check_specs", "_json_attr"):
        assert hasattr(store, name), name
    # house style: about 400 lines at most
    for mod in (schema, writer, helper, reader, repair, validate):
        assert len(open(mod.__file__).read().splitlines()) <= 420, mod.__name__


def test_the_fingerprint_hashes_the_path_but_not_its_wall_times(tmp_path):
    """Two files with the same supports, norms and metrics have one fingerprint, whatever their
    wall times; one changed bit in a norm, a metric or a saved-weights iteration changes it."""
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    write_file(a)
    with PathWriter(b, config={"model": "x", "lr": 0.1}, layers=LAYERS, weights=WEIGHTS,
                    environment={"torch": "1"}) as w:
        for i in range(8):
            s = synthetic(i)
            w.append(Snapshot(s.iteration, s.epoch, s.time * 7 + 3, s.metrics, s.layers))
            if i in (0, 3, 7):
                w.append_weights(i * 10, *weights(i))
    with PathReader(a) as ra, PathReader(b) as rb:
        fa = ra.fingerprint()
        assert re.fullmatch("[0-9a-f]{16}", fa), fa
        assert rb.fingerprint() == fa and rb.environment == {"torch": "1"}
        assert ra.environment == {}

    def changed(edit) -> str:
        c = tmp_path / "c.h5"
        write_file(c)
        with h5py.File(c, "r+") as f:
            edit(f)
        with PathReader(c) as r:
            return r.fingerprint()

    def bump_norm(f):
        f["layers/conv1/weight_norm"][5, 1] = np.nextafter(f["layers/conv1/weight_norm"][5, 1],
                                                           np.float32(np.inf))

    def bump_metric(f):
        f["metrics/train_loss"][2] = f["metrics/train_loss"][2] + 1e-12

    def move_weights(f):
        f["weights/iteration"][1] = 40

    for edit in (bump_norm, bump_metric, move_weights):
        assert changed(edit) != fa, edit.__name__


def test_a_reading_process_ends_its_helper_and_warns_about_nothing(tmp_path):
    """The helper process that checks a file (store.helper) is ended and its pipes closed at
    exit: a CLI that reads a run leaves no child and prints no ResourceWarning (the ONNX
    exporter turns those warnings on; before, an export to ONNX printed three)."""
    path = tmp_path / "p.h5"
    write_file(path)
    code = textwrap.dedent(f"""
        import warnings
        warnings.simplefilter("always", ResourceWarning)
        from pathviz.store import PathReader
        with PathReader({str(path)!r}) as r:
            assert r.n_snapshots == 8
    """)
    p = subprocess.run([sys.executable, "-X", "tracemalloc", "-c", code], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0 and p.stderr == "", p.stderr


def test_an_iteration_past_the_end_names_the_runs_last(tmp_path):
    p = tmp_path / "path.h5"
    write_file(p)
    with PathReader(p) as r:
        end = int(r.iterations[-1])
        with pytest.raises(KeyError, match=rf"iteration 99999 is past the end of the run, "
                                           rf"which ends at iteration {end}"):
            r.weights_at(99999)


def _lock_free_elsewhere(path) -> bool:
    """Whether another thread could take ``path``'s reader lock now."""
    got = []

    def try_it() -> None:
        lock = store.reader.file_lock(path)
        got.append(lock.acquire(blocking=False))
        if got[0]:
            lock.release()

    t = threading.Thread(target=try_it)
    t.start()
    t.join()
    return got[0]


def test_a_reader_holds_its_file_alone_from_open_to_close(tmp_path):
    p = tmp_path / "one.h5"
    write_file(p)
    assert _lock_free_elsewhere(p)
    r = PathReader(p)
    with PathReader(tmp_path / ".." / tmp_path.name / "one.h5") as nested:  # same thread, same
        assert nested.n_snapshots == r.n_snapshots  # file by another name: re-entrant
    assert not _lock_free_elsewhere(p)
    r.close()
    assert _lock_free_elsewhere(p)
    junk = tmp_path / "junk.h5"  # a failed open gives the file back too
    junk.write_bytes(os.urandom(5000))
    with pytest.raises(PathFileError):
        PathReader(junk)
    assert _lock_free_elsewhere(junk)


def test_threads_reading_a_live_file_see_only_what_was_written(tmp_path):
    """Several threads of one process (a server's sessions) read a file while its writer
    appends: each sees whole, increasing rows (two handles open at once in one process shared
    HDF5's stale chunk index and read zeros or failed)."""
    p = tmp_path / "live.h5"
    proc = _start_writer(p, n=400, pause=0.002)
    failures: list[str] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                with PathReader(p) as r:
                    n = r.n_snapshots
                    its = r.iterations
                    assert its.tolist() == [10 * i for i in range(n)], its
                    for layer in LAYERS:
                        assert r.layer_path(layer["name"]).shape == (n, layer["groups"])
            except PathFileError as e:
                # a plain open can find the end of the file behind its superblock's while the
                # writer appends (a known false "truncated": see the issue-35 note); what this
                # test is after is rows that are wrong, which no open-time refusal is
                if "truncated file" not in str(e):
                    failures.append(str(e)[:400])
            except AssertionError as e:
                failures.append(str(e)[:400])

    try:
        assert proc.stdout.readline().startswith("flushed 1")
        threads = [threading.Thread(target=read) for _ in range(4)]
        for t in threads:
            t.start()
        for line in proc.stdout:
            if line.startswith("done"):
                break
    finally:
        done.set()
        for t in threads:
            t.join()
        proc.kill()
        proc.wait()
    assert failures == []


def test_a_reader_left_open_by_another_thread_stalls_later_readers_only_briefly(tmp_path,
                                                                              monkeypatch):
    """A reader that a thread never closes holds its file's lock: a reader of the same file on
    another thread waits at most LOCK_WAIT_S, then opens beside it (it hung forever before),
    and closing it from that thread does not raise."""
    from pathviz.store import reader as reader_mod
    from tests.conftest import make_run

    path = make_run(tmp_path, "r", n=5).path
    monkeypatch.setattr(reader_mod, "LOCK_WAIT_S", 0.2)
    left: list[PathReader] = []
    t = threading.Thread(target=lambda: left.append(PathReader(path)))
    t.start()
    t.join()
    got: list[int] = []
    u = threading.Thread(target=lambda: got.append(PathReader(path).n_snapshots), daemon=True)
    u.start()
    u.join(timeout=10)
    assert got == [5]
    left[0].close()  # on this thread, not the opener's
