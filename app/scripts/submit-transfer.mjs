// Submit a balances.transfer built and signed by the browser's chain library, from Node.js, and print
// what the page would see as one JSON line. tests/test_app_library.py runs it against a real dev node
// to prove the node accepts the browser's bytes:
//
//   node [--experimental-websocket] scripts/submit-transfer.mjs ws://127.0.0.1:9944 //Bob <dest> <amount>
//
// Node 20 keeps its WebSocket class (the browser's API) behind --experimental-websocket.
import { Chain, keypairFromUri } from '../src/chain/index.js';

const [url, uri, dest, amount] = process.argv.slice(2);
if (!url || !uri || !dest || !amount) {
  console.error('usage: submit-transfer.mjs <ws url> <secret uri> <destination address> <amount in smallest units>');
  process.exit(2);
}
const connection = [];
const chain = await Chain.connect(url, { onStatus: (s) => connection.push(s) });
try {
  const keypair = keypairFromUri(uri);
  const finalized = [];
  const stop = chain.subscribeFinalizedHeads((h) => finalized.push(h));
  const before = await chain.storage('system', 'account', dest);
  const statuses = [];
  let result;
  try {
    result = await chain.submit(keypair, 'balances', 'transfer', { dest, amount: BigInt(amount) },
      { onStatus: (s) => statuses.push(s) });
  } catch (e) {
    // the node refused it (an invalid transaction): what the page would show
    console.log(JSON.stringify({ rejected: e.message, code: e.code ?? null, statuses }));
    process.exit(0);
  }
  const after = await chain.storage('system', 'account', dest);
  const blockEvents = await chain.events(result.blockHash);
  stop();
  console.log(JSON.stringify({
    ...result, statuses, connection, chainName: chain.chainName, runtimeVersion: chain.runtimeVersion,
    destFreeBefore: String(before ? before.free : 0), destFreeAfter: String(after ? after.free : 0),
    blockEvents: blockEvents.length, finalizedHeads: finalized.map((h) => [h.number, h.hash]),
    senderRoles: await chain.roles(keypair.address),
  }, (k, v) => (typeof v === 'bigint' ? v.toString() : v)));
} finally {
  chain.close();
}
