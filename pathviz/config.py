"""Run configuration: one frozen dataclass, presets, JSON/TOML files, and the CLI built from it.

Every run stores its full config in its path file and run folder, so a run describes itself and
can be reproduced from its files alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
import os
import sys
from dataclasses import dataclass, field, fields
from typing import Any

from pathviz.data import DATASET_NAMES
from pathviz.numerics import LEVELS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["RunConfig", "PRESETS", "ConfigError", "load_config_file", "add_config_arguments",
           "config_from_args", "config_to_argv", "config_from_json", "stored_settings"]


class ConfigError(ValueError):
    """A config value or file that cannot be used; the message names it and the fix."""


def _opt(help: str, **kw: Any) -> Any:
    return field(metadata={"help": help}, **kw)


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a training run (and so its regularization path)."""

    model: str = _opt("model name from the zoo (pathviz.models), e.g. lenet5, cifar_resnet_20",
                      default="lenet5")
    dataset: str = _opt("digits (bundled), mnist, fashion_mnist, cifar10, or imagefolder (a "
                        "folder of train/<class>/ and val/<class>/ images)", default="digits")
    data_root: str | None = _opt("folder holding the dataset files (not needed for digits)",
                                 default=None)
    epochs: int = _opt("training epochs", default=30)
    batch_size: int = _opt("minibatch size", default=64)
    lr: float = _opt("learning rate alpha", default=0.05)
    kappa: float = _opt("kappa: damping; W follows Gamma more tightly as it grows", default=1.0)
    nu: float = _opt("nu: coupling strength between W and Gamma", default=50.0)
    lam: float = _opt("lambda: threshold of the group/l1 prox; larger = sparser, later entries",
                      default=0.45)
    momentum: float = _opt("momentum of the loss gradient", default=0.9)
    weight_decay: float = _opt("weight decay (added to the gradient)", default=0.0)
    nesterov: bool = _opt("Nesterov momentum", default=False)
    conv_penalty: str | None = _opt("penalty on conv weights: group, l1 or none", default="group")
    linear_penalty: str | None = _opt("penalty on hidden linear weights: group, l1 or none",
                                      default="group")
    last_linear_penalty: str | None = _opt("penalty on the classifier: group, l1 or none",
                                           default=None)
    first_layer_dense: bool = _opt("keep the first layer (the input convolution) dense, without "
                                    "a Gamma", default=False)
    group_scale: str | None = _opt("scale lambda by sqrt(group size): sqrt or none", default=None)
    mlp_lam: float | None = _opt("lambda of the MLP-neuron groups of transformer blocks (scaled "
                                 "like --lam by --group-scale); none: --lam", default=None)
    heads_nu: float | None = _opt("nu of the attention-head groups of transformer blocks; none: "
                                  "--nu", default=None)
    balance_heads: bool = _opt("scale each attention layer's loss gradient to the mean gradient "
                               "RMS of the model's attention layers before each SLBI step, so "
                               "deep blocks (read through the class token alone) are not "
                               "starved", default=False)
    lr_schedule: str = _opt("none, or cosine (decay to 0 over the run)", default="none")
    snapshot_every: int = _opt("iterations between path snapshots", default=1)
    weights_every: int = _opt("iterations between full weight saves (multiple of "
                              "snapshot_every); the first and last snapshot always have them",
                              default=50)
    eval_every: int = _opt("iterations between test-set evaluations (multiple of snapshot_every)",
                           default=10)
    seed: int = _opt("random seed (weights, data order, augmentation)", default=0)
    val_fraction: float = _opt("fraction of the training set held out (seeded by split_seed) as "
                               "the validation split that picks the early stop", default=0.2)
    split_seed: int = _opt("seed of the train/validation split", default=0)
    threads: int = _opt("CPU threads for training; fixed (not the machine's core count) so the "
                        "path does not depend on how many cores the machine has", default=1)
    cpu_isa: str = _opt("CPU instruction-set level the kernels are pinned to (pathviz.numerics): "
                        "avx2 (any x86-64 machine since 2015), avx512, baseline (any x86-64), "
                        "or native (the machine's own choice: faster, repeatable only on the "
                        "same kind of CPU)", default="avx2")
    deterministic: bool = _opt("deterministic algorithms (torch.use_deterministic_algorithms; on "
                               "CUDA also cuDNN and the cuBLAS workspace), so a run repeats on "
                               "the same machine or GPU", default=True)
    weights_on_change: int = _opt("also save weights when this many groups have entered or left "
                                  "the support since the last saved weights (0: off)",
                                  default=0)
    optimizer: str = _opt("slbi, or sgd (plain momentum SGD baseline: no Gamma)",
                          default="slbi")
    device: str = _opt("auto (CUDA when present), cpu or cuda[:N]", default="auto")
    impl: str = _opt("SLBI implementation: auto, fused, foreach or single", default="auto")
    workers: int = _opt("data-loading worker processes (imagefolder only; does not change the "
                        "numbers)", default=0)
    amp: bool = _opt("bf16 autocast for the forward pass (meant for CUDA; changes the path; "
                     "evaluation stays float32, as export's)", default=False)
    channels_last: bool = _opt("channels-last memory format for the model and its input "
                               "(faster convolutions on recent GPUs)", default=False)
    tensorboard: str | None = _opt("also write the path's scalars as TensorBoard events to "
                                   "this folder (needs pathviz[tensorboard]; does not change "
                                   "the numbers)", default=None)

    def validate(self) -> RunConfig:
        """Raise ConfigError naming the first bad value; returns self for chaining."""
        positive = ("epochs", "batch_size", "snapshot_every", "weights_every", "eval_every")
        for name in positive:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"--{_flag(name)} must be a whole number >= 1, got {v!r}")
        for name in ("weights_every", "eval_every"):
            if getattr(self, name) % self.snapshot_every:
                raise ConfigError(f"--{_flag(name)} ({getattr(self, name)}) must be a multiple of "
                                  f"--snapshot-every ({self.snapshot_every})")
        checks = {"lr": self.lr >= 0, "kappa": self.kappa > 0, "nu": self.nu > 0,
                  "lam": self.lam >= 0, "momentum": 0 <= self.momentum < 1,
                  "weight_decay": self.weight_decay >= 0}
        for name, ok in checks.items():
            # inf passes ">= 0" and would be written to config.json as null (not JSON's
            # Infinity), a config the run could not be resumed from
            if not ok or not math.isfinite(getattr(self, name)):
                raise ConfigError(f"--{_flag(name)} {getattr(self, name)!r} is out of range")
        for name in ("conv_penalty", "linear_penalty", "last_linear_penalty"):
            if getattr(self, name) not in ("group", "l1", None):
                raise ConfigError(f"--{_flag(name)} must be group, l1 or none, "
                                  f"got {getattr(self, name)!r}")
        # per-kind overrides of a transformer's groups: a finite number in range, or none
        for name, ok, rule in (("mlp_lam", lambda v: v >= 0, ">= 0"),
                               ("heads_nu", lambda v: v > 0, "> 0")):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool)
                                      and math.isfinite(v) and ok(v)):
                raise ConfigError(f"--{_flag(name)} must be a number {rule} or none, got {v!r}")
        if self.group_scale not in (None, "sqrt"):
            raise ConfigError(f"--group-scale must be sqrt or none, got {self.group_scale!r}")
        if self.lr_schedule not in ("none", "cosine"):
            raise ConfigError(f"--lr-schedule must be none or cosine, got {self.lr_schedule!r}")
        if self.impl not in ("auto", "fused", "foreach", "single"):
            raise ConfigError(f"--impl must be auto, fused, foreach or single, got {self.impl!r}")
        if self.dataset not in DATASET_NAMES:
            raise ConfigError(f"unknown dataset {self.dataset!r}; choose one of "
                              f"{', '.join(DATASET_NAMES)}")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"--val-fraction must be between 0 and 1 (exclusive), got "
                              f"{self.val_fraction!r}")
        if not isinstance(self.threads, int) or isinstance(self.threads, bool) or \
                not 1 <= self.threads <= 256:
            raise ConfigError(f"--threads must be a whole number from 1 to 256, got "
                              f"{self.threads!r}")

        if self.cpu_isa not in LEVELS:
            raise ConfigError(f"--cpu-isa must be one of {', '.join(LEVELS)}, got "
                              f"{self.cpu_isa!r}")
        if not isinstance(self.weights_on_change, int) or self.weights_on_change < 0:
            raise ConfigError(f"--weights-on-change must be a whole number >= 0, got "
                              f"{self.weights_on_change!r}")
        if not isinstance(self.workers, int) or isinstance(self.workers, bool) or \
                not 0 <= self.workers <= 64:
            raise ConfigError(f"--workers must be a whole number from 0 to 64, got "
                              f"{self.workers!r}")
        if self.optimizer not in ("slbi", "sgd"):
            raise ConfigError(f"--optimizer must be slbi or sgd, got {self.optimizer!r}")
        if self.optimizer == "slbi" and self.conv_penalty is None and \
                self.linear_penalty is None and self.last_linear_penalty is None:
            raise ConfigError("no layer has a Gamma (--conv-penalty, --linear-penalty and "
                              "--last-linear-penalty are all none), so SLBI has no path to "
                              "record; set one of them to group or l1, or use --optimizer sgd")
        if self.nesterov and self.momentum == 0:
            raise ConfigError("--nesterov needs --momentum > 0")
        if not (self.device in ("auto", "cpu") or self.device.startswith("cuda")):
            raise ConfigError(f"--device must be auto, cpu or cuda[:N], got {self.device!r}")
        if self.tensorboard is not None:
            if os.path.exists(self.tensorboard) and not os.path.isdir(self.tensorboard):
                raise ConfigError(f"--tensorboard {self.tensorboard!r} is a file; give a folder "
                                  f"for the TensorBoard event files")
            if importlib.util.find_spec("tensorboard") is None:
                raise ConfigError("--tensorboard needs the tensorboard package, which is not "
                                  "installed; install it with pip install "
                                  "\"pathviz[tensorboard]\"")
        return self

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RunConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown config keys {unknown}; known keys: {sorted(known)}")
        return cls(**d)

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, RunConfig] = {
    # chosen with bench/demo_sweep.py over seeds 0-2 (README, "The demo preset"): on every seed
    # the compact subnetwork is within 1 point of its best validation accuracy by 35-44 % of the
    # run, the stop keeps 14-31 % of the parameters and every Gamma layer ends 43-81 % selected.
    # The input convolution stays dense: its 6 filters all entered on some seeds (100 %
    # selected, nothing to see), and it holds 156 of 61,706 parameters. lam 1.0 with weight
    # decay 5e-4 over 140 epochs spreads the entries out (the old lam 0.6/70 epochs stopped at
    # 71 % of the run on seed 0). Weights are also saved when 8 groups have changed, so every
    # step of the support can be exported and scored by the stop rule.
    "demo": RunConfig(model="lenet5", dataset="digits", epochs=140, batch_size=64, lr=0.05,
                      kappa=1.0, nu=25.0, lam=1.0, momentum=0.9, weight_decay=5e-4,
                      first_layer_dense=True, snapshot_every=1, weights_every=30,
                      eval_every=10, weights_on_change=8),
    # the demo's recipe (weight decay 5e-4, dense input layer, nu 25, lr 0.05) on MNIST's 750
    # iterations per epoch, with lam 1.5 over 6 epochs (4500 iterations). Not measured on MNIST
    # (none on this machine); chosen with bench/mnist_recipe.py on digits written as MNIST-sized
    # IDX files (README, "The recipe behind the presets"): over seeds 0-2 the stop falls at
    # 33-58 % of the run keeping 19-36 % of the parameters, W* is within 1 point of its best by
    # 33-58 %, and every Gamma layer ends 37-94 % selected. lam 1 over 4 epochs (the previous
    # preset) let the support reach 59 % of the parameters before W* was within 1 SE of its best.
    # Evaluation every 100 iterations: each one scores W* on the 12000 validation images.
    "mnist_lenet": RunConfig(model="lenet5", dataset="mnist", epochs=6, batch_size=64, lr=0.05,
                             nu=25.0, lam=1.5, weight_decay=5e-4, first_layer_dense=True,
                             snapshot_every=2, weights_every=100, eval_every=100,
                             weights_on_change=8),
    "cifar_vgg16": RunConfig(model="cifar_vgg_16", dataset="cifar10", epochs=160,
                             batch_size=128, lr=0.1, lam=0.1, weight_decay=1e-4,
                             lr_schedule="cosine", snapshot_every=17, weights_every=3910,
                             eval_every=391),
    "cifar_resnet20": RunConfig(model="cifar_resnet_20", dataset="cifar10", epochs=160,
                                batch_size=128, lr=0.1, lam=0.1, weight_decay=1e-4,
                                lr_schedule="cosine", snapshot_every=17, weights_every=3910,
                                eval_every=391),
    # vit_tiny on digits: Gamma on its 16 heads and 512 MLP neurons (the patch embedding dense).
    # group_scale sqrt weights each group's lambda by its size (a head holds 4096 weights, a
    # neuron 128). What decides the path (README, "The vit_demo preset"): while a group is out
    # of the support its initial weights feed z with about W0/kappa, which passes lambda *
    # sqrt(size) for every group of a kind below lambda ~0.071 (heads) and ~0.062 (neurons),
    # so both lambdas sit above that edge (heads 0.15, neurons 0.0585) and the gradient decides.
    # Whether a head ever enters is settled by W in its first few hundred iterations: out of the
    # support the coupling pulls W to 0, a group penalty on the head's q.k and v.proj products.
    # The last block's heads reach the output through the class token alone and get a small
    # share of the gradient, so without balance_heads they die first and block 0 keeps all
    # four; balance_heads evens the attention layers' gradient scale and heads_nu 12 (a
    # stronger pull than the neurons' nu 25) leaves 1-3 heads per block. The cosine schedule
    # quiets W; 100 epochs of batch 32 (3600 steps) let W* settle by half the run. Over seeds
    # 0-2 the stop falls at 32-53 % of the run keeping 45-54 % of the parameters, every head
    # layer ends with 1-3 of its 4 heads and every MLP layer 16-80 % selected.
    "vit_demo": RunConfig(model="vit_tiny", dataset="digits", epochs=100, batch_size=32,
                          lr=0.1, kappa=1.0, nu=25.0, lam=0.15, mlp_lam=0.0585, heads_nu=12.0,
                          balance_heads=True, group_scale="sqrt", momentum=0.9,
                          weight_decay=5e-4, first_layer_dense=True, lr_schedule="cosine",
                          snapshot_every=1, weights_every=60, eval_every=60,
                          weights_on_change=8),
}


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _field_kinds() -> dict[str, tuple[str, bool]]:
    """{field: (base type name, None allowed)} of RunConfig, from its annotations."""
    out = {}
    for f in fields(RunConfig):
        t = f.type if isinstance(f.type, str) else f.type.__name__
        out[f.name] = (t.split(" ")[0], "None" in t)
    return out


