"""pathviz.tickets (schema, summary, verdict, references) and the Tickets view in AppTest."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pathviz import runs, tickets
from pathviz.store import PathWriter, Snapshot
from tests.conftest import plain


def _array(value) -> np.ndarray:
    """Plotly 7 typed arrays {dtype, bdata} (or plain lists) -> numpy."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    return np.asarray(value, dtype=float)


def fake_ticket(run_dir: Path, init: str, accs: list[float], iteration: int = 20,
                params: int = 20_000) -> Path:
    """A ticket folder written through the schema's own writer, final test accuracies ``accs``."""
    name = tickets.default_name(iteration, init, "epochs", 3)
    tdir = run_dir / "tickets" / name
    tdir.mkdir(parents=True)
    (tdir / tickets.TICKET_FILE).write_text(json.dumps({
        "schema_version": "1.0", "name": name, "run": run_dir.name, "iteration": iteration,
        "init": init, "kind": tickets.mode_kind(init), "epochs": 3, "budget": "epochs",
        "dataset": "digits",
        "epochs_run": 3, "params": params, "flops": 100_000, "params_full": 60_000,
        "flops_full": 400_000, "seeds": list(range(len(accs)))}))
    for s, a in enumerate(accs):
        rows = [{"epoch": e, "iteration": 10 * e, "time": float(e), "test_acc": a * (e + 1) / 4,
                 "val_acc": a - 0.01} for e in range(4)]
        tickets.write_seed(tickets.seed_path(tdir, s), ticket=name, seed=s, rows=rows,
                           complete=True)
    return tdir


def sgd_run(root: Path, name: str, acc: float, seed: int = 0, model: str = "lenet5") -> Path:
    paths = runs.run_paths(name, root)
    paths.dir.mkdir(parents=True)
    cfg = {"model": model, "dataset": "digits", "optimizer": "sgd", "seed": seed}
    with PathWriter(paths.path, config=cfg, layers=[]) as w:
        for i in range(3):
            w.append(Snapshot(i * 10, i, i, {"train_loss": 1.0, "train_acc": 0.5, "lr": 0.05,
                                             "test_acc": acc if i == 2 else 0.3}, {}))
    paths.config.write_text(json.dumps(cfg))
    return paths.dir


@pytest.fixture
def run_dir(tmp_path) -> Path:
    from tests.test_retrain import write_run

    return write_run(tmp_path)[0]


def test_summary_mean_std_se_over_seeds_and_a_clear_win(run_dir) -> None:
    fake_ticket(run_dir, "rewind", [0.95, 0.96, 0.97])
    fake_ticket(run_dir, "reinit", [0.80, 0.81, 0.79])
    rows = {r["init"]: r for r in tickets.summary(run_dir)}
    t = rows["rewind"]["test_acc"]
    assert t["n"] == 3 and t["mean"] == pytest.approx(0.96)
    assert t["std"] == pytest.approx(0.01) and t["se"] == pytest.approx(0.01 / np.sqrt(3))
    assert rows["rewind"]["params_kept"] == pytest.approx(1 / 3)
    comp = rows["rewind"]["vs_controls"][0]
    assert comp["verdict"] == "beats" and comp["diff"] == pytest.approx(0.16)
    assert comp["se"] == pytest.approx(np.sqrt(2 * (0.01 / np.sqrt(3)) ** 2))
    assert rows["rewind"]["verdict"].startswith("beats every control: beats reinit by +16.00")
    assert "vs_controls" not in rows["reinit"]
    json.dumps(tickets.summary(run_dir), allow_nan=False)  # strict JSON for inspect --json


def test_a_pruning_baseline_is_compared_with_the_tickets_of_its_size(run_dir) -> None:
    fake_ticket(run_dir, "finetune", [0.95, 0.96, 0.97])
    fake_ticket(run_dir, "magnitude", [0.90, 0.91, 0.89])
    fake_ticket(run_dir, "taylor", [0.955, 0.965, 0.96])
    fake_ticket(run_dir, "slimming", [0.9, 0.9, 0.9], iteration=10)
    rows = {r["init"]: r for r in tickets.summary(run_dir)}
    assert rows["magnitude"]["kind"] == "baseline"
    assert rows["magnitude"]["verdict"] == (
        "against the path's tickets of the same size: loses to the path's finetune by -6.00 "
        "± 0.82 points (SE)")
    assert rows["taylor"]["vs_tickets"][0]["verdict"] == "ties with"
    assert rows["slimming"]["verdict"].startswith("no ticket at this iteration")
    # baselines are not the ticket's controls
    assert rows["finetune"]["vs_controls"] == []


