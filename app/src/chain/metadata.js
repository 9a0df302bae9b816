// The runtime metadata (`state_getMetadata`, JSON) tells a client everything it needs to build calls
// and read state: each pallet's index, calls with typed arguments, storage items with their key prefix
// and key and value types, events, errors with their sentences, constants, and the struct types
// (docs/protocol.md §4 and §6; wallet/chain.py and rpc/client.py are the Python readings of it).
//
// Values read from the chain are rendered for the page: structs as objects by field name, accounts
// (type "AccountId") as SS58 addresses, other bytes as 0x-hex, u64 as a Number (a BigInt past 2^53),
// u128 likewise, tuples as arrays, options as the value or null.
import { fromHex, toHex } from './bytes.js';
import { keyPart, normalizeInt, storagePrefix } from './codec.js';
import { GRIDCHAIN_SS58_PREFIX, ss58DecodeWithPrefix, ss58Encode } from './ss58.js';

export const ACCOUNT_TYPE = 'AccountId';
const FIXED_BYTES = /^\[u8;\s*(\d+)\]$/;
const UINT = /^u(8|16|32|64)$/;

function toBytes(v, name, length) {
  if (v instanceof Uint8Array) {
    if (length !== undefined && v.length !== length) throw new Error(`${name}: expected ${length} bytes, got ${v.length}`);
    return v;
  }
  if (typeof v === 'string' && /^0x/i.test(v)) return fromHex(v, length, name);
  if (typeof v === 'string' && length === 32) {
    try {
      return ss58DecodeWithPrefix(v).publicKey;
    } catch (e) {
      throw new Error(`${name}: ${e.message}`);
    }
  }
  throw new Error(`${name}: expected bytes as 0x-hex${length === 32 ? ' or an address' : ''}`);
}

function toUint(v, bits, name) {
  let n = v;
  if (typeof n === 'string' && /^\d+$/.test(n.trim())) n = BigInt(n.trim());
  if (typeof n === 'number' && !Number.isSafeInteger(n)) throw new Error(`${name}: expected a whole number, got ${v}`);
  if (typeof n !== 'number' && typeof n !== 'bigint') throw new Error(`${name}: expected a whole number, got ${typeof v}`);
  const big = BigInt(n);
  if (big < 0n || big >= 1n << BigInt(bits)) throw new Error(`${name}: ${v} is out of range for u${bits}`);
  return normalizeInt(big);
}

/** A value given by the page turned into the plain msgpack value of metadata type `t`. */
export function convertArg(metadata, t, v, name = 'argument') {
  if (typeof t === 'string') {
    const m = UINT.exec(t);
    if (m) return toUint(v, Number(m[1]), name);
    if (t === 'u128') {
      const big = BigInt(toUint(v, 128, name));
      const out = new Uint8Array(16);
      for (let i = 15, x = big; i >= 0; i--, x >>= 8n) out[i] = Number(x & 0xffn);
      return out;
    }
    if (t === 'bool') {
      if (typeof v !== 'boolean') throw new Error(`${name}: expected true or false`);
      return v;
    }
    if (t === ACCOUNT_TYPE) return toBytes(v, name, 32);
    const fixed = FIXED_BYTES.exec(t);
    if (fixed) return toBytes(v, name, Number(fixed[1]));
    if (t === 'str') {
      if (typeof v !== 'string') throw new Error(`${name}: expected text`);
      return v;
    }
    if (t === 'bytes') return toBytes(v, name);
    if (t === 'raw') return v;
    const fields = (metadata.types || {})[t];
    if (!fields) throw new Error(`${name}: the chain's metadata does not describe type ${t}`);
    if (Array.isArray(v)) {
      if (v.length !== fields.length) throw new Error(`${name}: a ${t} has ${fields.length} fields`);
      return fields.map((f, i) => convertArg(metadata, f.type, v[i], `${name}.${f.name}`));
    }
    if (v && typeof v === 'object') {
      return fields.map((f) => {
        if (!(f.name in v)) throw new Error(`${name}: missing field ${f.name} of ${t}`);
        return convertArg(metadata, f.type, v[f.name], `${name}.${f.name}`);
      });
    }
    throw new Error(`${name}: expected a ${t}`);
  }
  if (t && typeof t === 'object') {
    if ('option' in t) return v === null || v === undefined ? null : convertArg(metadata, t.option, v, name);
    if ('vec' in t) {
      if (!Array.isArray(v)) throw new Error(`${name}: expected a list`);
      if (t.maxLen !== undefined && v.length > t.maxLen) throw new Error(`${name}: at most ${t.maxLen} items`);
      return v.map((x, i) => convertArg(metadata, t.vec, x, `${name}[${i}]`));
    }
    if ('tuple' in t) {
      if (!Array.isArray(v) || v.length !== t.tuple.length) throw new Error(`${name}: expected ${t.tuple.length} items`);
      return t.tuple.map((tt, i) => convertArg(metadata, tt, v[i], `${name}[${i}]`));
    }
    if ('bytes' in t) {
      const b = toBytes(v, name);
      if (b.length > t.bytes.maxLen) throw new Error(`${name}: at most ${t.bytes.maxLen} bytes`);
      return b;
    }
    if ('str' in t) {
      if (typeof v !== 'string') throw new Error(`${name}: expected text`);
      if (new TextEncoder().encode(v).length > t.str.maxLen) throw new Error(`${name}: at most ${t.str.maxLen} bytes of text`);
      return v;
    }
  }
  throw new Error(`${name}: unsupported metadata type ${JSON.stringify(t)}`);
}