_SEEDS = ("seed", "split_seed")  # torch generators are seeded with seed * 1_000_003 + epoch


def _typed(name: str, value: Any, where: str) -> Any:
    """``value`` for field ``name`` if it has exactly the field's type; ConfigError otherwise.

    Strict on purpose: ``nesterov = "yes"``, ``epochs = 3.0``, ``lr = "0.1"``, ``lr = inf`` and
    ``lr = nan`` are refused rather than coerced, so a file means one thing only. Ints are
    bounded (|v| < 2**63) so they fit torch and numpy.
    """
    kind, nullable = _field_kinds()[name]
    flag = where if where.startswith("--") else f"{name} ({where})"
    if value is None or (nullable and isinstance(value, str) and value.lower() == "none"):
        if nullable:
            return None
        raise ConfigError(f"{flag} must be a {kind}, got nothing; give it a value or leave it "
                          f"out")
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{flag} must be true or false (unquoted), got {value!r}")
    if kind == "int":
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2 ** 63:
            if name in _SEEDS and not 0 <= value < 2 ** 32:
                raise ConfigError(f"{flag} must be a seed from 0 to 2**32 - 1, got {value!r}")
            return value
        raise ConfigError(f"{flag} must be a whole number, got {value!r}")
    if kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if abs(value) < 2 ** 1024 and math.isfinite(value):  # (a 400-digit int overflows)
                return float(value)
            raise ConfigError(f"{flag} must be a finite number, got {value!r}")
        raise ConfigError(f"{flag} must be a number, got {value!r}")
    if isinstance(value, str) and "\x00" not in value:
        return value
    raise ConfigError(f"{flag} must be a string, got {value!r}")


