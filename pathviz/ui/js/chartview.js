// The Layer and Metrics views' figures on uPlot: one plot per panel of a spec
// (pathviz.charts), stacked on one iteration axis (zoom and cursor shared). uPlot gives the
// scales, axes, grid, cursor and drag-zoom; hooks draw what it has no series for (the heat
// panel, the colour bar, the 1-SE band, the stop, the saved-weight ticks, dots coloured by
// iteration). A step only moves the position's marker; a click goes to an iteration.

import { decode } from './codec.js';
import { fmt, nearestIndex } from './position.js';
import { P, current } from './state.js';
import { drawColorbar, paintCells, palette } from './heat.js';
import { alignPanel, fmtValue, logSplits, panelHeights } from './charts.js';

const STOP = '#ff7f0e';
const dpr = () => window.devicePixelRatio || 1;

function inCss(u, fn) {  // draw on uPlot's canvas in CSS pixels
  const ctx = u.ctx, k = dpr();
  ctx.save();
  ctx.scale(k, k);
  fn(ctx, { left: u.bbox.left / k, top: u.bbox.top / k, w: u.bbox.width / k, h: u.bbox.height / k });
  ctx.restore();
}

function drawExtras(ch, p, u) {
  // what uPlot has no series for, under the plot's own lines (drawClear) or over them (draw)
  const spec = ch.spec, x = (v) => u.valToPos(v, 'x'), y = (v, s = 'y') => u.valToPos(v, s);
  inCss(u, (ctx, b) => {
    ctx.beginPath(); ctx.rect(b.left, b.top - 1, b.w, b.h + 2); ctx.clip();
    if (p.band) {
      ctx.fillStyle = 'rgba(255, 127, 14, 0.15)';
      ctx.fillRect(b.left, b.top + y(p.band[1]), b.w, y(p.band[0]) - y(p.band[1]));
    }
    if (p.heat) {
      const h = p.heat, off = ch.cells || (ch.cells = document.createElement('canvas'));
      paintCells(off, h.z, h.cols, h.rows, h.scale);
      ctx.imageSmoothingEnabled = false;
      for (let k = 0; k < h.cols; k++) {
        if (spec.x.log && h.x[k] <= 0) continue;
        const xl = k && !(spec.x.log && h.x[k - 1] <= 0) ? (x(h.x[k - 1]) + x(h.x[k])) / 2 : x(h.x[k]);
        const xr = k < h.cols - 1 ? (x(h.x[k]) + x(h.x[k + 1])) / 2 : x(h.x[k]);
        ctx.drawImage(off, k, 0, 1, h.rows, b.left + xl, b.top, Math.max(xr - xl, 1), b.h);
      }
    }
    if (p.hline) {
      ctx.strokeStyle = p.hline.color;
      ctx.setLineDash([2, 3]);
      ctx.beginPath(); ctx.moveTo(b.left, b.top + y(p.hline.y)); ctx.lineTo(b.left + b.w, b.top + y(p.hline.y)); ctx.stroke();
      ctx.setLineDash([]);
    }
    for (const s of p.strip || []) {
      ctx.strokeStyle = s.color;
      ctx.lineWidth = 2;
      for (const v of s.x) {
        ctx.beginPath(); ctx.moveTo(b.left + x(v), b.top + b.h * 0.1); ctx.lineTo(b.left + x(v), b.top + b.h * 0.9); ctx.stroke();
      }
    }
    for (const s of p.series || []) {
      if (!s.levels) continue;  // dots coloured by iteration, joined in the data's order
      const pal = palette(s.scale);
      ctx.strokeStyle = s.color; ctx.lineWidth = s.width;
      ctx.beginPath();
      s.x.forEach((v, j) => (j ? ctx.lineTo : ctx.moveTo).call(ctx, b.left + x(v), b.top + y(s.y[j])));
      ctx.stroke();
      s.x.forEach((v, j) => {
        const l = s.levels[j] * 4;
        ctx.fillStyle = `rgb(${pal[l]},${pal[l + 1]},${pal[l + 2]})`;
        ctx.beginPath(); ctx.arc(b.left + x(v), b.top + y(s.y[j]), s.dot / 2, 0, 2 * Math.PI); ctx.fill();
        ctx.strokeStyle = 'rgba(0,0,0,0.35)'; ctx.lineWidth = 0.5; ctx.stroke();
      });
    }
    if (spec.stop && spec.mode === 'iteration') {
      ctx.strokeStyle = STOP; ctx.lineWidth = 2; ctx.setLineDash([6, 4]);
      const sx = b.left + x(spec.stop.x);
      ctx.beginPath(); ctx.moveTo(sx, b.top); ctx.lineTo(sx, b.top + b.h); ctx.stroke();
      ctx.setLineDash([]);
    }
  });
  if (p.colorbar) {
    inCss(u, (ctx, b) => {
      const font = spec.font || 12;
      ctx.font = `${font}px ${ch.family}`;
      const put = (text, px, py, align, base, turn) => {
        ctx.fillStyle = '#444'; ctx.textAlign = align; ctx.textBaseline = base;
        if (turn) { ctx.save(); ctx.translate(px, py); ctx.rotate(turn); ctx.fillText(text, 0, 0); ctx.restore(); }
        else ctx.fillText(text, px, py);
      };
      drawColorbar(ctx, put, { right: b.left + b.w }, { top: b.top, h: b.h }, p.colorbar, font);
    });
  }
}

