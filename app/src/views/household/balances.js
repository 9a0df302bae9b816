/**
 * Balances of the unlocked account: GEUR (the stablecoin, `balances.asset_balance`, with what open
 * bids hold in escrow from `energy_orders`), GRID (the native token, `system.account`) and green
 * certificates (`certificates.balance` and `.retired`, summed over zones and intervals). Re-read per
 * finalized block; the certificate scan every 10th.
 */
import { html } from '../../ui/html.js';
import { useQuery } from '../../ui/live.js';
import { energy, fixed } from '../../ui/format.js';
import { balances, certificates } from './data.js';

export function Balances({ chain, address }) {
  const b = useQuery(() => balances(chain, address), [chain, address]);
  const c = useQuery(() => certificates(chain, address), [chain, address], { every: 10 });
  const p = chain.properties;
  const coin = p.stablecoin;
  const v = b.data;
  return html`<div class="card balances">
    <h3>Balances</h3>
    ${b.error && html`<p class="error">${b.error}</p>`}
    <dl>
      <dt>${coin.symbol}</dt>
      <dd data-testid="balance-geur">${v ? `${fixed(v.geur, coin.decimals)} ${coin.symbol}` : '…'}</dd>
      ${v && v.locked > 0n && html`<dd class="muted">+ ${fixed(v.locked, coin.decimals)} ${coin.symbol} locked in open bids</dd>`}
      <dt>${p.tokenSymbol}</dt>
      <dd data-testid="balance-grid">${v ? `${fixed(v.native.free, p.tokenDecimals)} ${p.tokenSymbol}` : '…'}</dd>
      <dt>Certificates</dt>
      <dd data-testid="balance-certs">${c.data
        ? `${energy(c.data.heldWh)} held, ${energy(c.data.retiredWh)} retired as green claims`
        : c.error ? `cannot read: ${c.error}` : '…'}</dd>
    </dl>
  </div>`;
}
