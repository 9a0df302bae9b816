"""BFT consensus in the node: the Tendermint state machine (`consensus.tendermint`) driven by libp2p
gossip and asyncio timers, with the chain as its application.

One height at a time, h = best block + 1:
  - the validator set of h is the validators pallet's set in the state after h - 1;
  - the proposer builds a block from its pool (`Chain.propose_block`, nothing committed), gossips its
    body as parts on the block-part topic and then the signed proposal (the block's hash);
  - a validator judges a proposed block by executing it on its best block (`Chain.verify_block`);
    while the body has not arrived the machine waits (`validate_value` answers None) and the node
    asks the proposer's peer for it;
  - on Decide, the block is committed with its commit certificate (2f+1 precommits) as the block's
    justification (engine `BFT1`); it is final at once. The next height starts when the pool holds
    transactions (after `min_block_interval_ms`), or `block_time_ms` after the last block, or as soon
    as a peer's message for it arrives.

Messages and the WAL: the machine journals every accepted input to `<base>/consensus/wal` and the
signing guard fsyncs its record before a signature is returned, so a restarted validator replays the
height and never equivocates (`Tendermint.recover`).

Catch-up, because gossip is lossy (no delivery guarantee): every `regossip_ms` without progress the
node re-gossips `catch_up_messages()` and asks its peers for the messages they hold at its height
(`votes/1`); a node that sees a message for a later height, or a peer whose
status is ahead, syncs blocks with their commit certificates over request/response
(`block-sync/1`), verifying each certificate against the set of its height before importing.

Peer input is never trusted: undecodable or oversize messages are refused and the peer scored down
(`P2PHost.report`); the state machine's rejections that only faulty peers produce score down too.
"""
from __future__ import annotations

import asyncio
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from consensus import finality_certificate as fc
from consensus.commit import CommitCertificate, InvalidCommit
from consensus.messages import Proposal, Step, decode_message, encode_message
from consensus.signer import FileSigner
from consensus.tendermint import (Broadcast, Decide, EvidenceFound, Outcome, ScheduleTimeout, Tendermint,
                                  TimeoutConfig)
from consensus.validator_set import ValidatorSet
from consensus.wal import FileWAL
from node.chain import BuiltBlock, ImportError_, UnknownRuntimeVersionError, VerifiedBlock
from node.finality import KEEP_HEIGHTS as FINALITY_KEEP_HEIGHTS
from node.finality import ENGINE_FINALITY, FinalityCollector
from p2p.framing import PartAssembler, split_payload
from p2p.bridge import P2PError
from p2p.host import P2PHost, RequestFailed
from p2p.topics import TopicKind
from pallets import validators as validators_pallet
from primitives import bls
from primitives.codec import CodecError, pack, unpack
from primitives.keys import Keypair
from primitives.types import Justification, SignedBlock
from runtime.api import TransactionSource

if TYPE_CHECKING:
    from node.service import NodeService

log = logging.getLogger("gridchain.bft")

#: justification engine id of a commit certificate
ENGINE_BFT = b"BFT1"
SYNC_PROTOCOL = "block-sync/1"
BLOCK_PROTOCOL = "block/1"
STATUS_PROTOCOL = "status/1"
VOTES_PROTOCOL = "votes/1"
#: most messages in one vote catch-up answer (3 rounds x (1 proposal + 2 x 100 votes) fits)
VOTES_MAX = 1024
#: most blocks (and bytes) in one sync response
SYNC_MAX_BLOCKS = 64
SYNC_MAX_BYTES = 8 << 20
#: a proposed block up to this size travels inside its proposal's gossip message; larger ones as parts
MAX_INLINE_BLOCK = 900 * 1024
#: transactions gossiped in one message
TX_BATCH_MAX = 512
TX_BATCH_BYTES = 512 * 1024

PEER_FAULT = -10.0
PEER_GARBAGE = -25.0


@dataclass
class BftConfig:
    timeouts: TimeoutConfig = TimeoutConfig(propose_ms=1000, propose_delta_ms=500, prevote_ms=500,
                                            prevote_delta_ms=250, precommit_ms=500, precommit_delta_ms=250)
    block_time_ms: int = 1000          # an empty block at least this often
    min_block_interval_ms: int = 20    # a block with transactions no sooner than this after the last
    regossip_ms: int = 1000
    sync_interval_ms: int = 2000
    tx_gossip_delay_ms: int = 10       # transactions are batched this long before gossip


