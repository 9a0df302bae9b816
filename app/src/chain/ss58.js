// SS58 addresses (docs/protocol.md §3): Substrate's base58-with-checksum format, with gridchain's
// network prefix, so existing SS58 tools decode them to the same 32-byte public key.
import { base58 } from '@scure/base';
import { blake2b } from '@noble/hashes/blake2.js';
import { concatBytes, equalBytes } from './bytes.js';

/** gridchain's SS58 network prefix (the chain's `system_properties.ss58Format`). */
export const GRIDCHAIN_SS58_PREFIX = 6236;

const CONTEXT = new TextEncoder().encode('SS58PRE');

function prefixBytes(prefix) {
  if (!Number.isInteger(prefix) || prefix < 0 || prefix >= 16384) {
    throw new Error(`SS58 prefix ${prefix} is out of range (0..16383)`);
  }
  if (prefix < 64) return Uint8Array.of(prefix);
  return Uint8Array.of(((prefix & 0b1111_1100) >> 2) | 0b0100_0000, (prefix >> 8) | ((prefix & 0b11) << 6));
}

function checksum(data) {
  return blake2b(concatBytes(CONTEXT, data), { dkLen: 64 }).slice(0, 2);
}

/** The SS58 address of a 32-byte public key (gridchain's prefix unless another is given). */
export function ss58Encode(publicKey, prefix = GRIDCHAIN_SS58_PREFIX) {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) {
    throw new Error('an account id is 32 bytes');
  }
  const data = concatBytes(prefixBytes(prefix), publicKey);
  return base58.encode(concatBytes(data, checksum(data)));
}

/**
 * `{ publicKey, prefix }` of an SS58 address, any network prefix. Throws an Error with a sentence
 * for anything that is not an address (bad characters, length or checksum).
 */
export function ss58DecodeWithPrefix(address) {
  let raw;
  try {
    raw = base58.decode(String(address).trim());
  } catch {
    throw new Error(`"${address}" is not an address: it has characters that base58 does not use`);
  }
  if (raw.length === 0) throw new Error('an address must not be empty');
  let prefix; let plen;
  if (raw[0] < 64) {
    prefix = raw[0]; plen = 1;
  } else if (raw[0] < 128 && raw.length > 1) {
    prefix = (((raw[0] << 2) | (raw[1] >> 6)) & 0xff) | ((raw[1] & 0b0011_1111) << 8);
    plen = 2;
  } else {
    throw new Error(`"${address}" is not an address: unknown SS58 format`);
  }
  if (raw.length !== plen + 32 + 2) throw new Error(`"${address}" is not an address: wrong length`);
  const body = raw.slice(0, -2);
  if (!equalBytes(checksum(body), raw.slice(-2))) {
    throw new Error(`"${address}" is not an address: its checksum does not match (a character is wrong)`);
  }
  return { publicKey: body.slice(plen), prefix };
}

/**
 * The 32-byte public key of an SS58 address. With `prefix` given (gridchain's by default), the
 * address must be for that network; pass `null` to accept any.
 */
export function ss58Decode(address, prefix = GRIDCHAIN_SS58_PREFIX) {
  const { publicKey, prefix: got } = ss58DecodeWithPrefix(address);
  if (prefix !== null && prefix !== undefined && got !== prefix) {
    throw new Error(`"${address}" is an address of network ${got}, not of this chain (${prefix})`);
  }
  return publicKey;
}
