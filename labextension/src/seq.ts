/**
 * Which kernel messages a model applies, by their `seq` (per widget, each message one more
 * than the one before it on the same comm, delivered in order).
 *
 * A view says `hello` with the last seq its model applied, and the kernel answers with a
 * `replay` of its backlog whenever that seq is behind its own. During a flood it always is:
 * the messages sent since are on their way, behind the hello's answer. Re-rendering a whole
 * tail for nothing is the most expensive thing a view does, so a model that has applied
 * every message up to the one just before the replay (it saw each seq from 1, or from its
 * last applied replay, with no gap) has exactly what the replay holds and skips it. A model
 * that missed messages (created on a reloaded page, after the kernel had sent some) applies
 * it.
 */

export type SeqDecision =
  /** Apply the message. */
  | 'apply'
  /** Already covered (by a replay applied earlier): ignore it. */
  | 'old'
  /** A replay of what the model already has: nothing to do but move on to its seq. */
  | 'covered';

export class SeqTracker {
  private last = 0;
  /** Every message from seq 1 (or from the last replay applied) to `last` was applied. */
  private complete = true;

  /** The seq of the last message accepted. */
  get seq(): number {
    return this.last;
  }

  /** Whether the model has every message up to `seq` (no gap since 1 or the last replay). */
  get contiguous(): boolean {
    return this.complete;
  }

  /** Decide about a message of `type` with `seq`, and advance. */
  accept(type: 'lines' | 'barrier' | 'replay', seq: number): SeqDecision {
    if (type === 'replay') {
      const covered = this.complete && seq === this.last + 1;
      this.last = seq;
      this.complete = true;
      return covered ? 'covered' : 'apply';
    }
    if (seq <= this.last) {
      return 'old';
    }
    if (seq !== this.last + 1) {
      this.complete = false;
    }
    this.last = seq;
    return 'apply';
  }
}
