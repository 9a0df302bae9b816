/**
 * An operator's action, from the check to the block: first the checks `gridchain admin` makes
 * before it signs (a refusal sends nothing and pays no fee, and shows the same sentence), then the
 * shared `useTx` (ui/tx.js) signs and submits with its progress (signing, in block, finalized) and,
 * on failure, the pallet's own sentence.
 */
import { useState } from 'preact/hooks';
import { TxStatus, useTx } from '../../ui/tx.js';

/**
 * `{ tx, busy, act }`: `act(label, check, pallet, call, args)` awaits `check()` (which throws an
 * Error whose message is the refusal), then signs and submits (`args` may be a function of what
 * `check` returned, for arguments the check parses); `tx` is what `TxStatus` shows (a
 * refused check, or the submission's progress, whichever came last).
 */
export function useOperatorTx(chain, keypair) {
  const [tx, run] = useTx(chain, keypair);
  const [refused, setRefused] = useState(null);
  const [checking, setChecking] = useState(false);
  async function act(label, check, pallet, call, args) {
    if (checking || tx?.busy) return null;
    if (!keypair) {
      setRefused({ label, text: 'failed: unlock an account first; nothing was sent', busy: false, ok: false });
      return null;
    }
    setChecking(true);
    setRefused({ label, text: 'checking', busy: true, ok: null });
    let checked;
    try {
      if (check) checked = await check();
    } catch (e) {
      setRefused({ label, text: `failed: ${e.message || e}`, busy: false, ok: false });
      return null;
    } finally {
      setChecking(false);
    }
    setRefused(null);
    return run(label, pallet, call, typeof args === 'function' ? args(checked) : args);
  }
  return { tx: refused || tx, busy: checking || Boolean(tx?.busy), act };
}

export { TxStatus };
