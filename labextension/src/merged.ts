/**
 * MergedView: a panel's merged view in the DOM (`[data-ipylogfwd-merged]`): the rows of a
 * MergeModel (merge.ts) built from every proc's line store, each showing its ranks
 * (`data-ranks`, compact: "0-3,5"), how many, its text (always text: styled runs, never
 * markup), highlighted when it looks like an error or a warning; a row expands to each
 * rank's own copy with its time, and a rank opens that proc's widget.
 *
 * It is a view of every proc's model (one `RankAdapter` per proc, a StoreView with a view
 * id of its own: the kernel sees one live view per proc), so with the merged view on
 * screen a barrier's ack means: the merged view shows every line that proc printed before
 * the barrier (in rows that carry its rank; lines that left the bounded tails meanwhile are
 * counted as not shown), as a proc's widget's ack means for its own lines. The work is
 * paced like the widgets' (pacer.ts): each step takes the procs' new lines into rows, then
 * brings the DOM closer to the rows (mirror.ts: blocks of rows appended, rows changed in
 * place re-drawn, a view far behind jumps to the newest rows and prepends the rest when
 * output slows down), then acks the barriers it covers.
 */

import { UUID } from '@lumino/coreutils';

import { renderRuns } from './ansi';
import { Counted, Decor, timeText } from './decor';
import { MergeModel, Row } from './merge';
import { Mirror } from './mirror';
import { ProcModel, StoreView } from './model';
import { PacedTask, pagePacer } from './pacer';
import { NewLines } from './rate';
import { Severity } from './severity';
import { StoredLine } from './store';
import { NOMATCH } from './view';

/** Rows per block (content-visibility: auto, like the widgets' blocks of lines). */
const BLOCK_ROWS = 64;
/** Rows made between two looks at the clock. */
const APPEND_ROWS = 16;
/** While rows come far faster than the DOM can show them, it jumps to the newest this often (ms). */
const JUMP_EVERY_MS = 250;
/** Rows skipped by a jump are prepended once no new row came for this long (ms). */
const BACKFILL_QUIET_MS = 300;
const BACKFILL_MAX_RATE = 100;
/** How long taking lines into rows waits for the procs' models to apply what they received (ms). */
const MAX_DEFER_MS = 250;

const pacer = pagePacer();

/** One proc's side of the merged view: a view of its model, in the model's eyes. */
class RankAdapter implements StoreView {
  readonly viewId: string = UUID.uuid4();

  constructor(
    readonly rank: number,
    readonly model: ProcModel,
    private readonly view: MergedView
  ) {}

  storeChanged(changed: readonly StoredLine[]): void {
    this.view.storeChanged(this.rank, changed);
  }

  storeReplaced(): void {
    this.view.storeReplaced();
  }

  barrier(version: number): void {
    this.view.barrier(this, version);
  }

  showProtocolError(text: string): void {
    this.view.showError(text);
  }

  unacked(): number[] {
    return this.view.unacked(this);
  }
}

interface PendingBarrier {
  readonly adapter: RankAdapter;
  readonly version: number;
  /** The proc's store's last line when the barrier came. */
  readonly upToLine: number;
  /** Once those lines are in rows: the last row that shows one of them. */
  upToRow: number | null;
}

/** What the DOM shows of one row (a main row, or a prelude). */
interface Shown {
  readonly el: HTMLElement;
  /** The row's version and the Decor's epoch it was drawn for (-1: never). */
  version: number;
  epoch: number;
  label: string;
  text: string;
  kind: string;
  /** Lines of a block drawn so far. */
  lines: number;
  /** A progress row's bars, by rank, and the text each shows. */
  bars: Map<number, { el: HTMLElement; text: string }> | null;
  copies: HTMLElement | null;
  matched: boolean;
}

