"""export: files that load without pathviz, reports, and clear refusals."""

from __future__ import annotations

import contextlib
import errno
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pathviz import export, prune, runs
from pathviz.data import BatchLoader, load_dataset
from pathviz.groups import slbi_param_groups
from pathviz.models import build_model
from pathviz.optim import SLBI
from pathviz.recorder import PathRecorder
from tests.conftest import record_lenet_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A real LeNet-5/digits run of 46 iterations, weights every 23 (partly selected Gamma)."""
    d = tmp_path_factory.mktemp("runs") / "small"
    record_lenet_run(d, weights_every=23)
    return d


def test_compact_torchscript_loads_with_torch_alone(run_dir, tmp_path):
    out = tmp_path / "net.pt"
    rep = export.export(run_dir, 46, "compact", "torchscript", out)
    assert rep["params_after"] < rep["params_before"] == 61_706
    assert rep["max_abs_diff_compact_vs_masked"] < 1e-5
    assert rep["test_acc"] == pytest.approx(rep["test_acc_masked"], abs=1e-9)
    assert json.loads((tmp_path / "net.pt.json").read_text())["iteration"] == 46
    assert sum(layer["kept"] < layer["channels"] for layer in rep["layers"]) >= 1
    code = ("import sys, torch; m = torch.jit.load(sys.argv[1]); "
            "print(tuple(m(torch.zeros(2, 1, 28, 28)).shape)); "
            "print(any(k.startswith('pathviz') for k in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True,
                          check=True)
    assert proc.stdout.split() == ["(2,", "10)", "False"]


def test_state_dict_export_rebuilds_and_matches(run_dir, tmp_path):
    out = tmp_path / "net.pth"
    rep = export.export(run_dir, 23, "compact", "state_dict", out)
    ts = tmp_path / "net.pt"
    export.export(run_dir, 23, "compact", "torchscript", ts)
    model = export.load_state_dict_export(out)
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(model(x), torch.jit.load(str(ts))(x), atol=1e-6)
    blob = torch.load(out, weights_only=True)  # one file: the architecture and the weights
    assert blob["arch"]["name"] == "lenet5" and len(blob["arch"]["widths"]) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "net.pt", "net.pt.json", "net.pt.preprocess.py", "net.pth", "net.pth.json",
        "net.pth.preprocess.py"]
    assert rep["params_after"] == sum(p.numel() for p in model.parameters())
    # the input contract travels inside both files, as in the report
    assert blob["input"] == rep["input"] and rep["input"]["mean"] == [0.3054]
    extra = {"pathviz_input.json": ""}
    torch.jit.load(str(ts), _extra_files=extra)
    assert json.loads(extra["pathviz_input.json"]) == rep["input"]


def test_masked_export_keeps_the_shape(run_dir, tmp_path):
    rep = export.export(run_dir, 46, "masked", "state_dict", tmp_path / "m.pth")
    assert rep["params_after"] == rep["params_before"]
    assert rep["nonzero_params_after"] < rep["params_before"]


def test_onnx_export(run_dir, tmp_path):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "net.onnx"
    export.export(run_dir, 46, "compact", "onnx", out)
    import numpy as np
    import onnxruntime as ort

    sess = ort.InferenceSession(str(out))
    y = sess.run(None, {"input": np.zeros((3, 1, 28, 28), np.float32)})[0]
    assert y.shape == (3, 10)
    # the input contract in the file's metadata, as in the report
    meta = json.loads(sess.get_modelmeta().custom_metadata_map["pathviz_input"])
    assert meta == json.loads((tmp_path / "net.onnx.json").read_text())["input"]
    assert meta["class_names"] == [str(i) for i in range(10)] and meta["std"] == [0.3247]


def test_iteration_without_weights_is_refused(run_dir, tmp_path):
    with pytest.raises(export.ExportError, match="iteration 30 has no saved weights; nearest "
                                                 "iterations with weights: 23, 46"):
        export.export(run_dir, 30, "compact", "torchscript", tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_cli_errors_are_one_sentence(run_dir, tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "pathviz.export", *args],
                              capture_output=True, text=True)
    p = cli(str(run_dir), "--iteration", "30")
    assert p.returncode == 2 and "nearest iterations with weights: 23, 46" in p.stderr
    assert "Traceback" not in p.stderr
    p = cli(str(run_dir), "--iteration", "46", "--mode", "tiny")
    assert p.returncode == 2 and "--mode must be one of masked, compact" in p.stderr
    out = tmp_path / "a.pt2"
    out.write_bytes(b"keep")
    p = cli(str(run_dir), "--iteration", "46", "--out", str(out))
    assert p.returncode == 2 and "exists" in p.stderr and out.read_bytes() == b"keep"
    p = cli(str(tmp_path / "nope"), "--iteration", "1")
    assert p.returncode == 2 and "has no path file" in p.stderr
    p = cli(str(run_dir), "--iteration", "46", "--out", str(tmp_path / "ok.pt2"))
    assert p.returncode == 0 and "compact vs masked outputs: max |diff|" in p.stdout
    assert p.stderr == ""  # no library warning on the way (issue 20, item 4)


def test_pt2_is_the_default_and_loads_without_pathviz(run_dir, tmp_path):
    """Acceptance (issue 10): torch.export.load in a process without pathviz gives the masked
    model's outputs."""
    rep = export.export(run_dir, 46)
    out = run_dir / "exports" / "small-iter46-compact.pt2"
    assert rep["file"] == str(out) and rep["format"] == "pt2" and out.exists()
    assert rep["file_size"] == out.stat().st_size
    assert not any("deprecated" in w for w in rep["warnings"])
    x = torch.randn(5, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    torch.save(x, tmp_path / "x.pt")
    code = ("import sys, torch; ep = torch.export.load(sys.argv[1]); "
            "y = ep.module()(torch.load(sys.argv[2])); torch.save(y, sys.argv[3]); "
            "print(any(k.startswith('pathviz') for k in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code, str(out), str(tmp_path / "x.pt"),
                           str(tmp_path / "y.pt")], capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["False"]
    model, layers, gammas, _ = export.load_run_model(run_dir, 46)
    sub = prune.subnetwork(model, layers, gammas, x[:1])
    with torch.no_grad():
        torch.testing.assert_close(torch.load(tmp_path / "y.pt"), sub.masked(x), atol=1e-5,
                                   rtol=1e-5)
    with pytest.raises(export.ExportError, match="exists"):  # never replaced without asking
        export.export(run_dir, 46)


def test_export_never_reads_a_data_root_stored_in_the_run(run_dir, tmp_path):
    """A run folder is data: a stored data_root (here with a pickle that would write a marker)
    is ignored; a dataset that needs a root gets no test accuracy and a note saying why."""
    import pickle

    import h5py

    bad = tmp_path / "root" / "cifar-10-batches-py"
    bad.mkdir(parents=True)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    for f in ("batches.meta", "data_batch_1", "test_batch"):
        (bad / f).write_bytes(pickle.dumps(Evil()))
    run = tmp_path / "evil"
    import shutil

    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("exports"))
    with h5py.File(run / runs.PATH_FILE, "a") as f:
        cfg = json.loads(f.attrs["config"])
        cfg.update(dataset="cifar10", data_root=str(tmp_path / "root"))
        f.attrs["config"] = json.dumps(cfg)
        f.attrs["data"] = json.dumps({"dataset": "cifar10"})
    rep = export.export(run, 46, out=tmp_path / "e.pt2")
    assert rep["test_acc"] is None and any("--data-root" in w for w in rep["warnings"])
    assert not marker.exists()


