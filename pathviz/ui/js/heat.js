// The heatmap: uint8 colour levels of a snapshot's groups, drawn as cells on a canvas with
// its axes, its colour bar and a hover naming the cell; also the colour bar of a chart panel.

import { b64 } from './codec.js';
import { fmt, nearestRow } from './position.js';
import { P, current } from './state.js';

function rgb(c) {
  if (c[0] === '#') return [1, 3, 5].map((k) => parseInt(c.slice(k, k + 2), 16));
  return c.replace(/[^0-9.,]/g, '').split(',').slice(0, 3).map(Number);
}

const PALETTES = new Map();
export function palette(scale) {
  // 256 colours, plotly's linear interpolation of a [[fraction, colour], ...] scale, per level
  const key = JSON.stringify(scale);
  if (PALETTES.has(key)) return PALETTES.get(key);
  const stops = scale.map(([f, c]) => [f, rgb(c)]);
  const pal = new Uint8ClampedArray(256 * 4);
  for (let l = 0; l < 256; l++) {
    const f = l / 255;
    let j = 0;
    while (j < stops.length - 2 && stops[j + 1][0] < f) j++;
    const [f0, c0] = stops[j], [f1, c1] = stops[j + 1];
    const t = f1 > f0 ? Math.min(Math.max((f - f0) / (f1 - f0), 0), 1) : 0;
    pal.set([0, 1, 2].map((k) => Math.round(c0[k] + (c1[k] - c0[k]) * t)).concat(255), l * 4);
  }
  PALETTES.set(key, pal);
  return pal;
}

export function paintCells(canvas, z, cols, rows, scale) {
  // uint8 levels [rows x cols] as one pixel each on ``canvas``, in the scale's colours
  canvas.width = cols;
  canvas.height = rows;
  if (!cols || !rows) return;
  const pal = palette(scale);
  const cctx = canvas.getContext('2d');
  const img = cctx.createImageData(cols, rows);
  for (let k = 0; k < rows * cols; k++) img.data.set(pal.subarray(z[k] * 4, z[k] * 4 + 4), k * 4);
  cctx.putImageData(img, 0, 0);
}

export function heatCells(c, heat, row) {
  // the heatmap's cells [rows x columns] at a shipped snapshot: each cell the largest level
  // of the filters it shows (plots.heatmap_cells, the server's map)
  const levels = c.rows.get(row);
  if (!heat.maps) {
    heat.maps = heat.layers.map((l) => ({
      off: l.off, perm: b64(l.perm, Int32Array), lo: b64(l.lo, Int32Array),
      hi: b64(l.hi, Int32Array),
    }));
  }
  const rows = heat.maps.length, cols = heat.columns;
  const z = new Uint8Array(rows * cols);
  heat.maps.forEach((m, r) => {
    for (let cc = 0; cc < m.lo.length; cc++) {
      let v = 0;
      for (let k = m.lo[cc]; k < m.hi[cc]; k++) {
        const l = levels[m.off + m.perm[k]];
        if (l > v) v = l;
      }
      z[r * cols + cc] = v;
    }
  });
  return { rows, cols, z, row };
}

function heatBox(key) {
  return document.querySelector('.st-key-' + key + ' .pv-heatfig');
}

function heatParts(box) {
  // built once per box: title, subtitle, one canvas (labels, cells, axes, colour bar), the
  // hover label, and an offscreen canvas of one pixel a cell; redrawn when the box resizes
  let parts = box.__pv;
  if (parts && parts.cv.isConnected) return parts;
  box.innerHTML = '<div class="pv-hf-title"></div><div class="pv-hf-sub"></div>'
    + '<canvas class="pv-heat"></canvas><div class="pv-hf-tip"></div>';
  const q = (sel) => box.querySelector(sel);
  parts = box.__pv = { title: q('.pv-hf-title'), sub: q('.pv-hf-sub'), cv: q('canvas'),
    tip: q('.pv-hf-tip'), cells: document.createElement('canvas') };
  parts.cv.addEventListener('mousemove', (e) => hover(box, e));
  parts.cv.addEventListener('mouseleave', () => { parts.tip.style.display = 'none'; });
  new ResizeObserver(() => {  // a wider page or a new viewport: the same snapshot, redrawn
    const c = current();
    if (c && P.drawn && P.data.heat && box.__pvSize !== box.clientWidth + 'x' + box.clientHeight) {
      drawHeat(c, P.data.heat, P.drawn.i);
    }
  }).observe(box);
  return parts;
}

