"""pathviz.report: the HTML report's content and the CLI's refusals, without a browser (the
browser checks are tests/e2e/test_report_e2e.py), and the figures folder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from pathviz import inspect, runs
from pathviz.report.__main__ import main
from pathviz.store import PathWriter, Snapshot
from pathviz.ui import jsbundle
from tests.conftest import make_run

HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
LINK = "see http://evil.example/x and [m](http://evil.example/m)"


def hostile_run(root: Path, name: str = "hostile.run") -> runs.RunPaths:
    """A small run whose config, model, data set, layer name and status reason are hostile
    text, and whose config names paths on the machine that made it."""
    paths = runs.run_paths(name, root)
    paths.dir.mkdir(parents=True)
    layer = "conv<b>x<b>"  # no "/": HDF5 names cannot hold one
    layers = [{"name": layer, "param": "c.weight", "kind": "conv", "shape": [4, 1, 3, 3],
               "penalty": "group", "groups": 4}]
    cfg = {"model": HOSTILE, "dataset": LINK, "note": HOSTILE, "out": str(paths.dir),
           "data_root": "/home/someone/secret-data"}
    with PathWriter(paths.path, config=cfg, layers=layers,
                    weights=[{"name": "c.weight", "shape": [4, 1, 3, 3], "dtype": "float32"}],
                    model={"name": HOSTILE, "params_total": 36},
                    data={"dataset": LINK, "n_val": 100}) as w:
        for i in range(12):
            gn = np.where(np.arange(4) < i // 3, 0.1 * (i + 1), 0).astype(np.float32)
            m = {"train_loss": 1.0, "train_acc": 0.5, "lr": 0.1, "sparsity": 0.5}
            if i % 2 == 0:
                m.update(val_acc_sparse=0.5 + 0.02 * i, test_acc_sparse=0.5 + 0.01 * i,
                         params_kept=float(9 * (i // 3)), val_acc=0.6, test_acc=0.6)
            w.append(Snapshot(i * 10, i / 4, float(i), m, {layer: (gn, gn + 1, (gn > 0) * 9)}))
    runs.write_status(paths, state="failed", reason=f"{HOSTILE} {LINK}", snapshots=12,
                      iteration=110, total_iterations=110, config=cfg, heartbeat=0)
    return paths


def stop_cells(text: str) -> dict[str, object]:
    """The stop table's figures as the page holds them (data-value, JSON)."""
    import html

    return {k: json.loads(html.unescape(v))
            for k, v in re.findall(r'data-key="(\w+)" data-value="([^"]*)"', text)}


