"""The chain: genesis, block authoring and block import over LevelDB, with one atomic write per block.

Authoring and import share the runtime's BlockBuilder; they differ only in what happens to a bad
extrinsic (authoring skips it, import rejects the block). A block is committed in one WriteBatch
(trie nodes, flat state, header, body, number index, head pointers), so a node killed at any instant
restarts on its last committed block with state and chain consistent.

Import checks, in order: parent is our best block and the number follows; the author named in the
PreRuntime digest is in the parent state's authority set and its seal signs the header; the
timestamp is not ahead of our clock beyond the allowed drift; every extrinsic applies; the
extrinsics root and the state root match the header.

Runtime versions: the chain holds one Runtime per spec_version this release knows (built when
first needed). A block runs under the version its parent's state names (the upgrades pallet); the
pool validates for the best block's next version, and RPC queries at a block use the version that
block ran under. A block whose version this release does not know is neither authored nor imported:
`UnknownRuntimeVersionError` carries the one line the node stops with.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import msgpack
import plyvel

from node.blockstore import BlockStore
from node.db import COL_META, Database
from node.state_db import PreparedState, StateDB
from pallets import UnknownRuntimeVersion, authorship, build_runtime, known_versions, system, timestamp, upgrades
from primitives.errors import BadFormat
from primitives.hashing import keccak256
from primitives.extrinsic import Call, Extrinsic
from primitives.keys import Keypair, verify_domain
from primitives.trie import ordered_trie_root
from primitives.types import (DIGEST_PRE_RUNTIME, DIGEST_SEAL, ENGINE_GRID, SEAL_DOMAIN, Block, DigestItem,
                              Header, Justification, SignedBlock)
from runtime.api import ENVIRONMENT_FAULTS, InvalidKind, InvalidTransaction, StateReader, TransactionValidityError
from runtime.executive import BlockError, BlockResult, Runtime, execute_block
from runtime.storage import Overlay, externalities

META_GENESIS_DIGEST = b"genesis_storage_digest"

#: how the timestamp inherent is called (pallet timestamp, call set)
TIMESTAMP_CALL = (timestamp.pallet.index, timestamp.set.call_def.index)


_log = logging.getLogger(__name__)

#: Failures of our own storage or memory are the node's fault, not the block's: they propagate (the
#: storage fault handling reports them) instead of being taken as a verdict on the block.
_STORAGE_FAULTS = (plyvel.Error, *ENVIRONMENT_FAULTS)


class ImportError_(Exception):
    """A block that was refused; the message names the broken rule."""


class UnknownRuntimeVersionError(ImportError_):
    """The next block runs under a runtime version this release does not carry: the node must stop
    (neither author, vote for nor import it) and be upgraded. `str()` is the operator's one line."""

    def __init__(self, line: str, spec_version: int) -> None:
        super().__init__(line)
        self.spec_version = spec_version


@dataclass
class BuiltBlock:
    signed: SignedBlock
    hash: bytes
    result: BlockResult
    skipped_invalid: list[tuple[bytes, str]]   # (tx hash, reason) found invalid while building
    prepared: PreparedState                    # its state transition, for commit_block


@dataclass
class VerifiedBlock:
    """A block that passed every import check, executed but not committed."""

    hash: bytes
    result: BlockResult
    prepared: PreparedState


def genesis_header(state_root: bytes) -> Header:
    return Header(b"\0" * 32, 0, state_root, ordered_trie_root([]), ())


def timestamp_inherent(now_ms: int) -> bytes:
    return Extrinsic(Call(TIMESTAMP_CALL[0], TIMESTAMP_CALL[1], (now_ms,))).encode()


def seal_header(header: Header, author: Keypair, genesis_hash: bytes) -> Header:
    """Append the author's signature over the header's pre-hash as the Seal digest."""
    sig = author.sign_domain(SEAL_DOMAIN, genesis_hash, header.pre_hash())
    return Header(header.parent_hash, header.number, header.state_root, header.extrinsics_root,
                  header.digest + (DigestItem(DIGEST_SEAL, ENGINE_GRID, sig),))


