/**
 * The bounded line store of one proc widget: the last `maxLines` lines of stdout and
 * stderr, interleaved in arrival order, each line knowing its stream.
 *
 * Terminal rules, per stream: a chunk may end inside a line, and the next chunk of the same
 * stream continues that line where it is (even if lines of the other stream came in
 * between); `\r` moves back to the start of the line and later text overwrites it
 * character by character ("\r\n" is a plain line end, so a tqdm bar ends as one line); `\b`
 * moves back one character. A line longer than MAX_LINE_CHARS is wrapped into a new line
 * (keeps each update bounded). A line written again after a `\r` or `\b` is `redrawn` (a
 * progress bar). Each line keeps `t`, when the kernel read the chunk it started in.
 *
 * A display bundle is a line of its own (`display`), in its place among stdout's lines: it ends
 * stdout's open line, and stdout text after it starts a new line. An update of a bundle the
 * store still holds replaces it in place (reported as changed); one of a bundle no longer held
 * is dropped. Bundles are bounded too: past MAX_STORE_DISPLAY_CHARS, lines leave from the
 * front until they fit again (the newest bundle always stays).
 *
 * Every change is reported as a Delta (lines removed from the front, open lines changed in
 * place, lines added at the end), so that views update in O(batch) and never re-render the
 * whole tail; lines added and evicted within the same batch are never reported. Lines have
 * consecutive ids, so a view that is behind can also catch up by ids (firstId, lastId,
 * range).
 */

import { AnsiDecoder, Run, Style, TextSink } from './ansi';
import { DISPLAY, DisplayData, Piece, Stream, STDERR, STDOUT } from './messages';
import { capDisplay, displaySize, MAX_STORE_DISPLAY_CHARS } from './rich';

export const MAX_LINE_CHARS = 8192;

export class StoredLine {
  runs: Run[] = [];
  length = 0;
  /** Still written to by its stream (a partial line). */
  open = true;
  evicted = false;
  /** A display bundle instead of text (never open), and its size in characters. */
  display: DisplayData | null = null;
  displaySize = 0;
  /** Written again in place after a `\r` or `\b`: a progress bar (or a spinner). */
  redrawn = false;

  constructor(
    readonly id: number,
    readonly stream: Stream,
    /** When the kernel read the chunk this line started in (seconds since the epoch). */
    readonly t: number
  ) {}

  get text(): string {
    return this.runs.map(r => r.text).join('');
  }

  /** Write `text` at column `col` (0 <= col <= length), overwriting what is there. */
  writeAt(col: number, text: string, style: Style): void {
    const end = col + text.length;
    if (col === this.length) {
      const last = this.runs[this.runs.length - 1];
      if (last !== undefined && last.style === style) {
        last.text += text;
      } else {
        this.runs.push({ text, style });
      }
      this.length = end;
      return;
    }
    const out: Run[] = [];
    let pos = 0;
    let placed = false;
    for (const run of this.runs) {
      const start = pos;
      const stop = pos + run.text.length;
      pos = stop;
      if (stop <= col) {
        out.push(run);
        continue;
      }
      if (start < col) {
        out.push({ text: run.text.slice(0, col - start), style: run.style });
      }
      if (!placed) {
        out.push({ text, style });
        placed = true;
      }
      if (stop > end) {
        out.push({ text: run.text.slice(Math.max(0, end - start)), style: run.style });
      }
    }
    if (!placed) {
      out.push({ text, style });
    }
    this.runs = mergeRuns(out);
    this.length = Math.max(this.length, end);
  }
}

function mergeRuns(runs: Run[]): Run[] {
  const out: Run[] = [];
  for (const run of runs) {
    if (run.text === '') {
      continue;
    }
    const last = out[out.length - 1];
    if (last !== undefined && last.style === run.style) {
      out[out.length - 1] = { text: last.text + run.text, style: last.style };
    } else {
      out.push(run);
    }
  }
  return out;
}

/** What one batch did to the store, for views to mirror it. */
export interface Delta {
  /** Lines the view shows that are gone: remove this many from the front. */
  readonly removed: number;
  /** Lines the view shows whose content changed (continued or overwritten partial lines). */
  readonly changed: readonly StoredLine[];
  /** New lines, to append in order. */
  readonly added: readonly StoredLine[];
}

