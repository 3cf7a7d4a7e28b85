"""Export the sparse subnetwork at a weight iteration to files that load without pathviz.

    python -m pathviz.export checkpoints/demo --iteration stop           # compact, .pt2
    python -m pathviz.export checkpoints/demo --iteration stop --format onnx --out demo.onnx
    python -m pathviz.export checkpoints/demo --iteration 600            # any saved iteration

``--iteration stop`` is the run's suggested stop, the iteration ``pathviz.inspect`` and the app
show (:func:`pathviz.analysis.stop_of`); a run without one is refused with the reason.

Formats: ``pt2`` (default: a ``torch.export`` ExportedProgram that ``torch.export.load`` reads),
``torchscript`` (``torch.jit.load``), ``onnx`` (the dynamo-based exporter; ``onnxruntime`` runs
it) and ``state_dict`` (one ``torch.save`` file ``{"arch": ..., "state_dict": ...}`` that
:func:`load_state_dict_export` rebuilds with ``pathviz.models.build_model``). Every export writes
``<out>.json``: params and MACs before/after, the file size, kept channels per layer, the largest
difference between compact and masked outputs, the test accuracy of the exported model and the
warnings met on the way, and its ``"input"``: the input contract
(:func:`pathviz.contract.input_contract`: shape, dtype, layout, channel order, scaling,
normalisation, resize, class names), which is also stored inside the file (a pt2 or TorchScript
extra file ``pathviz_input.json``, the ONNX metadata property ``pathviz_input``, a state_dict
export's ``"input"`` key) and offered as code in ``<out>.preprocess.py`` (numpy only), so the
file scores as it did here without pathviz. Nothing existing is replaced unless
``--overwrite`` is given.

``--out`` must lie in an existing folder (only the default, ``<run>/exports``, is created) and
end in its format's suffix (:data:`SUFFIXES`: ``.pt2``, ``.pt``, ``.onnx``, ``.pth``/``.pt``);
anything else is refused in one sentence, so nothing is written where it was not asked for and
no library warns on stderr. The file and its report are written to temporary names and moved
into place together: a full disk (or any failed write) leaves neither, and says which file
could not be written.

The subnetwork and its size come from :func:`pathviz.prune.subnetwork` and its accuracy from
:func:`pathviz.evaluate.evaluate`, the same functions the worker used for the ``params_kept`` and
``test_acc_sparse`` metrics, so the figures in the app and in ``pathviz.inspect`` are those of the
file written here.

A run folder is data, never code: the dataset is read only from the ``--data-root`` given now
(digits needs none), never from a root stored in the run.
"""

from __future__ import annotations

import errno
import importlib.util
import io
import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import torch

from pathviz import jsonsafe, prune, readonly, runs
from pathviz.cli import Parser
from pathviz.contract import (
    CONTRACT_FILE,
    ONNX_KEY,
    contract_json,
    input_contract,
    preprocess_source,
)
from pathviz.data import DataError, check_classes, dataset_info, load_dataset
from pathviz.data.folder import folder_classes
from pathviz.evaluate import eval_loader, evaluate
from pathviz.models import build_model, widths_of
from pathviz.run_model import (  # re-exported: export's interface since before run_model
    ExportError,
    check_finite,
    load_run_model,
    pin_run,
    resolve_iteration,
)

log = logging.getLogger("pathviz.export")

MODES = ("masked", "compact")
FORMATS = ("pt2", "torchscript", "onnx", "state_dict")
SUFFIX = {"pt2": ".pt2", "torchscript": ".pt", "onnx": ".onnx", "state_dict": ".pth"}
# the suffixes an --out may end in, per format (the first is the default's); any other is
# refused, so a file's name says what loads it and no library warns about it on stderr
SUFFIXES = {"pt2": (".pt2",), "torchscript": (".pt",), "onnx": (".onnx",),
            "state_dict": (".pth", ".pt")}

__all__ = ["ExportError", "export", "load_run_model", "load_state_dict_export", "default_out",
           "resolve_iteration", "check_out", "main", "FORMATS", "MODES", "SUFFIXES",
           "export_contract", "preprocess_path", "check_finite", "pin_run"]


