"""A run as the worker holds it before training (:class:`Plan`), and what is built from its
config: the numerics pin (:func:`pin_numerics`, the one place a worker pins them), the device
and the optimizer (:func:`make_optimizer`: SLBI with Gamma on the config's layers, or SGD).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from pathviz import numerics, runs
from pathviz.cli import UsageError
from pathviz.config import RunConfig
from pathviz.data import DataBundle
from pathviz.groups import slbi_param_groups
from pathviz.optim import SLBI

__all__ = ["Plan", "pin_numerics", "resolve_device", "make_optimizer"]


@dataclass
class Plan:
    """A validated run: what to train and where; nothing on disk has been touched yet."""

    cfg: RunConfig
    paths: runs.RunPaths
    data: DataBundle
    device: torch.device
    resume: bool
    overwrite: bool
    progress: bool
    environment: dict[str, Any]  # pin_numerics's record, kept in config.json and path.h5
    claimed: bool = False  # main took the lock and claimed the folder before loading the data


def pin_numerics(cfg: RunConfig) -> dict[str, Any]:
    """Pin this process's numerics to the run's ``cpu_isa``, ``threads`` and
    ``deterministic`` (:func:`pathviz.numerics.pin`); returns the environment record that
    config.json and path.h5 keep. A machine or process that cannot honour them is a UsageError
    (one sentence, exit 2). On a GPU the thread count is left to torch: the numbers that
    matter are computed on the device there."""
    gpu = cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available())
    try:
        env = numerics.pin(cfg.cpu_isa, None if gpu else cfg.threads, cfg.deterministic)
    except numerics.NumericsError as e:
        raise UsageError(str(e)) from None
    env["device"] = str(resolve_device(cfg.device))
    if env["device"].startswith("cuda"):
        env.update(numerics.environment(cfg.cpu_isa, device=env["device"]))
    return env


def resolve_device(spec: str) -> torch.device:
    """The torch device of ``--device`` (``auto``: CUDA when torch sees it); UsageError for
    CUDA on a machine without it."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {spec} asked for CUDA, but torch sees no CUDA device; "
                         f"use --device cpu or auto")
    return torch.device(spec)


def make_optimizer(model: torch.nn.Module, cfg: RunConfig) -> torch.optim.Optimizer:
    """SLBI with Gamma on the layers the config's penalties name, or, for ``optimizer="sgd"``,
    ``torch.optim.SGD`` with the same lr, momentum, weight decay and Nesterov flag (the baseline
    the tickets view compares against; its path file has metrics and no Gamma layers)."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay, nesterov=cfg.nesterov)
    groups = slbi_param_groups(model, conv=cfg.conv_penalty, linear=cfg.linear_penalty,
                               last_linear=cfg.last_linear_penalty,
                               first_dense=cfg.first_layer_dense, lam=cfg.lam,
                               group_scale=cfg.group_scale)
    for g in groups:
        if g.get("kind") == "mlp" and cfg.mlp_lam is not None:  # their own threshold
            g["lam"] = cfg.mlp_lam
        if g.get("kind") == "heads":  # their own coupling, and gradients balanced across blocks
            if cfg.heads_nu is not None:
                g["nu"] = cfg.heads_nu
            if cfg.balance_heads:
                g["balance"] = "heads"
    return SLBI(groups, lr=cfg.lr, kappa=cfg.kappa, nu=cfg.nu, lam=cfg.lam,
                momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.nesterov,
                impl=cfg.impl)
