// Extrinsics (docs/protocol.md §4): what an account signs and submits.
//   extrinsic = [1, [signer, signature, [birth, period], nonce, tip], [pallet, call, [args...]]]
//   payload   = msgpack [call, [birth, period], nonce, tip, spec_version, transaction_version, birth_hash]
//   signed    = signingMessage("gridchain/extrinsic/v1", genesis_hash, payload)
import { pack, keccak256 } from './codec.js';
import { signingMessage } from './keys.js';

export const EXTRINSIC_VERSION = 1;
export const EXTRINSIC_DOMAIN = 'gridchain/extrinsic/v1';

/** A call as plain data: `[pallet index, call index, [plain arguments...]]`. */
export function makeCall(palletIndex, callIndex, args) {
  return [palletIndex, callIndex, [...args]];
}

/** The msgpack bytes of a call. */
export function encodeCall(call) {
  return pack(call);
}

/** The payload a signer signs (before the domain tag and genesis hash are put in front). */
export function signingPayload(call, { birth = 0, period = 0, nonce, tip = 0, specVersion, transactionVersion, birthHash }) {
  return pack([call, [birth, period], nonce, tip, specVersion, transactionVersion, birthHash]);
}

/**
 * Build and sign an extrinsic; returns its bytes. `mortality` is `{ birth, period }` with
 * `birthHash` the hash of block `birth`; immortal (period 0) when omitted, signing the genesis hash.
 */
export function signExtrinsic(keypair, call, { nonce, tip = 0, genesisHash, specVersion, transactionVersion,
  mortality = { birth: 0, period: 0 }, birthHash } = {}) {
  const { birth, period } = mortality;
  let signedBirthHash = birthHash;
  if (!period) {
    if (birth) throw new Error('an immortal extrinsic has birth 0');
    signedBirthHash = genesisHash;
  } else if (!signedBirthHash) {
    throw new Error('a mortal extrinsic needs the hash of its birth block');
  }
  const payload = signingPayload(call, { birth, period, nonce, tip, specVersion, transactionVersion,
    birthHash: signedBirthHash });
  const signature = keypair.sign(signingMessage(EXTRINSIC_DOMAIN, genesisHash, payload));
  return pack([EXTRINSIC_VERSION, [keypair.publicKey, signature, [birth, period], nonce, tip], call]);
}

/** The extrinsic hash: keccak-256 of its bytes. */
export function extrinsicHash(bytes) {
  return keccak256(bytes);
}
