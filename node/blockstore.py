"""Blocks on disk: headers, bodies, justifications, the canonical number index and the extrinsic index.

gridchain's BFT finality is instant, so the node only ever imports blocks in order on one chain: the
number index `n/` IS the canonical chain, and `put_block` refuses a block that does not extend the last
indexed block (or that conflicts with a block already stored at its height). All writes go into the
caller's `WriteBatch` (together with the block's state changes) and become visible to the read methods
only after `Database.write`; see `node.db` for the column layout.
"""
from __future__ import annotations

from typing import Iterable

from primitives.codec import BYTES, ListOf, pack, unpack
from primitives.extrinsic import extrinsic_hash
from primitives.types import MAX_BLOCK_EXTRINSICS, Block, Header, Justification, SignedBlock

from node.db import (COL_BODIES, COL_EXTRINSICS, COL_HEADERS, COL_JUSTIFICATIONS, COL_META, COL_NUMBERS,
                     META_BEST, META_FINALIZED, META_GENESIS, Damage, Database, WriteBatch, from_u64, u64)

_BODY = ListOf(BYTES, max_len=MAX_BLOCK_EXTRINSICS)
_JUSTIFICATIONS = ListOf(Justification, max_len=4)


class BlockStoreError(ValueError):
    """A block or pointer update that would break the single canonical chain."""


class BlockStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # writes -------------------------------------------------------------------------------------
    def put_block(self, batch: WriteBatch, signed: SignedBlock, *, set_best: bool, set_finalized: bool) -> bytes:
        """Store a block that extends the chain; returns its hash.

        Puts header, body, justifications, the number index and the extrinsic index into `batch`;
        `set_best` / `set_finalized` move those pointers to this block in the same batch. Putting the
        same block again is harmless; a different block at a stored height is refused.
        """
        header = signed.block.header
        h = header.hash()
        n = header.number
        existing = self.db.get_through(batch, COL_NUMBERS, u64(n))
        if existing is not None and existing != h:
            raise BlockStoreError(f"block #{n} 0x{existing.hex()} is already stored; refusing 0x{h.hex()}")
        if n == 0:
            genesis = self.db.get_through(batch, COL_META, META_GENESIS)
            if genesis is not None and genesis != h:
                raise BlockStoreError(f"a different genesis 0x{genesis.hex()} is already stored")
            if header.parent_hash != b"\x00" * 32:
                raise BlockStoreError("genesis must have a zero parent hash")
            batch.put(COL_META, META_GENESIS, h)
        else:
            parent = self.db.get_through(batch, COL_NUMBERS, u64(n - 1))
            if parent is None:
                raise BlockStoreError(f"block #{n} does not extend the stored chain: no block #{n - 1}")
            if parent != header.parent_hash:
                raise BlockStoreError(f"block #{n} has parent 0x{header.parent_hash.hex()}, "
                                      f"but the stored block #{n - 1} is 0x{parent.hex()}")
        batch.put(COL_HEADERS, h, header.encode())
        batch.put(COL_BODIES, h, _BODY.encode(list(signed.block.extrinsics)))
        batch.put(COL_JUSTIFICATIONS, h, _JUSTIFICATIONS.encode(list(signed.justifications)))
        batch.put(COL_NUMBERS, u64(n), h)
        for i, xt in enumerate(signed.block.extrinsics):
            batch.put(COL_EXTRINSICS, extrinsic_hash(xt), pack([h, i]))
        if set_best:
            batch.put(COL_META, META_BEST, h + u64(n))
        if set_finalized:
            self._put_finalized(batch, h, n)
        return h

    def add_justification(self, batch: WriteBatch, block_hash: bytes, j: Justification) -> None:
        """Attach a justification to a stored block; one per engine id (a newer one replaces)."""
        raw = self.db.get_through(batch, COL_JUSTIFICATIONS, block_hash)
        if raw is None:
            raise BlockStoreError(f"unknown block 0x{block_hash.hex()}")
        items = [x for x in _JUSTIFICATIONS.decode(raw) if x.engine != j.engine]
        items.append(j)
        if len(items) > 4:
            raise BlockStoreError("at most 4 justifications per block")
        batch.put(COL_JUSTIFICATIONS, block_hash, _JUSTIFICATIONS.encode(items))

    def set_finalized(self, batch: WriteBatch, block_hash: bytes) -> None:
        raw = self.db.get_through(batch, COL_HEADERS, block_hash)
        if raw is None:
            raise BlockStoreError(f"cannot finalize unknown block 0x{block_hash.hex()}")
        n = Header.decode(raw).number
        if self.db.get_through(batch, COL_NUMBERS, u64(n)) != block_hash:
            raise BlockStoreError(f"block 0x{block_hash.hex()} is not on the canonical chain")
        self._put_finalized(batch, block_hash, n)

    def _put_finalized(self, batch: WriteBatch, h: bytes, n: int) -> None:
        cur = self.db.get_through(batch, COL_META, META_FINALIZED)
        if cur is not None and from_u64(cur[32:]) > n:
            raise BlockStoreError(f"finality cannot go back from #{from_u64(cur[32:])} to #{n}")
        batch.put(COL_META, META_FINALIZED, h + u64(n))

    # reads (committed data only) ----------------------------------------------------------------
    def check_head(self) -> Header:
        """The best block's header, read on start. Raises StorageError if the head pointers, the
        genesis block or the best header are missing, unreadable or inconsistent: a node must not
        build on, or serve, a chain whose head it cannot read."""
        best, number, genesis = self.best_hash(), self.best_number(), self.genesis_hash()
        if best is None or number is None or genesis is None:
            raise self.db.fault(Damage("no best block or no genesis recorded"))
        try:
            header = self.header(best)
            genesis_ok = self.header(genesis) is not None
        except ValueError as e:          # CodecError: the bytes are there but do not decode
            raise self.db.fault(Damage(f"a head block header does not decode: {e}")) from None
        if header is None or not genesis_ok:
            raise self.db.fault(Damage("the best or the genesis block header is missing"))
        if header.number != number or self.hash_at(number) != best:
            raise self.db.fault(Damage(f"the best block #{number} is not block #{header.number} of the chain index"))
        return header

    def header(self, block_hash: bytes) -> Header | None:
        raw = self.db.get(COL_HEADERS, block_hash)
        return None if raw is None else Header.decode(raw)

    def block(self, block_hash: bytes) -> SignedBlock | None:
        # One thread reads and writes, and a block is written in one batch: the three parts match.
        raw_h = self.db.get(COL_HEADERS, block_hash)
        if raw_h is None:
            return None
        raw_b = self.db.get(COL_BODIES, block_hash)
        raw_j = self.db.get(COL_JUSTIFICATIONS, block_hash)
        if raw_b is None or raw_j is None:
            return None
        return SignedBlock(Block(Header.decode(raw_h), _BODY.decode(raw_b)), _JUSTIFICATIONS.decode(raw_j))

    def justifications(self, block_hash: bytes) -> tuple[Justification, ...] | None:
        raw = self.db.get(COL_JUSTIFICATIONS, block_hash)
        return None if raw is None else _JUSTIFICATIONS.decode(raw)

    def hash_at(self, number: int) -> bytes | None:
        if number < 0 or number >= 1 << 64:
            return None
        return self.db.get(COL_NUMBERS, u64(number))

    def header_at(self, number: int) -> Header | None:
        h = self.hash_at(number)
        return None if h is None else self.header(h)

    def number_of(self, block_hash: bytes) -> int | None:
        hdr = self.header(block_hash)
        return None if hdr is None else hdr.number

    def best_hash(self) -> bytes | None:
        raw = self.db.get(COL_META, META_BEST)
        return None if raw is None else raw[:32]

    def best_number(self) -> int | None:
        raw = self.db.get(COL_META, META_BEST)
        return None if raw is None else from_u64(raw[32:])

    def finalized_hash(self) -> bytes | None:
        raw = self.db.get(COL_META, META_FINALIZED)
        return None if raw is None else raw[:32]

    def finalized_number(self) -> int | None:
        raw = self.db.get(COL_META, META_FINALIZED)
        return None if raw is None else from_u64(raw[32:])

    def genesis_hash(self) -> bytes | None:
        return self.db.get(COL_META, META_GENESIS)

    def find_extrinsic(self, xt_hash: bytes) -> tuple[bytes, int] | None:
        raw = self.db.get(COL_EXTRINSICS, xt_hash)
        if raw is None:
            return None
        block_hash, index = unpack(raw)
        return block_hash, index

    def iter_hashes(self, start: int = 0, stop: int | None = None) -> Iterable[tuple[int, bytes]]:
        """(number, hash) of the canonical chain in order, from `start` to `stop` (exclusive)."""
        it = self.db.iter_column(COL_NUMBERS, start=u64(start), stop=None if stop is None else u64(stop))
        for k, v in it:
            yield from_u64(k), v
