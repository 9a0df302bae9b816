/**
 * My trades of the last two days as buyer or seller (`energy_trades`, every page), newest first,
 * each with its settlement state (`matched`, `delivering`, `disputed`, `settled`, `refunded`), its
 * outcome (delivered Wh, penalty and who was at fault), and disputes: a party may open one from the
 * end of the delivery interval until the settlement window closes (`settlement.dispute` with the
 * keccak-256 of the reason; keep the text for the registrar); an open dispute shows its deadline
 * (`settlement.disputes`). Re-read per finalized block.
 */
import { useState } from 'preact/hooks';
import { keccak256, toHex } from '../../chain/index.js';
import { html } from '../../ui/html.js';
import { useQuery } from '../../ui/live.js';
import { energy, money, price, short, utc } from '../../ui/format.js';
import { allPages } from './data.js';

/** [opens, closes) of a trade's dispute window, unix seconds (settlement.window_closes_at). */
export function disputeWindow(chain, intervalStart) {
  const step = Number(chain.constant('grid', 'interval_s'));
  const n = Number(chain.constant('metering', 'settlement_window_intervals'));
  return [Number(intervalStart) + step, Number(intervalStart) + step * (1 + n)];
}

async function readTrades(chain, address, nowS) {
  const step = Number(chain.constant('grid', 'interval_s'));
  const from = nowS - (nowS % step) - 2 * 86400;
  const rows = await allPages(chain, 'energy_trades', { account: address, fromInterval: from }, 5);
  rows.sort((a, b) => Number(b.tradeId) - Number(a.tradeId));
  const disputed = rows.filter((t) => t.status === 'disputed');
  const disputes = await Promise.all(disputed.map((t) => chain.storage('settlement', 'disputes', t.tradeId)));
  const byId = new Map(disputed.map((t, i) => [t.tradeId, disputes[i]]));
  return rows.map((t) => ({ ...t, dispute: byId.get(t.tradeId) || null }));
}

function Outcome({ t, coin }) {
  const o = t.outcome;
  if (!o) return html`<span class="muted">-</span>`;
  return html`<span>${energy(o.deliveredWh)} delivered${Number(o.penalty) > 0
    ? html`; <strong>penalty ${money(o.penalty, coin)}</strong>${o.atFault ? ` (${o.atFault} at fault)` : ''}` : ''}</span>`;
}

export function Trades({ chain, address, head, run, busy, connected }) {
  const q = useQuery(() => readTrades(chain, address, head.nowS), [chain, address]);
  const [reasons, setReasons] = useState({});
  const [error, setError] = useState('');
  const coin = chain.properties.stablecoin;

  async function openDispute(t) {
    setError('');
    const reason = (reasons[t.tradeId] || '').trim();
    if (!reason) { setError(`Say why you dispute trade ${t.tradeId}: the registrar compares your text with its hash.`); return; }
    const [opens, closes] = disputeWindow(chain, t.intervalStart);
    if (head.nowS < opens) { setError(`Trade ${t.tradeId} can be disputed once its interval has ended (${utc(opens)}).`); return; }
    if (head.nowS >= closes) { setError(`Trade ${t.tradeId}'s dispute window closed at ${utc(closes)}.`); return; }
    const reasonHash = toHex(keccak256(new TextEncoder().encode(reason)));
    const done = await run(`dispute trade ${t.tradeId}`, 'settlement', 'dispute', { trade_id: t.tradeId, reason_hash: reasonHash });
    if (done) setReasons({ ...reasons, [t.tradeId]: '' });
  }

  const rows = q.data || [];
  return html`<div class="card wide">
    <h3>My trades</h3>
    ${q.error && html`<p class="error">${q.error}</p>`}
    ${error && html`<p class="error" role="alert" data-testid="dispute-error">${error}</p>`}
    ${rows.length === 0 ? html`<p class="muted">${q.loading ? 'Reading…' : 'No trades in the last two days.'}</p>` : html`<div class="table-wrap"><table>
      <thead><tr><th scope="col">Trade</th><th scope="col">Interval</th><th scope="col">Role</th><th scope="col">Energy</th>
        <th scope="col">Price (+ grid fee)</th><th scope="col">Money</th><th scope="col">State</th><th scope="col">Outcome</th>
        <th scope="col">Dispute</th></tr></thead>
      <tbody>${rows.map((t) => {
        const buyer = t.buyer === address;
        const [opens, closes] = disputeWindow(chain, t.intervalStart);
        const canDispute = ['matched', 'delivering'].includes(t.status) && head.nowS >= opens && head.nowS < closes;
        return html`<tr data-testid="trade-row" data-trade-id=${t.tradeId}>
          <td>${t.tradeId}</td><td>${utc(t.intervalStart)}</td>
          <td>${buyer ? 'buyer' : 'seller'}<br /><span class="muted">with ${short(buyer ? t.seller : t.buyer)}</span></td>
          <td>${energy(t.wh)}</td><td>${price(t.pricePerKwh, coin)} (+ ${price(t.feePerKwh, coin)})</td>
          <td>${buyer ? `pays ${money(BigInt(t.amount) + BigInt(t.feeAmount), coin)}` : `gets ${money(t.amount, coin)}`}</td>
          <td data-testid="trade-state" class=${`state-${t.status}`}>${t.status}</td>
          <td><${Outcome} t=${t} coin=${coin} /></td>
          <td>${t.dispute
            ? html`<span data-testid="dispute-state">disputed by ${t.dispute.by === address ? 'you' : short(t.dispute.by)};
                a registrar decides, else the meters settle it after ${utc(t.dispute.deadline_s)}</span>`
            : canDispute ? html`<label class="sr" for=${`dispute-reason-${t.tradeId}`}>Reason for disputing trade ${t.tradeId}</label>
                <input id=${`dispute-reason-${t.tradeId}`} data-testid="dispute-reason" placeholder="reason"
                  value=${reasons[t.tradeId] || ''} onInput=${(e) => setReasons({ ...reasons, [t.tradeId]: e.currentTarget.value })} />
                <button type="button" data-testid="dispute-open" disabled=${busy || !connected}
                  onClick=${() => openDispute(t)}>Dispute</button>`
              : html`<span class="muted">${head.nowS < opens ? `from ${utc(opens).slice(11)}` : 'closed'}</span>`}</td>
        </tr>`;
      })}</tbody></table></div>`}
  </div>`;
}
