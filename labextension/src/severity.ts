/**
 * What a line says about how things go: an error or a warning (Python `logging` levels,
 * tracebacks, `...Error`, `...Warning`, CRITICAL, FATAL), and the shape of a Python traceback,
 * so that the merged view highlights what matters and keeps each traceback whole.
 *
 * Pure functions of a line's text (ANSI codes already removed: the store holds styled runs,
 * `StoredLine.text` is their plain text).
 */

export const enum Severity {
  None = 0,
  Warning = 1,
  Error = 2
}

const ERROR = /\b(?:CRITICAL|FATAL|ERROR|Error|error|Exception|Traceback)\b|\w(?:Error|Exception)\b|^Killed\b/;
const WARNING = /\b(?:WARNING|WARN|Warning|warning)\b|\wWarning\b/;

export function severity(text: string): Severity {
  if (ERROR.test(text)) {
    return Severity.Error;
  }
  return WARNING.test(text) ? Severity.Warning : Severity.None;
}

/** The first line of a traceback (also of an exception group). */
const TRACEBACK_START = /^(?:Traceback \(most recent call last\):|\s*\+ Exception Group Traceback \(most recent call last\):)/;
/** The lines between the tracebacks of chained exceptions. */
const CHAINED =
  /^(?:During handling of the above exception, another exception occurred:|The above exception was the direct cause of the following exception:)$/;

export function isTracebackStart(text: string): boolean {
  return TRACEBACK_START.test(text);
}

/** Where a traceback being read is: in its frames, after its exception line, between chained tracebacks. */
export type TracebackPhase = 'frames' | 'after' | 'chain';

/**
 * What a line does to a traceback in `phase`: it belongs to it (and the phase after it), it
 * may belong to it depending on what follows (a blank line after the exception line: the
 * start of a chain, or not), or it ends it (the line is not part of it).
 */
export type TracebackStep = { part: true; phase: TracebackPhase } | { part: 'maybe' } | { part: false };

export function tracebackStep(phase: TracebackPhase, text: string): TracebackStep {
  const indented = text.length > 0 && (text[0] === ' ' || text[0] === '\t');
  switch (phase) {
    case 'frames':
      // "  File ...", its source line, "    ^^^^", exception groups' "  | ..." lines; then the
      // exception line ("ValueError: bad"), which is not indented.
      if (indented || text === '') {
        return { part: true, phase: 'frames' };
      }
      return { part: true, phase: 'after' };
    case 'after':
      if (indented) {
        return { part: true, phase: 'after' }; // a message of several lines, notes
      }
      if (text === '') {
        return { part: 'maybe' };
      }
      if (CHAINED.test(text)) {
        return { part: true, phase: 'chain' };
      }
      return isTracebackStart(text) ? { part: true, phase: 'frames' } : { part: false };
    case 'chain':
      if (text === '') {
        return { part: true, phase: 'chain' };
      }
      return isTracebackStart(text) ? { part: true, phase: 'frames' } : { part: false };
  }
}

/**
 * What tells progress bars apart: the text before the first digit or bar character, e.g.
 * "train: " of "train:  45%|████▌     | 45/100". Bars with the same label (and stream) are
 * shown together, one row per rank.
 */
export function progressLabel(text: string): string {
  const m = /[0-9%|█▏▎▍▌▋▊▉#=>[\]]/.exec(text);
  return (m === null ? text : text.slice(0, m.index)).trim();
}
