// The Layer and Metrics views' figures: a spec comes once per figure through the chart
// component (pathviz.ui.chart) and is drawn once per size; a step only moves the position's
// marker (markCharts). Hover names each series and its value, a click goes to an iteration,
// a drag zooms the iteration axis and a double-click zooms out.

import { decode } from './codec.js';
import { fmt, nearestIndex } from './position.js';
import { P, current } from './state.js';
import { drawColorbar } from './heat.js';
import { figParts, surface, showTip } from './figure.js';
import {
  chartGeom, fmtValue, drawHeatPanel, legendItems, panelY, putRotated, strokeSeries,
} from './charts.js';

export function drawChart(ch) {
  const box = ch.box, spec = ch.spec, font = spec.font || 12;
  const parts = figParts(box, '<div class="pv-legend"></div>', 'pv-chartcv', chartHover, () => {
    if (box.__pvDrawn !== box.clientWidth + 'x' + box.clientHeight) { drawChart(ch); markCharts(); }
  }, '<div class="pv-marker"></div><div class="pv-ring"></div>');
  if (!parts.clicks) {
    parts.clicks = true;
    parts.cv.addEventListener('click', (e) => chartClick(box, e));
    parts.cv.addEventListener('mousedown', (e) => zoomStart(box, e));
    parts.cv.addEventListener('dblclick', () => {
      if (P.zoom && P.zoom[ch.key]) setZoom(box.__pvChart, null);
    });
  }
  box.__pvChart = ch;
  parts.title.textContent = spec.title || '';
  parts.title.style.fontSize = (font + 4) + 'px';
  parts.title.style.display = spec.title ? '' : 'none';
  parts.sub.textContent = spec.subtitle || '';
  parts.sub.style.fontSize = font + 'px';
  parts.sub.style.display = spec.subtitle ? '' : 'none';
  const zoom = chartZoom(ch);
  if (zoom) {  // said before the canvas is placed under the title lines
    parts.sub.style.display = '';
    parts.sub.textContent = (spec.subtitle ? spec.subtitle + ' · ' : '')
      + `zoomed to iterations ${fmt(zoom[0])}–${fmt(zoom[1])}: double-click to zoom out`;
  }
  legendItems(parts.legend, spec, font);
  const top = parts.legend.offsetTop + parts.legend.offsetHeight + 6;
  const { ctx, W, H, put, family } = surface(box, parts.cv, top, font);
  const g = chartGeom(spec, ctx, W, H, font, zoom);
  box.__pvGeom = g;
  if (zoom) box.dataset.pvZoom = zoom.map(Math.round).join(',');
  else delete box.dataset.pvZoom;
  const inX = (v) => !(g.log && v <= 0) && g.px(v) >= g.left - 0.5 && g.px(v) <= g.right + 0.5;
  spec.panels.forEach((p, k) => {
    const r = g.panels[k];
    const Y = (v, axis) => panelY(p, r, v, axis);
    ctx.save();
    ctx.beginPath(); ctx.rect(g.left, r.top - 1, g.w, r.h + 2); ctx.clip();
    if (p.band) {
      ctx.fillStyle = 'rgba(255, 127, 14, 0.15)';
      ctx.fillRect(g.left, Y(p.band[1]), g.w, Y(p.band[0]) - Y(p.band[1]));
    }
    ctx.strokeStyle = '#ececec';
    ctx.lineWidth = 1;
    if (r.ticks && !p.heat) {
      for (const v of r.ticks.vals) {
        ctx.beginPath(); ctx.moveTo(g.left, Y(v)); ctx.lineTo(g.right, Y(v)); ctx.stroke();
      }
    }
    if (!p.heat) {
      for (const v of g.xticks.vals) {
        if (!inX(v)) continue;
        ctx.beginPath(); ctx.moveTo(g.px(v), r.top); ctx.lineTo(g.px(v), r.bottom); ctx.stroke();
      }
    }
    if (p.heat) drawHeatPanel(ctx, g, r, p.heat, parts);
    if (p.hline) {
      ctx.strokeStyle = p.hline.color;
      ctx.setLineDash([2, 3]);
      ctx.beginPath(); ctx.moveTo(g.left, Y(p.hline.y)); ctx.lineTo(g.right, Y(p.hline.y)); ctx.stroke();
      ctx.setLineDash([]);
    }
    for (const s of p.series || []) strokeSeries(ctx, g, p, r, s);
    for (const s of p.strip || []) {
      ctx.strokeStyle = s.color;
      ctx.lineWidth = 2;
      for (const v of s.x) {
        if (!inX(v)) continue;
        ctx.beginPath(); ctx.moveTo(g.px(v), r.top + r.h * 0.1); ctx.lineTo(g.px(v), r.bottom - r.h * 0.1); ctx.stroke();
      }
    }
    if (spec.stop && inX(spec.stop.x)) {
      const sx = g.px(spec.stop.x);
      ctx.strokeStyle = '#ff7f0e';
      ctx.lineWidth = 2;
      ctx.setLineDash([6, 4]);
      ctx.beginPath(); ctx.moveTo(sx, r.top); ctx.lineTo(sx, r.bottom); ctx.stroke();
      ctx.setLineDash([]);
    }
    ctx.restore();
    // the panel's frame line, axes, labels and titles
    ctx.strokeStyle = '#bbb';
    ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(g.left, r.bottom + 0.5); ctx.lineTo(g.right, r.bottom + 0.5); ctx.stroke();
    if (p.y.labels) {
      p.y.labels.forEach((l, j) => put(l, g.left - 6, Y(j), 'right', 'middle'));
    } else if (r.ticks) {
      for (const v of r.ticks.vals) put(fmtValue(v, p.y.fmt, r.ticks.step), g.left - 6, Y(v), 'right', 'middle');
    }
    if (p.y.title) putRotated(ctx, put, p.y.title, 10 + font / 2, r, font, family);
    if (p.title) put(p.title, g.left + g.w / 2, r.top - 4, 'center', 'bottom');
    if (p.y2) {
      let tw = 10;
      for (const v of r.ticks2.vals) {
        const t = fmtValue(v, p.y2.fmt, r.ticks2.step);
        put(t, g.right + 6, Y(v, 2), 'left', 'middle');
        tw = Math.max(tw, ctx.measureText(t).width);
      }
      putRotated(ctx, put, p.y2.title, g.right + 6 + tw + 8 + font / 2, r, font, family);
    }
    if (p.colorbar) drawColorbar(ctx, put, g, r, p.colorbar, font);
  });
  // the iteration axis under the last panel and the top axis (the legend names the stop)
  const last = g.panels[g.panels.length - 1];
  ctx.strokeStyle = '#999';
  for (const v of g.xticks.vals) {
    if (!inX(v)) continue;
    ctx.beginPath(); ctx.moveTo(g.px(v), last.bottom); ctx.lineTo(g.px(v), last.bottom + 4); ctx.stroke();
    put(fmtValue(v, spec.x.fmt, g.xticks.step || 1), g.px(v), last.bottom + 6, 'center', 'top');
  }
  put(spec.x.title, g.left + g.w / 2, last.bottom + font + 12, 'center', 'top');
  if (spec.top && g.panels.length) {
    const r0 = g.panels[0];
    ctx.strokeStyle = '#999';
    let lastRight = -Infinity;
    for (const [v, t] of spec.top.ticks) {
      if (!inX(v)) continue;
      const w = ctx.measureText(t).width;
      if (g.px(v) - w / 2 < lastRight + 6) continue;  // no two labels on each other
      lastRight = g.px(v) + w / 2;
      ctx.beginPath(); ctx.moveTo(g.px(v), r0.top); ctx.lineTo(g.px(v), r0.top - 4); ctx.stroke();
      put(t, g.px(v), r0.top - 6, 'center', 'bottom');
    }
    put(spec.top.title, g.left + g.w / 2, 2, 'center', 'top');
  }
  box.setAttribute('aria-label', spec.title || spec.panels.map((p) => p.title).filter(Boolean).join('; '));
  box.__pvDrawn = box.clientWidth + 'x' + box.clientHeight;
  box.dataset.pvChart = ch.id;
}