def test_report_holds_inspects_stop_figures_and_the_player(tmp_path, capsys):
    paths = make_run(tmp_path / "ck", "tiny")
    out = tmp_path / "r.html"
    assert main([str(paths.dir), "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    text = out.read_text()
    assert inspect.main([str(paths.dir), "--json"]) == 0
    stop = json.loads(capsys.readouterr().out)["stop"]
    cells = stop_cells(text)
    assert cells == {k: stop[k] for k in ("iteration", "params_kept", "flops_kept", "val_acc",
                                          "test_acc_sparse")}
    assert f"{100 * stop['test_acc_sparse']:.2f} %" in text
    assert "function pvBridge(" in text and "export default" not in text  # the app's player
    assert "uPlot" in text
    # nothing that loads from elsewhere, and the run's folder is not named
    assert not re.search(r"(src|href)=\"?(https?:)?//", text)
    assert str(tmp_path) not in text
    assert "<math" in text  # the method's equations, without a renderer


def test_report_opens_at_a_chosen_iteration(tmp_path):
    paths = make_run(tmp_path / "ck", "tiny")
    out = tmp_path / "r.html"
    assert main([str(paths.dir), "--out", str(out), "--iteration", "15"]) == 0
    data = json.loads(re.search(r'id="pv-data">(.*?)</script>', out.read_text(), re.S).group(1))
    assert data["player"]["index"] == 3 and data["start"] == 3


@pytest.mark.parametrize("args, words", [
    (["{ck}/nope"], "has no path.h5"),
    (["{ck}/tiny", "--out", "{tmp}/missing/r.html"], "does not exist"),
    (["{ck}/tiny", "--iteration", "7"], "is not one of the path's snapshots"),
    (["{ck}/tiny", "--iteration", "last"], "must be stop or an iteration"),
    (["{ck}/tiny", "--outt", "x.html"], "did you mean --out?"),
    (["{ck}/bad"], "cannot be read"),
])
def test_bad_input_is_one_sentence_and_exit_2(tmp_path, capsys, monkeypatch, args, words):
    ck = tmp_path / "ck"
    make_run(ck, "tiny")
    (ck / "nope").mkdir()
    (ck / "bad").mkdir()
    (ck / "bad" / "path.h5").write_bytes(b"not an HDF5 file at all")
    monkeypatch.chdir(tmp_path)
    assert main([a.format(ck=ck, tmp=tmp_path) for a in args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pathviz.report: error:") and words in err
    assert "\n" not in err and "Traceback" not in err
    assert not list(tmp_path.glob("*.html"))


def test_an_existing_file_is_kept_without_force(tmp_path, capsys):
    paths = make_run(tmp_path / "ck", "tiny")
    out = tmp_path / "r.html"
    out.write_text("mine")
    assert main([str(paths.dir), "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert out.read_text() == "mine"
    assert main([str(paths.dir), "--out", str(out), "--force"]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")


def test_hostile_text_is_escaped_and_local_paths_left_out(tmp_path):
    paths = hostile_run(tmp_path / "ck")
    out = tmp_path / "r.html"
    assert main([str(paths.dir), "--out", str(out)]) == 0
    text = out.read_text()
    assert HOSTILE not in text and "<b>x<b>" not in text
    assert "&lt;img src=x onerror=" in text  # shown, as text
    assert text.count("<script") == 2  # the data and the player, nothing injected
    assert "http://evil" not in text.split('id="pv-data"')[0]  # no bare URL to auto-link
    assert "secret-data" not in text and str(tmp_path) not in text


def test_figures_are_svg_and_300_dpi_png(tmp_path, capsys):
    from PIL import Image

    paths = make_run(tmp_path / "ck", "tiny")
    figs = tmp_path / "figs"
    assert main([str(paths.dir), "--figures", str(figs)]) == 0
    names = sorted(p.name for p in figs.iterdir())
    assert names == ["overview.png", "overview.svg", "path.png", "path.svg", "size.png",
                     "size.svg"]
    for n in ("overview", "path", "size"):
        assert "<svg" in (figs / f"{n}.svg").read_text()
        with Image.open(figs / f"{n}.png") as im:
            assert round(im.info["dpi"][0]) == 300
    assert not list(tmp_path.glob("*.html"))  # --figures alone writes no report
    assert main([str(paths.dir), "--figures", str(figs)]) == 2  # no silent overwrite
    assert "--force" in capsys.readouterr().err


def test_page_script_binds_the_entry_module():
    s = jsbundle.page_script()
    assert s.count("function pvBridge(") == 1 and "export default" not in s
    assert jsbundle.script().replace("export default function (", "function pvBridge(") == s


def test_app_export_view_offers_the_report(tmp_path, monkeypatch):
    from pathviz.ui.export import report_html
    from tests.test_app import app, view

    root = tmp_path / "checkpoints"
    monkeypatch.setenv("PATHVIZ_CHECKPOINTS", str(root))
    monkeypatch.setenv("PATHVIZ_REFRESH", "0")
    paths = make_run(root, "exp", n=21, weights_every=10)
    at = view(app(run="exp", iteration="55"), "Export")  # no weights there: offered anyway
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Download report (HTML)" in labels
    page = report_html(str(paths.dir), 55).decode()
    assert page.startswith("<!DOCTYPE html>") and "function pvBridge(" in page
    assert '"index": 11' in page  # it opens where the app was
    assert "iteration 56 is not one of the path" in report_html(str(paths.dir), 56).decode()


def test_the_report_needs_no_torch(tmp_path):
    import subprocess
    import sys

    paths = make_run(tmp_path / "ck", "tiny")
    code = ("import sys\nfrom pathviz.report.__main__ import main\n"
            f"assert main([{str(paths.dir)!r}, '--out', {str(tmp_path / 'r.html')!r}, "
            f"'--figures', {str(tmp_path / 'f')!r}]) == 0\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip().splitlines()
    assert out[-1] == "False"


def test_a_demo_sized_path_fits_5_mb_whole(tmp_path):
    # the demo's shape: 2,521 snapshots of three Γ layers (16, 120 and 84 groups)
    paths = make_run(tmp_path / "ck", "demo", n=2521, weights_every=30,
                     groups={"conv2": 16, "conv3": 120, "fc1": 84})
    out = tmp_path / "r.html"
    assert main([str(paths.dir), "--out", str(out)]) == 0
    text = out.read_text()
    assert out.stat().st_size <= 5_000_000
    assert "holds every one of the path&#x27;s 2,521 snapshots" in text


def test_a_large_path_is_sampled_as_the_app_samples_it_and_says_so(tmp_path, monkeypatch):
    from pathviz.ui import player

    paths = make_run(tmp_path / "ck", "big", n=60)
    monkeypatch.setattr(player, "BUDGET", 60 * 62 // 3)  # a third of the rows (62 groups)
    out = tmp_path / "r.html"
    assert main([str(paths.dir), "--out", str(out)]) == 0
    text = out.read_text()
    assert "the Overview heatmap of every 4th snapshot (and the last)" in text
    data = json.loads(re.search(r'id="pv-data">(.*?)</script>', text, re.S).group(1))
    assert data["player"]["levels"]["stride"] == 4
