// The support path (presentation mode) on uPlot: each layer's share of groups selected
// against iteration, all layers together thick, the stop dashed orange, the position a dotted
// red line. uPlot gives the axes, the legend with each line's value under the pointer, and
// drag-to-zoom (double-click zooms out); a click goes to the nearest snapshot.

import { b64 } from './codec.js';
import { fmt, nearestIndex } from './position.js';
import { P, current } from './state.js';

const STOP_LINE = '#ff7f0e';

function stopHook(spec) {
  // the suggested stop: a dashed orange line with its label, over the plot
  return (u) => {
    if (!spec.stop) return;
    const x = u.valToPos(spec.stop.it, 'x', true);
    if (!(x >= u.bbox.left && x <= u.bbox.left + u.bbox.width)) return;
    const ctx = u.ctx, dpr = window.devicePixelRatio || 1;
    ctx.save();
    ctx.strokeStyle = STOP_LINE;
    ctx.lineWidth = 2 * dpr;
    ctx.setLineDash([6 * dpr, 4 * dpr]);
    ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
    ctx.fillStyle = STOP_LINE;
    ctx.font = `${(spec.font || 12) * dpr}px sans-serif`;
    const left = x < u.bbox.left + u.bbox.width / 2;
    ctx.textAlign = left ? 'left' : 'right';
    ctx.fillText(spec.stop.label, x + (left ? 4 : -4) * dpr, u.bbox.top + u.bbox.height - 4 * dpr);
    ctx.restore();
  };
}

function buildPath(box, spec) {
  const font = spec.font || 12;
  box.innerHTML = '<div class="pv-hf-title"></div><div class="pv-hf-sub"></div><div class="pv-up"></div>';
  const title = box.querySelector('.pv-hf-title'), sub = box.querySelector('.pv-hf-sub');
  title.textContent = spec.title;
  title.style.fontSize = (font + 4) + 'px';
  sub.textContent = spec.subtitle;
  sub.style.fontSize = font + 'px';
  const x = b64(spec.x, Float64Array);
  const data = [x].concat(spec.lines.map((l) => b64(l.y, Float32Array)));
  const family = getComputedStyle(box).fontFamily || 'sans-serif';
  const axis = { font: `${font}px ${family}`, labelFont: `${font}px ${family}`,
    grid: { stroke: '#e6e6e6', width: 1 }, ticks: { stroke: '#999', width: 1 } };
  const opts = {
    width: Math.max(box.clientWidth, 100), height: 100,
    scales: { x: { time: false }, y: { range: [0, 102] } },
    axes: [
      Object.assign({ label: spec.xtitle, values: (u, vs) => vs.map(fmt) }, axis),
      Object.assign({ label: spec.ytitle, values: (u, vs) => vs.map((v) => v + ' %'), size: font * 3 + 14,
        splits: () => [0, 20, 40, 60, 80, 100] }, axis),
    ],
    // the position's own iteration while the legend follows the marker (the lines are
    // decimated: their nearest point may be an iteration or two away); the pointer's under hover
    series: [{ label: 'iteration', value: (u, v) => (v == null ? '–' : fmt(u.__pvAt ?? v)) }].concat(
      spec.lines.map((l) => ({ label: l.name, stroke: l.color, width: l.width,
        value: (u, v) => (v == null ? '–' : Math.round(v) + ' %') }))),
    cursor: { drag: { x: true, y: false }, points: { show: false } },
    legend: { live: true },
    hooks: { draw: [stopHook(spec)] },
  };
  const holder = box.querySelector('.pv-up');
  const u = new uPlot(opts, data, holder);
  const marker = document.createElement('div');
  marker.className = 'pv-marker';
  u.over.appendChild(marker);
  let downX = null;
  u.over.addEventListener('mousedown', (e) => { downX = e.clientX; });
  u.over.addEventListener('click', (e) => {  // a click, not the end of a drag: go there
    if (downX !== null && Math.abs(e.clientX - downX) > 4) return;
    const c = current();
    if (!c) return;
    const i = nearestIndex(c.iterations, u.posToVal(e.clientX - u.over.getBoundingClientRect().left, 'x'));
    if (i >= 0) P.act.moveTo(i);
  });
  const fit = () => {
    const h = box.clientHeight - holder.offsetTop
      - (u.root.querySelector('.u-legend') || { offsetHeight: 0 }).offsetHeight;
    u.setSize({ width: Math.max(box.clientWidth, 100), height: Math.max(h, 120) });
  };
  fit();
  new ResizeObserver(() => { if (box.__pvUp === u && P.drawn) { fit(); markPath(box, current(), P.drawn.i); } }).observe(box);
  return u;
}

function markPath(box, c, i) {
  const u = box.__pvUp;
  if (!u || !c || !c.iterations.length) return;
  const it = c.iterations[Math.min(i, c.iterations.length - 1)];
  const m = u.over.querySelector('.pv-marker'), x = u.valToPos(it, 'x');
  const inside = x >= 0 && x <= u.over.clientWidth;
  m.style.display = inside ? 'block' : 'none';
  m.style.left = (x - 1) + 'px';  // top and bottom 0 (CSS): as high as the plot, whatever its size
  // the legend gives each line's value at the position, until the pointer hovers the plot
  if (u.cursor.left === undefined || u.cursor.left < 0) {
    u.__pvAt = it;
    u.setLegend({ idx: nearestIndex(u.data[0], it) });
    u.__pvAt = null;
  }
  box.dataset.pvMark = String(it);
}

export function drawPath(c, spec, i) {
  // built when the server sends a new path (a live run's grows) or the box is new; a step
  // only moves the marker
  const box = document.querySelector('.st-key-' + spec.key + ' .pv-pathfig');
  if (!box) return;
  const sig = [spec.x.length, spec.lines.length, spec.stop && spec.stop.it].join();
  if (!box.__pvUp || !box.__pvUp.root.isConnected || box.__pvSig !== sig) {
    if (box.__pvUp) box.__pvUp.destroy();
    box.__pvSig = sig;
    box.__pvUp = buildPath(box, spec);
  }
  markPath(box, c, i);
}
