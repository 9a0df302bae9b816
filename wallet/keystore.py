"""Password-encrypted key files, one per account, in a keystore directory.

Each account is one JSON file `<name>.json` holding its 32-byte ed25519 seed encrypted with a key
derived from the user's password:

    {"version": 1, "name": "bob", "keyType": "ed25519",
     "address": "<SS58>", "publicKey": "0x<32 bytes>",
     "kdf": {"name": "argon2id", "opslimit": 3, "memlimit": 268435456, "salt": "0x<16 bytes>"},
     "cipher": {"name": "xsalsa20-poly1305", "nonce": "0x<24 bytes>"},
     "ciphertext": "0x<48 bytes: the seed and its 16-byte MAC>"}

Why these choices:
  - argon2id (libsodium's `crypto_pwhash`) is memory-hard, so guessing a stolen file's password on
    GPUs is expensive; its cost parameters live in the file, so files written with a faster setting
    (tests) or a stronger one (later versions) still open. The default is libsodium's MODERATE
    (3 passes, 256 MiB: about half a second here), a wallet being unlocked once per command.
  - SecretBox (XSalsa20-Poly1305) authenticates the ciphertext: a wrong password and a flipped bit
    both fail the MAC, so a wrong password can never yield a wrong key. The address and public key
    are stored in clear (listing accounts needs no password) and checked against the decrypted seed,
    so an edited address is caught too.
  - Files are written atomically (temporary file, fsync, then a hard link or rename into place and
    an fsync of the directory) with mode 0600 in a 0700 directory: a crash leaves the old file or
    the new one, never half of one. A new account is linked into place, which fails if the name
    exists, so an account is never overwritten by accident.
  - Only the seed is stored, not the mnemonic: the mnemonic is shown once when an account is
    created, and is the user's backup.
"""
from __future__ import annotations

import json
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils

from primitives import ss58
from primitives.keys import SEED_LEN, Keypair
from primitives.private_file import write_private_file

VERSION = 1
KDF_NAME = "argon2id"
CIPHER_NAME = "xsalsa20-poly1305"
SALT_LEN = nacl.pwhash.argon2id.SALTBYTES
NONCE_LEN = nacl.secret.SecretBox.NONCE_SIZE
CIPHERTEXT_LEN = SEED_LEN + nacl.secret.SecretBox.MACBYTES

#: environment variable naming the keystore directory (the `--keystore` option wins over it)
KEYSTORE_ENV = "GRIDCHAIN_KEYSTORE"

#: account names: file-name safe on every platform, and never a hidden or temporary file
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")

#: the most work a file may ask for: a crafted file must not make `unlock` use 4 TiB of memory
_MAX_OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_SENSITIVE * 4
_MAX_MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_SENSITIVE


class KeystoreError(Exception):
    """Anything wrong with an account file or the keystore directory, as one sentence for the user."""


@dataclass(frozen=True)
class KdfParams:
    """argon2id cost: `opslimit` passes over `memlimit` bytes of memory."""

    opslimit: int
    memlimit: int

    @classmethod
    def moderate(cls) -> KdfParams:
        """The default: libsodium's MODERATE (3 passes, 256 MiB)."""
        return cls(nacl.pwhash.argon2id.OPSLIMIT_MODERATE, nacl.pwhash.argon2id.MEMLIMIT_MODERATE)

    @classmethod
    def interactive(cls) -> KdfParams:
        """libsodium's INTERACTIVE (2 passes, 64 MiB): for small machines."""
        return cls(nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE, nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE)

    @classmethod
    def minimal(cls) -> KdfParams:
        """The cheapest setting libsodium allows (1 pass, 8 KiB). For tests only: it does not slow
        down password guessing at all."""
        return cls(nacl.pwhash.argon2id.OPSLIMIT_MIN, nacl.pwhash.argon2id.MEMLIMIT_MIN)

    def check(self) -> None:
        if not nacl.pwhash.argon2id.OPSLIMIT_MIN <= self.opslimit <= _MAX_OPSLIMIT:
            raise ValueError(f"opslimit {self.opslimit} out of range")
        if not nacl.pwhash.argon2id.MEMLIMIT_MIN <= self.memlimit <= _MAX_MEMLIMIT:
            raise ValueError(f"memlimit {self.memlimit} out of range")


