// What the page says about a position, computed here only (the server writes none of it):
// the line under the player and the server's picker, the presentation status line, the Layer caption, the nearest
// saved weights, the nearest W* evaluation, and which shipped snapshot stands in for one
// that was not sent. Pure functions of the page's copy ``c`` of a run (see codec.merge).

export function fmt(n) { return Math.round(n).toLocaleString('en-US'); }

export function clampIndex(i, n) { return Math.min(Math.max(Math.floor(i), 0), Math.max(n - 1, 0)); }

export function stepIndex(i, key, shift, n) {
  // the snapshot a key moves to from ``i`` (null: not a stepping key); Shift steps ten
  const k = shift ? 10 : 1;
  if (key === 'ArrowRight') return clampIndex(i + k, n);
  if (key === 'ArrowLeft') return clampIndex(i - k, n);
  if (key === 'Home') return 0;
  if (key === 'End') return Math.max(n - 1, 0);
  return null;
}

export function nearestIndex(a, v) {  // the index of the value of sorted ``a`` nearest ``v``; ties: earlier
  let lo = 0, hi = a.length - 1;
  if (hi < 0) return -1;
  while (lo < hi) { const m = (lo + hi) >> 1; if (a[m] < v) lo = m + 1; else hi = m; }
  if (lo > 0 && v - a[lo - 1] <= a[lo] - v) lo -= 1;
  return lo;
}

export function nearestRow(c, i) {
  // the shipped snapshot drawn for snapshot ``i``: itself, else the nearest on the stride
  // or the last, else the nearest held (-1: none)
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

export function nearestWeights(weightIts, it) {
  // the two saved-weight iterations nearest ``it``, ascending; ties go to the earlier
  const w = Array.from(weightIts);
  const order = w.map((v, j) => [Math.abs(v - it), j]).sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  return order.slice(0, 2).map((o) => w[o[1]]).sort((x, y) => x - y);
}

export function wStarNear(ws, it) {
  // the W* evaluation nearest ``it`` as [accuracy, its iteration, split] (ties: earlier), or null
  if (!ws || !ws.it.length) return null;
  let best = 0;
  for (let j = 1; j < ws.it.length; j++) {
    if (Math.abs(ws.it[j] - it) < Math.abs(ws.it[best] - it)) best = j;
  }
  return [ws.acc[best], ws.it[best], ws.split || 'validation'];
}

export function lineText(it, epoch, i, n, weightIts) {
  // the line under the player and under the server's picker (Export, Tickets): the only copy
  const s = `Iteration ${fmt(it)} · epoch ${epoch.toFixed(2)} · snapshot ${i + 1} of ${n}`;
  if (Array.from(weightIts).includes(it)) return s + ' · weights saved here (exportable)';
  const near = nearestWeights(weightIts, it);
  return s + ' · no weights here' + (near.length ? ` (nearest: ${near.map(fmt).join(', ')})` : '');
}

export function statusText(c, i, total) {
  // "iteration 900 · 89 of 220 filters selected · W* 97.6 % (validation)"; W* names the
  // iteration it was evaluated at when that is not this one
  const it = c.iterations[i];
  const w = wStarNear(c.wstar, it);
  const acc = w === null ? 'W* n/a'
    : `W* ${(100 * w[0]).toFixed(1)} % (${w[2]}` + (w[1] === it ? ')' : `, at ${fmt(w[1])})`);
  return `iteration ${fmt(it)} · ${fmt(c.selected[i])} of ${fmt(total)} filters selected · ${acc}`;
}

export function captionText(lc, support, i, it) {
  return `${lc.name}: ${support[i]} of ${lc.groups} ${lc.units || 'filters'} in the support`
    + ` at iteration ${fmt(it)} (dotted red line).`;
}
