"""The accuracy-against-size chart in headless Chromium: every method is in its legend.

The run is the e2e LeNet-shaped path file with a hand-written ``baselines.json`` (all four
methods, one-shot and finetuned), one retrained ticket and one retrained baseline, and an SGD
sibling: what ``python -m pathviz.baselines`` and ``pathviz.retrain`` leave on disk.
"""

from __future__ import annotations

import json

import pytest

from pathviz import baselines, runs
from tests.e2e.conftest import NO_CHROMIUM, idle, make_full_run, serve


@pytest.fixture
def baselines_app(tmp_path):
    if NO_CHROMIUM:
        pytest.skip("Debian chromium is not installed (.ci/run installs it)")
    from tests.test_tickets import fake_ticket, sgd_run

    root = tmp_path / "checkpoints"
    paths = make_full_run(root, "bl")
    # the SGD sibling is found through the runs' config files, as the worker writes them
    paths.config.write_text(json.dumps({"model": "lenet5", "dataset": "digits", "seed": 0}))
    sgd_run(root, "bl-sgd", 0.93)
    entries = []
    for k, method in enumerate(baselines.METHODS):
        for it, params in ((100, 500), (200, 900), (295, 1400)):
            entries.append({"method": method, "iteration": it, "reference": "bl-sgd",
                            "epochs": 1, "seed": 0, "params": params + k, "flops": 10 * params,
                            "oneshot": {"test_acc": 0.3 + 0.1 * k},
                            "finetuned": {"test_acc": 0.6 + 0.05 * k}})
    runs.write_json_atomic(paths.baselines, {"schema_version": "1.0", "run": "bl",
                                             "results": entries})
    fake_ticket(paths.dir, "finetune", [0.8, 0.82, 0.81], iteration=200, params=900)
    fake_ticket(paths.dir, "taylor", [0.7, 0.72, 0.71], iteration=200, params=900)
    proc, log, url = serve(root, tmp_path / "streamlit.log", {"PATHVIZ_REFRESH": "0"})
    yield url
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


def test_size_chart_legend_names_every_method(baselines_app, browser) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 1800})
    page.goto(f"{baselines_app}/?run=bl&view=tickets&iteration=200")
    idle(page)
    page.wait_for_selector(".js-plotly-plot .legendtext")
    legend = page.eval_on_selector_all(".js-plotly-plot .legendtext",
                                       "els => els.map(e => e.textContent)")
    text = "\n".join(legend)
    assert "SLBI path W* (not retrained)" in text
    for method in baselines.METHODS:
        assert f"{method}, one-shot, not retrained (from SGD run bl-sgd)" in text, legend
        assert f"{method}, finetuned 1 epoch (from SGD run bl-sgd)" in text, legend
    assert "finetune (path ticket), retrained 3 epochs, support at 200 (3 seeds)" in text
    assert "taylor (dense reference not recorded), retrained 3 epochs, support at 200 " \
        "(3 seeds)" in text
    assert "full SGD (1 run: bl-sgd)" in text and "full SLBI W (end of run)" in text
    assert "selected iteration: W* at 200" in text
    # the first chart is the size chart: labelled log ticks up to above the largest (1,403)
    ticks = page.eval_on_selector_all(".js-plotly-plot", "ps => ps.map(p => Array.from("
                                      "p.querySelectorAll('.xtick text')).map(e => e.textContent))"
                                      )[0]
    assert len(ticks) >= 3 and ticks[-1] == "2k", ticks
    page.close()
