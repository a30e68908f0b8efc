/**
 * ProcView: one proc's header (rank, pid, state, line counts, last heard, collapse toggle)
 * and body (its lines, stderr set apart, ANSI colours, a notice for lines not shown).
 *
 * The DOM mirrors the model's line store (same lines, same order), in steps paced by one
 * scheduler for every view (pacer.ts): at most one step per view per animation frame, within
 * a time budget shared by all views, so that lines arriving faster than the page can lay
 * them out never make one long task. A step (mirror.ts) removes lines from the front,
 * updates the (at most two) open partial lines in place and appends lines in blocks; lines
 * the store evicted before their turn are never created, and the DOM never holds more than
 * `max_lines` lines. A view far behind jumps to the newest lines and prepends the others
 * later. A display bundle is a line rendered by JupyterLab's rendermime, untrusted (render.ts).
 * Barriers are acked once the DOM shows what came before them, bundles rendered. Nothing
 * here reads layout while writing; following the output (scrolling to the bottom) happens
 * after layout (Followers).
 *
 * In a panel (panel.ts) the view also follows the panel's Decor (decor.ts): lines that do
 * not match its filter get the class `ipylogfwd-nomatch` (hidden), each line shows its time
 * (`data-ts`, drawn by CSS: not part of the line's text) when timestamps are on, and the view
 * counts its matching lines. New lines are decorated as they are made; a change of the Decor
 * redecorates the whole DOM in the view's next step (at most max_lines lines).
 */

import { DOMWidgetView } from '@jupyter-widgets/base';
import { UUID } from '@lumino/coreutils';

import { renderRuns } from './ansi';
import { Counted, Decor } from './decor';
import { STDERR } from './messages';
import { Mirror } from './mirror';
import { ProcModel, StoreView } from './model';
import { PacedTask, pagePacer } from './pacer';
import { NewLines } from './rate';
import { DisplayElements } from './render';
import { plainText } from './rich';
import { StoredLine } from './store';

/** The class of a line the filter hides. */
export const NOMATCH = 'ipylogfwd-nomatch';

/**
 * Lines are grouped in blocks of this many. Blocks are `content-visibility: auto`, and so is
 * the body: the browser lays out and paints only the blocks near the visible part of a body,
 * and nothing of a body off screen (with 16 procs of 2000 lines each, laying out every line
 * on each frame starved the page). The newest block (class ipylogfwd-tail) is always laid out
 * while its body is: a new block has no size yet, and its placeholder would show as a blank
 * at the bottom while following the output.
 */
const BLOCK_LINES = 64;

/**
 * Skipped lines (see mirror.ts) are prepended once no new line came for this long (ms), or
 * while new lines come slower than BACKFILL_MAX_RATE a second: not while output floods in,
 * when the work would go to lines nobody can read yet (a barrier does not wait for it: it
 * needs them in the DOM).
 */
const BACKFILL_QUIET_MS = 300;
const BACKFILL_MAX_RATE = 200;

/**
 * A line element of each stream, to clone: one clone costs less than creating an element
 * and setting its class and data attribute, and a flood creates thousands per second.
 */
const lineTemplates = new Map<number, HTMLElement>();

function newLineElement(stream: number): HTMLElement {
  let template = lineTemplates.get(stream);
  if (template === undefined) {
    template = document.createElement('div');
    template.className = stream === STDERR ? 'ipylogfwd-line ipylogfwd-stderr' : 'ipylogfwd-line';
    template.dataset.stream = stream === STDERR ? 'stderr' : 'stdout';
    lineTemplates.set(stream, template);
  }
  return template.cloneNode(false) as HTMLElement;
}

/** Set `el`'s text unless it already is `text` (an equal write still invalidates layout). */
function setText(el: HTMLElement, text: string): void {
  if (el.textContent !== text) {
    el.textContent = text;
  }
}

/** A new block of lines (not in the document yet: filling it there costs less). */
function newBlock(): HTMLElement {
  const block = document.createElement('div');
  block.className = 'ipylogfwd-block';
  return block;
}

/** Append `block` to `parent` as its tail: it takes the tail mark from the previous one. */
function appendBlock(parent: Node, block: HTMLElement): void {
  const previous = parent.lastChild;
  if (previous instanceof HTMLElement) {
    previous.classList.remove('ipylogfwd-tail');
  }
  block.classList.add('ipylogfwd-tail');
  parent.appendChild(block);
}

