/**
 * The meter registry (as `gridchain admin dso meters`): every certified meter with its owner, zone,
 * kind, rated power and status, a suspended one saying whether its operator suspended it or it went
 * rogue; and certifying a new meter (metering.certify_meter), checked first as `admin dso
 * certify-meter` checks it.
 */
import { useState } from 'preact/hooks';
import { html } from '../../ui/html.js';
import { hex, short, utc } from '../../ui/format.js';
import { useQuery } from '../../ui/live.js';
import { requireMeterManager } from './checks.js';
import { formatPower, parsePower } from '../../chain/units.js';

/** Meter kinds and statuses as the metering pallet numbers them (wallet/dso.py). */
export const METER_KINDS = { import: 0, export: 1, bidirectional: 2 };
const KIND_NAMES = ['import', 'export', 'bidirectional'];
const STATUS_NAMES = ['active', 'suspended', 'retired'];
const SUSPENSION = ['operator', 'rogue'];

/** Every certified meter, read at one block, ordered by zone, owner and meter id. */
export async function readMeters(chain) {
  const at = await chain.call('chain_getBlockHash', []);
  const entries = await chain.entries('metering', 'meters', [], { at });
  const rows = entries.filter((e) => e.value).map(({ keys: [id], value: m }) => ({ meter: hex(id),
    owner: m.owner, zone: m.zone, kind: KIND_NAMES[m.kind] ?? String(m.kind),
    ratedPowerW: m.rated_power_w, status: STATUS_NAMES[m.status] ?? String(m.status),
    implausible: m.implausible, lastInterval: m.has_reading ? m.last_interval : null, suspendedAs: null,
  }));
  await Promise.all(rows.filter((r) => r.status === 'suspended').map(async (r) => {
    const code = await chain.storageAt(at, 'metering', 'suspension_reason', r.meter);
    r.suspendedAs = SUSPENSION[code ?? 0] ?? 'operator';
  }));
  rows.sort((a, b) => a.zone - b.zone || String(a.owner).localeCompare(String(b.owner)) || a.meter.localeCompare(b.meter));
  return rows;
}

function CertifyMeter({ chain, account, op }) {
  const [meter, setMeter] = useState('');
  const [owner, setOwner] = useState('');
  const [zone, setZone] = useState('1');
  const [kind, setKind] = useState('bidirectional');
  const [rated, setRated] = useState('');
  return html`<form class="certify-form" onSubmit=${(e) => {
    e.preventDefault();
    op.act('certify a meter', async () => {
      const id = meter.trim().toLowerCase();
      if (!/^0x[0-9a-f]{64}$/.test(id)) throw new Error('a meter id is 0x and 64 hex digits (its ed25519 public key)');
      const watts = parsePower(rated);
      const cap = Number(chain.constant('metering', 'max_rated_power_w'));
      if (!(watts > 0 && watts <= cap)) throw new Error(`a meter's rated power must be between 1 W and ${formatPower(cap)}`);
      await requireMeterManager(chain, account.address, zone);
      const lic = await chain.roles(owner.trim());
      if (!lic || lic.status !== 'active' || !(lic.roles.includes('prosumer') || lic.roles.includes('consumer'))) {
        throw new Error(`the owner ${owner.trim()} holds no active prosumer or consumer licence: a registrar licenses the household first`);
      }
      if (await chain.storage('metering', 'meters', id)) {
        throw new Error(`meter ${id} has already been certified (a meter key is never reused)`);
      }
      return { id, watts };
    }, 'metering', 'certify_meter', (c) => ({ meter: c.id, owner: owner.trim(), zone: Number(zone),
      kind: METER_KINDS[kind], rated_power_w: c.watts }));
  }}>
    <h4>Certify a meter</h4>
    <label>Meter id (public key) <input value=${meter} placeholder="0x…" onInput=${(e) => setMeter(e.currentTarget.value)} /></label>
    <label>Owner (address) <input value=${owner} onInput=${(e) => setOwner(e.currentTarget.value)} /></label>
    <label>Zone <input type="number" min="0" value=${zone} onInput=${(e) => setZone(e.currentTarget.value)} /></label>
    <label>Kind <select value=${kind} onChange=${(e) => setKind(e.currentTarget.value)}>
      ${Object.keys(METER_KINDS).map((k) => html`<option value=${k}>${k}</option>`)}</select></label>
    <label>Rated power <input value=${rated} placeholder="5kW" onInput=${(e) => setRated(e.currentTarget.value)} /></label>
    <button type="submit" disabled=${op.busy}>Certify</button>
  </form>`;
}

/** The registry table; the certify form for a DSO or registrar. */
export function Meters({ chain, account, canManage, op }) {
  const q = useQuery(() => readMeters(chain), [chain], { every: 5 });
  return html`<section class="dso-meters">
    <h3>Meter registry</h3>
    ${q.error && html`<p role="alert">${q.error}</p>`}
    ${q.data && (q.data.length ? html`<div class="table-scroll" style="overflow-x:auto;max-width:100%"><table>
      <thead><tr><th>Meter</th><th>Owner</th><th>Zone</th><th>Kind</th><th>Rated</th><th>Status</th>
        <th>Implausible</th><th>Last interval</th></tr></thead>
      <tbody>${q.data.map((r) => html`<tr data-testid="meter-row" data-meter=${r.meter}>
        <td title=${r.meter}>${short(r.meter)}</td><td title=${r.owner}>${short(r.owner)}</td><td>${r.zone}</td>
        <td>${r.kind}</td><td>${formatPower(r.ratedPowerW)}</td>
        <td>${r.status}${r.suspendedAs ? ` (${r.suspendedAs})` : ''}</td><td>${r.implausible}</td>
        <td>${r.lastInterval == null ? '-' : utc(r.lastInterval)}</td></tr>`)}</tbody>
    </table></div>` : html`<p>No meters certified.</p>`)}
    ${canManage && html`<${CertifyMeter} chain=${chain} account=${account} op=${op} />`}
  </section>`;
}
