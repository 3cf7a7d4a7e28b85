"""What every pathviz command line shares: the exit codes, the usage error and the parser.

A command refuses bad input with one sentence that names the problem and the fix, and exits
:data:`EXIT_USAGE` (2) having written nothing; :data:`EXIT_FAILED` (1) is a run that started
and failed; :data:`EXIT_OK` (0) the rest. :class:`Parser` is :class:`StrictParser` (no
abbreviations, a hint for a close miss) whose argparse errors are raised as the command's usage
error instead of printed, so each command reports them the way it reports its own checks.
"""

from __future__ import annotations

import argparse
from typing import Any

from pathviz.cli_parser import StrictParser, closest_option

__all__ = ["EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "UsageError", "Parser", "StrictParser",
           "closest_option"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad input: one sentence, exit code 2, nothing written."""


class Parser(StrictParser):
    """A :class:`StrictParser` that raises ``error`` (:class:`UsageError` unless the command
    has its own one-sentence error) with argparse's message, the closest real flag and "(see
    --help)"; the description is printed as written (``RawDescriptionHelpFormatter``)."""

    def __init__(self, *args: Any, error: type[Exception] = UsageError, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self._error = error

    def error(self, message: str) -> None:  # type: ignore[override]
        raise self._error(f"{self.explain(message)} (see --help)")
