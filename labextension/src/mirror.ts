/**
 * Mirror: what one view shows of its model's line store, and the bookkeeping that lets the
 * view update its DOM later than the store changes (in paced steps, see pacer.ts) without
 * breaking the barrier contract.
 *
 * The DOM always holds the store's lines with ids `first..last` (consecutive: lines only
 * leave the store from the front, and the view appends in order). A step brings it closer
 * to the store: clear it if the store was replaced, re-render the open lines that changed,
 * drop the lines the store evicted, then append the next lines (as many as the step's
 * budget allows). Lines the store evicted before the view got to them are never created.
 *
 * A view far behind the store (more than `jumpBehind` lines to append: a new view of a
 * full store, a view starved of frames while output floods in) jumps, unless its user is
 * reading older lines (`mayJump`) or a barrier waits: it clears its DOM and appends only the
 * newest `jumpKeep` lines, so that it shows the newest output soon instead of rendering
 * lines that would scroll away unseen. The lines of the store before the DOM's first line
 * are then "skipped": the view counts them with the lines the store no longer holds ("N
 * earlier lines not shown"), and prepends them later, newest first, once its tail is
 * current (`backfill`). The DOM is thus always one contiguous run of the store's lines, and
 * every line before that run is counted.
 *
 * A barrier covers everything in the store when it arrives; the view acknowledges it only
 * once its DOM shows all of that (lines evicted meanwhile need not be shown): at once if the
 * DOM shows the whole store, otherwise after the step that appends the barrier's last line
 * and prepends the last skipped line. "Rendered" means in the DOM, not counted in a notice.
 *
 * The same bookkeeping serves the merged view (merged.ts), whose rows have consecutive ids
 * too (merge.ts): a Mirror works on anything with ids `firstId..lastId` that leave from the
 * front (`MirrorSource`).
 */

import { StoredLine } from './store';

/** What a Mirror shows: a line, a row. */
export interface Mirrored {
  readonly id: number;
  readonly evicted: boolean;
}

/** Items with consecutive ids `firstId..lastId`; they leave from the front only. */
export interface MirrorSource<L extends Mirrored> {
  readonly firstId: number;
  readonly lastId: number;
  range(from: number, to: number): L[];
}

/** What a step must do before appending. */
export interface StepStart<L extends Mirrored = StoredLine> {
  /** Remove every line from the DOM first (the store was replaced). */
  readonly clear: boolean;
  /** Then remove this many lines from the front. */
  readonly remove: number;
  /** Then re-render these open lines in place (all in the DOM). */
  readonly changed: readonly L[];
}

/** A view with more lines than this to append jumps to the newest lines. */
export const JUMP_BEHIND = 768;
/** How many of the newest lines a jump appends (backfill brings the others later). */
export const JUMP_KEEP = 256;

interface HeldBarrier {
  readonly version: number;
  /** The store's last id when the barrier came: acked once the DOM's last id reaches it. */
  upTo: number;
}

export class Mirror<L extends Mirrored = StoredLine> {
  private firstShown: number;
  private lastShown: number;
  private needsClear = true;
  private readonly changedLines = new Set<L>();
  private held: HeldBarrier[] = [];
  /**
   * Whether the view may jump ahead: not while the user reads older output (scrolled up),
   * whose DOM a jump would clear.
   */
  mayJump = true;

  constructor(
    private readonly store: MirrorSource<L>,
    private readonly jumpBehind: number = JUMP_BEHIND,
    private readonly jumpKeep: number = JUMP_KEEP
  ) {
    this.firstShown = store.firstId;
    this.lastShown = this.firstShown - 1;
  }

  /** Ids of the first and last line in the DOM (first > last when it holds none). */
  get first(): number {
    return this.firstShown;
  }

  get last(): number {
    return this.lastShown;
  }

  /** Barriers waiting for the DOM. */
  get heldBarriers(): number {
    return this.held.length;
  }

  /** The versions of the barriers waiting for the DOM, in order. */
  heldVersions(): number[] {
    return this.held.map(b => b.version);
  }

  /** Lines of the store before the DOM's first line (after a jump): counted, not shown. */
  get skipped(): number {
    return this.needsClear ? 0 : Math.max(0, this.firstShown - this.store.firstId);
  }

