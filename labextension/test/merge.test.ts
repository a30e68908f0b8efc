/**
 * The merged view's grouping (src/merge.ts), rank ranges (src/ranges.ts), severities and
 * tracebacks (src/severity.ts) and the filters (src/filter.ts): pure, fed from real line
 * stores.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Decor, timeText } from '../src/decor';
import { Filter, NO_FILTER } from '../src/filter';
import { MergeModel, MergeOptions, Row } from '../src/merge';
import { formatRanks, parseRanks, RankSet } from '../src/ranges';
import { progressLabel, Severity, severity } from '../src/severity';
import { stateCounts, stateLabel } from '../src/states';
import { LineStore } from '../src/store';

/** N procs' stores feeding one model, as the page's models would. */
class World {
  readonly stores: LineStore[] = [];
  readonly model: MergeModel;
  now = 0;

  constructor(
    readonly n: number,
    options: Partial<MergeOptions> = {},
    maxLines = 2000
  ) {
    this.model = new MergeModel(n, options);
    for (let r = 0; r < n; r++) {
      this.stores.push(new LineStore(maxLines));
      this.model.addRank(r, this.stores[r]);
    }
  }

  /** Rank `rank` printed `text` on `stream` (read at `t`), then the model takes it. */
  print(rank: number, text: string, stream: 1 | 2 = 1, t = this.now): this {
    const delta = this.stores[rank].apply([[stream, text, t]], 0);
    this.model.changed(rank, delta.changed);
    this.model.consume(rank, this.now);
    return this;
  }

  /** The rows as shown, preludes before their row: "ranks|kind|text". */
  shown(): string[] {
    const out: string[] = [];
    const one = (r: Row): string => `${r.ranks.toString()}|${r.kind}|${r.text}`;
    for (const row of this.model.range(this.model.firstId, this.model.lastId)) {
      for (const p of row.before ?? []) {
        out.push(one(p));
      }
      out.push(one(row));
    }
    return out;
  }
}

test('rank ranges: compact form, parsing, sets', () => {
  assert.equal(formatRanks([0, 1, 2, 3, 5, 7, 8, 9]), '0-3,5,7-9');
  assert.equal(formatRanks([4]), '4');
  assert.equal(formatRanks([]), '');
  const set = new RankSet(4); // grows past its first capacity
  for (const r of [63, 0, 1, 2, 33, 32, 31]) {
    assert.equal(set.add(r), true);
  }
  assert.equal(set.add(2), false);
  assert.equal(set.count, 7);
  assert.equal(set.toString(), '0-2,31-33,63');
  assert.equal(set.first(), 0);
  assert.ok(set.intersects(RankSet.of(40, 63)) && !set.intersects(RankSet.of(40)));
  const parsed = parseRanks(' 3, 5-7 ,9:10', 16);
  assert.ok(parsed.ok && parsed.ranks !== null && parsed.ranks.toString() === '3,5-7,9-10');
  assert.deepEqual(parseRanks('', 16), { ok: true, ranks: null });
  for (const [text, error] of [
    ['3,x', 'not a rank or a range: "x"'],
    ['7-5', 'the range 7-5 runs backwards'],
    ['16', 'rank 16 is not one of these procs (0-15)']
  ]) {
    const p = parseRanks(text, 16);
    assert.ok(!p.ok && p.error.startsWith(error), text);
  }
});

test('a line every rank printed is one row with all the ranks; rows keep the order', () => {
  const w = new World(16);
  for (let r = 0; r < 16; r++) {
    w.print(r, 'epoch 1\nloss 0.5\n');
  }
  assert.deepEqual(w.shown(), ['0-15|line|epoch 1', '0-15|line|loss 0.5']);
  const row = w.model.range(1, 1)[0];
  assert.equal(row.ranks.count, 16);
  assert.deepEqual(
    row.copies.map(c => c.rank),
    [...Array(16).keys()]
  );
});

