"""Sending spooled readings to the chain and confirming them final, through outages and failover.

The submitter owns the network side of a gateway. Each `step()` it (1) makes sure a node answers,
(2) reads the chain's view (finalized head, best block number and timestamp), (3) confirms readings
sent earlier, and (4) sends the readings that are due. Everything goes in JSON-RPC batches (at most
1,000 calls each), so one gateway serves 10,000 meters with a few requests per round and no task per
meter.

**Endpoints and failover.** `--rpc URL[,URL...]`: one endpoint is active; a transport failure
(connection refused, timeout, HTTP error, rate limit) moves to the next one at once. When none
answers, the gateway keeps taking and spooling readings and retries the network with bounded
exponential backoff (0.5 s doubling to 30 s), logging once when the outage starts and once when it
ends. Every endpoint is checked before use: its genesis hash must be the spool's chain.

**Ordering: one reading in flight per meter.** The pool gives every reading the same priority and
tags it `provides (meter, seq)` with no `requires` (pallets/metering.py), so it does not order two
readings of one meter: if a later one were included first, the earlier would fail (OutOfOrder), and
with several nodes (gossip, failover) arrival order is not guaranteed. So a meter's next reading is
sent only once the previous one is final or rejected. Backlogs drain one reading per meter per
block, oldest first, which is also the order in which their settlement windows close.

**Idempotent re-sending.** A reading is always sent as the same bytes (signed once, spooled). The
node's answers "already in the pool" (1013) count as sent; a refusal as stale (replayed sequence,
duplicate interval, ...) or banned (1012) is first checked against the chain, because after a crash
or an outage the reading may well be on chain already (sent by a previous run whose confirmation was
lost): then it counts as final. A reading sent but not seen final after a few finalized blocks (the
node may have restarted with an empty pool) is sent again.

**Confirmation rule.** A reading (meter, seq, interval, hash) is final when the state at the
finalized head says so: `energy_meter(meter, at=finalized)` has `lastReading.seq == seq` and
`lastReading.readingHash == hash`, or `lastReading.seq > seq` and the interval's record
(`metering.interval_energy(meter, interval)`) carries `hash`. A different hash under our seq or
interval means another device signed with this meter's key: the reading is rejected as a conflict.

**Field meters.** A field meter's record (OCMF, SML/EDL40, DLMS) travels the same way: spooled
byte for byte, sent as `field_meters.submit_record(meter, record)`, its seq the format's counter,
confirmed by the same rule (the chain keeps keccak-256 of the record as the reading hash).

**Timing.** A reading is sent once the chain's own time (its best block's timestamp) has passed the
interval's end: one sent early is refused and its bytes banned for 30 minutes. A reading whose
settlement window closed before it could be sent is checked against the chain, then rejected
("WindowClosed") and kept in the spool with that reason.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp

from meters.readings import (
    ChainRules,
    ReadingError,
    ReadingExtrinsics,
    rules_from_metadata,
)
from meters.record_sources import RecordExtrinsics
from meters.spool import ED25519, Spool, SpoolError
from primitives import codec
from primitives.hashing import keccak256
from rpc.client import AsyncClient, RpcError

log = logging.getLogger("gridchain.meter")

T = TypeVar("T")

CONFLICT = "Conflict: the chain holds another reading under this meter's seq or interval"

#: rejected readings logged one by one per round; the rest are summed up by reason in one line
LOG_REJECTIONS_PER_ROUND = 20
MAX_BATCH = 1000                       # the node's limit of calls per JSON-RPC batch
TRANSPORT_ERRORS = (OSError, ConnectionError, asyncio.TimeoutError, aiohttp.ClientError)

# node answers (docs/rpc.md section 2)
ALREADY_IMPORTED = 1013
TEMPORARILY_BANNED = 1012
INVALID = 1010
UNKNOWN_VALIDITY = 1011
POOL_FULL = 1016
BAD_FORMAT = 1001


class ChainMismatch(Exception):
    """An endpoint serves another chain than the spool's, or a runtime without the metering pallet:
    a configuration error, fatal for the gateway."""


class Unreachable(Exception):
    """No endpoint answered; `errors` holds (url, error) for each."""

    def __init__(self, errors: list[tuple[str, BaseException]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{url}: {_describe(e)}" for url, e in errors))


def _describe(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return text.splitlines()[0][:200]


@dataclass
class PendingReading:
    """A spooled, signed reading on its way to the chain."""

    meter: bytes
    seq: int
    interval_start: int
    signed: bytes
    hash: bytes = b""
    spooled_wall: float = 0.0
    # in flight: sent and taken by a node, not yet seen final
    sent_generation: int | None = None
    sent_wall: float | None = None
    resend: bool = False
    attempts: int = 0
    #: the chain's plausibility flag for it, from the finalized state that confirmed it (None: not
    #: known); a reading flagged False was accepted but is never settled
    plausible: bool | None = None
    #: the meter's scheme: ed25519 (a reading the gateway signed) or a field meter's (its own record)
    scheme: str = ED25519

    def __post_init__(self) -> None:
        if not self.hash:
            self.hash = keccak256(self.signed)


@dataclass
class SubmitterStats:
    sent: int = 0                 # submissions (each try of each reading)
    accepted: int = 0             # taken into a node's pool (or already there)
    finalised: int = 0
    finalised_by_check: int = 0   # of which found on chain after a stale or banned answer
    rejected: int = 0
    transient: int = 0            # tries that met a temporary refusal (pool full, unknown validity, ...)
    resent: int = 0               # readings sent again after no confirmation or an outage
    failovers: int = 0
    outages: int = 0
    outage_s: float = 0.0
    rejections: dict[str, int] = field(default_factory=dict)   # reason -> count


@dataclass
class _Endpoint:
    url: str
    client: AsyncClient
    verified: bool = False


class _ChainView:
    """What the last status round saw."""

    def __init__(self) -> None:
        self.finalized_hash: bytes | None = None
        self.best_number = 0
        self.chain_now_s: float | None = None
        self.generation = 0          # how many times the finalized head changed


class Submitter:
    """Sends the spooled readings of many meters and removes them from the spool once final."""

    def __init__(self, spool: Spool, urls: list[str], *, interval_s_option: int | None = None,
                 batch_size: int = MAX_BATCH, max_in_flight: int = 5000, timeout_s: float = 30.0,
                 backoff_base_s: float = 0.5, backoff_max_s: float = 30.0, resend_after_heads: int = 3,
                 on_final: Callable[[PendingReading, float | None], None] | None = None,
                 on_rejected: Callable[[PendingReading, str], None] | None = None) -> None:
        if not urls:
            raise ValueError("at least one RPC endpoint is needed")
        self.spool = spool
        self.interval_s_option = interval_s_option
        self.batch_size = max(1, min(batch_size, MAX_BATCH))
        self.max_in_flight = max(1, max_in_flight)
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.resend_after_heads = resend_after_heads
        self.on_final = on_final
        self.on_rejected = on_rejected
        self.endpoints = [_Endpoint(u, AsyncClient(u, timeout=timeout_s)) for u in urls]
        self._active = 0
        self.rules: ChainRules | None = None
        self.metadata: dict | None = None
        self._wrap: ReadingExtrinsics | None = None
        self._record_wrap: RecordExtrinsics | None = None     # None: the runtime has no field_meters
        self._storage: dict[str, Any] = {}
        self.view = _ChainView()
        self.queues: dict[bytes, deque[PendingReading]] = {}
        self.in_flight: dict[bytes, PendingReading] = {}
        self.stats = SubmitterStats()
        self.chain_time_observers: list[Callable[[float], None]] = []
        # outage state
        self.down_since: float | None = None
        self._failures = 0
        self._retry_at = 0.0
        known = spool.chain()
        if known is not None:
            self.rules = ChainRules(known["genesisHash"], known["intervalS"], known["maxDriftS"],
                                    known["settlementWindowIntervals"])

    # -- the queue -------------------------------------------------------------------------------

    def enqueue(self, readings: Iterable[PendingReading]) -> None:
        """Readings now durable in the spool, in seq order per meter."""
        for r in readings:
            q = self.queues.get(r.meter)
            if q is None:
                q = self.queues[r.meter] = deque()
            if q and q[-1].seq >= r.seq:
                raise ValueError(f"meter 0x{r.meter.hex()}: reading seq {r.seq} queued after seq {q[-1].seq}")
            q.append(r)

    def pending_count(self) -> int:
        return sum(len(q) for q in self.queues.values())

    # -- endpoints ---------------------------------------------------------------------------------

    async def close(self) -> None:
        for ep in self.endpoints:
            await ep.client.close()

    @property
    def active_url(self) -> str:
        return self.endpoints[self._active].url

    async def _verify(self, ep: _Endpoint) -> None:
        """Check an endpoint serves the spool's chain; learn the chain's rules from its metadata."""
        c = ep.client
        genesis_hex, metadata = await c.batch([("chain_getBlockHash", [0]), ("state_getMetadata", [])])
        for r in (genesis_hex, metadata):
            if isinstance(r, RpcError):
                raise ConnectionError(f"node refused its chain identity: {r}")
        try:
            genesis = bytes.fromhex(genesis_hex[2:]) if isinstance(genesis_hex, str) else b""
        except ValueError:
            genesis = b""
        if len(genesis) != 32 or not isinstance(metadata, dict):
            raise ConnectionError("malformed answer to chain_getBlockHash / state_getMetadata")
        known = self.spool.chain()
        if known is not None and known["genesisHash"] != genesis:
            raise ChainMismatch(f"{ep.url} serves the chain with genesis 0x{genesis.hex()}, but spool "
                                f"{self.spool.path} belongs to 0x{known['genesisHash'].hex()}")
        try:
            rules, notes = rules_from_metadata(metadata, genesis, interval_s_option=self.interval_s_option)
            wrap = ReadingExtrinsics(metadata)
            storage = _storage_layout(metadata)
        except (ReadingError, ValueError, KeyError) as e:
            raise ChainMismatch(f"{ep.url}: {e}") from None
        try:
            record_wrap: RecordExtrinsics | None = RecordExtrinsics(metadata)
        except (ValueError, KeyError):
            record_wrap = None
        if self.rules is None or self.rules != rules:
            for note in notes:
                log.warning("%s", note)
        try:
            self.spool.bind_chain(genesis, rules.interval_s, rules.max_drift_s, rules.settlement_window_intervals)
        except SpoolError as e:
            raise ChainMismatch(str(e)) from None
        self.rules, self.metadata, self._wrap, self._storage = rules, metadata, wrap, storage
        self._record_wrap = record_wrap

    async def _call(self, op: Callable[[AsyncClient], Awaitable[T]]) -> T:
        """Run `op` on the active endpoint, failing over to the others in turn."""
        n = len(self.endpoints)
        errors: list[tuple[str, BaseException]] = []
        for i in range(n):
            idx = (self._active + i) % n
            ep = self.endpoints[idx]
            try:
                if not ep.verified:
                    await self._verify(ep)
                    ep.verified = True
                result = await op(ep.client)
            except TRANSPORT_ERRORS as e:
                ep.verified = False
                errors.append((ep.url, e))
                continue
            except RpcError as e:
                if e.code in (-32029, -32007) or (e.code == -32603 and e.message.startswith("HTTP ")):
                    ep.verified = False       # rate limited or an HTTP-level failure: try another
                    errors.append((ep.url, e))
                    continue
                raise
            if idx != self._active:
                log.warning("RPC endpoint %s failed (%s); using %s", self.endpoints[self._active].url,
                            _describe(errors[0][1]) if errors else "?", ep.url)
                self._active = idx
                self.stats.failovers += 1
                self._resend_all()         # the new node's pool may not hold what we sent
            return result
        raise Unreachable(errors)

    def _resend_all(self) -> None:
        for p in self.in_flight.values():
            p.resend = True

    def mark_unreachable(self, err: Unreachable) -> None:
        """No node answered: back off (bounded exponential), and log once per outage."""
        now = time.monotonic()
        self._failures += 1
        delay = min(self.backoff_max_s, self.backoff_base_s * 2 ** (self._failures - 1))
        self._retry_at = now + delay
        if self.down_since is None:
            self.down_since = now
            self.stats.outages += 1
            log.warning("no node reachable (%s); readings are kept in the spool and sent when a node answers "
                        "(retrying with backoff up to %.0f s)", err, self.backoff_max_s)

    def _recovered(self) -> None:
        self._failures = 0
        self._retry_at = 0.0
        if self.down_since is not None:
            down = time.monotonic() - self.down_since
            self.stats.outage_s += down
            self.down_since = None
            log.info("node %s reachable again after %.1f s; %d readings waiting", self.active_url, down,
                     self.pending_count())
            self._resend_all()

    # -- one round -------------------------------------------------------------------------------

    async def connect(self) -> bool:
        """Refresh the chain view (verifying an endpoint first if needed). False while no node
        answers or during backoff. ChainMismatch is fatal."""
        if time.monotonic() < self._retry_at:
            return False
        try:
            await self._call(self._refresh)
        except Unreachable as e:
            self.mark_unreachable(e)
            return False
        self._recovered()
        return True

    async def step(self) -> None:
        """One round: refresh the chain view, confirm what was sent, send what is due."""
        if await self.connect():
            await self.exchange()

    async def exchange(self) -> None:
        """Confirm what was sent, then send what is due (after a successful `connect`)."""
        try:
            await self._confirm()
            await self._send_due()
        except Unreachable as e:
            self.mark_unreachable(e)

    async def _refresh(self, c: AsyncClient) -> None:
        ts_key = self._storage["timestamp_now"]
        fin, header, ts = await c.batch([("chain_getFinalizedHead", []), ("chain_getHeader", []),
                                         ("state_getStorage", ["0x" + ts_key.hex()])])
        for r in (fin, header, ts):
            if isinstance(r, RpcError):
                raise ConnectionError(f"status query refused: {r}")
        v = self.view
        fin_hash = bytes.fromhex(fin[2:])
        if fin_hash != v.finalized_hash:
            v.finalized_hash = fin_hash
            v.generation += 1
        v.best_number = int(header["number"], 16) if isinstance(header, dict) else 0
        if ts is not None:
            v.chain_now_s = codec.unpack(bytes.fromhex(ts[2:])) / 1000
            for observe in self.chain_time_observers:
                observe(v.chain_now_s)

    # -- reading chain state ----------------------------------------------------------------------

    async def chain_meters(self, meters: list[bytes]) -> dict[bytes, dict[str, Any] | None]:
        """Each meter's record on chain (`metering.meters`, fields by the metadata's `Meter` type) at
        the finalized head; None for a meter that is not certified. Raises Unreachable."""
        out: dict[bytes, dict[str, Any] | None] = {}
        layout = self._storage
        for chunk in _chunks(meters, self.batch_size):
            at = "0x" + (self.view.finalized_hash or b"").hex()
            calls = [("state_getStorage", ["0x" + _map_key(layout["meters"], m).hex(), at]) for m in chunk]
            results = await self._call(lambda c, calls=calls: c.batch(calls))
            for m, r in zip(chunk, results):
                if isinstance(r, RpcError):
                    raise Unreachable([(self.active_url, r)])
                out[m] = None if r is None else _fields(layout["meter_fields"], bytes.fromhex(r[2:]))
        return out

    async def interval_records(self, items: list[tuple[bytes, int]]) -> dict[tuple[bytes, int], dict[str, Any] | None]:
        """The finalized state's record of (meter, interval) (`metering.interval_energy`, fields by the
        metadata's type: import_wh and export_wh deltas, reading_hash, plausible, intervals), or None.
        Raises Unreachable."""
        out: dict[tuple[bytes, int], dict[str, Any] | None] = {}
        layout = self._storage
        at = "0x" + (self.view.finalized_hash or b"").hex()
        for chunk in _chunks(items, self.batch_size):
            calls = [("state_getStorage", ["0x" + _double_map_key(layout["interval_energy"], m, t).hex(), at])
                     for m, t in chunk]
            results = await self._call(lambda c, calls=calls: c.batch(calls))
            for key, r in zip(chunk, results):
                out[key] = (None if isinstance(r, RpcError) or r is None
                            else _fields(layout["interval_fields"], bytes.fromhex(r[2:])))
        return out

    def constant(self, pallet: str, name: str) -> Any:
        """A constant of the node's metadata (None if the node has not been reached or lacks it)."""
        for p in (self.metadata or {}).get("pallets", []):
            if p.get("name") == pallet:
                return (p.get("constants") or {}).get(name)
        return None

    async def energy_meters(self, meters: list[bytes]) -> dict[bytes, dict | None]:
        """`energy_meter(meter, at=finalized)` for each meter: its certificate, scheme (with a field
        meter's device id and registers) and last reading; None for a meter the chain does not
        know. Raises Unreachable."""
        out: dict[bytes, dict | None] = {}
        at = "0x" + (self.view.finalized_hash or b"").hex()
        for chunk in _chunks(meters, self.batch_size):
            calls = [("energy_meter", ["0x" + m.hex(), at]) for m in chunk]
            results = await self._call(lambda c, calls=calls: c.batch(calls))
            for m, r in zip(chunk, results):
                if isinstance(r, RpcError):
                    raise Unreachable([(self.active_url, r)])
                out[m] = r if isinstance(r, dict) else None
        return out

    async def _last_readings(self, meters: list[bytes]) -> dict[bytes, dict | None]:
        """`energy_meter(meter, at=finalized)["lastReading"]` for each meter (None: none yet)."""
        return {m: (r or {}).get("lastReading") for m, r in (await self.energy_meters(meters)).items()}

    async def _on_chain(self, readings: list[PendingReading]) -> dict[tuple[bytes, int], str]:
        """Which of `readings` the finalized state holds: (meter, seq) -> "final" or "conflict" (our
        seq or interval holds a reading with another hash); absent keys: not on chain."""
        verdict: dict[tuple[bytes, int], str] = {}
        if not readings:
            return verdict
        last = await self._last_readings(sorted({p.meter for p in readings}))
        deeper: list[PendingReading] = []
        for p in readings:
            lr = last.get(p.meter)
            if not lr:
                continue
            seq = int(lr.get("seq", 0))
            if seq == p.seq:
                verdict[(p.meter, p.seq)] = "final" if _hash_of(lr) == p.hash else "conflict"
                p.plausible = lr.get("plausible") if isinstance(lr.get("plausible"), bool) else None
            elif seq > p.seq:
                deeper.append(p)
        if deeper:
            records = await self.interval_records([(p.meter, p.interval_start) for p in deeper])
            for p in deeper:
                rec = records.get((p.meter, p.interval_start)) or {}
                h = rec.get("reading_hash")
                if isinstance(h, bytes):
                    verdict[(p.meter, p.seq)] = "final" if h == p.hash else "conflict"
                    p.plausible = rec.get("plausible") if isinstance(rec.get("plausible"), bool) else None
        return verdict

    # -- confirming --------------------------------------------------------------------------------

    async def _confirm(self) -> None:
        """Confirm in-flight readings against the finalized state (those sent before the finalized
        head last moved); mark for re-sending what stays unconfirmed too long."""
        gen, now, rules = self.view.generation, self.view.chain_now_s, self.rules
        due = [p for p in self.in_flight.values() if p.sent_generation is not None and p.sent_generation < gen]
        if not due:
            return
        verdict = await self._on_chain(due)
        final, refused = [], []
        for p in due:
            v = verdict.get((p.meter, p.seq))
            if v == "final":
                final.append(p)
            elif v == "conflict":
                refused.append((p, CONFLICT + " (is this meter key used by another device?)"))
            elif rules is not None and now is not None and not rules.window_open(p.interval_start, now):
                # the chain's time passed the window's end and the reading is not in the finalized
                # state: no block can take it any more (e.g. a node that restarted after a long stop)
                closed = rules.window_end(p.interval_start)
                refused.append((p, (f"WindowClosed: sent, but not included before the interval's settlement "
                                    f"window closed at chain time {closed}")))
            elif gen - (p.sent_generation or 0) >= self.resend_after_heads:
                p.resend = True
        self._finalise(final)
        self._reject(refused)
        log.debug("confirmed %d of %d in flight (%d refused)", len(final), len(due), len(refused))

    def _finalise(self, readings: list[PendingReading], by_check: bool = False) -> None:
        if not readings:
            return
        self.spool.finalise([(p.meter, p.seq) for p in readings])
        now = self.view.chain_now_s
        for p in readings:
            self._pop(p)
            self.stats.finalised += 1
            if by_check:
                self.stats.finalised_by_check += 1
            if self.on_final is not None:
                self.on_final(p, now)

    def _reject(self, items: list[tuple[PendingReading, str]]) -> None:
        if not items:
            return
        self.spool.reject([(p.meter, p.seq, reason) for p, reason in items])
        logged = 0
        for p, reason in items:
            self._pop(p)
            self.stats.rejected += 1
            kind = reason.split(":", 1)[0]
            self.stats.rejections[kind] = self.stats.rejections.get(kind, 0) + 1
            if logged < LOG_REJECTIONS_PER_ROUND:
                log.warning("reading rejected: meter 0x%s seq %d interval %d: %s", p.meter.hex(), p.seq,
                            p.interval_start, reason)
            logged += 1
            if self.on_rejected is not None:
                self.on_rejected(p, reason)
        if logged > LOG_REJECTIONS_PER_ROUND:
            by_kind: dict[str, int] = {}
            for _p, reason in items[LOG_REJECTIONS_PER_ROUND:]:
                kind = reason.split(":", 1)[0]
                by_kind[kind] = by_kind.get(kind, 0) + 1
            log.warning("... and %d more readings rejected (%s); `gridchain meter spool FILE` lists them all",
                        logged - LOG_REJECTIONS_PER_ROUND, ", ".join(f"{k}: {n}" for k, n in sorted(by_kind.items())))

    def _pop(self, p: PendingReading) -> None:
        q = self.queues.get(p.meter)
        if q and q[0].seq == p.seq:
            q.popleft()
        elif q:
            try:
                q.remove(p)
            except ValueError:
                pass
        if q is not None and not q:
            del self.queues[p.meter]
        held = self.in_flight.get(p.meter)
        if held is not None and held.seq == p.seq:
            del self.in_flight[p.meter]

    def _diagnose(self, p: PendingReading, reason: str) -> str:
        """A 1012 (banned) answer carries no reason; say what the chain's time implies, if anything."""
        if not reason.startswith("Banned"):
            return reason
        rules, now = self.rules, self.view.chain_now_s
        if rules is not None and now is not None and not rules.window_open(p.interval_start, now):
            return (f"WindowClosed: the node refused it (code 1012: found invalid earlier) and the interval's "
                    f"settlement window closed at chain time {rules.window_end(p.interval_start)}")
        return reason

    # -- sending -----------------------------------------------------------------------------------

    async def _send_due(self) -> None:
        rules, v = self.rules, self.view
        if rules is None or self._wrap is None or v.chain_now_s is None or v.best_number < 1:
            return
        now = v.chain_now_s
        due: list[PendingReading] = []
        expired: list[PendingReading] = []
        fresh_slots = self.max_in_flight - sum(1 for p in self.in_flight.values() if not p.resend)
        for meter, q in self.queues.items():
            held = self.in_flight.get(meter)
            if held is not None:
                if held.resend:
                    due.append(held)
                continue
            for p in q:                       # readings whose window closed go at once, all of them
                if rules.window_open(p.interval_start, now):
                    if rules.may_submit(p.interval_start, now):
                        due.append(p)
                    break
                expired.append(p)
        if expired:
            await self._expire(expired, now)
        resends = [p for p in due if p.meter in self.in_flight]
        fresh = sorted((p for p in due if p.meter not in self.in_flight), key=lambda p: (p.interval_start, p.meter))
        batch = resends + fresh[:max(0, fresh_slots)]
        if batch:
            await self._send(batch)

    async def _expire(self, readings: list[PendingReading], chain_now: float) -> None:
        """Readings whose settlement window closed before they were sent: final if a previous run got
        them onto the chain, else rejected as too late."""
        verdict = await self._on_chain(readings)
        log.debug("%d readings expired before they were sent", len(readings))
        final = [p for p in readings if verdict.get((p.meter, p.seq)) == "final"]
        self._finalise(final, by_check=True)
        assert self.rules is not None
        rejected = []
        for p in readings:
            if verdict.get((p.meter, p.seq)) == "final":
                continue
            if verdict.get((p.meter, p.seq)) == "conflict":
                rejected.append((p, CONFLICT))
            else:
                closed = self.rules.window_end(p.interval_start)
                rejected.append((p, (f"WindowClosed: not sent; the interval's settlement window closed at "
                                     f"chain time {closed} before a node took the reading")))
        self._reject(rejected)

    def _extrinsic(self, p: PendingReading) -> bytes | None:
        """The extrinsic carrying a reading: metering.submit_reading around the gateway's signed
        reading, or field_meters.submit_record around a field meter's record (None: the node's
        runtime takes no field meter records)."""
        assert self._wrap is not None
        if p.scheme == ED25519:
            return self._wrap.wrap(p.signed)
        return None if self._record_wrap is None else self._record_wrap.wrap(p.meter, p.signed)

    async def _send(self, readings: list[PendingReading]) -> None:
        assert self._wrap is not None
        no_pallet = [p for p in readings if self._extrinsic(p) is None]
        if no_pallet:
            raise ChainMismatch(f"{self.active_url}: the node's runtime has no field_meters pallet, so it cannot "
                                f"take the records of field meter 0x{no_pallet[0].meter.hex()}")
        to_check: list[tuple[PendingReading, str]] = []
        attempts: list[tuple[bytes, int, str | None]] = []
        rejected: list[tuple[PendingReading, str]] = []
        for chunk in _chunks(readings, self.batch_size):
            calls = [("author_submitExtrinsic", ["0x" + (self._extrinsic(p) or b"").hex()]) for p in chunk]
            results = await self._call(lambda c, calls=calls: c.batch(calls))
            pool_full = False
            gen = self.view.generation
            for p, r in zip(chunk, results):
                self.stats.sent += 1
                p.attempts += 1
                if p.resend:
                    self.stats.resent += 1
                outcome, reason = _classify(r)
                if outcome == "accepted":
                    self.stats.accepted += 1
                    p.sent_generation, p.sent_wall, p.resend = gen, time.time(), False
                    self.in_flight[p.meter] = p
                    attempts.append((p.meter, p.seq, None))
                elif outcome == "check":
                    to_check.append((p, reason))
                    attempts.append((p.meter, p.seq, None))
                elif outcome == "rejected":
                    rejected.append((p, reason))
                    attempts.append((p.meter, p.seq, None))
                else:                                     # transient: try again next round
                    self.stats.transient += 1
                    attempts.append((p.meter, p.seq, reason))
                    pool_full = pool_full or outcome == "pool_full"
            if pool_full:
                break                                     # the rest would be dropped too; next round
        self.spool.note_attempts(attempts)
        log.debug("sent %d readings: %d in flight, %d to check against the chain, %d refused", len(readings),
                  len(self.in_flight), len(to_check), len(rejected))
        if to_check:
            await self._call(self._refresh)           # judge by the newest finalized state
            verdict = await self._on_chain([p for p, _ in to_check])
            self._finalise([p for p, _ in to_check if verdict.get((p.meter, p.seq)) == "final"], by_check=True)
            for p, reason in to_check:
                v = verdict.get((p.meter, p.seq))
                if v == "conflict":
                    rejected.append((p, f"{CONFLICT} ({reason})"))
                elif v is None:
                    rejected.append((p, self._diagnose(p, reason)))
        self._reject(rejected)


