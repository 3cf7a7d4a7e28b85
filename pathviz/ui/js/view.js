// Drawing a position everywhere the page shows it: the player's controls and line, the
// heatmap, the support path, the presentation status line, the Layer caption and the
// charts' markers; and noticing when a server rerun replaced something drawn (stale).

import { P, current } from './state.js';
import { captionText, lineText, statusText } from './position.js';
import { drawHeat } from './heat.js';
import { drawPath } from './pathchart.js';
import { markCharts } from './chartview.js';

function textIn(key) {
  // the paragraph the player writes in the server's container ``key`` (made once)
  const box = document.querySelector('.st-key-' + key);
  if (!box) return null;
  let el = box.querySelector('p.pv-text');
  if (!el) {
    el = document.createElement('p');
    el.className = 'pv-text';
    box.appendChild(el);
  }
  return el;
}

export function draw() {
  const d = P.data, c = current();
  if (!c || !c.iterations.length) return;
  const n = c.iterations.length;
  P.pos = Math.min(Math.max(P.pos, 0), n - 1);
  const i = Math.floor(P.pos), it = c.iterations[i];
  const ui = P.ui;
  if (ui && ui.root.isConnected) {
    ui.range.max = String(n - 1);
    ui.range.value = String(i);
    ui.line.textContent = lineText(it, c.epochs[i], i, n, c.weightIts);
    ui.line.style.display = d.line === false ? 'none' : '';
    ui.back.disabled = i <= 0;
    ui.next.disabled = i >= n - 1;
    ui.play.textContent = P.playing ? '❚❚ Pause' : '▶ Play';
    ui.root.dataset.iteration = String(it);
  }
  if (d.heat) drawHeat(c, d.heat, i);
  if (d.path) drawPath(c, d.path, i);
  if (d.status) {
    const el = textIn(d.status.key);
    if (el) el.textContent = statusText(c, i, d.status.total);
  }
  if (d.layerCaption && c.layerSupport) {
    const el = textIn(d.layerCaption.key);
    if (el) el.textContent = captionText(d.layerCaption, c.layerSupport, i, it);
  }
  P.drawn = { key: d.key, i, heat: d.heat ? d.heat.key : null };
  markCharts();  // the Layer and Metrics figures: the position's marker
}

export function mountLine({ data, parentElement }) {
  // the line component (pathviz.ui.chart.line_ui): the server's position, where no player runs
  let el = parentElement.querySelector(':scope > p.pv-line');
  if (!el) {  // styled here: a view without the player has not got its stylesheet
    el = parentElement.appendChild(Object.assign(document.createElement('p'), { className: 'pv-line' }));
    el.style.cssText = 'font-weight: 600; margin: 0';
  }
  const l = data.position;
  el.textContent = lineText(l.it, l.epoch, l.index, l.n, l.weights);
}

export function stale() {
  // something the page redrew (a new figure, a resize, a server rerun) lost what the player
  // drew; comparing first keeps the observer from redrawing its own changes forever
  const d = P.data;
  if (!d || !P.drawn) return true;
  if (P.ui && P.ui.root.isConnected && P.ui.root.dataset.iteration === undefined) return true;
  if (d.heat) {  // a server rerun that replaced the box (a new height, a new view)
    const box = document.querySelector('.st-key-' + d.heat.key + ' .pv-heatfig');
    if (box && (!box.querySelector('canvas.pv-heat') || box.dataset.pvHeatPos !== String(P.drawn.i)
                || box.dataset.pvTitle === undefined)) {
      return true;
    }
  }
  if (d.path) {
    const box = document.querySelector('.st-key-' + d.path.key + ' .pv-pathfig');
    if (box && (!box.querySelector('.uplot') || box.dataset.pvMark === undefined)) return true;
  }
  for (const k of [d.status && d.status.key, d.layerCaption && d.layerCaption.key]) {
    const box = k && document.querySelector('.st-key-' + k);
    if (box && !box.querySelector('p.pv-text')) return true;
  }
  for (const ch of Object.values(P.charts || {})) {
    if (ch.box.isConnected && ch.box.dataset.pvMark === undefined) return true;
  }
  return false;
}
