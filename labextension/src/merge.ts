/**
 * The merged view's model: every proc's lines, read from their line stores (store.ts), as
 * rows in which what several ranks printed appears once, with their ranks, and what differs
 * stays apart. Pure: no DOM (merged.ts renders it).
 *
 * A line joins a row of the same stream and text that another rank made, if that row is
 * within the last `window` rows and comes after the rank's own latest row of that stream;
 * each rank's lines thus stay in their order on each stream (the order ipylogfwd keeps: per
 * proc and per stream). A rank that is behind the others (rows of the stream exist after its
 * latest) and prints a line no row has yet (`rank 3 step 7`) does not get a row at the end at
 * once: the line is held until the rank's next line on that stream arrives. If that one joins a row, the held lines
 * are placed just before it (as "prelude" rows of the row they precede: main rows keep
 * consecutive ids, so views mirror them like lines, see mirror.ts), and ranks printing their
 * own lines between shared ones read as one block of rows per shared line; if it does not, or
 * after `holdMs`, or when a barrier needs it, they are placed at the end. A held line is
 * also what another lagging rank's line may join: when the rank ahead did not print a line
 * (it failed, or took another branch) the ranks behind it that did share one row for it,
 * rather than each placing its own copy when its hold ends.
 *
 * Kinds of rows:
 * - `line`: one text, the ranks that printed it, each rank's own copy (its time, its colours);
 * - `block`: a traceback, whole, of one rank and stream (its lines are never merged or
 *   interleaved with others, and the row keeps growing while the traceback goes on);
 * - `progress`: lines redrawn with `\r` (progress bars) with the same label, one live bar per
 *   rank (16 tqdm bars read as a table);
 * - `display`: a rank's display bundle (its text; the proc's widget renders the bundle);
 * - `open`: a partial line not finished yet (a row of its own until it is: then it is a
 *   `line` others may join, or, redrawn, a `progress` row).
 *
 * Cost: a line is hashed once (its text is the key of its stream's Map) and compared with
 * the few rows of that key in the window (at most MAX_KEY_ROWS): O(1) per line. Memory: the
 * rows reference the stores' lines (texts are not copied); at most `maxRows` rows and
 * `maxCopies` copies are kept (the oldest rows leave first), the lines of ranks not consumed
 * before their store dropped them are counted (`skipped`).
 */

import { Stream } from './messages';
import { RankSet } from './ranges';
import { isTracebackStart, progressLabel, Severity, severity, TracebackPhase, tracebackStep } from './severity';
import { LineStore, StoredLine } from './store';

export type RowKind = 'line' | 'block' | 'progress' | 'display' | 'open';

/** One rank's line in a row. */
export interface Copy {
  readonly rank: number;
  readonly line: StoredLine;
}

export class Row {
  /** The key other ranks' lines join it by: its text, or a bar's label (`space` -1: not joinable). */
  key = '';
  /** Which index holds it (see `space`; -1: none). */
  space = -1;
  /** Rows placed just before this one (a main row's preludes), in order. */
  before: Row[] | null = null;
  evicted = false;
  /** Bumped by every change of the row (a view redraws only rows whose version moved). */
  version = 0;
  readonly copies: Copy[] = [];
  readonly ranks: RankSet;

  constructor(
    /** A main row's id (consecutive); a prelude has its host's. */
    readonly id: number,
    /** Where the row is: main row `id` at `id`, its preludes between `id - 1` and `id`. */
    readonly pos: number,
    public kind: RowKind,
    readonly stream: Stream,
    /** The text shown (the first copy's, plain). */
    public text: string,
    public severity: Severity,
    /** The main row a prelude belongs to (null for a main row). */
    readonly host: Row | null,
    capacity: number
  ) {
    this.ranks = new RankSet(capacity);
  }

  /** The main row this row is, or is shown in. */
  get main(): Row {
    return this.host ?? this;
  }
}

/** How many rows of one key the window keeps for joining (the newest). */
const MAX_KEY_ROWS = 32;
/** Held lines of one rank at most: more are placed at once. */
const MAX_HELD = 256;
const STREAMS: readonly Stream[] = [1, 2];
/** Below this share of lines joining rows, a lagging rank's own lines are not held. */
const MIN_JOIN_RATE = 0.05;
/** A burst of more lines than this many times the rows kept keeps only each proc's newest. */
const BURST_ROWS = 2;
/** ... but at least this many of each proc's. */
const MIN_BURST_LINES = 64;


