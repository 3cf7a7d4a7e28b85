"""pathviz.ui.scrub: figures whose spec (and so Streamlit widget id) is the same on every run."""

from __future__ import annotations

import pickle

import numpy as np

from pathviz import plots
from pathviz.ui.scrub import clickable


def test_a_clickable_figure_has_the_spec_of_its_cached_copies():
    """st.cache_data hands out unpickled copies; a freshly built figure must serialise the same
    way, or the chart's widget id changes after the first run and a click on it is lost."""
    it = np.arange(0, 300, 5)
    m = {"val_acc": np.linspace(0, 1, 60), "train_loss": np.linspace(1, 0, 60),
         "params_kept": np.linspace(0, 500, 60), "sparsity": np.linspace(1, 0, 60)}
    rng = np.random.default_rng(0)
    g = rng.random((60, 8)).astype(np.float32)
    for fig in (plots.metrics_plot(it, m),
                plots.layer_figure(g, g + 1, it, np.arange(8), "conv2")):
        copy = pickle.loads(pickle.dumps(fig))
        # (plotly 6 lists "xaxis" elsewhere in the copy than in ``fig`` itself)
        fresh = clickable(fig)
        assert fresh.to_json() == copy.to_json() == pickle.loads(pickle.dumps(fresh)).to_json()
