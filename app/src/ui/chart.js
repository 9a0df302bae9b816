/**
 * A uPlot chart as a Preact component: `Chart({ testid, title, series, data, height })`. `series` is
 * uPlot's series list after the x axis (labels, colours, bar paths), `data` uPlot's columns
 * ([xs, ...ys], x in unix seconds), `xRange` the x axis's fixed [from, to] (today). The plot is made once per series layout, fed new data with
 * setData, and follows its box's width (a phone's single column too). Data comes from the views.
 */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import { html } from './html.js';

/** Bars for per-interval quantities (meter import and export). */
export const bars = uPlot.paths.bars ? uPlot.paths.bars({ size: [0.6, 40], gap: 1 }) : undefined;

/** Steps for per-interval prices: a price holds for its whole interval. */
export const steps = uPlot.paths.stepped ? uPlot.paths.stepped({ align: 1 }) : undefined;

/** `data` shaped to `series`: a missing column (a series added before its data came) is all gaps. */
function fit(data, series) {
  const xs = data[0] || [];
  return [xs, ...series.map((_s, i) => (data[i + 1] && data[i + 1].length === xs.length ? data[i + 1] : xs.map(() => null)))];
}

export function Chart({ testid, title, series, data: given, height = 220, yLabel, empty, xRange }) {
  const data = fit(given, series);
  const box = useRef(null);
  const plot = useRef(null);
  const layout = JSON.stringify(series.map((s) => [s.label, s.stroke]));

  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    const opts = {
      width: Math.max(el.clientWidth, 240),
      height,
      series: [{ label: 'interval (UTC)', value: (_u, v) => (v == null ? '' : new Date(v * 1000).toISOString().slice(11, 16)) }, ...series],
      axes: [
        { incrs: [900, 1800, 3600, 7200, 10800, 21600, 43200], space: 50,
          values: (_u, vals) => vals.map((v) => new Date(v * 1000).toISOString().slice(11, 16)) },
        { label: yLabel, size: 60 },
      ],
      scales: { x: { time: false, ...(xRange ? { range: () => xRange } : {}) } },
      legend: { live: true },
    };
    plot.current = new uPlot(opts, data, el);
    const ro = typeof ResizeObserver === 'function'
      ? new ResizeObserver(() => plot.current && plot.current.setSize({ width: Math.max(el.clientWidth, 240), height }))
      : null;
    if (ro) ro.observe(el);
    return () => { if (ro) ro.disconnect(); plot.current.destroy(); plot.current = null; };
  }, [layout, height, xRange && xRange[0]]);

  useEffect(() => {
    if (plot.current) plot.current.setData(data);
  }, [given, layout]);

  const hasData = data[0] && data[0].length > 0;
  return html`<figure class="chart" data-testid=${testid}>
    <figcaption>${title}</figcaption>
    <div ref=${box} class="chart-box" role="img" aria-label=${title}></div>
    ${!hasData && empty && html`<p class="muted">${empty}</p>`}
  </figure>`;
}
