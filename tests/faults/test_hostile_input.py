"""Bad input that the module tests check one layer down, checked where the user meets it
(issue 12): ragged and malformed path files in the app and in export (defects 3 and 9),
markdown in a URL or a shared run's config (defect 8), and the train CLI pointed at a file or at
a folder pathviz did not make (defects 6 and 7).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
from streamlit.testing.v1 import AppTest

from pathviz import export, runs
from pathviz import inspect as inspect_cli
from pathviz import retrain as retrain_cli
from tests.conftest import line_of, make_run
from tests.test_store import INVALID, MALFORMED, _edit, write_file

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
# a markdown link or image that markdown would render: "[" or "![", text, "](": none escaped
LIVE_LINK = re.compile(r"(?<!\\)\[[^\]\n]*(?<!\\)\]\(")


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    r = tmp_path / "checkpoints"
    r.mkdir()
    monkeypatch.setenv("PATHVIZ_CHECKPOINTS", str(r))
    monkeypatch.setenv("PATHVIZ_REFRESH", "0")
    return r


def app(**query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def shown(at: AppTest) -> list[str]:
    """The raw markdown of every text element on the page."""
    return ([m.value for m in at.markdown] + [e.value for e in at.error] +
            [w.value for w in at.warning] + [i.value for i in at.info] +
            [c.value for c in at.caption] + [s.value for s in at.subheader] +
            [t.value for t in at.title])


def plain(at: AppTest) -> str:
    return re.sub(r"\\(.)", r"\1", "\n".join(shown(at)))


# ---- defect 3: a killed writer's ragged file in the app ----------------------------------------


def test_a_ragged_file_shows_its_consistent_snapshots_in_the_app(root):
    """iteration longer than a layer dataset (2 of 450 SIGKILLs): the app raised IndexError."""
    paths = make_run(root, "ragged", n=20)
    with h5py.File(paths.path, "a", libver="latest") as f:
        f["layers/fc1/gamma_norm"].resize(17, axis=0)
    at = app(run="ragged")
    # snapshot index 16, the last one every dataset holds (17 rows)
    assert (line_of(at)["it"], line_of(at)["index"]) == (80, 16)
    at = app(run="ragged", iteration="95")
    assert line_of(at)["it"] == 80
    for title in ("Layer", "Metrics & stopping", "Filters", "Export"):
        at.get("button_group")[0].set_value(title).run()
        assert not at.exception, (title, [e.value for e in at.exception])


# ---- defect 9: malformed path files in the app and in export -----------------------------------


def _malformed_run(root: Path, edit) -> runs.RunPaths:
    paths = runs.run_paths("bad", root)
    paths.dir.mkdir()
    write_file(paths.path)
    _edit(paths.path, edit)
    runs.write_status(paths, state="finished", reason="", snapshots=8, iteration=70,
                      total_iterations=70, config={"model": "x"}, heartbeat=0)
    return paths


@pytest.mark.parametrize("case,edit,message", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_a_malformed_path_file_is_one_sentence_in_the_app_and_in_export(root, capsys, case,
                                                                         edit, message):
    paths = _malformed_run(root, edit)
    at = app(run="bad")
    errors = [re.sub(r"\\(.)", r"\1", e.value) for e in at.error]
    assert any(re.search(message, e) for e in errors), errors
    assert "Traceback" not in plain(at)
    before = sorted(p.name for p in paths.dir.iterdir())
    assert export.main([str(paths.dir), "--iteration", "70"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("pathviz.export: error: ")
    assert re.search(message, err), err
    assert sorted(p.name for p in paths.dir.iterdir()) == before  # nothing written


# ---- issue 20, item 3: a file whose values break a rule, wherever the user meets it -----------

VIEW_TITLES = ("Overview", "Layer", "Metrics & stopping", "Filters", "Export", "Tickets",
               "Compare", "About the method")


def _folder(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*")}


CLIS = [("export", export.main, ["--iteration", "70"]),
        ("inspect", inspect_cli.main, []),
        ("retrain", retrain_cli.main, ["--iteration", "70", "--init", "rewind", "--epochs", "1"])]


@pytest.mark.parametrize("case,edit,message,rule", INVALID, ids=[c[0] for c in INVALID])
def test_a_file_that_breaks_a_rule_is_one_sentence_in_the_app_and_every_cli(root, capsys, case,
                                                                           edit, message, rule):
    """Each rule of pathviz.store.validate, met in the app, export, inspect and retrain: one
    sentence (a visible error in the app, exit 2 and one stderr line in a CLI), nothing written."""
    paths = _malformed_run(root, edit)
    at = app(run="bad")
    errors = [re.sub(r"\\(.)", r"\1", e.value) for e in at.error]
    assert any(re.search(message, e) for e in errors), errors
    assert "Traceback" not in plain(at)
    before = _folder(paths.dir)
    capsys.readouterr()
    for name, main, args in CLIS:
        assert main([str(paths.dir), *args]) == 2, name
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and err.startswith(f"pathviz.{name}: error: "), (name, err)
        assert re.search(message, err), (name, err)
        assert _folder(paths.dir) == before, name  # nothing written, nothing removed


def _reversed(paths: runs.RunPaths) -> None:
    """The campaign's file: snapshots/iteration stored in reverse order."""
    with h5py.File(paths.path, "a") as f:
        f["snapshots/iteration"][...] = f["snapshots/iteration"][...][::-1]


