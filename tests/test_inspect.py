"""pathviz.inspect: the headless summary, its documented JSON keys, and one-sentence errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from pathviz import inspect
from pathviz.analysis import stop_of
from pathviz.store import PathReader
from tests.conftest import make_run


def run_inspect(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pathviz.inspect", *args], capture_output=True,
                          text=True, timeout=120)


def test_json_has_the_documented_keys_and_the_library_stop(tmp_path):
    paths = make_run(tmp_path, "ins")
    proc = run_inspect(str(paths.dir), "--json")
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    for key in ("iterations", "params_total", "flops_total", "stop", "stop_reason", "tickets",
                "layers", "final", "status", "config", "model", "data"):
        assert key in s, key
    with PathReader(paths.path) as r:
        stop = stop_of(r).stop
        assert s["iterations"] == int(r.iterations[-1]) == 295
        last = r.snapshot(r.n_snapshots - 1)
        assert [layer["in_support"] for layer in s["layers"]] == [
            int((last[layer["name"]]["gamma_norm"] > 0).sum()) for layer in r.layers]
        test_w = r.metric("test_acc")
        assert s["final"]["test_acc"] == test_w[np.isfinite(test_w)][-1]
    for key in ("iteration", "params_kept", "flops_kept", "val_acc", "val_se",
                "test_acc_sparse", "rule"):
        assert s["stop"][key] == getattr(stop, key), key
    assert s["params_total"] == 4000 and s["stop_reason"] is None
    text = run_inspect(str(paths.dir)).stdout
    assert f"suggested stop: iteration {stop.iteration}" in text and "± " in text


def test_no_stop_gives_the_reason(tmp_path):
    # weights only at snapshots 0 and 9; the best validation accuracy is at snapshot 8
    paths = make_run(tmp_path, "few", n=10, weights_every=100)
    s = inspect.summary(paths.dir)
    assert s["stop"] is None
    assert s["stop_reason"].startswith("no weights saved between iterations 40 and 40")


def test_points_rule_and_errors(tmp_path):
    paths = make_run(tmp_path, "pts")
    a = inspect.summary(paths.dir)
    b = json.loads(run_inspect(str(paths.dir), "--json", "--rule", "points:10").stdout)
    assert "10 points" in b["stop"]["rule"] and b["stop"]["iteration"] <= a["stop"]["iteration"]
    for args, message in ((["/nonexistent/run"], "has no path.h5"),
                          ([str(paths.dir), "--rule", "2se"], "unknown stop rule"),
                          ([], "the following arguments are required")):
        proc = run_inspect(*args)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], proc.stderr
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "path.h5").write_bytes(b"not hdf5")
    proc = run_inspect(str(tmp_path / "junk"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_a_reversed_path_file_is_one_sentence(tmp_path):
    """Issue 20, item 4: snapshots/iteration stored in reverse order gave a summary of nonsense
    (exit 0); now the store's rule is broken and inspect says so in one sentence, exit 2."""
    import h5py

    paths = make_run(tmp_path, "rev")
    with h5py.File(paths.path, "a") as f:
        f["snapshots/iteration"][...] = f["snapshots/iteration"][...][::-1]
    for extra in ([], ["--json"]):
        proc = run_inspect(str(paths.dir), *extra)
        assert proc.returncode == 2 and proc.stdout == "", proc.stdout
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("pathviz.inspect: error: "), proc.stderr
        assert ("snapshots/iteration goes from 295 to 290 at snapshot 1, but iterations must "
                "strictly increase; delete the run or restore the file") in lines[0]


def test_json_lists_the_baselines_and_a_corrupt_file_in_one_row(tmp_path):
    from pathviz import runs

    paths = make_run(tmp_path, "bl")
    assert inspect.summary(paths.dir)["baselines"] == []
    entry = {"method": "taylor", "iteration": 40, "reference": "bl-sgd", "epochs": 1, "seed": 0,
             "params": 1234, "flops": 5678, "path_params": 1234, "path_flops": 6000,
             "oneshot": {"test_acc": 0.5, "val_acc": 0.4},
             "finetuned": {"test_acc": 0.9, "val_acc": 0.8}}
    runs.write_json_atomic(paths.baselines, {"schema_version": "1.0", "run": "bl",
                                             "results": [entry]})
    s = json.loads(run_inspect(str(paths.dir), "--json").stdout)
    assert s["baselines"] == [{"method": "taylor", "iteration": 40, "reference": "bl-sgd",
                               "epochs": 1, "seed": 0, "params": 1234, "flops": 5678,
                               "path_params": 1234, "path_flops": 6000,
                               "oneshot_test_acc": 0.5, "finetuned_test_acc": 0.9}]
    assert "baselines: 1 measurement (taylor) at 1 iteration;" in run_inspect(
        str(paths.dir)).stdout
    paths.baselines.write_text("[1, 2")
    s = inspect.summary(paths.dir)
    assert len(s["baselines"]) == 1 and "cannot be read" in s["baselines"][0]["error"]