# -----------------------------------------------------------------------------------------------
# helpers
# -----------------------------------------------------------------------------------------------

def _classify(result: Any) -> tuple[str, str]:
    """A node's answer to author_submitExtrinsic: ("accepted" | "check" | "rejected" | "transient" |
    "pool_full", reason). "check": refused as stale or banned, which a reading already on chain
    also gets, so the chain decides."""
    if not isinstance(result, RpcError):
        return "accepted", ""
    e = result
    reason = e.data if isinstance(e.data, str) and e.data else e.message
    if e.code == ALREADY_IMPORTED:
        return "accepted", ""
    if e.code == INVALID:
        kind = reason.split(":", 1)[0]
        if kind == "Stale":
            return "check", reason
        return "rejected", reason
    if e.code == TEMPORARILY_BANNED:
        return "check", ("Banned: the node found this exact reading invalid earlier (code 1012; the reason "
                         "is not repeated) and it is not on chain")
    if e.code == POOL_FULL:
        return "pool_full", f"{e.code}: {e.message}"
    if e.code in (BAD_FORMAT, -32602):
        return "rejected", f"BadFormat: {e.message}"
    return "transient", f"{e.code}: {e.message}"


def _hash_of(last_reading: dict) -> bytes | None:
    h = last_reading.get("readingHash")
    if not isinstance(h, str) or not h.startswith("0x"):
        return None
    try:
        return bytes.fromhex(h[2:])
    except ValueError:
        return None