test('the same text on stdout and on stderr is never one row', () => {
  const w = new World(2);
  w.print(0, 'same\n', 1).print(1, 'same\n', 2).print(1, 'same\n', 1).print(0, 'same\n', 2);
  assert.deepEqual(w.shown(), ['0-1|line|same', '0-1|line|same']);
  const [out, err] = w.model.range(1, 2);
  assert.deepEqual([out.stream, err.stream], [1, 2]);
});

test('ANSI-coloured duplicates are one row; each rank keeps its own colours in its copy', () => {
  const w = new World(3);
  w.print(0, '\x1b[32mok\x1b[0m done\n');
  w.print(1, '\x1b[31mok\x1b[0m done\n');
  w.print(2, 'ok done\n');
  assert.deepEqual(w.shown(), ['0-2|line|ok done']);
  const colours = w.model.range(1, 1)[0].copies.map(c => c.line.runs[0].style.fg);
  assert.deepEqual(colours, [2, 1, null]);
});

test('lines some ranks printed show those ranks; a rank behind the others keeps its order', () => {
  const w = new World(4);
  // Rank 0 is ahead: it prints its own line between two shared ones.
  w.print(0, '== epoch 1 ==\nrank 0 step 1\nepoch 1 done\n');
  // The others follow, each with a line of its own.
  for (let r = 1; r < 4; r++) {
    w.print(r, `== epoch 1 ==\nrank ${r} step 1\nepoch 1 done\n`);
  }
  w.print(2, 'only rank 2\n');
  assert.deepEqual(w.shown(), [
    '0-3|line|== epoch 1 ==',
    '0|line|rank 0 step 1',
    '1|line|rank 1 step 1',
    '2|line|rank 2 step 1',
    '3|line|rank 3 step 1',
    '0-3|line|epoch 1 done',
    '2|line|only rank 2'
  ]);
});

test("ranks' own lines between two shared ones read in rank order, however they arrived", () => {
  const w = new World(4);
  for (const r of [2, 0, 3, 1]) {
    w.print(r, `start\nown ${r}\nend\n`);
  }
  assert.deepEqual(w.shown(), ['0-3|line|start', '2|line|own 2', '0|line|own 0', '1|line|own 1', '3|line|own 3', '0-3|line|end']);
});

test('a rank that never prints the shared line keeps its own lines where the others have theirs', () => {
  const w = new World(3, { holdMs: 100 });
  w.print(0, 'start\nown 0\n', 1, 1.0).print(0, 'end\n', 1, 2.0);
  w.print(1, 'start\nown 1\n', 1, 1.01).print(1, 'end\n', 1, 2.01);
  w.print(2, 'start\nown 2\n', 1, 1.02); // rank 2 stops before "end" (it failed)
  w.model.expire(100);
  assert.deepEqual(w.shown(), ['0-2|line|start', '0|line|own 0', '1|line|own 1', '2|line|own 2', '0-1|line|end']);
});

test("a rank's held lines on one stream come before what it prints next on the other", () => {
  const w = new World(2);
  w.print(0, 'a\nb\n', 1);
  w.print(1, 'a\nmine\n', 1); // held: rank 1 is behind "b"
  w.print(1, 'Traceback (most recent call last):\n  File "x", line 1\nKeyError: 1\n', 2);
  assert.deepEqual(w.shown(), ['0-1|line|a', '0|line|b', '1|line|mine', '1|block|Traceback (most recent call last):']);
});

test("a lagging rank's own last line is held, then placed at the end after holdMs or for a barrier", () => {
  const w = new World(2, { holdMs: 300 });
  w.print(0, 'a\nb\n');
  w.print(1, 'a\nmine\n'); // "mine" has no row; rank 1 is behind rank 0 ("b")
  assert.deepEqual(w.shown(), ['0-1|line|a', '0|line|b']);
  assert.equal(w.model.holding(1), true);
  assert.equal(w.model.expire(299), 300);
  w.model.expire(300);
  assert.deepEqual(w.shown(), ['0-1|line|a', '0|line|b', '1|line|mine']);
  assert.equal(w.model.lastRowOf(1), 3);
  // Now rank 0 is behind ("mine" is after its latest row); a barrier does not wait for holdMs.
  w.print(0, 'c\n');
  assert.equal(w.model.holding(0), true);
  w.model.settle(0);
  assert.deepEqual(w.shown().slice(-2), ['1|line|mine', '0|line|c']);
  assert.equal(w.model.lastRowOf(0), 4);
});

