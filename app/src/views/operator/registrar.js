/**
 * The registrar's desk (as `gridchain admin registrar` and `admin arbitration`): the licensed
 * participants with their roles and licence status; license, suspend, reinstate and revoke
 * (identity's calls, reasons kept off chain with their keccak-256 recorded); and the disputes
 * awaiting a decision (settlement.arbitrate). Every action checks the signer's registrar licence first.
 */
import { useState } from 'preact/hooks';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { html } from '../../ui/html.js';
import { energy, short, utc } from '../../ui/format.js';
import { useQuery } from '../../ui/live.js';
import { parseEnergy } from '../../chain/units.js';
import { licenceFrom, requireRole, roleBits, sameAccount } from './checks.js';

const NO_DOCUMENT = `0x${'00'.repeat(32)}`;

function reasonHash(text) {
  return keccak_256(new TextEncoder().encode(text.trim()));
}

/** Every licensed participant, read at one block, ordered by address. */
export async function readParticipants(chain) {
  const entries = await chain.entries('identity', 'participants');
  const rows = entries.filter((e) => e.value).map(({ keys: [account], value: p }) => {
    const lic = licenceFrom(chain, p);
    return { account, roles: lic.roles, status: lic.status, licensedAt: p.licensed_at, registrar: p.registrar,
      documentHash: p.document_hash };
  });
  return rows.sort((a, b) => (a.account < b.account ? -1 : a.account > b.account ? 1 : 0));
}

/** Suspend / reinstate / revoke buttons of one participant, with the reason the first and last need. */
function LicenceActions({ chain, account, row, op }) {
  const [reason, setReason] = useState('');
  if (sameAccount(row.account, account.address) || row.status === 'revoked') return html`<span>-</span>`;
  const check = (needReason) => async () => {
    if (needReason && !reason.trim()) throw new Error('give the reason (kept off chain; its keccak-256 is recorded); nothing was sent');
    await requireRole(chain, account.address, 'registrar');
  };
  const id = `reason-${row.account}`;
  return html`<div class="licence-actions">
    <label for=${id}>Reason</label>
    <input id=${id} data-testid="registrar-reason" value=${reason} onInput=${(e) => setReason(e.currentTarget.value)} />
    ${row.status === 'active' && html`<button type="button" data-testid="registrar-suspend" disabled=${op.busy}
      onClick=${() => op.act(`suspend ${short(row.account)}`, check(true), 'identity', 'suspend',
        () => ({ who: row.account, reason_hash: reasonHash(reason) }))}>Suspend</button>`}
    ${row.status === 'suspended' && html`<button type="button" data-testid="registrar-reinstate" disabled=${op.busy}
      onClick=${() => op.act(`reinstate ${short(row.account)}`, check(false), 'identity', 'reinstate',
        { who: row.account })}>Reinstate</button>`}
    <button type="button" data-testid="registrar-revoke" disabled=${op.busy}
      onClick=${() => op.act(`revoke ${short(row.account)}`, check(true), 'identity', 'revoke',
        () => ({ who: row.account, reason_hash: reasonHash(reason) }))}>Revoke</button>
  </div>`;
}

function License({ chain, account, op }) {
  const roles = roleBits(chain);
  const [who, setWho] = useState('');
  const [picked, setPicked] = useState({});
  const [doc, setDoc] = useState('');
  return html`<form class="license-form" onSubmit=${(e) => {
    e.preventDefault();
    op.act('license', async () => {
      const bits = roles.filter(([n]) => picked[n]).reduce((acc, [, b]) => acc | b, 0);
      if (!bits) throw new Error(`no role given: pick one or more of ${roles.map(([n]) => n).join(', ')}`);
      const d = doc.trim() || NO_DOCUMENT;
      if (!/^0x[0-9a-fA-F]{64}$/.test(d)) throw new Error('a document hash must be 0x followed by 64 hex digits');
      await requireRole(chain, account.address, 'registrar');
      return { bits, d };
    }, 'identity', 'license', (c) => ({ who: who.trim(), roles: c.bits, document_hash: c.d }));
  }}>
    <h4>License a participant</h4>
    <label>Account (address) <input data-testid="registrar-license-account" value=${who}
      onInput=${(e) => setWho(e.currentTarget.value)} /></label>
    <fieldset><legend>Roles</legend>
      ${roles.map(([n]) => html`<label class="check"><input type="checkbox" checked=${Boolean(picked[n])}
        onChange=${(e) => setPicked({ ...picked, [n]: e.currentTarget.checked })} /> ${n}</label>`)}
    </fieldset>
    <label>Document hash (optional) <input value=${doc} placeholder="0x…" onInput=${(e) => setDoc(e.currentTarget.value)} /></label>
    <button type="submit" data-testid="registrar-license" disabled=${op.busy}>License</button>
  </form>`;
}

