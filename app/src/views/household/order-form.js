/**
 * Place an order: side, zone, coming interval (only intervals whose gate is open by chain time are
 * offered), price in GEUR/kWh and quantity in kWh. The escrow a bid locks (quantity x limit) is
 * shown before signing; checks.js refuses bad terms, a closed gate, a paused zone, a missing meter
 * or an escrow above the free GEUR with a sentence in `order-error`, sending nothing. The order
 * goes to `market.place_bid` / `place_ask` on the account's meter in the zone (data.js). A zone that
 * trades at gate closure (`energy_zones` mode: call auction, or coupled) says so: its orders rest.
 */
import { useState } from 'preact/hooks';
import { html } from '../../ui/html.js';
import { useQuery } from '../../ui/live.js';
import { hhmm, money, utc } from '../../ui/format.js';
import { comingIntervals } from './data.js';
import { orderMeter, orderProblem, parseTerms } from './checks.js';

const OFFERED = 16;

export function OrderForm({ chain, address, head, zones, meters, zone, onZone, run, busy, connected }) {
  const [side, setSide] = useState('ask');
  const [interval, setChosen] = useState(null);
  const [priceText, setPrice] = useState('');
  const [qtyText, setQty] = useState('');
  const [green, setGreen] = useState(false);
  const [error, setError] = useState('');
  const coin = chain.properties.stablecoin;
  const free = useQuery(() => chain.storage('balances', 'asset_balance', coin.assetId, address), [chain, address]);
  const offered = comingIntervals(chain, head.nowS, OFFERED);
  const chosen = interval ?? offered[0] ?? null;
  const stale = chosen != null && !offered.includes(chosen);
  const z = zones.find((x) => Number(x.zone) === Number(zone));
  const paused = !!(z && z.paused);
  const terms = parseTerms(chain, priceText, qtyText, side);
  const meter = orderMeter(meters, zone, side);

  async function submit(e) {
    e.preventDefault();
    setError('');
    const problem = orderProblem(chain, { side, zone, interval: chosen, terms, zones, meters, free: free.data, nowS: head.nowS });
    if (problem) { setError(problem); return; }
    const args = side === 'bid'
      ? { zone: Number(zone), interval_start: chosen, price_per_kwh: terms.price, quantity_wh: terms.wh, meter: meter.meter, green_only: green }
      : { zone: Number(zone), interval_start: chosen, price_per_kwh: terms.price, quantity_wh: terms.wh, meter: meter.meter };
    const done = await run(`place ${side}`, 'market', side === 'bid' ? 'place_bid' : 'place_ask', args);
    if (done) { setPrice(''); setQty(''); }
  }

  return html`<form class="card order-form" onSubmit=${submit} aria-label="Place an order">
    <h3>Place an order</h3>
    <label for="order-side">Side</label>
    <select id="order-side" data-testid="order-side" value=${side} onChange=${(e) => setSide(e.currentTarget.value)}>
      <option value="bid">bid (buy)</option>
      <option value="ask">ask (sell)</option>
    </select>
    <label for="order-zone">Zone</label>
    <select id="order-zone" data-testid="order-zone" value=${zone ?? ''} onChange=${(e) => onZone(Number(e.currentTarget.value))}>
      ${zones.map((x) => html`<option value=${x.zone}>${x.zone} · ${x.name}${x.paused ? ' (paused)' : ''}</option>`)}
    </select>
    ${paused && html`<p class="error" role="alert" data-testid="order-zone-paused">Zone ${z.zone} (${z.name}) is paused
      by its DSO: no orders can be placed in it now.</p>`}
    ${z && z.mode && z.mode !== 'continuous' && html`<p class="muted" data-testid="order-zone-mode">${z.mode === 'coupled'
      ? `Zone ${z.zone} clears with its coupled region at each gate closure`
      : `Zone ${z.zone} trades in a call auction at each gate closure`}: an order rests until the gate of its
      interval closes (${Number(chain.constant('market', 'gate_closure_s')) / 60} minutes before it starts), then
      trades at one clearing price or not at all.</p>`}
    <label for="order-interval">Delivery interval (UTC)</label>
    <select id="order-interval" data-testid="order-interval" value=${chosen ?? ''}
        onChange=${(e) => setChosen(Number(e.currentTarget.value))}>
      ${stale && html`<option value=${chosen}>${utc(chosen)} (gate closed)</option>`}
      ${offered.map((t) => html`<option value=${t}>${hhmm(t)} – ${hhmm(t + Number(chain.constant('grid', 'interval_s')))} (${utc(t)})</option>`)}
    </select>
    <label for="order-price">${side === 'bid' ? 'Highest price, all-in with the grid fee' : 'Lowest price'} (${coin.symbol}/kWh)</label>
    <input id="order-price" data-testid="order-price" inputmode="decimal" autocomplete="off" value=${priceText}
        onInput=${(e) => setPrice(e.currentTarget.value)} placeholder="0.11" />
    <label for="order-quantity">Quantity (kWh)</label>
    <input id="order-quantity" data-testid="order-quantity" inputmode="decimal" autocomplete="off" value=${qtyText}
        onInput=${(e) => setQty(e.currentTarget.value)} placeholder="1.2" />
    ${side === 'bid' && html`<label class="check"><input type="checkbox" checked=${green}
        onChange=${(e) => setGreen(e.currentTarget.checked)} /> green energy only</label>`}
    <p data-testid="order-escrow" class="escrow">${side === 'ask'
      ? 'Escrow: none (an ask locks nothing; you are paid on delivery).'
      : terms.error ? (priceText && qtyText ? `Escrow: none yet: ${terms.error}` : 'Escrow: enter a price and a quantity.')
        : `Escrow: ${money(terms.escrow, coin)} locked until the order trades or is cancelled`
          + `${free.data != null ? ` (free: ${money(free.data, coin)})` : ''}.`}</p>
    <p class="muted">${meter ? `Meter ${meter.meter.slice(0, 10)}… in zone ${meter.zone}.` : 'No meter of yours in this zone can serve this side.'}</p>
    ${error && html`<p class="error" role="alert" data-testid="order-error">${error}</p>`}
    <button type="submit" data-testid="order-submit" disabled=${paused || busy || !connected}>Sign and place the ${side}</button>
  </form>`;
}
