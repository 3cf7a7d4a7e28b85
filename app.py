"""pathviz app: follow, scrub and read the regularization path of SLBI training runs.

    streamlit run app.py

UI only: runs come from pathviz.runs, data from pathviz.store.PathReader, figures from
pathviz.plots. Torch is never imported here, so the app starts in about a second.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import streamlit as st

from pathviz import analysis, plots, runs
from pathviz.store import PathFileError, PathReader, entry_indices, nearest

st.set_page_config(page_title="pathviz", layout="wide")

ROOT = runs.checkpoints_root()
VIEWS = ["Overview", "Layer", "Metrics & stopping", "Filters", "Export", "Compare",
         "About the method"]
# plain-text badges: emoji fonts are missing on many servers and headless browsers
STATE_BADGE = {"running": ":green-badge[running]", "starting": ":orange-badge[starting]",
               "finished": ":blue-badge[finished]", "stopped": ":gray-badge[stopped]",
               "failed": ":red-badge[failed]", "unknown": ":gray-badge[unknown]"}
DEMO_NAME = "demo"


# ---- cached data (keyed on the file's identity and length, so a resumed file is reread) -----


def _ident(path: os.PathLike) -> tuple[int, int]:
    st_ = os.stat(path)
    return st_.st_ino, st_.st_dev


@st.cache_data(max_entries=32, show_spinner=False)
def load_overview(path: str, ident: tuple, n: int) -> dict[str, Any]:
    with PathReader(path) as r:
        return {"iterations": r.iterations[:n], "epochs": r.epochs[:n],
                "weight_iterations": r.weight_iterations, "metrics": r.metrics(),
                "layers": r.layers, "config": r.config}


@st.cache_data(max_entries=256, show_spinner=False)
def load_snapshot(path: str, ident: tuple, index: int) -> dict[str, dict[str, np.ndarray]]:
    with PathReader(path) as r:
        return r.snapshot(index)


@st.cache_data(max_entries=32, show_spinner=False)
def load_layer(path: str, ident: tuple, n: int, layer: str) -> dict[str, np.ndarray]:
    with PathReader(path) as r:
        gn = r.layer_path(layer, "gamma_norm", slice(0, n))
        return {"gamma_norm": gn, "weight_norm": r.layer_path(layer, "weight_norm", slice(0, n)),
                "entry": entry_indices(gn)}


@st.cache_data(max_entries=16, show_spinner=False)
def load_weight(path: str, ident: tuple, iteration: int, name: str) -> np.ndarray:
    with PathReader(path) as r:
        return r.weights_at(iteration)[name]


# ---- sidebar -------------------------------------------------------------------------------


def run_picker_ui(all_runs: list[runs.RunInfo]) -> str | None:
    """The run list; the choice lives in the URL (?run=NAME)."""
    names = [r.name for r in all_runs]
    wanted = st.query_params.get("run")
    if wanted is not None:
        try:
            runs.validate_name(wanted)
        except runs.RunError as e:
            st.error(f"The URL names a run that cannot exist: {e}.")
            wanted = None
        else:
            if wanted not in names:
                st.warning(f"No run called {wanted!r} in {ROOT}; pick one from the list.")
                wanted = None
    if not names:
        return None
    labels = {r.name: f"{r.name} · {r.state} · {r.model}/{r.dataset} · {r.snapshots} snapshots"
              for r in all_runs}
    choice = st.sidebar.selectbox("Run", names, index=names.index(wanted) if wanted else 0,
                                  format_func=labels.get, key=f"picker:{wanted}")
    if st.query_params.get("run") != choice:
        st.query_params["run"] = choice
        st.query_params.pop("iteration", None)
    with st.sidebar.expander(f"All runs ({len(all_runs)})"):
        st.dataframe([{"run": r.name, "status": r.state, "model": r.model, "dataset": r.dataset,
                       "snapshots": r.snapshots, "iteration": f"{r.iteration}/{r.total_iterations}"}
                      for r in all_runs], hide_index=True, width="stretch")
    return choice


def refresh_ui() -> float:
    """Live refresh interval in seconds (0 = off)."""
    return float(st.sidebar.number_input(
        "Live refresh every (s), 0 = off", min_value=0.0, max_value=60.0, step=0.5,
        value=float(os.environ.get("PATHVIZ_REFRESH", "2")), key="refresh",
        help="How often the views of a running run update themselves."))


FORM_FIELDS = [  # (config field, label, kind)
    ("model", "Model", "model"), ("dataset", "Dataset", "dataset"),
    ("data_root", "Data root (folder with the dataset files)", "text"),
    ("epochs", "Epochs", "int"), ("batch_size", "Batch size", "int"), ("lr", "lr (α)", "float"),
    ("kappa", "κ (kappa)", "float"), ("nu", "ν (nu)", "float"), ("lam", "λ (lambda)", "float"),
    ("snapshot_every", "Snapshot every (iterations)", "int"),
    ("weights_every", "Weights every (iterations)", "int"),
    ("eval_every", "Evaluate every (iterations)", "int"),
]


def new_run_ui(existing: list[str]) -> None:
    """A form for a new run, validated before launch; errors appear under their field."""
    from pathviz.config import PRESETS, ConfigError, RunConfig, config_to_argv
    from pathviz.data import DATASETS, DataError, check_dataset

    if not st.sidebar.toggle("New run", key="show_new_run"):
        return
    base = PRESETS["demo"]
    with st.sidebar.form("new_run"):
        # a fixed default: a default that changed on every rerun would reset what was typed
        st.session_state.setdefault("new_run_name", f"run-{time.strftime('%m%d-%H%M%S')}")
        name = st.text_input("Run name", key="new_run_name")
        name_err = st.empty()
        values: dict[str, Any] = {}
        slots = {}
        for field, label, kind in FORM_FIELDS:
            default = getattr(base, field)
            if kind == "model":
                values[field] = st.selectbox(label, MODEL_CHOICES, index=0)
            elif kind == "dataset":
                values[field] = st.selectbox(label, list(DATASETS), index=0)
            elif kind == "text":
                values[field] = st.text_input(label, value=default or "") or None
            elif kind == "int":
                values[field] = int(st.number_input(label, value=int(default), step=1))
            else:
                values[field] = float(st.number_input(label, value=float(default),
                                                      format="%.4g"))
            slots[field] = st.empty()
        submitted = st.form_submit_button("Validate and start", type="primary")
    if not submitted:
        return
    ok = True
    try:
        runs.validate_name(name)
        if name in existing:
            raise runs.RunError(f"a run called {name!r} exists already")
    except runs.RunError as e:
        name_err.error(str(e))
        ok = False
    cfg = base.replace(**values)
    try:
        cfg.validate()
    except ConfigError as e:
        flag = str(e).split()[0].lstrip("-").replace("-", "_")
        (slots.get(flag) or name_err).error(str(e))
        ok = False
    try:
        check_dataset(cfg.dataset, cfg.data_root)
    except DataError as e:
        slots["data_root"].error(str(e))
        ok = False
    if not ok:
        st.sidebar.error("Fix the fields marked above, then start again.")
        return
    start(runs.run_paths(name, ROOT), config_to_argv(RunConfig.from_json(cfg.to_json())))


MODEL_CHOICES = ["lenet5", "cifar_resnet_20", "cifar_resnet_32", "cifar_resnet_56",
                 "cifar_vgg_11", "cifar_vgg_16", "tv_resnet18"]


def start(paths: runs.RunPaths, argv: list[str], resume: bool = False) -> None:
    try:
        runs.start_worker(paths, argv, resume=resume)
    except runs.RunError as e:
        st.error(str(e))
        return
    st.query_params["run"] = paths.name
    st.query_params.pop("iteration", None)
    time.sleep(0.3)
    st.rerun()


# ---- main area -----------------------------------------------------------------------------


def empty_ui() -> None:
    st.title("pathviz")
    st.markdown(
        "See the **regularization path** of DessiLBI training: which filters a network selects, "
        "and when, as the sparse variable Γ grows from empty.\n\n"
        f"There are no runs in `{ROOT}` yet. The demo trains LeNet-5 on scikit-learn's bundled "
        "digits for about a minute on a laptop CPU; the views follow it live.")
    if st.button("Start the demo run", type="primary"):
        start(runs.run_paths(DEMO_NAME, ROOT), ["--preset", "demo"])


def run_header_ui(info: runs.RunInfo) -> None:
    cols = st.columns([6, 1, 1])
    cols[0].subheader(f"{info.name} {STATE_BADGE.get(info.state, STATE_BADGE['unknown'])}")
    cols[0].caption(f"{info.model} on {info.dataset} · {info.state}"
                    + (f": {info.reason}" if info.reason else ""))
    if info.state in ("running", "starting"):
        if cols[1].button("Stop", help="SIGTERM: the worker saves and exits; resume later"):
            with st.spinner("stopping..."):
                runs.stop_worker(info.paths)
            st.rerun()
    elif info.resumable and cols[1].button("Resume", help="continue from the last save"):
        start(info.paths, [], resume=True)
    if info.state == "failed":
        st.error(f"This run failed: {info.reason or 'see its train.log'}")


def progress_ui(info: runs.RunInfo) -> None:
    status = runs.read_status(info.paths)
    it, total = int(status.get("iteration", 0)), int(status.get("total_iterations", 0) or 1)
    eta = status.get("eta")
    text = (f"iteration {it} / {total} · epoch {float(status.get('epoch', 0)):.2f}"
            + (f" · about {_duration(eta)} left" if eta else ""))
    st.progress(min(it / total, 1.0), text=text)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def scrub_ui(data: dict[str, Any], live: bool) -> int:
    """The snapshot slider, play button and follow-live switch; returns the snapshot index.

    With evenly spaced snapshots the slider runs over iterations (its thumb shows the iteration);
    otherwise over snapshot indices. ``ss.snap`` (an index) is the state either way.
    """
    iters, epochs = data["iterations"], data["epochs"]
    n = len(iters)
    ss = st.session_state
    step = int(iters[1] - iters[0]) if n > 1 else 1
    uniform = n > 1 and step > 0 and bool(np.array_equal(iters, iters[0] + step * np.arange(n)))
    key = "snap_it" if uniform else "snap_ix"

    def to_index(v: int) -> int:
        return int((v - iters[0]) // step) if uniform else int(v)

    def to_value(i: int) -> int:
        return int(iters[0] + step * i) if uniform else int(i)

    if key in ss and ss.get("snap_shown") is not None and ss[key] != ss.snap_shown:
        ss.snap = to_index(ss[key])  # the user moved the slider: stop following the newest
        ss.follow = False
    if "pending_iteration" in ss:  # a click or jump, applied before the widgets are drawn
        ss.snap = int(np.searchsorted(iters, ss.pop("pending_iteration"), side="right") - 1)
        ss.follow = False
    elif "snap" not in ss:
        q = st.query_params.get("iteration")
        ss.snap = (int(np.searchsorted(iters, int(q), side="right") - 1)
                   if q and q.isdigit() else n - 1)
    if live and ss.get("follow", True):
        ss.snap = n - 1
    if ss.get("playing"):
        ss.snap = min(ss.snap + max(1, n // 80), n - 1)
        if ss.snap >= n - 1:
            ss.playing = False
            ss.play_ended = True
    ss.snap = int(min(max(ss.snap, 0), n - 1))
    ss[key] = ss.snap_shown = to_value(ss.snap)
    cols = st.columns([8, 1, 2])
    help_ = ("Drag to scrub along the path. The line below gives the epoch and says whether "
             "weights were saved here (◆: exportable); the metrics plot marks all such "
             "iterations.")
    if uniform:
        value = cols[0].slider("Iteration", int(iters[0]), int(iters[-1]), step=step, key=key,
                               help=help_)
    else:
        value = cols[0].slider("Snapshot", 0, max(n - 1, 1), key=key, disabled=n < 2,
                               help=help_)
    idx = int(min(max(to_index(value), 0), n - 1))
    if cols[1].button("⏸" if ss.get("playing") else "▶", help="Play the path"):
        ss.playing = not ss.get("playing")
        if ss.playing and idx >= n - 1:
            ss.pending_iteration = int(iters[0])  # at the end: play from the start
        st.rerun(scope="app")
    if live:
        cols[2].toggle("Follow live", value=True, key="follow")
    it = int(iters[idx])
    has_w = it in set(data["weight_iterations"].tolist())
    st.markdown(f"**Iteration {it:,}** · epoch {float(epochs[idx]):.2f} · snapshot {idx + 1} of "
                f"{n}" + (" · ◆ weights saved here" if has_w else
                          f" · no weights here (nearest: "
                          f"{', '.join(map(str, nearest(data['weight_iterations'], it)))})"))
    if st.query_params.get("iteration") != str(it):
        st.query_params["iteration"] = str(it)
    return idx


def _clicked_iteration(event: Any, key: str) -> None:
    """Turn a point selection on a plot into a pending iteration (applied on the next run)."""
    points = getattr(getattr(event, "selection", None), "points", None) or []
    if not points:
        return
    cd = points[0].get("customdata")
    it = cd[0] if isinstance(cd, list) else cd
    if it is None or st.session_state.get(f"applied:{key}") == it:
        return
    st.session_state[f"applied:{key}"] = it
    st.session_state.pending_iteration = int(it)
    st.rerun()


def views_ui(info: runs.RunInfo) -> None:
    """Everything drawn from the path file; a damaged file shows one message here only."""
    live = info.state in ("running", "starting")
    if live:
        progress_ui(info)
    try:
        with PathReader(info.paths.path) as r:
            n = r.n_snapshots
        ident = _ident(info.paths.path)
    except PathFileError as e:
        if live and not info.paths.path.exists():
            st.info("Waiting for the worker to write its first snapshot...")
        else:
            st.error(f"This run's path file cannot be shown: {e}")
        return
    except FileNotFoundError:
        st.info("Waiting for the worker to create the path file...")
        return
    if n == 0:
        st.info("Waiting for the first snapshot...")
        return
    path = str(info.paths.path)
    try:
        data = load_overview(path, ident, n)
    except PathFileError as e:
        st.error(f"This run's path file cannot be shown: {e}")
        return
    idx = scrub_ui(data, live)
    it = int(data["iterations"][idx])
    m = data["metrics"]
    from pathviz.data import DATASETS  # torch-free

    info_ = DATASETS.get(data["config"].get("dataset", ""))
    chance = 1.0 / info_.num_classes if info_ else 0.0
    stop = analysis.suggest_stop(data["iterations"], _stop_accuracy(m), m["params_kept"],
                                 eligible=data["weight_iterations"], min_acc=1.5 * chance)
    if stop is None and np.isfinite(_stop_accuracy(m)).any():
        st.caption(f"No stopping point to suggest yet: the sparse model is not yet clearly "
                   f"better than chance ({100 * chance:.0f}%), or no such snapshot has saved "
                   f"weights.")
    if stop is not None:
        c1, c2 = st.columns([6, 1])
        which = " of the sparse model" if "test_acc_sparse" in m and np.isfinite(
            m["test_acc_sparse"]).any() else ""
        c1.info(f"**Suggested stop: iteration {stop.iteration:,}** "
                f"({100 * stop.test_acc:.1f}% test accuracy{which}, {stop.params_kept:,.0f} "
                f"parameters kept): {stop.rule}.")
        if c2.button("Jump there", key="jump"):
            st.session_state.pending_iteration = stop.iteration
            st.rerun()
    view = st.segmented_control("View", VIEWS, default=VIEWS[0], key="view",
                                label_visibility="collapsed") or VIEWS[0]
    try:
        snap = load_snapshot(path, ident, idx)
        if view == "Overview":
            overview_view(data, snap, it)
        elif view == "Layer":
            layer_view(path, ident, n, data, snap, it)
        elif view == "Metrics & stopping":
            metrics_view(data, it, stop)
        elif view == "Filters":
            filters_view(path, ident, data, snap, it)
        elif view == "Export":
            export_view(info, data, it)
        elif view == "Compare":
            compare_view(info)
        else:
            about_view()
    except PathFileError as e:
        st.error(f"This run's path file cannot be shown: {e}")


def _stop_accuracy(m: dict[str, np.ndarray]) -> np.ndarray:
    """Accuracy of the sparse model W* where the file has it (schema 1.0 files may not)."""
    sparse = m.get("test_acc_sparse")
    return sparse if sparse is not None and np.isfinite(sparse).any() else m["test_acc"]


def overview_view(data: dict[str, Any], snap: dict, it: int) -> None:
    layers = data["layers"]
    names = [layer["name"] for layer in layers]
    st.plotly_chart(plots.overview_heatmap(names, {k: snap[k]["gamma_norm"] for k in names},
                                           title=f"Gamma support by layer at iteration {it:,} "
                                                 f"(grey: outside the support)"),
                    width="stretch", key="overview")
    st.markdown("**Support size per layer**")
    st.dataframe(analysis.support_table(layers, snap), hide_index=True,
                 width="stretch")


def layer_view(path: str, ident: tuple, n: int, data: dict, snap: dict, it: int) -> None:
    names = [layer["name"] for layer in data["layers"]]
    c1, c2 = st.columns([3, 1])
    layer = c1.selectbox("Layer", names, key="layer")
    show_gamma = c2.toggle("Show ‖Γ_g‖ too", value=False)
    lp = load_layer(path, ident, n, layer)
    st.plotly_chart(plots.layer_heatmap(lp["gamma_norm"], data["iterations"], lp["entry"], it,
                                        layer), width="stretch", key="layer_heatmap")
    inside = snap[layer]["gamma_norm"] > 0
    st.plotly_chart(plots.path_plot(lp["weight_norm"], data["iterations"], inside, it,
                                    lp["gamma_norm"] if show_gamma else None, layer),
                    width="stretch", key="path_plot")


def metrics_view(data: dict, it: int, stop: analysis.StopSuggestion | None) -> None:
    m = data["metrics"]
    sug = stop.iteration if stop else None
    st.caption("Click a point to select its iteration.")
    ev = st.plotly_chart(plots.metrics_plot(data["iterations"], m, it, sug,
                                            data["weight_iterations"]),
                         width="stretch", key="metrics_plot", on_select="rerun",
                         selection_mode="points")
    _clicked_iteration(ev, "metrics_plot")
    ev = st.plotly_chart(plots.tradeoff_plot(m["params_kept"], _stop_accuracy(m),
                                             data["iterations"], it, sug), width="stretch",
                         key="tradeoff_plot", on_select="rerun", selection_mode="points")
    _clicked_iteration(ev, "tradeoff_plot")


def filters_view(path: str, ident: tuple, data: dict, snap: dict, it: int) -> None:
    first = next((layer for layer in data["layers"] if layer["kind"] == "conv"
                  and layer["penalty"] == "group"), None)
    if first is None:
        st.info("This run has no conv layer with group sparsity to draw.")
        return
    wits = data["weight_iterations"]
    if len(wits) == 0:
        st.info("No weights saved yet.")
        return
    wit = int(wits[np.searchsorted(wits, it, side="right") - 1]) if it >= wits[0] else int(wits[0])
    w = load_weight(path, ident, wit, first["param"])
    inside = snap[first["name"]]["gamma_norm"] > 0
    if wit != it:
        st.caption(f"Weights are saved every few iterations: showing iteration {wit:,}, the "
                   f"nearest saved one before {it:,}; selection as at {it:,}.")
    st.plotly_chart(plots.filters_image(w, inside, wit), width="stretch",
                    key="filters")


def export_view(info: runs.RunInfo, data: dict, it: int) -> None:
    """Export the subnetwork at the selected iteration; files stay under the run's exports/."""
    wits = data["weight_iterations"].tolist()
    if it not in wits:
        near = nearest(data["weight_iterations"], it)
        st.warning(f"Iteration {it:,} has no saved weights, so it cannot be exported. Nearest "
                   f"iterations with weights: {', '.join(f'{n:,}' for n in near) or 'none yet'}.")
        for n in near:
            if st.button(f"Go to iteration {n:,}", key=f"goto{n}"):
                st.session_state.pending_iteration = n
                st.rerun()
        return
    c1, c2 = st.columns(2)
    mode = c1.radio("Mode", ["compact", "masked"], horizontal=True,
                    help="compact: filters outside the support physically removed (smaller); "
                         "masked: same shape, W * 1[Γ ≠ 0]")
    fmt = c2.radio("Format", ["torchscript", "state_dict", "onnx"], horizontal=True,
                   help="torchscript loads with torch.jit.load alone; state_dict comes with a "
                        "JSON architecture; onnx for other runtimes")
    from pathviz.export import ExportError, default_out, export  # torch: only when exporting

    out = default_out(info.paths.dir, it, mode, fmt)
    report_file = out.with_name(out.name + ".json")
    if st.button("Export", type="primary", key="do_export"):
        with st.spinner(f"exporting iteration {it:,} ({mode}, {fmt})..."):
            try:
                export(info.paths.dir, it, mode, fmt, out, overwrite=True)
            except ExportError as e:
                st.error(str(e))
                return
            except Exception as e:  # keep the app alive; the message names what failed
                st.error(f"Export failed: {type(e).__name__}: {e}")
                return
    if out.exists() and report_file.exists():
        import json

        report = json.loads(report_file.read_text())
        m1, m2, m3 = st.columns(3)
        m1.metric("parameters", f"{report['params_after']:,}",
                  f"{report['params_after'] - report['params_before']:,}")
        m2.metric("MACs", f"{report['macs_after']:,}",
                  f"{report['macs_after'] - report['macs_before']:,}")
        if report.get("test_acc") is not None:
            m3.metric("test accuracy", f"{100 * report['test_acc']:.2f}%")
        st.caption(f"compact vs masked outputs: max |diff| = "
                   f"{report['max_abs_diff_compact_vs_masked']:.1e} · kept in {out}")
        for w in report.get("warnings", []):
            st.warning(w)
        st.dataframe(report["layers"], hide_index=True, width="stretch")
        st.download_button(f"Download {out.name}", data=out.read_bytes(), file_name=out.name)