test('a rank at the front places its lines at once; a line printed twice is two rows', () => {
  const w = new World(2);
  w.print(0, 'x\nx\n');
  w.print(1, 'x\n');
  w.print(1, 'x\n');
  assert.deepEqual(w.shown(), ['0-1|line|x', '0-1|line|x']);
});

test("procs' lines become rows in the order the kernel read them, whatever order they are taken in", () => {
  const w = new World(3);
  // Each proc's lines arrive in one batch, read at different times: proc 2's first.
  w.stores[0].apply([[1, 'a0 t1\n', 1], [1, 'a0 t4\n', 4]], 0);
  w.stores[1].apply([[1, 'b1 t2\n', 2], [1, 'b1 t5\n', 5]], 0);
  w.stores[2].apply([[1, 'c2 t0\n', 0], [1, 'c2 t3\n', 3]], 0);
  const ranks = [0, 1, 2];
  w.model.consumeAll(ranks, 0);
  assert.deepEqual(ranks, [], 'every proc is done');
  for (const r of [0, 1, 2]) {
    w.model.settle(r);
  }
  assert.deepEqual(
    w.shown().map(s => s.split('|')[2]),
    ['c2 t0', 'a0 t1', 'b1 t2', 'c2 t3', 'a0 t4', 'b1 t5']
  );
});

test('10k distinct lines: each its own row, kept within the bounds, in O(1) per line', () => {
  const w = new World(4, { maxRows: 3000 }, 20000);
  const start = process.hrtime.bigint();
  for (let r = 0; r < 4; r++) {
    w.print(r, Array.from({ length: 2500 }, (_, i) => `rank ${r} line ${i}\n`).join(''));
    w.model.settle(r);
  }
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  assert.equal(w.model.lastId, 10000);
  assert.equal(w.model.size, 3000, 'the oldest rows left');
  assert.equal(w.model.evictedRows, 7000);
  assert.equal(w.model.copyCount, 3000);
  const rows = w.shown();
  assert.equal(rows[rows.length - 1], '3|line|rank 3 line 2499');
  assert.ok(ms < 2000, `10k lines took ${ms.toFixed(0)} ms`);
});

test('where every proc prints lines of its own, none is held: rows come at once, in time order', () => {
  const w = new World(2);
  for (let i = 0; i < 600; i++) {
    w.print(i % 2, `rank ${i % 2} line ${i}\n`, 1, i);
  }
  assert.equal(w.model.holding(0) || w.model.holding(1), false);
  const rows = w.shown();
  assert.equal(rows.length, 600);
  assert.deepEqual(rows.slice(-2), ['0|line|rank 0 line 598', '1|line|rank 1 line 599']);
});

test("a burst far larger than the rows kept: each proc's newest lines are taken, the rest counted", () => {
  const w = new World(4, { maxRows: 1000 }, 5000);
  for (let r = 0; r < 4; r++) {
    w.stores[r].apply([[1, Array.from({ length: 5000 }, (_, i) => `rank ${r} line ${i}\n`).join(''), 10 + r]], 0);
  }
  const ranks = [0, 1, 2, 3];
  w.model.consumeAll(ranks, 0);
  for (let r = 0; r < 4; r++) {
    w.model.settle(r);
    assert.equal(w.model.skipped(r), 4500, 'the 2 x 1000 rows to take are shared out: 500 each');
  }
  assert.equal(w.model.linesTaken, 2000);
  const rows = w.shown();
  assert.equal(rows.length, 1000);
  assert.deepEqual(rows.slice(-1), ['3|line|rank 3 line 4999']);
});

