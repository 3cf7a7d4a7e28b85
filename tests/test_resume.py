"""The resume state: atomic saves, safe loads, the config check, and the path cut back to it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pathviz import resume, runs
from pathviz.config import RunConfig
from pathviz.groups import slbi_param_groups
from pathviz.models import build_model
from pathviz.optim import SLBI
from pathviz.recorder import PathRecorder
from pathviz.store import PathReader


def _trained(steps: int = 3, seed: int = 0):
    torch.manual_seed(seed)
    model = build_model("lenet5", num_classes=10, in_channels=1, input_size=28)
    opt = SLBI(slbi_param_groups(model, lam=0.05), lr=0.1)
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(16, 1, 28, 28, generator=g), torch.randint(0, 10, (16,), generator=g)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model, opt


def _paths(tmp_path) -> runs.RunPaths:
    d = tmp_path / "run"
    d.mkdir()
    return runs.RunPaths(d)


def test_a_saved_state_loads_back_into_a_fresh_model_and_optimizer(tmp_path):
    paths = _paths(tmp_path)
    model, opt = _trained()
    cfg = RunConfig().to_json()
    resume.save_state(paths, {"iteration": 3, "model": model.state_dict(),
                              "optimizer": opt.state_dict(), "config": cfg})
    assert [p.name for p in paths.dir.iterdir()] == [paths.resume.name]  # no temp file left
    fresh, fresh_opt = _trained(steps=0, seed=1)
    state = resume.load_state(paths, torch.device("cpu"), fresh, fresh_opt, cfg)
    assert state["iteration"] == 3
    for a, b in zip(model.parameters(), fresh.parameters()):
        assert torch.equal(a, b)
        assert sorted(opt.state[a]) == sorted(fresh_opt.state[b])
        for key, value in opt.state[a].items():
            assert torch.equal(value, fresh_opt.state[b][key])
    assert sum("z" in st for st in fresh_opt.state.values()) == 4  # every Gamma layer


def test_a_truncated_state_is_refused_in_one_sentence_and_left_alone(tmp_path):
    paths = _paths(tmp_path)
    model, opt = _trained()
    resume.save_state(paths, {"model": model.state_dict(), "optimizer": opt.state_dict()})
    data = paths.resume.read_bytes()
    paths.resume.write_bytes(data[:len(data) // 2])
    with pytest.raises(resume.ResumeError, match="cannot be loaded .*--overwrite"):
        resume.load_state(paths, torch.device("cpu"), model, opt, {})
    assert paths.resume.read_bytes() == data[:len(data) // 2]


def test_a_state_that_would_run_code_is_refused(tmp_path):
    """weights_only loading: a pickle that calls a function is not executed."""
    import pickle

    paths = _paths(tmp_path)
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (marker.touch, ())

    paths.resume.write_bytes(pickle.dumps(Evil()))
    model, opt = _trained(steps=0)
    with pytest.raises(resume.ResumeError):
        resume.load_state(paths, torch.device("cpu"), model, opt, {})
    assert not marker.exists()


def test_the_config_check_names_what_changed_and_ignores_what_cannot_change_numbers(tmp_path):
    paths = _paths(tmp_path)
    model, opt = _trained()
    trained_with = RunConfig(lam=1.0).to_json()
    resume.save_state(paths, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                              "config": trained_with})
    load = lambda cfg: resume.load_state(paths, torch.device("cpu"), model, opt, cfg)  # noqa: E731
    with pytest.raises(resume.ResumeError, match=r"\(lam, nu\); restore it"):
        load({**trained_with, "lam": 2.0, "nu": 1.0})
    load({**trained_with, "device": "cpu", "impl": "single", "workers": 3})  # no error
    # a run saved before a setting existed resumes when the setting is at its default
    older = {k: v for k, v in trained_with.items() if k not in ("amp", "channels_last")}
    resume.save_state(paths, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                              "config": older})
    load(trained_with)
    with pytest.raises(resume.ResumeError, match="amp"):
        load({**trained_with, "amp": True})


def test_keep_rows_cuts_the_path_back_and_the_support_comes_from_the_last_weights(tmp_path):
    paths = _paths(tmp_path)
    model, opt = _trained(steps=1)
    conv1 = model.conv1.weight
    with PathRecorder(model, opt, paths.path, iterations_per_epoch=10) as rec:
        for it in range(12):
            if it == 5:
                opt.state[conv1]["gamma"][:2] = 1.0  # two filters enter before the 5th weights
            if it == 9:
                opt.state[conv1]["gamma"][:4] = 1.0  # and two more after the cut
            rec.record(it, weights=it in (0, 5, 9))
    writer = resume.keep_rows(paths, 7)
    writer.close()
    with PathReader(paths.path) as r:
        assert r.iterations.tolist() == list(range(8))
        assert r.weight_iterations.tolist() == [0, 5]
    got = resume.support_at_last_weights(paths.path, rec.layers, rec._params)
    assert got[0].tolist() == [True, True, False, False, False, False]
    assert not any(m.any() for m in got[1:])
    assert not any(p.name.startswith(".") for p in paths.dir.iterdir())


def test_keep_rows_refuses_an_unreadable_path_file(tmp_path):
    paths = _paths(tmp_path)
    paths.path.write_bytes(b"not an HDF5 file")
    with pytest.raises(resume.ResumeError, match="cannot be resumed"):
        resume.keep_rows(paths, 3)
    assert paths.path.read_bytes() == b"not an HDF5 file"
    assert np.array_equal(sorted(p.name for p in paths.dir.iterdir()), [paths.path.name])
