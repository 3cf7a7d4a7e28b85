"""What the fuzzers of issue 35 (item 3) share: the hypothesis profile that bounds them, the
folder hash that proves nothing was written, and the one-sentence check.

The profile ``fuzz`` has no deadline (a case may start a helper process or an AppTest run) and
no example database, and it is derandomized, so CI runs the same cases each time and a red run
is a real defect, never luck. Two environment variables widen it for a hunt on a developer's
machine: ``PATHVIZ_FUZZ_RANDOM=1`` draws new cases each run, and ``PATHVIZ_FUZZ_SCALE=10``
runs ten times as many; ``pytest --hypothesis-show-statistics`` then says how many ran.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from hypothesis import HealthCheck, settings

SCALE = float(os.environ.get("PATHVIZ_FUZZ_SCALE") or 1)
settings.register_profile(
    "fuzz", deadline=None, database=None, print_blob=True,
    derandomize=not os.environ.get("PATHVIZ_FUZZ_RANDOM"),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                           HealthCheck.filter_too_much, HealthCheck.data_too_large])


def fuzz(examples: int) -> settings:
    """The ``fuzz`` profile with ``examples`` cases (times ``PATHVIZ_FUZZ_SCALE``)."""
    return settings(settings.get_profile("fuzz"), max_examples=max(1, round(examples * SCALE)))


def tree_hash(d: Path) -> str:
    """One hash of every name under ``d``, each file's bytes and mode and each link's target:
    equal before and after means nothing under ``d`` was written, removed or replaced."""
    h = hashlib.sha256()
    for p in sorted(d.rglob("*")):
        h.update(p.relative_to(d).as_posix().encode("utf-8", "surrogateescape") + b"\0")
        if p.is_symlink():
            h.update(b"L" + os.readlink(p).encode("utf-8", "surrogateescape"))
        elif p.is_file():
            h.update(b"F%o" % p.stat().st_mode + hashlib.sha256(p.read_bytes()).digest())
        else:
            h.update(b"D")
    return h.hexdigest()


TRACE = re.compile(r"Traceback \(most recent call last\)|^\s+File \"", re.M)


def one_sentence(text: str, prefix: str = "") -> str:
    """Assert ``text`` is one non-empty line (after ``prefix``) with no traceback; return it."""
    line = text.strip()
    assert line, "no message at all"
    assert not TRACE.search(text), text
    assert "\n" not in line, f"more than one line: {text!r}"
    assert line.startswith(prefix), (prefix, line)
    assert len(line) > len(prefix) + 10, line
    return line