def test_custom_model_runs_say_they_cannot_be_rebuilt(tmp_path):
    from torch import nn

    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 10))
    opt = SLBI(slbi_param_groups(model), lr=0.1)
    run = tmp_path / "custom"
    with PathRecorder(model, opt, run / runs.PATH_FILE, dataset="digits") as rec:
        rec.record(0, weights=True)
    with pytest.raises(export.ExportError, match="custom Sequential .* cannot rebuild"):
        export.export(run, 0)


def test_exports_stay_inside_the_run_and_overwrite_removes_only_them(run_dir, tmp_path):
    import shutil

    run = tmp_path / "shared"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("exports"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run / "exports").symlink_to(elsewhere)  # planted in a run folder from someone else
    with pytest.raises(export.ExportError, match="symbolic link"):
        export.export(run, 46, fmt="state_dict")
    assert list(elsewhere.iterdir()) == []
    (run / "exports").unlink()
    rep = export.export(run, 46, fmt="state_dict")
    mine = (run / "exports" / "notes.txt")
    mine.write_text("the user's own file")
    listed = json.loads((run / runs.MANIFEST_FILE).read_text())["files"]
    assert "exports/shared-iter46-compact.pth" in listed and \
        "exports/shared-iter46-compact.pth.json" in listed and runs.PATH_FILE in listed
    runs.clear_run(runs.paths_for_dir(run))  # what train --overwrite does
    assert not (run / runs.PATH_FILE).exists() and not (run / rep["file"]).exists()
    assert mine.read_text() == "the user's own file"


