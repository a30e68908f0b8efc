/**
 * PanelModel / PanelView: the panel of one `%%procs` cell (`ipylogfwd.widgets.ProcsPanel`):
 * a header for the whole group (header.ts), a toolbar (toolbar.ts), and either the merged
 * view (merged.ts) or one widget per proc (view.ts), with a toggle between them. The model's
 * `children` are the procs' models; `mode` ("merged" from 8 procs on, else "procs") and
 * `timestamps` are synced, so the page shows again what the user chose last.
 *
 * In the merged view, opening a rank (a click on a rank, or on its cell in the grid) shows
 * that proc's widget in a strip above the rows ("pinned"), closed with its × button; with
 * one widget per proc, it scrolls that widget into view. Either way the widgets stay one
 * click away.
 *
 * Switching views creates the new views first, then removes the old ones: each proc's
 * model hands the barriers an old view had not acked to the new one (model.ts `detach`), so a
 * `%logflush` running meanwhile still completes ("rendered": the view now on screen shows
 * everything before it).
 */

import { DOMWidgetModel, DOMWidgetView, ISerializers, unpack_models } from '@jupyter-widgets/base';
import type { ObjectHash } from 'backbone';

import { Decor } from './decor';
import { Filter, FilterSpec } from './filter';
import { GroupHeader } from './header';
import { MergedView } from './merged';
import { PANEL_MODES, PanelMode, PROTOCOL_VERSION, TIME_MODES, TimeMode } from './messages';
import { ProcModel } from './model';
import { MODULE_NAME, MODULE_VERSION } from './version';
import { ProcView } from './view';
import { Toolbar } from './toolbar';

export class PanelModel extends DOMWidgetModel {
  static model_name = 'PanelModel';
  static model_module = MODULE_NAME;
  static model_module_version = MODULE_VERSION;
  static view_name = 'PanelView';
  static view_module = MODULE_NAME;
  static view_module_version = MODULE_VERSION;

  static serializers: ISerializers = {
    ...DOMWidgetModel.serializers,
    children: { deserialize: unpack_models }
  };

  defaults(): ObjectHash {
    return {
      ...super.defaults(),
      _model_name: PanelModel.model_name,
      _model_module: PanelModel.model_module,
      _model_module_version: PanelModel.model_module_version,
      _view_name: PanelModel.view_name,
      _view_module: PanelModel.view_module,
      _view_module_version: PanelModel.view_module_version,
      protocol: PROTOCOL_VERSION,
      children: [],
      started: 0,
      mode: 'procs',
      timestamps: 'off'
    };
  }

  /** The procs' models, in rank order. */
  get procs(): ProcModel[] {
    const children: unknown = this.get('children');
    const models = Array.isArray(children) ? children.filter((c): c is ProcModel => c instanceof ProcModel) : [];
    return models.sort((a, b) => a.getNumber('rank', 0) - b.getNumber('rank', 0));
  }

  get mode(): PanelMode {
    const mode: unknown = this.get('mode');
    return (PANEL_MODES as readonly unknown[]).includes(mode) ? (mode as PanelMode) : 'procs';
  }

  /** When the cell started (seconds since the epoch). */
  get started(): number {
    const started: unknown = this.get('started');
    return typeof started === 'number' && Number.isFinite(started) ? started : 0;
  }

  get timestamps(): TimeMode {
    const time: unknown = this.get('timestamps');
    return (TIME_MODES as readonly unknown[]).includes(time) ? (time as TimeMode) : 'off';
  }
}

export class PanelView extends DOMWidgetView {
  declare model: PanelModel;

  // Built in render().
  private decor!: Decor;
  private header!: GroupHeader;
  private toolbar!: Toolbar;
  private pinnedEl!: HTMLElement;
  private mergedHost!: HTMLElement;
  private procsEl!: HTMLElement;
  private merged!: MergedView | null;
  /** The per-proc widgets shown (one per proc in "procs" mode). */
  private views!: Map<number, ProcView>;
  /** Widgets opened from the merged view, by rank. */
  private pinned!: Map<number, { wrap: HTMLElement; view: ProcView }>;
  /** Bumped by each switch of view: what an older switch creates late is dropped. */
  private generation!: number;
  private countTimer!: number;
  private removed!: boolean;

  render(): void {
    const procs = this.model.procs;
    this.views = new Map();
    this.pinned = new Map();
    this.merged = null;
    this.generation = 0;
    this.countTimer = 0;
    this.removed = false;
    this.el.classList.add('ipylogfwd-panel');
    this.el.dataset.procs = String(procs.length);
    this.decor = new Decor(procs.length, this.model.started, this.model.timestamps);
    this.decor.onCounts(() => this.countsSoon());
    this.header = new GroupHeader(procs, rank => this.openRank(rank));
    this.toolbar = new Toolbar(procs.length, this.model.mode, this.model.timestamps, {
      filter: spec => this.setFilter(spec),
      time: mode => {
        this.model.set('timestamps', mode);
        this.model.save_changes();
      },
      mode: mode => {
        this.model.set('mode', mode);
        this.model.save_changes();
      }
    });
    this.pinnedEl = document.createElement('div');
    this.pinnedEl.className = 'ipylogfwd-pinned';
    this.mergedHost = document.createElement('div');
    this.mergedHost.className = 'ipylogfwd-merged-host';
    this.procsEl = document.createElement('div');
    this.procsEl.className = 'ipylogfwd-procs';
    this.procsEl.classList.toggle('ipylogfwd-panel-many', procs.length > 8);
    this.el.replaceChildren(this.header.el, this.toolbar.el, this.pinnedEl, this.mergedHost, this.procsEl);
    this.listenTo(this.model, 'change:mode', () => this.showMode());
    this.listenTo(this.model, 'change:timestamps', () => {
      this.toolbar.setTime(this.model.timestamps);
      this.decor.set(this.decor.filter, this.model.timestamps);
    });
    this.showMode();
  }

