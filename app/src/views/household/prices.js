/**
 * Interval prices per zone over the last 24 hours of the chain's clock (a rolling day, so the page
 * still shows a day of trading just after midnight, or after the demo's simulated day): the volume-weighted energy price
 * of the trades delivered in each interval, by the seller's zone (`energy_intervalTrades`, every
 * page), beside the zone's local grid fee of each interval's time-of-use band (`grid.tariffs`,
 * `grid.tou_bands`) and the retail reference (data.js). A uPlot chart, re-read every 5th finalized
 * block.
 */
import { html } from '../../ui/html.js';
import { useQuery } from '../../ui/live.js';
import { Chart, steps } from '../../ui/chart.js';
import { allPages, localFees, RETAIL_REFERENCE_PER_KWH } from './data.js';

const COLOURS = ['#1f77b4', '#2ca02c', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];

/** The first interval start of the rolling day that ends with the current interval. */
export function rollingDayStart(nowS, step) {
  return nowS - (nowS % step) + step - 86400;
}

/** The rolling day's interval starts, per-zone average prices and the fee line, as uPlot columns. */
async function readPrices(chain, zones, zone, nowS) {
  const step = Number(chain.constant('grid', 'interval_s'));
  const day = rollingDayStart(nowS, step);
  const starts = Array.from({ length: 86400 / step }, (_v, i) => day + i * step);
  const trades = await allPages(chain, 'energy_intervalTrades', { fromInterval: day, toInterval: day + 86400 - step });
  const unit = 10 ** chain.properties.stablecoin.decimals;
  const index = new Map(starts.map((t, i) => [t, i]));
  const sums = new Map(zones.map((z) => [z.zone, starts.map(() => [0, 0])]));
  for (const t of trades) {
    const i = index.get(Number(t.intervalStart));
    const row = sums.get(t.fromZone);
    if (i === undefined || !row) continue;
    row[i][0] += Number(t.wh) * Number(t.pricePerKwh);
    row[i][1] += Number(t.wh);
  }
  const fees = zone == null ? starts.map(() => null) : await localFees(chain, zone, starts);
  const columns = [starts];
  for (const z of zones) columns.push(sums.get(z.zone).map(([pw, w]) => (w ? pw / w / unit : null)));
  columns.push(fees.map((f) => (f == null ? null : Number(f) / unit)));
  columns.push(starts.map(() => RETAIL_REFERENCE_PER_KWH / unit));
  return { columns, count: trades.length };
}

export function PriceChart({ chain, head, zones, zone }) {
  const day = rollingDayStart(head.nowS, Number(chain.constant('grid', 'interval_s')));
  const q = useQuery(() => readPrices(chain, zones, zone, head.nowS), [chain, zones.length, zone, day], { every: 5 });
  const symbol = chain.properties.stablecoin.symbol;
  const series = [
    ...zones.map((z, i) => ({ label: `zone ${z.zone} ${z.name}`, stroke: COLOURS[i % COLOURS.length], width: 2, paths: steps, spanGaps: false })),
    { label: `grid fee (zone ${zone ?? '-'})`, stroke: '#ff7f0e', dash: [6, 4], paths: steps },
    { label: 'retail reference', stroke: '#d62728', dash: [2, 4] },
  ];
  const data = q.data ? q.data.columns : [[], ...series.map(() => [])];
  return html`<div class="card wide">
    ${q.error && html`<p class="error">Cannot read the prices: ${q.error}</p>`}
    <${Chart} testid="price-chart" title=${`Prices over the last 24 hours (${symbol}/kWh, UTC): energy price per zone, grid fee, retail reference`}
      series=${series} data=${data} yLabel=${`${symbol}/kWh`} xRange=${[day, day + 86400]} />
    <p class="muted">${q.data ? `${q.data.count} trades delivered in the last 24 hours. ` : 'Reading… '}The retail reference (${RETAIL_REFERENCE_PER_KWH / 10 ** chain.properties.stablecoin.decimals} ${symbol}/kWh) is
      for comparison only: the chain knows no retail prices.</p>
  </div>`;
}
