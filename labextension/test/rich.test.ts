/**
 * Display bundles in the pure parts: message parsing, the line store (order among lines,
 * updates, bounds) and the cap on one bundle (rich.ts).
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { DISPLAY, DisplayData, parseToView, Piece, PROTOCOL_VERSION } from '../src/messages';
import { capDisplay, displaySize, MAX_DISPLAY_CHARS, plainText } from '../src/rich';
import { LineStore, StoredLine } from '../src/store';

function bundle(html: string, extra: Partial<DisplayData> = {}): DisplayData {
  return {
    kind: 'display',
    data: { 'text/html': html, 'text/plain': '<HTML>' },
    metadata: {},
    display_id: null,
    update: false,
    ...extra
  };
}

/** What a line shows: its text, or "<display: first html>". */
function shown(line: StoredLine): string {
  if (line.display === null) {
    return line.text;
  }
  const html = line.display.data['text/html'];
  return `<display: ${typeof html === 'string' ? html : plainText(line.display)}>`;
}

test('parseToView takes display chunks among text chunks and refuses malformed ones', () => {
  const chunks: Piece[] = [[1, 'a\n', 0], [DISPLAY, bundle('<b>x</b>'), 0], [2, 'e\n', 0]];
  const ok = parseToView({ protocol: PROTOCOL_VERSION, type: 'lines', seq: 1, dropped: 0, chunks });
  assert.ok(ok.ok && ok.msg.type === 'lines' && ok.msg.chunks.length === 3);
  assert.ok(parseToView({ protocol: PROTOCOL_VERSION, type: 'replay', seq: 1, dropped: 0, chunks }).ok);
  const malformed: unknown[] = [
    [DISPLAY, { ...bundle('x'), kind: 'script' }, 0],
    [DISPLAY, { ...bundle('x'), data: {} }, 0],
    [DISPLAY, { ...bundle('x'), data: 'text/html' }, 0],
    [DISPLAY, { ...bundle('x'), display_id: 3 }, 0],
    [DISPLAY, { ...bundle('x'), update: 'yes' }, 0],
    [DISPLAY, 'x', 0],
    [1, bundle('x')]
  ];
  for (const chunk of malformed) {
    const p = parseToView({ protocol: PROTOCOL_VERSION, type: 'lines', seq: 1, dropped: 0, chunks: [chunk] });
    assert.ok(!p.ok && p.error === 'malformed lines message', JSON.stringify(chunk));
  }
});

test('a bundle is a line in its place: it ends stdout\'s open line, stderr\'s stays open', () => {
  const store = new LineStore(100);
  store.apply(
    [
      [1, 'before\npartial', 0],
      [2, 'err partial', 0],
      [DISPLAY, bundle('<b>1</b>'), 0],
      [1, 'after\n', 0],
      [2, ' continued\n', 0]
    ],
    0
  );
  assert.deepEqual(store.all().map(shown), ['before', 'partial', 'err partial continued', '<display: <b>1</b>>', 'after']);
  const display = store.all()[3];
  assert.equal(display.stream, 1);
  assert.equal(display.open, false);
  assert.equal(store.all()[1].open, false); // the partial stdout line was ended by the bundle
});

test('an update re-renders the bundle of its display id in place; one of a bundle gone is dropped', () => {
  const store = new LineStore(100);
  store.apply([[DISPLAY, bundle('<i>v1</i>', { display_id: 'p1' }), 0], [1, 'later\n', 0]], 0);
  const delta = store.apply([[DISPLAY, bundle('<i>v2</i>', { display_id: 'p1', update: true }), 0]], 0);
  assert.deepEqual(store.all().map(shown), ['<display: <i>v2</i>>', 'later']);
  assert.deepEqual(delta.added, []);
  assert.deepEqual(delta.changed.map(shown), ['<display: <i>v2</i>>']);
  assert.equal(store.all()[0].display?.update, false);
  const orphan = store.apply([[DISPLAY, bundle('<i>?</i>', { display_id: 'never-shown', update: true }), 0]], 0);
  assert.deepEqual(orphan.added, []);
  assert.deepEqual(orphan.changed, []);
  assert.equal(store.size, 2);
});

