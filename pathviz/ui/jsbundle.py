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
MODULES = ("state", "codec", "position", "heat", "charts", "chartview", "pathchart",
           "view", "controls", "bridge")
_IMPORT = re.compile(r"^import\s[^;]*;\n", re.M)
_EXPORT = re.compile(r"^export (?!default)", re.M)
_TOP = re.compile(r"^(?:export )?(?:function|const|let|class) (\w+)", re.M)
# the player's and its figures' look (uPlot's own stylesheet is added by :func:`style`)
CSS = """
<style>
.pv-on .st-key-pv_fallback {display: none !important;}
.pv-player .pv-row {display: flex; align-items: center; gap: 0.5rem; flex-wrap: wrap;}
.pv-player button {border: 1px solid rgba(49, 51, 63, 0.25); border-radius: 0.5rem;
  background: var(--st-background-color, #fff); color: inherit; padding: 0.25rem 0.7rem;
  font: inherit; cursor: pointer; min-height: 2.2rem;}
.pv-player button:hover:not(:disabled) {border-color: var(--st-primary-color, #ff4b4b);}
.pv-player button:disabled {opacity: 0.4; cursor: default;}
.pv-player .pv-range {flex: 1 1 12rem; accent-color: var(--st-primary-color, #ff4b4b);}
.pv-player label {font-size: 0.9rem; display: flex; align-items: center; gap: 0.3rem;}
.pv-player select {font: inherit; padding: 0.15rem;}
.pv-line {margin: 0.3rem 0 0.2rem 0; font-weight: 600;}
.st-key-layer_at p.pv-text {font-size: 0.875rem; color: rgba(49, 51, 63, 0.6); margin: 0;}
p.pv-text {margin: 0;}
.pv-heatfig, .pv-pathfig {position: relative; width: 100%; min-height: 200px;}
.pv-hf-title {font-weight: 600; padding: 0 0 0 10px; white-space: nowrap;}
.pv-hf-sub {color: #6b6b6b; padding: 0.1rem 0 0 10px; white-space: nowrap;}
.pv-heatfig .pv-hf-title, .pv-heatfig .pv-hf-sub {overflow: hidden; text-overflow: ellipsis;}
.pv-heatfig canvas.pv-heat {position: absolute; left: 0; cursor: crosshair;}
.pv-pathfig .pv-legend {display: flex; flex-wrap: wrap; gap: 0.2rem 1rem; padding: 0.3rem 0 0
  10px;}
.pv-pathfig .pv-legend span {display: inline-flex; align-items: center; gap: 0.35rem;}
.pv-pathfig .pv-legend i {display: inline-block; width: 1.6rem; border-top-style: solid;}
.pv-pathfig .u-legend {font-size: 0.85em; text-align: left; padding-left: 10px;}
.pv-pathfig .u-legend th {font-weight: normal;}
.pv-pathfig .pv-marker {position: absolute; pointer-events: none; z-index: 2; top: 0;
  bottom: 0; border-left: 2px dotted #d62728;}
.pv-chart {position: relative; width: 100%; display: flex; flex-direction: column;}
.pv-chart .pv-panels {flex: 1 1 0; min-height: 0; overflow: hidden;}
.pv-chart .pv-hf-title {font-weight: 600; padding: 0 0 0 10px;}
.pv-chart .pv-hf-sub {color: #6b6b6b; padding: 0.1rem 0 0 10px;}
.pv-chart .pv-legend {display: flex; flex-wrap: wrap; gap: 0.2rem 1rem; padding: 0.3rem 0 0.3rem
  10px;}
.pv-chart .pv-legend span {display: inline-flex; align-items: center; gap: 0.35rem;}
.pv-chart .pv-legend i {display: inline-block; width: 1.6rem;}
.pv-chart .pv-ptitle {text-align: center; font-size: 0.85em; color: #444; line-height: 1.2;
  padding-top: 4px;}
.pv-chart .u-over, .pv-pathfig .u-over {cursor: crosshair;}
.pv-chart .u-select {background: rgba(0, 114, 178, 0.12);}
.pv-chart .pv-marker {position: absolute; pointer-events: none; display: none; z-index: 2;
  top: 0; bottom: 0; border-left: 2px dotted #d62728;}
.pv-chart .pv-ring {position: absolute; pointer-events: none; display: none; width: 14px;
  height: 14px; border: 3px solid #d62728; border-radius: 50%; z-index: 2;}
.pv-pathfig .pv-hf-tip, .pv-heatfig .pv-hf-tip, .pv-chart .pv-hf-tip {position: absolute;
  pointer-events: none; display: none; background: rgba(255, 255, 255, 0.95);
  border: 1px solid #999; border-radius: 3px; padding: 0.2rem 0.4rem; font-size: 0.8rem;
  white-space: nowrap; z-index: 5;}
</style>
"""


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


def style() -> str:
    """The ``<style>`` block for a page with the player or its figures: :data:`CSS` and
    uPlot's stylesheet (a page without the player, such as Compare, puts it on by itself)."""
    return CSS.replace("</style>", uplot_css() + "</style>")


def page_script(entry: str = "pvBridge") -> str:
    """:func:`script` for a page that no Streamlit component runs (the report,
    :mod:`pathviz.report`): the entry module's default export bound to ``entry`` instead, so
    that code appended to the same module calls it with its own data and element."""
    text, n = re.subn(r"^export default function\s*\(", f"function {entry}(", script(), count=1,
                      flags=re.M)
    if n != 1:
        raise ValueError("bridge.js has no `export default function (`; update page_script")
    return text