def test_a_control_as_good_as_the_ticket_is_said_plainly(run_dir) -> None:
    fake_ticket(run_dir, "rewind", [0.95, 0.96, 0.97])
    fake_ticket(run_dir, "uniform", [0.955, 0.965, 0.96])
    fake_ticket(run_dir, "random-support", [0.99, 0.995, 0.99])
    r = next(r for r in tickets.summary(run_dir) if r["init"] == "rewind")
    verdicts = {c["init"]: c["verdict"] for c in r["vs_controls"]}
    assert verdicts == {"uniform": "ties with", "random-support": "loses to"}
    assert r["verdict"].startswith("does worse than a control")


def test_a_seed_stuck_at_chance_is_called_collapsed(run_dir) -> None:
    fake_ticket(run_dir, "rewind", [0.97, 0.98, 0.10])
    fake_ticket(run_dir, "reinit", [0.97, 0.975, 0.98])
    rows = {r["init"]: r for r in tickets.summary(run_dir)}
    assert rows["rewind"]["collapsed"] == 1 and rows["reinit"]["collapsed"] == 0
    assert rows["rewind"]["verdict"].endswith("1 of 3 seeds collapsed (final test accuracy "
                                              "under 1.5x chance)")


def test_controls_at_another_iteration_do_not_count_and_one_seed_has_no_se(run_dir) -> None:
    fake_ticket(run_dir, "rewind", [0.95])
    fake_ticket(run_dir, "reinit", [0.5, 0.6], iteration=10)
    r = next(r for r in tickets.summary(run_dir) if r["init"] == "rewind")
    assert r["test_acc"]["std"] is None and r["test_acc"]["se"] is None
    assert r["vs_controls"] == [] and r["verdict"].startswith("no controls")
    fake_ticket(run_dir, "reinit", [0.9, 0.91])
    r = next(r for r in tickets.summary(run_dir) if r["init"] == "rewind")
    assert r["vs_controls"][0]["se"] is None and "one seed: no SE" in r["verdict"]


def test_an_unfinished_seed_is_running_not_averaged(run_dir) -> None:
    tdir = fake_ticket(run_dir, "rewind", [0.9, 0.8])
    tickets.write_seed(tickets.seed_path(tdir, 5), ticket=tdir.name, seed=5,
                       rows=[{"epoch": 0, "iteration": 0, "time": 0.0, "test_acc": 0.1}],
                       complete=False)
    r = tickets.summary(run_dir)[0]
    assert r["seeds"] == 2 and r["running"] == 1 and r["test_acc"]["mean"] == pytest.approx(0.85)


def test_references_and_the_sgd_baseline_of_the_same_data_and_model(run_dir) -> None:
    root = run_dir.parent
    sgd_run(root, "sgd-b", 0.97, seed=1)
    sgd_run(root, "sgd-a", 0.95, seed=0)
    sgd_run(root, "sgd-vgg", 0.5, model="cifar_vgg_16")
    assert [p.name for p in tickets.sgd_baselines(run_dir)] == ["sgd-a", "sgd-b"]  # seed 0 first
    fake_ticket(run_dir, "rewind", [0.9, 0.91])
    refs = {r["label"]: r for r in tickets.references(run_dir, [20])}
    assert refs["SGD baseline"]["test_acc"]["mean"] == pytest.approx(0.96)
    assert refs["SGD baseline"]["runs"] == ["sgd-a", "sgd-b"]
    assert refs["SLBI W* at 20"]["params"] == 5000  # params_kept at the snapshot of 20
    assert refs["SLBI W* at 20"]["test_acc"]["mean"] == pytest.approx(0.8)
    assert refs["SLBI W at 20"]["params"] == 60_000  # the ticket's full size (schema 1.0 file)


def test_tickets_are_compared_with_the_full_sgd_baseline(run_dir) -> None:
    fake_ticket(run_dir, "rewind", [0.95, 0.96, 0.97])
    fake_ticket(run_dir, "reinit", [0.70, 0.71, 0.72])
    assert "vs_baseline" not in tickets.summary(run_dir)[0]  # no SGD run beside it yet
    sgd_run(run_dir.parent, "sgd-a", 0.95)
    sgd_run(run_dir.parent, "sgd-b", 0.97, seed=1)
    rows = {r["init"]: r for r in tickets.summary(run_dir)}
    assert rows["rewind"]["vs_baseline"]["diff"] == pytest.approx(0.0, abs=1e-12)
    assert rows["rewind"]["vs_baseline"]["verdict"] == "ties with"
    assert rows["reinit"]["vs_baseline"]["verdict"] == "loses to"
    assert rows["rewind"]["verdict"].endswith("Against full SGD (2 runs): ties with it by "
                                              "+0.00 ± 1.15 points (SE)")


