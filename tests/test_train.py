"""The training worker: the demo's path, kill-and-resume, stop, divergence and bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pathviz import runs
from pathviz.store import PathReader
from tests.conftest import path_contents

# a short run of the demo model: 4 epochs of 18 iterations (1150 training images after the
# validation split, batches of 64)
SMALL = ["--preset", "demo", "--epochs", "4", "--weights-every", "10", "--no-progress"]


def train(*args: str, cwd: Path | None = None, check_rc: int | None = 0,
          env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "pathviz.train", *args], capture_output=True,
                          text=True, cwd=cwd, env={**os.environ, **(env or {})}, timeout=600)
    if check_rc is not None:
        assert proc.returncode == check_rc, proc.stderr[-3000:]
    return proc


def status(run: Path) -> dict:
    return json.loads((run / runs.STATUS_FILE).read_text())


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "demo"
    # as a caller on another machine would start it: its CPU makes each library pick other
    # kernels, and its shell sets other thread counts; the worker pins them all, so the golden
    # figures (made without any of these) must come out exactly
    train("--preset", "demo", "--out", str(out), "--no-progress", env=OTHER_MACHINE)
    return out


OTHER_MACHINE = {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
                 "MKL_CBWR": "AVX2", "NUMBA_CPU_NAME": "generic", "OMP_NUM_THREADS": "3",
                 "MKL_NUM_THREADS": "3"}


# The demo's figures in README.md and docs/presets.md (seed 0), printed by
# `python -m pathviz.inspect checkpoints/demo`
# with the locked environment (requirements-dev.lock). The worker pins its thread count and its
# CPU kernels (cpu_isa avx2), so they hold on any x86-64 machine with AVX2: see the thread test
# below and tests/test_numerics.py, which simulates other machines' instruction sets.
GOLDEN = {"iterations": 2520, "stop": 870, "params_kept": 15_871, "flops_kept": 314_140,
          "in_support": [13, 75, 37], "val_acc": 0.9686, "test_acc_sparse": 0.9667,
          "fingerprint": "a421df018c55e991"}
LOCKED = ("torch", "torchvision", "numpy", "numba")  # what makes the kernels, from the lock


def _locked_versions() -> dict[str, str]:
    lock = Path(__file__).resolve().parents[1] / "requirements-dev.lock"
    pins = dict(line.split(" ")[0].split("==") for line in lock.read_text().splitlines()
                if "==" in line and not line.startswith((" ", "#")))
    return {name: pins[name] for name in LOCKED}


def test_the_environment_is_the_locked_one():
    """The golden figures are the lock's: a test run with other versions of the libraries that
    make the kernels would fail the figures below for that reason, so say it first."""
    from importlib.metadata import version

    installed = {name: version(name).split("+")[0] for name in LOCKED}
    assert installed == _locked_versions(), (
        "the golden figures are for the versions in requirements-dev.lock; install it with "
        "pip install -r requirements-dev.lock")


def test_demo_path_is_worth_watching(demo_run, exact_figures):
    """The demo's figures are docs/presets.md's (seed 0): the stop comes at 35 % of the run and
    keeps 26 % of the parameters (seeds 1 and 2: docs/presets.md, "The demo preset"). The exact
    figures and the fingerprint below catch any change to the path."""
    assert status(demo_run)["state"] == "finished"
    proc = subprocess.run([sys.executable, "-m", "pathviz.inspect", str(demo_run), "--json"],
                          capture_output=True, text=True, check=True)
    s = json.loads(proc.stdout)
    stop = s["stop"]
    assert s["iterations"] == GOLDEN["iterations"] and s["params_total"] == 61_706
    if exact_figures("the demo's golden figures"):
        assert stop["iteration"] == GOLDEN["stop"]
        assert stop["params_kept"] == GOLDEN["params_kept"]
        assert stop["flops_kept"] == GOLDEN["flops_kept"]
        assert round(stop["val_acc"], 4) == GOLDEN["val_acc"]
        assert round(stop["test_acc_sparse"], 4) == GOLDEN["test_acc_sparse"]
        assert [layer["in_support"] for layer in s["layers"]] == GOLDEN["in_support"]
        assert s["fingerprint"] == GOLDEN["fingerprint"]
    assert 0.2 * s["iterations"] <= stop["iteration"] <= 0.6 * s["iterations"]
    assert stop["params_kept"] <= 0.5 * s["params_total"]
    assert s["environment"]["cpu_isa"] == "avx2" and s["config"]["cpu_isa"] == "avx2"
    with PathReader(demo_run / runs.PATH_FILE) as r:
        assert r.iterations.tolist() == list(range(0, s["iterations"] + 1))
        assert [layer["name"] for layer in r.layers] == ["conv2", "conv3", "fc1"]
        for layer in r.layers:  # every layer starts empty and fills at staggered times
            entry = r.entry_times(layer["name"])
            assert r.support_sizes(layer["name"])[0] == 0
            assert len(set(entry[entry >= 0].tolist())) >= 3, layer["name"]
        # the sparsity metric agrees with the per-layer norms
        groups = sum(layer["groups"] for layer in r.layers)
        outside = sum(int((r.snapshot(-1)[layer["name"]]["gamma_norm"] == 0).sum())
                      for layer in r.layers)
        assert r.metric("sparsity")[-1] == pytest.approx(outside / groups)
        assert r.metric("test_acc")[-1] >= 0.9
    files = sorted(p.name for p in demo_run.iterdir())
    assert files == sorted([runs.PATH_FILE, runs.CONFIG_FILE, runs.STATUS_FILE, runs.RESUME_FILE,
                            runs.LOG_FILE, runs.MANIFEST_FILE])


def test_the_stop_is_what_export_writes(demo_run, tmp_path):
    """Acceptance (issue 9): a compact export at the stop has exactly stop.params_kept
    parameters and the test accuracy stop.test_acc_sparse."""
    from pathviz import export, inspect

    stop = inspect.summary(demo_run)["stop"]
    out = tmp_path / "stop.pth"
    rep = export.export(demo_run, stop["iteration"], "compact", "state_dict", out)
    model = export.load_state_dict_export(out)
    assert sum(p.numel() for p in model.parameters()) == rep["params_after"] == \
        stop["params_kept"]
    assert rep["macs_after"] == stop["flops_kept"]
    assert abs(rep["test_acc"] - stop["test_acc_sparse"]) <= 1e-6


def test_the_readme_export_examples_work_as_printed(demo_run, tmp_path):
    """docs/cli.md's "Exporting a subnetwork" commands, run as printed on the demo (its
    ``checkpoints/cli-demo`` is this module's demo run), export the suggested stop, and the
    figures that section quotes for it are what they print and write. They write only inside
    the run folder: nothing in the working directory, nothing in the app's
    ``checkpoints/demo``."""
    import re
    import shlex

    page = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    start = page.index("## Exporting a subnetwork\n")
    section = page[start:page.index("\n## ", start + 1)]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    commands = [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]
    assert len(commands) == 2 and all(c[:3] == ["python", "-m", "pathviz.export"]
                                      for c in commands)
    import shutil

    run = tmp_path / "checkpoints" / "cli-demo"  # a copy: exports stay out of the module's run
    shutil.copytree(demo_run, run, ignore=shutil.ignore_patterns("exports"))
    printed = []
    for argv in commands:
        assert "checkpoints/cli-demo" in argv, argv  # the tour's own folder, not the app's demo
        p = subprocess.run([sys.executable, *argv[1:]], cwd=tmp_path, capture_output=True,
                           text=True, timeout=300)
        assert p.returncode == 0 and p.stderr == "", p.stderr[-2000:]
        printed.append(p.stdout)
    stop = GOLDEN["stop"]
    section = " ".join(section.split())  # line breaks as spaces
    said = re.search(r"at its suggested stop, iteration (\d+)", section)
    assert said and int(said.group(1)) == stop
    rep = json.loads((run / "exports" / f"cli-demo-iter{stop}-compact.pt2.json").read_text())
    assert all(f"the suggested stop is iteration {stop}" in out for out in printed)
    assert (run / "exports" / "stop.onnx").is_file() and "(compact, onnx)" in printed[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints"]  # nothing in the root
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["cli-demo"]
    params = re.search(r"compact: 61,706 → ([\d,]+) parameters, 435,850 → ([\d,]+) MACs", section)
    assert [int(g.replace(",", "")) for g in params.groups()] == [
        rep["params_after"], rep["macs_after"]] == [GOLDEN["params_kept"], GOLDEN["flops_kept"]]
    kept = re.search(r"conv2/conv3/fc1 keep (\d+)/(\d+)/(\d+) of 16/120/84", section)
    assert [int(k) for k in kept.groups()] == [layer["kept"] for layer in rep["layers"]]
    acc = re.search(r"test accuracy (\d+\.\d+)% for both compact and masked", section)
    assert float(acc.group(1)) == round(100 * rep["test_acc"], 2) == round(
        100 * rep["test_acc_masked"], 2)
    size = re.search(r"a \.pt2 of about (\d+) kB", section)
    # the archive holds file names (the run's path), so its size varies by a few hundred bytes
    assert abs(int(size.group(1)) * 1000 - rep["file_size"]) <= 0.03 * rep["file_size"]


def _final(run: Path):
    with PathReader(run / runs.PATH_FILE) as r:
        last = int(r.weight_iterations[-1])
        return (r.iterations, r.weight_iterations, r.weights_at(last), r.gamma_at(last),
                r.metric("test_acc"), r.metric("train_loss"))


def _wait_for(pred, timeout=120.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def _snapshots(run: Path) -> int:
    try:
        with PathReader(run / runs.PATH_FILE) as r:
            return r.n_snapshots
    except Exception:  # not created yet, or mid-creation
        return 0


def test_sigkill_then_resume_is_bit_identical(tmp_path):
    # 20 epochs (360 iterations); the kill comes once the path file holds 10 snapshots, which
    # it shows within 0.25 s of writing them, so a fast machine does not finish first
    args = [*SMALL, "--epochs", "20"]
    total = 20 * 18
    ref = tmp_path / "ref"
    train(*args, "--out", str(ref))
    run = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "pathviz.train", *args, "--out", str(run)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(lambda: _snapshots(run) >= 10, what="the worker to be mid-run")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = _snapshots(run)
    assert status(run)["state"] == "running"  # what a SIGKILL leaves behind
    state, reason = runs.effective_state(status(run))
    assert state == "stopped" and "resume" in reason

    train("--out", str(run), "--resume", "--no-progress")
    assert status(run)["state"] == "finished"
    got, want = _final(run), _final(ref)
    assert killed_at < total
    np.testing.assert_array_equal(got[0], np.arange(total + 1))  # none duplicated or missing
    np.testing.assert_array_equal(got[1], want[1])
    for a, b in ((got[2], want[2]), (got[3], want[3])):
        assert list(a) == list(b)
        for k in a:
            assert np.array_equal(a[k], b[k]), k  # bit-identical weights and Gamma
    np.testing.assert_array_equal(got[4], want[4])
    np.testing.assert_array_equal(got[5], want[5])
    assert not (run / runs.LOCK_FILE).exists()


def test_sigterm_stops_cleanly_and_resumes(tmp_path):
    run = tmp_path / "stopme"
    proc = subprocess.Popen([sys.executable, "-m", "pathviz.train", *SMALL, "--epochs", "30",
                             "--out", str(run)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: (run / runs.STATUS_FILE).exists() and
              status(run).get("iteration", 0) > 5, what="training to start")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    st = status(run)
    assert st["state"] == "stopped" and "SIGTERM" in st["reason"]
    with PathReader(run / runs.PATH_FILE) as r:
        n = r.n_snapshots
        assert r.iterations.tolist() == list(range(n))
    assert runs.RunPaths(run).resume.exists()
    assert not (run / runs.LOCK_FILE).exists()
    # a finished run cannot be resumed; a stopped one can (here: cut short to keep the test fast)
    proc2 = subprocess.Popen([sys.executable, "-m", "pathviz.train", "--out", str(run),
                              "--resume", "--no-progress"], stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: status(run).get("state") == "running" and status(run)["iteration"] > n,
              what="the resumed run to make progress")
    proc2.send_signal(signal.SIGTERM)
    assert proc2.wait(timeout=60) == 0
    with PathReader(run / runs.PATH_FILE) as r:
        assert r.iterations.tolist() == list(range(r.n_snapshots))
        assert r.n_snapshots > n


def test_divergence_fails_with_the_iteration(tmp_path):
    run = tmp_path / "diverge"
    proc = train(*SMALL, "--lr", "1e6", "--out", str(run), check_rc=1)
    st = status(run)
    assert st["state"] == "failed"
    assert st["reason"].startswith("diverged at iteration ")
    it = int(st["reason"].split()[3])
    with PathReader(run / runs.PATH_FILE) as r:
        assert r.iterations[-1] == it - 1  # every finite iteration before it is in the path
    assert "diverged at iteration" in proc.stderr


@pytest.mark.parametrize("args,message", [
    (["--model", "resnet9000"], "unknown model 'resnet9000'"),
    (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["--dataset", "mnist", "--data-root", "/nonexistent/mnist"], "does not exist"),
    (["--dataset", "cifar10"], "needs --data-root"),
    (["--lr", "fast"], "invalid float value: 'fast'"),
    (["--bogus-flag"], "unrecognized arguments: --bogus-flag"),
    (["--weights-every", "7", "--snapshot-every", "2"], "must be a multiple of --snapshot-every"),
    (["--preset", "huge"], "unknown preset 'huge'"),
    (["--epochs", "0"], "--epochs must be a whole number >= 1"),
    (["--conv-penalty", "l3"], "--conv-penalty must be group, l1 or none"),
    (["--conv-penalty", "none", "--linear-penalty", "none"], "no layer has a Gamma"),
    (["--val-fraction", "1.5"], "--val-fraction must be between 0 and 1"),
    (["--threads", "0"], "--threads must be a whole number from 1 to 256"),
    (["--optimizer", "adam"], "--optimizer must be slbi or sgd"),
])
def test_bad_input_is_one_sentence_exit_2_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "run"
    proc = train("--out", str(out), "--no-progress", *args, check_rc=2)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pathviz.train: error: "), proc.stderr
    assert message in lines[0]
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_a_data_root_that_is_a_file_says_so(tmp_path):
    """Issue 36, defect 4: before, a file as --data-root "does not exist"."""
    root = tmp_path / "mnist.tar"
    root.write_bytes(b"not a folder")
    out = tmp_path / "run"
    proc = train("--dataset", "mnist", "--data-root", str(root), "--out", str(out),
                 "--no-progress", check_rc=2)
    assert proc.stderr.strip().splitlines() == [
        f"pathviz.train: error: data root {str(root)!r} is a file, not a folder; pass the "
        f"folder that holds the mnist files as --data-root"]
    assert not out.exists() and root.read_bytes() == b"not a folder"


def test_a_data_root_given_to_the_bundled_digits_is_refused(tmp_path):
    """Issue 30, item 7: --data-root with digits was accepted silently (exit 0, a run made)."""
    out = tmp_path / "run"
    proc = train(*SMALL, "--data-root", "/nope", "--out", str(out), check_rc=2)
    assert proc.stderr.strip().splitlines() == [
        "pathviz.train: error: the digits dataset is bundled with pathviz and takes no "
        "--data-root (got '/nope'); drop --data-root, or pass --dataset with the dataset whose "
        "files are there"]
    assert not out.exists()


@pytest.mark.parametrize("extra", [[], ["--overwrite"]])
def test_a_folder_with_a_users_config_json_gets_advice_that_works(tmp_path, extra):
    """Issue 36, defect 3: the refusal advised --overwrite, which then refused the folder as
    holding files pathviz did not write; both now say to choose another folder, and the
    user's file is untouched."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.json").write_text('{"my": "settings"}')
    proc = train(*SMALL, "--out", str(out), *extra, check_rc=2)
    assert proc.stderr.strip().splitlines() == [
        f"pathviz.train: error: {out} holds files that pathviz did not write; choose a new or "
        f"empty folder for the run"]
    assert os.listdir(out) == ["config.json"]
    assert (out / "config.json").read_text() == '{"my": "settings"}'


