"""The report as one HTML file: the run's header, the player (the app's own script), the
stop's summary, the tickets and baselines chart with its table, and the method's equations.

Everything the page needs is inside it: the player's script and uPlot (:mod:`pathviz.ui.jsbundle`),
its stylesheet, the run's data as JSON in a ``<script type="application/json">`` element, the
size chart as inline SVG. Nothing refers to a host, a file or a font outside it. Every text from
the run folder (its name, config, layer names, ticket labels) is escaped here or drawn by the
player as plain text (``textContent``, canvas), so none of it is markup or a live link.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from pathviz import __version__ as pathviz_version
from pathviz import jsonsafe, plots
from pathviz.report.data import RunReport
from pathviz.tickets.points import chart_points
from pathviz.ui import jsbundle

HERE = Path(__file__).parent
# config keys that hold paths on the machine that trained the run: left out of the page
# the page may run only its own inline script and styles: no fetch, font, frame or image from
# anywhere (a second guard beside the escaping: injected markup could load nothing)
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
       "img-src data: blob:")
LOCAL_PATHS = ("out", "data_root", "resume", "config")


def esc(v: Any) -> str:
    """Text from the run as inert HTML: escaped, and its URL schemes broken so that no viewer
    (a mail client, a chat preview) turns ``http://...`` into a link."""
    s = html.escape(str(v), quote=True)
    return s.replace("://", ":\u200d//")


def _json(obj: Any) -> str:
    """JSON inside a <script> element: no ``<`` at all, so no ``</script>`` or ``<!--`` can end
    or change the element."""
    return jsonsafe.dumps(obj).replace("<", "\\u003c").replace(">", "\\u003e").replace(
        "&", "\\u0026")


def _pct(v: float | None, digits: int = 2) -> str:
    return "n/a" if v is None else f"{100 * v:.{digits}f} %"


def _count(v: Any) -> str:
    return "n/a" if v is None else f"{int(v):,}"


def _rows(pairs: list[tuple[str, Any]]) -> str:
    return "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in pairs)


def header_html(r: RunReport) -> str:
    """Model, data set, status, fingerprint, settings and what made the numbers."""
    s = r.summary
    model, data, st = s["model"] or {}, s["data"] or {}, s["status"]
    env = s.get("environment") or {}
    cfg = {k: v for k, v in (s.get("config") or {}).items() if k not in LOCAL_PATHS}
    size = (f"{_count(s['params_total'])} parameters"
            + (f", {_count(s['flops_total'])} MACs" if s.get("flops_total") else ""))
    facts = [("model", f"{model.get('name', '?')} ({size})"),
             ("data set", f"{data.get('dataset', '?')} (train {data.get('n_train', '?')}, "
                          f"validation {data.get('n_val', '?')}, test {data.get('n_test', '?')})"),
             ("status", st["state"] + (f" ({st['reason']})" if st.get("reason") else "")),
             ("path", f"{s['iterations']:,} iterations, {s['snapshots']:,} snapshots, "
                      f"{len(s['weight_iterations'])} with saved weights"),
             ("fingerprint", s["fingerprint"]),
             ("schema", s["schema_version"])]
    settings = _rows([(k, json.dumps(v) if isinstance(v, (dict, list)) else v)
                      for k, v in sorted(cfg.items())])
    made = _rows([(k, json.dumps(v) if isinstance(v, (dict, list)) else v)
                  for k, v in sorted(env.items())])
    made = made or "<tr><td>not recorded (an older file)</td></tr>"
    return (f'<header><h1>Regularization path of <span class="pv-run">{esc(r.name)}</span></h1>'
            f'<table class="facts" id="facts">{_rows(facts)}</table>'
            f'<details><summary>Settings (the run\'s config)</summary><table class="kv">'
            f'{settings}</table></details>'
            f'<details><summary>Versions and CPU (what made the numbers)</summary>'
            f'<table class="kv">{made}</table></details></header>')


