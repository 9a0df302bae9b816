/** Entry point: mounts the shell (app.js) into #app with the page's styles and uPlot's. */
import { render } from 'preact';
import 'uplot/dist/uPlot.min.css';
import './styles.css';
import { html } from './ui/html.js';
import { App } from './app.js';

render(html`<${App} />`, document.getElementById('app'));