function axis(font, family, extra) {
  return Object.assign({ font: `${font}px ${family}`, labelFont: `${font}px ${family}`,
    stroke: '#444', grid: { stroke: '#ececec', width: 1 }, ticks: { stroke: '#999', width: 1, size: 4 } }, extra);
}

function tickValues(fmtName) {
  return (u, vals) => vals.map((v) => fmtValue(v, fmtName, vals.length > 1 ? Math.abs(vals[1] - vals[0]) : 1));
}

function panelOpts(ch, k, width, height, right) {
  const spec = ch.spec, p = spec.panels[k], font = spec.font || 12, fam = ch.family;
  const last = k === spec.panels.length - 1, first = k === 0, log = !!spec.x.log;
  const [grid, cols] = alignPanel(p.series || [], log);
  const data = [grid].concat(cols.map((c) => c.y));
  const yAxis = { scale: 'y', size: 58 + font, label: p.y.title || ' ', labelSize: font + 6 };
  if (p.y.fmt === 'none') Object.assign(yAxis, { values: () => [], grid: { show: false }, ticks: { show: false } });
  else if (p.y.labels) Object.assign(yAxis, { splits: () => p.y.labels.map((_, j) => j), values: () => p.y.labels });
  else if (p.y.fmt === 'rank') Object.assign(yAxis, { incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000], values: tickValues('int') });
  else yAxis.values = tickValues(p.y.fmt);
  if (p.y.log) Object.assign(yAxis, { splits: (u) => logSplits(u.scales.y.min, u.scales.y.max),
    values: (u, vals) => vals.map((v) => (v == null ? '' : String(+v.toPrecision(3)))) });
  if (p.heat) yAxis.grid = { show: false };
  const xlog = log ? { splits: (u) => logSplits(u.scales.x.min, u.scales.x.max) } : {};
  const axes = [axis(font, fam, { ...xlog, scale: 'x', show: true, size: last ? font * 2 + 14 : 6,
    label: last ? spec.x.title : '', labelSize: last ? font + 4 : 0, grid: { show: !p.heat, stroke: '#ececec' },
    values: last ? tickValues(spec.x.fmt) : () => [], ticks: { show: last } }), axis(font, fam, yAxis)];
  if (first && spec.top) {  // glmnet's df axis: groups selected at evenly spaced counts
    axes.push(axis(font, fam, { scale: 'x', side: 0, size: font * 2 + 12, label: spec.top.title,
      labelSize: font + 4, grid: { show: false },
      splits: (u) => spec.top.ticks.map((t) => t[0]).filter((v) => v >= u.scales.x.min && v <= u.scales.x.max),
      values: (u, vals) => {  // a label that would meet the previous one is left out
        let edge = -Infinity;
        return vals.map((v) => {
          const t = (spec.top.ticks.find((q) => q[0] === v) || [0, ''])[1], x = u.valToPos(v, 'x');
          const w = t.length * font * 0.6 + 8;
          if (x - w / 2 < edge) return '';
          edge = x + w / 2;
          return t;
        });
      } }));
  }
  const scales = { x: { time: false, auto: false, range: () => ch.range, distr: log ? 3 : 1 },
    y: { auto: false, range: [p.y.lo, p.y.hi], dir: p.y.fmt === 'rank' ? -1 : 1, distr: p.y.log ? 3 : 1 } };
  if (p.y2) {
    scales.y2 = { auto: false, range: [p.y2.lo, p.y2.hi] };
    axes.push(axis(font, fam, { scale: 'y2', side: 1, size: right, label: p.y2.title, labelSize: font + 6,
      grid: { show: false }, values: tickValues(p.y2.fmt) }));
  } else if (right) {  // as wide as a y2 axis with its title: every panel's plot lines up
    axes.push({ scale: 'y', side: 1, size: right, label: ' ', labelSize: font + 6, values: () => [],
      grid: { show: false }, ticks: { show: false } });
  }
  const series = [{}].concat(cols.map(({ s }) => ({
    label: s.name, stroke: s.width > 0 ? s.color : 'transparent', width: s.width, dash: s.dash || undefined,
    scale: s.axis === 2 ? 'y2' : 'y', spanGaps: true, paths: s.width > 0 ? undefined : () => null,
    points: { show: s.dot > 0, size: s.dot || 0, width: s.ring ? 2 : 0, stroke: s.color, fill: s.ring ? 'transparent' : s.color },
  })));
  return [{
    width, height, scales, axes, series, legend: { show: false },
    cursor: { sync: { key: 'pv-' + ch.key }, drag: { x: spec.mode === 'iteration', y: false, setScale: false },
      points: { show: false }, bind: { dblclick: () => () => null } },
    hooks: { drawClear: [(u) => drawExtras(ch, p, u)], setSelect: [(u) => zoomFrom(ch, u)],
      draw: [() => markChart(ch, current(), P.drawn ? P.drawn.i : Math.floor(P.pos))],  // new scales
      setCursor: [(u) => hoverAt(ch, k, u)] },
  }, data];
}

