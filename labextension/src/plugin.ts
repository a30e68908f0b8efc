/**
 * The JupyterLab plugin: registers the ipylogfwd widget module (ProcModel, ProcView) with
 * the Jupyter widget registry. Nothing else happens here.
 */

import { IJupyterWidgetRegistry } from '@jupyter-widgets/base';
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';

import { ProcModel } from './model';
import { MODULE_NAME, MODULE_VERSION } from './version';
import { ProcView } from './view';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'ipylogfwd:plugin',
  description: 'Widgets for ipylogfwd: one per worker process, with its stdout and stderr.',
  requires: [IJupyterWidgetRegistry],
  autoStart: true,
  activate: (_app: JupyterFrontEnd, registry: IJupyterWidgetRegistry): void => {
    registry.registerWidget({
      name: MODULE_NAME,
      version: MODULE_VERSION,
      exports: { ProcModel, ProcView }
    });
  }
};

export default plugin;