test('memory: copies are bounded too, and lines a store dropped before their turn are counted', () => {
  const w = new World(2, { maxCopies: 100 }, 50);
  w.stores[0].apply([[1, Array.from({ length: 80 }, (_, i) => `same ${i}\n`).join(''), 0]], 0);
  w.model.consume(0, 0);
  assert.equal(w.model.skipped(0), 30, 'the store kept 50 of 80');
  for (let i = 0; i < 3; i++) {
    w.print(1, Array.from({ length: 50 }, (_, j) => `same ${j + 30}\n`).join(''));
  }
  assert.ok(w.model.copyCount <= 100, `${w.model.copyCount} copies`);
});

test('tracebacks of several ranks at once: each whole, in a row of its own, never interleaved', () => {
  const w = new World(3);
  const tb = (r: number): string[] => [
    'Traceback (most recent call last):',
    '  File "<procs cell 1>", line 3, in <module>',
    `    fail(${r})`,
    '  File "<procs cell 1>", line 2, in fail',
    '    raise ValueError(rank)',
    `ValueError: bad rank ${r}`
  ];
  // The three tracebacks arrive a line at a time, interleaved; stdout goes on meanwhile.
  for (let i = 0; i < 6; i++) {
    for (let r = 0; r < 3; r++) {
      w.print(r, tb(r)[i] + '\n', 2);
      w.print(r, `out ${i}\n`, 1);
    }
  }
  w.print(1, 'after the error\n', 2);
  w.model.settle(1);
  const blocks = w.model.range(w.model.firstId, w.model.lastId).filter(r => r.kind === 'block');
  assert.equal(blocks.length, 3);
  for (const [r, block] of blocks.entries()) {
    assert.deepEqual(block.ranks.ranks(), [r]);
    assert.deepEqual(
      block.copies.map(c => c.line.text),
      tb(r)
    );
    assert.equal(block.severity, Severity.Error);
  }
  assert.ok(w.shown().includes('0-2|line|out 5'));
  assert.ok(w.shown().includes('1|line|after the error'), 'the line after the exception is not part of it');
});

test('a chained traceback is one block; a blank line after the exception line that is not a chain is not', () => {
  const w = new World(1);
  const chained = [
    'Traceback (most recent call last):',
    '  File "a.py", line 1, in <module>',
    'KeyError: 1',
    '',
    'During handling of the above exception, another exception occurred:',
    '',
    'Traceback (most recent call last):',
    '  File "a.py", line 3, in <module>',
    'ValueError: 2'
  ];
  w.print(0, chained.join('\n') + '\n\nnext\n', 2);
  const [block, blank, next] = w.model.range(1, 3);
  assert.deepEqual(
    block.copies.map(c => c.line.text),
    chained
  );
  assert.deepEqual([blank.text, next.text], ['', 'next']);
});

test('\\r progress bars: one row per label, a live bar per rank, redrawn in place', () => {
  const w = new World(16);
  for (let r = 0; r < 16; r++) {
    w.print(r, `\r  0%|          | 0/50`, 2);
  }
  const [row] = w.model.range(1, 1);
  assert.equal(row.kind, 'progress');
  assert.equal(row.ranks.toString(), '0-15');
  assert.equal(w.model.lastId, 1, 'one row for the 16 bars');
  w.model.takeChanged();
  w.print(7, `\r 50%|#####     | 25/50`, 2);
  assert.deepEqual(w.model.takeChanged(), [row], 'a redraw changes the row');
  assert.equal(row.copies[7].line.text, ' 50%|#####     | 25/50');
  // Bars with another label are another row; a finished bar stays in its row.
  w.print(3, `\r100%|##########| 50/50\n`, 2);
  w.print(3, `\reval:  10%|#`, 2);
  assert.equal(w.model.lastId, 2);
  assert.equal(w.model.range(2, 2)[0].kind, 'progress');
  assert.equal(progressLabel('eval:  10%|#'), 'eval:');
});

test('a partial line is a row of its own until it ends; then others join it', () => {
  const w = new World(2);
  w.print(0, 'loading');
  assert.deepEqual(w.shown(), ['0|open|loading']);
  w.print(0, ' done\n');
  w.print(1, 'loading done\n');
  assert.deepEqual(w.shown(), ['0-1|line|loading done']);
});

