"""The training worker against a full disk and against a second resume of the same run
(issue 12, defects 4 and 5)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _userns_ok() -> bool:
    if not shutil.which("unshare"):
        return False
    r = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                        "mount -t tmpfs -o size=64k tmpfs /mnt 2>/dev/null || "
                        "mount -t tmpfs -o size=64k tmpfs /tmp"], capture_output=True)
    return r.returncode == 0


@pytest.mark.skipif(not _userns_ok(), reason="needs unprivileged user and mount namespaces "
                                             "(a private 1.2 MB tmpfs stands in for a full disk)")
def test_a_full_disk_fails_the_run_in_one_sentence_with_its_snapshots_intact(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    report = tmp_path / "report.json"
    check = textwrap.dedent(f"""
        import json, os
        from pathviz.store import PathReader
        d = {str(mnt / 'run')!r}
        with PathReader(os.path.join(d, "path.h5")) as r:
            n, last = r.n_snapshots, int(r.iterations[-1])
        st = json.load(open(os.path.join(d, "status.json")))
        json.dump({{"n": n, "last": last, "state": st["state"], "reason": st["reason"],
                    "files": sorted(os.listdir(d))}}, open({str(report)!r}, "w"))
    """)
    (tmp_path / "check.py").write_text(check)
    script = (f"mount -t tmpfs -o size=1200k tmpfs {mnt} && cd {ROOT} && "
              f"{sys.executable} -m pathviz.train --preset demo --epochs 3 --no-progress "
              f"--out {mnt}/run 2>{tmp_path}/err.txt; echo $? > {tmp_path}/rc.txt; "
              f"{sys.executable} {tmp_path}/check.py")
    subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
                   check=True, timeout=300)
    assert (tmp_path / "rc.txt").read_text().strip() == "2"
    err = (tmp_path / "err.txt").read_text().strip().splitlines()
    stderr_last = err[-1]
    assert stderr_last.startswith("pathviz.train: error: disk full at iteration ")
    assert stderr_last.endswith(" could not be written; free space, then continue with --resume")
    assert not any("Traceback" in line for line in err)
    got = json.loads(report.read_text())
    reason = stderr_last.split("error: ")[1].split(";")[0]
    it = int(reason.split("iteration ")[1].split(":")[0])
    assert got["state"] == "failed" and got["reason"] == reason
    assert got["n"] >= 1 and got["last"] <= it  # every flushed snapshot is there
    # no temp files and no lock left behind
    assert not [f for f in got["files"] if f.endswith(".tmp")]
    assert "worker.lock" not in got["files"]


def test_two_concurrent_resumes_one_trains_the_other_exits_2(tmp_path):
    run = tmp_path / "run"
    base = [sys.executable, "-m", "pathviz.train", "--out", str(run), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": ROOT}
    first = subprocess.Popen(base + ["--preset", "demo", "--epochs", "30"], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:  # stop it once it has saved resume state past iteration 30
        try:
            if json.loads((run / "status.json").read_text()).get("iteration", 0) > 60:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=60) == 0
    assert json.loads((run / "status.json").read_text())["state"] == "stopped"
    procs = [subprocess.Popen(base + ["--resume"], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env=env) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    loser = outs[[p.returncode for p in procs].index(2)][1].strip().splitlines()
    assert len(loser) == 1, loser
    assert ("is already being trained by process" in loser[0]
            or "already finished; nothing to resume" in loser[0]), loser
    assert json.loads((run / "status.json").read_text())["state"] == "finished"