interface Traceback {
  row: Row;
  phase: TracebackPhase;
  /** Blank lines after the exception line: part of it if a chained traceback follows. */
  blanks: StoredLine[];
}

/** A rank's lines on one stream not placed yet (see the module's doc), and since when (ms). */
class Held {
  lines: StoredLine[] = [];
  since = 0;
}

/** What the model knows of one rank. */
class RankState {
  /** The last line id of the store taken into rows. */
  consumed: number;
  /** Per stream: where the rank's latest line was placed (rows after it can take the next). */
  readonly lastPos: Record<Stream, number> = { 1: -Infinity, 2: -Infinity };
  readonly held: Record<Stream, Held> = { 1: new Held(), 2: new Held() };
  /** Lines placed while still changing (partial lines, bars, bundles that can be updated). */
  readonly live = new Map<number, Row>();
  /** Tracebacks being read, per stream. */
  readonly tracebacks = new Map<Stream, Traceback>();
  /** Lines placed earlier that changed in place since. */
  readonly changed = new Set<StoredLine>();
  /** Lines the store dropped before they were taken into rows. */
  skipped = 0;

  constructor(
    readonly rank: number,
    readonly store: LineStore
  ) {
    this.consumed = store.firstId - 1;
  }
}

export interface MergeOptions {
  /** How many of the newest rows lines can join. */
  readonly window: number;
  /** Rows kept (main rows). */
  readonly maxRows: number;
  /** Copies kept in all rows (a line of a rank in a row is a copy). */
  readonly maxCopies: number;
  /** How long a lagging rank's own lines wait to be placed before a shared line (ms). */
  readonly holdMs: number;
}

export const MERGE_DEFAULTS: MergeOptions = { window: 2000, maxRows: 2000, maxCopies: 128_000, holdMs: 300 };

export class MergeModel {
  private rows: Row[] = [];
  private head = 0;
  private nextId = 1;
  private copies = 0;
  /** Main rows evicted so far (the view says how many earlier rows are not kept). */
  evictedRows = 0;
  /** Lines taken into rows so far (for the benchmark's cost per line). */
  linesTaken = 0;
  /**
   * How often a line joins a row lately (a moving average over about the last 64 lines).
   * Holding a lagging rank's own lines pays only where ranks print the same lines: while
   * nearly none joins (every proc prints lines of its own), lines are placed at once.
   */
  private joinRate = 1;
  /** The joinable rows by key: lines of stdout, of stderr, bars of stdout, of stderr (`space`). */
  private readonly index: Map<string, Row[]>[] = [new Map(), new Map(), new Map(), new Map()];
  /**
   * Per stream, the ranks holding a line of each text: a line no row has yet may be one that
   * another lagging rank holds (the rank ahead did not print it), and then that rank's held
   * lines are placed so that both share one row instead of each placing its own later.
   */
  private readonly heldBy: Record<Stream, Map<string, Set<RankState>>> = { 1: new Map(), 2: new Map() };
  /** Rows from this id on are in the window (joinable). */
  private windowStart = 1;
  private readonly states = new Map<number, RankState>();
  private readonly changedRows = new Set<Row>();
  /** Per stream: the position of its newest row (a rank whose latest is before it is behind). */
  private readonly newest: Record<Stream, number> = { 1: -Infinity, 2: -Infinity };
  readonly options: MergeOptions;

  constructor(
    private readonly capacity: number,
    options: Partial<MergeOptions> = {}
  ) {
    this.options = { ...MERGE_DEFAULTS, ...options };
  }

  // --- the rows, as the view's Mirror reads them --------------------------------------------

  get size(): number {
    return this.rows.length - this.head;
  }

  get firstId(): number {
    return this.size > 0 ? this.rows[this.head].id : this.nextId;
  }

  get lastId(): number {
    return this.nextId - 1;
  }

