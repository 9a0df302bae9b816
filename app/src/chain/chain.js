// The app's view of one gridchain node: a JSON-RPC WebSocket that reconnects with backoff, pins the
// chain it first met (by genesis hash), reads state by the runtime metadata, follows heads, and
// builds, signs and submits extrinsics in the browser (keys never leave it).
import { equalBytes, fromHex, toHex } from './bytes.js';
import { keccak256, pack, splitKeyPart, unpack } from './codec.js';
import { extrinsicHash, signExtrinsic } from './extrinsic.js';
import {
  callFromMetadata, decodeEvent, errorSentence, keyTypes, palletOf, render, storageItem, storageKeyOf,
} from './metadata.js';
import { ConnectionLostError, RpcConnection, RpcError } from './rpc.js';
import { GRIDCHAIN_SS58_PREFIX, ss58Encode } from './ss58.js';

/** Waits between reconnection attempts, in ms (the last repeats). */
const BACKOFF_MS = [250, 500, 1000, 2000, 4000, 5000];
/** Failed attempts after a disconnection before the status says unreachable rather than reconnecting. */
const ATTEMPTS_BEFORE_UNREACHABLE = 3;
/** Blocks a signed extrinsic stays valid for (as the command-line wallet). */
export const MORTAL_PERIOD = 64;
const KEYS_PAGE = 1000;
const STORAGE_BATCH = 500;
const WATCH_TIMEOUT_MS = 120000;

