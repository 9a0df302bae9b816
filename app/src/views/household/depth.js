/**
 * The order book's depth for the next intervals of the zone shown: per coming interval, the best bid
 * and ask and the Wh resting on each side, with each price level (`energy_orderBook`, re-read per
 * finalized block).
 */
import { html } from '../../ui/html.js';
import { useQuery } from '../../ui/live.js';
import { energy, hhmm, price } from '../../ui/format.js';
import { comingIntervals } from './data.js';

const SHOWN = 4;

function side(levels, money) {
  if (!levels.length) return html`<span class="muted">none</span>`;
  return html`<ul class="levels">${levels.slice(0, 5).map((l) => html`<li>${energy(l.quantityWh)} at ${price(l.pricePerKwh, money)}${' '}(${l.orders} order${l.orders === 1 ? '' : 's'})</li>`)}${levels.length > 5 ? html`<li class="muted">and ${levels.length - 5} more levels</li>` : ''}</ul>`;
}

export function Depth({ chain, head, zone }) {
  const starts = comingIntervals(chain, head.nowS, SHOWN);
  const q = useQuery(
    () => (zone == null ? [] : Promise.all(starts.map((t) => chain.call('energy_orderBook', [zone, t])))),
    [chain, zone, starts[0]],
  );
  const money = { decimals: chain.properties.stablecoin.decimals, symbol: chain.properties.stablecoin.symbol };
  const total = (levels) => levels.reduce((s, l) => s + Number(l.quantityWh), 0);
  return html`<div class="card" data-testid="depth">
    <h3>Order book, zone ${zone ?? '-'}: next intervals</h3>
    ${q.error && html`<p class="error">${q.error}</p>`}
    <div class="table-wrap"><table>
      <thead><tr><th scope="col">Interval (UTC)</th><th scope="col">Bids (buy)</th><th scope="col">Asks (sell)</th></tr></thead>
      <tbody>${(q.data || []).map((b) => html`<tr>
        <th scope="row">${hhmm(b.intervalStart)}<br /><span class="muted">${energy(total(b.bids))} / ${energy(total(b.asks))}</span></th>
        <td>${side(b.bids, money)}</td><td>${side(b.asks, money)}</td></tr>`)}</tbody>
    </table></div>
  </div>`;
}
