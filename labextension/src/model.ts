/**
 * ProcModel: the frontend model of one `ipylogfwd.widgets.ProcWidget`.
 *
 * It receives the kernel's custom messages (protocol in messages.ts) and keeps the bounded
 * line store, so a view created after messages arrived (they are sent in the same cell as
 * `display()`, before any view exists) renders the whole tail. Messages are applied
 * synchronously, one at a time, in arrival order; every attached view mirrors each change
 * in its DOM in the same call, so when a `barrier` is handled every attached view has all
 * that came before it in its DOM, and the model acks at once, per view. With no view
 * attached, barriers wait for the first view, which renders the whole store before it acks.
 */

import { DOMWidgetModel, IBackboneModelOptions } from '@jupyter-widgets/base';
import type { ObjectHash } from 'backbone';

import { ackChannel, isAckRoute, kernelOf } from './acks';
import { ack, bye, FromView, hello, parseToView, PROTOCOL_VERSION, ToView } from './messages';
import { Delta, LineStore } from './store';
import { MODULE_NAME, MODULE_VERSION } from './version';

/** What the model needs from a view (implemented by ProcView). */
export interface StoreView {
  readonly viewId: string;
  /** Mirror one change of the store in the DOM, synchronously. */
  applyDelta(delta: Delta): void;
  /** Re-render everything from the store (first render, replay, new bound). */
  renderAll(): void;
  /** A kernel message could not be used. */
  showProtocolError(text: string): void;
}

/** Barriers remembered while no view is attached; more than this keeps the newest. */
const MAX_PENDING_BARRIERS = 100;

export class ProcModel extends DOMWidgetModel {
  static model_name = 'ProcModel';
  static model_module = MODULE_NAME;
  static model_module_version = MODULE_VERSION;
  static view_name = 'ProcView';
  static view_module = MODULE_NAME;
  static view_module_version = MODULE_VERSION;

  // Set in initialize(), which Backbone's constructor calls: no field initializers here
  // (they would run after it and overwrite).
  private store!: LineStore;
  private storeViews!: Set<StoreView>;
  private lastSeq!: number;
  private pendingBarriers!: number[];
  private protocolErrors!: string[];

  defaults(): ObjectHash {
    return {
      ...super.defaults(),
      _model_name: ProcModel.model_name,
      _model_module: ProcModel.model_module,
      _model_module_version: ProcModel.model_module_version,
      _view_name: ProcModel.view_name,
      _view_module: ProcModel.view_module,
      _view_module_version: ProcModel.view_module_version,
      protocol: PROTOCOL_VERSION,
      rank: 0,
      pid: 0,
      state: 'starting',
      exit_text: '',
      stdout_lines: 0,
      stderr_lines: 0,
      last_heard: 0.0,
      log_paths: [],
      max_lines: 2000,
      collapsed: false,
      ack_route: 'comm'
    };
  }

  initialize(attributes: ObjectHash, options: IBackboneModelOptions): void {
    super.initialize(attributes, options);
    this.store = new LineStore(this.getNumber('max_lines', 2000));
    this.storeViews = new Set();
    this.lastSeq = 0;
    this.pendingBarriers = [];
    this.protocolErrors = [];
    const protocol: unknown = this.get('protocol');
    if (protocol !== PROTOCOL_VERSION) {
      this.reportError(`the kernel speaks protocol ${JSON.stringify(protocol)}, this view ${PROTOCOL_VERSION}`);
    }
    this.on('msg:custom', (content: unknown) => this.onCustom(content));
    this.on('change:max_lines', () => {
      this.store.setMaxLines(this.getNumber('max_lines', 2000));
      this.forEachView(v => v.renderAll());
    });
  }

  /** The lines, for views. */
  get lines(): LineStore {
    return this.store;
  }

  /** The seq of the last message applied. */
  get seq(): number {
    return this.lastSeq;
  }

  /** Problems with kernel messages so far (kept for views created later). */
  get errors(): readonly string[] {
    return this.protocolErrors;
  }

  getNumber(name: string, fallback: number): number {
    const value: unknown = this.get(name);
    return typeof value === 'number' && Number.isFinite(value) ? value : fallback;
  }

  getString(name: string, fallback: string): string {
    const value: unknown = this.get(name);
    return typeof value === 'string' ? value : fallback;
  }

  getStrings(name: string): string[] {
    const value: unknown = this.get(name);
    return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
  }

  // --- views ------------------------------------------------------------------------------

  /** A view has rendered its DOM: mirror the store into it, say hello, ack held barriers. */
  attach(view: StoreView): void {
    this.storeViews.add(view);
    view.renderAll();
    this.sendToKernel(hello(this.model_id, view.viewId, this.lastSeq));
    if (this.pendingBarriers.length > 0) {
      const pending = this.pendingBarriers;
      this.pendingBarriers = [];
      for (const version of pending) {
        this.sendToKernel(ack(this.model_id, view.viewId, version));
      }
    }
  }

  detach(view: StoreView): void {
    if (this.storeViews.delete(view)) {
      this.sendToKernel(bye(this.model_id, view.viewId));
    }
  }

  // --- kernel messages --------------------------------------------------------------------

  private onCustom(content: unknown): void {
    const parsed = parseToView(content);
    if (!parsed.ok) {
      this.reportError(parsed.error);
      return;
    }
    this.apply(parsed.msg);
  }

  private apply(msg: ToView): void {
    if (msg.type !== 'replay' && msg.seq <= this.lastSeq) {
      return; // already covered (by a replay)
    }
    this.lastSeq = msg.seq;
    switch (msg.type) {
      case 'lines': {
        const delta = this.store.apply(msg.chunks, msg.dropped);
        this.forEachView(v => v.applyDelta(delta));
        break;
      }
      case 'replay':
        this.store.replace(msg.chunks, msg.dropped);
        this.forEachView(v => v.renderAll());
        break;
      case 'barrier':
        // Everything before it is applied, and every attached view mirrored it in its DOM
        // in the same call: ack now. Without a view, the first one to attach acks it.
        if (this.storeViews.size === 0) {
          this.pendingBarriers.push(msg.version);
          if (this.pendingBarriers.length > MAX_PENDING_BARRIERS) {
            this.pendingBarriers.shift();
          }
        } else {
          for (const view of this.storeViews) {
            this.sendToKernel(ack(this.model_id, view.viewId, msg.version));
          }
        }
        break;
    }
  }

  private forEachView(fn: (view: StoreView) => void): void {
    for (const view of this.storeViews) {
      try {
        fn(view);
      } catch (err: unknown) {
        console.error('ipylogfwd: a view failed to render', err);
      }
    }
  }

  private reportError(error: string): void {
    const text = `ipylogfwd: ignored a kernel message for proc ${this.getNumber('rank', 0)}: ${error}`;
    console.error(text);
    this.protocolErrors.push(text);
    if (this.protocolErrors.length > 20) {
      this.protocolErrors.shift();
    }
    this.forEachView(v => v.showProtocolError(text));
  }

  private sendToKernel(msg: FromView): void {
    const kernel = kernelOf(this.widget_manager);
    if (kernel === null) {
      console.warn(`ipylogfwd: no kernel to send ${msg.type} to`);
      return;
    }
    const route: unknown = this.get('ack_route');
    ackChannel(kernel).send(msg, isAckRoute(route) ? route : 'comm');
  }
}
