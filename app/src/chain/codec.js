// Canonical msgpack (docs/protocol.md §1), the one encoding of everything gridchain hashes or signs:
// structs are arrays in field order, bytes are `bin`, text is `str`, integers in their shortest form,
// no floats, maps only with sorted keys. Also keccak-256 (§2) and storage keys (§6).
//
// Integers: JavaScript numbers are exact only up to 2^53, and chain values are u64 (a native
// balance with 9 decimals passes 2^53 at 9 million tokens). So the library hands out an integer as a
// Number when it is a safe integer and as a BigInt above that, and accepts either when encoding.
import { decode as mpDecode, encode as mpEncode } from '@msgpack/msgpack';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { concatBytes, equalBytes } from './bytes.js';

/** Deepest array/map nesting a decoded value may have, as the node's codec (MAX_NESTING_DEPTH). */
export const MAX_NESTING_DEPTH = 32;

const U32_LIMIT = 2 ** 32;
const I32_MIN = -(2 ** 31);
const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);

/** keccak-256 (Ethereum's, not NIST SHA3-256) of `data`. */
export function keccak256(data) {
  return keccak_256(data);
}

/** An integer as the library hands it out: a Number if it is safe, else a BigInt. */
export function normalizeInt(n) {
  if (typeof n === 'bigint') {
    return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
  }
  return n;
}

// Prepare a value for @msgpack/msgpack (with useBigInt64) so that it writes the shortest integer
// forms: numbers past 32 bits go as BigInt (written as 64-bit), BigInts that fit in 32 bits as numbers.
function prepare(value, depth) {
  if (depth > MAX_NESTING_DEPTH) throw new Error(`value nested deeper than ${MAX_NESTING_DEPTH} levels`);
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new Error(`${value} is not an integer: canonical encoding has no floats`);
    if (!Number.isSafeInteger(value)) throw new Error(`${value} is not an exact integer: pass it as a BigInt`);
    return value >= U32_LIMIT || value < I32_MIN ? BigInt(value) : value;
  }
  if (typeof value === 'bigint') {
    if (value > U64_MAX || value < I64_MIN) throw new Error(`${value} does not fit in 64 bits`);
    return value < BigInt(U32_LIMIT) && value >= BigInt(I32_MIN) ? Number(value) : value;
  }
  if (value === null || value === undefined) return null;
  if (typeof value === 'string' || typeof value === 'boolean' || value instanceof Uint8Array) return value;
  if (Array.isArray(value)) return value.map((v) => prepare(v, depth + 1));
  if (value instanceof Map) throw new Error('maps are encoded from plain objects with string keys');
  if (typeof value === 'object') {
    const out = {};
    for (const k of Object.keys(value).sort()) out[k] = prepare(value[k], depth + 1);
    return out;
  }
  throw new Error(`cannot encode a ${typeof value} in canonical msgpack`);
}

/** Canonical msgpack of plain data: integers, Uint8Array, strings, booleans, null, arrays, objects. */
export function pack(value) {
  return mpEncode(prepare(value, 1), { useBigInt64: true, sortKeys: true, ignoreUndefined: false });
}

