/**
 * Paced DOM updates: the Pacer (src/pacer.ts) and the Mirror (src/mirror.ts) that decides
 * what a view's step does and when its barriers are acked.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Chunk } from '../src/messages';
import { Mirror } from '../src/mirror';
import { FrameSource, PacedTask, Pacer } from '../src/pacer';
import { LineStore, StoredLine } from '../src/store';

/** A frame source driven by the test: a fake clock, and ticks run when the test says. */
class FakeFrames implements FrameSource {
  time = 0;
  requests: ((painted: boolean) => void)[] = [];
  now(): number {
    return this.time;
  }
  request(tick: (painted: boolean) => void): void {
    this.requests.push(tick);
  }
  /** Run the requested tick (there must be exactly one). */
  frame(painted = true): void {
    assert.equal(this.requests.length, 1, 'one tick requested');
    const tick = this.requests.pop() as (painted: boolean) => void;
    tick(painted);
  }
}

/** A task that needs `units` steps' worth of work, each unit costing `cost` ms. */
class Work implements PacedTask {
  log: string[];
  constructor(
    readonly name: string,
    public units: number,
    private readonly frames: FakeFrames,
    private readonly cost: number,
    log: string[]
  ) {
    this.log = log;
  }
  step(deadline: number): boolean {
    do {
      this.units--;
      this.frames.time += this.cost;
      this.log.push(this.name);
    } while (this.units > 0 && this.frames.now() < deadline);
    return this.units <= 0;
  }
}

test('the pacer asks for one frame however many tasks are added, and runs them there', () => {
  const frames = new FakeFrames();
  const pacer = new Pacer(frames, 10);
  const log: string[] = [];
  const a = new Work('a', 1, frames, 1, log);
  const b = new Work('b', 1, frames, 1, log);
  pacer.add(a);
  pacer.add(b);
  pacer.add(a);
  assert.equal(frames.requests.length, 1);
  frames.frame();
  assert.deepEqual(log, ['a', 'b']);
  assert.equal(pacer.pending, 0);
  assert.equal(frames.requests.length, 0, 'nothing left: no frame requested');
});

test('a frame stops at the budget; unfinished tasks go on next frame, the waiting ones first', () => {
  const frames = new FakeFrames();
  const pacer = new Pacer(frames, 10);
  const log: string[] = [];
  const a = new Work('a', 30, frames, 1, log);
  const b = new Work('b', 5, frames, 1, log);
  const c = new Work('c', 5, frames, 1, log);
  pacer.add(a);
  pacer.add(b);
  pacer.add(c);
  frames.frame();
  // a used the whole budget; b and c did not get a turn.
  assert.deepEqual(log, Array(10).fill('a'));
  log.length = 0;
  frames.frame();
  assert.deepEqual(log, [...Array(5).fill('b'), ...Array(5).fill('c')]);
  log.length = 0;
  frames.frame();
  assert.deepEqual(log, Array(10).fill('a'));
  log.length = 0;
  frames.frame();
  assert.deepEqual(log, Array(10).fill('a'));
  assert.equal(pacer.pending, 0);
});

test('every task makes progress in a frame even past the budget, and a step always runs once', () => {
  const frames = new FakeFrames();
  const pacer = new Pacer(frames, 10);
  const log: string[] = [];
  const slow = new Work('slow', 2, frames, 50, log);
  pacer.add(slow);
  frames.frame();
  assert.deepEqual(log, ['slow']);
  frames.frame();
  assert.deepEqual(log, ['slow', 'slow']);
  assert.equal(pacer.pending, 0);
});

test('without painting (hidden document) there is no budget: everything is done in one tick', () => {
  const frames = new FakeFrames();
  const pacer = new Pacer(frames, 10);
  const log: string[] = [];
  pacer.add(new Work('a', 100, frames, 1, log));
  pacer.add(new Work('b', 100, frames, 1, log));
  frames.frame(false);
  assert.equal(log.length, 200);
  assert.equal(pacer.pending, 0);
});

/** Work that a barrier waits for while `waiting` is true. */
class UrgentWork extends Work {
  waiting = true;
  urgent(): boolean {
    return this.waiting;
  }
}

