"""The numerics pins: the same path on machines with other instruction sets, simulated here by
capping each CPU library from outside, as another machine's CPU would; the refusals; and what a
run records about the environment that made it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np
import pytest

from pathviz import numerics, runs
from tests.conftest import make_run, path_contents

# a short demo: 4 epochs of 18 iterations, lam 0.1 so that groups enter within them (from
# iteration ~50) and the compact subnetwork's figures (pruning, evaluation) are compared too
SHORT = ["--preset", "demo", "--epochs", "4", "--lam", "0.1", "--eval-every", "6",
         "--weights-every", "18", "--no-progress"]

PIN_VARS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR", "NUMBA_CPU_NAME",
            "NUMBA_CPU_FEATURES", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")

# what other machines' CPUs make the libraries pick: each cap alone, the AVX2 level of each
# (an AVX2-only machine such as the AMD EPYC of issue 17; on an AVX-512 machine these stand in
# for it), and all three at once with other thread counts in the environment
CAPS = {
    "aten-default": {"ATEN_CPU_CAPABILITY": "default"},
    "onednn-sse41": {"ONEDNN_MAX_CPU_ISA": "SSE41"},
    "mkl-compatible": {"MKL_CBWR": "COMPATIBLE"},
    "numba-generic": {"NUMBA_CPU_NAME": "generic"},
    "aten-avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "onednn-avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "mkl-avx2": {"MKL_CBWR": "AVX2"},
    "avx2-machine, 4 threads": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                                "MKL_CBWR": "AVX2", "NUMBA_CPU_NAME": "haswell",
                                "OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "4"},
}


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without any pin variable (conftest sets them), plus
    ``extra``: a caller on another machine."""
    env = {k: v for k, v in os.environ.items() if k not in PIN_VARS}
    return {**env, **extra}


def _train(out: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pathviz.train", *SHORT, "--out", str(out),
                           *args], capture_output=True, text=True, env=_clean_env(env),
                          timeout=600)


_contents = path_contents


