"""docs/integrations.md, every block run as printed, and what its prose claims.

The python blocks run in order, each as a script, in one temporary working directory (so
``checkpoints/hf-llama`` and ``runs/hf-llama`` land there and a later block reads what an
earlier one wrote); then every command of the bash blocks, ``python`` being this interpreter.
Not run: the first bash block (``pip install "pathviz[hf]"`` and the others): it needs the
network and would change this environment; :func:`test_the_extras_name_the_libraries` checks
that pyproject's extras are the ones it names.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("tensorboard")
pytest.importorskip("lightning")

from pathviz.store import PathReader  # noqa: E402

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "integrations.md"


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), flags=re.S)


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> dict:
    """Every python block run in order in one folder, then the bash blocks but the install."""
    cwd = tmp_path_factory.mktemp("docs")
    outputs = []
    for i, code in enumerate(blocks("python")):
        script = cwd / f"block{i}.py"
        script.write_text(code)
        p = subprocess.run([sys.executable, str(script)], cwd=cwd, env=env(),
                           capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, (i, p.stdout[-2000:], p.stderr[-3000:])
        outputs.append(p.stdout)
    commands = []
    for block in blocks("bash")[1:]:  # the first is the install block (see the docstring)
        for line in block.splitlines():
            line = line.split("#")[0].strip()
            if not line:
                continue
            argv = shlex.split(line)
            assert argv[0] == "python", line
            p = subprocess.run([sys.executable, *argv[1:]], cwd=cwd, env=env(),
                               capture_output=True, text=True, timeout=300)
            assert p.returncode == 0, (line, p.stderr[-2000:])
            commands.append((line, p.stdout))
    return {"cwd": cwd, "outputs": outputs, "commands": commands}


def test_the_extras_name_the_libraries():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    install = blocks("bash")[0]
    for extra, lib in (("hf", "transformers"), ("lightning", "lightning"),
                       ("tensorboard", "tensorboard")):
        assert f'pip install "pathviz[{extra}]"' in install
        assert any(req.startswith(lib) for req in extras[extra]), (extra, extras[extra])
    lock = (ROOT / "requirements-dev.lock").read_text()
    for lib in ("transformers", "accelerate", "lightning", "tensorboard"):
        assert re.search(rf"^{lib}==", lock, flags=re.M), lib


def test_the_llama_run_shows_heads_then_neurons_entering(ran):
    with PathReader(ran["cwd"] / "checkpoints" / "hf-llama" / "path.h5") as r:
        layers = {d["name"]: d for d in r.layers}
        assert [(n, d["kind"], d["groups"]) for n, d in layers.items()] == [
            ("model.layers.0.self_attn", "heads", 4), ("model.layers.0.mlp", "mlp", 32),
            ("model.layers.1.self_attn", "heads", 4), ("model.layers.1.mlp", "mlp", 32)]
        assert int(r.iterations[-1]) == 200
        first = {}
        for name in layers:
            gn = r.layer_path(name)
            assert (gn[0] == 0).all()  # the support starts empty
            entered = np.flatnonzero((gn > 0).any(axis=1))
            assert entered.size, name  # the layer's groups enter along the path
            first[name] = int(r.iterations[entered[0]])
        # the heads enter before the neurons, as the page says
        assert first["model.layers.0.self_attn"] < first["model.layers.0.mlp"]
        val = r.metric("val_acc_sparse")
        assert np.isfinite(val).sum() == 8  # one per evaluation (every 25 of 200 steps)
        assert r.data_info["n_val"] == 256


def test_inspect_json_reports_the_heads_and_neurons(ran):
    text = dict(ran["commands"])["python -m pathviz.inspect checkpoints/hf-llama"]
    assert "model.layers.0.self_attn" in text and "suggested stop: iteration" in text
    s = json.loads(dict(ran["commands"])["python -m pathviz.inspect checkpoints/hf-llama --json"])
    kinds = {d["name"]: d for d in s["layers"]}
    assert all(kinds[f"model.layers.{i}.self_attn"]["in_support"] > 0 for i in (0, 1))
    assert any(kinds[f"model.layers.{i}.mlp"]["in_support"] > 0 for i in (0, 1))
    assert s["stop"]["iteration"] > 0


def test_the_export_reloads_smaller_and_matches_the_masked_model(ran):
    out = ran["outputs"][0]
    report = json.loads((ran["cwd"] / "hf-llama-small" / "pathviz-export.json").read_text())
    assert report["params_after"] < report["params_before"]
    assert report["max_abs_diff"] < 1e-5 and report["reload_max_abs_diff"] < 1e-5
    assert f"params {report['params_before']} -> {report['params_after']}" in out
    kv = report["config_changes"]["num_key_value_heads"]
    inter = report["config_changes"]["intermediate_size"]
    assert f"LlamaForSequenceClassification {kv} {inter}" in out
    # every layer keeps the widest layer's count (the config has one width); 48 is divisible
    # by every count of query heads (2 per key/value head), so no more padding than that
    kept = report["kept"]
    widest = max(kept[f"model.layers.{i}.self_attn"]["in_support"] for i in (0, 1))
    assert kv == max(widest, 1)
    assert inter == max(kept[f"model.layers.{i}.mlp"]["in_support"] for i in (0, 1)) or \
        inter == 1


def test_the_export_command_prints_its_report_and_refuses_in_one_sentence(ran):
    cmd = "python -m pathviz.integrations.hf checkpoints/hf-llama --iteration 200 --out " \
          "hf-llama-200"
    out = dict(ran["commands"])[cmd]
    report = json.loads((ran["cwd"] / "hf-llama-200" / "pathviz-export.json").read_text())
    assert out.startswith(f"iteration 200: params {report['params_before']:,} -> "
                          f"{report['params_after']:,}; config ")
    again = subprocess.run([sys.executable, *shlex.split(cmd)[1:]], cwd=ran["cwd"], env=env(),
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert again.stderr.strip().endswith("exists and is not an empty folder; pass --overwrite "
                                          "or choose another folder")
    bad = subprocess.run([sys.executable, "-m", "pathviz.integrations.hf",
                          "checkpoints/hf-llama", "--iteration", "7", "--out", "x"],
                         cwd=ran["cwd"], env=env(), capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert not (ran["cwd"] / "x").exists()


def test_groups_by_hand_blocks_print_what_they_promise(ran):
    refused, support = ran["outputs"][2], ran["outputs"][3]
    assert refused.startswith("no attention heads found in Sequential: the search stopped at "
                              "0 (MyAttention)")
    assert "docs/integrations.md" in refused
    assert support.strip() == "tensor([False, False])"


def test_tensorboard_events_hold_the_path_scalars(ran):
    tags, stop = ran["outputs"][4].splitlines()
    assert eval(tags) == sorted([f"support/model.layers.{i}.{k}" for i in (0, 1)  # noqa: S307
                                 for k in ("mlp", "self_attn")] + ["support/fraction_groups"])
    with PathReader(ran["cwd"] / "checkpoints" / "hf-llama" / "path.h5") as r:
        from pathviz.analysis import stop_of

        assert float(stop) == stop_of(r).stop.iteration


def test_the_lightning_module_records_a_path(ran):
    with PathReader(ran["cwd"] / "checkpoints" / "lightning" / "path.h5") as r:
        assert [d["name"] for d in r.layers] == ["net.0", "net.2"]  # the classifier is dense
        # 3 epochs of 32 batches, one snapshot every 4 optimizer steps (and the start)
        assert r.iterations.tolist() == list(range(0, 97, 4))
        assert all((r.layer_path(n)[-1] > 0).any() for n in ("net.0", "net.2"))
        assert np.isfinite(r.metric("val_acc_sparse")).sum() == 3  # one per epoch
        assert np.isfinite(r.metric("val_acc")).sum() == 3
        assert r.data_info["n_val"] == 256
    text = dict(ran["commands"])["python -m pathviz.inspect checkpoints/lightning"]
    assert "status: finished" in text and "net.0" in text


@pytest.mark.parametrize("run, layer", [("hf-llama", "model.layers.0.mlp"),
                                        ("lightning", "net.2")])
def test_the_app_opens_the_recorded_runs(ran, monkeypatch, run, layer):
    from tests.test_app import app, chart

    monkeypatch.setenv("PATHVIZ_CHECKPOINTS", str(ran["cwd"] / "checkpoints"))
    monkeypatch.setenv("PATHVIZ_REFRESH", "0")
    at = app(run=run, view="layer", layer=layer)
    assert chart(at, "layer_fig")["title"].startswith(f"{layer}: ")
