// A small test runner for the player's modules, run in Chromium by tests/test_player_js.py:
// each *.test.js registers tests with ``test``; run.html runs them and leaves the results in
// ``window.__results`` ([{name, ok, message}]).

const TESTS = [];

export function test(name, fn) { TESTS.push({ name, fn }); }

function show(v) {
  return JSON.stringify(v, (k, x) => (ArrayBuffer.isView(x) ? Array.from(x) : x));
}

export function eq(actual, expected, what = '') {
  if (show(actual) !== show(expected)) {
    throw new Error(`${what ? what + ': ' : ''}expected ${show(expected)}, got ${show(actual)}`);
  }
}

export function ok(cond, what) { if (!cond) throw new Error(what || 'expected true'); }

export function b64of(Type, values) {  // what the server's _b64 sends for ``values``
  const a = new Type(values);
  let s = '';
  for (const byte of new Uint8Array(a.buffer)) s += String.fromCharCode(byte);
  return btoa(s);
}

export async function runAll() {
  const out = [];
  for (const t of TESTS) {
    try {
      await t.fn();
      out.push({ name: t.name, ok: true, message: '' });
    } catch (e) {
      out.push({ name: t.name, ok: false, message: String(e && e.stack ? e.stack : e) });
    }
  }
  return out;
}
