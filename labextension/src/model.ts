/**
 * ProcModel: the frontend model of one `ipylogfwd.widgets.ProcWidget`.
 *
 * It receives the kernel's custom messages (protocol in messages.ts) and keeps the bounded
 * line store, so a view created after messages arrived (they are sent in the same cell as
 * `display()`, before any view exists) renders the whole tail. Messages are queued as they
 * arrive and applied to the store one at a time, in arrival order, in paced steps
 * (pacer.ts); attached views mirror the store in their DOM in paced steps too (view.ts),
 * and each view acks a barrier once its DOM shows everything that came before it
 * (mirror.ts). With no view attached, barriers wait
 * for the first view, which acks them once it shows the whole store.
 */

import { DOMWidgetModel, IBackboneModelOptions } from '@jupyter-widgets/base';
import type { ObjectHash } from 'backbone';

import { ackChannel, isAckRoute, kernelOf } from './acks';
import { ack, bye, FromView, hello, parseToView, PROTOCOL_VERSION, ToView } from './messages';
import { PacedTask, pagePacer } from './pacer';
import { SeqTracker } from './seq';
import { LineStore, StoredLine } from './store';
import { MODULE_NAME, MODULE_VERSION } from './version';

/** What the model needs from a view (implemented by ProcView). */
export interface StoreView {
  readonly viewId: string;
  /**
   * The store changed (lines added, evicted, or `changed` in place): mirror it in the DOM,
   * now or in later steps (see mirror.ts, pacer.ts).
   */
  storeChanged(changed: readonly StoredLine[]): void;
  /** The store was replaced (replay), or the view is new: show it afresh. */
  storeReplaced(): void;
  /**
   * Barrier `version` follows everything in the store now: acknowledge it (`acknowledge`)
   * once the DOM shows all of that.
   */
  barrier(version: number): void;
  /** A kernel message could not be used. */
  showProtocolError(text: string): void;
  /**
   * The barriers it was given and has not acked yet (optional): when it goes, they are
   * handed to the model's other views, or held for the next one.
   */
  unacked?(): number[];
}

/** Barriers remembered while no view is attached; more than this keeps the newest. */
const MAX_PENDING_BARRIERS = 100;

export class ProcModel extends DOMWidgetModel implements PacedTask {
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
  private seqs!: SeqTracker;
  /** Messages received, not applied yet (see onCustom). */
  private inbox!: ToView[];
  /** Barriers in `inbox`: while there are any, a flush waits for this model's steps. */
  private inboxBarriers!: number;
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
      host: '',
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
    this.seqs = new SeqTracker();
    this.inbox = [];
    this.inboxBarriers = 0;
    this.pendingBarriers = [];
    this.protocolErrors = [];
    const protocol: unknown = this.get('protocol');
    if (protocol !== PROTOCOL_VERSION) {
      this.reportError(`the kernel speaks protocol ${JSON.stringify(protocol)}, this view ${PROTOCOL_VERSION}`);
    }
    this.on('msg:custom', (content: unknown) => this.onCustom(content));
    this.on('change:max_lines', () => {
      this.store.setMaxLines(this.getNumber('max_lines', 2000));
      this.forEachView(v => v.storeChanged([]));
    });
  }

  /** The lines, for views. */
  get lines(): LineStore {
    return this.store;
  }

  /** The seq of the last message received (applied, or queued to be). */
  get seq(): number {
    return this.seqs.seq;
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

  /**
   * A view has rendered its DOM: it is to show the store, it says hello, and it gets the
   * barriers held for the first view (acked once it shows the store).
   */
  attach(view: StoreView): void {
    this.storeViews.add(view);
    view.storeReplaced();
    this.sendToKernel(hello(this.model_id, view.viewId, this.seqs.seq));
    if (this.pendingBarriers.length > 0) {
      const pending = this.pendingBarriers;
      this.pendingBarriers = [];
      for (const version of pending) {
        view.barrier(version);
      }
    }
  }

  /** `view` shows everything that came before barrier `version`. */
  acknowledge(view: StoreView, version: number): void {
    if (this.storeViews.has(view)) {
      this.sendToKernel(ack(this.model_id, view.viewId, version));
    }
  }

  /**
   * `view` is gone. The barriers it had not acked are handed to the other views (a panel
   * switching between its merged view and its per-proc widgets attaches the new views
   * first), or held for the next view: a flush in progress still gets its acks.
   */
  detach(view: StoreView): void {
    if (!this.storeViews.delete(view)) {
      return;
    }
    this.sendToKernel(bye(this.model_id, view.viewId));
    for (const version of view.unacked?.() ?? []) {
      if (this.storeViews.size > 0) {
        this.forEachView(v => v.barrier(version));
      } else {
        this.pendingBarriers.push(version);
      }
    }
  }

  // --- kernel messages --------------------------------------------------------------------

  /**
   * A kernel message: queued, and applied in order by `step` at the next frame. Many can
   * arrive in one task (the kernel connection hands over what piled up while it waited, e.g.
   * for a view to be created); queueing them costs next to nothing. A barrier with nothing
   * queued before it is handled at once (a flush of idle procs is acked without a frame).
   */
  private onCustom(content: unknown): void {
    const parsed = parseToView(content);
    if (!parsed.ok) {
      this.reportError(parsed.error);
      return;
    }
    const msg = parsed.msg;
    // Old messages (covered by a replay) and replays of what the store already holds (the
    // answer to a hello while more lines were on their way) are skipped: see seq.ts.
    if (this.seqs.accept(msg.type, msg.seq) !== 'apply') {
      return;
    }
    if (msg.type === 'barrier' && this.inbox.length === 0) {
      this.apply(msg);
      return;
    }
    this.inbox.push(msg);
    if (msg.type === 'barrier') {
      this.inboxBarriers++;
    }
    pagePacer().add(this);
  }

  /** Apply queued messages in order until `deadline` (at least one); true when none is left. */
  step(deadline: number): boolean {
    let applied = 0;
    while (this.inbox.length > applied && (applied === 0 || performance.now() < deadline)) {
      const msg = this.inbox[applied++];
      if (msg.type === 'barrier') {
        this.inboxBarriers--;
      }
      this.apply(msg);
    }
    this.inbox.splice(0, applied);
    return this.inbox.length === 0;
  }

  /** Messages received and not applied yet (a view merging several models waits for them). */
  get unapplied(): number {
    return this.inbox.length;
  }

  /** A barrier is queued here: the pacer gives the frame its larger budget. */
  urgent(): boolean {
    return this.inboxBarriers > 0;
  }

  close(comm_closed?: boolean): Promise<void> {
    pagePacer().remove(this);
    this.inbox = [];
    this.inboxBarriers = 0;
    return super.close(comm_closed);
  }

  private apply(msg: ToView): void {
    switch (msg.type) {
      case 'lines': {
        const delta = this.store.apply(msg.chunks, msg.dropped);
        this.forEachView(v => v.storeChanged(delta.changed));
        break;
      }
      case 'replay':
        this.store.replace(msg.chunks, msg.dropped);
        this.forEachView(v => v.storeReplaced());
        break;
      case 'barrier':
        // Everything before it is in the store: each attached view acks it once its DOM
        // shows that. Without a view, the first one to attach gets it.
        if (this.storeViews.size === 0) {
          this.pendingBarriers.push(msg.version);
          if (this.pendingBarriers.length > MAX_PENDING_BARRIERS) {
            this.pendingBarriers.shift();
          }
        } else {
          this.forEachView(v => v.barrier(msg.version));
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
