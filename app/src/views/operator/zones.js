/**
 * The DSO's zones: capacity use per delivery interval as a heatmap (zones x the last and coming
 * intervals, from `energy_zoneUsage`, which applies the DSO's envelope), pause with a reason and
 * resume (grid.pause_zone / resume_zone), and an operating envelope for one coming interval
 * (grid.set_envelope), each checked as `gridchain admin dso` checks it before signing.
 */
import { useState } from 'preact/hooks';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { html } from '../../ui/html.js';
import { energy, hhmm, utc } from '../../ui/format.js';
import { useFinalized, useQuery } from '../../ui/live.js';
import { requireZoneDso, sameAccount } from './checks.js';
import { formatPower, parsePower } from '../../chain/units.js';

/** Intervals shown before the current one, and from it on. */
const PAST = 4;
const COMING = 12;

/** Start of the interval holding chain time `nowS`, for intervals of `intervalS` seconds. */
export function intervalStart(nowS, intervalS) {
  return Math.floor(nowS / intervalS) * intervalS;
}

/** The share of its capacity a zone used in an interval: the larger of import and export, 0..1. */
export function usage(u) {
  const share = (used, cap) => (cap > 0 ? used / cap : used > 0 ? 1 : 0);
  return Math.min(1, Math.max(share(u.importedWh, u.importCapacityWh), share(u.exportedWh, u.exportCapacityWh)));
}

function cellStyle(u) {
  if (u.paused) return 'background:#bbb;color:#222';
  const hue = Math.round(120 - 120 * usage(u));
  return `background:hsl(${hue},70%,78%);color:#111`;
}

function Cell({ u, zone, intervalS }) {
  if (!u) return html`<td class="heat-cell">…</td>`;
  const enveloped = u.importCapacityWh * 3600 < zone.importCapacityW * intervalS
    || u.exportCapacityWh * 3600 < zone.exportCapacityW * intervalS;
  const title = `${utc(u.intervalStart)}: import ${energy(u.importedWh)} of ${energy(u.importCapacityWh)}, `
    + `export ${energy(u.exportedWh)} of ${energy(u.exportCapacityWh)}${enveloped ? ' (envelope)' : ''}`
    + `${u.paused ? ', paused' : ''}`;
  return html`<td class="heat-cell" style=${cellStyle(u)} title=${title}>
    ${Math.round(usage(u) * 100)}%${enveloped ? '*' : ''}</td>`;
}

/** The pause form (reason text, whose keccak-256 goes on chain) or the resume button of a zone. */
function ZoneControls({ chain, account, zone, op }) {
  const [reason, setReason] = useState('');
  const id = `pause-reason-${zone.zone}`;
  if (zone.paused) {
    return html`<button type="button" data-testid="dso-resume" disabled=${op.busy}
      onClick=${() => op.act(`resume zone ${zone.zone}`, async () => {
        const z = await requireZoneDso(chain, account.address, zone.zone);
        if (!z.paused) throw new Error(`zone ${zone.zone} is not paused`);
      }, 'grid', 'resume_zone', { zone_id: zone.zone })}>Resume</button>`;
  }
  return html`<form class="inline-form" onSubmit=${(e) => {
    e.preventDefault();
    op.act(`pause zone ${zone.zone}`, async () => {
      if (!reason.trim()) throw new Error('give the pause\'s reason (the fault report); nothing was sent');
      const z = await requireZoneDso(chain, account.address, zone.zone);
      if (z.paused) throw new Error(`zone ${zone.zone} is already paused`);
    }, 'grid', 'pause_zone', { zone_id: zone.zone, reason_hash: keccak_256(new TextEncoder().encode(reason.trim())) });
  }}>
    <label for=${id}>Reason</label>
    <input id=${id} data-testid="dso-pause-reason" value=${reason} placeholder="transformer T1 tripped"
      onInput=${(e) => setReason(e.currentTarget.value)} />
    <button type="submit" data-testid="dso-pause" disabled=${op.busy}>Pause</button>
  </form>`;
}

