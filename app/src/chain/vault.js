// Accounts kept encrypted in the browser. Each entry is a keystore document in the `gridchain wallet`
// file format (wallet/keystore.py), so a file moves between the browser and the command-line wallet:
//
//   {"version": 1, "name", "keyType": "ed25519", "address", "publicKey",
//    "kdf": {"name": "argon2id", "opslimit", "memlimit", "salt"},
//    "cipher": {"name": "xsalsa20-poly1305", "nonce"}, "ciphertext": seed and its 16-byte MAC}
//
// The key is libsodium's crypto_pwhash (argon2id v1.3, t = opslimit, m = memlimit / 1024 KiB, p = 1,
// 32 bytes) of the NFKC-normalised password; the seed is sealed with libsodium's SecretBox
// (XSalsa20-Poly1305), so a wrong password fails the MAC and never yields a wrong key. The browser
// writes with libsodium's INTERACTIVE cost (2 passes, 64 MiB) rather than the command-line wallet's
// 256 MiB: phones have little memory, and the cost is stated in the document, so both read both.
// No seed, mnemonic or password ever leaves the browser: nothing here talks to the node.
import { argon2id } from 'hash-wasm';
import { xsalsa20poly1305 } from '@noble/ciphers/salsa.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { equalBytes, fromHex, toHex } from './bytes.js';
import { keypairFromSeed } from './keys.js';
import { ss58DecodeWithPrefix } from './ss58.js';

export const KEYSTORE_VERSION = 1;
export const KDF_NAME = 'argon2id';
export const CIPHER_NAME = 'xsalsa20-poly1305';
/** What the browser writes with: libsodium's INTERACTIVE argon2id cost. */
export const BROWSER_KDF = Object.freeze({ opslimit: 2, memlimit: 64 * 1024 * 1024 });
/** The cheapest cost libsodium allows; for tests only (it does not slow down guessing). */
export const MINIMAL_KDF = Object.freeze({ opslimit: 1, memlimit: 8192 });
// the bounds the command-line wallet accepts, so a crafted file cannot ask for 4 TiB of memory
const OPSLIMIT_MIN = 1; const OPSLIMIT_MAX = 16;
const MEMLIMIT_MIN = 8192; const MEMLIMIT_MAX = 1024 * 1024 * 1024;
const SALT_LEN = 16; const NONCE_LEN = 24; const SEED_LEN = 32; const MAC_LEN = 16;
const STORAGE_PREFIX = 'gridchain.account.';
const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

/** A wrong password (or a document whose MAC does not check out). */
export class WrongPasswordError extends Error {
  constructor(message = 'wrong password') {
    super(message);
    this.name = 'WrongPasswordError';
  }
}

/** An account name usable here and as a `gridchain wallet` file name; throws a sentence if not. */
export function checkName(name) {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new Error('an account name is 1 to 64 letters, digits, "_", "." or "-", not starting with "." or "-"');
  }
  return name;
}

function checkKdf({ opslimit, memlimit }) {
  if (!Number.isInteger(opslimit) || opslimit < OPSLIMIT_MIN || opslimit > OPSLIMIT_MAX) {
    throw new Error(`the key file's opslimit ${opslimit} is out of range`);
  }
  if (!Number.isInteger(memlimit) || memlimit < MEMLIMIT_MIN || memlimit > MEMLIMIT_MAX) {
    throw new Error(`the key file's memlimit ${memlimit} is out of range`);
  }
}

async function deriveKey(password, salt, { opslimit, memlimit }) {
  return argon2id({
    password: new TextEncoder().encode(String(password).normalize('NFKC')),
    salt, parallelism: 1, iterations: opslimit, memorySize: Math.floor(memlimit / 1024),
    hashLength: 32, outputType: 'binary',
  });
}

/** The keystore document (a plain object) of `seed` under `password`. */
export async function encryptSeed(name, seed, password, kdf = BROWSER_KDF) {
  checkName(name);
  if (!(seed instanceof Uint8Array) || seed.length !== SEED_LEN) throw new Error('an ed25519 seed is 32 bytes');
  if (!password) throw new Error('the password must not be empty');
  checkKdf(kdf);
  const salt = randomBytes(SALT_LEN);
  const nonce = randomBytes(NONCE_LEN);
  const key = await deriveKey(password, salt, kdf);
  const ciphertext = xsalsa20poly1305(key, nonce).encrypt(seed);
  const kp = keypairFromSeed(seed);
  return {
    version: KEYSTORE_VERSION, name, keyType: 'ed25519', address: kp.address, publicKey: toHex(kp.publicKey),
    kdf: { name: KDF_NAME, opslimit: kdf.opslimit, memlimit: kdf.memlimit, salt: toHex(salt) },
    cipher: { name: CIPHER_NAME, nonce: toHex(nonce) },
    ciphertext: toHex(ciphertext),
  };
}

function intField(obj, key) {
  if (!Number.isInteger(obj[key])) throw new Error(`${key} is not an integer`);
  return obj[key];
}

