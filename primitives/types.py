"""Block, header and digest: the data every part of the node and every client agrees on.

Shapes follow Substrate (a header is parent hash, number, state root, extrinsics root, digest) so
that RPC results look the way Substrate users expect; the encoding is gridchain's canonical msgpack.
"""
from __future__ import annotations

from primitives.codec import BYTES, H256, U8, U64, Bytes, ListOf, struct
from primitives.hashing import keccak256

#: An account: its ed25519 public key. Encoded exactly as H256 (32 bytes as bin) but named
#: "AccountId" in the metadata, as Substrate's AccountId32 is, so that a client can tell an account
#: from a hash by the metadata alone.
AccountId = Bytes(32, name="AccountId")
Hash = H256
BlockNumber = U64
#: Money in the smallest unit (1e-6 of a currency unit for the stablecoin).
Balance = U64

MAX_EXTRINSIC_BYTES = 64 * 1024
MAX_BLOCK_EXTRINSICS = 100_000

# Digest item kinds, numbered as in Substrate's DigestItem.
DIGEST_OTHER = 0
DIGEST_CONSENSUS = 4
DIGEST_SEAL = 5
DIGEST_PRE_RUNTIME = 6

#: Engine id of gridchain's authoring digests (the author's account in PreRuntime, its signature in Seal).
ENGINE_GRID = b"grid"

#: Domain tag of the author's seal signature over the header's pre-hash.
SEAL_DOMAIN = b"gridchain/seal/v1"


@struct
class DigestItem:
    kind: U8
    engine: Bytes(4)
    data: Bytes(max_len=4096)


@struct
class Header:
    parent_hash: H256
    number: U64
    state_root: H256
    extrinsics_root: H256
    digest: ListOf(DigestItem, max_len=16)

    def hash(self) -> bytes:
        """The block hash: keccak-256 of the whole encoded header, seal included."""
        return keccak256(self.encode())

    def pre_hash(self) -> bytes:
        """keccak-256 of the header without its seal: what the author signs."""
        return keccak256(self.without_seal().encode())

    def without_seal(self) -> "Header":
        items = self.digest
        if items and items[-1].kind == DIGEST_SEAL:
            items = items[:-1]
        return Header(self.parent_hash, self.number, self.state_root, self.extrinsics_root, items)

    def seal(self) -> DigestItem | None:
        if self.digest and self.digest[-1].kind == DIGEST_SEAL:
            return self.digest[-1]
        return None

    def author(self) -> bytes | None:
        """The account named in the PreRuntime digest, if any."""
        for item in self.digest:
            if item.kind == DIGEST_PRE_RUNTIME and item.engine == ENGINE_GRID:
                return item.data
        return None


@struct
class Block:
    header: Header
    extrinsics: ListOf(Bytes(max_len=MAX_EXTRINSIC_BYTES), max_len=MAX_BLOCK_EXTRINSICS)


@struct
class Justification:
    """Proof of finality for a block: an engine id and its encoded certificate."""

    engine: Bytes(4)
    data: BYTES


@struct
class SignedBlock:
    block: Block
    justifications: ListOf(Justification, max_len=4)