/**
 * Following the output: a view that follows scrolls to the bottom whenever its lines change
 * size, seen by one ResizeObserver for all views. That covers new lines, and also blocks or
 * a whole body getting their real size when they come into view (skipped content keeps the
 * size it had when last shown, so a scroll made while off screen falls short). The callback
 * runs after layout: reading scrollHeight there costs nothing, and nothing else reads layout.
 */
class Followers {
  private readonly views = new Map<Element, ProcView>();
  private readonly observer = new ResizeObserver(entries => {
    for (const entry of entries) {
      this.views.get(entry.target)?.followNow();
    }
  });

  add(view: ProcView, lines: Element): void {
    this.views.set(lines, view);
    this.observer.observe(lines);
  }

  remove(lines: Element): void {
    this.views.delete(lines);
    this.observer.unobserve(lines);
  }
}

const followers = new Followers();

const pacer = pagePacer();

const TRAITS_IN_HEADER =
  'change:rank change:host change:pid change:state change:exit_text change:stdout_lines change:stderr_lines';

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** "3 s ago", "4 min 2 s ago", "2 h 5 min ago". */
export function sinceText(lastHeard: number, now: number): string {
  if (!(lastHeard > 0)) {
    return 'not heard yet';
  }
  const s = Math.max(0, Math.floor(now - lastHeard));
  if (s < 60) {
    return `heard ${s} s ago`;
  }
  if (s < 3600) {
    return `heard ${Math.floor(s / 60)} min ${s % 60} s ago`;
  }
  return `heard ${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min ago`;
}

function stateText(state: string, exitText: string): string {
  if ((state === 'exited' || state === 'killed') && exitText !== '') {
    return exitText;
  }
  return exitText !== '' ? `${state} (${exitText})` : state;
}

export class ProcView extends DOMWidgetView implements StoreView, PacedTask, Counted {
  declare model: ProcModel;

  readonly viewId: string = UUID.uuid4();

  // Built in render() (DOMWidgetView's constructor runs before field initializers would).
  private header!: HTMLElement;
  private toggle!: HTMLButtonElement;
  private rankEl!: HTMLElement;
  private hostEl!: HTMLElement;
  private pidEl!: HTMLElement;
  private stateEl!: HTMLElement;
  private countsEl!: HTMLElement;
  private heardEl!: HTMLElement;
  private body!: HTMLElement;
  private hiddenEl!: HTMLElement;
  private errorEl!: HTMLElement;
  private linesEl!: HTMLElement;
  /** What of the store the DOM shows. */
  private mirror!: Mirror;
  /** Elements of lines still open in the store (partial lines that may change). */
  private openEls!: Map<number, HTMLElement>;
  /** Elements of display bundles, and their renderings. */
  private displays!: DisplayElements;
  private hiddenText!: string;
  private follow!: boolean;
  /** Whether new output scrolls the body to the bottom (also shown as data-follow). */
  private setFollow(value: boolean): void {
    if (value !== this.follow) {
      this.follow = value;
      this.mirror.mayJump = value;
      this.body.dataset.follow = String(value);
    }
  }
  private dragging!: boolean;
  /** The body's content is skipped (content-visibility: auto, off screen). */
  private skipped!: boolean;
  private timer!: number;
  /** The last_heard value the header's tooltip shows. */
  private heardTitleOf!: number;
  /** New lines of the store: when they came and how fast (for backfilling). */
  private newLines!: NewLines;
  /** The store's last id when the view last heard of a change. */
  private seenLastId!: number;
  /** A timer that steps the view again once the store is quiet (0: none). */
  private backfillTimer!: number;
  private attached!: boolean;
  /** The panel's filter and timestamps (null: a view on its own, nothing to decorate). */
  private decor!: Decor | null;
  /** The Decor's epoch the DOM shows (-1: to redecorate at the next step). */
  private decorEpoch!: number;
  private unsubscribe!: () => void;
  /** Lines in the DOM that match the filter. */
  private matched!: number;
  private readonly onPointerUp = (): void => {
    this.dragging = false;
    this.skipped = false;
  };