def timeouts_from_spec(spec: dict) -> TimeoutConfig:
    t = spec.get("consensus", {}).get("timeouts", {})
    base = BftConfig().timeouts
    return TimeoutConfig(**{k: int(t.get(k, getattr(base, k))) for k in base.__dataclass_fields__})


class SyncProgress:
    """Progress of a long sync for the operator: a bar redrawn in place on a terminal, else a log line
    every few seconds. Short catch-ups (a few blocks behind) stay silent."""

    MIN_BLOCKS = 100
    LOG_EVERY_S = 5.0

    def __init__(self, start: int, target: int) -> None:
        self.start, self.target = start, target
        self.t0 = self._last = time.monotonic()
        self.active = target - start >= self.MIN_BLOCKS
        self.tty = sys.stderr.isatty()

    def _line(self, best: int) -> str:
        done = best - self.start
        total = max(1, self.target - self.start)
        rate = done / max(1e-6, time.monotonic() - self.t0)
        width = 30
        filled = width * done // total
        return (f"syncing [{'#' * filled}{'.' * (width - filled)}] #{best} of #{self.target} "
                f"({100 * done // total}%, {rate:,.0f} blocks/s)")

    def update(self, best: int) -> None:
        if not self.active:
            return
        now = time.monotonic()
        if self.tty:
            sys.stderr.write("\r" + self._line(best))
            sys.stderr.flush()
        elif now - self._last >= self.LOG_EVERY_S:
            log.info(self._line(best))
            self._last = now

    def done(self, best: int) -> None:
        if not self.active:
            return
        if self.tty:
            sys.stderr.write("\r" + self._line(best) + "\n")
            sys.stderr.flush()
        log.info("sync finished at #%d (%d blocks in %.1f s)", best, best - self.start, time.monotonic() - self.t0)


class _TimedWAL(FileWAL):
    """The consensus WAL, timing each fsync (the signing guard's, before an own message leaves)."""

    def __init__(self, path: Path, observe: Any) -> None:
        super().__init__(path)
        self._observe = observe

    def append(self, entry: Any, sync: bool = False) -> None:
        if not sync or self._observe is None:
            super().append(entry, sync)
            return
        t0 = time.perf_counter()
        super().append(entry, True)
        self._observe(time.perf_counter() - t0)


def commit_certificate_of(signed: SignedBlock) -> CommitCertificate | None:
    for j in signed.justifications:
        if j.engine == ENGINE_BFT:
            try:
                return CommitCertificate.decode(j.data)
            except (CodecError, ValueError):
                return None
    return None


