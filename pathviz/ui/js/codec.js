// Decoding what the server sends (base64 little-endian arrays) and folding it into the page's
// copy of a run: a first whole copy, a live run's appended rows, colour levels by snapshot.

export const DT = { f8: Float64Array, f4: Float32Array, u1: Uint8Array, i4: Int32Array };

export function b64(s, Type) {
  if (!s) return new Type(0);
  const bin = atob(s);
  const u8 = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
  return new Type(u8.buffer);
}

export function concat(a, b, Type) {
  const out = new Type(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

export function decode(v) {  // a chart spec's arrays come as {b64, dtype} (pathviz.ui.chart.encode)
  if (Array.isArray(v)) return v.map(decode);
  if (v && typeof v === 'object') {
    if (typeof v.b64 === 'string' && DT[v.dtype]) return b64(v.b64, DT[v.dtype]);
    const o = {};
    for (const k of Object.keys(v)) o[k] = decode(v[k]);
    return o;
  }
  return v;
}

export function merge(c, data) {
  // ``c``: the page's copy of run ``data.key`` (or undefined); returns [copy, lost] where
  // ``lost`` says an append did not continue the copy (a render was lost on the way: the
  // page must tell the server what it holds)
  const b = data.base;
  if (b) {
    c = { iterations: b64(b.iterations, Float64Array), epochs: b64(b.epochs, Float32Array),
      selected: b64(b.selected, Int32Array), rows: new Map(), stride: 1, sumG: 0 };
  }
  if (!c) return [null, false];
  const a = data.append;
  const lost = !!a && a.start !== c.iterations.length;
  if (a && !lost) {
    c.iterations = concat(c.iterations, b64(a.iterations, Float64Array), Float64Array);
    c.epochs = concat(c.epochs, b64(a.epochs, Float32Array), Float32Array);
    c.selected = concat(c.selected, b64(a.selected, Int32Array), Int32Array);
  }
  for (const k of ['wstar', 'layerSupport']) if (data[k] !== undefined) c[k] = data[k];
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
  return [c, lost];
}
