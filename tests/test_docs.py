"""Every shell command and Python block in the README and the docs runs as printed in a test.

The pages are README.md, SECURITY.md, CONTRIBUTING.md and docs/*.md. Each ```bash or ```python
block in them either

- is run here, as printed (the tour, the optimizer fragment, the digest check): its page marks
  it ``<!-- tested by tests/test_docs.py::TEST -->`` like any other;
- is run as printed by another named test: the comment right above the block reads
  ``<!-- tested by tests/FILE.py::TEST -->``; that test must exist, and every command line of
  the block must be in that test file, or the test file must read the block's page (name it);
- or cannot run here, and the comment says why: ``<!-- not run: REASON -->`` (a GPU, torchrun
  across machines, the network, minutes of training).

A block with none of these fails, naming its page and line. The collection test prints how
many blocks ran here, how many elsewhere and how many are not run, with their reasons.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "SECURITY.md", ROOT / "CONTRIBUTING.md",
         *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(bash|python)\n(.*?)^```$", re.M | re.S)
MARK = re.compile(r"^<!-- (?:tested by (tests/[\w/]+\.py)::(\w+)|not run:(.*)) -->$")


@dataclass
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    body: str
    marker: str  # the nearest non-blank line above the fence

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    def commands(self) -> list[str]:
        """The block's command lines: shell lines with their continuations joined and comments
        dropped, or the Python block's non-blank lines."""
        if self.lang == "python":
            return [line.strip() for line in self.body.splitlines() if line.strip()]
        out, pending = [], ""
        for line in self.body.splitlines():
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1].strip() + " "
                continue
            line = (pending + line.strip()).strip()
            pending = ""
            if line and not line.startswith("#"):
                out.append(line)
        return out


def collect() -> list[Block]:
    out = []
    for page in PAGES:
        text = page.read_text()
        for m in FENCE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            above = [x.strip() for x in text[:m.start()].splitlines() if x.strip()]
            out.append(Block(page, line, m.group(1), m.group(2), above[-1] if above else ""))
    return out


def block_in(page: str, first: str) -> Block:
    """The block of ``page`` whose first command starts with ``first``."""
    found = [b for b in collect() if b.page == ROOT / page and b.commands()
             and b.commands()[0].startswith(first)]
    assert len(found) == 1, (page, first, [b.where for b in found])
    return found[0]


def test_every_block_runs_in_a_test_or_says_why_not(capsys):
    blocks = collect()
    assert len(blocks) >= 20  # the pages hold their blocks (a broken fence regex finds none)
    ran, elsewhere, skipped, problems = [], [], [], []
    for b in blocks:
        m = MARK.match(b.marker)
        if not m:
            problems.append(f"{b.where}: a ```{b.lang} block with no '<!-- tested by "
                            "tests/FILE.py::TEST -->' or '<!-- not run: REASON -->' right above")
            continue
        test_file, test_name, reason = m.groups()
        if reason is not None:
            if len(reason.strip()) < 10:
                problems.append(f"{b.where}: 'not run' needs a reason")
            else:
                skipped.append(f"{b.where}: {reason.strip()}")
            continue
        path = ROOT / test_file
        if not path.is_file():
            problems.append(f"{b.where}: {test_file} does not exist")
            continue
        source = path.read_text()
        if not re.search(rf"^def {test_name}\(", source, re.M):
            problems.append(f"{b.where}: {test_file} has no test {test_name}")
            continue
        reads_page = b.page.name in source
        missing = [c for c in b.commands() if c not in source]
        if missing and not reads_page:
            problems.append(f"{b.where}: {test_file} neither reads {b.page.name} nor holds "
                            f"the command {missing[0]!r}")
            continue
        (ran if test_file == "tests/test_docs.py" else elsewhere).append(b.where)
    with capsys.disabled():
        print(f"\ndocs blocks: {len(ran)} run here, {len(elsewhere)} run by other tests, "
              f"{len(skipped)} not run:")
        for s in skipped:
            print("  " + s)
    assert not problems, "\n".join(problems)


def test_a_block_without_a_marker_is_named(tmp_path, monkeypatch):
    """The rule can fail: a page with an unmarked block, and one whose marker names a test that
    does not exist, are reported with their page and line."""
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n```bash\necho hi\n```\n\n<!-- tested by tests/test_docs.py::"
                    "test_nothing_here -->\n```python\nprint(1)\n```\n")
    monkeypatch.setattr(sys.modules[__name__], "PAGES", [page])
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_docs.py").write_text("def test_other():\n    pass\n")
    blocks = collect()
    assert [b.line for b in blocks] == [3, 8]
    with pytest.raises(AssertionError) as e:
        monkeypatch.setattr(sys.modules[__name__], "collect", lambda: blocks * 10)
        test_every_block_runs_in_a_test_or_says_why_not(_NoCapture())
    assert "page.md:3: a ```bash block with no" in str(e.value)
    assert "page.md:8: tests/test_docs.py has no test test_nothing_here" in str(e.value)


