// The encrypted key vault: the `gridchain wallet` keystore format, both ways.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  BROWSER_KDF, MINIMAL_KDF, MemoryStorage, Vault, WrongPasswordError, encryptSeed, secretSeedFromUri, toHex, unlock,
} from '../src/chain/index.js';
import { vectors } from './_vectors.js';

const bobSeed = () => secretSeedFromUri('//Bob');

test('an account added with a password unlocks with it, and is listed without it', async () => {
  const v = new Vault(new MemoryStorage(), MINIMAL_KDF);
  const info = await v.addAccount('bob', bobSeed(), 'pw 1');
  assert.equal(info.address, 'fMmvm4iAqSDK5z5F5K1q7esbFrVj64pv2KjqdL7jUEDDPgoYE');
  assert.deepEqual(v.listAccounts(), [info]);
  const kp = await v.unlock('bob', 'pw 1');
  assert.equal(kp.address, info.address);
  await assert.rejects(v.addAccount('bob', bobSeed(), 'x'), /already exists/);
  await assert.rejects(v.addAccount('.hidden', bobSeed(), 'x'), /account name/);
  await assert.rejects(v.addAccount('empty', bobSeed(), ''), /must not be empty/);
  v.removeAccount('bob');
  assert.deepEqual(v.listAccounts(), []);
});

test('a wrong password is refused with "wrong password" and the vault is unchanged', async () => {
  const storage = new MemoryStorage();
  const v = new Vault(storage, MINIMAL_KDF);
  await v.addAccount('bob', bobSeed(), 'right');
  const before = [...storage.map.entries()];
  await assert.rejects(v.unlock('bob', 'wrong'), (e) => e instanceof WrongPasswordError && e.message === 'wrong password');
  assert.deepEqual([...storage.map.entries()], before);
  await assert.rejects(v.unlock('nobody', 'right'), /no account named nobody/);
});

test('a flipped bit or an edited address is caught', async () => {
  const doc = await encryptSeed('bob', bobSeed(), 'pw', MINIMAL_KDF);
  const v = new Vault(new MemoryStorage(), MINIMAL_KDF);
  const flipped = { ...doc, ciphertext: doc.ciphertext.slice(0, -1) + (doc.ciphertext.endsWith('0') ? '1' : '0') };
  await assert.rejects(v.importKeystoreFile(JSON.stringify(flipped), 'pw'), WrongPasswordError);
  const other = { ...doc, address: 'fMkHY6THpUdSzwXUauErZ4RiiV6htpkVcjHZg2VUvHeuSTuhJ' };
  await assert.rejects(v.importKeystoreFile(JSON.stringify(other), 'pw'), /address and publicKey disagree/);
  await assert.rejects(v.importKeystoreFile('{"version": 1', 'pw'), /not JSON/);
  await assert.rejects(v.importKeystoreFile(JSON.stringify({ ...doc, kdf: { ...doc.kdf, memlimit: 2 ** 42 } }), 'pw'),
    /memlimit .* out of range/);
});

test('the browser cost (argon2id, 2 passes, 64 MiB) round-trips', async () => {
  const v = new Vault(new MemoryStorage());
  await v.addAccount('bob', bobSeed(), 'pässword');
  const doc = JSON.parse(v.exportKeystoreFile('bob'));
  assert.deepEqual([doc.kdf.opslimit, doc.kdf.memlimit], [BROWSER_KDF.opslimit, BROWSER_KDF.memlimit]);
  assert.equal((await v.unlock('bob', 'pässword')).address, 'fMmvm4iAqSDK5z5F5K1q7esbFrVj64pv2KjqdL7jUEDDPgoYE');
});

test('a key file written by the Python wallet opens here, and is kept at the browser cost', async () => {
  const path = process.env.GRIDCHAIN_PY_KEYSTORE;
  assert.ok(path, 'GRIDCHAIN_PY_KEYSTORE names a keystore file written by the gridchain wallet');
  const { password, publicKey } = vectors().pyKeystore;
  const v = new Vault(new MemoryStorage());
  const text = readFileSync(path, 'utf8');
  await assert.rejects(v.importKeystoreFile(text, 'not it'), WrongPasswordError);
  assert.deepEqual(v.listAccounts(), []);
  const info = await v.importKeystoreFile(text, password);
  assert.equal(info.name, 'ferdie');
  assert.equal(info.publicKey, publicKey);
  const stored = JSON.parse(v.exportKeystoreFile('ferdie'));
  assert.equal(stored.kdf.memlimit, BROWSER_KDF.memlimit);
  assert.equal(toHex((await v.unlock('ferdie', password)).publicKey), publicKey);
});

test('key files written here are left for the Python wallet to open', async () => {
  const dir = process.env.GRIDCHAIN_JS_KEYSTORE_DIR;
  assert.ok(dir, 'GRIDCHAIN_JS_KEYSTORE_DIR names where the Python side looks for them');
  const { uri, password } = vectors().jsKeystore;
  for (const [file, kdf] of [['charlie-minimal.json', MINIMAL_KDF], ['charlie-browser-cost.json', BROWSER_KDF]]) {
    const doc = await encryptSeed('charlie', secretSeedFromUri(uri), password, kdf);
    writeFileSync(join(dir, file), JSON.stringify(doc, null, 2) + '\n');
  }
});

test('the page-level functions use localStorage', async () => {
  const saved = globalThis.localStorage;
  globalThis.localStorage = new MemoryStorage();
  try {
    const { addAccount, listAccounts } = await import('../src/chain/vault.js');
    await addAccount('bob', bobSeed(), 'pw');
    assert.equal(listAccounts()[0].name, 'bob');
    assert.equal((await unlock('bob', 'pw')).address, 'fMmvm4iAqSDK5z5F5K1q7esbFrVj64pv2KjqdL7jUEDDPgoYE');
    assert.ok(globalThis.localStorage.getItem('gridchain.account.bob'));
  } finally {
    globalThis.localStorage = saved;
  }
});