function surface(box, cv, top, font) {
  // the canvas below the title lines, sized to the box in device pixels, and a text writer
  // that records each text's box (tests check that none leaves the canvas)
  const W = box.clientWidth, H = Math.max(box.clientHeight - top, 80);
  const dpr = window.devicePixelRatio || 1;
  Object.assign(cv.style, { top: top + 'px', width: W + 'px', height: H + 'px' });
  cv.width = Math.round(W * dpr);
  cv.height = Math.round(H * dpr);
  const ctx = cv.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  const family = getComputedStyle(box).fontFamily || 'sans-serif';
  ctx.font = `${font}px ${family}`;
  const texts = (box.__pvTexts = []);
  const put = (text, x, y, align, base, turn) => {
    ctx.fillStyle = '#444';
    ctx.textAlign = align;
    ctx.textBaseline = base;
    const w = ctx.measureText(text).width, h = parseFloat(ctx.font);
    const a = align === 'left' ? 0 : align === 'right' ? -w : -w / 2;
    const b = base === 'top' ? 0 : base === 'bottom' ? -h : -h / 2;
    if (turn) {  // a quarter turn about (x, y): the box is h wide and w high
      ctx.save(); ctx.translate(x, y); ctx.rotate(turn); ctx.fillText(text, 0, 0); ctx.restore();
      texts.push({ text, left: x - h / 2, right: x + h / 2, top: y - w / 2, bottom: y + w / 2 });
    } else {
      ctx.fillText(text, x, y);
      texts.push({ text, left: x + a, right: x + a + w, top: y + b, bottom: y + b + h });
    }
  };
  return { ctx, W, H, put, family };
}

export function drawHeat(c, heat, i) {
  const box = heatBox(heat.key);
  if (!box) return;
  const row = nearestRow(c, i);
  if (row < 0) return;
  const zz = heatCells(c, heat, row);
  box.__pvZ = zz;  // what the hover reads
  const { rows, cols, z } = zz;
  const parts = heatParts(box);
  const font = heat.font || 12;
  parts.title.style.fontSize = (font + 4) + 'px';
  parts.sub.style.fontSize = font + 'px';
  parts.title.textContent = heat.title.replace('{it}', fmt(c.iterations[row]))
    + (row === i ? '' : ' (nearest sent)');
  parts.sub.textContent = heat.subtitle;
  // the cells, one pixel each, scaled up without smoothing
  paintCells(parts.cells, z, cols, rows, heat.scale);
  // the canvas fills the box below the title lines
  const top = parts.sub.offsetTop + parts.sub.offsetHeight + 4;
  const { ctx, W, H, put, family } = surface(box, parts.cv, top, font);
  const labelW = Math.max(...heat.labels.map((l) => ctx.measureText(l).width), 10);
  const tickW = Math.max(...heat.ticks.map((t) => ctx.measureText(t[1]).width), 10);
  const g = {  // the plot area, in CSS pixels of the canvas
    left: 10 + font + 8 + labelW + 6, top: Math.ceil(font / 2) + 2,
    right: W - (14 + 16 + 6 + tickW + 8 + font + 6),
    bottom: H - (font * 2 + 18),
  };
  g.w = Math.max(g.right - g.left, 20);
  g.h = Math.max(g.bottom - g.top, 20);
  box.__pvGeom = g;
  ctx.imageSmoothingEnabled = false;
  if (rows && cols) ctx.drawImage(parts.cells, g.left, g.top, g.w, g.h);  // (a run without Γ)
  // layers, first on top, and the axis titles
  heat.labels.forEach((l, r) => put(l, g.left - 6, g.top + (r + 0.5) * g.h / rows, 'right',
    'middle'));
  put('layer', 10 + font / 2, g.top + g.h / 2, 'center', 'middle', -Math.PI / 2);
  ctx.strokeStyle = '#999';
  // ticks at 0, 0.2, ... 1 of the cell centres' scale; fewer where a narrow plot has no room
  const room = g.w / (ctx.measureText('0.0').width + font);
  const step = room >= 6 ? 1 : room >= 3 ? 2.5 : 5;
  for (let t = 0; t <= 5; t += step) {
    const x = g.left + ((t / 5) * (cols - 1) + 0.5) * g.w / cols;
    ctx.beginPath(); ctx.moveTo(x, g.bottom); ctx.lineTo(x, g.bottom + 4); ctx.stroke();
    put(t === 0 ? '0' : t === 5 ? '1' : String(t / 5), x, g.bottom + 6, 'center', 'top');
  }
  // the axis title under the plot, or under the whole figure (smaller) where it is wider
  const tw = ctx.measureText(heat.xtitle).width;
  let tx = g.left + g.w / 2;
  if (tw > g.w) {
    tx = W / 2;
    if (tw > W - 8) ctx.font = `${Math.max(9, Math.floor(font * (W - 8) / tw))}px ${family}`;
  }
  put(heat.xtitle, tx, g.bottom + font + 12, 'center', 'top');
  ctx.font = `${font}px ${family}`;
  // the colour bar: one band per level, its ticks in the data's units, and its title
  drawColorbar(ctx, put, g, { top: g.top, h: g.h }, {
    scale: heat.scale, title: heat.colorbar,
    ticks: heat.ticks.map(([v, t]) => [(v + 0.5) / 256, t]),
  }, font);
  box.setAttribute('aria-label', parts.title.textContent);
  box.__pvSize = box.clientWidth + 'x' + box.clientHeight;
  box.dataset.pvHeat = String(c.iterations[row]);
  box.dataset.pvHeatPos = String(i);
  box.dataset.pvTitle = parts.title.textContent;
}

