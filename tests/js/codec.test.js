import { b64of, eq, ok, test } from './harness.js';
import { b64, decode, merge } from '../../pathviz/ui/js/codec.js';

const base = (its) => ({ iterations: b64of(Float64Array, its), epochs: b64of(Float32Array, its.map((i) => i / 10)),
  selected: b64of(Int32Array, its.map(() => 1)) });

test('b64 decodes the server\'s little-endian arrays', () => {
  eq(b64(b64of(Float64Array, [1.5, -2, 1e9]), Float64Array), [1.5, -2, 1e9]);
  eq(b64(b64of(Int32Array, [7, -1]), Int32Array), [7, -1]);
  eq(b64('', Uint8Array).length, 0);
});

test('decode turns {b64, dtype} leaves of a spec into typed arrays', () => {
  const spec = decode({ a: { b64: b64of(Float32Array, [1, 2]), dtype: 'f4' }, l: [{ x: 3 }], s: 'x' });
  ok(spec.a instanceof Float32Array, 'a typed array');
  eq(spec.a, [1, 2]);
  eq(spec.l, [{ x: 3 }]);
  eq(spec.s, 'x');
});

test('a first copy, then a live append that continues it', () => {
  let [c, lost] = merge(undefined, { base: base([0, 10, 20]), weights: b64of(Float64Array, [0]) });
  eq(lost, false);
  eq(c.iterations, [0, 10, 20]);
  eq(c.weightIts, [0]);
  [c, lost] = merge(c, { append: { start: 3, ...base([30, 40]) } });
  eq(lost, false);
  eq(c.iterations, [0, 10, 20, 30, 40]);
  eq(c.epochs, [0, 1, 2, 3, 4]);
  eq(c.selected.length, 5);
});

test('an append that does not continue the copy is refused and reported lost', () => {
  let [c] = merge(undefined, { base: base([0, 10, 20]) });
  let lost;
  [c, lost] = merge(c, { append: { start: 5, ...base([50]) } });
  eq(lost, true);
  eq(c.iterations, [0, 10, 20]);
});

test('no copy and no base: nothing (the page asks for the whole run)', () => {
  eq(merge(undefined, { append: { start: 0, ...base([1]) } }), [null, false]);
});

test('levels: rows by snapshot, a larger stride prunes to it (keeping the last), refine adds', () => {
  const rows = (idx, G) => ({ index: b64of(Int32Array, idx),
    data: b64of(Uint8Array, idx.flatMap((i) => Array(G).fill(i))) });
  let [c] = merge(undefined, { base: base([0, 1, 2, 3, 4, 5]), levels: { sumG: 2, stride: 1,
    rows: rows([0, 1, 2, 3, 4, 5], 2) } });
  eq(Array.from(c.rows.keys()), [0, 1, 2, 3, 4, 5]);
  eq(c.rows.get(3), [3, 3]);
  [c] = merge(c, { levels: { sumG: 2, stride: 2 } });
  eq(Array.from(c.rows.keys()).sort(), [0, 2, 4, 5]);
  [c] = merge(c, { levels: { sumG: 2, stride: 2, refine: rows([3], 2) } });
  eq(c.rows.get(3), [3, 3]);
  eq(c.stride, 2);
});
