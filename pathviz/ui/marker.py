"""Moves the selected-iteration marker over figures that are drawn once, in the browser.

The heavy figures (Layer view, metrics) do not change when the user scrubs, so the page does not
resend or redraw them: this small component, mounted inside the scrub fragment, receives the
selected iteration and draws a dotted line (or a ring, for a point in a scatter) over each named
chart, using the chart's own axis conversion. It redraws itself after every plotly redraw
(resize, zoom) and on charts that appear or are replaced after it ran (another run or layer),
and exposes ``data-pv-mark`` on each chart for tests and the browser bench.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

_JS = r"""
function drawOne(m) {
  const gd = document.querySelector('.st-key-' + m.key + ' .js-plotly-plot');
  if (!gd || !gd._fullLayout || !gd._fullLayout._plots) return false;
  const state = window.__pathvizMarker;
  if (!gd.__pvHooked && gd.on) {
    gd.__pvHooked = true;
    gd.on('plotly_afterplot', () => {
      const mark = state.marks.find((x) => x.key === gd.__pvKey);
      if (mark) drawOne(mark);
    });
  }
  gd.__pvKey = m.key;
  const box = gd.querySelector('.svg-container') || gd;
  box.querySelectorAll(':scope > .pv-marker').forEach((e) => e.remove());
  const fl = gd._fullLayout;
  const ids = (fl._subplots && fl._subplots.cartesian) || Object.keys(fl._plots);
  for (const id of ids) {
    const p = fl._plots[id];
    if (!p) continue;
    const xa = p.xaxis, ya = p.yaxis;
    if (xa.overlaying || ya.overlaying) continue;
    const px = xa._offset + xa.c2p(m.x);
    if (!isFinite(px) || px < xa._offset - 1 || px > xa._offset + xa._length + 1) continue;
    const el = document.createElement('div');
    el.className = 'pv-marker';
    el.style.position = 'absolute';
    el.style.pointerEvents = 'none';
    if (m.y === undefined || m.y === null) {
      el.style.left = (px - 1) + 'px';
      el.style.top = ya._offset + 'px';
      el.style.height = ya._length + 'px';
      el.style.borderLeft = '2px dotted #d62728';
    } else {
      const py = ya._offset + ya.c2p(m.y);
      if (!isFinite(py)) continue;
      el.style.left = (px - 9) + 'px';
      el.style.top = (py - 9) + 'px';
      el.style.width = '14px';
      el.style.height = '14px';
      el.style.border = '3px solid #d62728';
      el.style.borderRadius = '50%';
    }
    box.appendChild(el);
    if (m.y !== undefined && m.y !== null) break;
  }
  gd.dataset.pvMark = String(m.x);
  return true;
}

function drawMissing() {
  // a chart element that has not got its current mark: drawn after this component ran, or
  // replaced by a new one (another run or layer)
  const state = window.__pathvizMarker;
  let done = true;
  for (const m of state.marks) {
    const gd = document.querySelector('.st-key-' + m.key + ' .js-plotly-plot');
    if (gd && gd.__pvDrawn === JSON.stringify(m)) continue;
    if (drawOne(m)) gd.__pvDrawn = JSON.stringify(m);
    else done = false;
  }
  return done;
}

export default function (component) {
  const data = component.data || {};
  const state = (window.__pathvizMarker = window.__pathvizMarker || { marks: [] });
  state.marks = data.marks || [];
  state.draw = drawMissing;
  // the browser player (pathviz.ui.player) may be ahead of the server: its position wins
  const player = window.__pathvizPlayer;
  if (player && player.ui && player.ui.root.isConnected && player.override) player.override();
  if (!state.observer) {  // once per page: charts that appear or are replaced later
    let queued = false;
    state.observer = new MutationObserver(() => {
      if (queued) return;
      queued = true;
      requestAnimationFrame(() => { queued = false; drawMissing(); });
    });
    state.observer.observe(document.body, { childList: true, subtree: true });
  }
  if (state.timer) clearInterval(state.timer);
  if (drawMissing()) return;
  let tries = 0;  // charts still being drawn by plotly (first load): retry briefly
  state.timer = setInterval(() => {
    if (drawMissing() || ++tries > 100) clearInterval(state.timer);
  }, 100);
}
"""

_component = None


def marker_ui(marks: list[dict[str, Any]]) -> None:
    """Draw the marks ``[{"key": chart key, "x": iteration or x value, "y": optional}]``.

    Charts are found by their Streamlit ``key``; a mark on a chart that is not on the page is
    ignored.
    """
    global _component
    if _component is None:
        _component = st.components.v2.component("pathviz_marker", js=_JS,
                                                isolate_styles=False)
    _component(data={"marks": marks}, key="pathviz_marker")
