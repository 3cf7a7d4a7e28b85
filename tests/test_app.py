"""The Streamlit app through AppTest: visible text, widget state, URL and decoded figure data."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from pathviz import runs
from pathviz.store import REQUIRED_METRICS, PathWriter, Snapshot
from tests.conftest import VIT_RUN_ITERATION, line_of, make_run, make_vit_run, plain
from tests.e2e.conftest import make_full_run

APP = str(Path(__file__).parents[1] / "app.py")


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    r = tmp_path / "checkpoints"
    r.mkdir()
    monkeypatch.setenv("PATHVIZ_CHECKPOINTS", str(r))
    monkeypatch.setenv("PATHVIZ_REFRESH", "0")
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


def _decoded(v):
    """A chart spec as the page receives it, its {b64, dtype} arrays back to numpy."""
    if isinstance(v, dict) and "b64" in v:
        return np.frombuffer(base64.b64decode(v["b64"]), dtype="<" + v["dtype"])
    if isinstance(v, dict):
        return {k: _decoded(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_decoded(x) for x in v]
    return v


def chart(at: AppTest, key: str) -> dict:
    """The spec of the page-drawn figure in the container ``key`` (layer_fig, metrics_plot,
    tradeoff_plot), with its id."""
    for e in at.get("bidi_component"):
        if e.proto.component_name == "pathviz_chart":
            data = json.loads(e.proto.json)
            if data["key"] == key:
                return {**_decoded(data["chart"]), "id": data["id"]}
    raise AssertionError(f"no chart {key} on the page")


def texts(at: AppTest) -> str:
    """Every message on the page as the reader sees it (markdown escapes removed)."""
    parts = ([m.value for m in at.markdown] + [e.value for e in at.error] +
             [w.value for w in at.warning] + [i.value for i in at.info] +
             [c.value for c in at.caption])
    return re.sub(r"\\(.)", r"\1", "\n".join(parts))


def view(at: AppTest, title: str) -> AppTest:
    at.get("button_group")[0].set_value(title).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_empty_checkpoints_offers_the_demo(root):
    at = app()
    assert "no runs" in texts(at)
    assert [b.label for b in at.button] == ["Start the demo run"]


def test_the_demo_on_an_arm_machine_runs_native_and_says_so(root, monkeypatch):
    """An ARM machine cannot take the default pinned level (avx2): the demo button starts it
    with --cpu-isa native instead of failing, and the page says why its figures differ."""
    from pathviz import numerics
    from pathviz.ui import header

    launched = []
    monkeypatch.setattr(header, "launch", lambda paths, argv, **kw: launched.append(argv) or
                        "not started in this test")
    at = app()
    assert "cannot run the pinned" not in texts(at)
    at.button[0].click().run()
    assert launched == [["--preset", "demo"]]
    monkeypatch.setattr(numerics.platform, "machine", lambda: "arm64")
    at = app()
    assert "cannot run the pinned AVX2 kernels" in texts(at)
    at.button[0].click().run()
    assert launched[-1] == ["--preset", "demo", "--cpu-isa", "native"]


def test_finished_run_slider_changes_the_heatmap(root):
    make_run(root, "done", n=60)
    at = app(run="done", iteration="50")
    assert line_of(at)["it"] == 50
    assert (at.slider[0].label, at.slider[0].value) == ("Iteration", 50)  # thumb = iteration
    from tests.test_ui_player import player_json, rows_of

    first = player_json(at)  # the browser player draws the heatmap from what it was sent
    rows = rows_of(first)
    z = rows[first["index"]]  # a level per filter, conv1's 6 first
    assert z.shape == (first["levels"]["sumG"],) and z.dtype == np.uint8
    # at iteration 50 (snapshot 10), conv1's filters 0 and 1 (of 6) are in: coloured
    np.testing.assert_array_equal(z[:6] > 0, np.arange(6) < 2)
    at.slider[0].set_value(200).run()
    assert line_of(at)["it"] == 200
    assert (rows[player_json(at)["index"]] > 0).all()
    assert at.query_params["iteration"] == "200"


def test_finished_run_opens_at_its_last_iteration(root):
    make_run(root, "done", n=60)
    at = app(run="done")
    assert line_of(at)["it"] == 295
    assert "iteration" not in at.query_params or at.query_params["iteration"] == "295"


def test_views_draw_their_figures_and_the_url_names_the_view(root):
    make_full_run(root, "full", n=60)
    at = app(run="full")
    view(at, "Layer")
    spec = chart(at, "layer_fig")
    assert spec["title"].startswith("conv1: filters by entry time")
    assert at.query_params["view"] == "layer" and at.query_params["layer"] == "conv1"
    assert not at.get("plotly_chart")  # drawn by the page: no plotly to load
    # the figure does not depend on the iteration: the page moves a marker over it
    at.button(key="step_back").click().run()
    assert chart(at, "layer_fig")["id"] == spec["id"]
    view(at, "Metrics & stopping")
    names = [e["name"] for e in chart(at, "metrics_plot")["legend"]]
    assert "validation, compact subnetwork (W*)" in names
    assert "suggested stop (iteration 200)" in names
    trade = chart(at, "tradeoff_plot")
    assert trade["title"] == "validation accuracy, compact subnetwork against parameters kept"
    assert not at.get("plotly_chart")
    assert at.query_params["view"] == "metrics"
    view(at, "Filters")
    # the title names the layer it shows (conv1 here; conv2 in a run with a dense input layer)
    assert figure(at)["layout"]["title"]["text"].startswith("conv1 filters at iteration")
    view(at, "About the method")
    assert any("enters the support" in m.value for m in at.markdown)


def test_url_restores_view_layer_and_notes_bad_values(root):
    make_full_run(root, "full", n=60)
    at = app(run="full", view="layer", layer="conv2", iteration="100")
    assert at.selectbox(key="layer").value == "conv2" and line_of(at)["it"] == 100
    at = app(run="full", view="nope", layer="zz", iteration="abc")
    assert "not a whole number" in texts(at) and "does not exist" in texts(at)
    assert line_of(at)["it"] == 295
    at = app(run="full", iteration="-1")
    assert "before this run's first snapshot" in texts(at) and line_of(at)["it"] == 0


def test_jump_to_the_suggested_stop(root):
    make_full_run(root, "full", n=60)
    at = app(run="full", iteration="0")
    assert "Suggested stop: iteration 200" in texts(at)
    at.button(key="jump").click().run()
    assert line_of(at)["it"] == 200


def test_stop_band_on_the_metrics_plot(root):
    """The 1-SE set is drawn as its evaluated iterations on a panel zoomed to the band; the
    stop is a dashed line on every panel."""
    make_full_run(root, "full", n=60)
    at = view(app(run="full"), "Metrics & stopping")
    spec = chart(at, "metrics_plot")
    banded = [p for p in spec["panels"] if "band" in p]
    assert len(banded) == 1 and banded[0] is not spec["panels"][0]  # its own panel, not W's
    lo, hi = banded[0]["band"]
    assert lo < hi == pytest.approx(0.95)
    inside = next(s for s in banded[0]["series"] if s["name"] == "in the 1-SE set")
    assert (hi - lo) / (banded[0]["y"]["hi"] - banded[0]["y"]["lo"]) >= 0.25  # legible
    assert len(inside["y"]) and (inside["y"] >= lo - 1e-6).all()
    # the stop: one dashed line the page draws on every panel (accuracy, zoom, loss,
    # sparsity, weight saves)
    assert spec["stop"]["x"] == 200 and len(spec["panels"]) == 5


def test_required_metrics_only_and_no_sidecars(root):
    """A file with only the required datasets opens; identity comes from path.h5."""
    paths = runs.run_paths("bare", root)
    paths.dir.mkdir()
    layers = [{"name": "conv1", "param": "conv1.weight", "kind": "conv", "shape": [4, 1, 3, 3],
               "penalty": "group", "groups": 4}]
    with PathWriter(paths.path, config={}, layers=layers, metrics=REQUIRED_METRICS,
                    model={"name": "lenet5"}, data={"dataset": "digits"}) as w:
        for i in range(5):
            gn = (np.arange(4) < i).astype(np.float32)
            w.append(Snapshot(i, i / 5, i, {"train_loss": 1.0, "train_acc": 0.5, "lr": 0.1},
                              {"conv1": (gn, gn + 1, (gn > 0).astype(np.int32))}))
    at = app(run="bare")
    assert "lenet5 on digits" in texts(at)
    assert "No stopping point to suggest yet" in texts(at)
    at = view(at, "Metrics & stopping")
    assert "accuracy-against-size plot needs" in texts(at)
    assert "Not in this run's file" in texts(at)


def test_running_run_shows_progress_and_follows(root):
    p = make_run(root, "live", n=30, state="running")
    runs.write_status(p, state="running", pid=os.getpid(),
                      pid_start=runs.process_start_time(os.getpid()), iteration=145,
                      total_iterations=300, epoch=2.9, eta=75.0)
    at = app(run="live")
    text = at.get("progress")[0].proto.text
    assert "iteration 145 / 300" in text and "estimating time left" in text  # 1 sample
    assert at.slider[0].value == 145  # following the newest snapshot
    assert any(b.label == "Stop" for b in at.button)
    assert at.toggle(key="follow").value is True


def test_an_explicit_iteration_wins_over_follow_live(root):
    p = make_run(root, "live", n=30, state="running")
    runs.write_status(p, state="running", pid=os.getpid(),
                      pid_start=runs.process_start_time(os.getpid()), iteration=145,
                      total_iterations=300)
    at = app(run="live", iteration="50")
    assert line_of(at)["it"] == 50
    assert at.toggle(key="follow").value is False
    at.run()  # a refresh tick keeps it
    assert line_of(at)["it"] == 50
    at.toggle(key="follow").set_value(True).run()
    assert line_of(at)["it"] == 145


def test_corrupt_run_beside_a_good_one(root):
    make_run(root, "good", n=20)
    bad = make_run(root, "bad", n=20)
    bad.path.write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(4000))
    at = app(run="bad")
    assert "cannot be shown" in texts(at) and "not a readable path file" in texts(at)
    at2 = app(run="good")
    assert line_of(at2)["it"] == 95


def test_wrong_schema_version_and_deleted_file(root):
    p = make_run(root, "future", n=5)
    with h5py.File(p.path, "a") as f:
        f.attrs["schema_version"] = "9.0"
    at = app(run="future")
    assert "schema version 9.0" in texts(at)
    p.path.unlink()
    at = app(run="future")
    assert "cannot be shown" in texts(at) and not at.exception


@pytest.mark.parametrize("name", ["../../etc", "a/b", ".secret", "**x**", "<b>x</b>"])
def test_bad_run_name_in_the_url(root, name):
    make_run(root, "ok", n=5)
    at = app(run=name)
    assert "cannot exist" in texts(at) and "choose a run" in texts(at)
    # no other run is shown under the link's name: the picker waits for a choice
    assert line_of(at) is None and at.selectbox(key=f"picker:{name}:0").value is None
    note = next(w.value for w in at.warning if "cannot exist" in w.value)
    assert "**x**" not in note and "<b>" not in note  # shown as text, not markup


def test_unknown_run_in_the_url(root):
    make_run(root, "ok", n=5)
    make_run(root, "newer", n=5)
    at = app(run="nope")
    assert "There is no run called “nope”" in texts(at) and "choose a run" in texts(at)
    picker = at.selectbox(key="picker:nope:0")
    assert picker.value is None and picker.options == ["newer", "ok"]
    assert line_of(at) is None and at.query_params["run"] == "nope"
    picker.set_value("ok").run()  # a choice opens that run, and the URL follows it
    assert line_of(at) is not None and at.query_params["run"] == "ok"
    assert "There is no run called" not in texts(at)


def test_new_run_form_gives_plain_errors_beside_the_field(root):
    make_run(root, "taken", n=5)
    at = app()
    at.toggle(key="show_new_run").set_value(True).run()
    at.text_input[0].set_value("taken")
    next(n for n in at.number_input if n.label == "κ (kappa)").set_value(0.0)
    next(n for n in at.number_input if n.label == "Learning rate α (lr)").set_value(0.0)
    next(t for t in at.text_input if t.label.startswith("Data root")).set_value("--out=x")
    next(b for b in at.button if b.label == "Validate and start").click().run()
    assert not at.exception
    errs = [e.value for e in at.error]
    assert any("exists already" in e for e in errs)
    assert sum("Must be greater than 0" in e for e in errs) == 2  # lr and kappa
    assert any("not a command\\-line option" in e for e in errs)
    assert not any("--" in e for e in errs)  # no CLI syntax
    assert sorted(p.name for p in root.iterdir()) == ["taken"]  # nothing was started


def test_new_run_form_needs_a_data_root_for_mnist(root, tmp_path):
    at = app()
    at.toggle(key="show_new_run").set_value(True).run()
    next(s for s in at.selectbox if s.label == "Dataset").set_value("mnist")
    next(b for b in at.button if b.label == "Validate and start").click().run()
    assert any("needs a data root" in e.value for e in at.error)


def test_new_run_form_starts_several_processes(root, monkeypatch):
    """The form's Processes field reaches the worker launch (torchrun with that many ranks)."""
    started = []
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setattr(runs, "start_worker",
                        lambda paths, argv, resume=False, processes=1:
                        started.append((paths.name, processes)) or os.getpid())
    at = app()
    at.toggle(key="show_new_run").set_value(True).run()
    at.text_input[0].set_value("ddp")
    at.number_input(key="new_run_processes").set_value(3)
    next(b for b in at.button if b.label == "Validate and start").click().run()
    assert not at.exception and started == [("ddp", 3)]
    assert at.number_input(key="new_run_processes").max == 4


