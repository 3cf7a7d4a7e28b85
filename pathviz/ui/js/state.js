// The player's one shared state, per page: what the server sent (per run file) and where the
// user is. Every module reads and writes this object; nothing else is global.
//
// window.__pathvizPlayer is the documented debug entry point: the browser bench and the e2e
// tests read ``frames`` (frames drawn), ``reportedAt`` (when the last report left), ``loads``
// (whole copies received per run file) and ``charts`` (the figures on the page).

export const P = (window.__pathvizPlayer = window.__pathvizPlayer || {
  cache: {}, pos: 0, playing: false, speed: 24, loop: false, seq: null, key: null,
  frames: 0, t: 0, timer: null, raf: null, follow: false, loads: {}, act: {},
});

export function current() {  // the page's copy of the shown run, or undefined
  return P.data && P.cache[P.data.key];
}
