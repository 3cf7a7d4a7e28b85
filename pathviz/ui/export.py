"""Export: write the subnetwork at the selected iteration to a file that loads without pathviz.

torch is imported only when the user presses Export (``pathviz.export`` needs it), so the view
itself stays light. Nothing is overwritten unless the user ticks "Replace", and a file is served
for download only after it resolves inside the checkpoints root.
"""

from __future__ import annotations

import html
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import streamlit as st

from pathviz import readonly
from pathviz.store import nearest
from pathviz.ui.context import RunView
from pathviz.ui.data import inside_root
from pathviz.ui.sidebar import data_root_problem
from pathviz.ui.text import clean_rows, inert

BUNDLED = ("digits",)  # datasets whose test split ships with pathviz: no data root needed

# what the formats are, in the order offered; pathviz.export says which it supports
FORMAT_HELP = {
    "pt2": "torch.export ExportedProgram: torch.export.load reads it, no pathviz needed",
    "torchscript": "TorchScript: torch.jit.load reads it (deprecated in current PyTorch)",
    "state_dict": "weights plus the architecture, to rebuild with pathviz.models",
    "onnx": "ONNX for other runtimes (onnxruntime)",
}


def _do_export(view: RunView, iteration: int, mode: str, fmt: str, replace: bool,
               root: Path, data_root: str | None = None) -> None:
    """Run the export (imports torch) and keep its report in the session for display."""
    from pathviz import export as ex  # lazy: torch loads only when exporting

    if fmt not in ex.FORMATS:
        st.error(f"This pathviz cannot export {fmt} files; formats: {', '.join(ex.FORMATS)}.")
        return
    out = Path(ex.default_out(view.info.paths.dir, iteration, mode, fmt))
    if out.exists() and not replace:
        st.error(f"{inert(out.name)} exists already. Tick “Replace the existing file” to "
                 f"write it again, or download the existing one below.")
        return
    with st.spinner(f"exporting iteration {iteration:,} ({mode}, {fmt})..."):
        try:
            report = ex.export(view.info.paths.dir, iteration, mode, fmt, out, overwrite=replace,
                               data_root=data_root)
        except ex.ExportError as e:
            st.error(inert(str(e)))
            return
        except Exception as e:  # keep the app alive; the message names what failed
            st.error(inert(f"Export failed: {type(e).__name__}: {e}"))
            return
    st.session_state.export_report = {"key": (view.info.name, iteration, mode, fmt),
                                      "out": str(out), "report": report}


def _build_in_memory(view: RunView, iteration: int, mode: str, fmt: str) -> None:
    """A read-only app's export: built in a private temporary folder outside the checkpoints
    root, read into this session's memory and the folder removed, so nothing on the server
    changes; the page then offers the files for download."""
    from pathviz import export as ex  # lazy: torch loads only when exporting

    if fmt not in ex.FORMATS:
        st.error(f"This pathviz cannot export {fmt} files; formats: {', '.join(ex.FORMATS)}.")
        return
    name = Path(ex.default_out(view.info.paths.dir, iteration, mode, fmt)).name
    with tempfile.TemporaryDirectory(prefix="pathviz-export-") as tmp, \
            st.spinner(f"building iteration {iteration:,} ({mode}, {fmt})..."):
        try:
            report = ex.export(view.info.paths.dir, iteration, mode, fmt, Path(tmp) / name)
        except ex.ExportError as e:
            st.error(inert(str(e)))
            return
        except Exception as e:  # keep the app alive; the message names what failed
            st.error(inert(f"Export failed: {type(e).__name__}: {e}"))
            return
        files = {f.name: f.read_bytes() for f in sorted(Path(tmp).iterdir())
                 if f.is_file() and not f.name.startswith(".")}
    st.session_state.export_report = {"key": (view.info.name, iteration, mode, fmt),
                                      "out": name, "report": report, "files": files}