def stop_html(r: RunReport) -> str:
    """The suggested stop: params, FLOPs (MACs), validation and test accuracy of the compact
    subnetwork; each figure also as ``data-value``, exactly inspect --json's."""
    s, stop = r.summary, r.summary["stop"]
    if stop is None:
        return (f'<section id="stop"><h2>Suggested stop</h2><p>None: '
                f'{esc(s["stop_reason"])}</p></section>')
    tot, ftot = s.get("params_total"), s.get("flops_total")

    def cell(key: str, text: str, value: Any) -> str:
        return (f'<tr><th>{esc(key)}</th><td data-key="{esc(key)}" data-value="'
                f'{esc(jsonsafe.dumps(value))}">{esc(text)}</td></tr>')

    rows = [cell("iteration", f"{stop['iteration']:,}", stop["iteration"]),
            cell("params_kept", _count(stop["params_kept"])
                 + (f" of {tot:,} ({100 * stop['params_kept'] / tot:.1f} %)" if tot else ""),
                 stop["params_kept"]),
            cell("flops_kept", _count(stop["flops_kept"])
                 + (f" of {ftot:,} MACs" if ftot and stop["flops_kept"] is not None else ""),
                 stop["flops_kept"]),
            cell("val_acc", f"{_pct(stop['val_acc'])} ± {_pct(stop['val_se'])} (SE)",
                 stop["val_acc"]),
            cell("test_acc_sparse", _pct(stop["test_acc_sparse"]), stop["test_acc_sparse"])]
    return (f'<section id="stop"><h2>Suggested stop: iteration {stop["iteration"]:,}</h2>'
            f'<p>The compact subnetwork at the stop (its own validation and test accuracy, not '
            f'W with masked weights). Rule: <span id="rule">{esc(stop["rule"])}</span>.</p>'
            f'<table class="facts" id="stop-table">{"".join(rows)}</table></section>')


EQUATIONS = """
<section id="method"><h2>The method: how SLBI grows a sparse network</h2>
<p>Each weight tensor <i>W</i> is coupled with a sparse copy <i>&Gamma;</i>. One iteration,
with <i>m</i> the momentum of the loss gradient:</p>
<math display="block"><mi>W</mi><mo>&larr;</mo><mi>W</mi><mo>&minus;</mo><mi>&alpha;</mi>
<mi>&kappa;</mi><mi>m</mi><mo>&minus;</mo><mfrac><mrow><mi>&alpha;</mi><mi>&kappa;</mi></mrow>
<mi>&nu;</mi></mfrac><mo>(</mo><mi>W</mi><mo>&minus;</mo><mi>&Gamma;</mi><mo>)</mo></math>
<math display="block"><mi>z</mi><mo>&larr;</mo><mi>z</mi><mo>+</mo><mfrac><mi>&alpha;</mi>
<mi>&nu;</mi></mfrac><mo>(</mo><msub><mi>W</mi><mi>old</mi></msub><mo>&minus;</mo><mi>&Gamma;</mi>
<mo>)</mo></math>
<math display="block"><mi>&Gamma;</mi><mo>&larr;</mo><mi>&kappa;</mi><msub><mi>prox</mi>
<mi>&lambda;</mi></msub><mo>(</mo><mi>z</mi><mo>)</mo></math>
<math display="block"><msub><mi>prox</mi><mi>&lambda;</mi></msub><msub><mrow><mo>(</mo><mi>z</mi>
<mo>)</mo></mrow><mi>g</mi></msub><mo>=</mo><msub><mi>z</mi><mi>g</mi></msub><mi>max</mi>
<mrow><mo>(</mo><mn>0</mn><mo>,</mo><mn>1</mn><mo>&minus;</mo><mfrac><mi>&lambda;</mi><mrow>
<mo>&Vert;</mo><msub><mi>z</mi><mi>g</mi></msub><mo>&Vert;</mo></mrow></mfrac><mo>)</mo></mrow>
</math>
<ul><li><i>z</i> (the paper's <i>V</i>) accumulates how much <i>W</i> pulls away from
<i>&Gamma;</i>. A filter <i>g</i> <b>enters the support</b> once &Vert;<i>z<sub>g</sub></i>&Vert;
passes <i>&lambda;</i>; before that <i>&Gamma;<sub>g</sub></i> is exactly zero. Strong filters
enter early, weak ones late or never: the path runs from simple to complex models.</li>
<li><b>lr (&alpha;)</b> is the step size; <b>&kappa;</b> scales &Gamma; and the W step;
<b>&nu;</b> is the coupling (small &nu; ties W to &Gamma;); <b>&lambda;</b> is the entry
threshold.</li>
<li>The suggested stop is the sparsest evaluated iteration whose compact subnetwork's
validation accuracy is within one standard error of the best (glmnet's <i>lambda.1se</i>);
the test accuracy is only reported.</li></ul></section>
"""


def _ordinal(k: int) -> str:
    """2nd, 3rd, 4th, 11th, 21st, ..."""
    tail = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{tail}"


def sampling_note(r: RunReport) -> str:
    """What the page holds of the path, said in the page."""
    if r.stride <= 1:
        return (f"This file holds every one of the path's {r.n:,} snapshots; the player "
                f"steps through each.")
    return (f"The path has {r.n:,} snapshots. As the app does for large runs, this file holds "
            f"the Overview heatmap of every {_ordinal(r.stride)} snapshot (and the last): a "
            f"step between them shows the nearest held one, marked \u201cnearest sent\u201d. "
            f"Counts, lines and charts hold every snapshot.")


