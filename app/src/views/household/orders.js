/**
 * My open orders (`energy_orders`, oldest first, re-read per finalized block) with a cancel button
 * each (`market.cancel`) while the order's gate is open; a bid's remaining escrow comes back.
 */
import { html } from '../../ui/html.js';
import { useQuery } from '../../ui/live.js';
import { energy, money, price, utc } from '../../ui/format.js';
import { gateOpen } from './data.js';

export function MyOrders({ chain, address, head, run, busy, connected }) {
  const q = useQuery(() => chain.call('energy_orders', [address]), [chain, address]);
  const coin = chain.properties.stablecoin;
  const rows = q.data || [];
  return html`<div class="card">
    <h3>My open orders</h3>
    ${q.error && html`<p class="error">${q.error}</p>`}
    ${rows.length === 0 ? html`<p class="muted">${q.loading ? 'Reading…' : 'No open orders.'}</p>` : html`<div class="table-wrap"><table>
      <thead><tr><th scope="col">Order</th><th scope="col">Side</th><th scope="col">Zone</th><th scope="col">Interval</th>
        <th scope="col">Price</th><th scope="col">Remaining</th><th scope="col">Escrow</th><th scope="col"><span class="sr">Action</span></th></tr></thead>
      <tbody>${rows.map((o) => html`<tr data-testid="order-row" data-order-id=${o.orderId}>
        <td>${o.orderId}</td><td>${o.side}</td><td>${o.zone}</td><td>${utc(o.intervalStart)}</td>
        <td>${price(o.pricePerKwh, coin)}</td><td>${energy(o.remainingWh)} of ${energy(o.quantityWh)}</td>
        <td>${money(o.escrowLocked, coin)}</td>
        <td>${gateOpen(chain, Number(o.intervalStart), head.nowS)
          ? html`<button type="button" disabled=${busy || !connected}
              onClick=${() => run(`cancel order ${o.orderId}`, 'market', 'cancel', { order_id: o.orderId })}>Cancel</button>`
          : html`<span class="muted">gate closed</span>`}</td>
      </tr>`)}</tbody></table></div>`}
  </div>`;
}