def test_a_data_root_with_another_class_count_is_refused_in_one_sentence(tmp_path):
    """Export's test accuracy on an image folder other than the run's: the model's class count
    (recorded by the zoo) differs, so export refuses before writing anything. Retrain uses the
    same check (pathviz.data.check_classes)."""
    from pathviz.export import ExportError, _test_data
    from pathviz.models import build_model
    from tests.test_folder import make_folder

    root = make_folder(tmp_path / "imgs")  # 3 classes
    loader, note = _test_data("imagefolder", root, build_model("lenet5", num_classes=3,
                                                               in_channels=3, input_size=224))
    assert loader is not None and note is None
    with pytest.raises(ExportError, match=rf"^the run's model has 4 classes but {root} holds 3; "
                                          r"pass the --data-root it was trained on$"):
        _test_data("imagefolder", root, build_model("lenet5", num_classes=4))


def _with_stop(run_dir, dest, val: dict[int, float]):
    """A copy of ``run_dir`` with validation accuracies of the compact subnetwork at the given
    iterations and a validation split of 287, so that the stop rule has something to pick."""
    import shutil

    import h5py

    shutil.copytree(run_dir, dest, ignore=shutil.ignore_patterns("exports"))
    with h5py.File(dest / runs.PATH_FILE, "a") as f:
        its = f["snapshots/iteration"][:].tolist()
        for it, acc in val.items():
            f["metrics/val_acc_sparse"][its.index(it)] = acc
        f.attrs["data"] = json.dumps({"dataset": "digits", "n_val": 287})
    return dest


def test_iteration_stop_is_the_suggested_stop(run_dir, tmp_path, capsys):
    """``--iteration stop`` exports the stop that inspect shows (23 here: as accurate as 46 on
    validation and sparser; not the last saved iteration), the same file as ``--iteration 23``."""
    from pathviz import inspect

    run = _with_stop(run_dir, tmp_path / "stopped", {23: 0.9, 46: 0.9})
    stop = inspect.summary(run)["stop"]["iteration"]
    assert stop == 23
    a, b = tmp_path / "a.pth", tmp_path / "b.pth"
    assert export.main([str(run), "--iteration", "stop", "--format", "state_dict",
                        "--out", str(a)]) == 0
    assert "the suggested stop is iteration 23" in capsys.readouterr().out
    assert export.main([str(run), "--iteration", "23", "--format", "state_dict",
                        "--out", str(b)]) == 0
    ra, rb = (json.loads(p.with_name(p.name + ".json").read_text()) for p in (a, b))
    assert ra["iteration"] == rb["iteration"] == 23
    assert ra["params_after"] == rb["params_after"] and ra["layers"] == rb["layers"]
    sa, sb = (torch.load(p, weights_only=True)["state_dict"] for p in (a, b))
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    last = export.load_run_model(run, 46)[0].state_dict()
    assert any(sa[k].shape != last[k].shape or not torch.equal(sa[k], last[k]) for k in sa)
    # the default file name carries the resolved iteration, not the word
    assert export.main([str(run), "--iteration", "stop"]) == 0
    assert (run / "exports" / "stopped-iter23-compact.pt2").exists()


