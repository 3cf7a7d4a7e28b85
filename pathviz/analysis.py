"""Pure numpy summaries of a path: the suggested stopping point and per-layer support tables.

No torch and no plotting here, so the app and tests use them on arrays read from a path file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["StopSuggestion", "suggest_stop", "support_table"]


@dataclass(frozen=True)
class StopSuggestion:
    """An early-stopping pick: the snapshot index, its iteration, and the rule that chose it."""

    index: int
    iteration: int
    test_acc: float
    params_kept: float
    rule: str


def suggest_stop(iterations: np.ndarray, test_acc: np.ndarray, params_kept: np.ndarray,
                 tolerance: float = 0.01, eligible: np.ndarray | None = None,
                 min_acc: float = 0.0) -> StopSuggestion | None:
    """The sparsest evaluated snapshot whose test accuracy is within ``tolerance`` of the best.

    "Sparsest" is fewest parameters kept; ties go to the earlier snapshot. ``eligible`` limits
    the pick to those iterations (e.g. the ones with saved weights, so it can be exported); the
    best accuracy is taken over all evaluated snapshots. Snapshots below ``min_acc`` never
    qualify (early in a run every sparse model is at chance, and "the sparsest within a point of
    the best" would be the empty one). None when nothing qualifies yet.
    """
    acc = np.asarray(test_acc, dtype=np.float64)
    evaluated = np.flatnonzero(np.isfinite(acc))
    if evaluated.size == 0:
        return None
    best = acc[evaluated].max()
    if eligible is not None:
        evaluated = evaluated[np.isin(np.asarray(iterations)[evaluated], eligible)]
        if evaluated.size == 0:
            return None
    ok = evaluated[(acc[evaluated] >= best - tolerance - 1e-12) & (acc[evaluated] >= min_acc)]
    if ok.size == 0:
        return None
    kept = np.asarray(params_kept, dtype=np.float64)[ok]
    i = int(ok[np.argmin(kept)])  # argmin takes the first (earliest) of equal minima
    rule = (f"the sparsest snapshot whose test accuracy is within {100 * tolerance:g} point"
            f"{'s' if tolerance != 0.01 else ''} of the best so far ({100 * best:.1f}%)"
            + (", among those with saved weights" if eligible is not None else ""))
    return StopSuggestion(i, int(iterations[i]), float(acc[i]), float(kept.min()), rule)


def support_table(layers: list[dict[str, Any]], snapshot: dict[str, dict[str, np.ndarray]],
                  entry_iterations: dict[str, np.ndarray] | None = None) -> list[dict[str, Any]]:
    """One row per layer: groups, how many are in the support, the fraction, first entry."""
    rows = []
    for layer in layers:
        gn = snapshot[layer["name"]]["gamma_norm"]
        inside = int(np.count_nonzero(gn > 0))
        row = {"layer": layer["name"], "kind": layer["kind"], "penalty": layer["penalty"],
               "groups": int(layer["groups"]), "in support": inside,
               "selected %": round(100.0 * inside / max(int(layer["groups"]), 1), 1)}
        if entry_iterations is not None:
            e = entry_iterations[layer["name"]]
            e = e[e >= 0]
            row["first entry (iteration)"] = int(e.min()) if e.size else None
        rows.append(row)
    return rows
