"""The Tickets view: retrain the support at an iteration with its controls, and compare them.

Does the early-stopped support hold a *winning ticket*? Retrained from the path's own weights
(rewind, finetune), it should do better than the same-sized controls (a fresh initialisation, a
random support, a uniformly narrowed network); otherwise the structure, not the ticket, carries
the accuracy. This view launches ``python -m pathviz.retrain`` in the background, follows it, and
draws every variant's test accuracy (mean ± std over seeds) against the parameters it keeps,
beside the full SLBI W, the compact W* without retraining and an SGD baseline run.

Torch-free: it reads ``pathviz.tickets`` and ``pathviz.store`` only.
"""

from __future__ import annotations

import pathlib
import warnings
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from pathviz import tickets
from pathviz.store import PathFileError, PathReader
from pathviz.ui.text import clean, clean_rows, inert, inert_plotly

REFRESH_SECONDS = 2.0  # while a retrain runs, the progress part redraws itself this often

COLORS = {"rewind": "#1f77b4", "rewind:K": "#17becf", "finetune": "#2ca02c",
          "reinit": "#d62728", "random-support": "#ff7f0e", "uniform": "#9467bd"}
REF_STYLE = {"SLBI W": ("star", "#000000"), "SLBI W*": ("diamond", "#7f7f7f"),
             "SGD baseline": ("square", "#8c564b")}

__all__ = ["tickets_ui", "accuracy_figure", "curves_figure"]


def _family(init: str) -> str:
    return "rewind:K" if init.startswith("rewind:") else init


def _pct(x: float | None) -> float | None:
    return None if x is None else 100.0 * x


def accuracy_figure(rows: list[dict[str, Any]], refs: list[dict[str, Any]]) -> go.Figure:
    """Test accuracy (mean, error bars = std over seeds) against parameters kept, one trace per
    init mode, and the references (full SLBI W at the end of the run, W* at each retrained
    support, the SGD baseline) as large markers.

    The variants of one support share a parameter count, so each mode is drawn a little to the
    side (a fixed 1.5% step on the log axis); the hover and ``customdata[4]`` give the true
    count.
    """
    fig = go.Figure()
    for k, fam in enumerate(COLORS):
        rs = [r for r in rows if _family(r["init"]) == fam and r["test_acc"]["mean"] is not None]
        if not rs:
            continue
        dodge = 1.0 + 0.015 * (k - (len(COLORS) - 1) / 2)
        fig.add_trace(go.Scatter(
            x=[r["params"] * dodge for r in rs], y=[_pct(r["test_acc"]["mean"]) for r in rs],
            error_y={"type": "data", "array": [_pct(r["test_acc"]["std"]) or 0.0 for r in rs],
                     "visible": True},
            mode="markers", name=fam, marker={"size": 10, "color": COLORS[fam]},
            customdata=[[inert_plotly(r["name"]), r["seeds"], _pct(r["test_acc"]["se"]) or 0.0,
                         r["iteration"], r["params"]] for r in rs],
            hovertemplate="%{customdata[0]}<br>%{customdata[4]:,} params<br>%{y:.2f}% "
                          "(SE %{customdata[2]:.2f}, %{customdata[1]} seeds)<extra></extra>"))
    for ref in refs:
        if ref["params"] is None or ref["test_acc"]["mean"] is None or \
                ref["label"].startswith("SLBI W at"):  # same x as the end of run: table only
            continue
        key = next((k for k in ("SLBI W*", "SLBI W", "SGD baseline")
                    if ref["label"].startswith(k)), "SLBI W")
        symbol, color = REF_STYLE[key]
        std = ref["test_acc"]["std"]
        fig.add_trace(go.Scatter(
            x=[ref["params"]], y=[_pct(ref["test_acc"]["mean"])], mode="markers",
            name=inert_plotly(ref["label"]), marker={"size": 13, "symbol": symbol, "color": color},
            error_y={"type": "data", "array": [_pct(std) or 0.0], "visible": std is not None},
            hovertemplate=f"{inert_plotly(ref['label'])}<br>%{{x:,}} params<br>%{{y:.2f}}%"
                          "<extra></extra>"))
    fig.update_layout(xaxis={"title": "parameters of the trained network (log)", "type": "log"},
                      yaxis_title="test accuracy (%)", height=420,
                      margin={"l": 10, "r": 10, "t": 30, "b": 10})
    return fig