  render(): void {
    this.decor = null;
    this.decorEpoch = 0;
    this.matched = 0;
    this.unsubscribe = () => undefined;
    this.mirror = new Mirror(this.model.lines);
    this.openEls = new Map();
    this.displays = new DisplayElements();
    this.hiddenText = '';
    this.follow = false;
    this.dragging = false;
    this.attached = false;
    this.newLines = new NewLines(1000, performance.now());
    this.seenLastId = this.model.lines.lastId;
    this.backfillTimer = 0;
    this.heardTitleOf = -1;

    const el = this.el;
    el.classList.add('ipylogfwd-proc');

    this.header = document.createElement('div');
    this.header.className = 'ipylogfwd-header';
    this.toggle = document.createElement('button');
    this.toggle.type = 'button';
    this.toggle.className = 'ipylogfwd-toggle';
    this.toggle.addEventListener('click', () => {
      this.model.set('collapsed', !this.model.get('collapsed'));
      this.model.save_changes();
    });
    this.rankEl = this.part('ipylogfwd-rank');
    this.hostEl = this.part('ipylogfwd-host');
    this.pidEl = this.part('ipylogfwd-pid');
    this.stateEl = this.part('ipylogfwd-state');
    this.countsEl = this.part('ipylogfwd-counts');
    this.heardEl = this.part('ipylogfwd-heard');
    this.header.append(this.toggle, this.rankEl, this.hostEl, this.pidEl, this.stateEl, this.countsEl, this.heardEl);

    this.body = document.createElement('div');
    this.body.className = 'ipylogfwd-body';
    this.body.tabIndex = 0;
    this.hiddenEl = document.createElement('div');
    this.hiddenEl.className = 'ipylogfwd-hidden';
    this.hiddenEl.hidden = true;
    this.errorEl = document.createElement('div');
    this.errorEl.className = 'ipylogfwd-error';
    this.errorEl.hidden = true;
    this.linesEl = document.createElement('div');
    this.linesEl.className = 'ipylogfwd-lines';
    this.body.append(this.hiddenEl, this.errorEl, this.linesEl);
    this.listenForScrolling();
    this.setFollow(true);
    followers.add(this, this.linesEl);

    el.replaceChildren(this.header, this.body);

    this.listenTo(this.model, TRAITS_IN_HEADER, () => this.updateHeader());
    this.listenTo(this.model, 'change:last_heard', () => this.updateHeard());
    this.listenTo(this.model, 'change:collapsed', () => this.updateCollapsed());
    this.listenTo(this.model, 'change:log_paths', () => this.updateHidden());
    this.updateHeader();
    this.updateHeard();
    this.updateCollapsed();
    this.timer = window.setInterval(() => this.updateHeard(), 1000);

    for (const error of this.model.errors) {
      this.showProtocolError(error);
    }
    this.attached = true;
    this.model.attach(this); // renders the store, says hello, acks held barriers
  }

  remove(): void {
    if (this.attached) {
      this.attached = false;
      this.model.detach(this);
    }
    this.unsubscribe();
    this.decor?.uncount(this);
    pacer.remove(this);
    window.clearInterval(this.timer);
    window.clearTimeout(this.backfillTimer);
    window.removeEventListener('pointerup', this.onPointerUp);
    followers.remove(this.linesEl);
    super.remove();
  }

  // --- StoreView ------------------------------------------------------------------------

  storeChanged(changed: readonly StoredLine[]): void {
    this.countNewLines();
    this.mirror.changed(changed);
    pacer.add(this);
  }

  storeReplaced(): void {
    this.countNewLines();
    this.mirror.replaced();
    pacer.add(this);
  }

  private countNewLines(): void {
    const last = this.model.lines.lastId;
    this.newLines.add(Math.max(0, last - this.seenLastId), performance.now());
    this.seenLastId = last;
  }

  barrier(version: number): void {
    if (this.mirror.barrier(version)) {
      this.acknowledge(version);
    } else {
      pacer.add(this);
    }
  }

  // --- PacedTask --------------------------------------------------------------------------

  /**
   * Bring the DOM closer to the store: clear it after a replay or a jump, drop evicted
   * lines, update open lines, append blocks of lines until `deadline` (at least one block),
   * then, once the store is quiet or a barrier waits, prepend skipped lines until
   * `deadline`; ack the barriers the DOM now covers. True when nothing is left to do now (a
   * timer steps the view again for skipped lines).
   */
  step(deadline: number): boolean {
    const start = this.mirror.begin();
    if (start.clear) {
      this.linesEl.replaceChildren();
      this.openEls.clear();
      this.displays.clear();
      this.setMatched(0);
    }
    if (start.remove > 0) {
      this.removeFirst(start.remove);
    }
    if (this.decor !== null && this.decorEpoch !== this.decor.epoch) {
      this.redecorate(this.decor);
    }
    if (this.openEls.size > 0) {
      for (const id of this.openEls.keys()) {
        if (id < this.mirror.first) {
          this.openEls.delete(id); // evicted while open
        }
      }
    }
    this.displays.forgetBefore(this.mirror.first);
    for (const line of start.changed) {
      if (line.display !== null) {
        this.displays.update(line.id, line.display); // an update of the bundle
        continue;
      }
      const el = this.openEls.get(line.id);
      if (el !== undefined) {
        renderRuns(el, line.runs);
        this.decorate(el, line, true);
        if (!line.open) {
          this.openEls.delete(line.id);
        }
      }
    }
    const appended = this.appendUntil(deadline);
    const backfillDone = this.backfillUntil(deadline, appended);
    this.updateHidden();
    for (const version of this.mirror.acked()) {
      this.acknowledge(version);
    }
    return this.mirror.current && backfillDone;
  }

