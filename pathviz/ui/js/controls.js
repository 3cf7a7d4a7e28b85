// The player's controls (back, next, play, the range, speed, loop), its keys, play, and
// telling the server where the user paused (debounced, resent until acknowledged).

import { P, current } from './state.js';
import { stepIndex } from './position.js';
import { draw } from './view.js';

export function frame() {  // a step or play frame: drawn, and counted (the browser bench reads P.frames)
  draw();
  P.frames++;
}

export function send(payload) {
  // a report sent while the server is busy with another run can be dropped by the page's
  // widget queue: it is sent again until the server's data says it applied it (ack)
  P.t += 1;
  const p = Object.assign({}, payload, { t: P.t });
  P.pending = p;
  P.reportedAt = performance.now();  // the browser bench times the server's update from here
  P.set('report', p);
  clearTimeout(P.retry);
  P.retry = setTimeout(() => {
    if (P.pending === p && (P.ack || 0) < p.t && (p.tries || 0) < 5) {
      send(Object.assign({}, payload, { tries: (p.tries || 0) + 1 }));
    }
  }, 1500);
}

function report(follow) {
  // tell the server where the user stopped, after a pause in the stepping
  clearTimeout(P.timer);
  P.timer = setTimeout(() => {
    const c = current();
    if (!c || !P.set) return;
    const i = Math.floor(P.pos);
    send({ index: i, iteration: c.iterations[i], follow: !!follow,
      have: c.iterations.length, key: P.data.key });
  }, P.data.debounce);
}

export function moveTo(i) {
  stop();
  P.follow = false;
  P.pos = i;
  frame();
  report(false);
}
P.act.moveTo = moveTo;  // the charts' clicks go through here

export function stop() {
  if (P.raf) cancelAnimationFrame(P.raf);
  P.raf = null;
  if (P.playing) { P.playing = false; draw(); report(false); }
}

export function play() {
  const c = current();
  if (!c) return;
  if (Math.floor(P.pos) >= c.iterations.length - 1) P.pos = 0;  // play at the end starts from the start
  P.playing = true;
  P.follow = false;
  clearTimeout(P.timer);
  let last = performance.now();
  const tick = (now) => {
    if (!P.playing) return;
    const m = current().iterations.length;
    const before = Math.floor(P.pos);
    P.pos += (P.speed * (now - last)) / 1000;
    last = now;
    if (P.pos >= m - 1) {
      if (P.loop) P.pos = 0;
      else { P.pos = m - 1; P.playing = false; draw(); report(false); return; }
    }
    if (Math.floor(P.pos) !== before) frame();
    P.raf = requestAnimationFrame(tick);
  };
  draw();
  P.raf = requestAnimationFrame(tick);
}

export function build(parent) {
  let root = parent.querySelector(':scope > .pv-player');
  if (root) return P.ui;
  root = document.createElement('div');
  root.className = 'pv-player';
  root.innerHTML = `
    <div class="pv-row">
      <button class="pv-back" title="One snapshot earlier (←; Shift+← ten)">◀</button>
      <button class="pv-next" title="One snapshot later (→; Shift+→ ten)">▶</button>
      <button class="pv-play" title="Play or pause (Space)">▶ Play</button>
      <input class="pv-range" type="range" min="0" max="0" step="1" value="0"
             aria-label="Iteration" title="Drag, or use ←/→, Shift for ten, Home/End">
      <label class="pv-speed-l">speed <select class="pv-speed" aria-label="Play speed">
        <option value="6">6/s</option><option value="12">12/s</option>
        <option value="24">24/s</option><option value="48">48/s</option>
        <option value="96">96/s</option></select></label>
      <label class="pv-loop-l"><input class="pv-loop" type="checkbox"> loop</label>
    </div>
    <p class="pv-line"></p>`;
  parent.appendChild(root);
  const q = (s) => root.querySelector(s);
  const ui = { root, back: q('.pv-back'), next: q('.pv-next'), play: q('.pv-play'),
    range: q('.pv-range'), speed: q('.pv-speed'), loop: q('.pv-loop'), line: q('.pv-line') };
  ui.speed.value = String(P.speed);
  ui.loop.checked = P.loop;
  ui.back.onclick = () => moveTo(Math.floor(P.pos) - 1);
  ui.next.onclick = () => moveTo(Math.floor(P.pos) + 1);
  ui.play.onclick = () => (P.playing ? stop() : play());
  ui.range.oninput = () => moveTo(Number(ui.range.value));
  ui.range.onkeydown = (e) => { if (key(e)) e.preventDefault(); };
  ui.speed.onchange = () => { P.speed = Number(ui.speed.value); };
  ui.loop.onchange = () => { P.loop = ui.loop.checked; };
  return (P.ui = ui);
}

function key(e) {
  const c = current();
  if (!c || !P.ui || !P.ui.root.isConnected) return false;
  const to = stepIndex(Math.floor(P.pos), e.key, e.shiftKey, c.iterations.length);
  if (to !== null) moveTo(to);
  else if (e.key === ' ' || e.code === 'Space') (P.playing ? stop() : play());
  else return false;
  return true;
}

export function onKey(e) {
  // the page's keys, unless another control has the focus (a button, a box, a list, a slider:
  // Space and the arrows are theirs); the player's own range input has its own handler
  const t = e.target;
  if (e.ctrlKey || e.metaKey || e.altKey || !t) return;
  if (t.classList && t.classList.contains('pv-range')) return;
  const ours = t.closest && t.closest('.pv-player');
  const control = t.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT', 'BUTTON'].includes(t.tagName)
    || (t.getAttribute && ['slider', 'option', 'listbox', 'combobox', 'tab', 'radio', 'checkbox',
      'switch', 'menuitem'].includes(t.getAttribute('role')));
  if (control && !(ours && t.tagName === 'BUTTON')) return;
  if (key(e)) e.preventDefault();
}