def curves_figure(curves: list[dict[str, Any]]) -> go.Figure:
    """Test accuracy per epoch, one line per variant: the mean over its seeds, the spread over
    seeds as error bars (seeds still running count for the epochs they have)."""
    fig = go.Figure()
    by_name: dict[str, list[dict[str, Any]]] = {}
    for c in curves:
        by_name.setdefault(c["name"], []).append(c)
    for name, cs in by_name.items():
        n = max(len(c["epoch"]) for c in cs)
        acc = np.full((len(cs), n), np.nan)
        for i, c in enumerate(cs):
            acc[i, : len(c["test_acc"])] = c["test_acc"]
        counts = np.isfinite(acc).sum(0)
        with warnings.catch_warnings():  # epochs no seed has reached yet are NaN, not errors
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(acc, 0)
            std = np.where(counts > 1, np.nanstd(acc, 0, ddof=1), 0.0)
        fam = _family(cs[0]["init"])
        fig.add_trace(go.Scatter(
            x=list(range(n)), y=(100 * mean).tolist(), mode="lines+markers",
            name=inert_plotly(name),
            line={"color": COLORS.get(fam)}, marker={"size": 4},
            error_y={"type": "data", "array": (100 * std).tolist(), "visible": True,
                     "thickness": 1}))
    fig.update_layout(xaxis_title="epoch of retraining", yaxis_title="test accuracy (%)",
                      height=380, margin={"l": 10, "r": 10, "t": 30, "b": 10})
    return fig


def _run_info(run_dir: pathlib.Path) -> tuple[dict[str, Any], list[int], bool]:
    """(config, saved weight iterations, has Gamma layers) of the run; ({}, [], False) if the
    path file cannot be read."""
    try:
        with PathReader(run_dir / "path.h5") as r:
            return r.config, [int(i) for i in r.weight_iterations], bool(r.layers)
    except (PathFileError, OSError):
        return {}, [], False


def _parse_seeds(text: str) -> list[int] | None:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        return None
    return seeds if seeds and min(seeds) >= 0 and len(set(seeds)) == len(seeds) else None


DEFAULT_MODES = ("rewind", "reinit")  # the ticket and its plainest control
DEFAULT_EPOCHS = 10  # a first retrain takes minutes, not the run's own length


def seconds_per_epoch(run_dir: pathlib.Path, cfg: dict[str, Any]) -> float | None:
    """Wall seconds per training epoch of the run itself (its status: elapsed / epoch), the
    yardstick for a retrain's time; None when the run does not say."""
    from pathviz import runs

    status = runs.read_status(runs.paths_for_dir(run_dir))
    try:
        elapsed, epoch = float(status.get("elapsed") or 0), float(status.get("epoch") or 0)
    except (TypeError, ValueError):
        return None
    return elapsed / epoch if elapsed > 0 and epoch > 0 else None


def job_summary(variants: int, seeds: int, epochs: int, per_epoch: float | None) -> str:
    """One sentence: the job's size (variants x seeds x epochs) and its estimated time."""
    n = variants * seeds * epochs
    size = (f"{variants} variant{'s' * (variants != 1)} × {seeds} seed{'s' * (seeds != 1)} × "
            f"{epochs} epoch{'s' * (epochs != 1)} = {n:,} training epochs")
    if per_epoch is None:
        return size + " (no time estimate: this run's status does not record its speed)."
    secs = n * per_epoch
    took = (f"{secs / 3600:.1f} h" if secs >= 3600 else f"{secs / 60:.0f} min" if secs >= 90
            else f"{secs:.0f} s")
    return (size + f", about {took} at this run's own speed ({per_epoch:.1f} s per epoch of "
            f"the full network; a smaller subnetwork trains faster).")