def _chunks(items: list, n: int) -> Iterable[list]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def _storage_layout(metadata: dict) -> dict[str, Any]:
    """Storage prefixes and struct field names the submitter reads, from the metadata."""
    pallets = {p.get("name"): p for p in metadata.get("pallets", [])}
    types = metadata.get("types", {})

    def item(pallet: str, name: str) -> dict:
        p = pallets.get(pallet)
        if p is None:
            raise ValueError(f"the node's runtime has no {pallet} pallet")
        for s in p.get("storage", []):
            if s.get("name") == name:
                return s
        raise ValueError(f"the node's runtime has no storage item {pallet}.{name}")

    def prefix(pallet: str, name: str) -> bytes:
        return bytes.fromhex(item(pallet, name)["prefix"][2:])

    def fields(type_name: str) -> list[str]:
        return [f["name"] for f in types.get(type_name, [])]

    meters_item = item("metering", "meters")
    energy_item = item("metering", "interval_energy")
    return {"timestamp_now": prefix("timestamp", "now"),
            "meters": prefix("metering", "meters"),
            "interval_energy": prefix("metering", "interval_energy"),
            "meter_fields": fields(str(meters_item.get("value"))),
            "interval_fields": fields(str(energy_item.get("value")))}


def _part(k: Any) -> bytes:
    enc = codec.pack(k)
    return keccak256(enc)[:16] + enc


def _map_key(prefix: bytes, k: Any) -> bytes:
    """protocol.md section 6: prefix ++ keccak256(enc(k))[0:16] ++ enc(k)."""
    return prefix + _part(k)


def _double_map_key(prefix: bytes, k1: Any, k2: Any) -> bytes:
    return prefix + _part(k1) + _part(k2)


def _fields(names: list[str], raw: bytes) -> dict[str, Any]:
    values = codec.unpack(raw)
    if not isinstance(values, list):
        return {}
    return dict(zip(names, values))