/** An envelope for one coming interval of one of the DSO's zones. */
function EnvelopeForm({ chain, account, zones, starts, op }) {
  const mine = zones.filter((z) => sameAccount(z.dso, account.address));
  const [zoneId, setZoneId] = useState('');
  const [start, setStart] = useState('');
  const [imp, setImp] = useState('');
  const [exp, setExp] = useState('');
  if (!mine.length) return null;
  const zone = zoneId || String(mine[0].zone);
  const when = start || String(starts[1]);
  return html`<form class="envelope-form" onSubmit=${(e) => {
    e.preventDefault();
    op.act(`envelope for zone ${zone}`, async () => {
      const importW = parsePower(imp);
      const exportW = parsePower(exp);
      const z = await requireZoneDso(chain, account.address, zone);
      const nowS = Math.floor(Number(await chain.storage('timestamp', 'now') || 0) / 1000);
      const t = Number(when);
      if (t < nowS) throw new Error(`the interval starting ${utc(t)} has already started (chain time is ${utc(nowS)})`);
      const ahead = Number(chain.constant('grid', 'max_envelope_ahead_s'));
      if (t > nowS + ahead) throw new Error(`the interval starting ${utc(t)} is too far ahead: an envelope is set at most ${Math.floor(ahead / 86400)} days ahead`);
      if (importW > z.importCapacityW || exportW > z.exportCapacityW) {
        throw new Error(`an envelope may not exceed zone ${zone}'s capacity (import ${formatPower(z.importCapacityW)}, export ${formatPower(z.exportCapacityW)})`);
      }
      return { importW, exportW };
    }, 'grid', 'set_envelope', (c) => ({ zone_id: Number(zone), interval_start: Number(when),
      import_w: c.importW, export_w: c.exportW }));
  }}>
    <h4>Operating envelope</h4>
    <label>Zone <select value=${zone} onChange=${(e) => setZoneId(e.currentTarget.value)}>
      ${mine.map((z) => html`<option value=${z.zone}>${z.zone} ${z.name}</option>`)}</select></label>
    <label>Interval <select value=${when} onChange=${(e) => setStart(e.currentTarget.value)}>
      ${starts.slice(1).map((t) => html`<option value=${t}>${utc(t)}</option>`)}</select></label>
    <label>Import limit <input value=${imp} placeholder="150kW" onInput=${(e) => setImp(e.currentTarget.value)} /></label>
    <label>Export limit <input value=${exp} placeholder="100kW" onInput=${(e) => setExp(e.currentTarget.value)} /></label>
    <button type="submit" disabled=${op.busy}>Set envelope</button>
  </form>`;
}

/** Zones with their heatmap rows; pause/resume in the rows of the zones `account` is the DSO of. */
export function Zones({ chain, account, isDso, op }) {
  const head = useFinalized();
  const intervalS = Number(chain.constant('grid', 'interval_s') || 900);
  const now = head ? intervalStart(head.nowS, intervalS) : 0;
  const starts = Array.from({ length: PAST + COMING }, (_, i) => now + (i - PAST) * intervalS);
  const zones = useQuery(() => chain.call('energy_zones', []), [chain]);
  const grid = useQuery(async () => {
    const list = zones.data || await chain.call('energy_zones', []);
    const answers = await chain.batch(list.flatMap((z) => starts.map((t) => ['energy_zoneUsage', [z.zone, t]])));
    const failed = answers.find((a) => a instanceof Error);
    if (failed) throw failed;
    return Object.fromEntries(list.map((z, i) => [z.zone, answers.slice(i * starts.length, (i + 1) * starts.length)]));
  }, [chain, now], { every: 3 });
  const list = zones.data || [];
  return html`<section class="dso-zones">
    <h3>Zones: capacity use per interval</h3>
    ${zones.error && html`<p role="alert">${zones.error}</p>`}
    <p class="hint">Share of the zone's import or export capacity (the larger) that matched trades use;
      * marks an interval with an operating envelope. Columns are UTC interval starts; the current one is bold.</p>
    <div class="table-scroll" style="overflow-x:auto;max-width:100%"><table class="heatmap">
      <thead><tr><th>Zone</th><th>State</th>
        ${starts.map((t) => html`<th scope="col" style=${t === now ? 'font-weight:bold' : 'font-weight:normal'}>${hhmm(t)}</th>`)}
        ${isDso && html`<th>Control</th>`}</tr></thead>
      <tbody>${list.map((z) => html`<tr data-testid="dso-zone-row" data-zone=${z.zone}
          data-paused=${z.paused ? 'true' : 'false'}>
        <th scope="row" title=${`DSO ${z.dso}; import ${formatPower(z.importCapacityW)}, export ${formatPower(z.exportCapacityW)}; ${z.mode}`}>
          ${z.zone} ${z.name}</th>
        <td class="zone-state">${z.paused ? 'paused' : 'running'}</td>
        ${starts.map((t, i) => html`<${Cell} u=${grid.data?.[z.zone]?.[i]} zone=${z} intervalS=${intervalS} />`)}
        ${isDso && html`<td>${sameAccount(z.dso, account?.address)
          ? html`<${ZoneControls} chain=${chain} account=${account} zone=${z} op=${op} />`
          : html`<span class="hint">another DSO's zone</span>`}</td>`}
      </tr>`)}</tbody>
    </table></div>
    ${isDso && head && html`<${EnvelopeForm} chain=${chain} account=${account} zones=${list} starts=${starts.slice(PAST)} op=${op} />`}
  </section>`;
}