test('a task a barrier waits for may use the larger budget; the others keep the normal one and their place', () => {
  const frames = new FakeFrames();
  const pacer = new Pacer(frames, 10, 40);
  const log: string[] = [];
  const plain = new Work('p', 100, frames, 1, log);
  const urgent = new UrgentWork('u', 100, frames, 1, log);
  const other = new Work('o', 100, frames, 1, log);
  pacer.add(plain);
  pacer.add(urgent);
  pacer.add(other);
  frames.frame();
  assert.deepEqual(
    [log.filter(n => n === 'p').length, log.filter(n => n === 'u').length, log.filter(n => n === 'o').length],
    [10, 30, 0],
    'the first task up to the normal budget, the urgent one up to the larger'
  );
  urgent.waiting = false;
  log.length = 0;
  frames.frame();
  assert.deepEqual(log.slice(0, 2), ['o', 'o'], 'the task passed over goes first');
  assert.equal(log.length, 10, 'no barrier waits: the normal budget');
});

test('a removed task is not run; a task that throws is dropped and the others go on', () => {
  const frames = new FakeFrames();
  const pacer = new Pacer(frames, 10);
  const log: string[] = [];
  const a = new Work('a', 1, frames, 1, log);
  const bad: PacedTask = {
    step(): boolean {
      throw new Error('boom');
    }
  };
  const b = new Work('b', 1, frames, 1, log);
  pacer.add(a);
  pacer.add(bad);
  pacer.add(b);
  pacer.remove(a);
  const errors = console.error;
  console.error = () => undefined;
  try {
    frames.frame();
  } finally {
    console.error = errors;
  }
  assert.deepEqual(log, ['b']);
  assert.equal(pacer.pending, 0);
});

// --- Mirror -------------------------------------------------------------------------------

/** A fake DOM: the texts of the lines shown, updated the way ProcView.step does. */
class FakeView {
  shown: StoredLine[] = [];
  acks: number[] = [];
  constructor(
    readonly store: LineStore,
    readonly mirror: Mirror
  ) {}
  /** One step appending at most `max` lines. */
  step(max: number): boolean {
    const start = this.mirror.begin();
    if (start.clear) {
      this.shown = [];
    }
    this.shown.splice(0, start.remove);
    const lines = this.mirror.next(max);
    this.shown.push(...lines);
    this.mirror.appended(lines.length);
    this.acks.push(...this.mirror.acked());
    return this.mirror.synced;
  }
  /** Prepend at most `max` skipped lines. */
  backfill(max: number): number {
    const lines = this.mirror.backfill(max);
    this.shown.unshift(...lines);
    this.mirror.prepended(lines.length);
    return lines.length;
  }
  texts(): string[] {
    return this.shown.map(l => l.text);
  }
  /** What the notice counts: lines gone from the store, and lines skipped. */
  notShown(): number {
    return this.store.hidden + this.mirror.skipped;
  }
  barrier(version: number): void {
    if (this.mirror.barrier(version)) {
      this.acks.push(version);
    }
  }
}

function lines(from: number, to: number): Chunk[] {
  const out: string[] = [];
  for (let i = from; i < to; i++) {
    out.push(`line ${i}\n`);
  }
  return [[1, out.join(''), 0]];
}

test('a step appends the next lines and the mirror knows when it shows the whole store', () => {
  const store = new LineStore(100);
  const view = new FakeView(store, new Mirror(store));
  store.apply(lines(0, 10), 0);
  assert.equal(view.mirror.synced, false);
  assert.equal(view.step(4), false);
  assert.deepEqual(view.texts(), ['line 0', 'line 1', 'line 2', 'line 3']);
  assert.equal(view.step(100), true);
  assert.deepEqual(view.texts(), store.all().map(l => l.text));
});

test('lines evicted before their turn are never shown; the DOM starts where the store does', () => {
  const store = new LineStore(10);
  const view = new FakeView(store, new Mirror(store));
  store.apply(lines(0, 5), 0);
  view.step(3); // shows 0..2
  store.apply(lines(5, 40), 0); // store: 30..39
  assert.equal(view.step(4), false);
  assert.deepEqual(view.texts(), ['line 30', 'line 31', 'line 32', 'line 33']);
  assert.equal(view.step(100), true);
  assert.deepEqual(view.texts(), store.all().map(l => l.text));
  // Some of the shown lines evicted, others not yet shown.
  store.apply(lines(40, 45), 0);
  view.step(2);
  assert.deepEqual(view.texts(), ['line 35', 'line 36', 'line 37', 'line 38', 'line 39', 'line 40', 'line 41']);
});

