"""docs/report.md run as printed, on a small run in ``checkpoints/demo``: its commands write the
files the page lists (sizes aside: the page's are the demo's), and running the first again
without --force is the refusal the page prints, word for word."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from tests.conftest import make_run
from tests.test_readme import blocks

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "report.md"


def run(line: str, cwd: Path) -> subprocess.CompletedProcess:
    argv = shlex.split(line)
    assert argv[0] == "python", line
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, *argv[1:]], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_report_page_runs_as_printed(tmp_path):
    found = blocks(PAGE.read_text())
    commands = [c for _, lang, body in found if lang == "bash" for c in body.splitlines() if c]
    printed = [body for _, lang, body in found if lang == ""]
    make_run(tmp_path / "checkpoints", "demo", n=120)  # iterations 0..595 by 5: 500 is one
    out = ""
    for line in commands:
        p = run(line, tmp_path)
        assert p.returncode == 0, f"{line}: {p.stderr[-2000:]}"
        out += p.stdout
    strip = lambda s: re.sub(r" \(\d+\.\d\d MB\)", "", s).split()  # noqa: E731
    assert strip(out) == strip(printed[0])
    for name in re.findall(r"wrote (\S+)", printed[0]):
        assert (tmp_path / name).stat().st_size > 1000
    again = run(commands[0], tmp_path)
    assert again.returncode == 2 and again.stderr.strip() == printed[1].strip()
    assert (ROOT / "docs" / "report-overview.png").exists()