  /** Main rows with ids `from..to` (clipped to what is kept), in order. */
  range(from: number, to: number): Row[] {
    const first = this.firstId;
    const start = this.head + Math.max(0, from - first);
    const end = this.head + Math.min(this.size, to - first + 1);
    return start < end ? this.rows.slice(start, end) : [];
  }

  /** Main rows that changed (ranks joined, preludes, bars redrawn, blocks grown) since the last call. */
  takeChanged(): Row[] {
    const out = [...this.changedRows].filter(r => !r.evicted);
    this.changedRows.clear();
    return out;
  }

  /** Copies kept in all rows. */
  get copyCount(): number {
    return this.copies;
  }

  // --- the ranks ------------------------------------------------------------------------------

  /** Read `rank`'s lines from `store` (again from its start, if it had another). */
  addRank(rank: number, store: LineStore): void {
    const state = this.states.get(rank);
    if (state === undefined || state.store !== store) {
      this.states.set(rank, new RankState(rank, store));
    }
  }

  /** Lines of `rank` placed earlier changed in place (partial lines, bars, bundle updates). */
  changed(rank: number, lines: readonly StoredLine[]): void {
    const state = this.states.get(rank);
    if (state === undefined) {
      return;
    }
    for (const line of lines) {
      if (line.id <= state.consumed) {
        state.changed.add(line);
      }
    }
  }

  /** Whether `rank` has lines (or changes) not taken into rows yet. */
  behind(rank: number): boolean {
    const s = this.states.get(rank);
    return s !== undefined && (s.consumed < s.store.lastId || s.changed.size > 0);
  }

  /** The last line id of `rank`'s store taken into rows. */
  consumed(rank: number): number {
    return this.states.get(rank)?.consumed ?? 0;
  }

  /** Lines of `rank` its store dropped before they were taken into rows. */
  skipped(rank: number): number {
    return this.states.get(rank)?.skipped ?? 0;
  }

  /**
   * When `rank`'s next line not taken into rows was read (seconds since the epoch): -Infinity
   * if lines it placed changed, Infinity if it has nothing new. A view takes the procs' lines
   * into rows in the order the kernel read them (the proc whose next line is the oldest
   * first), so rows follow time across procs as far as the page has their lines.
   */
  nextTime(rank: number): number {
    const s = this.states.get(rank);
    if (s === undefined) {
      return Infinity;
    }
    if (s.changed.size > 0) {
      return -Infinity;
    }
    const store = s.store;
    return store.get(Math.max(s.consumed, store.firstId - 1) + 1)?.t ?? Infinity;
  }

  /**
   * Take `rank`'s changed lines, then its new lines read up to `until` (seconds since the
   * epoch), into rows, until `deadline` (ms on `clock`, at least a few lines); true when it
   * has none left. `now` is the time held lines count from.
   */
  consume(rank: number, now: number, deadline = Infinity, clock: () => number = () => 0, until = Infinity): boolean {
    const s = this.states.get(rank);
    if (s === undefined) {
      return true;
    }
    const store = s.store;
    if (s.consumed < store.firstId - 1) {
      s.skipped += store.firstId - 1 - s.consumed; // dropped by the store before their turn
      s.consumed = store.firstId - 1;
    }
    for (const line of s.changed) {
      if (!line.evicted) {
        this.update(s, line);
      }
    }
    s.changed.clear();
    let n = 0;
    while (s.consumed < store.lastId) {
      const line = store.get(s.consumed + 1);
      if (line !== undefined && line.t > until) {
        break;
      }
      s.consumed++;
      if (line !== undefined) {
        this.place(s, line, now);
        this.linesTaken++;
      }
      if (++n % 64 === 0 && clock() >= deadline) {
        break;
      }
    }
    this.trim();
    return s.consumed >= store.lastId;
  }

