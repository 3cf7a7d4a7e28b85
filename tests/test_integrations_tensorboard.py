"""pathviz.integrations.tensorboard: the worker's --tensorboard, read back with TensorBoard's
own reader and compared with the path file the same run wrote."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)

from pathviz.analysis import stop_of  # noqa: E402
from pathviz.store import PathReader  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--preset", "demo", "--epochs", "3", "--weights-every", "10", "--no-progress"]


def train(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pathviz.train", *args], capture_output=True,
                          text=True, env=env, timeout=600)


def test_the_worker_writes_the_path_scalars_to_tensorboard(tmp_path):
    run, tb = tmp_path / "run", tmp_path / "tb"
    p = train(*SMALL, "--out", str(run), "--tensorboard", str(tb))
    assert p.returncode == 0, p.stderr[-2000:]
    events = EventAccumulator(str(tb)).Reload()
    tags = set(events.Tags()["scalars"])
    with PathReader(run / "path.h5") as r:
        layers = [d["name"] for d in r.layers]
        assert {f"support/{n}" for n in layers} <= tags
        assert {"support/fraction_groups", "params/fraction_selected", "accuracy/train",
                "accuracy/val", "accuracy/val_sparse", "loss/train", "lr"} <= tags
        # support size per layer: the same numbers as the path file, snapshot by snapshot
        for n in layers:
            got = {e.step: e.value for e in events.Scalars(f"support/{n}")}
            want = (r.layer_path(n) > 0).sum(axis=1)
            assert [got[int(i)] for i in r.iterations] == want.tolist()
        # W* accuracy where measured (NaN elsewhere is left out of TensorBoard)
        val = r.metric("val_acc_sparse")
        measured = {int(i): v for i, v in zip(r.iterations, val) if np.isfinite(v)}
        got = {e.step: e.value for e in events.Scalars("accuracy/val_sparse")}
        assert got.keys() == measured.keys()
        assert np.allclose([got[i] for i in measured], list(measured.values()))
        kept = r.metric("params_kept")
        total = r.model_info["params_total"]
        frac = {e.step: e.value for e in events.Scalars("params/fraction_selected")}
        i = int(np.flatnonzero(np.isfinite(kept))[-1])
        assert frac[int(r.iterations[i])] == pytest.approx(kept[i] / total)
        decision = stop_of(r)
    # three epochs are too few for a stop (tests/test_docs_integrations.py checks a run with
    # one against its TensorBoard scalar): none is written rather than a made-up one
    assert decision.stop is None and "stop/iteration" not in tags


def test_the_stop_is_written_at_its_iteration(tmp_path):
    from pathviz.analysis import suggest_stop
    from pathviz.integrations.tensorboard import PathScalars

    its = np.array([0, 10, 20, 30])
    decision = suggest_stop(its, np.array([0.1, 0.9, 0.92, 0.93]), np.array([10, 50, 80, 100]),
                            weight_iterations=its, n_val=100)
    assert decision.stop is not None
    tb = PathScalars(tmp_path / "tb")
    tb.stop(decision)
    tb.close()
    events = EventAccumulator(str(tmp_path / "tb")).Reload()
    stop = decision.stop
    assert [(e.step, e.value) for e in events.Scalars("stop/iteration")] == [
        (stop.iteration, stop.iteration)]
    assert events.Scalars("stop/val_acc_sparse")[0].value == pytest.approx(stop.val_acc)


def test_a_tensorboard_folder_that_is_a_file_is_refused_in_one_sentence(tmp_path):
    (tmp_path / "tb").write_text("not a folder")
    p = train(*SMALL, "--out", str(tmp_path / "run"), "--tensorboard", str(tmp_path / "tb"))
    assert p.returncode == 2
    assert "--tensorboard" in p.stderr and "is a file; give a folder" in p.stderr
    assert "Traceback" not in p.stderr
    assert not (tmp_path / "run" / "path.h5").exists()
