/**
 * GroupHeader: a panel's header for the whole group, from its procs' models (their synced
 * header traits, which the kernel refreshes about once a second): counts by state ("14 idle ·
 * 1 running · 1 exited 3"), lines per stream in all, the rank heard from longest ago, and, for
 * 32 procs or more, a mini-grid of the ranks coloured by state, each a link to its widget.
 *
 * Redrawn at most every 100 ms when traits change, and every second for "heard ... ago".
 */

import { ProcModel } from './model';
import { stateCounts, stateLabel } from './states';
import { sinceText } from './view';

/** From this many procs on, the header shows a grid of the ranks. */
export const GRID_AT = 32;

const TRAITS = 'change:state change:exit_text change:stdout_lines change:stderr_lines change:last_heard';

export class GroupHeader {
  readonly el: HTMLElement;
  private readonly countsEl: HTMLElement;
  private readonly streamsEl: HTMLElement;
  private readonly silentEl: HTMLElement;
  private readonly cells = new Map<number, HTMLElement>();
  private readonly interval: number;
  private pending = 0;
  private readonly onChange = (): void => {
    if (this.pending === 0) {
      this.pending = window.setTimeout(() => {
        this.pending = 0;
        this.update();
      }, 100);
    }
  };

  constructor(
    private readonly models: readonly ProcModel[],
    open: (rank: number) => void
  ) {
    this.el = document.createElement('div');
    this.el.className = 'ipylogfwd-group';
    this.el.setAttribute('role', 'group');
    this.el.setAttribute('aria-label', `${models.length} procs`);
    this.countsEl = part('ipylogfwd-gcounts');
    this.streamsEl = part('ipylogfwd-gstreams');
    this.silentEl = part('ipylogfwd-gsilent');
    const line = document.createElement('div');
    line.className = 'ipylogfwd-gline';
    const procs = part('ipylogfwd-gprocs');
    procs.textContent = `${models.length} procs`;
    line.append(procs, this.countsEl, this.streamsEl, this.silentEl);
    this.el.appendChild(line);
    if (models.length >= GRID_AT) {
      const grid = document.createElement('div');
      grid.className = 'ipylogfwd-grid';
      grid.setAttribute('role', 'group');
      grid.setAttribute('aria-label', 'Ranks by state: open a rank’s widget');
      for (const m of models) {
        const rank = m.getNumber('rank', 0);
        const cell = document.createElement('button');
        cell.type = 'button';
        cell.className = 'ipylogfwd-cell';
        cell.dataset.rank = String(rank);
        cell.dataset.openRank = String(rank);
        this.cells.set(rank, cell);
        grid.appendChild(cell);
      }
      grid.addEventListener('click', e => {
        const cell = e.target instanceof Element ? e.target.closest<HTMLElement>('[data-open-rank]') : null;
        if (cell !== null) {
          open(Number(cell.dataset.openRank));
        }
      });
      this.el.appendChild(grid);
    }
    for (const m of models) {
      m.on(TRAITS, this.onChange, this);
    }
    this.interval = window.setInterval(() => this.update(), 1000);
    this.update();
  }

  remove(): void {
    for (const m of this.models) {
      m.off(TRAITS, this.onChange, this);
    }
    window.clearInterval(this.interval);
    window.clearTimeout(this.pending);
    this.el.remove();
  }

  update(): void {
    const labels: string[] = [];
    let out = 0;
    let err = 0;
    let silent: { rank: number; heard: number } | null = null;
    const now = Date.now() / 1000;
    for (const m of this.models) {
      const state = m.getString('state', 'starting');
      const exitText = m.getString('exit_text', '');
      const label = stateLabel(state, exitText);
      labels.push(label);
      out += m.getNumber('stdout_lines', 0);
      err += m.getNumber('stderr_lines', 0);
      const heard = m.getNumber('last_heard', 0);
      const rank = m.getNumber('rank', 0);
      const alive = state !== 'exited' && state !== 'killed';
      if (alive && heard > 0 && (silent === null || heard < silent.heard)) {
        silent = { rank, heard };
      }
      const cell = this.cells.get(rank);
      if (cell !== undefined) {
        if (cell.dataset.state !== state) {
          cell.dataset.state = state;
        }
        const title = `rank ${rank}: ${label}, ${sinceText(heard, now)}`;
        if (cell.title !== title) {
          cell.title = title;
          cell.setAttribute('aria-label', title);
        }
      }
    }
    setText(this.countsEl, stateCounts(labels));
    setText(this.streamsEl, `out ${out.toLocaleString('en-US')} · err ${err.toLocaleString('en-US')}`);
    this.streamsEl.title = `${out} stdout lines, ${err} stderr lines in all`;
    setText(
      this.silentEl,
      silent === null ? '' : `longest silent: rank ${silent.rank}, ${sinceText(silent.heard, now).replace(/^heard /, '')}`
    );
    this.silentEl.dataset.rank = silent === null ? '' : String(silent.rank);
  }
}

function part(className: string): HTMLElement {
  const el = document.createElement('span');
  el.className = className;
  return el;
}

function setText(el: HTMLElement, text: string): void {
  if (el.textContent !== text) {
    el.textContent = text;
  }
}
