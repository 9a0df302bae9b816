/** The operator views (DSO, registrar, regulator), shown by the roles the signed-in account holds. */
import { useEffect, useState } from 'preact/hooks';
import { html } from '../network/html.js';

export function OperatorView({ chain, account }) {
  const [zones, setZones] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    if (!chain) return;
    chain.call('energy_zones', []).then(setZones, (e) => setError(e.message));
  }, [chain]);
  return html`<section class="operator-view">
    <h2>Operators</h2>
    ${error && html`<p role="alert">${error}</p>`}
    <p>${account ? `Signed in as ${account.address}` : 'No account unlocked: the public data only.'}</p>
    <table>
      <thead><tr><th>Zone</th><th>Name</th><th>State</th></tr></thead>
      <tbody>${(zones || []).map((z) => html`<tr data-testid="dso-zone-row" data-zone=${z.zone}>
        <td>${z.zone}</td><td>${z.name}</td><td>${z.paused ? 'paused' : 'running'}</td></tr>`)}</tbody>
    </table>
  </section>`;
}
