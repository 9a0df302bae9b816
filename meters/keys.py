"""A meter's key: generated once, kept in a small JSON file, and its public key is the meter's id.

A certified meter signs every reading with its own ed25519 key (protocol.md section 8); the chain
knows the meter only by the public key the DSO certified. So the key file is the meter's identity:
losing it means re-certifying a new meter, and overwriting it by accident is the same loss. Hence:

  - the file is written atomically (a 0600 temporary file in the same directory, fsynced, then
    hard-linked into place, then the directory fsynced): a crash leaves no file or the whole file,
    never half of one;
  - it is never overwritten: the hard link fails if the name exists (two writers cannot both win);
  - the seed is stored in clear, mode 0600. A meter or gateway runs unattended and must sign every
    15 minutes without anyone typing a password, so encryption at rest would only move the secret
    next to the file. Protect the file as a device key (file permissions, a secure element).

Format (UTF-8 JSON):

    {"type": "gridchain-meter-key", "version": 1, "scheme": "ed25519",
     "seed": "0x<32 bytes>", "publicKey": "0x<32 bytes>"}

`publicKey` is redundant with the seed on purpose: it is what an installer reads off the file to
have the meter certified, and it is checked against the seed on every load, so a damaged or edited
file is refused rather than signing as some other, uncertified key.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from primitives.keys import SEED_LEN, InvalidSecret, Keypair, secret_seed_from_uri
from primitives.private_file import write_private_file

KEY_FILE_TYPE = "gridchain-meter-key"
KEY_FILE_VERSION = 1


class KeyFileError(Exception):
    """A meter key file that cannot be written or used; the message names the file."""


def key_document(keypair: Keypair) -> dict[str, Any]:
    """The JSON object stored for `keypair`."""
    return {"type": KEY_FILE_TYPE, "version": KEY_FILE_VERSION, "scheme": "ed25519",
            "seed": "0x" + keypair.seed.hex(), "publicKey": "0x" + keypair.public_key.hex()}


def write_key_file(path: Path | str, keypair: Keypair) -> Path:
    """Store `keypair` in a new key file at `path` (refuses to overwrite anything)."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        raise KeyFileError(f"{path} already exists; a meter key file is never overwritten "
                           "(choose another name, or delete the old file if you are sure)")
    if not path.parent.is_dir():
        raise KeyFileError(f"cannot write {path}: directory {path.parent} does not exist")
    data = (json.dumps(key_document(keypair), indent=2) + "\n").encode()
    try:
        write_private_file(path, data)
    except FileExistsError:
        raise KeyFileError(f"{path} already exists; a meter key file is never overwritten") from None
    except OSError as e:
        raise KeyFileError(f"cannot write {path}: {e.strerror or e}") from None
    return path


def generate_key_file(path: Path | str, uri: str | None = None) -> Keypair:
    """Create a meter key file: a fresh random seed, or the seed of a secret URI (`//Bob//meter`, a
    mnemonic, a 0x seed) when a key made elsewhere must be moved onto a gateway."""
    if uri is None:
        keypair = Keypair.from_seed(os.urandom(SEED_LEN))
    else:
        try:
            keypair = Keypair.from_seed(secret_seed_from_uri(uri))
        except InvalidSecret as e:
            raise KeyFileError(f"bad secret URI: {e}") from None
    write_key_file(path, keypair)
    return keypair


def _hex32(doc: dict, name: str, path: Path) -> bytes:
    value = doc.get(name)
    if not isinstance(value, str) or not value.startswith("0x"):
        raise KeyFileError(f"{path} is not a valid meter key file: '{name}' must be 0x-hex")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError:
        raise KeyFileError(f"{path} is not a valid meter key file: '{name}' is not hex") from None
    if len(raw) != 32:
        raise KeyFileError(f"{path} is not a valid meter key file: '{name}' must be 32 bytes, got {len(raw)}")
    return raw


def load_key_file(path: Path | str) -> Keypair:
    """The meter key in `path`; KeyFileError with one clear sentence for a missing, unreadable,
    corrupt or foreign file, or one whose public key does not match its seed."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"meter key file {path} does not exist "
                           "(create one with `gridchain meter key generate --out FILE`)") from None
    except IsADirectoryError:
        raise KeyFileError(f"meter key file {path} is a directory") from None
    except OSError as e:
        raise KeyFileError(f"cannot read meter key file {path}: {e.strerror or e}") from None
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise KeyFileError(f"{path} is not a meter key file (not JSON); it may be damaged") from None
    if not isinstance(doc, dict) or doc.get("type") != KEY_FILE_TYPE:
        raise KeyFileError(f"{path} is not a meter key file (expected \"type\": \"{KEY_FILE_TYPE}\")")
    if doc.get("version") != KEY_FILE_VERSION:
        raise KeyFileError(f"{path}: unsupported meter key file version {doc.get('version')!r} "
                           f"(this gateway reads version {KEY_FILE_VERSION})")
    if doc.get("scheme") != "ed25519":
        raise KeyFileError(f"{path}: unsupported key scheme {doc.get('scheme')!r} (meters use ed25519)")
    seed = _hex32(doc, "seed", path)
    public_key = _hex32(doc, "publicKey", path)
    keypair = Keypair.from_seed(seed)
    if keypair.public_key != public_key:
        raise KeyFileError(f"{path} is damaged: its publicKey does not belong to its seed")
    return keypair


def loose_permissions(path: Path | str) -> bool:
    """True if group or others may read the key file (worth a warning, as ssh gives)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_IRWXG | stat.S_IRWXO))
