"""Hostile run folders (issue 12, acceptance 2 and defects 1 and 2): a shared run whose stored
config names a data root full of pickles that write a marker file when unpickled, a resume.pt
and an export that are pickles too, and symbolic links that point out of the run folder.

Exported from the CLI (with and without ``--data-root`` at the hostile folder) and from the app's
Export button, every case asserts: the marker never appears, the user sees one sentence (a
refusal with exit 2, or a note), no traceback, and nothing outside the run folder is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
from streamlit.testing.v1 import AppTest

from pathviz import export, runs
from tests.conftest import plain, record_lenet_run

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
ITERATION = 12  # the run's last iteration, which has saved weights
CIFAR_FILES = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
               "test_batch", "batches.meta"]


class Payload:
    """Unpickling this calls ``open(marker, "w")``: a file appears if anything unpickles it."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory) -> Path:
    """A real LeNet-5/digits run: 12 SLBI iterations, weights at 0, 6 and 12."""
    d = tmp_path_factory.mktemp("clean") / "clean"
    assert record_lenet_run(d, weights_every=6, epochs=1, stop_at=ITERATION) == ITERATION
    return d


@pytest.fixture
def world(tmp_path, clean_run, monkeypatch) -> dict[str, Path]:
    """A checkpoints root holding the hostile run ``shared``, its hostile data root beside it,
    and the marker path that any unpickling would create."""
    root = tmp_path / "checkpoints"
    root.mkdir()
    marker = tmp_path / "MARKER"
    evil = tmp_path / "evil_data"
    batches = evil / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    for f in CIFAR_FILES:
        (batches / f).write_bytes(pickle.dumps(Payload(marker), protocol=2))
    run = root / "shared"
    shutil.copytree(clean_run, run)
    with h5py.File(run / runs.PATH_FILE, "a") as f:  # the run says: CIFAR-10 from evil_data
        cfg = json.loads(f.attrs["config"])
        cfg.update(dataset="cifar10", data_root=str(evil))
        f.attrs["config"] = json.dumps(cfg)
        f.attrs["data"] = json.dumps({"dataset": "cifar10", "root": str(evil)})
    (run / runs.CONFIG_FILE).write_text(json.dumps(cfg))
    # pickles where a torch.load could be tried: the resume state and a planted export
    (run / runs.RESUME_FILE).write_bytes(pickle.dumps(Payload(marker), protocol=2))
    (run / "exports").mkdir()
    (run / "exports" / "planted.pth").write_bytes(pickle.dumps(Payload(marker), protocol=2))
    runs.write_status(runs.RunPaths(run), state="finished", reason="", snapshots=ITERATION + 1,
                      iteration=ITERATION, total_iterations=ITERATION, config=cfg, heartbeat=0)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("the user's own file")
    monkeypatch.setenv("PATHVIZ_CHECKPOINTS", str(root))
    monkeypatch.setenv("PATHVIZ_REFRESH", "0")
    return {"tmp": tmp_path, "root": root, "run": run, "evil": evil, "marker": marker,
            "outside": outside}


