/**
 * Alerts a DSO must look at (as `gridchain admin dso alerts`), from the metering pallet's events in
 * finalized blocks: a rogue meter (suspended automatically after repeated implausible readings), an
 * implausible reading (never settled on), intervals a meter's readings skipped. The page reads the
 * recent blocks once, then each newly finalized block as it comes, so none is skipped.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { html } from '../../ui/html.js';
import { energy, hex, short, utc } from '../../ui/format.js';
import { useFinalized } from '../../ui/live.js';

/** Finalized blocks read when the page opens (a pruning node keeps the events of recent blocks only). */
export const RECENT_BLOCKS = 200;
/** Block hashes asked for per `chain_getBlockHash` call. */
const HASH_BATCH = 100;

/** The alert a metering event raises, or null (wallet/dso.py `alert_of`). */
export function alertOf(block, { pallet, name, fields }) {
  if (pallet !== 'metering') return null;
  if (name === 'MeterSuspended' && fields.reason === 'rogue') {
    return { block, kind: 'rogue-meter', meter: hex(fields.meter), zone: fields.zone,
      what: 'suspended automatically as a rogue meter; check it, then reinstate or replace it' };
  }
  if (name === 'ReadingAccepted' && fields.plausible === false) {
    return { block, kind: 'implausible-reading', meter: hex(fields.meter),
      what: `implausible reading for ${utc(fields.interval_start)}: ${energy(fields.import_delta_wh)} in, `
        + `${energy(fields.export_delta_wh)} out` };
  }
  if (name === 'IntervalsMissed') {
    return { block, kind: 'missed-intervals', meter: hex(fields.meter),
      what: `${fields.count} interval(s) without a reading from ${utc(fields.from_interval)}` };
  }
  return null;
}

/** The alerts of blocks `first..last`, oldest first, each naming its meter's zone. */
export async function alertsIn(chain, first, last) {
  const out = [];
  let unreadable = 0;
  for (let lo = first; lo <= last; lo += HASH_BATCH) {
    const numbers = Array.from({ length: Math.min(HASH_BATCH, last - lo + 1) }, (_, i) => lo + i);
    const hashes = await chain.call('chain_getBlockHash', [numbers]);
    const events = await Promise.all(hashes.map((h) => (h ? chain.events(h).catch(() => null) : null)));
    events.forEach((list, i) => {
      if (list === null) unreadable += 1;
      for (const e of list || []) {
        const a = alertOf(numbers[i], e);
        if (a) out.push(a);
      }
    });
  }
  const zones = new Map();
  for (const a of out.filter((x) => x.zone == null)) {
    if (!zones.has(a.meter)) zones.set(a.meter, (await chain.storage('metering', 'meters', a.meter))?.zone ?? null);
    a.zone = zones.get(a.meter);
  }
  return { alerts: out, unreadable };
}

/** The alerts table, kept up to date block by block. */
export function Alerts({ chain }) {
  const head = useFinalized();
  const [state, setState] = useState({ alerts: [], from: null, to: null, unreadable: 0, error: null });
  const next = useRef(null);
  const running = useRef(false);
  useEffect(() => { next.current = null; setState({ alerts: [], from: null, to: null, unreadable: 0, error: null }); }, [chain]);
  useEffect(() => {
    if (!head || running.current) return;
    const first = next.current ?? Math.max(1, head.number - RECENT_BLOCKS + 1);
    if (first > head.number) return;
    running.current = true;
    alertsIn(chain, first, head.number).then(({ alerts, unreadable }) => {
      next.current = head.number + 1;
      setState((s) => ({ alerts: [...s.alerts, ...alerts], from: s.from ?? first, to: head.number,
        unreadable: s.unreadable + unreadable, error: null }));
    }, (e) => setState((s) => ({ ...s, error: e.message || String(e) })))
      .finally(() => { running.current = false; });
  }, [chain, head?.number]);
  const shown = [...state.alerts].reverse();
  return html`<section class="dso-alerts">
    <h3>Meter alerts</h3>
    ${state.error && html`<p role="alert">${state.error}</p>`}
    <p class="hint">${state.from == null ? 'Reading recent blocks…'
      : `Finalized blocks ${state.from}..${state.to}: ${state.alerts.length} alert(s)`}
      ${state.unreadable ? ` (${state.unreadable} block(s) whose state the node no longer keeps)` : ''}</p>
    ${shown.length > 0 && html`<div class="table-scroll" style="overflow-x:auto;max-width:100%"><table>
      <thead><tr><th>Block</th><th>Alert</th><th>Meter</th><th>Zone</th><th>What</th></tr></thead>
      <tbody>${shown.map((a) => html`<tr data-testid="dso-alert-row" data-kind=${a.kind}>
        <td>${a.block}</td><td>${a.kind}</td><td title=${a.meter}>${short(a.meter)}</td><td>${a.zone ?? '-'}</td>
        <td>${a.what}</td></tr>`)}</tbody>
    </table></div>`}
  </section>`;
}
