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


def test_layer_figure_sorts_by_entry_and_shares_the_iteration_axis():
    gn = np.array([[0, 0, 0], [0, 1, 0], [2, 1, 0]], np.float32)  # [N=3, G=3]
    entry = np.array([2, 1, -1])
    stop = plots.StopMark(iteration=10, band=(0.8, 0.9), members=(10, 20))
    fig = plots.layer_figure(gn, gn + 1, np.array([0, 10, 20]), entry, "L", stop=stop)
    z = np.asarray(fig.data[0].z)
    # rows: filter 1 (entered at 1), filter 0 (at 2), filter 2 (never); 0 = outside
    assert (z > 0).tolist() == [[False, True, True], [False, False, True],
                                [False, False, False]]
    assert fig.layout.xaxis2.matches == "x" or fig.layout.xaxis.matches == "x2"
    assert fig.layout.xaxis3.side == "top" and list(fig.layout.xaxis3.ticktext) == ["0", "1", "2"]
    names = [t.name for t in fig.data if t.name]
    assert "‖W_g‖, entered at 10 (1)" in names and "‖W_g‖, never entered (1)" in names
    assert "suggested stop (iteration 10)" in names
    assert any(s.type == "line" and s.x0 == 10 for s in fig.layout.shapes)
    # the 1-SE set is never a span of iterations
    assert not any(s.type == "rect" for s in fig.layout.shapes)


def test_layer_figure_decimates_paths_to_screen_resolution():
    rng = np.random.default_rng(0)
    gn = rng.random((5000, 512)).astype(np.float32)
    fig = plots.layer_figure(gn, gn, np.arange(5000), np.zeros(512, np.int64), "big")
    points = sum(np.count_nonzero(np.isfinite(np.asarray(t.y, dtype=float)))
                 for t in fig.data if t.type == "scatter" and (t.name or "").startswith("‖W_g‖"))
    assert 512 * 20 <= points <= max(plots.MAX_PATH_POINTS, 512 * 20) + 512  # >= 20 a line
    assert not [t for t in fig.data if t.type == "scattergl"]  # SVG: no WebGL to start
    assert np.asarray(fig.data[0].z).shape == (512, plots.MAX_HEATMAP_COLUMNS)


def test_metrics_plot_labels_every_line_and_carries_iterations():
    it = np.arange(0, 50, 5)
    acc = np.where(np.arange(10) % 2 == 0, np.linspace(0.5, 0.9, 10), np.nan)
    m = {"test_acc": acc, "train_acc": np.linspace(0.4, 1, 10), "sparsity": np.linspace(1, 0, 10),
         "params_kept": np.linspace(0, 100, 10)}
    stop = plots.StopMark(iteration=30, band=(0.8, 0.9))
    fig = plots.metrics_plot(it, m, stop, weight_iterations=np.array([0, 25, 45]))
    test = next(t for t in fig.data if t.name == "test accuracy (W)")
    assert list(test.customdata) == [0, 10, 20, 30, 40]
    assert all(t.name for t in fig.data)  # a legend entry for every line
    # no val_acc_sparse: no zoomed band panel; panels accuracy, loss, sparsity, saves
    assert fig.layout.xaxis4.title.text == "iteration" and "xaxis5" not in fig.layout


def test_the_metrics_legend_is_placed_from_the_figure_bottom_not_under_the_plot():
    """A legend hung a fraction of the plot height under the plot climbs into the "iteration"
    axis title when it wraps into more rows (plotly shrinks the plot to make room): it sits at
    the figure's bottom edge instead, a few pixels above it, and plotly's margin grows to hold
    it (tests/e2e/test_figures_e2e.py measures the drawn boxes at 1024 and 1400 px)."""
    it = np.arange(0, 50, 5)
    fig = plots.metrics_plot(it, {"train_acc": np.linspace(0.4, 1, 10)})
    leg = fig.layout.legend
    assert (leg.orientation, leg.yref, leg.yanchor) == ("h", "container", "bottom")
    assert 0 < leg.y * fig.layout.height <= 20 and fig.layout.margin.autoexpand is not False


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


