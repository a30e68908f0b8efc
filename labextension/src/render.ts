/**
 * Rendering a proc's display bundle in its view, with JupyterLab's own rendermime registry
 * (handed over by the plugin, see plugin.ts).
 *
 * Every bundle is untrusted, as output a notebook did not produce itself is: the mime type is
 * chosen among the safe renderers only (`preferredMimeType(data, 'ensure')`: no JavaScript,
 * no SVG), and HTML goes through JupyterLab's sanitizer, so no script in it runs, no event
 * handler attribute stays, and no `<script>` element is created.
 */

import { MimeModel } from '@jupyterlab/rendermime';
import type { IRenderMimeRegistry } from '@jupyterlab/rendermime';

import { DisplayData } from './messages';
import { noteFor, plainText } from './rich';

let registry: IRenderMimeRegistry | null = null;

/** The plugin gives the registry here once, when it is activated. */
export function provideRenderMime(rendermime: IRenderMimeRegistry): void {
  registry = rendermime;
}

/** A new element for bundle `d`, and the promise of its rendering (never rejected). */
export function renderDisplay(d: DisplayData): { el: HTMLElement; done: Promise<void> } {
  const el = document.createElement('div');
  el.className = 'ipylogfwd-display';
  el.dataset.kind = d.kind;
  return { el, done: fillDisplay(el, d) };
}

/** Render bundle `d` into `el` (in place of what it showed). */
export function fillDisplay(el: HTMLElement, d: DisplayData): Promise<void> {
  el.replaceChildren();
  if (d.kind === 'result') {
    const label = document.createElement('div');
    label.className = 'ipylogfwd-out';
    label.textContent = 'Out:';
    el.appendChild(label);
  }
  const rm = registry;
  const mime = rm === null ? undefined : rm.preferredMimeType(d.data, 'ensure');
  if (rm === null || mime === undefined) {
    // No rendermime (not in JupyterLab), or no safe renderer for any of its types.
    const why = rm === null ? 'no renderer here' : 'none of its types can be shown safely';
    el.appendChild(textNode(plainText(noteFor(d, why))));
    el.dataset.mime = 'text/plain';
    return Promise.resolve();
  }
  el.dataset.mime = mime;
  const renderer = rm.createRenderer(mime);
  el.appendChild(renderer.node);
  const model = new MimeModel({ data: d.data, metadata: d.metadata, trusted: false });
  return renderer.renderModel(model).catch((err: unknown) => {
    el.replaceChildren(textNode(plainText(noteFor(d, `it could not be rendered: ${String(err)}`))));
  });
}

function textNode(text: string): HTMLElement {
  const pre = document.createElement('div');
  pre.className = 'ipylogfwd-display-text';
  pre.textContent = text;
  return pre;
}

/**
 * The display elements of one view: which bundle line each shows, the renderings still in
 * flight, and acknowledgements held until those finish (a barrier after a bundle is acked only
 * once the bundle is rendered, in the order the barriers came).
 */
export class DisplayElements {
  private readonly els = new Map<number, HTMLElement>();
  private readonly inFlight = new Set<Promise<void>>();
  private queued: Promise<void> | null = null;

  /** A new element for the bundle line `id`. */
  create(id: number, d: DisplayData): HTMLElement {
    const { el, done } = renderDisplay(d);
    this.els.set(id, el);
    this.track(done);
    return el;
  }

  /** Line `id`'s bundle was updated: render it again where it is, if it is shown. */
  update(id: number, d: DisplayData): void {
    const el = this.els.get(id);
    if (el !== undefined) {
      this.track(fillDisplay(el, d));
    }
  }

  /** Lines before `first` left the DOM. */
  forgetBefore(first: number): void {
    for (const id of this.els.keys()) {
      if (id < first) {
        this.els.delete(id);
      }
    }
  }

  clear(): void {
    this.els.clear();
  }

  /** Run `fn` once every rendering begun so far is done (at once if none is), in call order. */
  afterRenders(fn: () => void): void {
    if (this.inFlight.size === 0 && this.queued === null) {
      fn();
      return;
    }
    const waitFor = Promise.all([...this.inFlight]);
    const next = (this.queued ?? Promise.resolve()).then(() => waitFor).then(fn);
    this.queued = next;
    void next.then(() => {
      if (this.queued === next) {
        this.queued = null;
      }
    });
  }

  private track(done: Promise<void>): void {
    this.inFlight.add(done);
    void done.then(() => this.inFlight.delete(done));
  }
}
