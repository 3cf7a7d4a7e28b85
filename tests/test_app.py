"""The Streamlit app through AppTest: visible text and decoded figure data."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from pathviz import runs
from tests.conftest import make_run

APP = str(Path(__file__).parents[1] / "app.py")


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    r = tmp_path / "checkpoints"
    r.mkdir()
    monkeypatch.setenv("PATHVIZ_CHECKPOINTS", str(r))
    return r


def app(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def decode(value):
    """Plotly 7 typed arrays {dtype, bdata, shape} -> numpy."""
    if isinstance(value, dict) and "bdata" in value:
        arr = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = value.get("shape")
        if shape:
            arr = arr.reshape([int(s) for s in str(shape).split(",")])
        return arr
    return np.asarray(value, dtype=float)


def figure(at: AppTest, i: int = 0) -> dict:
    return json.loads(at.get("plotly_chart")[i].proto.spec)


def texts(at: AppTest) -> str:
    return "\n".join([m.value for m in at.markdown] + [e.value for e in at.error] +
                     [w.value for w in at.warning] + [i.value for i in at.info] +
                     [c.value for c in at.caption])


def test_empty_checkpoints_offers_the_demo(root):
    at = app()
    assert "no runs" in texts(at)
    assert [b.label for b in at.button] == ["Start the demo run"]


def test_finished_run_slider_changes_the_heatmap(root):
    make_run(root, "done", n=60)
    at = app(run="done", iteration="50")
    assert "**Iteration 50**" in texts(at)
    assert (at.slider[0].label, at.slider[0].value) == ("Iteration", 50)  # thumb = iteration
    z_before = decode(figure(at)["data"][0]["z"])
    assert z_before.shape == (3, 128)
    # at iteration 50 (snapshot 10), 2 of conv1's 6 filters are in: a third of its cells coloured
    assert np.isfinite(z_before[0]).sum() == pytest.approx(128 / 3, abs=1)
    at.slider[0].set_value(200).run()
    assert not at.exception
    assert "**Iteration 200**" in texts(at)
    z_after = decode(figure(at)["data"][0]["z"])
    assert np.isfinite(z_after).all() and not np.array_equal(np.isfinite(z_before),
                                                             np.isfinite(z_after))
    assert at.query_params["iteration"] == "200"
    assert "Suggested stop: iteration" in texts(at)


def test_views_draw_their_figures(root):
    make_run(root, "done", n=60)
    at = app(run="done")
    at.get("button_group")[0].set_value("Layer").run()
    titles = [figure(at, i)["layout"]["title"]["text"] for i in range(2)]
    assert titles[0].startswith("conv1: filters by entry time")
    assert titles[1].startswith("conv1: regularization path")
    at.get("button_group")[0].set_value("Metrics & stopping").run()
    assert len(at.get("plotly_chart")) == 2
    at.get("button_group")[0].set_value("Filters").run()
    assert "first-layer filters at iteration" in figure(at)["layout"]["title"]["text"]
    at.get("button_group")[0].set_value("About the method").run()
    assert any("enters the support" in m.value for m in at.markdown)
    assert not at.exception


def test_jump_to_the_suggested_stop(root):
    make_run(root, "done", n=60)
    at = app(run="done")
    at.button(key="jump").click().run()
    # the sparsest snapshot within a point of the best that has weights (every 50 iterations)
    assert "**Iteration 150**" in texts(at)


def test_running_run_shows_progress_and_follows(root):
    p = make_run(root, "live", n=30, state="running")
    runs.write_status(p, state="running", pid=os.getpid(),
                      pid_start=runs.process_start_time(os.getpid()), iteration=145,
                      total_iterations=300, epoch=2.9, eta=75.0)
    at = app(run="live")
    assert "iteration 145 / 300" in at.get("progress")[0].proto.text
    assert "about 1 min 15 s left" in at.get("progress")[0].proto.text
    assert at.slider[0].value == 145  # following the newest snapshot
    assert any(b.label == "Stop" for b in at.button)
    assert any(t.label == "Follow live" for t in at.toggle)


def test_corrupt_run_beside_a_good_one(root):
    make_run(root, "good", n=20)
    bad = make_run(root, "bad", n=20)
    bad.path.write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(4000))
    at = app(run="bad")
    assert "cannot be shown" in texts(at) and "not a readable path file" in texts(at)
    assert set(at.selectbox[0].options) >= {"good · finished · lenet5/digits · 20 snapshots"} or \
        len(at.selectbox[0].options) == 2
    at2 = app(run="good")
    assert "**Iteration 95**" in texts(at2)


def test_wrong_schema_version_and_deleted_file(root):
    p = make_run(root, "future", n=5)
    with h5py.File(p.path, "a") as f:
        f.attrs["schema_version"] = "9.0"
    at = app(run="future")
    assert "schema version 9.0, this pathviz reads 1.0" in texts(at)
    p.path.unlink()
    at = app(run="future")
    assert "cannot be shown" in texts(at) and not at.exception


@pytest.mark.parametrize("name", ["../../etc", "a/b", ".secret"])
def test_bad_run_name_in_the_url(root, name):
    make_run(root, "ok", n=5)
    at = app(run=name)
    assert "cannot exist" in texts(at)
    assert "**Iteration" in texts(at)  # the first run is shown instead


def test_unknown_run_in_the_url(root):
    make_run(root, "ok", n=5)
    at = app(run="nope")
    assert "No run called 'nope'" in texts(at)


def test_new_run_form_validates_beside_the_field(root):
    make_run(root, "taken", n=5)
    at = app()
    at.toggle(key="show_new_run").set_value(True).run()
    assert not at.exception
    at.text_input[0].set_value("taken")
    dataset = next(s for s in at.selectbox if s.label == "Dataset")
    dataset.set_value("mnist")  # needs a data root, none given
    next(n for n in at.number_input if n.label == "κ (kappa)").set_value(0.0)
    next(b for b in at.button if b.label == "Validate and start").click().run()
    assert not at.exception
    errs = [e.value for e in at.error]
    assert any("exists already" in e for e in errs)
    assert any("needs a data root" in e for e in errs)
    assert any("--kappa 0.0 is out of range" in e for e in errs)
    assert any("Fix the fields marked above" in e for e in errs)
    assert sorted(p.name for p in root.iterdir()) == ["taken"]  # nothing was started


def test_demo_button_starts_a_background_worker(root):
    at = app()
    at.button[0].click().run()
    paths = runs.run_paths("demo", root)
    try:
        assert paths.status.exists()
        assert at.query_params["run"] == "demo"
        st = runs.read_status(paths)
        assert runs.is_alive(st["pid"], st["pid_start"])
        at2 = app(run="demo")
        assert "demo" in at2.get("header")[0].value if at2.get("header") else True
        with pytest.raises(runs.RunError):  # a second click cannot start it twice
            runs.start_worker(paths, ["--preset", "demo"])
    finally:
        runs.stop_worker(paths)


def test_export_panel(root):
    make_run(root, "exp", n=21, weights_every=10)
    at = app(run="exp", iteration="55")  # iteration 55 has no weights (50 and 100 have)
    at.get("button_group")[0].set_value("Export").run()
    assert "no saved weights" in texts(at) and "50, 100" in texts(at)
    at.button(key="goto50").click().run()
    assert "**Iteration 50**" in texts(at)


def test_export_of_a_mismatched_run_is_a_message(root):
    make_run(root, "odd", n=21, weights_every=10)  # conv shapes that do not fit lenet5
    at = app(run="odd", iteration="50")
    at.get("button_group")[0].set_value("Export").run()
    at.button(key="do_export").click().run()
    assert not at.exception
    assert "do not fit a lenet5 for digits" in texts(at)


def test_play_advances_the_slider(root):
    make_run(root, "done", n=60)
    at = app(run="done", iteration="0")
    assert at.slider[0].value == 0
    next(b for b in at.button if b.label == "▶").click().run()
    first = at.slider[0].value
    at.run()  # one tick of the play fragment
    assert 0 < first < at.slider[0].value
    assert any(b.label == "⏸" for b in at.button)


def test_moving_the_slider_stops_following_a_live_run(root):
    p = make_run(root, "live", n=30, state="running")
    runs.write_status(p, state="running", pid=os.getpid(),
                      pid_start=runs.process_start_time(os.getpid()), iteration=145,
                      total_iterations=300)
    at = app(run="live")
    at.slider[0].set_value(50).run()
    assert "**Iteration 50**" in texts(at)
    assert next(t for t in at.toggle if t.label == "Follow live").value is False
    at.run()  # a refresh tick keeps the chosen iteration
    assert "**Iteration 50**" in texts(at)


def test_uneven_snapshots_fall_back_to_an_index_slider(root):
    make_run(root, "uneven", n=5, uneven_end=True)  # iterations 0, 5, 10, 15, 18
    at = app(run="uneven", iteration="10")
    assert (at.slider[0].label, at.slider[0].value) == ("Snapshot", 2)
    at.slider[0].set_value(4).run()
    assert "**Iteration 18**" in texts(at)
