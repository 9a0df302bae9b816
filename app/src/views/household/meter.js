/**
 * My meter's energy over the last 24 hours: import and export per interval as a bar chart
 * (`energy_meterIntervals`, over the rolling day of prices.js up to the last closed interval), and
 * self-sufficiency: the share of the energy drawn from the grid that the household's own export
 * matched over that day (export / import,
 * at most 100%), a net measure since a household meter sees only what crosses it. Re-read per
 * finalized block.
 */
import { useState } from 'preact/hooks';
import { html } from '../../ui/html.js';
import { useQuery } from '../../ui/live.js';
import { bars, Chart } from '../../ui/chart.js';
import { energy, short } from '../../ui/format.js';
import { rollingDayStart } from './prices.js';

async function readMeter(chain, meter, nowS) {
  const step = Number(chain.constant('grid', 'interval_s'));
  const day = rollingDayStart(nowS, step);
  const last = nowS - (nowS % step) - step;
  if (last < day) return { columns: [[], [], []], importWh: 0, exportWh: 0, missed: 0 };
  const rows = (await chain.call('energy_meterIntervals', [meter, day, last])) || [];
  const xs = []; const imp = []; const exp = [];
  let importWh = 0; let exportWh = 0; let missed = 0;
  for (const r of rows) {
    xs.push(Number(r.intervalStart));
    const read = r.status === 'read' && r.plausible !== false;
    imp.push(read ? Number(r.importWh) / 1000 : null);
    exp.push(read ? Number(r.exportWh) / 1000 : null);
    if (read) { importWh += Number(r.importWh); exportWh += Number(r.exportWh); }
    if (r.status === 'missed') missed += 1;
  }
  return { columns: [xs, imp, exp], importWh, exportWh, missed };
}

export function MeterChart({ chain, head, meters }) {
  const [pick, setPick] = useState(null);
  const meter = pick ?? (meters[0] && meters[0].meter) ?? null;
  const step = Number(chain.constant('grid', 'interval_s'));
  const q = useQuery(() => (meter ? readMeter(chain, meter, head.nowS) : null), [chain, meter, head.nowS - (head.nowS % step)]);
  const series = [
    { label: 'import (kWh)', stroke: '#d62728', fill: 'rgba(214,39,40,0.35)', paths: bars },
    { label: 'export (kWh)', stroke: '#2ca02c', fill: 'rgba(44,160,44,0.35)', paths: bars },
  ];
  const d = q.data;
  const ratio = d && d.importWh > 0 ? Math.min(1, d.exportWh / d.importWh) : null;
  return html`<div class="card wide">
    ${meters.length > 1 && html`<label for="meter-pick">Meter</label>
      <select id="meter-pick" value=${meter} onChange=${(e) => setPick(e.currentTarget.value)}>
        ${meters.map((m) => html`<option value=${m.meter}>${short(m.meter)} (zone ${m.zone}, ${m.kind})</option>`)}
      </select>`}
    ${!meter && html`<p class="muted">This account has no certified meter: a DSO certifies one for it.</p>`}
    ${q.error && html`<p class="error">${q.error}</p>`}
    <${Chart} testid="meter-chart" title="My meter over the last 24 hours: import and export per interval (kWh, UTC)"
      series=${series} data=${d ? d.columns : [[], [], []]} yLabel="kWh" empty="No readings in the last 24 hours."
      xRange=${[rollingDayStart(head.nowS, step), rollingDayStart(head.nowS, step) + 86400]} />
    <p data-testid="self-sufficiency">Self-sufficiency over the last 24 hours: ${d
      ? (ratio == null
        ? (d.exportWh > 0 ? `100% (exported ${energy(d.exportWh)}, imported nothing)` : 'no energy metered yet')
        : `${(ratio * 100).toFixed(1)}%: your export (${energy(d.exportWh)}) against your import (${energy(d.importWh)})`)
      : '…'}${d && d.missed ? ` · ${d.missed} interval(s) missed` : ''}</p>
  </div>`;
}