  /**
   * Take the lines of the procs in `ranks` into rows in the order the kernel read them (the
   * proc whose next line is the oldest, up to the next proc's), until `deadline` (ms on
   * `clock`); the procs done are taken out of `ranks`. O(procs) per chunk of lines read
   * together, O(1) per line.
   */
  consumeAll(ranks: number[], now: number, deadline = Infinity, clock: () => number = () => 0): void {
    this.skipBurst(ranks);
    while (ranks.length > 0) {
      let first = -1;
      let firstT = Infinity;
      let secondT = Infinity;
      for (let i = 0; i < ranks.length; i++) {
        const t = this.nextTime(ranks[i]);
        if (first < 0 || t < firstT) {
          secondT = first < 0 ? secondT : firstT;
          first = i;
          firstT = t;
        } else if (t < secondT) {
          secondT = t;
        }
      }
      if (this.consume(ranks[first], now, deadline, clock, secondT)) {
        ranks.splice(first, 1);
      }
      if (clock() >= deadline) {
        break;
      }
    }
  }

  /**
   * A burst far larger than the rows kept (every proc's tail at once, at a flush after a
   * flood, or on a page catching up): only each proc's newest lines are taken into rows, the
   * older ones are counted (`skipped`) as lines that left the tails, like a widget far behind
   * that jumps to its newest lines. Taking them all would cost far more than the rows that
   * can be kept, and push those out. The lines left to take are at most BURST_ROWS x `maxRows`.
   */
  private skipBurst(ranks: readonly number[]): void {
    const budget = BURST_ROWS * this.options.maxRows;
    let pending = 0;
    for (const r of ranks) {
      const s = this.states.get(r);
      if (s !== undefined) {
        pending += s.store.lastId - Math.max(s.consumed, s.store.firstId - 1);
      }
    }
    if (pending <= budget) {
      return;
    }
    const each = Math.max(MIN_BURST_LINES, Math.ceil(budget / ranks.length));
    for (const r of ranks) {
      const s = this.states.get(r);
      if (s !== undefined) {
        const from = Math.max(s.consumed, s.store.firstId - 1);
        const skip = s.store.lastId - from - each;
        if (skip > 0) {
          s.skipped += skip + Math.max(0, from - s.consumed);
          s.consumed = from + skip;
        }
      }
    }
  }

  /** Place `rank`'s held lines at the end now (a barrier needs them shown). */
  settle(rank: number): void {
    const s = this.states.get(rank);
    if (s !== undefined) {
      this.flushHeld(s);
      this.trim();
    }
  }

  /**
   * Place the held lines that waited `holdMs` (until `deadline` on `clock`: the others wait
   * for the next call); when the next ones will have (ms), or null.
   */
  expire(now: number, deadline = Infinity, clock: () => number = () => 0): number | null {
    let next: number | null = null;
    for (const s of this.states.values()) {
      if (clock() >= deadline) {
        this.trim();
        return now; // more may be due: the next call places them
      }
      for (const stream of STREAMS) {
        const held = s.held[stream];
        if (held.lines.length === 0) {
          continue;
        }
        const due = held.since + this.options.holdMs;
        if (due <= now) {
          this.flushHeld(s);
        } else {
          next = next === null ? due : Math.min(next, due);
        }
      }
    }
    this.trim();
    return next;
  }

  /** Whether `rank` has lines held. */
  holding(rank: number): boolean {
    const s = this.states.get(rank);
    return s !== undefined && s.held[1].lines.length + s.held[2].lines.length > 0;
  }

  /**
   * The id of the last main row that shows a line of `rank` taken so far: once a view shows
   * the rows up to it, it shows every line of the rank taken so far (held ones aside).
   */
  lastRowOf(rank: number): number {
    const s = this.states.get(rank);
    const pos = s === undefined ? -Infinity : Math.max(s.lastPos[1], s.lastPos[2]);
    return pos === -Infinity ? 0 : Math.ceil(pos);
  }

  // --- placing lines --------------------------------------------------------------------------

  private place(s: RankState, line: StoredLine, now: number): void {
    if (line.display !== null) {
      this.flushHeld(s);
      const row = this.newRow(s, 'display', line, plainOfDisplay(line));
      if (line.display.display_id !== null) {
        s.live.set(line.id, row);
      }
      return;
    }
    if (line.redrawn) {
      this.placeProgress(s, line);
      return;
    }
    if (line.open) {
      this.flushHeld(s);
      s.live.set(line.id, this.newRow(s, 'open', line, line.text));
      return;
    }
    this.placeClosed(s, line, now);
  }

