"""The argument parser every pathviz command line uses: no abbreviations, and a hint for a
close miss.

argparse takes any unambiguous prefix of a long option by default, so ``--epoch 1`` quietly
meant ``--epochs 1``, and a prefix that a later flag makes ambiguous would break scripts that
worked. :class:`StrictParser` turns abbreviations off (``allow_abbrev=False``) and makes an
unknown flag one sentence that names the nearest real one (``difflib``): "unrecognized
arguments: --epoch 1; did you mean --epochs?". Each CLI subclasses it and raises its own
usage error from :meth:`StrictParser.error`, through :meth:`StrictParser.explain`.
"""

from __future__ import annotations

import argparse
import difflib
import re
from typing import Any

__all__ = ["StrictParser", "closest_option"]


def closest_option(word: str, options: list[str]) -> str | None:
    """The option in ``options`` nearest ``word`` (``--epoch=3`` compared as ``epoch``, the
    dashes left out so that they do not make every pair look alike), or None when none is
    close (difflib ratio below 0.75: ``--epoch`` finds ``--epochs``, ``--init`` finds nothing
    in train's flags)."""
    flag = word.split("=", 1)[0].lstrip("-")
    names = {o.lstrip("-"): o for o in options}
    near = difflib.get_close_matches(flag, list(names), n=1, cutoff=0.75)
    return names[near[0]] if near else None


class StrictParser(argparse.ArgumentParser):
    """An ArgumentParser with abbreviations off, whose errors name the closest real flag."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def long_options(self) -> list[str]:
        """Every ``--flag`` this parser knows."""
        return sorted({s for a in self._actions for s in a.option_strings if s.startswith("--")})

    def explain(self, message: str) -> str:
        """argparse's ``message`` with "; did you mean --x?" for each unknown flag in it that
        is close to a real one (an unrecognized argument, or a value-less flag typo)."""
        m = re.match(r"unrecognized arguments: (.*)", message)
        if not m:
            return message
        hints = []
        for word in m.group(1).split():
            if not word.startswith("--"):
                continue
            near = closest_option(word, self.long_options())
            if near and near not in hints:
                hints.append(near)
        if not hints:
            return message
        return f"{message}; did you mean {' or '.join(hints)}?"