def compare_view(info: runs.RunInfo) -> None:
    others = [r.name for r in runs.list_runs(ROOT)]
    chosen = st.multiselect("Runs to compare (e.g. two values of ν)", others,
                            default=[info.name], key="compare")
    series = {}
    for name in chosen:
        p = runs.run_paths(name, ROOT).path
        try:
            with PathReader(p) as r:
                nu = r.config.get("nu")
                series[f"{name} (ν={nu}, λ={r.config.get('lam')})"] = (
                    r.iterations, 1 - r.metric("sparsity"))
        except (PathFileError, KeyError) as e:
            st.warning(f"{name}: {e}")
    if series:
        st.plotly_chart(plots.compare_plot(series), width="stretch", key="compare_plot")


def about_view() -> None:
    st.markdown("### How SLBI grows a sparse network")
    st.markdown("Each weight tensor $W$ is coupled with a sparse copy $\\Gamma$. One iteration:")
    st.latex(r"W \leftarrow W - \alpha\kappa\, m - \frac{\alpha\kappa}{\nu}(W - \Gamma)"
             r"\qquad(m:\text{ momentum of the loss gradient})")
    st.latex(r"V \leftarrow V + \frac{\alpha}{\nu}(W_{old} - \Gamma)")
    st.latex(r"\Gamma \leftarrow \kappa\,\mathrm{prox}_{\lambda}(V),\qquad "
             r"\mathrm{prox}_\lambda(V)_g = V_g \max\left(0, 1 - \frac{\lambda}{\lVert V_g"
             r"\rVert}\right)")
    st.markdown(
        "- $V$ accumulates how much $W$ pulls away from $\\Gamma$. A filter $g$ **enters the "
        "support** once $\\lVert V_g\\rVert$ passes $\\lambda$; before that its $\\Gamma_g$ is "
        "exactly zero. Strong filters enter early, weak ones late or never: the path runs from "
        "simple to complex models (an *inverse scale space*).\n"
        "- **lr (α)** is the step size: larger moves faster along the path.\n"
        "- **κ (kappa)** scales Γ and the W step; larger κ makes Γ follow V more closely.\n"
        "- **ν (nu)** is the coupling: small ν ties W tightly to Γ (W is pulled towards the "
        "sparse model, filters enter sooner); large ν lets W train freely and Γ grow slowly.\n"
        "- **λ (lambda)** is the entry threshold: larger λ means fewer filters, entering later.\n"
        "- Early stopping picks a point on the path: a sparse $\\Gamma$ whose support is a "
        "subnetwork you can export and retrain.")


def main() -> None:
    all_runs = runs.list_runs(ROOT)
    st.sidebar.title("pathviz")
    choice = run_picker_ui(all_runs)
    refresh = refresh_ui()
    new_run_ui([r.name for r in all_runs])
    if choice is None:
        empty_ui()
        return
    info = next(r for r in all_runs if r.name == choice)
    run_header_ui(info)
    live = info.state in ("running", "starting")
    playing = bool(st.session_state.get("playing"))
    every = 0.4 if playing else (refresh if live and refresh > 0 else None)

    def tick() -> None:
        current = next((r for r in runs.list_runs(ROOT) if r.name == choice), info)
        views_ui(current)
        if current.state != info.state or st.session_state.pop("play_ended", False):
            st.rerun(scope="app")  # the refresh cadence changes: redraw the whole page once

    st.fragment(tick, run_every=every)()


main()