def test_demo_button_starts_a_background_worker(root):
    at = app()
    at.button[0].click().run()
    paths = runs.run_paths("demo", root)
    try:
        assert paths.status.exists()
        assert at.query_params["run"] == "demo"
        st = runs.read_status(paths)
        assert runs.is_alive(st["pid"], st["pid_start"])
        with pytest.raises(runs.RunError):  # a second click cannot start it twice
            runs.start_worker(paths, ["--preset", "demo"])
    finally:
        runs.stop_worker(paths)


def test_export_panel_offers_the_nearest_saved_weights(root):
    make_run(root, "exp", n=21, weights_every=10)
    at = app(run="exp", iteration="55")  # iteration 55 has no weights (50 and 100 have)
    view(at, "Export")
    assert "no saved weights" in texts(at) and "50, 100" in texts(at)
    at.button(key="goto50").click().run()
    assert line_of(at)["it"] == 50
    assert at.checkbox(key="export_replace").value is False  # never overwrite unasked


def test_export_of_a_mismatched_run_is_a_message(root):
    make_run(root, "odd", n=21, weights_every=10)  # conv shapes that do not fit lenet5
    at = view(app(run="odd", iteration="50"), "Export")
    at.radio(key="export_format").set_value("torchscript").run()
    at.button(key="do_export").click().run()
    assert not at.exception
    assert "do not fit a lenet5" in texts(at)


