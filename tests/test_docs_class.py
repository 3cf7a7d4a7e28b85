"""docs/class.md: every shell command run as printed (each serves a read-only app that a
browser then checks), and what its prose claims about the configuration and the refusals.

The nginx block is a proxy's configuration, not a command: it is checked to proxy the port
the first command serves.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pathviz import readonly, runs
from tests.conftest import make_run
from tests.e2e.conftest import CHROMIUM, NO_CHROMIUM, button, idle

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "class.md"


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), flags=re.S)


def prose() -> str:
    """The page's text with its lines joined (a sentence may wrap)."""
    return " ".join(DOC.read_text().split())


def test_the_commands_are_the_two_read_only_apps():
    commands = [b.strip() for b in blocks("bash")]
    assert commands == [
        "streamlit run app.py --server.port 8511 -- --read-only",
        "PATHVIZ_READ_ONLY=1 streamlit run app.py --server.address 0.0.0.0 --server.port 8512"]


@pytest.mark.skipif(NO_CHROMIUM, reason="Debian chromium is not installed")
@pytest.mark.parametrize("index", [0, 1])
def test_each_command_serves_a_read_only_app(tmp_path, index):
    """As printed, from the repository folder, on a run that is training: the header says
    read-only, there is no Stop, and the run's worker (a sleep standing in) still lives."""
    from playwright.sync_api import sync_playwright

    command = blocks("bash")[index].strip()
    port = int(re.search(r"--server\.port (\d+)", command).group(1))
    root = tmp_path / "checkpoints"
    paths = make_run(root, "lesson", n=20, state="running")
    worker = subprocess.Popen(["sleep", "300"], start_new_session=True)
    runs.write_status(paths, state="running", pid=worker.pid,
                      pid_start=runs.process_start_time(worker.pid),
                      heartbeat=time.time() + 300, iteration=95, total_iterations=500)
    env = {**os.environ, "PATHVIZ_CHECKPOINTS": str(root), "PATHVIZ_REFRESH": "0",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop(readonly.ENV, None)
    log = (tmp_path / "app.log").open("w")
    app = subprocess.Popen(["bash", "-c", command], cwd=ROOT, env=env, stdout=log,
                           stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://localhost:{port}"
        deadline = time.time() + 90
        while True:
            assert app.poll() is None, (tmp_path / "app.log").read_text()[-2000:]
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                    break
            except OSError:
                assert time.time() < deadline, (tmp_path / "app.log").read_text()[-2000:]
                time.sleep(0.3)
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = b.new_page()
            page.goto(f"{url}/?run=lesson")
            idle(page)
            page.locator(".st-key-run_header").get_by_text("read-only").first.wait_for()
            page.get_by_test_id("stProgress").first.wait_for()  # followed live
            assert button(page, "Stop").count() == 0
            b.close()
        assert worker.poll() is None
    finally:
        if app.poll() is None:
            os.killpg(app.pid, signal.SIGTERM)  # its own session: bash and streamlit
            app.wait(timeout=30)
        log.close()
        worker.kill()
        worker.wait()


def test_the_app_binds_localhost_and_keeps_streamlits_protections():
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["address"] == "localhost"
    assert cfg["server"].get("enableXsrfProtection", True) is True
    assert cfg["server"].get("enableCORS", True) is True
    assert 'sets `address = "localhost"`' in prose()


def test_the_values_and_the_refusal_are_the_codes():
    text = prose()
    on = ", ".join(f"`{w}`" for w in readonly.ON_WORDS[:-1]) + f" or `{readonly.ON_WORDS[-1]}`"
    off = ", ".join(f"`{w}`" for w in readonly.OFF_WORDS[1:])
    assert f"takes {on} for read-only" in text
    assert f"and {off.rsplit(', ', 1)[0]}, {off.rsplit(', ', 1)[1]} or nothing" in text
    saved = readonly._active
    readonly._active = True
    try:
        sentence = readonly.refusal("stop a training run")
    finally:
        readonly._active = saved
    assert f"*{sentence}*" in text


def test_the_proxy_passes_to_the_read_only_app_on_localhost():
    (nginx,) = blocks("nginx")
    assert "proxy_pass http://127.0.0.1:8511;" in nginx and "8511 -- --read-only" in \
        blocks("bash")[0]
    assert "auth_basic_user_file" in nginx and "Upgrade $http_upgrade" in nginx
