/**
 * Sets of ranks, and how they are written: in compact range form, "0-3,5,7-9" (the merged
 * view's `data-ranks`, what a rank filter accepts, and `ipylogfwd/ranks.py` on the kernel's
 * side).
 *
 * `RankSet` is a bit set (no array while it holds one rank, as most rows of the merged view
 * do): adding a rank is O(1), and its compact form is computed once per change (a row of the
 * merged view shows it after each batch of ranks joined it, not after each rank).
 */

export class RankSet {
  /** The bits, once there are two ranks (most rows have one: no array for them). */
  private bits: Uint32Array | null = null;
  /** The rank while there is only one (-1: none). */
  private single = -1;
  private n = 0;
  private text: string | null = '';

  constructor(private readonly capacity = 32) {}

  /** A set of these ranks. */
  static of(...ranks: number[]): RankSet {
    const set = new RankSet(Math.max(0, ...ranks) + 1);
    ranks.forEach(r => set.add(r));
    return set;
  }

  get count(): number {
    return this.n;
  }

  has(rank: number): boolean {
    if (this.bits === null) {
      return rank === this.single && rank >= 0;
    }
    const word = rank >>> 5;
    return rank >= 0 && word < this.bits.length && (this.bits[word] & (1 << (rank & 31))) !== 0;
  }

  /** Add `rank` (>= 0); true if it was not in the set. */
  add(rank: number): boolean {
    if (this.has(rank)) {
      return false;
    }
    this.text = null;
    this.n++;
    if (this.n === 1) {
      this.single = rank;
      return true;
    }
    if (this.bits === null) {
      this.bits = new Uint32Array(Math.max(1, Math.ceil(Math.max(this.capacity, rank + 1, this.single + 1) / 32)));
      this.setBit(this.single);
    }
    this.setBit(rank);
    return true;
  }

  private setBit(rank: number): void {
    const word = rank >>> 5;
    let bits = this.bits as Uint32Array;
    if (word >= bits.length) {
      const grown = new Uint32Array(Math.max(word + 1, bits.length * 2));
      grown.set(bits);
      bits = this.bits = grown;
    }
    bits[word] |= 1 << (rank & 31);
  }

  /** Whether some rank is in both sets. */
  intersects(other: RankSet): boolean {
    if (this.bits === null) {
      return this.n > 0 && other.has(this.single);
    }
    if (other.bits === null) {
      return other.n > 0 && this.has(other.single);
    }
    const words = Math.min(this.bits.length, other.bits.length);
    for (let i = 0; i < words; i++) {
      if ((this.bits[i] & other.bits[i]) !== 0) {
        return true;
      }
    }
    return false;
  }

  /** The ranks, in increasing order. */
  ranks(): number[] {
    if (this.bits === null) {
      return this.n > 0 ? [this.single] : [];
    }
    const out: number[] = [];
    for (let w = 0; w < this.bits.length; w++) {
      let word = this.bits[w];
      while (word !== 0) {
        const low = word & -word;
        out.push(w * 32 + (31 - Math.clz32(low)));
        word ^= low;
      }
    }
    return out;
  }

  /** The first rank (-1 if none). */
  first(): number {
    if (this.bits === null) {
      return this.n > 0 ? this.single : -1;
    }
    for (let w = 0; w < this.bits.length; w++) {
      const word = this.bits[w];
      if (word !== 0) {
        return w * 32 + (31 - Math.clz32(word & -word));
      }
    }
    return -1;
  }

  /** Compact range form: "0-3,5,7-9". */
  toString(): string {
    if (this.text === null) {
      this.text = this.bits === null ? String(this.single) : formatRanks(this.ranks());
    }
    return this.text;
  }
}

/** Ranks in increasing order, written in compact range form: "0-3,5,7-9" ("" for none). */
export function formatRanks(sorted: readonly number[]): string {
  const parts: string[] = [];
  let i = 0;
  while (i < sorted.length) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) {
      j++;
    }
    parts.push(j === i ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

/** What a rank filter's text means: a set of ranks, none (empty text: no filter), or an error. */
export type ParsedRanks = { ok: true; ranks: RankSet | null } | { ok: false; error: string };

/**
 * Parse "3,5-7" (spaces allowed, ranges inclusive; "-" or ":" between a range's ends). Empty
 * text is no filter. Ranks must be below `limit` when it is given.
 */
export function parseRanks(text: string, limit = Infinity): ParsedRanks {
  const trimmed = text.trim();
  if (trimmed === '') {
    return { ok: true, ranks: null };
  }
  const set = new RankSet(Number.isFinite(limit) ? limit : 32);
  for (const raw of trimmed.split(',')) {
    const part = raw.trim();
    const m = /^(\d+)\s*(?:[-:]\s*(\d+))?$/.exec(part);
    if (m === null) {
      return { ok: false, error: `not a rank or a range: ${JSON.stringify(part)} (write e.g. 3,5-7)` };
    }
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    if (to < from) {
      return { ok: false, error: `the range ${part} runs backwards` };
    }
    if (to >= limit) {
      return { ok: false, error: `rank ${to} is not one of these procs (0-${limit - 1})` };
    }
    for (let r = from; r <= to; r++) {
      set.add(r);
    }
  }
  return { ok: true, ranks: set };
}
