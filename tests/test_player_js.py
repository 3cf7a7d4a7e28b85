"""The player's JavaScript modules (pathviz/ui/js/), unit-tested in Chromium: each module's tests
(tests/js/<module>.test.js) run on tests/js/run.html, served over HTTP from the repository (ES
modules do not load from file://). A failing JS test fails here by name, with its message. Also
the joined script that the Streamlit components run (:mod:`pathviz.ui.jsbundle`)."""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import threading
from pathlib import Path

import pytest

from pathviz.ui import jsbundle

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SUITES = sorted(p.name.removesuffix(".test.js") for p in (REPO / "tests" / "js").glob("*.test.js"))


@pytest.fixture(scope="module")
def server():
    """The repository over HTTP on a free port (quiet), for the test pages."""
    handler = functools.partial(_Quiet, directory=str(REPO))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no request log in the test output
        pass


@pytest.fixture(scope="module")
def page():
    assert Path(CHROMIUM).exists(), (
        f"Chromium is needed for the player's JS tests and is not at {CHROMIUM}: "
        "apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield b.new_page()
        b.close()


def test_every_module_has_its_tests():
    modules = {p.stem for p in (REPO / "pathviz" / "ui" / "js").glob("*.js")}
    untested = {"state", "bridge", "controls"}
    # the modules without a test file of their own (the state object, the Streamlit entry
    # point, the buttons and keys) are exercised by the browser tests in tests/e2e/
    assert modules - untested <= set(SUITES), modules - untested - set(SUITES)
    assert set(SUITES) <= modules


@pytest.mark.parametrize("suite", SUITES)
def test_js_module(server, page, suite):
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{server}/tests/js/run.html?m={suite}")
    page.wait_for_function("() => window.__results !== undefined", timeout=20_000)
    results = page.evaluate("window.__results")
    assert results, f"{suite}.test.js ran no test"
    failed = [f"{r['name']}: {r['message']}" for r in results if not r["ok"]]
    assert not failed, f"{suite}.test.js: " + "\n".join(failed)
    assert not errors, errors


def test_the_joined_script_has_each_module_once_and_no_import():
    text = jsbundle.script()
    assert not re.search(r"^import\s", text, re.M)
    assert len(re.findall(r"^export default", text, re.M)) == 1
    for name in jsbundle.MODULES:
        assert f"// ---- {name}.js ----" in text


def test_a_name_defined_in_two_modules_is_refused(tmp_path, monkeypatch):
    for name in jsbundle.MODULES:
        (tmp_path / f"{name}.js").write_text(f"export function only_{name}() {{}}\n")
    (tmp_path / "view.js").write_text("export function only_state() {}\n")
    monkeypatch.setattr(jsbundle, "JS", tmp_path)
    jsbundle.script.cache_clear()
    try:
        with pytest.raises(ValueError, match="only_state is defined in both state.js and view.js"):
            jsbundle.script()
    finally:
        jsbundle.script.cache_clear()
