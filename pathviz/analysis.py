"""Pure numpy summaries of a path: the suggested early stop and per-layer support tables.

No torch and no plotting here, so the app and tests use them on arrays read from a path file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["StopRule", "Stop", "StopDecision", "suggest_stop", "stop_of", "binomial_se",
           "support_table"]

RULES = ("1se", "points")

# the W* accuracies the pages show, best first: the compact subnetwork on validation, else on test
W_STAR_METRICS = (("val_acc_sparse", "validation"), ("test_acc_sparse", "test"))


@dataclass(frozen=True)
class StopRule:
    """How to pick the early stop among the iterations that have saved weights.

    ``"1se"`` (default) is glmnet's ``lambda.1se``: the sparsest candidate whose validation
    accuracy is within one standard error of the best. ``"points"`` is the sparsest within
    ``points`` percentage points of the best.
    """

    kind: str = "1se"
    points: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in RULES:
            raise ValueError(f"stop rule must be 1se or points, got {self.kind!r}")
        if self.kind == "points" and not (np.isfinite(self.points) and self.points >= 0):
            raise ValueError(f"the points of a stop rule must be a number >= 0, got "
                             f"{self.points!r}")

    @classmethod
    def parse(cls, text: str) -> StopRule:
        """``"1se"``, or ``"points:X"`` (within X percentage points); ValueError otherwise."""
        text = text.strip().lower()
        if text == "1se":
            return cls("1se")
        kind, _, value = text.partition(":")
        if kind == "points" and value:
            try:
                return cls("points", float(value))
            except ValueError:
                pass
        raise ValueError(f"unknown stop rule {text!r}; use 1se or points:X (e.g. points:1)")

    def describe(self) -> str:
        if self.kind == "1se":
            return ("sparsest saved iteration whose validation accuracy (compact subnetwork) is "
                    "within 1 standard error of the best")
        return (f"sparsest saved iteration whose validation accuracy (compact subnetwork) is "
                f"within {self.points:g} points of the best")


@dataclass(frozen=True)
class Stop:
    """The suggested early stop and every figure the app, inspect and export show for it.

    Accuracies are fractions; ``val_se`` is the binomial standard error of the best validation
    accuracy; ``threshold`` is the lowest validation accuracy the rule accepted.
    """

    index: int  # snapshot index in the path file
    iteration: int
    rule: str
    val_acc: float  # validation accuracy of the compact subnetwork at the stop
    val_se: float
    best_iteration: int
    best_val_acc: float
    threshold: float
    test_acc_sparse: float  # test accuracy of the compact subnetwork (reported, never chosen on)
    params_kept: int
    flops_kept: int | None
    params_total: int | None
    flops_total: int | None
    n_val: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StopDecision:
    """The stop, or None with a sentence that says why there is none."""

    stop: Stop | None
    reason: str | None


def binomial_se(acc: float, n: int) -> float:
    """Standard error of an accuracy measured on ``n`` examples: sqrt(p (1 - p) / n)."""
    if n <= 0 or not np.isfinite(acc):
        return float("nan")
    return float(np.sqrt(acc * (1.0 - acc) / n))


def _finite(a: np.ndarray | None, i: int) -> float | None:
    if a is None or not np.isfinite(a[i]):
        return None
    return float(a[i])


def suggest_stop(iterations: np.ndarray, val_acc: np.ndarray, params_kept: np.ndarray, *,
                 weight_iterations: np.ndarray, n_val: int, rule: StopRule | None = None,
                 chance: float = 0.0, flops_kept: np.ndarray | None = None,
                 test_acc: np.ndarray | None = None, params_total: int | None = None,
                 flops_total: int | None = None) -> StopDecision:
    """Apply ``rule`` to per-snapshot arrays (NaN where not evaluated).

    ``val_acc``, ``params_kept`` (and ``flops_kept``, ``test_acc``) are of the compact
    subnetwork. The best accuracy is taken over every evaluated snapshot; the pick is among
    those with saved weights (so it can be exported): the fewest parameters kept, ties to the
    earlier. While the best is not clearly above ``chance`` (by 2 SE) there is no stop: the
    sparsest model "within 1 SE of the best" would then be the empty one.
    """
    rule = rule or StopRule()
    its = np.asarray(iterations, dtype=np.int64)
    acc = np.asarray(val_acc, dtype=np.float64)
    kept = np.asarray(params_kept, dtype=np.float64)
    evaluated = np.flatnonzero(np.isfinite(acc))
    if evaluated.size == 0:
        return StopDecision(None, "the compact subnetwork has not been evaluated on the "
                                  "validation split yet (no val_acc_sparse values)")
    if n_val <= 0:
        return StopDecision(None, "the run has no validation split, so no stop can be picked "
                                  "without using the test set")
    b = int(evaluated[np.argmax(acc[evaluated])])  # argmax: the earliest of equal maxima
    best = float(acc[b])
    se = binomial_se(best, n_val)
    if best <= chance + 2 * se:
        return StopDecision(None, f"the compact subnetwork is still at chance: its best "
                                  f"validation accuracy is {100 * best:.1f}% (chance "
                                  f"{100 * chance:.0f}%, SE {100 * se:.1f} points) as of "
                                  f"iteration {int(its[-1])}")
    margin = se if rule.kind == "1se" else rule.points / 100.0
    threshold = best - margin
    ok = evaluated[acc[evaluated] >= threshold - 1e-12]
    has_w = np.isin(its[ok], np.asarray(weight_iterations, dtype=np.int64))
    cand = ok[has_w & np.isfinite(kept[ok])]
    if cand.size == 0:
        a, z = int(its[ok].min()), int(its[ok].max())
        return StopDecision(None, f"no weights saved between iterations {a} and {z}, where the "
                                  f"compact subnetwork is within {100 * margin:.1f} points of "
                                  f"its best; save weights more often (--weights-every or "
                                  f"--weights-on-change)")
    i = int(cand[np.argmin(kept[cand])])  # argmin: the earliest of equal minima
    fk = _finite(flops_kept, i)
    stop = Stop(index=i, iteration=int(its[i]), rule=rule.describe(), val_acc=float(acc[i]),
                val_se=se, best_iteration=int(its[b]), best_val_acc=best, threshold=threshold,
                test_acc_sparse=_finite(test_acc, i) if test_acc is not None else None,
                params_kept=int(kept[i]), flops_kept=None if fk is None else int(fk),
                params_total=params_total, flops_total=flops_total, n_val=int(n_val))
    return StopDecision(stop, None)


def stop_of(reader: Any, rule: StopRule | None = None) -> StopDecision:
    """The stop of a path file (a :class:`pathviz.store.PathReader`), as inspect and the app
    show it."""
    names = set(reader.metric_names)
    missing = [m for m in ("val_acc_sparse", "params_kept") if m not in names]
    if missing:
        return StopDecision(None, f"the path file has no {' or '.join(missing)} metric (it was "
                                  f"recorded without a validation split or by an older "
                                  f"pathviz), so no stop can be picked")
    info, data = reader.model_info, reader.data_info
    m = reader.metrics([n for n in ("val_acc_sparse", "params_kept", "flops_kept",
                                    "test_acc_sparse") if n in names])
    classes = info.get("num_classes") or 0
    return suggest_stop(reader.iterations, m["val_acc_sparse"], m["params_kept"],
                        weight_iterations=reader.weight_iterations,
                        n_val=int(data.get("n_val") or 0), rule=rule,
                        chance=1.0 / classes if classes else 0.0,
                        flops_kept=m.get("flops_kept"), test_acc=m.get("test_acc_sparse"),
                        params_total=info.get("params_total"),
                        flops_total=info.get("flops_total"))


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
