// Painting a chart spec (pathviz.charts) on a canvas: scales and ticks, the panels' geometry,
// legends, series, heat panels and rotated titles. chartview.js draws a whole figure with these.

import { fmt } from './position.js';
import { palette, paintCells } from './heat.js';

function trim3(v) { return String(+v.toPrecision(3)); }

export function niceStep(span, count) {  // 1, 2 or 5 times a power of ten, about span / count
  const raw = span / Math.max(count, 1), p = Math.pow(10, Math.floor(Math.log10(raw)));
  const m = raw / p;
  return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

export function fmtValue(v, f, step) {
  // a tick (``step``: the ticks' spacing) or a hover value (no step) in an axis's format
  if (f === 'pct0' || f === 'pct1') {
    const d = step ? Math.max(0, Math.ceil(-Math.log10(step * 100) - 1e-9)) : 2;
    return (100 * v).toFixed(d) + ' %';
  }
  if (f === 'si') {
    if (!step) return fmt(v);
    const a = Math.abs(v);
    return a >= 1e6 ? trim3(v / 1e6) + 'M' : a >= 1e3 ? trim3(v / 1e3) + 'k' : trim3(v);
  }
  if (f === 'int' || f === 'rank') return fmt(v);
  return step ? trim3(v) : String(+v.toPrecision(4));
}

export function axisTicks(lo, hi, count) {
  const step = niceStep(hi - lo, count);
  const vals = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) {
    vals.push(+v.toPrecision(12));
  }
  return { vals, step };
}

export function logTicks(lo, hi, count) {
  const all = [], ones = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) { all.push(v); if (m === 1) ones.push(v); }
    }
  }
  return { vals: all.length <= count ? all : ones, step: 0 };
}

export function chartGeom(spec, ctx, W, H, font, zoom) {
  // where everything goes: the panels stacked under the top axis, one shared x scale (the
  // spec's range, or ``zoom`` [lo, hi] within it), the margins sized to the widest tick label
  const ax = Object.assign({}, spec.x, zoom ? { lo: zoom[0], hi: zoom[1] } : {});
  const log = !!ax.log, f = (v) => (log ? Math.log10(v) : v);
  const top = spec.top ? font * 2 + 16 : Math.ceil(font / 2) + 2;
  const bottom = font * 2 + 18, gap = 10;
  const titles = spec.panels.reduce((s, p) => s + (p.title ? font + 8 : 0), 0);
  const avail = Math.max(H - top - bottom - titles - gap * (spec.panels.length - 1), 40);
  const wsum = spec.panels.reduce((s, p) => s + p.weight, 0) || 1;
  let y = top;
  const panels = spec.panels.map((p) => {
    if (p.title) y += font + 8;
    const h = Math.max(avail * p.weight / wsum, 16);
    const r = { top: y, h, bottom: y + h };
    y += h + gap;
    const count = Math.max(2, Math.floor(h / (font * 2.2)));
    if (p.y.fmt === 'rank') {
      const t = axisTicks(0, Math.max(p.y.hi - 0.5, 0), Math.min(count, p.y.hi + 0.5));
      r.ticks = { vals: t.vals.filter((v) => Number.isInteger(v)), step: 1 };
    } else if (p.y.fmt !== 'none') r.ticks = axisTicks(p.y.lo, p.y.hi, count);
    if (p.y2) r.ticks2 = axisTicks(p.y2.lo, p.y2.hi, count);
    return r;
  });
  const width = (s) => ctx.measureText(s).width;
  let yw = 10, right = 0;
  spec.panels.forEach((p, k) => {
    const r = panels[k];
    const labels = p.y.labels || (r.ticks ? r.ticks.vals.map((v) => fmtValue(v, p.y.fmt, r.ticks.step)) : []);
    for (const s of labels) yw = Math.max(yw, width(s));
    if (p.y2) {
      const w2 = Math.max(...r.ticks2.vals.map((v) => width(fmtValue(v, p.y2.fmt, r.ticks2.step))), 10);
      right = Math.max(right, 6 + w2 + 8 + font + 6);
    }
    if (p.colorbar) {
      const wc = Math.max(...p.colorbar.ticks.map((t) => width(t[1])), 10);
      right = Math.max(right, 14 + 16 + 6 + wc + 8 + font + 6);
    }
  });
  const xlast = fmtValue(ax.hi, ax.fmt, 1);
  right = Math.max(right, 16, width(xlast) / 2 + 4);
  const g = { left: 10 + font + 8 + yw + 6, right: W - right, panels, log };
  g.w = Math.max(g.right - g.left, 20);
  g.x0 = f(ax.lo); g.x1 = f(ax.hi);
  g.px = (v) => g.left + (f(v) - g.x0) / (g.x1 - g.x0) * g.w;
  g.inv = (x) => { const u = g.x0 + (x - g.left) / g.w * (g.x1 - g.x0); return log ? 10 ** u : u; };
  g.bottom = panels.length ? panels[panels.length - 1].bottom : H - bottom;
  g.xticks = log ? logTicks(ax.lo, ax.hi, Math.max(2, g.w / (width('00000') + font * 2)))
    : axisTicks(ax.lo, ax.hi, Math.max(2, g.w / (width(xlast) + font * 2)));
  return g;
}