def default_out(run_dir: str | os.PathLike | runs.RunPaths, iteration: int, mode: str,
                fmt: str) -> Path:
    """Where the app keeps exports: ``<run>/exports/<run>-iter<N>-<mode><suffix>``."""
    paths = runs.paths_for_dir(run_dir)
    return paths.exports / f"{paths.name}-iter{iteration}-{mode}{SUFFIX.get(fmt, '')}"


def _example(cfg: dict[str, Any]) -> torch.Tensor:
    if cfg.get("input_shape"):
        return torch.zeros(1, *cfg["input_shape"])
    d = dataset_info(cfg.get("dataset"))  # the input shape only: no data root needed
    if d is None:
        raise ExportError("the run does not record its input shape or a known dataset; it "
                          "cannot be traced for export")
    return torch.zeros(1, d.in_channels, d.image_size, d.image_size)


def _test_data(dataset: str | None, data_root: str | os.PathLike | None,
               model: torch.nn.Module | None = None):
    """The test loader, or (None, why not): only digits (bundled) or a root given now.

    A ``data_root`` the user passes now that does not hold the dataset (missing or garbage
    files), or an image folder whose class count is not the model's, is bad
    input: ExportError, before anything is written, rather than an export that quietly lacks
    the accuracy asked for.
    """
    if dataset_info(dataset) is None:
        return None, "the run's dataset is not one pathviz knows, so no test accuracy"
    if dataset != "digits" and data_root is None:
        return None, (f"no test accuracy: pass --data-root with the {dataset} files to measure "
                      f"it (a root stored in the run is never used)")
    try:
        data = load_dataset(dataset, data_root)
        check_classes(data, model, data_root)
    except DataError as e:
        if data_root is not None and dataset != "digits":
            raise ExportError(str(e)) from None
        return None, f"no test accuracy ({e})"
    return eval_loader(data.test_x, data.test_y, data.info), None


def check_out(out: Path, fmt: str, exports: Path) -> None:
    """Refuse an ``out`` that export would have to invent a folder for, or whose suffix is not
    its format's (:data:`SUFFIXES`). Only the run's own ``exports`` folder is created when
    absent (the default place). One sentence each, before anything is computed or written."""
    if out.suffix not in SUFFIXES[fmt]:
        wanted = " or ".join(SUFFIXES[fmt])
        others = [f for f, sufs in SUFFIXES.items() if out.suffix in sufs]
        hint = f", or pass --format {' or '.join(others)}" if others else ""
        raise ExportError(f"--out {out.name} does not end in {wanted}, the suffix of --format "
                          f"{fmt} files; name it {out.stem}{SUFFIXES[fmt][0]}{hint}")
    folder = out.parent
    if os.path.abspath(folder) == os.path.abspath(exports) and not folder.exists():
        return  # the default folder: created when the file is written
    if not folder.is_dir():
        what = "does not exist" if not folder.exists() else "is not a folder"
        raise ExportError(f"the folder of --out, {folder}, {what}; export creates no folders: "
                          f"create it first, or choose an --out in an existing folder")


def _disk_full(e: BaseException, folder: Path) -> bool:
    """True when a failed write ran out of space: ENOSPC/EDQUOT anywhere in the exception's
    chain, or (torch reports a full disk in its own words, e.g. "unexpected pos") next to no
    free space on the folder's filesystem, measured before the partial file is removed."""
    seen: BaseException | None = e
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < (1 << 20)


def _cannot_write(target: Path, e: BaseException) -> ExportError:
    """One sentence for a write that failed, in our words when the disk is full."""
    if _disk_full(e, target.parent):
        return ExportError(f"could not write {target}: the disk is full; free some space and "
                           f"export again (nothing was written)")
    return ExportError(f"could not write {target} ({type(e).__name__}: "
                       f"{str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}); "
                       f"nothing was written")


def _missing(module: str) -> bool:
    return importlib.util.find_spec(module) is None


