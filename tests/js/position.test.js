import { eq, test } from './harness.js';
import {
  captionText, clampIndex, fmt, lineText, nearestIndex, nearestRow, nearestWeights, statusText,
  stepIndex, wStarNear,
} from '../../pathviz/ui/js/position.js';

function run(its, extra = {}) {  // the page's copy of a run, as codec.merge leaves it
  return Object.assign({ iterations: Float64Array.from(its),
    epochs: Float32Array.from(its.map((i) => i / 100)), selected: Int32Array.from(its.map((i) => i % 7)),
    weightIts: new Float64Array(0), rows: new Map(), stride: 1 }, extra);
}

test('fmt rounds and groups thousands', () => {
  eq(fmt(1234567.4), '1,234,567');
  eq(fmt(0), '0');
});

test('stepping stays within the run, Shift steps ten', () => {
  eq(stepIndex(5, 'ArrowRight', false, 10), 6);
  eq(stepIndex(9, 'ArrowRight', false, 10), 9);
  eq(stepIndex(0, 'ArrowLeft', false, 10), 0);
  eq(stepIndex(5, 'ArrowRight', true, 10), 9);
  eq(stepIndex(5, 'ArrowLeft', true, 10), 0);
  eq(stepIndex(5, 'Home', false, 10), 0);
  eq(stepIndex(5, 'End', false, 10), 9);
  eq(stepIndex(5, 'a', false, 10), null);
  eq(clampIndex(12.7, 10), 9);
  eq(clampIndex(-3, 10), 0);
  eq(clampIndex(3.9, 10), 3);
});

test('nearestIndex: the nearest value of a sorted array, ties to the earlier', () => {
  const a = Float64Array.from([0, 10, 20, 40]);
  eq(nearestIndex(a, 14), 1);
  eq(nearestIndex(a, 15), 1);
  eq(nearestIndex(a, 16), 2);
  eq(nearestIndex(a, 1000), 3);
  eq(nearestIndex(a, -5), 0);
  eq(nearestIndex(new Float64Array(0), 3), -1);
});

test('nearest saved weights: two nearest, ascending, ties to the earlier', () => {
  const w = Float64Array.from([0, 30, 60, 90]);
  eq(nearestWeights(w, 40), [30, 60]);
  eq(nearestWeights(w, 45), [30, 60]);
  eq(nearestWeights(w, 15), [0, 30]);
  eq(nearestWeights(w, 100), [60, 90]);
  eq(nearestWeights(new Float64Array(0), 4), []);
  eq(nearestWeights(Float64Array.from([50]), 4), [50]);
});

test('nearest sent snapshot: itself, else on the stride or the last, else any held', () => {
  const rows = new Map([[0, 1], [8, 1], [16, 1], [19, 1]]);
  const c = run(Array.from({ length: 20 }, (_, i) => i * 5), { rows, stride: 8 });
  eq(nearestRow(c, 8), 8);
  eq(nearestRow(c, 3), 0);
  eq(nearestRow(c, 5), 8);
  eq(nearestRow(c, 12), 8);  // a tie: the earlier stride row
  eq(nearestRow(c, 18), 19);  // the last snapshot, nearer than the stride row
  const sparse = run([0, 5, 10, 15, 20], { rows: new Map([[4, 1]]), stride: 2 });
  eq(nearestRow(sparse, 0), 4);  // nothing on the stride: the nearest held
  eq(nearestRow(run([0, 5], { rows: new Map(), stride: 1 }), 1), -1);
});

test('W* nearest: nearest evaluation with its split, ties to the earlier, null without', () => {
  const ws = { it: [0, 20, 40], acc: [0.5, 0.8, 0.9], split: 'validation' };
  eq(wStarNear(ws, 20), [0.8, 20, 'validation']);
  eq(wStarNear(ws, 30), [0.8, 20, 'validation']);
  eq(wStarNear(ws, 10), [0.5, 0, 'validation']);
  eq(wStarNear(ws, 99), [0.9, 40, 'validation']);
  eq(wStarNear(null, 10), null);
  eq(wStarNear({ it: [], acc: [], split: 'test' }, 10), null);
});

test('the line under the player', () => {
  const w = Float64Array.from([0, 1500]);
  eq(lineText(0, 0, 0, 4, w), 'Iteration 0 · epoch 0.00 · snapshot 1 of 4 · weights saved here (exportable)');
  eq(lineText(1000, 10, 2, 4, w), 'Iteration 1,000 · epoch 10.00 · snapshot 3 of 4 · no weights here'
    + ' (nearest: 0, 1,500)');
  eq(lineText(5, 0.05, 1, 2, new Float64Array(0)), 'Iteration 5 · epoch 0.05 · snapshot 2 of 2 · no weights here');
  eq(lineText(1500, 15.004, 3, 4, [0, 1500]), 'Iteration 1,500 · epoch 15.00 · snapshot 4 of 4 · weights saved here (exportable)');
});

test('the presentation status line', () => {
  const c = run([0, 900, 1200], { selected: Int32Array.from([0, 89, 1234]),
    wstar: { it: [900, 1200], acc: [0.976, 0.5], split: 'validation' } });
  eq(statusText(c, 1, 220), 'iteration 900 · 89 of 220 filters selected · W* 97.6 % (validation)');
  eq(statusText(c, 0, 2220), 'iteration 0 · 0 of 2,220 filters selected · W* 97.6 % (validation,'
    + ' at 900)');
  eq(statusText(run([7]), 0, 6), 'iteration 7 · 0 of 6 filters selected · W* n/a');
});

test('the Layer caption', () => {
  eq(captionText({ name: 'conv2', groups: 16, units: '' }, [3, 11], 1, 1260),
    'conv2: 11 of 16 filters in the support at iteration 1,260 (dotted red line).');
  eq(captionText({ name: 'blocks.0.attn', groups: 3, units: 'heads' }, [2], 0, 5),
    'blocks.0.attn: 2 of 3 heads in the support at iteration 5 (dotted red line).');
});
