"""Every JSON text pathviz writes is JSON (issue 36, defect 2): a non-finite number is null,
never a bare ``NaN``/``Infinity`` literal, which jq, ``JSON.parse`` and a strict Python parser
refuse. Each writer is fed a NaN and an infinity and its output parsed with a strict parser."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import h5py
import numpy as np
import pytest

from pathviz import inspect, jsonsafe, runs, tickets
from pathviz.store import PathWriter
from pathviz.store.schema import (
    ATTR_CONFIG,
    ATTR_DATA,
    ATTR_ENVIRONMENT,
    ATTR_LAYERS,
    ATTR_METRICS,
    ATTR_MODEL,
    ATTR_WEIGHTS,
)
from pathviz.tickets.baselines_cli import _save as save_baselines
from pathviz.tickets.schema import ATTR_SUPPORT
from tests.conftest import make_run

NAN, INF = float("nan"), float("inf")


def _refuse(name: str):
    raise ValueError(f"non-JSON literal {name}")


def strict(text: str | bytes):
    """``json.loads`` that refuses NaN, Infinity and -Infinity (Python accepts them)."""
    return json.loads(text, parse_constant=_refuse)


def test_the_strict_parser_refuses_what_python_writes_by_default():
    with pytest.raises(ValueError, match="non-JSON literal NaN"):
        strict(json.dumps({"x": NAN}))
    with pytest.raises(ValueError, match="non-JSON literal -Infinity"):
        strict(json.dumps([-INF]))


def test_finite_makes_nulls_and_says_where():
    data = {"a": NAN, "b": [1.5, np.float32(INF), np.int64(3)], "c": {"d": np.float64(-INF)},
            "e": (True, np.bool_(False)), "f": np.array([1.0, NAN])}
    assert strict(jsonsafe.dumps(data)) == {"a": None, "b": [1.5, None, 3], "c": {"d": None},
                                            "e": [True, False], "f": [1.0, None]}
    assert jsonsafe.non_finite_keys(data) == ["a", "b[1]", "c.d"]
    # finite data is written byte for byte as json.dumps writes it
    plain = {"lr": 0.1, "xs": [1, 2.5e-7], "s": "x", "n": None, "t": (1, 2)}
    assert jsonsafe.dumps(plain, sort_keys=True) == json.dumps(plain, sort_keys=True)


def test_status_with_a_nan_is_json(tmp_path):
    paths = runs.RunPaths(tmp_path / "r")
    paths.dir.mkdir()
    runs.write_status(paths, state="running", eta=INF, elapsed=NAN, iteration=3)
    st = strict(paths.status.read_bytes())
    assert (st["eta"], st["elapsed"], st["iteration"]) == (None, None, 3)


def test_status_written_in_place_on_a_full_disk_is_json(tmp_path, monkeypatch):
    """The last resort of write_status (in place, within the old file's size) is strict too."""
    paths = runs.RunPaths(tmp_path / "r")
    paths.dir.mkdir()
    runs.write_status(paths, state="running", reason="", config={"pad": "x" * 500})

    def full(path, data, sync=False):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(runs.atomic, "write_bytes_atomic", full)
    runs.write_status(paths, state="failed", eta=NAN)
    st = strict(paths.status.read_bytes())
    assert (st["state"], st["eta"]) == ("failed", None)


def test_manifest_and_config_are_json(tmp_path):
    paths = runs.RunPaths(tmp_path / "r")
    runs.claim_run_dir(paths)
    runs.record_files(paths, "exports/x.pt2")
    assert "exports/x.pt2" in strict(paths.manifest.read_bytes())["files"]
    runs.write_json_atomic(paths.config, {"lr": NAN, "momentum": INF})
    assert strict(paths.config.read_bytes()) == {"lr": None, "momentum": None}


def test_baselines_json_is_json(tmp_path):
    paths = runs.RunPaths(tmp_path / "r")
    runs.claim_run_dir(paths)
    save_baselines(paths, [{"method": "magnitude", "iteration": 10,
                                "oneshot": {"test_acc": NAN, "test_loss": INF}}])
    got = strict(paths.baselines.read_bytes())["results"][0]["oneshot"]
    assert got == {"test_acc": None, "test_loss": None}


def test_ticket_files_are_json(tmp_path):
    """ticket.json and launch.json go through write_json_atomic; a seed file's support (a JSON
    attribute of its HDF5 file) through jsonsafe too."""
    tdir = tmp_path / "r" / "tickets" / "it10-winning"
    tdir.mkdir(parents=True)
    runs.write_json_atomic(tdir / tickets.TICKET_FILE, {"params_kept": NAN})
    assert strict((tdir / tickets.TICKET_FILE).read_bytes()) == {"params_kept": None}
    seed = tickets.seed_path(tdir, 0)
    row = {"epoch": 0, "iteration": 0, "time": 0.0, "train_loss": NAN}
    tickets.write_seed(seed, ticket="t", seed=0, rows=[row], complete=False,
                       support={"conv1": [0, 1]})
    with h5py.File(seed, "r") as f:
        assert strict(f.attrs[ATTR_SUPPORT]) == {"conv1": [0, 1]}


def test_path_file_json_attributes_are_json(tmp_path):
    layers = [{"name": "l0", "param": "l0.weight", "kind": "linear", "shape": [2, 2],
               "penalty": "group", "groups": 2}]
    weights = [{"name": "l0.weight", "shape": [2, 2], "dtype": "float32"}]
    p = tmp_path / "path.h5"
    with PathWriter(p, config={"lr": NAN, "nu": INF}, layers=layers, weights=weights,
                    model={"params_total": 4, "flops_total": NAN},
                    data={"n_train": 10, "val_fraction": NAN},
                    environment={"x": -INF}):
        pass
    with h5py.File(p, "r") as f:
        for attr in (ATTR_CONFIG, ATTR_LAYERS, ATTR_METRICS, ATTR_WEIGHTS, ATTR_MODEL,
                     ATTR_DATA, ATTR_ENVIRONMENT):
            strict(f.attrs[attr])
        assert strict(f.attrs[ATTR_CONFIG]) == {"lr": None, "nu": None}


def test_inspect_json_is_json_with_nan_tickets_and_an_old_baselines_file(tmp_path):
    """inspect --json passed Python floats straight to json.dumps: a NaN from an older
    baselines.json (Python's json reads NaN) or a diverged ticket came out as a bare NaN."""
    paths = make_run(tmp_path, "ins")
    runs.claim_run_dir(paths)
    paths.baselines.write_text(
        '{"schema_version": "1.0", "run": "ins", "results": [{"method": "magnitude", '
        '"iteration": 10, "params": 5, "oneshot": {"test_acc": NaN}, '
        '"finetuned": {"test_acc": Infinity}}]}')
    runs.write_status(paths, state="finished", reason="", iteration=295, eta=NAN)
    proc = subprocess.run([sys.executable, "-m", "pathviz.inspect", str(paths.dir), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    s = strict(proc.stdout)
    b = s["baselines"][0]
    assert (b["oneshot_test_acc"], b["finetuned_test_acc"]) == (None, None)
    assert s == strict(jsonsafe.dumps(inspect.summary(paths.dir), default=inspect._num))


@pytest.mark.parametrize("value", [NAN, INF, -INF])
def test_dumps_never_writes_a_literal(value):
    text = jsonsafe.dumps({"v": value, "w": [value]})
    assert "NaN" not in text and "Infinity" not in text
    assert strict(text) == {"v": None, "w": [None]}
    assert not math.isfinite(value)


def test_the_docs_page_runs_as_printed(capsys):
    """docs/json.md: its Python block runs, and prints what its comments say."""
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "json.md").read_text()
    blocks = page.split("```python\n")[1:]
    assert len(blocks) == 1
    code = blocks[0].split("```")[0]
    exec(compile(code, "docs/json.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    promised = [line.split("  # ", 1)[1] for line in code.splitlines()
                if line.startswith("print(") and "  # " in line]
    assert printed == promised and len(promised) == 2
