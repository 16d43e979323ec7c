import { LabIcon } from '@jupyterlab/ui-components';

/** A pod with a lightning bolt: "serverless GPU". `jp-icon3` follows the theme. */
const svgstr = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M12 1.5 21.1 6.75v10.5L12 22.5 2.9 17.25V6.75L12 1.5Zm0 2.3L4.9 7.9v8.2L12 20.2l7.1-4.1V7.9L12 3.8Z"/>
    <path d="M13.2 5.8 8.2 13h3.3l-1 5.2 5.3-7.4h-3.4l0.8-5Z"/>
  </g>
</svg>`;

export const runpodIcon = new LabIcon({
  name: 'runpod-jupyter:runpod',
  svgstr
});
