"""The sidebar: run picker (kept in ``?run=``), the run list, live refresh and the new-run form."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import streamlit as st

from pathviz import readonly, runs
from pathviz.config import PRESETS, ConfigError, RunConfig, config_to_argv
from pathviz.data import DATASET_NAMES, DataError, check_dataset
from pathviz.ui import url
from pathviz.ui.header import start_run
from pathviz.ui.text import clean, clean_rows, inert
from pathviz.ui.urlstate import quote

MODEL_CHOICES = ["lenet5", "cifar_resnet_20", "cifar_resnet_32", "cifar_resnet_56",
                 "cifar_vgg_11", "cifar_vgg_16", "tv_resnet18"]
FORM_FIELDS = [  # (config field, label, kind, rule): rule = (lowest allowed, allowed itself)
    ("model", "Model", "model", None), ("dataset", "Dataset", "dataset", None),
    ("data_root", "Data root (folder with the dataset files)", "text", None),
    ("epochs", "Epochs", "int", (1, True)), ("batch_size", "Batch size", "int", (1, True)),
    ("lr", "Learning rate α (lr)", "float", (0, False)),
    ("kappa", "κ (kappa)", "float", (0, False)), ("nu", "ν (nu)", "float", (0, False)),
    ("lam", "λ (lambda)", "float", (0, True)),
    ("snapshot_every", "Snapshot every (iterations)", "int", (1, True)),
    ("weights_every", "Weights every (iterations)", "int", (1, True)),
    ("eval_every", "Evaluate every (iterations)", "int", (1, True)),
]


def run_picker_ui(all_runs: list[runs.RunInfo], root: Path) -> str | None:
    """The run list; the choice lives in the URL (``?run=NAME``). Returns the chosen run, or
    None when there are no runs or the URL names a run that is not here: then the picker opens
    with nothing chosen and one sentence says so, rather than silently showing another run
    (which might be anyone's) under the link's name."""
    names = [r.name for r in all_runs]
    wanted = url.get("run")
    ss = st.session_state
    if url.navigated():  # Back/Forward: a fresh picker that starts at the URL's run
        ss.picker_nav = ss.get("picker_nav", 0) + 1
    key = f"picker:{wanted}:{ss.get('picker_nav', 0)}"
    unknown = False
    if wanted is not None and ss.get(key) in names:
        pass  # a run was just chosen in the picker that opened under the note: the URL follows
    elif wanted is not None:
        try:
            runs.validate_name(wanted)
        except runs.RunError:
            st.warning(f"The link names a run {quote(wanted)} that cannot exist (run names are "
                       f"letters, digits, '.', '\\_' and '-'); choose a run in the sidebar's "
                       f"*Run* list.", icon=":material/link:")
            unknown = True
        else:
            if wanted not in names:
                st.warning(f"There is no run called {quote(wanted)} in "
                           f"{inert(str(root))}; choose a run in the sidebar's *Run* list.",
                           icon=":material/link:")
                unknown = True
    if not names:
        return None
    index = None if unknown else names.index(wanted) if wanted in names else 0
    choice = st.sidebar.selectbox("Run", names, index=index, key=key, format_func=clean,
                                  placeholder="Choose a run")
    if choice is None:
        return None  # the link's run is not here: nothing is shown until one is chosen
    if url.get("run") != choice:
        # a different run: its own iteration, layer and comparison
        for k in ("iteration", "layer", "compare", "play"):
            url.want(k, None)
        url.want("run", choice)
    return choice


def runs_table_ui(root: Path) -> None:
    """Every run's state and progress (in a fragment that refreshes while any run is live)."""
    all_runs = runs.list_runs(root)
    with st.expander(f"All runs ({len(all_runs)})", expanded=False):
        # progress first: the sidebar is narrow, and the columns past its edge need a scroll
        st.dataframe(clean_rows([{"run": r.name, "status": r.state,
                                  "iteration": f"{r.iteration}/{r.total_iterations}",
                                  "snapshots": r.snapshots, "model": r.model,
                                  "dataset": r.dataset} for r in all_runs]),
                     hide_index=True, width="stretch")


def refresh_ui() -> float:
    """Live refresh interval in seconds (0 = off)."""
    return float(st.sidebar.number_input(
        "Live refresh every (s), 0 = off", min_value=0.0, max_value=60.0, step=0.5,
        value=float(os.environ.get("PATHVIZ_REFRESH", "2")), key="refresh",
        help="How often the views of a running run update themselves."))


def field_problem(kind: str, rule: tuple[float, bool] | None, value: Any) -> str | None:
    """One plain sentence if a number is out of its range, else None."""
    if rule is None or kind not in ("int", "float"):
        return None
    low, inclusive = rule
    if value is None:
        return "Enter a number."
    if (value < low) if inclusive else (value <= low):
        return (f"Must be at least {low:g}." if inclusive else f"Must be greater than {low:g}.")
    return None


def data_root_problem(text: str | None) -> str | None:
    """A data root must be an existing folder (not a flag, not a file). The sentence is
    markdown (the path in it inert): show it as it is, without escaping it again."""
    if not text:
        return None
    if text.startswith("-"):
        return inert("Enter a folder path, not a command-line option.")
    p = Path(text).expanduser()
    if not p.exists():
        return f"There is no folder {quote(text, 60)}."
    if not p.is_dir():
        return f"{quote(text, 60)} is a file; enter the folder that holds the dataset files."
    return None


def _plain(message: str) -> str:
    """A config error in the form's words: ``--lr`` becomes the field's label."""
    for field, label, _, _ in FORM_FIELDS:
        message = message.replace(f"--{field.replace('_', '-')}", label)
    return message[:1].upper() + message[1:]


def new_run_ui(existing: list[str], root: Path) -> None:
    """A form for a new run, validated before launch; errors appear under their field. Absent
    from a read-only app (which refuses a launch anyway, in ``runs.start_worker``)."""
    if readonly.active():
        return
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
        for field, label, kind, _ in FORM_FIELDS:
            default = getattr(base, field)
            if kind == "model":
                values[field] = st.selectbox(label, MODEL_CHOICES, index=0)
            elif kind == "dataset":
                values[field] = st.selectbox(label, list(DATASET_NAMES), index=0)
            elif kind == "text":
                values[field] = (st.text_input(label, value=default or "") or "").strip() or None
            elif kind == "int":
                values[field] = st.number_input(label, value=int(default), step=1)
            else:
                values[field] = st.number_input(label, value=float(default), format="%.4g")
            slots[field] = st.empty()
        processes = int(st.number_input(
            "Processes", min_value=1, max_value=min(os.cpu_count() or 1,
                                                    runs.MAX_LOCAL_PROCESSES),
            value=1, step=1, key="new_run_processes",
            help="Train on several local processes (DDP under torchrun, gloo on the CPU). "
                 "The path is the single-process one up to float rounding."))
        submitted = st.form_submit_button("Validate and start", type="primary")
    if not submitted:
        return
    problems: dict[str, str] = {}  # markdown, each message made inert once
    try:
        runs.validate_name(name)
        if name in existing:
            raise runs.RunError(f"a run called {name!r} exists already")
    except runs.RunError as e:
        problems["name"] = inert(e)
    for field, _, kind, rule in FORM_FIELDS:
        p = field_problem(kind, rule, values[field])
        if p:
            problems[field] = inert(p)
    p = data_root_problem(values["data_root"])
    if p:
        problems["data_root"] = p
    if not problems:
        cfg = base.replace(**{k: int(v) if isinstance(v, float) and k in
                              ("epochs", "batch_size") else v for k, v in values.items()})
        try:
            cfg.validate()
        except ConfigError as e:
            flag = str(e).split()[0].lstrip("-").replace("-", "_")
            problems[flag if flag in slots else "name"] = inert(_plain(str(e)))
        try:
            check_dataset(cfg.dataset, cfg.data_root)
        except DataError as e:
            problems["data_root"] = inert(_plain(str(e)))
    if problems:
        for field, msg in problems.items():
            (slots.get(field) or name_err).error(msg)
        st.sidebar.error("Fix the fields marked above, then start again.")
        return
    start_run(runs.run_paths(name, root), config_to_argv(RunConfig.from_json(cfg.to_json())),
              processes=processes)