function findByName(items, name, what) {
  const exact = items.find((it) => it.name === name);
  if (exact) return exact;
  const folded = String(name).replaceAll('_', '').toLowerCase();
  const loose = items.find((it) => String(it.name).replaceAll('_', '').toLowerCase() === folded);
  if (loose) return loose;
  throw new Error(`the chain has no ${what} ${name}`);
}

/** A pallet's metadata by name. */
export function palletOf(metadata, pallet) {
  return findByName(metadata.pallets || [], pallet, 'pallet');
}

/**
 * The plain call `[pallet index, call index, [args]]` of `pallet.call(args)`: the call looked up by
 * name in the metadata and `args` (an object by argument name, or an array in declared order)
 * converted by their declared types, as rpc/client.py's call_from_metadata does.
 */
export function callFromMetadata(metadata, pallet, call, args) {
  const p = palletOf(metadata, pallet);
  const c = findByName(p.calls || [], call, `call of ${p.name}`);
  const decl = c.args || [];
  let values;
  if (Array.isArray(args)) {
    if (args.length !== decl.length) throw new Error(`${p.name}.${c.name} takes ${decl.length} arguments, got ${args.length}`);
    values = args;
  } else {
    const given = args || {};
    const names = decl.map((a) => a.name);
    const extra = Object.keys(given).filter((k) => !names.includes(k));
    if (extra.length) throw new Error(`${p.name}.${c.name} has no argument ${extra.join(', ')}`);
    const missing = names.filter((n) => !(n in given));
    if (missing.length) throw new Error(`${p.name}.${c.name} needs ${missing.join(', ')}`);
    values = names.map((n) => given[n]);
  }
  const plain = decl.map((a, i) => convertArg(metadata, a.type, values[i], a.name));
  return [Number(p.index), Number(c.index), plain];
}

/** A storage item's metadata. */
export function storageItem(metadata, pallet, item) {
  const p = palletOf(metadata, pallet);
  const it = (p.storage || []).find((s) => s.name === item);
  if (!it) throw new Error(`the chain has no storage item ${p.name}.${item}`);
  return it;
}

/** The key types of a storage item, in order (none for a value). */
export function keyTypes(it) {
  if (it.kind === 'value') return [];
  if (it.kind === 'map') return [it.key];
  if (it.kind === 'doubleMap') return [it.key1, it.key2];
  throw new Error(`unknown storage kind ${it.kind}`);
}

/** The storage key of `pallet.item[keys...]`; fewer keys than the item has give an iteration prefix. */
export function storageKeyOf(metadata, pallet, item, ...keys) {
  const it = storageItem(metadata, pallet, item);
  const types = keyTypes(it);
  if (keys.length > types.length) throw new Error(`${pallet}.${item} takes ${types.length} key(s), got ${keys.length}`);
  if (types.length && it.hasher !== 'keccak128_concat') throw new Error(`${pallet}.${item}: unsupported hasher ${it.hasher}`);
  const prefix = it.prefix ? fromHex(it.prefix, 32, 'storage prefix') : storagePrefix(pallet, item);
  const parts = keys.map((k, i) => keyPart(convertArg(metadata, types[i], k, `${pallet}.${item} key`)));
  const out = new Uint8Array(prefix.length + parts.reduce((n, p) => n + p.length, 0));
  out.set(prefix);
  let at = prefix.length;
  for (const part of parts) { out.set(part, at); at += part.length; }
  return out;
}