def _differing(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> list[str]:
    assert sorted(a) == sorted(b)
    return [k for k in a if not np.array_equal(a[k], b[k], equal_nan=True)]


@pytest.fixture(scope="module")
def machines(tmp_path_factory) -> dict[str, Path]:
    """The short demo trained uncapped and under every cap, pinned (the default cpu_isa) and,
    as the control that shows the caps bite, unpinned (--cpu-isa native)."""
    root = tmp_path_factory.mktemp("machines")
    jobs = {("pinned", "uncapped"): {}, ("native", "uncapped"): {}}
    jobs.update({("pinned", name): caps for name, caps in CAPS.items()})
    jobs.update({("native", name): CAPS[name]
                 for name in ("aten-default", "onednn-sse41", "mkl-compatible")})

    def run(key):
        out = root / "-".join(key).replace(",", "").replace(" ", "_")
        extra = ("--cpu-isa", "native") if key[0] == "native" else ()
        proc = _train(out, jobs[key], *extra)
        assert proc.returncode == 0, (key, proc.stderr[-2000:])
        return key, out

    with ThreadPoolExecutor(2) as pool:
        return dict(pool.map(run, jobs))


def test_the_pinned_path_is_the_same_under_every_other_machines_caps(machines):
    """Acceptance (issue 17): under each external cap, the pinned worker writes exactly the
    uncapped run's path. A library left unpinned would make one of these differ."""
    base = _contents(machines[("pinned", "uncapped")])
    assert "layers/conv3/gamma_norm" in base and np.isfinite(base["metrics/val_acc_sparse"]).any()
    entered = base["layers/conv3/gamma_norm"][-1] > 0
    assert 0 < entered.sum() < entered.size  # part of a layer entered: pruning is compared
    for name in CAPS:
        assert _differing(base, _contents(machines[("pinned", name)])) == [], name
    env = json.loads((machines[("pinned", "mkl-avx2")] / runs.CONFIG_FILE).read_text())
    assert env["cpu_isa"] == "avx2" and env["environment"]["cpu_capability"] == "AVX2"


def test_without_the_pin_the_caps_change_the_path(machines):
    """The control: with --cpu-isa native the same caps do change the path (as on the machine
    of issue 17), so the test above would catch a library the pin missed."""
    native = _contents(machines[("native", "uncapped")])
    for name in ("aten-default", "onednn-sse41", "mkl-compatible"):
        assert _differing(native, _contents(machines[("native", name)])), name


def test_a_run_records_what_made_it(machines):
    run = machines[("pinned", "uncapped")]
    cfg = json.loads((run / runs.CONFIG_FILE).read_text())
    env = cfg["environment"]
    import numba
    import numpy
    import torch

    import pathviz

    assert cfg["cpu_isa"] == env["cpu_isa"] == "avx2" and cfg["deterministic"] is True
    assert env["torch"] == torch.__version__ and env["numpy"] == numpy.__version__
    assert env["numba"] == numba.__version__ and env["pathviz"] == pathviz.__version__
    assert env["device"] == "cpu" and env["threads"] == 1
    with h5py.File(run / runs.PATH_FILE, "r") as f:
        assert json.loads(f.attrs["environment"]) == env
    proc = subprocess.run([sys.executable, "-m", "pathviz.inspect", str(run), "--json"],
                          capture_output=True, text=True, check=True)
    s = json.loads(proc.stdout)
    assert s["environment"] == env and len(s["fingerprint"]) == 16
    other = json.loads(subprocess.run(
        [sys.executable, "-m", "pathviz.inspect", str(machines[("pinned", "mkl-avx2")]),
         "--json"], capture_output=True, text=True, check=True).stdout)
    assert other["fingerprint"] == s["fingerprint"]
    native = json.loads(subprocess.run(
        [sys.executable, "-m", "pathviz.inspect", str(machines[("native", "aten-default")]),
         "--json"], capture_output=True, text=True, check=True).stdout)
    assert native["fingerprint"] != s["fingerprint"]


def test_resume_keeps_the_runs_level_and_refuses_another(tmp_path):
    run = tmp_path / "base"
    proc = _train(run, {}, "--cpu-isa", "baseline", "--epochs", "1")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((run / runs.CONFIG_FILE).read_text())["environment"][
        "cpu_capability"] == "DEFAULT"
    status = json.loads((run / runs.STATUS_FILE).read_text())
    status["state"] = "stopped"  # as if stopped early, so that --resume has work to refuse
    (run / runs.STATUS_FILE).write_text(json.dumps(status))
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    proc = subprocess.run([sys.executable, "-m", "pathviz.train", "--out", str(run), "--resume",
                           "--cpu-isa", "avx2", "--no-progress"], capture_output=True, text=True,
                          env=_clean_env({}), timeout=300)
    assert proc.returncode == 2 and "drop --cpu-isa" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    # a resume with other library versions goes on, and says that the path is no longer the
    # one an uninterrupted run would give
    cfg = json.loads((run / runs.CONFIG_FILE).read_text())
    cfg["environment"]["torch"] = "0.0.1"
    (run / runs.CONFIG_FILE).write_text(json.dumps(cfg))
    proc = subprocess.run([sys.executable, "-m", "pathviz.train", "--out", str(run), "--resume",
                           "--no-progress"], capture_output=True, text=True,
                          env=_clean_env({}), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "resumed with another environment than the run started with (torch 0.0.1 -> " \
        in proc.stderr
    assert json.loads((run / runs.CONFIG_FILE).read_text())["cpu_isa"] == "baseline"


def test_a_machine_without_the_level_is_told_in_one_sentence(tmp_path, monkeypatch, capsys):
    """An x86-64 CPU without AVX2, or an ARM machine, cannot run the avx2 kernels: one
    sentence, exit 2, nothing written (native is always allowed)."""
    from pathviz import train

    monkeypatch.setattr(numerics, "_cpu_flags", lambda: {"sse4_1", "sse4_2", "avx"})
    out = tmp_path / "old-cpu"
    assert train.main([*SHORT, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "avx2" in err and "--cpu-isa baseline" in err
    assert not out.exists()
    monkeypatch.setattr(numerics.platform, "machine", lambda: "aarch64")
    assert train.main([*SHORT, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "aarch64" in err and "--cpu-isa native" in err and not out.exists()


def test_machine_problem_names_each_case():
    avx2 = {"avx2", "fma", "bmi1", "bmi2", "f16c", "movbe", "sse4_1"}
    assert numerics.machine_problem("avx2", "x86_64", avx2) is None
    assert numerics.machine_problem("native", "arm64", set()) is None
    assert "avx512f" in numerics.machine_problem("avx512", "x86_64", avx2)
    assert "arm64" in numerics.machine_problem("baseline", "arm64", set())
    assert "not a level" in numerics.machine_problem("avx3", "x86_64", avx2)


def test_a_process_that_computed_before_the_pin_is_refused_and_left_as_it_was():
    """torch fixes its kernels at its first computation: pinning afterwards would only pretend,
    so pin refuses in one sentence and leaves the environment as it found it."""
    script = ("import os, torch\n"
              "torch.zeros(4).add_(1)\n"
              "from pathviz import numerics\n"
              "try:\n"
              "    numerics.pin('baseline')\n"
              "except numerics.NumericsError as e:\n"
              "    print('refused:', e)\n"
              "print('env:', os.environ.get('ATEN_CPU_CAPABILITY'))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=_clean_env({}), timeout=120, check=True)
    assert "refused: this process already computed with torch's" in proc.stdout
    assert "env: None" in proc.stdout


def test_export_refuses_a_run_at_a_level_this_process_cannot_take(tmp_path):
    """The app's Export view runs in a process pinned to the default level: a run trained at
    another level is refused in one sentence instead of giving other accuracies."""
    import torch

    from pathviz import export

    torch.ones(2).sum()  # this process has computed (at conftest's avx2), as the app's has
    paths = make_run(tmp_path, "base", n=6, weights_every=5)
    cfg = {"model": "lenet5", "dataset": "digits", "cpu_isa": "baseline"}
    with h5py.File(paths.path, "r+") as f:
        f.attrs["config"] = json.dumps(cfg)
    with pytest.raises(export.ExportError, match="already computed with torch's"):
        export.load_run_model(paths.dir, 0)
    with h5py.File(paths.path, "r+") as f:
        f.attrs["config"] = json.dumps({**cfg, "cpu_isa": "avx9"})
    with pytest.raises(export.ExportError, match="not a level pathviz knows"):
        export.load_run_model(paths.dir, 0)


def test_a_run_from_before_the_pin_reads_as_native():
    from pathviz.config import RunConfig, config_from_json

    old = {k: v for k, v in RunConfig().to_json().items() if k != "cpu_isa"}
    assert config_from_json(old, "config.json").cpu_isa == "native"
    assert config_from_json({**old, "environment": {"torch": "x"}}, "c").cpu_isa == "native"


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")
def test_a_deterministic_gpu_run_repeats_on_the_same_gpu(tmp_path):
    """--deterministic on CUDA: two runs of the same config give the same path bit for bit,
    and the config records it."""
    files = []
    for name in ("a", "b"):
        proc = _train(tmp_path / name, {}, "--device", "cuda", "--deterministic", "true")
        assert proc.returncode == 0, proc.stderr
        files.append(_contents(tmp_path / name))
    assert _differing(*files) == []
    cfg = json.loads((tmp_path / "a" / runs.CONFIG_FILE).read_text())
    assert cfg["deterministic"] is True and cfg["environment"]["device"].startswith("cuda")
    assert "gpu" in cfg["environment"]