test('open lines that change are re-rendered only when shown', () => {
  const store = new LineStore(10);
  const view = new FakeView(store, new Mirror(store));
  store.apply([[1, 'a\npart', 0]], 0);
  view.step(10);
  const delta = store.apply([[1, 'ial\nnext', 0]], 0);
  view.mirror.changed(delta.changed);
  const start = view.mirror.begin();
  assert.deepEqual(
    start.changed.map(l => l.text),
    ['partial']
  );
});

test('a barrier is acked at once when the DOM is up to date, else once its lines are shown', () => {
  const store = new LineStore(100);
  const view = new FakeView(store, new Mirror(store));
  view.step(10); // the first step (clears)
  view.barrier(1);
  assert.deepEqual(view.acks, [1]);
  store.apply(lines(0, 10), 0);
  view.barrier(2);
  store.apply(lines(10, 20), 0);
  view.barrier(3);
  assert.deepEqual(view.acks, [1]);
  view.step(5);
  assert.deepEqual(view.acks, [1]);
  view.step(5);
  assert.deepEqual(view.acks, [1, 2], 'barrier 2 once lines 0..9 are shown');
  view.step(9);
  assert.deepEqual(view.acks, [1, 2]);
  view.step(1);
  assert.deepEqual(view.acks, [1, 2, 3]);
  // A later barrier waits behind held ones even if the DOM looks up to date.
  store.apply(lines(20, 21), 0);
  view.barrier(4);
  view.barrier(5);
  view.step(10);
  assert.deepEqual(view.acks, [1, 2, 3, 4, 5]);
});

test('a barrier whose lines were all evicted is acked once the DOM catches up with the store front', () => {
  const store = new LineStore(10);
  const view = new FakeView(store, new Mirror(store));
  view.step(10);
  store.apply(lines(0, 10), 0);
  view.barrier(1);
  store.apply(lines(10, 100), 0); // lines 0..9 evicted unseen
  view.step(1);
  assert.deepEqual(view.acks, [1]);
  assert.deepEqual(view.texts(), ['line 90']);
});

test('a partial line changed before a barrier is re-rendered before the ack', () => {
  const store = new LineStore(10);
  const view = new FakeView(store, new Mirror(store));
  store.apply([[1, 'progress 1', 0]], 0);
  view.step(10);
  const delta = store.apply([[1, '\rprogress 2', 0]], 0);
  view.mirror.changed(delta.changed);
  view.barrier(7);
  assert.deepEqual(view.acks, [], 'held: the change is not in the DOM yet');
  const start = view.mirror.begin();
  assert.deepEqual(
    start.changed.map(l => l.text),
    ['progress 2']
  );
  assert.deepEqual(view.mirror.acked(), [7]);
});

test('a new view or a replay shows the store afresh before acking held barriers', () => {
  const store = new LineStore(100);
  store.apply(lines(0, 5), 0);
  const mirror = new Mirror(store);
  const view = new FakeView(store, mirror);
  view.barrier(1); // held for the first step
  assert.deepEqual(view.acks, []);
  view.step(100);
  assert.deepEqual(view.acks, [1]);
  assert.equal(view.texts().length, 5);
  store.apply(lines(5, 8), 0);
  view.barrier(2);
  store.replace(lines(100, 103), 0);
  mirror.replaced();
  view.step(1);
  assert.deepEqual(view.acks, [1], 'the replayed content is not all shown yet');
  assert.deepEqual(view.texts(), ['line 100']);
  view.step(10);
  assert.deepEqual(view.acks, [1, 2]);
  assert.deepEqual(view.texts(), ['line 100', 'line 101', 'line 102']);
});

test('store ids are consecutive: range() clips to what is stored', () => {
  const store = new LineStore(5);
  store.apply(lines(0, 8), 0);
  assert.equal(store.firstId, 4);
  assert.equal(store.lastId, 8);
  assert.deepEqual(store.range(1, 5).map(l => l.text), ['line 3', 'line 4']);
  assert.deepEqual(store.range(8, 20).map(l => l.text), ['line 7']);
  assert.deepEqual(store.range(9, 20), []);
});

