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
