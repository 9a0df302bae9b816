/**
 * Transactions from the page: `useTx` signs and submits a call with the unlocked keypair through the
 * chain library's `submit` (built and signed in the browser; nothing secret leaves it) and keeps the
 * last action's progress; `TxStatus` shows it (`tx-status`): "signing", "in block", "finalized", or
 * "failed: <the pallet's sentence or the node's reason>".
 */
import { useCallback, useRef, useState } from 'preact/hooks';
import { html } from './html.js';

const WORDS = {
  signing: 'signing',
  ready: 'submitted',
  inBlock: 'in block',
  finalized: 'finalized',
  invalid: 'failed: the node found the transaction invalid',
  dropped: 'failed: the node dropped the transaction',
};

/**
 * `[tx, run]`: `tx` is `{ label, text, busy, ok }` of the last action; `run(label, pallet, call,
 * args)` submits and resolves to the library's `{ blockHash, success, error }`, or null when it
 * failed (the failure is in `tx.text`). One action at a time: a second run while one is busy is
 * refused, so a double click never signs twice.
 */
export function useTx(chain, keypair) {
  const [tx, setTx] = useState(null);
  const busy = useRef(false);
  const run = useCallback(async (label, pallet, call, args) => {
    if (busy.current) return null;
    if (!chain || !keypair) {
      setTx({ label, text: 'failed: unlock an account first', busy: false, ok: false });
      return null;
    }
    busy.current = true;
    let reached = 'signing';
    setTx({ label, text: 'signing', busy: true, ok: null });
    try {
      const result = await chain.submit(keypair, pallet, call, args, {
        onStatus: (s) => {
          reached = s;
          if (s === 'invalid' || s === 'dropped') return;
          setTx({ label, text: WORDS[s] || s, busy: true, ok: null });
        },
      });
      if (result && result.success === false) {
        setTx({ label, text: `failed: ${result.error || 'the call failed in its block'}`, busy: false, ok: false });
        return null;
      }
      if (reached === 'invalid' || reached === 'dropped') {
        setTx({ label, text: WORDS[reached], busy: false, ok: false });
        return null;
      }
      setTx({ label, text: reached === 'inBlock' ? 'in block' : 'finalized', busy: false, ok: true });
      return result;
    } catch (e) {
      setTx({ label, text: `failed: ${e.message || e}`, busy: false, ok: false });
      return null;
    } finally {
      busy.current = false;
    }
  }, [chain, keypair]);
  return [tx, run];
}

/** The last action's progress, announced politely to screen readers. */
export function TxStatus({ tx }) {
  return html`<p class=${`tx-status ${tx ? (tx.ok === false ? 'bad' : tx.ok ? 'good' : 'busy') : ''}`}
      role="status" aria-live="polite">
    ${tx ? html`<span class="tx-label">${tx.label}: </span>` : 'No action yet.'}
    ${tx && html`<span data-testid="tx-status">${tx.text}</span>`}
  </p>`;
}
