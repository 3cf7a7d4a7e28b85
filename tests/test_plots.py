"""plots: figures built from arrays carry the right data, legends and axes."""

from __future__ import annotations

import numpy as np
import pytest

from pathviz import plots


def test_decimate_keeps_ends_and_limit():
    assert plots.decimate(5, 10).tolist() == [0, 1, 2, 3, 4]
    idx = plots.decimate(10_000, 100)
    assert idx[0] == 0 and idx[-1] == 9999 and len(idx) <= 100


def test_levels_keep_zero_for_outside_and_scale_the_rest():
    lv = plots.levels(np.array([0, 0.5, 1.0, 2.0, -1], np.float32), top=1.0)
    assert lv.dtype == np.uint8
    assert lv.tolist() == [0, 128, 255, 255, 0]


def test_overview_heatmap_shows_every_filter_at_full_resolution():
    fig = plots.overview_heatmap(["a", "b"], {"a": np.array([0, 2, 0, 4], np.float32),
                                              "b": np.zeros(8, np.float32)})
    z = np.asarray(fig.data[0].z)
    assert z.shape == (2, 8)  # the widest layer has 8 filters: one cell each
    # layer a: filters 0..3 over 8 cells -> [0,0,1,1,2,2,3,3]; outside is level 0
    assert (z[0] > 0).tolist() == [False, False, True, True, False, False, True, True]
    assert z[0, 2] == 128 and z[0, 7] == 255  # scaled by the layer's largest norm
    assert (z[1] == 0).all()
    assert np.asarray(fig.data[0].customdata)[0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert "every filter shown" in fig.layout.title.subtitle.text
    assert "layer's largest" in fig.data[0].colorbar.title.text


def test_overview_heatmap_says_when_it_aggregates():
    gn = np.zeros(3000, np.float32)
    gn[2999] = 1.0
    fig = plots.overview_heatmap(["wide"], {"wide": gn})
    z = np.asarray(fig.data[0].z)
    assert z.shape == (1, plots.MAX_OVERVIEW_COLUMNS) and z[0, -1] == 255  # max, not sampled
    assert "largest of up to 3 filters" in fig.layout.title.subtitle.text


def test_filters_image_frames_selected_filters():
    w = np.random.default_rng(0).standard_normal((6, 1, 5, 5)).astype(np.float32)
    fig = plots.filters_image(w, np.array([1, 0, 1, 0, 0, 0], bool), 30)
    assert len(fig.layout.shapes) == 2
    with pytest.raises(ValueError, match="expected conv weights"):
        plots.filters_image(np.zeros((3, 4)), np.ones(3, bool), 0)


def _size_points():
    from pathviz.tickets.points import PATH_SERIES, baseline_points, retrained_points

    path = [{"series": PATH_SERIES, "method": "path", "kind": "path", "iteration": it,
             "params": p, "flops": 10 * p, "acc": a, "se": None, "seeds": 1, "epochs": None,
             "budget": None, "reference": None}
            for it, p, a in ((100, 17_000, 0.90), (200, 30_000, 0.95), (300, 61_000, 0.97))]
    entries = [{"method": m, "iteration": it, "reference": "demo-sgd", "epochs": 1, "seed": 0,
                "params": p, "flops": 10 * p, "oneshot": {"test_acc": a - 0.2},
                "finetuned": {"test_acc": a - 0.01}}
               for m in ("magnitude", "taylor") for it, p, a in ((100, 17_000, 0.9),
                                                                 (300, 61_000, 0.97))]
    rows = [{"name": f"it200-{i}-epochs{e}", "init": i, "kind": k, "iteration": 200,
             "budget": "epochs", "epochs_run": e, "seeds": 3, "params": 30_000,
             "flops": 300_000, "reference": ref,
             "test_acc": {"mean": acc, "std": 0.01, "se": 0.006, "n": 3}}
            for i, k, e, acc, ref in (("finetune", "ticket", 2, 0.96, None),
                                      ("finetune", "ticket", 140, 0.975, None),
                                      ("magnitude", "baseline", 2, 0.94, "demo-sgd"))]
    refs = [{"series": "full SGD (1 run: demo-sgd)", "method": "sgd", "kind": "reference",
             "iteration": None, "params": 61_706, "flops": 700_000, "acc": 0.96, "se": None,
             "seeds": 1, "epochs": None, "budget": None, "reference": None}]
    return path + baseline_points(entries) + retrained_points(rows) + refs


def test_size_accuracy_draws_every_method_with_its_style_and_the_marks():
    fig = plots.size_accuracy(_size_points(), x="params", selected=200, stop=100)
    traces = {t.name: t for t in fig.data}
    path = traces["SLBI path W* (not retrained)"]
    assert list(path.x) == [17_000, 30_000, 61_000] and list(path.y) == [90.0, 95.0, 97.0]
    one = traces["magnitude, one-shot, not retrained (from SGD run demo-sgd)"]
    fin = traces["magnitude, finetuned 1 epoch (from SGD run demo-sgd)"]
    assert one.line.dash == "dot" and fin.line.dash == "solid"
    assert one.line.color == fin.line.color == plots.METHOD_STYLE["magnitude"][0]
    assert fin.marker.symbol == "square" and list(fin.y) == pytest.approx([89.0, 96.0])
    assert traces["taylor, finetuned 1 epoch (from SGD run demo-sgd)"].marker.symbol == \
        "triangle-up"
    # two retrainings of the same support that differ in epochs are two legend entries
    short = traces["finetune (path ticket), retrained 2 epochs, support at 200 (3 seeds)"]
    long_ = traces["finetune (path ticket), retrained 140 epochs, support at 200 (3 seeds)"]
    assert short.mode == long_.mode == "markers"
    assert list(long_.error_y.array) == pytest.approx([0.6]) and list(long_.y) == [97.5]
    # side by side around the true size, which the hover data keeps
    xs = sorted(t.x[0] for t in fig.data if t.mode == "markers" and t.error_y.visible)
    assert xs[0] < 30_000 < xs[-1] and xs[-1] / xs[0] < 1.04
    assert short.customdata[0][1] == long_.customdata[0][1] == 30_000
    assert "magnitude (from SGD run demo-sgd), retrained 2 epochs, support at 200 (3 seeds)" \
        in traces
    sgd = traces["full SGD (1 run: demo-sgd)"]
    assert list(sgd.y) == [96.0, 96.0] and sgd.line.dash == "dash"
    assert list(sgd.x) == [10_000, 100_000]  # spans the whole axis
    assert list(fig.layout.xaxis.range) == [4.0, 5.0]  # from tick to tick: both ends labelled
    assert list(traces["selected iteration: W* at 200"].x) == [30_000]
    assert list(traces["suggested stop: W* at 100"].x) == [17_000]
    colours = {(t.marker.color, t.marker.symbol) for t in fig.data if t.mode != "lines"
               and not t.name.startswith(("selected", "suggested"))}
    assert len({c for c, _ in colours}) == 3  # path/finetune black, magnitude, taylor
    ax = fig.layout.xaxis
    assert ax.type == "log" and ax.title.text.startswith("parameters kept")
    assert fig.layout.yaxis.title.text == "test accuracy (%)"
    assert fig.layout.yaxis.range[0] == pytest.approx(68.0)  # lowest drawn (70%) - 2
    zoom = plots.size_accuracy(_size_points(), y_floor=90)
    assert list(zoom.layout.yaxis.range) == [90.0, 100.5]
    # the smallest network is labelled: a tick at or below it
    assert min(ax.tickvals) <= 17_000 and max(ax.tickvals) >= 61_000
    assert "10k" in ax.ticktext and "20k" in ax.ticktext
    flops = plots.size_accuracy(_size_points(), x="flops")
    assert list(flops.data[0].x) == [170_000, 300_000, 610_000]
    assert flops.layout.xaxis.title.text.startswith("multiply-accumulates")
    # a network of size 0 (nothing kept yet) cannot sit on a log axis: it is left out
    zero = dict(_size_points()[0], iteration=50, params=0, flops=0)
    assert list(plots.size_accuracy([zero] + _size_points()).data[0].x) == [17_000, 30_000,
                                                                             61_000]
    with pytest.raises(ValueError, match="params or flops"):
        plots.size_accuracy([], x="macs")


def test_log_ticks_cover_both_ends():
    vals, text = plots.log_ticks(17_000, 65_000)
    assert vals == [10_000, 20_000, 50_000, 100_000]
    assert text == ["10k", "20k", "50k", "100k"]
    assert plots.log_ticks(0, 10) == ([], [])


def test_size_points_csv_holds_every_point():
    from pathviz.tickets.points import POINT_COLUMNS, points_csv

    pts = _size_points()
    lines = points_csv(pts).strip().splitlines()
    assert lines[0].split(",") == list(POINT_COLUMNS) and len(lines) == len(pts) + 1


def test_heads_and_mlp_neurons_are_named_by_block():
    heads = {"name": "blocks.2.attn", "kind": "heads", "groups": 4}
    mlp = {"name": "encoder.layers.encoder_layer_1.mlp.0", "kind": "mlp", "groups": 3}
    assert plots.group_names(heads) == [f"block 2 · head {i}" for i in range(4)]
    assert plots.group_names(mlp) == [f"block 1 · MLP neuron {i}" for i in range(3)]
    assert plots.group_names({"name": "conv2", "kind": "conv", "groups": 2}) == [
        "filter 0", "filter 1"]
    assert plots.unit_plural(mlp) == "MLP neurons"
    # the overview's hover names the group under each cell, in entry order too
    gn = {"h": np.array([0, 1, 0, 3], np.float32), "m": np.array([2, 0, 1], np.float32)}
    names = {"h": plots.group_names(heads), "m": plots.group_names(mlp)}
    fig = plots.overview_heatmap(["h", "m"], gn, names=names,
                                 order={"h": np.array([3, 1, 0, 2]), "m": np.arange(3)})
    # rows bottom-up (plotly would not reorder a heatmap's text along a category axis), so
    # each row's text is its own layer's: the first layer is the last row, drawn on top
    d = fig.data[0]
    assert list(d.y) == ["m", "h"]
    assert d.text[1][0] == "block 2 · head 3" and d.text[1][1] == "block 2 · head 1"
    assert "block 1 · MLP neuron" in d.text[0][0] and "%{text}" in d.hovertemplate
    assert np.asarray(d.z)[1].max() == 255 and np.asarray(d.customdata)[1][0] == 3


def test_heatmap_frame_is_the_words_of_the_servers_figure():
    """The player draws the Overview heatmap from heatmap_frame: the same subtitle, axis and
    colour-bar words and ticks as the server's figure, for position and entry order."""
    gn = {"a": np.array([0, 2, 0, 4], np.float32), "b": np.ones(2000, np.float32)}
    for order in (None, {"a": np.arange(4)[::-1], "b": np.arange(2000)}):
        fig = plots.overview_heatmap(["a", "b"], gn, order=order)
        frame = plots.heatmap_frame([4, 2000], ordered=order is not None)
        bar = fig.data[0].colorbar
        assert frame["ticks"] == [[float(v), t] for v, t in zip(bar.tickvals, bar.ticktext)]
        assert frame["colorbar"] == bar.title.text
        assert frame["xtitle"] == fig.layout.xaxis.title.text
        assert frame["subtitle"] == fig.layout.title.subtitle.text
    assert "largest of up to 2 filters" in plots.heatmap_frame([4, 2000])["subtitle"]
    assert plots.heatmap_frame([4, 16])["subtitle"].endswith("every filter shown")
    assert plots.heatmap_height(3) == 300 and plots.heatmap_height(13) == 160 + 34 * 13
