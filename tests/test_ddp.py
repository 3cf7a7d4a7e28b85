"""Several training processes (torchrun, DDP on gloo, CPU): identical ranks, one writer, the
single-process path, and a resume with another number of processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from pathviz import distributed, runs
from pathviz.store import PathReader
from tests.conftest import path_contents

pytestmark = pytest.mark.skipif(not (torch.distributed.is_available()
                                     and torch.distributed.is_gloo_available()),
                                reason="torch.distributed with gloo is not available")

# 2 epochs of the demo: 36 iterations of 64 images (the last batch 62), weights every 12
ARGS = ["--preset", "demo", "--epochs", "2", "--weights-every", "12", "--eval-every", "6",
        "--no-progress"]
TOTAL = 36


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_cmd(nproc: int, *args: str) -> list[str]:
    # --standalone picks its own rendezvous port; a fixed free master port keeps two test
    # sessions on one machine apart
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes=1",
            f"--nproc_per_node={nproc}", "--rdzv-backend=c10d",
            f"--rdzv-endpoint=127.0.0.1:{_free_port()}", "-m", "pathviz.train", *args]


ENV = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=ENV, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


contents = path_contents


def status(run_dir: Path) -> dict:
    return json.loads((run_dir / runs.STATUS_FILE).read_text())


@pytest.fixture(scope="module")
def runs_1_and_2(tmp_path_factory) -> tuple[Path, Path, Path]:
    base = tmp_path_factory.mktemp("ddp")
    one, two, cwd = base / "one", base / "two", base / "cwd"
    cwd.mkdir()
    run([sys.executable, "-m", "pathviz.train", *ARGS, "--out", str(one)], cwd=base)
    run(torchrun_cmd(2, *ARGS, "--out", str(two)), cwd=cwd)
    return one, two, cwd


def test_two_processes_keep_identical_states_and_one_writer(runs_1_and_2):
    """Every rank holds the same weights, Gamma, z and momentum (the worker gathers a hash of
    all of them from every rank at each resume save and fails the run if they differ; status
    shows the last ones), and only rank 0 wrote files: the run folder holds exactly what a
    single-process run writes, the log tells the story once, and nothing else appeared."""
    one, two, cwd = runs_1_and_2
    st = status(two)
    assert st["state"] == "finished" and st["iteration"] == TOTAL and st["processes"] == 2
    prints = st["ranks"]["fingerprints"]
    assert st["ranks"]["iteration"] == TOTAL and len(prints) == 2 and prints[0] == prints[1]
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    assert list(cwd.iterdir()) == []
    log = (two / runs.LOG_FILE).read_text()
    assert log.count("finished: 36 iterations") == 1 and "2 processes" in log
    with PathReader(two / runs.PATH_FILE) as r:  # what the app opens
        assert r.iterations.tolist() == list(range(TOTAL + 1))
        assert r.weight_iterations.tolist() == [0, 12, 24, 36]
        assert [layer["name"] for layer in r.layers] == ["conv2", "conv3", "fc1"]
        assert np.isfinite(r.metric("test_acc")[-1])


def test_two_processes_give_the_single_process_path(runs_1_and_2):
    """Each rank takes half of the single-process batch (``batch[rank::2]``) and DDP sums the
    two halves' gradients, so the update is the single-process update up to the order in which
    float32 gradient terms are added: the conv/linear backward reduces over 32 + 32 images
    instead of 64. That changes the last bit of some gradients; the training dynamics then
    amplify it (measured: 1.5e-8 at iteration 12, 3e-6 at 24, 1e-4 at 36 on the weights).
    Bit equality is not achievable without changing the single-process numerics, so the test
    asserts: counters equal, the path equal to 1e-6 through iteration 12, and within 1e-3
    (and accuracies within 2 images) over the 36 iterations."""
    one, two, _ = runs_1_and_2
    a, b = contents(one), contents(two)
    assert sorted(a) == sorted(b)
    for name in ("snapshots/iteration", "snapshots/epoch", "weights/iteration"):
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    early = int(np.searchsorted(a["snapshots/iteration"], 12)) + 1  # snapshots 0..12
    for name in a:
        x, y = a[name].astype(np.float64), b[name].astype(np.float64)
        if name.startswith(("weights/", "gamma/")):
            np.testing.assert_allclose(x[:2], y[:2], rtol=0, atol=1e-6, err_msg=name)  # it 0, 12
        elif not name.endswith("_acc") and not name.endswith("_sparse"):
            np.testing.assert_allclose(x[:early], y[:early], rtol=0, atol=1e-6, err_msg=name)
        if name.endswith(("_acc", "_acc_sparse")):
            # accuracies: at most 2 images of the 1797-image digits splits either way
            np.testing.assert_allclose(x, y, rtol=0, atol=2 / 300, err_msg=name)
        else:
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-3, err_msg=name)


def test_a_ddp_run_stopped_by_sigterm_resumes_on_one_process(tmp_path):
    """SIGTERM to torchrun reaches both ranks; they agree on the stop and rank 0 saves the
    resume state. One process then continues it: the path has every iteration exactly once."""
    args = ["--preset", "demo", "--epochs", "12", "--weights-every", "10", "--eval-every", "10",
            "--no-progress"]
    total = 12 * 18
    out = tmp_path / "run"
    proc = subprocess.Popen(torchrun_cmd(2, *args, "--out", str(out)), cwd=tmp_path, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.time() + 300
    try:
        while time.time() < deadline and _snapshots(out) < 30 and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, "the run finished before it could be stopped"
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    st = status(out)
    assert st["state"] == "stopped", (st, proc.stderr.read()[-3000:])
    stopped_at = st["iteration"]
    assert 0 < stopped_at < total
    run([sys.executable, "-m", "pathviz.train", "--out", str(out), "--resume", "--no-progress"],
        cwd=tmp_path)
    st = status(out)
    assert st["state"] == "finished" and st["iteration"] == total
    with PathReader(out / runs.PATH_FILE) as r:  # the app's reader: no gap, no repeat
        np.testing.assert_array_equal(r.iterations, np.arange(total + 1))
        assert r.weight_iterations[-1] == total
        assert np.all(np.isfinite(r.metric("train_loss")[1:]))
    assert not any(p.name.startswith(".") for p in out.iterdir())  # no temp files left


def _snapshots(run_dir: Path) -> int:
    try:
        with PathReader(run_dir / runs.PATH_FILE) as r:
            return r.n_snapshots
    except Exception:  # not created yet, or mid-creation
        return 0


def test_fingerprint_sees_one_bit_of_any_state():
    """The ranks' check is only as good as its hash: one flipped bit in a parameter or in an
    SLBI state tensor changes it."""
    from pathviz.groups import slbi_param_groups
    from pathviz.models import build_model
    from pathviz.optim import SLBI

    torch.manual_seed(0)
    model = build_model("lenet5", num_classes=10, in_channels=1, input_size=28)
    opt = SLBI(slbi_param_groups(model, lam=0.1), lr=0.1)
    model(torch.randn(4, 1, 28, 28)).sum().backward()
    opt.step()
    base = distributed.fingerprint(model, opt)
    assert distributed.fingerprint(model, opt) == base
    p = model.conv1.weight
    for t in (p.data, opt.state[p]["z"], opt.state[p]["momentum_buffer"]):
        saved = t.clone()
        t.view(-1).view(torch.int32)[3] ^= 1
        assert distributed.fingerprint(model, opt) != base
        t.copy_(saved)
    assert distributed.fingerprint(model, opt) == base


def test_torchrun_without_a_run_folder_change_says_one_sentence(tmp_path):
    """Bad input under torchrun: rank 0 says it once, every rank exits 2, nothing written."""
    out = tmp_path / "bad"
    proc = subprocess.run(torchrun_cmd(2, "--preset", "demo", "--epochs", "0", "--out",
                                       str(out)), capture_output=True, text=True, cwd=tmp_path,
                          env=ENV, timeout=300)
    assert proc.returncode != 0
    assert proc.stderr.count("pathviz.train: error: --epochs must be a whole number >= 1") == 1
    assert not out.exists()


def test_one_process_under_torchrun_is_the_plain_worker(monkeypatch):
    """``--nproc_per_node=1`` (WORLD_SIZE 1) trains exactly as without torchrun: no DDP, no
    process group, the single-process numbers."""
    for k, v in {"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(k, v)
    assert distributed.from_env() is None
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert distributed.from_env() == distributed.Dist(rank=1, world=2, local_rank=0)



def test_a_run_started_with_two_processes_stops_resumes_and_finishes(tmp_path, monkeypatch):
    """What the app's Processes field, Stop and Resume do: ``runs.start_worker(...,
    processes=2)`` runs torchrun in the run's own session, ``runs.stop_worker`` stops every rank
    (status stopped), and a resume with 2 processes finishes with every iteration once."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    paths = runs.run_paths("two", tmp_path)
    args = [*ARGS[:ARGS.index("--epochs")], "--epochs", "12",
            *ARGS[ARGS.index("--epochs") + 2:]]
    total = 12 * TOTAL // 2

    def wait(pid: int) -> dict:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and runs.is_alive(pid, None):
            time.sleep(0.2)
        return status(paths.dir)

    pid = runs.start_worker(paths, args, processes=2)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (
            status(paths.dir).get("state") == "running"
            and int(status(paths.dir).get("snapshots") or 0) >= 20):
        time.sleep(0.1)
    assert runs.stop_worker(paths, timeout=60)
    st = wait(pid)
    assert st["state"] == "stopped" and st["iteration"] < total, paths.log.read_text()[-3000:]
    st = wait(runs.start_worker(paths, [], resume=True, processes=2))
    assert st["state"] == "finished", paths.log.read_text()[-3000:]
    assert st["processes"] == 2 and len(set(st["ranks"]["fingerprints"])) == 1
    with PathReader(paths.path) as r:
        assert r.iterations.tolist() == list(range(total + 1))


