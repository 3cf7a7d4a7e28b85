"""The op-digest check: this machine's kernels against every other CPU's reference, the
vendor-dependent kernels kept off the training path, and the check's own refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pathviz import digests

ROOT = Path(__file__).resolve().parents[1]


def _digests(*args: str) -> subprocess.CompletedProcess:
    # a process of its own: the pin must come before torch computes anything
    return subprocess.run([sys.executable, "-m", "pathviz.digests", *args],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)


@pytest.fixture(scope="module")
def here(tmp_path_factory) -> dict:
    """This machine's digests at the default level, and what comparing them printed."""
    out = tmp_path_factory.mktemp("digests") / "here.json"
    p = _digests("--references", "--out", str(out))
    return {"proc": p, "doc": json.loads(out.read_text())}


def test_references_are_kept_for_two_vendors_at_every_level():
    names = [p.name for p in digests.reference_files()]
    for level in ("avx2", "avx512", "baseline"):
        vendors = {n.split("-")[0] for n in names if n.endswith(f".{level}.json")}
        assert {"intel", "amd"} <= vendors, (level, names)


def test_this_machines_kernels_equal_every_references(here):
    """The check that finds a CPU that rounds differently, by op name, before a golden figure
    moves: every op digest equals every reference's at the default level."""
    p = here["proc"]
    refs = digests.reference_files("avx2")
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("against ")]
    assert len(lines) == len(refs), p.stderr
    assert p.returncode == 0, "ops that round differently on this CPU:\n" + p.stderr
    assert all(" 0 of " in ln for ln in lines), p.stderr


def test_every_reference_shares_the_tool_cases_with_this_machine(here):
    """The Intel files predate the project's own cases: at least the tool's 26 compare."""
    for path in digests.reference_files("avx2"):
        _, _, n = digests.compare(here["doc"], json.loads(path.read_text()))
        assert n >= 26, path.name


def test_a_differing_op_is_named_and_fails(here, tmp_path):
    doc = json.loads(json.dumps(here["doc"]))
    doc["digests"]["sdpa (64,4,28,8)"] = "0" * 16
    other = tmp_path / "other.avx2.json"
    other.write_text(json.dumps(doc))
    p = _digests("--compare", str(other))
    assert p.returncode == 1
    assert "1 of" in p.stderr and "sdpa (64,4,28,8)" in p.stderr


def test_an_unreadable_reference_is_one_sentence(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    p = _digests("--compare", str(bad))
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.count("\n") == 1 and "cannot read the reference" in p.stderr


def test_a_wrong_flag_is_one_sentence():
    p = _digests("--cpu-isa", "avx9")
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "avx9" in p.stderr


def test_the_watch_sees_a_vendor_kernel():
    """The tracer below can fail: it sees torch.sqrt (MKL's vector sqrt) and pow(x, 0.5)."""
    import torch

    def run():
        x = torch.rand(10)
        x.sqrt()
        x.pow(0.5)
        torch.exp(x.double())
        torch.sqrt(torch.ones(2, dtype=torch.int64))  # integers are promoted: still counted
        x.norm()  # its square root is taken inside the kernel: IEEE, not counted

    assert digests.vendor_ops_run(run) == {"sqrt": 3, "exp": 1}


def test_numerics_sqrt_is_ieee_and_in_place():
    import numpy as np
    import torch

    from pathviz.numerics import sqrt_

    x = torch.rand(100_000) * 3
    ref = np.sqrt(x.numpy().copy())
    y = sqrt_(x)
    assert y is x and np.array_equal(x.numpy(), ref)


# training, recording and evaluation in the worker's own code, for a few iterations each: a
# transformer (heads and neurons span tensors), LeNet (conv and linear rows), with snapshots,
# saved weights and the compact subnetwork's evaluation
WATCHED = """
import json, sys
from pathviz import numerics
numerics.pin("avx2")
from pathviz import digests, train
found = {}
for name, args in json.loads(sys.argv[1]).items():
    ops = digests.vendor_ops_run(lambda: train.main(args))
    found[name] = ops
print(json.dumps(found))
"""


def test_no_vendor_kernel_runs_when_training_recording_and_evaluating(tmp_path):
    runs = {
        "vit_demo": ["--preset", "vit_demo", "--epochs", "1", "--lam", "0.002",
                     "--mlp-lam", "0.002", "--eval-every", "12", "--weights-every", "12",
                     "--out", str(tmp_path / "vit"), "--no-progress"],
        "demo": ["--preset", "demo", "--epochs", "2", "--lam", "0.05", "--eval-every", "6",
                 "--weights-every", "6", "--out", str(tmp_path / "lenet"), "--no-progress"],
    }
    p = subprocess.run([sys.executable, "-c", WATCHED, json.dumps(runs)], capture_output=True,
                       text=True, timeout=900, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    found = json.loads(p.stdout.strip().splitlines()[-1])
    assert found == {"vit_demo": {}, "demo": {}}, (
        "these ops go through MKL's vector math, whose rounding depends on the CPU vendor: "
        f"{found}")
    for sub in ("vit", "lenet"):
        assert (tmp_path / sub / "path.h5").exists()
