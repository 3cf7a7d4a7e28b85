"""``python -m pathviz.retrain``: retrain the support at an iteration, with its controls and the
pruning baselines. The command is :mod:`pathviz.tickets.retrain_cli` (see its docstring or
``--help``); this module is its entry point and keeps the names it always had."""

from __future__ import annotations

import sys

from pathviz.tickets.retrain_cli import Variant, build_parser, main, prepare, run
from pathviz.tickets.training import Settings, _Progress, retrain_seed
from pathviz.tickets.variants import (
    Support,
    UsageError,
    build_variant,
    load_support,
    random_plan,
    uniform_widths,
)

__all__ = ["UsageError", "Support", "load_support", "build_variant", "random_plan",
           "uniform_widths", "Settings", "retrain_seed", "Variant", "build_parser", "prepare",
           "run", "main", "_Progress"]

if __name__ == "__main__":
    sys.exit(main())
