"""Export: write the subnetwork at the selected iteration to a file that loads without pathviz.

torch is imported only when the user presses Export (``pathviz.export`` needs it), so the view
itself stays light. Nothing is overwritten unless the user ticks "Replace", and a file is served
for download only after it resolves inside the checkpoints root.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import streamlit as st

from pathviz.store import nearest
from pathviz.ui.context import RunView
from pathviz.ui.data import inside_root
from pathviz.ui.urlstate import md_escape

# what the formats are, in the order offered; pathviz.export says which it supports
FORMAT_HELP = {
    "pt2": "torch.export ExportedProgram: torch.export.load reads it, no pathviz needed",
    "torchscript": "TorchScript: torch.jit.load reads it (deprecated in current PyTorch)",
    "state_dict": "weights plus the architecture, to rebuild with pathviz.models",
    "onnx": "ONNX for other runtimes (onnxruntime)",
}


def _do_export(view: RunView, iteration: int, mode: str, fmt: str, replace: bool,
               root: Path) -> None:
    """Run the export (imports torch) and keep its report in the session for display."""
    from pathviz import export as ex  # torch: only when exporting

    if fmt not in ex.FORMATS:
        st.error(f"This pathviz cannot export {fmt} files; formats: {', '.join(ex.FORMATS)}.")
        return
    out = Path(ex.default_out(view.info.paths.dir, iteration, mode, fmt))
    if out.exists() and not replace:
        st.error(f"{md_escape(out.name)} exists already. Tick “Replace the existing file” to "
                 f"write it again, or download the existing one below.")
        return
    with st.spinner(f"exporting iteration {iteration:,} ({mode}, {fmt})..."):
        try:
            report = ex.export(view.info.paths.dir, iteration, mode, fmt, out, overwrite=replace)
        except ex.ExportError as e:
            st.error(md_escape(str(e)))
            return
        except Exception as e:  # keep the app alive; the message names what failed
            st.error(md_escape(f"Export failed: {type(e).__name__}: {e}"))
            return
    st.session_state.export_report = {"key": (view.info.name, iteration, mode, fmt),
                                      "out": str(out), "report": report}


def _report_ui(report: dict[str, Any], out: Path, root: Path) -> None:
    """Params, MACs, file size, accuracy, the compact-vs-masked check, warnings, downloads."""
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("parameters", f"{report['params_after']:,}",
              f"{report['params_after'] - report['params_before']:,}")
    m2.metric("MACs", f"{report['macs_after']:,}",
              f"{report['macs_after'] - report['macs_before']:,}")
    size = report.get("file_size") or (out.stat().st_size if out.exists() else None)
    if size is not None:
        m3.metric("file size", f"{size / 1e6:.2f} MB")
    if report.get("test_acc") is not None:
        m4.metric("test accuracy", f"{100 * report['test_acc']:.2f}%")
    st.caption(f"compact vs masked outputs: largest |difference| = "
               f"{report['max_abs_diff_compact_vs_masked']:.1e}")
    for w in report.get("warnings", []):
        st.warning(md_escape(w))
    if report.get("layers"):
        st.dataframe(report["layers"], hide_index=True, width="stretch")
    files = [out] + ([Path(report["arch"])] if report.get("arch") else [])
    for f in files:
        safe = inside_root(f, root)
        if safe is None or not safe.is_file():
            st.error(f"{md_escape(f.name)} is not a file inside the checkpoints folder, so it is "
                     f"not offered for download.")
            continue
        st.download_button(f"Download {f.name}", data=safe.read_bytes(), file_name=f.name,
                           key=f"dl:{f.name}", icon=":material/download:")


def export_ui(view: RunView, iteration: int, root: Path) -> None:
    """The export form at the selected iteration, or the nearest iterations that have weights."""
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
    replace = st.checkbox("Replace the existing file", value=False, key="export_replace",
                          help="Without this, an export that exists is never overwritten.")
    if st.button("Export", type="primary", key="do_export", icon=":material/save:"):
        _do_export(view, iteration, mode, fmt, replace, root)
    last = st.session_state.get("export_report")
    if last and last["key"] == (view.info.name, iteration, mode, fmt):
        _report_ui(last["report"], Path(last["out"]), root)
        return
    # an export made earlier (another session, the CLI): show its saved report
    for report_file in sorted(view.info.paths.exports.glob(f"*{iteration}*{mode}*.json")):
        try:
            report = json.loads(report_file.read_text())
        except (OSError, ValueError):
            continue
        if report.get("iteration") == iteration and report.get("mode") == mode and \
                report.get("format") == fmt and Path(report.get("file", "")).exists():
            st.caption(f"Exported earlier: {md_escape(Path(report['file']).name)}")
            _report_ui(report, Path(report["file"]), root)
            break