export class MergedView implements PacedTask, Counted {
  readonly el: HTMLElement;
  private readonly noticeEl: HTMLElement;
  private readonly errorEl: HTMLElement;
  private readonly rowsEl: HTMLElement;
  private readonly adapters: RankAdapter[];
  private model: MergeModel;
  private mirror: Mirror<Row>;
  /** Ranks with lines to take into rows, in the order they came. */
  private readonly queue: number[] = [];
  private readonly queued = new Set<number>();
  private pending: PendingBarrier[] = [];
  private rebuild = true;
  /** Main row id -> what its item element shows. */
  private readonly items = new Map<number, Map<Row, Shown>>();
  private readonly rowOf = new WeakMap<Element, Row>();
  private readonly expanded = new Set<Row>();
  private matched = 0;
  private decorEpoch = -1;
  private follow = true;
  private readonly newRows = new NewLines(1000, performance.now());
  private seenLastId = 0;
  private timer = 0;
  private timerAt = 0;
  /** Since when consuming waits for the procs' models to apply their messages (0: it does not). */
  private deferSince = 0;
  /** When the DOM last jumped to the newest rows (ms). */
  private jumpedAt = -Infinity;
  /** What merging cost so far (see showStats); lines taken by models replaced by a rebuild. */
  private mergeMs = 0;
  private linesBefore = 0;
  private statsAt = 0;
  private noticeText = '';
  private readonly unsubscribe: () => void;
  private readonly resize: ResizeObserver;

  constructor(
    models: readonly ProcModel[],
    private readonly decor: Decor,
    /** Open a proc's widget (the panel shows it). */
    private readonly open: (rank: number) => void
  ) {
    this.el = document.createElement('div');
    this.el.className = 'ipylogfwd-merged';
    this.el.dataset.ipylogfwdMerged = '';
    this.noticeEl = document.createElement('div');
    this.noticeEl.className = 'ipylogfwd-hidden';
    this.noticeEl.hidden = true;
    this.errorEl = document.createElement('div');
    this.errorEl.className = 'ipylogfwd-error';
    this.errorEl.hidden = true;
    this.rowsEl = document.createElement('div');
    this.rowsEl.className = 'ipylogfwd-mrows';
    this.rowsEl.tabIndex = 0;
    this.rowsEl.setAttribute('role', 'list');
    this.rowsEl.setAttribute('aria-label', `Output of ${models.length} procs, lines they share shown once`);
    this.el.append(this.noticeEl, this.errorEl, this.rowsEl);
    this.adapters = models.map(m => new RankAdapter(m.getNumber('rank', 0), m, this));
    this.model = this.newModel();
    this.mirror = new Mirror<Row>(this.model);
    this.rowsEl.addEventListener('click', e => this.onClick(e));
    this.rowsEl.addEventListener('keydown', e => this.onKey(e));
    this.listenForScrolling();
    this.resize = new ResizeObserver(() => this.followNow());
    this.resize.observe(this.rowsEl);
    this.unsubscribe = decor.subscribe(() => pacer.add(this));
    decor.count(this);
  }

  /** Become a view of every proc's model (each says hello; held barriers come). */
  attach(): void {
    for (const a of this.adapters) {
      a.model.attach(a);
    }
  }

  remove(): void {
    for (const a of this.adapters) {
      a.model.detach(a);
    }
    pacer.remove(this);
    window.clearTimeout(this.timer);
    this.resize.disconnect();
    this.unsubscribe();
    this.decor.uncount(this);
    this.el.remove();
  }

  get matches(): number {
    return this.matched;
  }

  // --- from the procs' models (RankAdapter) ---------------------------------------------------

  storeChanged(rank: number, changed: readonly StoredLine[]): void {
    this.model.changed(rank, changed);
    this.enqueue(rank);
  }

  storeReplaced(): void {
    this.rebuild = true;
    pacer.add(this);
  }

  barrier(adapter: RankAdapter, version: number): void {
    this.pending.push({ adapter, version, upToLine: adapter.model.lines.lastId, upToRow: null });
    this.enqueue(adapter.rank);
  }

