// Pure helpers for drawing a chart spec (pathviz.charts) with uPlot: value formats, and a
// panel's series put on one shared x grid (uPlot's data model: one x array per plot).

import { fmt } from './position.js';

function trim3(v) { return String(+v.toPrecision(3)); }

export function fmtValue(v, f, step) {
  // a tick (``step``: the ticks' spacing) or a hover value (no step) in an axis's format
  if (v === null || v === undefined || !isFinite(v)) return '–';
  if (f === 'pct0' || f === 'pct1') {
    const d = step ? Math.max(0, Math.ceil(-Math.log10(step * 100) - 1e-9)) : 2;
    return (100 * v).toFixed(d) + ' %';
  }
  if (f === 'si') {
    if (!step) return fmt(v);
    const a = Math.abs(v);
    return a >= 1e6 ? trim3(v / 1e6) + 'M' : a >= 1e3 ? trim3(v / 1e3) + 'k' : trim3(v);
  }
  if (f === 'int' || f === 'rank') return fmt(v);
  return step ? trim3(v) : String(+v.toPrecision(4));
}

export function segments(x, y) {
  // a NaN-separated polyline (several groups' paths in one series) as its pieces
  const out = [];
  let xs = [], ys = [];
  const n = Math.min(x.length, y.length);
  for (let j = 0; j <= n; j++) {
    if (j === n || !isFinite(x[j])) {
      if (xs.length) out.push({ x: xs, y: ys });
      xs = []; ys = [];
    } else {
      xs.push(x[j]); ys.push(isFinite(y[j]) ? y[j] : null);
    }
  }
  return out;
}

export function alignPanel(series, log) {
  // every drawn line and dot series of a panel on one sorted x grid (the union of their x;
  // positive only on a log axis), null where a series has no value: [grid, [{s, y}]]
  const parts = [];
  for (const s of series) {
    if (s.levels) continue;  // coloured dots: drawn by the panel's hook, not as a series
    for (const seg of segments(s.x, s.y)) parts.push({ s, seg });
  }
  const keep = (v) => isFinite(v) && !(log && v <= 0);
  const grid = Float64Array.from(new Set(parts.flatMap((p) => p.seg.x.filter(keep))))
    .sort();
  const at = new Map();
  grid.forEach((v, j) => at.set(v, j));
  const cols = parts.map(({ s, seg }) => {
    const y = new Array(grid.length).fill(null);
    seg.x.forEach((v, j) => { if (at.has(v)) y[at.get(v)] = seg.y[j]; });
    return { s, y };
  });
  return [grid, cols];
}

export function panelHeights(panels, avail) {
  // each panel's plot height: its weight's share of ``avail`` pixels (24 at least)
  const w = panels.reduce((t, p) => t + p.weight, 0) || 1;
  return panels.map((p) => Math.max(Math.floor(avail * p.weight / w), 24));
}

export function logSplits(min, max) {
  if (!(min > 0 && max > min)) return [];
  // a log axis's ticks: the powers of ten in [min, max], with 2 and 5 times them where fewer
  // than three powers fall inside (uPlot's default puts a tick at every 1..9 multiple)
  const out = [], lo = Math.floor(Math.log10(min)), hi = Math.ceil(Math.log10(max));
  const ms = hi - lo > 3 ? [1] : [1, 2, 5];
  for (let e = lo; e <= hi; e++) {
    for (const m of ms) {
      const v = +(m * 10 ** e).toPrecision(6);
      if (v >= min * (1 - 1e-9) && v <= max * (1 + 1e-9)) out.push(v);
    }
  }
  return out;
}