/** Check a keystore document's shape; returns its parts, or throws naming the first thing wrong. */
export function parseKeystore(doc) {
  const bad = (why) => new Error(`not a usable key file: ${why}`);
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw bad('not a JSON object');
  if (doc.version !== KEYSTORE_VERSION) throw bad(`unsupported version ${JSON.stringify(doc.version)}`);
  if (typeof doc.address !== 'string') throw bad('address missing');
  try {
    const publicKey = fromHex(doc.publicKey, 32, 'publicKey');
    let decoded;
    try {
      decoded = ss58DecodeWithPrefix(doc.address).publicKey;
    } catch (e) {
      throw new Error(`address: ${e.message}`);
    }
    if (!equalBytes(decoded, publicKey)) throw new Error('address and publicKey disagree');
    const kdf = doc.kdf; const cipher = doc.cipher;
    if (!kdf || kdf.name !== KDF_NAME) throw new Error(`kdf must be ${KDF_NAME}`);
    if (!cipher || cipher.name !== CIPHER_NAME) throw new Error(`cipher must be ${CIPHER_NAME}`);
    const cost = { opslimit: intField(kdf, 'opslimit'), memlimit: intField(kdf, 'memlimit') };
    checkKdf(cost);
    return {
      name: typeof doc.name === 'string' ? doc.name : null, address: doc.address, publicKey, kdf: cost,
      salt: fromHex(kdf.salt, SALT_LEN, 'salt'), nonce: fromHex(cipher.nonce, NONCE_LEN, 'nonce'),
      ciphertext: fromHex(doc.ciphertext, SEED_LEN + MAC_LEN, 'ciphertext'),
    };
  } catch (e) {
    throw bad(e.message);
  }
}

/** The seed in a keystore document; WrongPasswordError if the password does not open it. */
export async function decryptSeed(doc, password) {
  const p = parseKeystore(doc);
  const key = await deriveKey(password, p.salt, p.kdf);
  let seed;
  try {
    seed = xsalsa20poly1305(key, p.nonce).decrypt(p.ciphertext);
  } catch {
    throw new WrongPasswordError();
  }
  if (!equalBytes(keypairFromSeed(seed).publicKey, p.publicKey)) {
    throw new Error('not a usable key file: the key does not match its address');
  }
  return seed;
}

/** A Map-backed stand-in for `localStorage` (tests, or a browser that refuses storage). */
export class MemoryStorage {
  constructor() { this.map = new Map(); }
  get length() { return this.map.size; }
  key(i) { return [...this.map.keys()][i] ?? null; }
  getItem(k) { return this.map.has(k) ? this.map.get(k) : null; }
  setItem(k, v) { this.map.set(k, String(v)); }
  removeItem(k) { this.map.delete(k); }
}

/** Encrypted accounts in a Web Storage object (`localStorage` by default), one entry per account. */
export class Vault {
  constructor(storage, kdf = BROWSER_KDF) {
    this.storage = storage;
    this.kdf = kdf;
  }

  #read(name) {
    const text = this.storage.getItem(STORAGE_PREFIX + name);
    if (text === null) throw new Error(`no account named ${name} in this browser`);
    return JSON.parse(text);
  }

  /** `[{ name, address, publicKey }]`, sorted by name; needs no password. */
  listAccounts() {
    const out = [];
    for (let i = 0; i < this.storage.length; i++) {
      const k = this.storage.key(i);
      if (!k || !k.startsWith(STORAGE_PREFIX)) continue;
      try {
        const doc = JSON.parse(this.storage.getItem(k));
        out.push({ name: k.slice(STORAGE_PREFIX.length), address: doc.address, publicKey: doc.publicKey });
      } catch {
        // an entry another program damaged is left alone rather than hiding the others
      }
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Store `seed` (32 bytes) as account `name` under `password`; refuses a name in use. */
  async addAccount(name, seed, password) {
    checkName(name);
    if (this.storage.getItem(STORAGE_PREFIX + name) !== null) {
      throw new Error(`an account named ${name} already exists in this browser`);
    }
    const doc = await encryptSeed(name, seed, password, this.kdf);
    this.storage.setItem(STORAGE_PREFIX + name, JSON.stringify(doc));
    return { name, address: doc.address, publicKey: doc.publicKey };
  }

  /**
   * Import a `gridchain wallet` key file (its JSON text): opened with `password` (so a wrong one
   * is refused now, not later) and stored re-encrypted with the browser's cost under the same
   * password, as `name` or the file's own name.
   */
  async importKeystoreFile(jsonText, password, name = null) {
    let doc;
    try {
      doc = JSON.parse(jsonText);
    } catch {
      throw new Error('not a usable key file: it is not JSON');
    }
    const seed = await decryptSeed(doc, password);
    return this.addAccount(name || parseKeystore(doc).name || 'imported', seed, password);
  }

  /** The account's key pair; WrongPasswordError ("wrong password") if the password does not open it. */
  async unlock(name, password) {
    return keypairFromSeed(await decryptSeed(this.#read(name), password));
  }

  /** The account's keystore document as JSON text, for `gridchain wallet` (still encrypted). */
  exportKeystoreFile(name) {
    return JSON.stringify(this.#read(name), null, 2) + '\n';
  }

  removeAccount(name) {
    this.storage.removeItem(STORAGE_PREFIX + name);
  }
}

let defaultVault = null;

/** The vault over this page's `localStorage`. */
export function vault() {
  if (!defaultVault) {
    if (typeof globalThis.localStorage === 'undefined') throw new Error('this browser keeps no local storage');
    defaultVault = new Vault(globalThis.localStorage);
  }
  return defaultVault;
}

export const listAccounts = () => vault().listAccounts();
export const addAccount = (name, seed, password) => vault().addAccount(name, seed, password);
export const importKeystoreFile = (jsonText, password, name) => vault().importKeystoreFile(jsonText, password, name);
export const unlock = (name, password) => vault().unlock(name, password);
export const exportKeystoreFile = (name) => vault().exportKeystoreFile(name);
export const removeAccount = (name) => vault().removeAccount(name);
