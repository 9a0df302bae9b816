"""The test vectors published in docs/protocol.md, computed from the code.

`tests/test_protocol_doc.py` checks that every value here appears verbatim in the document, so the
document cannot drift from what the node does. Run `python -m tests.protocol_vectors` to print them.
"""
from __future__ import annotations

from typing import Any

from primitives import codec, ss58
from primitives.extrinsic import (EXTRINSIC_DOMAIN, Call, Mortality, extrinsic_hash, sign_extrinsic,
                                  signing_payload)
from primitives.keys import signing_message, dev_keypair, secret_seed_from_uri
from primitives.trie import Trie, ordered_trie_root
from primitives.types import DIGEST_PRE_RUNTIME, ENGINE_GRID, DigestItem, Header
from node.chain import seal_header

GENESIS = bytes.fromhex("11" * 32)


def vectors() -> dict[str, str]:
    from pallets import balances, system, timestamp, validators
    alice, bob = dev_keypair("Alice"), dev_keypair("Bob")
    v: dict[str, str] = {}
    v["alice.seed"] = "0x" + secret_seed_from_uri("//Alice").hex()
    v["alice.public"] = "0x" + alice.public_key.hex()
    v["alice.ss58"] = alice.address()
    v["ss58.prefix_bytes"] = "0x" + ss58._prefix_bytes(ss58.GRIDCHAIN_SS58_PREFIX).hex()
    v["bob.public"] = "0x" + bob.public_key.hex()

    call = Call(balances.pallet.index, balances.transfer.call_def.index, (bob.public_key, 1_000_000))
    v["call"] = "0x" + call.encode().hex()
    payload = signing_payload(call, Mortality(), 0, 0, 1, 1, GENESIS)
    v["payload"] = "0x" + payload.hex()
    v["message"] = "0x" + signing_message(EXTRINSIC_DOMAIN, GENESIS, payload).hex()
    xt = sign_extrinsic(alice, call, nonce=0, genesis_hash=GENESIS, spec_version=1, transaction_version=1)
    data = xt.encode()
    v["signature"] = "0x" + xt.signature.signature.hex()
    v["extrinsic"] = "0x" + data.hex()
    v["extrinsic.hash"] = "0x" + extrinsic_hash(data).hex()

    v["key.system.account.alice"] = "0x" + system.account.key_of(alice.public_key).hex()
    v["key.balances.asset_balance.1.alice"] = "0x" + balances.asset_balance.key_of(1, alice.public_key).hex()
    v["key.timestamp.now"] = "0x" + timestamp.now.prefix.hex()
    v["key.validators.validators"] = "0x" + validators.validators.prefix.hex()
    v["key.validators.set_id"] = "0x" + validators.set_id.prefix.hex()
    v["key.validators.effective_from"] = "0x" + validators.effective_from.prefix.hex()

    account_value = system.AccountInfo(3, 5_000_000, 0).encode()
    v["value.account"] = "0x" + account_value.hex()
    state = {system.account.key_of(alice.public_key): account_value,
             system.account.key_of(bob.public_key): system.AccountInfo(0, 7, 0).encode(),
             timestamp.now.prefix: codec.U64.encode(1_700_000_000_000)}
    trie = Trie({})
    root = trie.apply(state).root
    v["proof.root"] = "0x" + root.hex()
    v["proof.nodes"] = ", ".join("0x" + n.hex() for n in trie.prove(system.account.key_of(alice.public_key)))

    xroot = ordered_trie_root([data])
    v["header.extrinsics_root"] = "0x" + xroot.hex()
    header = Header(GENESIS, 1, root, xroot, (DigestItem(DIGEST_PRE_RUNTIME, ENGINE_GRID, alice.public_key),))
    v["header.unsealed"] = "0x" + header.encode().hex()
    v["header.pre_hash"] = "0x" + header.pre_hash().hex()
    sealed = seal_header(header, alice, GENESIS)
    v["header.sealed"] = "0x" + sealed.encode().hex()
    v["header.hash"] = "0x" + sealed.hash().hex()

    from tests.test_meter_reading import reading_vector
    v.update(reading_vector())
    v.update(consensus_vectors())
    v.update(finality_vectors())
    v.update(field_meter_vectors())
    return v