function hover(box, e) {
  // the cell under the pointer: its layer, the filter (or named group) and its level, in the
  // words of the server's figure
  const heat = P.data && P.data.heat, g = box.__pvGeom, parts = box.__pv;
  if (!heat || !g || !box.__pvZ || !heat.maps) return;
  const rect = parts.cv.getBoundingClientRect();
  const x = e.clientX - rect.left, y = e.clientY - rect.top;
  const { rows, cols, z } = box.__pvZ;
  if (x < g.left || x >= g.left + g.w || y < g.top || y >= g.top + g.h) {
    parts.tip.style.display = 'none';
    return;
  }
  const r = Math.min(Math.floor((y - g.top) * rows / g.h), rows - 1);
  const cc = Math.min(Math.floor((x - g.left) * cols / g.w), cols - 1);
  const m = heat.maps[r];
  const f = m.perm[m.lo[cc]];
  const names = heat.names && heat.names[r];
  const who = names ? `${heat.labels[r]}: ${names[f]}` : `${heat.labels[r]}, filter ${f}`;
  const many = m.hi[cc] - m.lo[cc] > 1 ? ` (largest of ${m.hi[cc] - m.lo[cc]})` : '';
  parts.tip.textContent = '';
  parts.tip.append(who + many, document.createElement('br'),
    `level ${z[r * cols + cc]} of 255 (0: outside the support)`);
  parts.tip.style.display = 'block';
  const left = Math.min(x + 12, rect.width - parts.tip.offsetWidth - 4);
  parts.tip.style.left = Math.max(left, 0) + 'px';
  parts.tip.style.top = (parts.cv.offsetTop + y + 14) + 'px';
}

export function drawColorbar(ctx, put, g, r, cb, font) {
  // levels 1..255 as the bar, and level 0 (outside the support) as a grey swatch of its own
  // under it, labelled as the subtitle says it: the bar holds no colour that means "outside"
  const pal = palette(cb.scale), bx = g.right + 14, bw = 16;
  const sw = Math.min(Math.max(font, 8), r.h / 4), top = r.top, h = r.h - sw - 6;
  for (let l = 1; l < 256; l++) {
    ctx.fillStyle = `rgb(${pal[l * 4]},${pal[l * 4 + 1]},${pal[l * 4 + 2]})`;
    ctx.fillRect(bx, top + h * (1 - l / 255), bw, h / 255 + 0.5);
  }
  ctx.strokeStyle = '#999';
  ctx.strokeRect(bx, top, bw, h);
  ctx.fillStyle = `rgb(${pal[0]},${pal[1]},${pal[2]})`;
  ctx.fillRect(bx, top + h + 6, bw, sw);
  ctx.strokeRect(bx, top + h + 6, bw, sw);
  let tw = 10;
  for (const [f, t] of cb.ticks) {
    const level = Math.round(f * 256 - 0.5);
    const y = level <= 0 ? top + h + 6 + sw / 2 : top + h * (1 - level / 255);
    put(t, bx + bw + 6, y, 'left', 'middle');
    tw = Math.max(tw, ctx.measureText(t).width);
  }
  put(cb.title, bx + bw + 6 + tw + 8 + font / 2, top + h / 2, 'center', 'middle', Math.PI / 2);
}
