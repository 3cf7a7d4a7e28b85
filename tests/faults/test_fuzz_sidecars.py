"""Fuzzing the run folder's sidecar files (issue 35, item 3): ``config.json``,
``manifest.json``, ``status.json``, a ticket's ``ticket.json``, ``tickets/launch.json`` and
``baselines.json`` of a sound run are replaced by malformed JSON, invalid UTF-8, JSON of the
wrong type, huge numbers (``1e999``, 400-digit integers), the ``NaN``/``Infinity`` literals
Python's json reads, nesting 100,000 deep, or a sound file with one field given a hostile
value. Then the run list (:func:`pathviz.runs.list_runs`), ``python -m pathviz.inspect``,
``python -m pathviz.train --resume`` (stopped where it would start training) and the app's
views either work or say one sentence (exit 2, or a note on the page); never a traceback;
and the folder hashes the same before and after.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from streamlit.testing.v1 import AppTest

from pathviz import inspect as inspect_cli
from pathviz import runs, train
from tests.conftest import make_run
from tests.faults.fuzz import fuzz, one_sentence, tree_hash

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
_COUNT = itertools.count()

TICKET = {"schema_version": "1.0", "name": "rewind-it20", "iteration": 20, "init": "rewind",
          "kind": "ticket", "budget": "epochs", "epochs": 2, "epochs_run": 2, "seeds": [0],
          "params": 1000, "flops": 20000, "params_full": 4000, "flops_full": 90000,
          "dataset": "digits", "lr": 0.05}
BASELINES = {"schema_version": "1.0", "results": [
    {"method": "magnitude", "iteration": 20, "reference": "self", "epochs": 1, "seed": 0,
     "params": 1000, "flops": 20000, "path_params": 1100, "path_flops": 21000,
     "oneshot": {"test_acc": 0.5}, "finetuned": {"test_acc": 0.7}}]}
LAUNCH = {"pid": 1, "pid_start": 1, "cmd": ["python"], "started": 0.0}
EXPORTED = "exports/run-iter95-compact.pt2"  # an earlier export of the last iteration
REPORT = {"iteration": 95, "mode": "compact", "format": "pt2", "file": "", "file_size": 10,
          "params_before": 4000, "params_after": 1000, "macs_before": 90000,
          "macs_after": 20000, "max_abs_diff_compact_vs_masked": 1e-7, "test_acc": 0.9,
          "warnings": ["no test accuracy: a note"], "layers": [{"layer": "conv1", "kept": 3}]}

# where each sidecar lives in the run folder, relative to it
FILES = {"config": runs.CONFIG_FILE, "manifest": runs.MANIFEST_FILE,
         "status": runs.STATUS_FILE, "ticket": f"tickets/{TICKET['name']}/ticket.json",
         "launch": "tickets/launch.json", "baselines": runs.BASELINES_FILE,
         "export report": EXPORTED + ".json"}
# the view that reads each file (the others are read by every page)
VIEW_OF = {"ticket": "tickets", "launch": "tickets", "baselines": "tickets",
           "export report": "export"}


@pytest.fixture(scope="module")
def sound(tmp_path_factory) -> Path:
    """A finished run (stopped, with a resume state, so --resume reads its config) with a
    ticket, a launch record and baselines: every sidecar present and sound."""
    root = tmp_path_factory.mktemp("sound")
    paths = make_run(root, "run", n=20)
    runs.write_status(paths, state="stopped", reason="stopped by the user")
    paths.resume.write_bytes(b"not read before the config is checked")
    runs.record_files(paths)
    tdir = paths.dir / "tickets" / TICKET["name"]
    tdir.mkdir(parents=True)
    (tdir / "ticket.json").write_text(json.dumps(TICKET))
    (paths.dir / "tickets" / "launch.json").write_text(json.dumps(LAUNCH))
    paths.baselines.write_text(json.dumps(BASELINES))
    (paths.dir / "exports").mkdir()
    (paths.dir / EXPORTED).write_bytes(b"an exported file")
    (paths.dir / FILES["export report"]).write_text(json.dumps(
        {**REPORT, "file": str(paths.dir / EXPORTED)}))
    return paths.dir


def _sound_json(sound: Path, which: str):
    return json.loads((sound / FILES[which]).read_text())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10 ** 30, 10 ** 30) | st.floats() |
    st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=4),
    max_leaves=10)
HOSTILE_TEXT = [b"", b"{", b'{"state": ', b"null", b"[]", b"0", b'"running"', b"\xff\xfe{}",
                b"NaN", b"Infinity", b"-Infinity", b"1e999", b"9" * 400, b'{"a": 1e999}',
                b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
                b'{"state": "running", "pid": 1e999, "heartbeat": 1e999}',
                b'{"state": "running", "pid": "1", "pid_start": [], "heartbeat": "x"}',
                b'{"files": 7}', b'{"files": [1, null, {}]}', b"\x00" * 64]
LITERALS = [float("nan"), float("inf"), -float("inf"), 10 ** 400, -(10 ** 400), 2 ** 63,
            -1, 0, 1e308, "", "x" * 5000, [], {}, None, True, "NaN", "../../etc", "\x00"]


def _dumps(value) -> bytes:
    return json.dumps(value).encode()  # NaN and Infinity come out as their bare literals


@st.composite
def sidecars(draw, sound: Path):
    """(which file, its new bytes, what was done)."""
    which = draw(st.sampled_from(sorted(FILES)))
    how = draw(st.sampled_from(["text", "json", "field", "field", "truncated"]))
    if how == "text":
        return which, draw(st.sampled_from(HOSTILE_TEXT)), how
    if how == "json":
        return which, _dumps(draw(json_values)), how
    data = _sound_json(sound, which)
    if how == "truncated":
        raw = _dumps(data)
        return which, raw[:draw(st.integers(0, len(raw) - 1))], how
    # one field of the sound file given a hostile value (the results' first entry for baselines)
    target = data["results"][0] if which == "baselines" else data
    key = draw(st.sampled_from(sorted(target) + ["results"] * (which == "baselines")))
    value = draw(st.sampled_from(LITERALS) | json_values)
    if key == "results" and which == "baselines":
        data["results"] = value
    else:
        target[key] = value
    return which, _dumps(data), f"{how} {key}"


def _copy(sound: Path, work: Path) -> Path:
    root = work / f"w{next(_COUNT)}"
    root.mkdir()
    shutil.copytree(sound, root / "run", symlinks=True)
    return root


def _cli(main, argv: list[str], prog: str, ok: tuple) -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except _Accepted:
            rc = "accepted"
    if rc == 2:
        one_sentence(err.getvalue(), f"{prog}: error: ")
    else:
        assert rc in ok, (rc, out.getvalue()[-500:], err.getvalue()[-2000:])
    if currently_in_test_context():  # (the sweep runs outside hypothesis)
        event(f"{prog}: {rc}")


class _Accepted(BaseException):
    pass


@pytest.fixture
def no_training(monkeypatch):
    def accept(*args, **kwargs):
        raise _Accepted

    monkeypatch.setattr(train, "load_plan", accept)


def _everything_but_the_page(sound: Path, work: Path, monkeypatch, which: str, raw: bytes,
                             how: str) -> None:
    root = _copy(sound, work)
    run = root / "run"
    (run / FILES[which]).write_bytes(raw)
    monkeypatch.setenv("PATHVIZ_CHECKPOINTS", str(root))
    before = tree_hash(root)
    listed = runs.list_runs(root)
    assert [r.name for r in listed] == ["run"]
    for r in listed:  # what the run picker and the runs table print
        str(r.state), str(r.reason), r.model, r.dataset, int(r.snapshots), r.resumable  # noqa: B018
        f"{r.iteration}/{r.total_iterations}", float(r.updated), int(r.processes)  # noqa: B018
    _cli(inspect_cli.main, [str(run), "--json"], "pathviz.inspect", (0,))
    _cli(inspect_cli.main, [str(run)], "pathviz.inspect", (0,))
    _cli(train.main, ["--resume", "--out", str(run), "--no-progress"], "pathviz.train",
         ("accepted",))
    _cli(train.main, ["--preset", "demo", "--out", str(run), "--overwrite"], "pathviz.train",
         ("accepted",))
    assert tree_hash(root) == before, f"{which} ({how}) led to a write in the run folder"
    shutil.rmtree(root)


@pytest.mark.parametrize("which", sorted(FILES))
def test_every_hostile_text_in_every_sidecar_is_one_sentence(sound, tmp_path, no_training,
                                                              monkeypatch, which):
    """The sweep: each file gets each of the hostile texts (21 each), not a random few."""
    for raw in HOSTILE_TEXT:
        _everything_but_the_page(sound, tmp_path, monkeypatch, which, raw, f"text {raw[:20]!r}")


FIELD_VALUES = [10 ** 400, float("nan"), float("inf"), [], "x", None, {"a": [1]}]


@pytest.mark.parametrize("which", sorted(FILES))
def test_every_field_of_every_sidecar_with_each_hostile_value(sound, tmp_path, no_training,
                                                               monkeypatch, which):
    """The field sweep: each top-level field of each sound file (of the first baselines entry)
    set to each of a 400-digit integer, NaN, Infinity, a list, text, null and an object."""
    data = _sound_json(sound, which)
    target = data["results"][0] if which == "baselines" else data
    for key in sorted(target):
        for value in FIELD_VALUES:
            edited = json.loads(json.dumps(data))
            (edited["results"][0] if which == "baselines" else edited)[key] = value
            _everything_but_the_page(sound, tmp_path, monkeypatch, which, _dumps(edited),
                                     f"field {key} = {str(value)[:20]}")


@fuzz(100)
@given(data=st.data())
def test_a_hostile_sidecar_is_one_sentence_in_the_run_list_inspect_and_resume(
        sound, tmp_path_factory, no_training, monkeypatch, data):
    which, raw, how = data.draw(sidecars(sound), label="sidecar")
    event(f"{which}: {how.split()[0]}")
    _everything_but_the_page(sound, tmp_path_factory.getbasetemp(), monkeypatch, which, raw, how)


PAGE_TEXTS = [b"", b"null", b"[]", b"\xff\xfe{}", b"NaN", b"[" * 100_000 + b"]" * 100_000]


@pytest.mark.parametrize("which", sorted(FILES))
def test_hostile_texts_in_a_sidecar_leave_the_page_that_reads_it_working(sound, tmp_path,
                                                                          monkeypatch, which):
    """The page's sweep: the view that reads each file, with six texts of every kind."""
    for raw in PAGE_TEXTS:
        _page(sound, tmp_path, monkeypatch, which, raw, VIEW_OF.get(which, "overview"),
              f"text {raw[:20]!r}")


@fuzz(24)
@given(data=st.data())
def test_a_hostile_sidecar_is_a_note_in_every_view(sound, tmp_path_factory, monkeypatch, data):
    which, raw, how = data.draw(sidecars(sound), label="sidecar")
    view = VIEW_OF.get(which) or data.draw(st.sampled_from(
        ["overview", "tickets", "compare", "metrics", "export"]), label="view")
    event(f"{which}: {how.split()[0]}")
    _page(sound, tmp_path_factory.getbasetemp(), monkeypatch, which, raw, view, how)


def _page(sound: Path, work: Path, monkeypatch, which: str, raw: bytes, view: str,
          how: str) -> None:
    root = _copy(sound, work)
    (root / "run" / FILES[which]).write_bytes(raw)
    monkeypatch.setenv("PATHVIZ_CHECKPOINTS", str(root))
    monkeypatch.setenv("PATHVIZ_REFRESH", "0")
    before = tree_hash(root)
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["run"] = "run"
    at.query_params["view"] = view
    at.run()
    assert not at.exception, (which, how, [e.value for e in at.exception])
    assert tree_hash(root) == before, f"{which} ({how}) led to a write in the run folder"
    shutil.rmtree(root)
