// Key import: what a page says about a malformed mnemonic or URI.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DEV_PHRASE, isValidMnemonic, keypairFromMnemonic, keypairFromUri, mnemonicProblem, toHex,
} from '../src/chain/index.js';

test('a valid mnemonic is accepted whatever its case and spacing', () => {
  assert.ok(isValidMnemonic(DEV_PHRASE));
  const spaced = `  ${DEV_PHRASE.toUpperCase().replaceAll(' ', '   ')}\n`;
  assert.equal(toHex(keypairFromMnemonic(spaced).publicKey), toHex(keypairFromMnemonic(DEV_PHRASE).publicKey));
  assert.equal(toHex(keypairFromUri(`${DEV_PHRASE}//Alice`).publicKey), toHex(keypairFromUri('//Alice').publicKey));
});

test('a malformed mnemonic is refused with a sentence that says what is wrong', () => {
  const words = DEV_PHRASE.split(' ');
  assert.match(mnemonicProblem(''), /empty/);
  assert.match(mnemonicProblem(words.slice(0, 11).join(' ')), /12, 15, 18, 21 or 24 words, not 11/);
  assert.match(mnemonicProblem([...words.slice(0, 11), 'gridchain'].join(' ')), /"gridchain" is not a word/);
  const swapped = [words[1], words[0], ...words.slice(2)].join(' ');
  assert.match(mnemonicProblem(swapped), /does not check out/);
  assert.equal(isValidMnemonic(swapped), false);
  assert.throws(() => keypairFromMnemonic(swapped), { message: /^not a valid mnemonic: the recovery phrase does not check out/ });
});

test('bad secret URIs are refused with a sentence', () => {
  assert.throws(() => keypairFromUri('//Alice/soft'), /only hard derivations/);
  assert.throws(() => keypairFromUri('0x1234//Alice'), /64 hex digits/);
  assert.throws(() => keypairFromUri(`0x${'00'.repeat(32)}///pw`), /passphrase applies to a recovery phrase/);
  assert.throws(() => keypairFromUri('not a phrase//Alice'), /not a valid mnemonic/);
});

test('a key pair holds no readable secret', () => {
  const kp = keypairFromUri('//Bob');
  assert.deepEqual(Object.keys(kp).sort(), ['address', 'publicKey', 'sign']);
  assert.ok(Object.isFrozen(kp));
});