def test_play_advances_the_slider(root):
    make_run(root, "done", n=60)
    at = app(run="done", iteration="0")
    assert at.slider[0].value == 0
    at.button(key="play").click().run()
    first = at.slider[0].value
    at.run()  # one tick of the play fragment
    assert 0 <= first < at.slider[0].value
    assert at.button(key="play").label == "Pause"
    assert at.query_params["play"] == "1"


def test_step_buttons_and_number_box_pick_one_snapshot(root):
    make_run(root, "done", n=60)
    at = app(run="done", iteration="100")
    at.button(key="step_next").click().run()
    assert line_of(at)["it"] == 105
    at.button(key="step_back").click().run()
    at.button(key="step_back").click().run()
    assert line_of(at)["it"] == 95
    at.number_input(key="goto").set_value(42).run()
    assert line_of(at)["it"] == 40


def test_uneven_snapshots_fall_back_to_an_index_slider(root):
    make_run(root, "uneven", n=5, uneven_end=True)  # iterations 0, 5, 10, 15, 18
    at = app(run="uneven", iteration="10")
    assert (at.slider[0].label, at.slider[0].value) == ("Snapshot", 2)
    at.slider[0].set_value(4).run()
    assert line_of(at)["it"] == 18


def test_csv_downloads(root):
    make_full_run(root, "full", n=60)
    at = app(run="full")
    assert any(b.label == "Download entry iterations (CSV)"
               for b in at.get("download_button"))