def test_readers_never_import_torch() -> None:
    code = ("import sys, pathviz.tickets, pathviz.ui.tickets; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_bad_mode_names() -> None:
    assert tickets.parse_mode("rewind:60") == ("rewind", 60)
    for bad in ("rewind:K", "rewind:", "uniform:3", "lottery"):
        with pytest.raises(tickets.TicketError):
            tickets.parse_mode(bad)


# ---- the view ------------------------------------------------------------------------------


def _view(run_dir: Path, iteration: int | None):
    from streamlit.testing.v1 import AppTest

    def app(run_dir: str, iteration: int | None) -> None:
        from pathviz import runs
        from pathviz.ui.tickets import tickets_ui

        tickets_ui(runs.paths_for_dir(run_dir), "demo", iteration)

    return AppTest.from_function(app, args=(str(run_dir), iteration), default_timeout=60)


def test_a_two_seed_retrain_renders_in_the_tickets_view(run_dir) -> None:
    from pathviz import retrain

    sgd_run(run_dir.parent, "sgd-a", 0.95)
    assert retrain.main([str(run_dir), "--iteration", "20", "--init", "rewind,reinit",
                         "--epochs", "1", "--seeds", "0,1", "--no-progress"]) == 0
    at = _view(run_dir, 20).run()
    assert not at.exception
    # LeNet-5 has no BatchNorm: every mode but slimming is offered
    assert at.multiselect[0].options == [m for m in tickets.MODES if m != "slimming"]
    rows = {r["init"]: r for r in tickets.summary(run_dir)}
    assert any(plain(m.value).startswith("**it20-rewind-epochs1** (2 seeds, 1 epoch) does")
               for m in at.markdown)
    acc, curves = (json.loads(c.proto.spec) for c in at.get("plotly_chart"))
    traces = {t["name"]: t for t in acc["data"]}
    for init, words in (("rewind", "rewind (path ticket)"), ("reinit", "reinit (control)")):
        t = traces[f"{words}, retrained 1 epoch, support at 20 (2 seeds)"]
        assert t["customdata"][0][1] == rows[init]["params"]
        assert _array(t["x"])[0] == pytest.approx(rows[init]["params"], rel=0.02)  # side by side
        assert _array(t["y"])[0] == pytest.approx(100 * rows[init]["test_acc"]["mean"])
        assert _array(t["error_y"]["array"])[0] == pytest.approx(
            100 * rows[init]["test_acc"]["se"])
    assert {"SLBI path W* (not retrained)", "full SLBI W (end of run)",
            "full SGD (1 run: sgd-a)"} <= set(traces)
    assert _array(traces["full SGD (1 run: sgd-a)"]["y"]).tolist() == [95.0, 95.0]
    assert acc["layout"]["xaxis"]["title"]["text"].startswith("parameters kept")
    lines = {t["name"]: t for t in curves["data"]}
    assert set(lines) == {"it20-rewind-epochs1", "it20-reinit-epochs1"}
    assert _array(lines["it20-rewind-epochs1"]["x"]).tolist() == [0, 1]
    assert [b.proto.label for b in at.get("download_button")] == ["Download chart CSV",
                                                                  "Download CSV"]
    table = at.dataframe[0].value
    assert "SGD baseline" in set(table["variant"])


def test_the_view_says_why_it_cannot_retrain(run_dir, tmp_path) -> None:
    at = _view(run_dir, 7).run()
    assert not at.exception
    assert "Iteration 7 has no saved weights" in at.info[0].value and "10" in at.info[0].value
    at = _view(sgd_run(tmp_path, "sgd-x", 0.9), 2).run()
    assert "trained with plain SGD" in at.info[0].value


def test_the_form_launches_a_background_retrain(run_dir) -> None:
    at = _view(run_dir, 20).run()
    at.multiselect[0].set_value(["reinit"])
    at.text_input[0].set_value("0")
    at.number_input[0].set_value(1)
    at.button[0].click().run()
    assert not at.exception
    assert at.success and "in process" in at.success[0].value
    launch = tickets.launch_state(run_dir)
    assert "--init" in launch["cmd"] and "reinit" in launch["cmd"]
    deadline = time.time() + 120
    while tickets.launch_state(run_dir).get("alive") and time.time() < deadline:
        time.sleep(0.5)
    rows = tickets.summary(run_dir)
    assert [(r["init"], r["seeds"], r["state"]) for r in rows] == [("reinit", 1, "finished")], \
        tickets.launch_state(run_dir).get("log_tail")
    at = _view(run_dir, 20).run()
    assert not at.exception and len(at.get("plotly_chart")) == 2


def test_a_stopped_background_retrain_resumes_where_it_stopped(run_dir) -> None:
    def wait(cond, seconds: float = 120) -> None:
        deadline = time.time() + seconds
        while not cond() and time.time() < deadline:
            time.sleep(0.02)

    # 16 short epochs: long enough to catch it running after its first epoch, short enough to
    # finish quickly once resumed
    tdir = run_dir / "tickets" / "it20-reinit-epochs16"
    seed0 = tickets.seed_path(tdir, 0)

    def epochs_done() -> int:
        try:
            return len(tickets.read_seed(seed0)["epoch"]) - 1
        except tickets.TicketError:
            return -1

    tickets.start_retrain(run_dir, 20, ["reinit"], epochs=16, seeds=[0])
    with pytest.raises(tickets.TicketError, match="already running"):
        tickets.start_retrain(run_dir, 20, ["reinit"], epochs=16, seeds=[0])
    wait(lambda: epochs_done() >= 1)
    for _ in range(50):  # while it runs: the view says so and shows its progress, once the
        at = _view(run_dir, 20).run()  # retrain has written it (a loaded machine lags)
        if at.get("progress"):
            break
        time.sleep(0.1)
    assert not at.exception
    assert any("Retraining in the background" in i.value for i in at.info)
    bars = at.get("progress")
    assert bars and "it20-reinit-epochs16: seed 0, epoch" in plain(bars[0].proto.text)
    assert at.button(key="tickets_stop_demo")
    assert tickets.stop_retrain(run_dir)
    state = tickets.ticket_state(tdir)
    assert state["state"] == "stopped" and "resume" in state["reason"]
    stopped_at = epochs_done()
    assert 1 <= stopped_at < 16 and tickets.resume_path(tdir, 0).exists()
    first = tickets.read_seed(seed0)["metrics"]["test_acc"][: stopped_at + 1]
    tickets.start_retrain(run_dir, 20, ["reinit"], epochs=16, seeds=[0])
    wait(lambda: not tickets.launch_state(run_dir).get("alive"))
    done = tickets.read_seed(seed0)
    assert done["complete"] and done["epoch"].tolist() == list(range(17))
    np.testing.assert_array_equal(done["metrics"]["test_acc"][: stopped_at + 1], first)
    assert tickets.ticket_state(tdir)["state"] == "finished"


def test_slimming_is_offered_for_batchnorm_runs_only(run_dir, tmp_path) -> None:
    from pathviz.ui.tickets import _has_batchnorm
    from tests.test_baselines import _resnet_run

    assert not _has_batchnorm(runs.paths_for_dir(run_dir))
    assert _has_batchnorm(runs.paths_for_dir(_resnet_run(tmp_path / "rn")))


def test_a_baseline_retrain_without_an_sgd_sibling_is_refused_before_it_starts(run_dir) -> None:
    """The app's button once started a baseline retrain that failed in the background log when
    the run had no SGD sibling; now it is one sentence at once, and nothing is written."""
    before = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*"))
    with pytest.raises(tickets.TicketError,
                       match="SGD sibling, and this run has none.*--optimizer sgd"):
        tickets.start_retrain(run_dir, 20, ["magnitude"], epochs=1, seeds=[0])
    assert sorted(p.relative_to(run_dir) for p in run_dir.rglob("*")) == before
    with pytest.raises(tickets.TicketError, match="reference must be sgd or self"):
        tickets.start_retrain(run_dir, 20, ["reinit"], epochs=1, seeds=[0], reference="other")
    cmd = tickets.retrain_command(run_dir, 20, ["magnitude"], epochs=1, seeds=[0],
                                  reference="self")
    assert cmd[-2:] == ["--reference", "self"]
    assert "--reference" not in tickets.retrain_command(run_dir, 20, ["magnitude"], epochs=1,
                                                        seeds=[0])