def export(run_dir: str | os.PathLike, iteration: int, mode: str = "compact", fmt: str = "pt2",
           out: str | os.PathLike | None = None, overwrite: bool = False,
           data_root: str | os.PathLike | None = None) -> dict[str, Any]:
    """Write the subnetwork at ``iteration`` to ``out`` and its report beside it; return it.

    A read-only app (:mod:`pathviz.readonly`) may export only outside the run and the
    checkpoints root (the app's in-memory download builds in a private temporary folder)."""
    if mode not in MODES:
        raise ExportError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    if fmt not in FORMATS:
        raise ExportError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    paths = runs.paths_for_dir(run_dir)
    out = Path(out) if out is not None else default_out(paths, iteration, mode, fmt)
    refused = readonly.refusal("write an export into the run's folder")
    if refused and (_inside(out, paths.dir) or _inside(out, runs.checkpoints_root())
                    or _inside(out, paths.dir.parent)):
        raise ExportError(refused)
    check_out(out, fmt, paths.exports)
    report_path = out.with_name(out.name + ".json")
    code_path = preprocess_path(out)
    in_run = _inside(out, paths.dir)
    if in_run:  # a link planted in a shared run (e.g. exports/ -> elsewhere) is refused
        if paths.exports.is_symlink():
            raise ExportError(f"{paths.exports} is a symbolic link; remove it, exports are "
                              f"written only inside the run folder")
        runs.resolve_inside(out.parent if out.parent.exists() else paths.dir, paths.dir)
    for f in (out, report_path, code_path):
        if f.is_symlink() or (f.exists() and not overwrite):
            raise ExportError(f"{f} exists; choose another --out or pass --overwrite"
                              if not f.is_symlink() else
                              f"{f} is a symbolic link; export writes only regular files")
    if out.exists() and not out.is_file():
        raise ExportError(f"{out} is not a file; choose another --out")
    if fmt == "onnx":
        missing = [m for m in ("onnx", "onnxscript") if _missing(m)]
        if missing:
            raise ExportError(f"ONNX export needs {' and '.join(missing)}: "
                              f"pip install {' '.join(missing)}")
    model, layers, gammas, cfg = load_run_model(paths, iteration)  # pins the run's numerics
    example = _example(cfg)
    test, no_test = _test_data(cfg.get("dataset"), data_root, model)
    contract = export_contract(cfg, data_root)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sub = prune.subnetwork(model, layers, gammas, example)
        exported = sub.compact if mode == "compact" else sub.masked
        x = next(test.epoch(0))[0][:64] if test is not None else \
            torch.randn(16, *example.shape[1:], generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            diff = float((sub.compact(x) - sub.masked(x)).abs().max())
        params_before, macs_before = prune.count(model, example)
        params_after, macs_after = (sub.params, sub.flops) if mode == "compact" else \
            prune.count(exported, example)
        test_acc = evaluate(exported, test)[1] if test is not None else None
        test_acc_masked = evaluate(sub.masked, test)[1] if test is not None else None
        if not out.parent.exists():  # only the run's exports folder (check_out)
            out.parent.mkdir(exist_ok=True)
        tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")  # torch.export wants its suffix
        try:
            _write(exported, fmt, tmp, example, mode, contract)
        except ExportError:
            tmp.unlink(missing_ok=True)
            raise
        except Exception as e:  # a full disk, or an exporter that cannot handle this model
            # judged before the partial file is removed: a full disk has no space left then
            err = _cannot_write(out, e) if isinstance(e, OSError) or _disk_full(e, out.parent) \
                else ExportError(f"{fmt} export of {cfg.get('model')} failed "
                                 f"({type(e).__name__}: {str(e).splitlines()[0][:200]}); try "
                                 f"another --format")
            tmp.unlink(missing_ok=True)
            raise err from None
    notes = list(dict.fromkeys([*sub.plan.warnings,
                                *(str(w.message).splitlines()[0][:300] for w in caught)]))
    if no_test:
        notes.append(no_test)
    report: dict[str, Any] = {
        "run": str(paths.dir), "iteration": int(iteration), "mode": mode,
        "format": fmt, "file": str(out), "file_size": tmp.stat().st_size,
        "model": cfg.get("model"),
        "params_before": params_before, "params_after": params_after,
        "macs_before": macs_before, "macs_after": macs_after,
        "params_kept": sub.params, "flops_kept": sub.flops,
        "nonzero_params_after": int(sum(int((p != 0).sum()) for p in exported.parameters())),
        "layers": [{"layer": name, "channels": sub.plan.groups[name], "kept": sub.plan.kept[name]}
                   for name in sub.plan.groups],
        "max_abs_diff_compact_vs_masked": diff,
        "test_acc": test_acc, "test_acc_masked": test_acc_masked,
        "warnings": notes,
        "input": contract,
    }
    for key in jsonsafe.non_finite_keys(report):  # written as null: say why next to it
        notes.append(f"{key} is not a finite number (the model's outputs overflow), so the "
                     f"report holds null for it")
    # the file and its report go in place together, or neither does (a full disk)
    report_tmp = report_path.with_name(f".{report_path.name}.tmp")
    # NaN is null (noted in warnings above), never a bare NaN literal, which is not JSON
    code = preprocess_source(contract)
    code_tmp = code_path.with_name(f".{code_path.name}.tmp")
    report_text = json.dumps(jsonsafe.finite(report), indent=1, allow_nan=False)
    for target, temp, text in ((report_path, report_tmp, report_text),
                               (code_path, code_tmp, code)):
        if text is None:
            continue
        try:
            temp.write_text(text)
        except OSError as e:
            err = _cannot_write(target, e)
            for f in (report_tmp, code_tmp, tmp):
                f.unlink(missing_ok=True)
            raise err from None
    os.replace(tmp, out)
    os.replace(report_tmp, report_path)
    written = [out, report_path]
    if code is not None:
        os.replace(code_tmp, code_path)
        written.append(code_path)
    if in_run:  # so that --overwrite of the run removes them, and nothing it did not write
        runs.record_files(paths, *(f.resolve().relative_to(paths.dir.resolve())
                                   for f in written))
    return report


def _inside(path: Path, folder: Path) -> bool:
    """True if ``path`` (not yet existing, perhaps) lies lexically under ``folder``."""
    try:
        Path(os.path.abspath(path)).relative_to(os.path.abspath(folder))
    except ValueError:
        return False
    return True


def preprocess_path(out: Path) -> Path:
    """Where the export's input preprocessing is written as code: ``<out>.preprocess.py``."""
    return out.with_name(out.name + ".preprocess.py")


def export_contract(cfg: dict[str, Any], data_root: str | os.PathLike | None
                    ) -> dict[str, Any]:
    """The input contract of the run's model (:func:`pathviz.contract.input_contract`): its
    recorded input shape and dataset; an image folder's class names when its root is given
    now (a root stored in the run is never read)."""
    names = None
    if cfg.get("dataset") == "imagefolder" and data_root is not None:
        try:
            names = folder_classes(os.fspath(data_root))
        except DataError:
            names = None  # _test_data has said why already
    return input_contract(cfg.get("dataset"), cfg.get("input_shape"), names)


def _embed_onnx_contract(path: Path, contract: dict[str, Any]) -> None:
    """Store the contract in the ONNX file's metadata (``metadata_props``), as JSON under
    :data:`pathviz.contract.ONNX_KEY`; onnxruntime shows it as
    ``InferenceSession(f).get_modelmeta().custom_metadata_map``."""
    import onnx  # lazy: onnx takes about a second to import; only an ONNX export needs it

    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, {ONNX_KEY: contract_json(contract)})
    onnx.save(proto, str(path))