test('severity: errors and warnings as logging, Python and C runtimes print them', () => {
  const cases: [string, Severity][] = [
    ['ERROR:root:disk full', Severity.Error],
    ['2026-11-29 12:00:01 CRITICAL worker lost', Severity.Error],
    ['FATAL: cannot allocate', Severity.Error],
    ['ValueError: bad rank 3', Severity.Error],
    ['Traceback (most recent call last):', Severity.Error],
    ['WARNING:root:slow batch', Severity.Warning],
    ['/x.py:3: UserWarning: deprecated', Severity.Warning],
    ['warning: rank 3 saw a slow batch', Severity.Warning],
    ['step 3: loss 0.12', Severity.None],
    ['no errors so far', Severity.None]
  ];
  for (const [text, want] of cases) {
    assert.equal(severity(text), want, text);
  }
});

test('filters: smart-case substring or regex, stream, ranks; errors let everything through', () => {
  const all = new Filter(NO_FILTER, 16);
  assert.equal(all.active, false);
  assert.ok(all.matches('anything', 2, 5));
  const sub = new Filter({ ...NO_FILTER, search: 'loss' }, 16);
  assert.ok(sub.matches('step 1: LOSS 3', 1, 0) && !sub.matches('step 1', 1, 0));
  const cased = new Filter({ ...NO_FILTER, search: 'Loss' }, 16);
  assert.ok(cased.matches('Loss 3', 1, 0) && !cased.matches('loss 3', 1, 0));
  const re = new Filter({ ...NO_FILTER, search: 'step [0-4]:', regex: true }, 16);
  assert.ok(re.matches('step 3: x', 1, 0) && !re.matches('step 7: x', 1, 0));
  const stream = new Filter({ ...NO_FILTER, stream: 'stderr' }, 16);
  assert.ok(stream.matches('x', 2, 0) && !stream.matches('x', 1, 0));
  const ranks = new Filter({ ...NO_FILTER, ranks: '3,5-7' }, 16);
  assert.ok(ranks.matches('x', 1, 6) && !ranks.matches('x', 1, 4));
  assert.ok(ranks.matchesRanks(RankSet.of(0, 7)) && !ranks.matchesRanks(RankSet.of(0, 8)));
  const bad = new Filter({ ...NO_FILTER, search: '(', regex: true, ranks: '99' }, 16);
  assert.ok(bad.error.startsWith('not a regular expression') && bad.error.includes('rank 99 is not one of'));
  assert.equal(bad.active, false);
});

test('timestamps read as the time of day or the time since the cell started', () => {
  const t = new Date(2026, 10, 29, 14, 2, 7, 123).getTime() / 1000;
  assert.equal(timeText(t, 'absolute', 0), '14:02:07.123');
  assert.equal(timeText(t + 0.004, 'absolute', 0), '14:02:07.127');
  assert.equal(timeText(t, 'relative', t - 1.25), '+1.250 s');
  assert.equal(timeText(t, 'relative', t - 125.25), '+2:05.250');
  assert.equal(timeText(t, 'off', 0), '');
  assert.equal(timeText(0, 'absolute', 0), '', 'no time known');
  const decor = new Decor(4, t - 2, 'relative');
  let heard = 0;
  decor.subscribe(() => heard++);
  decor.set(new Filter({ ...NO_FILTER, search: 'x' }, 4), 'absolute');
  assert.equal(heard, 1);
  assert.equal(decor.epoch, 1);
  assert.equal(decor.timeText(t), '14:02:07.123');
  decor.count({ matches: 3 });
  decor.count({ matches: 4 });
  assert.equal(decor.matches, 7);
});

test("the header's states: how a proc ended, counts by state with the most common first", () => {
  assert.equal(stateLabel('exited', 'exited with code 3'), 'exited 3');
  assert.equal(stateLabel('killed', 'killed by SIGKILL'), 'killed SIGKILL');
  assert.equal(stateLabel('idle', ''), 'idle');
  const labels = [...Array(14).fill('idle'), 'running', 'exited 3'];
  assert.equal(stateCounts(labels), '14 idle · 1 exited 3 · 1 running');
});