def tickets_html(points: list[dict[str, Any]], svg: str | None) -> str:
    """The accuracy-vs-size chart (inline SVG, drawn by :mod:`pathviz.report.figures`) and its
    points as a table; empty when the run has neither tickets nor baselines."""
    if svg is None:
        return ""
    head = ("series", "kind", "method", "iteration", "params", "MACs", "test accuracy", "SE",
            "seeds")
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(v)}</td>" for v in (
            p.get("series"), p.get("kind"), p.get("method"),
            "" if p.get("iteration") is None else f"{p['iteration']:,}", _count(p.get("params")),
            _count(p.get("flops")), _pct(p.get("acc")),
            "" if p.get("se") is None else _pct(p["se"]), p.get("seeds") or "")) + "</tr>"
        for p in points)
    return (f'<section id="tickets"><h2>Tickets and baselines: test accuracy against size</h2>'
            f'<div class="svg">{svg}</div><table class="grid" id="tickets-table"><tr>'
            + "".join(f"<th>{h}</th>" for h in head) + f"</tr>{body}</table></section>")


def tickets_section(run_dir: str | Path, r: RunReport) -> str:
    """The tickets and baselines section, when the run has any (the path's own points alone
    are on the Metrics tab already)."""
    from pathviz.report import figures  # lazy: matplotlib loads only for a run with tickets
    points, _ = chart_points(run_dir)
    if not any(p["kind"] != "path" for p in points):
        return ""
    stop = r.summary["stop"]
    fig = figures.size_figure(points, stop["iteration"] if stop else None)
    return tickets_html(points, None if fig is None else figures.svg_text(fig))


def render(r: RunReport, tickets: str = "") -> str:
    """The whole page as one string."""
    css = (jsbundle.style().replace("<style>", "").replace("</style>", "")
           + (HERE / "report.css").read_text())
    payload = {"player": r.player, "present": r.present, "layers": r.layers,
               "charts": r.charts, "start": r.index}
    layer_opts = "".join(f'<option value="{esc(k)}">{esc(k)}</option>' for k in r.layers)
    script = jsbundle.page_script() + "\n// ---- report ----\n" + (HERE / "report.js").read_text()
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="generator" content="pathviz {esc(pathviz_version)}">
<title>pathviz report: {esc(r.name)}</title>
<style>{css}</style></head>
<body class="pv-report">
{header_html(r)}
<nav class="tabs" role="tablist">
<button role="tab" data-tab="overview" aria-selected="true">Overview</button>
<button role="tab" data-tab="layer">Layer</button>
<button role="tab" data-tab="metrics">Metrics &amp; stopping</button>
<button role="tab" data-tab="present">Presentation mode</button>
</nav>
<div id="player" class="pv-sticky"></div>
<p class="note" id="sampling">{esc(sampling_note(r))} Keys: &larr;/&rarr; one snapshot
(Shift: ten), Home/End, Space play/pause.</p>
<main>
<section data-panel="overview"><div class="st-key-overview"><div class="pv-heatfig"
 role="img" aria-label="heatmap" style="height:{int(_heat_height(r))}px"></div></div></section>
<section data-panel="layer" hidden><label>Layer <select id="layer-pick">{layer_opts}</select>
</label><div class="st-key-layer_at"><p class="pv-text" aria-live="polite"></p></div>
<div class="st-key-layer_fig" id="layer-box"></div></section>
<section data-panel="metrics" hidden><p class="note" id="stop-line">{esc(_stop_line(r))}</p>
<div class="st-key-metrics_plot" id="metrics-box"></div>
<div class="st-key-tradeoff_plot" id="tradeoff-box"></div></section>
<section data-panel="present" hidden><div class="st-key-present_status"><p class="pv-text"
 aria-live="polite"></p></div><div class="present-plots"><div class="st-key-present_heatmap">
<div class="pv-heatfig" role="img" aria-label="heatmap"></div></div>
<div class="st-key-present_path"><div class="pv-pathfig" role="img" aria-label="support path">
</div></div></div></section>
</main>
{stop_html(r)}
{tickets}
{EQUATIONS}
<footer>Made by pathviz {esc(pathviz_version)} from the run's path file alone; it opens
offline and sends nothing anywhere.</footer>
<script type="application/json" id="pv-data">{_json(payload)}</script>
<script type="module">{script}</script>
</body></html>
"""


def _stop_line(r: RunReport) -> str:
    stop = r.summary["stop"]
    if stop is None:
        return f"No suggested stop: {r.summary['stop_reason']}"
    return f"Suggested stop: iteration {stop['iteration']:,} (dashed orange). Rule: {stop['rule']}."


def _heat_height(r: RunReport) -> int:
    return plots.heatmap_height(max(len(r.layers), 1))
