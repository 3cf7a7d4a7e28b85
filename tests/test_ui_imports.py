"""The app's view modules stay torch-free, so the page starts in about a second."""

from __future__ import annotations

import subprocess
import sys


def test_ui_modules_do_not_import_torch():
    code = ("import sys, pkgutil, importlib, pathviz.ui as ui\n"
            "for m in pkgutil.iter_modules(ui.__path__):\n"
            "    importlib.import_module('pathviz.ui.' + m.name)\n"
            "import pathviz.plots\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip().splitlines()
    assert out[-1] == "False"