function legend(el, spec, font) {
  el.textContent = '';
  el.style.fontSize = font + 'px';
  if (spec.legendTitle) el.append(Object.assign(document.createElement('span'), { textContent: spec.legendTitle }));
  for (const l of spec.legend) {
    const item = document.createElement('span'), sw = document.createElement('i');
    if (l.tick) sw.style.cssText = `width:0;height:0.9em;border-left:2px solid ${l.color}`;
    else if (l.width > 0) sw.style.borderTop = `${Math.min(l.width, 10)}px ${l.dash ? 'dashed' : 'solid'} ${l.color}`;
    else {
      const d = Math.min(l.dot || 6, 12);
      sw.style.cssText = `width:${d}px;height:${d}px;border-radius:50%;`
        + (l.ring ? `border:2px solid ${l.color}` : `background:${l.color}`);
    }
    item.append(sw, l.name);
    el.append(item);
  }
}

function zoomFrom(ch, u) {
  // a drag across a panel: every panel's iteration axis zoomed to the dragged range
  const s = u.select;
  if (s.width < 6) return;
  const lo = u.posToVal(s.left, 'x'), hi = u.posToVal(s.left + s.width, 'x');
  u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
  setZoom(ch, { lo, hi, log: !!ch.spec.x.log });
}

function setZoom(ch, z) {
  // zoom to z ({lo, hi, log}), or out (null); kept while the figure is redrawn
  P.zoom = P.zoom || {};
  if (z) P.zoom[ch.key] = z; else delete P.zoom[ch.key];
  const zm = zoomOf(ch);
  ch.range = zm || [ch.spec.x.lo, ch.spec.x.hi];
  for (const u of ch.plots) u.setScale('x', { min: ch.range[0], max: ch.range[1] });
  const sub = ch.box.querySelector('.pv-hf-sub');
  sub.style.display = ch.spec.subtitle || zm ? '' : 'none';
  sub.textContent = (ch.spec.subtitle || '') + (zm ? (ch.spec.subtitle ? ' · ' : '')
    + `zoomed to iterations ${fmt(zm[0])}–${fmt(zm[1])}: double-click to zoom out` : '');
  if (zm) ch.box.dataset.pvZoom = zm.map(Math.round).join(','); else delete ch.box.dataset.pvZoom;
  markCharts();
}

