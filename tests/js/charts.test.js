import { eq, test } from './harness.js';
import { alignPanel, fmtValue, logSplits, panelHeights, segments } from '../../pathviz/ui/js/charts.js';

test('values in their axis format', () => {
  eq(fmtValue(0.9712, 'pct1'), '97.12 %');
  eq(fmtValue(0.2, 'pct0', 0.2), '20 %');
  eq(fmtValue(0.975, 'pct1', 0.005), '97.5 %');
  eq(fmtValue(15871, 'si', 5000), '15.9k');
  eq(fmtValue(15871, 'si'), '15,871');
  eq(fmtValue(2.5e6, 'si', 1e6), '2.5M');
  eq(fmtValue(1260, 'int', 200), '1,260');
  eq(fmtValue(0.123456, 'num'), '0.1235');
  eq(fmtValue(NaN, 'num'), '–');
});

test('a NaN-separated polyline comes apart into its paths', () => {
  const x = Float32Array.from([0, 10, 20, NaN, 0, 10, 20, NaN]);
  const y = Float32Array.from([1, 2, 3, NaN, 4, NaN, 6, NaN]);
  eq(segments(x, y), [{ x: [0, 10, 20], y: [1, 2, 3] }, { x: [0, 10, 20], y: [4, null, 6] }]);
  eq(segments(new Float32Array(0), new Float32Array(0)), []);
});

test('a panel\'s series on one sorted x grid, null where a series has no value', () => {
  const a = { name: 'a', x: Float64Array.from([0, 20]), y: Float32Array.from([1, 2]) };
  const b = { name: 'b', x: Float64Array.from([10, 20, 30]), y: Float32Array.from([5, 6, 7]) };
  const dots = { name: 'c', x: [1], y: [1], levels: [3] };  // drawn by the hook
  const [grid, cols] = alignPanel([a, b, dots], false);
  eq(grid, [0, 10, 20, 30]);
  eq(cols.map((c) => c.s.name), ['a', 'b']);
  eq(cols[0].y, [1, null, 2, null]);
  eq(cols[1].y, [null, 5, 6, 7]);
  const [lgrid] = alignPanel([a, b], true);  // a log axis: no iteration 0
  eq(lgrid, [10, 20, 30]);
});

test('panel heights share the room by weight', () => {
  eq(panelHeights([{ weight: 0.5 }, { weight: 0.25 }, { weight: 0.25 }], 400), [200, 100, 100]);
  eq(panelHeights([{ weight: 0.9 }, { weight: 0.1 }], 100), [90, 24]);
});

test('log ticks: powers of ten, with 2 and 5 over a short span', () => {
  eq(logSplits(0.0005, 3), [0.001, 0.01, 0.1, 1]);
  eq(logSplits(0.05, 3), [0.05, 0.1, 0.2, 0.5, 1, 2]);
  eq(logSplits(10, 5000), [10, 20, 50, 100, 200, 500, 1000, 2000, 5000]);
});