def consensus_vectors() -> dict[str, str]:
    """A precommit by //Validator1 for block 0x22..22 at height 5, round 1, on genesis 0x11..11, and
    an evidence pair (the same validator also precommitting 0x33..33)."""
    from primitives.keys import Keypair
    from primitives.votes import VOTE_DOMAIN, DuplicateVoteEvidence, Step, Vote, vote_payload
    v1 = Keypair.from_uri("//Validator1")
    block = bytes.fromhex("22" * 32)

    def precommit(h: bytes) -> Vote:
        sig = v1.sign_domain(VOTE_DOMAIN, GENESIS, vote_payload(Step.PRECOMMIT, 5, 1, h))
        return Vote(Step.PRECOMMIT, 5, 1, h, v1.public_key, sig)

    vote = precommit(block)
    ev = DuplicateVoteEvidence.from_votes(precommit(bytes.fromhex("33" * 32)), vote)
    return {"vote.validator": "0x" + v1.public_key.hex(),
            "vote.payload": "0x" + vote_payload(Step.PRECOMMIT, 5, 1, block).hex(),
            "vote.message": "0x" + signing_message(VOTE_DOMAIN, GENESIS, vote.signed_payload()).hex(),
            "vote.signature": "0x" + vote.signature.hex(),
            "vote": "0x" + vote.encode().hex(),
            "evidence": "0x" + ev.encode().hex()}


#: the testnet's validators (`gridchain testnet --validators 4`), and which of them sign the vector
FINALITY_VALIDATOR_URIS = tuple(f"//Validator{i}" for i in range(1, 5))
FINALITY_SIGNERS = (0, 1, 3)          # indices in the set's order (by account id): bits 0b1011
FINALITY_HEIGHT, FINALITY_ROUND = 5, 1


def finality_set() -> list[tuple[str, Any, int]]:
    """The four validators as the validators pallet orders them (by account id): (URI, keypair, BLS secret)."""
    from primitives import bls
    from primitives.keys import Keypair
    kps = sorted(((u, Keypair.from_uri(u)) for u in FINALITY_VALIDATOR_URIS), key=lambda x: x[1].public_key)
    return [(u, kp, bls.secret_from_seed(kp.seed)) for u, kp in kps]


def finality_vectors() -> dict[str, str]:
    """Block 0x22..22 at height 5 on genesis 0x11..11, decided in round 1 by validators 0, 1 and 3 of
    the four testnet validators: the BLS key of //Validator1, the set, the BFT1 commit certificate and
    the BLS1 finality certificate exactly as a block's justifications carry them."""
    import hashlib

    from consensus import finality_certificate as fc
    from consensus.commit import CommitCertificate
    from consensus.validator_set import ValidatorSet
    from node.bft import ENGINE_BFT
    from node.finality import ENGINE_FINALITY
    from pallets.validators import ValidatorInfo
    from primitives import bls
    from primitives.keys import Keypair
    from primitives.votes import VOTE_DOMAIN, Step, Vote, vote_payload
    block = bytes.fromhex("22" * 32)
    members = finality_set()
    v: dict[str, str] = {}

    v1 = Keypair.from_uri("//Validator1")
    ikm = hashlib.sha256(b"gridchain/bls-from-ed25519-seed/v1" + v1.seed).digest()
    sk1 = bls.secret_from_seed(v1.seed)
    assert bls.keygen(ikm) == sk1, "the document's BLS key derivation no longer matches primitives.bls"
    v["bls.validator1.seed"] = "0x" + v1.seed.hex()
    v["bls.validator1.ikm"] = "0x" + ikm.hex()
    v["bls.validator1.secret"] = "0x" + sk1.to_bytes(32, "big").hex()
    v["bls.validator1.public"] = "0x" + bls.sk_to_pk(sk1).hex()
    v["bls.validator1.pop"] = "0x" + bls.pop_prove(sk1).hex()
    for i, (uri, kp, sk) in enumerate(members):   # a row of the doc's table: index, URI, account, BLS key
        v[f"bls.set.{i}"] = f"| {i} | `{uri}` | `0x{kp.public_key.hex()}` | `0x{bls.sk_to_pk(sk).hex()}` |"
    infos = [ValidatorInfo(kp.public_key, bls.sk_to_pk(sk), 1) for _, kp, sk in members]
    v["value.validators.validators"] = "0x" + validators_value(infos).hex()

    message = fc.finality_message(GENESIS, FINALITY_HEIGHT, block)
    v["bls.message"] = "0x" + message.hex()
    partials = {i: fc.sign_finality(members[i][2], GENESIS, FINALITY_HEIGHT, block) for i in FINALITY_SIGNERS}
    v["bls.partial.0"] = "0x" + partials[0].hex()
    cert = fc.build(partials, [bls.sk_to_pk(sk) for _, _, sk in members], genesis_hash=GENESIS,
                    height=FINALITY_HEIGHT, block_hash=block, round=FINALITY_ROUND)
    v["bls.signers"] = "0x" + cert.signers.hex()
    v["bls.signature"] = "0x" + cert.signature.hex()
    v["bls.justification"] = "0x" + cert.encode().hex()
    v["bls.engine"] = "0x" + ENGINE_FINALITY.hex()

    def precommit(i: int) -> Vote:
        kp = members[i][1]
        sig = kp.sign_domain(VOTE_DOMAIN, GENESIS, vote_payload(Step.PRECOMMIT, FINALITY_HEIGHT, FINALITY_ROUND, block))
        return Vote(Step.PRECOMMIT, FINALITY_HEIGHT, FINALITY_ROUND, block, kp.public_key, sig)
    vset = ValidatorSet.from_keys(kp.public_key for _, kp, _ in members)
    commit = CommitCertificate.from_precommits([precommit(i) for i in reversed(FINALITY_SIGNERS)], vset)
    v["bft.justification"] = "0x" + commit.encode().hex()
    v["bft.engine"] = "0x" + ENGINE_BFT.hex()
    return v