test('bundles are bounded: older lines leave from the front, the newest bundle stays', () => {
  const store = new LineStore(100, 250);
  const big = 'x'.repeat(100);
  store.apply([[DISPLAY, bundle(big), 0], [1, 'a\n', 0], [DISPLAY, bundle(big), 0], [1, 'b\n', 0]], 0);
  assert.equal(store.size, 4);
  const delta = store.apply([[DISPLAY, bundle(big), 0]], 0);
  // Three bundles of ~110 characters do not fit 250: lines leave from the front until the
  // first bundle is gone.
  assert.deepEqual(store.all().map(shown), ['a', `<display: ${big}>`, 'b', `<display: ${big}>`]);
  assert.equal(delta.removed, 1);
  assert.equal(store.hidden, 1);
  assert.ok(store.displayCharsHeld <= 250);
  // One bundle larger than the whole budget still shows: it is the newest.
  const huge = 'y'.repeat(400);
  store.apply([[DISPLAY, bundle(huge), 0]], 0);
  assert.deepEqual(store.all().map(shown), [`<display: ${huge}>`]);
  // Lines count too: max_lines evicts bundles like lines.
  const small = new LineStore(2);
  small.apply([[DISPLAY, bundle('1'), 0], [DISPLAY, bundle('2'), 0], [DISPLAY, bundle('3'), 0]], 0);
  assert.deepEqual(small.all().map(shown), ['<display: 2>', '<display: 3>']);
  assert.equal(small.displayCharsHeld, displaySize(bundle('2')) + displaySize(bundle('3')));
});

test('replace brings bundles back in order and forgets the old ones', () => {
  const store = new LineStore(100);
  store.apply([[DISPLAY, bundle('old', { display_id: 'd' }), 0]], 0);
  store.replace([[1, 'x\n', 0], [DISPLAY, bundle('new'), 0]], 5);
  assert.deepEqual(store.all().map(shown), ['x', '<display: new>']);
  assert.equal(store.hidden, 5);
  // The replaced bundle's id is gone with it.
  const d = store.apply([[DISPLAY, bundle('v2', { display_id: 'd', update: true }), 0]], 0);
  assert.deepEqual(d.changed, []);
  assert.equal(store.displayCharsHeld, displaySize(bundle('new')));
});

test('a bundle over the cap becomes a note with its text, and keeps its place', () => {
  const d = bundle('z'.repeat(100));
  assert.equal(capDisplay(d, displaySize(d)), d);
  const capped = capDisplay(d, displaySize(d), 50);
  assert.deepEqual(Object.keys(capped.data), ['text/plain']);
  assert.match(plainText(capped), /^\[display output not shown \(text\/html, text\/plain\): .* over the limit of 50 characters for one output\]\n<HTML>$/);
  const store = new LineStore(100);
  const hugeHtml = 'h'.repeat(MAX_DISPLAY_CHARS + 1);
  store.apply([[1, 'a\n', 0], [DISPLAY, bundle(hugeHtml), 0], [1, 'b\n', 0]], 0);
  const lines = store.all();
  assert.equal(lines.length, 3);
  assert.ok(lines[1].display !== null && !('text/html' in lines[1].display.data));
  assert.match(plainText(lines[1].display), /over the limit of 16\.0 MiB/);
  assert.ok(store.displayCharsHeld < 1000);
});

test('displaySize counts strings as they are and other values as JSON', () => {
  const d: DisplayData = {
    kind: 'result',
    data: { 'image/png': 'abcd', 'application/json': { a: [1, 2] } },
    metadata: { 'image/png': { width: 10 } },
    display_id: null,
    update: false
  };
  assert.equal(displaySize(d), 4 + JSON.stringify({ a: [1, 2] }).length + JSON.stringify(d.metadata).length);
});