def _launch_ui(run_dir: pathlib.Path, run_name: str, iteration: int, cfg: dict[str, Any],
               saved: list[int]) -> None:
    """The "retrain this ticket" panel: plain widgets and one button, so no key press starts a
    job (Enter in a form would submit it) and the size shown is the size of the values typed."""
    key = f"tickets_{run_name}_"
    st.markdown(f"**Retrain the support at iteration {iteration:,}** (in the background)")
    c1, c2 = st.columns(2)
    modes = c1.multiselect("Variants", list(tickets.MODES), default=list(DEFAULT_MODES),
                           key=key + "modes",
                           help="rewind: iteration-0 weights on the support; rewind:K: the "
                                "weights at K; finetune: W* at N; reinit, random-support "
                                "and uniform are the controls")
    ks = [k for k in saved if 0 < k <= iteration] or [0]
    k = c2.selectbox("K for rewind:K (late rewinding)", ks, index=0, key=key + "k")
    c3, c4, c5 = st.columns(3)
    seeds_text = c3.text_input("Seeds", "0", key=key + "seeds",
                               help="distinct whole numbers separated by commas, e.g. 0,1,2")
    epochs = c4.number_input("Epochs", min_value=1, max_value=10_000,
                             value=min(DEFAULT_EPOCHS, int(cfg.get("epochs", DEFAULT_EPOCHS))),
                             key=key + "epochs")
    budget = c5.radio("Budget", tickets.BUDGETS, horizontal=True, key=key + "budget",
                      help="flops: every variant trains as many FLOPs as the full model in "
                           "that many epochs (Scratch-B)")
    c6, c7 = st.columns(2)
    lr = c6.number_input("Learning rate", min_value=1e-6, max_value=10.0,
                         value=float(cfg.get("lr", 0.05)), format="%.4f", key=key + "lr")
    data_root = ""
    if cfg.get("dataset", "digits") != "digits":
        data_root = c7.text_input("Data root", "", key=key + "data_root",
                                  help=inert(f"the folder that holds the {cfg.get('dataset')} "
                                             f"files on this machine"))
    seeds = _parse_seeds(seeds_text)
    if seeds is None:
        st.error("Seeds: give distinct whole numbers separated by commas, e.g. 0,1,2.")
    elif not modes:
        st.error("Choose at least one variant.")
    else:
        st.caption("This job: " + job_summary(len(modes), len(seeds), int(epochs),
                                              seconds_per_epoch(run_dir, cfg)))
    go_ = st.button("Retrain in background", type="primary", key=key + "go",
                    disabled=seeds is None or not modes)
    if not go_ or seeds is None or not modes:
        return
    chosen = [f"rewind:{k}" if m == "rewind:K" else m for m in modes]
    try:
        pid = tickets.start_retrain(run_dir, iteration, chosen, epochs=int(epochs), seeds=seeds,
                                    budget=budget, lr=float(lr), data_root=data_root or None)
    except (tickets.TicketError, OSError) as e:
        st.error(inert(e))
        return
    st.success(f"Retraining {len(chosen)} variant(s) × {len(seeds)} seed(s) × {int(epochs)} "
               f"epoch(s) in process {pid}.")


def _progress_ui(run_dir: pathlib.Path, run_name: str) -> bool:
    """Progress of the background retrain and of every unfinished ticket; True if one runs."""
    launch = tickets.launch_state(run_dir)
    running = bool(launch.get("alive"))
    states = [(t, tickets.ticket_state(t)) for t in tickets.list_tickets(run_dir)]
    active = [(t, s) for t, s in states if s["state"] in ("running", "starting")]
    if running:
        c1, c2 = st.columns([5, 1])
        c1.info(inert(f"Retraining in the background (process {launch['pid']})."))
        if c2.button("Stop", key=f"tickets_stop_{run_name}"):
            tickets.stop_retrain(run_dir)
            st.rerun()
    for t, s in active:
        frac = min(1.0, s["done"] / s["total"]) if s["total"] else 0.0
        epoch = "" if s["epoch"] is None else f", epoch {s['epoch'] + 1}/{s['epochs']}"
        st.progress(frac, text=inert(f"{t.name}: seed {s['seed']}{epoch}"))
    for t, s in states:
        if s["state"] in ("stopped", "failed"):
            st.caption(inert(f"{t.name}: {s['state']} ({s['reason']}).")
                       + " Launch it again to resume.")
    if launch and not running and "error" in launch.get("log_tail", ""):
        with st.expander("The last retrain reported an error"):
            st.code(launch["log_tail"][-1500:])
    return running or bool(active)