export function panelY(p, r, v, axis) {
  const a = axis === 2 ? p.y2 : p.y;
  if (a.fmt === 'rank') return r.top + (v + 0.5) / (a.hi + 0.5) * r.h;  // rank 0 on top
  return r.bottom - (v - a.lo) / (a.hi - a.lo) * r.h;
}

export function legendItems(el, spec, font) {
  el.textContent = '';
  el.style.fontSize = font + 'px';
  if (spec.legendTitle) {
    const t = document.createElement('span');
    t.textContent = spec.legendTitle;
    el.append(t);
  }
  for (const l of spec.legend) {
    const item = document.createElement('span');
    const sw = document.createElement('i');
    if (l.tick) sw.style.cssText = `width:0;height:0.9em;border-left:2px solid ${l.color}`;
    else if (l.width > 0) {
      sw.style.borderTop = `${Math.min(l.width, 10)}px ${l.dash ? 'dashed' : 'solid'} ${l.color}`;
    } else {
      const d = Math.min(l.dot || 6, 12);
      sw.style.cssText = `width:${d}px;height:${d}px;border-radius:50%;`
        + (l.ring ? `border:2px solid ${l.color}` : `background:${l.color}`);
    }
    item.append(sw, l.name);
    el.append(item);
  }
}

export function strokeSeries(ctx, g, p, r, s) {
  const x = s.x, y = s.y, n = Math.min(x.length, y.length);
  const X = (j) => g.px(x[j]), Y = (j) => panelY(p, r, y[j], s.axis);
  const ok = (j) => isFinite(x[j]) && isFinite(y[j]) && !(g.log && x[j] <= 0);
  if (s.width > 0) {
    ctx.strokeStyle = s.color;
    ctx.lineWidth = s.width;
    ctx.lineJoin = 'round';
    ctx.setLineDash(s.dash || []);
    ctx.beginPath();
    let down = false;
    for (let j = 0; j < n; j++) {
      if (!ok(j)) { down = false; continue; }
      if (down) ctx.lineTo(X(j), Y(j)); else ctx.moveTo(X(j), Y(j));
      down = true;
    }
    ctx.stroke();
    ctx.setLineDash([]);
  }
  if (s.dot > 0) {
    const pal = s.levels && s.scale ? palette(s.scale) : null;
    ctx.lineWidth = 2;
    for (let j = 0; j < n; j++) {
      if (!ok(j)) continue;
      let col = s.color;
      if (pal) { const l = s.levels[j] * 4; col = `rgb(${pal[l]},${pal[l + 1]},${pal[l + 2]})`; }
      ctx.beginPath();
      ctx.arc(X(j), Y(j), s.dot / 2, 0, 2 * Math.PI);
      if (s.ring) { ctx.strokeStyle = col; ctx.stroke(); } else { ctx.fillStyle = col; ctx.fill(); }
      if (pal) { ctx.strokeStyle = 'rgba(0,0,0,0.35)'; ctx.lineWidth = 0.5; ctx.stroke(); ctx.lineWidth = 2; }
    }
  }
}

export function drawHeatPanel(ctx, g, r, heat, parts) {
  // one column per iteration of heat.x, each as wide as halfway to its neighbours
  const off = parts.cells || (parts.cells = document.createElement('canvas'));
  paintCells(off, heat.z, heat.cols, heat.rows, heat.scale);
  if (!heat.cols || !heat.rows) return;
  ctx.imageSmoothingEnabled = false;
  const cx = heat.x, C = heat.cols;
  const X = (k) => g.px(cx[k]);
  for (let k = 0; k < C; k++) {
    if (g.log && cx[k] <= 0) continue;
    const xl = k && !(g.log && cx[k - 1] <= 0) ? (X(k - 1) + X(k)) / 2 : X(k);
    const xr = k < C - 1 ? (X(k) + X(k + 1)) / 2 : X(k);
    const w = Math.max(xr - xl, k === C - 1 || k === 0 ? 1 : 0.5);
    ctx.drawImage(off, k, 0, 1, heat.rows, xl, r.top, w, r.h);
  }
}

export function putRotated(ctx, put, text, x, r, font, family) {
  // a panel's axis title turned a quarter, shrunk to the panel's height
  const w = ctx.measureText(text).width;
  if (w > r.h) ctx.font = `${Math.max(8, Math.floor(font * r.h / w))}px ${family}`;
  if (ctx.measureText(text).width <= r.h + 8) put(text, x, r.top + r.h / 2, 'center', 'middle', -Math.PI / 2);
  ctx.font = `${font}px ${family}`;
}