  unacked(adapter: RankAdapter): number[] {
    return this.pending.filter(p => p.adapter === adapter).map(p => p.version);
  }

  showError(text: string): void {
    this.errorEl.hidden = false;
    this.errorEl.textContent = text;
  }

  private enqueue(rank: number): void {
    if (!this.queued.has(rank)) {
      this.queued.add(rank);
      this.queue.push(rank);
    }
    pacer.add(this);
  }

  private newModel(): MergeModel {
    const capacity = Math.max(1, ...this.adapters.map(a => a.rank + 1));
    const maxCopies = this.adapters.reduce((n, a) => n + a.model.lines.maxLines, 0);
    const model = new MergeModel(capacity, { maxCopies: Math.max(maxCopies, 2000) });
    for (const a of this.adapters) {
      model.addRank(a.rank, a.model.lines);
    }
    return model;
  }

  // --- the paced step ---------------------------------------------------------------------------

  urgent(): boolean {
    return this.pending.length > 0;
  }

  step(deadline: number): boolean {
    if (this.rebuild) {
      this.rebuild = false;
      this.linesBefore += this.model.linesTaken;
      this.model = this.newModel();
      this.mirror = new Mirror<Row>(this.model);
      this.expanded.clear();
      this.pending.forEach(p => (p.upToRow = null));
      this.queue.length = 0;
      this.queued.clear();
      for (const a of this.adapters) {
        this.queued.add(a.rank);
        this.queue.push(a.rank);
      }
    }
    const now = performance.now();
    // Lines are taken into rows in the order the kernel read them, across procs: while some
    // proc's model still has messages to apply (a burst: each proc's tail at a flush, a page
    // catching up), wait for them, up to MAX_DEFER_MS, so that they are merged in time order
    // rather than one proc's whole tail after another's.
    if (this.adapters.some(a => a.model.unapplied > 0) && (this.deferSince === 0 || now - this.deferSince < MAX_DEFER_MS)) {
      if (this.deferSince === 0) {
        this.deferSince = now;
      }
      this.wake(20);
    } else {
      this.deferSince = 0;
      this.consume(now, deadline);
    }
    const nextHeld = this.model.expire(now, deadline, () => performance.now());
    for (const p of this.pending) {
      if (p.upToRow === null && this.model.consumed(p.adapter.rank) >= p.upToLine) {
        this.model.settle(p.adapter.rank); // held lines go before the barrier
        p.upToRow = this.model.lastRowOf(p.adapter.rank);
      }
    }
    this.mirror.changed(this.model.takeChanged());
    this.mirror.mayJump = this.follow && this.pending.length === 0;
    this.newRows.add(Math.max(0, this.model.lastId - this.seenLastId), now);
    this.seenLastId = this.model.lastId;
    this.render(deadline);
    this.ackCovered();
    this.updateNotice();
    this.showStats(now);
    if (nextHeld !== null) {
      this.wake(nextHeld - now); // held lines are placed when they have waited long enough
    }
    const caughtUp = this.queue.length === 0 && this.mirror.current;
    if (caughtUp && this.mirror.skipped > 0 && !this.calm(now)) {
      this.wake(BACKFILL_QUIET_MS); // skipped rows are prepended once output slows down
      return this.pending.length === 0;
    }
    return caughtUp && this.mirror.skipped === 0 && this.pending.length === 0;
  }

  /** Step again in `ms` (or sooner, if a step is due sooner already). */
  private wake(ms: number): void {
    const at = performance.now() + Math.max(10, ms);
    if (this.timer !== 0 && this.timerAt <= at) {
      return;
    }
    window.clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = window.setTimeout(
      () => {
        this.timer = 0;
        pacer.add(this);
      },
      Math.max(10, ms)
    );
  }

  /** Take the queued procs' lines into rows until `deadline`, oldest first (merge.ts `consumeAll`). */
  private consume(now: number, deadline: number): void {
    const start = performance.now();
    this.model.consumeAll(this.queue, now, deadline, () => performance.now());
    this.mergeMs += performance.now() - start;
    this.queued.clear();
    this.queue.forEach(r => this.queued.add(r));
  }

