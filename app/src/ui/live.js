/**
 * Live data for the views: the latest finalized head (number, hash, chain time) in a context, and
 * `useQuery`, which re-runs a read once per finalized block (never per keystroke) and keeps the
 * last good answer while the next one is on its way. Heads come from the chain library's
 * `subscribeFinalizedHeads`; chain time is `timestamp.now` (unix ms) read at that head, so
 * intervals follow the chain's clock even on a time-warped dev chain.
 */
import { createContext } from 'preact';
import { useContext, useEffect, useRef, useState } from 'preact/hooks';

/** `{ number, hash, nowS }` of the latest finalized block, or null before the first one. */
export const FinalizedContext = createContext(null);

export function useFinalized() {
  return useContext(FinalizedContext);
}

/** Block number of a Substrate-shaped header (`number` is 0x-hex). */
export function headerNumber(header) {
  return typeof header.number === 'number' ? header.number : Number.parseInt(header.number, 16);
}

/**
 * Follow the chain's finalized heads; each one is read for its hash and chain time before it is
 * published, so every query of one render reads one block.
 */
export function useFinalizedHeads(chain) {
  const [head, setHead] = useState(null);
  useEffect(() => {
    if (!chain) return undefined;
    let live = true;
    const off = chain.subscribeFinalizedHeads(async (header) => {
      const number = headerNumber(header);
      try {
        const hash = header.hash || await chain.call('chain_getBlockHash', [number]);
        const nowMs = await chain.storageAt(hash, 'timestamp', 'now');
        if (live) setHead({ number, hash, nowS: Math.floor(Number(nowMs ?? 0) / 1000) });
      } catch (_e) {
        // A read that failed mid-reconnect: the next head brings a fresh one.
      }
    });
    return () => { live = false; if (typeof off === 'function') off(); };
  }, [chain]);
  return head;
}

/**
 * Run `fn()` (a promise) whenever the finalized block or one of `deps` changes; `{ data, error,
 * loading }`. `every` > 1 re-runs only every `every`-th block (for the heavier scans). Answers that
 * arrive out of order are dropped, so a slow old read never overwrites a newer one.
 */
export function useQuery(fn, deps, { every = 1, enabled = true } = {}) {
  const head = useFinalized();
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const seq = useRef(0);
  const tick = head ? Math.floor(head.number / every) : -1;
  useEffect(() => {
    if (!enabled || !head) return;
    const mine = ++seq.current;
    Promise.resolve().then(fn).then(
      (data) => { if (mine === seq.current) setState({ data, error: null, loading: false }); },
      (e) => { if (mine === seq.current) setState((s) => ({ ...s, error: e.message || String(e), loading: false })); },
    );
  }, [tick, enabled, ...deps]);
  return state;
}