class _NoCapture:
    """capsys for a direct call: nothing to disable."""

    def disabled(self):
        import contextlib

        return contextlib.nullcontext()


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def _run(line: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    argv = shlex.split(line, comments=True)
    assert argv[0] == "python", line
    return subprocess.run([sys.executable, *argv[1:]], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=timeout)


def test_the_tour_runs_as_printed(tmp_path, exact_figures):
    """The README's five-minute tour, then docs/cli.md's training block, in an empty folder:
    every command as printed. The demo trains once (the training block's first line is the
    tour's first command); ``--resume`` on the finished run is refused in one sentence, as
    docs/cli.md says; ``--help`` lists the flags. inspect prints the README's block, the export
    writes the file the README names, and the retrain its tickets."""
    tour = block_in("README.md", "python -m pathviz.train")
    training = block_in("docs/cli.md", "python -m pathviz.train --preset demo")
    printed = {}
    for line in tour.commands():
        p = _run(line, tmp_path)
        assert p.returncode == 0, (line, p.stderr[-2000:])
        printed[line.split()[2]] = p.stdout
    trained = shlex.split(tour.commands()[0])
    for line in training.commands():
        argv = shlex.split(line, comments=True)
        if argv == trained:
            continue  # the tour's own first command, run above
        p = _run(line, tmp_path)
        if "--resume" in argv:
            assert p.returncode == 2 and "already finished" in p.stderr, p.stderr
            assert p.stderr.count("\n") == 1, p.stderr
        else:
            assert p.returncode == 0 and "--preset" in p.stdout, (line, p.stderr[-2000:])
    run = tmp_path / "checkpoints" / "cli-demo"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints"]
    readme = tour.page.read_text()
    said = re.search(r"`pathviz\.inspect` prints.*?\n```\n(.*?)```", readme, re.S).group(1)
    # the run, its status, model and data: the same on any machine
    assert printed["pathviz.inspect"].splitlines()[:4] == said.splitlines()[:4]
    export = re.search(r"The export writes `(checkpoints/cli-demo/exports/[\w.-]+)`", readme)
    assert (tmp_path / export.group(1)).is_file(), sorted((run / "exports").iterdir())
    stop = re.search(r"suggested stop: iteration (\d+)", printed["pathviz.inspect"]).group(1)
    assert sorted(p.name for p in (run / "tickets").iterdir() if p.is_dir()) == [
        f"it{stop}-reinit-epochs5", f"it{stop}-rewind-epochs5"]
    assert "rewind" in printed["pathviz.retrain"] and "reinit" in printed["pathviz.retrain"]
    report = run / "report.html"
    assert report.is_file() and "wrote" in printed["pathviz.report"]
    assert f"Suggested stop: iteration {int(stop):,}" in report.read_text(encoding="utf-8")
    if exact_figures("the README tour's inspect output"):
        assert printed["pathviz.inspect"].rstrip("\n") == said.rstrip("\n")


def test_the_optimizer_fragment_runs_as_printed():
    """docs/optimizer.md's block, run as printed: the support is one bool per filter, and W*
    is W masked by it."""
    block = block_in("docs/optimizer.md", "from pathviz.optim import SLBI")
    scope: dict = {}
    exec(compile(block.body, "docs/optimizer.md", "exec"), scope)
    opt, model = scope["opt"], scope["model"]
    support = opt.support(model.conv1.weight)
    assert support.dtype == torch.bool
    assert tuple(support.shape) == (model.conv1.weight.shape[0],)
    w_star = opt.w_star(model.conv1.weight)
    assert (w_star[~support] == 0).all() and (w_star[support] == model.conv1.weight[support]).all()


def test_the_digest_check_runs_as_printed(exact_figures):
    """docs/numerics.md's digest check, as printed: one line per kept reference, and where this
    machine computes the reference's kernels, exit 0 and the page's lines exactly."""
    block = block_in("docs/numerics.md", "python -m pathviz.digests")
    (line,) = block.commands()
    p = _run(line, ROOT, timeout=300)
    assert p.returncode in (0, 1), p.stderr[-2000:]
    refs = sorted(x.name for x in (ROOT / "pathviz" / "digests" / "references").glob("*.avx2.json"))
    against = [x for x in (p.stdout + p.stderr).splitlines() if x.startswith("against ")]
    assert sorted(x.split()[1] for x in against) == refs
    page = block.page.read_text()
    said = re.search(r"```text\n(.*?)```", page, re.S).group(1).splitlines()
    if exact_figures("the digest check's printed lines"):
        assert p.returncode == 0
        for x in said:
            assert x in against, (x, against)