  /**
   * What merging cost and holds, on the element (`data-merge-stats`, JSON: lines taken into
   * rows, ms spent doing it, rows and copies kept, rows and lines not kept): read by
   * benchmarks/bench_browser.py. Written at most every half second while lines wait, and
   * whenever none does.
   */
  private showStats(now: number): void {
    if (now - this.statsAt < 500 && this.queue.length > 0) {
      return;
    }
    this.statsAt = now;
    const m = this.model;
    let skipped = 0;
    for (const a of this.adapters) {
      skipped += m.skipped(a.rank);
    }
    this.el.dataset.mergeStats = JSON.stringify({
      lines: this.linesBefore + m.linesTaken,
      ms: Math.round(this.mergeMs * 10) / 10,
      rows: m.size,
      copies: m.copyCount,
      maxCopies: m.options.maxCopies,
      maxRows: m.options.maxRows,
      evictedRows: m.evictedRows,
      skippedLines: skipped
    });
  }

  private calm(now: number): boolean {
    return this.newRows.quietFor(now) >= BACKFILL_QUIET_MS || this.newRows.slowerThan(BACKFILL_MAX_RATE, now);
  }

  /** Ack, per proc in order, the barriers whose rows the DOM now shows. */
  private ackCovered(): void {
    const waiting = new Set<RankAdapter>();
    this.pending = this.pending.filter(p => {
      if (waiting.has(p.adapter) || p.upToRow === null || !this.mirror.covers(p.upToRow)) {
        waiting.add(p.adapter);
        return true;
      }
      p.adapter.model.acknowledge(p.adapter, p.version);
      return false;
    });
  }

  // --- DOM ----------------------------------------------------------------------------------------

  private render(deadline: number): void {
    // Rows coming far faster than the DOM can show them (a flood of different lines): jump
    // to the newest rows at most every JUMP_EVERY_MS rather than at every step, where each
    // jump would make rows only to throw them away at the next.
    const now = performance.now();
    if (this.mirror.jumping && now - this.jumpedAt < JUMP_EVERY_MS) {
      this.wake(JUMP_EVERY_MS - (now - this.jumpedAt));
      return;
    }
    const start = this.mirror.begin();
    if (start.clear) {
      this.jumpedAt = now;
    }
    if (start.clear) {
      this.rowsEl.replaceChildren();
      this.items.clear();
      this.setMatched(0);
    }
    if (start.remove > 0) {
      this.removeFirst(start.remove);
    }
    const decor = this.decor;
    if (this.decorEpoch !== decor.epoch) {
      this.decorEpoch = decor.epoch;
      this.rowsEl.classList.toggle('ipylogfwd-filtering', decor.filter.active);
      for (const [id, shown] of this.items) {
        const row = this.model.range(id, id)[0];
        if (row !== undefined) {
          this.drawItem(row, shown);
        }
      }
    }
    for (const row of start.changed) {
      const shown = this.items.get(row.id);
      if (shown !== undefined) {
        this.drawItem(row, shown);
      }
    }
    let appended = 0;
    do {
      const last = this.rowsEl.lastElementChild;
      const filled = last === null ? 0 : last.childElementCount;
      // A few rows at a time: making a row costs more than a widget's line.
      const room = filled > 0 && filled < BLOCK_ROWS ? BLOCK_ROWS - filled : BLOCK_ROWS;
      const rows = this.mirror.next(Math.min(room, APPEND_ROWS));
      if (rows.length === 0) {
        break;
      }
      this.appendRows(rows);
      this.mirror.appended(rows.length);
      appended += rows.length;
    } while (performance.now() < deadline);
    if (this.mirror.current && this.mirror.skipped > 0 && (this.pending.length > 0 || this.calm(performance.now()))) {
      let progressed = appended > 0;
      while (!progressed || performance.now() < deadline) {
        const rows = this.mirror.backfill(BLOCK_ROWS);
        if (rows.length === 0) {
          break;
        }
        const block = newBlock();
        rows.forEach(r => block.appendChild(this.itemElement(r)));
        this.rowsEl.insertBefore(block, this.rowsEl.firstElementChild);
        this.mirror.prepended(rows.length);
        progressed = true;
      }
    }
  }

