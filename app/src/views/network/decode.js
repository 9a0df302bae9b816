/**
 * Reading blocks for the explorer: an extrinsic's hash, signer and call named by the runtime's
 * metadata, and a block's author from its PreRuntime digest (docs/protocol.md sections 4 and 5).
 *
 * The node sends extrinsics and digest logs as hex of their canonical msgpack; nothing here trusts
 * the node for names: pallet and call names come from the metadata the page already holds.
 */
import { decode } from '@msgpack/msgpack';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';

/** `0x…` hex -> bytes (a missing prefix is accepted). */
export function fromHex(hex) {
  return hexToBytes(hex.startsWith('0x') ? hex.slice(2) : hex);
}

/** bytes -> `0x…` hex. */
export function toHex(bytes) {
  return '0x' + bytesToHex(bytes);
}

/** keccak-256 of bytes, as `0x…` hex: the hash of an extrinsic or of a sealed header. */
export function keccakHex(bytes) {
  return toHex(keccak_256(bytes));
}

/** A short form of a long hex string or address, for table cells (the full value goes in `title`). */
export function short(text, keep = 6) {
  const s = String(text ?? '');
  return s.length > 2 * keep + 3 ? `${s.slice(0, keep + 2)}…${s.slice(-keep)}` : s;
}

/** The pallet and call metadata entries for the indices of a call, or nulls. */
function callMeta(metadata, palletIndex, callIndex) {
  const pallet = (metadata?.pallets || []).find((p) => p.index === palletIndex) || null;
  const call = pallet ? (pallet.calls || []).find((c) => c.index === callIndex) || null : null;
  return { pallet, call };
}

/** A decoded value made readable: bytes as hex (or an SS58 address for an AccountId argument). */
function render(value, type, toAddress) {
  if (value instanceof Uint8Array) {
    return type === 'AccountId' && value.length === 32 ? toAddress(value) : toHex(value);
  }
  if (Array.isArray(value)) return value.map((v) => render(v, null, toAddress));
  if (typeof value === 'bigint') return value.toString();
  return value;
}

/**
 * One extrinsic of a block: `{ hash, index, signed, signer, nonce, tip, pallet, call, args }`.
 * `toAddress(publicKey)` turns a 32-byte account into its SS58 address. An extrinsic the page cannot
 * decode is still listed by its hash, with `error` saying why.
 */
export function decodeExtrinsic(hex, index, metadata, toAddress) {
  const bytes = fromHex(hex);
  const out = { index, hash: keccakHex(bytes), length: bytes.length, signed: false, signer: null };
  try {
    const [, signature, call] = decode(bytes, { useBigInt64: true });
    if (Array.isArray(signature)) {
      out.signed = true;
      out.signer = toAddress(signature[0]);
      out.nonce = Number(signature[3]);
      out.tip = String(signature[4]);
    }
    const [palletIndex, callIndex, args] = call;
    const { pallet, call: meta } = callMeta(metadata, Number(palletIndex), Number(callIndex));
    out.pallet = pallet ? pallet.name : `pallet ${palletIndex}`;
    out.call = meta ? meta.name : `call ${callIndex}`;
    const argMeta = meta ? meta.args || [] : [];
    out.args = Object.fromEntries((args || []).map((v, i) => [
      argMeta[i]?.name ?? `arg${i}`, render(v, argMeta[i]?.type, toAddress)]));
  } catch (e) {
    out.error = `cannot decode: ${e.message}`;
  }
  return out;
}

/** The author of a block: the data of its PreRuntime (kind 6) digest item, as an address. */
export function authorOf(header, toAddress) {
  for (const log of header?.digest?.logs || []) {
    try {
      const [kind, , data] = decode(fromHex(log));
      if (kind === 6 && data instanceof Uint8Array && data.length === 32) return toAddress(data);
    } catch {
      // a digest item of a format this page does not know names no author
    }
  }
  return null;
}

/** Height of a header: the library's subscriptions give `number` as an integer, `chain_getHeader` as hex. */
export function heightOf(header) {
  return typeof header.number === 'number' ? header.number : Number.parseInt(header.number, 16);
}