def test_a_followed_run_that_finishes_lands_on_its_last_snapshot(root, tmp_path):
    """The live page showed the newest snapshot it had read; the worker writes its last ones
    just before it says "finished": the page then lands on the very last one (Next disabled)."""
    p = make_run(root, "live", n=30, state="running")
    runs.write_status(p, state="running", pid=os.getpid(),
                      pid_start=runs.process_start_time(os.getpid()), iteration=145,
                      total_iterations=195)
    at = app(run="live")
    assert line_of(at)["it"] == 145 and at.toggle(key="follow").value is True
    longer = make_run(tmp_path / "elsewhere", "live", n=40)
    shutil.copyfile(longer.path, p.path)  # the same file (inode) grown by ten snapshots
    runs.write_status(p, state="finished", iteration=195, snapshots=40)
    at.run()
    assert not at.exception
    assert line_of(at)["it"] == 195 and (line_of(at)["index"] + 1, line_of(at)["n"]) == (40, 40)
    assert at.button(key="step_next").disabled
    # a run opened after it finished, or a page that stopped following, is left alone
    at.button(key="step_back").click().run()
    at.run()
    assert line_of(at)["it"] == 190


def test_the_header_names_model_and_dataset_from_the_first_second(root, monkeypatch):
    """Before the worker has written config.json (it loads torch and the data first), the
    header already says what was launched, read from the launch's own flags."""
    started = []

    def fake_start(paths, argv, resume=False, processes=1):  # a worker that never reports
        paths.dir.mkdir(parents=True, exist_ok=True)
        runs.write_status(paths, state="starting", reason="", pid=None)
        proc = subprocess.Popen(["sleep", "60"])
        started.append(proc)
        return proc.pid

    monkeypatch.setattr(runs, "start_worker", fake_start)
    at = app()
    at.button[0].click().run()
    try:
        assert not at.exception
        assert not runs.run_paths("demo", root).config.exists()
        assert "lenet5 on digits · starting" in texts(at)
    finally:
        for proc in started:
            proc.kill()
            proc.wait()