def test_iteration_stop_without_a_stop_is_one_sentence_and_writes_nothing(run_dir, tmp_path,
                                                                          capsys):
    import shutil

    run = tmp_path / "nostop"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("exports"))
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    out = tmp_path / "x.pt2"
    assert export.main([str(run), "--iteration", "stop", "--out", str(out)]) == 2
    cap = capsys.readouterr()
    err = cap.err.strip()
    assert cap.out == "" and "\n" not in err and "Traceback" not in err
    assert err.startswith("pathviz.export: error: --iteration stop: the run has no suggested "
                          "stop because the compact subnetwork has not been evaluated")
    assert "pass an iteration with saved weights instead (e.g. --iteration 46" in err
    assert not out.exists() and sorted(p.relative_to(run) for p in run.rglob("*")) == before
    assert export.main([str(run), "--iteration", "soon"]) == 2
    assert "--iteration must be a whole number or stop, got 'soon'" in capsys.readouterr().err
    p = subprocess.run([sys.executable, "-m", "pathviz.export", "--help"], capture_output=True,
                       text=True)
    assert p.returncode == 0 and "--iteration N|stop" in p.stdout and "suggested stop" in p.stdout


# ---- writes go where asked, or nowhere (issue 20, items 2 and 4) ------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pathviz.export", *args], capture_output=True,
                          text=True, timeout=300)


def _one_error(p: subprocess.CompletedProcess) -> str:
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and p.stdout == "", (p.returncode, p.stdout, p.stderr)
    assert len(lines) == 1 and lines[0].startswith("pathviz.export: error: "), p.stderr
    return lines[0]


def test_an_out_in_a_missing_folder_is_refused_and_nothing_is_created(run_dir, tmp_path):
    """The campaign's command: --out S/no/such/x.pt exited 0 and created no/such/."""
    for name in ("x.pt", "x.pt2"):
        err = _one_error(_cli(str(run_dir), "--iteration", "46", "--out",
                              str(tmp_path / "no" / "such" / name)))
        assert "does not end in .pt2" in err or (
            f"the folder of --out, {tmp_path / 'no' / 'such'}, does not exist; export creates "
            f"no folders: create it first, or choose an --out in an existing folder") in err, err
    (tmp_path / "file").write_text("mine")
    with pytest.raises(export.ExportError, match=r"the folder of --out, .*file, is not a folder"):
        export.export(run_dir, 46, out=tmp_path / "file" / "x.pt2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_the_default_folder_is_still_created(run_dir, tmp_path):
    import shutil

    run = tmp_path / "fresh"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("exports"))
    rep = export.export(run, 23, fmt="state_dict")
    assert rep["file"] == str(run / "exports" / "fresh-iter23-compact.pth")
    assert sorted(p.name for p in (run / "exports").iterdir()) == [
        "fresh-iter23-compact.pth", "fresh-iter23-compact.pth.json",
        "fresh-iter23-compact.pth.preprocess.py"]


@pytest.mark.parametrize("fmt,name,wanted", [
    ("pt2", "x.pt", "--out x.pt does not end in .pt2, the suffix of --format pt2 files; name it "
                    "x.pt2, or pass --format torchscript or state_dict"),
    ("torchscript", "x.pt2", "--out x.pt2 does not end in .pt, the suffix of --format "
                             "torchscript files; name it x.pt, or pass --format pt2"),
    ("onnx", "x", "--out x does not end in .onnx, the suffix of --format onnx files; name it "
                  "x.onnx"),
    ("state_dict", "x.onnx", "--out x.onnx does not end in .pth or .pt, the suffix of --format "
                             "state_dict files; name it x.pth, or pass --format onnx"),
])
def test_a_suffix_that_is_not_the_formats_is_refused(run_dir, tmp_path, fmt, name, wanted):
    """pt2 written to x.pt printed torch's 'Expect archive file to be a file ending in .pt2'."""
    with pytest.raises(export.ExportError) as e:
        export.export(run_dir, 46, fmt=fmt, out=tmp_path / name)
    assert str(e.value) == wanted
    assert list(tmp_path.iterdir()) == []