  remove(): void {
    this.removed = true;
    this.generation++;
    this.merged?.remove();
    this.merged = null;
    for (const view of this.views.values()) {
      view.remove();
    }
    this.views.clear();
    for (const { view } of this.pinned.values()) {
      view.remove();
    }
    this.pinned.clear();
    this.header.remove();
    this.toolbar.remove();
    window.clearTimeout(this.countTimer);
    super.remove();
  }

  // --- the two views ------------------------------------------------------------------------------

  private showMode(): void {
    const mode = this.model.mode;
    const generation = ++this.generation;
    this.el.dataset.mode = mode;
    this.toolbar.setMode(mode);
    this.countsSoon();
    if (mode === 'merged') {
      if (this.merged === null) {
        this.merged = new MergedView(this.model.procs, this.decor, rank => this.openRank(rank));
        this.mergedHost.appendChild(this.merged.el);
        this.merged.attach();
      }
      this.mergedHost.hidden = false;
      this.procsEl.hidden = true;
      for (const view of this.views.values()) {
        view.remove(); // after the merged view attached: it takes their barriers
      }
      this.views.clear();
      return;
    }
    this.procsEl.hidden = false;
    void Promise.all(this.model.procs.map(m => this.procView(m, true))).then(views => {
      if (generation !== this.generation || this.removed) {
        views.forEach(v => v.remove());
        return;
      }
      for (const view of views) {
        this.views.set(view.model.getNumber('rank', 0), view);
        this.procsEl.appendChild(view.el);
      }
      this.applyRanks();
      this.merged?.remove();
      this.merged = null;
      this.mergedHost.hidden = true;
      for (const { view, wrap } of this.pinned.values()) {
        view.remove();
        wrap.remove();
      }
      this.pinned.clear();
    });
  }

  /** A widget of `model`, following the toolbar; `counted`: its matches are in the toolbar's count. */
  private async procView(model: ProcModel, counted: boolean): Promise<ProcView> {
    const view = await this.create_child_view<ProcView>(model);
    view.setDecor(this.decor, counted);
    return view;
  }

  /** A rank's widget, where the user can see it: pinned above the merged rows, or scrolled to. */
  openRank(rank: number): void {
    if (this.model.mode === 'procs') {
      const view = this.views.get(rank);
      if (view !== undefined) {
        view.el.hidden = false;
        flash(view.el);
      }
      return;
    }
    const pinned = this.pinned.get(rank);
    if (pinned !== undefined) {
      flash(pinned.wrap);
      return;
    }
    const model = this.model.procs.find(m => m.getNumber('rank', 0) === rank);
    if (model === undefined) {
      return;
    }
    const generation = this.generation;
    void this.procView(model, false).then(view => {
      if (generation !== this.generation || this.removed || this.pinned.has(rank)) {
        view.remove();
        return;
      }
      const wrap = document.createElement('div');
      wrap.className = 'ipylogfwd-pin';
      wrap.dataset.rank = String(rank);
      const close = document.createElement('button');
      close.type = 'button';
      close.className = 'ipylogfwd-unpin';
      close.textContent = '×';
      close.title = `Close rank ${rank}'s widget`;
      close.setAttribute('aria-label', `Close rank ${rank}'s widget`);
      close.addEventListener('click', () => {
        this.pinned.delete(rank);
        view.remove();
        wrap.remove();
      });
      wrap.append(close, view.el);
      const after = [...this.pinned.keys()].filter(r => r > rank).sort((a, b) => a - b)[0];
      this.pinnedEl.insertBefore(wrap, after === undefined ? null : (this.pinned.get(after)?.wrap ?? null));
      this.pinned.set(rank, { wrap, view });
      flash(wrap);
    });
  }

  // --- filters, timestamps, counts -----------------------------------------------------------------

  private setFilter(spec: FilterSpec): void {
    const filter = new Filter(spec, this.model.procs.length);
    this.toolbar.showError(filter.error);
    this.decor.set(filter, this.decor.time);
    this.applyRanks();
    this.countsSoon();
  }

  /** With one widget per proc, the rank filter hides the other procs' widgets. */
  private applyRanks(): void {
    const f = this.decor.filter;
    for (const [rank, view] of this.views) {
      const hide = !f.matchesRanks(rank);
      if (view.el.hidden !== hide) {
        view.el.hidden = hide;
      }
    }
  }

  private countsSoon(): void {
    if (this.countTimer === 0) {
      this.countTimer = window.setTimeout(() => {
        this.countTimer = 0;
        const merged = this.model.mode === 'merged';
        this.toolbar.showMatches(this.decor.filter.active, this.decor.matches, merged ? 'row' : 'line');
      }, 100);
    }
  }
}

/** Bring `el` into view and mark it for a moment. */
function flash(el: HTMLElement): void {
  el.scrollIntoView({ block: 'nearest' });
  el.classList.remove('ipylogfwd-flash');
  void el.offsetWidth; // restart the animation
  el.classList.add('ipylogfwd-flash');
  const body = el.querySelector<HTMLElement>('.ipylogfwd-body');
  body?.focus({ preventScroll: true });
}