  private placeClosed(s: RankState, line: StoredLine, now: number): void {
    const text = line.text;
    const tb = s.tracebacks.get(line.stream);
    if (tb !== undefined) {
      const step = tracebackStep(tb.phase, text);
      if (step.part === 'maybe') {
        tb.blanks.push(line);
        return;
      }
      if (step.part) {
        for (const blank of tb.blanks) {
          this.addCopy(tb.row, s.rank, blank);
        }
        tb.blanks = [];
        tb.phase = step.phase;
        this.addCopy(tb.row, s.rank, line);
        return;
      }
      s.tracebacks.delete(line.stream); // it ended before this line
      for (const blank of tb.blanks) {
        this.placeClosed(s, blank, now);
      }
    }
    if (isTracebackStart(text)) {
      this.flushHeld(s);
      const row = this.newRow(s, 'block', line, text);
      row.severity = Severity.Error;
      s.tracebacks.set(line.stream, { row, phase: 'frames', blanks: [] });
      return;
    }
    const stream = line.stream;
    const key = text;
    let join = this.findJoin(space('line', stream), key, s.lastPos[stream]);
    if (join === null) {
      const holder = this.holderOf(stream, key, s);
      if (holder !== null) {
        this.flushHeld(holder); // its copy of the line becomes a row this one can join
        join = this.findJoin(space('line', stream), key, s.lastPos[stream]);
      }
    }
    this.joinRate += ((join !== null ? 1 : 0) - this.joinRate) / 64;
    if (join !== null && this.placeHeldBefore(s, join)) {
      this.addCopy(join, s.rank, line);
      s.lastPos[stream] = join.pos;
      return;
    }
    const held = s.held[stream];
    if (held.lines.length > 0 || (this.joinRate > MIN_JOIN_RATE && this.newest[stream] > s.lastPos[stream])) {
      // Behind the others, with a line no row has: it waits for the rank's next line.
      if (held.lines.length === 0) {
        held.since = now;
      }
      held.lines.push(line);
      this.noteHeld(s, line);
      if (held.lines.length >= MAX_HELD) {
        this.flushHeld(s);
      }
      return;
    }
    this.flushHeld(s); // the other stream's held lines came before this one
    this.newRow(s, 'line', line, text, key);
  }

  private placeProgress(s: RankState, line: StoredLine): void {
    const key = progressLabel(line.text);
    const join = this.findJoin(space('progress', line.stream), key, s.lastPos[line.stream]);
    let row: Row;
    if (join !== null && this.placeHeldBefore(s, join)) {
      this.addCopy(join, s.rank, line);
      s.lastPos[line.stream] = join.pos;
      row = join;
    } else {
      this.flushHeld(s);
      row = this.newRow(s, 'progress', line, line.text, key);
    }
    if (line.open) {
      s.live.set(line.id, row);
    }
  }

  /** A line placed earlier changed: show its new state. */
  private update(s: RankState, line: StoredLine): void {
    const row = s.live.get(line.id);
    if (row === undefined || row.evicted) {
      s.live.delete(line.id);
      return;
    }
    if (row.kind === 'open') {
      row.text = line.text;
      row.severity = severity(row.text);
      if (line.redrawn) {
        row.kind = 'progress'; // a bar after all: others' bars with its label join it
        this.indexRow(row, progressLabel(line.text));
      } else if (!line.open) {
        row.kind = 'line';
        this.indexRow(row, row.text);
      }
    } else if (row.kind === 'display') {
      row.text = plainOfDisplay(line);
    }
    if (!line.open && row.kind !== 'display') {
      s.live.delete(line.id);
    }
    row.version++;
    this.changedRows.add(row.main);
  }

  /**
   * Place `s`'s held lines of `join`'s stream just before `join` (a row after the rank's
   * latest). False if there is no room there (the held lines stay held).
   */
  private placeHeldBefore(s: RankState, join: Row): boolean {
    const held = s.held[join.stream];
    if (held.lines.length === 0 || this.insertBefore(s, join, held.lines)) {
      this.forgetHeld(s, held.lines);
      held.lines = [];
      return true;
    }
    return false;
  }

