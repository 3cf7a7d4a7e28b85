"""Run config: presets, files, flags, validation."""

from __future__ import annotations

import json

import pytest

from pathviz.config import PRESETS, ConfigError, RunConfig, config_from_args, load_config_file
from pathviz.train import build_parser


def parse(*argv: str) -> RunConfig:
    return config_from_args(build_parser().parse_args(list(argv)))


def test_json_round_trip_and_presets_validate():
    for name, cfg in PRESETS.items():
        assert RunConfig.from_json(json.loads(json.dumps(cfg.to_json()))) == cfg, name
        cfg.validate()
    with pytest.raises(ConfigError, match=r"unknown config keys \['colour'\]"):
        RunConfig.from_json({"colour": "red"})


def test_precedence_preset_then_file_then_flags(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"lam": 0.9, "epochs": 3}))
    cfg = parse("--preset", "demo", "--config", str(f), "--epochs", "5")
    assert (cfg.lam, cfg.epochs, cfg.lr) == (0.9, 5, PRESETS["demo"].lr)


def test_none_values_and_booleans_from_flags():
    cfg = parse("--conv-penalty", "none", "--last-linear-penalty", "group", "--nesterov",
                "--group-scale", "sqrt", "--data-root", "/data")
    assert cfg.conv_penalty is None and cfg.last_linear_penalty == "group"
    assert cfg.nesterov is True and cfg.group_scale == "sqrt" and cfg.data_root == "/data"
    assert parse("--nesterov", "false").nesterov is False


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config_file(str(tmp_path / "nope.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("lam = = 2")
    with pytest.raises(ConfigError, match="could not be parsed"):
        load_config_file(str(bad))
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({"lamda": 2}))
    with pytest.raises(ConfigError, match=r"unknown keys \['lamda'\]"):
        load_config_file(str(odd))
    own = tmp_path / "run.json"  # a run's config.json-like wrapper is accepted too
    own.write_text(json.dumps({"config": {"lam": 0.2}}))
    assert load_config_file(str(own)) == {"lam": 0.2}


@pytest.mark.parametrize("changes,message", [
    ({"kappa": 0}, "--kappa 0 is out of range"),
    ({"momentum": 1.0}, "--momentum 1.0 is out of range"),
    ({"eval_every": 3, "snapshot_every": 2}, "--eval-every (3) must be a multiple"),
    ({"device": "tpu"}, "--device must be auto, cpu or cuda"),
    ({"lr_schedule": "step"}, "--lr-schedule must be none or cosine"),
])
def test_validation_messages_name_the_flag(changes, message):
    with pytest.raises(ConfigError) as e:
        RunConfig().replace(**changes).validate()
    assert message in str(e.value)


def test_config_to_argv_round_trips():
    from pathviz.config import config_to_argv

    cfg = RunConfig(conv_penalty=None, nesterov=True, data_root="/d", lam=0.123, epochs=7)
    assert parse(*config_to_argv(cfg)) == cfg
