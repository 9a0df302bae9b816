/**
 * The shell: the header (the chain's name and the connection state), a banner while the node is not
 * reachable or is on another chain (`conn-banner`), the navigation between the household, operator
 * and network views (hash routes `#/household`, `#/operator`, `#/network`), and the account panel.
 * It connects with the chain library over WebSocket (the page's own origin, or `?rpc=ws://…`),
 * follows finalized heads for the views' queries (ui/live.js) and reads the unlocked account's
 * roles from identity's storage to decide whether the operator view is offered.
 */
import { useEffect, useState } from 'preact/hooks';
import { Chain } from './chain/index.js';
import { html } from './ui/html.js';
import { AccountPanel } from './ui/account-panel.js';
import { FinalizedContext, headerNumber, useFinalizedHeads } from './ui/live.js';
import { HouseholdView } from './views/household/index.js';
import { OperatorView } from './views/operator/index.js';
import { NetworkView } from './views/network/index.js';

const ROUTES = ['household', 'operator', 'network'];

const BANNER = {
  connecting: 'Connecting to the node…',
  reconnecting: 'Connection to the node lost: reconnecting…',
  unreachable: 'The node is unreachable: retrying. Nothing can be sent until it is back.',
  'wrong-chain': 'The node is now on another chain (its genesis differs): nothing will be sent to it.',
};

/** The node's WebSocket URL: `?rpc=` if given, else this page's own host (the node serves the app). */
export function rpcUrl(loc = window.location) {
  const given = new URLSearchParams(loc.search).get('rpc');
  if (given) return given;
  return `${loc.protocol === 'https:' ? 'wss:' : 'ws:'}//${loc.host}/`;
}

function routeOf(hash) {
  const r = String(hash || '').replace(/^#\/?/, '').split('/')[0];
  return ROUTES.includes(r) ? r : 'household';
}

/** Connect once and keep the library's connection state; a failed first connection is retried. */
function useChain() {
  const [chain, setChain] = useState(null);
  const [status, setStatus] = useState('connecting');
  useEffect(() => {
    let stopped = false;
    let timer = null;
    let made = null;
    const attempt = async () => {
      try {
        made = await Chain.connect(rpcUrl(), { onStatus: (s) => { if (!stopped) setStatus(s); } });
        if (stopped) { if (made.close) made.close(); return; }
        setChain(made);
        setStatus((s) => (s === 'connecting' ? 'connected' : s));
      } catch (_e) {
        if (stopped) return;
        setStatus('unreachable');
        timer = setTimeout(attempt, 3000);
      }
    };
    attempt();
    return () => { stopped = true; clearTimeout(timer); if (made && made.close) made.close(); };
  }, []);
  return [chain, status];
}

/** The best block's number, from the new-heads subscription (shown in the header). */
function useBestNumber(chain) {
  const [best, setBest] = useState(null);
  useEffect(() => {
    if (!chain) return undefined;
    const off = chain.subscribeNewHeads((h) => setBest(headerNumber(h)));
    return () => { if (typeof off === 'function') off(); };
  }, [chain]);
  return best;
}

/** The unlocked account's roles (['dso', 'registrar', …]) while its licence is active. */
function useRoles(chain, account) {
  const [roles, setRoles] = useState([]);
  useEffect(() => {
    setRoles([]);
    if (!chain || !account) return;
    let live = true;
    Promise.resolve(chain.roles(account.keypair.address)).then(
      (r) => { if (live) setRoles(r && r.status === 'active' ? r.roles : []); },
      () => { if (live) setRoles([]); },
    );
    return () => { live = false; };
  }, [chain, account]);
  return roles;
}

export function App() {
  const [chain, status] = useChain();
  const [route, setRoute] = useState(() => routeOf(window.location.hash));
  const [account, setAccount] = useState(null);
  const head = useFinalizedHeads(chain);
  const best = useBestNumber(chain);
  const roles = useRoles(chain, account);
  const operator = roles.includes('dso') || roles.includes('registrar');

  useEffect(() => {
    const onHash = () => setRoute(routeOf(window.location.hash));
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);

  const connected = status === 'connected';
  const nav = (name, label) => html`<a href=${`#/${name}`} data-testid=${`nav-${name}`}
      aria-current=${route === name ? 'page' : undefined} class=${route === name ? 'active' : ''}>${label}</a>`;

  let view;
  if (route === 'operator') view = html`<${OperatorView} chain=${chain} account=${account && account.keypair} />`;
  else if (route === 'network') view = html`<${NetworkView} chain=${chain} account=${account && account.keypair} />`;
  else view = html`<${HouseholdView} chain=${chain} account=${account} connected=${connected} />`;

  return html`<${FinalizedContext.Provider} value=${head}>
    <header class="top">
      <h1>gridchain <span class="chain-name">${chain ? chain.chainName : ''}</span></h1>
      <p class=${`conn conn-${status}`} aria-live="polite">
        ${connected ? 'connected' : status}${best != null ? ` · best #${best}` : ''}${head ? ` · finalized #${head.number}` : ''}
      </p>
    </header>
    ${!connected && html`<div class=${`conn-banner conn-${status}`} role="alert" data-testid="conn-banner">
      ${BANNER[status] || `Connection: ${status}`}</div>`}
    <nav class="tabs" aria-label="Views">
      ${nav('household', 'Household')}
      ${operator && nav('operator', roles.includes('dso') ? 'Operator' : 'Registrar and regulator')}
      ${nav('network', 'Network')}
    </nav>
    <${AccountPanel} chain=${chain} account=${account} onUnlock=${setAccount} onLock=${() => setAccount(null)} />
    <main>
      ${!chain ? html`<p class="muted">Waiting for the node…</p>` : view}
    </main>
  </${FinalizedContext.Provider}>`;
}