  /** The DOM shows everything before barrier `version`: ack once its bundles are rendered. */
  private acknowledge(version: number): void {
    this.displays.afterRenders(() => this.model.acknowledge(this, version));
  }

  /** Append blocks of the next lines until `deadline` (at least one); how many lines. */
  private appendUntil(deadline: number): number {
    let count = 0;
    do {
      // Up to the end of the last block (or one new block).
      const last = this.linesEl.lastElementChild;
      const filled = last === null ? 0 : last.childElementCount;
      const lines = this.mirror.next(filled > 0 && filled < BLOCK_LINES ? BLOCK_LINES - filled : BLOCK_LINES);
      if (lines.length === 0) {
        break;
      }
      this.append(lines);
      this.mirror.appended(lines.length);
      count += lines.length;
    } while (performance.now() < deadline);
    return count;
  }

  /**
   * Prepend blocks of skipped lines until `deadline` (at least one if the step did nothing
   * else) once no new line came for BACKFILL_QUIET_MS or they come slowly, or at once if a
   * barrier waits; before that, set a timer to come back. True when nothing is left for
   * this step to do (done, or waiting for quiet).
   */
  private backfillUntil(deadline: number, appended: number): boolean {
    if (!this.mirror.current || this.mirror.skipped === 0) {
      return true;
    }
    const now = performance.now();
    const quietFor = this.newLines.quietFor(now);
    const calm = quietFor >= BACKFILL_QUIET_MS || this.newLines.slowerThan(BACKFILL_MAX_RATE, now);
    if (!calm && this.mirror.heldBarriers === 0) {
      if (this.backfillTimer === 0) {
        this.backfillTimer = window.setTimeout(() => {
          this.backfillTimer = 0;
          pacer.add(this);
        }, BACKFILL_QUIET_MS - quietFor);
      }
      return true;
    }
    let progressed = appended > 0;
    while (!progressed || performance.now() < deadline) {
      const lines = this.mirror.backfill(BLOCK_LINES);
      if (lines.length === 0) {
        break;
      }
      this.prepend(lines);
      this.mirror.prepended(lines.length);
      progressed = true;
    }
    return this.mirror.skipped === 0;
  }

  /** A barrier waits for this view's DOM: the pacer gives the frame its larger budget. */
  urgent(): boolean {
    return this.mirror.heldBarriers > 0;
  }

  showProtocolError(text: string): void {
    this.errorEl.hidden = false;
    this.errorEl.textContent = text;
  }

  // --- lines ------------------------------------------------------------------------------

  private lineElement(line: StoredLine): HTMLElement {
    if (line.display !== null) {
      const d = this.displays.create(line.id, line.display);
      this.decorate(d, line, false);
      return d;
    }
    const el = newLineElement(line.stream);
    renderRuns(el, line.runs);
    if (line.open) {
      this.openEls.set(line.id, el);
    }
    this.decorate(el, line, false);
    return el;
  }

  // --- the panel's filter and timestamps ------------------------------------------------------

  /**
   * Follow `decor` (the panel's toolbar): filter and timestamps; `counted`: its matching
   * lines count in the toolbar's total (not for a widget opened from the merged view).
   */
  setDecor(decor: Decor, counted = true): void {
    this.unsubscribe();
    this.decor = decor;
    this.decorEpoch = -1;
    this.unsubscribe = decor.subscribe(() => pacer.add(this));
    if (counted) {
      decor.count(this);
    }
    pacer.add(this);
  }

  /** Lines shown that match the filter (none when the filter leaves this rank out). */
  get matches(): number {
    const d = this.decor;
    return d === null || d.filter.matchesRanks(this.model.getNumber('rank', 0)) ? this.matched : 0;
  }

