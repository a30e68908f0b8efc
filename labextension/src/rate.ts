/**
 * NewLines: when a view's store last got new lines, and how fast they come, so that the
 * view prepends lines it skipped (mirror.ts) only when that work does not compete with a
 * flood: once no new line came for a while, or while they come slowly. Lines changed in
 * place (a progress bar redrawn with `\r`) are not new lines and do not hold it back.
 */

export class NewLines {
  /** When the last new line came (ms, on the caller's clock). */
  private lastAt: number;
  private windowStart: number;
  private windowLines = 0;
  /** New lines per second over the last full window. */
  private rate = 0;

  /**
   * @param windowMs how long a window of the rate lasts
   * @param now the current time
   */
  constructor(
    private readonly windowMs: number,
    now: number
  ) {
    this.lastAt = now;
    this.windowStart = now;
  }

  /** `count` new lines came at `now` (0: the store changed in place only). */
  add(count: number, now: number): void {
    this.roll(now);
    if (count > 0) {
      this.lastAt = now;
      this.windowLines += count;
    }
  }

  /** How long no new line came, at `now`. */
  quietFor(now: number): number {
    return now - this.lastAt;
  }

  /**
   * Whether new lines came at less than `perSecond` a second over the last full window
   * and the current one so far.
   */
  slowerThan(perSecond: number, now: number): boolean {
    this.roll(now);
    const current = (this.windowLines * 1000) / Math.max(now - this.windowStart, this.windowMs);
    return this.rate < perSecond && current < perSecond;
  }

  private roll(now: number): void {
    const elapsed = now - this.windowStart;
    if (elapsed >= this.windowMs) {
      // A window in which nothing was added (a long silence) counts as rate 0.
      this.rate = elapsed >= 2 * this.windowMs ? 0 : (this.windowLines * 1000) / elapsed;
      this.windowStart = now;
      this.windowLines = 0;
    }
  }
}
