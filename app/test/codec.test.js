// Canonical msgpack: the decoder refuses what the node's codec refuses (primitives/codec.py).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fromHex, pack, splitKeyPart, storageKey, toHex, unpack } from '../src/chain/index.js';

test('structs are arrays, bytes are bin, text is str, maps have sorted keys', () => {
  assert.equal(toHex(pack([1, new Uint8Array([0xab]), 'é', true, null])), '0x9501c401aba2c3a9c3c0');
  assert.equal(toHex(pack({ b: 1, a: 2 })), '0x82a16102a16201');
});

test('floats, unsafe numbers and values past 64 bits are refused when encoding', () => {
  assert.throws(() => pack(1.5), /not an integer/);
  assert.throws(() => pack(2 ** 60), /pass it as a BigInt/);
  assert.throws(() => pack(2n ** 64n), /does not fit in 64 bits/);
});

test('decoding refuses non-shortest integers, floats, ext types, trailing bytes and truncation', () => {
  assert.throws(() => unpack(fromHex('0xcc05')), /non-canonical/);          // 5 as uint8
  assert.throws(() => unpack(fromHex('0xcf0000000000000005')), /non-canonical/);
  assert.throws(() => unpack(fromHex('0xcb3ff8000000000000')), /a float/);
  assert.throws(() => unpack(fromHex('0xd40100')), /ext type/);
  assert.throws(() => unpack(fromHex('0xc1')), /reserved byte/);
  assert.throws(() => unpack(fromHex('0x0101')), /trailing bytes/);
  assert.throws(() => unpack(fromHex('0x9201')), /truncated/);
  assert.throws(() => unpack(fromHex('0xc40a00')), /truncated/);
  assert.throws(() => unpack(fromHex('0x82a16201a16102')), /non-canonical/);  // unsorted map keys
});

test('nesting is limited to 32 levels, as the node', () => {
  const nest = (n) => (n === 0 ? 1 : [nest(n - 1)]);
  assert.deepEqual(unpack(pack(nest(31))), nest(31));
  assert.throws(() => unpack(new Uint8Array([...new Array(33).fill(0x91), 0x01])), /deeper than 32/);
});

test('a map key part reads back from a full storage key', () => {
  const who = new Uint8Array(32).fill(7);
  const key = storageKey('balances', 'asset_balance', 1, who);
  const [first, next] = splitKeyPart(key, 32);
  assert.equal(first, 1);
  const [second, end] = splitKeyPart(key, next);
  assert.deepEqual(second, who);
  assert.equal(end, key.length);
});