  private setMatched(n: number): void {
    if (n !== this.matched) {
      this.matched = n;
      this.decor?.countsChanged();
    }
  }

  /**
   * Show or hide `el` (line `line`) by the filter and set its time; `counted`: it was counted
   * before (a line redrawn in place, or a redecoration), so its old state is taken back.
   */
  private decorate(el: HTMLElement, line: StoredLine, counted: boolean): void {
    const d = this.decor;
    if (d === null) {
      return;
    }
    const f = d.filter;
    const wasShown = !el.classList.contains(NOMATCH);
    let shown = true;
    if (f.active) {
      const text = line.display !== null ? plainText(line.display) : line.text;
      shown = f.matchesStream(line.stream) && f.matchesText(text);
    }
    if (shown !== wasShown) {
      el.classList.toggle(NOMATCH, !shown);
    }
    const ts = d.time === 'off' ? '' : d.timeText(line.t);
    if (ts !== '') {
      el.dataset.ts = ts;
    } else if (el.dataset.ts !== undefined) {
      delete el.dataset.ts;
    }
    this.setMatched(this.matched + (shown ? 1 : 0) - (counted && wasShown ? 1 : 0));
  }

  /** Decorate every line in the DOM anew (the Decor changed): at most max_lines lines. */
  private redecorate(decor: Decor): void {
    this.decorEpoch = decor.epoch;
    this.linesEl.classList.toggle('ipylogfwd-filtering', decor.filter.active);
    const lines = this.model.lines.range(this.mirror.first, this.mirror.last);
    let i = 0;
    for (const block of Array.from(this.linesEl.children)) {
      for (const el of Array.from(block.children)) {
        const line = lines[i++];
        if (line !== undefined && el instanceof HTMLElement) {
          this.decorate(el, line, true);
        }
      }
    }
  }

  /** Barriers this view holds and has not acked (handed to another view when it goes). */
  unacked(): number[] {
    return this.mirror.heldVersions();
  }

  /** Append lines to the last block, then in new blocks, each filled before it is added. */
  private append(lines: readonly StoredLine[]): void {
    let i = 0;
    while (i < lines.length) {
      const last = this.linesEl.lastElementChild;
      const room = last === null ? 0 : BLOCK_LINES - last.childElementCount;
      if (last !== null && room > 0) {
        const end = Math.min(lines.length, i + room);
        last.appendChild(this.lineElements(lines, i, end));
        i = end;
        continue;
      }
      const end = Math.min(lines.length, i + BLOCK_LINES);
      const block = newBlock();
      block.appendChild(this.lineElements(lines, i, end));
      appendBlock(this.linesEl, block);
      i = end;
    }
  }

  /** Put `lines` (oldest first, just before the DOM's first line) in a new first block. */
  private prepend(lines: readonly StoredLine[]): void {
    const first = this.linesEl.firstElementChild;
    if (first === null) {
      this.append(lines);
      return;
    }
    const block = newBlock();
    block.appendChild(this.lineElements(lines, 0, lines.length));
    this.linesEl.insertBefore(block, first);
  }

  /** The elements of `lines[from..to)`, in a fragment (one insertion for all). */
  private lineElements(lines: readonly StoredLine[], from: number, to: number): DocumentFragment {
    const fragment = document.createDocumentFragment();
    for (let k = from; k < to; k++) {
      fragment.appendChild(this.lineElement(lines[k]));
    }
    return fragment;
  }

  /** Remove the first `count` lines: whole blocks while they fit, then lines of the next. */
  private removeFirst(count: number): void {
    let left = count;
    while (left > 0) {
      const block = this.linesEl.firstElementChild;
      if (block === null) {
        break;
      }
      const n = block.childElementCount;
      if (n <= left) {
        if (this.decor !== null) {
          this.setMatched(this.matched - (n - block.getElementsByClassName(NOMATCH).length));
        }
        block.remove();
        left -= n;
        continue;
      }
      for (; left > 0; left--) {
        const first = block.firstElementChild;
        if (first === null) {
          break;
        }
        if (this.decor !== null && !first.classList.contains(NOMATCH)) {
          this.setMatched(this.matched - 1);
        }
        first.remove();
      }
    }
  }