/**
 * A plain decoded value of metadata type `t`, rendered for the page (see the top of this file).
 * `ss58Format` is the chain's address prefix.
 */
export function render(metadata, t, plain, ss58Format = GRIDCHAIN_SS58_PREFIX) {
  if (plain === null || plain === undefined) return null;
  if (typeof t === 'string') {
    if (t === ACCOUNT_TYPE) return plain instanceof Uint8Array && plain.length === 32 ? ss58Encode(plain, ss58Format) : renderRaw(plain);
    if (t === 'u128') {
      if (!(plain instanceof Uint8Array)) return plain;
      let big = 0n;
      for (const b of plain) big = (big << 8n) | BigInt(b);
      return normalizeInt(big);
    }
    if (UINT.test(t) || t === 'bool' || t === 'str') return plain;
    if (t === 'bytes' || FIXED_BYTES.test(t) || t === 'raw') return renderRaw(plain);
    const fields = (metadata.types || {})[t];
    if (!fields) throw new Error(`the chain's metadata does not describe type ${t}`);
    if (!Array.isArray(plain) || plain.length !== fields.length) throw new Error(`a ${t} value does not have its ${fields.length} fields`);
    const out = {};
    fields.forEach((f, i) => { out[f.name] = render(metadata, f.type, plain[i], ss58Format); });
    return out;
  }
  if (t && typeof t === 'object') {
    if ('option' in t) return render(metadata, t.option, plain, ss58Format);
    if ('vec' in t) return plain.map((v) => render(metadata, t.vec, v, ss58Format));
    if ('tuple' in t) return t.tuple.map((tt, i) => render(metadata, tt, plain[i], ss58Format));
    if ('bytes' in t || 'str' in t) return renderRaw(plain);
  }
  throw new Error(`unsupported metadata type ${JSON.stringify(t)}`);
}

/** Plain msgpack data made JSON-ready: bytes as 0x-hex, the rest as is. */
export function renderRaw(plain) {
  if (plain instanceof Uint8Array) return toHex(plain);
  if (Array.isArray(plain)) return plain.map(renderRaw);
  if (plain && typeof plain === 'object') {
    const out = {};
    for (const [k, v] of Object.entries(plain)) out[k] = renderRaw(v);
    return out;
  }
  return plain;
}

/**
 * One event of `system.events` (`[phase, pallet index, event index, fields]`) decoded by the
 * metadata: `{ pallet, name, fields: {name: value}, phase, extrinsicIndex }`. `extrinsicIndex` is
 * the index of the extrinsic that emitted it in its block (null for the block's hooks).
 */
export function decodeEvent(metadata, [phase, palletIndex, eventIndex, data], ss58Format = GRIDCHAIN_SS58_PREFIX) {
  const p = (metadata.pallets || []).find((x) => x.index === palletIndex);
  const ev = p && (p.events || []).find((e) => e.index === eventIndex);
  const extrinsicIndex = Array.isArray(phase) && phase[0] === 1 ? phase[1] : null;
  if (!ev) {
    return { pallet: String(palletIndex), name: String(eventIndex), fields: { data: renderRaw(data) }, phase, extrinsicIndex };
  }
  const fields = {};
  (ev.fields || []).forEach((f, i) => { fields[f.name] = render(metadata, f.type, data[i], ss58Format); });
  return { pallet: p.name, name: ev.name, fields, phase, extrinsicIndex };
}

/**
 * The sentence of a dispatch error as the ExtrinsicFailed event carries it
 * (`[pallet index, error index, message]`), else the metadata's message for that error.
 */
export function errorSentence(metadata, error) {
  if (Array.isArray(error) && error.length === 3) {
    const [pi, ei, message] = error;
    if (typeof message === 'string' && message) return message;
    const p = (metadata.pallets || []).find((x) => x.index === pi);
    const e = p && (p.errors || []).find((x) => x.index === ei);
    if (e) return e.message;
  }
  return typeof error === 'string' ? error : JSON.stringify(renderRaw(error));
}