def test_existing_run_is_never_overwritten_without_a_flag(tmp_path):
    run = tmp_path / "keep"
    train(*SMALL, "--epochs", "1", "--out", str(run))
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    proc = train(*SMALL, "--epochs", "1", "--out", str(run), check_rc=2)
    assert "already holds a run; pass --resume to continue it or --overwrite" in proc.stderr
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    proc = train("--out", str(run), "--resume", "--no-progress", check_rc=2)
    assert "already finished" in proc.stderr
    proc = train("--out", str(run), "--resume", "--lr", "0.3", check_rc=2)
    assert "drop --lr" in proc.stderr
    train(*SMALL, "--epochs", "1", "--seed", "5", "--out", str(run), "--overwrite")
    assert json.loads((run / runs.CONFIG_FILE).read_text())["seed"] == 5


def test_resume_refuses_a_corrupt_resume_file_and_keeps_the_run(tmp_path):
    run = tmp_path / "corrupt"
    proc = subprocess.Popen([sys.executable, "-m", "pathviz.train", *SMALL, "--epochs", "30",
                             "--out", str(run)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _wait_for(lambda: (run / runs.STATUS_FILE).exists() and
              status(run).get("iteration", 0) > 3, what="training to start")
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    (run / runs.RESUME_FILE).write_bytes(b"garbage")
    path_before = (run / runs.PATH_FILE).read_bytes()
    out = train("--out", str(run), "--resume", check_rc=2)
    assert "cannot be loaded" in out.stderr and "Traceback" not in out.stderr
    assert (run / runs.PATH_FILE).read_bytes() == path_before


def test_resume_refuses_another_impl_or_an_edited_config_and_keeps_the_run(tmp_path):
    run = tmp_path / "edited"
    proc = subprocess.Popen([sys.executable, "-m", "pathviz.train", *SMALL, "--epochs", "30",
                             "--out", str(run)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _wait_for(lambda: (run / runs.STATUS_FILE).exists() and
              status(run).get("iteration", 0) > 3, what="training to start")
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    stored = json.loads((run / runs.CONFIG_FILE).read_text())
    other = "single" if stored["impl"] != "single" else "foreach"
    out = train("--out", str(run), "--resume", "--impl", other, check_rc=2)
    assert f"--impl {other} differs" in out.stderr and "Traceback" not in out.stderr
    # someone edits config.json of the stopped run: resume.pt remembers what was trained
    edited = dict(stored, lam=stored["lam"] * 2)
    (run / runs.CONFIG_FILE).write_text(json.dumps(edited))
    out = train("--out", str(run), "--resume", check_rc=2)
    assert "differs from the settings the run was trained with (lam)" in out.stderr
    assert "Traceback" not in out.stderr
    (run / runs.CONFIG_FILE).write_bytes(before[runs.CONFIG_FILE])
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert {k: v for k, v in after.items() if k != runs.LOG_FILE} == \
        {k: v for k, v in before.items() if k != runs.LOG_FILE}
    train("--out", str(run), "--resume", "--no-progress")  # the restored run still continues
    assert status(run)["state"] == "finished"


def test_config_file_and_console_entry(tmp_path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text('epochs = 1\nlam = 0.3\nsnapshot_every = 2\nweights_every = 4\n'
                   'eval_every = 4\n')
    run = tmp_path / "fromfile"
    train("--config", str(cfg), "--out", str(run), "--lam", "0.35", "--no-progress")
    saved = json.loads((run / runs.CONFIG_FILE).read_text())
    assert saved["epochs"] == 1 and saved["lam"] == 0.35 and saved["snapshot_every"] == 2
    with PathReader(run / runs.PATH_FILE) as r:
        assert r.iterations.tolist() == list(range(0, 19, 2))
        # config.json adds the environment record, which path.h5 keeps as its own attribute
        environment = saved.pop("environment")
        assert r.config == saved and r.environment == environment


_contents = path_contents


def test_same_config_gives_a_bit_identical_path_whatever_the_thread_environment(tmp_path):
    """Acceptance (issue 9): a machine with 1 core and one with 4 get the same path, because the
    worker pins its own thread count (the run config's ``threads``) instead of taking the
    machine's."""
    files = {}
    for n in ("1", "4"):
        env = {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "NUMBA_NUM_THREADS": n}
        run = tmp_path / f"t{n}"
        train(*SMALL, "--epochs", "2", "--eval-every", "6", "--out", str(run), env=env)
        files[n] = _contents(run)
    one, four = files["1"], files["4"]
    assert sorted(one) == sorted(four) and "layers/conv3/gamma_norm" in one
    for name in one:
        np.testing.assert_array_equal(one[name], four[name], err_msg=name)
    assert np.isfinite(one["metrics/val_acc_sparse"]).sum() >= 6


def test_weights_are_saved_where_the_support_changes(tmp_path):
    run = tmp_path / "onchange"
    # lam 0.5: the support starts to move within these 16 epochs (the demo's lam 1 waits ~14)
    train(*SMALL, "--epochs", "16", "--lam", "0.5", "--weights-every", "1000",
          "--weights-on-change", "5", "--out", str(run))
    with PathReader(run / runs.PATH_FILE) as r:
        wits = r.weight_iterations.tolist()
        assert wits[0] == 0 and wits[-1] == 16 * 18 and len(wits) >= 4
        supports = [np.concatenate([(r.gamma_at(it)[layer["param"]].reshape(
            layer["groups"], -1) != 0).any(1) for layer in r.layers]) for it in wits]
        for prev, cur in zip(supports[:-2], supports[1:-1]):  # the last save is the final one
            assert int((prev != cur).sum()) >= 5
        # every saved iteration is evaluated, so it is a candidate for the stop rule
        its = r.iterations
        val = r.metric("val_acc_sparse")
        assert all(np.isfinite(val[np.searchsorted(its, w)]) for w in wits)


def test_sgd_baseline_equals_torch_sgd_step_for_step(tmp_path):
    """``--optimizer sgd`` trains with torch.optim.SGD: same init, batches and updates as a
    hand-written loop, to the bit; its path file has metrics and no Gamma layers."""
    import torch
    import torch.nn.functional as F

    from pathviz.data import BatchLoader, load_dataset, split_validation
    from pathviz.models import build_model
    from pathviz.numerics import pin

    run = tmp_path / "sgd"
    train(*SMALL, "--epochs", "2", "--optimizer", "sgd", "--lr", "0.03", "--momentum", "0.8",
          "--weight-decay", "1e-4", "--out", str(run))
    with PathReader(run / runs.PATH_FILE) as r:
        assert r.layers == [] and r.weight_iterations[-1] == 36
        got = r.weights_at(36)
        assert np.isfinite(r.metric("test_acc")[-1]) and "test_acc_sparse" in r.metric_names
        assert np.isnan(r.metric("test_acc_sparse")).all()
    pin("avx2", 1)
    torch.manual_seed(0)
    model = build_model("lenet5", num_classes=10, in_channels=1, input_size=28)
    opt = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.8, weight_decay=1e-4)
    data = split_validation(load_dataset("digits"), 0.2, 0)
    loader = BatchLoader(data.train_x, data.train_y, data.info, 64, shuffle=True, augment=False,
                         seed=0)
    for epoch in range(2):
        for x, y in loader.epoch(epoch):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()
    want = model.state_dict()
    assert sorted(got) == sorted(want)
    for k in want:
        assert np.array_equal(got[k], want[k].numpy()), k


def _trainer(out: Path, *args: str):
    """A worker built in this process, to reach what the CLI does not expose."""
    from pathviz.train import Trainer, build_parser, prepare

    return Trainer(prepare(build_parser().parse_args([*SMALL, "--out", str(out), *args])))


def test_the_deferred_finite_check_of_the_gpu_path_gives_the_same_path(tmp_path):
    """On a GPU the worker checks the loss's finiteness only where it writes (a snapshot or
    resume state), so the device never waits for the host in between. That mode must not
    change the path: here on the CPU, it gives the per-step mode's file bit for bit."""
    every = tmp_path / "every"
    train(*SMALL, "--epochs", "2", "--snapshot-every", "3", "--weights-every", "12",
          "--eval-every", "6", "--out", str(every))
    t = _trainer(tmp_path / "deferred", "--epochs", "2", "--snapshot-every", "3",
                 "--weights-every", "12", "--eval-every", "6")
    t.check_every_step = False
    assert t.run() == 0
    a, b = _contents(every), _contents(tmp_path / "deferred")
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_the_deferred_finite_check_reports_divergence_between_two_checks(tmp_path):
    t = _trainer(tmp_path / "diverge", "--lr", "1e6", "--snapshot-every", "5",
                 "--eval-every", "5")
    t.check_every_step = False
    assert t.run() == 1
    st = status(tmp_path / "diverge")
    assert st["state"] == "failed"
    words = st["reason"].split()
    assert st["reason"].startswith("diverged between iterations "), st["reason"]
    first, last = int(words[3]), int(words[5])
    assert first <= last and last % 5 == 0 and last - first < 5
    with PathReader(tmp_path / "diverge" / runs.PATH_FILE) as r:
        assert r.iterations[-1] == first - 1  # nothing non-finite was written


@pytest.mark.parametrize("flags,rtol", [(["--amp"], 0.05), (["--channels-last"], 1e-4)])
def test_amp_and_channels_last_follow_the_float32_path(tmp_path, flags, rtol):
    """The GPU path's options also run on the CPU. Channels-last memory only reorders the
    convolutions' sums, and bf16 autocast only lowers the forward pass's precision: both runs
    follow the plain run's training loss (to ``rtol``), record every snapshot, and compute the
    stop's figures in float32 with the compact subnetwork that export writes."""
    plain, run = tmp_path / "plain", tmp_path / "opt"
    train(*SMALL, "--epochs", "2", "--eval-every", "6", "--out", str(plain))
    train(*SMALL, "--epochs", "2", "--eval-every", "6", *flags, "--out", str(run))
    assert status(run)["state"] == "finished"
    with PathReader(run / runs.PATH_FILE) as r, PathReader(plain / runs.PATH_FILE) as p:
        assert r.iterations.tolist() == p.iterations.tolist() == list(range(37))
        loss, ref = r.metric("train_loss"), p.metric("train_loss")
        np.testing.assert_allclose(loss[1:], ref[1:], rtol=rtol, atol=0)
        assert not np.array_equal(loss[1:], ref[1:]) or flags == ["--channels-last"]
        assert np.isfinite(r.metric("val_acc_sparse")[-1])
        assert r.config[flags[0][2:].replace("-", "_")] is True


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")
def test_a_cuda_run_with_amp_and_channels_last_finishes(tmp_path):
    run = tmp_path / "cuda"
    train(*SMALL, "--epochs", "2", "--device", "cuda", "--amp", "--channels-last", "--out",
          str(run))
    assert status(run)["state"] == "finished"
    with PathReader(run / runs.PATH_FILE) as r:
        assert r.iterations.tolist() == list(range(37))
        assert np.all(np.isfinite(r.metric("train_loss")[1:]))


FAILING_WORKER = """
import sys
from pathviz import train
step = train.Trainer._train_step
def failing(self, *args):
    if self.iteration == 5:
        raise KeyError("injected fault on purpose")
    return step(self, *args)
train.Trainer._train_step = failing
sys.exit(train.main())
"""


def test_an_unexpected_error_fails_the_run_in_one_line_with_the_traceback_in_the_log(tmp_path):
    """A bug or a lost device mid-run: exit 1, status ``failed`` with the error in one line
    (the app shows it), the traceback in train.log only, and the snapshots before it kept."""
    script = tmp_path / "failing_worker.py"
    script.write_text(FAILING_WORKER)
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, str(script), *SMALL, "--out", str(run)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    st = status(run)
    assert st["state"] == "failed" and st["reason"] == "KeyError: 'injected fault on purpose'"
    assert "Traceback" not in proc.stderr and st["reason"] in proc.stderr
    log = (run / runs.LOG_FILE).read_text()
    assert "Traceback (most recent call last)" in log and "failing_worker.py" in log
    with PathReader(run / runs.PATH_FILE) as r:
        assert r.iterations.tolist() == list(range(6))


# the worker with a spy on its data loading: the spy writes what the run folder held when the
# data began to load (the slow part of a start, with pinning the numerics just before it), as
# the app would list it then, and the worker goes on
_SPY_ON_THE_START = """
import json, os, sys
from pathlib import Path
from pathviz import runs, train
out = Path(sys.argv[1])
real = train.load_dataset

def spy(*args, **kwargs):
    paths = runs.RunPaths(out)
    info = [r for r in runs.list_runs(out.parent) if r.name == out.name]
    seen = {"files": sorted(os.listdir(out)) if out.is_dir() else [],
            "config": json.loads(paths.config.read_text()) if paths.config.exists() else None,
            "listed": [info[0].model, info[0].dataset] if info else None}
    (out.parent / "seen.json").write_text(json.dumps(seen))
    return real(*args, **kwargs)

train.load_dataset = spy
sys.exit(train.main(sys.argv[2:]))
"""


def test_config_json_is_written_before_the_data_loads_and_keeps_its_final_content(tmp_path):
    """The app's header names a starting run's model and dataset from config.json: the worker
    writes it (the resolved config) once it holds the folder, before the numerics are pinned
    and the data loaded, and then the same config with its environment."""
    run = tmp_path / "early"
    proc = subprocess.run([sys.executable, "-c", _SPY_ON_THE_START, str(run), *SMALL,
                           "--epochs", "1", "--out", str(run)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert runs.CONFIG_FILE in seen["files"] and runs.PATH_FILE not in seen["files"]
    assert seen["listed"] == ["lenet5", "digits"]
    final = json.loads((run / runs.CONFIG_FILE).read_text())
    assert "environment" in final and "environment" not in seen["config"]
    assert {k: v for k, v in final.items() if k != "environment"} == seen["config"]
    assert final["epochs"] == 1 and status(run)["state"] == "finished"


def test_mlp_lam_sets_the_threshold_of_transformer_mlp_neurons_only():
    from pathviz.config import RunConfig
    from pathviz.models import build_model
    from pathviz.train import make_optimizer

    model = build_model("vit_tiny")
    cfg = RunConfig(model="vit_tiny", lam=0.09, mlp_lam=0.035, group_scale="sqrt",
                    first_layer_dense=True).validate()
    lams = {(g.get("kind"), g["lam"]) for g in make_optimizer(model, cfg).param_groups
            if g["penalty"] is not None}
    assert lams == {("heads", 0.09), ("mlp", 0.035)}
    lams = {g["lam"] for g in make_optimizer(model, cfg.replace(mlp_lam=None)).param_groups}
    assert lams == {0.09}


def test_heads_nu_and_balance_heads_set_the_attention_layers_only():
    from pathviz.config import RunConfig
    from pathviz.models import build_model
    from pathviz.train import make_optimizer

    model = build_model("vit_tiny")
    cfg = RunConfig(model="vit_tiny", nu=25.0, heads_nu=12.0, balance_heads=True,
                    first_layer_dense=True).validate()
    seen = {(g.get("kind"), g["nu"], g.get("balance"))
            for g in make_optimizer(model, cfg).param_groups}
    assert seen == {("heads", 12.0, "heads"), ("mlp", 25.0, None), (None, 25.0, None)}
    plain = make_optimizer(model, cfg.replace(heads_nu=None, balance_heads=False))
    assert {(g["nu"], g.get("balance")) for g in plain.param_groups} == {(25.0, None)}


@pytest.fixture(scope="module")
def vit_demo_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vit") / "vit_demo"
    train("--preset", "vit_demo", "--out", str(out), "--no-progress", env=OTHER_MACHINE)
    return out


# vit_demo's figures in docs/presets.md (seed 0), printed by `python -m pathviz.inspect
# checkpoints/vit_demo --json`; pinned numerics make them hold on any x86-64 machine with AVX2.
GOLDEN_VIT = {"iterations": 3600, "stop": 1800, "params_kept": 65_344,
              "test_acc_sparse": 0.9444, "in_support": [3, 99, 2, 59, 1, 48, 1, 27],
              "fingerprint": "c5b7b4f5684adb4d"}


def test_vit_demo_path_shows_heads_and_neurons_entering(vit_demo_run, exact_figures):
    """vit_tiny on digits: heads and MLP neurons enter at staggered times, every layer ends
    10-95 % selected, the stop comes before 60 % of the run keeping under 60 % of the
    parameters, and its figures are docs/presets.md's, exactly."""
    proc = subprocess.run([sys.executable, "-m", "pathviz.inspect", str(vit_demo_run), "--json"],
                          capture_output=True, text=True, check=True)
    s = json.loads(proc.stdout)
    stop = s["stop"]
    assert s["iterations"] == GOLDEN_VIT["iterations"] and s["params_total"] == 139_018
    if exact_figures("vit_demo's golden figures"):
        assert stop["iteration"] == GOLDEN_VIT["stop"]
        assert stop["params_kept"] == GOLDEN_VIT["params_kept"]
        assert round(stop["test_acc_sparse"], 4) == GOLDEN_VIT["test_acc_sparse"]
        assert [layer["in_support"] for layer in s["layers"]] == GOLDEN_VIT["in_support"]
        assert s["fingerprint"] == GOLDEN_VIT["fingerprint"]
    assert [layer["kind"] for layer in s["layers"]] == ["heads", "mlp"] * 4
    with PathReader(vit_demo_run / runs.PATH_FILE) as r:
        for layer in r.layers:  # every layer starts empty
            assert r.support_sizes(layer["name"])[0] == 0
        heads = [r.entry_times(layer["name"]) for layer in r.layers if layer["kind"] == "heads"]
        firsts = {int(e[e >= 0].min()) for e in heads if (e >= 0).any()}
        assert len(firsts) >= 3  # the blocks' first heads enter at different times
        # within block 0 too, the heads enter one at a time
        entered = heads[0][heads[0] >= 0].tolist()
        assert len(entered) == len(set(entered)) == 3
        for layer in r.layers:  # neurons too: each block's first and last entries far apart
            if layer["kind"] == "mlp":
                e = r.entry_times(layer["name"])
                e = r.iterations[e[e >= 0]]
                assert e.max() - e.min() >= 100, layer["name"]
    for layer in s["layers"]:  # every Gamma layer ends 10-95 % selected
        assert 0.10 <= layer["in_support"] / layer["groups"] <= 0.95, layer
    assert stop["iteration"] <= 0.6 * s["iterations"]
    assert stop["params_kept"] <= 0.6 * s["params_total"]


def test_the_vit_demo_stop_is_what_export_writes(vit_demo_run, tmp_path):
    """A compact .pt2 export at the stop has exactly stop.params_kept parameters (heads and
    neurons cut) and the test accuracy stop.test_acc_sparse."""
    from pathviz import export, inspect

    stop = inspect.summary(vit_demo_run)["stop"]
    rep = export.export(vit_demo_run, stop["iteration"], "compact", "pt2", tmp_path / "v.pt2")
    assert rep["params_after"] == stop["params_kept"] < rep["params_before"]
    assert abs(rep["test_acc"] - stop["test_acc_sparse"]) <= 1e-6
    assert rep["max_abs_diff_compact_vs_masked"] < 1e-5
    import torch

    m = torch.export.load(str(tmp_path / "v.pt2")).module()
    assert tuple(m(torch.zeros(3, 1, 28, 28)).shape) == (3, 10)
