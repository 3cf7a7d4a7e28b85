"""A run whose last saved weights hold NaN (issue 36, defect 2). Export used to exit 0 with
"max |diff| = nan" and "test accuracy: 10.00%" and a report holding a bare NaN; now it refuses
in one sentence that names the iteration and the tensor, and writes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from pathviz import export, runs
from tests.test_retrain import write_run


def _refuse(name: str):
    raise ValueError(f"non-JSON literal {name}")


@pytest.fixture(scope="module")
def nan_run(tmp_path_factory):
    """write_run's LeNet-5 run (weights at 0, 10, 20) with one NaN in conv1.weight at 20."""
    run_dir, _ = write_run(tmp_path_factory.mktemp("nan"))
    with h5py.File(runs.paths_for_dir(run_dir).path, "r+") as f:
        row = f["weights/conv1.weight"][2]
        row[0, 0, 0, 0] = np.nan
        f["weights/conv1.weight"][2] = row
    return run_dir


def test_cli_export_of_nan_weights_is_one_sentence_and_writes_nothing(nan_run, tmp_path):
    out = tmp_path / "x.pt2"
    before = sorted(os.listdir(nan_run))
    p = subprocess.run([sys.executable, "-m", "pathviz.export", str(nan_run), "--iteration",
                        "20", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stdout + p.stderr
    assert p.stdout == "" and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines() == [
        "pathviz.export: error: the weights saved at iteration 20 are not finite "
        "(conv1.weight holds NaN in 1 of 150 values); export an earlier --iteration, whose "
        "weights are finite"]
    assert os.listdir(tmp_path) == [] and sorted(os.listdir(nan_run)) == before


def test_an_earlier_finite_iteration_still_exports_with_a_strict_json_report(nan_run, tmp_path):
    out = tmp_path / "y.pth"
    rep = export.export(nan_run, 10, "compact", "state_dict", out)
    text = (tmp_path / "y.pth.json").read_text()
    assert json.loads(text, parse_constant=_refuse)["iteration"] == 10
    assert np.isfinite(rep["max_abs_diff_compact_vs_masked"])


def test_infinite_gamma_is_refused_too(nan_run, tmp_path):
    with pytest.raises(export.ExportError, match=r"^the weights saved at iteration 0 are not "
                       r"finite \(Gamma of fc1.weight holds infinity in 1 of "):
        export.check_finite({"fc1.weight": np.zeros(3, np.float32),
                             "n": np.array([3], np.int64)},
                            {"fc1.weight": np.array([0.0, np.inf], np.float32)}, 0)


def test_a_report_value_that_is_not_finite_is_null_with_a_reason(nan_run, tmp_path,
                                                                  monkeypatch):
    """Finite weights whose outputs still overflow: the report holds null, and says why."""
    real = export.evaluate
    monkeypatch.setattr(export, "evaluate",
                        lambda model, data: (real(model, data)[0], float("nan")))
    rep = export.export(nan_run, 10, "masked", "state_dict", tmp_path / "z.pth")
    saved = json.loads((tmp_path / "z.pth.json").read_text(), parse_constant=_refuse)
    assert saved["test_acc"] is None and saved["test_acc_masked"] is None
    assert "test_acc is not a finite number (the model's outputs overflow), so the report " \
           "holds null for it" in saved["warnings"]
    assert rep["warnings"] == saved["warnings"]