function zoomOf(ch) {  // the zoom kept for this figure, unless made on another axis type
  const z = P.zoom && P.zoom[ch.key];
  return z && ch.spec.mode === 'iteration' && z.log === !!ch.spec.x.log ? [z.lo, z.hi] : null;
}

function nearestPoint(ch, u, left, top) {  // "points" mode: the point nearest the pointer
  const pts = ch.spec.points;
  let best = -1, d = 24 * 24;
  for (let j = 0; j < pts.x.length; j++) {
    const dx = u.valToPos(pts.x[j], 'x') - left, dy = u.valToPos(pts.y[j], 'y') - top;
    if (dx * dx + dy * dy < d) { d = dx * dx + dy * dy; best = j; }
  }
  return best;
}

function hoverAt(ch, k, u) {
  // the hover label: the iteration (click: go there) and each series' value there, or the
  // heat cell's group and level, or the point's numbers
  const tip = ch.box.querySelector('.pv-hf-tip'), { left, top } = u.cursor;
  if (!(left >= 0) || ch.hover !== k) { if (ch.hover === k || !(left >= 0)) tip.style.display = 'none'; return; }
  const spec = ch.spec, p = spec.panels[k], it = u.posToVal(left, 'x'), lines = [];
  if (spec.mode === 'points') {
    const j = nearestPoint(ch, u, left, top), pts = spec.points;
    if (j >= 0) lines.push(`iteration ${fmt(pts.it[j])} (click: go there)`, `${pts.xlabel} ${fmt(pts.x[j])}`, `${pts.ylabel} ${fmtValue(pts.y[j], 'pct1')}`);
  } else if (p.heat) {
    const h = p.heat, j = nearestIndex(h.x, it);
    const row = Math.min(Math.max(Math.round(u.posToVal(top, 'y')), 0), h.rows - 1);
    if (j >= 0) lines.push(`iteration ${fmt(h.x[j])} (click: go there)`, h.rowText[row], `group ‖Γ‖ level ${h.z[row * h.cols + j]} of 255 (0: outside the support)`);
  } else if (p.strip) {
    let best = null, d = 8;
    for (const s of p.strip) {
      const j = nearestIndex(s.x, it), dj = j >= 0 ? Math.abs(u.valToPos(s.x[j], 'x') - left) : Infinity;
      if (dj <= d) { d = dj; best = [s, j]; }
    }
    if (best) lines.push(`iteration ${fmt(best[0].x[best[1]])} (click: go there)`, best[0].name);
  } else {
    const hov = (p.series || []).filter((s) => s.hover && s.x.length);
    let xb = null, d = Infinity;
    for (const s of hov) {
      const j = nearestIndex(s.x, it), dj = Math.abs(u.valToPos(s.x[j], 'x') - left);
      if (dj < d) { d = dj; xb = s.x[j]; }
    }
    if (xb !== null) {
      lines.push(`iteration ${fmt(xb)} (click: go there)`);
      for (const s of hov) { const j = nearestIndex(s.x, xb); if (s.x[j] === xb) lines.push(`${s.name}: ${fmtValue(s.y[j], s.fmt)}`); }
    }
  }
  if (!lines.length) { tip.style.display = 'none'; return; }
  if (ch.mark != null) lines[0] = lines[0].replace(' (click: go there)', '');  // no player
  tip.textContent = '';
  lines.forEach((l, j) => { if (j) tip.append(document.createElement('br')); tip.append(l); });
  tip.style.display = 'block';
  const o = u.over.getBoundingClientRect(), b = ch.box.getBoundingClientRect();
  const x = o.left - b.left + left, w = tip.offsetWidth;
  tip.style.left = Math.max(x + 14 + w > b.width ? x - 14 - w : x + 14, 0) + 'px';
  tip.style.top = (o.top - b.top + Math.max(top - 20, 0)) + 'px';
}