  /**
   * Insert rows for `lines` (of one stream, in order) just before `target` (after the rank's
   * latest row of that stream), among other ranks' own lines there in rank order (they read
   * as a table of ranks however they arrived). False if there is no room.
   */
  private insertBefore(s: RankState, target: Row, lines: readonly StoredLine[]): boolean {
    const stream = lines[0].stream;
    const host = target.main;
    const list = host.before ?? [];
    let at = target === host ? list.length : list.indexOf(target);
    if (at < 0) {
      return false;
    }
    const after = s.lastPos[stream];
    while (at > 0 && list[at - 1].pos > after && list[at - 1].ranks.count === 1 && list[at - 1].ranks.first() > s.rank) {
      at--;
    }
    const next = at < list.length ? list[at] : host;
    const previous = Math.max(after, at > 0 ? list[at - 1].pos : host.id - 1);
    const gap = next.pos - previous;
    if (gap / (lines.length + 1) < 1e-9) {
      return false; // no room: positions between two rows are split only so often
    }
    const rows = lines.map((line, i) => {
      const text = line.text;
      const pos = previous + (gap * (i + 1)) / (lines.length + 1);
      const row = new Row(host.id, pos, 'line', line.stream, text, severity(text), host, this.capacity);
      this.addCopy(row, s.rank, line);
      this.indexRow(row, text);
      return row;
    });
    list.splice(at, 0, ...rows);
    host.before = list;
    s.lastPos[stream] = rows[rows.length - 1].pos;
    this.changedRows.add(host);
    return true;
  }

  /**
   * Place `s`'s held lines now, in the order the kernel read them: each before the first row
   * after the rank's latest that was read later than it (with the other ranks' own lines of
   * that moment: a rank that never printed the next shared line keeps its own lines where
   * the others have theirs), or else at the end, both streams' in the order they came.
   */
  private flushHeld(s: RankState): void {
    const rest: StoredLine[] = [];
    for (const stream of STREAMS) {
      const lines = s.held[stream].lines;
      s.held[stream].lines = [];
      this.forgetHeld(s, lines);
      let i = 0;
      while (i < lines.length) {
        const target = this.firstLater(s.lastPos[stream], lines[i].t);
        let j = i + 1;
        if (target !== null) {
          const t = rowTime(target);
          while (j < lines.length && lines[j].t <= t) {
            j++;
          }
        }
        if (target === null || !this.insertBefore(s, target, lines.slice(i, j))) {
          rest.push(...lines.slice(i));
          break;
        }
        i = j;
      }
    }
    rest.sort((a, b) => a.id - b.id);
    for (const line of rest) {
      this.newRow(s, 'line', line, line.text, line.text);
    }
  }

