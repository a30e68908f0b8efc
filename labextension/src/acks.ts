/**
 * The acknowledgement channel: how views tell the kernel `hello`, `ack` and `bye` in a way
 * the kernel hears *while a cell runs* (the widgets' own comms are handled by the main shell,
 * only after the cell). One channel per kernel connection, shared by every view of the page.
 *
 * Routes, chosen by the kernel in each model's `ack_route` trait:
 *
 * - "comm": a comm of target ACK_TARGET that this channel opens itself. JupyterLab >= 4.4
 *   sends comm messages on a kernel subshell (JEP 91), one per comm target by default, whose
 *   thread handles them while the main shell runs a cell. The subshell is created lazily by
 *   the comm's `CommHandler` (a `create_subshell_request` on the control channel): until its
 *   reply arrives, the comm's messages leave *without* a subshell id and reach the main shell.
 *   So the comm is opened only once `CommHandler.subshellStarted` has resolved (or when we
 *   know it never will: kernel without subshells, `commsOverSubshells: disabled`); messages
 *   sent meanwhile are queued here, in order. The kernel never sends on this comm (ipykernel
 *   7.4 would then route our messages to the sender's shell).
 * - "control": a message of type CONTROL_MSG_TYPE on the control channel, whose content is
 *   the hello/ack/bye (for kernels without subshells, e.g. ipykernel 6.29).
 */

import { IWidgetManager } from '@jupyter-widgets/base';
import { CommsOverSubshells, Kernel, KernelMessage } from '@jupyterlab/services';
import { UUID } from '@lumino/coreutils';

import { ACK_TARGET, CONTROL_MSG_TYPE, FromView } from './messages';

export type AckRoute = 'comm' | 'control';

export function isAckRoute(value: unknown): value is AckRoute {
  return value === 'comm' || value === 'control';
}

function isKernelConnection(value: unknown): value is Kernel.IKernelConnection {
  if (typeof value !== 'object' || value === null) {
    return false;
  }
  const k = value as Partial<Record<keyof Kernel.IKernelConnection, unknown>>;
  return typeof k.id === 'string' && typeof k.createComm === 'function' && typeof k.sendControlMessage === 'function';
}

/**
 * The kernel connection of a widget manager. JupyterLab's managers (`WidgetManager` for a
 * notebook, `KernelWidgetManager` for a console or output view) expose it as `kernel`, which
 * the `IWidgetManager` interface does not declare: checked at run time, not cast.
 */
export function kernelOf(manager: IWidgetManager): Kernel.IKernelConnection | null {
  if (!('kernel' in manager)) {
    return null;
  }
  const kernel: unknown = manager.kernel;
  return isKernelConnection(kernel) && !kernel.isDisposed ? kernel : null;
}

/** A `CommHandler` (what `createComm` returns since @jupyterlab/services 7.4). */
interface SubshellComm extends Kernel.IComm {
  readonly subshellStarted: Promise<void>;
  readonly subshellId: string | null;
}

function hasSubshellStarted(comm: Kernel.IComm): comm is SubshellComm {
  return 'subshellStarted' in comm && comm.subshellStarted instanceof Promise;
}

/**
 * Wait until messages sent on `comm` carry its subshell id, or until we know they never
 * will. Resolves to where its messages will go, for the log.
 *
 * `CommHandler`'s constructor starts `_maybeStartSubshell()`: it awaits `kernel.info`, then
 * returns *without resolving* `subshellStarted` if the kernel does not list "kernel
 * subshells" in `supported_features`; with `commsOverSubshells` "disabled" it is never
 * started either. Otherwise it sends `create_subshell_request` (perComm), or shares one
 * per-target request per kernel id (perCommTarget, the default, reference counted in
 * `CommHandler._commTargetSubShellsId`), sets `subshellId`, then resolves `subshellStarted`.
 * It rejects if the request failed, and `subshellId` stays null: then everything goes to the
 * main shell, consistently.
 */
export async function waitForSubshell(kernel: Kernel.IKernelConnection, comm: Kernel.IComm): Promise<string> {
  await kernel.info;
  if (!kernel.supportsSubshells) {
    return 'main shell (the kernel has no subshells)';
  }
  if (comm.commsOverSubshells === CommsOverSubshells.Disabled) {
    return 'main shell (commsOverSubshells is disabled)';
  }
  if (!hasSubshellStarted(comm)) {
    return 'main shell (this JupyterLab does not send comms on subshells)';
  }
  const slow = window.setTimeout(() => {
    console.warn('ipylogfwd: still waiting for the acknowledgement comm subshell to start');
  }, 10000);
  try {
    await comm.subshellStarted;
  } finally {
    window.clearTimeout(slow);
  }
  return `subshell ${comm.subshellId ?? kernel.subshellId ?? '(none)'}`;
}

