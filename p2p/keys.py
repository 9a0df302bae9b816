"""The node's network identity: one ed25519 key, persisted under the base path.

A validator's peer id is how other validators list it as a bootnode, so the key must survive a
restart; a new id after every restart would silently break every `--bootnodes` line that names
this node. Like Substrate, the file `<base>/network/secret_ed25519` holds the raw 32-byte seed,
created with mode 0600 (directory 0700) on first start and reused afterwards.

A file of the wrong length is an error, never a reason to make a fresh key: silently changing
identity is worse than refusing to start.
"""
from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from libp2p.crypto.ed25519 import Ed25519PrivateKey, create_new_key_pair
from libp2p.crypto.keys import KeyPair
from libp2p.peer.id import ID

log = logging.getLogger(__name__)

SEED_LEN = 32
KEY_FILE = Path("network") / "secret_ed25519"


class NodeKeyError(Exception):
    """The node key file exists but cannot be used."""


def node_key_path(base_path: Path) -> Path:
    """Where the node key of a node with this base path lives."""
    return Path(base_path) / KEY_FILE


def load_or_create_node_key(base_path: Path) -> KeyPair:
    """The node key at `<base_path>/network/secret_ed25519`, created (0600) if there is none."""
    path = node_key_path(base_path)
    try:
        seed = path.read_bytes()
    except FileNotFoundError:
        return _create(path)
    if len(seed) != SEED_LEN:
        raise NodeKeyError(f"{path}: expected a {SEED_LEN}-byte ed25519 seed, found {len(seed)} bytes")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("node key %s is readable by others (mode %o); it should be 0600", path, mode)
    return create_new_key_pair(seed)


def _create(path: Path) -> KeyPair:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pair = create_new_key_pair()
    seed = pair.private_key.to_bytes()
    assert isinstance(pair.private_key, Ed25519PrivateKey) and len(seed) == SEED_LEN
    tmp = path.with_suffix(".tmp")
    # O_EXCL on a temporary name, then an atomic rename: a crash never leaves a half-written key,
    # and the secret is never, even briefly, readable by anyone but the owner.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, seed)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    log.info("generated a new node key in %s (peer id %s)", path, peer_id_of(pair))
    return pair


def peer_id_of(pair: KeyPair) -> str:
    """The base58 peer id (`12D3KooW...`) of a key pair."""
    return ID.from_pubkey(pair.public_key).to_base58()
