"""Loading a run's model: the network of a saved weight iteration rebuilt from the run's path
file alone (:func:`load_run_model`), with this process's numerics pinned as the run's worker
pinned them (:func:`pin_run`), so export, retraining and the app compute the worker's numbers.

A run folder is data, never code: the model is rebuilt from :mod:`pathviz.models` by the name
the file records, and weights are read as arrays (no unpickling). ``--iteration`` is a whole
number or ``stop`` (:func:`resolve_iteration`). Every refusal is an :class:`ExportError`: one
sentence that says what to do.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from pathviz import numerics, runs
from pathviz.analysis import stop_of
from pathviz.config import stored_settings
from pathviz.data import DATASETS
from pathviz.models import UnknownModelError, build_model
from pathviz.store import PathFileError, PathReader

__all__ = ["ExportError", "resolve_iteration", "pin_run", "check_finite", "load_run_model"]


class ExportError(Exception):
    """An export that cannot be made; the message says why and what to do."""


def resolve_iteration(run_dir: str | os.PathLike | runs.RunPaths, value: str | int) -> int:
    """``--iteration``: a whole number as given, or ``"stop"``, the run's suggested stop (the
    iteration :func:`pathviz.analysis.stop_of` picks, as ``pathviz.inspect`` and the app show it).

    Raises ExportError (one sentence) for anything else, and for ``stop`` on a run that has no
    suggested stop: the sentence gives the reason and what to pass instead.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.lower() != "stop":
        try:
            return int(text)
        except ValueError:
            raise ExportError(f"--iteration must be a whole number or stop, got "
                              f"{text[:40]!r}") from None
    paths = runs.paths_for_dir(run_dir)
    if not paths.path.exists():
        raise ExportError(f"{paths.dir} has no path file; is it a run folder?")
    try:
        with PathReader(paths.path) as r:
            decision = stop_of(r)
            saved = [int(i) for i in r.weight_iterations]
    except PathFileError as e:
        raise ExportError(str(e)) from None
    if decision.stop is None:
        hint = (f"an iteration with saved weights instead (e.g. --iteration {saved[-1]}, the "
                f"last)" if saved else "a run with saved weights")
        raise ExportError(f"--iteration stop: the run has no suggested stop because "
                          f"{decision.reason}; pass {hint}")
    return int(decision.stop.iteration)


def _identity(r: PathReader) -> tuple[str, dict[str, Any], str | None]:
    """(model name, build_model kwargs, dataset) from the path file, for worker and recorder
    runs alike."""
    info, cfg = r.model_info, r.config
    dataset = r.data_info.get("dataset") or cfg.get("dataset")
    if info.get("custom"):
        raise ExportError(f"the run's model is a custom {info.get('name', 'model')} (not from "
                          f"pathviz.models), which export cannot rebuild; cut it in your own "
                          f"code with pathviz.prune.subnetwork")
    if info.get("name"):
        kwargs = dict(info.get("kwargs") or {})
        kwargs.setdefault("num_classes", info.get("num_classes") or 10)
        return info["name"], kwargs, dataset
    # a schema-1.0 worker run: rebuild from the config
    if "model" not in cfg or dataset not in DATASETS:
        raise ExportError("the path file does not say which model it holds (no model "
                          "attribute and no model/dataset in its config); it cannot be exported")
    d = DATASETS[dataset]
    kwargs = {"num_classes": d.num_classes, "in_channels": d.in_channels}
    if cfg["model"] == "lenet5":
        kwargs["input_size"] = d.image_size
    return cfg["model"], kwargs, dataset


def pin_run(cfg: dict[str, Any]) -> None:
    """Pin this process's numerics as the run's worker did (its ``cpu_isa``, ``threads`` and
    ``deterministic``), so export's and retrain's accuracies are computed exactly as the
    worker's were. A run recorded before ``cpu_isa`` existed, or by a user's own loop, ran on
    the machine's own kernels (``native``). Raises ExportError (one sentence) when this machine
    or process cannot honour the run's level."""
    settings = stored_settings(cfg)
    level, threads = settings.get("cpu_isa"), settings.get("threads", 1)
    deterministic = settings.get("deterministic", True)
    if not isinstance(level, str) or level not in numerics.LEVELS:
        raise ExportError(f"the run's config holds cpu_isa {str(level)[:40]!r}, which is not a "
                          f"level pathviz knows ({', '.join(numerics.LEVELS)}); fix its "
                          f"config.json")
    if not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= 256:
        threads = 1
    try:
        numerics.pin(level, threads, deterministic is not False)
    except numerics.NumericsError as e:
        raise ExportError(str(e)) from None


def check_finite(weights: dict[str, np.ndarray], gammas: dict[str, np.ndarray],
                 iteration: int) -> None:
    """ExportError naming the first tensor saved at ``iteration`` that holds NaN or infinity.

    A model with such weights computes NaN for every input: its export would "load" and its
    report would claim a 10% accuracy, a silently wrong file. Refused before anything is built
    or written, in one sentence that names the iteration and the tensor."""
    for kind, tensors in (("", weights), ("Gamma of ", gammas)):
        for name, a in tensors.items():
            if not np.issubdtype(a.dtype, np.floating):
                continue  # integer buffers (BatchNorm's num_batches_tracked) are finite
            bad = int(a.size - np.count_nonzero(np.isfinite(a)))
            if bad:
                what = "NaN" if np.isnan(a).any() else "infinity"
                raise ExportError(f"the weights saved at iteration {iteration} are not finite "
                                  f"({kind}{name} holds {what} in {bad} of {a.size} values); "
                                  f"export an earlier --iteration, whose weights are finite")


def load_run_model(run_dir: str | os.PathLike | runs.RunPaths, iteration: int):
    """(model with the weights of ``iteration`` in eval mode, layers, gammas, config)."""
    paths = runs.paths_for_dir(run_dir)
    if not paths.path.exists():
        raise ExportError(f"{paths.dir} has no path file; is it a run folder?")
    try:
        with PathReader(paths.path) as r:
            weights = r.weights_at(iteration)
            gammas = r.gamma_at(iteration)
            layers, cfg = r.layers, dict(r.config)
            name, kwargs, dataset = _identity(r)
            input_shape = r.model_info.get("input_shape")
    except KeyError as e:
        raise ExportError(str(e).strip("'\"")) from None
    except PathFileError as e:
        raise ExportError(str(e)) from None
    check_finite(weights, gammas, iteration)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    pin_run(cfg)  # before build_model computes anything: the worker's kernels, the same numbers
    try:
        model = build_model(name, **kwargs)
    except (UnknownModelError, TypeError, ValueError) as e:
        raise ExportError(f"the run's model {name!r} cannot be rebuilt ({e})") from None
    try:
        model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v))
                               for k, v in weights.items()})
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1].strip()[:200]
        raise ExportError(f"the weights saved at iteration {iteration} do not fit a "
                          f"{name} ({first})") from None
    cfg.setdefault("model", name)
    cfg["dataset"] = dataset
    if input_shape:
        cfg["input_shape"] = list(input_shape)
    return model.eval(), layers, gammas, cfg
