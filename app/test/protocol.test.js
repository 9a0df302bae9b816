// Every protocol vector the browser computes, against the Python implementation's values.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  callFromMetadata, convertArg, decodeEvent, extrinsicHash, fromHex, headerHash, keccak256, keypairFromSeed,
  keypairFromUri, pack, render, secretSeedFromUri, signExtrinsic, signingMessage, signingPayload, ss58Decode,
  ss58DecodeWithPrefix, ss58Encode, storageKey, storageKeyOf, toHex, unpack, verify,
} from '../src/chain/index.js';
import { jsonish, vectors } from './_vectors.js';

const V = () => vectors().protocol;
const GENESIS = () => fromHex(vectors().genesisHash);

test('keccak-256 is the original Keccak', () => {
  assert.equal(toHex(keccak256(new Uint8Array())), '0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470');
});

test('//Alice: seed, public key, SS58 address, and Bob', () => {
  assert.equal(toHex(secretSeedFromUri('//Alice')), V()['alice.seed']);
  const alice = keypairFromUri('//Alice');
  assert.equal(toHex(alice.publicKey), V()['alice.public']);
  assert.equal(alice.address, V()['alice.ss58']);
  assert.equal(toHex(keypairFromUri('//Bob').publicKey), V()['bob.public']);
});

test('keys from URIs and mnemonics match the Python derivation (hard junctions, numbers, long names, passphrase, 0x seeds)', () => {
  for (const k of vectors().keys) {
    assert.equal(toHex(secretSeedFromUri(k.uri)), k.seed, k.uri);
    const kp = keypairFromUri(k.uri);
    assert.equal(toHex(kp.publicKey), k.publicKey, k.uri);
    assert.equal(kp.address, k.ss58, k.uri);
    assert.equal(ss58Encode(kp.publicKey, 42), k.ss58Generic, k.uri);
    assert.equal(toHex(kp.sign(new TextEncoder().encode('gridchain'))), k.signature, k.uri);
  }
});

test('SS58 decodes back, for gridchain and the generic prefix, and refuses a changed character', () => {
  for (const k of vectors().keys) {
    assert.equal(toHex(ss58Decode(k.ss58)), k.publicKey);
    assert.deepEqual(ss58DecodeWithPrefix(k.ss58Generic).prefix, 42);
    assert.throws(() => ss58Decode(k.ss58Generic), /network 42/);
  }
  const a = V()['alice.ss58'];
  const changed = a.slice(0, 10) + (a[10] === 'z' ? 'y' : 'z') + a.slice(11);
  assert.throws(() => ss58Decode(changed), /checksum|length/);
});

test('extrinsic: call, payload, signed message, signature, bytes and hash of the transfer vector', () => {
  const alice = keypairFromUri('//Alice');
  const md = vectors().metadata;
  const call = callFromMetadata(md, 'balances', 'transfer', { dest: keypairFromUri('//Bob').address, amount: 1000000 });
  assert.equal(toHex(pack(call)), V().call);
  const payload = signingPayload(call, { nonce: 0, tip: 0, specVersion: 1, transactionVersion: 1, birthHash: GENESIS() });
  assert.equal(toHex(payload), V().payload);
  const message = signingMessage('gridchain/extrinsic/v1', GENESIS(), payload);
  assert.equal(toHex(message), V().message);
  assert.equal(toHex(alice.sign(message)), V().signature);
  assert.ok(verify(alice.publicKey, alice.sign(message), message));
  const xt = signExtrinsic(alice, call, { nonce: 0, genesisHash: GENESIS(), specVersion: 1, transactionVersion: 1 });
  assert.equal(toHex(xt), V().extrinsic);
  assert.equal(toHex(extrinsicHash(xt)), V()['extrinsic.hash']);
});

test('calls built from the metadata by name and argument types match rpc/client.py', () => {
  const md = vectors().metadata;
  for (const c of vectors().calls) {
    assert.equal(toHex(pack(callFromMetadata(md, c.pallet, c.call, c.args))), c.encoded, `${c.pallet}.${c.call}`);
    const ordered = md.pallets.find((p) => p.name === c.pallet).calls.find((x) => x.name === c.call).args.map((a) => c.args[a.name]);
    assert.equal(toHex(pack(callFromMetadata(md, c.pallet, c.call, ordered))), c.encoded, 'arguments as an array');
  }
  const n = vectors().nestedCall;
  const inner = callFromMetadata(md, n.inner.pallet, n.inner.call, n.inner.args);
  assert.equal(toHex(pack(callFromMetadata(md, n.outer.pallet, n.outer.call, { call: inner }))), n.encoded);
});

