/**
 * Standing orders: the chain posts them for every delivery interval `standing_lead_intervals` ahead
 * until cancelled. Listed from storage (`market.standing_of` under the account, `standing_orders`,
 * and from runtime version 2 `standing_windows`: data.js); set with `market.set_standing_order`, or
 * with a time-of-day window (UTC, "sell only in daylight") by `set_standing_order_window` when the
 * runtime's metadata has it; cancelled with `cancel_standing_order`. Terms are checked as an
 * order's are (checks.js) before signing.
 */
import { useState } from 'preact/hooks';
import { html } from '../../ui/html.js';
import { useQuery } from '../../ui/live.js';
import { energy, parseTimeOfDay, price, secondsOfDay, utc } from '../../ui/format.js';
import { hasStandingWindows, marketConstant, myStanding } from './data.js';
import { orderMeter, parseTerms } from './checks.js';

function windowText(w) {
  if (!w) return 'all day';
  const [start, end] = w.map(Number);
  return start === 0 && end === 86400 ? 'all day' : `${secondsOfDay(start)}–${secondsOfDay(end)} UTC`;
}

export function Standing({ chain, address, zones, meters, zone, run, busy, connected }) {
  const windows = hasStandingWindows(chain);
  const q = useQuery(() => myStanding(chain, address), [chain, address]);
  const [f, setF] = useState({ side: 'ask', price: '', quantity: '', green: false, start: '08:00', end: '18:00' });
  const [error, setError] = useState('');
  const coin = chain.properties.stablecoin;
  const set = (k) => (e) => setF({ ...f, [k]: e.currentTarget.type === 'checkbox' ? e.currentTarget.checked : e.currentTarget.value });

  async function submit(e) {
    e.preventDefault();
    setError('');
    const z = zones.find((x) => Number(x.zone) === Number(zone));
    if (!z) { setError('Choose a zone (above).'); return; }
    const terms = parseTerms(chain, f.price, f.quantity, f.side);
    if (terms.error) { setError(terms.error); return; }
    const meter = orderMeter(meters, zone, f.side);
    if (!meter) { setError(`You have no active meter in zone ${z.zone} that can ${f.side === 'bid' ? 'import' : 'export'}.`); return; }
    const rows = q.data || [];
    if (rows.length >= marketConstant(chain, 'max_standing_per_owner')) {
      setError(`You already hold ${rows.length} standing orders, the most one participant may hold: cancel one first.`);
      return;
    }
    const args = { side: f.side === 'bid' ? 0 : 1, zone: Number(zone), price_per_kwh: terms.price, quantity_wh: terms.wh,
      meter: meter.meter, green: f.side === 'bid' && f.green };
    if (windows) {
      const start = parseTimeOfDay(f.start);
      const end = parseTimeOfDay(f.end);
      if (start == null || end == null) { setError('Give the window as HH:MM to HH:MM (UTC), e.g. 08:00 to 18:00.'); return; }
      if (start === end) { setError('The window is empty: its start and end are the same time.'); return; }
      if (start >= 86400) { setError('The window must start before 24:00.'); return; }
      await run('set standing order', 'market', 'set_standing_order_window', { ...args, window_start_s: start, window_end_s: end });
    } else {
      await run('set standing order', 'market', 'set_standing_order', args);
    }
  }

  const rows = q.data || [];
  return html`<div class="card wide">
    <h3>Standing orders</h3>
    <p class="muted">Posted by the chain for every interval ${marketConstant(chain, 'standing_lead_intervals')} intervals
      ahead in zone ${zone ?? '-'}, until you cancel; a bid's escrow is locked at each post.</p>
    ${q.error && html`<p class="error">${q.error}</p>`}
    ${rows.length > 0 && html`<div class="table-wrap"><table>
      <thead><tr><th scope="col">Id</th><th scope="col">Side</th><th scope="col">Zone</th><th scope="col">Price</th>
        <th scope="col">Quantity</th><th scope="col">Window</th><th scope="col">Next</th><th scope="col"><span class="sr">Action</span></th></tr></thead>
      <tbody>${rows.map((s) => html`<tr data-testid="standing-row" data-standing-id=${s.standingId}>
        <td>${s.standingId}</td><td>${Number(s.side) === 0 ? 'bid' : 'ask'}</td><td>${s.zone}</td>
        <td>${price(s.price_per_kwh, coin)}</td><td>${energy(s.quantity_wh)}</td><td>${windowText(s.window)}</td>
        <td>${utc(s.next_interval)}</td>
        <td><button type="button" disabled=${busy || !connected} onClick=${() => run(`cancel standing order ${s.standingId}`,
          'market', 'cancel_standing_order', { standing_id: s.standingId })}>Cancel</button></td></tr>`)}</tbody>
    </table></div>`}
    <form data-testid="standing-form" onSubmit=${submit} aria-label="Set a standing order">
      <label for="standing-side">Side</label>
      <select id="standing-side" data-testid="standing-side" value=${f.side} onChange=${set('side')}>
        <option value="ask">ask: sell my surplus at no less than</option>
        <option value="bid">bid: buy at no more than (all-in)</option>
      </select>
      <label for="standing-price">Price (${coin.symbol}/kWh)</label>
      <input id="standing-price" data-testid="standing-price" inputmode="decimal" value=${f.price} onInput=${set('price')} placeholder="0.10" />
      <label for="standing-quantity">Quantity per interval (kWh)</label>
      <input id="standing-quantity" data-testid="standing-quantity" inputmode="decimal" value=${f.quantity} onInput=${set('quantity')} placeholder="0.5" />
      ${f.side === 'bid' && html`<label class="check"><input type="checkbox" checked=${f.green} onChange=${set('green')} /> green energy only</label>`}
      <fieldset disabled=${!windows}>
        <legend>Time-of-day window (UTC)</legend>
        <label for="standing-window-start">From (HH:MM)</label>
        <input id="standing-window-start" data-testid="standing-window-start" value=${f.start} onInput=${set('start')} />
        <label for="standing-window-end">To (HH:MM, before it; 24:00 for midnight)</label>
        <input id="standing-window-end" data-testid="standing-window-end" value=${f.end} onInput=${set('end')} />
        ${!windows && html`<p class="muted">Time-of-day windows need runtime version 2; this chain runs version ${chain.runtimeVersion.specVersion}, so a standing order here posts all day.</p>`}
      </fieldset>
      ${error && html`<p class="error" role="alert" data-testid="standing-error">${error}</p>`}
      <button type="submit" data-testid="standing-submit" disabled=${busy || !connected}>Sign and set the standing order</button>
    </form>
  </div>`;
}
