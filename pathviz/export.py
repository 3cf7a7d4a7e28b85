"""Export the sparse subnetwork at a weight iteration to files that load without pathviz.

    python -m pathviz.export checkpoints/demo --iteration 600 --mode compact \\
        --format torchscript --out demo600.pt

Formats: ``torchscript`` (``torch.jit.load`` alone), ``state_dict`` (plus ``<out>.arch.json``,
which rebuilds the narrow model with ``pathviz.models.build_model``) and ``onnx``. Every export
writes ``<out>.json``: params and MACs before/after, kept channels per layer, the largest
difference between compact and masked outputs on test inputs, and the test accuracy.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pathviz import prune, runs
from pathviz.data import DATASETS, BatchLoader, DataError, load_dataset
from pathviz.models import build_model, widths_of
from pathviz.store import PathFileError, PathReader

log = logging.getLogger("pathviz.export")

MODES = ("masked", "compact")
FORMATS = ("torchscript", "state_dict", "onnx")
SUFFIX = {"torchscript": ".pt", "state_dict": ".pth", "onnx": ".onnx"}

__all__ = ["ExportError", "export", "load_state_dict_export", "default_out", "main"]


class ExportError(Exception):
    """An export that cannot be made; the message says why and what to do."""


def default_out(run_dir: str | os.PathLike, iteration: int, mode: str, fmt: str) -> Path:
    """Where the app keeps exports: ``<run>/exports/iter<N>-<mode><suffix>``."""
    return runs.paths_for_dir(run_dir).exports / f"iter{iteration}-{mode}{SUFFIX[fmt]}"


def load_run_model(run_dir: str | os.PathLike, iteration: int):
    """(model with the weights of ``iteration`` in eval mode, layers, gammas, config)."""
    paths = runs.paths_for_dir(run_dir)
    if not paths.path.exists():
        raise ExportError(f"{paths.dir} has no path file; is it a run folder?")
    try:
        with PathReader(paths.path) as r:
            weights = r.weights_at(iteration)
            gammas = r.gamma_at(iteration)
            layers, cfg = r.layers, r.config
    except KeyError as e:
        raise ExportError(str(e).strip("'\"")) from None
    except PathFileError as e:
        raise ExportError(str(e)) from None
    info = DATASETS[cfg["dataset"]]
    extra = {"input_size": info.image_size} if cfg["model"] == "lenet5" else {}
    model = build_model(cfg["model"], num_classes=info.num_classes, in_channels=info.in_channels,
                        **extra)
    try:
        model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v))
                               for k, v in weights.items()})
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1].strip()[:200]
        raise ExportError(f"the weights saved at iteration {iteration} do not fit a "
                          f"{cfg['model']} for {cfg['dataset']} ({first})") from None
    return model.eval(), layers, gammas, cfg


@torch.no_grad()
def _accuracy(model: torch.nn.Module, loader: BatchLoader) -> float:
    correct = n = 0
    for x, y in loader.epoch(0):
        correct += int((model(x).argmax(1) == y).sum())
        n += len(y)
    return correct / max(n, 1)


def export(run_dir: str | os.PathLike, iteration: int, mode: str, fmt: str,
           out: str | os.PathLike, overwrite: bool = False) -> dict[str, Any]:
    """Write the subnetwork at ``iteration`` to ``out`` and its report beside it; return it."""
    if mode not in MODES:
        raise ExportError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    if fmt not in FORMATS:
        raise ExportError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    report_path = out.with_name(out.name + ".json")
    if not overwrite and (out.exists() or report_path.exists()):
        raise ExportError(f"{out} exists; choose another --out or pass --overwrite")
    if fmt == "onnx":
        missing = [m for m in ("onnx", "onnxscript") if _missing(m)]
        if missing:
            raise ExportError(f"ONNX export needs {' and '.join(missing)}: "
                              f"pip install {' '.join(missing)}")
    model, layers, gammas, cfg = load_run_model(run_dir, iteration)
    info = DATASETS[cfg["dataset"]]
    try:
        data = load_dataset(cfg["dataset"], cfg.get("data_root"))
        test = BatchLoader(data.test_x, data.test_y, data.info, 500, shuffle=False, augment=False)
        x = next(test.epoch(0))[0][:64]
    except DataError as e:
        log.warning("no test set for the report (%s); using random inputs", e)
        test = None
        x = torch.randn(16, info.in_channels, info.image_size, info.image_size,
                        generator=torch.Generator().manual_seed(0))
    example = x[:1]
    params_before, macs_before = prune.count(model, example)
    plan, dg = prune.plan_pruning(model, layers, gammas, example)
    masked = prune.apply_mask(model, layers, gammas, plan, dg)
    compact_model = copy.deepcopy(masked)
    prune.compact(compact_model, plan, prune.dependency_graph(compact_model, example))
    with torch.no_grad():
        y_masked, y_compact = masked(x), compact_model(x)
    exported = compact_model if mode == "compact" else masked
    params_after, macs_after = prune.count(exported, example)
    report: dict[str, Any] = {
        "run": str(runs.paths_for_dir(run_dir).dir), "iteration": int(iteration), "mode": mode,
        "format": fmt, "file": str(out), "model": cfg["model"],
        "params_before": params_before, "params_after": params_after,
        "macs_before": macs_before, "macs_after": macs_after,
        "nonzero_params_after": int(sum(int((p != 0).sum()) for p in exported.parameters())),
        "layers": [{"layer": name, "channels": plan.groups[name], "kept": plan.kept[name]}
                   for name in plan.groups],
        "max_abs_diff_compact_vs_masked": float((y_compact - y_masked).abs().max()),
        "test_acc": _accuracy(exported, test) if test is not None else None,
        "test_acc_masked": _accuracy(masked, test) if test is not None else None,
        "warnings": plan.warnings,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    _write(exported, fmt, tmp, example)
    os.replace(tmp, out)
    if fmt == "state_dict":
        arch = dict(getattr(exported, "pathviz_arch", {}))
        if mode == "compact":
            arch["widths"] = widths_of(exported)
        arch_path = out.with_name(out.name + ".arch.json")
        arch_path.write_text(json.dumps(arch, indent=1))
        report["arch"] = str(arch_path)
    report_path.write_text(json.dumps(report, indent=1))
    return report


def _missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None


def _write(model: torch.nn.Module, fmt: str, path: Path, example: torch.Tensor) -> None:
    if fmt == "torchscript":
        with torch.no_grad():
            traced = torch.jit.trace(model, example, check_trace=False)
        torch.jit.save(traced, str(path))
    elif fmt == "state_dict":
        torch.save(model.state_dict(), path)
    else:
        torch.onnx.export(model, (example,), str(path), input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "batch"}},
                          dynamo=False)


def load_state_dict_export(path: str | os.PathLike) -> torch.nn.Module:
    """Rebuild a ``state_dict`` export (with its ``.arch.json``) as a model in eval mode."""
    path = Path(path)
    arch = json.loads(path.with_name(path.name + ".arch.json").read_text())
    kwargs = {k: v for k, v in arch.items() if k not in ("name",)}
    model = build_model(arch["name"], **kwargs)
    model.load_state_dict(torch.load(path, weights_only=True))
    return model.eval()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ExportError(f"{message} (see --help)")


def main(argv: list[str] | None = None) -> int:
    p = _Parser(prog="python -m pathviz.export", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="the run folder, e.g. checkpoints/demo")
    p.add_argument("--iteration", type=int, required=True, help="an iteration with saved weights")
    p.add_argument("--mode", default="compact", help="masked or compact (default compact)")
    p.add_argument("--format", default="torchscript", dest="fmt",
                   help="torchscript, state_dict or onnx (default torchscript)")
    p.add_argument("--out", help="output file (default: <run>/exports/iter<N>-<mode>.<ext>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    import warnings

    # torch marks torch.jit and the TorchScript ONNX exporter deprecated; the files still load
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    try:
        args = p.parse_args(argv)
        out = args.out or default_out(args.run_dir, args.iteration, args.mode, args.fmt)
        rep = export(args.run_dir, args.iteration, args.mode, args.fmt, out, args.overwrite)
    except (ExportError, runs.RunError) as e:
        print(f"pathviz.export: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {rep['file']} ({rep['mode']}, {rep['format']}) and {rep['file']}.json")
    print(f"params: {rep['params_before']:,} -> {rep['params_after']:,}   "
          f"MACs: {rep['macs_before']:,} -> {rep['macs_after']:,}")
    print(f"compact vs masked outputs: max |diff| = {rep['max_abs_diff_compact_vs_masked']:.2e}")
    if rep["test_acc"] is not None:
        print(f"test accuracy: {100 * rep['test_acc']:.2f}% "
              f"(masked {100 * rep['test_acc_masked']:.2f}%)")
    for w in rep["warnings"]:
        print(f"warning: {w}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
