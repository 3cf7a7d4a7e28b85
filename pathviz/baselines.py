"""``python -m pathviz.baselines RUN``: pruning baselines at every saved iteration's widths.

The command is :mod:`pathviz.tickets.baselines_cli` (see its docstring or ``--help``); the
methods and the results file ``<run>/baselines.json`` are :mod:`pathviz.tickets.baselines`. This
module is the entry point, and importing it stays torch-free.
"""

from __future__ import annotations

import sys

from pathviz.tickets.baselines import (
    METHODS,
    REFERENCES,
    RESULTS_SCHEMA,
    BaselineError,
    entry_key,
    read_results,
    summary,
)

__all__ = ["METHODS", "RESULTS_SCHEMA", "REFERENCES", "BaselineError", "read_results",
           "entry_key", "summary"]

if __name__ == "__main__":
    from pathviz.tickets.baselines_cli import main

    sys.exit(main())