def _no_constants(token: str) -> Any:
    raise ValueError(f"{token} is not a number a config may hold")


def load_config_file(path: str) -> dict[str, Any]:
    """Read a JSON or TOML config file into a dict of RunConfig fields, strictly typed.

    Unknown keys, values of the wrong type, and inf/NaN are refused with a ConfigError that
    names the key; ``"none"`` (TOML has no null) or JSON ``null`` clear an optional field.
    """
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r} does not exist")
    try:
        if path.endswith(".toml"):
            with open(path, "rb") as f:
                data = tomllib.load(f)
        else:
            with open(path, encoding="utf-8") as f:
                data = json.load(f, parse_constant=_no_constants)
    except (ValueError, OSError, RecursionError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"config file {path!r} could not be parsed ({msg}); fix its "
                          f"syntax") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path!r} must hold a table/object of settings")
    if "config" in data and isinstance(data["config"], dict):  # a run's own config.json
        data = data["config"]
    data = {k: v for k, v in data.items() if k not in RECORD_KEYS}
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted(map(str, set(data) - known))
    if unknown:
        raise ConfigError(f"config file {path!r} has unknown keys {unknown}; known keys: "
                          f"{', '.join(sorted(known))}")
    return {k: _typed(k, v, f"in {path}") for k, v in data.items()}