def test_a_pt2_export_says_nothing_on_stderr(run_dir, tmp_path):
    p = _cli(str(run_dir), "--iteration", "46", "--out", str(tmp_path / "x.pt2"))
    assert p.returncode == 0 and p.stderr == "", p.stderr
    p = _cli(str(run_dir), "--iteration", "46", "--format", "state_dict", "--out",
             str(tmp_path / "x.pt"))  # .pt is also a torch.save suffix
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert sorted(f.name for f in tmp_path.iterdir()) == [
        "x.pt", "x.pt.json", "x.pt.preprocess.py", "x.pt2", "x.pt2.json", "x.pt2.preprocess.py"]
    p = subprocess.run([sys.executable, "-m", "pathviz.export", "--help"], capture_output=True,
                       text=True)
    assert "its format's suffix: .pt2 (pt2), .pt (torchscript)" in " ".join(p.stdout.split())


@contextlib.contextmanager
def _small_disk(where: Path, size: int):
    """A tmpfs of ``size`` bytes on ``where`` stands in for a full disk (needs root)."""
    where.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"a small tmpfs stands in for a full disk and mounting one needs root "
                    f"({r.stderr.strip() or 'mount failed'})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.mark.parametrize("fmt,size", [("pt2", 4096), ("pt2", 8192), ("state_dict", 4096),
                                      ("state_dict", 8192), ("torchscript", 8192),
                                      ("onnx", 4096)])
def test_a_full_disk_is_one_sentence_and_leaves_no_partial_file(run_dir, tmp_path, fmt, size):
    """A disk of one or two pages: the model file does not fit (torch's own writer said
    "unexpected pos" and then aborted the process at exit), or it fits and its report does not
    (the 4.4 kB state_dict in two pages); either way one sentence names the file, nothing stays."""
    with _small_disk(tmp_path / "disk", size) as disk:
        out = disk / f"net{export.SUFFIX[fmt]}"
        p = _cli(str(run_dir), "--iteration", "46", "--format", fmt, "--out", str(out))
        err = _one_error(p)
        said = {f"pathviz.export: error: could not write {f}: the disk is full; free some space "
                f"and export again (nothing was written)"
                for f in (out, f"{out}.json", f"{out}.preprocess.py")}
        assert err in said, err
        assert list(disk.iterdir()) == []


def test_a_full_disk_while_writing_the_report_leaves_neither_file(run_dir, tmp_path,
                                                                  monkeypatch):
    out = tmp_path / "net.pt"
    out.write_bytes(b"old")  # --overwrite: the old file stays until both new ones are written
    real = Path.write_text

    def full(self, *a, **k):
        if self.name.endswith(".json.tmp"):
            with open(self, "w") as f:
                f.write("{")  # a partial report, then no room
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(export.ExportError) as e:
        export.export(run_dir, 46, fmt="torchscript", out=out, overwrite=True)
    assert str(e.value) == (f"could not write {out}.json: the disk is full; free some space and "
                            f"export again (nothing was written)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.pt"]
    assert out.read_bytes() == b"old"


