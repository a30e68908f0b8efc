/**
 * Toolbar: a panel's controls (role "toolbar"): the view (merged or one widget per proc), a
 * search box (`input[data-ipylogfwd-search]`: a substring, or a regular expression with the
 * `.*` toggle), the stream (both, stdout, stderr), the ranks ("3,5-7"), the timestamps (off,
 * absolute, relative), and how many lines or rows match (a polite live region). Every
 * control is a native input, select or button: reachable with Tab, labelled for screen
 * readers. Esc in the search box clears it (and, when it is empty, the other filters).
 *
 * It holds no state of its own beyond its controls: it calls back with what they say.
 */

import { FilterSpec, NO_FILTER, StreamChoice } from './filter';
import { PanelMode, TimeMode } from './messages';

export interface ToolbarCallbacks {
  filter(spec: FilterSpec): void;
  time(mode: TimeMode): void;
  mode(mode: PanelMode): void;
}

/** Typing pauses this long (ms) before the filter applies (the views redraw once). */
const TYPING_MS = 120;

export class Toolbar {
  readonly el: HTMLElement;
  private readonly modeButton: HTMLButtonElement;
  private readonly search: HTMLInputElement;
  private readonly regex: HTMLButtonElement;
  private readonly stream: HTMLSelectElement;
  private readonly ranks: HTMLInputElement;
  private readonly time: HTMLSelectElement;
  private readonly matchesEl: HTMLElement;
  private readonly errorEl: HTMLElement;
  private typing = 0;
  private mode: PanelMode;

  constructor(
    procs: number,
    mode: PanelMode,
    time: TimeMode,
    private readonly on: ToolbarCallbacks
  ) {
    this.mode = mode;
    this.el = document.createElement('div');
    this.el.className = 'ipylogfwd-toolbar';
    this.el.setAttribute('role', 'toolbar');
    this.el.setAttribute('aria-label', `Output of ${procs} procs: view, search and filters`);

    this.modeButton = button('ipylogfwd-mode', '');
    this.modeButton.dataset.ipylogfwdMode = '';
    this.modeButton.addEventListener('click', () => this.on.mode(this.mode === 'merged' ? 'procs' : 'merged'));

    this.search = document.createElement('input');
    this.search.type = 'search';
    this.search.className = 'ipylogfwd-search';
    this.search.dataset.ipylogfwdSearch = '';
    this.search.placeholder = 'Search';
    this.search.setAttribute('aria-label', 'Search the output (a capital letter makes it case-sensitive)');
    this.search.addEventListener('input', () => this.changedSoon());
    this.search.addEventListener('keydown', e => this.onKey(e));

    this.regex = button('ipylogfwd-regex', '.*');
    this.regex.dataset.ipylogfwdRegex = '';
    this.regex.title = 'Search with a regular expression';
    this.regex.setAttribute('aria-label', 'Regular expression');
    this.regex.setAttribute('aria-pressed', 'false');
    this.regex.addEventListener('click', () => {
      this.regex.setAttribute('aria-pressed', String(this.regex.getAttribute('aria-pressed') !== 'true'));
      this.changed();
    });

    this.stream = select('ipylogfwd-stream', 'Stream', [
      ['both', 'stdout + stderr'],
      ['stdout', 'stdout'],
      ['stderr', 'stderr']
    ]);
    this.stream.dataset.ipylogfwdStream = '';
    this.stream.addEventListener('change', () => this.changed());

    this.ranks = document.createElement('input');
    this.ranks.type = 'text';
    this.ranks.className = 'ipylogfwd-ranks-filter';
    this.ranks.dataset.ipylogfwdRanks = '';
    this.ranks.placeholder = `ranks, e.g. 3,5-7`;
    this.ranks.setAttribute('aria-label', `Show only these ranks (of 0-${procs - 1}), e.g. 3,5-7`);
    this.ranks.addEventListener('input', () => this.changedSoon());
    this.ranks.addEventListener('keydown', e => this.onKey(e));

    this.time = select('ipylogfwd-time', 'Timestamps', [
      ['off', 'no time'],
      ['absolute', 'time of day'],
      ['relative', 'since start']
    ]);
    this.time.dataset.ipylogfwdTime = '';
    this.time.value = time;
    this.time.addEventListener('change', () => this.on.time(this.time.value as TimeMode));

    this.matchesEl = document.createElement('span');
    this.matchesEl.className = 'ipylogfwd-matches';
    this.matchesEl.dataset.ipylogfwdMatches = '';
    this.matchesEl.setAttribute('role', 'status');
    this.matchesEl.setAttribute('aria-live', 'polite');

    this.errorEl = document.createElement('span');
    this.errorEl.className = 'ipylogfwd-filter-error';
    this.errorEl.setAttribute('role', 'alert');

    this.el.append(this.modeButton, this.search, this.regex, this.stream, this.ranks, this.time, this.matchesEl, this.errorEl);
    this.setMode(mode);
  }