def test_the_export_report_shows_a_reduction_as_good(tmp_path):
    """Fewer parameters and MACs are what an export is for: their deltas read as good (green,
    delta_color="inverse"), not as red "down" arrows."""
    out = tmp_path / "net.pt2"
    out.write_bytes(b"x")

    def page(out: str, root: str) -> None:
        from pathlib import Path

        from pathviz.ui.export import _report_ui

        _report_ui({"params_after": 10, "params_before": 100, "macs_after": 5,
                    "macs_before": 50, "max_abs_diff_compact_vs_masked": 0.0}, Path(out),
                   Path(root))

    at = AppTest.from_function(page, args=(str(out), str(tmp_path)), default_timeout=30).run()
    assert not at.exception
    deltas = {m.label: (m.proto.delta, m.proto.color) for m in at.metric}
    assert deltas["parameters"][0] == "-90" and deltas["MACs"][0] == "-45"
    # the proto's colour: 0 red, 1 green, 2 grey (streamlit MetricColor)
    assert deltas["parameters"][1] == deltas["MACs"][1] == 1


def test_the_export_report_offers_its_input_contract_and_names_its_weights(tmp_path):
    """The report panel labels the accuracy with the weights it measured (masked W*), says the
    input contract in one line and offers the preprocessing code beside the model."""
    from pathviz.contract import input_contract, preprocess_source

    out = tmp_path / "net.pt2"
    out.write_bytes(b"x")
    contract = input_contract("digits", [1, 28, 28])
    (tmp_path / "net.pt2.preprocess.py").write_text(preprocess_source(contract))

    def page(out: str, root: str, contract: dict) -> None:
        from pathlib import Path

        from pathviz.ui.export import _report_ui

        _report_ui({"params_after": 10, "params_before": 100, "macs_after": 5,
                    "macs_before": 50, "max_abs_diff_compact_vs_masked": 0.0, "mode": "masked",
                    "test_acc": 0.9667, "input": contract}, Path(out), Path(root))

    at = AppTest.from_function(page, args=(str(out), str(tmp_path), contract),
                               default_timeout=30).run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["test accuracy, masked W*"] == "96.67%"
    assert "(x - [0.3054]) / [0.3247]" in texts(at) and "net.pt2.preprocess.py" in texts(at)
    assert [plain(b.label) for b in at.get("download_button")] == [
        "Download net.pt2", "Download net.pt2.preprocess.py"]


