/** The network view: the best and finalized heights as the node reports them over WebSocket subscriptions. */
import { useEffect, useState } from 'preact/hooks';
import { html } from './html.js';

/** Height of a Substrate-shaped header (`number` is a hex string). */
function heightOf(header) {
  return Number.parseInt(header.number, 16);
}

export function NetworkView({ chain }) {
  const [best, setBest] = useState(null);
  const [finalized, setFinalized] = useState(null);
  useEffect(() => {
    if (!chain) return undefined;
    const offs = [
      chain.subscribeNewHeads((h) => setBest(heightOf(h))),
      chain.subscribeFinalizedHeads((h) => setFinalized(heightOf(h))),
    ];
    return () => offs.forEach((off) => typeof off === 'function' && off());
  }, [chain]);
  return html`<section class="network-view">
    <h2>Network</h2>
    <dl>
      <dt>Best block</dt><dd data-testid="best-height">${best ?? '…'}</dd>
      <dt>Finalized block</dt><dd data-testid="finalized-height">${finalized ?? '…'}</dd>
    </dl>
  </section>`;
}
