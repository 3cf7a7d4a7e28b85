"""End to end in headless Chromium: text from the URL and from a run's files is shown literally.

Hostile ``?run=``, ``?view=``, ``?iteration=``, ``?play=``, ``?layer=`` and ``?compare=`` values
(a markdown link, bare URLs, a markdown image, raw HTML, bidi controls), and a run whose folder
name, layer names, model, dataset and failure reason are hostile: the page must hold no element
whose href or src came from them, make no request to any host but the app's own, and show the
text as it was written (an invisible word joiner aside).
"""

from __future__ import annotations

import urllib.parse

import pytest

from pathviz import runs
from tests.e2e.conftest import NO_CHROMIUM, idle, make_full_run, serve

BAD = ("evil.example", "127.0.0.1:9")  # every hostile link below points at one of these
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
RUN = "www.evil.example"  # a legal run name that GitHub markdown would link
LAYERS = ("www.evil.example", '<a href="mailto:x@evil.example">m',
          "[l](mailto:y@evil.example)\u202e!")  # no '/': HDF5 names cannot hold one
MODEL = "[m](http://evil.example/model)"
REASON = "see http://evil.example/reason ![i](http://127.0.0.1:9/r.png) \u202eexe.txt"
HTML = ('<a href="http://evil.example/h">h</a><img src="http://127.0.0.1:9/i.png">'
        '<script>fetch("http://evil.example/s")</script>')

# (id, query, a sentence the page shows once it is drawn, text it must show literally,
#  the chart to wait for)
CASES = [
    ("run-markdown-link", {"run": "[click me](http://evil.example/phish)"}, "cannot exist",
     "[click me](http://evil.example/phish)", None),
    ("run-image", {"run": "![x](http://127.0.0.1:9/a.png)"}, "cannot exist",
     "![x](http://127.0.0.1:9/a.png)", None),
    ("run-bare-www", {"run": "www.evil.example.phish"}, "There is no run called",
     "www.evil.example.phish", None),
    ("run-bare-url", {"run": "http://evil.example/x https://evil.example/y"}, "cannot exist",
     "http://evil.example/x https://evil.ex", None),
    ("run-html", {"run": HTML}, "cannot exist", '<a href="http://evil.example/h">h</a><', None),
    ("run-bidi", {"run": "\u202eelpmaxe.live//:ptth\u2066x"}, "cannot exist",
     "?elpmaxe.live//:ptth?x", None),
    ("view-iteration-play", {"run": "e2e", "view": "[v](http://evil.example/v)",
                             "iteration": "ftp://evil.example/i", "play": "x@evil.example"},
     "does not exist; showing the Overview", "[v](http://evil.example/v)", "overview"),
    ("layer", {"run": "e2e", "view": "layer",
               "layer": "www.evil.example/l ![i](http://127.0.0.1:9/l.png) <img src=x>"},
     "This run has no layer", "www.evil.example/l ![i](http://127.0.0", "layer_fig"),
    ("compare", {"run": "e2e", "view": "compare",
                 "compare": "[c](http://evil.example/c),https://evil.example/d,"
                            "<img src=http://127.0.0.1:9/c.png>,\u202ex"},
     "do not exist here", "https://evil.example/d", None),
    ("hostile-run-overview", {"run": RUN, "view": "overview"}, "This run failed", MODEL,
     "overview"),
    ("hostile-run-layer", {"run": RUN, "view": "layer", "layer": LAYERS[1]}, "filters in the",
     LAYERS[1], "layer_fig"),
    ("hostile-run-filters", {"run": RUN, "view": "filters"}, "the first convolution",
     "see http://evil.example/reason ![i](http://127.0.0.1:9/r.png) ?exe.txt", "filters"),
    ("hostile-run-compare", {"run": RUN, "view": "compare", "compare": f"{RUN},e2e"},
     "Runs to compare", RUN, "compare_plot"),
]

