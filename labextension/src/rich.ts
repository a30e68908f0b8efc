/**
 * The pure part of procs' rich output: how much memory a display bundle takes, the cap on
 * one bundle (the kernel caps them already: this guards the page against a kernel that does
 * not), and the text that stands in for a bundle that is not shown.
 */

import { DisplayData } from './messages';

/** Largest bundle a view keeps, in characters of its values (the kernel's cap is 8 MiB). */
export const MAX_DISPLAY_CHARS = 16 * 1024 * 1024;

/** Bundles a line store keeps, in characters: older ones leave the store first. */
export const MAX_STORE_DISPLAY_CHARS = 32 * 1024 * 1024;

/** How many characters a bundle's data and metadata hold (strings counted as they are). */
export function displaySize(d: DisplayData): number {
  let size = 0;
  for (const value of Object.values(d.data)) {
    size += typeof value === 'string' ? value.length : JSON.stringify(value ?? null).length;
  }
  return size + JSON.stringify(d.metadata).length;
}

export function humanSize(chars: number): string {
  if (chars >= 1024 * 1024) {
    return `${(chars / (1024 * 1024)).toFixed(1)} MiB`;
  }
  if (chars >= 1024) {
    return `${(chars / 1024).toFixed(1)} KiB`;
  }
  return `${chars} characters`;
}

/** The bundle's `text/plain`, or '' if it has none. */
export function plainText(d: DisplayData): string {
  const text = d.data['text/plain'];
  return typeof text === 'string' ? text : '';
}

/** A text-only bundle saying what was left out of `d` and why, with `d`'s text. */
export function noteFor(d: DisplayData, why: string): DisplayData {
  const types = Object.keys(d.data).sort().join(', ');
  const text = plainText(d);
  const short = text.length > 200 ? `${text.slice(0, 199)}…` : text;
  return {
    kind: d.kind,
    data: { 'text/plain': `[${d.kind} output not shown (${types}): ${why}]${short ? `\n${short}` : ''}` },
    metadata: {},
    display_id: d.display_id,
    update: d.update
  };
}

/** `d` if it is within `max` characters, else a note saying it was left out. */
export function capDisplay(d: DisplayData, size: number, max: number = MAX_DISPLAY_CHARS): DisplayData {
  if (size <= max) {
    return d;
  }
  return noteFor(d, `${humanSize(size)} is over the limit of ${humanSize(max)} for one output`);
}