  remove(): void {
    window.clearTimeout(this.typing);
    this.el.remove();
  }

  /** What the filter controls say now. */
  spec(): FilterSpec {
    return {
      search: this.search.value,
      regex: this.regex.getAttribute('aria-pressed') === 'true',
      stream: this.stream.value as StreamChoice,
      ranks: this.ranks.value
    };
  }

  setMode(mode: PanelMode): void {
    this.mode = mode;
    this.modeButton.textContent = mode === 'merged' ? 'Per-proc widgets' : 'Merged view';
    this.modeButton.title =
      mode === 'merged' ? 'Show one widget per proc' : 'Show the lines of every proc together, shared lines once';
    this.modeButton.setAttribute('aria-pressed', String(mode === 'merged'));
    this.modeButton.setAttribute('aria-label', 'Merged view');
  }

  setTime(time: TimeMode): void {
    if (this.time.value !== time) {
      this.time.value = time;
    }
  }

  /** Show how many `unit`s match (while a filter is on), or nothing. */
  showMatches(active: boolean, count: number, unit: string): void {
    const text = active ? `${count.toLocaleString('en-US')} matching ${unit}${count === 1 ? '' : 's'}` : '';
    if (this.matchesEl.textContent !== text) {
      this.matchesEl.textContent = text;
    }
  }

  showError(text: string): void {
    if (this.errorEl.textContent !== text) {
      this.errorEl.textContent = text;
    }
    this.search.setAttribute('aria-invalid', String(text.startsWith('not a regular expression')));
    this.ranks.setAttribute('aria-invalid', String(text.includes('rank')));
  }

  private onKey(e: KeyboardEvent): void {
    if (e.key !== 'Escape') {
      return;
    }
    e.preventDefault();
    e.stopPropagation(); // JupyterLab would leave the cell's output for command mode
    if (this.search.value !== '') {
      this.search.value = '';
    } else {
      this.ranks.value = NO_FILTER.ranks;
      this.stream.value = NO_FILTER.stream;
      this.regex.setAttribute('aria-pressed', 'false');
    }
    this.changed();
  }

  private changedSoon(): void {
    window.clearTimeout(this.typing);
    this.typing = window.setTimeout(() => this.changed(), TYPING_MS);
  }

  private changed(): void {
    window.clearTimeout(this.typing);
    this.typing = 0;
    this.on.filter(this.spec());
  }
}

function button(className: string, text: string): HTMLButtonElement {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = className;
  b.textContent = text;
  return b;
}

function select(className: string, label: string, options: [string, string][]): HTMLSelectElement {
  const s = document.createElement('select');
  s.className = className;
  s.setAttribute('aria-label', label);
  s.title = label;
  for (const [value, text] of options) {
    const o = document.createElement('option');
    o.value = value;
    o.textContent = text;
    s.appendChild(o);
  }
  return s;
}