class Chain:
    """Genesis, best/finalized heads, authoring and import, on one node's database."""

    def __init__(self, db: Database, genesis_storage_fn: Callable[[Runtime], dict[bytes, bytes]], *,
                 keep_states: int | None = None, clock_ms: Callable[[], int] | None = None,
                 verify_deferred: Callable[[list], Callable[[], list[bool]]] | None = None,
                 check_genesis: bool = True) -> None:
        """`check_genesis=False` trusts that the database was initialised (or checked) from this
        chain spec already, e.g. by `prepare_genesis` in a child process."""
        self.db = db
        self.blocks = BlockStore(db)
        self.state = StateDB(db, keep_states=keep_states)
        self.clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self.verify_deferred = verify_deferred
        #: spec_version -> its runtime, built when first needed (see runtime_of)
        self._runtimes: dict[int, Runtime] = {1: build_runtime()}
        if self.blocks.genesis_hash() is None or check_genesis:
            # genesis builders are the same in every version; the spec may name the version to start at
            storage = genesis_storage_fn(self._runtimes[1])
            if self.blocks.genesis_hash() is None:
                self._init_genesis(storage)
            elif db.get(COL_META, META_GENESIS_DIGEST) != _storage_digest(storage):
                # the chain spec must still describe this database's chain
                raise ValueError("the database holds a different chain than this chain spec "
                                 "(genesis differs); use another --base-path or purge-chain")
            del storage
        self.genesis_hash = self.blocks.genesis_hash()
        self._runtimes[1].genesis_hash = self.genesis_hash

    # runtime versions -------------------------------------------------------------------
    def runtime_of(self, spec_version: int) -> Runtime:
        """The runtime of `spec_version`. Raises UnknownRuntimeVersion if this release lacks it."""
        rt = self._runtimes.get(spec_version)
        if rt is None:
            rt = self._runtimes[spec_version] = build_runtime(self.genesis_hash, spec_version)
        return rt

    def version_of_block(self, number: int, parent_hash: bytes | None = None) -> int:
        """The spec_version block `number` runs under, from its parent's state (None: the best block)."""
        return self.read(lambda: upgrades.version_for_block(number), parent_hash)

    def runtime_for_block(self, number: int, parent_hash: bytes | None = None) -> Runtime:
        """The runtime that runs block `number` on `parent_hash` (None: the best block). Raises
        UnknownRuntimeVersionError, with the line the node stops with, if this release lacks it."""
        version = self.version_of_block(number, parent_hash)
        try:
            return self.runtime_of(version)
        except UnknownRuntimeVersion:
            pending = self.read(lambda: upgrades.scheduled.get(), parent_hash)
            known = ", ".join(map(str, known_versions()))
            when = (f"is scheduled at block #{pending[1]}" if pending is not None and pending[0] == version
                    else f"runs block #{number}")
            raise UnknownRuntimeVersionError(
                f"runtime spec_version {version} {when} and this node knows versions {known}; "
                f"install a gridchain release that knows spec_version {version}", version) from None

    @property
    def runtime(self) -> Runtime:
        """The runtime of the next block on the best block (transaction validation, authoring)."""
        return self.runtime_for_block(self.best_number + 1)

    def runtime_at(self, block_hash: bytes | None) -> Runtime:
        """The runtime block `block_hash` ran under (None: the best block; genesis: the version
        its state starts at): what RPC queries at that block describe."""
        return self.runtime_of(self.read(lambda: upgrades.version_in_force.get(), block_hash))

    # genesis ----------------------------------------------------------------------------
    def _init_genesis(self, storage: dict[bytes, bytes]) -> None:
        batch = self.db.batch()
        root = self.state.init_genesis(batch, storage)
        batch.put(COL_META, META_GENESIS_DIGEST, _storage_digest(storage))
        header = genesis_header(root)
        self.blocks.put_block(batch, SignedBlock(Block(header, ()), ()), set_best=True, set_finalized=True)
        self.db.write(batch)

    # heads ------------------------------------------------------------------------------
    @property
    def best_hash(self) -> bytes:
        return self.blocks.best_hash()

    @property
    def best_number(self) -> int:
        return self.blocks.best_number()

    def best_header(self) -> Header:
        return self.blocks.header(self.best_hash)

    def state_at(self, block_hash: bytes | None) -> StateReader:
        if block_hash is None or block_hash == self.best_hash:
            return self.state.reader(None)
        header = self.blocks.header(block_hash)
        if header is None:
            raise KeyError(block_hash)
        return self.state.reader(header.state_root)

    def read(self, fn: Callable[[], object], at: bytes | None = None) -> object:
        """Run a pallet read function against the state at a block (RPC queries)."""
        with externalities(Overlay(self.state_at(at))):
            return fn()

    def account_nonce(self, who: bytes) -> int:
        return self.read(lambda: system.account.get(who).nonce)

    # authoring --------------------------------------------------------------------------
    def build_block(self, author: Keypair, candidates: Iterable[tuple[bytes, bytes]], *,
                    finalize: bool, now_ms: int | None = None) -> BuiltBlock:
        """Author a block on the best block from (hash, extrinsic) candidates whose signatures were
        already verified on admission; commit it. Candidates that do not fit stop the block;
        invalid ones are skipped and reported."""
        built = self.propose_block(author, candidates, now_ms=now_ms)
        self._commit(built.signed, built.prepared, finalize)
        return built

    def propose_block(self, author: Keypair, candidates: Iterable[tuple[bytes, bytes]], *,
                      now_ms: int | None = None) -> BuiltBlock:
        """Author a block on the best block without committing it: a BFT proposal, committed by
        `commit_block` once the validators decide it."""
        parent = self.best_header()
        parent_hash = parent.hash()
        number = parent.number + 1
        digest = (DigestItem(DIGEST_PRE_RUNTIME, ENGINE_GRID, author.public_key),)
        runtime = self.runtime_for_block(number)
        builder = runtime.begin_block(self.state.reader(None), parent_hash, number, digest)
        # signatures were verified on admission; in the first block of a new version they may have
        # been verified for the old one's payload, so that block checks them again
        upgrading = runtime.version.spec_version != self.read(lambda: upgrades.version_in_force.get())
        verified = None if upgrading else True
        prev_ms = self.read(lambda: timestamp.now.get())
        now = max(now_ms if now_ms is not None else self.clock_ms(), prev_ms + timestamp.Config.minimum_period_ms)
        builder.apply(timestamp_inherent(now))
        skipped: list[tuple[bytes, str]] = []
        for tx_hash, data in candidates:
            try:
                builder.apply(data, signature_ok=verified)
            except InvalidTransaction as e:
                if e.kind is InvalidKind.EXHAUSTS_RESOURCES:
                    break
                if e.kind is not InvalidKind.FUTURE:
                    skipped.append((tx_hash, e.reason))
            except (TransactionValidityError, BadFormat) as e:
                skipped.append((tx_hash, e.message))
        result = builder.finish()
        prepared = self.state.prepare(result.changes)
        header = Header(parent_hash, number, prepared.root, ordered_trie_root(builder.extrinsics), digest)
        header = seal_header(header, author, self.genesis_hash)
        signed = SignedBlock(Block(header, tuple(builder.extrinsics)), ())
        return BuiltBlock(signed, header.hash(), result, skipped, prepared)

    # import -----------------------------------------------------------------------------
    def import_block(self, signed: SignedBlock, *, finalize: bool, check_drift: bool = True) -> BlockResult:
        """Verify and commit a block from elsewhere (a peer, a file). Raises ImportError_."""
        verified = self.verify_block(signed, check_drift=check_drift)
        self._commit(signed, verified.prepared, finalize)
        return verified.result

    def verify_block(self, signed: SignedBlock, *, check_drift: bool = True) -> "VerifiedBlock":
        """Every import check of a block on our best block, executing it, without committing: a BFT
        validator checks a proposal this way before it prevotes for it. Raises ImportError_."""
        header = signed.block.header
        best = self.best_header()
        if header.parent_hash != best.hash():
            raise ImportError_(f"block {header.number} does not build on our best block {best.number}")
        if header.number != best.number + 1:
            raise ImportError_(f"block number {header.number} does not follow {best.number}")
        author = header.author()
        if author is None:
            raise ImportError_("block names no author")
        authorities = self.read(lambda: authorship.authorities.get())
        if author not in authorities:
            raise ImportError_("block author is not in the authority set")
        seal = header.seal()
        if seal is None or not verify_domain(author, seal.data, SEAL_DOMAIN, self.genesis_hash, header.pre_hash()):
            raise ImportError_("block seal is not the author's signature")
        digest = header.without_seal().digest
        xts = list(signed.block.extrinsics)
        runtime = self.runtime_for_block(header.number)    # UnknownRuntimeVersionError: stop, never import
        try:
            builder = runtime.begin_block(self.state.reader(None), header.parent_hash, header.number, digest)
            checks = [builder.signature_check(x) for x in xts]
        except (TransactionValidityError, BadFormat, BlockError) as e:
            raise ImportError_(f"block has an invalid extrinsic: {getattr(e, 'message', e)}") from None
        except _STORAGE_FAULTS:
            raise
        except Exception as e:  # noqa: BLE001 - a block that cannot be judged is refused, never a crash
            _log.exception("block %d could not be checked", header.number)
            raise ImportError_(f"block could not be checked ({type(e).__name__})") from None
        # signatures are checked in the workers while the block executes here
        collect = self._verify_deferred([c for c in checks if c is not None])
        try:
            result = execute_block(builder, xts, [None if c is None else True for c in checks])
        except BlockError as e:
            collect()
            raise ImportError_(str(e)) from None
        except _STORAGE_FAULTS:
            collect()
            raise
        except Exception as e:  # noqa: BLE001 - see above
            collect()
            _log.exception("block %d could not be executed", header.number)
            raise ImportError_(f"block could not be executed ({type(e).__name__})") from None
        if not all(collect()):
            raise ImportError_("block contains an extrinsic with a bad signature")
        if ordered_trie_root(xts) != header.extrinsics_root:
            raise ImportError_("extrinsics root does not match the block's extrinsics")
        prepared = self.state.prepare(result.changes)
        if prepared.root != header.state_root:
            raise ImportError_("state root does not match the result of executing the block")
        if check_drift:
            reason = timestamp.check_inherent(_block_timestamp(result), self.clock_ms())
            if reason:
                raise ImportError_(reason)
        return VerifiedBlock(header.hash(), result, prepared)

    def commit_block(self, signed: SignedBlock, prepared: PreparedState, *, finalize: bool) -> None:
        """Commit a block verified (or proposed) on the current best block, with the justifications
        it carries (a BFT commit certificate). Raises ImportError_ if the best block moved since."""
        if signed.block.header.parent_hash != self.best_hash:
            raise ImportError_(f"block {signed.block.header.number} no longer builds on our best block")
        self._commit(signed, prepared, finalize)

    def _verify_deferred(self, checks: list) -> Callable[[], list[bool]]:
        if self.verify_deferred is not None:
            return self.verify_deferred(checks)
        oks = [c.verify() for c in checks]
        return lambda: oks

    def _commit(self, signed: SignedBlock, prepared, finalize: bool) -> None:
        batch = self.db.batch()
        self.state.commit(batch, prepared, signed.block.header.number)
        self.blocks.put_block(batch, signed, set_best=True, set_finalized=finalize)
        self.db.write(batch)

    def finalize(self, block_hash: bytes, justification: Justification | None = None) -> None:
        batch = self.db.batch()
        if justification is not None:
            self.blocks.add_justification(batch, block_hash, justification)
        self.blocks.set_finalized(batch, block_hash)
        self.db.write(batch)


def prepare_genesis(chain_dir: str, spec: dict, keep_states: int | None) -> None:
    """Initialise a chain database from a spec, or check that it matches; run in a child process.

    Building genesis for a large spec (100,000s of accounts) peaks at a few hundred MB of Python
    heap that the interpreter never returns to the OS; in a short-lived child the long-running node
    never carries that peak. Raises ValueError (pickled to the parent) on a mismatch.
    """
    from genesis.chain_spec import genesis_storage  # noqa: PLC0415
    db = Database.open(chain_dir)
    try:
        Chain(db, lambda rt: genesis_storage(spec, rt), keep_states=keep_states)
    finally:
        db.close()


def _storage_digest(storage: dict[bytes, bytes]) -> bytes:
    """A fingerprint of genesis storage, to tell on restart whether the spec still matches the
    database, without building the genesis trie again."""
    return keccak256(msgpack.packb(sorted(storage.items()), use_bin_type=True))


def _block_timestamp(result: BlockResult) -> int:
    """The time a block set (its timestamp inherent always writes `timestamp.now`)."""
    return timestamp.now.value_type.decode(result.changes[timestamp.now.prefix])
