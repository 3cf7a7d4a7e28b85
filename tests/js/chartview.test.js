import { eq, ok, test } from './harness.js';
import { mountChart } from '../../pathviz/ui/js/chartview.js';
import { P } from '../../pathviz/ui/js/state.js';

const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
// a Compare figure (pathviz.charts.compare_chart): two runs on one iteration axis
const spec = {
  title: 'support size against iteration', subtitle: '', mode: 'iteration', stop: null, top: null,
  x: { title: 'iteration', lo: 0, hi: 400, log: false, fmt: 'int' }, legendTitle: 'run (ν, λ, κ):',
  legend: [{ name: 'a (ν=1)', color: '#0072B2', width: 2.5, dash: null },
    { name: 'b (ν=2)', color: '#E69F00', width: 2.5, dash: [6, 4] }],
  panels: [{ weight: 1, y: { title: 'fraction of groups selected', lo: 0, hi: 1.02, fmt: 'pct0' }, series: [
    { name: 'a (ν=1)', x: [0, 100, 200, 300, 400], y: [0, 0.1, 0.2, 0.3, 0.4], color: '#0072B2', width: 2.5,
      dash: null, hover: true, fmt: 'pct1' },
    { name: 'b (ν=2)', x: [0, 200, 400], y: [0, 0.5, 0.6], color: '#E69F00', width: 2.5, dash: [6, 4],
      hover: true, fmt: 'pct1' }] }],
};

test('a figure on a view without the player: the server\'s mark, the legend as text', async () => {
  const parent = document.body.appendChild(document.createElement('div'));
  parent.style.width = '600px';
  const mount = (mark) => mountChart({ data: { chart: spec, id: 'c1', height: 300, key: 'cmp', mark },
    parentElement: parent });
  mount(200);
  await frame();
  const box = parent.querySelector('.pv-chart'), u = P.charts.cmp.plots[0], m = box.querySelector('.pv-marker');
  eq(box.dataset.pvMark, '200');
  eq(m.style.display, 'block');
  ok(Math.abs(parseFloat(m.style.left) + 1 - u.valToPos(200, 'x')) < 0.5, `marker at ${m.style.left}`);
  eq(Array.from(box.querySelectorAll('.pv-legend > span')).map((e) => e.textContent),
    ['run (ν, λ, κ):', 'a (ν=1)', 'b (ν=2)']);
  eq(u.data[0], [0, 100, 200, 300, 400]);  // both runs on the union of their iterations
  eq(u.data[2], [0, null, 0.5, null, 0.6]);
  mount(400);  // the server moved: the same figure, the mark moved
  eq(box.dataset.pvMark, '400');
  ok(Math.abs(parseFloat(m.style.left) + 1 - u.valToPos(400, 'x')) < 0.5, 'marker at 400');
  parent.remove();
});
