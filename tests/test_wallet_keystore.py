"""The wallet's keystore: encrypted account files that open only with their password, say clearly
when they cannot, and are never half-written or silently replaced."""
from __future__ import annotations

import json
import os
import stat

import nacl.pwhash
import pytest

from primitives.keys import Keypair, dev_keypair
from primitives.private_file import write_private_file as write_atomic
from wallet import keystore as ks
from wallet.keystore import KdfParams, Keystore, KeystoreError

FAST = KdfParams.minimal()
BOB = dev_keypair("Bob")


@pytest.fixture
def store(tmp_path) -> Keystore:
    return Keystore(tmp_path / "keys")


def test_round_trip_gives_back_the_seed_and_the_file_says_what_it_holds(store):
    info = store.add("bob", BOB.seed, "correct horse", FAST)
    assert (info.address, info.public_key) == (BOB.address(), BOB.public_key)
    assert store.unlock("bob", "correct horse") == BOB

    doc = json.loads(store.path_of("bob").read_text())
    assert doc["version"] == 1 and doc["address"] == BOB.address() and doc["publicKey"] == "0x" + BOB.public_key.hex()
    assert doc["kdf"] == {"name": "argon2id", "opslimit": FAST.opslimit, "memlimit": FAST.memlimit,
                          "salt": doc["kdf"]["salt"]}
    assert len(bytes.fromhex(doc["kdf"]["salt"][2:])) == 16 and len(bytes.fromhex(doc["cipher"]["nonce"][2:])) == 24
    assert BOB.seed.hex() not in store.path_of("bob").read_text()          # the seed is not in clear
    assert store.names() == ["bob"] and store.info("bob").address == BOB.address()


def test_two_files_of_the_same_key_use_fresh_salt_and_nonce(store):
    store.add("a", BOB.seed, "pw", FAST)
    store.add("b", BOB.seed, "pw", FAST)
    a, b = (json.loads(store.path_of(n).read_text()) for n in ("a", "b"))
    assert a["kdf"]["salt"] != b["kdf"]["salt"] and a["ciphertext"] != b["ciphertext"]


def test_default_cost_is_libsodium_moderate_and_the_stored_cost_is_used_to_open():
    doc = ks.encrypt_seed("x", BOB.seed, "pw")
    assert (doc["kdf"]["opslimit"], doc["kdf"]["memlimit"]) == (nacl.pwhash.argon2id.OPSLIMIT_MODERATE,
                                                                nacl.pwhash.argon2id.MEMLIMIT_MODERATE)
    fast = ks.encrypt_seed("x", BOB.seed, "pw", KdfParams.interactive())
    assert ks.decrypt_seed(fast, "pw") == BOB.seed


def test_wrong_password_is_one_clear_error(store):
    store.add("bob", BOB.seed, "right", FAST)
    with pytest.raises(KeystoreError) as e:
        store.unlock("bob", "wrong")
    assert str(e.value) == f"wrong password or corrupt keystore: {store.path_of('bob')}"


def test_password_is_unicode_normalised(store):
    store.add("bob", BOB.seed, "caf\u00e9", FAST)                  # é as one code point
    assert store.unlock("bob", "cafe\u0301") == BOB                 # e + combining accent


def test_empty_password_is_refused(store):
    with pytest.raises(KeystoreError, match="must not be empty"):
        store.add("bob", BOB.seed, "", FAST)
    assert not store.exists("bob")


@pytest.mark.parametrize("damage,expect", [
    (lambda d: "{not json", "not JSON"),
    (lambda d: json.dumps([1, 2]), "not a JSON object"),
    (lambda d: json.dumps({**d, "version": 7}), "unsupported version 7"),
    (lambda d: json.dumps({k: v for k, v in d.items() if k != "ciphertext"}), "ciphertext"),
    (lambda d: json.dumps({**d, "ciphertext": d["ciphertext"][:-4]}), "ciphertext is 46 bytes, expected 48"),
    (lambda d: json.dumps({**d, "address": dev_keypair("Charlie").address()}), "address and publicKey disagree"),
    (lambda d: json.dumps({**d, "kdf": {**d["kdf"], "memlimit": 2**42}}), "memlimit"),
    (lambda d: json.dumps({**d, "kdf": {**d["kdf"], "name": "scrypt"}}), "kdf must be argon2id"),
], ids=["garbage", "array", "version", "no-ciphertext", "short-ciphertext", "edited-address", "huge-memlimit",
        "other-kdf"])