def _status(at: AppTest, base: dict | None = None) -> tuple[int, int, dict]:
    """What the presentation's status line is made of: the iteration at the player's position,
    the filters selected there and the W* evaluations sent. The page writes the line itself
    from these (its words are checked by tests/js/text.test.js through tests/test_player_js.py
    and in Chromium by tests/e2e/test_present_e2e.py); ``base`` is the first render's, which
    later renders do not send again."""
    from tests.test_ui_player import player_json, unb64

    pj = player_json(at)
    base = pj.get("base") or base
    its, sel = unb64(base["iterations"], "f8"), unb64(base["selected"], "i4")
    i = pj["index"]
    return int(its[i]), int(sel[i]), pj["wstar"]


def test_presentation_mode_from_the_url_says_what_is_happening(root):
    """?present=1: no view switcher, the status line with the file's own numbers at the
    selected iteration (support summed over the Γ layers, W* nearest it), both figures, and the
    scrubber still moves it."""
    from pathviz.store import PathReader

    paths = make_full_run(root, "full", n=60)
    with PathReader(paths.path) as r:
        snap = r.snapshot(30)  # iteration 150
        sel = sum(int((s["gamma_norm"] > 0).sum()) for s in snap.values())
        total = sum(len(s["gamma_norm"]) for s in snap.values())
        acc = r.metrics()["val_acc_sparse"]
    assert (total, 0 < sel < total) == (62, True) and np.isfinite(acc[30])
    at = app(run="full", present="1", iteration="150")
    from tests.test_ui_player import player_json

    base = player_json(at)["base"]
    it, selected, wstar = _status(at)
    assert (it, selected) == (150, sel) and wstar["split"] == "validation"
    assert wstar["acc"][wstar["it"].index(150.0)] == acc[30]
    # the page writes the status line; the scrubber's own "Iteration 150 · epoch ..." is not there
    assert not [line for line in texts(at).splitlines() if "iteration 150" in line.lower()]
    assert line_of(at) is None
    assert not at.get("button_group") and at.toggle(key="present").value

    assert not at.get("plotly_chart")  # both figures are drawn by the page's player
    heat, path = player_json(at)["heat"], player_json(at)["path"]
    assert heat["key"] == "present_heatmap" and "order of entry" in heat["xtitle"]  # sorted
    assert [ln["name"] for ln in path["lines"]] == ["conv1 (6)", "conv2 (16)", "fc1 (40)",
                                                    "all (62)"]
    from tests.test_ui_player import unb64

    x, all_ = unb64(path["x"], "f8"), unb64(path["lines"][-1]["y"], "f4")
    assert x[30] == 150 and all_[30] == np.float32(100 * sel / 62)  # the share at iteration 150
    at.button(key="step_next").click().run()  # 155: not evaluated; 150 and 160 are as near
    assert _status(at, base)[0] == 155
    assert at.query_params["present"] == "1" and at.query_params["iteration"] == "155"
    at.button(key="play").click().run()
    at.run()  # one tick of the play fragment
    assert at.slider[0].value > 155 and at.query_params["present"] == "1"


