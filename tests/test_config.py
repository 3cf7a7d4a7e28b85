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
    ({"mlp_lam": -0.5}, "--mlp-lam must be a number >= 0 or none"),
    ({"heads_nu": 0.0}, "--heads-nu must be a number > 0 or none"),
    # (issue 36) infinity passed ">= 0" and reached config.json, where JSON has no Infinity
    ({"lr": float("inf")}, "--lr inf is out of range"),
    ({"nu": float("inf")}, "--nu inf is out of range"),
])
def test_validation_messages_name_the_flag(changes, message):
    with pytest.raises(ConfigError) as e:
        RunConfig().replace(**changes).validate()
    assert message in str(e.value)


def test_config_to_argv_round_trips():
    from pathviz.config import config_to_argv

    cfg = RunConfig(conv_penalty=None, nesterov=True, data_root="/d", lam=0.123, epochs=7)
    assert parse(*config_to_argv(cfg)) == cfg


# ---- strictly typed parsing (issue 12, defect 6) ------------------------------------------

import math  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from pathviz.config import config_from_json  # noqa: E402
from pathviz.train import UsageError  # noqa: E402


@pytest.mark.parametrize("text,message", [
    ('nesterov = "yes"', r"nesterov \(in .*\) must be true or false \(unquoted\), got 'yes'"),
    ("epochs = 3.0", r"epochs \(in .*\) must be a whole number, got 3\.0"),
    ('lr = "0.1"', r"lr \(in .*\) must be a number, got '0\.1'"),
    ("lr = inf", r"lr \(in .*\) must be a finite number, got inf"),
    ("lam = nan", r"lam \(in .*\) must be a finite number, got nan"),
    ("epochs = true", r"epochs \(in .*\) must be a whole number, got True"),
    ("model = 5", r"model \(in .*\) must be a string, got 5"),
    ("seed = -1", r"seed \(in .*\) must be a seed from 0 to 2\*\*32 - 1, got -1"),
    ("epochs = 99999999999999999999", r"epochs \(in .*\) must be a whole number, got 9{20}"),
    ("dataset = [1, 2]", r"dataset \(in .*\) must be a string, got \[1, 2\]"),
    ("[model]\nname = 'x'", r"model \(in .*\) must be a string"),
])
def test_toml_values_of_the_wrong_type_are_refused(tmp_path, text, message):
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message) as e:
        load_config_file(str(f))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("text,message", [
    ('{"lr": Infinity}', "could not be parsed .*Infinity is not a number"),
    ('{"lr": NaN}', "could not be parsed .*NaN is not a number"),
    ('{"nesterov": 1}', "must be true or false"),
    ('{"epochs": null}', "must be a int, got nothing"),
])
def test_json_values_of_the_wrong_type_are_refused(tmp_path, text, message):
    f = tmp_path / "c.json"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config_file(str(f))


def test_none_clears_optional_fields_in_files(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('conv_penalty = "none"\ndata_root = "/d"\nnesterov = true\nlr = 1')
    assert load_config_file(str(f)) == {"conv_penalty": None, "data_root": "/d",
                                        "nesterov": True, "lr": 1.0}


@pytest.mark.parametrize("argv,message", [
    (["--lr", "inf"], "argument --lr: expected a finite number, got 'inf'"),
    (["--nu", "nan"], "argument --nu: expected a finite number, got 'nan'"),
    (["--lam", "1e999"], "argument --lam: expected a finite number, got '1e999'"),
    (["--epochs", "3.5"], "argument --epochs: invalid int value: '3.5'"),
    (["--lr", "fast"], "argument --lr: invalid float value: 'fast'"),
    (["--epochs", "1" * 30], f"argument --epochs: '{'1' * 30}' is too large"),
    (["--nesterov", "yes"], "argument --nesterov: expected true or false, got 'yes'"),
    (["--seed", "-3"], "--seed must be a seed from 0 to 2\\*\\*32 - 1"),
    (["--cpu-isa", "avx3"], "--cpu-isa must be one of avx2, avx512, baseline, native, got "
                            "'avx3'"),
    (["--deterministic", "maybe"], "argument --deterministic: expected true or false"),
])
def test_bad_flags_are_one_sentence(argv, message):
    with pytest.raises((UsageError, ConfigError), match=message) as e:
        parse(*argv)
    assert "\n" not in str(e.value) and "\x1b" not in str(e.value)


def test_a_stored_config_is_read_strictly():
    # a stored config without cpu_isa is a run from before the pin: it ran native kernels
    assert config_from_json({"lam": 0.2, "epochs": 4}, "config.json") == RunConfig(
        lam=0.2, epochs=4, cpu_isa="native")
    assert config_from_json({"cpu_isa": "avx2"}, "c").cpu_isa == "avx2"
    with pytest.raises(ConfigError, match=r"epochs \(in config.json\) must be a whole number"):
        config_from_json({"epochs": "4"}, "config.json")
    with pytest.raises(ConfigError, match="config.json must hold a JSON object"):
        config_from_json([1], "config.json")


_FLOATS = ("lr", "kappa", "nu", "lam", "momentum", "weight_decay", "val_fraction")


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(_FLOATS), st.one_of(st.floats(), st.integers(), st.text(max_size=8),
                                           st.booleans(), st.none()))
def test_float_fields_take_finite_numbers_only(tmp_path_factory, name, value):
    f = tmp_path_factory.mktemp("h") / "c.json"
    f.write_text(json.dumps({name: value}))
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value))
    if ok:
        assert load_config_file(str(f)) == {name: float(value)}
    else:
        with pytest.raises(ConfigError):
            load_config_file(str(f))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["--lr", "--epochs", "--nesterov", "--seed", "--conv-penalty"]),
       st.text(max_size=12))
def test_any_flag_text_parses_or_is_one_sentence(flag, text):
    try:
        cfg = parse(flag, text)
    except (UsageError, ConfigError) as e:
        assert "\n" not in str(e) and str(e)
        return
    value = getattr(cfg, flag[2:].replace("-", "_"))
    if flag == "--lr":
        assert math.isfinite(value) and value >= 0
    elif flag == "--nesterov":
        assert value is (text.lower() == "true")
    elif flag in ("--epochs", "--seed"):
        assert isinstance(value, int) and not isinstance(value, bool)