DEFERRED_WORKER = """
import sys
from pathviz import train
init = train.Trainer.__init__
def deferred(self, *args, **kwargs):
    init(self, *args, **kwargs)
    self.check_every_step = False  # the GPU path's agreement, here on the CPU
train.Trainer.__init__ = deferred
sys.exit(train.main(sys.argv[1:]))
"""


def _script_cmd(script: Path, nproc: int, *args: str) -> list[str]:
    cmd = torchrun_cmd(nproc, *args)
    at = cmd.index("pathviz.train")
    cmd[at - 1:at + 1] = [str(script)]  # torchrun runs the script file instead of the module
    return cmd


def test_the_gpu_paths_deferred_agreement_gives_the_same_ddp_path(runs_1_and_2, tmp_path):
    """On a GPU the ranks agree on a non-finite loss and on a stop only where a snapshot or a
    resume state is written, not every step. On the CPU, that mode gives the per-step run's
    file bit for bit."""
    _, two, _ = runs_1_and_2
    script = tmp_path / "deferred_worker.py"
    script.write_text(DEFERRED_WORKER)
    out = tmp_path / "deferred"
    run(_script_cmd(script, 2, *ARGS, "--out", str(out)), cwd=tmp_path)
    assert status(out)["state"] == "finished"
    a, b = contents(two), contents(out)
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


