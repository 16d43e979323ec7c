import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

/** Ask before something that cannot be undone; resolves true only on the warn button. */
export async function confirm(title: string, body: string, action: string): Promise<boolean> {
  const result = await showDialog({
    title,
    body,
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: action })]
  });
  return result.button.accept;
}

export interface IScale {
  workersMin: number;
  workersMax: number;
}

/** Two number fields for workersMin / workersMax, as a dialog body. */
class ScaleForm extends Widget implements Dialog.IBodyWidget<IScale> {
  constructor(current: IScale) {
    super({ node: document.createElement('form') });
    this.addClass('rp-ScaleForm');
    this.min = field(this.node, 'Min workers', 'workersMin', current.workersMin);
    this.max = field(this.node, 'Max workers', 'workersMax', current.workersMax);
    this.node.addEventListener('submit', event => event.preventDefault());
  }

  getValue(): IScale {
    return { workersMin: this.min.valueAsNumber, workersMax: this.max.valueAsNumber };
  }

  private readonly min: HTMLInputElement;
  private readonly max: HTMLInputElement;
}

function field(form: HTMLElement, label: string, name: string, value: number): HTMLInputElement {
  const wrapper = document.createElement('label');
  wrapper.textContent = label;
  const input = document.createElement('input');
  input.type = 'number';
  input.min = '0';
  input.step = '1';
  input.name = name;
  input.value = String(value);
  input.className = 'jp-mod-styled';
  wrapper.appendChild(input);
  form.appendChild(wrapper);
  return input;
}

/** Ask for new scaling bounds; null when cancelled. The server checks the numbers. */
export async function askScale(name: string, current: IScale): Promise<IScale | null> {
  const result = await showDialog<IScale>({
    title: `Scale ${name}`,
    body: new ScaleForm(current),
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Scale' })],
    focusNodeSelector: 'input'
  });
  return result.button.accept ? result.value : null;
}
