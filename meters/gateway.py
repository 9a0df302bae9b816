"""The gateway's run loop: one process reading, signing, spooling and submitting for many meters.

Each round (every `poll_s` seconds):

  1. the submitter refreshes its view of the chain (when a node answers);
  2. meters new to the spool are compared with the chain once (their last seq and registers, so a
     key used before, or a lost spool, never repeats a seq or moves registers backwards);
  3. for every interval of the chain's grid that has ended by `clock()` and is still inside its
     settlement window, each meter's source is read, a reading is built with the meter's next seq,
     signed, and spooled, all meters in one durable transaction;
  4. the submitter confirms what it sent and sends what is due (see `meters.submitter`).

Steps 1 and 4 need a node; 3 does not, so readings keep being taken through an outage and are sent
when a node answers again (as long as their settlement windows are open: the chain refuses a reading
more than `settlement_window_intervals` late, and the gateway records such readings as rejected).

The clock returns chain time in unix seconds: `time.time` on a real chain; on an accelerated dev
chain either `NodeChainClock` (chain time as the node reports it, so the meters follow the chain
through restarts) or `primitives.chain_clock.ChainClock.now_s` for chains whose spec fixes the warp.
A meter new to the gateway starts with the latest interval that has ended; intervals before are
not read.

Scale: a round walks the meters only when a new interval has ended (or a source had no data yet),
everything on the network is batched, and the spool commits once per round; there is no task or
timer per meter, so one process serves 10,000 meters.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from meters.readings import ChainRules, ReadingError, build_reading, sign
from meters.sources import RegisterSource
from meters.spool import MeterRecord, Spool, SpooledReading
from meters.submitter import PendingReading, Submitter, Unreachable
from primitives.keys import Keypair

log = logging.getLogger("gridchain.meter")


class NodeChainClock:
    """Chain time as the node last reported it (its best block's timestamp), in unix seconds.

    For accelerated dev chains (`--time-warp`), whose time only the node knows: the meters then
    follow the chain exactly, pausing while it is down. 0.0 until the node was first reached."""

    def __init__(self) -> None:
        self._now = 0.0

    def observe(self, chain_now_s: float) -> None:
        self._now = max(self._now, chain_now_s)

    def __call__(self) -> float:
        return self._now


@dataclass
class GatewayMeter:
    """One meter of the gateway: its key and where its registers come from."""

    keypair: Keypair
    source: RegisterSource

    @property
    def meter_id(self) -> bytes:
        return self.keypair.public_key


@dataclass
class GatewayStats:
    readings_built: int = 0
    intervals_skipped_window: int = 0      # not read: window already closed when the gateway got to them
    source_gaps: int = 0                   # an interval end with no register values from the source
    registers_backwards: int = 0           # source values below the last reading's: not spooled
    #: (interval end, chain time at confirmation, wall time at confirmation) per finalised reading,
    #: when `record_lags` is on
    lags: list[tuple[int, float | None, float]] = field(default_factory=list)


class Gateway:
    """Reads, signs, spools and submits for a set of meters; `run()` until stopped."""

    def __init__(self, meters: list[GatewayMeter], spool: Spool, urls: list[str], *,
                 clock: Callable[[], float] = time.time, interval_s_option: int | None = None,
                 poll_s: float = 1.0, batch_size: int = 1000, max_in_flight: int = 5000,
                 rpc_timeout_s: float = 30.0, backoff_max_s: float = 30.0, record_lags: bool = False,
                 on_final: Callable[[PendingReading, float | None], None] | None = None) -> None:
        ids = [m.meter_id for m in meters]
        if len(set(ids)) != len(ids):
            raise ValueError("a meter key appears twice among the gateway's meters")
        self.meters = {m.meter_id: m for m in meters}
        self.spool = spool
        self.clock = clock
        self.poll_s = poll_s
        self.record_lags = record_lags
        self._user_on_final = on_final
        self.submitter = Submitter(spool, urls, interval_s_option=interval_s_option, batch_size=batch_size,
                                   max_in_flight=max_in_flight, timeout_s=rpc_timeout_s,
                                   backoff_max_s=backoff_max_s, on_final=self._on_final)
        observe = getattr(clock, "observe", None)
        if callable(observe):
            self.submitter.chain_time_observers.append(observe)
        self.records: dict[bytes, MeterRecord] = {}
        self.stats = GatewayStats()
        self._configured_for: int | None = None     # interval length the sources were configured with
        self._scanned_latest: int | None = None     # latest ended interval already walked
        self._gaps: set[bytes] = set()              # meters whose latest due interval had no data
        self._backwards_logged: set[tuple[bytes, int]] = set()
        self._uncertified_logged: set[bytes] = set()
        self._opened = False

    # -- lifecycle ---------------------------------------------------------------------------------

    def open(self) -> None:
        """Register the meters in the spool and queue every pending reading it holds (including
        readings of meters no longer configured: they are signed and still worth delivering)."""
        if self._opened:
            return
        known = self.spool.meters()
        self.spool.add_meters({m: gm.source.state() for m, gm in self.meters.items() if m not in known})
        self.records = {m: r for m, r in self.spool.meters().items() if m in self.meters}
        pending = [PendingReading(r.meter, r.seq, r.interval_start, r.signed, spooled_wall=r.created_at)
                   for r in self.spool.pending() if r.signed is not None]
        self.submitter.enqueue(pending)
        if pending:
            log.info("resuming with %d readings from spool %s", len(pending), self.spool.path)
        self._opened = True
        self._configure_sources()            # possible offline when the spool already knows the chain

    async def close(self) -> None:
        await self.submitter.close()

    @property
    def rules(self) -> ChainRules | None:
        return self.submitter.rules

    # -- one round ---------------------------------------------------------------------------------

    async def step(self) -> None:
        """One round (see the module docstring). ChainMismatch and SpoolError are fatal."""
        self.open()
        reachable = await self.submitter.connect()
        self._configure_sources()
        if reachable:
            try:
                await self._sync_new_meters()
            except Unreachable as e:
                self.submitter.mark_unreachable(e)
                reachable = False
        self.take_readings(self.clock())
        if reachable:
            await self.submitter.exchange()

    async def run(self, stop: asyncio.Event | None = None,
                  until: Callable[[Gateway], bool] | None = None) -> None:
        """Rounds every `poll_s` until `stop` is set or `until(self)` is true."""
        stop = stop or asyncio.Event()
        try:
            while not stop.is_set():
                await self.step()
                if until is not None and until(self):
                    return
                try:
                    await asyncio.wait_for(stop.wait(), self.poll_s)
                except TimeoutError:
                    pass
        finally:
            await self.close()

    # -- meters and sources ------------------------------------------------------------------------

    def _configure_sources(self) -> None:
        rules = self.rules
        if rules is None or self._configured_for == rules.interval_s:
            return
        for m, gm in self.meters.items():
            rec = self.records.get(m)
            gm.source.configure(rules.interval_s, rec.source if rec is not None else {})
        self._configured_for = rules.interval_s

    async def _sync_new_meters(self) -> None:
        """Compare meters new to the spool with the chain, once each."""
        unsynced = [m for m, r in self.records.items() if not r.synced]
        if not unsynced:
            return
        chain = await self.submitter.chain_meters(unsynced)
        updates: dict[bytes, tuple[int | None, int | None, int, int]] = {}
        for m in unsynced:
            rec = chain.get(m)
            if rec is None:
                if m not in self._uncertified_logged:
                    log.warning("meter 0x%s is not certified on this chain: its readings will be refused "
                                "(and kept in the spool as rejected) until a DSO certifies it", m.hex())
                    self._uncertified_logged.add(m)
                updates[m] = (None, None, 0, 0)
            elif rec.get("has_reading"):
                updates[m] = (int(rec["last_seq"]), int(rec["last_interval"]), int(rec["last_import_wh"]),
                              int(rec["last_export_wh"]))
            else:
                updates[m] = (int(rec.get("last_seq") or 0) or None, None, 0, 0)
        self.records.update(self.spool.sync_meters(updates))
        self._gaps.update(updates)            # read them this round even if no new interval has ended

    # -- taking readings ---------------------------------------------------------------------------

    def take_readings(self, now: float) -> int:
        """Build, sign and spool the readings due by chain time `now`; returns how many."""
        rules = self.rules
        if rules is None or now <= 0 or self._configured_for is None:
            return 0
        latest = rules.last_ended_interval(now)
        if latest == self._scanned_latest:
            walk = [m for m in self._gaps if m in self.records]
        else:
            walk = list(self.meters)
        if not walk:
            return 0
        step = rules.interval_s
        # the oldest interval whose settlement window is still open at `now`: t + I * (1 + w) > now
        oldest_open = rules.interval_start(now - step * (1 + rules.settlement_window_intervals)) + step
        new: list[SpooledReading] = []
        sources: dict[bytes, dict[str, Any]] = {}
        skipped_meters = 0
        gaps: set[bytes] = set()
        for m in walk:
            rec = self.records.get(m)
            if rec is None or not rec.synced:
                continue
            gm = self.meters[m]
            before = gm.source.state()
            if rec.last_interval is None:
                first = latest
                gm.source.start(latest, rec.last_import_wh, rec.last_export_wh)
            else:
                first = rec.last_interval + step
                gm.source.start(first, rec.last_import_wh, rec.last_export_wh)
                if first < oldest_open:
                    self.stats.intervals_skipped_window += (oldest_open - first) // step
                    skipped_meters += 1
                    first = oldest_open
            after = gm.source.state()
            if after != before or after != rec.source:
                sources[m] = after
                rec.source = after
            t = first
            last_had_data = True
            while t <= latest:
                regs = gm.source.registers_at(t + step)
                if regs is None:
                    last_had_data = False
                    self.stats.source_gaps += 1
                    t += step
                    continue
                last_had_data = True
                imp, exp = regs
                if imp < rec.last_import_wh or exp < rec.last_export_wh:
                    self.stats.registers_backwards += 1
                    if (m, t) not in self._backwards_logged:
                        self._backwards_logged.add((m, t))
                        log.error("meter 0x%s: source %s gives registers (%d, %d) at %d, below the last reading's "
                                  "(%d, %d); interval not reported", m.hex(), gm.source.description, imp, exp,
                                  t + step, rec.last_import_wh, rec.last_export_wh)
                    t += step
                    continue
                try:
                    reading = build_reading(m, rec.next_seq, t, imp, exp, step)
                except ReadingError as e:
                    log.error("meter 0x%s: cannot build a reading for interval %d: %s", m.hex(), t, e)
                    t += step
                    continue
                new.append(SpooledReading(m, reading.seq, t, imp, exp, sign(gm.keypair, reading, rules.genesis_hash)))
                rec.next_seq += 1
                rec.last_interval, rec.last_import_wh, rec.last_export_wh = t, imp, exp
                t += step
            if not last_had_data:
                gaps.add(m)
        if latest != self._scanned_latest:
            self._gaps = gaps
        else:
            self._gaps = (self._gaps - set(walk)) | gaps
        self._scanned_latest = latest
        if skipped_meters:
            log.warning("%d meters had intervals whose settlement window had already closed (the gateway was "
                        "not running or had no chain time); those intervals are not read, the next reading "
                        "carries their energy", skipped_meters)
        if new or sources:
            self.spool.append(new, sources)          # durable before anything is sent
            self.submitter.enqueue(PendingReading(r.meter, r.seq, r.interval_start, r.signed or b"",
                                                  spooled_wall=time.time()) for r in new)
            self.stats.readings_built += len(new)
            if new:
                log.info("spooled %d reading(s) of %d meter(s), intervals %d..%d", len(new),
                         len({r.meter for r in new}), min(r.interval_start for r in new),
                         max(r.interval_start for r in new))
        return len(new)

    # -- bookkeeping ---------------------------------------------------------------------------------

    def _on_final(self, p: PendingReading, chain_now: float | None) -> None:
        if self.record_lags and self.rules is not None:
            self.stats.lags.append((self.rules.interval_end(p.interval_start), chain_now, time.time()))
        if self._user_on_final is not None:
            self._user_on_final(p, chain_now)

    def summary(self) -> dict[str, Any]:
        s, sub = self.stats, self.submitter.stats
        return {"meters": len(self.meters), "built": s.readings_built, "finalised": sub.finalised,
                "rejected": sub.rejected, "pending": self.submitter.pending_count(),
                "inFlight": len(self.submitter.in_flight), "sent": sub.sent, "resent": sub.resent,
                "failovers": sub.failovers, "outages": sub.outages, "sourceGaps": s.source_gaps,
                "skippedWindowClosed": s.intervals_skipped_window}
