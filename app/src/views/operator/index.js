/**
 * The operator views, shown by role: the DSO's zones (capacity heatmap, pause and resume,
 * envelopes), tariffs, meter registry and alerts; the registrar's participants and disputes; the
 * regulator's CSV report. The data is public and shown to all; the controls of a role are rendered
 * only for an account holding it (an active licence), and each action checks again before signing,
 * as `gridchain admin` does, so a stale page gets the refusal sentence and sends nothing.
 */
import { html } from '../../ui/html.js';
import { useQuery } from '../../ui/live.js';
import { holds } from './checks.js';
import { useOperatorTx, TxStatus } from './tx.js';
import { Zones } from './zones.js';
import { Tariffs } from './tariffs.js';
import { Meters } from './meters.js';
import { Alerts } from './alerts.js';
import { Registrar } from './registrar.js';
import { Regulator } from './regulator.js';

/** `account` is the unlocked keypair (`{ publicKey, address, sign }`), or null when locked. */
export function OperatorView({ chain, account }) {
  const lic = useQuery(() => (account ? chain.roles(account.address) : null), [chain, account?.address]);
  const op = useOperatorTx(chain, account);
  if (!chain) return html`<section class="operator-view"><h2>Operators</h2><p>Connecting to the node…</p></section>`;
  const licence = account ? lic.data : null;
  const isDso = holds(licence, 'dso');
  const isRegistrar = holds(licence, 'registrar');
  const who = !account ? 'No account unlocked: the public data only.'
    : licence ? `${account.address}: ${licence.roles.join(', ') || 'no role'} (${licence.status})`
      : `${account.address} holds no licence: the public data only.`;
  return html`<section class="operator-view">
    <h2>Operators</h2>
    <p class="hint" data-testid="operator-roles">${who}</p>
    <${TxStatus} tx=${op.tx} />
    <h2>Grid (DSO)</h2>
    <${Zones} chain=${chain} account=${account} isDso=${isDso} op=${op} />
    <${Tariffs} chain=${chain} account=${account} isDso=${isDso} op=${op} />
    <${Meters} chain=${chain} account=${account} canManage=${isDso || isRegistrar} op=${op} />
    <${Alerts} chain=${chain} />
    <h2>Registrar</h2>
    <${Registrar} chain=${chain} account=${account} isRegistrar=${isRegistrar} op=${op} />
    <h2>Regulator</h2>
    <${Regulator} chain=${chain} />
  </section>`;
}
