"""charts: the specs of the Layer and Metrics figures that the page draws carry the right data,
legends and axes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pathviz import charts, plots
from pathviz.ui.chart import encode, prepare


def _series(spec, name):
    return next(s for p in spec["panels"] for s in p.get("series", []) if s["name"] == name)


def _panel(spec, title):
    return next(p for p in spec["panels"] if p.get("title") == title)


def test_layer_chart_sorts_by_entry_and_shares_the_iteration_axis():
    gn = np.array([[0, 0, 0], [0, 1, 0], [2, 1, 0]], np.float32)  # [N=3, G=3]
    entry = np.array([2, 1, -1])
    stop = plots.StopMark(iteration=10, band=(0.8, 0.9), members=(10, 20))
    spec = charts.layer_chart(gn, gn + 1, np.array([0, 10, 20]), entry, "L", stop=stop)
    heat = spec["panels"][0]["heat"]
    z = heat["z"].reshape(heat["rows"], heat["cols"])
    # rows: filter 1 (entered at 1), filter 0 (at 2), filter 2 (never); 0 = outside
    assert (z > 0).tolist() == [[False, True, True], [False, False, True],
                                [False, False, False]]
    assert heat["rowText"][0] == "entry rank 0 · filter 1 (entered at 10)"
    assert heat["rowText"][2] == "entry rank 2 · filter 2 (never entered)"
    assert heat["x"].tolist() == [0, 10, 20]  # the heatmap's columns are iterations
    assert spec["mode"] == "iteration" and spec["x"]["title"] == "iteration"
    assert spec["top"]["title"] == "groups selected (of 3)"
    assert [t[1] for t in spec["top"]["ticks"]] == ["0", "1", "2"]
    names = [entry["name"] for entry in spec["legend"]]
    assert "‖W‖, entered at 10 (1)" in names and "‖W‖, never entered (1)" in names
    assert "suggested stop (iteration 10)" in names and spec["stop"]["x"] == 10
    # the 1-SE set is never a span of iterations: no band on the Layer figure
    assert not any("band" in p for p in spec["panels"])
    # never-entered filters are grey, not a colour of the scale
    assert _series(spec, "‖W‖, never entered (1)")["color"] == plots.OUTSIDE_COLOR


def test_layer_chart_decimates_paths_to_screen_resolution():
    rng = np.random.default_rng(0)
    gn = rng.random((5000, 512)).astype(np.float32)
    spec = charts.layer_chart(gn, gn, np.arange(5000), np.zeros(512, np.int64), "big")
    paths = spec["panels"][1]["series"]
    points = sum(np.count_nonzero(np.isfinite(s["y"])) for s in paths)
    assert 512 * 20 <= points <= max(charts.MAX_PATH_POINTS, 512 * 20) + 512  # >= 20 a line
    heat = spec["panels"][0]["heat"]
    assert (heat["rows"], heat["cols"]) == (512, charts.MAX_HEATMAP_COLUMNS)
    assert heat["z"].dtype == np.uint8 and heat["z"].size == 512 * charts.MAX_HEATMAP_COLUMNS


def test_layer_chart_names_heads_on_the_rows_in_order_of_entry():
    heads = {"name": "blocks.2.attn", "kind": "heads", "groups": 4, "block": "2"}
    n = 5
    g = np.zeros((n, 4), np.float32)
    g[2:, 3], g[4:, 1] = 1.0, 1.0
    entry = np.array([-1, 4, -1, 2])
    spec = charts.layer_chart(g, g + 1, np.arange(n), entry, "blocks.2.attn",
                              names=plots.group_names(heads), unit="head")
    rows = spec["panels"][0]["y"]
    assert rows["labels"] == ["block 2 · head 3", "block 2 · head 1", "block 2 · head 0",
                              "block 2 · head 2"]
    assert spec["panels"][0]["heat"]["rowText"][0].startswith("entry rank 0 · block 2 · head 3")
    assert spec["title"] == "blocks.2.attn: heads by entry time"


def test_layer_chart_on_a_log_axis_starts_at_the_first_positive_iteration():
    gn = np.ones((4, 2), np.float32)
    spec = charts.layer_chart(gn, gn, np.array([0, 10, 100, 1000]), np.zeros(2, np.int64), "L",
                              log_x=True)
    assert spec["x"]["log"] and spec["x"]["lo"] == 10 and spec["x"]["hi"] == 1000
    assert spec["x"]["title"] == "iteration (log scale)"
    assert all(t[0] > 0 for t in spec["top"]["ticks"])


def test_metrics_chart_labels_every_line_and_carries_iterations():
    it = np.arange(0, 50, 5)
    acc = np.where(np.arange(10) % 2 == 0, np.linspace(0.5, 0.9, 10), np.nan)
    m = {"test_acc": acc, "train_acc": np.linspace(0.4, 1, 10), "sparsity": np.linspace(1, 0, 10),
         "params_kept": np.linspace(0, 100, 10)}
    stop = plots.StopMark(iteration=30, band=(0.8, 0.9))
    spec = charts.metrics_chart(it, m, stop, weight_iterations=np.array([0, 25, 45]))
    test = _series(spec, "test accuracy (W)")
    assert test["x"].tolist() == [0, 10, 20, 30, 40] and test["hover"]
    legend = {entry["name"] for entry in spec["legend"]}
    colours = {(e["color"], str(e.get("dash"))) for e in spec["legend"]}
    for p in spec["panels"]:  # a legend entry for every line's colour, one colour per meaning
        assert {(s["color"], str(s.get("dash"))) for s in p.get("series", [])} <= colours
    others = [e["color"] for e in spec["legend"]  # orange is the stop's (line, band, set)
              if e["color"] not in (plots.STOP_COLOR, charts.BAND_COLOR)]
    assert len(set(others)) == len(others)
    assert {"test (W)", "train (W)"} <= legend and "test accuracy (W)" not in legend
    assert test["color"] == charts.METRIC_COLORS["test_loss"][0]  # test data: one colour
    # no val_acc_sparse: no zoomed band panel; panels accuracy, loss, sparsity, saves
    assert [p["title"] for p in spec["panels"]] == [
        "accuracy", "loss", "sparsity and parameters kept",
        "iterations with saved weights (exportable)"]
    assert _series(spec, "parameters kept, compact subnetwork")["axis"] == 2


def _stop_run():
    """40 evaluated snapshots whose validation accuracy dips out of the 1-SE band and back."""
    it = np.arange(0, 400, 10)
    val = np.array([0.1 + 0.02 * i for i in range(40)])
    val = np.minimum(val, 0.9)
    val[30:] = [0.9, 0.85, 0.89, 0.84, 0.9, 0.83, 0.88, 0.9, 0.86, 0.89]
    m = {"val_acc_sparse": val, "train_acc": val + 0.05, "train_loss": 1 / (1 + it),
         "sparsity": np.linspace(1, 0.5, 40), "params_kept": np.linspace(300, 30_900, 40)}
    band = (0.9 - 0.03, 0.9)
    members = tuple(int(i) for i in it[val >= band[0]])
    return it, m, plots.StopMark(iteration=it[val >= band[0]][0], band=band, members=members)


def test_metrics_chart_shows_the_1se_set_as_its_iterations_not_a_span():
    it, m, stop = _stop_run()
    spec = charts.metrics_chart(it, m, stop, weight_iterations=it[::3])
    zoom = _panel(spec, "near the best, zoomed: the 1-SE band and set")
    inside = next(s for s in zoom["series"] if s["name"] == "in the 1-SE set")
    assert inside["x"].tolist() == list(stop.members)
    assert 330 not in stop.members and 340 in stop.members  # a dip inside the old span
    assert (inside["y"] >= stop.band[0] - 1e-6).all()
    # the only band is the 1-SE band on the zoomed panel, across the whole width
    assert [p for p in spec["panels"] if "band" in p] == [zoom]
    assert zoom["band"] == list(stop.band)
    # legible: zoomed so the band is a third of the axis
    assert (stop.band[1] - stop.band[0]) / (zoom["y"]["hi"] - zoom["y"]["lo"]) >= 0.25
    assert any(e["name"].startswith("within 1 SE of the best: the 1-SE set (")
               for e in spec["legend"])


def test_weight_saves_are_ticks_in_their_own_strip_not_points_on_the_data():
    it, m, stop = _stop_run()
    spec = charts.metrics_chart(it, m, stop, weight_iterations=it[::3])
    strip_panel = spec["panels"][-1]
    assert strip_panel["title"] == "iterations with saved weights (exportable)"
    assert strip_panel["y"]["fmt"] == "none" and not strip_panel.get("series")
    saves = strip_panel["strip"]
    assert sorted(x for s in saves for x in s["x"].tolist()) == it[::3].tolist()
    assert not any("weights saved" in s["name"] for p in spec["panels"]
                   for s in p.get("series", []))
    cand = next(s for s in saves if "1-SE set" in s["name"])
    assert set(cand["x"].tolist()) == set(it[::3].tolist()) & set(stop.members)
    assert all(e.get("tick") for e in spec["legend"] if "weights saved" in e["name"])


def test_metrics_axes_start_at_meaningful_values():
    it, m, stop = _stop_run()
    spec = charts.metrics_chart(it, m, stop, weight_iterations=it[::3])
    acc = _panel(spec, "accuracy")["y"]
    assert acc["lo"] == pytest.approx(0.1) and acc["hi"] >= 1.0  # from the data's floor
    loss = _panel(spec, "loss")["y"]  # falling a hundredfold: a log axis spanning the data
    low = float(np.min(m["train_loss"]))
    assert loss["log"] and loss["lo"] == pytest.approx(low / 1.25) and loss["title"] == "loss (log)"
    sparse = _panel(spec, "sparsity and parameters kept")
    assert sparse["y"]["lo"] == 0 and sparse["y"]["fmt"] == "pct0"
    assert sparse["y2"]["lo"] == 0 and sparse["y2"]["fmt"] == "si"
    assert sparse["y2"]["hi"] == pytest.approx(30_900 * 1.05)
    assert charts.accuracy_floor([np.array([np.nan, 0.97, 0.99])]) == pytest.approx(0.9)
    assert charts.accuracy_floor([np.array([0.05, 0.5])]) == 0.0


def test_tradeoff_chart_rings_the_stop_and_maps_points_to_snapshots():
    it = np.arange(0, 50, 5)
    acc = np.linspace(0.5, 0.9, 10)
    acc[3] = np.nan  # not evaluated there: no point, and the next point keeps its snapshot
    spec = charts.tradeoff_chart(np.linspace(0, 100, 10), acc, it,
                                 plots.StopMark(iteration=40, band=(0.8, 0.9), members=(40, 45)))
    pts = spec["points"]
    assert spec["mode"] == "points"
    assert pts["index"].tolist() == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert pts["it"].tolist() == [0, 5, 10, 20, 25, 30, 35, 40, 45]
    ring = _series(spec, "suggested stop (iteration 40)")
    assert ring["ring"] and ring["x"].tolist() == [pytest.approx(800 / 9)]
    assert _series(spec, "within 1 SE of the best (2 evaluated iterations)")["x"].size == 2
    assert spec["panels"][0]["band"] == [0.8, 0.9]
    levels = spec["panels"][0]["series"][0]["levels"]
    assert levels[0] < levels[-1]  # later iterations darker


def test_encode_makes_arrays_compact_and_the_id_follows_the_content():
    a = np.array([1.5, np.nan], np.float32)
    enc = encode({"y": a, "n": np.int64(3), "rows": [np.arange(3)]})
    assert enc["y"]["dtype"] == "f4" and enc["n"] == 3 and enc["rows"][0]["dtype"] == "i4"
    back = np.frombuffer(__import__("base64").b64decode(enc["y"]["b64"]), "<f4")
    assert back[0] == 1.5 and np.isnan(back[1])
    json.dumps(enc)  # JSON as it is
    one = prepare({"title": "t", "x": a}, 300)
    assert prepare({"title": "t", "x": a.copy()}, 300)["id"] == one["id"]
    assert prepare({"title": "u", "x": a}, 300)["id"] != one["id"]
    assert one["height"] == 300


def test_a_diverged_runs_inf_and_nan_do_not_stretch_the_axes():
    it = np.arange(0, 50, 5)
    loss = np.linspace(2, 0.5, 10)
    loss[4], loss[5] = np.inf, np.nan
    spec = charts.metrics_chart(it, {"train_loss": loss, "train_acc": np.linspace(0.2, 1, 10)})
    assert _panel(spec, "loss")["y"]["hi"] == pytest.approx(2 * 1.05)  # a fourfold fall: linear
    assert _panel(spec, "loss")["y"]["lo"] == 0 and not _panel(spec, "loss")["y"]["log"]
    w = np.ones((10, 3), np.float32)
    w[3, 1] = np.inf
    layer = charts.layer_chart(np.zeros_like(w), w, it, np.array([-1, -1, -1]), "L")
    assert layer["panels"][1]["y"]["hi"] == pytest.approx(1.05)


def test_the_df_axis_ticks_are_evenly_spaced_counts():
    """The Layer figure's top axis reads counts at an even step (where the count is first
    reached), not the counts found at evenly spaced iterations (0, 5, 11, 12, 12, 12, 13)."""
    support = np.array([0, 0, 2, 5, 11, 12, 12, 12, 12, 13, 13])
    its = np.arange(11) * 100
    ticks = charts.df_ticks(support, its, 16)
    assert [t[1] for t in ticks] == ["0", "2", "5", "11", "12"]  # targets 0, 2, 4, 6, 8, ... 12
    assert [t[0] for t in ticks] == [0, 200, 300, 400, 500]
    assert charts.df_ticks(np.array([0, 4, 8, 12, 16]), np.arange(5.0), 16) == [
        [0.0, "0"], [1.0, "4"], [2.0, "8"], [3.0, "12"], [4.0, "16"]]
    assert charts.df_ticks(support, its, 16, positive=True)[0][0] > 0
    assert charts.df_ticks(np.zeros(0, np.int64), np.zeros(0), 4) == []


def test_entry_bins_share_the_filters_out_evenly_in_order_of_entry():
    """Equal counts, not equal iteration spans: eleven early filters and two late ones get
    several colours, not one."""
    e = np.array([241, 250, 260, 300, 320, 350, 400, 450, 500, 600, 633, 943, 2224, -1, -1, -1])
    bins = charts.entry_bins(e)
    sizes = [int(m.sum()) for m, _ in bins]
    assert sum(sizes) == 16 and bins[-1][1] == "never entered (3)"
    assert len(bins) == 6 and max(sizes[:-1]) <= 3, [b[1] for b in bins]
    assert bins[0][1] == "entered at 241–260 (3)"
    # filters entering together stay together; the masks split the entered filters
    tied = charts.entry_bins(np.array([5, 5, 5, 5, 9]))
    assert [b[1] for b in tied] == ["entered at 5 (4)", "entered at 9 (1)"]


def test_compare_chart_distinct_styles_per_run_and_the_union_of_iterations():
    series = {f"r{k}": (np.arange(3) * (k + 1), np.array([0, .5, 1])) for k in range(10)}
    spec = charts.compare_chart(series)
    lines = spec["panels"][0]["series"]
    assert [s["name"] for s in lines] == [entry["name"] for entry in spec["legend"]] == list(series)
    styles = {(s["color"], str(s["dash"])) for s in lines}
    assert len(styles) == 10  # colours repeat after eight, with another dash
    assert (spec["x"]["lo"], spec["x"]["hi"]) == (0.0, 20.0) and all(s["hover"] for s in lines)
    log = charts.compare_chart(series, log_x=True)["x"]
    assert log["log"] and log["lo"] == 1.0  # iteration 0 cannot be drawn on a log axis
    json.dumps(prepare(spec, 480))  # what the page receives is JSON
