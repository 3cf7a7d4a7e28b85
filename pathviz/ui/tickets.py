"""The Tickets view: retrain the support at an iteration with its controls, and compare them.

Does the early-stopped support hold a *winning ticket*? Retrained from the path's own weights
(rewind, finetune), it should do better than the same-sized controls (a fresh initialisation, a
random support, a uniformly narrowed network); otherwise the structure, not the ticket, carries
the accuracy. And does the path find better structure than standard pruning? The pruning
baselines of ``python -m pathviz.baselines`` (magnitude, slimming, taylor, global-magnitude at
the path's widths, one-shot and finetuned) are drawn along the path's compact W*.

This view launches ``python -m pathviz.retrain`` in the background, follows it, and draws one
accuracy-against-size chart (parameters or FLOPs, :func:`pathviz.plots.size_accuracy`): the
path, the baselines, every retrained variant (mean ± SE over seeds), the full SGD and SLBI
networks, with the selected iteration and the suggested stop marked.

Torch-free: it reads the torch-free parts of ``pathviz.tickets`` and ``pathviz.store`` only.
"""

from __future__ import annotations

import pathlib
import warnings
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from pathviz import plots, readonly, runs, tickets
from pathviz.analysis import stop_of
from pathviz.store import PathFileError, PathReader
from pathviz.tickets.points import chart_points, points_csv
from pathviz.ui.text import clean, clean_rows, inert, inert_plotly

REFRESH_SECONDS = 2.0  # while a retrain runs, the progress part redraws itself this often

__all__ = ["tickets_ui", "curves_figure"]


def _family(init: str) -> str:
    return "rewind:K" if init.startswith("rewind:") else init


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
            line={"color": plots.METHOD_STYLE.get(fam, ("#7f7f7f",))[0]}, marker={"size": 4},
            error_y={"type": "data", "array": (100 * std).tolist(), "visible": True,
                     "thickness": 1}))
    fig.update_layout(xaxis_title="epoch of retraining", yaxis_title="test accuracy (%)",
                      height=380, margin={"l": 10, "r": 10, "t": 30, "b": 10})
    return fig


def _run_info(paths: runs.RunPaths) -> tuple[dict[str, Any], list[int], bool]:
    """(config, saved weight iterations, has Gamma layers) of the run; ({}, [], False) if the
    path file cannot be read."""
    try:
        with PathReader(paths.path) as r:
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


def seconds_per_epoch(paths: runs.RunPaths, cfg: dict[str, Any]) -> float | None:
    """Wall seconds per training epoch of the run itself (its status: elapsed / epoch), the
    yardstick for a retrain's time; None when the run does not say."""
    status = runs.read_status(paths)
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


def _has_batchnorm(paths: runs.RunPaths) -> bool:
    """True when the run's saved tensors include BatchNorm statistics (``slimming`` needs them);
    read from the path file's weight list, so no torch."""
    try:
        with PathReader(paths.path) as r:
            return any(w["name"].endswith("running_var") for w in r.weight_specs)
    except (PathFileError, OSError):
        return False


def _launch_ui(paths: runs.RunPaths, run_name: str, iteration: int, cfg: dict[str, Any],
               saved: list[int]) -> None:
    """The "retrain this ticket" panel: plain widgets and one button, so no key press starts a
    job (Enter in a form would submit it) and the size shown is the size of the values typed."""
    key = f"tickets_{run_name}_"
    st.markdown(f"**Retrain the support at iteration {iteration:,}** (in the background)")
    c1, c2 = st.columns(2)
    options = [m for m in tickets.MODES if m != "slimming" or _has_batchnorm(paths)]
    modes = c1.multiselect("Variants", options, default=list(DEFAULT_MODES),
                           key=key + "modes",
                           help="rewind: iteration-0 weights on the support; rewind:K: the "
                                "weights at K; finetune: W* at N; reinit, random-support "
                                "and uniform are the controls; magnitude, slimming (offered for "
                                "BatchNorm models only), taylor and global-magnitude are "
                                "pruning baselines cut from the SGD sibling run and finetuned")
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
    reference = "sgd"
    if any(tickets.parse_mode(m)[0] in tickets.BASELINE_MODES for m in modes if m != "rewind:K"):
        has_sgd = bool(tickets.sgd_baselines(paths))
        choice = st.radio(
            "Pruning baselines are cut from", ["the SGD sibling run", "this run's W at N"],
            index=0 if has_sgd else 1, horizontal=True, key=key + "reference",
            help="the dense network each pruning method scores and cuts (pathviz.retrain "
                 "--reference sgd|self); the SGD sibling is a run next to this one trained "
                 "with --optimizer sgd")
        reference = "sgd" if choice.startswith("the SGD") else "self"
        if reference == "sgd" and not has_sgd:
            st.error("This run has no SGD sibling (a run next to it trained with --optimizer "
                     "sgd): train one, or cut the baselines from this run's W at N.")
    seeds = _parse_seeds(seeds_text)
    if seeds is None:
        st.error("Seeds: give distinct whole numbers separated by commas, e.g. 0,1,2.")
    elif not modes:
        st.error("Choose at least one variant.")
    else:
        st.caption("This job: " + job_summary(len(modes), len(seeds), int(epochs),
                                              seconds_per_epoch(paths, cfg)))
    go_ = st.button("Retrain in background", type="primary", key=key + "go",
                    disabled=seeds is None or not modes)
    if not go_ or seeds is None or not modes:
        return
    chosen = [f"rewind:{k}" if m == "rewind:K" else m for m in modes]
    try:
        pid = tickets.start_retrain(paths, iteration, chosen, epochs=int(epochs), seeds=seeds,
                                    budget=budget, lr=float(lr), data_root=data_root or None,
                                    reference=reference)
    except (tickets.TicketError, OSError) as e:
        st.error(inert(e))
        return
    st.success(f"Retraining {len(chosen)} variant(s) × {len(seeds)} seed(s) × {int(epochs)} "
               f"epoch(s) in process {pid}.")