def _write(model: torch.nn.Module, fmt: str, path: Path, example: torch.Tensor,
           mode: str, contract: dict[str, Any] | None = None) -> None:
    """Write ``model`` in ``fmt`` to ``path``. The torch formats are serialised in memory and
    written by :func:`_write_bytes`: torch's own file writer, meeting a full disk, raises in its
    own words and then aborts the process from a destructor at exit (``terminate called after
    throwing c10::Error``); plain Python writes raise ``OSError(ENOSPC)`` and nothing more."""
    model = model.eval()
    buf = io.BytesIO()
    # traced on a batch of 2: torch.export specialises a dimension it sees as 1, so a batch-1
    # example fixed the batch of a torchvision ViT's ONNX file at 1 (its class token expands
    # to the batch)
    two = example.expand(2, *example.shape[1:]).clone()
    if fmt == "pt2":
        batch = torch.export.Dim("batch", min=1)
        with torch.no_grad():
            ep = torch.export.export(model, (two,), dynamic_shapes=({0: batch},))
        torch.export.save(ep, buf, extra_files=_extra(contract))
    elif fmt == "torchscript":
        with torch.no_grad():
            traced = torch.jit.trace(model, example, check_trace=False)
        torch.jit.save(traced, buf, _extra_files=_extra(contract))
    elif fmt == "state_dict":
        arch = dict(getattr(model, "pathviz_arch", {}))
        if mode == "compact":
            arch["widths"] = widths_of(model)
        torch.save({"arch": arch, "state_dict": model.state_dict(),
                    **({"input": contract} if contract else {})}, buf)
    else:
        with torch.no_grad():
            prog = torch.onnx.export(model, (two,), dynamo=True, input_names=["input"],
                                     output_names=["logits"],
                                     dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
                                     verbose=False)
        prog.save(str(path))  # written by the onnx package in Python: a full disk is an OSError
        if contract:
            _embed_onnx_contract(path, contract)
        return
    _write_bytes(path, buf.getbuffer())


