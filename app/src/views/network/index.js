/**
 * The network view: the best and finalized heights, finality latency (measured in this page: from a
 * block's arrival as a new head to its arrival as finalized), the validator set, the node's peers,
 * and a small block explorer (explorer.js).
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { html } from '../../ui/html.js';
import { short } from '../../ui/format.js';
import { useQuery } from '../../ui/live.js';
import { heightOf } from './decode.js';
import { Explorer } from './explorer.js';

/** Latencies kept for the median. */
const KEEP = 50;

/** The median of numbers (0 for none). */
export function median(values) {
  if (!values.length) return 0;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : Math.round((s[mid - 1] + s[mid]) / 2);
}

/** Best and finalized heights from the subscriptions, and the finality latency of each block seen both ways. */
function useHeads(chain) {
  const [heads, setHeads] = useState({ best: null, finalized: null, latencies: [] });
  const seen = useRef(new Map());
  useEffect(() => {
    if (!chain) return undefined;
    seen.current = new Map();
    const offs = [
      chain.subscribeNewHeads((h) => {
        const n = heightOf(h);
        if (!seen.current.has(n)) seen.current.set(n, performance.now());
        setHeads((s) => ({ ...s, best: Math.max(n, s.best ?? n) }));
      }),
      chain.subscribeFinalizedHeads((h) => {
        const n = heightOf(h);
        const t0 = seen.current.get(n);
        const ms = t0 === undefined ? null : Math.round(performance.now() - t0);
        for (const k of [...seen.current.keys()]) if (k <= n) seen.current.delete(k);
        setHeads((s) => ({ ...s, finalized: n, best: Math.max(n, s.best ?? n),
          latencies: ms === null ? s.latencies : [...s.latencies, ms].slice(-KEEP) }));
      }),
    ];
    return () => offs.forEach((off) => typeof off === 'function' && off());
  }, [chain]);
  return heads;
}

/** The validator set (validators pallet) and the block authorities (authorship pallet). */
async function readValidators(chain) {
  const [validators, setId, authorities] = await Promise.all([
    chain.storage('validators', 'validators'), chain.storage('validators', 'set_id'),
    chain.storage('authorship', 'authorities')]);
  return { validators: validators || [], setId, authorities: authorities || [] };
}

/** `system_health`, and `system_peers` where the node offers it (an unsafe method, loopback only). */
async function readPeers(chain) {
  const health = await chain.call('system_health', []);
  let peers = null;
  let refused = null;
  try {
    peers = await chain.call('system_peers', []);
  } catch (e) {
    refused = e.message || String(e);
  }
  return { health, peers, refused };
}

export function NetworkView({ chain }) {
  const heads = useHeads(chain);
  const vals = useQuery(() => readValidators(chain), [chain], { every: 10 });
  const peers = useQuery(() => readPeers(chain), [chain], { every: 5 });
  if (!chain) return html`<section class="network-view"><h2>Network</h2><p>Connecting to the node…</p></section>`;
  const last = heads.latencies[heads.latencies.length - 1];
  const v = vals.data;
  const p = peers.data;
  return html`<section class="network-view">
    <h2>Network</h2>
    <p>${chain.chainName || ''} ${chain.chainType ? `(${chain.chainType})` : ''}</p>
    <dl class="heights">
      <dt>Best block</dt><dd data-testid="best-height">${heads.best ?? '…'}</dd>
      <dt>Finalized block</dt><dd data-testid="finalized-height">${heads.finalized ?? '…'}</dd>
      <dt>Finality latency</dt><dd data-testid="finality-latency">${last === undefined ? 'measuring…'
        : `${last} ms (median ${median(heads.latencies)} ms over ${heads.latencies.length} block(s))`}</dd>
    </dl>
    <p class="hint">Latency is measured in this page, from a block's arrival as the new best head to its
      arrival as finalized.</p>
    <h3>Validators</h3>
    ${vals.error && html`<p role="alert">${vals.error}</p>`}
    ${v && (v.validators.length ? html`<p>Set ${v.setId ?? 0}: ${v.validators.length} validator(s)</p>
      <div class="table-scroll" style="overflow-x:auto;max-width:100%"><table><thead><tr><th>Account</th><th>Power</th><th>BLS key</th></tr></thead>
      <tbody>${v.validators.map((x) => html`<tr data-testid="validator-row"><td title=${x.account}>${x.account}</td>
        <td>${x.power}</td><td title=${x.bls_public_key}>${short(x.bls_public_key)}</td></tr>`)}</tbody></table></div>`
      : html`<p>No BFT validator set on this chain: blocks are authored by ${v.authorities.length} authority(ies).</p>`)}
    ${v && v.authorities.length > 0 && html`<p>Block authorities: ${v.authorities.map((a) => html`<code title=${a}>${a}</code> `)}</p>`}
    <h3>Peers</h3>
    ${peers.error && html`<p role="alert">${peers.error}</p>`}
    ${p && html`<p data-testid="peer-count">${p.health.peers} peer(s)${p.health.isSyncing ? ', syncing' : ''}${
      !p.health.shouldHavePeers ? ' (a development chain has no network)' : ''}</p>
      ${p.refused ? html`<p class="hint">The node does not list its peers to this page (${p.refused}).</p>`
        : p.peers.length > 0 && html`<div class="table-scroll" style="overflow-x:auto;max-width:100%"><table>
        <thead><tr><th>Peer</th><th>Address</th><th>Best</th><th>Direction</th></tr></thead>
        <tbody>${p.peers.map((x) => html`<tr><td title=${x.peerId}>${short(x.peerId)}</td><td>${x.address}</td>
          <td>${x.bestNumber ?? '-'}</td><td>${x.inbound ? 'in' : 'out'}</td></tr>`)}</tbody></table></div>`}`}
    <${Explorer} chain=${chain} best=${heads.best} />
  </section>`;
}
