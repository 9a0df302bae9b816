"""Keys match Substrate's, addresses decode with SS58 tools, signatures are domain-separated."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from primitives import ss58
from primitives.keys import (DEV_PHRASE, InvalidSecret, Keypair, dev_keypair, mini_secret_from_mnemonic,
                             signing_message, verify, verify_domain)


def test_dev_alice_matches_substrate_ed25519_vector():
    # `subkey inspect --scheme ed25519 //Alice` prints this public key and generic (42) address
    alice = dev_keypair("Alice")
    assert alice.public_key.hex() == "88dc3417d5058ec4b4503e0c12ea1a0a89be200fe98922423d4334014fa6b0ee"
    assert ss58.encode(alice.public_key, 42) == "5FA9nQDVg267DEd8m1ZypXLBnvN7SFxYwV7ndqSYGiN9TTpu"


def test_dev_phrase_uri_equals_empty_phrase_uri():
    assert Keypair.from_uri(DEV_PHRASE + "//Bob").public_key == dev_keypair("Bob").public_key


def test_mnemonic_seed_uses_entropy_not_words_as_substrate_does():
    # BIP39's own seed would be PBKDF2 over the words; Substrate's mini secret is over the entropy
    seed = mini_secret_from_mnemonic(DEV_PHRASE)
    assert len(seed) == 32
    assert mini_secret_from_mnemonic(DEV_PHRASE, "pw") != seed


@pytest.mark.parametrize("uri", ["not a mnemonic at all", "0x1234", "//Alice/soft", "0xzz" + "0" * 62])
def test_bad_secret_uris_are_refused(uri):
    with pytest.raises(InvalidSecret):
        Keypair.from_uri(uri)


@given(st.binary(min_size=32, max_size=32), st.integers(0, 16383))
def test_ss58_round_trip_any_prefix(pk, prefix):
    assert ss58.decode_with_prefix(ss58.encode(pk, prefix)) == (pk, prefix)


def test_ss58_rejects_bad_checksum_and_wrong_network():
    addr = dev_keypair("Alice").address()
    broken = addr[:-1] + ("a" if addr[-1] != "a" else "b")
    with pytest.raises(ss58.AddressError):
        ss58.decode(broken)
    with pytest.raises(ss58.AddressError, match="network"):
        ss58.decode(ss58.encode(b"\1" * 32, 42))


def test_signature_is_bound_to_domain_and_genesis():
    kp = dev_keypair("Alice")
    g1, g2 = b"\1" * 32, b"\2" * 32
    sig = kp.sign_domain(b"gridchain/extrinsic/v1", g1, b"payload")
    assert verify_domain(kp.public_key, sig, b"gridchain/extrinsic/v1", g1, b"payload")
    assert not verify_domain(kp.public_key, sig, b"gridchain/extrinsic/v1", g2, b"payload")
    assert not verify_domain(kp.public_key, sig, b"gridchain/vote/v1", g1, b"payload")
    assert not verify(kp.public_key, sig[:-1], signing_message(b"gridchain/extrinsic/v1", g1, b"payload"))