/** The disputes awaiting arbitration, by deadline, each with its trade and the meters' shares. */
export async function readDisputes(chain) {
  const queue = (await chain.storage('settlement', 'open_disputes')) || [];
  return Promise.all(queue.map(async ([deadline, tradeId]) => {
    const [trade, dispute, metered] = await Promise.all([
      chain.storage('market', 'trades', tradeId), chain.storage('settlement', 'disputes', tradeId),
      chain.storage('settlement', 'metered', tradeId)]);
    return { tradeId, deadline, trade, dispute, metered };
  }));
}

function Decide({ chain, account, d, op }) {
  const [share, setShare] = useState('');
  const id = `share-${d.tradeId}`;
  return html`<form class="inline-form" onSubmit=${(e) => {
    e.preventDefault();
    op.act(`decide trade ${d.tradeId}`, async () => {
      const wh = parseEnergy(share);
      if (d.trade && wh > d.trade.wh) throw new Error(`the seller's share may be at most the trade's ${energy(d.trade.wh)}`);
      await requireRole(chain, account.address, 'registrar');
      return wh;
    }, 'settlement', 'arbitrate', (wh) => ({ trade_id: d.tradeId, seller_share_wh: wh }));
  }}>
    <label for=${id}>Seller delivered</label>
    <input id=${id} data-testid="dispute-share" value=${share} placeholder="0.3kWh" onInput=${(e) => setShare(e.currentTarget.value)} />
    <button type="submit" data-testid="dispute-decide" disabled=${op.busy}>Decide</button>
  </form>`;
}

const shareText = (m, key) => (m == null ? 'pending' : m[key] == null ? 'none' : energy(m[key]));

/** Participants and disputes; the actions only for an account holding the registrar role. */
export function Registrar({ chain, account, isRegistrar, op }) {
  const people = useQuery(() => readParticipants(chain), [chain], { every: 3 });
  const disputes = useQuery(() => readDisputes(chain), [chain], { every: 3 });
  return html`<section class="registrar">
    <h3>Participants and licences</h3>
    ${people.error && html`<p role="alert">${people.error}</p>`}
    ${people.data && html`<div class="table-scroll" style="overflow-x:auto;max-width:100%"><table>
      <thead><tr><th>Account</th><th>Roles</th><th>Status</th><th>Licensed at</th>
        ${isRegistrar && html`<th>Action</th>`}</tr></thead>
      <tbody>${people.data.map((r) => html`<tr data-testid="registrar-row" data-account=${r.account} data-status=${r.status}>
        <td title=${r.account}>${short(r.account)}</td><td>${r.roles.join(', ') || 'none'}</td>
        <td class="licence-status">${r.status}</td><td>${r.licensedAt == null ? '-' : `#${r.licensedAt}`}</td>
        ${isRegistrar && html`<td><${LicenceActions} chain=${chain} account=${account} row=${r} op=${op} /></td>`}
      </tr>`)}</tbody>
    </table></div>`}
    ${isRegistrar && html`<${License} chain=${chain} account=${account} op=${op} />`}
    <h3>Disputes awaiting a decision</h3>
    ${disputes.error && html`<p role="alert">${disputes.error}</p>`}
    ${disputes.data && (disputes.data.length ? html`<div class="table-scroll" style="overflow-x:auto;max-width:100%"><table>
      <thead><tr><th>Trade</th><th>Interval</th><th>Seller</th><th>Buyer</th><th>Quantity</th><th>Raised by</th>
        <th>Deadline</th><th>Seller meter</th><th>Buyer meter</th>${isRegistrar && html`<th>Decide</th>`}</tr></thead>
      <tbody>${disputes.data.map((d) => html`<tr data-testid="dispute-row" data-trade-id=${d.tradeId}>
        <td>${d.tradeId}</td><td>${d.trade ? utc(d.trade.interval_start) : '-'}</td>
        <td title=${d.trade?.seller}>${short(d.trade?.seller)}</td><td title=${d.trade?.buyer}>${short(d.trade?.buyer)}</td>
        <td>${d.trade ? energy(d.trade.wh) : '-'}</td><td title=${d.dispute?.by}>${short(d.dispute?.by)}</td>
        <td>${utc(d.deadline)}</td><td>${shareText(d.metered, 'seller_wh')}</td><td>${shareText(d.metered, 'buyer_wh')}</td>
        ${isRegistrar && html`<td><${Decide} chain=${chain} account=${account} d=${d} op=${op} /></td>`}
      </tr>`)}</tbody>
    </table></div>` : html`<p>No open disputes.</p>`)}
  </section>`;
}
