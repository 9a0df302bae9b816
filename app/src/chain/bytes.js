// Byte helpers shared by the chain library: 0x-hex in and out, concatenation, comparison.
// The node's JSON-RPC writes every byte string as 0x-prefixed lower-case hex.
import { bytesToHex, concatBytes, hexToBytes, utf8ToBytes } from '@noble/hashes/utils.js';

export { concatBytes, utf8ToBytes };

/** `0x`-prefixed lower-case hex of a byte array. */
export function toHex(bytes) {
  return '0x' + bytesToHex(bytes);
}

/**
 * Bytes of a `0x`-hex string (or a copy of a Uint8Array); `length`, if given, is checked.
 * Throws an Error whose message names `what`, fit to show on a page.
 */
export function fromHex(value, length, what = 'value') {
  let out;
  if (value instanceof Uint8Array) {
    out = Uint8Array.from(value);
  } else if (typeof value === 'string' && /^0x([0-9a-fA-F]{2})*$/.test(value)) {
    out = hexToBytes(value.slice(2));
  } else {
    throw new Error(`${what} is not 0x-prefixed hex`);
  }
  if (length !== undefined && out.length !== length) {
    throw new Error(`${what} must be ${length} bytes, not ${out.length}`);
  }
  return out;
}

/** Whether two byte arrays hold the same bytes. */
export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