function click(ch, u, e) {
  // an iteration chart selects the snapshot nearest the pointer; a points chart the point's
  if (Math.abs(e.clientX - (ch.downX ?? e.clientX)) > 4) return;  // the end of a drag (a zoom)
  const c = current(), r = u.over.getBoundingClientRect(), left = e.clientX - r.left;
  if (!c) return;
  if (ch.spec.mode === 'points') {
    const j = nearestPoint(ch, u, left, e.clientY - r.top);
    if (j >= 0) P.act.moveTo(Math.min(ch.spec.points.index[j], c.iterations.length - 1));
    return;
  }
  const i = nearestIndex(c.iterations, u.posToVal(left, 'x'));
  if (i >= 0) P.act.moveTo(i);
}

function plotSizes(ch, els, holder) {
  // each panel's uPlot height (its plot's share by weight, and its axes), from the room the
  // panels' container has and the panels' titles take
  const spec = ch.spec, font = spec.font || 12, n = spec.panels.length, top = spec.top ? font * 2 + 12 : 0;
  const axesH = font * 2 + 14 + top + 6 * (n - 1);
  const titlesH = els.reduce((t, el) => t + (el.querySelector('.pv-ptitle') || { offsetHeight: 0 }).offsetHeight, 0);
  const heights = panelHeights(spec.panels, Math.max(holder.clientHeight - titlesH - axesH - 2, 60));
  return { width: Math.max(ch.box.clientWidth, 200),
    h: heights.map((h, k) => h + (k === n - 1 ? font * 2 + 14 : 6) + (k === 0 ? top : 0)) };
}

function drawChart(ch) {
  // the figure: title lines, legend, then one uPlot per panel sized to the box
  const box = ch.box, spec = ch.spec, font = spec.font || 12;
  for (const u of ch.plots || []) u.destroy();
  box.innerHTML = '<div class="pv-hf-title"></div><div class="pv-hf-sub"></div><div class="pv-legend"></div>'
    + '<div class="pv-panels"></div><div class="pv-hf-tip"></div>';
  ch.family = getComputedStyle(box).fontFamily || 'sans-serif';
  const title = box.querySelector('.pv-hf-title');
  title.textContent = spec.title || '';
  title.style.cssText = `font-size:${font + 4}px;display:${spec.title ? '' : 'none'}`;
  box.querySelector('.pv-hf-sub').style.fontSize = font + 'px';
  legend(box.querySelector('.pv-legend'), spec, font);
  const holder = box.querySelector('.pv-panels');
  ch.range = zoomOf(ch) || [spec.x.lo, spec.x.hi];
  const right = spec.panels.some((p) => p.colorbar) ? 150 + font * 2
    : spec.panels.some((p) => p.y2) ? 40 + font * 5 : 16;
  // the panels' titles first, so that the plots share exactly the height left in the box
  const els = spec.panels.map((p) => {
    const el = holder.appendChild(Object.assign(document.createElement('div'), { className: 'pv-panel' }));
    if (p.title) el.append(Object.assign(document.createElement('div'), { className: 'pv-ptitle', textContent: p.title }));
    return el;
  });
  const sizes = plotSizes(ch, els, holder);
  ch.plots = spec.panels.map((p, k) => {
    const [opts, data] = panelOpts(ch, k, sizes.width, sizes.h[k], right);
    const u = new uPlot(opts, data, els[k]);
    u.over.append(Object.assign(document.createElement('div'), {
      className: spec.mode === 'points' ? 'pv-ring' : 'pv-marker' }));
    u.over.addEventListener('mouseenter', () => { ch.hover = k; });
    u.over.addEventListener('mouseleave', () => { ch.hover = null; box.querySelector('.pv-hf-tip').style.display = 'none'; });
    u.over.addEventListener('mousedown', (e) => { ch.downX = e.clientX; });
    u.over.addEventListener('click', (e) => click(ch, u, e));
    u.over.addEventListener('dblclick', () => { if (zoomOf(ch)) setZoom(ch, null); });
    return u;
  });
  // the panels share what the box leaves below the legend (a flex item): when the legend
  // rewraps (a web font arriving, a narrower page), the plots are resized to fit again
  const refit = () => {
    if (ch.plots !== plots || !holder.isConnected) return;
    const z = plotSizes(ch, els, holder);
    plots.forEach((u, k) => { if (Math.abs(u.height - z.h[k]) > 1 || u.width !== z.width) u.setSize({ width: z.width, height: z.h[k] }); });
  };
  const plots = ch.plots;
  requestAnimationFrame(refit);
  new ResizeObserver(refit).observe(holder);
  setZoom(ch, P.zoom && P.zoom[ch.key]);
  box.setAttribute('aria-label', spec.title || spec.panels.map((p) => p.title).filter(Boolean).join('; '));
  box.__pvDrawn = box.clientWidth + 'x' + box.clientHeight;
  box.dataset.pvChart = ch.id;
}