  private appendRows(rows: readonly Row[]): void {
    let i = 0;
    while (i < rows.length) {
      let block = this.rowsEl.lastElementChild as HTMLElement | null;
      if (block === null || block.childElementCount >= BLOCK_ROWS) {
        if (block !== null) {
          block.classList.remove('ipylogfwd-tail');
        }
        block = newBlock();
        block.classList.add('ipylogfwd-tail');
        this.rowsEl.appendChild(block);
      }
      const fragment = document.createDocumentFragment();
      const end = Math.min(rows.length, i + BLOCK_ROWS - block.childElementCount);
      for (; i < end; i++) {
        fragment.appendChild(this.itemElement(rows[i]));
      }
      block.appendChild(fragment);
    }
  }

  /** Remove the first `count` items: whole blocks while they fit, then items of the next. */
  private removeFirst(count: number): void {
    let left = count;
    while (left > 0) {
      const block = this.rowsEl.firstElementChild;
      if (block === null) {
        break;
      }
      const items = Array.from(block.children).slice(0, left);
      for (const item of items) {
        const row = this.rowOf.get(item);
        if (row !== undefined) {
          this.forget(row);
        }
      }
      if (items.length === block.childElementCount) {
        block.remove();
      } else {
        items.forEach(item => item.remove());
      }
      left -= items.length;
    }
  }

  private forget(row: Row): void {
    const shown = this.items.get(row.id);
    if (shown === undefined) {
      return;
    }
    let n = 0;
    for (const s of shown.values()) {
      n += s.matched ? 1 : 0;
    }
    this.items.delete(row.id);
    this.expanded.delete(row);
    this.setMatched(this.matched - n);
  }

  /** A new item element for main row `row` (its preludes, then itself). */
  private itemElement(row: Row): HTMLElement {
    const item = document.createElement('div');
    item.className = 'ipylogfwd-mitem';
    item.setAttribute('role', 'none');
    this.rowOf.set(item, row);
    const shown = new Map<Row, Shown>();
    this.items.set(row.id, shown);
    this.fillItem(item, row, shown);
    return item;
  }

  private drawItem(row: Row, shown: Map<Row, Shown>): void {
    const any = shown.values().next();
    if (any.done === true) {
      return;
    }
    const item = any.value.el.parentElement;
    if (item !== null) {
      this.fillItem(item, row, shown);
    }
  }

  /** Bring `item` up to `row`: preludes inserted where they belong, every row redrawn. */
  private fillItem(item: HTMLElement, row: Row, shown: Map<Row, Shown>): void {
    let cursor: Element | null = item.firstElementChild;
    for (const r of [...(row.before ?? []), row]) {
      let s = shown.get(r);
      if (s === undefined) {
        s = this.newShown(r);
        shown.set(r, s);
        item.insertBefore(s.el, cursor);
      } else {
        cursor = s.el.nextElementSibling;
      }
      this.drawRow(r, s);
    }
  }

  private newShown(row: Row): Shown {
    const el = rowTemplate(row.stream).cloneNode(true) as HTMLElement;
    this.rowOf.set(el, row);
    return { el, version: -1, epoch: -1, label: '', text: '', kind: '', lines: 0, bars: null, copies: null, matched: false };
  }