def test_metrics_plot_shows_the_1se_set_as_its_iterations_not_a_span():
    it, m, stop = _stop_run()
    fig = plots.metrics_plot(it, m, stop, weight_iterations=it[::3])
    inside = next(t for t in fig.data if t.name.startswith("within 1 SE of the best"))
    assert list(inside.customdata) == list(stop.members)
    assert 330 not in stop.members and 340 in stop.members  # a dip inside the old span
    assert all(y >= stop.band[0] - 1e-6 for y in inside.y)
    # the only rectangle is the band across the whole width: no span of iterations
    assert all(s.xref.endswith("domain") for s in fig.layout.shapes if s.type == "rect")
    # the band is legible: its own panel, zoomed so the band is a third of the axis
    zoom_axis = fig.layout[inside.yaxis.replace("y", "yaxis")]
    lo, hi = zoom_axis.range
    assert (stop.band[1] - stop.band[0]) / (hi - lo) >= 0.25
    band = [s for s in fig.layout.shapes if s.type == "rect"]
    assert [(b.y0, b.y1) for b in band] == [stop.band] and band[0].yref == inside.yaxis


def test_weight_saves_are_ticks_in_their_own_strip_not_points_on_the_data():
    it, m, stop = _stop_run()
    fig = plots.metrics_plot(it, m, stop, weight_iterations=it[::3])
    saves = [t for t in fig.data if t.name.startswith("weights saved")]
    assert sorted(x for t in saves for x in t.x) == it[::3].tolist()
    acc_axes = {t.yaxis for t in fig.data if "accuracy" in t.name}
    for t in saves:
        assert t.marker.symbol == "line-ns-open" and t.yaxis not in acc_axes
        strip = fig.layout[t.yaxis.replace("y", "yaxis")]
        assert strip.showticklabels is False and list(strip.range) == [0, 1]
    cand = next(t for t in saves if "1-SE set" in t.name)
    assert set(cand.x) == set(it[::3]) & set(stop.members)


def test_metrics_axes_start_at_meaningful_values():
    it, m, stop = _stop_run()
    fig = plots.metrics_plot(it, m, stop, weight_iterations=it[::3])
    acc = fig.layout.yaxis
    assert acc.range[0] == pytest.approx(0.1) and acc.range[1] >= 1.0  # from the data's floor
    by_title = {fig.layout[k].title.text: fig.layout[k] for k in fig.layout
                if k.startswith("yaxis") and fig.layout[k].title.text}
    assert by_title["loss"].rangemode == "tozero"
    assert list(by_title["fraction outside"].range)[0] == 0
    params = by_title["parameters kept"]
    assert params.range[0] == 0 and params.tickformat == "~s" and params.tickmode == "auto"
    assert plots.accuracy_floor([np.array([np.nan, 0.97, 0.99])]) == pytest.approx(0.9)
    assert plots.accuracy_floor([np.array([0.05, 0.5])]) == 0.0


def test_tradeoff_rings_the_stop():
    it = np.arange(0, 50, 5)
    acc = np.linspace(0.5, 0.9, 10)
    trade = plots.tradeoff_plot(np.linspace(0, 100, 10), acc, it,
                                plots.StopMark(iteration=40, band=(0.8, 0.9)))
    assert list(trade.data[0].customdata) == it.tolist()
    assert trade.data[1].name == "suggested stop (iteration 40)"


def test_filters_image_frames_selected_filters():
    w = np.random.default_rng(0).standard_normal((6, 1, 5, 5)).astype(np.float32)
    fig = plots.filters_image(w, np.array([1, 0, 1, 0, 0, 0], bool), 30)
    assert len(fig.layout.shapes) == 2
    with pytest.raises(ValueError, match="expected conv weights"):
        plots.filters_image(np.zeros((3, 4)), np.ones(3, bool), 0)


def test_compare_plot_distinct_colours_per_run():
    series = {f"r{k}": (np.arange(3), np.array([0, .5, 1])) for k in range(10)}
    fig = plots.compare_plot(series)
    assert [t.name for t in fig.data] == list(series)
    styles = {(t.line.color, t.line.dash) for t in fig.data}
    assert len(styles) == 10  # colours repeat after eight, with another dash


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
    # the Layer view's rows are the groups by name, in order of entry
    n = 5
    g = np.zeros((n, 4), np.float32)
    g[2:, 3], g[4:, 1] = 1.0, 1.0
    entry = np.array([-1, 4, -1, 2])
    fig = plots.layer_figure(g, g + 1, np.arange(n), entry, "blocks.2.attn",
                             names=plots.group_names(heads), unit="head")
    assert list(fig.data[0].y) == ["block 2 · head 3", "block 2 · head 1", "block 2 · head 0",
                                   "block 2 · head 2"]
    assert "heads by entry time" in fig.layout.title.text


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
