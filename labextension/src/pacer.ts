/**
 * Pacer: one scheduler for the DOM work of every view on the page, so that however fast
 * lines arrive the page keeps answering.
 *
 * Models apply the messages they received to their line stores, and views mirror the
 * stores in their DOM, in steps run once per animation frame within a shared time budget
 * per frame (`budgetMs`): the work a frame does, and the style and layout it leaves for the
 * browser, stay bounded, and nothing writes the DOM between frames. Messages that arrive
 * together (the page's kernel connection hands over many at once when it was held up) cost
 * almost nothing on arrival. Tasks take turns: one that did not finish goes to the back of
 * the queue, and the next frame starts with those that waited; tasks added during a tick
 * (views with new lines to show) run in the same tick if the budget allows. A step always
 * makes some progress, so every task finishes eventually.
 *
 * A task that a barrier waits for (a flush: the kernel waits until every view shows what
 * came before it) may go on until `urgentBudgetMs` into the frame; the others stop at
 * `budgetMs` as usual. The views a flush waits for catch up in a few frames instead of
 * many, and a frame's task stays far from a long one.
 *
 * Frames do not always come: a hidden document gets none, and a busy one may get them
 * late. The frame source says when a tick runs without a frame (the document is hidden,
 * nothing is painted): then the budget does not apply and the views catch up at once, so a
 * view's acknowledgements never wait for a frame that will not come.
 */

/** A unit of paced work: a model with messages to apply, a view with DOM to update. */
export interface PacedTask {
  /**
   * Do some work, stopping once `deadline` (on the pacer's clock) has passed, but always
   * making some progress. Return true when nothing is left.
   */
  step(deadline: number): boolean;
  /**
   * Whether a barrier waits for this task's work (optional; false when absent): frames
   * with such a task use the pacer's larger budget.
   */
  urgent?(): boolean;
}

export interface FrameSource {
  /** The current time, in ms. */
  now(): number;
  /**
   * Call `tick` once soon: at the next animation frame (`painted` true), or, when frames
   * are not coming, from a timer (`painted` false: the document is hidden).
   */
  request(tick: (painted: boolean) => void): void;
}

export class Pacer {
  private readonly queue: PacedTask[] = [];
  private readonly queued = new Set<PacedTask>();
  private scheduled = false;
  private ticking = false;

  constructor(
    private readonly frames: FrameSource,
    readonly budgetMs: number,
    readonly urgentBudgetMs: number = budgetMs
  ) {}

  /** Tasks waiting for a tick. */
  get pending(): number {
    return this.queue.length;
  }

  /** Ask for `task` to be stepped at the next tick (once, however often it is added). */
  add(task: PacedTask): void {
    if (!this.queued.has(task)) {
      this.queued.add(task);
      this.queue.push(task);
    }
    this.schedule();
  }

  /** Forget `task` (a view removed from the page). */
  remove(task: PacedTask): void {
    if (this.queued.delete(task)) {
      this.queue.splice(this.queue.indexOf(task), 1);
    }
  }

  /** Run one tick now (what the frame source calls). */
  tick(painted: boolean): void {
    this.scheduled = false;
    this.ticking = true; // tasks added meanwhile are seen below: no new frame for them
    const start = this.frames.now();
    const deadline = painted ? start + this.budgetMs : Infinity;
    const urgentDeadline = painted ? start + Math.max(this.budgetMs, this.urgentBudgetMs) : Infinity;
    // Tasks whose budget was spent while a barrier's was not: they keep their place in front.
    const passed: PacedTask[] = [];
    // Each task queued now gets at most one turn, and so does each task added meanwhile.
    let turns = this.queue.length;
    for (let i = 0; i < turns && this.queue.length > 0; i++) {
      const now = this.frames.now();
      if (i > 0 && now >= urgentDeadline) {
        break;
      }
      const task = this.queue.shift() as PacedTask;
      const own = task.urgent?.() === true ? urgentDeadline : deadline;
      if (i > 0 && now >= own) {
        passed.push(task); // still in `queued`
        continue;
      }
      this.queued.delete(task); // a step may add its own task again (more work came)
      const before = this.queue.length;
      let done = true;
      try {
        done = task.step(own);
      } catch (err: unknown) {
        console.error('ipylogfwd: a model or view failed to update', err);
      }
      turns += this.queue.length - before; // added by this step
      if (!done && !this.queued.has(task)) {
        this.queued.add(task);
        this.queue.push(task);
      }
    }
    this.queue.unshift(...passed);
    this.ticking = false;
    if (this.queue.length > 0) {
      this.schedule();
    }
  }

  private schedule(): void {
    if (!this.scheduled && !this.ticking) {
      this.scheduled = true;
      this.frames.request(painted => this.tick(painted));
    }
  }
}

/**
 * Frames in a browser: `requestAnimationFrame` while the document is visible, with a timer
 * in case the frame does not come in time (a page whose rendering is throttled); a timer
 * alone, without a budget, while it is hidden.
 */
export function browserFrames(fallbackMs: number): FrameSource {
  return {
    now: () => performance.now(),
    request(tick: (painted: boolean) => void): void {
      if (document.hidden) {
        window.setTimeout(() => tick(false), 0);
        return;
      }
      let done = false;
      const run = (painted: boolean): void => {
        if (!done) {
          done = true;
          window.cancelAnimationFrame(frame);
          window.clearTimeout(timer);
          tick(painted && !document.hidden);
        }
      };
      const frame = window.requestAnimationFrame(() => run(true));
      // A late frame: still budgeted (the page is visible and will paint what we write).
      const timer = window.setTimeout(() => run(true), fallbackMs);
    }
  };
}

/** DOM work per animation frame, for all models and views of the page together (ms). */
export const FRAME_BUDGET_MS = 6;
/**
 * The budget of a frame while a barrier waits (ms): a flush's catch-up (4 views of 2000 new
 * lines) takes two or three frames rather than ten, and a frame stays far from a 200 ms task.
 */
export const URGENT_FRAME_BUDGET_MS = 30;
/** How long a tick waits for an animation frame before running from a timer (ms). */
export const FRAME_FALLBACK_MS = 250;

let shared: Pacer | null = null;

/** The page's pacer (created on first use). */
export function pagePacer(): Pacer {
  if (shared === null) {
    shared = new Pacer(browserFrames(FRAME_FALLBACK_MS), FRAME_BUDGET_MS, URGENT_FRAME_BUDGET_MS);
  }
  return shared;
}
