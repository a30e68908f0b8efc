/**
 * Messages between the kernel and the proc views, mirroring `ipylogfwd/wire/view_messages.py`
 * (tests/test_protocol_sync.py parses this file and checks the two agree: keep each
 * interface one field per line, `name: type;`).
 *
 * Kernel -> view, as custom messages on each ProcWidget's own comm, in order:
 * `lines` (output to append, in order: text per stream, `[stream, text, at]`, and display
 * bundles, `[DISPLAY, DisplayData, at]`, each with `at`, when the kernel read it in seconds
 * since the epoch; `dropped` lines that were never sent), `barrier`
 * (ack `version` once everything before it is in the DOM), `replay` (the kernel's bounded
 * backlog: replace what is shown, continue after its `seq`).
 *
 * View -> kernel, on the acknowledgement channel (see acks.ts): `hello`, `ack`, `bye`.
 *
 * The panel of a cell's procs (`ProcsPanel`, `PanelModel` here) has no messages: its views
 * merge and filter its children's lines in the page. Its traits' values are below
 * (`PANEL_MODES`, `TIME_MODES`, `MERGED_AT`), checked against the kernel's too.
 */

import type { ReadonlyJSONObject } from '@lumino/coreutils';

export const PROTOCOL_VERSION = 3;
export const ACK_TARGET = 'ipylogfwd.acks';
export const CONTROL_MSG_TYPE = 'ipylogfwd_ack';

/** 1: stdout, 2: stderr. */
export type Stream = 1 | 2;
export const STDOUT: Stream = 1;
export const STDERR: Stream = 2;

/** The first element of a chunk that carries a display bundle instead of text. */
export const DISPLAY = 0;

/** What a panel shows: the merged view, or one widget per proc (`ProcsPanel.mode`). */
export const PANEL_MODES = ['merged', 'procs'] as const;
export type PanelMode = (typeof PANEL_MODES)[number];
/** How lines show when the kernel read them (`ProcsPanel.timestamps`). */
export const TIME_MODES = ['off', 'absolute', 'relative'] as const;
export type TimeMode = (typeof TIME_MODES)[number];
/** A panel of at least this many procs starts with the merged view. */
export const MERGED_AT = 8;

/**
 * [stream, text, at]; the text may end without "\n" (a partial line, continued later); `at`
 * is when the kernel read it (seconds since the epoch): the lines that start in it show it.
 */
export type Chunk = [Stream, string, number];

/**
 * A proc's mime bundle (`display()`, or the rich form of a cell's last expression): rendered
 * with JupyterLab's rendermime, untrusted. An `update` re-renders the bundle of its
 * `display_id` in place.
 */
export interface DisplayData {
  kind: 'display' | 'result';
  data: ReadonlyJSONObject;
  metadata: ReadonlyJSONObject;
  display_id: string | null;
  update: boolean;
}

/** A display bundle in its place among the text chunks, and when the kernel read it. */
export type DisplayChunk = [typeof DISPLAY, DisplayData, number];

/** What `lines` and `replay` carry, in order. */
export type Piece = Chunk | DisplayChunk;

// --- kernel -> view -------------------------------------------------------------------

export interface Lines {
  protocol: number;
  type: 'lines';
  seq: number;
  dropped: number;
  chunks: Piece[];
}

export interface BarrierMsg {
  protocol: number;
  type: 'barrier';
  seq: number;
  version: number;
}

export interface Replay {
  protocol: number;
  type: 'replay';
  seq: number;
  dropped: number;
  chunks: Piece[];
}

export type ToView = Lines | BarrierMsg | Replay;

// --- view -> kernel -------------------------------------------------------------------

export interface Hello {
  protocol: number;
  type: 'hello';
  model_id: string;
  view_id: string;
  seq: number;
}

export interface Ack {
  protocol: number;
  type: 'ack';
  model_id: string;
  view_id: string;
  version: number;
}

export interface Bye {
  protocol: number;
  type: 'bye';
  model_id: string;
  view_id: string;
}

export type FromView = Hello | Ack | Bye;

export const TO_VIEW_TYPES = ['lines', 'barrier', 'replay'] as const;
export const FROM_VIEW_TYPES = ['hello', 'ack', 'bye'] as const;

// --- parsing what the kernel sent -------------------------------------------------------

/** A kernel message, or why it is not one this view understands (never silently dropped). */
export type Parsed = { ok: true; msg: ToView } | { ok: false; error: string };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isInt(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value);
}

export function isStream(value: unknown): value is Stream {
  return value === STDOUT || value === STDERR;
}

function isTime(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

export function isChunk(value: unknown): value is Chunk {
  return (
    Array.isArray(value) && value.length === 3 && isStream(value[0]) && typeof value[1] === 'string' && isTime(value[2])
  );
}

export function isDisplayData(value: unknown): value is DisplayData {
  return (
    isRecord(value) &&
    (value.kind === 'display' || value.kind === 'result') &&
    isRecord(value.data) &&
    Object.keys(value.data).length > 0 &&
    isRecord(value.metadata) &&
    (value.display_id === null || typeof value.display_id === 'string') &&
    typeof value.update === 'boolean'
  );
}

export function isDisplayChunk(value: unknown): value is DisplayChunk {
  return (
    Array.isArray(value) && value.length === 3 && value[0] === DISPLAY && isDisplayData(value[1]) && isTime(value[2])
  );
}

function isChunks(value: unknown): value is Piece[] {
  return Array.isArray(value) && value.every(c => isChunk(c) || isDisplayChunk(c));
}

export function isLines(value: Record<string, unknown>): value is Record<string, unknown> & Lines {
  return value.type === 'lines' && isInt(value.seq) && isInt(value.dropped) && isChunks(value.chunks);
}

export function isBarrier(value: Record<string, unknown>): value is Record<string, unknown> & BarrierMsg {
  return value.type === 'barrier' && isInt(value.seq) && isInt(value.version);
}

export function isReplay(value: Record<string, unknown>): value is Record<string, unknown> & Replay {
  return value.type === 'replay' && isInt(value.seq) && isInt(value.dropped) && isChunks(value.chunks);
}

/** Check a custom message from the kernel: a ToView of our protocol, or an error saying why not. */
export function parseToView(data: unknown): Parsed {
  if (!isRecord(data)) {
    return { ok: false, error: `message is not an object: ${JSON.stringify(data)?.slice(0, 80)}` };
  }
  if (data.protocol !== PROTOCOL_VERSION) {
    return {
      ok: false,
      error: `message of protocol ${JSON.stringify(data.protocol)}, this view speaks ${PROTOCOL_VERSION}`
    };
  }
  const kind = data.type;
  if (typeof kind !== 'string' || !(TO_VIEW_TYPES as readonly string[]).includes(kind)) {
    return { ok: false, error: `unknown message type ${JSON.stringify(kind)}` };
  }
  if (isLines(data) || isBarrier(data) || isReplay(data)) {
    return { ok: true, msg: data };
  }
  return { ok: false, error: `malformed ${kind} message` };
}

// --- building what the view sends ---------------------------------------------------------

export function hello(model_id: string, view_id: string, seq: number): Hello {
  return { protocol: PROTOCOL_VERSION, type: 'hello', model_id, view_id, seq };
}

export function ack(model_id: string, view_id: string, version: number): Ack {
  return { protocol: PROTOCOL_VERSION, type: 'ack', model_id, view_id, version };
}

export function bye(model_id: string, view_id: string): Bye {
  return { protocol: PROTOCOL_VERSION, type: 'bye', model_id, view_id };
}
