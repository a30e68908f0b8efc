/**
 * Decor: what a panel's toolbar asks its views to show of each line, shared by the merged
 * view and the per-proc widgets of one panel view: the filter (filter.ts) and the timestamps
 * (off, the time of day, or the time since the cell started). Views subscribe; each change
 * bumps `epoch`, and a view brings its DOM up to date in its next paced step. Views also
 * report how many of their lines or rows match (`count`), which the toolbar sums.
 *
 * `timeText` is how a timestamp reads: "14:02:07.123" (absolute, local time) or "+1.250 s"
 * (relative to the cell's start; minutes past a minute: "+2:05.250").
 */

import { Filter, NO_FILTER } from './filter';
import { TimeMode } from './messages';

export function timeText(t: number, mode: TimeMode, started: number): string {
  if (mode === 'off' || !(t > 0)) {
    return '';
  }
  if (mode === 'relative') {
    const s = Math.max(0, t - started);
    if (s < 60) {
      return `+${s.toFixed(3)} s`;
    }
    const m = Math.floor(s / 60);
    const rest = s - m * 60;
    return `+${m}:${rest < 10 ? '0' : ''}${rest.toFixed(3)}`;
  }
  const d = new Date(Math.round(t * 1000)); // t is to the millisecond: not 0.12699999
  const two = (n: number): string => (n < 10 ? `0${n}` : String(n));
  const ms = d.getMilliseconds();
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${ms < 10 ? '00' : ms < 100 ? '0' : ''}${ms}`;
}

/** Something that shows lines and can say how many of them match the filter. */
export interface Counted {
  /** Lines or rows shown that match (all shown when no filter is on). */
  readonly matches: number;
}

export class Decor {
  private filterNow: Filter;
  private timeNow: TimeMode;
  private epochNow = 0;
  private readonly listeners = new Set<() => void>();
  private readonly counted = new Set<Counted>();
  private countListener: (() => void) | null = null;

  constructor(
    readonly procs: number,
    /** When the cell started (seconds since the epoch): relative times count from it. */
    public started: number,
    time: TimeMode
  ) {
    this.filterNow = new Filter(NO_FILTER, procs);
    this.timeNow = time;
  }

  get filter(): Filter {
    return this.filterNow;
  }

  get time(): TimeMode {
    return this.timeNow;
  }

  /** Bumped by every change: a view compares it with the epoch it last drew for. */
  get epoch(): number {
    return this.epochNow;
  }

  set(filter: Filter, time: TimeMode): void {
    this.filterNow = filter;
    this.timeNow = time;
    this.epochNow++;
    for (const fn of this.listeners) {
      fn();
    }
  }

  /** Call `fn` after each change; returns what stops it. */
  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  timeText(t: number): string {
    return timeText(t, this.timeNow, this.started);
  }

  // --- match counts ---------------------------------------------------------------------------

  /** `view`'s matches count towards the total (until `uncount`). */
  count(view: Counted): void {
    this.counted.add(view);
    this.countsChanged();
  }

  uncount(view: Counted): void {
    this.counted.delete(view);
    this.countsChanged();
  }

  /** The sum of the counted views' matches. */
  get matches(): number {
    let n = 0;
    for (const v of this.counted) {
      n += v.matches;
    }
    return n;
  }

  /** Who hears that a count changed (the toolbar; it reads `matches` when it redraws). */
  onCounts(fn: () => void): void {
    this.countListener = fn;
  }

  countsChanged(): void {
    this.countListener?.();
  }
}
