import { eq, test } from './harness.js';
import { mountLine } from '../../pathviz/ui/js/view.js';

test('the line the page writes for the server\'s picker (Export, Tickets)', () => {
  const parent = document.body.appendChild(document.createElement('div'));
  const position = { it: 870, epoch: 48.333, index: 87, n: 253, weights: [800, 850, 900] };
  mountLine({ data: { position }, parentElement: parent });
  const line = parent.querySelector('p.pv-line');
  eq(line.textContent, 'Iteration 870 · epoch 48.33 · snapshot 88 of 253 · no weights here (nearest: 850, 900)');
  mountLine({ data: { position: { ...position, it: 900, index: 90 } }, parentElement: parent });
  eq(parent.querySelectorAll('p.pv-line').length, 1);  // the same paragraph, rewritten
  eq(line.textContent, 'Iteration 900 · epoch 48.33 · snapshot 91 of 253 · weights saved here (exportable)');
  parent.remove();
});