function chartPoint(box, e) {
  const g = box.__pvGeom, parts = box.__pv;
  if (!g) return null;
  const rc = parts.cv.getBoundingClientRect();
  const x = e.clientX - rc.left, y = e.clientY - rc.top;
  const k = g.panels.findIndex((r) => y >= r.top - 3 && y <= r.bottom + 3);
  if (x < g.left - 3 || x > g.right + 3 || k < 0) return null;
  return { x, y, k, rc };
}

function nearestPoint(ch, g, x, y) {  // "points" mode: the point nearest the pointer
  const pts = ch.spec.points, p = ch.spec.panels[0], r = g.panels[0];
  let best = -1, d = 24 * 24;
  for (let j = 0; j < pts.x.length; j++) {
    const dx = g.px(pts.x[j]) - x, dy = panelY(p, r, pts.y[j]) - y;
    if (dx * dx + dy * dy < d) { d = dx * dx + dy * dy; best = j; }
  }
  return best;
}

function chartHover(box, e) {
  const ch = box.__pvChart, g = box.__pvGeom, parts = box.__pv, at = chartPoint(box, e);
  const lines = [];
  if (ch && g && at) {
    const spec = ch.spec, p = spec.panels[at.k], r = g.panels[at.k];
    if (spec.mode === 'points') {
      const j = nearestPoint(ch, g, at.x, at.y), pts = spec.points;
      if (j >= 0) {
        lines.push(`iteration ${fmt(pts.it[j])} (click: go there)`,
          `${pts.xlabel} ${fmt(pts.x[j])}`, `${pts.ylabel} ${fmtValue(pts.y[j], 'pct1')}`);
      }
    } else {
      const it = g.inv(at.x);
      if (p.heat) {
        const k = nearestIndex(p.heat.x, it);
        const row = Math.min(Math.max(Math.floor((at.y - r.top) / r.h * p.heat.rows), 0), p.heat.rows - 1);
        if (k >= 0) {
          lines.push(`iteration ${fmt(p.heat.x[k])} (click: go there)`, p.heat.rowText[row],
            `group ‖Γ‖ level ${p.heat.z[row * p.heat.cols + k]} of 255 (0: outside the support)`);
        }
      } else if (p.strip) {
        let best = null, d = 8;
        for (const s of p.strip) {
          const j = nearestIndex(s.x, it);
          if (j >= 0 && Math.abs(g.px(s.x[j]) - at.x) <= d) { d = Math.abs(g.px(s.x[j]) - at.x); best = [s, j]; }
        }
        if (best) lines.push(`iteration ${fmt(best[0].x[best[1]])} (click: go there)`, best[0].name);
      } else {
        const hov = (p.series || []).filter((s) => s.hover && s.x.length);
        let xb = null, d = Infinity;
        for (const s of hov) {
          const j = nearestIndex(s.x, it);
          const dj = Math.abs(g.px(s.x[j]) - at.x);
          if (dj < d) { d = dj; xb = s.x[j]; }
        }
        if (xb !== null) {
          lines.push(`iteration ${fmt(xb)} (click: go there)`);
          for (const s of hov) {
            const j = nearestIndex(s.x, xb);
            if (s.x[j] === xb) lines.push(`${s.name}: ${fmtValue(s.y[j], s.fmt)}`);
          }
        }
      }
    }
  }
  showTip(parts, e, lines);
}