def _extra(contract: dict[str, Any] | None) -> dict[str, str]:
    """The contract as the extra file a pt2 or TorchScript export carries (read back with
    ``torch.export.load(f, extra_files={"pathviz_input.json": ""})`` or ``torch.jit.load(f,
    _extra_files=...)``)."""
    return {CONTRACT_FILE: contract_json(contract)} if contract else {}


def _write_bytes(path: Path, data) -> None:
    """Write ``data`` to ``path`` and sync it, so a full disk is an OSError here, not later."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def load_state_dict_export(path: str | os.PathLike) -> torch.nn.Module:
    """Rebuild a ``state_dict`` export (one file: arch + weights) as a model in eval mode."""
    blob = torch.load(Path(path), weights_only=True)
    if not isinstance(blob, dict) or "arch" not in blob or "state_dict" not in blob:
        raise ExportError(f"{path} is not a pathviz state_dict export (no arch/state_dict)")
    arch = dict(blob["arch"])
    model = build_model(arch.pop("name"), **arch)
    model.load_state_dict(blob["state_dict"])
    return model.eval()


def input_line(rep: dict[str, Any]) -> str:
    """The input contract in one line for the CLI, and where its code is."""
    c = rep.get("input") or {}
    if c.get("mean") is None:
        return f"input: {c.get('input_shape')} float32 NCHW (the dataset's preprocessing " \
               f"is unknown to pathviz)"
    code = preprocess_path(Path(rep["file"]))
    return (f"input: float32 NCHW {c['input_shape']}, {c['channel_order']}, pixels/255 then "
            f"(x - {c['mean']}) / {c['std']}; as code: preprocess() in {code}")


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="python -m pathviz.export", description=__doc__, error=ExportError)
    p.add_argument("run_dir", help="the run folder, e.g. checkpoints/demo")
    p.add_argument("--iteration", required=True, metavar="N|stop",
                   help="an iteration with saved weights, or stop: the run's suggested stop "
                        "(as pathviz.inspect shows it)")
    p.add_argument("--mode", default="compact", help="masked or compact (default compact)")
    p.add_argument("--format", default="pt2", dest="fmt",
                   help="pt2 (torch.export, default), torchscript, onnx or state_dict")
    p.add_argument("--out", help="output file in an existing folder, ending in its format's "
                                 "suffix: .pt2 (pt2), .pt (torchscript), .onnx (onnx), .pth or "
                                 ".pt (state_dict); default: <run>/exports/"
                                 "<run>-iter<N>-<mode>.<suffix>, the folder created if needed")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--data-root", help="folder with the dataset's files, to measure test "
                                       "accuracy (not needed for digits)")
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s: %(message)s")
    try:
        args = p.parse_args(argv)
        iteration = resolve_iteration(args.run_dir, args.iteration)
        rep = export(args.run_dir, iteration, args.mode, args.fmt, args.out, args.overwrite,
                     data_root=args.data_root)
    except (ExportError, runs.RunError) as e:
        print(f"pathviz.export: error: {e}", file=sys.stderr)
        return 2
    if str(args.iteration).strip().lower() == "stop":
        print(f"the suggested stop is iteration {iteration}")
    print(f"wrote {rep['file']} ({rep['mode']}, {rep['format']}) and {rep['file']}.json")
    print(f"params: {rep['params_before']:,} -> {rep['params_after']:,}   "
          f"MACs: {rep['macs_before']:,} -> {rep['macs_after']:,}")
    print(f"file size: {rep['file_size']:,} bytes")
    print(f"compact vs masked outputs: max |diff| = {rep['max_abs_diff_compact_vs_masked']:.2e}")
    if rep["test_acc"] is not None:
        print(f"test accuracy: {100 * rep['test_acc']:.2f}% "
              f"(masked {100 * rep['test_acc_masked']:.2f}%)")
    print(input_line(rep))
    for w in rep["warnings"]:
        print(f"note: {w}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
