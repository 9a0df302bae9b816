// The Chain's connection policy (reconnects, the pinned genesis hash, statuses, subscriptions kept
// across reconnections), driven through a scripted stand-in for the browser's WebSocket class. The
// real node is exercised by scripts/submit-transfer.mjs from tests/test_app_library.py.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Chain, toWsUrl } from '../src/chain/index.js';

const GENESIS_A = '0x' + 'aa'.repeat(32);
const GENESIS_B = '0x' + 'bb'.repeat(32);
const HEADER = {
  parentHash: '0x' + '11'.repeat(32), number: '0x5', stateRoot: '0x' + '22'.repeat(32),
  extrinsicsRoot: '0x' + '33'.repeat(32), digest: { logs: [] },
};

/** A node behind a fake WebSocket class: answers the bootstrap calls; `up`, `genesis` can change. */
function fakeNode() {
  const node = { up: true, genesis: GENESIS_A, sockets: [], subscriptions: 0 };
  node.WebSocket = class {
    constructor(url) {
      this.url = url;
      node.sockets.push(this);
      setTimeout(() => {
        if (node.up) this.onopen?.();
        else { this.onerror?.(); this.onclose?.(); }
      }, 1);
    }

    send(text) {
      const reqs = [].concat(JSON.parse(text));
      const answer = (r) => {
        const results = {
          chain_getBlockHash: node.genesis, system_chain: 'Development', system_chainType: 'Development',
          system_properties: { ss58Format: 6236 }, state_getRuntimeVersion: { specVersion: 1, transactionVersion: 1 },
          state_getMetadata: { pallets: [], types: {} }, chain_subscribeFinalizedHeads: `sub${++node.subscriptions}`,
          chain_unsubscribeFinalizedHeads: true,
        };
        return { jsonrpc: '2.0', id: r.id, result: results[r.method] };
      };
      const out = reqs.map(answer);
      setTimeout(() => {
        this.onmessage?.({ data: JSON.stringify(Array.isArray(JSON.parse(text)) ? out : out[0]) });
        for (const r of reqs) {
          if (r.method === 'chain_subscribeFinalizedHeads') {
            const sub = `sub${node.subscriptions}`;
            this.onmessage?.({ data: JSON.stringify({ jsonrpc: '2.0', method: 'chain_finalizedHead', params: { subscription: sub, result: HEADER } }) });
          }
        }
      }, 1);
    }

    close() { setTimeout(() => this.onclose?.(), 1); }
  };
  node.drop = () => node.sockets.at(-1).close();
  return node;
}

const waitFor = async (cond, what) => {
  for (let i = 0; i < 400; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
};

test('connects, reads the chain, and keeps a finalized-heads subscription across a reconnection', async () => {
  const node = fakeNode();
  const statuses = [];
  const chain = await Chain.connect('http://127.0.0.1:9944', { onStatus: (s) => statuses.push(s), WebSocket: node.WebSocket });
  try {
    assert.equal(node.sockets[0].url, 'ws://127.0.0.1:9944/');
    assert.equal(chain.chainName, 'Development');
    assert.deepEqual(chain.runtimeVersion, { specVersion: 1, transactionVersion: 1 });
    const heads = [];
    chain.subscribeFinalizedHeads((h) => heads.push(h));
    await waitFor(() => heads.length === 1, 'the first head');
    assert.equal(heads[0].number, 5);
    assert.match(heads[0].hash, /^0x[0-9a-f]{64}$/);
    node.drop();
    await waitFor(() => heads.length === 2, 'a head after reconnecting');
    assert.deepEqual(statuses, ['connecting', 'connected', 'reconnecting', 'connected']);
  } finally {
    chain.close();
  }
});

test('a node on another chain is reported as wrong-chain, and an absent one as unreachable', async () => {
  const node = fakeNode();
  const statuses = [];
  const chain = await Chain.connect('ws://127.0.0.1:9944', { onStatus: (s) => statuses.push(s), WebSocket: node.WebSocket });
  try {
    node.genesis = GENESIS_B;
    node.drop();
    await waitFor(() => statuses.includes('wrong-chain'), 'wrong-chain');
    await assert.rejects(chain.call('system_health'), /not connected/);
    node.up = false;
    await waitFor(() => statuses.includes('unreachable'), 'unreachable');
    node.genesis = GENESIS_A;
    node.up = true;
    await waitFor(() => statuses.at(-1) === 'connected', 'connected again on its own chain');
    assert.equal(await chain.call('chain_getBlockHash', [0]), GENESIS_A);
  } finally {
    chain.close();
  }
});

test('node URLs: http becomes ws, the rest is refused with a sentence', () => {
  assert.equal(toWsUrl('https://node.example:443/'), 'wss://node.example/');
  assert.equal(toWsUrl('ws://127.0.0.1:9944'), 'ws://127.0.0.1:9944/');
  assert.throws(() => toWsUrl('ftp://x'), /not a ws:\/\/, wss:\/\/, http:\/\/ or https:\/\/ URL/);
});
