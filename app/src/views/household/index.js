/**
 * The household view for the unlocked account: balances, today's prices and the order book's depth,
 * the meter's energy and self-sufficiency, the order form and open orders, standing orders, and
 * trades with their settlement and disputes. Each part reads the chain per finalized block
 * (ui/live.js); this module reads what they share (zones, the account's meters) and holds the one
 * `tx-status` every action reports to. Without an account it shows the public market only.
 */
import { useState } from 'preact/hooks';
import { html } from '../../ui/html.js';
import { useFinalized, useQuery } from '../../ui/live.js';
import { TxStatus, useTx } from '../../ui/tx.js';
import { myMeters } from './data.js';
import { Balances } from './balances.js';
import { PriceChart } from './prices.js';
import { Depth } from './depth.js';
import { MeterChart } from './meter.js';
import { OrderForm } from './order-form.js';
import { MyOrders } from './orders.js';
import { Standing } from './standing.js';
import { Trades } from './trades.js';

export function HouseholdView({ chain, account, connected }) {
  const head = useFinalized();
  const address = account ? account.keypair.address : null;
  const [tx, run] = useTx(chain, account && account.keypair);
  const [zoneChoice, setZoneChoice] = useState(null);
  const zones = useQuery(() => chain.call('energy_zones', []), [chain]);
  const meters = useQuery(() => (address ? myMeters(chain, address) : []), [chain, address], { every: 20 });
  const zoneList = zones.data || [];
  const myZone = (meters.data || []).map((m) => m.zone)[0];
  const zone = zoneChoice ?? myZone ?? (zoneList[0] && zoneList[0].zone) ?? null;
  const shared = { chain, address, head, run, busy: !!(tx && tx.busy), connected, zones: zoneList, meters: meters.data || [] };

  if (!head) return html`<p class="muted">Waiting for the first finalized block…</p>`;
  return html`<section class="household" aria-label="Household">
    <h2>Household${account ? html` · ${account.name}` : ''}</h2>
    ${zones.error && html`<p class="error" role="alert">Cannot read the zones: ${zones.error}</p>`}
    ${account ? html`<${TxStatus} tx=${tx} />` : html`<p class="muted">Unlock an account to see your balances, energy,
      orders and trades, and to trade. The market below is public.</p>`}
    <div class="grid">
      ${account && html`<${Balances} ...${shared} />`}
      ${account && html`<${OrderForm} ...${shared} zone=${zone} onZone=${setZoneChoice} />`}
      <div class="card wide">
        <label for="view-zone">Zone shown</label>
        <select id="view-zone" value=${zone ?? ''} onChange=${(e) => setZoneChoice(Number(e.currentTarget.value))}>
          ${zoneList.map((z) => html`<option value=${z.zone}>${z.zone} · ${z.name}${z.paused ? ' (paused)' : ''}</option>`)}
        </select>
      </div>
      <${PriceChart} ...${shared} zone=${zone} />
      <${Depth} ...${shared} zone=${zone} />
      ${account && html`<${MyOrders} ...${shared} />`}
      ${account && html`<${MeterChart} ...${shared} />`}
      ${account && html`<${Standing} ...${shared} zone=${zone} />`}
      ${account && html`<${Trades} ...${shared} />`}
    </div>
  </section>`;
}