def _flat(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        t = r["test_acc"]
        out.append({"variant": r["name"], "init": r["init"], "iteration": r["iteration"],
                    "seeds": r["seeds"], "params": r["params"],
                    "params kept %": None if r["params_kept"] is None
                    else round(100 * r["params_kept"], 1),
                    "FLOPs kept %": None if r["flops_kept"] is None
                    else round(100 * r["flops_kept"], 1),
                    "epochs": r["epochs_run"],
                    "test acc %": None if t["mean"] is None else round(100 * t["mean"], 2),
                    "± std": None if t["std"] is None else round(100 * t["std"], 2),
                    "± SE": None if t["se"] is None else round(100 * t["se"], 2),
                    "collapsed": r.get("collapsed", 0)})
    return out


def tickets_ui(run_dir: pathlib.Path, run_name: str, iteration: int | None) -> None:
    """Draw the Tickets view of run ``run_name`` (folder ``run_dir``) at ``iteration``."""
    run_dir = pathlib.Path(run_dir)
    cfg, saved, has_gamma = _run_info(run_dir)
    if not cfg:
        st.info("This run has no readable path file yet.")
        return
    if not has_gamma or cfg.get("optimizer") == "sgd":
        st.info("This run was trained with plain SGD: it has no support to retrain. Open the SLBI "
                "run on the same data; its Tickets view shows this run as the SGD baseline.")
        return
    st.caption("Is the support a winning ticket? Retrain it from the path's own weights "
               "(rewind, finetune) and compare it with controls of the same size: a fresh "
               "initialisation, a random support, a uniformly narrowed network.")
    if iteration is None:
        st.info("Pick an iteration to retrain its support.")
    elif iteration not in saved:
        near = sorted(saved, key=lambda s: abs(s - iteration))[:3]
        st.info(f"Iteration {iteration:,} has no saved weights, so its support cannot be "
                f"retrained; iterations with weights nearby: "
                f"{', '.join(f'{n:,}' for n in sorted(near)) or 'none'}.")
    else:
        _launch_ui(run_dir, run_name, iteration, cfg, saved)

    running = tickets.launch_state(run_dir).get("alive", False) or any(
        tickets.ticket_state(t)["state"] in ("running", "starting")
        for t in tickets.list_tickets(run_dir))

    @st.fragment(run_every=REFRESH_SECONDS if running else None)
    def live() -> None:
        still = _progress_ui(run_dir, run_name)
        if running and not still:
            st.rerun(scope="app")  # finished: redraw the results below

    live()
    rows = tickets.summary(run_dir)
    if not rows:
        st.info("No retrained tickets yet.")
        return
    _results_ui(run_dir, run_name, rows, iteration)


def _results_ui(run_dir: pathlib.Path, run_name: str, rows: list[dict[str, Any]],
                iteration: int | None) -> None:
    candidates = tickets.sgd_baselines(run_dir)
    chosen = st.multiselect("SGD baseline runs", [c.name for c in candidates],
                            default=[c.name for c in candidates], format_func=clean,
                            key=f"tickets_baseline_{run_name}",
                            help="sibling runs trained with --optimizer sgd on the same dataset "
                                 "and model; their final test accuracies are averaged")
    refs = tickets.references(run_dir, sorted({r["iteration"] for r in rows}),
                              baselines=[run_dir.parent / c for c in chosen])
    st.plotly_chart(accuracy_figure(rows, refs), key=f"tickets_acc_{run_name}")
    supports = sorted({r["iteration"] for r in rows})
    at = st.selectbox("Support", supports,
                      index=supports.index(iteration) if iteration in supports else
                      len(supports) - 1, format_func=lambda i: f"iteration {i:,}",
                      key=f"tickets_support_{run_name}",
                      help="the retrained support whose verdicts and curves are shown below")
    for r in rows:
        if r["iteration"] == at and r["kind"] == "ticket" and r.get("verdict"):
            st.markdown(f"**{inert(r['init'])}** " + inert(f"({r['seeds']} seeds) {r['verdict']}."))
    names = {r["name"] for r in rows if r["iteration"] == at}
    st.plotly_chart(curves_figure([c for c in tickets.curves(run_dir) if c["name"] in names]),
                    key=f"tickets_curves_{run_name}")
    st.dataframe(clean_rows(_flat(rows) + [{"variant": ref["label"], "params": ref["params"],
                                            "seeds": ref["test_acc"]["n"],
                                            "test acc %": _pct(ref["test_acc"]["mean"]),
                                            "± std": _pct(ref["test_acc"]["std"])}
                                           for ref in refs]),
                 hide_index=True)
    st.download_button("Download CSV", tickets.rows_to_csv(rows),
                       file_name=f"{run_name}-tickets.csv", mime="text/csv",
                       key=f"tickets_csv_{run_name}")
