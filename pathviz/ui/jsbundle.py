"""The browser player's script: its ES modules (``pathviz/ui/js/``) joined into the one script a
Streamlit component runs, after the vendored uPlot (``pathviz/ui/vendor/``).

The modules import each other by relative path so that a browser loads them as they are (their
unit tests do, tests/js/); a component takes one script, so this joins them in dependency order,
dropping the ``import`` statements and the ``export`` keywords (the entry module keeps its
``export default``). Top-level names must therefore be unique across the modules: :func:`script`
refuses a name defined twice. No Node at install or run time.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

HERE = Path(__file__).parent
JS = HERE / "js"
VENDOR = HERE / "vendor"
# dependency order: each module imports only modules before it
MODULES = ("state", "codec", "position", "figure", "heat", "charts", "chartview", "pathchart",
           "view", "controls", "bridge")
_IMPORT = re.compile(r"^import\s[^;]*;\n", re.M)
_EXPORT = re.compile(r"^export (?!default)", re.M)
_TOP = re.compile(r"^(?:export )?(?:function|const|let|class) (\w+)", re.M)


def module_text(name: str) -> str:
    """Module ``name`` without its imports and with plain (not exported) definitions."""
    return _EXPORT.sub("", _IMPORT.sub("", (JS / f"{name}.js").read_text()))


@functools.cache
def script() -> str:
    """uPlot, then the modules in :data:`MODULES` order, as one ES module script."""
    seen: dict[str, str] = {}
    for name in MODULES:
        for top in _TOP.findall((JS / f"{name}.js").read_text()):
            if top in seen:
                raise ValueError(f"{top} is defined in both {seen[top]}.js and {name}.js; "
                                 "rename one (the player's modules share one scope)")
            seen[top] = name
    parts = [(VENDOR / "uPlot.iife.min.js").read_text()]
    parts += [f"// ---- {name}.js ----\n" + module_text(name) for name in MODULES]
    return "\n".join(parts)


def uplot_css() -> str:
    """uPlot's own stylesheet (vendored)."""
    return (VENDOR / "uPlot.min.css").read_text()


def page_script(entry: str = "pvBridge") -> str:
    """:func:`script` for a page that no Streamlit component runs (the report,
    :mod:`pathviz.report`): the entry module's default export bound to ``entry`` instead, so
    that code appended to the same module calls it with its own data and element."""
    text, n = re.subn(r"^export default function\s*\(", f"function {entry}(", script(), count=1,
                      flags=re.M)
    if n != 1:
        raise ValueError("bridge.js has no `export default function (`; update page_script")
    return text