  /**
   * The first main row after position `pos` read later than `t` (rows are nearly in the
   * order their lines were read: a binary search), or null.
   */
  private firstLater(pos: number, t: number): Row | null {
    let lo = Math.max(this.firstId, Math.floor(pos) + 1);
    let hi = this.lastId;
    if (lo > hi || rowTime(this.rows[this.head + (hi - this.firstId)]) <= t) {
      return null;
    }
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (rowTime(this.rows[this.head + (mid - this.firstId)]) > t) {
        hi = mid;
      } else {
        lo = mid + 1;
      }
    }
    return this.rows[this.head + (lo - this.firstId)];
  }

  // --- rows -------------------------------------------------------------------------------------

  /** A new main row at the end; joinable by `key` (null: not joinable). */
  private newRow(s: RankState, kind: RowKind, line: StoredLine, text: string, key: string | null = null): Row {
    const id = this.nextId++;
    const row = new Row(id, id, kind, line.stream, text, severity(text), null, this.capacity);
    this.rows.push(row);
    this.addCopy(row, s.rank, line);
    if (key !== null) {
      this.indexRow(row, key);
    }
    s.lastPos[row.stream] = row.pos;
    this.newest[row.stream] = row.pos;
    // Rows leave the window from its start: they can no longer be joined.
    while (this.windowStart <= id - this.options.window) {
      const old = this.get(this.windowStart++);
      if (old !== undefined) {
        this.unindex(old);
      }
    }
    return row;
  }

  private get(id: number): Row | undefined {
    const i = this.head + (id - this.firstId);
    return i >= this.head && i < this.rows.length ? this.rows[i] : undefined;
  }

  private addCopy(row: Row, rank: number, line: StoredLine): void {
    row.copies.push({ rank, line });
    row.ranks.add(rank);
    row.version++;
    this.copies++;
    this.changedRows.add(row.main);
  }

  private noteHeld(s: RankState, line: StoredLine): void {
    const index = this.heldBy[line.stream];
    let ranks = index.get(line.text);
    if (ranks === undefined) {
      ranks = new Set();
      index.set(line.text, ranks);
    }
    ranks.add(s);
  }

  private forgetHeld(s: RankState, lines: readonly StoredLine[]): void {
    for (const line of lines) {
      const index = this.heldBy[line.stream];
      const ranks = index.get(line.text);
      if (ranks !== undefined && ranks.delete(s) && ranks.size === 0) {
        index.delete(line.text);
      }
    }
  }

  /** Another rank that holds a line of `text` on `stream`, or null. */
  private holderOf(stream: Stream, text: string, s: RankState): RankState | null {
    for (const other of this.heldBy[stream].get(text) ?? []) {
      if (other !== s) {
        return other;
      }
    }
    return null;
  }

  private findJoin(where: number, key: string, after: number): Row | null {
    const list = this.index[where].get(key);
    if (list === undefined) {
      return null;
    }
    let best: Row | null = null;
    for (const row of list) {
      if (row.pos > after && (best === null || row.pos < best.pos)) {
        best = row;
      }
    }
    return best;
  }

  private indexRow(row: Row, key: string): void {
    row.key = key;
    row.space = space(row.kind, row.stream);
    if (row.main.id < this.windowStart) {
      return; // out of the window already
    }
    const index = this.index[row.space];
    let list = index.get(key);
    if (list === undefined) {
      list = [];
      index.set(key, list);
    }
    list.push(row);
    if (list.length > MAX_KEY_ROWS) {
      // The oldest of them (lowest position) can no longer be joined.
      let oldest = 0;
      for (let i = 1; i < list.length; i++) {
        if (list[i].pos < list[oldest].pos) {
          oldest = i;
        }
      }
      list.splice(oldest, 1);
    }
  }

  /** A main row and its preludes can no longer be joined. */
  private unindex(row: Row): void {
    for (const r of [row, ...(row.before ?? [])]) {
      const index = r.space < 0 ? undefined : this.index[r.space];
      const list = index?.get(r.key);
      if (list === undefined) {
        continue;
      }
      const i = list.indexOf(r);
      if (i >= 0) {
        list.splice(i, 1);
      }
      if (list.length === 0) {
        index?.delete(r.key);
      }
    }
  }

  /** Evict the oldest rows while over `maxRows` rows or `maxCopies` copies. */
  private trim(): void {
    const { maxRows, maxCopies } = this.options;
    while (this.size > 1 && (this.size > maxRows || this.copies > maxCopies)) {
      const row = this.rows[this.head++];
      row.evicted = true;
      this.evictedRows++;
      this.unindex(row);
      this.copies -= row.copies.length;
      for (const p of row.before ?? []) {
        p.evicted = true;
        this.copies -= p.copies.length;
      }
      this.changedRows.delete(row);
    }
    if (this.head > 1024 && this.head * 2 > this.rows.length) {
      this.rows = this.rows.slice(this.head);
      this.head = 0;
    }
  }
}

/** When a row's (first) line was read. */
function rowTime(row: Row): number {
  return row.copies.length > 0 ? row.copies[0].line.t : 0;
}

/** Which index a row of `kind` on `stream` is joined through (lines and bars, per stream). */
function space(kind: RowKind, stream: Stream): number {
  return (kind === 'progress' ? 2 : 0) + (stream === 2 ? 1 : 0);
}

/** A bundle's line in the merged view: its plain text, or its types. */
function plainOfDisplay(line: StoredLine): string {
  const d = line.display;
  if (d === null) {
    return line.text;
  }
  const text = d.data['text/plain'];
  const first = typeof text === 'string' ? text.split('\n', 1)[0] : '';
  const label = d.kind === 'result' ? 'Out' : 'display';
  return `${label}: ${first || Object.keys(d.data).join(', ')}`;
}