function chartZoom(ch) {
  // the iteration range the user zoomed this figure to (kept while the figure is redrawn, a
  // live run's growth included), or null; one made on another axis type does not apply
  const z = P.zoom && P.zoom[ch.key];
  if (!z || ch.spec.mode !== 'iteration' || z.log !== !!ch.spec.x.log) return null;
  return [z.lo, z.hi];
}

function setZoom(ch, z) {
  // zoom this figure's iteration axis to z ({lo, hi, log}), or out (null), and redraw it
  P.zoom = P.zoom || {};
  if (z) P.zoom[ch.key] = z;
  else delete P.zoom[ch.key];
  drawChart(ch);
  markCharts();
}

function zoomStart(box, e) {
  // a drag across an iteration chart zooms its iteration axis to the dragged range
  const ch = box.__pvChart, g = box.__pvGeom, at = chartPoint(box, e);
  if (e.button !== 0 || !ch || !g || !at || ch.spec.mode !== 'iteration') return;
  e.preventDefault();  // no text selection while dragging
  const parts = box.__pv, r0 = g.panels[0], r1 = g.panels[g.panels.length - 1];
  let zb = box.querySelector('.pv-zoombox');
  if (!zb) {
    zb = document.createElement('div');
    zb.className = 'pv-zoombox';
    box.appendChild(zb);
  }
  const clamp = (x) => Math.min(Math.max(x, g.left), g.right);
  const start = clamp(at.x), rect = parts.cv.getBoundingClientRect();
  const move = (ev) => {
    const x = clamp(ev.clientX - rect.left);
    zb.style.display = 'block';
    zb.style.left = Math.min(start, x) + 'px';
    zb.style.width = Math.abs(x - start) + 'px';
    zb.style.top = (parts.cv.offsetTop + r0.top) + 'px';
    zb.style.height = (r1.bottom - r0.top) + 'px';
  };
  const up = (ev) => {
    window.removeEventListener('mousemove', move);
    window.removeEventListener('mouseup', up);
    zb.style.display = 'none';
    const x = clamp(ev.clientX - rect.left);
    if (Math.abs(x - start) < 6) return;  // a click, not a drag
    parts.dragged = true;  // the click that follows this mouseup selects nothing
    setZoom(ch, { lo: g.inv(Math.min(start, x)), hi: g.inv(Math.max(start, x)),
      log: !!ch.spec.x.log });
  };
  window.addEventListener('mousemove', move);
  window.addEventListener('mouseup', up);
}

