"""What every view of one run needs, read once per page run: the run, its file and its stop
(:class:`RunView`, read by :func:`load_view`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

from pathviz import runs
from pathviz.analysis import Stop, StopDecision
from pathviz.plots import StopMark
from pathviz.store import PathFileError, PathInvalidError
from pathviz.ui import data as d
from pathviz.ui.data import Ident
from pathviz.ui.text import inert


@dataclass(frozen=True)
class RunView:
    """One run as the views see it.

    ``data`` is :func:`pathviz.ui.data.load_overview`'s dict; ``n`` the snapshots read;
    ``live`` whether the worker may still append.
    """

    info: runs.RunInfo
    path: str
    ident: Ident
    n: int
    data: dict[str, Any]
    decision: StopDecision
    live: bool
    model: str
    dataset: str

    @property
    def iterations(self) -> np.ndarray:
        return self.data["iterations"]

    @property
    def stop(self) -> Stop | None:
        return self.decision.stop

    def has_metric(self, name: str) -> bool:
        """True if the file has the metric and it was evaluated at least once."""
        m = self.data["metrics"].get(name)
        return m is not None and bool(np.isfinite(m).any())

    def stop_mark(self) -> StopMark | None:
        """The stop, its 1-SE band and the evaluated iterations in it, as the plots mark them."""
        s = self.stop
        if s is None:
            return None
        lo, hi = s.threshold, s.best_val_acc  # best - SE for the 1-SE rule
        members: tuple[int, ...] = ()
        acc = self.data["metrics"].get("val_acc_sparse")
        if acc is not None:
            acc = acc[: len(self.iterations)]  # a live file may hold a newer row than we read
            inside = np.flatnonzero(np.isfinite(acc) & (acc >= s.threshold - 1e-12))
            members = tuple(int(i) for i in self.iterations[inside])
        return StopMark(iteration=s.iteration, band=(float(lo), float(hi)), members=members)


def load_view(info: runs.RunInfo, live: bool) -> RunView | None:
    """The run's file read into a :class:`RunView`, or None after one message saying why."""
    try:
        n = d.snapshot_count(info.paths.path, live=live)
        ident = d.ident(info.paths.path)
    except (PathFileError, FileNotFoundError) as e:
        # a file a starting worker has not finished creating is not an error yet; a file whose
        # values break a rule of the schema is, live or not
        if live and not isinstance(e, PathInvalidError):
            st.info("Waiting for the worker to write its first snapshot...")
        else:
            st.error(inert(f"This run's path file cannot be shown: {e}"))
        return None
    if n == 0:
        st.info("Waiting for the first snapshot...")
        return None
    path = str(info.paths.path)
    try:
        data = d.load_overview(path, ident, n)
        decision = d.load_stop(path, ident, n)
    except PathFileError as e:
        st.error(inert(f"This run's path file cannot be shown: {e}"))
        return None
    model, dataset = d.run_identity(info, data)
    return RunView(info=info, path=path, ident=ident, n=n, data=data, decision=decision,
                   live=live, model=model, dataset=dataset)
