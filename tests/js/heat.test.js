import { b64of, eq, ok, test } from './harness.js';
import { drawHeat, heatCells, palette } from '../../pathviz/ui/js/heat.js';

const SCALE = [[0, '#d6d6d6'], [0.5 / 255, '#d6d6d6'], [0.5 / 255, 'rgb(68, 1, 84)'], [1, 'rgb(253, 231, 37)']];

function heatSpec() {
  // two layers: 4 filters shown in 2 columns (each the largest of two, permuted), 2 in 2
  return {
    key: 'heat', title: 'Γ support at iteration {it}', subtitle: 'grey: outside the support',
    columns: 2, scale: SCALE, labels: ['conv1', 'fc'], names: [null, null], font: 12,
    xtitle: 'filter position', colorbar: 'group ‖Γ‖ ÷ layer\'s largest',
    ticks: [[0, 'grey: outside'], [255, '1']],
    layers: [
      { off: 0, perm: b64of(Int32Array, [3, 0, 1, 2]), lo: b64of(Int32Array, [0, 2]), hi: b64of(Int32Array, [2, 4]) },
      { off: 4, perm: b64of(Int32Array, [0, 1]), lo: b64of(Int32Array, [0, 1]), hi: b64of(Int32Array, [1, 2]) },
    ],
  };
}

test('palette: level 0 grey (outside), 1 the scale\'s first colour, 255 its last', () => {
  const pal = palette(SCALE);
  eq(Array.from(pal.subarray(0, 4)), [214, 214, 214, 255]);
  eq(Array.from(pal.subarray(4, 7)), [68, 1, 84]);
  eq(Array.from(pal.subarray(255 * 4, 255 * 4 + 3)), [253, 231, 37]);
});

test('heat cells: each cell the largest level of the groups it shows, in the map\'s order', () => {
  const c = { rows: new Map([[0, Uint8Array.from([10, 0, 200, 30, 0, 7])]]) };
  const z = heatCells(c, heatSpec(), 0);
  eq([z.rows, z.cols], [2, 2]);
  // layer 1: column 0 shows filters 3 and 0 (30, 10), column 1 filters 1 and 2 (0, 200)
  eq(z.z, [30, 200, 0, 7]);
});

test('drawHeat titles the nearest sent snapshot and says so', () => {
  const c = { iterations: Float64Array.from([0, 100, 200]), rows: new Map([[2, Uint8Array.from([1, 2, 3, 4, 5, 6])]]),
    stride: 2 };
  const box = document.querySelector('.st-key-heat .pv-heatfig');
  drawHeat(c, heatSpec(), 1);
  eq(box.dataset.pvTitle, 'Γ support at iteration 200 (nearest sent)');
  eq(box.dataset.pvHeatPos, '1');
  drawHeat(c, heatSpec(), 2);
  eq(box.dataset.pvTitle, 'Γ support at iteration 200');
  ok(box.querySelector('canvas.pv-heat').width > 0, 'a canvas drawn');
  // no text leaves the canvas (the colour bar's labels included)
  const cv = box.querySelector('canvas.pv-heat'), W = parseFloat(cv.style.width), H = parseFloat(cv.style.height);
  for (const t of box.__pvTexts) ok(t.left >= 0 && t.right <= W + 0.5 && t.top >= 0 && t.bottom <= H + 0.5, `${t.text} inside`);
  ok(box.__pvTexts.some((t) => t.text === 'grey: outside'), 'the colour bar names grey as outside');
});