/** The writing position of one stream. */
class StreamWriter implements TextSink {
  readonly decoder = new AnsiDecoder();
  line: StoredLine | null = null;
  col = 0;
  /** A `\r` or `\b` moved back since the line's last write: the next write redraws it. */
  back = false;

  constructor(
    private readonly store: LineStore,
    private readonly stream: Stream
  ) {}

  text(text: string, style: Style): void {
    let rest = text;
    while (rest.length > 0) {
      if (this.line === null) {
        this.line = this.store.newLine(this.stream);
        this.col = 0;
      }
      const room = MAX_LINE_CHARS - this.col;
      if (room <= 0) {
        this.close();
        continue;
      }
      const part = rest.length <= room ? rest : rest.slice(0, room);
      rest = rest.length <= room ? '' : rest.slice(room);
      this.line.writeAt(this.col, part, style);
      if (this.back) {
        this.line.redrawn = true;
        this.back = false;
      }
      this.col += part.length;
      this.store.touched(this.line);
    }
  }

  newline(): void {
    if (this.line === null) {
      this.line = this.store.newLine(this.stream); // an empty line, closed at once
    }
    this.close();
  }

  carriageReturn(): void {
    this.col = 0;
    this.back = true;
  }

  backspace(): void {
    if (this.col > 0) {
      this.col--;
      this.back = true;
    }
  }

  close(): void {
    if (this.line !== null) {
      this.line.open = false;
      this.store.touched(this.line);
    }
    this.line = null;
    this.col = 0;
    this.back = false;
  }

  reset(): void {
    this.decoder.reset();
    this.line = null;
    this.col = 0;
    this.back = false;
  }
}

export class LineStore {
  /** lines[head..] are the store; the front is dropped lazily (amortised O(1) eviction). */
  private lines: StoredLine[] = [];
  private head = 0;
  private nextId = 1;
  private readonly writers: Record<Stream, StreamWriter>;
  private max: number;
  /** Lines evicted from this store since the last replace. */
  private evicted = 0;
  /** Lines the kernel did not send (sum of `dropped`) since the last replace. */
  private dropped = 0;
  /** Display lines held, by display id (bundles that can be updated). */
  private displayIds = new Map<string, StoredLine>();
  private displays = 0;
  private displayChars = 0;
  private readonly maxDisplayChars: number;
  /** When the chunk being applied was read: new lines start with it. */
  private chunkTime = 0;
  // Per batch:
  private firstNewId = 1;
  private oldLeft = 0;
  private oldRemoved = 0;
  private readonly changed = new Set<StoredLine>();

  constructor(maxLines: number, maxDisplayChars: number = MAX_STORE_DISPLAY_CHARS) {
    this.max = Math.max(1, Math.floor(maxLines));
    this.maxDisplayChars = maxDisplayChars;
    this.writers = { 1: new StreamWriter(this, STDOUT), 2: new StreamWriter(this, STDERR) };
  }

  get size(): number {
    return this.lines.length - this.head;
  }

  get maxLines(): number {
    return this.max;
  }

  /** Lines not in the store: dropped by the kernel or evicted here. */
  get hidden(): number {
    return this.dropped + this.evicted;
  }

  /** The stored lines, oldest first. */
  all(): StoredLine[] {
    return this.lines.slice(this.head);
  }

  /**
   * Ids are given in order and lines leave only from the front, so the store always holds
   * the lines `firstId..lastId`, every id in between (none when firstId > lastId).
   */
  get firstId(): number {
    return this.size > 0 ? this.lines[this.head].id : this.nextId;
  }

  get lastId(): number {
    return this.nextId - 1;
  }

  /** The stored lines with ids `from..to` (clipped to what is stored), oldest first. */
  range(from: number, to: number): StoredLine[] {
    const first = this.firstId;
    const start = this.head + Math.max(0, from - first);
    const end = this.head + Math.min(this.size, to - first + 1);
    return start < end ? this.lines.slice(start, end) : [];
  }

  /** The stored line with id `id`, if the store holds it. */
  get(id: number): StoredLine | undefined {
    const index = this.head + (id - this.firstId);
    return index >= this.head && index < this.lines.length ? this.lines[index] : undefined;
  }

  /** Bundle characters held. */
  get displayCharsHeld(): number {
    return this.displayChars;
  }

