// ed25519 keys as Substrate derives them (docs/protocol.md §3), so a mnemonic or `//Name` URI gives
// the same account here, in the `gridchain` wallet and in Substrate tools (`--scheme ed25519`):
//   mnemonic -> BIP39 entropy -> PBKDF2-HMAC-SHA512(entropy, "mnemonic" + passphrase, 2048)[0:32]
//   `//junction` -> blake2b-256(SCALE("Ed25519HDKD") || seed || chain code)
// and every signature covers a domain tag and the genesis hash (signingMessage).
import * as ed from '@noble/ed25519';
import { blake2b } from '@noble/hashes/blake2.js';
import { pbkdf2 } from '@noble/hashes/pbkdf2.js';
import { sha512 } from '@noble/hashes/sha2.js';
import { mnemonicToEntropy, validateMnemonic } from '@scure/bip39';
import { wordlist } from '@scure/bip39/wordlists/english.js';
import { concatBytes, fromHex } from './bytes.js';
import { GRIDCHAIN_SS58_PREFIX, ss58Encode } from './ss58.js';

ed.hashes.sha512 = sha512;

/** Substrate's development phrase; `//Alice`, `//Bob`, ... are derived from it. */
export const DEV_PHRASE = 'bottom drive obey lake curtain smoke basket hold race lonely fit walk';

const utf8 = (s) => new TextEncoder().encode(s);

/** The bytes an ed25519 signature covers: u8(len(domain)) || domain || genesis hash || payload. */
export function signingMessage(domain, genesisHash, payload) {
  const tag = typeof domain === 'string' ? utf8(domain) : domain;
  if (tag.length > 255) throw new Error('a domain tag is at most 255 bytes');
  if (genesisHash.length !== 32) throw new Error('a genesis hash is 32 bytes');
  return concatBytes(Uint8Array.of(tag.length), tag, genesisHash, payload);
}

/** Whether `signature` is `publicKey`'s ed25519 signature of `message`. */
export function verify(publicKey, signature, message) {
  try {
    return ed.verify(signature, message, publicKey);
  } catch {
    return false;
  }
}

/**
 * A key pair from a 32-byte seed: `{ publicKey, address, sign(message) }`. The seed stays inside the
 * closure; `address` uses gridchain's SS58 prefix unless another is given.
 */
export function keypairFromSeed(seed, prefix = GRIDCHAIN_SS58_PREFIX) {
  if (!(seed instanceof Uint8Array) || seed.length !== 32) throw new Error('an ed25519 seed is 32 bytes');
  const secret = Uint8Array.from(seed);
  const publicKey = ed.getPublicKey(secret);
  return Object.freeze({
    publicKey,
    address: ss58Encode(publicKey, prefix),
    sign: (message) => ed.sign(message, secret),
  });
}

function normalizePhrase(phrase) {
  return String(phrase).trim().split(/\s+/).join(' ').toLowerCase();
}

/**
 * Why `phrase` is not a valid BIP39 English mnemonic, as a sentence; null when it is valid.
 * Words are compared in lower case and extra spaces are ignored.
 */
export function mnemonicProblem(phrase) {
  const words = normalizePhrase(phrase).split(' ').filter(Boolean);
  if (words.length === 0) return 'the recovery phrase is empty';
  if (![12, 15, 18, 21, 24].includes(words.length)) {
    return `a recovery phrase has 12, 15, 18, 21 or 24 words, not ${words.length}`;
  }
  const unknown = words.filter((w) => !wordlist.includes(w));
  if (unknown.length) {
    return `"${unknown[0]}" is not a word of the BIP39 English word list`;
  }
  if (!validateMnemonic(words.join(' '), wordlist)) {
    return 'the recovery phrase does not check out: a word is wrong or out of order';
  }
  return null;
}

/** Whether `phrase` is a valid BIP39 English mnemonic (12 to 24 words with a good checksum). */
export function isValidMnemonic(phrase) {
  return mnemonicProblem(phrase) === null;
}

/** Substrate's 32-byte mini secret (the ed25519 seed) of a mnemonic and optional passphrase. */
export function seedFromMnemonic(phrase, passphrase = '') {
  const problem = mnemonicProblem(phrase);
  if (problem) throw new Error(`not a valid mnemonic: ${problem}`);
  const entropy = mnemonicToEntropy(normalizePhrase(phrase), wordlist);
  return pbkdf2(sha512, entropy, utf8('mnemonic' + passphrase), { c: 2048, dkLen: 64 }).slice(0, 32);
}

function compactLen(n) {
  if (n < 64) return Uint8Array.of(n << 2);
  if (n < 2 ** 14) { const v = (n << 2) | 1; return Uint8Array.of(v & 0xff, v >> 8); }
  const v = ((n << 2) | 2) >>> 0;
  return Uint8Array.of(v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >>> 24);
}

function chainCode(junction) {
  let raw;
  if (/^\d+$/.test(junction)) {
    raw = new Uint8Array(8);
    new DataView(raw.buffer).setBigUint64(0, BigInt(junction), true);
  } else {
    const text = utf8(junction);
    raw = concatBytes(compactLen(text.length), text);
  }
  if (raw.length > 32) raw = blake2b(raw, { dkLen: 32 });
  const out = new Uint8Array(32);
  out.set(raw);
  return out;
}

/** Substrate's ed25519 hard derivation of `seed` along the junction `//junction`. */
export function deriveHard(seed, junction) {
  const tag = utf8('Ed25519HDKD');
  return blake2b(concatBytes(compactLen(tag.length), tag, seed, chainCode(junction)), { dkLen: 32 });
}

const URI = /^([^/]*)((?:\/\/?[^/]+)*)(?:\/\/\/(.*))?$/;

/**
 * The 32-byte seed a Substrate secret URI denotes: `<mnemonic | 0x seed>[//hard...][///passphrase]`;
 * a URI with no phrase (`//Alice`) starts from the development phrase.
 */
export function secretSeedFromUri(uri) {
  const m = URI.exec(String(uri).trim());
  if (!m) throw new Error('not a secret URI: expected a recovery phrase or 0x seed, then //derivations');
  let phrase = m[1].trim();
  const path = m[2] || '';
  const password = m[3] || '';
  if (!phrase) phrase = DEV_PHRASE;
  let seed;
  if (phrase.startsWith('0x')) {
    if (!/^0x[0-9a-fA-F]{64}$/.test(phrase)) throw new Error('a secret seed is 0x and 64 hex digits (32 bytes)');
    if (password) throw new Error('a passphrase applies to a recovery phrase, not to a raw seed');
    seed = fromHex(phrase, 32, 'secret seed');
  } else {
    seed = seedFromMnemonic(phrase, password);
  }
  for (const [, hard, junction] of path.matchAll(/(\/\/?)([^/]+)/g)) {
    if (hard !== '//') throw new Error('ed25519 keys have only hard derivations (//name), not soft ones (/name)');
    seed = deriveHard(seed, junction);
  }
  return seed;
}

/** The key pair of a secret URI, e.g. `//Bob` on a dev chain, or `<mnemonic>//hot`. */
export function keypairFromUri(uri, prefix = GRIDCHAIN_SS58_PREFIX) {
  return keypairFromSeed(secretSeedFromUri(uri), prefix);
}

/** The key pair of a BIP39 mnemonic, as Substrate derives ed25519 keys (no derivation path). */
export function keypairFromMnemonic(phrase, passphrase = '', prefix = GRIDCHAIN_SS58_PREFIX) {
  return keypairFromSeed(seedFromMnemonic(phrase, passphrase), prefix);
}