def tree(folder: Path, skip: Path | None = None) -> dict[str, str]:
    """{relative path: sha256 (or link target)} of everything under ``folder`` but ``skip``."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        if skip is not None and (here == skip or skip in here.parents):
            dirnames[:] = []
            continue
        for name in filenames + [d for d in dirnames if (here / d).is_symlink()]:
            p = here / name
            rel = str(p.relative_to(folder))
            out[rel] = ("-> " + os.readlink(p)) if p.is_symlink() else \
                hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def one_sentence(text: str) -> str:
    """The message itself, after checking that it is one line of plain text."""
    text = text.strip()
    assert text, "no message"
    assert "\n" not in text, f"more than one line: {text!r}"
    assert "Traceback" not in text and "\x1b" not in text, text
    return text


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pathviz.export", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)


def _exports(run: Path) -> set[str]:
    return {p.name for p in (run / "exports").iterdir()} if (run / "exports").is_dir() else set()


# ---- the CLI -------------------------------------------------------------------------------


def test_cli_export_ignores_the_stored_data_root_and_says_so(world):
    before = tree(world["tmp"], skip=world["run"])
    p = cli(str(world["run"]), "--iteration", str(ITERATION), "--format", "state_dict")
    assert p.returncode == 0, p.stderr
    assert not world["marker"].exists()
    assert "Traceback" not in p.stderr
    notes = [line for line in p.stdout.splitlines() if line.startswith("note: ")]
    assert [one_sentence(n) for n in notes if "--data-root" in n] == [
        "note: no test accuracy: pass --data-root with the cifar10 files to measure it (a root "
        "stored in the run is never used)"]
    assert tree(world["tmp"], skip=world["run"]) == before  # nothing outside the run written
    assert _exports(world["run"]) == {"planted.pth", f"shared-iter{ITERATION}-compact.pth",
                                      f"shared-iter{ITERATION}-compact.pth.json",
                                      f"shared-iter{ITERATION}-compact.pth.preprocess.py"}


def test_cli_export_with_the_hostile_data_root_refuses_in_one_sentence(world):
    """The user points --data-root at the hostile folder: the restricted unpickler refuses the
    first batch before calling anything, export exits 2 with one sentence and writes nothing."""
    before = tree(world["tmp"])
    p = cli(str(world["run"]), "--iteration", str(ITERATION), "--data-root", str(world["evil"]))
    assert not world["marker"].exists()
    assert p.returncode == 2, (p.stdout, p.stderr)
    batch = world["evil"] / "cifar-10-batches-py" / "data_batch_1"
    assert one_sentence(p.stderr) == (
        f"pathviz.export: error: {batch} is not a CIFAR-10 batch (it asks for io.open, "
        f"which a CIFAR batch never holds); replace it with the original file from "
        f"cifar-10-python.tar.gz")
    assert p.stdout == ""
    assert tree(world["tmp"]) == before  # nothing written anywhere, the run folder included


def test_cli_export_through_a_planted_exports_link_writes_nothing_outside(world):
    shutil.rmtree(world["run"] / "exports")
    (world["run"] / "exports").symlink_to(world["outside"], target_is_directory=True)
    before = tree(world["tmp"])
    p = cli(str(world["run"]), "--iteration", str(ITERATION))
    assert p.returncode == 2 and not world["marker"].exists()
    assert one_sentence(p.stderr) == (
        f"pathviz.export: error: {world['run'] / 'exports'} is a symbolic link; remove it, "
        f"exports are written only inside the run folder")
    assert tree(world["tmp"]) == before


def test_cli_export_onto_a_planted_file_link_writes_nothing_outside(world):
    """exports/<the default name> is a link to the user's file: export refuses to follow it,
    with or without --overwrite."""
    target = world["run"] / "exports" / f"shared-iter{ITERATION}-compact.pt2"
    target.symlink_to(world["outside"] / "precious.txt")
    before = tree(world["tmp"])
    for extra in ([], ["--overwrite"]):
        p = cli(str(world["run"]), "--iteration", str(ITERATION), *extra)
        assert p.returncode == 2 and not world["marker"].exists()
        assert one_sentence(p.stderr) == (f"pathviz.export: error: {target} is a symbolic link; "
                                          f"export writes only regular files")
    assert tree(world["tmp"]) == before
    assert (world["outside"] / "precious.txt").read_text() == "the user's own file"


def test_a_pickled_state_dict_export_is_refused_not_run(world):
    """load_state_dict_export (the one torch.load on an export) reads weights only."""
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        export.load_state_dict_export(world["run"] / "exports" / "planted.pth")
    assert not world["marker"].exists()


def test_inspect_of_the_hostile_run_unpickles_nothing(world):
    p = subprocess.run([sys.executable, "-m", "pathviz.inspect", str(world["run"]), "--json"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["iterations"] == ITERATION
    assert not world["marker"].exists()


# ---- the app -------------------------------------------------------------------------------


def _app(**query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _export_view(at: AppTest) -> AppTest:
    at.get("button_group")[0].set_value("Export").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_app_export_of_the_hostile_run_unpickles_nothing_and_says_why(world):
    before = tree(world["tmp"], skip=world["run"])
    at = _export_view(_app(run="shared", iteration=str(ITERATION)))
    at.radio(key="export_format").set_value("state_dict").run()
    at.button(key="do_export").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not world["marker"].exists()
    assert [e.value for e in at.error] == []
    boxes = [plain(w.value) for w in at.warning]
    assert len(boxes) == 1  # the report's notes in one box, a list item each
    notes = [one_sentence(line.removeprefix("- ")) for line in boxes[0].splitlines()]
    assert notes[0] == ("no test accuracy: enter the data root of the cifar10 files to measure "
                        "it (a root stored in the run is never used)")
    assert len(notes) > 1 and all("filter is in the support" in n for n in notes[1:])
    assert f"shared-iter{ITERATION}-compact.pth" in _exports(world["run"])
    # the run's report, the export and its preprocessing code: nothing from outside the run
    assert [plain(b.label) for b in at.get("download_button")] == [
        "Download report (HTML)", f"Download shared-iter{ITERATION}-compact.pth",
        f"Download shared-iter{ITERATION}-compact.pth.preprocess.py"]
    assert tree(world["tmp"], skip=world["run"]) == before


def test_app_export_through_a_planted_exports_link_is_one_error(world):
    shutil.rmtree(world["run"] / "exports")
    (world["run"] / "exports").symlink_to(world["outside"], target_is_directory=True)
    before = tree(world["tmp"])
    at = _export_view(_app(run="shared", iteration=str(ITERATION)))
    at.button(key="do_export").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not world["marker"].exists()
    assert [one_sentence(plain(e.value)) for e in at.error] == [
        f"{world['run'] / 'exports'} is a symbolic link; remove it, exports are written only "
        f"inside the run folder"]
    assert at.get("download_button") == [] or all(
        "precious" not in b.label for b in at.get("download_button"))
    assert tree(world["tmp"]) == before


def test_app_never_offers_a_linked_file_from_outside_for_download(world):
    """A report planted in exports/ that names a link to a file outside: shown, not served."""
    name = f"shared-iter{ITERATION}-compact.pt2"
    link = world["run"] / "exports" / name
    link.symlink_to(world["outside"] / "precious.txt")
    (world["run"] / "exports" / f"{name}.json").write_text(json.dumps({
        "iteration": ITERATION, "mode": "compact", "format": "pt2", "file": str(link),
        "params_before": 1, "params_after": 1, "macs_before": 1, "macs_after": 1,
        "max_abs_diff_compact_vs_masked": 0.0, "warnings": []}))
    before = tree(world["tmp"])
    at = _export_view(_app(run="shared", iteration=str(ITERATION)))
    assert not world["marker"].exists()
    assert [b.key for b in at.get("download_button")] == ["report_html"]  # the run's own report
    assert [one_sentence(plain(e.value)) for e in at.error] == [
        f"{name} is not a file inside the checkpoints folder, so it is not offered for download."]
    assert tree(world["tmp"]) == before


def test_a_run_folder_linked_from_elsewhere_is_neither_listed_nor_written(world):
    """checkpoints/linked -> a run folder outside the root: not a run of this root."""
    elsewhere = world["tmp"] / "elsewhere_run"
    shutil.move(world["run"], elsewhere)
    (world["root"] / "linked").symlink_to(elsewhere, target_is_directory=True)
    assert [r.name for r in runs.list_runs(world["root"])] == []
    before = tree(world["tmp"])
    at = _app(run="linked", iteration=str(ITERATION))
    assert not world["marker"].exists()
    assert [one_sentence(plain(w.value)) for w in at.warning] == [
        f"There is no run called “linked” in {world['root']}; choose a run in the sidebar's "
        f"*Run* list."]
    assert at.get("button_group") == []  # no views, so no Export button for it
    assert tree(world["tmp"]) == before

