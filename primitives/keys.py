"""ed25519 keys, domain-separated signatures, and Substrate-compatible secret derivation.

Every signature in gridchain covers (domain tag, genesis hash, payload): a signed extrinsic cannot be
replayed as a vote, and nothing signed for one chain is valid on another. See `signing_message`.

Secrets follow Substrate's conventions so keys move between tools: a BIP39 mnemonic becomes a 32-byte
"mini secret" by PBKDF2-HMAC-SHA512 over the mnemonic's *entropy* (not its words) with salt
"mnemonic"+password and 2048 rounds, and its first 32 bytes are the ed25519 seed. Hard derivation
paths (`//Alice`) use Substrate's "Ed25519HDKD" rule. So `bottom drive obey ... walk//Alice` gives the
same public key here as in subkey with `--scheme ed25519`.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import nacl.bindings
import nacl.exceptions
import nacl.signing
from mnemonic import Mnemonic

from primitives import ss58

PUBLIC_KEY_LEN = 32
SIGNATURE_LEN = 64
SEED_LEN = 32

#: Substrate's well-known development phrase; `//Alice`, `//Bob`, ... are derived from it.
DEV_PHRASE = "bottom drive obey lake curtain smoke basket hold race lonely fit walk"
DEV_ACCOUNT_NAMES = ("Alice", "Bob", "Charlie", "Dave", "Eve", "Ferdie")

_MNEMONIC = Mnemonic("english")


class InvalidSecret(ValueError):
    """A secret URI, mnemonic or seed that cannot be turned into a key."""


def signing_message(domain: bytes, genesis_hash: bytes, payload: bytes) -> bytes:
    """The exact bytes an ed25519 signature covers: len(domain) || domain || genesis_hash || payload.

    The one-byte length keeps tags from running into the genesis hash ambiguously.
    """
    if len(domain) > 255:
        raise ValueError("domain tag longer than 255 bytes")
    if len(genesis_hash) != 32:
        raise ValueError("genesis hash must be 32 bytes")
    return bytes([len(domain)]) + domain + genesis_hash + payload


def verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """True if `signature` is a valid ed25519 signature of `message` by `public_key`."""
    if len(public_key) != PUBLIC_KEY_LEN or len(signature) != SIGNATURE_LEN:
        return False
    try:
        nacl.bindings.crypto_sign_open(signature + message, public_key)
        return True
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
        return False


def verify_domain(public_key: bytes, signature: bytes, domain: bytes, genesis_hash: bytes,
                  payload: bytes) -> bool:
    return verify(public_key, signature, signing_message(domain, genesis_hash, payload))


@dataclass(frozen=True)
class Keypair:
    """An ed25519 key pair from a 32-byte seed."""

    seed: bytes
    public_key: bytes

    @classmethod
    def from_seed(cls, seed: bytes) -> "Keypair":
        if len(seed) != SEED_LEN:
            raise InvalidSecret("an ed25519 seed is 32 bytes")
        pk, _sk = nacl.bindings.crypto_sign_seed_keypair(seed)
        return cls(seed=seed, public_key=pk)

    @classmethod
    def generate(cls) -> tuple["Keypair", str]:
        """A fresh key pair and the 12-word mnemonic it comes from."""
        phrase = _MNEMONIC.generate(strength=128)
        return cls.from_uri(phrase), phrase

    @classmethod
    def from_uri(cls, uri: str) -> "Keypair":
        """Key pair from a secret URI: `<mnemonic | 0xseed>[//hard...][///password]`.

        A URI that starts with `//` uses the development phrase, as in Substrate.
        """
        return cls.from_seed(secret_seed_from_uri(uri))

    @property
    def _secret_key(self) -> bytes:
        return self.seed + self.public_key

    def sign(self, message: bytes) -> bytes:
        return nacl.bindings.crypto_sign(message, self._secret_key)[:SIGNATURE_LEN]

    def sign_domain(self, domain: bytes, genesis_hash: bytes, payload: bytes) -> bytes:
        return self.sign(signing_message(domain, genesis_hash, payload))

    def address(self, prefix: int = ss58.GRIDCHAIN_SS58_PREFIX) -> str:
        return ss58.encode(self.public_key, prefix)


def mini_secret_from_mnemonic(phrase: str, password: str = "") -> bytes:
    """Substrate's mini secret: PBKDF2-HMAC-SHA512(entropy, "mnemonic"+password, 2048)[:32]."""
    words = " ".join(phrase.split())
    if not _MNEMONIC.check(words):
        raise InvalidSecret("not a valid BIP39 mnemonic (unknown word or bad checksum)")
    entropy = bytes(_MNEMONIC.to_entropy(words))
    return hashlib.pbkdf2_hmac("sha512", entropy, ("mnemonic" + password).encode(), 2048)[:32]


def _scale_compact_len(n: int) -> bytes:
    # SCALE compact encoding, enough for the short strings used as junctions and the HDKD tag.
    if n < 64:
        return bytes([n << 2])
    if n < 2**14:
        return ((n << 2) | 1).to_bytes(2, "little")
    return ((n << 2) | 2).to_bytes(4, "little")


def _chain_code(junction: str) -> bytes:
    """A junction as Substrate encodes it: an integer as u64 LE, else SCALE-encoded text; 32 bytes."""
    if junction.isdigit():
        raw = int(junction).to_bytes(8, "little")
    else:
        raw = _scale_compact_len(len(junction.encode())) + junction.encode()
    if len(raw) > 32:
        raw = hashlib.blake2b(raw, digest_size=32).digest()
    return raw.ljust(32, b"\0")


def derive_hard(seed: bytes, junction: str) -> bytes:
    """Substrate's ed25519 hard derivation: blake2b-256(SCALE("Ed25519HDKD") || seed || chain code)."""
    tag = b"Ed25519HDKD"
    data = _scale_compact_len(len(tag)) + tag + seed + _chain_code(junction)
    return hashlib.blake2b(data, digest_size=32).digest()


_URI = re.compile(r"^(?P<phrase>[^/]*)(?P<path>(//?[^/]+)*)(///(?P<password>.*))?$")


def secret_seed_from_uri(uri: str) -> bytes:
    """The 32-byte ed25519 seed that a Substrate secret URI denotes."""
    uri = uri.strip()
    m = _URI.match(uri)
    if not m:
        raise InvalidSecret("not a secret URI")
    phrase, path, password = m.group("phrase").strip(), m.group("path") or "", m.group("password") or ""
    if not phrase:
        phrase = DEV_PHRASE
    if phrase.startswith("0x"):
        try:
            seed = bytes.fromhex(phrase[2:])
        except ValueError:
            raise InvalidSecret("secret seed is not hex") from None
        if len(seed) != SEED_LEN:
            raise InvalidSecret("a secret seed is 32 bytes (64 hex digits)")
        if password:
            raise InvalidSecret("a password applies to a mnemonic, not a raw seed")
    else:
        seed = mini_secret_from_mnemonic(phrase, password)
    for hard, junction in re.findall(r"(//?)([^/]+)", path):
        if hard != "//":
            raise InvalidSecret("ed25519 supports only hard derivation (//), not soft (/)")
        seed = derive_hard(seed, junction)
    return seed


def dev_keypair(name: str) -> Keypair:
    """The well-known development account `//Name` (Alice, Bob, ...)."""
    return Keypair.from_uri("//" + name)