def test_a_reversed_path_file_is_one_sentence_and_nothing_is_written(run_dir, tmp_path, capsys):
    """Issue 20, item 4: export of a file with snapshots/iteration in reverse order exited 0."""
    import shutil

    import h5py

    run = tmp_path / "reversed"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("exports"))
    with h5py.File(run / runs.PATH_FILE, "a") as f:
        f["snapshots/iteration"][...] = f["snapshots/iteration"][...][::-1]
    before = {p: p.read_bytes() for p in run.rglob("*")}
    for it in ("46", "stop"):
        assert export.main([str(run), "--iteration", it, "--format", "state_dict"]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and err.startswith("pathviz.export: error: "), err
        assert err.endswith("snapshots/iteration goes from 46 to 45 at snapshot 1, but iterations "
                            "must strictly increase; delete the run or restore the file"), err
    assert {p: p.read_bytes() for p in run.rglob("*")} == before


@pytest.fixture(scope="module")
def vit_run(tmp_path_factory):
    """A real vit_tiny/digits run of 7 iterations with weights at 7: blocks 0 and 2 have all
    their heads in the support, blocks 1 and 3 none (their lambda is higher), and 111-122 of
    each block's 128 MLP neurons."""
    d = tmp_path_factory.mktemp("runs") / "vit"
    torch.manual_seed(0)
    data = load_dataset("digits")
    model = build_model("vit_tiny")
    groups = slbi_param_groups(model, first_dense=True, lam=0.3)
    for g in groups:
        if g.get("kind") == "mlp":
            g["lam"] = 0.045
        elif g.get("kind") == "heads" and g["layer"] in ("blocks.1.attn", "blocks.3.attn"):
            g["lam"] = 0.34
    opt = SLBI(groups, lr=0.05, nu=5.0)
    loader = BatchLoader(data.train_x, data.train_y, data.info, 64, shuffle=True, augment=False)
    with PathRecorder(model, opt, d / runs.PATH_FILE, weights_every=7, dataset="digits",
                      iterations_per_epoch=len(loader)) as rec:
        rec.record(0)
        for it, (x, y) in enumerate(loader.epoch(0), 1):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            rec.record(it)
            if it == 7:
                break
    return d


def test_a_vit_exports_without_its_heads_and_neurons_outside_the_support(vit_run, tmp_path):
    out = tmp_path / "vit.pt2"
    rep = export.export(vit_run, 7, "compact", "pt2", out)
    kept = {layer["layer"]: layer["kept"] for layer in rep["layers"]}
    assert [kept[f"blocks.{i}.attn"] for i in range(4)] == [4, 1, 4, 1]  # 1: the guard's
    assert all(100 < kept[f"blocks.{i}.mlp.fc1"] < 128 for i in range(4))
    assert rep["max_abs_diff_compact_vs_masked"] < 1e-5
    assert rep["test_acc"] == pytest.approx(rep["test_acc_masked"], abs=1e-9)
    # params_kept is the file's own size, from the function the worker stores it with
    model, layers, gammas, cfg = export.load_run_model(vit_run, 7)
    sub = prune.subnetwork(model, layers, gammas, torch.zeros(1, 1, 28, 28))
    assert rep["params_after"] == rep["params_kept"] == sub.params < rep["params_before"]
    assert sub.params == sum(p.numel() for p in sub.compact.parameters())
    code = ("import sys, torch; m = torch.export.load(sys.argv[1]).module(); "
            "x = torch.load(sys.argv[2]); y = m(x); torch.save(y, sys.argv[3]); "
            "print(tuple(y.shape), any(k.startswith('pathviz') for k in sys.modules))")
    x = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    torch.save(x, tmp_path / "x.pt")
    proc = subprocess.run([sys.executable, "-c", code, str(out), str(tmp_path / "x.pt"),
                           str(tmp_path / "y.pt")], capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["(3,", "10)", "False"]
    with torch.no_grad():
        torch.testing.assert_close(torch.load(tmp_path / "y.pt"), sub.masked(x), rtol=0,
                                   atol=1e-5)
    # the state_dict export rebuilds the narrower ViT from its widths
    sd = export.export(vit_run, 7, "compact", "state_dict", tmp_path / "vit.pth")
    rebuilt = export.load_state_dict_export(tmp_path / "vit.pth")
    assert rebuilt.widths()[:4] == [4, 1, 4, 1]
    assert sum(p.numel() for p in rebuilt.parameters()) == sd["params_after"]
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), sub.compact(x), rtol=0, atol=1e-6)