@pytest.mark.parametrize("state", ["finished", "running"])
def test_a_reversed_file_is_one_message_in_every_view_and_other_runs_still_work(root, state):
    """Issue 20, item 4: a StreamlitAPIException traceback on every view before. Now every
    view shows one error for that run, and the run beside it opens as usual in the same
    session; a live run's reversed file is an error too, not 'waiting for the worker'."""
    make_run(root, "good", n=30)
    bad = make_run(root, "reversed", n=30, state=state)
    _reversed(bad)
    if state == "running":  # a worker alive (this process) is following it
        runs.write_status(bad, state="running", pid=os.getpid(),
                          pid_start=runs.process_start_time(os.getpid()), iteration=145,
                          total_iterations=300)
    at = app(run="reversed")
    for title in VIEW_TITLES:
        at.get("button_group")[0].set_value(title).run()
        assert not at.exception, (title, [e.value for e in at.exception])
        errors = [re.sub(r"\\(.)", r"\1", e.value) for e in at.error]
        assert len(errors) == 1, (title, errors)
        assert re.search(r"reversed/path\.h5 is not a valid path file: snapshots/iteration goes "
                         r"from 145 to 140 at snapshot 1, but iterations must strictly increase; "
                         r"delete the run or restore the file", errors[0]), (title, errors)
        assert "Traceback" not in plain(at) and "Waiting" not in plain(at)
    at.get("button_group")[0].set_value("Overview").run()
    at.sidebar.selectbox[0].set_value("good").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert line_of(at)["it"] == 145


# ---- defect 8: user text is shown as text ------------------------------------------------------


@pytest.mark.parametrize("name", ["[click here](https://evil.example/login)",
                                  "![x](https://evil.example/pixel.png)",
                                  "<img src=https://evil.example/p.png>"])
def test_a_link_or_image_in_the_url_is_never_rendered(root, name):
    make_run(root, "ok", n=5)
    at = app(run=name)
    for text in shown(at):
        assert not LIVE_LINK.search(text) and not re.search(r"(?<!\\)<img", text), text
    assert "cannot exist" in plain(at)


def test_markdown_in_a_shared_runs_config_is_never_rendered(root):
    """A run folder from someone else whose config holds markdown in its values."""
    evil = "[click here](https://evil.example/login) ![x](https://evil.example/p.png)"
    paths = make_run(root, "shared", n=21, weights_every=10)
    with h5py.File(paths.path, "a") as f:
        cfg = json.loads(f.attrs["config"])
        cfg.update(model=evil, dataset=evil, note=evil)
        f.attrs["config"] = json.dumps(cfg)
    paths.config.write_text(json.dumps(cfg))
    st = json.loads(paths.status.read_text())
    st["config"] = cfg
    paths.status.write_text(json.dumps(st))
    at = app(run="shared", iteration="50")
    for title in ("Layer", "Metrics & stopping", "Export", "About the method"):
        at.get("button_group")[0].set_value(title).run()
        assert not at.exception, (title, [e.value for e in at.exception])
        for text in shown(at):
            assert not LIVE_LINK.search(text), (title, text)


# ---- defects 6 and 7: train --out at a file or at a folder pathviz did not make ----------------


def train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pathviz.train", "--no-progress", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_train_out_at_a_file_is_one_sentence_and_the_file_is_kept(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    for extra in ([], ["--overwrite"]):
        p = train("--preset", "demo", "--out", str(f), *extra)
        assert p.returncode == 2, p.stderr
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("pathviz.train: error: ")
        assert "is a file, not a folder" in lines[0] and "\x1b" not in p.stderr
        assert f.read_text() == "mine"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("extra", [[], ["--overwrite"], ["--resume"]])
def test_train_out_at_a_folder_pathviz_did_not_make_touches_nothing(tmp_path, extra):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "status.json").write_text('{"mine": true}')
    (folder / "config.json").write_text('{"also": "mine"}')
    (folder / "data.csv").write_text("1,2,3")
    before = _files(folder)
    p = train("--preset", "demo", "--out", str(folder), *extra)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pathviz.train: error: "), p.stderr
    assert "Traceback" not in p.stderr and "\x1b" not in p.stderr
    assert _files(folder) == before