def test_a_corrupt_file_is_one_clear_error_naming_it(store, damage, expect):
    store.add("bob", BOB.seed, "pw", FAST)
    path = store.path_of("bob")
    path.write_text(damage(json.loads(path.read_text())))
    with pytest.raises(KeystoreError) as e:
        store.unlock("bob", "pw")
    msg = str(e.value)
    assert msg.startswith(f"corrupt keystore {path}") and expect in msg and "\n" not in msg


def test_a_flipped_ciphertext_bit_fails_authentication(store):
    store.add("bob", BOB.seed, "pw", FAST)
    path = store.path_of("bob")
    doc = json.loads(path.read_text())
    raw = bytearray(bytes.fromhex(doc["ciphertext"][2:]))
    raw[5] ^= 1
    path.write_text(json.dumps({**doc, "ciphertext": "0x" + raw.hex()}))
    with pytest.raises(KeystoreError, match="wrong password or corrupt keystore"):
        store.unlock("bob", "pw")


def test_a_file_whose_key_and_address_were_both_swapped_is_caught(store):
    store.add("bob", BOB.seed, "pw", FAST)
    path = store.path_of("bob")
    charlie = dev_keypair("Charlie")
    doc = json.loads(path.read_text())
    path.write_text(json.dumps({**doc, "address": charlie.address(), "publicKey": "0x" + charlie.public_key.hex()}))
    with pytest.raises(KeystoreError, match="does not match its address"):
        store.unlock("bob", "pw")


def test_unreadable_and_unknown_accounts_are_one_clear_error(store):
    store.directory.mkdir(parents=True)
    store.path_of("dir").mkdir()                                    # a directory where a file should be
    with pytest.raises(KeystoreError, match=r"cannot read keystore .*dir\.json"):
        store.unlock("dir", "pw")
    with pytest.raises(KeystoreError, match="no account named 'ghost'"):
        store.unlock("ghost", "pw")
    with pytest.raises(KeystoreError, match="bad account name"):
        store.path_of("../escape")


def test_an_existing_account_is_never_overwritten(store):
    store.add("bob", BOB.seed, "pw", FAST)
    before = store.path_of("bob").read_bytes()
    with pytest.raises(KeystoreError, match="already exists"):
        store.add("bob", dev_keypair("Charlie").seed, "pw", FAST)
    assert store.path_of("bob").read_bytes() == before
    assert store.unlock("bob", "pw") == BOB


def test_files_are_private_and_no_temporary_file_is_left(store):
    store.add("bob", BOB.seed, "pw", FAST)
    assert stat.S_IMODE(os.stat(store.path_of("bob")).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(store.directory).st_mode) & 0o077 == 0
    assert os.listdir(store.directory) == ["bob.json"]


def test_write_atomic_refuses_to_replace_unless_asked(tmp_path):
    path = tmp_path / "f.json"
    write_atomic(path, b"one")
    with pytest.raises(FileExistsError):
        write_atomic(path, b"two")
    assert path.read_bytes() == b"one"
    write_atomic(path, b"three", overwrite=True)
    assert path.read_bytes() == b"three" and os.listdir(tmp_path) == ["f.json"]


def test_write_atomic_that_fails_midway_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "f.json"
    write_atomic(path, b"old")

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(ks.os, "fsync", broken_fsync)      # the disk fails before the new bytes are durable
    with pytest.raises(OSError):
        write_atomic(path, b"new", overwrite=True)
    monkeypatch.undo()
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.json"]


def test_change_password_reencrypts_in_place(store):
    store.add("bob", BOB.seed, "old", FAST)
    salt_before = json.loads(store.path_of("bob").read_text())["kdf"]["salt"]
    store.change_password("bob", "old", "new", FAST)
    assert store.unlock("bob", "new") == BOB
    with pytest.raises(KeystoreError, match="wrong password"):
        store.unlock("bob", "old")
    assert json.loads(store.path_of("bob").read_text())["kdf"]["salt"] != salt_before


def test_keystore_directory_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(ks.KEYSTORE_ENV, str(tmp_path / "elsewhere"))
    assert Keystore().directory == tmp_path / "elsewhere"
    monkeypatch.delenv(ks.KEYSTORE_ENV)
    assert Keystore().directory.parts[-2:] == (".gridchain", "wallet")


def test_accounts_lists_every_account_and_ignores_other_files(store):
    for name, uri in (("bob", "//Bob"), ("charlie", "//Charlie")):
        store.add(name, Keypair.from_uri(uri).seed, "pw", FAST)
    (store.directory / ".bob.json.x1.tmp").write_text("partial")
    (store.directory / "notes.txt").write_text("hello")
    assert [a.name for a in store.accounts()] == ["bob", "charlie"]
