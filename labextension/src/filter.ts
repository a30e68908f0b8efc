/**
 * The panel's filters: a search (a substring, or a regular expression), a stream (stdout,
 * stderr or both) and a set of ranks ("3,5-7"). One `Filter` holds what the toolbar says;
 * the merged view and the per-proc widgets ask it about each row or line, as it comes and
 * again whenever the filter changes.
 *
 * The search is "smart case": case-insensitive unless it has a capital letter. A regular
 * expression that does not compile, or a rank list that does not parse, is an error the
 * toolbar shows; the filter then lets everything through.
 */

import { RankSet, parseRanks } from './ranges';

export type StreamChoice = 'both' | 'stdout' | 'stderr';

export interface FilterSpec {
  readonly search: string;
  readonly regex: boolean;
  readonly stream: StreamChoice;
  readonly ranks: string;
}

export const NO_FILTER: FilterSpec = { search: '', regex: false, stream: 'both', ranks: '' };

/** 1: stdout, 2: stderr (as messages.ts numbers them). */
type StreamNumber = 1 | 2;

export class Filter {
  /** Why part of the spec is ignored ('' when all of it applies). */
  readonly error: string;
  private readonly test: ((text: string) => boolean) | null;
  private readonly stream: StreamNumber | 0;
  /** The ranks shown, or null for all. */
  readonly ranks: RankSet | null;

  constructor(
    readonly spec: FilterSpec,
    procs = Infinity
  ) {
    const errors: string[] = [];
    this.test = null;
    if (spec.search !== '') {
      const flags = /[A-Z]/.test(spec.search) ? '' : 'i';
      if (spec.regex) {
        try {
          const re = new RegExp(spec.search, flags);
          this.test = text => re.test(text);
        } catch (err: unknown) {
          errors.push(`not a regular expression: ${err instanceof Error ? err.message : String(err)}`);
        }
      } else if (flags === 'i') {
        const needle = spec.search.toLowerCase();
        this.test = text => text.toLowerCase().includes(needle);
      } else {
        const needle = spec.search;
        this.test = text => text.includes(needle);
      }
    }
    this.stream = spec.stream === 'stdout' ? 1 : spec.stream === 'stderr' ? 2 : 0;
    const parsed = parseRanks(spec.ranks, procs);
    this.ranks = parsed.ok ? parsed.ranks : null;
    if (!parsed.ok) {
      errors.push(parsed.error);
    }
    this.error = errors.join('; ');
  }

  /** Whether anything is filtered out at all. */
  get active(): boolean {
    return this.test !== null || this.stream !== 0 || this.ranks !== null;
  }

  /** Whether the search is on (the rest filters by stream and rank only). */
  get searching(): boolean {
    return this.test !== null;
  }

  matchesText(text: string): boolean {
    return this.test === null || this.test(text);
  }

  matchesStream(stream: number): boolean {
    return this.stream === 0 || stream === this.stream;
  }

  /** Whether `ranks` (one rank, or a set) has a rank the filter shows. */
  matchesRanks(ranks: number | RankSet): boolean {
    if (this.ranks === null) {
      return true;
    }
    return typeof ranks === 'number' ? this.ranks.has(ranks) : this.ranks.intersects(ranks);
  }

  /** A line or row: its text, stream and ranks all pass. */
  matches(text: string, stream: number, ranks: number | RankSet): boolean {
    return this.matchesStream(stream) && this.matchesRanks(ranks) && this.matchesText(text);
  }
}
