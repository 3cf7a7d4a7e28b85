"""pathviz.integrations.lightning: the Callback under DDP on two CPU processes, gradient
accumulation, and the refusals. The module is the one docs/integrations.md prints."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lightning")

from pathviz import runs  # noqa: E402
from pathviz.store import PathReader  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def doc_script() -> str:
    """The Lightning block of docs/integrations.md."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "integrations.md").read_text(),
                        flags=re.S)
    return next(b for b in blocks if "import lightning" in b)


def run_script(tmp_path: Path, code: str, timeout: int = 600) -> subprocess.CompletedProcess:
    script = tmp_path / "train_lightning.py"
    script.write_text(code)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_ddp_on_two_cpu_processes_records_one_path_from_rank_0(tmp_path):
    code = doc_script().replace('devices=1,', 'devices=2, strategy="ddp",')
    assert 'strategy="ddp"' in code
    p = run_script(tmp_path, code)
    assert p.returncode == 0, p.stderr[-3000:]
    run = tmp_path / "checkpoints" / "lightning"
    assert sorted(f.name for f in run.iterdir() if not f.name.startswith(".")) == [
        "manifest.json", "path.h5", "status.json"]
    assert runs.read_status(runs.paths_for_dir(run))["state"] == "finished"
    with PathReader(run / "path.h5") as r:
        # each process sees half of the 32 batches: 16 optimizer steps per epoch
        assert r.iterations.tolist() == list(range(0, 49, 4))
        assert r.config["world_size"] == 2
        assert np.isfinite(r.metric("val_acc_sparse")).sum() == 3
        assert any((r.layer_path(n)[-1] > 0).any() for n in ("net.0", "net.2"))


def test_gradient_accumulation_counts_optimizer_steps(tmp_path):
    code = doc_script().replace("devices=1,", "devices=1, accumulate_grad_batches=4,")
    p = run_script(tmp_path, code)
    assert p.returncode == 0, p.stderr[-3000:]
    with PathReader(tmp_path / "checkpoints" / "lightning" / "path.h5") as r:
        # 3 epochs of 32 batches, 4 per optimizer step: 24 steps, a snapshot every 4
        assert r.iterations.tolist() == list(range(0, 25, 4))
        assert r.epochs[-1] == 3.0


def test_an_optimizer_without_a_path_is_refused_before_the_first_step(tmp_path):
    code = doc_script().replace("return slbi_optimizer(self, lr=0.1, nu=10.0, lam=0.2)",
                                "return torch.optim.SGD(self.parameters(), lr=0.1)")
    assert "torch.optim.SGD" in code
    p = run_script(tmp_path, code)
    assert p.returncode != 0
    assert "records a path only with pathviz's SLBI optimizer, but training uses SGD" in \
        p.stderr
    assert not (tmp_path / "checkpoints" / "lightning" / "path.h5").exists()


def test_unknown_metric_names_are_refused():
    from pathviz.integrations.lightning import PathCallback

    with pytest.raises(ValueError, match=r"metric_names: \['val_accuracy'\] are not path "
                                         r"metrics"):
        PathCallback("checkpoints/x", metric_names={"val_accuracy": "acc"})
