/**
 * The account panel: import an account (a `//Dev` secret URI on development and local chains only, a
 * BIP39 mnemonic, or a `gridchain wallet` keystore file), each stored encrypted under a password in
 * this browser (the chain library's vault.js); unlock one with its password; lock it again. Keys and
 * mnemonics stay in the page: nothing here talks to the node. Bad input (a wrong password, a
 * malformed mnemonic, a missing field) is one sentence in `account-error`.
 */
import { useEffect, useState } from 'preact/hooks';
import {
  addAccount, importKeystoreFile, listAccounts, mnemonicProblem, secretSeedFromUri, seedFromMnemonic, unlock,
} from '../chain/index.js';
import { html } from './html.js';

const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

/** Chains on which `//Alice`-style dev keys are offered (their keys are public knowledge). */
export function devKeysAllowed(chain) {
  return !!chain && ['Development', 'Local'].includes(chain.chainType);
}

/** Names of the stored accounts, whatever shape the vault lists them in. */
function accountNames() {
  return listAccounts().map((a) => (typeof a === 'string' ? a : a.name));
}

/** Read a chosen file as text. */
function readText(file) {
  return typeof file.text === 'function' ? file.text() : new Promise((ok, bad) => {
    const r = new FileReader();
    r.onload = () => ok(String(r.result));
    r.onerror = () => bad(new Error(`cannot read ${file.name}`));
    r.readAsText(file);
  });
}

export function AccountPanel({ chain, account, onUnlock, onLock }) {
  const [names, setNames] = useState(() => accountNames());
  const [error, setError] = useState('');
  const [busy, setBusy] = useState('');
  const [form, setForm] = useState({ name: '', uri: '', mnemonic: '', password: '' });
  const [file, setFile] = useState(null);
  const [fileKey, setFileKey] = useState(0);
  const [pick, setPick] = useState('');
  const [unlockPassword, setUnlockPassword] = useState('');
  const dev = devKeysAllowed(chain);

  useEffect(() => { if (!pick && names.length) setPick(names[0]); }, [names]);
  const field = (k) => (e) => setForm({ ...form, [k]: e.currentTarget.value });

  /** Check the import form, store the account, and unlock it with the same password. */
  async function doImport(e) {
    e.preventDefault();
    setError('');
    const uri = dev ? form.uri.trim() : '';
    const phrase = form.mnemonic.trim().split(/\s+/).filter(Boolean).join(' ');
    const sources = [uri, phrase, file].filter(Boolean).length;
    if (sources !== 1) {
      setError(dev ? 'Give exactly one of: a secret URI, a mnemonic or a keystore file.'
        : 'Give exactly one of: a mnemonic or a keystore file.');
      return;
    }
    if (!form.password) { setError('Choose a password: the key is stored encrypted under it.'); return; }
    if ((!file || form.name) && !NAME_RE.test(form.name)) {
      setError('An account name has 1 to 64 letters, digits, "_", "." or "-", and does not start with "." or "-".');
      return;
    }
    const problem = phrase ? mnemonicProblem(phrase) : null;
    if (problem) {
      setError(`That mnemonic is not valid: ${problem}.`);
      return;
    }
    setBusy('Encrypting the key…');
    try {
      let name = form.name;
      if (file) {
        const stored = await importKeystoreFile(await readText(file), form.password, form.name || null);
        name = stored && (typeof stored === 'string' ? stored : stored.name);
      } else {
        const seed = uri ? secretSeedFromUri(uri) : seedFromMnemonic(phrase);
        if (accountNames().includes(name)) throw new Error(`An account named '${name}' already exists in this browser.`);
        await addAccount(name, seed, form.password);
      }
      const keypair = await unlock(name, form.password);
      setNames(accountNames());
      setPick(name);
      setForm({ name: '', uri: '', mnemonic: '', password: '' });
      setFile(null);
      setFileKey(fileKey + 1);
      onUnlock({ name, keypair });
    } catch (err) {
      setError(err.message || String(err));
    } finally {
      setBusy('');
    }
  }

  async function doUnlock(e) {
    e.preventDefault();
    setError('');
    if (!pick) { setError('Import an account first.'); return; }
    if (!unlockPassword) { setError('Enter the account\'s password.'); return; }
    setBusy('Unlocking…');
    try {
      const keypair = await unlock(pick, unlockPassword);
      setUnlockPassword('');
      onUnlock({ name: pick, keypair });
    } catch (err) {
      setError(err.message || String(err));
    } finally {
      setBusy('');
    }
  }

  return html`<section class="account-panel" aria-label="Account">
    <p class="current">
      <span data-testid="current-account">${account
        ? html`<strong>${account.name}</strong> <code class="addr">${account.keypair.address}</code>`
        : 'No account unlocked'}</span>
      ${account && html` <button type="button" data-testid="lock" onClick=${() => { setError(''); onLock(); }}>Lock</button>`}
    </p>
    ${error && html`<p class="error" role="alert" data-testid="account-error">${error}</p>`}
    ${busy && html`<p class="muted" role="status">${busy}</p>`}
    <details open=${!account}>
      <summary>Unlock or import an account</summary>
      <div class="account-forms">
        <form class="unlock-form" onSubmit=${doUnlock}>
          <h3>Unlock</h3>
          <label for="unlock-account">Account</label>
          <select id="unlock-account" data-testid="unlock-account" value=${pick}
              onChange=${(e) => setPick(e.currentTarget.value)}>
            ${names.length === 0 && html`<option value="">(none stored in this browser)</option>`}
            ${names.map((n) => html`<option value=${n}>${n}</option>`)}
          </select>
          <label for="unlock-password">Password</label>
          <input id="unlock-password" data-testid="unlock-password" type="password" autocomplete="current-password"
              value=${unlockPassword} onInput=${(e) => setUnlockPassword(e.currentTarget.value)} />
          <button type="submit" data-testid="unlock-submit" disabled=${!!busy}>Unlock</button>
        </form>
        <form class="import-form" onSubmit=${doImport}>
          <h3>Import</h3>
          <label for="import-name">Name in this browser (a keystore file may keep its own)</label>
          <input id="import-name" data-testid="import-name" value=${form.name} onInput=${field('name')}
              autocomplete="off" placeholder="bob" />
          ${dev && html`<label for="import-uri">Secret URI (development chain only)</label>
            <input id="import-uri" data-testid="import-uri" value=${form.uri} onInput=${field('uri')}
              autocomplete="off" spellcheck="false" placeholder="//Bob" />`}
          <label for="import-mnemonic">Or a mnemonic (12 or 24 words)</label>
          <textarea id="import-mnemonic" data-testid="import-mnemonic" rows="2" value=${form.mnemonic}
              onInput=${field('mnemonic')} autocomplete="off" spellcheck="false"></textarea>
          <label for="import-file">Or a keystore file (gridchain wallet)</label>
          <input id="import-file" key=${fileKey} data-testid="import-file" type="file" accept=".json,application/json"
              onChange=${(e) => setFile(e.currentTarget.files[0] || null)} />
          <label for="import-password">Password (to encrypt it here; for a keystore file, its password)</label>
          <input id="import-password" data-testid="import-password" type="password" autocomplete="new-password"
              value=${form.password} onInput=${field('password')} />
          <button type="submit" data-testid="import-submit" disabled=${!!busy}>Import and unlock</button>
        </form>
      </div>
    </details>
  </section>`;
}