test('tasks added during a tick run in it while the budget lasts (a model adding its views)', () => {
  const frames = new FakeFrames();
  const pacer = new Pacer(frames, 10);
  const log: string[] = [];
  const view = new Work('view', 1, frames, 1, log);
  const model: PacedTask = {
    step(): boolean {
      log.push('model');
      frames.time += 1;
      pacer.add(view);
      return true;
    }
  };
  pacer.add(model);
  frames.frame();
  assert.deepEqual(log, ['model', 'view']);
  assert.equal(frames.requests.length, 0);
  // Out of budget: the view waits for the next frame.
  const hungry: PacedTask = {
    step(): boolean {
      log.push('hungry');
      frames.time += 20;
      pacer.add(view);
      return true;
    }
  };
  view.units = 1;
  log.length = 0;
  pacer.add(hungry);
  frames.frame();
  assert.deepEqual(log, ['hungry']);
  frames.frame();
  assert.deepEqual(log, ['hungry', 'view']);
});

test('a task that adds itself during its step is kept even if that step finished', () => {
  const frames = new FakeFrames();
  const pacer = new Pacer(frames, 10);
  let runs = 0;
  const task: PacedTask = {
    step(): boolean {
      runs++;
      if (runs === 1) {
        pacer.add(task); // more work arrived while stepping
      }
      return true;
    }
  };
  pacer.add(task);
  frames.frame();
  assert.equal(runs, 2, 'run again in the same tick (budget left)');
  assert.equal(pacer.pending, 0);
});

test('a view far behind jumps to the newest lines, backfills the rest in order, and acks after', () => {
  const store = new LineStore(100);
  const mirror = new Mirror(store, 20, 8);
  const view = new FakeView(store, mirror);
  store.apply(lines(0, 10), 0);
  view.step(100);
  store.apply(lines(10, 60), 0); // 50 to append: more than 20
  view.step(100);
  assert.deepEqual(view.texts(), ['line 52', 'line 53', 'line 54', 'line 55', 'line 56', 'line 57', 'line 58', 'line 59']);
  assert.equal(mirror.current, true);
  assert.equal(mirror.synced, false);
  assert.equal(mirror.skipped, 52);
  assert.equal(view.notShown() + view.shown.length, 60, 'every line shown or counted');
  view.barrier(1);
  assert.deepEqual(view.acks, [], 'a barrier waits for the skipped lines too');
  while (view.backfill(16) > 0) {
    assert.equal(view.notShown() + view.shown.length, 60);
  }
  assert.deepEqual(view.mirror.acked(), [1]);
  assert.equal(mirror.synced, true);
  assert.deepEqual(view.texts(), store.all().map(l => l.text));
});

test('a view does not jump while a barrier waits for it', () => {
  const store = new LineStore(100);
  const mirror = new Mirror(store, 20, 8);
  const view = new FakeView(store, mirror);
  view.step(100);
  store.apply(lines(0, 50), 0);
  view.barrier(1);
  view.step(30);
  assert.equal(view.shown.length, 30);
  assert.equal(view.texts()[0], 'line 0');
  view.step(30);
  assert.deepEqual(view.acks, [1]);
});

test('skipped lines evicted by the store are no longer skipped; nothing is backfilled while behind', () => {
  const store = new LineStore(30);
  const mirror = new Mirror(store, 10, 5);
  const view = new FakeView(store, mirror);
  store.apply(lines(0, 30), 0);
  view.step(100); // a new view of a full store jumps too
  assert.deepEqual(view.texts(), ['line 25', 'line 26', 'line 27', 'line 28', 'line 29']);
  assert.equal(mirror.skipped, 25);
  store.apply(lines(30, 40), 0); // store: 10..39
  assert.deepEqual(mirror.backfill(10), [], 'the tail first');
  view.step(3);
  assert.equal(view.notShown() + view.shown.length, 40 - 7, 'lines 33..39 still to append');
  view.step(100);
  assert.equal(mirror.skipped, 15);
  assert.equal(view.notShown() + view.shown.length, 40);
  while (view.backfill(4) > 0) {
    // in order, contiguous
  }
  assert.deepEqual(view.texts(), store.all().map(l => l.text));
});

test('a view whose user reads older lines does not jump', () => {
  const store = new LineStore(100);
  const mirror = new Mirror(store, 10, 5);
  mirror.mayJump = false;
  const view = new FakeView(store, mirror);
  store.apply(lines(0, 50), 0);
  view.step(4);
  assert.deepEqual(view.texts(), ['line 0', 'line 1', 'line 2', 'line 3']);
  assert.equal(mirror.skipped, 0);
});
