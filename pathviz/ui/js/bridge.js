// The bridge to Streamlit: the component's entry point. The player component
// (pathviz.ui.player) brings a run's data and the server's position; the chart component
// (pathviz.ui.chart) brings one figure's spec, the line component the server's position.

import { P } from './state.js';
import { merge } from './codec.js';
import { mountChart } from './chartview.js';
import { draw, mountLine, stale } from './view.js';
import { build, onKey, play, send, stop } from './controls.js';

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  if (data && data.chart) { mountChart(component); return; }  // a figure, not the player
  if (data && data.position) { mountLine(component); return; }  // the server's position line
  if (!data || !data.key) return;
  P.set = setTriggerValue;
  document.body.classList.add('pv-on');  // hides the server-side picker (the fallback)
  if (!P.keyHooked) {
    P.keyHooked = true;
    document.addEventListener('keydown', onKey);
  }
  const fresh = P.key !== data.key;
  P.data = data;
  P.key = data.key;
  if (data.base) P.loads[data.key] = (P.loads[data.key] || 0) + 1;
  const [c, lost] = merge(P.cache[data.key], data);
  if (c) P.cache[data.key] = c;
  build(parentElement);
  P.ack = data.ack;
  if (P.pending && P.ack >= P.pending.t) P.pending = null;
  if (!c) {  // the server thinks this page has the run, but it has not (a reloaded page)
    send({ need: true, key: data.key });
    return;
  }
  if (lost) send({ have: c.iterations.length, key: data.key });  // it sends the rest again
  if (!P.alive) {
    P.alive = true;
    // the server plays a ?play=1 link itself until it hears that this page can
    if (data.serverPlaying) send({ alive: true, key: data.key, have: c.iterations.length });
  }
  if (fresh || data.seq !== P.seq) {  // the server moved (a link, Jump, a click, follow live)
    P.seq = data.seq;
    if (!P.playing || fresh) {
      stop();
      P.pos = data.index;
    }
  }
  P.follow = !!data.follow;
  if (P.follow && !P.playing) P.pos = c.iterations.length - 1;
  draw();
  if (data.autoplay && !P.playing) play();
  if (!P.hooked) {  // redraw after the page redraws something (a rerun, a resize, a new figure)
    P.hooked = true;
    new MutationObserver(() => {
      if (P.queued) return;
      P.queued = true;
      requestAnimationFrame(() => { P.queued = false; if (!P.playing && stale()) draw(); });
    }).observe(document.body, { childList: true, subtree: true });
  }
}