#: settings added since runs were first recorded, with the value that made the older runs:
#: before ``cpu_isa`` existed every run took the machine's own kernels
LEGACY_DEFAULTS: dict[str, Any] = {"cpu_isa": "native"}

#: keys of a run's config.json that describe the run and are not settings
RECORD_KEYS = ("environment",)


def stored_settings(data: dict[str, Any]) -> dict[str, Any]:
    """The settings of a run's stored config (config.json or path.h5's ``config``): its record
    keys dropped, and settings older than the run filled with what made it
    (:data:`LEGACY_DEFAULTS`)."""
    out = {k: v for k, v in data.items() if k not in RECORD_KEYS}
    for k, v in LEGACY_DEFAULTS.items():
        out.setdefault(k, v)
    return out


def config_from_json(data: Any, where: str) -> RunConfig:
    """A RunConfig from a stored JSON object (a run's config.json), strictly typed; not
    validated (call ``.validate()``). An ``environment`` record is ignored here, and a run
    stored before ``cpu_isa`` existed reads as ``native`` (what made it)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must hold a JSON object of settings")
    data = stored_settings(data)
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted(map(str, set(data) - known))
    if unknown:
        raise ConfigError(f"{where} has unknown keys {unknown}")
    return RunConfig(**{k: _typed(k, v, f"in {where}") for k, v in data.items()})


def _none_or(kind):
    """A CLI parser for an optional field: none/null (or nothing) is None, else ``kind``."""
    def parse(s: str):
        return None if s.lower() in ("none", "null", "") else kind(s)
    parse.__name__ = kind.__name__
    return parse


def _bool(s: str) -> bool:
    """A CLI boolean: true or false (any case), nothing else."""
    if s.lower() == "true":
        return True
    if s.lower() == "false":
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {s!r}")


def _int(s: str) -> int:
    """A CLI whole number (decimal digits, optional sign), below 2**63 in size."""
    t = s.strip()
    if not t.lstrip("+-").isdigit() or not t.isascii():
        raise ValueError(s)  # argparse says "invalid int value: '...'"
    v = int(t)
    if abs(v) >= 2 ** 63:
        raise argparse.ArgumentTypeError(f"{s!r} is too large")
    return v


def _float(s: str) -> float:
    """A CLI number that is finite (inf, nan and overflowing literals are refused)."""
    v = float(s)  # ValueError: argparse says "invalid float value: '...'"
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {s!r}")
    return v


def _str(s: str) -> str:
    if "\x00" in s:
        raise argparse.ArgumentTypeError("expected text without NUL characters")
    return s


_int.__name__, _float.__name__, _str.__name__ = "int", "float", "str"


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per RunConfig field; unset flags stay absent so presets/files show through."""
    for f in fields(RunConfig):
        t = f.type if isinstance(f.type, str) else f.type.__name__
        kind = {"int": _int, "float": _float, "str": _str, "bool": _bool}.get(t.split(" ")[0],
                                                                            _str)
        if "None" in t:
            kind = _none_or(_str if t.startswith("str") else kind)
        default = "none" if f.default is None else f.default
        kw: dict[str, Any] = dict(default=argparse.SUPPRESS,
                                  help=f"{f.metadata['help']} (default: {default})")
        if t == "bool":
            kw.update(nargs="?", const=True)
        parser.add_argument(f"--{_flag(f.name)}", type=kind, dest=f.name, **kw)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Preset, then config file, then explicit flags; strictly typed and validated."""
    preset = getattr(args, "preset", None)
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    base = PRESETS[preset] if preset else RunConfig()
    values = base.to_json()
    if getattr(args, "config", None):
        values.update(load_config_file(args.config))
    given = vars(args)
    for f in fields(RunConfig):
        if f.name in given:
            values[f.name] = _typed(f.name, given[f.name], f"--{_flag(f.name)}")
    try:
        cfg = RunConfig(**values)
    except TypeError as e:
        raise ConfigError(str(e)) from None
    return cfg.validate()


def config_to_argv(cfg: RunConfig) -> list[str]:
    """Worker flags that rebuild ``cfg`` (every field spelled out, so defaults may change)."""
    argv = []
    for f in fields(RunConfig):
        v = getattr(cfg, f.name)
        text = "none" if v is None else ("true" if v is True else "false" if v is False else str(v))
        argv += [f"--{_flag(f.name)}", text]
    return argv
