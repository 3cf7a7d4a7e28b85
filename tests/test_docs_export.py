"""docs/export.md run as printed: its bash block (train the demo into ``tour/demo``, export
the suggested stop as .pt2 and .onnx), then its Python block pasted into ``python`` in a
process that must never import pathviz; the accuracies it prints are the page's, and
``pathviz.inspect``'s figure for the same run."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from tests.test_readme import CONSOLE, blocks

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "export.md"

# appended to the pasted block: fails the paste if pathviz was imported on the way
NO_PATHVIZ = "assert not any(m.split('.')[0] == 'pathviz' for m in sys.modules), 'pathviz used'"


def test_the_export_page_scores_the_demo_as_printed(tmp_path):
    text = PAGE.read_text()
    found = blocks(text)
    commands = [c for lang, body in ((b[1], b[2]) for b in found) if lang == "bash"
                for c in body.splitlines() if c.strip()]
    python = [body for _, lang, body in found if lang == "python"]
    printed = [body for _, lang, body in found if lang == ""]
    assert len(python) == 1 and printed, found
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    for line in commands:
        argv = shlex.split(line, comments=True)
        assert argv[0] == "python", line
        p = subprocess.run([sys.executable, *argv[1:]], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=900)
        assert p.returncode == 0, f"{line}: {p.stderr[-2000:]}"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["tour"]  # nothing else written

    # the paste runs where pathviz cannot be imported: no PYTHONPATH to this checkout
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    (tmp_path / "snippet.py").write_text(python[0] + "import sys\n" + NO_PATHVIZ + "\n")
    (tmp_path / "console.py").write_text(CONSOLE)
    p = subprocess.run([sys.executable, "-I", "console.py", "snippet.py"], cwd=tmp_path,
                       env=clean, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert printed[-1].strip() in p.stdout, (printed[-1], p.stdout)

    from pathviz import inspect

    stop = inspect.summary(tmp_path / "tour" / "demo")["stop"]
    said = re.findall(r"test accuracy (\d+\.\d+) %", printed[-1])
    assert said == [f"{100 * stop['test_acc_sparse']:.2f}"] * 2, (said, stop)
    assert f"iteration {stop['iteration']}" in " ".join(text.split())  # the page's stop