/** The hash of a header as `chain_getHeader` returns it: keccak-256 of its msgpack (protocol.md §5). */
export function headerHash(header) {
  const logs = ((header.digest && header.digest.logs) || []).map((l) => unpack(fromHex(l)));
  return keccak256(pack([fromHex(header.parentHash, 32), parseInt(header.number, 16),
    fromHex(header.stateRoot, 32), fromHex(header.extrinsicsRoot, 32), logs]));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class Chain {
  /**
   * Connect to the node at `url` (ws://, wss://, http:// or https://; the page's own origin by
   * default). Resolves once connected and the metadata is read; until then (and whenever the
   * connection drops) it keeps retrying, and `onStatus` hears `connecting | connected |
   * reconnecting | wrong-chain | unreachable`.
   */
  static async connect(url, { onStatus = () => {}, WebSocket: WebSocketImpl = globalThis.WebSocket } = {}) {
    if (!WebSocketImpl) throw new Error('this browser cannot open a WebSocket to the node');
    const chain = new Chain(url, onStatus, WebSocketImpl);
    await chain.#firstConnection;
    return chain;
  }

  #conn = null;
  #onStatus;
  #WebSocketImpl;
  #closed = false;
  #resolveFirst;
  #firstConnection;
  #live = new Set();          // subscriptions kept across reconnections: {method, params, unsub, cb, stop}

  constructor(url, onStatus, WebSocketImpl) {
    this.url = toWsUrl(url);
    this.#onStatus = onStatus;
    this.#WebSocketImpl = WebSocketImpl;
    this.status = 'connecting';
    this.genesisHash = null;
    this.chainName = null;
    this.chainType = null;
    this.properties = {};
    this.runtimeVersion = null;
    this.metadata = null;
    this.ss58Format = GRIDCHAIN_SS58_PREFIX;
    this.#firstConnection = new Promise((resolve) => { this.#resolveFirst = resolve; });
    this.#run();
  }

  #setStatus(s) {
    if (this.status === s) return;
    this.status = s;
    try { this.#onStatus(s); } catch { /* a page handler's error must not stop the connection */ }
  }

  async #run() {
    this.#onStatus('connecting');
    let failures = 0;
    let everConnected = false;
    while (!this.#closed) {
      const closed = new Promise((resolve) => {
        this.#conn = new RpcConnection(this.url, { WebSocketImpl: this.#WebSocketImpl, onClose: resolve });
      });
      let outcome;
      try {
        await this.#conn.connect();
        outcome = await this.#bootstrap();
      } catch {
        this.#conn.close();
        outcome = 'failed';
      }
      if (outcome === 'connected') {
        failures = 0;
        everConnected = true;
        this.#setStatus('connected');
        this.#resolveFirst();
        await this.#resubscribe();
        await closed;
        if (this.#closed) return;
        this.#setStatus('reconnecting');
        continue;
      }
      failures += 1;
      if (outcome === 'wrong-chain') this.#setStatus('wrong-chain');
      else if (!everConnected || failures >= ATTEMPTS_BEFORE_UNREACHABLE) this.#setStatus('unreachable');
      await sleep(BACKOFF_MS[Math.min(failures - 1, BACKOFF_MS.length - 1)]);
    }
  }

  // Read what the app needs of the chain; refuses another chain than the one first met.
  async #bootstrap() {
    const [genesis, name, type, props, rv] = await this.#conn.batch([
      ['chain_getBlockHash', [0]], ['system_chain', []], ['system_chainType', []],
      ['system_properties', []], ['state_getRuntimeVersion', []],
    ]);
    for (const r of [genesis, name, type, props, rv]) if (r instanceof Error) throw r;
    const g = fromHex(genesis, 32, 'genesis hash');
    if (this.genesisHash && !equalBytes(g, this.genesisHash)) {
      this.#conn.close();
      return 'wrong-chain';
    }
    if (!this.metadata || !this.runtimeVersion || rv.specVersion !== this.runtimeVersion.specVersion) {
      this.metadata = await this.#conn.request('state_getMetadata', []);
    }
    this.genesisHash = g;
    this.chainName = name;
    this.chainType = type;
    this.properties = props || {};
    this.ss58Format = Number.isInteger(this.properties.ss58Format) ? this.properties.ss58Format : GRIDCHAIN_SS58_PREFIX;
    this.runtimeVersion = rv;
    return 'connected';
  }

  async #resubscribe() {
    for (const sub of this.#live) await this.#openLive(sub);
  }

  async #openLive(sub) {
    if (sub.stopped || !this.#conn.open) return;
    try {
      sub.stop = await this.#conn.subscribe(sub.method, [], sub.unsub, (result, error) => {
        if (!error && !sub.stopped) sub.cb(result);
      });
    } catch {
      // the connection dropped while subscribing: the next connection subscribes again
    }
  }

  #subscribeLive(method, unsub, cb) {
    const sub = { method, unsub, cb, stop: null, stopped: false };
    this.#live.add(sub);
    if (this.status === 'connected') this.#openLive(sub);
    return () => {
      sub.stopped = true;
      this.#live.delete(sub);
      if (sub.stop) sub.stop();
    };
  }

  /** Stop reconnecting and close the socket. */
  close() {
    this.#closed = true;
    this.#live.clear();
    if (this.#conn) this.#conn.close();
  }

  /** Any JSON-RPC method; rejects with RpcError (the node's reason) or ConnectionLostError. */
  call(method, params = []) {
    return this.#conn.request(method, params);
  }

  /** Several calls in one round trip; results in order, failures as Error objects in place. */
  batch(calls) {
    return this.#conn.batch(calls);
  }

  /** `cb(header)` for every new best block; the header has `number` as an integer and its `hash`. */
  subscribeNewHeads(cb) {
    return this.#subscribeLive('chain_subscribeNewHeads', 'chain_unsubscribeNewHeads', (h) => cb(withHash(h)));
  }

  /** `cb(header)` for every finalized block (the moment to re-run queries). */
  subscribeFinalizedHeads(cb) {
    return this.#subscribeLive('chain_subscribeFinalizedHeads', 'chain_unsubscribeFinalizedHeads', (h) => cb(withHash(h)));
  }

  /** An account's address on this chain. */
  address(publicKey) {
    return ss58Encode(publicKey, this.ss58Format);
  }

  /** The storage key of `pallet.item[keys...]` (keys as the metadata types them; accounts as addresses). */
  storageKey(pallet, item, ...keys) {
    return storageKeyOf(this.metadata, pallet, item, ...keys);
  }

  /** `pallet.item[keys...]` at the best block, rendered by its metadata type; null when absent. */
  storage(pallet, item, ...keys) {
    return this.storageAt(null, pallet, item, ...keys);
  }

  /** `pallet.item[keys...]` at block `at` (0x-hex hash; null for the best block). */
  async storageAt(at, pallet, item, ...keys) {
    const key = toHex(this.storageKey(pallet, item, ...keys));
    const raw = await this.call('state_getStorage', at ? [key, at] : [key]);
    return this.#decodeValue(pallet, item, raw);
  }

  #decodeValue(pallet, item, rawHex) {
    if (rawHex === null || rawHex === undefined) return null;
    const it = storageItem(this.metadata, pallet, item);
    return render(this.metadata, it.value, unpack(fromHex(rawHex)), this.ss58Format);
  }

  /**
   * Every entry of a map (or of a double map under its first key, given as `prefixKeys`), read at
   * one block: `[{ keys: [rendered keys], value }]`. `limit` bounds how many (default 10,000).
   */
  async entries(pallet, item, prefixKeys = [], { at = null, limit = 10000 } = {}) {
    const it = storageItem(this.metadata, pallet, item);
    const types = keyTypes(it);
    const prefix = toHex(this.storageKey(pallet, item, ...prefixKeys));
    const block = at || await this.call('chain_getBlockHash', []);
    const keys = [];
    let start = null;
    while (keys.length < limit) {
      const page = await this.call('state_getKeysPaged', [prefix, KEYS_PAGE, start, block]);
      keys.push(...page);
      if (page.length < KEYS_PAGE) break;
      start = page[page.length - 1];
    }
    const out = [];
    for (let i = 0; i < Math.min(keys.length, limit); i += STORAGE_BATCH) {
      const chunk = keys.slice(i, Math.min(i + STORAGE_BATCH, limit));
      const values = await this.batch(chunk.map((k) => ['state_getStorage', [k, block]]));
      chunk.forEach((k, j) => {
        if (values[j] instanceof Error) throw values[j];
        const raw = fromHex(k);
        let offset = 32;
        const parts = types.map((t) => {
          const [plain, next] = splitKeyPart(raw, offset);
          offset = next;
          return render(this.metadata, t, plain, this.ss58Format);
        });
        out.push({ keys: parts, value: this.#decodeValue(pallet, item, values[j]) });
      });
    }
    return out;
  }

  /** A constant of a pallet, as its metadata publishes it. */
  constant(pallet, name) {
    const consts = palletOf(this.metadata, pallet).constants || {};
    if (!(name in consts)) throw new Error(`the chain publishes no constant ${pallet}.${name}`);
    return consts[name];
  }

  /** The events of block `blockHash` (0x-hex), decoded by the metadata: `[{pallet, name, fields, extrinsicIndex}]`. */
  async events(blockHash) {
    const raw = await this.call('state_getStorage', [toHex(this.storageKey('system', 'events')), blockHash]);
    if (!raw) return [];
    return unpack(fromHex(raw)).map((e) => decodeEvent(this.metadata, e, this.ss58Format));
  }

  /**
   * An account's licence from the identity pallet: `{ roles: ['prosumer', 'dso', ...], status:
   * 'active' | 'suspended' | 'revoked' }`, or null for an account without one. Role and status
   * names come from the pallet's metadata constants (`role_*`, `status_*`).
   */
  async roles(address) {
    const p = await this.storage('identity', 'participants', address);
    if (!p) return null;
    const consts = palletOf(this.metadata, 'identity').constants || {};
    const roles = Object.entries(consts)
      .filter(([k, bit]) => k.startsWith('role_') && (p.roles & bit) === bit && bit !== 0)
      .map(([k]) => k.slice(5));
    const status = Object.entries(consts).find(([k, v]) => k.startsWith('status_') && v === p.status);
    return { roles, status: status ? status[0].slice(7) : String(p.status) };
  }

  /** Re-read the runtime version, and the metadata when the spec version changed (an upgrade). */
  async refreshRuntime() {
    const rv = await this.call('state_getRuntimeVersion', []);
    if (!this.runtimeVersion || rv.specVersion !== this.runtimeVersion.specVersion) {
      this.metadata = await this.call('state_getMetadata', []);
    }
    this.runtimeVersion = rv;
    return rv;
  }

  /**
   * Build `pallet.call(args)` from the metadata, sign it with `keypair` in the browser and submit it
   * with author_submitAndWatchExtrinsic. `onStatus` hears `signing | ready | inBlock | finalized |
   * invalid | dropped`. Resolves when finalized to `{ hash, extrinsic, blockHash, success, error, events }`,
   * where `error` is the pallet's sentence when the call failed in its block (the fee is still paid).
   * Rejects when the node refuses the transaction (with the node's reason) or the connection drops.
   */
  async submit(keypair, pallet, call, args, { onStatus = () => {}, tip = 0, mortalPeriod = MORTAL_PERIOD } = {}) {
    onStatus('signing');
    const rv = await this.refreshRuntime();
    const plainCall = callFromMetadata(this.metadata, pallet, call, args);
    const [nonce, finalized] = await Promise.all([
      this.call('system_accountNextIndex', [toHex(keypair.publicKey)]),
      this.call('chain_getFinalizedHead', []),
    ]);
    let mortality = { birth: 0, period: 0 };
    let birthHash;
    if (mortalPeriod) {
      const header = await this.call('chain_getHeader', [finalized]);
      mortality = { birth: parseInt(header.number, 16), period: mortalPeriod };
      birthHash = fromHex(finalized, 32, 'block hash');
    }
    const xt = signExtrinsic(keypair, plainCall, {
      nonce: Number(nonce), tip, genesisHash: this.genesisHash, specVersion: rv.specVersion,
      transactionVersion: rv.transactionVersion, mortality, birthHash,
    });
    const xtHex = toHex(xt);
    const blockHash = await this.#watch(xtHex, onStatus);
    return { hash: toHex(extrinsicHash(xt)), extrinsic: xtHex, blockHash, ...await this.outcome(blockHash, xtHex) };
  }

  #watch(xtHex, onStatus) {
    return new Promise((resolve, reject) => {
      let stop = null;
      let done = false;
      const finish = (fn, value) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (stop) stop();
        fn(value);
      };
      const timer = setTimeout(() => finish(reject, new Error('the transaction was not finalized within two minutes')),
        WATCH_TIMEOUT_MS);
      const onUpdate = (status, error) => {
        if (error) {
          finish(reject, new ConnectionLostError('the connection to the node was lost before the transaction was final; '
            + 'check your balance and orders once it is back'));
          return;
        }
        const name = typeof status === 'string' ? status : Object.keys(status || {})[0];
        if (['ready', 'inBlock', 'finalized', 'invalid', 'dropped'].includes(name)) onStatus(name);
        if (name === 'finalized') finish(resolve, status.finalized);
        else if (name === 'invalid') finish(reject, new RpcError(1010, 'the node found the transaction invalid', null));
        else if (name === 'dropped' || name === 'usurped') finish(reject, new RpcError(-32000, `the node ${name} the transaction`, null));
      };
      this.#conn.subscribe('author_submitAndWatchExtrinsic', [xtHex], 'author_unwatchExtrinsic', onUpdate)
        .then((s) => { stop = s; if (done) s(); })
        .catch((e) => { onStatus('invalid'); finish(reject, e); });
    });
  }

  /**
   * Whether extrinsic `xtHex` succeeded in block `blockHash`: `{ success, error, events }` with the
   * events it emitted; `error` is the ExtrinsicFailed event's sentence.
   */
  async outcome(blockHash, xtHex) {
    const block = await this.call('chain_getBlock', [blockHash]);
    const index = block ? block.block.extrinsics.indexOf(xtHex) : -1;
    if (index < 0) return { success: null, error: null, events: [] };
    const raw = await this.call('state_getStorage', [toHex(this.storageKey('system', 'events')), blockHash]);
    const mine = (raw ? unpack(fromHex(raw)) : []).filter(([phase]) => Array.isArray(phase) && phase[0] === 1 && phase[1] === index);
    const events = mine.map((e) => decodeEvent(this.metadata, e, this.ss58Format));
    const failed = mine.find(([, p, e]) => {
      const sys = palletOf(this.metadata, 'system');
      const ev = (sys.events || []).find((x) => x.name === 'ExtrinsicFailed');
      return p === sys.index && ev && e === ev.index;
    });
    if (failed) return { success: false, error: errorSentence(this.metadata, failed[3][0]), events };
    return { success: true, error: null, events };
  }
}

function withHash(header) {
  return { ...header, number: parseInt(header.number, 16), hash: toHex(headerHash(header)) };
}

/** ws(s):// URL of a node given as ws(s)://, http(s):// or nothing (this page's origin). */
export function toWsUrl(url) {
  if (!url) {
    const loc = globalThis.location;
    if (!loc) throw new Error('no node URL given');
    return `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}/`;
  }
  const u = new URL(url);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  else if (u.protocol !== 'ws:' && u.protocol !== 'wss:') throw new Error(`${url} is not a ws://, wss://, http:// or https:// URL`);
  return u.toString();
}

export { ConnectionLostError, RpcError };
