"""Pruning baselines beside the path: the same widths chosen by standard pruning methods.

Does the path find better structure than standard pruning? For a saved iteration N, the path's
support keeps some groups per layer; a *baseline support* keeps as many groups per layer (or,
for ``global-magnitude``, as many parameters in total), chosen by a standard criterion from a
dense reference network:

    magnitude         L1 norm of each filter or neuron (Li et al., 2017), scored over its coupled
                      group by torch-pruning's ``GroupMagnitudeImportance(p=1)``
    slimming          |BatchNorm gamma| (network slimming, Liu et al., 2017):
                      ``BNScaleImportance``; only for models with BatchNorm
    taylor            first-order Taylor importance (Molchanov et al., 2019) on the run's training
                      split: ``GroupTaylorImportance``
    global-magnitude  the same group L1 score, normalised per layer as torch-pruning's global
                      pruning does, one threshold over all layers: widths chosen globally, total
                      parameters as close as possible to the path's

The dense reference is the run's SGD baseline (a sibling run trained with ``--optimizer sgd``,
as the Tickets view finds it) at its last saved iteration, or the SLBI run's own W at N
(``--reference self``).

This module is the torch-free part: the method names and the results file
``<run>/baselines.json`` (:data:`pathviz.runs.BASELINES_FILE`), which the app and
``pathviz.inspect --json`` read. The supports are in :mod:`pathviz.tickets.supports`, the
command (``python -m pathviz.baselines``) in :mod:`pathviz.tickets.baselines_cli`.

``baselines.json`` (schema ``RESULTS_SCHEMA = "1.0"``)::

    {"schema_version": "1.0", "run": <folder name>,
     "results": [one entry per (method, iteration, reference, epochs, seed):
        method, iteration, reference ("self" or the SGD run's folder name),
        reference_iteration, epochs (of the short finetune), seed,
        params, flops (of the compact baseline network; MACs of one forward pass),
        params_full, flops_full, path_params, path_flops (the path's compact W* at N),
        widths {layer: groups kept}, support {layer: [kept group indices]},
        oneshot {"test_acc", "val_acc"} (pruned, no retraining; fractions),
        finetuned {"test_acc", "val_acc"} (after ``epochs`` of SGD; null when epochs is 0),
        notes [sentences, e.g. a layer without BatchNorm scored by magnitude], created]}
"""

from __future__ import annotations

import json
import os
from typing import Any

from pathviz import runs

METHODS = ("magnitude", "slimming", "taylor", "global-magnitude")
RESULTS_SCHEMA = "1.0"
REFERENCES = ("sgd", "self")
# what makes two results the same measurement (a rerun skips it)
KEY = ("method", "iteration", "reference", "epochs", "seed")

__all__ = ["METHODS", "RESULTS_SCHEMA", "REFERENCES", "BaselineError", "read_results",
           "entry_key", "summary"]


class BaselineError(ValueError):
    """A baselines request or file that cannot be used; the message says why."""


def entry_key(entry: dict[str, Any]) -> tuple:
    """The identity of one measurement: (method, iteration, reference, epochs, seed)."""
    return tuple(entry.get(k) for k in KEY)


def read_results(run_dir: str | os.PathLike | runs.RunPaths) -> list[dict[str, Any]]:
    """The entries of ``<run>/baselines.json`` ([] when there is none); BaselineError when the
    file exists but cannot be read (plain JSON: nothing is unpickled)."""
    p = runs.paths_for_dir(run_dir).baselines
    if not p.exists():
        return []
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError, RecursionError) as e:  # RecursionError: nested too deep
        raise BaselineError(f"{p} cannot be read ({e}); delete it and run python -m "
                            f"pathviz.baselines again") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise BaselineError(f"{p} is not a baselines file (no results list); delete it and run "
                            f"python -m pathviz.baselines again")
    if str(data.get("schema_version", "")).split(".")[0] != RESULTS_SCHEMA.split(".")[0]:
        raise BaselineError(f"{p} has schema {data.get('schema_version')!r}; this pathviz reads "
                            f"{RESULTS_SCHEMA}")
    entries = [e for e in data["results"] if isinstance(e, dict)]
    for i, e in enumerate(entries):
        bad = next((k for k, kinds in _ENTRY_TYPES.items() if (k in e or k == "method") and not (
            _is(e.get(k), kinds) and (k != "method" or e.get(k) is not None))), None)
        if bad is not None:
            raise BaselineError(f"{p} is damaged: entry {i} has {bad} = {str(e[bad])[:40]!r}, "
                                f"which is not {' or '.join(_NAMES[k] for k in _ENTRY_TYPES[bad])}"
                                f"; delete it and run python -m pathviz.baselines again")
    return entries


# what each field of an entry must be, where present (None is always allowed: not measured)
_ENTRY_TYPES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("method", "reference"), ("text",)),
    **dict.fromkeys(("iteration", "epochs", "seed", "reference_iteration"), ("integer",)),
    **dict.fromkeys(("params", "flops", "params_full", "flops_full", "path_params",
                     "path_flops"), ("number",)),
    **dict.fromkeys(("oneshot", "finetuned", "widths", "support"), ("object",)),
    "notes": ("list",)}
_NAMES = {"text": "text", "integer": "a whole number", "number": "a finite number",
          "object": "an object", "list": "a list"}


def _is(value: Any, kinds: tuple[str, ...]) -> bool:
    if value is None:
        return True
    if isinstance(value, dict):  # the accuracies inside oneshot/finetuned are numbers too;
        # a diverged model's NaN, which files from before jsonsafe hold, reads as not measured
        return "object" in kinds and all(_is(v, ("number",)) or isinstance(v, float)
                                         for k, v in value.items() if k.endswith("_acc"))
    for kind in kinds:
        if kind == "text" and isinstance(value, str):
            return True
        if kind == "list" and isinstance(value, list):
            return True
        if kind in ("integer", "number") and isinstance(value, (int, float)) and \
                not isinstance(value, bool) and abs(value) < 2 ** 63:  # (NaN, inf fail it)
            return kind == "number" or isinstance(value, int)
    return False


def summary(run_dir: str | os.PathLike | runs.RunPaths) -> list[dict[str, Any]]:
    """The results as ``pathviz.inspect --json`` shows them (key ``baselines``): one row per
    entry with method, iteration, reference, epochs, seed, params, flops, path_params,
    oneshot_test_acc, finetuned_test_acc (fractions or None), sorted by method then iteration."""
    rows = []
    for e in read_results(run_dir):
        one, fin = e.get("oneshot") or {}, e.get("finetuned") or {}
        rows.append({"method": e.get("method"), "iteration": e.get("iteration"),
                     "reference": e.get("reference"), "epochs": e.get("epochs"),
                     "seed": e.get("seed"), "params": e.get("params"), "flops": e.get("flops"),
                     "path_params": e.get("path_params"), "path_flops": e.get("path_flops"),
                     "oneshot_test_acc": one.get("test_acc"),
                     "finetuned_test_acc": fin.get("test_acc")})
    return sorted(rows, key=lambda r: (str(r["method"]), r["iteration"] or 0,
                                       str(r["reference"]), r["epochs"] or 0))
