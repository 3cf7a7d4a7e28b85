"""plots: figures built from arrays carry the right data."""

from __future__ import annotations

import numpy as np
import pytest

from pathviz import plots


def test_decimate_keeps_ends_and_limit():
    assert plots.decimate(5, 10).tolist() == [0, 1, 2, 3, 4]
    idx = plots.decimate(10_000, 100)
    assert idx[0] == 0 and idx[-1] == 9999 and len(idx) <= 100


def test_overview_heatmap_marks_outside_filters_empty():
    fig = plots.overview_heatmap(["a", "b"], {"a": np.array([0, 2, 0, 4], np.float32),
                                              "b": np.zeros(3, np.float32)}, columns=8)
    z = np.asarray(fig.data[0].z, dtype=float)
    assert z.shape == (2, 8)
    # layer a: filters 0..3 over 8 cells -> [0,0,1,1,2,2,3,3]; outside (0) is NaN; scaled by max
    np.testing.assert_array_equal(np.isnan(z[0]), [True, True, False, False, True, True,
                                                   False, False])
    assert z[0, 2] == pytest.approx(0.5) and z[0, 7] == pytest.approx(1.0)
    assert np.isnan(z[1]).all()
    assert fig.layout.plot_bgcolor == plots.OUTSIDE_COLOR


def test_layer_heatmap_sorts_by_entry_and_marks_selection():
    gn = np.array([[0, 0, 0], [0, 1, 0], [2, 1, 0]], np.float32)  # [N=3, G=3]
    entry = np.array([2, 1, -1])
    fig = plots.layer_heatmap(gn, np.array([0, 10, 20]), entry, 10, "L")
    z = np.asarray(fig.data[0].z, dtype=float)
    # rows: filter 1 (entered at 1), filter 0 (at 2), filter 2 (never)
    np.testing.assert_array_equal(np.nan_to_num(z), [[0, 1, 1], [0, 0, 2], [0, 0, 0]])
    assert fig.layout.shapes[0].x0 == 10


def test_path_plot_splits_in_and_out_and_decimates():
    rng = np.random.default_rng(0)
    wn = rng.random((5000, 300)).astype(np.float32)
    inside = np.zeros(300, bool)
    inside[:10] = True
    fig = plots.path_plot(wn, np.arange(5000), inside, 100)
    total = sum(np.count_nonzero(np.isfinite(np.asarray(t.y, dtype=float))) for t in fig.data)
    assert total <= plots.MAX_PATH_POINTS + 300
    names = [t.name for t in fig.data]
    assert names == ["‖W_g‖, outside the support (290)", "‖W_g‖, in the support (10)"]


def test_metrics_and_tradeoff_carry_iterations_for_clicks():
    it = np.arange(0, 50, 5)
    acc = np.where(np.arange(10) % 2 == 0, np.linspace(0.5, 0.9, 10), np.nan)
    m = {"test_acc": acc, "train_acc": np.linspace(0.4, 1, 10), "sparsity": np.linspace(1, 0, 10),
         "params_kept": np.linspace(0, 100, 10)}
    fig = plots.metrics_plot(it, m, 20, 30, weight_iterations=np.array([0, 25, 45]))
    test = next(t for t in fig.data if t.name == "test_acc")
    assert list(test.customdata) == [0, 10, 20, 30, 40]
    marks = next(t for t in fig.data if t.name == "weights saved (exportable)")
    assert list(marks.x) == [0, 25, 45] and marks.marker.symbol == "diamond"
    trade = plots.tradeoff_plot(m["params_kept"], acc, it, 20, 40)
    assert list(trade.data[0].customdata) == [0, 10, 20, 30, 40]
    assert [t.name for t in trade.data[1:]] == ["selected", "suggested stop"]


def test_filters_image_frames_selected_filters():
    w = np.random.default_rng(0).standard_normal((6, 1, 5, 5)).astype(np.float32)
    fig = plots.filters_image(w, np.array([1, 0, 1, 0, 0, 0], bool), 30)
    assert len(fig.layout.shapes) == 2
    with pytest.raises(ValueError, match="expected conv weights"):
        plots.filters_image(np.zeros((3, 4)), np.ones(3, bool), 0)


def test_compare_plot_one_line_per_run():
    fig = plots.compare_plot({"a": (np.arange(3), np.array([0, .5, 1])),
                              "b": (np.arange(4), np.zeros(4))})
    assert [t.name for t in fig.data] == ["a", "b"]


def test_overview_keeps_its_axes_when_nothing_is_selected():
    fig = plots.overview_heatmap(["a", "b"], {"a": np.zeros(3), "b": np.zeros(5)})
    assert list(fig.layout.xaxis.range) == [0, 1]
    assert list(fig.layout.yaxis.categoryarray) == ["b", "a"]  # drawn bottom-up: "a" on top
