import { ILabShell, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, InputDialog } from '@jupyterlab/apputils';

import { runpodIcon } from './icon';
import { SidebarModel } from './model';
import { PANEL_ID, RunpodPanel } from './panel';

namespace CommandIDs {
  export const open = 'runpod-jupyter:open';
  export const refresh = 'runpod-jupyter:refresh';
  export const openEndpoint = 'runpod-jupyter:open-endpoint';
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'runpod-jupyter:sidebar',
  description: 'RunPod serverless endpoints, workers, queue and jobs, live in the left sidebar.',
  autoStart: true,
  requires: [ILabShell],
  optional: [ICommandPalette],
  activate: (app: JupyterFrontEnd, shell: ILabShell, palette: ICommandPalette | null) => {
    const model = new SidebarModel();
    const panel = new RunpodPanel(model);
    shell.add(panel, 'left', { rank: 900 });

    app.commands.addCommand(CommandIDs.open, {
      label: 'Open the RunPod panel',
      icon: runpodIcon,
      execute: () => shell.activateById(PANEL_ID)
    });
    app.commands.addCommand(CommandIDs.refresh, {
      label: 'Refresh the RunPod panel',
      execute: () => model.refresh()
    });
    app.commands.addCommand(CommandIDs.openEndpoint, {
      label: 'Open RunPod endpoint…',
      execute: async args => {
        let id = typeof args.id === 'string' ? args.id : null;
        if (id === null) {
          const endpoints = model.endpoints;
          const labels = endpoints.map(e => `${e.name} (${e.backend}, ${e.id})`);
          const choice = await InputDialog.getItem({
            title: 'Open RunPod endpoint',
            items: labels
          });
          if (!choice.button.accept || choice.value === null) {
            return;
          }
          id = endpoints[labels.indexOf(choice.value)]?.id ?? null;
        }
        shell.activateById(PANEL_ID);
        model.focusEndpoint(id);
      }
    });
    if (palette) {
      const category = 'RunPod';
      for (const command of [CommandIDs.open, CommandIDs.refresh, CommandIDs.openEndpoint]) {
        palette.addItem({ command, category });
      }
    }
  }
};

export default plugin;