def _report_ui(report: dict[str, Any], out: Path, root: Path,
               memory: dict[str, bytes] | None = None) -> None:
    """Params, MACs, file size, accuracy, the compact-vs-masked check, warnings, downloads
    (of the files on disk, or of ``memory``'s files built by a read-only app)."""
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("parameters", f"{report['params_after']:,}",
              f"{report['params_after'] - report['params_before']:,}", delta_color="inverse")
    m2.metric("MACs", f"{report['macs_after']:,}",  # inverse: a reduction is good, green
              f"{report['macs_after'] - report['macs_before']:,}", delta_color="inverse")
    size = report.get("file_size") or (out.stat().st_size if out.exists() else None)
    if size is not None:
        m3.metric("file size", f"{size / 1e6:.2f} MB")
    if report.get("test_acc") is not None:
        # whose accuracy: the exported weights, W* (W on Γ's support), compact or masked
        m4.metric(f"test accuracy, {report.get('mode', 'compact')} W*",
                  f"{100 * report['test_acc']:.2f}%")
    st.caption(f"compact vs masked outputs: largest |difference| = "
               f"{report['max_abs_diff_compact_vs_masked']:.1e}")
    notes = [_plain(w) for w in report.get("warnings", [])]
    # why there is no test accuracy first: it is what the user can act on
    notes.sort(key=lambda w: not w.startswith("no test accuracy"))
    if len(notes) == 1:
        st.warning(inert(notes[0]))
    elif notes:  # one box, not one per pruned layer
        st.warning("\n".join(f"- {inert(w)}" for w in notes))
    if report.get("layers"):
        st.dataframe(clean_rows(report["layers"]), hide_index=True, width="stretch")
    files = [out] + ([Path(report["arch"])] if report.get("arch") else [])
    # the input contract as code, written beside the file: it goes with the model
    code = out.with_name(out.name + ".preprocess.py")
    if report.get("input") and (code.is_file() if memory is None else code.name in memory):
        contract = report["input"]
        if contract.get("mean") is not None:
            st.caption(inert(f"Input: float32 NCHW {contract['input_shape']}, "
                             f"{contract['channel_order']}, pixels / 255 then (x - "
                             f"{contract['mean']}) / {contract['std']}; as code: preprocess() "
                             f"in {code.name} (numpy only). See docs/export.md."))
        files.append(code)
    if memory is not None:
        for name, data in memory.items():
            st.download_button(f"Download {inert(name)}", data=data, file_name=name,
                               key=f"dlm:{name}", icon=":material/download:")
        return
    for f in files:
        safe = inside_root(f, root)
        if safe is None or not safe.is_file():
            st.error(f"{inert(f.name)} is not a file inside the checkpoints folder, so it is "
                     f"not offered for download.")
            continue
        st.download_button(f"Download {inert(f.name)}", data=safe.read_bytes(), file_name=f.name,
                           key=f"dl:{f.name}", icon=":material/download:")


def _sound_report(report: Any) -> bool:
    """Whether an export report read from disk has every field :func:`_report_ui` shows, each
    of the kind the exporter writes."""
    def num(v: Any, whole: bool = False) -> bool:
        return isinstance(v, int if whole else (int, float)) and not isinstance(v, bool) and \
            abs(v) < 2 ** 63  # (NaN and inf fail it too)

    return (isinstance(report, dict)
            and all(num(report.get(k), True) for k in ("params_after", "params_before",
                                                        "macs_after", "macs_before"))
            and all(report.get(k) is None or num(report[k]) for k in ("file_size", "test_acc"))
            and num(report.get("max_abs_diff_compact_vs_masked"))
            and isinstance(report.get("warnings", []), list)
            and all(isinstance(w, str) for w in report.get("warnings", []))
            and isinstance(report.get("layers") or [], list)
            and all(isinstance(r, dict) for r in report.get("layers") or [])
            and all(isinstance(report.get(k) or "", str) and "\0" not in (report.get(k) or "")
                    for k in ("file", "arch")))


def _plain(note: str) -> str:
    """A report note in the app's words: the CLI's ``--data-root`` is the Data root field."""
    return note.replace("pass --data-root with", "enter the data root of").replace(
        "--data-root", "the data root")


def data_root_ui(view: RunView) -> tuple[str | None, str | None]:
    """The optional data root that measures the test accuracy of a run on a dataset that is not
    bundled; returns (root or None, problem or None)."""
    if view.dataset in BUNDLED:
        return None, None
    if readonly.active():  # a class's browsers do not probe the server's folders
        st.caption(inert(f"This page is read-only: it measures no test accuracy for "
                         f"{view.dataset} (that needs a data root on the server), so the "
                         f"export comes without one."))
        return None, None
    text = (st.text_input(
        "Data root for the test accuracy (optional)", key=f"export_data_root:{view.info.name}",
        placeholder="the folder with the files the run was trained on",
        help="Never read from the run: the path stored in it may not exist here.") or "").strip()
    if not text:
        st.caption(inert(f"Measuring the test accuracy needs the run's {view.dataset} data "
                             f"root (the folder with its files): enter it above, or export "
                             f"without a test accuracy."))
        return None, None
    return text, data_root_problem(text)