  /** Draw `row` in `s.el`, changing only what changed; then filter and count it. */
  private drawRow(row: Row, s: Shown, force = false): void {
    if (!force && s.version === row.version && s.epoch === this.decor.epoch) {
      return; // as drawn (an item redraws all its rows' checks when one of them changed)
    }
    s.version = row.version;
    s.epoch = this.decor.epoch;
    const el = s.el;
    const label = row.ranks.toString();
    if (s.kind !== row.kind) {
      s.kind = row.kind;
      el.dataset.kind = row.kind;
      while (el.childElementCount > 3) {
        (el.lastElementChild as Element).remove(); // a block's or bars' body, from another kind
      }
      (el.children[2] as HTMLElement).textContent = '';
      s.label = s.text = '';
      s.lines = 0;
      s.bars = null;
      s.copies = null;
      if (row.kind === 'block' || row.kind === 'progress') {
        const body = document.createElement('div');
        body.className = row.kind === 'block' ? 'ipylogfwd-mblock' : 'ipylogfwd-mbars';
        el.appendChild(body);
      }
    }
    if (s.label !== label) {
      s.label = label;
      el.dataset.ranks = label;
      const n = row.ranks.count;
      const ranksEl = el.children[0] as HTMLElement;
      ranksEl.textContent = label;
      ranksEl.title = n === 1 ? `rank ${label}: open its widget` : `ranks ${label}: show each rank's copy`;
      if (n === 1) {
        ranksEl.dataset.openRank = label;
      } else {
        delete ranksEl.dataset.openRank;
      }
      (el.children[1] as HTMLElement).textContent = n > 1 ? `×${n}` : '';
      if (n > 1 && row.kind === 'line') {
        el.setAttribute('aria-expanded', String(this.expanded.has(row)));
      } else {
        el.removeAttribute('aria-expanded');
      }
    }
    if (row.severity !== Severity.None) {
      el.dataset.severity = row.severity === Severity.Error ? 'error' : 'warning';
    } else if (el.dataset.severity !== undefined) {
      delete el.dataset.severity;
    }
    const textEl = el.children[2] as HTMLElement;
    if (row.kind === 'block') {
      textEl.textContent = '';
      const body = el.children[3] as HTMLElement;
      for (; s.lines < row.copies.length; s.lines++) {
        const line = document.createElement('div');
        line.className = 'ipylogfwd-mline';
        renderRuns(line, row.copies[s.lines].line.runs);
        body.appendChild(line);
      }
    } else if (row.kind === 'progress') {
      this.drawBars(row, s, el.children[3] as HTMLElement);
    } else if (s.text !== row.text) {
      s.text = row.text;
      const first = row.copies[0];
      if (row.kind === 'display' || first === undefined) {
        textEl.textContent = row.text;
      } else {
        renderRuns(textEl, first.line.runs);
      }
    }
    const t = row.copies[0]?.line.t ?? 0;
    const ts = this.decor.time === 'off' ? '' : this.decor.timeText(t);
    if (ts !== '') {
      textEl.dataset.ts = ts;
    } else if (textEl.dataset.ts !== undefined) {
      delete textEl.dataset.ts;
    }
    if (this.expanded.has(row)) {
      this.drawCopies(row, s);
    } else if (s.copies !== null) {
      s.copies.remove();
      s.copies = null;
    }
    const matched = this.matchesRow(row);
    if (matched !== !el.classList.contains(NOMATCH)) {
      el.classList.toggle(NOMATCH, !matched);
    }
    if (matched !== s.matched) {
      this.setMatched(this.matched + (matched ? 1 : -1));
      s.matched = matched;
    }
  }

  private drawBars(row: Row, s: Shown, body: HTMLElement): void {
    const bars = s.bars ?? new Map<number, { el: HTMLElement; text: string }>();
    s.bars = bars;
    for (const copy of row.copies) {
      let bar = bars.get(copy.rank);
      if (bar === undefined) {
        const el = document.createElement('div');
        el.className = 'ipylogfwd-mbar';
        el.dataset.rank = String(copy.rank);
        const rank = document.createElement('span');
        rank.className = 'ipylogfwd-rank-link';
        rank.dataset.openRank = String(copy.rank);
        rank.textContent = String(copy.rank);
        rank.title = `rank ${copy.rank}: open its widget`;
        el.append(rank, newTextEl());
        bar = { el, text: '\u0000' };
        bars.set(copy.rank, bar);
        // Bars in rank order: a table.
        const after = [...bars.keys()].filter(r => r > copy.rank).sort((a, b) => a - b)[0];
        body.insertBefore(el, after === undefined ? null : (bars.get(after)?.el ?? null));
      }
      const text = copy.line.text;
      if (bar.text !== text) {
        bar.text = text;
        renderRuns(bar.el.children[1] as HTMLElement, copy.line.runs);
      }
    }
  }

