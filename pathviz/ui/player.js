// pathviz browser player: scrubbing and play happen here, over data the server shipped once.
//
// window.__pathvizPlayer holds, per run file (data.key), what the server has sent: iterations,
// epochs, support counts (appended as a live run grows) and uint8 colour levels of every
// shipped snapshot (decimated to a byte budget, refined around a paused position). A step or
// a play frame redraws in the page: the Overview heatmap (drawn whole on a canvas: cells,
// axes, colour bar, hover; the server sends no figure for it), its title, the line under the
// player, the presentation status line, the layer caption, and the position's marker on the
// Layer and Metrics figures (drawn once on canvases from pathviz.charts specs, which the same
// script receives through the chart component). The server is told the position only when
// the user pauses (debounced), through the 'report' trigger.

const P = (window.__pathvizPlayer = window.__pathvizPlayer || {
  cache: {}, pos: 0, playing: false, speed: 24, loop: false, seq: null, key: null,
  frames: 0, stamps: [], t: 0, timer: null, raf: null, follow: false, loads: {},
});

function b64(s, Type) {
  if (!s) return new Type(0);
  const bin = atob(s);
  const u8 = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
  return new Type(u8.buffer);
}

function concat(a, b, Type) {
  const out = new Type(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function rgb(c) {
  if (c[0] === '#') return [1, 3, 5].map((k) => parseInt(c.slice(k, k + 2), 16));
  return c.replace(/[^0-9.,]/g, '').split(',').slice(0, 3).map(Number);
}

const PALETTES = new Map();
function palette(scale) {
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

function fmt(n) { return Math.round(n).toLocaleString('en-US'); }

function merge(data) {
  // fold what the server sent into the page's copy of this run
  let c = P.cache[data.key];
  const b = data.base;
  if (b) {
    P.loads[data.key] = (P.loads[data.key] || 0) + 1;  // whole copies received (tests read it)
    c = P.cache[data.key] = {
      iterations: b64(b.iterations, Float64Array), epochs: b64(b.epochs, Float32Array),
      selected: b64(b.selected, Int32Array), rows: new Map(), stride: 1, sumG: 0,
    };
  }
  if (!c) return null;
  const a = data.append;
  if (a && a.start !== c.iterations.length) P.resync = true;  // a render was lost on the way
  if (a && a.start === c.iterations.length) {
    c.iterations = concat(c.iterations, b64(a.iterations, Float64Array), Float64Array);
    c.epochs = concat(c.epochs, b64(a.epochs, Float32Array), Float32Array);
    c.selected = concat(c.selected, b64(a.selected, Int32Array), Int32Array);
  }
  for (const k of ['weights', 'wstar', 'layerSupport']) {
    if (data[k] !== undefined) c[k] = data[k];
  }
  c.weightIts = data.weights ? b64(data.weights, Float64Array) : new Float64Array(0);
  if (data.levels) {
    const L = data.levels;
    c.sumG = L.sumG;
    if (L.stride > c.stride) {  // a growing live run: keep every stride-th row and the last
      for (const i of Array.from(c.rows.keys())) {
        if (i % L.stride !== 0 && i !== c.iterations.length - 1) c.rows.delete(i);
      }
    }
    c.stride = L.stride;
    for (const part of [L.rows, L.refine]) {
      if (!part) continue;
      const idx = b64(part.index, Int32Array);
      const blob = b64(part.data, Uint8Array);
      idx.forEach((i, r) => c.rows.set(i, blob.subarray(r * L.sumG, (r + 1) * L.sumG)));
    }
  }
  return c;
}

function nearestRow(c, i) {
  if (c.rows.has(i)) return i;
  let best = -1, d = Infinity;
  const k = c.stride;
  for (const j of [Math.floor(i / k) * k, Math.ceil(i / k) * k, c.iterations.length - 1]) {
    if (c.rows.has(j) && Math.abs(j - i) < d) { best = j; d = Math.abs(j - i); }
  }
  if (best < 0) {
    for (const j of c.rows.keys()) if (Math.abs(j - i) < d) { best = j; d = Math.abs(j - i); }
  }
  return best;
}

function nearestWeights(c, it) {  // store.nearest(values, it, k=2): ties to the earlier
  const w = Array.from(c.weightIts);
  const order = w.map((v, j) => [Math.abs(v - it), j]).sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  return order.slice(0, 2).map((o) => w[o[1]]).sort((x, y) => x - y);
}

function wStarNear(c, it) {  // present.w_star_near
  const ws = c.wstar;
  if (!ws) return null;
  let best = -1, d = Infinity;
  for (let j = 0; j < ws.it.length; j++) {
    const dj = Math.abs(ws.it[j] - it);
    if (dj < d) { d = dj; best = j; }
  }
  return best < 0 ? null : [ws.acc[best], ws.it[best]];
}

function lineText(c, i) {
  const it = c.iterations[i], n = c.iterations.length;
  let s = `Iteration ${fmt(it)} · epoch ${c.epochs[i].toFixed(2)} · snapshot ${i + 1} of ${n}`;
  if (c.weightIts.includes(it)) s += ' · weights saved here (exportable)';
  else {
    const near = nearestWeights(c, it);
    s += ' · no weights here' + (near.length ? ` (nearest: ${near.map(fmt).join(', ')})` : '');
  }
  return s;
}

function statusText(c, i, total) {  // present.status_line
  const it = c.iterations[i];
  const w = wStarNear(c, it);
  const acc = w === null ? 'W* n/a'
    : `W* ${(100 * w[0]).toFixed(1)} %` + (w[1] === it ? '' : ` (at ${fmt(w[1])})`);
  return `iteration ${fmt(it)} · ${fmt(c.selected[i])} of ${fmt(total)} filters selected · ${acc}`;
}

function heatBox(key) {
  return document.querySelector('.st-key-' + key + ' .pv-heatfig');
}

function paintCells(canvas, z, cols, rows, scale) {
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

function heatCells(c, heat, row) {
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

function figParts(box, middle, canvasClass, onMove, redraw, after = '') {
  // a figure's parts, built once per box: title, subtitle, ``middle`` (a legend, say), one
  // canvas, ``after`` (the position marker, say) and the hover label; ``redraw`` when the box
  // resizes
  let parts = box.__pv;
  if (parts && parts.cv.isConnected) return parts;
  box.innerHTML = '<div class="pv-hf-title"></div><div class="pv-hf-sub"></div>' + middle
    + `<canvas class="${canvasClass}"></canvas>` + after + '<div class="pv-hf-tip"></div>';
  const q = (sel) => box.querySelector(sel);
  parts = box.__pv = {
    title: q('.pv-hf-title'), sub: q('.pv-hf-sub'), legend: q('.pv-legend'),
    cv: q('canvas.' + canvasClass), marker: q('.pv-marker'), tip: q('.pv-hf-tip'),
  };
  parts.cv.addEventListener('mousemove', (e) => onMove(box, e));
  parts.cv.addEventListener('mouseleave', () => { parts.tip.style.display = 'none'; });
  new ResizeObserver(() => {  // a wider page or a new viewport: the same snapshot, redrawn
    const c = P.data && P.cache[P.data.key];
    if (c && P.drawn) redraw(c);
  }).observe(box);
  return parts;
}

function heatParts(box) {
  // title, subtitle, one canvas (labels, cells, axes, colour bar), the hover label, and an
  // offscreen canvas of one pixel a cell
  const parts = figParts(box, '', 'pv-heat', hover, (c) => {
    if (box.__pvSize !== box.clientWidth + 'x' + box.clientHeight && P.data.heat) {
      drawHeat(c, P.data.heat, P.drawn.i);
    }
  });
  parts.cells = parts.cells || document.createElement('canvas');
  return parts;
}

function surface(box, cv, top, font) {
  // a figure's canvas below its title lines, sized to the box in device pixels, and a text
  // writer that records each text's box (tests check that none leaves the canvas)
  const W = box.clientWidth, H = Math.max(box.clientHeight - top, 80);
  const dpr = window.devicePixelRatio || 1;
  cv.style.top = top + 'px';
  cv.style.width = W + 'px';
  cv.style.height = H + 'px';
  cv.width = Math.round(W * dpr);
  cv.height = Math.round(H * dpr);
  const ctx = cv.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, W, H);
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

function drawHeat(c, heat, i) {
  const box = heatBox(heat.key);
  if (!box) return;
  const row = nearestRow(c, i);
  if (row < 0) return;
  const zz = heatCells(c, heat, row);
  P.z = zz;  // what was drawn (tests compare it with the server's figure)
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
  if (!heat || !g || !P.z || !heat.maps) return;
  const rect = parts.cv.getBoundingClientRect();
  const x = e.clientX - rect.left, y = e.clientY - rect.top;
  const { rows, cols, z } = P.z;
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

function niceStep(span, count) {  // 1, 2 or 5 times a power of ten, about span / count
  const raw = span / Math.max(count, 1), p = Math.pow(10, Math.floor(Math.log10(raw)));
  const m = raw / p;
  return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

function drawPath(c, spec, i) {
  // the support path: each layer's share of filters selected against iteration, all layers
  // together thick, the stop dashed orange, and the position a dotted red line; the lines
  // are redrawn when the server sends new ones or the box changes size, the marker each step
  const box = document.querySelector('.st-key-' + spec.key + ' .pv-pathfig');
  if (!box) return;
  const font = spec.font || 12;
  const sig = [spec.x.length, spec.lines.length, spec.stop && spec.stop.it, box.clientWidth,
    box.clientHeight].join();
  const fresh = !(box.__pv && box.__pv.cv.isConnected);
  const parts = figParts(box, '<div class="pv-legend"></div>', 'pv-path', pathHover, (cc) => {
    if (P.data.path) drawPath(cc, P.data.path, P.drawn.i);
  }, '<div class="pv-marker"></div>');
  if (fresh) {
    parts.cv.addEventListener('click', (e) => {  // a click picks the nearest snapshot
      const it = pathIteration(box, e);
      const cc = P.data && P.cache[P.data.key];
      if (it === null || !cc) return;
      let lo = 0, hi = cc.iterations.length - 1;
      while (lo < hi) { const m = (lo + hi) >> 1; if (cc.iterations[m] < it) lo = m + 1; else hi = m; }
      if (lo > 0 && it - cc.iterations[lo - 1] <= cc.iterations[lo] - it) lo -= 1;
      moveTo(lo);
    });
  }
  if (box.__pvSig !== sig || box.__pvSpec !== spec) {
    box.__pvSig = sig;
    box.__pvSpec = spec;
    const x = b64(spec.x, Float64Array);
    const ys = spec.lines.map((l) => b64(l.y, Float32Array));
    parts.x = x; parts.ys = ys;
    parts.title.textContent = spec.title;
    parts.title.style.fontSize = (font + 4) + 'px';
    parts.sub.textContent = spec.subtitle;
    parts.sub.style.fontSize = font + 'px';
    parts.legend.textContent = '';
    parts.legend.style.fontSize = font + 'px';
    for (const l of spec.lines) {
      const item = document.createElement('span');
      const sw = document.createElement('i');
      sw.style.borderTopColor = l.color;
      sw.style.borderTopWidth = l.width + 'px';
      item.append(sw, l.name);
      parts.legend.append(item);
    }
    const top = parts.legend.offsetTop + parts.legend.offsetHeight + 6;
    const { ctx, W, H, put } = surface(box, parts.cv, top, font);
    const yw = ctx.measureText('100 %').width;
    const xw = ctx.measureText(fmt(x.length ? x[x.length - 1] : 0)).width;
    const g = { left: 10 + font + 8 + yw + 6, top: Math.ceil(font / 2) + 2,
      right: W - Math.max(16, xw / 2 + 4),
      bottom: H - (font * 2 + 18) };
    g.w = Math.max(g.right - g.left, 20);
    g.h = Math.max(g.bottom - g.top, 20);
    const x0 = x.length ? x[0] : 0, x1 = x.length > 1 ? x[x.length - 1] : x0 + 1;
    g.x0 = x0; g.x1 = x1;
    const px = (v) => g.left + (v - x0) / (x1 - x0) * g.w;
    const py = (v) => g.bottom - v / 102 * g.h;
    box.__pvGeom = g;
    // grid and ticks
    ctx.strokeStyle = '#e6e6e6';
    ctx.lineWidth = 1;
    for (let v = 0; v <= 100; v += 20) {
      ctx.beginPath(); ctx.moveTo(g.left, py(v)); ctx.lineTo(g.right, py(v)); ctx.stroke();
      put(v + ' %', g.left - 6, py(v), 'right', 'middle');
    }
    const step = niceStep(x1 - x0, g.w / (ctx.measureText('00000').width + font * 2));
    for (let v = Math.ceil(x0 / step) * step; v <= x1 + 1e-9; v += step) {
      ctx.beginPath(); ctx.moveTo(px(v), g.top); ctx.lineTo(px(v), g.bottom); ctx.stroke();
      put(fmt(v), px(v), g.bottom + 6, 'center', 'top');
    }
    put(spec.xtitle, g.left + g.w / 2, g.bottom + font + 12, 'center', 'top');
    put(spec.ytitle, 10 + font / 2, g.top + g.h / 2, 'center', 'middle', -Math.PI / 2);
    // the lines, clipped to the plot
    ctx.save();
    ctx.beginPath(); ctx.rect(g.left, g.top - 4, g.w, g.h + 8); ctx.clip();
    spec.lines.forEach((l, k) => {
      const y = ys[k];
      ctx.strokeStyle = l.color;
      ctx.lineWidth = l.width;
      ctx.lineJoin = 'round';
      ctx.beginPath();
      for (let j = 0; j < x.length; j++) {
        if (j) ctx.lineTo(px(x[j]), py(y[j])); else ctx.moveTo(px(x[j]), py(y[j]));
      }
      ctx.stroke();
    });
    ctx.restore();
    if (spec.stop && spec.stop.it >= x0 && spec.stop.it <= x1) {
      const sx = px(spec.stop.it);
      ctx.strokeStyle = '#ff7f0e';
      ctx.lineWidth = 2;
      ctx.setLineDash([6, 4]);
      ctx.beginPath(); ctx.moveTo(sx, g.top); ctx.lineTo(sx, g.bottom); ctx.stroke();
      ctx.setLineDash([]);
      const left = spec.stop.it < (x0 + x1) / 2;
      put(spec.stop.label, sx + (left ? 4 : -4), g.bottom - 2, left ? 'left' : 'right', 'bottom');
      ctx.fillStyle = '#ff7f0e';  // the label in the stop's colour, over its grey draft
      ctx.textAlign = left ? 'left' : 'right';
      ctx.fillText(spec.stop.label, sx + (left ? 4 : -4), g.bottom - 2);
    }
  }
  // the position
  const g = box.__pvGeom, it = c.iterations[i];
  const m = parts.marker;
  if (g && it >= g.x0 && it <= g.x1) {
    m.style.display = 'block';
    m.style.left = (g.left + (it - g.x0) / (g.x1 - g.x0) * g.w - 1) + 'px';
    m.style.top = (parts.cv.offsetTop + g.top) + 'px';
    m.style.height = g.h + 'px';
  } else m.style.display = 'none';
  box.dataset.pvMark = String(it);
}

function pathIteration(box, e) {
  const g = box.__pvGeom, parts = box.__pv;
  if (!g) return null;
  const r = parts.cv.getBoundingClientRect();
  const x = e.clientX - r.left, y = e.clientY - r.top;
  if (x < g.left || x > g.left + g.w || y < g.top - 4 || y > g.bottom + 4) return null;
  return g.x0 + (x - g.left) / g.w * (g.x1 - g.x0);
}

function pathHover(box, e) {
  // every line's share at the iteration under the pointer
  const parts = box.__pv, spec = box.__pvSpec, it = pathIteration(box, e);
  if (it === null || !parts.x || !parts.x.length) { parts.tip.style.display = 'none'; return; }
  let j = 0;
  for (let k = 1; k < parts.x.length; k++) if (Math.abs(parts.x[k] - it) < Math.abs(parts.x[j] - it)) j = k;
  showTip(parts, e, [`iteration ${fmt(parts.x[j])} (click: go there)`].concat(
    spec.lines.map((l, k) => `${l.name}: ${Math.round(parts.ys[k][j])} %`)));
}

function showTip(parts, e, lines) {
  // a hover label of ``lines`` beside the pointer, on the side where it fits; none when empty
  if (!lines.length) { parts.tip.style.display = 'none'; return; }
  parts.tip.textContent = '';
  lines.forEach((l, j) => { if (j) parts.tip.append(document.createElement('br')); parts.tip.append(l); });
  parts.tip.style.display = 'block';
  const r = parts.cv.getBoundingClientRect();
  const x = e.clientX - r.left, y = e.clientY - r.top;
  const left = x + 14 + parts.tip.offsetWidth > r.width ? x - 14 - parts.tip.offsetWidth : x + 14;
  parts.tip.style.left = Math.max(left, 0) + 'px';
  parts.tip.style.top = (parts.cv.offsetTop + Math.max(y - 20, 0)) + 'px';
}

// ---- the Layer and Metrics views' figures (pathviz.charts specs), drawn on a canvas ----
// The spec comes once per figure through the chart component (pathviz.ui.chart); a step only
// moves the position's marker over it (markCharts), so a step costs no redraw.

const DT = { f8: Float64Array, f4: Float32Array, u1: Uint8Array, i4: Int32Array };

function decode(v) {  // the spec's arrays come as {b64, dtype} (pathviz.ui.chart.encode)
  if (Array.isArray(v)) return v.map(decode);
  if (v && typeof v === 'object') {
    if (typeof v.b64 === 'string' && DT[v.dtype]) return b64(v.b64, DT[v.dtype]);
    const o = {};
    for (const k of Object.keys(v)) o[k] = decode(v[k]);
    return o;
  }
  return v;
}

function trim3(v) { return String(+v.toPrecision(3)); }

function fmtValue(v, f, step) {
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

function axisTicks(lo, hi, count) {
  const step = niceStep(hi - lo, count);
  const vals = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) {
    vals.push(+v.toPrecision(12));
  }
  return { vals, step };
}

function logTicks(lo, hi, count) {
  const all = [], ones = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) { all.push(v); if (m === 1) ones.push(v); }
    }
  }
  return { vals: all.length <= count ? all : ones, step: 0 };
}

function chartGeom(spec, ctx, W, H, font, zoom) {
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

function panelY(p, r, v, axis) {
  const a = axis === 2 ? p.y2 : p.y;
  if (a.fmt === 'rank') return r.top + (v + 0.5) / (a.hi + 0.5) * r.h;  // rank 0 on top
  return r.bottom - (v - a.lo) / (a.hi - a.lo) * r.h;
}

function legendItems(el, spec, font) {
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

function strokeSeries(ctx, g, p, r, s) {
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

function drawHeatPanel(ctx, g, r, heat, parts) {
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

function drawColorbar(ctx, put, g, r, cb, font) {
  const pal = palette(cb.scale), bx = g.right + 14, bw = 16;
  for (let l = 0; l < 256; l++) {
    ctx.fillStyle = `rgb(${pal[l * 4]},${pal[l * 4 + 1]},${pal[l * 4 + 2]})`;
    ctx.fillRect(bx, r.top + r.h * (1 - (l + 1) / 256), bw, r.h / 256 + 0.5);
  }
  ctx.strokeStyle = '#999';
  ctx.strokeRect(bx, r.top, bw, r.h);
  let tw = 10;
  for (const [f, t] of cb.ticks) {
    put(t, bx + bw + 6, r.top + r.h * (1 - f), 'left', 'middle');
    tw = Math.max(tw, ctx.measureText(t).width);
  }
  put(cb.title, bx + bw + 6 + tw + 8 + font / 2, r.top + r.h / 2, 'center', 'middle', Math.PI / 2);
}

function putRotated(ctx, put, text, x, r, font, family) {
  // a panel's axis title turned a quarter, shrunk to the panel's height
  const w = ctx.measureText(text).width;
  if (w > r.h) ctx.font = `${Math.max(8, Math.floor(font * r.h / w))}px ${family}`;
  if (ctx.measureText(text).width <= r.h + 8) put(text, x, r.top + r.h / 2, 'center', 'middle', -Math.PI / 2);
  ctx.font = `${font}px ${family}`;
}

function drawChart(ch) {
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

function nearestIndex(a, v) {  // the index of the value of sorted ``a`` nearest ``v``
  let lo = 0, hi = a.length - 1;
  if (hi < 0) return -1;
  while (lo < hi) { const m = (lo + hi) >> 1; if (a[m] < v) lo = m + 1; else hi = m; }
  if (lo > 0 && v - a[lo - 1] <= a[lo] - v) lo -= 1;
  return lo;
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
            `‖Γ_g‖ level ${p.heat.z[row * p.heat.cols + k]} of 255 (0: outside the support)`);
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
  const c = P.data && P.cache[P.data.key];
  if (box.__pv && box.__pv.dragged) { box.__pv.dragged = false; return; }  // that was a zoom
  if (!ch || !g || !at || !c) return;
  if (ch.spec.mode === 'points') {
    const j = nearestPoint(ch, g, at.x, at.y);
    if (j >= 0) moveTo(Math.min(ch.spec.points.index[j], c.iterations.length - 1));
    return;
  }
  const i = nearestIndex(c.iterations, g.inv(Math.min(Math.max(at.x, g.left), g.right)));
  if (i >= 0) moveTo(i);
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

function markCharts() {
  const c = P.data && P.cache[P.data.key];
  const i = P.drawn ? P.drawn.i : Math.floor(P.pos);
  for (const k of Object.keys(P.charts || {})) {
    const ch = P.charts[k];
    if (!ch.box.isConnected) { delete P.charts[k]; continue; }
    markChart(ch, c, i);
  }
}

function mountChart(component) {
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

function draw() {
  const d = P.data, c = d && P.cache[d.key];
  if (!c || !c.iterations.length) return;
  const n = c.iterations.length;
  P.pos = Math.min(Math.max(P.pos, 0), n - 1);
  const i = Math.floor(P.pos), it = c.iterations[i];
  const ui = P.ui;
  if (ui && ui.root.isConnected) {
    ui.range.max = String(n - 1);
    ui.range.value = String(i);
    ui.line.textContent = lineText(c, i);
    ui.line.style.display = d.line === false ? 'none' : '';
    ui.back.disabled = i <= 0;
    ui.next.disabled = i >= n - 1;
    ui.play.textContent = P.playing ? '❚❚ Pause' : '▶ Play';
    ui.root.dataset.iteration = String(it);
  }
  if (d.heat) drawHeat(c, d.heat, i);
  if (d.path) drawPath(c, d.path, i);
  if (d.status) {
    const el = document.querySelector('.st-key-' + d.status.key + ' p');
    if (el) el.textContent = el.dataset.pvText = statusText(c, i, d.status.total);
  }
  if (d.layerCaption && c.layerSupport) {
    const el = document.querySelector('.st-key-' + d.layerCaption.key + ' p');
    if (el) {
      const lc = d.layerCaption;
      el.textContent = el.dataset.pvText = `${lc.name}: ${c.layerSupport[i]} of ${lc.groups}`
        + ` ${lc.units || 'filters'} in the support at iteration ${fmt(it)} (dotted red line).`;
    }
  }
  P.drawn = { key: d.key, i, heat: d.heat ? d.heat.key : null };
  markCharts();  // the Layer and Metrics figures: the position's marker
}

function frame() {  // a step or play frame: drawn, and counted for the browser bench
  draw();
  P.frames++;
  P.stamps.push(performance.now());
  if (P.stamps.length > 2000) P.stamps.splice(0, 1000);
}

function stale() {
  // something the page redrew (a new figure, a resize, a server rerun) lost what the player
  // drew; comparing first keeps the observer from redrawing its own changes forever
  const d = P.data;
  if (!d || !P.drawn) return true;
  if (P.ui && P.ui.root.isConnected && P.ui.root.dataset.iteration === undefined) return true;
  if (d.heat) {  // a server rerun that replaced the box (a new height, a new view)
    const box = heatBox(d.heat.key);
    if (box && (!box.querySelector('canvas.pv-heat') || box.dataset.pvHeatPos !== String(P.drawn.i)
                || box.dataset.pvTitle === undefined)) {
      return true;
    }
  }
  if (d.path) {
    const box = document.querySelector('.st-key-' + d.path.key + ' .pv-pathfig');
    if (box && (!box.querySelector('canvas.pv-path') || box.dataset.pvMark === undefined)) return true;
  }
  if (d.status) {
    const el = document.querySelector('.st-key-' + d.status.key + ' p');
    if (el && el.dataset.pvText !== el.textContent) return true;
  }
  for (const ch of Object.values(P.charts || {})) {
    if (ch.box.isConnected && ch.box.dataset.pvMark === undefined) return true;
  }
  if (d.layerCaption) {
    const el = document.querySelector('.st-key-' + d.layerCaption.key + ' p');
    if (el && el.dataset.pvText !== el.textContent) return true;
  }
  return false;
}

function send(payload) {
  // a report sent while the server is busy with another run can be dropped by the page's
  // widget queue: it is sent again until the server's data says it applied it (ack)
  P.t += 1;
  const p = Object.assign({}, payload, { t: P.t });
  P.pending = p;
  P.reportedAt = performance.now();  // the browser bench times the server's update from here
  P.set('report', p);
  clearTimeout(P.retry);
  P.retry = setTimeout(() => {
    if (P.pending === p && (P.ack || 0) < p.t && (p.tries || 0) < 5) {
      send(Object.assign({}, payload, { tries: (p.tries || 0) + 1 }));
    }
  }, 1500);
}

function report(follow) {
  // tell the server where the user stopped, after a pause in the stepping
  clearTimeout(P.timer);
  P.timer = setTimeout(() => {
    const c = P.cache[P.data.key];
    if (!c || !P.set) return;
    const i = Math.floor(P.pos);
    send({ index: i, iteration: c.iterations[i], follow: !!follow,
      have: c.iterations.length, key: P.data.key });
  }, P.data.debounce);
}

function moveTo(i) {
  stop();
  P.follow = false;
  P.pos = i;
  frame();
  report(false);
}

function stop() {
  if (P.raf) cancelAnimationFrame(P.raf);
  P.raf = null;
  if (P.playing) { P.playing = false; draw(); report(false); }
}

function play() {
  const c = P.cache[P.data.key];
  if (!c) return;
  const n = c.iterations.length;
  if (Math.floor(P.pos) >= n - 1) P.pos = 0;  // play at the end starts from the start
  P.playing = true;
  P.follow = false;
  clearTimeout(P.timer);
  let last = performance.now();
  const tick = (now) => {
    if (!P.playing) return;
    const c2 = P.cache[P.data.key];
    const m = c2.iterations.length;
    const before = Math.floor(P.pos);
    P.pos += (P.speed * (now - last)) / 1000;
    last = now;
    if (P.pos >= m - 1) {
      if (P.loop) P.pos = 0;
      else { P.pos = m - 1; P.playing = false; draw(); report(false); return; }
    }
    if (Math.floor(P.pos) !== before) frame();
    P.raf = requestAnimationFrame(tick);
  };
  draw();
  P.raf = requestAnimationFrame(tick);
}

function build(parent) {
  let root = parent.querySelector(':scope > .pv-player');
  if (root) return P.ui;
  root = document.createElement('div');
  root.className = 'pv-player';
  root.innerHTML = `
    <div class="pv-row">
      <button class="pv-back" title="One snapshot earlier (←; Shift+← ten)">◀</button>
      <button class="pv-next" title="One snapshot later (→; Shift+→ ten)">▶</button>
      <button class="pv-play" title="Play or pause (Space)">▶ Play</button>
      <input class="pv-range" type="range" min="0" max="0" step="1" value="0"
             aria-label="Iteration" title="Drag, or use ←/→, Shift for ten, Home/End">
      <label class="pv-speed-l">speed <select class="pv-speed" aria-label="Play speed">
        <option value="6">6/s</option><option value="12">12/s</option>
        <option value="24">24/s</option><option value="48">48/s</option>
        <option value="96">96/s</option></select></label>
      <label class="pv-loop-l"><input class="pv-loop" type="checkbox"> loop</label>
    </div>
    <p class="pv-line"></p>`;
  parent.appendChild(root);
  const q = (s) => root.querySelector(s);
  const ui = { root, back: q('.pv-back'), next: q('.pv-next'), play: q('.pv-play'),
    range: q('.pv-range'), speed: q('.pv-speed'), loop: q('.pv-loop'), line: q('.pv-line') };
  ui.speed.value = String(P.speed);
  ui.loop.checked = P.loop;
  ui.back.onclick = () => moveTo(Math.floor(P.pos) - 1);
  ui.next.onclick = () => moveTo(Math.floor(P.pos) + 1);
  ui.play.onclick = () => (P.playing ? stop() : play());
  ui.range.oninput = () => moveTo(Number(ui.range.value));
  ui.range.onkeydown = (e) => { if (key(e)) e.preventDefault(); };
  ui.speed.onchange = () => { P.speed = Number(ui.speed.value); };
  ui.loop.onchange = () => { P.loop = ui.loop.checked; };
  return (P.ui = ui);
}

function key(e) {
  const c = P.data && P.cache[P.data.key];
  if (!c || !P.ui || !P.ui.root.isConnected) return false;
  const n = c.iterations.length, i = Math.floor(P.pos), k = e.shiftKey ? 10 : 1;
  if (e.key === 'ArrowRight') moveTo(Math.min(i + k, n - 1));
  else if (e.key === 'ArrowLeft') moveTo(Math.max(i - k, 0));
  else if (e.key === 'Home') moveTo(0);
  else if (e.key === 'End') moveTo(n - 1);
  else if (e.key === ' ' || e.code === 'Space') (P.playing ? stop() : play());
  else return false;
  return true;
}

function onKey(e) {
  // the page's keys, unless another control has the focus (a button, a box, a list, a slider:
  // Space and the arrows are theirs); the player's own range input has its own handler
  const t = e.target;
  if (e.ctrlKey || e.metaKey || e.altKey || !t) return;
  if (t.classList && t.classList.contains('pv-range')) return;
  const ours = t.closest && t.closest('.pv-player');
  const control = t.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT', 'BUTTON'].includes(t.tagName)
    || (t.getAttribute && ['slider', 'option', 'listbox', 'combobox', 'tab', 'radio', 'checkbox',
      'switch', 'menuitem'].includes(t.getAttribute('role')));
  if (control && !(ours && t.tagName === 'BUTTON')) return;
  if (key(e)) e.preventDefault();
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  if (data && data.chart) { mountChart(component); return; }  // a figure, not the player
  if (!data || !data.key) return;
  P.set = setTriggerValue;
  P.override = draw;
  document.body.classList.add('pv-on');  // hides the server-side picker (the fallback)
  if (!P.keyHooked) {
    P.keyHooked = true;
    document.addEventListener('keydown', onKey);
  }
  const fresh = P.key !== data.key;
  P.data = data;
  P.key = data.key;
  const c = merge(data);
  build(parentElement);
  P.ack = data.ack;
  if (P.pending && P.ack >= P.pending.t) P.pending = null;
  if (!c) {  // the server thinks this page has the run, but it has not (a reloaded page)
    send({ need: true, key: data.key });
    return;
  }
  if (P.resync) {  // tell the server what this page holds; it sends the rest again
    P.resync = false;
    send({ have: c.iterations.length, key: data.key });
  }
  if (!P.alive) {
    P.alive = true;
    // the server plays a ?play=1 link itself until it hears that this page can
    if (data.serverPlaying) send({ alive: true, key: data.key, have: c.iterations.length });
  }
  if (fresh || data.seq !== P.seq) {  // the server moved (a link, Jump, a click, follow live)
    P.seq = data.seq;
    if (!P.playing || fresh) {
      stop();
      P.pos = data.index;
    }
  }
  P.follow = !!data.follow;
  if (P.follow && !P.playing) P.pos = c.iterations.length - 1;
  draw();
  if (data.autoplay && !P.playing) play();
  if (!P.hooked) {  // redraw after plotly redraws a chart (resize, zoom, a new figure)
    P.hooked = true;
    new MutationObserver(() => {
      if (P.queued) return;
      P.queued = true;
      requestAnimationFrame(() => { P.queued = false; if (!P.playing && stale()) draw(); });
    }).observe(document.body, { childList: true, subtree: true });
  }
}
