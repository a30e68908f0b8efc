/** NewLines (src/rate.ts): when a view may prepend the lines it skipped. */

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { NewLines } from '../src/rate';

test('quiet counts from the last new line; changes in place do not reset it', () => {
  const lines = new NewLines(1000, 0);
  lines.add(10, 100);
  lines.add(0, 350); // a progress bar redrawn
  assert.equal(lines.quietFor(400), 300);
});

test('a flood is not slow; a trickle is; a silence after a flood is', () => {
  const lines = new NewLines(1000, 0);
  for (let t = 0; t < 3000; t += 50) {
    lines.add(50, t); // 1000 lines/s
  }
  assert.equal(lines.slowerThan(100, 3000), false);
  for (let t = 3000; t < 6000; t += 500) {
    lines.add(1, t); // 2 lines/s
  }
  assert.equal(lines.slowerThan(100, 6000), true);
  const flood = new NewLines(1000, 0);
  for (let t = 0; t < 1000; t += 50) {
    flood.add(50, t);
  }
  assert.equal(flood.slowerThan(100, 5000), true, 'long silent: rate 0');
});