def report_html(run_dir: str, iteration: int) -> bytes:
    """The run's HTML report opening at ``iteration`` (``python -m pathviz.report``, run in its
    own process: the report reuses the views' modules, so a view runs it rather than import
    it). A report that cannot be made is a small page with the one-sentence reason."""
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "report.html"
        done = subprocess.run([sys.executable, "-m", "pathviz.report", run_dir, "--out", str(out),
                               "--iteration", str(int(iteration))], capture_output=True,
                              text=True, timeout=600, stdin=subprocess.DEVNULL)
        if done.returncode == 0:
            return out.read_bytes()
    why = html.escape(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else
                      f"pathviz.report exited with {done.returncode}")
    return f"<!DOCTYPE html><meta charset=utf-8><p>No report: {why}</p>".encode()


def report_button_ui(view: RunView, iteration: int) -> None:
    """*Download report*: the run as one HTML file that opens offline (docs/report.md)."""
    run_dir, name = str(view.info.paths.dir), view.info.name
    st.download_button("Download report (HTML)", key="report_html", mime="text/html",
                       data=lambda: report_html(run_dir, iteration),  # values captured: no
                       file_name=f"{name}-report.html", on_click="ignore",  # session here
                       icon=":material/download:",
                       help="The header, the player (Overview, Layer, Metrics, presentation "
                            "mode), the stop's summary and the method, in one file that "
                            "opens from disk with no network.")


def export_ui(view: RunView, iteration: int, root: Path) -> None:
    """The export form at the selected iteration, or the nearest iterations that have weights."""
    report_button_ui(view, iteration)
    wits = view.data["weight_iterations"]
    if iteration not in set(wits.tolist()):
        near = nearest(wits, iteration)
        st.warning(f"Iteration {iteration:,} has no saved weights, so it cannot be exported. "
                   f"Nearest iterations with weights: "
                   f"{', '.join(f'{n:,}' for n in near) or 'none yet'}.")
        for n in near:
            if st.button(f"Go to iteration {n:,}", key=f"goto{n}"):
                st.session_state.pending_iteration = n
                st.rerun()
        return
    c1, c2 = st.columns([1, 2])
    mode = c1.radio("Mode", ["compact", "masked"], horizontal=True, key="export_mode",
                    help="compact: filters outside the support physically removed (smaller); "
                         "masked: same shape, W * 1[Γ ≠ 0]")
    fmt = c2.radio("Format", list(FORMAT_HELP), horizontal=True, key="export_format",
                   help=" · ".join(f"{k}: {v}" for k, v in FORMAT_HELP.items()))
    ro = readonly.active()
    replace = False if ro else st.checkbox(
        "Replace the existing file", value=False, key="export_replace",
        help="Without this, an export that exists is never overwritten.")
    data_root, problem = data_root_ui(view)
    if problem:
        st.error(problem)  # markdown already (the path in it is inert)
    if ro:  # nothing written on the server: built in memory, offered for download
        if st.button("Build for download", type="primary", key="do_export_memory",
                     icon=":material/download:",
                     help="Read-only page: the file is built in memory, not saved on the "
                          "server."):
            _build_in_memory(view, iteration, mode, fmt)
    elif st.button("Export", type="primary", key="do_export", icon=":material/save:",
                   disabled=problem is not None):
        _do_export(view, iteration, mode, fmt, replace, root, data_root)
    last = st.session_state.get("export_report")
    if last and last["key"] == (view.info.name, iteration, mode, fmt):
        _report_ui(last["report"], Path(last["out"]), root, memory=last.get("files"))
        return
    # an export made earlier (another session, the CLI): show its saved report
    for report_file in sorted(view.info.paths.exports.glob(f"*{iteration}*{mode}*.json")):
        try:
            report = json.loads(report_file.read_text())
        except (OSError, ValueError, RecursionError):  # RecursionError: nested too deep
            continue
        if not _sound_report(report):  # a shared run's file: data from anywhere
            st.caption(f"The report {inert(report_file.name)} of an earlier export is damaged, "
                       f"so it is not shown; export again to replace it.")
            continue
        if report.get("iteration") == iteration and report.get("mode") == mode and \
                report.get("format") == fmt and Path(report.get("file", "")).exists():
            st.caption(f"Exported earlier: {inert(Path(report['file']).name)}")
            _report_ui(report, Path(report["file"]), root)
            break