function controlMessage(kernel: Kernel.IKernelConnection, content: FromView): KernelMessage.IControlMessage {
  const msg = {
    header: {
      date: new Date().toISOString(),
      msg_id: UUID.uuid4(),
      msg_type: CONTROL_MSG_TYPE,
      session: kernel.clientId,
      username: kernel.username,
      version: '5.3'
    },
    parent_header: {},
    metadata: {},
    content,
    channel: 'control' as const,
    buffers: []
  };
  // CONTROL_MSG_TYPE is ours, not one of the ControlMessageType names the typed
  // constructors accept; the message is otherwise a well-formed control message.
  return msg as unknown as KernelMessage.IControlMessage;
}

type CommState =
  | { kind: 'none' }
  | { kind: 'opening'; comm: Kernel.IComm }
  | { kind: 'open'; comm: Kernel.IComm }
  | { kind: 'unavailable'; reason: string };

/** The channel of one kernel connection. */
export class AckChannel {
  private comm: CommState = { kind: 'none' };
  /** Messages for the comm route waiting for it to open, in order. */
  private queue: FromView[] = [];
  /** Where the comm's messages go, once known (for diagnosis: `window` has no handle). */
  route = '';

  constructor(readonly kernel: Kernel.IKernelConnection) {}

  send(msg: FromView, route: AckRoute): void {
    if (this.kernel.isDisposed) {
      return;
    }
    if (route === 'control') {
      this.sendControl(msg);
      return;
    }
    if (this.comm.kind === 'unavailable') {
      this.sendControl(msg);
      return;
    }
    if ((this.comm.kind === 'open' || this.comm.kind === 'opening') && this.comm.comm.isDisposed) {
      // Closed by the kernel (no such target yet) or disposed on a restart: open anew.
      this.comm = { kind: 'none' };
    }
    this.queue.push(msg);
    if (this.comm.kind === 'open') {
      this.flush(this.comm.comm);
    } else if (this.comm.kind === 'none') {
      void this.open();
    }
  }

  private sendControl(msg: FromView): void {
    try {
      this.kernel.sendControlMessage(controlMessage(this.kernel, msg), false, true);
    } catch (err: unknown) {
      console.error('ipylogfwd: could not send on the control channel', err);
    }
  }

  private async open(): Promise<void> {
    let comm: Kernel.IComm;
    try {
      comm = this.kernel.createComm(ACK_TARGET);
    } catch (err: unknown) {
      const reason = err instanceof Error ? err.message : String(err);
      console.warn(`ipylogfwd: cannot open an acknowledgement comm (${reason}); using the control channel`);
      this.comm = { kind: 'unavailable', reason };
      const queued = this.queue;
      this.queue = [];
      queued.forEach(m => this.sendControl(m));
      return;
    }
    this.comm = { kind: 'opening', comm };
    comm.onClose = () => {
      if (this.comm.kind !== 'none' && this.comm.kind !== 'unavailable' && this.comm.comm === comm) {
        this.comm = { kind: 'none' };
      }
    };
    try {
      this.route = await waitForSubshell(this.kernel, comm);
    } catch (err: unknown) {
      this.route = `main shell (the subshell did not start: ${String(err)})`;
      console.warn(`ipylogfwd: acknowledgements go to the ${this.route}`);
    }
    if (comm.isDisposed || this.comm.kind !== 'opening' || this.comm.comm !== comm) {
      // Disposed while waiting (kernel restart): the next send opens a new one.
      if (this.comm.kind === 'opening' && this.comm.comm === comm) {
        this.comm = { kind: 'none' };
      }
      if (this.queue.length > 0 && this.comm.kind === 'none' && !this.kernel.isDisposed) {
        void this.open();
      }
      return;
    }
    console.debug(`ipylogfwd: acknowledgement comm ${comm.commId} opens on the ${this.route}`);
    try {
      comm.open({});
    } catch (err: unknown) {
      console.error('ipylogfwd: could not open the acknowledgement comm', err);
      this.comm = { kind: 'none' };
      return;
    }
    this.comm = { kind: 'open', comm };
    this.flush(comm);
  }

  private flush(comm: Kernel.IComm): void {
    const queued = this.queue;
    this.queue = [];
    for (const msg of queued) {
      try {
        comm.send({ ...msg });
      } catch (err: unknown) {
        console.error('ipylogfwd: could not send on the acknowledgement comm', err);
      }
    }
  }
}

/** One channel per kernel id, shared by all views of the page. */
const channels = new Map<string, AckChannel>();

export function ackChannel(kernel: Kernel.IKernelConnection): AckChannel {
  const existing = channels.get(kernel.id);
  if (existing !== undefined && !existing.kernel.isDisposed) {
    return existing;
  }
  const channel = new AckChannel(kernel);
  channels.set(kernel.id, channel);
  kernel.disposed.connect(() => {
    if (channels.get(kernel.id) === channel) {
      channels.delete(kernel.id);
    }
  });
  return channel;
}