FAULTY_WORKER = """
import os, sys
from pathviz import train
if int(os.environ["RANK"]) == {rank}:
    step = train.Trainer._train_step
    def failing(self, *args):
        if self.iteration == {at}:
            raise RuntimeError("injected fault on purpose")
        return step(self, *args)
    train.Trainer._train_step = failing
sys.exit(train.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("rank", [1, 0])
def test_a_failure_on_any_rank_ends_every_rank_and_names_it(tmp_path, rank):
    """An exception on one rank (here injected into its training step at iteration 5) ends the
    whole run: torchrun exits non-zero within seconds, not at the collective timeout, and the
    status says ``failed`` with the rank and its reason. The snapshots before it stay
    readable."""
    script = tmp_path / "faulty_worker.py"
    script.write_text(FAULTY_WORKER.format(rank=rank, at=5))
    out = tmp_path / "run"
    cmd = _script_cmd(script, 2, *ARGS, "--out", str(out))
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=ENV,
                          timeout=240)
    assert proc.returncode != 0
    assert time.time() - t0 < 120, "the ranks waited for the collective timeout"
    st = status(out)
    assert st["state"] == "failed", st
    assert st["reason"].startswith(f"rank {rank}: RuntimeError: injected fault on purpose"), st
    with PathReader(out / runs.PATH_FILE) as r:
        assert r.iterations.tolist() == list(range(6))  # 0..5: each iteration before the fault
    # no traceback from a worker (torchrun prints its own summary of the failed child)
    assert "pathviz/train" not in proc.stderr


def _agree_worker(rank: int, world: int, init: str, q) -> None:
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        d = distributed.Dist(rank=rank, world=world, local_rank=rank)
        dev = torch.device("cpu")
        got = distributed.agree_flags([rank == 1, rank >= 0, False,
                                       torch.tensor(rank == 0)], d, dev)
        q.put((rank, got))
    finally:
        torch.distributed.destroy_process_group()


def test_agree_flags_names_the_lowest_rank_that_raised_each_flag(tmp_path, monkeypatch):
    """The flags of the per-step agreement: which rank saw a non-finite loss or a signal (the
    status names it), the same answer on every rank."""
    import types

    import torch.multiprocessing as mp

    # a spawned child first runs the parent's ``__main__`` again; a Streamlit AppTest earlier
    # in this test process leaves its generated script there (``app(*__args, ...)``), which
    # fails in the child: the child gets a plain ``__main__`` instead (the worker function is
    # imported from this module by name)
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    init = f"file://{tmp_path / 'rdzv'}"
    procs = [ctx.Process(target=_agree_worker, args=(r, 2, init, q)) for r in range(2)]
    for p in procs:
        p.start()
    got = dict(q.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert got == {0: [1, 0, None, 0], 1: [1, 0, None, 0]}


def test_an_image_folder_run_of_a_torchvision_model_on_two_processes(tmp_path):
    """``--dataset imagefolder`` with a torchvision model at 224 px under torchrun: the ranks
    (each decoding only its share of every batch, tested in tests/test_folder.py) keep
    identical states and rank 0 writes a complete path. SqueezeNet draws dropout masks per
    process, so unlike the LeNet demo its path is not the single-process one; its 1x1 conv
    classifier stays dense."""
    from tests.test_folder import make_folder

    root = make_folder(tmp_path / "imgs")
    out = tmp_path / "two"
    run(torchrun_cmd(2, "--dataset", "imagefolder", "--data-root", str(root), "--model",
                     "tv_squeezenet1_1", "--epochs", "2", "--batch-size", "4",
                     "--weights-every", "4", "--eval-every", "4", "--lam", "0.05",
                     "--no-progress", "--out", str(out)), cwd=tmp_path)
    st = status(out)
    assert st["state"] == "finished" and st["processes"] == 2 and st["iteration"] == 8
    prints = st["ranks"]["fingerprints"]
    assert len(prints) == 2 and prints[0] == prints[1]
    with PathReader(out / runs.PATH_FILE) as r:
        assert r.iterations.tolist() == list(range(9))
        assert r.weight_iterations.tolist() == [0, 4, 8]
        assert "classifier.1" not in [layer["name"] for layer in r.layers]
        assert np.all(np.isfinite(r.metric("train_loss")[1:]))
        assert np.isfinite(r.metric("test_acc_sparse")[-1])


def test_a_batchnorm_model_keeps_identical_ranks_on_the_cpu(tmp_path):
    """Without SyncBatchNorm (gloo) each rank updates the running statistics from its share;
    the worker gives every rank rank 0's before it evaluates or saves (as DDP does before each
    forward pass), so the ranks' fingerprints agree and the run finishes (it failed with
    "the 2 processes hold different weights" at the first save before)."""
    out = tmp_path / "bn"
    run(torchrun_cmd(2, "--model", "cifar_resnet_20", "--epochs", "1", "--weights-every", "6",
                     "--eval-every", "6", "--no-progress", "--out", str(out)), cwd=tmp_path)
    st = status(out)
    assert st["state"] == "finished" and st["iteration"] == 18
    prints = st["ranks"]["fingerprints"]
    assert len(prints) == 2 and prints[0] == prints[1]
    with PathReader(out / runs.PATH_FILE) as r:
        assert np.isfinite(r.metric("val_acc")[-1]) and r.weight_iterations.tolist() == [0, 6,
                                                                                         12, 18]


@pytest.mark.parametrize("size,what", [(1200 * 1024, "path.h5"), (2048 * 1024, "resume.pt")])
def test_a_full_disk_under_torchrun_is_our_sentence_and_its_advice_works(runs_1_and_2, tmp_path,
                                                                         size, what):
    """A two-process run on a full disk: rank 0 says which file could not be written at which
    iteration, in the status and on stderr, with no traceback of ours (before: 'rank 0:
    OSError …' and a chained traceback from a second write on the full disk); after freeing
    space, the advice (--resume) finishes the run with the uninterrupted run's path."""
    from tests.faults.tmpfs import resize, tmpfs

    _, two, cwd = runs_1_and_2
    with tmpfs(tmp_path / "m", size) as m:
        out = m / "run"
        proc = subprocess.run(torchrun_cmd(2, *ARGS, "--out", str(out)), capture_output=True,
                              text=True, cwd=cwd, env=ENV, timeout=300)
        assert proc.returncode != 0
        said = (f"disk full at iteration 12: {what} could not be written; free space, then "
                f"continue with --resume")
        assert status(out)["state"] == "failed" and status(out)["reason"] == f"rank 0: {said}"
        assert f"pathviz.train: error: {said}\n" in proc.stderr
        assert "[rank0]: Traceback" not in proc.stderr and "pathviz/train" not in proc.stderr
        resize(m, 16 * 1024 * 1024)
        run(torchrun_cmd(2, "--resume", "--out", str(out), "--no-progress"), cwd=cwd)
        assert status(out)["state"] == "finished"
        got, want = contents(out), contents(two)
        assert got.keys() == want.keys()
        for k in want:
            np.testing.assert_array_equal(got[k], want[k], err_msg=k)