test('bad call arguments are refused with a sentence naming the argument', () => {
  const md = vectors().metadata;
  const bob = keypairFromUri('//Bob').address;
  assert.throws(() => callFromMetadata(md, 'balances', 'transfer', { dest: bob, amount: 1.5 }), /amount: expected a whole number/);
  assert.throws(() => callFromMetadata(md, 'balances', 'transfer', { dest: bob, amount: -1 }), /amount: -1 is out of range for u64/);
  assert.throws(() => callFromMetadata(md, 'balances', 'transfer', { dest: bob, amount: 2n ** 64n }), /out of range for u64/);
  assert.throws(() => callFromMetadata(md, 'balances', 'transfer', { dest: 'not-an-address', amount: 1 }), /dest: /);
  assert.throws(() => callFromMetadata(md, 'balances', 'transfer', { dest: bob }), /needs amount/);
  assert.throws(() => callFromMetadata(md, 'balances', 'transfer', { dest: bob, amount: 1, memo: 'x' }), /no argument memo/);
  assert.throws(() => callFromMetadata(md, 'balances', 'teleport', {}), /no call of balances teleport/);
  assert.throws(() => callFromMetadata(md, 'market', 'place_bid', {
    zone: 1, interval_start: 0, price_per_kwh: 1, quantity_wh: 1, meter: '0x00', green_only: false,
  }), /meter must be 32 bytes/);
});

test('storage keys: prefixes, maps and double maps from the metadata', () => {
  const md = vectors().metadata;
  for (const s of vectors().storage) {
    assert.equal(toHex(storageKeyOf(md, s.pallet, s.item, ...s.keys)), s.key, `${s.pallet}.${s.item}`);
  }
  const alice = keypairFromUri('//Alice');
  assert.equal(toHex(storageKey('system', 'account', alice.publicKey)), V()['key.system.account.alice']);
  assert.equal(toHex(storageKey('balances', 'asset_balance', 1, alice.publicKey)), V()['key.balances.asset_balance.1.alice']);
  for (const name of ['key.timestamp.now', 'key.validators.validators', 'key.validators.set_id', 'key.validators.effective_from']) {
    const [, pallet, item] = name.split('.');
    assert.equal(toHex(storageKey(pallet, item)), V()[name]);
  }
});

test('integers take their shortest msgpack form, BigInt past 2^53', () => {
  for (const { value, encoded } of vectors().integers) {
    const v = typeof value === 'string' ? BigInt(value) : value;
    assert.equal(toHex(pack(v)), encoded, String(value));
    assert.equal(jsonish(unpack(fromHex(encoded))), value);
  }
});

test('every struct of the metadata: decoded and rendered as the wallet renders it, and encoded back to the same bytes', () => {
  const md = vectors().metadata;
  assert.ok(vectors().values.length >= 20);
  for (const v of vectors().values) {
    const rendered = render(md, v.type, unpack(fromHex(v.encoded)));
    assert.deepEqual(jsonish(rendered), v.rendered, v.type);
    assert.equal(toHex(pack(convertArg(md, v.type, rendered, v.type))), v.encoded, `${v.type} encoded from its rendering`);
  }
  const account = unpack(fromHex(V()['value.account']));
  assert.deepEqual(render(md, 'AccountInfo', account), { nonce: 3, free: 5000000, reserved: 0 });
  assert.equal(toHex(pack(convertArg(md, 'AccountInfo', { nonce: 3, free: 5000000, reserved: 0 }))), V()['value.account']);
});

test('events decode by the metadata, accounts as addresses, failures with their sentence', () => {
  const md = vectors().metadata;
  const raw = unpack(fromHex(vectors().events.encoded));
  const decoded = raw.map((e) => decodeEvent(md, e));
  assert.deepEqual(decoded.map(({ pallet, name, fields }) => jsonish({ pallet, name, fields })), vectors().events.decoded);
  assert.deepEqual(decoded.map((e) => e.extrinsicIndex), [null, 1, 2, null]);
});

test('a header\'s hash from its JSON shape is the block hash', () => {
  assert.equal(toHex(headerHash(vectors().headerJson)), V()['header.hash']);
});

test('a key pair from a seed signs what the node verifies (vote vector)', () => {
  const v1 = keypairFromSeed(fromHex(V()['bls.validator1.seed']));
  assert.equal(toHex(v1.publicKey), V()['vote.validator']);
  const message = signingMessage('gridchain/vote/v1', GENESIS(), fromHex(V()['vote.payload']));
  assert.equal(toHex(message), V()['vote.message']);
  assert.equal(toHex(v1.sign(message)), V()['vote.signature']);
});
