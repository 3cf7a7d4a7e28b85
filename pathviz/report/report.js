// The report's page (pathviz.report): the player above, run by the app's own modules (joined
// before this, so pvBridge, P, draw and current are the app's), over the data embedded in
// the file. This part only switches the tabs, picks the Layer view's layer and mounts the
// figures when their tab first shows (uPlot sizes a plot to its box, which a hidden tab lacks).

const PV = JSON.parse(document.getElementById('pv-data').textContent);
const TABS = ['overview', 'layer', 'metrics', 'present'];
const layerPick = document.getElementById('layer-pick');

function mountFig(name, id) {
  const fig = PV.charts[name], box = document.getElementById(id);
  if (fig && box) pvBridge({ data: fig, parentElement: box });
}

function pickLayer(name) {
  const l = PV.layers[name];
  if (!l) return;
  mountFig('layer:' + name, 'layer-box');
  P.data.layerCaption = l.caption;
  const c = current();
  if (c) c.layerSupport = l.support;
  draw();
}

function showTab(tab) {
  if (!TABS.includes(tab)) tab = 'overview';
  for (const b of document.querySelectorAll('nav.tabs button')) {
    b.setAttribute('aria-selected', String(b.dataset.tab === tab));
  }
  for (const s of document.querySelectorAll('main > section')) s.hidden = s.dataset.panel !== tab;
  document.body.classList.toggle('pv-presenting', tab === 'present');
  const d = P.data;
  d.heat = tab === 'overview' ? PV.player.heat : tab === 'present' ? PV.present.heat : undefined;
  d.path = tab === 'present' ? PV.present.path : undefined;
  d.status = tab === 'present' ? PV.present.status : undefined;
  d.line = tab !== 'present';  // presentation mode's status line names the iteration
  d.layerCaption = undefined;
  document.body.dataset.tab = tab;
  if (tab === 'layer') pickLayer(layerPick.value);
  if (tab === 'metrics') { mountFig('metrics', 'metrics-box'); mountFig('tradeoff', 'tradeoff-box'); }
  draw();
}

// a file has no server: a report of the position is acknowledged at once (nothing resent)
pvBridge({ data: PV.player, parentElement: document.getElementById('player'),
  setTriggerValue: (k, p) => { if (p && p.t) P.ack = p.t; } });
for (const b of document.querySelectorAll('nav.tabs button')) {
  b.addEventListener('click', () => {
    history.replaceState(null, '', '#' + b.dataset.tab);
    showTab(b.dataset.tab);
    b.blur();  // the keys step the player again (a focused button keeps Space and the arrows)
  });
}
layerPick.addEventListener('change', () => pickLayer(layerPick.value));
showTab(location.hash.slice(1));
document.body.dataset.ready = '1';