function chartClick(box, e) {
  // an iteration chart selects the snapshot nearest the pointer's iteration; a points chart
  // the nearest point's snapshot
  const ch = box.__pvChart, g = box.__pvGeom, at = chartPoint(box, e);
  const c = current();
  if (box.__pv && box.__pv.dragged) { box.__pv.dragged = false; return; }  // that was a zoom
  if (!ch || !g || !at || !c) return;
  if (ch.spec.mode === 'points') {
    const j = nearestPoint(ch, g, at.x, at.y);
    if (j >= 0) P.act.moveTo(Math.min(ch.spec.points.index[j], c.iterations.length - 1));
    return;
  }
  const i = nearestIndex(c.iterations, g.inv(Math.min(Math.max(at.x, g.left), g.right)));
  if (i >= 0) P.act.moveTo(i);
}

function markChart(ch, c, i) {
  // the position: a dotted red line across the panels, or a ring on the point
  const box = ch.box, g = box.__pvGeom, parts = box.__pv;
  if (!g || !parts || !c || !c.iterations.length) return;
  const it = c.iterations[Math.min(i, c.iterations.length - 1)];
  const m = parts.marker, ring = box.querySelector('.pv-ring');
  const r0 = g.panels[0], r1 = g.panels[g.panels.length - 1];
  m.style.display = 'none';
  if (ring) ring.style.display = 'none';
  if (ch.spec.mode === 'points') {
    const pts = ch.spec.points;
    let j = -1;
    for (let k = 0; k < pts.index.length && pts.index[k] <= i; k++) j = k;
    if (j >= 0 && ring) {
      ring.style.display = 'block';
      ring.style.left = (g.px(pts.x[j]) - 9) + 'px';
      ring.style.top = (parts.cv.offsetTop + panelY(ch.spec.panels[0], r0, pts.y[j]) - 9) + 'px';
      box.dataset.pvMark = String(pts.x[j]);
      box.dataset.pvMarkIt = String(pts.it[j]);
    } else {
      delete box.dataset.pvMarkIt;
      box.dataset.pvMark = '';
    }
    return;
  }
  if (!(g.log && it <= 0) && g.px(it) >= g.left - 1 && g.px(it) <= g.right + 1) {
    m.style.display = 'block';
    m.style.left = (g.px(it) - 1) + 'px';
    m.style.top = (parts.cv.offsetTop + r0.top) + 'px';
    m.style.height = (r1.bottom - r0.top) + 'px';
  }
  box.dataset.pvMark = String(it);
}

export function markCharts() {
  const c = current();
  const i = P.drawn ? P.drawn.i : Math.floor(P.pos);
  for (const k of Object.keys(P.charts || {})) {
    const ch = P.charts[k];
    if (!ch.box.isConnected) { delete P.charts[k]; continue; }
    markChart(ch, c, i);
  }
}

export function mountChart(component) {
  // the chart component (pathviz.ui.chart): one figure, drawn when its spec or size changes
  const { data, parentElement } = component;
  let box = parentElement.querySelector(':scope > .pv-chart');
  if (!box) {
    box = document.createElement('div');
    box.className = 'pv-chart';
    box.setAttribute('role', 'img');
    parentElement.appendChild(box);
  }
  box.style.height = data.height + 'px';
  P.charts = P.charts || {};
  let ch = P.charts[data.key];
  if (!ch || ch.id !== data.id || ch.box !== box) {
    ch = P.charts[data.key] = { id: data.id, key: data.key, spec: decode(data.chart), box };
    box.__pvDrawn = null;
  }
  if (box.__pvDrawn !== box.clientWidth + 'x' + box.clientHeight || box.dataset.pvChart !== ch.id) {
    drawChart(ch);
  }
  markCharts();
}