def test_presentation_toggle_and_a_bad_value(root):
    make_run(root, "done", n=60)
    at = app(run="done", present="banana")
    from tests.test_ui_player import player_json

    base = player_json(at)["base"]  # the run's snapshots, sent once to the page
    assert "present=“banana” is not on or off" in texts(at)
    assert at.get("button_group") and "present" not in at.query_params  # the normal page
    at.toggle(key="present").set_value(True).run()
    assert not at.exception and at.query_params["present"] == "1"
    assert "present=“banana”" not in texts(at) and not at.get("button_group")
    it, selected, wstar = _status(at, base)
    assert (it, selected) == (295, 62) and wstar["acc"]
    at.toggle(key="present").set_value(False).run()
    assert "present" not in at.query_params and at.get("button_group")
    assert line_of(at)["it"] == 295


def _marks(at: AppTest) -> list:
    """The iteration the Compare figure marks (the page draws it), per figure on the page."""
    return [[{"key": d["key"], "x": d["mark"]}] for d in (
        json.loads(e.proto.json) for e in at.get("bidi_component")
        if e.proto.component_name == "pathviz_chart")]


def test_compare_marks_the_iteration_selected_in_the_other_views(root):
    """Compare has no picker, but it marks the iteration selected for the current run: the one
    picked in another view, or the link's."""
    make_run(root, "r", n=60)
    at = app(run="r", iteration="150")
    at.button(key="step_next").click().run()  # picked in the Overview: 155
    assert at.query_params["iteration"] == "155"
    view(at, "Compare")
    assert _marks(at) == [[{"key": "compare_plot", "x": 155}]]
    assert "iteration 155, the one selected for r in the other views" in texts(at)
    at = app(run="r", view="compare", iteration="100")  # a link straight to Compare
    assert _marks(at) == [[{"key": "compare_plot", "x": 100}]]
    at = app(run="r", view="compare")  # no iteration in the link: the newest snapshot
    assert _marks(at) == [[{"key": "compare_plot", "x": 295}]]


def test_tickets_and_compare_render_on_a_vit_run(root):
    """A real vit_tiny run with a retrained ticket and a pruning baseline: the Tickets view
    shows them, and Compare draws its support size beside another run's, without exception."""
    from pathviz import retrain
    from pathviz.tickets import baselines_cli

    run_dir, it = make_vit_run(root), VIT_RUN_ITERATION
    shutil.copytree(run_dir, root / "vit-copy")
    assert retrain.main([str(run_dir), "--iteration", str(it), "--init", "rewind", "--epochs",
                         "1", "--seeds", "0", "--no-progress"]) == 0
    assert baselines_cli.main([str(run_dir), "--iterations", str(it), "--methods", "magnitude",
                           "--reference", "self", "--epochs", "0", "--no-progress"]) == 0
    at = app(run="vit", view="tickets", iteration=str(it))
    assert f"it{it}-rewind-epochs1" in texts(at)
    names = {t.get("name") for t in figure(at)["data"]}
    assert f"rewind (path ticket), retrained 1 epoch, support at {it} (1 seed)" in names
    assert any(n and n.startswith("magnitude") for n in names), names
    at = app(run="vit", view="compare", compare="vit,vit-copy")
    traces = chart(at, "compare_plot")["panels"][0]["series"]
    assert len(traces) == 2 and all(t["name"].startswith("vit") for t in traces)
    n = traces[0]["y"]
    assert n[0] == 0 < n[-1]  # support size grows from empty


def test_a_run_without_gamma_layers_says_so_instead_of_failing(root):
    """An SGD baseline's path has no Γ layers: the Overview and presentation mode say so in one
    line, and the player still steps its iterations (before: a ValueError traceback)."""
    import subprocess
    import sys

    from tests.test_ui_player import player_json

    subprocess.run([sys.executable, "-m", "pathviz.train", "--preset", "demo", "--optimizer",
                    "sgd", "--epochs", "1", "--out", str(root / "sgd"), "--no-progress"],
                   check=True, capture_output=True)
    for query in ({"view": "overview"}, {"present": "1"}):
        at = app(run="sgd", **query)
        assert "This run has no Γ layers" in texts(at), query
        data = player_json(at)
        assert data["levels"]["sumG"] == 0 and data["index"] == 18  # its last snapshot
