"""docs/protocol.md publishes test vectors; they must be exactly what the code produces.

Beyond the verbatim check of every vector, a few rules of the document are checked against the
code or an independent implementation: the read proof with py-trie, the BLS1 finality certificate
with py_ecc (the reference BLS implementation, not the node's backend), the validator set against
the local testnet's genesis, the BIP39 word list, the argument types against the metadata, and the
decoding limits against their constants.
"""
from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

import msgpack
import pytest
import rlp
from trie import HexaryTrie

from tests.protocol_vectors import FINALITY_HEIGHT, GENESIS, vectors

DOC = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text()
VECTORS = vectors()


def _bytes(name: str) -> bytes:
    return bytes.fromhex(VECTORS[name][2:])


def _section(title: str) -> str:
    """The doc's section whose heading starts with `title` (e.g. "## 4."), up to the next heading of
    its level, with runs of white space made single spaces (so line wrapping does not matter)."""
    start = DOC.index("\n" + title) + 1
    nxt = DOC.find("\n" + title.split()[0] + " ", start)
    return " ".join(DOC[start:nxt if nxt != -1 else len(DOC)].split())


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_vector_appears_verbatim_in_protocol_doc(name):
    if name == "proof.nodes":
        for node in VECTORS[name].split(", "):
            assert node in DOC
    else:
        assert VECTORS[name] in DOC, f"{name} in docs/protocol.md is stale"


def test_documented_read_proof_verifies_with_py_trie():
    from pallets import system
    from primitives.keys import dev_keypair
    root = bytes.fromhex(VECTORS["proof.root"][2:])
    proof = [rlp.decode(bytes.fromhex(n[2:])) for n in VECTORS["proof.nodes"].split(", ")]
    key = system.account.key_of(dev_keypair("Alice").public_key)
    assert HexaryTrie.get_from_proof(root, key, proof) == bytes.fromhex(VECTORS["value.account"][2:])


def _py_ecc():
    """py_ecc's BLS (imported here: it raises the process's recursion limit, which is put back)."""
    limit = sys.getrecursionlimit()
    from py_ecc.bls import G2ProofOfPossession  # noqa: PLC0415
    sys.setrecursionlimit(limit)
    return G2ProofOfPossession


def _documented_set() -> list[tuple[bytes, bytes]]:
    """(account, BLS public key) of each row of the doc's validator set table, in index order."""
    rows = [VECTORS[f"bls.set.{i}"] for i in range(4)]
    out = []
    for i, row in enumerate(rows):
        index, _uri, account, key = [c.strip().strip("`") for c in row.strip("|").split("|")]
        assert int(index) == i
        out.append((bytes.fromhex(account[2:]), bytes.fromhex(key[2:])))
    return out