  /** Each rank's own copy: its rank (a link to its widget), its time, its text as it printed it. */
  private drawCopies(row: Row, s: Shown): void {
    const list = document.createElement('div');
    list.className = 'ipylogfwd-mcopies';
    list.setAttribute('role', 'list');
    for (const copy of [...row.copies].sort((a, b) => a.rank - b.rank)) {
      const item = document.createElement('div');
      item.className = 'ipylogfwd-mcopy';
      item.setAttribute('role', 'listitem');
      const rank = document.createElement('button');
      rank.type = 'button';
      rank.className = 'ipylogfwd-rank-link';
      rank.dataset.openRank = String(copy.rank);
      rank.textContent = `rank ${copy.rank}`;
      rank.title = `open rank ${copy.rank}'s widget`;
      const time = document.createElement('span');
      time.className = 'ipylogfwd-mtime';
      time.textContent = this.decor.timeText(copy.line.t) || timeText(copy.line.t, 'absolute', 0);
      const text = newTextEl();
      renderRuns(text, copy.line.runs);
      item.append(rank, time, text);
      list.appendChild(item);
    }
    if (s.copies !== null) {
      s.copies.replaceWith(list);
    } else {
      s.el.appendChild(list);
    }
    s.copies = list;
  }

  private matchesRow(row: Row): boolean {
    const f = this.decor.filter;
    if (!f.active) {
      return true;
    }
    if (!f.matchesStream(row.stream) || !f.matchesRanks(row.ranks)) {
      return false;
    }
    if (row.kind === 'block' || row.kind === 'progress') {
      return f.matchesText(row.text) || row.copies.some(c => f.matchesText(c.line.text));
    }
    return f.matchesText(row.text);
  }

  private setMatched(n: number): void {
    if (n !== this.matched) {
      this.matched = n;
      this.decor.countsChanged();
    }
  }

  private updateNotice(): void {
    const rows = this.model.evictedRows + this.mirror.skipped;
    let lines = 0;
    for (const a of this.adapters) {
      lines += this.model.skipped(a.rank);
    }
    const parts = [];
    if (rows > 0) {
      parts.push(`${rows} earlier ${rows === 1 ? 'row' : 'rows'} not shown`);
    }
    if (lines > 0) {
      parts.push(`${lines} ${lines === 1 ? 'line' : 'lines'} left the procs' tails before they were merged`);
    }
    const text = parts.length === 0 ? '' : `${parts.join('; ')} — each proc's widget and log file have them`;
    if (text !== this.noticeText) {
      this.noticeText = text;
      this.noticeEl.hidden = text === '';
      this.noticeEl.textContent = text;
    }
  }

  // --- the user ---------------------------------------------------------------------------------

  private onClick(e: MouseEvent): void {
    const target = e.target instanceof Element ? e.target : null;
    const link = target?.closest<HTMLElement>('[data-open-rank]');
    if (link !== null && link !== undefined) {
      this.open(Number(link.dataset.openRank));
      return;
    }
    const rowEl = target?.closest<HTMLElement>('.ipylogfwd-mrow');
    if (rowEl !== null && rowEl !== undefined && target?.closest('.ipylogfwd-mcopies') === null) {
      this.activate(rowEl);
    }
  }