def validators_value(infos: list) -> bytes:
    """`validators.validators` as stored: the set's canonical msgpack."""
    from pallets import validators
    return validators.validators.value_type.encode(tuple(infos))


if __name__ == "__main__":
    for k, val in vectors().items():
        print(f"{k}: {val}")


# --- field meters' signed records (protocol.md §8.1) -------------------------------------------------

#: The interval of the field meters' vectors: it starts at 1,700,000,100 (section 8's interval) and
#: ends at 1,700,001,000, the time each record carries.
FIELD_INTERVAL_START = 1_700_000_100
FIELD_INTERVAL_END = FIELD_INTERVAL_START + 900
#: Registers of the vectors: OCMF and DLMS send 12,345 Wh import and 6,789 Wh export; the EDL40
#: meter (import only) sends 12,345.7 Wh, which the chain floors to 12,345.
FIELD_IMPORT_WH, FIELD_EXPORT_WH, FIELD_SML_TENTHS_WH = 12_345, 6_789, 123_457
#: Who the vectors' meters are certified for: Bob (a licensed prosumer) in zone 1, 10 kW.
FIELD_ZONE, FIELD_RATED_POWER_W = 1, 10_000


class _Rfc6979:
    """A test meter signing with RFC 6979 deterministic ECDSA (`cryptography` >= 44), so the
    documented signatures can be recomputed. Real meters sign with random nonces; a verifier cannot
    tell the two apart."""

    def _sign(self, data: bytes) -> tuple[int, int]:
        from cryptography.hazmat.primitives.asymmetric import ec, utils
        return utils.decode_dss_signature(self._key.sign(data, ec.ECDSA(self._hash, deterministic_signing=True)))


def field_meters_for_vectors() -> dict[str, Any]:
    """The three test meters of the vectors (meters/field_meters.py), signing deterministically."""
    from meters.field_meters import DlmsTestMeter, OcmfTestMeter, SmlTestMeter

    class Ocmf(_Rfc6979, OcmfTestMeter):
        pass

    class Sml(_Rfc6979, SmlTestMeter):
        pass

    class Dlms(_Rfc6979, DlmsTestMeter):
        pass

    return {"ocmf": Ocmf("secp256r1", uri="//Alice//ocmf"), "sml": Sml(uri="//Alice//sml"),
            "dlms": Dlms(1, uri="//Alice//dlms")}


def _secret_hex(meter: Any) -> str:
    from primitives.meter_formats.ecdsa import CURVE_BYTES
    return "0x" + meter._key.private_numbers().private_value.to_bytes(CURVE_BYTES[meter.curve], "big").hex()


