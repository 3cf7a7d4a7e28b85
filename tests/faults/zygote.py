"""A pre-imported worker for the fault campaigns: a process that has imported ``pathviz.train``
(torch included) and computed nothing forks one child per job, and the child runs the real
worker, ``pathviz.train.main(argv)``, exactly as ``python -m pathviz.train`` would after its
imports. A campaign of hundreds of worker runs so pays the 5 s import once, not per run.

The child's stdout and stderr go to a file; it leaves with ``os._exit`` (as the CLI does after a
full disk), so an abandoned HDF5 file is never closed. SIGKILL the child by its pid.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_SERVER = r"""
import json, os, signal, sys
from pathviz import numerics
numerics.apply_env(numerics.DEFAULT_LEVEL)  # as tests/conftest.py: before torch computes
import pathviz.train
# what the worker imports lazily on its way to training (importing computes nothing)
import sklearn.datasets, torch._dynamo, torch._inductor, pathviz.evaluate, pathviz.prune
import numba.core.registry
numba.core.registry.cpu_target.target_context.refresh()  # numba's typing tables, 3 s
out = sys.stdout
for line in sys.stdin:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        rc = 70
        try:
            fd = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.chdir(job.get("cwd") or os.getcwd())
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            sys.argv = ["pathviz.train", *job["argv"]]  # main(None), as the CLI calls it
            rc = pathviz.train.main()
        except BaseException:
            import traceback
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(rc)
    out.write(f"pid {pid}\n")
    out.flush()
    _, st = os.waitpid(pid, 0)
    out.write(f"rc {os.waitstatus_to_exitcode(st)}\n")
    out.flush()
"""


class Zygote:
    """Runs worker jobs one at a time: :meth:`start` returns the child's pid, :meth:`wait`
    its exit code (``-9`` after a SIGKILL)."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen([sys.executable, "-c", _SERVER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
        self.pid: int | None = None

    def start(self, argv: list[str], log: Path) -> int:
        assert self.pid is None, "one job at a time"
        self.proc.stdin.write(json.dumps({"argv": list(argv), "log": str(log)}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line.startswith("pid "), line
        self.pid = int(line.split()[1])
        return self.pid

    def wait(self) -> int:
        line = self.proc.stdout.readline()
        assert line.startswith("rc "), line
        self.pid = None
        return int(line.split()[1])

    def run(self, argv: list[str], log: Path) -> int:
        self.start(argv, log)
        return self.wait()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)

    def __enter__(self) -> Zygote:
        return self

    def __exit__(self, *exc) -> None:
        if self.pid is not None:
            try:
                os.kill(self.pid, 9)
            except ProcessLookupError:
                pass
            self.wait()
        self.close()