def test_documented_bls1_certificate_verifies_with_py_ecc():
    """A light client's check of section 9.4, done from the documented bytes with py_ecc and a plain
    msgpack decoder, not with the node's code."""
    ref = _py_ecc()
    # the key derivation and the proof of possession of //Validator1
    ikm = hashlib.sha256(b"gridchain/bls-from-ed25519-seed/v1" + _bytes("bls.validator1.seed")).digest()
    assert ikm == _bytes("bls.validator1.ikm")
    sk = ref.KeyGen(ikm)
    assert sk.to_bytes(32, "big") == _bytes("bls.validator1.secret")
    pk = ref.SkToPk(sk)
    assert pk == _bytes("bls.validator1.public")
    assert ref.PopVerify(pk, _bytes("bls.validator1.pop"))

    # the certificate: [height, round, block_hash, signers, signature]
    height, _round, block_hash, signers, signature = msgpack.unpackb(_bytes("bls.justification"), raw=False)
    assert height == FINALITY_HEIGHT and block_hash == bytes.fromhex("22" * 32)
    message = b"gridchain/finality/v1" + GENESIS + height.to_bytes(8, "big") + block_hash
    assert len(message) == 93 and message == _bytes("bls.message")
    vset = _documented_set()
    n = len(vset)
    assert len(signers) == (n + 7) // 8 and signers[-1] >> n == 0
    indices = [i for i in range(n) if signers[i // 8] >> (i % 8) & 1]
    assert len(indices) >= 2 * n // 3 + 1
    keys = [vset[i][1] for i in indices]
    assert ref.FastAggregateVerify(keys, message, signature)
    assert _bytes("bls.validator1.public") in keys
    # validator 0's partial is its own signature of the same message
    assert ref.Verify(vset[0][1], message, _bytes("bls.partial.0"))
    # and the certificate proves nothing for another block
    other = message[:-32] + bytes.fromhex("33" * 32)
    assert not ref.FastAggregateVerify(keys, other, signature)


def test_documented_bft1_certificate_holds_for_the_documented_set():
    from consensus.commit import CommitCertificate
    from consensus.validator_set import ValidatorSet
    cert = CommitCertificate.decode(_bytes("bft.justification"))
    vset = ValidatorSet.from_keys(account for account, _ in _documented_set())
    cert.verify(vset, GENESIS)
    assert [s.validator for s in cert.signatures] == [vset.validators[i].public_key for i in (0, 1, 3)]


def test_documented_validator_set_is_the_local_testnet_genesis():
    from genesis.chain_spec import genesis_storage, local_spec
    from pallets import build_runtime, validators
    storage = genesis_storage(local_spec(4), build_runtime())
    assert storage[validators.validators.prefix] == _bytes("value.validators.validators")
    stored = msgpack.unpackb(_bytes("value.validators.validators"), raw=False)
    assert [(a, k) for a, k, _power in stored] == _documented_set()
    assert all(power == 1 for *_, power in stored)


def test_documented_bip39_word_list_is_the_one_keys_use():
    from mnemonic import Mnemonic

    from primitives import keys
    words = Mnemonic("english").wordlist
    digest = hashlib.sha256(("\n".join(words) + "\n").encode()).hexdigest()
    assert digest in _section("## 3.")
    assert keys._MNEMONIC.wordlist == words


def _type_templates(t, out: set[str]) -> None:
    """The doc's notation for each form of type description the metadata uses."""
    if isinstance(t, str):
        if re.fullmatch(r"\[u8; \d+\]", t):
            out.add("`[u8; N]`")
        elif t == "AccountId":
            out.add("`AccountId`")
        elif t[:1].isupper():
            out.add("a struct name")
        else:
            out.add(f"`{t}`" if t != "raw" else '`"raw"`')
        return
    assert isinstance(t, dict), t
    if "vec" in t:
        assert set(t) == {"vec", "maxLen"}
        out.add('`{"vec": T, "maxLen": N}`')
        _type_templates(t["vec"], out)
    elif "option" in t:
        assert set(t) == {"option"}
        out.add('`{"option": T}`')
        _type_templates(t["option"], out)
    elif "tuple" in t:
        assert set(t) == {"tuple"}
        out.add('`{"tuple": [T, …]}`')
        for item in t["tuple"]:
            _type_templates(item, out)
    else:
        (name,) = t
        assert name in ("bytes", "str") and set(t[name]) == {"maxLen"}, t
        out.add(f'`{{"{name}": {{"maxLen": N}}}}`')


def test_every_type_form_of_the_metadata_is_in_the_extrinsics_section():
    from pallets import build_runtime
    meta = build_runtime().metadata()
    forms: set[str] = set()
    for p in meta["pallets"]:
        for c in p["calls"]:
            for a in c["args"]:
                _type_templates(a["type"], forms)
        for s in p["storage"]:
            for f in ("key", "key1", "key2", "value"):
                if f in s:
                    _type_templates(s[f], forms)
        for e in p["events"]:
            for f in e["fields"]:
                _type_templates(f["type"], forms)
    for fields in meta["types"].values():
        for f in fields:
            _type_templates(f["type"], forms)
    section = _section("## 4.")
    missing = sorted(f for f in forms if f not in section)
    assert not missing, f"protocol.md section 4 does not name these metadata types: {missing}"


def test_decoding_limits_are_documented_with_their_constants():
    """Needs the codec's depth limit and dispatch's call nesting limit (primitives/codec.py,
    runtime/dispatch.py); the document names both constants and their values."""
    from primitives.codec import MAX_NESTING_DEPTH
    from runtime.dispatch import MAX_CALL_NESTING
    encoding = _section("## 1.")
    assert f"deeper than **{MAX_NESTING_DEPTH}** levels (`MAX_NESTING_DEPTH` in `primitives/codec.py`" in encoding
    assert f"at most **{MAX_CALL_NESTING}** levels below the extrinsic's own call (`MAX_CALL_NESTING` in " \
           "`runtime/dispatch.py`" in encoding


def test_documented_forbidden_bytes_and_depth_are_what_the_codec_refuses():
    from primitives.codec import MAX_NESTING_DEPTH, CodecError, unpack
    encoding = _section("## 1.")
    for b in (0xC1, 0xC7, 0xC8, 0xC9, 0xCA, 0xCB, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8):
        with pytest.raises(CodecError):
            unpack(bytes([b]) + bytes(17))
    assert "(`0xc7`-`0xc9`, `0xd4`-`0xd8`) and floats (`0xca`, `0xcb`); `0xc1` is never valid" in encoding
    # the outermost array is level 1: MAX_NESTING_DEPTH arrays pass, one more does not
    assert unpack(b"\x91" * MAX_NESTING_DEPTH + b"\x01") is not None
    with pytest.raises(CodecError):
        unpack(b"\x91" * (MAX_NESTING_DEPTH + 1) + b"\x01")
    assert unpack(b"\x91\x91\x01") == [[1]] and "so `[[1]]` has two levels" in encoding


# --- field meters' signed records (section 8.1-8.4) ---------------------------------------------

def _fm(name: str) -> str:
    return VECTORS[f"fm.{name}"]


def _fm_bytes(name: str) -> bytes:
    return bytes.fromhex(_fm(name)[2:])


def test_deterministic_ecdsa_the_field_vectors_sign_with_is_rfc6979():
    """RFC 6979 appendix A.2.5 (P-256, SHA-256, message "sample"): `cryptography`'s deterministic
    signing, which the field meters' vectors use, gives the RFC's r and s."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils
    key = ec.derive_private_key(0xC9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721, ec.SECP256R1())
    der = key.sign(b"sample", ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    assert utils.decode_dss_signature(der) == (
        0xEFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716,
        0xF7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8)


def _p256_verify(sec1: bytes, r: int, s: int, message: bytes) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sec1)
    key.verify(utils.encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))


def _documented_private_key_gives_public(name: str) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.derive_private_key(int(_fm(f"{name}.secret"), 16), ec.SECP256R1())
    assert key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint) \
        == _fm_bytes(f"{name}.public_sec1")


def test_documented_ocmf_vector_verifies_from_its_text():
    """Section 8.2, done from the documented text with `cryptography` alone: the payload between the
    first and second '|' is signed as sent, SD is the DER signature of the documented r and s."""
    import json

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import utils
    _documented_private_key_gives_public("ocmf")
    record = _fm("ocmf.record")
    tag, payload, signature_section = record.split("|")
    assert tag == "OCMF"
    assert "0x" + hashlib.sha256(payload.encode()).hexdigest() == _fm("ocmf.signed_sha256")
    sig = json.loads(signature_section)
    assert sig["SA"] == "ECDSA-secp256r1-SHA256"
    r, s = int(_fm("ocmf.r"), 16), int(_fm("ocmf.s"), 16)
    assert utils.decode_dss_signature(bytes.fromhex(sig["SD"])) == (r, s)
    der_key = serialization.load_der_public_key(_fm_bytes("ocmf.public_der"))
    assert der_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint) \
        == _fm_bytes("ocmf.public_sec1")
    _p256_verify(_fm_bytes("ocmf.public_sec1"), r, s, payload.encode())
    body = json.loads(payload)
    assert (body["MS"], body["PG"]) == (_fm("ocmf.serial"), "T1")
    assert [(x["RI"], x["RU"], x["TM"]) for x in body["RD"]] == [
        ("1-0:1.8.0", "kWh", "2023-11-14T22:30:00,000+0000 S"), ("1-0:2.8.0", "kWh", "2023-11-14T22:30:00,000+0000 S")]
    assert '"RV":12.345' in payload and '"RV":6.789' in payload


def test_documented_edl40_block_is_the_documented_layout_and_verifies():
    """Section 8.3's block table, read at its offsets from the documented block; the list signature
    is r || s || logbook, in the SML file and in the signedMeterValue XML."""
    import base64
    import xml.etree.ElementTree as ET
    from tests.protocol_vectors import FIELD_INTERVAL_END, FIELD_SML_TENTHS_WH
    _documented_private_key_gives_public("sml")
    block = _fm_bytes("sml.block")
    assert len(block) == 320
    assert "0x" + hashlib.sha256(block).hexdigest() == _fm("sml.signed_sha256")
    assert block[0:10].hex() == _fm("sml.server_id")
    assert int.from_bytes(block[10:14], "little") == FIELD_INTERVAL_END + 3600      # local time, CET
    assert int.from_bytes(block[19:23], "little") == 1                               # pagination
    assert block[23:29] == bytes.fromhex("0100011100ff") and block[29] == 30 and block[30] == 0xFF
    assert int.from_bytes(block[31:39], "little", signed=True) == FIELD_SML_TENTHS_WH
    r, s = int(_fm("sml.r"), 16), int(_fm("sml.s"), 16)
    list_signature = _fm_bytes("sml.list_signature")
    assert list_signature == r.to_bytes(32, "big") + s.to_bytes(32, "big") + block[39:41]
    assert _fm_bytes("sml.public_sec1") == b"\x04" + _fm_bytes("sml.public_raw")
    _p256_verify(_fm_bytes("sml.public_sec1"), r, s, block)
    record = _fm_bytes("sml.record")
    assert record.startswith(bytes.fromhex("1b1b1b1b01010101")) and list_signature in record
    assert record[-8:-3] == bytes.fromhex("1b1b1b1b1a")
    xml = {e.tag: e.text for e in ET.fromstring(_fm("sml.xml"))}
    assert base64.b64decode(xml["encodedMeterValue"]) == block
    assert base64.b64decode(xml["meterValueSignature"]) == list_signature
    assert base64.b64decode(xml["publicKey"]) == _fm_bytes("sml.public_raw")


def _axdr_length(apdu: bytes, pos: int) -> tuple[int, int]:
    if apdu[pos] < 0x80:
        return apdu[pos], pos + 1
    assert apdu[pos] == 0x81 and apdu[pos + 1] >= 0x80
    return apdu[pos + 1], pos + 2


def test_documented_dlms_signed_bytes_are_header_with_lengths_and_content_without():
    """Section 8.4's rule, applied to the documented APDU by a reader written here."""
    _documented_private_key_gives_public("dlms")
    apdu = _fm_bytes("dlms.record")
    assert apdu[0] == 0xDF
    pos, fields = 1, []
    for _ in range(5):
        n, start = _axdr_length(apdu, pos)
        fields.append(apdu[start:start + n])
        pos = start + n
    header_end = pos
    n, start = _axdr_length(apdu, pos)
    content = apdu[start:start + n]
    n, start = _axdr_length(apdu, start + n)
    signature = apdu[start:start + n]
    assert start + n == len(apdu) and len(signature) == 64
    assert fields[1].hex() == _fm("dlms.system_title") and fields[2:] == [b"", b"", b""]
    signed = apdu[1:header_end] + content
    assert signed == _fm_bytes("dlms.signed")
    assert "0x" + hashlib.sha256(signed).hexdigest() == _fm("dlms.signed_sha256")
    r, s = int(_fm("dlms.r"), 16), int(_fm("dlms.s"), 16)
    assert signature == r.to_bytes(32, "big") + s.to_bytes(32, "big")
    _p256_verify(_fm_bytes("dlms.public_sec1"), r, s, signed)
    assert content[0] == 0x0F and int.from_bytes(content[1:5], "big") & 0xFFFFFF == 1     # invoke id 1


@pytest.mark.parametrize("name,scheme", [("ocmf", 1), ("sml", 2), ("dlms", 3)])
def test_documented_field_meter_id_is_keccak_of_tag_scheme_and_point(name, scheme):
    from eth_hash.auto import keccak      # py-trie's keccak, not primitives.hashing
    tag = b"gridchain/field-meter/v1"
    assert len(tag) == 24
    assert "0x" + keccak(tag + bytes([scheme]) + _fm_bytes(f"{name}.public_sec1")).hex() == _fm(f"{name}.meter_id")


@pytest.mark.parametrize("name", ["ocmf", "sml", "dlms"])
def test_documented_field_meter_calls_certify_and_submit_on_the_runtime(name):
    """The documented certify call and submit_record extrinsic, run on a chain: the meter gets the
    documented id, the node's workers get the documented check, and the record becomes a reading
    with the documented registers (floored to whole Wh) and reading hash."""
    from pallets import field_meters, metering
    from primitives.extrinsic import extrinsic_hash
    from tests.protocol_vectors import FIELD_EXPORT_WH, FIELD_IMPORT_WH, FIELD_INTERVAL_START, FIELD_SML_TENTHS_WH
    from tests.runtime_harness import chain_factory, events_named
    from tests.test_metering import DSO, after, goto, metering_genesis
    new_chain = chain_factory(metering_genesis())
    chain = new_chain()
    pallet, call, args = msgpack.unpackb(_fm_bytes(f"{name}.certify_call"), raw=False)
    assert (pallet, call) == (13, 0)
    result = chain.block(chain.xt(DSO, "field_meters", "certify", *args))
    (certified,) = events_named(result, new_chain.runtime, "field_meters", "FieldMeterCertified")
    meter_id = _fm_bytes(f"{name}.meter_id")
    assert certified[0] == meter_id

    xt = _fm_bytes(f"{name}.extrinsic")
    version, signature, (pallet, call, (meter, record)) = msgpack.unpackb(xt, raw=False)
    assert (version, signature, pallet, call, meter) == (1, None, 13, 2, meter_id)
    assert "0x" + extrinsic_hash(xt).hex() == _fm(f"{name}.extrinsic_hash")
    chk = chain.read(lambda: field_meters._record_signature(field_meters.submit_record.call_def, (meter, record)))
    assert chk.scheme == _fm(f"{name}.check_scheme") and chk.public_key == _fm_bytes(f"{name}.public_sec1")
    assert "0x" + hashlib.sha256(chk.message).hexdigest() == _fm(f"{name}.signed_sha256")
    assert chk.verify()

    goto(chain, after(FIELD_INTERVAL_START))
    result = chain.block(xt)
    (accepted,) = events_named(result, new_chain.runtime, "field_meters", "RecordAccepted")
    assert accepted == [meter_id, 1, FIELD_INTERVAL_START]
    m = chain.read(lambda: metering.get_meter(meter_id))
    expected = (FIELD_SML_TENTHS_WH // 10, 0) if name == "sml" else (FIELD_IMPORT_WH, FIELD_EXPORT_WH)
    assert (m.last_import_wh, m.last_export_wh, m.last_seq) == (*expected, 1)
    energy = chain.read(lambda: metering.energy_in_interval(meter_id, FIELD_INTERVAL_START))
    assert "0x" + energy.reading_hash.hex() == _fm(f"{name}.reading_hash")