  /** The notice of lines not shown: gone from the store, or skipped (see mirror.ts). */
  private updateHidden(): void {
    const hidden = this.model.lines.hidden + this.mirror.skipped;
    let text = '';
    if (hidden > 0) {
      const paths = this.model.getStrings('log_paths');
      const where = paths.length > 0 ? ` — full log: ${paths.join(', ')}` : '';
      text = `${plural(hidden, 'earlier line')} not shown${where}`;
    }
    if (text !== this.hiddenText) {
      this.hiddenText = text;
      this.hiddenEl.hidden = text === '';
      this.hiddenEl.textContent = text;
    }
  }

  // --- following the output -------------------------------------------------------------------

  /**
   * Follow new output unless the user scrolled up; resume when they scroll back to the
   * bottom. Only the user's own gestures stop following: scroll events also come from our
   * own scrolling and from scroll anchoring when lines are evicted at the top, and those
   * must not.
   */
  private listenForScrolling(): void {
    const stop = (): void => {
      this.setFollow(false);
    };
    this.body.addEventListener(
      'wheel',
      (e: WheelEvent) => {
        if (e.deltaY < 0) {
          stop();
        }
      },
      { passive: true }
    );
    this.body.addEventListener('keydown', (e: KeyboardEvent) => {
      if (['ArrowUp', 'PageUp', 'Home'].includes(e.key)) {
        stop();
      }
    });
    this.body.addEventListener('touchmove', stop, { passive: true });
    this.body.addEventListener('pointerdown', () => {
      this.dragging = true; // perhaps on the scrollbar
    });
    window.addEventListener('pointerup', this.onPointerUp);
    // While the body is off screen its content is skipped and it reports no overflow (and
    // scrolls to 0 on the way): those scroll events say nothing about the user.
    this.body.addEventListener('contentvisibilityautostatechange', (e: Event) => {
      if (e.target === this.body) {
        this.skipped = 'skipped' in e && e.skipped === true;
        if (!this.skipped) {
          this.followNow(); // its size may have changed before this event, while skipped
        }
      }
    });
    this.body.addEventListener(
      'scroll',
      () => {
        if (this.skipped) {
          return;
        }
        const b = this.body;
        const atBottom = b.scrollHeight - b.scrollTop - b.clientHeight <= 4;
        if (atBottom) {
          this.setFollow(true);
        } else if (this.dragging) {
          this.setFollow(false);
        }
      },
      { passive: true }
    );
  }

  /** Scroll to the bottom if following (Followers calls it after layout). */
  followNow(): void {
    if (this.follow && !this.body.hidden && !this.skipped) {
      this.body.scrollTop = this.body.scrollHeight;
    }
  }

  // --- header -----------------------------------------------------------------------------

  private part(className: string): HTMLElement {
    const span = document.createElement('span');
    span.className = className;
    return span;
  }

  private updateHeader(): void {
    const m = this.model;
    const rank = m.getNumber('rank', 0);
    const state = m.getString('state', 'starting');
    const exitText = m.getString('exit_text', '');
    const pid = m.getNumber('pid', 0);
    const host = m.getString('host', '');
    this.el.dataset.rank = String(rank);
    this.el.dataset.state = state;
    setText(this.rankEl, `rank ${rank}`);
    // Only groups on several hosts name them; one machine's procs need no host.
    this.hostEl.hidden = host === '';
    this.el.dataset.host = host;
    setText(this.hostEl, host);
    setText(this.pidEl, pid > 0 ? `pid ${pid}` : 'no pid');
    setText(this.stateEl, stateText(state, exitText));
    this.stateEl.dataset.state = state;
    const out = m.getNumber('stdout_lines', 0);
    const err = m.getNumber('stderr_lines', 0);
    setText(this.countsEl, `out ${out} · err ${err}`);
    this.countsEl.title = `${plural(out, 'stdout line')}, ${plural(err, 'stderr line')}`;
  }

  private updateHeard(): void {
    const last = this.model.getNumber('last_heard', 0);
    setText(this.heardEl, sinceText(last, Date.now() / 1000));
    if (last !== this.heardTitleOf) {
      // Formatting a date is not free: only when the time changed (once a second at most).
      this.heardTitleOf = last;
      this.heardEl.title = last > 0 ? new Date(last * 1000).toLocaleString() : '';
    }
  }

  private updateCollapsed(): void {
    const collapsed = this.model.get('collapsed') === true;
    this.el.classList.toggle('ipylogfwd-collapsed', collapsed);
    this.body.hidden = collapsed;
    this.toggle.textContent = collapsed ? '▸' : '▾';
    this.toggle.title = collapsed ? 'Show output' : 'Hide output';
    this.toggle.setAttribute('aria-expanded', String(!collapsed));
  }
}