  /** A row clicked or Enter: expand to each rank's copy, or open a single rank's widget. */
  private activate(rowEl: HTMLElement): void {
    const row = this.rowOf.get(rowEl);
    if (row === undefined) {
      return;
    }
    if (row.ranks.count === 1) {
      this.open(row.ranks.first());
      return;
    }
    if (this.expanded.has(row)) {
      this.expanded.delete(row);
    } else {
      this.expanded.add(row);
    }
    if (row.kind === 'line') {
      rowEl.setAttribute('aria-expanded', String(this.expanded.has(row)));
    }
    const shown = this.items.get(row.main.id)?.get(row);
    if (shown !== undefined) {
      this.drawRow(row, shown, true);
    }
  }

  /** Arrow keys move between the rows shown, Enter or Space activates one, Home/End jump. */
  private onKey(e: KeyboardEvent): void {
    const rows = (): HTMLElement[] =>
      Array.from(this.rowsEl.querySelectorAll<HTMLElement>(`.ipylogfwd-mrow:not(.${NOMATCH})`));
    const current = document.activeElement instanceof HTMLElement ? document.activeElement.closest<HTMLElement>('.ipylogfwd-mrow') : null;
    if (e.key === 'Enter' || e.key === ' ') {
      if (current !== null && e.target === current) {
        e.preventDefault();
        this.activate(current);
      }
      return;
    }
    if (!['ArrowDown', 'ArrowUp', 'Home', 'End'].includes(e.key)) {
      return;
    }
    e.preventDefault();
    const all = rows();
    if (all.length === 0) {
      return;
    }
    const i = current === null ? -1 : all.indexOf(current);
    const next =
      e.key === 'Home' ? 0 : e.key === 'End' ? all.length - 1 : e.key === 'ArrowDown' ? Math.min(all.length - 1, i + 1) : Math.max(0, i < 0 ? all.length - 1 : i - 1);
    if (e.key !== 'ArrowDown' && e.key !== 'End') {
      this.setFollow(false);
    }
    all[next].focus();
  }

  // --- following the output ---------------------------------------------------------------------

  private setFollow(value: boolean): void {
    this.follow = value;
    this.el.dataset.follow = String(value);
  }

  private listenForScrolling(): void {
    this.setFollow(true);
    this.el.addEventListener(
      'wheel',
      (e: WheelEvent) => {
        if (e.deltaY < 0) {
          this.setFollow(false);
        }
      },
      { passive: true }
    );
    this.el.addEventListener(
      'scroll',
      () => {
        const b = this.el;
        if (b.scrollHeight - b.scrollTop - b.clientHeight <= 4) {
          this.setFollow(true);
        }
      },
      { passive: true }
    );
  }

  /** Scroll to the bottom if following (after layout: the ResizeObserver calls it). */
  private followNow(): void {
    if (this.follow) {
      this.el.scrollTop = this.el.scrollHeight;
    }
  }
}

function newBlock(): HTMLElement {
  const block = document.createElement('div');
  block.className = 'ipylogfwd-block';
  block.setAttribute('role', 'none');
  return block;
}

/**
 * A row element of each stream, to clone: its rank label, count and text (one clone costs
 * less than four elements made and set up, and a flood makes thousands of rows a second).
 */
const rowTemplates = new Map<number, HTMLElement>();

function rowTemplate(stream: number): HTMLElement {
  let el = rowTemplates.get(stream);
  if (el === undefined) {
    el = document.createElement('div');
    el.className = 'ipylogfwd-mrow';
    el.setAttribute('role', 'listitem');
    el.tabIndex = -1;
    el.dataset.stream = stream === 2 ? 'stderr' : 'stdout';
    const ranks = document.createElement('span');
    ranks.className = 'ipylogfwd-mranks';
    const count = document.createElement('span');
    count.className = 'ipylogfwd-mcount';
    el.append(ranks, count, newTextEl());
    rowTemplates.set(stream, el);
  }
  return el;
}

function newTextEl(): HTMLElement {
  const el = document.createElement('span');
  el.className = 'ipylogfwd-mtext';
  return el;
}