  /** Append a batch of chunks (a `lines` message). */
  apply(chunks: readonly Piece[], dropped: number): Delta {
    this.firstNewId = this.nextId;
    this.oldLeft = this.size;
    this.oldRemoved = 0;
    this.changed.clear();
    this.dropped += Math.max(0, dropped);
    for (const chunk of chunks) {
      this.chunkTime = chunk[2];
      if (chunk[0] === DISPLAY) {
        this.addDisplay(chunk[1]);
        continue;
      }
      const w = this.writers[chunk[0]];
      w.decoder.decode(chunk[1], w);
    }
    const newCount = this.nextId - this.firstNewId;
    const added = this.lines.slice(Math.max(this.head, this.lines.length - newCount));
    const changed: StoredLine[] = [];
    for (const line of this.changed) {
      if (line.id < this.firstNewId && !line.evicted) {
        changed.push(line);
      }
    }
    this.changed.clear();
    this.compact();
    return { removed: this.oldRemoved, changed, added };
  }

  /** Replace everything with a replay: its chunks, and `dropped` lines before them. */
  replace(chunks: readonly Piece[], dropped: number): void {
    this.lines = [];
    this.head = 0;
    this.evicted = 0;
    this.dropped = 0;
    this.displayIds.clear();
    this.displays = 0;
    this.displayChars = 0;
    this.writers[STDOUT].reset();
    this.writers[STDERR].reset();
    this.apply(chunks, dropped);
  }

  /** Change the bound; returns how many lines were evicted from the front. */
  setMaxLines(maxLines: number): number {
    this.max = Math.max(1, Math.floor(maxLines));
    this.oldLeft = this.size;
    this.oldRemoved = 0;
    while (this.size > this.max) {
      this.evictOne();
    }
    this.compact();
    return this.oldRemoved;
  }

  private addDisplay(piece: DisplayData): void {
    const size = displaySize(piece);
    const d = capDisplay(piece, size);
    const chars = d === piece ? size : displaySize(d);
    if (d.update) {
      const line = d.display_id === null ? undefined : this.displayIds.get(d.display_id);
      if (line !== undefined && !line.evicted) {
        // Shown in place of the bundle it updates.
        line.display = { ...d, update: false };
        this.displayChars += chars - line.displaySize;
        line.displaySize = chars;
        this.touched(line);
        this.trimDisplays();
      }
      return; // an update of a bundle no longer held has nothing to update
    }
    this.writers[STDOUT].close(); // a bundle ends stdout's open line
    const line = this.newLine(STDOUT);
    line.open = false;
    line.display = d;
    line.displaySize = chars;
    this.displays++;
    this.displayChars += chars;
    if (d.display_id !== null) {
      this.displayIds.set(d.display_id, line);
    }
    this.trimDisplays();
  }

  /** Evict from the front until the bundles fit (the newest one always stays). */
  private trimDisplays(): void {
    while (this.displayChars > this.maxDisplayChars && this.displays > 1) {
      this.evictOne();
    }
  }

  // --- for StreamWriter -------------------------------------------------------------------

  newLine(stream: Stream): StoredLine {
    const line = new StoredLine(this.nextId++, stream, this.chunkTime);
    this.lines.push(line);
    while (this.size > this.max) {
      this.evictOne();
    }
    return line;
  }

  touched(line: StoredLine): void {
    if (line.id < this.firstNewId) {
      this.changed.add(line);
    }
  }

  private evictOne(): void {
    const line = this.lines[this.head];
    this.head++;
    line.evicted = true;
    this.evicted++;
    if (line.display !== null) {
      this.displays--;
      this.displayChars -= line.displaySize;
      if (line.display.display_id !== null && this.displayIds.get(line.display.display_id) === line) {
        this.displayIds.delete(line.display.display_id);
      }
    }
    if (this.oldLeft > 0) {
      this.oldLeft--;
      this.oldRemoved++;
    }
    const w = this.writers[line.stream];
    if (w.line === line) {
      // Its continuation, if any, starts a new line: its beginning is gone anyway.
      w.line = null;
      w.col = 0;
      line.open = false;
    }
  }

  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.lines.length) {
      this.lines = this.lines.slice(this.head);
      this.head = 0;
    }
  }
}