def _progress_ui(paths: runs.RunPaths, run_name: str) -> bool:
    """Progress of the background retrain and of every unfinished ticket; True if one runs."""
    launch = tickets.launch_state(paths)
    running = bool(launch.get("alive"))
    states = [(t, tickets.ticket_state(t)) for t in tickets.list_tickets(paths)]
    active = [(t, s) for t, s in states if s["state"] in ("running", "starting")]
    if running:
        c1, c2 = st.columns([5, 1])
        c1.info(inert(f"Retraining in the background (process {launch['pid']})."))
        if not readonly.active() and c2.button("Stop", key=f"tickets_stop_{run_name}"):
            try:
                tickets.stop_retrain(paths)
            except tickets.TicketError as e:
                st.error(inert(e))
                return running
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


def _num(v: Any) -> str:
    """A count with thousands separators; blank when unknown."""
    return "" if v is None else f"{int(v):,}"


def _pc(v: float | None) -> str:
    """A fraction as a percentage with two decimals (one precision for the whole table)."""
    return "" if v is None else f"{100 * v:.2f}"


def _flat(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Table rows as text: counts with separators, percentages with two decimals, blanks where
    a figure is undefined (never "None"); epochs, budget and reference tell variants apart."""
    out = []
    for r in rows:
        t = r["test_acc"]
        out.append({"variant": r["name"], "init": r["init"], "kind": r["kind"],
                    "support at": _num(r["iteration"]), "epochs": _num(r["epochs_run"]),
                    "budget": r["budget"], "reference": r.get("reference") or "",
                    "seeds": _num(r["seeds"]), "params": _num(r["params"]),
                    "params kept %": _pc(r["params_kept"]), "FLOPs": _num(r["flops"]),
                    "FLOPs kept %": _pc(r["flops_kept"]), "test acc %": _pc(t["mean"]),
                    "± std": _pc(t["std"]), "± SE": _pc(t["se"]),
                    "collapsed": _num(r.get("collapsed", 0))})
    return out


def _ref_rows(refs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"variant": ref["label"], "kind": "reference",
             "support at": _num(ref["iteration"]), "seeds": _num(ref["test_acc"]["n"]),
             "params": _num(ref["params"]), "FLOPs": _num(ref["flops"]),
             "test acc %": _pc(ref["test_acc"]["mean"]), "± std": _pc(ref["test_acc"]["std"]),
             "± SE": _pc(ref["test_acc"]["se"])} for ref in refs]


def tickets_ui(paths: runs.RunPaths, run_name: str, iteration: int | None) -> None:
    """Draw the Tickets view of run ``run_name`` (its folder's ``paths``) at ``iteration``."""
    cfg, saved, has_gamma = _run_info(paths)
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
    elif readonly.active():  # no launch form: tickets.start_retrain refuses anyway
        st.caption("This page is read-only, so it cannot retrain; the results below are what "
                   "has been retrained on the server.")
    else:
        _launch_ui(paths, run_name, iteration, cfg, saved)

    running = tickets.launch_state(paths).get("alive", False) or any(
        tickets.ticket_state(t)["state"] in ("running", "starting")
        for t in tickets.list_tickets(paths))

    @st.fragment(run_every=REFRESH_SECONDS if running else None)
    def live() -> None:
        still = _progress_ui(paths, run_name)
        if running and not still:
            st.rerun(scope="app")  # finished: redraw the results below

    live()
    rows = tickets.summary(paths)
    has_baselines = paths.baselines.exists()
    if not rows and not has_baselines:
        st.info("No retrained tickets or pruning baselines yet. Retrain above, or run "
                "python -m pathviz.baselines on this run for the baselines along the path.")
        return
    _results_ui(paths, run_name, rows, iteration)


def _stop_iteration(paths: runs.RunPaths) -> int | None:
    """The run's suggested stop (as inspect and the other views show it), or None."""
    try:
        with PathReader(paths.path) as r:
            stop = stop_of(r).stop
    except (PathFileError, OSError):
        return None
    return None if stop is None else int(stop.iteration)


def _size_chart_ui(paths: runs.RunPaths, run_name: str, baselines: list[pathlib.Path],
                   iteration: int | None) -> None:
    """The accuracy-against-size chart: the path, the pruning baselines, the retrained
    networks and the full ones, against parameters or FLOPs; its points as CSV."""
    points, problem = chart_points(paths, baselines=baselines)
    if problem:
        st.warning(inert(problem))
    st.markdown("**Accuracy against size**: does the path find better structure than "
                "standard pruning at the same size?")
    axis = st.radio("Size", ("parameters", "FLOPs"), horizontal=True,
                    key=f"tickets_axis_{run_name}",
                    help="FLOPs are multiply-accumulates of one forward pass of one input")
    x = "params" if axis == "parameters" else "flops"
    zoom = st.checkbox("Zoom on the top (accuracy axis from 90%)", key=f"tickets_zoom_{run_name}",
                       help="the retrained networks usually sit within a few points of each "
                            "other; the whole path spans chance to the best")
    fig = plots.size_accuracy(points, x=x, selected=iteration, stop=_stop_iteration(paths),
                              y_floor=90.0 if zoom else None)
    st.plotly_chart(fig, key=f"tickets_acc_{run_name}")
    if not any(p["kind"] in ("oneshot", "finetuned") for p in points):
        st.caption("No pruning baselines along the path yet: python -m pathviz.baselines "
                   "RUN_DIR computes magnitude, taylor, global-magnitude (and slimming on "
                   "BatchNorm models) at every saved iteration, in minutes on the demo.")
    st.download_button("Download chart CSV", points_csv(points),
                       file_name=f"{run_name}-size-accuracy.csv", mime="text/csv",
                       key=f"tickets_points_csv_{run_name}")


def _results_ui(paths: runs.RunPaths, run_name: str, rows: list[dict[str, Any]],
                iteration: int | None) -> None:
    candidates = tickets.sgd_baselines(paths)
    chosen = st.multiselect("SGD baseline runs", [c.name for c in candidates],
                            default=[c.name for c in candidates], format_func=clean,
                            key=f"tickets_baseline_{run_name}",
                            help="sibling runs trained with --optimizer sgd on the same dataset "
                                 "and model; their final test accuracies are averaged")
    base_dirs = [paths.dir.parent / c for c in chosen]
    _size_chart_ui(paths, run_name, base_dirs, iteration)
    if not rows:
        return
    refs = tickets.references(paths, sorted({r["iteration"] for r in rows}),
                              baselines=base_dirs)
    supports = sorted({r["iteration"] for r in rows})
    at = st.selectbox("Support", supports,
                      index=supports.index(iteration) if iteration in supports else
                      len(supports) - 1, format_func=lambda i: f"iteration {i:,}",
                      key=f"tickets_support_{run_name}",
                      help="the retrained support whose verdicts and curves are shown below")
    for r in rows:
        if r["iteration"] == at and r["kind"] in ("ticket", "baseline") and r.get("verdict"):
            n, ep = r["seeds"], r["epochs_run"]
            budget = "" if r["budget"] == "epochs" else f", {r['budget']} budget"
            st.markdown(f"**{inert(r['name'])}** " + inert(
                f"({n} seed{'s' * (n != 1)}, {ep} epoch{'s' * (ep != 1)}{budget}) "
                f"{r['verdict']}."))
    names = {r["name"] for r in rows if r["iteration"] == at}
    st.plotly_chart(curves_figure([c for c in tickets.curves(paths) if c["name"] in names]),
                    key=f"tickets_curves_{run_name}")
    st.dataframe(clean_rows(_flat(rows) + _ref_rows(refs)), hide_index=True)
    st.download_button("Download CSV", tickets.rows_to_csv(rows),
                       file_name=f"{run_name}-tickets.csv", mime="text/csv",
                       key=f"tickets_csv_{run_name}")