def test_a_vit_onnx_export_runs(vit_run, tmp_path):
    pytest.importorskip("onnxruntime")
    import numpy as np
    import onnxruntime as ort

    out = tmp_path / "vit.onnx"
    rep = export.export(vit_run, 7, "compact", "onnx", out)
    model, layers, gammas, _ = export.load_run_model(vit_run, 7)
    sub = prune.subnetwork(model, layers, gammas, torch.zeros(1, 1, 28, 28))
    x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    y = ort.InferenceSession(str(out)).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(y, sub.masked(x).numpy(), atol=1e-4)
    assert rep["params_after"] == sub.params


@pytest.mark.slow  # 343-409 s on one shared core: 20 steps and two exports of an 86M ViT
def test_a_tv_vit_b_16_smoke_run_exports_smaller_and_loads_with_torch_alone(tmp_path):
    """docs/presets.md's torchvision ViT-B/16 smoke run: 20 iterations on a tiny generated image
    folder select about half the MLP neurons, so a compact export at iteration 20 shrinks; the
    .pt2 loads with torch alone and the .onnx with onnxruntime, and both compute what the
    masked model computes. (torchvision's heads are nn.MultiheadAttention, whose heads the
    export masks but cannot remove: the shrink is the MLP neurons'.)"""
    from tests.test_folder import make_folder

    imgs = make_folder(tmp_path / "imgs", n_train=4, n_val=1)  # 10 train, 2 val, 3 test
    out = tmp_path / "vit_b_smoke"
    subprocess.run([sys.executable, "-m", "pathviz.train", "--model", "tv_vit_b_16",
                    "--dataset", "imagefolder", "--data-root", str(imgs), "--epochs", "4",
                    "--batch-size", "2", "--lr", "0.01", "--nu", "1", "--lam", "0.004",
                    "--mlp-lam", "0.0041", "--group-scale", "sqrt", "--first-layer-dense",
                    "--weights-every", "20", "--eval-every", "20", "--out", str(out),
                    "--no-progress"], check=True, capture_output=True, timeout=1800)
    model, layers, gammas, _ = export.load_run_model(out, 20)
    masks = prune.support_masks(layers, gammas)
    mlp = [int(masks[x["name"]].sum()) for x in layers if x["kind"] == "mlp"]
    assert len(mlp) == 12 and 0 < sum(mlp) < 12 * 3072  # some neurons in, some out
    rep = export.export(out, 20, "compact", "pt2", out / "exports" / "b16.pt2",
                        data_root=imgs)
    assert rep["params_after"] == rep["params_kept"] < rep["params_before"] == 85_800_963
    assert rep["max_abs_diff_compact_vs_masked"] < 1e-5
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    sub = prune.subnetwork(model, layers, gammas, torch.zeros(1, 3, 224, 224))
    with torch.no_grad():
        want = sub.masked(x)
    torch.save(x, tmp_path / "x.pt")
    code = ("import sys, torch; m = torch.export.load(sys.argv[1]).module(); "
            "torch.save(m(torch.load(sys.argv[2])), sys.argv[3]); "
            "print(any(k.startswith('pathviz') for k in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code, str(out / "exports" / "b16.pt2"),
                           str(tmp_path / "x.pt"), str(tmp_path / "y.pt")],
                          capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["False"]
    torch.testing.assert_close(torch.load(tmp_path / "y.pt"), want, rtol=0, atol=1e-5)
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    rep = export.export(out, 20, "compact", "onnx", out / "exports" / "b16.onnx",
                        data_root=imgs)
    assert rep["params_after"] < rep["params_before"]
    y = ort.InferenceSession(str(out / "exports" / "b16.onnx")).run(None, {"input": x.numpy()})
    torch.testing.assert_close(torch.from_numpy(y[0]), want, rtol=0, atol=1e-4)
