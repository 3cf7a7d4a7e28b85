import { b64of, eq, ok, test } from './harness.js';
import { drawPath } from '../../pathviz/ui/js/pathchart.js';
import { P } from '../../pathviz/ui/js/state.js';

const its = [0, 100, 200, 300, 400];
const spec = {
  key: 'path', x: b64of(Float64Array, its), font: 12, title: 'Support path', subtitle: 'filters in the support',
  xtitle: 'iteration', ytitle: 'filters selected (% of layer)', stop: { it: 200, label: 'suggested stop 200' },
  lines: [{ name: 'conv1 (6)', color: '#0072B2', width: 1.5, y: b64of(Float32Array, [0, 50, 50, 100, 100]) },
    { name: 'all (6)', color: '#000000', width: 3, y: b64of(Float32Array, [0, 17, 50, 83, 100]) }],
};
const run = { iterations: Float64Array.from(its) };
const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));

test('the support path: marker at the position, the legend gives the lines there', async () => {
  const box = document.querySelector('.st-key-path .pv-pathfig');
  drawPath(run, spec, 1);
  await frame();
  const u = box.__pvUp;
  ok(u && box.querySelector('.uplot'), 'a uPlot figure');
  eq(box.querySelector('.pv-hf-title').textContent, 'Support path');
  eq(box.dataset.pvMark, '100');
  drawPath(run, spec, 3);
  await frame();
  eq(box.dataset.pvMark, '300');
  const m = box.querySelector('.pv-marker');
  ok(Math.abs(parseFloat(m.style.left) + 1 - u.valToPos(300, 'x')) < 1, 'the marker at iteration 300');
  const values = Array.from(box.querySelectorAll('.u-legend .u-series .u-value')).map((e) => e.textContent);
  eq(values, ['300', '100 %', '83 %']);
  ok(box.getBoundingClientRect().bottom + 1 >= box.querySelector('.uplot').getBoundingClientRect().bottom,
    'the figure fits its box');
});

test('between two of the decimated points the legend names the position, not the point', async () => {
  // the run has a snapshot every 50 iterations; the lines keep every other one
  const box = document.querySelector('.st-key-path .pv-pathfig');
  const every = { iterations: Float64Array.from([0, 50, 100, 150, 200, 250, 300, 350, 400]) };
  drawPath(every, spec, 5);
  await frame();
  eq(box.dataset.pvMark, '250');
  const values = Array.from(box.querySelectorAll('.u-legend .u-series .u-value')).map((e) => e.textContent);
  eq(values[0], '250');
  drawPath(every, spec, 6);
  await frame();
  eq(Array.from(box.querySelectorAll('.u-legend .u-series .u-value')).map((e) => e.textContent),
    ['300', '100 %', '83 %']);
});

test('a click on the support path goes to the nearest snapshot', async () => {
  const box = document.querySelector('.st-key-path .pv-pathfig');
  drawPath(run, spec, 0);
  await frame();
  const u = box.__pvUp, r = u.over.getBoundingClientRect();
  const went = [];
  P.act.moveTo = (i) => went.push(i);
  P.data = { key: 'run' };  // the page's copy of the shown run
  P.cache.run = run;
  const at = { clientX: r.left + u.valToPos(240, 'x'), clientY: r.top + r.height / 2, bubbles: true };
  u.over.dispatchEvent(new MouseEvent('mousemove', at));
  u.over.dispatchEvent(new MouseEvent('mousedown', at));
  u.over.dispatchEvent(new MouseEvent('mouseup', at));
  u.over.dispatchEvent(new MouseEvent('click', at));
  eq(went, [2]);
});
