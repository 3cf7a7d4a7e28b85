"""The browser player's server side (pathviz.ui.player): what it ships, when, and how a pause
and a server-side move meet. The page side is tested in tests/e2e/test_player_e2e.py."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from pathviz import plots
from pathviz.analysis import StopDecision
from pathviz.store import PathReader
from pathviz.ui import player
from pathviz.ui.context import RunView
from pathviz.ui.data import ident, load_overview
from tests.conftest import make_run
from tests.test_app import app
from tests.test_app import root as root  # noqa: F401 (a fixture)


def unb64(s: str, dtype: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(s), dtype=np.dtype(dtype).newbyteorder("<"))


def player_json(at) -> dict:
    (el,) = players(at)
    return json.loads(el.proto.json)


def players(at) -> list:
    return [e for e in at.get("bidi_component") if e.proto.component_name == "pathviz_player"]


def rows_of(data: dict) -> dict[int, np.ndarray]:
    lv = data["levels"]
    out = {}
    for part in ("rows", "refine"):
        if part in lv:
            idx = unb64(lv[part]["index"], "i4")
            blob = unb64(lv[part]["data"], "u1").reshape(len(idx), lv["sumG"])
            out.update({int(i): blob[r] for r, i in enumerate(idx)})
    return out


def test_stride_is_the_smallest_power_of_two_under_the_budget():
    assert player.stride_for(100, 10, budget=1000) == 1
    assert player.stride_for(101, 10, budget=1000) == 2
    assert player.stride_for(5000, 4224, budget=3_000_000) == 8
    k = player.stride_for(5000, 4224, budget=3_000_000)
    assert len(player.shipped_rows(0, 5000, k)) * 4224 <= 3_000_000 + 4224  # + the last row


def test_shipped_rows_are_every_strideth_and_the_last():
    assert player.shipped_rows(0, 10, 4).tolist() == [0, 4, 8, 9]
    assert player.shipped_rows(0, 9, 4).tolist() == [0, 4, 8]
    assert player.shipped_rows(9, 13, 4).tolist() == [12]  # a live run's new rows
    assert player.shipped_rows(5, 5, 4).tolist() == []


def test_level_rows_colour_a_snapshot_as_the_heatmap_does():
    rng = np.random.default_rng(0)
    gn = np.where(rng.random((3, 7)) < 0.5, rng.random((3, 7)), 0).astype(np.float32)
    gn[2] = 0  # an empty support
    for r in range(3):
        fig = plots.overview_heatmap(["a"], {"a": gn[r]})
        assert player.level_rows(gn)[r].tolist() == np.asarray(fig.data[0].z)[0].tolist()


def test_the_overview_ships_the_path_once_with_the_levels_of_every_filter(root):
    make_run(root, "r", n=60)
    at = app(run="r", iteration="150")
    data = player_json(at)
    with PathReader(root / "r" / "path.h5") as r:
        assert unb64(data["base"]["iterations"], "f8").tolist() == r.iterations.tolist()
        assert data["levels"]["stride"] == 1
    rows = rows_of(data)
    assert sorted(rows) == list(range(60))
    with PathReader(root / "r" / "path.h5") as r:
        snap = r.snapshot(30)  # iteration 150: each filter's level, layers side by side
    want = np.concatenate([player.level_rows(v["gamma_norm"][None])[0] for v in snap.values()])
    assert rows[30].tolist() == want.tolist()
    # (the page's cells from these levels: tests/js/heat.test.js; against the server's own
    # figure, in the browser: tests/e2e/test_player_e2e.py)
    assert not at.get("plotly_chart")  # the page draws it: no figure sent, no plotly loaded
    assert data["index"] == 30
    at.run()  # a rerun (a pause) sends no base and no rows again: the page has them
    again = player_json(at)
    assert "base" not in again and "rows" not in again["levels"]


def test_a_pause_in_the_page_moves_the_server_without_moving_the_page_back(root):
    make_run(root, "r", n=60)
    at = app(run="r", view="overview")
    first = player_json(at)
    at.session_state["pv_report"] = {"index": 12, "iteration": 60, "follow": False, "t": 1,
                                     "key": first["key"], "have": 60}
    at.run()
    data = player_json(at)
    assert data["index"] == 12 and data["seq"] == first["seq"]  # the page is not sent back
    assert at.query_params["iteration"] in ("60", ["60"])
    assert at.number_input(key="goto").value == 60
    assert data["heat"]["title"].format(it="60") == "Gamma support by layer at iteration 60"


def test_a_server_move_reaches_the_page_through_the_sequence_number(root):
    make_run(root, "r", n=60)
    at = app(run="r", view="overview", iteration="100")
    seq = player_json(at)["seq"]
    at.number_input(key="goto").set_value(200).run()
    data = player_json(at)
    assert data["seq"] == seq + 1 and data["index"] == 40


def test_a_page_that_lost_its_copy_gets_it_again(root):
    make_run(root, "r", n=60)
    at = app(run="r")
    key = player_json(at)["key"]
    at.run()
    assert "base" not in player_json(at)
    at.session_state["pv_report"] = {"need": True, "key": key, "t": 2}
    at.run()
    assert "base" in player_json(at)


def test_the_light_views_have_the_player_and_compare_and_about_have_no_slider(root):
    make_run(root, "r", n=60)
    for slug in ("layer", "metrics", "filters"):
        at = app(run="r", view=slug)
        assert len(players(at)) == 1, slug
    for slug in ("compare", "about"):
        at = app(run="r", view=slug)
        assert not at.slider and not players(at), slug
    at = app(run="r", view="export")
    assert at.slider and not players(at)  # the server's picker


def _view(path, n: int) -> RunView:
    from pathviz import runs

    info = runs.RunInfo if False else None  # noqa: F841 (views of one file; info unused here)
    idt = ident(path)
    return RunView(info=None, path=str(path), ident=idt, n=n,  # type: ignore[arg-type]
                   data=load_overview(str(path), idt, n),
                   decision=StopDecision(stop=None, reason="test"), live=True, model="m",
                   dataset="d")


@pytest.mark.filterwarnings("ignore")
def test_a_live_run_appends_only_its_new_rows(tmp_path):
    make_run(tmp_path, "r", n=50)
    path = tmp_path / "r" / "path.h5"
    spec = player.PlayerSpec(heat_key="overview", heat_title="t {it}")
    sent: dict = {}
    first = player.player_data(_view(path, 40), spec, 39, 0, True, False, sent, refine=False)
    assert "base" in first and len(rows_of(first)) == 40
    later = player.player_data(_view(path, 50), spec, 49, 0, True, False, sent, refine=False)
    assert "base" not in later
    assert later["append"]["start"] == 40
    assert unb64(later["append"]["iterations"], "f8").tolist() == [5.0 * i for i in range(40, 50)]
    assert sorted(rows_of(later)) == list(range(40, 50))


@pytest.mark.filterwarnings("ignore")
def test_a_large_run_is_decimated_to_the_budget_and_refined_around_a_pause(tmp_path,
                                                                         monkeypatch):
    make_run(tmp_path, "r", n=60)
    path = tmp_path / "r" / "path.h5"
    view = _view(path, 60)
    sum_g = sum(int(lay["groups"]) for lay in view.data["layers"])
    monkeypatch.setattr(player, "BUDGET", 10 * sum_g)
    monkeypatch.setattr(player, "REFINE", 3)
    spec = player.PlayerSpec(heat_key="overview", heat_title="t {it}")
    sent: dict = {}
    data = player.player_data(view, spec, 30, 0, False, False, sent, refine=True)
    lv = data["levels"]
    assert lv["stride"] == 8
    assert sorted(unb64(lv["rows"]["index"], "i4").tolist()) == [0, 8, 16, 24, 32, 40, 48, 56,
                                                                  59]
    assert unb64(lv["refine"]["index"], "i4").tolist() == list(range(27, 34))
    full = player.level_rows(PathReader(path).__enter__().layer_path(
        view.data["layers"][0]["name"], "gamma_norm", slice(0, 60)))
    g0 = int(view.data["layers"][0]["groups"])
    for i, row in rows_of(data).items():
        assert row[:g0].tolist() == full[i].tolist()


def test_a_page_that_missed_rows_is_sent_them_again(root):
    make_run(root, "r", n=60)
    at = app(run="r")
    key = player_json(at)["key"]
    at.session_state["pv_report"] = {"have": 30, "key": key, "t": 7}
    at.run()
    data = player_json(at)
    assert data["append"]["start"] == 30 and data["ack"] == 7
    assert sorted(rows_of(data)) == list(range(30, 60))
    at.session_state["pv_report"] = {"have": 10, "key": key, "t": 7}  # a replay: applied once
    at.run()
    assert "append" not in player_json(at)


def test_the_heatmap_names_heads_and_mlp_neurons_and_keeps_filters_numbered():
    """The page's hover names a transformer's groups ("block 2 · head 3"), as the server's
    figure did; conv and linear layers have no names (the hover says "filter N")."""
    layers = [{"name": "conv1", "kind": "conv", "groups": 4},
              {"name": "blocks.2.attn", "kind": "heads", "groups": 4},
              {"name": "blocks.2.mlp.fc1", "kind": "mlp", "groups": 3}]

    class View:  # what _heat_spec reads of a RunView
        data = {"layers": layers}

    heat = player._heat_spec(View(), player.PlayerSpec(heat_key="overview", heat_title="t"))
    assert heat["labels"] == ["conv1", "blocks.2.attn", "blocks.2.mlp.fc1"]
    assert heat["names"][0] is None
    assert heat["names"][1][3] == "block 2 · head 3"
    assert heat["names"][2] == ["block 2 · MLP neuron 0", "block 2 · MLP neuron 1",
                                "block 2 · MLP neuron 2"]
    assert heat["xtitle"].startswith("group position") and heat["font"] == 12  # not "filter"
    assert heat["subtitle"].endswith("every group shown")


def test_sessions_share_the_level_rows_of_a_run(tmp_path, monkeypatch):
    """Sessions that ask for different ranges of one run (each from where its browser's copy
    ends) get the rows load_levels gives, and each row is read from the file once."""
    paths = make_run(tmp_path, "shared", n=40)
    path, idn = str(paths.path), ident(paths.path)
    monkeypatch.setattr(player, "_levels", {})
    asked: list[tuple[int, ...]] = []
    real = player.load_levels

    def counting(p, i, rows):
        asked.append(rows)
        return real(p, i, rows)

    monkeypatch.setattr(player, "load_levels", counting)
    first = player.shared_levels(path, idn, tuple(range(0, 30, 3)) + (31,))  # off its stride
    second = player.shared_levels(path, idn, tuple(range(12, 40, 3)))
    third = player.shared_levels(path, idn, tuple(range(0, 40, 3)))
    for got, rows in ((first, tuple(range(0, 30, 3)) + (31,)), (second, tuple(range(12, 40, 3))),
                      (third, tuple(range(0, 40, 3)))):
        assert np.array_equal(got, real(path, idn, rows))
    read = [i for rows in asked for i in rows]
    assert sorted(read) == sorted(set(read)) == sorted(set(range(0, 40, 3)) | {31})