def field_meter_vectors() -> dict[str, str]:
    """One record per scheme, interval 1,700,000,100..1,700,001,000, counter 1, with its meter's
    test key, signed bytes, signature, meter id, certification call and submit_record extrinsic."""
    import base64
    import hashlib

    from meters.field_meters import EDL40_COMMISSIONED_AT
    from pallets import field_meters as fm
    from primitives.extrinsic import Call, Extrinsic, extrinsic_hash
    from primitives.hashing import keccak256
    from primitives.meter_formats import dlms, ocmf, sml
    from primitives.meter_formats.ecdsa import check_scheme
    from primitives.keys import dev_keypair
    meters = field_meters_for_vectors()
    bob = dev_keypair("Bob").public_key
    v: dict[str, str] = {}

    def common(name: str, meter: Any, scheme: int, record: bytes, signed: bytes, r: int, s: int, curve: str,
               hash_name: str, key: bytes, key_curve: str, device_id: str, import_obis: str, export_obis: str,
               kind: int) -> None:
        meter_id = fm.field_meter_id(scheme, meter.public_key_sec1())
        v[f"fm.{name}.secret"] = _secret_hex(meter)
        v[f"fm.{name}.public_sec1"] = "0x" + meter.public_key_sec1().hex()
        v[f"fm.{name}.signed_sha256"] = "0x" + hashlib.sha256(signed).hexdigest()
        v[f"fm.{name}.r"] = f"0x{r:064x}"
        v[f"fm.{name}.s"] = f"0x{s:064x}"
        v[f"fm.{name}.check_scheme"] = check_scheme(curve, hash_name)
        v[f"fm.{name}.meter_id"] = "0x" + meter_id.hex()
        certify = Call(fm.pallet.index, fm.certify.call_def.index,
                       (scheme, key, key_curve, device_id, import_obis, export_obis, bob, FIELD_ZONE, kind,
                        FIELD_RATED_POWER_W))
        v[f"fm.{name}.certify_call"] = "0x" + certify.encode().hex()
        xt = Extrinsic(Call(fm.pallet.index, fm.submit_record.call_def.index, (meter_id, record))).encode()
        v[f"fm.{name}.extrinsic"] = "0x" + xt.hex()
        v[f"fm.{name}.extrinsic_hash"] = "0x" + extrinsic_hash(xt).hex()
        v[f"fm.{name}.reading_hash"] = "0x" + keccak256(record).hex()

    # OCMF, P-256: the payload between the first and second '|' is signed as sent, DER signature
    m = meters["ocmf"]
    record = m.record(FIELD_INTERVAL_END, FIELD_IMPORT_WH, FIELD_EXPORT_WH)
    rec = ocmf.parse(record)
    v["fm.ocmf.record"] = record.decode()
    v["fm.ocmf.public_der"] = "0x" + m.public_key_der().hex()
    v["fm.ocmf.serial"] = m.serial
    common("ocmf", m, fm.SCHEME_OCMF, record, rec.signed_data, *rec.signature, rec.curve, rec.hash,
           m.public_key_der(), "", m.serial, "1-0:1.8.0", "1-0:2.8.0", 2)

    # SML/EDL40, P-256: the 320-byte block rebuilt from the GetList.Res; r||s + 2 logbook bytes
    m = meters["sml"]
    record = sml.encode_edl40_file(m.server_id, FIELD_SML_TENTHS_WH, -1, FIELD_INTERVAL_END, m.local_offset_min,
                                   m.counter, FIELD_INTERVAL_END - EDL40_COMMISSIONED_AT, m._sign_raw, curve="secp256r1")
    rec = sml.parse(record)
    list_signature = rec.signature[0].to_bytes(32, "big") + rec.signature[1].to_bytes(32, "big") + b"\x00\x00"
    v["fm.sml.record"] = "0x" + record.hex()
    v["fm.sml.block"] = "0x" + rec.signed_data.hex()
    v["fm.sml.public_raw"] = "0x" + m.public_key_raw().hex()
    v["fm.sml.server_id"] = m.server_id.hex()
    v["fm.sml.list_signature"] = "0x" + list_signature.hex()
    v["fm.sml.xml"] = ("<signedMeterValue>"
                       f'<publicKey encoding="base64">{base64.b64encode(m.public_key_raw()).decode()}</publicKey>'
                       f'<meterValueSignature encoding="base64">{base64.b64encode(list_signature).decode()}'
                       "</meterValueSignature><signatureMethod>ECDSA256SHA256</signatureMethod>"
                       "<encodingMethod>EDL</encodingMethod>"
                       f'<encodedMeterValue encoding="base64">{base64.b64encode(rec.signed_data).decode()}'
                       "</encodedMeterValue></signedMeterValue>")
    common("sml", m, fm.SCHEME_SML, record, rec.signed_data, *rec.signature, rec.curve, rec.hash,
           m.public_key_raw(), "secp256r1", m.server_id.hex(), "1-0:1.17.0", "", 0)

    # DLMS general-signing, suite 1 (P-256, SHA-256): header fields with lengths || content; r||s
    m = meters["dlms"]
    record = m.record(FIELD_INTERVAL_END, FIELD_IMPORT_WH, FIELD_EXPORT_WH)
    rec = dlms.parse(record, 1)
    v["fm.dlms.record"] = "0x" + record.hex()
    v["fm.dlms.signed"] = "0x" + rec.signed_data.hex()
    v["fm.dlms.system_title"] = m.system_title.hex()
    common("dlms", m, fm.SCHEME_DLMS, record, rec.signed_data, *rec.signature, rec.curve, rec.hash,
           m.public_key_sec1(), "secp256r1", m.system_title.hex(), "1-0:1.8.0", "1-0:2.8.0", 2)
    return v
