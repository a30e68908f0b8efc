/**
 * SeqTracker (src/seq.ts): which kernel messages a model applies.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { SeqDecision, SeqTracker } from '../src/seq';

type Kind = 'lines' | 'barrier' | 'replay';

function run(tracker: SeqTracker, msgs: [Kind, number][]): SeqDecision[] {
  return msgs.map(([kind, seq]) => tracker.accept(kind, seq));
}

test('messages in order are applied', () => {
  const t = new SeqTracker();
  assert.deepEqual(
    run(t, [
      ['lines', 1],
      ['barrier', 2],
      ['lines', 3]
    ]),
    ['apply', 'apply', 'apply']
  );
  assert.equal(t.seq, 3);
  assert.equal(t.contiguous, true);
});

test('a replay right after everything before it is covered (the answer to a hello during a flood)', () => {
  const t = new SeqTracker();
  assert.deepEqual(
    run(t, [
      ['lines', 1],
      ['lines', 2],
      ['replay', 3],
      ['lines', 4]
    ]),
    ['apply', 'apply', 'covered', 'apply']
  );
  assert.equal(t.seq, 4);
});

test('a model that saw nothing yet while the kernel sent messages applies the replay', () => {
  const t = new SeqTracker();
  // Messages 1..4 went to a page that was reloaded; this model only gets the replay.
  assert.deepEqual(run(t, [['replay', 5]]), ['apply']);
  assert.equal(t.seq, 5);
  assert.equal(t.contiguous, true);
});

test('after a gap, the replay is applied, and then messages it covers are old', () => {
  const t = new SeqTracker();
  // A reloaded page: its model first hears seq 7 (1..6 were sent before it existed).
  assert.deepEqual(run(t, [['lines', 7]]), ['apply']);
  assert.equal(t.contiguous, false);
  assert.deepEqual(run(t, [['lines', 8], ['replay', 9], ['lines', 10]]), ['apply', 'apply', 'apply']);
  assert.equal(t.contiguous, true);
  // A second replay with nothing missed since the first: covered.
  assert.deepEqual(run(t, [['replay', 11]]), ['covered']);
});

test('a gap right before a replay makes it apply', () => {
  const t = new SeqTracker();
  assert.deepEqual(run(t, [['lines', 1], ['replay', 3]]), ['apply', 'apply']);
});

test('messages at or before the last seq are old', () => {
  const t = new SeqTracker();
  assert.deepEqual(run(t, [['lines', 1], ['lines', 1], ['barrier', 0]]), ['apply', 'old', 'old']);
});
