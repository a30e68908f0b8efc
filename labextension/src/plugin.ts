/**
 * The JupyterLab plugin: registers the ipylogfwd widget module (ProcModel, ProcView, and the
 * panel of a cell's procs, PanelModel, PanelView) with
 * the Jupyter widget registry, and hands JupyterLab's rendermime registry to the views, which
 * render procs' display bundles with it (render.ts). Nothing else happens here.
 */

import { IJupyterWidgetRegistry } from '@jupyter-widgets/base';
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';

import { ProcModel } from './model';
import { PanelModel, PanelView } from './panel';
import { provideRenderMime } from './render';
import { MODULE_NAME, MODULE_VERSION } from './version';
import { ProcView } from './view';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'ipylogfwd:plugin',
  description: 'Widgets for ipylogfwd: one per worker process, with its stdout and stderr.',
  requires: [IJupyterWidgetRegistry, IRenderMimeRegistry],
  autoStart: true,
  activate: (_app: JupyterFrontEnd, registry: IJupyterWidgetRegistry, rendermime: IRenderMimeRegistry): void => {
    provideRenderMime(rendermime);
    registry.registerWidget({
      name: MODULE_NAME,
      version: MODULE_VERSION,
      exports: { ProcModel, ProcView, PanelModel, PanelView }
    });
  }
};

export default plugin;