  /**
   * Whether the DOM's tail is up to date: it ends with the store's last line, as it is now,
   * and holds no evicted line (it may start after the store's first line: `skipped`).
   */
  get current(): boolean {
    return (
      !this.needsClear &&
      this.changedLines.size === 0 &&
      this.firstShown >= this.store.firstId &&
      this.lastShown === this.store.lastId
    );
  }

  /** Whether the DOM shows the store exactly as it is (current, nothing skipped). */
  get synced(): boolean {
    return this.current && this.firstShown === this.store.firstId;
  }

  /** Lines of the store were continued or overwritten in place. */
  changed(lines: readonly L[]): void {
    for (const line of lines) {
      if (line.id <= this.lastShown) {
        this.changedLines.add(line);
      }
      // Lines not shown yet are rendered with their content when they are appended.
    }
  }

  /** The store was replaced (replay), or the view is new: show it afresh. */
  replaced(): void {
    this.needsClear = true;
    this.changedLines.clear();
    // What held barriers covered is now represented by the replaced content.
    for (const b of this.held) {
      b.upTo = this.store.lastId;
    }
  }

  /**
   * Barrier `version` came after everything in the store now. Returns true if the DOM
   * already shows all of it (ack now); otherwise it is held (see `acked`).
   */
  barrier(version: number): boolean {
    if (this.held.length === 0 && this.synced) {
      return true;
    }
    this.held.push({ version, upTo: this.store.lastId });
    return false;
  }

  /**
   * Whether the DOM shows every item of the store up to id `upTo` (those evicted meanwhile
   * aside): nothing skipped before it, nothing to clear, and it reaches `upTo`. Changes in
   * place are rendered at the start of the step that asks (`begin`).
   */
  covers(upTo: number): boolean {
    return !this.needsClear && this.skipped === 0 && (this.lastShown >= upTo || upTo < this.store.firstId);
  }

  /** Whether the next step jumps to the newest lines (it is too far behind, and may). */
  get jumping(): boolean {
    const storeFirst = this.store.firstId;
    return this.mayJump && this.held.length === 0 && this.store.lastId - Math.max(this.lastShown, storeFirst - 1) > this.jumpBehind;
  }

  /**
   * Start a step: what to remove and re-render; the DOM's range is updated for it. A view
   * too far behind jumps here (the step clears the DOM).
   */
  begin(): StepStart<L> {
    const storeFirst = this.store.firstId;
    let clear = false;
    let remove = 0;
    if (this.jumping) {
      clear = true;
      this.needsClear = false;
      this.firstShown = Math.max(storeFirst, this.store.lastId - this.jumpKeep + 1);
      this.lastShown = this.firstShown - 1;
    } else if (this.needsClear) {
      clear = true;
      this.needsClear = false;
      this.firstShown = storeFirst;
      this.lastShown = storeFirst - 1;
    } else if (storeFirst > this.firstShown) {
      remove = Math.min(this.lastShown, storeFirst - 1) - this.firstShown + 1;
      remove = Math.max(0, remove);
      this.firstShown = storeFirst;
      if (this.lastShown < storeFirst) {
        this.lastShown = storeFirst - 1;
      }
    }
    const changed: L[] = [];
    for (const line of this.changedLines) {
      if (!line.evicted && line.id >= this.firstShown && line.id <= this.lastShown) {
        changed.push(line);
      }
    }
    this.changedLines.clear();
    return { clear, remove, changed };
  }

  /** The next lines to append, at most `max`, oldest first. */
  next(max: number): L[] {
    return this.store.range(this.lastShown + 1, Math.min(this.store.lastId, this.lastShown + max));
  }

  /** `count` lines from `next` were appended to the DOM. */
  appended(count: number): void {
    this.lastShown += count;
  }

  /**
   * The skipped lines just before the DOM's first one, at most `max`, oldest first: what
   * to prepend next. None until the DOM's tail is current (the newest output goes first).
   */
  backfill(max: number): L[] {
    if (!this.current || this.skipped === 0) {
      return [];
    }
    return this.store.range(Math.max(this.store.firstId, this.firstShown - max), this.firstShown - 1);
  }

  /** `count` lines from `backfill` were prepended to the DOM. */
  prepended(count: number): void {
    this.firstShown -= count;
  }

  /** Versions of held barriers the DOM now covers, in order; they are no longer held. */
  acked(): number[] {
    const done: number[] = [];
    while (this.held.length > 0 && this.held[0].upTo <= this.lastShown && !this.needsClear && this.skipped === 0) {
      done.push((this.held.shift() as HeldBarrier).version);
    }
    return done;
  }
}