KDF_PRESETS = {"moderate": KdfParams.moderate, "interactive": KdfParams.interactive, "minimal": KdfParams.minimal}


@dataclass(frozen=True)
class AccountInfo:
    """What a keystore file says in clear: enough to list and address an account without its password."""

    name: str
    address: str
    public_key: bytes
    path: Path


def default_keystore_dir() -> Path:
    """`$GRIDCHAIN_KEYSTORE`, else `~/.gridchain/wallet`."""
    env = os.environ.get(KEYSTORE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".gridchain" / "wallet"


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise KeystoreError(f"bad account name {name!r}: use 1-64 letters, digits, '_', '.' or '-', "
                            "not starting with '.' or '-'")
    return name


def _password_bytes(password: str) -> bytes:
    """NFKC-normalised UTF-8, so the same password typed on another keyboard or OS still opens the file."""
    return unicodedata.normalize("NFKC", password).encode()


def _derive_key(password: str, salt: bytes, kdf: KdfParams) -> bytes:
    return nacl.pwhash.argon2id.kdf(nacl.secret.SecretBox.KEY_SIZE, _password_bytes(password), salt,
                                    opslimit=kdf.opslimit, memlimit=kdf.memlimit)


def encrypt_seed(name: str, seed: bytes, password: str, kdf: KdfParams | None = None) -> dict:
    """The keystore document of an account (a JSON-ready dict) holding `seed` under `password`."""
    if len(seed) != SEED_LEN:
        raise KeystoreError("an ed25519 seed is 32 bytes")
    if not password:
        raise KeystoreError("the keystore password must not be empty")
    kdf = kdf or KdfParams.moderate()
    kdf.check()
    salt = nacl.utils.random(SALT_LEN)
    nonce = nacl.utils.random(NONCE_LEN)
    box = nacl.secret.SecretBox(_derive_key(password, salt, kdf))
    ciphertext = box.encrypt(seed, nonce).ciphertext
    kp = Keypair.from_seed(seed)
    return {
        "version": VERSION, "name": name, "keyType": "ed25519",
        "address": kp.address(), "publicKey": "0x" + kp.public_key.hex(),
        "kdf": {"name": KDF_NAME, "opslimit": kdf.opslimit, "memlimit": kdf.memlimit, "salt": "0x" + salt.hex()},
        "cipher": {"name": CIPHER_NAME, "nonce": "0x" + nonce.hex()},
        "ciphertext": "0x" + ciphertext.hex(),
    }


def _hex_field(doc: dict, key: str, length: int) -> bytes:
    v = doc.get(key)
    if not isinstance(v, str) or not v.startswith("0x"):
        raise ValueError(f"{key} is not 0x-hex")
    try:
        b = bytes.fromhex(v[2:])
    except ValueError:
        raise ValueError(f"{key} is not 0x-hex") from None
    if len(b) != length:
        raise ValueError(f"{key} is {len(b)} bytes, expected {length}")
    return b


def _int_field(doc: dict, key: str) -> int:
    v = doc.get(key)
    if type(v) is not int:
        raise ValueError(f"{key} is not an integer")
    return v


@dataclass(frozen=True)
class _Parsed:
    info_address: str
    public_key: bytes
    kdf: KdfParams
    salt: bytes
    nonce: bytes
    ciphertext: bytes


def _parse(doc: Any) -> _Parsed:
    """Check a keystore document's shape; ValueError naming the first thing wrong."""
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")  # noqa: TRY004 - a bad file, reported as ValueError like the rest
    if doc.get("version") != VERSION:
        raise ValueError(f"unsupported version {doc.get('version')!r} (this wallet reads version {VERSION})")
    address = doc.get("address")
    if not isinstance(address, str):
        raise ValueError("address missing")  # noqa: TRY004
    public_key = _hex_field(doc, "publicKey", 32)
    try:
        if ss58.decode_with_prefix(address)[0] != public_key:
            raise ValueError("address and publicKey disagree")
    except ss58.AddressError as e:
        raise ValueError(f"address: {e}") from None
    kdf_doc, cipher_doc = doc.get("kdf"), doc.get("cipher")
    if not isinstance(kdf_doc, dict) or kdf_doc.get("name") != KDF_NAME:
        raise ValueError(f"kdf must be {KDF_NAME}")
    if not isinstance(cipher_doc, dict) or cipher_doc.get("name") != CIPHER_NAME:
        raise ValueError(f"cipher must be {CIPHER_NAME}")
    kdf = KdfParams(_int_field(kdf_doc, "opslimit"), _int_field(kdf_doc, "memlimit"))
    kdf.check()
    return _Parsed(address, public_key, kdf, _hex_field(kdf_doc, "salt", SALT_LEN),
                   _hex_field(cipher_doc, "nonce", NONCE_LEN), _hex_field(doc, "ciphertext", CIPHERTEXT_LEN))


def decrypt_seed(doc: Any, password: str, where: str = "keystore") -> bytes:
    """The seed in a keystore document; KeystoreError on a wrong password or a damaged document."""
    try:
        p = _parse(doc)
    except ValueError as e:
        raise KeystoreError(f"corrupt keystore {where}: {e}") from None
    box = nacl.secret.SecretBox(_derive_key(password, p.salt, p.kdf))
    try:
        seed = box.decrypt(p.ciphertext, p.nonce)
    except nacl.exceptions.CryptoError:
        raise KeystoreError(f"wrong password or corrupt keystore: {where}") from None
    if Keypair.from_seed(seed).public_key != p.public_key:
        raise KeystoreError(f"corrupt keystore {where}: the key does not match its address")
    return seed


class Keystore:
    """A directory of account files, addressed by account name."""

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory).expanduser() if directory is not None else default_keystore_dir()

    def path_of(self, name: str) -> Path:
        return self.directory / f"{check_name(name)}.json"

    def names(self) -> list[str]:
        """Account names, sorted; files that are not accounts (temporary files, others) are ignored."""
        if not self.directory.is_dir():
            return []
        try:
            entries = os.listdir(self.directory)
        except OSError as e:
            raise KeystoreError(f"cannot read keystore directory {self.directory}: {e.strerror}") from None
        return sorted(n[:-5] for n in entries if n.endswith(".json") and _NAME.match(n[:-5]))

    def exists(self, name: str) -> bool:
        return self.path_of(name).exists()

    def _read(self, name: str) -> dict:
        path = self.path_of(name)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise KeystoreError(f"no account named {name!r} in {self.directory}") from None
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
            raise KeystoreError(f"cannot read keystore {path}: {reason}") from None
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise KeystoreError(f"corrupt keystore {path}: not JSON ({e.msg} at line {e.lineno})") from None

    def info(self, name: str) -> AccountInfo:
        """The account's clear-text part (address, public key); checks the file's shape."""
        path = self.path_of(name)
        try:
            p = _parse(self._read(name))
        except ValueError as e:
            raise KeystoreError(f"corrupt keystore {path}: {e}") from None
        return AccountInfo(name, p.info_address, p.public_key, path)

    def accounts(self) -> list[AccountInfo]:
        return [self.info(n) for n in self.names()]

    def add(self, name: str, seed: bytes, password: str, kdf: KdfParams | None = None) -> AccountInfo:
        """Store a new account; refuses a name that is taken."""
        path = self.path_of(name)
        if path.exists():
            raise KeystoreError(f"an account named {name!r} already exists in {self.directory}")
        doc = encrypt_seed(name, seed, password, kdf)
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_private_file(path, (json.dumps(doc, indent=2) + "\n").encode())
        except FileExistsError:
            raise KeystoreError(f"an account named {name!r} already exists in {self.directory}") from None
        except OSError as e:
            raise KeystoreError(f"cannot write keystore {path}: {e.strerror}") from None
        return AccountInfo(name, doc["address"], Keypair.from_seed(seed).public_key, path)

    def unlock(self, name: str, password: str) -> Keypair:
        """The account's key pair; KeystoreError for a wrong password or a damaged file."""
        return Keypair.from_seed(decrypt_seed(self._read(name), password, str(self.path_of(name))))

    def change_password(self, name: str, old_password: str, new_password: str,
                        kdf: KdfParams | None = None) -> None:
        """Re-encrypt under a new password (fresh salt and nonce), replacing the file atomically."""
        seed = decrypt_seed(self._read(name), old_password, str(self.path_of(name)))
        doc = encrypt_seed(name, seed, new_password, kdf)
        path = self.path_of(name)
        try:
            write_private_file(path, (json.dumps(doc, indent=2) + "\n").encode(), overwrite=True)
        except OSError as e:
            raise KeystoreError(f"cannot write keystore {path}: {e.strerror}") from None