function markChart(ch, c, i) {
  // the position: a dotted red line across the panels, or a ring on the point
  // (a view without the player, Compare, has the server's iteration: ``mark``)
  const box = ch.box, n = c ? c.iterations.length : 0;
  const it = ch.mark ?? (n ? c.iterations[Math.min(i, n - 1)] : null);
  if (!ch.plots || it === null) return;
  if (ch.spec.mode === 'points') {
    const pts = ch.spec.points, u = ch.plots[0], ring = u.over.querySelector('.pv-ring');
    let j = -1;
    for (let k = 0; k < pts.index.length && pts.index[k] <= i; k++) j = k;
    ring.style.display = j >= 0 ? 'block' : 'none';
    if (j < 0) { delete box.dataset.pvMarkIt; box.dataset.pvMark = ''; return; }
    ring.style.left = (u.valToPos(pts.x[j], 'x') - 9) + 'px';
    ring.style.top = (u.valToPos(pts.y[j], 'y') - 9) + 'px';
    box.dataset.pvMark = String(pts.x[j]);
    box.dataset.pvMarkIt = String(pts.it[j]);
    return;
  }
  const [lo, hi] = ch.range, shown = it >= lo && it <= hi && !(ch.spec.x.log && it <= 0);
  for (const u of ch.plots) {
    const m = u.over.querySelector('.pv-marker');
    m.style.display = shown ? 'block' : 'none';
    if (shown) m.style.left = (u.valToPos(it, 'x') - 1) + 'px';
  }
  box.dataset.pvMark = String(it);
}

export function markCharts() {
  const c = current(), i = P.drawn ? P.drawn.i : Math.floor(P.pos);
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
    new ResizeObserver(() => {  // a wider page: the same figure, redrawn to the new size
      const ch = box.__pvChart;
      if (ch && box.__pvDrawn !== box.clientWidth + 'x' + box.clientHeight) { drawChart(ch); markCharts(); }
    }).observe(box);
  }
  box.style.height = data.height + 'px';
  P.charts = P.charts || {};
  let ch = P.charts[data.key];
  if (!ch || ch.id !== data.id || ch.box !== box) {
    ch = P.charts[data.key] = { id: data.id, key: data.key, spec: decode(data.chart), box };
    box.__pvDrawn = null;
  }
  box.__pvChart = ch;
  ch.mark = data.mark;
  if (box.__pvDrawn !== box.clientWidth + 'x' + box.clientHeight || box.dataset.pvChart !== ch.id) drawChart(ch);
  markCharts();
}
