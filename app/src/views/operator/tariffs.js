/**
 * Grid fees by time-of-use band (as `gridchain admin dso tariffs`): the bands (the UTC time each
 * starts) and every tariff (from zone, to zone, band, fee per kWh), read at one block; the zone's
 * DSO sets one with grid.set_tariff, checked first as `admin dso set-tariff` checks it.
 */
import { useState } from 'preact/hooks';
import { html } from '../../ui/html.js';
import { price, secondsOfDay } from '../../ui/format.js';
import { useQuery } from '../../ui/live.js';
import { parsePrice } from '../../chain/units.js';
import { requireZoneDso, sameAccount, zoneOf } from './checks.js';

/** `{ bands: [[startSecond, band]], rows: [{ fromZone, toZone, band, pricePerKwh }] }` at one block. */
export async function readTariffs(chain) {
  const at = await chain.call('chain_getBlockHash', []);
  const [bands, entries] = await Promise.all([chain.storageAt(at, 'grid', 'tou_bands'), chain.entries('grid', 'tariffs', [], { at })]);
  const rows = entries.map(({ keys: [[fromZone, toZone], band], value }) => ({ fromZone, toZone, band, pricePerKwh: value }));
  rows.sort((a, b) => a.fromZone - b.fromZone || a.toZone - b.toZone || a.band - b.band);
  return { at, bands: bands || [[0, 0]], rows };
}

function SetTariff({ chain, account, zones, bands, op }) {
  const mine = zones.filter((z) => sameAccount(z.dso, account.address));
  const bandIds = [...new Set(bands.map(([, b]) => b))].sort((a, b) => a - b);
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const [band, setBand] = useState('');
  const [fee, setFee] = useState('');
  if (!mine.length) return null;
  const f = from || String(mine[0].zone);
  const t = to || f;
  const b = band || String(bandIds[0] ?? 0);
  return html`<form class="tariff-form" onSubmit=${(e) => {
    e.preventDefault();
    op.act(`tariff ${f} -> ${t} band ${b}`, async () => {
      const perKwh = parsePrice(fee);
      await requireZoneDso(chain, account.address, f);
      await zoneOf(chain, t);
      if (!bandIds.includes(Number(b))) throw new Error(`no time-of-use band ${b} on this chain (bands: ${bandIds.join(', ')})`);
      return perKwh;
    }, 'grid', 'set_tariff', (perKwh) => ({ from_zone: Number(f), to_zone: Number(t), band: Number(b), price_per_kwh: perKwh }));
  }}>
    <h4>Set a grid fee</h4>
    <label>From zone <select value=${f} onChange=${(e) => setFrom(e.currentTarget.value)}>
      ${mine.map((z) => html`<option value=${z.zone}>${z.zone} ${z.name}</option>`)}</select></label>
    <label>To zone <select value=${t} onChange=${(e) => setTo(e.currentTarget.value)}>
      ${zones.map((z) => html`<option value=${z.zone}>${z.zone} ${z.name}</option>`)}</select></label>
    <label>Band <select value=${b} onChange=${(e) => setBand(e.currentTarget.value)}>
      ${bandIds.map((x) => html`<option value=${x}>${x}</option>`)}</select></label>
    <label>Fee (GEUR/kWh) <input value=${fee} placeholder="0.05" inputmode="decimal"
      onInput=${(e) => setFee(e.currentTarget.value)} /></label>
    <button type="submit" disabled=${op.busy}>Set fee</button>
  </form>`;
}

/** The bands and the tariffs table; the form for the zones `account` is the DSO of. */
export function Tariffs({ chain, account, isDso, op }) {
  const q = useQuery(() => readTariffs(chain), [chain], { every: 5 });
  const zones = useQuery(() => chain.call('energy_zones', []), [chain], { every: 5 });
  const d = q.data;
  return html`<section class="dso-tariffs">
    <h3>Tariffs by time-of-use band</h3>
    ${q.error && html`<p role="alert">${q.error}</p>`}
    ${d && html`<p>Bands: ${d.bands.map(([s, b]) => `band ${b} from ${secondsOfDay(s)} UTC`).join(', ')}</p>`}
    ${d && (d.rows.length ? html`<div class="table-scroll" style="overflow-x:auto;max-width:100%"><table>
      <thead><tr><th>From</th><th>To</th><th>Band</th><th>Grid fee</th></tr></thead>
      <tbody>${d.rows.map((r) => html`<tr data-testid="tariff-row">
        <td>${r.fromZone}</td><td>${r.toZone}</td><td>${r.band}</td><td>${price(r.pricePerKwh)}</td></tr>`)}</tbody>
    </table></div>` : html`<p>No tariffs.</p>`)}
    ${isDso && d && zones.data && html`<${SetTariff} chain=${chain} account=${account} zones=${zones.data}
      bands=${d.bands} op=${op} />`}
  </section>`;
}
