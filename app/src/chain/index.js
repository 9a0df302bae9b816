// The browser's chain library: everything the app needs to talk to a gridchain node and to hold keys.
// Plain ES modules, so `node --test` runs its tests without a build (app/test/).
export { Chain, MORTAL_PERIOD, headerHash, toWsUrl } from './chain.js';
export { ConnectionLostError, RpcError } from './rpc.js';
export { concatBytes, equalBytes, fromHex, toHex } from './bytes.js';
export { keccak256, keyPart, normalizeInt, pack, splitKeyPart, storageKey, storagePrefix, unpack } from './codec.js';
export { EXTRINSIC_DOMAIN, extrinsicHash, makeCall, signExtrinsic, signingPayload } from './extrinsic.js';
export {
  DEV_PHRASE, deriveHard, isValidMnemonic, keypairFromMnemonic, keypairFromSeed, keypairFromUri, mnemonicProblem,
  secretSeedFromUri, seedFromMnemonic, signingMessage, verify,
} from './keys.js';
export {
  ACCOUNT_TYPE, callFromMetadata, convertArg, decodeEvent, errorSentence, render, renderRaw, storageKeyOf,
} from './metadata.js';
export { GRIDCHAIN_SS58_PREFIX, ss58Decode, ss58DecodeWithPrefix, ss58Encode } from './ss58.js';
export {
  STABLECOIN_DECIMALS, STABLECOIN_SYMBOL, UnitError, formatAmount, formatEnergy, formatMoney, formatPower, formatPrice,
  parseAmount, parseEnergy, parseMoney, parsePower, parsePrice,
} from './units.js';
export {
  BROWSER_KDF, MINIMAL_KDF, MemoryStorage, Vault, WrongPasswordError, addAccount, checkName, decryptSeed, encryptSeed,
  exportKeystoreFile, importKeystoreFile, listAccounts, parseKeystore, removeAccount, unlock, vault,
} from './vault.js';