# every attribute through which an element loads or links something
_LINKS = """(bad) => {
  const out = [];
  for (const e of document.querySelectorAll('*')) {
    for (const a of e.attributes) {
      if (/^(href|src|srcset|xlink:href|action|formaction|poster|data|background)$/i.test(a.name)
          && bad.some((b) => a.value.includes(b))) out.push(`<${e.tagName} ${a.name}=${a.value}>`);
    }
    if (e.tagName === 'SCRIPT' && bad.some((b) => e.textContent.includes(b)))
      out.push('<script> ' + e.textContent.slice(0, 80));
  }
  return out; }"""


@pytest.fixture(scope="module")
def hostile_url(tmp_path_factory):
    """A server on a plain run ``e2e`` and a failed run whose name, layers, model, dataset and
    reason are hostile (written first, so ``e2e`` is the newest run: the default)."""
    if NO_CHROMIUM:
        pytest.skip("Debian chromium is not installed (.ci/run installs it)")
    tmp = tmp_path_factory.mktemp("untrusted")
    root = tmp / "checkpoints"
    paths = make_full_run(root, RUN, layer_names=LAYERS)
    runs.write_status(paths, state="failed", reason=REASON,
                      config={"model": MODEL, "dataset": "www.evil.example"})
    make_full_run(root, "e2e")
    proc, log, url = serve(root, tmp / "streamlit.log", {"PATHVIZ_REFRESH": "0"})
    yield url
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


@pytest.mark.parametrize("query, sentence, literal, chart", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_untrusted_text_is_inert(hostile_url, browser, query, sentence, literal, chart):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"{hostile_url}/?{urllib.parse.urlencode(query)}")
    idle(page)
    page.get_by_text(sentence).first.wait_for()
    if chart == "overview":  # the player draws the heatmap and its layer names on a canvas
        page.locator(".st-key-overview .pv-heatfig canvas.pv-heat").wait_for()
        drawn = page.evaluate("document.querySelector('.st-key-overview .pv-heatfig')"
                              ".__pvTexts.map((t) => t.text)")
        if query.get("run") == RUN:  # the hostile file's layer names, drawn as written
            assert set(LAYERS) <= set(drawn), drawn
    elif chart == "layer_fig":  # the player draws the Layer figure on a canvas
        page.locator(".st-key-layer_fig .pv-chart[data-pv-chart]").wait_for()
        title = page.locator(".st-key-layer_fig .pv-hf-title").inner_text()
        if query.get("run") == RUN:  # the hostile file's layer name, shown as written
            assert title == f"{LAYERS[1]}: filters by entry time", title
    elif chart == "compare_plot":  # the player's chart module writes its legend as text
        page.locator(".st-key-compare_plot .pv-chart[data-pv-chart]").wait_for()
    elif chart:  # plotly draws its text (ticks, titles, legends) after the script has finished
        page.locator(f".st-key-{chart} .js-plotly-plot .main-svg").first.wait_for()
        page.wait_for_function(
            "(k) => document.querySelectorAll('.st-key-' + k + ' .js-plotly-plot text').length",
            arg=chart)
    idle(page)
    assert page.evaluate(_LINKS, list(BAD)) == []
    text = page.evaluate("document.body.innerText").replace("\u2060", "")
    assert not [c for c in BIDI if c in text], "a bidi control reached the page"
    assert literal.replace("\u202e", "?") in text  # shown as written, not as markup
    icon = page.evaluate("(document.querySelector(\"link[rel~='icon']\") || {}).href || ''")
    assert icon.startswith(("data:", hostile_url)), f"the page icon comes from {icon}"
    own = urllib.parse.urlsplit(hostile_url).netloc
    away = [u for u in requests if urllib.parse.urlsplit(u).scheme in ("http", "https", "ws", "wss")
            and urllib.parse.urlsplit(u).netloc != own]
    assert away == [], f"requests to other hosts: {away}"
    assert not page.locator("[data-testid='stException']").count()
    ctx.close()