/** A small seeded generator, so that a failing trial can be replayed. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648;
  };
}

/**
 * One trial: 16 ranks run a cell over `spread` seconds; rank 5 fails before its last line,
 * so the rank that prints first may lack a line all the others print. Each rank's stdout may
 * be written in two parts (`split`: the share of ranks), and each write reaches the page up to
 * `lag` seconds after the kernel read it; the page takes what came in batches.
 */
function mergedTrial(rnd: () => number, split: number, lag: number, spread = 2): string[] {
  const model = new MergeModel(16);
  const stores: LineStore[] = [];
  for (let r = 0; r < 16; r++) {
    stores.push(new LineStore(2000));
    model.addRank(r, stores[r]);
  }
  type Write = { at: number; rank: number; chunk: [1 | 2, string, number] };
  const writes: Write[] = [];
  for (let r = 0; r < 16; r++) {
    const lines = ['step 0', 'step 1', 'step 2', `rank ${r} own line`];
    if (r !== 5) {
      lines.push('epoch done');
    }
    const t1 = rnd() * spread;
    const cut = rnd() < split ? 1 + Math.floor(rnd() * (lines.length - 1)) : lines.length;
    const t2 = t1 + (cut < lines.length ? rnd() * 0.2 : 0);
    if (r === 5) {
      writes.push({ at: t1 + rnd() * lag, rank: r, chunk: [2, 'Traceback (most recent call last):\nValueError: bad rank 5\n', t1] });
    }
    const first = t1 + rnd() * lag;
    writes.push({ at: first, rank: r, chunk: [1, lines.slice(0, cut).join('\n') + '\n', t1] });
    if (cut < lines.length) {
      writes.push({ at: Math.max(first, t2 + rnd() * lag), rank: r, chunk: [1, lines.slice(cut).join('\n') + '\n', t2] });
    }
    if (r !== 5) {
      writes.push({ at: t2 + 0.001 + rnd() * lag, rank: r, chunk: [2, 'warning: checkpoint is slow\n', t2 + 0.001] });
    }
  }
  writes.sort((a, b) => a.at - b.at);
  const queue: number[] = [];
  for (let i = 0; i < writes.length; ) {
    const batchEnd = writes[i].at + rnd() * 0.3;
    while (i < writes.length && writes[i].at <= batchEnd) {
      const w = writes[i++];
      model.changed(w.rank, stores[w.rank].apply([w.chunk], 0).changed);
      if (!queue.includes(w.rank)) {
        queue.push(w.rank);
      }
    }
    model.consumeAll(queue, batchEnd * 1000);
    model.expire(batchEnd * 1000);
  }
  model.expire(Infinity);
  const out: string[] = [];
  for (const row of model.range(model.firstId, model.lastId)) {
    for (const r of [...(row.before ?? []), row]) {
      out.push(`${r.ranks.toString()}|${r.text}`);
    }
  }
  return out;
}

test('ranks reaching the page at random times, the first lacking a line the others print: shared lines are one row', () => {
  // Ranks spread over 2 s, writes split in two, up to 50 ms between the kernel and the page;
  // or whole writes up to 300 ms late. (Later than holdMs, a lagging rank's line is placed on
  // its own: it is not waited for without end.)
  for (const [split, lag] of [
    [0, 0],
    [0.5, 0.05],
    [0, 0.3]
  ]) {
    const rnd = random(7);
    for (let trial = 0; trial < 400; trial++) {
      const rows = mergedTrial(rnd, split, lag);
      const where = `split ${split}, lag ${lag}, trial ${trial}:\n${rows.join('\n')}`;
      assert.deepEqual(
        rows.filter(r => r.includes('|step ')),
        ['0-15|step 0', '0-15|step 1', '0-15|step 2'],
        where
      );
      assert.ok(rows.includes('0-4,6-15|epoch done'), where);
      assert.ok(rows.includes('0-4,6-15|warning: checkpoint is slow'), where);
    }
  }
});