class BftDriver:
    """Runs consensus for one node: validator (with a key in the set) or follower."""

    def __init__(self, node: "NodeService", host: P2PHost, keypair: Keypair | None, base_path: Path,
                 config: BftConfig | None = None) -> None:
        self.node = node
        self.chain = node.chain
        self.host = host
        self.keypair = keypair
        self.config = config or BftConfig()
        self.genesis_hash = self.chain.genesis_hash
        wal_dir = base_path / "consensus"
        wal_dir.mkdir(parents=True, exist_ok=True)
        m = node.metrics
        self.wal = _TimedWAL(wal_dir / "wal", m.wal_fsync.observe if m is not None else None)
        self.signer = FileSigner(keypair, self.genesis_hash, self.wal) if keypair is not None else None
        self.tm: Tendermint | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bodies: dict[bytes, SignedBlock] = {}            # proposed blocks by hash, this height
        self._checked: dict[bytes, BuiltBlock | VerifiedBlock | None] = {}   # None: invalid
        self._proposer_peer: dict[bytes, str] = {}              # block hash -> peer that proposed it
        self._parts = PartAssembler()
        self._height_started_at = time.monotonic()
        self._last_commit_at = time.monotonic()
        self._last_progress = time.monotonic()
        self._start_handle: asyncio.TimerHandle | None = None
        self._waiting_to_start = False
        self._tx_batch: list[bytes] = []
        self._tx_flush: asyncio.TimerHandle | None = None
        self._tasks: list[asyncio.Task] = []
        self._timers: set[asyncio.TimerHandle] = set()
        self._fetches: dict[bytes, asyncio.Task] = {}   # block hash -> body request in flight
        self._stopped = False
        self._sync_wanted: asyncio.Event | None = None
        self._syncing = False
        self._pending_decide: Decide | None = None   # decided before the block's body arrived
        self.peer_heights: dict[str, int] = {}
        self.sync_target = 0
        self.finality = FinalityCollector(self.chain, keypair,
                                          lambda data: self.host.publish(TopicKind.FINALITY, data),
                                          lambda peer, why: self.host.report(peer, PEER_FAULT, why))

    # -- lifecycle --------------------------------------------------------------------------------------
    def register(self) -> None:
        """Install the gossip handlers and served protocols; before the host starts, so nothing a
        peer sends early goes unhandled."""
        h = self.host
        h.on_message(TopicKind.PROPOSAL, self._on_proposal_gossip)
        h.on_message(TopicKind.VOTE, self._on_consensus_message)
        h.on_message(TopicKind.BLOCK_PART, self._on_block_part)
        h.on_message(TopicKind.TX, self._on_tx_batch)
        h.on_message(TopicKind.FINALITY, self._on_finality_partial)
        h.serve(SYNC_PROTOCOL, self._serve_sync)
        h.serve(BLOCK_PROTOCOL, self._serve_block)
        h.serve(STATUS_PROTOCOL, self._serve_status)
        h.serve(VOTES_PROTOCOL, self._serve_votes)

    async def start(self) -> None:
        """Recover or start the current height (after the host started)."""
        self._loop = asyncio.get_running_loop()
        self._sync_wanted = asyncio.Event()
        vset = self._validator_set()
        # the machine votes only while the signer's key is in the height's set
        self.tm = Tendermint(vset, self.genesis_hash, self, self.signer, self.config.timeouts, journal=self.wal)
        height = self.chain.best_number + 1
        outcome = self.tm.recover(self.wal.entries(), height, vset)
        self._height_started_at = time.monotonic()
        self._execute(outcome)
        self._tasks.append(asyncio.create_task(self._regossip_loop(), name="bft-regossip"))
        self._tasks.append(asyncio.create_task(self._sync_loop(), name="bft-sync"))

    async def stop(self) -> None:
        """Stop consensus: no input is taken after this (the host may still deliver while it stops),
        timers are cancelled, then the WAL is closed."""
        self._stopped = True
        for handle in (*self._timers, self._start_handle, self._tx_flush):
            if handle is not None:
                handle.cancel()
        self._timers.clear()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                pass
        self._tasks.clear()
        for fetch in list(self._fetches.values()):
            fetch.cancel()
        self.wal.close()

    def halt(self) -> None:
        """Stop taking part at once (the node is stopping for a runtime version it does not know):
        no more votes, proposals or imports; `stop` still closes the WAL."""
        self._stopped = True
        for handle in (*self._timers, self._start_handle, self._tx_flush):
            if handle is not None:
                handle.cancel()
        self._timers.clear()

    def _unknown_version(self, e: UnknownRuntimeVersionError) -> None:
        self.node.stop_unknown_version(e)

    # -- the state machine's application ------------------------------------------------------------------
    def propose_value(self, height: int, round: int) -> bytes | None:
        """getValue(): build a block on our best block from the ready pool and gossip its body."""
        if height != self.chain.best_number + 1 or self.keypair is None:
            return None
        limit = self.node.config.max_block_extrinsics
        candidates = []
        for tx in self.node.pool.ready():
            candidates.append((tx.hash, tx.data))
            if len(candidates) >= limit:
                break
        try:
            built = self.chain.propose_block(self.keypair, candidates)
        except UnknownRuntimeVersionError as e:
            self._unknown_version(e)
            return None
        except Exception:  # noqa: BLE001 - a failed build must not stop consensus: propose nothing
            log.exception("building a proposal for #%d failed", height)
            return None
        for h, reason in built.skipped_invalid:
            self.node.pool.remove_invalid([h], reason)
        self._bodies[built.hash] = built.signed
        self._checked[built.hash] = built
        return built.hash            # the body is gossiped with the proposal (_publish_proposal)

    def validate_value(self, height: int, block_hash: bytes) -> bool | None:
        """valid(v): execute the proposed block on our best block (once per block)."""
        if block_hash in self._checked:
            return self._checked[block_hash] is not None
        signed = self._bodies.get(block_hash)
        if signed is None:
            self._fetch_body(block_hash)
            return None
        if signed.block.header.number != height:
            self._checked[block_hash] = None
            return False
        try:
            self._checked[block_hash] = self.chain.verify_block(signed)
        except UnknownRuntimeVersionError as e:
            self._unknown_version(e)
            return None
        except ImportError_ as e:
            log.warning("proposed block #%d 0x%s is invalid: %s", height, block_hash.hex()[:12], e)
            self._checked[block_hash] = None
        return self._checked[block_hash] is not None

    # -- inputs from the network --------------------------------------------------------------------------
    def _on_consensus_message(self, peer: str, data: bytes) -> None:
        if self._stopped:
            return
        try:
            msg = decode_message(data)
        except (CodecError, ValueError):
            self.host.report(peer, PEER_GARBAGE, "undecodable consensus message")
            self._count_rejection("undecodable")
            return
        tm = self.tm
        if tm is None:
            return
        if msg.height > tm.height:
            self.peer_heights[peer] = max(self.peer_heights.get(peer, 0), msg.height - 1)
            if msg.height > tm.height + 1 or tm.is_decided:
                self._want_sync()
            if msg.height == tm.height + 1 and self._waiting_to_start:
                self._start_next_height()
        if isinstance(msg, Proposal):
            self._proposer_peer.setdefault(msg.block_hash, peer)
            outcome = tm.on_proposal(msg)
        else:
            outcome = tm.on_vote(msg)
        if outcome.rejected is not None:
            self._count_rejection(outcome.rejected.name.lower())
            if outcome.rejected.peer_fault:
                self.host.report(peer, PEER_FAULT, outcome.rejected.sentence)
        self._execute(outcome)

    def _on_proposal_gossip(self, peer: str, data: bytes) -> None:
        """`[proposal message, signed block | nil]`: the block rides with its proposal when it fits
        (almost always), so a validator can judge it the moment the proposal arrives."""
        if self._stopped:
            return
        try:
            item = unpack(data, MAX_INLINE_BLOCK + 4096)
            if type(item) is not list or len(item) != 2 or type(item[0]) is not bytes \
                    or not (item[1] is None or type(item[1]) is bytes):
                raise CodecError("proposal gossip is [proposal, block | nil]")
        except (CodecError, ValueError):
            self.host.report(peer, PEER_GARBAGE, "undecodable proposal gossip")
            self._count_rejection("undecodable")
            return
        if item[1] is not None:
            self._accept_body(item[1], peer, announce=False)
        self._on_consensus_message(peer, item[0])

    def _publish_proposal(self, proposal: Proposal) -> None:
        body = self._bodies.get(proposal.block_hash)
        raw = body.encode() if body is not None else None
        if raw is not None and len(raw) > MAX_INLINE_BLOCK:
            for part in split_payload(raw):
                self.host.publish(TopicKind.BLOCK_PART, part)
            raw = None
        self.host.publish(TopicKind.PROPOSAL, pack([encode_message(proposal), raw]))

    def _on_block_part(self, peer: str, data: bytes) -> None:
        if self._stopped:
            return
        try:
            payload = self._parts.add(data)
        except ValueError:
            self.host.report(peer, PEER_GARBAGE, "bad block part")
            return
        if payload is not None:
            self._accept_body(payload, peer)

    def _accept_body(self, payload: bytes, peer: str | None, announce: bool = True) -> None:
        """A proposed block's body. `announce`: tell the machine it can now judge the block (not
        needed when the body came with its proposal, which the machine is about to see)."""
        try:
            signed = SignedBlock.decode(payload, max_size=SYNC_MAX_BYTES)
        except (CodecError, ValueError):
            if peer is not None:
                self.host.report(peer, PEER_GARBAGE, "undecodable block")
            return
        block_hash = signed.block.header.hash()
        tm = self.tm
        number = signed.block.header.number
        if tm is None or not tm.height <= number <= tm.height + 1 or block_hash in self._bodies:
            return
        self._bodies[block_hash] = signed
        if number != tm.height or not announce:
            return
        pending = self._pending_decide
        if pending is not None and pending.block_hash == block_hash:
            self._pending_decide = None
            self._decide(pending)
            return
        self._execute(tm.on_value_available(tm.height, block_hash))

    def _on_tx_batch(self, peer: str, data: bytes) -> None:
        if self._stopped:
            return
        try:
            batch = unpack(data, TX_BATCH_BYTES + 1024)
            if type(batch) is not list or not all(type(x) is bytes for x in batch):
                raise CodecError("a transaction batch is a list of byte strings")
        except (CodecError, ValueError):
            self.host.report(peer, PEER_GARBAGE, "undecodable transaction batch")
            return
        self.node.pool.submit_batch(batch, TransactionSource.EXTERNAL)
        self._maybe_start_early()

    def _on_finality_partial(self, peer: str, data: bytes) -> None:
        if not self._stopped:
            self.finality.on_partial(peer, data)

    def gossip_transaction(self, data: bytes) -> None:
        """Queue a transaction this node accepted from a client for gossip to the other validators."""
        self._tx_batch.append(data)
        if len(self._tx_batch) >= TX_BATCH_MAX or sum(map(len, self._tx_batch)) >= TX_BATCH_BYTES:
            self._flush_txs()
        elif self._tx_flush is None and self._loop is not None:
            self._tx_flush = self._loop.call_later(self.config.tx_gossip_delay_ms / 1000, self._flush_txs)
        self._maybe_start_early()

    def _flush_txs(self) -> None:
        self._tx_flush = None
        batch, self._tx_batch = self._tx_batch, []
        if batch:
            self.host.publish(TopicKind.TX, pack(batch))

    # -- actions ------------------------------------------------------------------------------------------
    def _execute(self, outcome: Outcome) -> None:
        for action in outcome.actions:
            if isinstance(action, Broadcast):
                if isinstance(action.message, Proposal):
                    self._publish_proposal(action.message)
                else:
                    self.host.publish(TopicKind.VOTE, encode_message(action.message))
                self._last_progress = time.monotonic()
            elif isinstance(action, ScheduleTimeout):
                self._arm(action)
            elif isinstance(action, Decide):
                self._decide(action)
            elif isinstance(action, EvidenceFound):
                self._on_evidence(action)

    def _arm(self, t: ScheduleTimeout) -> None:
        handle: asyncio.TimerHandle | None = None

        def fire() -> None:
            self._timers.discard(handle)
            if self.tm is not None and not self._stopped:
                self._execute(self.tm.on_timeout(t.kind, t.height, t.round))
        handle = self._loop.call_later(t.duration_ms / 1000, fire)
        self._timers.add(handle)
        # stale timers are harmless (the machine ignores them) but should not pile up
        if len(self._timers) > 256:
            self._timers = {h for h in self._timers if not h.cancelled() and h.when() > self._loop.time()}

    def _decide(self, d: Decide) -> None:
        signed = self._bodies.get(d.block_hash)
        checked = self._checked.get(d.block_hash)
        if signed is None:
            log.warning("decided #%d 0x%s without its body; fetching it", d.height, d.block_hash.hex()[:12])
            self._pending_decide = d
            self._fetch_body(d.block_hash)
            self._want_sync()
            return
        with_cert = SignedBlock(signed.block, (Justification(ENGINE_BFT, d.certificate.encode()),))
        try:
            if checked is None:
                checked = self.chain.verify_block(signed)
            self.chain.commit_block(with_cert, checked.prepared, finalize=True)
        except UnknownRuntimeVersionError as e:
            self._unknown_version(e)
            return
        except ImportError_ as e:
            # only possible if the decided block does not apply on our best block: sync from peers
            log.error("cannot commit decided block #%d: %s", d.height, e)
            self._want_sync()
            return
        self._committed(with_cert, d.block_hash, checked.result, rounds=d.round + 1)

    def _committed(self, signed: SignedBlock, block_hash: bytes, result: Any, rounds: int) -> None:
        """After any commit (decided here or synced): tell the node, start the next height."""
        now = time.monotonic()
        m = self.node.metrics
        if m is not None:
            m.finality_latency.observe(now - self._height_started_at)
            m.rounds_per_height.observe(rounds)
        log.info("finalized #%d 0x%s (%d extrinsics, %d round%s, %.0f ms)", signed.block.header.number,
                 block_hash.hex()[:12], len(signed.block.extrinsics), rounds, "" if rounds == 1 else "s",
                 (now - self._height_started_at) * 1000)
        self._last_commit_at = now
        self._last_progress = now
        self.node.after_commit(signed, block_hash, [o.hash for o in result.outcomes])
        try:
            number = signed.block.header.number
            if number + FINALITY_KEEP_HEIGHTS >= self.sync_target:   # not while replaying old blocks
                self.finality.committed(number, block_hash)
        except Exception:  # noqa: BLE001 - the light-client certificate must never stop consensus
            log.exception("finality signature for #%d failed", signed.block.header.number)
        committed = signed.block.header.number
        self._bodies = {h: b for h, b in self._bodies.items() if b.block.header.number > committed}
        self._checked.clear()
        self._proposer_peer.clear()
        self._pending_decide = None
        if self.chain.best_number % 256 == 0:
            self.wal.compact(self.chain.best_number + 1)
        self._schedule_next_height()

    def _schedule_next_height(self) -> None:
        """Start the next height when there is something to put in it (see the module docstring)."""
        self._waiting_to_start = True
        if self._start_handle is not None:
            self._start_handle.cancel()
        delay_ms = self.config.block_time_ms
        if self._pool_has_work():
            delay_ms = self.config.min_block_interval_ms
        self._start_handle = self._loop.call_later(delay_ms / 1000, self._start_next_height)

    def _maybe_start_early(self) -> None:
        if self._waiting_to_start and self._pool_has_work():
            elapsed_ms = (time.monotonic() - self._last_commit_at) * 1000
            if self._start_handle is not None:
                self._start_handle.cancel()
            self._start_handle = self._loop.call_later(
                max(0.0, self.config.min_block_interval_ms - elapsed_ms) / 1000, self._start_next_height)

    def _pool_has_work(self) -> bool:
        return self.node.pool.status().get("ready", 0) > 0

    def _start_next_height(self) -> None:
        if not self._waiting_to_start or self.tm is None or self._stopped:
            return
        self._waiting_to_start = False
        if self._start_handle is not None:
            self._start_handle.cancel()
            self._start_handle = None
        height = self.chain.best_number + 1
        if height <= self.tm.height:
            return
        vset = self._validator_set()
        self._height_started_at = time.monotonic()
        self._execute(self.tm.start(height, vset))

    # -- the validator set -----------------------------------------------------------------------------
    def _validator_set(self, at: bytes | None = None) -> ValidatorSet:
        return ValidatorSet.from_keys(self.chain.read(validators_pallet.accounts, at))

    # -- evidence ---------------------------------------------------------------------------------------
    def _on_evidence(self, e: EvidenceFound) -> None:
        log.warning("validator %s equivocated at height %d: %s", e.evidence.validator.hex()[:16],
                    e.evidence.height, e.evidence)
        submit = getattr(self.node, "submit_evidence", None)
        if submit is not None:
            submit(e.evidence)

    # -- catch-up ---------------------------------------------------------------------------------------
    async def _regossip_loop(self) -> None:
        period = self.config.regossip_ms / 1000
        while True:
            await asyncio.sleep(period / 2)
            tm = self.tm
            if tm is None or tm.is_decided or self._waiting_to_start:
                continue
            if time.monotonic() - self._last_progress < period:
                continue
            for msg in tm.catch_up_messages():
                if isinstance(msg, Proposal):
                    self._publish_proposal(msg)
                else:
                    self.host.publish(TopicKind.VOTE, encode_message(msg))
            self._last_progress = time.monotonic()
            self._want_sync()
            await self._ask_for_votes(tm.height, tm.round)

    async def _ask_for_votes(self, height: int, round: int) -> None:
        """Vote catch-up over request/response (gossip gives no delivery guarantee): ask each peer
        for the messages it holds at our height and feed them to the machine like gossip."""
        for peer in self.host.connected_peers():
            try:
                data = await self.host.request(peer, VOTES_PROTOCOL, pack([height, round]), timeout=2.0)
                items = unpack(data, 256 * 1024)
                if type(items) is not list or not all(type(x) is bytes for x in items):
                    raise CodecError("a vote catch-up answer is a list of messages")
            except P2PError:
                continue
            except (CodecError, ValueError):
                self.host.report(peer, PEER_GARBAGE, "undecodable vote catch-up answer")
                continue
            for raw in items[:VOTES_MAX]:
                if self._stopped or self.tm is None or self.tm.height != height:
                    return
                self._on_consensus_message(peer, raw)

    def _want_sync(self) -> None:
        if self._sync_wanted is not None:
            self._sync_wanted.set()

    def _fetch_body(self, block_hash: bytes) -> None:
        """Ask the proposer's peer for a block body we lack; one request per block at a time (the
        machine asks about a missing body on every vote that arrives meanwhile)."""
        peer = self._proposer_peer.get(block_hash)
        if peer is None or self._loop is None or block_hash in self._fetches:
            return

        async def fetch() -> None:
            try:
                data = await self.host.request(peer, BLOCK_PROTOCOL, block_hash, timeout=2.0)
            except P2PError:          # failed, timed out, or the host is stopping
                return
            finally:
                self._fetches.pop(block_hash, None)
            if data and not self._stopped:
                self._accept_body(data, peer)
        self._fetches[block_hash] = self._loop.create_task(fetch())

    async def _sync_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._sync_wanted.wait(), timeout=self.config.sync_interval_ms / 1000)
            except asyncio.TimeoutError:
                pass
            self._sync_wanted.clear()
            try:
                await self._sync_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a failed sync round is retried; never stop the node
                log.exception("block sync round failed")

    async def _sync_once(self) -> None:
        """Ask connected peers for their best height; fetch and import what we lack from the best one."""
        peers = self.host.connected_peers()
        if not peers:
            return
        statuses = await asyncio.gather(*(self._status_of(p) for p in peers))
        best_peer, best_height = None, self.chain.best_number
        for p, height in zip(peers, statuses):
            if height is not None:
                self.peer_heights[p] = height
                if height > best_height:
                    best_peer, best_height = p, height
        self.sync_target = max(best_height, self.chain.best_number)
        if best_peer is None:
            return
        self._syncing = True
        progress = SyncProgress(self.chain.best_number, best_height)
        try:
            while self.chain.best_number < best_height:
                progress.update(self.chain.best_number)
                start = self.chain.best_number + 1
                try:
                    data = await self.host.request(best_peer, SYNC_PROTOCOL, pack([start, SYNC_MAX_BLOCKS]),
                                                   timeout=10.0)
                    blocks = unpack(data, SYNC_MAX_BYTES + 4096)
                    if type(blocks) is not list or not blocks:
                        return
                except (RequestFailed, CodecError, ValueError):
                    return
                for raw in blocks:
                    if type(raw) is not bytes or not self._import_synced(raw, best_peer):
                        return
        finally:
            self._syncing = False
            progress.done(self.chain.best_number)

    def _checked_justifications(self, signed: SignedBlock, block_hash: bytes) -> tuple[Justification, ...]:
        """The justifications of a synced block that we store and serve again: its BFT1 (checked by
        the caller) and a BLS1 finality certificate only if it proves this block final under the
        set that decided it (the set in our best state, the block's parent). Anything else a peer
        attached is dropped, so a forged certificate is never passed on to light clients."""
        kept = []
        for j in signed.justifications:
            if j.engine == ENGINE_BFT:
                kept.append(j)
            elif j.engine == ENGINE_FINALITY and not any(k.engine == ENGINE_FINALITY for k in kept):
                try:
                    cert = fc.FinalityCertificate.decode(j.data)
                    keys = [v.bls_public_key for v in self.chain.read(validators_pallet.current)]
                    if cert.block_hash == block_hash and cert.height == signed.block.header.number:
                        fc.verify(cert, keys, self.genesis_hash)
                        kept.append(j)
                except (CodecError, ValueError, bls.BlsError):
                    log.info("synced block #%d: dropped a finality certificate that does not verify",
                             signed.block.header.number)
        return tuple(kept)

    async def _status_of(self, peer: str) -> int | None:
        try:
            data = await self.host.request(peer, STATUS_PROTOCOL, pack(None), timeout=2.0)
            status = unpack(data, 256)
            return status[0] if type(status) is list and status and type(status[0]) is int else None
        except (RequestFailed, CodecError, ValueError):
            return None

    def _import_synced(self, raw: bytes, peer: str) -> bool:
        """Import one synced block after checking its commit certificate against its height's set."""
        if self._stopped:
            return False
        try:
            signed = SignedBlock.decode(raw, max_size=SYNC_MAX_BYTES)
        except (CodecError, ValueError):
            self.host.report(peer, PEER_GARBAGE, "undecodable synced block")
            return False
        header = signed.block.header
        cert = commit_certificate_of(signed)
        if header.number != self.chain.best_number + 1 or cert is None or cert.height != header.number \
                or cert.block_hash != header.hash():
            self.host.report(peer, PEER_FAULT, "synced block without a matching commit certificate")
            return False
        try:
            cert.verify(self._validator_set(), self.genesis_hash)
        except InvalidCommit as e:
            self.host.report(peer, PEER_GARBAGE, f"synced block with a bad commit certificate: {e}")
            return False
        signed = SignedBlock(signed.block, self._checked_justifications(signed, header.hash()))
        try:
            # a synced block may be old: its timestamp is checked by the certificate, not our clock
            result = self.chain.import_block(signed, finalize=True, check_drift=False)
        except UnknownRuntimeVersionError as e:     # not the peer's fault: this release is too old
            self._unknown_version(e)
            return False
        except ImportError_ as e:
            log.warning("synced block #%d refused: %s", header.number, e)
            self.host.report(peer, PEER_FAULT, "synced block does not import")
            return False
        m = self.node.metrics
        if m is not None:
            m.blocks_synced.inc()
        # the machine's height is over: move it on without waiting for the start delay
        self._committed(signed, header.hash(), result, rounds=cert.round + 1)
        self._start_next_height()
        return True

    # -- serving peers ------------------------------------------------------------------------------------
    async def _serve_status(self, peer: str, data: bytes) -> bytes:
        return pack([self.chain.best_number, self.chain.best_hash])

    async def _serve_votes(self, peer: str, data: bytes) -> bytes:
        """The proposals and votes we hold at the asked height, for its round and the one before."""
        tm = self.tm
        try:
            height, round = unpack(data, 64)
            if type(height) is not int or type(round) is not int:
                raise CodecError("bad vote catch-up request")
        except (CodecError, ValueError, TypeError):
            self.host.report(peer, PEER_GARBAGE, "bad vote catch-up request")
            return pack([])
        if tm is None or height != tm.height:
            return pack([])
        out: list[bytes] = []
        for r in sorted({max(0, round - 1), round, tm.round}):
            p = tm.proposal(r)
            if p is not None:
                out.append(encode_message(p))
            for kind in (Step.PREVOTE, Step.PRECOMMIT):
                out += [encode_message(v) for v in tm.votes(r, kind).values()]
        return pack(out[:VOTES_MAX])

    async def _serve_block(self, peer: str, data: bytes) -> bytes:
        signed = self._bodies.get(bytes(data))
        return signed.encode() if signed is not None else b""

    async def _serve_sync(self, peer: str, data: bytes) -> bytes:
        try:
            req = unpack(data, 64)
            start, count = req
            if type(start) is not int or type(count) is not int or start < 1:
                raise CodecError("bad sync request")
        except (CodecError, ValueError, TypeError):
            self.host.report(peer, PEER_GARBAGE, "bad sync request")
            return pack([])
        out: list[bytes] = []
        size = 0
        for n in range(start, min(start + min(count, SYNC_MAX_BLOCKS), self.chain.best_number + 1)):
            h = self.chain.blocks.hash_at(n)
            signed = self.chain.blocks.block(h) if h is not None else None
            if signed is None:
                break
            raw = signed.encode()
            if size + len(raw) > SYNC_MAX_BYTES and out:
                break
            out.append(raw)
            size += len(raw)
        return pack(out)

    # -- status for RPC and metrics ------------------------------------------------------------------------
    def is_syncing(self) -> bool:
        return self._syncing or self.sync_target > self.chain.best_number + 1

    def _count_rejection(self, reason: str) -> None:
        m = self.node.metrics
        if m is not None:
            m.consensus_messages_rejected.labels(reason=reason).inc()