// Walk msgpack headers from `start` over one value without building anything, as the node's codec
// does before decoding: refuse floats, ext types, the reserved byte, nesting past MAX_NESTING_DEPTH
// and lengths past the input. Returns the offset just past the value.
export function valueEnd(data, start = 0) {
  const end = data.length;
  let pos = start;
  const remaining = [1];
  const be = (at, width) => {
    let n = 0;
    for (let i = 0; i < width; i++) n = n * 256 + data[at + i];
    return n;
  };
  while (remaining.length) {
    if (remaining[remaining.length - 1] === 0) { remaining.pop(); continue; }
    remaining[remaining.length - 1] -= 1;
    if (pos >= end) throw new Error('truncated msgpack');
    const b = data[pos];
    let kind; let header = 1; let n = 0;
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) { pos += 1; continue; }
    if (b >= 0xcc && b <= 0xd3) { pos += [2, 3, 5, 9][(b - 0xcc) % 4]; continue; }
    if (b >= 0x80 && b <= 0x8f) { kind = 'map'; n = b & 0x0f; }
    else if (b >= 0x90 && b <= 0x9f) { kind = 'array'; n = b & 0x0f; }
    else if (b >= 0xa0 && b <= 0xbf) { kind = 'blob'; n = b & 0x1f; }
    else {
      const widths = { 0xc4: 1, 0xc5: 2, 0xc6: 4, 0xd9: 1, 0xda: 2, 0xdb: 4, 0xdc: 2, 0xdd: 4, 0xde: 2, 0xdf: 4 };
      const w = widths[b];
      if (w === undefined) {
        const what = b === 0xca || b === 0xcb ? 'a float' : b === 0xc1 ? 'the reserved byte' : 'an ext type';
        throw new Error(`${what} (0x${b.toString(16)}) is not allowed in canonical encoding`);
      }
      if (pos + 1 + w > end) throw new Error('truncated msgpack');
      n = be(pos + 1, w);
      header = 1 + w;
      kind = b <= 0xc6 || (b >= 0xd9 && b <= 0xdb) ? 'blob' : b <= 0xdd ? 'array' : 'map';
    }
    pos += header;
    if (kind === 'blob') { pos += n; continue; }
    if (remaining.length > MAX_NESTING_DEPTH) throw new Error(`nested deeper than ${MAX_NESTING_DEPTH} levels`);
    if (n) {
      if (pos + n > end) throw new Error('truncated msgpack');
      remaining.push(kind === 'map' ? n * 2 : n);
    }
  }
  if (pos > end) throw new Error('truncated msgpack');
  return pos;
}

function checkStructure(data) {
  if (valueEnd(data, 0) !== data.length) throw new Error('trailing bytes after the encoded value');
}

function normalize(value) {
  if (typeof value === 'bigint') return normalizeInt(value);
  if (Array.isArray(value)) return value.map(normalize);
  if (value !== null && typeof value === 'object' && !(value instanceof Uint8Array)) {
    const out = {};
    for (const k of Object.keys(value)) out[k] = normalize(value[k]);
    return out;
  }
  return value;
}

/**
 * Decode canonical msgpack strictly, as the node does: no floats or ext types, no trailing bytes,
 * and the bytes must be the value's one canonical encoding (decode, re-encode, compare).
 */
export function unpack(data) {
  checkStructure(data);
  let value;
  try {
    value = mpDecode(data, { useBigInt64: true });
  } catch (e) {
    throw new Error(`malformed msgpack: ${e.message}`);
  }
  value = normalize(value);
  if (!equalBytes(pack(value), data)) throw new Error('non-canonical msgpack encoding');
  return value;
}

/** Read one map key part (`keccak256(enc)[0:16] || enc`) at `offset`: `[plain key, offset after it]`. */
export function splitKeyPart(key, offset) {
  const after = valueEnd(key, offset + 16);
  return [unpack(key.subarray(offset + 16, after)), after];
}

/** One map key part of a storage key: keccak256(enc(k))[0:16] || enc(k) (docs/protocol.md §6). */
export function keyPart(plainKey) {
  const enc = pack(plainKey);
  return concatBytes(keccak256(enc).slice(0, 16), enc);
}

/** The 32-byte prefix of a storage item: keccak256(pallet)[0:16] || keccak256(item)[0:16]. */
export function storagePrefix(pallet, item) {
  const te = new TextEncoder();
  return concatBytes(keccak256(te.encode(pallet)).slice(0, 16), keccak256(te.encode(item)).slice(0, 16));
}

/** A full storage key: the item's prefix then one key part per plain key (docs/protocol.md §6). */
export function storageKey(pallet, item, ...plainKeys) {
  return concatBytes(storagePrefix(pallet, item), ...plainKeys.map(keyPart));
}
