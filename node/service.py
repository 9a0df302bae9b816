"""The running node: one asyncio loop owns the chain, the pool, block authoring and RPC.

This is the object the RPC server talks to (it implements `rpc.api.NodeApi`). The runtime runs
synchronously on the loop, never concurrently with itself; signature checks of incoming
transactions run in batches in worker processes (`node.verifier`).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
import os
import shutil
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Sequence

from node.chain import Chain, ImportError_, UnknownRuntimeVersionError, prepare_genesis
from node.db import STORAGE_ERROR_LIMIT, Database, StorageError
from node.energy_rpc import EnergyRpc
from node.metrics import NodeMetrics
from node.pool import TransactionPool, TxStatus
from node.verifier import SignatureVerifier, watch_parent
from pallets import timestamp
from primitives.chain_clock import ChainClock
from primitives.errors import ChainError
from primitives.hashing import keccak256
from primitives.keys import Keypair
from primitives.types import Header, SignedBlock
from rpc.api import Health, NodeInfo, RuntimeVersionInfo, TxStatusUpdate
from runtime.api import (TransactionSource, TransactionValidityError, UnknownKind, UnknownTransaction,
                         ValidTransaction)

log = logging.getLogger("gridchain.node")

NODE_NAME = "gridchain"
NODE_VERSION = "0.1.0"


class UnknownBlock(ChainError):
    rpc_code = 4003

    def __init__(self, what: str) -> None:
        super().__init__(f"Unknown block: {what}")


@dataclass
class NodeConfig:
    spec: dict
    base_path: Path | None = None          # None: a temporary directory removed on stop
    author_uri: str | None = None          # secret URI of the authoring key (dev: //Alice)
    block_time_ms: int = 1000              # 0: instant seal (a block as soon as transactions arrive)
    time_warp: int = 1                     # dev chains: chain time runs this many times faster
    dev_finality: bool = True              # dev chains: a block is final when authored
    keep_states: int | None = 256          # None: archive mode
    verifier_workers: int = 2
    pool_max_count: int = 8192
    max_block_extrinsics: int = 20_000
    # BFT networks (a chain spec whose consensus engine is "bft")
    p2p_listen: str = "/ip4/0.0.0.0/tcp/30333"
    bootnodes: tuple[str, ...] = ()
    prometheus_port: int | None = None     # None: no metrics endpoint
    prometheus_external: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def engine(self) -> str:
        return self.spec.get("consensus", {}).get("engine", "dev-seal")


def warped_clock(chain_now_ms: int, factor: int) -> Any:
    """A clock for accelerated dev chains: from max(the chain's time, now), `factor` times faster.

    Lets a simulated day (intervals, gate closures, settlement windows) pass in minutes. Only for
    chains this node authors alone: importers elsewhere would refuse its future timestamps."""
    real_start = time.time_ns() // 1_000_000
    chain_start = max(chain_now_ms, real_start)

    def clock_ms() -> int:
        return chain_start + (time.time_ns() // 1_000_000 - real_start) * factor
    return clock_ms


def _run_in_child(fn: Any, *args: Any) -> Any:
    """Run fn(*args) in a short-lived spawned process and return its result (or raise its error)."""
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx, initializer=watch_parent,
                                                initargs=(os.getpid(),)) as ex:
        return ex.submit(fn, *args).result()


def _no_genesis(runtime: Any) -> dict:
    raise RuntimeError("genesis is prepared in a child process before the chain opens")


class _Broadcast:
    """Fan-out of values to async subscribers; a subscriber that falls far behind loses old items."""

    def __init__(self, maxsize: int = 256) -> None:
        self.queues: set[asyncio.Queue] = set()
        self.maxsize = maxsize

    def publish(self, value: Any) -> None:
        for q in list(self.queues):
            if q.full():
                q.get_nowait()
            q.put_nowait(value)

    def subscribe(self) -> "_Subscription":
        """Registers at once (not on first iteration), so no value published after this call is missed."""
        q: asyncio.Queue = asyncio.Queue(self.maxsize)
        self.queues.add(q)
        return _Subscription(self, q)


class _Subscription:
    def __init__(self, owner: _Broadcast, q: asyncio.Queue) -> None:
        self.owner, self.q = owner, q

    def __aiter__(self) -> "_Subscription":
        return self

    async def __anext__(self) -> Any:
        if self.q not in self.owner.queues:
            raise StopAsyncIteration
        return await self.q.get()

    async def aclose(self) -> None:
        self.owner.queues.discard(self.q)


class NodeService:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self._tmpdir: str | None = None
        if config.base_path is None:
            self._tmpdir = tempfile.mkdtemp(prefix="gridchain-")
            base = Path(self._tmpdir)
        else:
            base = config.base_path
        base.mkdir(parents=True, exist_ok=True)
        self.base_path = base
        chain_dir = base / "chains" / config.spec["id"]
        _run_in_child(prepare_genesis, str(chain_dir), config.spec, config.keep_states)
        # The genesis section (possibly 100,000s of accounts) is in the database now; keep only the
        # spec's identity and properties.
        config.spec = {k: v for k, v in config.spec.items() if k != "genesis"}
        self.bft_mode = config.engine == "bft"
        self.db = Database.open(chain_dir)
        #: what stopped the node (the runner reports it): repeated storage errors, or a runtime
        #: version this release does not know; `on_fatal` stops the runner
        self.fatal_error: StorageError | UnknownRuntimeVersionError | None = None
        self.on_fatal: Callable[[], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # A validator must judge a proposed block within its propose timeout: start the signature
        # workers now rather than on the first large batch (~0.2-3 s of start-up, billed to a block).
        self.verifier = SignatureVerifier(workers=config.verifier_workers, eager=config.engine == "bft")
        self.chain = Chain(self.db, _no_genesis, keep_states=config.keep_states,
                           verify_deferred=self.verifier.verify_batch_deferred, check_genesis=False)
        # a damaged head stops the node here with one line, not at its first block
        self.chain.state.check_head(self.chain.blocks.check_head().state_root)
        spec_clock = ChainClock.from_spec(config.spec)
        if spec_clock is not None:
            self.chain.clock_ms = spec_clock.now_ms
        elif config.time_warp != 1:
            self.chain.clock_ms = warped_clock(self.chain.read(lambda: timestamp.now.get()), config.time_warp)
        self.author = Keypair.from_uri(config.author_uri) if config.author_uri else None
        self._starting_block = self.chain.best_number
        self.pool = TransactionPool(self._validate_batch, max_count=config.pool_max_count)
        self.pool.add_listener(self._on_tx_status)
        self._sig_ok: OrderedDict[bytes, None] = OrderedDict()   # hashes whose signature verified
        self._watchers: dict[bytes, set[asyncio.Queue]] = {}
        self.new_heads = _Broadcast()
        self.finalized_heads = _Broadcast()
        self._tasks: list[asyncio.Task] = []
        self._seal_wanted: asyncio.Event | None = None  # created on the loop in start()
        self._lock: asyncio.Lock | None = None
        self.extra_rpc: dict[str, Any] = EnergyRpc(self._read_at, self._resolve).methods()
        self._metadata: dict[int, dict] = {}     # spec_version -> its metadata
        self._sig_version: int | None = None      # the spec_version _sig_ok's verdicts were made for
        self.metrics = NodeMetrics()
        self._watch_metrics()
        self.db.on_storage_error = self._storage_error
        self.host: Any = None
        self.bft: Any = None
        if self.bft_mode:
            self._init_network()

    def _init_network(self) -> None:
        """The libp2p host and the BFT driver (imported here: dev-seal nodes never load libp2p)."""
        from node.bft import BftConfig, BftDriver, timeouts_from_spec  # noqa: PLC0415
        from p2p.host import P2PConfig, P2PHost  # noqa: PLC0415
        c = self.config
        bootnodes = tuple(c.bootnodes) + tuple(c.spec.get("bootNodes", []))
        self.host = P2PHost(P2PConfig(base_path=self.base_path, genesis_hash=self.chain.genesis_hash,
                                      listen_addrs=(c.p2p_listen,), bootnodes=bootnodes))
        cfg = BftConfig(timeouts=timeouts_from_spec(c.spec), block_time_ms=c.block_time_ms or 1000)
        self.bft = BftDriver(self, self.host, self.author, self.base_path, cfg)

    def _watch_metrics(self) -> None:
        m = self.metrics
        m.watch(m.best_height, lambda: self.chain.best_number)
        m.watch(m.finalized_height, lambda: self.chain.blocks.finalized_number() or 0)
        m.watch(m.pool_ready, lambda: self.pool.status()["ready"])
        m.watch(m.pool_future, lambda: self.pool.status()["future"])
        m.watch(m.peers, lambda: len(self.host.connected_peers()) if self.host is not None else 0)

    def _storage_error(self, error: StorageError) -> None:
        """Count a storage error; past STORAGE_ERROR_LIMIT with no block written in between, stop the
        node (a node that cannot read its own state must not keep serving or voting on it)."""
        self.metrics.storage_errors.inc()
        n = self.db.consecutive_storage_errors
        log.error("storage error %d of %d (the node stops at %d with no block written in between): %s",
                  n, STORAGE_ERROR_LIMIT, STORAGE_ERROR_LIMIT, error.detail)
        if n >= STORAGE_ERROR_LIMIT and self.fatal_error is None:
            self.fatal_error = error
            if self.on_fatal is not None and self._loop is not None:
                self._loop.call_soon_threadsafe(self.on_fatal)

    def check_runtime_version(self) -> bool:
        """Can this release run the next block? If not, stop the node: log the one line naming the
        version to install and call `on_fatal` (the runner exits non-zero with that line). The node
        then neither authors, votes for nor imports that block: it stops where the old rules end,
        its database as the last block left it. Checked at start and after every block."""
        try:
            self.chain.runtime_for_block(self.chain.best_number + 1)
            return True
        except UnknownRuntimeVersionError as e:
            self.stop_unknown_version(e)
            return False

    def stop_unknown_version(self, error: UnknownRuntimeVersionError) -> None:
        """Stop the node for a runtime version it does not know (once)."""
        if self.fatal_error is not None:
            return
        log.error("%s", error)
        self.fatal_error = error
        if self.bft is not None:
            self.bft.halt()
        if self.on_fatal is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self.on_fatal)

    # lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._lock = asyncio.Lock()
        self._seal_wanted = asyncio.Event()
        if not self.check_runtime_version():
            return                      # stopping: no network, no consensus, no authoring
        if self.config.prometheus_port is not None:
            self.metrics.serve(self.config.prometheus_port, self.config.prometheus_external)
        if self.bft_mode:
            self.bft.register()
            await self.host.start()
            self._watch_gossip_drops()
            await self.bft.start()
        elif self.author is not None:
            self._tasks.append(asyncio.create_task(self._authoring_loop(), name="authoring"))

    def _watch_gossip_drops(self) -> None:
        m = self.metrics
        for reason in ("gossip_drops", "gossip_inbound_drops", "gossip_rejected_oversize",
                       "gossip_rejected_malformed"):
            m.watch(m.gossip_drops.labels(reason=reason),
                    lambda r=reason: self.host.counters_snapshot().get(r, 0))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                pass
        self._tasks.clear()
        if self.bft is not None:
            await self.bft.stop()          # takes no more input, closes the WAL
        if self.host is not None:
            await self.host.stop()
        self.metrics.close()
        self.verifier.close()
        self.db.close()
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    # authoring --------------------------------------------------------------------------
    async def _authoring_loop(self) -> None:
        interval = self.config.block_time_ms / 1000
        next_at = time.monotonic()
        while True:
            if interval > 0:
                next_at += interval
                delay = next_at - time.monotonic()
                if delay < 0:
                    next_at = time.monotonic()
                    delay = 0
                try:
                    await asyncio.wait_for(self._seal_wanted.wait(), timeout=delay)
                except asyncio.TimeoutError:
                    pass
            else:
                await self._seal_wanted.wait()
            self._seal_wanted.clear()
            if self.fatal_error is not None:
                return
            try:
                await self.seal_block()
            except StorageError:
                pass  # counted and logged as it happened; repeated, it stops the node
            except Exception:  # noqa: BLE001 - a failed block must not stop the node
                log.exception("authoring a block failed")

    async def seal_block(self) -> bytes:
        """Author one block now from the ready pool (dev chains; `engine_createBlock`). Refused on
        a BFT chain: a block no quorum agreed on would split this node off the network."""
        if self.bft_mode:
            raise ChainError("blocks on this chain come from BFT consensus; engine_createBlock is for dev chains")
        if self.author is None:
            raise ChainError("this node has no authoring key")
        async with self._lock:
            limit = self.config.max_block_extrinsics
            candidates = []
            for tx in self.pool.ready():
                candidates.append((tx.hash, tx.data))
                if len(candidates) >= limit:
                    break
            built = self.chain.build_block(self.author, candidates, finalize=self.config.dev_finality)
            self._after_block(built.signed, built.hash, [o.hash for o in built.result.outcomes])
            if built.skipped_invalid:
                for h, reason in built.skipped_invalid:
                    self.pool.remove_invalid([h], reason)
            log.info("authored block #%d %s with %d extrinsics", built.signed.block.header.number,
                     "0x" + built.hash.hex()[:12], len(built.signed.block.extrinsics))
            return built.hash

    def import_block(self, signed: SignedBlock, finalize: bool = True) -> bytes:
        result = self.chain.import_block(signed, finalize=finalize)
        h = signed.block.header.hash()
        self._after_block(signed, h, [o.hash for o in result.outcomes])
        return h

    def after_commit(self, signed: SignedBlock, block_hash: bytes, included: list[bytes]) -> None:
        """A block committed by BFT consensus (decided here or synced): it is final."""
        header = signed.block.header
        self.pool.block_imported(block_hash, included)
        self.new_heads.publish(header)
        self.pool.block_finalized(block_hash, included)
        self.finalized_heads.publish(header)
        self.check_runtime_version()

    def _after_block(self, signed: SignedBlock, block_hash: bytes, included: list[bytes]) -> None:
        header = signed.block.header
        self.pool.block_imported(block_hash, included)
        self.new_heads.publish(header)
        if self.config.dev_finality:
            self.pool.block_finalized(block_hash, included)
            self.finalized_heads.publish(header)
        self.check_runtime_version()

    # transaction validation (pool callback) ---------------------------------------------
    def _validate_batch(self, datas: Sequence[bytes], source: TransactionSource
                        ) -> list[ValidTransaction | TransactionValidityError]:
        try:
            runtime = self.chain.runtime          # the next block's version
        except UnknownRuntimeVersionError as e:   # the node is stopping; nothing is valid for it
            return [UnknownTransaction(UnknownKind.CUSTOM, str(e)) for _ in datas]
        if runtime.version.spec_version != self._sig_version:
            # signatures cover the spec_version: verdicts made for another version no longer hold
            self._sig_ok.clear()
            self._sig_version = runtime.version.spec_version
        ctx = runtime.validation_context(self.chain.state.reader(None), self.chain.best_hash,
                                         self.chain.best_number)
        out: list[ValidTransaction | TransactionValidityError] = []
        for h, verdict in ctx.validate_batch(datas, source, self.verifier.verify_batch_deferred,
                                              self._sig_ok.__contains__):
            if h is not None and isinstance(verdict, ValidTransaction):
                self._remember_sig(h)
            out.append(verdict)
        return out

    def _remember_sig(self, h: bytes) -> None:
        self._sig_ok[h] = None
        if len(self._sig_ok) > 200_000:
            self._sig_ok.popitem(last=False)

    # tx status fan-out ------------------------------------------------------------------
    def _on_tx_status(self, tx_hash: bytes, status: TxStatus, extra: object) -> None:
        queues = self._watchers.get(tx_hash)
        if not queues:
            return
        block = extra if status in (TxStatus.IN_BLOCK, TxStatus.FINALIZED) else None
        reason = extra if status in (TxStatus.DROPPED, TxStatus.INVALID) else None
        if status is TxStatus.USURPED:
            block = extra
        update = TxStatusUpdate(status.value, block, reason if isinstance(reason, str) else None)
        for q in queues:
            q.put_nowait(update)

    def _wake_instant_seal(self) -> None:
        if self.config.block_time_ms == 0 and self._seal_wanted is not None:
            self._seal_wanted.set()

    # ---------------------------------------------------------------------------------
    # NodeApi
    # ---------------------------------------------------------------------------------
    def info(self) -> NodeInfo:
        s = self.config.spec
        return NodeInfo(NODE_NAME, NODE_VERSION, s["name"], s.get("chainType", "Live"), s.get("properties", {}))

    def health(self) -> Health:
        peers = len(self.host.connected_peers()) if self.host is not None else 0
        syncing = self.bft.is_syncing() if self.bft is not None else False
        return Health(peers=peers, is_syncing=syncing,
                      should_have_peers=self.config.spec.get("chainType") != "Development")

    def sync_state(self) -> dict:
        best = self.chain.best_number
        highest = max(best, self.bft.sync_target) if self.bft is not None else best
        return {"startingBlock": self._starting_block, "currentBlock": best, "highestBlock": highest}

    def account_next_index(self, account: bytes) -> int:
        return self.pool.next_nonce(account, self.chain.account_nonce(account))

    def peers(self) -> list[dict]:
        if self.host is None:
            return []
        heights = self.bft.peer_heights if self.bft is not None else {}
        return [dict(p.to_json(), bestNumber=heights.get(p.peer_id)) for p in self.host.peers()]

    def local_peer_id(self) -> str:
        # a dev-seal node has no network: its identity is its authoring key
        if self.host is not None:
            return self.host.peer_id
        return "" if self.author is None else self.author.address()

    def _resolve(self, block_hash: bytes | None) -> bytes:
        if block_hash is None:
            return self.chain.best_hash
        if self.chain.blocks.header(block_hash) is None:
            raise UnknownBlock("0x" + block_hash.hex())
        return block_hash

    def get_block(self, block_hash: bytes | None) -> SignedBlock | None:
        return self.chain.blocks.block(block_hash or self.chain.best_hash)

    def get_block_hash(self, number: int | None) -> bytes | None:
        return self.chain.best_hash if number is None else self.chain.blocks.hash_at(number)

    def get_header(self, block_hash: bytes | None) -> Header | None:
        return self.chain.blocks.header(block_hash or self.chain.best_hash)

    def finalized_head(self) -> bytes:
        return self.chain.blocks.finalized_hash()

    def subscribe_new_heads(self) -> AsyncIterator[Header]:
        return self.new_heads.subscribe()

    def subscribe_finalized_heads(self) -> AsyncIterator[Header]:
        return self.finalized_heads.subscribe()

    def _state(self, at: bytes | None):
        h = self._resolve(at)
        try:
            return self.chain.state_at(None if h == self.chain.best_hash else h)
        except (KeyError, LookupError) as e:
            raise ChainError(f"state at 0x{h.hex()} is not available (pruned?): {e}") from None

    def _read_at(self, fn: Any, at: bytes | None) -> Any:
        """Run a pallet read function against the state at a block (energy_* queries)."""
        h = self._resolve(at)
        try:
            return self.chain.read(fn, None if h == self.chain.best_hash else h)
        except (KeyError, LookupError) as e:
            raise ChainError(f"state at 0x{h.hex()} is not available (pruned?): {e}") from None

    def get_storage(self, key: bytes, at: bytes | None) -> bytes | None:
        return self._state(at).get(key)

    def get_keys_paged(self, prefix: bytes, count: int, start_key: bytes | None, at: bytes | None) -> list[bytes]:
        out = []
        for k in self._state(at).iter_keys(prefix, start_key):
            out.append(k)
            if len(out) >= count:
                break
        return out

    def get_read_proof(self, keys: list[bytes], at: bytes | None) -> tuple[bytes, list[bytes]]:
        h = self._resolve(at)
        root = self.chain.blocks.header(h).state_root
        try:
            return h, self.chain.state.prove(root, keys)
        except (KeyError, LookupError) as e:
            raise ChainError(f"state at 0x{h.hex()} is not available (pruned?): {e}") from None

    def _runtime_at(self, at: bytes | None) -> Any:
        """The runtime the block `at` ran under (None: the best block)."""
        h = self._resolve(at)
        try:
            return self.chain.runtime_at(None if h == self.chain.best_hash else h)
        except (KeyError, LookupError) as e:
            raise ChainError(f"state at 0x{h.hex()} is not available (pruned?): {e}") from None
        except ValueError as e:     # a version this release does not know (the node is stopping)
            raise ChainError(str(e)) from None

    def runtime_version(self, at: bytes | None) -> RuntimeVersionInfo:
        v = self._runtime_at(at).version
        return RuntimeVersionInfo(v.spec_name, v.impl_name, v.spec_version, v.impl_version,
                                  v.transaction_version, v.state_version)

    def metadata(self, at: bytes | None) -> dict:
        rt = self._runtime_at(at)
        md = self._metadata.get(rt.version.spec_version)
        if md is None:
            md = self._metadata[rt.version.spec_version] = rt.metadata()
        return md

    async def submit_extrinsic(self, extrinsic: bytes) -> bytes:
        h = self.pool.submit(extrinsic, TransactionSource.EXTERNAL)
        self._accepted(extrinsic)
        return h

    def submit_evidence(self, evidence: Any) -> None:
        """Report an equivocation the consensus engine found, as an unsigned extrinsic (the
        validators pallet checks it and removes the offender); gossiped like any transaction."""
        from pallets import validators  # noqa: PLC0415
        from primitives.extrinsic import Call, Extrinsic  # noqa: PLC0415
        cd = validators.report_equivocation.call_def
        data = Extrinsic(Call(validators.pallet.index, cd.index, (evidence.to_plain(),))).encode()
        try:
            self.pool.submit(data, TransactionSource.LOCAL)
        except ChainError as e:
            log.info("equivocation evidence not submitted: %s", e)
            return
        self._accepted(data)

    def _accepted(self, extrinsic: bytes) -> None:
        """A client's transaction entered the pool: gossip it (BFT) or wake instant seal (dev)."""
        if self.bft is not None:
            self.bft.gossip_transaction(extrinsic)
        else:
            self._wake_instant_seal()

    async def submit_and_watch(self, extrinsic: bytes) -> AsyncIterator[TxStatusUpdate]:
        h = keccak256(extrinsic)
        q: asyncio.Queue = asyncio.Queue()
        self._watchers.setdefault(h, set()).add(q)
        try:
            self.pool.submit(extrinsic, TransactionSource.EXTERNAL)
        except Exception:
            self._drop_watch(h, q)
            raise
        self._accepted(extrinsic)
        return self._watch(h, q)

    async def _watch(self, h: bytes, q: asyncio.Queue) -> AsyncIterator[TxStatusUpdate]:
        try:
            while True:
                update = await q.get()
                yield update
                if update.terminal:
                    return
        finally:
            self._drop_watch(h, q)

    def _drop_watch(self, h: bytes, q: asyncio.Queue) -> None:
        qs = self._watchers.get(h)
        if qs is not None:
            qs.discard(q)
            if not qs:
                del self._watchers[h]

    def pending_extrinsics(self) -> list[bytes]:
        return self.pool.pending()

    def extra_methods(self) -> dict[str, Any]:
        return dict(self.extra_rpc)


__all__ = ["NodeService", "NodeConfig", "ImportError_"]
