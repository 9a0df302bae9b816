/** Entry point: mounts the shell (app.js) into #app with the page's styles and uPlot's. */
import { render } from 'preact';
import 'uplot/dist/uPlot.min.css';
import './styles.css';
import { html } from './ui/html.js';
import { App } from './app.js';

const root = document.getElementById('app');
root.textContent = '';
render(html`<${App} />`, root);
