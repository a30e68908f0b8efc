/**
 * The pure parts of the frontend: ANSI decoding, the line store, message parsing.
 * Run with `npm test` (compiles to lib-test/ as CommonJS, then node's test runner).
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { AnsiDecoder, PLAIN, Style, TextSink } from '../src/ansi';
import { Chunk, parseToView, PROTOCOL_VERSION } from '../src/messages';
import { LineStore, MAX_LINE_CHARS, StoredLine } from '../src/store';

type Event = ['text', string, Style] | ['nl'] | ['cr'] | ['bs'];

function decode(...chunks: string[]): Event[] {
  const events: Event[] = [];
  const sink: TextSink = {
    text: (t, s) => events.push(['text', t, s]),
    newline: () => events.push(['nl']),
    carriageReturn: () => events.push(['cr']),
    backspace: () => events.push(['bs'])
  };
  const d = new AnsiDecoder();
  chunks.forEach(c => d.decode(c, sink));
  return events;
}

function texts(events: Event[]): string {
  return events.map(e => (e[0] === 'text' ? e[1] : e[0] === 'nl' ? '\n' : e[0] === 'cr' ? '\r' : '\b')).join('');
}

const lineTexts = (store: LineStore): string[] => store.all().map(l => l.text);
const streams = (store: LineStore): number[] => store.all().map(l => l.stream);

test('plain text passes through, controls are handled or dropped', () => {
  assert.equal(texts(decode('a\tb\x07c\n')), 'a\tbc\n');
  assert.equal(texts(decode('x\r\ny\bz')), 'x\r\ny\bz');
});

test('SGR colours and attributes', () => {
  const ev = decode('a\x1b[1;31mb\x1b[0mc');
  assert.equal(ev.length, 3);
  assert.equal(ev[0][0] === 'text' && ev[0][2], PLAIN);
  const s = ev[1][0] === 'text' ? ev[1][2] : PLAIN;
  assert.equal(s.fg, 1);
  assert.equal(s.bold, true);
  assert.equal(ev[2][0] === 'text' && ev[2][2], PLAIN);
  const bright = decode('\x1b[94;101mx')[0];
  assert.ok(bright[0] === 'text' && bright[2].fg === 12 && bright[2].bg === 9);
  const c256 = decode('\x1b[38;5;208mx')[0];
  assert.ok(c256[0] === 'text' && c256[2].fg === 208);
  const rgb = decode('\x1b[48;2;1;2;3mx')[0];
  assert.ok(rgb[0] === 'text' && JSON.stringify(rgb[2].bg) === '[1,2,3]');
  const colon = decode('\x1b[38:2::10:20:30mx')[0];
  assert.ok(colon[0] === 'text' && JSON.stringify(colon[2].fg) === '[10,20,30]');
});

test('equal styles are the same object', () => {
  const ev = decode('\x1b[31ma\x1b[0m\x1b[31mb\x1b[1m\x1b[22mc');
  const styles = ev.map(e => (e[0] === 'text' ? e[2] : PLAIN));
  assert.equal(styles[0], styles[1]);
  assert.equal(styles[1], styles[2]);
  assert.notEqual(styles[0], PLAIN);
});

test('a style carries over chunks and lines until reset', () => {
  const ev = decode('\x1b[32ma\n', 'b');
  const last = ev[ev.length - 1];
  assert.ok(last[0] === 'text' && last[2].fg === 2);
});

test('other escape sequences are stripped, also when split across chunks', () => {
  assert.equal(texts(decode('a\x1b[2Jb\x1b[10;5Hc\x1b[?25ld\x1b7e')), 'abcde');
  assert.equal(texts(decode('a\x1b]0;title\x07b\x1b]8;;http://x\x1b\\c')), 'abc');
  assert.equal(texts(decode('a\x1b_ipylogfwd:0123456789abcdef\x1b\\b')), 'ab');
  assert.equal(texts(decode('a\x1b', '[3', '1mb\x1b_mar', 'ker\x1b', '\\c')), 'abc');
  const split = decode('a\x1b[3', '1mb');
  assert.ok(split[1][0] === 'text' && split[1][2].fg === 1);
  assert.equal(texts(decode('a\x1bPdcs\x1b\\b\x1b^pm\x1b\\c')), 'abc');
});

test('partial lines continue in place; streams interleave in arrival order', () => {
  const store = new LineStore(100);
  store.apply([[1, 'hello ', 0], [2, 'err\n', 0]], 0);
  const d = store.apply([[1, 'world\n', 0], [1, 'next', 0]], 0);
  assert.deepEqual(lineTexts(store), ['hello world', 'err', 'next']);
  assert.deepEqual(streams(store), [1, 2, 1]);
  assert.equal(d.removed, 0);
  assert.deepEqual(
    d.changed.map(l => l.text),
    ['hello world']
  );
  assert.deepEqual(
    d.added.map(l => l.text),
    ['next']
  );
  assert.equal(d.added[0].open, true);
  assert.equal(d.changed[0].open, false);
});

test('\\r overwrites from the start of the line; \\r\\n is a line end', () => {
  const store = new LineStore(100);
  store.apply([[1, ' 10% |#     |\r', 0]], 0);
  store.apply([[1, ' 50% |###   |\r', 0], [1, '100% |######|\r\n', 0], [1, 'abcdef\rXY\n', 0]], 0);
  assert.deepEqual(lineTexts(store), ['100% |######|', 'XYcdef']);
  store.apply([[1, 'ab\bX\n', 0]], 0);
  assert.deepEqual(lineTexts(store).slice(-1), ['aX']);
});

test('overwriting keeps styles of what is not overwritten', () => {
  const store = new LineStore(100);
  store.apply([[1, '\x1b[31mred\x1b[0m plain\rX\n', 0]], 0);
  const line: StoredLine = store.all()[0];
  assert.equal(line.text, 'Xed plain');
  assert.deepEqual(
    line.runs.map(r => [r.text, r.style.fg]),
    [
      ['X', null],
      ['ed', 1],
      [' plain', null]
    ]
  );
});

test('bounded: evicts from the front, counts hidden lines, reports O(batch) deltas', () => {
  const store = new LineStore(3);
  store.apply([[1, 'a\nb\n', 0]], 0);
  let d = store.apply([[1, 'c\nd\n', 0]], 0);
  assert.deepEqual(lineTexts(store), ['b', 'c', 'd']);
  assert.equal(d.removed, 1);
  assert.deepEqual(
    d.added.map(l => l.text),
    ['c', 'd']
  );
  assert.equal(store.hidden, 1);
  const many = Array.from({ length: 1000 }, (_, i) => `l${i}\n`).join('');
  d = store.apply([[2, many, 0]], 5);
  assert.equal(d.removed, 3);
  assert.deepEqual(
    d.added.map(l => l.text),
    ['l997', 'l998', 'l999']
  );
  assert.equal(store.hidden, 1 + 3 + 997 + 5);
  assert.equal(store.setMaxLines(2), 1);
  assert.deepEqual(lineTexts(store), ['l998', 'l999']);
});

test('an evicted open line: its continuation starts a new line', () => {
  const store = new LineStore(2);
  store.apply([[1, 'partial', 0], [2, 'e1\ne2\n', 0]], 0);
  assert.deepEqual(lineTexts(store), ['e1', 'e2']);
  store.apply([[1, ' rest\n', 0]], 0);
  assert.deepEqual(lineTexts(store), ['e2', ' rest']);
});

test('replace resets lines, counts and decoder state', () => {
  const store = new LineStore(10);
  store.apply([[1, '\x1b[31mold', 0], [2, 'x\n', 0]], 7);
  store.replace([[1, 'new\n', 0]], 3);
  assert.deepEqual(lineTexts(store), ['new']);
  assert.equal(store.all()[0].runs[0].style, PLAIN);
  assert.equal(store.hidden, 3);
});

test('very long lines are wrapped', () => {
  const store = new LineStore(10);
  store.apply([[1, 'x'.repeat(MAX_LINE_CHARS + 5) + '\n', 0]], 0);
  assert.deepEqual(
    store.all().map(l => l.length),
    [MAX_LINE_CHARS, 5]
  );
});

test('blank lines are lines', () => {
  const store = new LineStore(10);
  store.apply([[1, 'a\n\n\nb\n', 0]], 0);
  assert.deepEqual(lineTexts(store), ['a', '', '', 'b']);
});

test('parseToView accepts the protocol and reports the rest', () => {
  const chunks: Chunk[] = [[1, 'x', 0]];
  assert.ok(parseToView({ protocol: PROTOCOL_VERSION, type: 'lines', seq: 1, dropped: 0, chunks }).ok);
  assert.ok(parseToView({ protocol: PROTOCOL_VERSION, type: 'barrier', seq: 2, version: 3 }).ok);
  assert.ok(parseToView({ protocol: PROTOCOL_VERSION, type: 'replay', seq: 2, dropped: 0, chunks: [] }).ok);
  const bad = [
    parseToView({ protocol: PROTOCOL_VERSION - 1, type: 'lines', seq: 1, dropped: 0, chunks }),
    parseToView({ protocol: PROTOCOL_VERSION, type: 'paint', seq: 1 }),
    parseToView({ protocol: PROTOCOL_VERSION, type: 'lines', seq: 1, dropped: 0, chunks: [[3, 'x', 0]] }),
    parseToView({ protocol: PROTOCOL_VERSION, type: 'lines', seq: 1, dropped: 0, chunks: [[1, 'no time']] }),
    parseToView('lines')
  ];
  for (const p of bad) {
    assert.equal(p.ok, false);
  }
  const unknown = parseToView({ protocol: PROTOCOL_VERSION, type: 'paint', seq: 1 });
  assert.ok(!unknown.ok && unknown.error.includes('unknown message type "paint"'));
});

test('each line keeps when the chunk it started in was read; a continued line keeps its start', () => {
  const store = new LineStore(10);
  store.apply([[1, 'a\npar', 100.5], [2, 'e\n', 100.75]], 0);
  store.apply([[1, 'tial\nb\n', 101]], 0);
  assert.deepEqual(
    store.all().map(l => [l.text, l.t]),
    [
      ['a', 100.5],
      ['partial', 100.5],
      ['e', 100.75],
      ['b', 101]
    ]
  );
});

test('a line written again after \\r or \\b is redrawn (a progress bar); "\\r\\n" is a plain end', () => {
  const store = new LineStore(10);
  store.apply([[1, '\r 10%|#', 0]], 0);
  assert.equal(store.all()[0].redrawn, true, 'a bar that starts with \\r');
  store.apply([[1, 'plain\r\n', 0], [2, 'spin|\b/', 0], [2, '\nfine\n', 0], [1, 'x\rY\n', 0]], 0);
  assert.deepEqual(
    store.all().map(l => [l.text, l.redrawn]),
    [
      [' 10%|#plain', true],
      ['spin/', true],
      ['fine', false],
      ['Y', true]
    ]
  );
});
