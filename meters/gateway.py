"""The gateway's run loop: one process reading, signing, spooling and submitting for many meters.

Two kinds of meter: gridchain's own (`GatewayMeter`: the gateway reads registers from a source and
signs each reading with the meter's ed25519 key) and field meters (`FieldGatewayMeter`: the meter
signed its own OCMF, SML/EDL40 or DLMS records, which the gateway forwards byte for byte; see
`take_records`). Both go through the same spool and submitter, with the same guarantees.

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

Nothing the chain does to a meter's data is silent:

  - a source whose data is coarser than the chain's interval (hourly rows on 15-minute intervals)
    gives a reading only every Nth interval; the intervals in between are recorded on chain as
    missed and cannot settle. The gateway says so once per meter when it sees the source's step,
    and counts those intervals (`intervalsMissedCoarse` in `summary()`);
  - a reading the chain accepts but flags implausible (more energy than the meter's rated power can
    move in the time it covers, or a register its kind does not measure moved) is never settled,
    and `rogue_threshold` of them suspend the meter. The submitter reads the flag from the
    finalized state it confirms against; the gateway logs a warning naming the meter, the interval
    and the rule with the numbers (read from the chain's meter and interval records), an error when
    the chain suspended the meter, and counts them (`implausible`).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from meters.readings import ChainRules, ReadingError, build_reading, sign
from meters.record_sources import DEFAULT_TIME_TOLERANCE_S, RecordSource, record_info
from meters.sources import RegisterSource
from meters.spool import ED25519, I64_MAX, MeterRecord, Spool, SpooledReading
from meters.submitter import ChainMismatch, PendingReading, Submitter, Unreachable
from primitives.keys import Keypair
from primitives.meter_formats.record import MeterRecordError

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
class FieldGatewayMeter:
    """A field meter of the gateway: its id on chain (`energy_meter` knows it; derived by the chain
    from its scheme and key) and where its own signed records appear."""

    meter_id: bytes
    source: RecordSource

    @property
    def scheme(self) -> str:
        return self.source.scheme


@dataclass
class GatewayStats:
    readings_built: int = 0
    intervals_skipped_window: int = 0      # not read: window already closed when the gateway got to them
    source_gaps: int = 0                   # an interval end with no register values from the source
    registers_backwards: int = 0           # source values below the last reading's: not spooled
    #: intervals between two consecutive readings built (the chain records them as missed), and of
    #: those, the ones due to a source whose data is coarser than the chain's interval
    intervals_missed: int = 0
    intervals_missed_coarse: int = 0
    implausible: int = 0                   # final readings the chain flagged implausible (never settled)
    records_taken: int = 0                 # field meters' records spooled
    records_skipped: int = 0               # unreadable, or out of order with the meter's series: not sent
    records_too_late: int = 0              # their settlement window had closed when read: not sent
    records_known: int = 0                 # already spooled or on chain (a re-read file): not sent again
    #: meter -> its scheme, for every meter with a reading or record final in this run
    reported: dict[bytes, str] = field(default_factory=dict)
    #: (interval end, chain time at confirmation, wall time at confirmation) per finalised reading,
    #: when `record_lags` is on
    lags: list[tuple[int, float | None, float]] = field(default_factory=list)


class Gateway:
    """Reads, signs, spools and submits for a set of meters; `run()` until stopped."""

    def __init__(self, meters: list[GatewayMeter | FieldGatewayMeter], spool: Spool, urls: list[str], *,
                 clock: Callable[[], float] = time.time, interval_s_option: int | None = None,
                 poll_s: float = 1.0, batch_size: int = 1000, max_in_flight: int = 5000,
                 rpc_timeout_s: float = 30.0, backoff_max_s: float = 30.0, record_lags: bool = False,
                 on_final: Callable[[PendingReading, float | None], None] | None = None) -> None:
        ids = [m.meter_id for m in meters]
        if len(set(ids)) != len(ids):
            raise ValueError("a meter appears twice among the gateway's meters")
        self.meters = {m.meter_id: m for m in meters if isinstance(m, GatewayMeter)}
        self.field_meters = {m.meter_id: m for m in meters if isinstance(m, FieldGatewayMeter)}
        self.field_records: dict[bytes, MeterRecord] = {}
        #: field meters checked against the chain in this run: their `energy_meter` answer
        self._field_certs: dict[bytes, dict[str, Any]] = {}
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
        self._coarse_logged: set[bytes] = set()
        self._implausible: list[PendingReading] = []   # final and flagged, not yet logged
        self._suspended_logged: set[bytes] = set()
        #: called with every reading or record found final (after `on_final`)
        self.final_observers: list[Callable[[PendingReading, float | None], None]] = []
        self._opened = False

    # -- lifecycle ---------------------------------------------------------------------------------

    def open(self) -> None:
        """Register the meters in the spool and queue every pending reading it holds (including
        readings of meters no longer configured: they are signed and still worth delivering)."""
        if self._opened:
            return
        known = self.spool.meters()
        self.spool.add_meters({m: gm.source.state() for m, gm in self.meters.items() if m not in known})
        self.spool.add_meters({m: fm.source.state() for m, fm in self.field_meters.items()},
                              {m: fm.scheme for m, fm in self.field_meters.items()})
        spooled = self.spool.meters()
        self.records = {m: r for m, r in spooled.items() if m in self.meters}
        self.field_records = {m: r for m, r in spooled.items() if m in self.field_meters}
        for m, rec in self.field_records.items():
            self.field_meters[m].source.configure(rec.source)
        pending = [PendingReading(r.meter, r.seq, r.interval_start, r.signed, spooled_wall=r.created_at,
                                  scheme=spooled[r.meter].scheme if r.meter in spooled else ED25519)
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
                await self._check_field_meters()
            except Unreachable as e:
                self.submitter.mark_unreachable(e)
                reachable = False
        now = self.clock()
        self.take_readings(now)
        self.take_records(now)
        if reachable:
            await self.submitter.exchange()
            if self._implausible:
                await self._report_implausible()

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
            expected = getattr(gm.source, "data_expected_at", None)
            while t <= latest:
                regs = gm.source.registers_at(t + step)
                if regs is None:
                    if expected is None or expected(t + step):
                        last_had_data = False
                        self.stats.source_gaps += 1
                    t += step                  # else: a coarse source has no row for this end, ever
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
                if rec.last_interval is not None:
                    self._count_missed(gm, (t - rec.last_interval) // step - 1, step)
                rec.next_seq += 1
                rec.last_interval, rec.last_import_wh, rec.last_export_wh = t, imp, exp
                t += step
            if not last_had_data:
                gaps.add(m)
            if m not in self._coarse_logged:
                self._warn_if_coarse(m, gm, step)
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

    def _count_missed(self, gm: GatewayMeter, missed: int, interval_s: int) -> None:
        """Intervals between two consecutive readings of a meter: missed on chain, never settled."""
        if missed <= 0:
            return
        self.stats.intervals_missed += missed
        source_step = getattr(gm.source, "step_s", None)
        if source_step is not None and source_step > interval_s:
            self.stats.intervals_missed_coarse += min(missed, source_step // interval_s - 1)

    def _warn_if_coarse(self, m: bytes, gm: GatewayMeter, interval_s: int) -> None:
        """One warning per meter whose source has rows further apart than the chain's interval."""
        source_step = getattr(gm.source, "step_s", None)
        if source_step is None or source_step <= interval_s:
            return
        self._coarse_logged.add(m)
        n = source_step // interval_s
        log.warning("meter 0x%s: source %s has a row every %d s, coarser than the chain's %d s interval: it gives "
                    "a reading only every %s interval, and the %d intervals in between are recorded on chain as "
                    "missed and cannot settle (the next reading carries their energy); feed it data at the "
                    "chain's interval to settle every one (docs/meters.md, section 7)", m.hex(),
                    gm.source.description, source_step, interval_s, _ordinal(n), n - 1)

    # -- field meters' records ---------------------------------------------------------------------

    async def _check_field_meters(self) -> None:
        """Once per run, at the first contact with a node: every field meter must be certified on the
        chain under the scheme its source gives (else ChainMismatch: fatal, one line); a meter new to
        the spool continues after the chain's last record of it (a re-read file sends nothing twice)."""
        unchecked = [m for m in self.field_meters if m not in self._field_certs]
        if not unchecked:
            return
        certs = await self.submitter.energy_meters(unchecked)
        updates: dict[bytes, tuple[int | None, int | None, int, int]] = {}
        for m in unchecked:
            fm, cert = self.field_meters[m], certs.get(m)
            if cert is None:
                raise ChainMismatch(f"meter 0x{m.hex()} ({fm.source.description}) is not certified on the chain at "
                                    f"{self.submitter.active_url}: check --meter-id, or have the zone's DSO certify it "
                                    "(field_meters.certify)")
            if cert.get("scheme") != fm.scheme:
                device = f" (device {cert['deviceId']})" if cert.get("deviceId") else ""
                raise ChainMismatch(f"meter 0x{m.hex()} is certified as a {cert.get('scheme')} meter{device}, but "
                                    f"{fm.source.description} holds {fm.scheme} records")
            self._field_certs[m] = cert
            last = cert.get("lastReading")
            if not self.field_records[m].synced:
                updates[m] = ((int(last["seq"]), int(last["intervalStart"]), int(last["importRegisterWh"]),
                               int(last["exportRegisterWh"])) if last else (None, None, 0, 0))
            log.info("field meter 0x%s: %s %s on %s, registers %s/%s; last record on chain: %s", m.hex(), fm.scheme,
                     cert.get("deviceId"), cert.get("curve"), cert.get("importObis") or "-",
                     cert.get("exportObis") or "-",
                     f"counter {last['seq']}, interval {last['intervalStart']}" if last else "none yet")
        if updates:
            self.field_records.update(self.spool.sync_meters(updates))

    def take_records(self, now: float) -> int:
        """Spool the field meters' new records, byte for byte, with their sources' positions, in one
        durable transaction; returns how many. A record is parsed only to place it (its counter, the
        interval it closes, its registers for the summary): one that does not parse, or does not
        follow the last one taken, is reported and skipped; one already spooled or on chain (a file
        read again) is skipped quietly; one whose settlement window has closed is not sent (the chain
        refuses it), and said so. Everything else is the chain's to judge."""
        rules = self.rules
        if rules is None or now <= 0:
            return 0
        tolerance = self.submitter.constant("field_meters", "time_tolerance_s")
        tolerance = tolerance if isinstance(tolerance, int) else DEFAULT_TIME_TOLERANCE_S
        new: list[SpooledReading] = []
        sources: dict[bytes, dict[str, Any]] = {}
        too_late: dict[bytes, int] = {}
        for m, fm in self.field_meters.items():
            cert, rec = self._field_certs.get(m), self.field_records.get(m)
            if cert is None or rec is None or not rec.synced:
                continue
            found = fm.source.poll(now)
            for sr in found:
                problem = sr.error
                info = None
                if sr.raw is not None:
                    try:
                        info = record_info(fm.scheme, sr.raw, cert.get("importObis") or "",
                                           cert.get("exportObis") or "", rules.interval_s, tolerance)
                    except MeterRecordError as e:
                        problem = f"not a readable {fm.scheme} record: {e.message}"
                    if info is not None and max(info.counter, info.import_wh, info.export_wh) > I64_MAX:
                        problem, info = "a counter or register beyond 2^63", None
                if info is None or sr.raw is None:
                    self.stats.records_skipped += 1
                    log.warning("%s: %s; record skipped", sr.where, problem)
                    continue
                after_last = rec.last_interval is None or info.interval_start > rec.last_interval
                if info.counter < rec.next_seq or not after_last:
                    if info.counter < rec.next_seq and not after_last:
                        self.stats.records_known += 1            # spooled or final already
                        continue
                    self.stats.records_skipped += 1
                    log.warning("%s: record with counter %d for interval %d does not follow the last one taken "
                                "(counter %d, interval %s); record skipped", sr.where, info.counter,
                                info.interval_start, rec.next_seq - 1, rec.last_interval)
                    continue
                if not rules.window_open(info.interval_start, now):
                    self.stats.records_too_late += 1
                    too_late[m] = too_late.get(m, 0) + 1
                    continue
                new.append(SpooledReading(m, info.counter, info.interval_start, info.import_wh, info.export_wh,
                                          sr.raw))
                rec.next_seq = info.counter + 1
                rec.last_interval, rec.last_import_wh, rec.last_export_wh = (info.interval_start, info.import_wh,
                                                                             info.export_wh)
            state = fm.source.state()
            if state != rec.source:
                sources[m] = rec.source = state
        for m, n in too_late.items():
            log.warning("meter 0x%s: %d record(s) read after their interval's settlement window had closed were not "
                        "sent (the chain refuses them); the meter's next record will be refused as a counter gap "
                        "until the zone's DSO resets its baseline (metering.reset_baseline)", m.hex(), n)
        if new or sources:
            self.spool.append(new, sources)          # durable before anything is sent
            self.submitter.enqueue(PendingReading(r.meter, r.seq, r.interval_start, r.signed or b"",
                                                  spooled_wall=time.time(), scheme=self.field_meters[r.meter].scheme)
                                   for r in new)
            self.stats.records_taken += len(new)
            if new:
                log.info("spooled %d record(s) of %d field meter(s), intervals %d..%d", len(new),
                         len({r.meter for r in new}), min(r.interval_start for r in new),
                         max(r.interval_start for r in new))
        return len(new)

    # -- implausible readings ------------------------------------------------------------------------

    async def _report_implausible(self) -> None:
        """Log each final reading the chain flagged implausible, with the rule it broke and the
        numbers, from the finalized meter and interval records (read only for these rare readings);
        log the meter's suspension once if the flag suspended it."""
        items, self._implausible = self._implausible, []
        meters: dict[bytes, dict[str, Any] | None] = {}
        records: dict[tuple[bytes, int], dict[str, Any] | None] = {}
        try:
            meters = await self.submitter.chain_meters(sorted({p.meter for p in items}))
            records = await self.submitter.interval_records([(p.meter, p.interval_start) for p in items])
        except Unreachable as e:
            self.submitter.mark_unreachable(e)
        interval_s = self.rules.interval_s if self.rules is not None else 900
        threshold = self.submitter.constant("metering", "rogue_threshold")
        for p in items:
            meter = meters.get(p.meter)
            why = explain_implausible(meter, records.get((p.meter, p.interval_start)), interval_s)
            count = "" if meter is None else (f"; implausible readings since certification or reinstatement: "
                                              f"{meter.get('implausible')}"
                                              + (f" (the chain suspends the meter at {threshold})" if threshold else ""))
            log.warning("meter 0x%s, interval %d: the chain accepted the reading but flagged it implausible, so it "
                        "is never settled: %s%s", p.meter.hex(), p.interval_start, why, count)
        for m, meter in meters.items():
            if meter is not None and meter.get("status") == STATUS_SUSPENDED and m not in self._suspended_logged:
                self._suspended_logged.add(m)
                log.error("meter 0x%s was suspended by the chain after %s implausible readings (rogue_threshold): its "
                          "readings are refused until the zone's DSO checks the meter and reinstates it "
                          "(metering.reinstate_meter)", m.hex(), meter.get("implausible"))

    # -- bookkeeping ---------------------------------------------------------------------------------

    def _on_final(self, p: PendingReading, chain_now: float | None) -> None:
        self.stats.reported[p.meter] = p.scheme
        if p.plausible is False:
            self.stats.implausible += 1
            self._implausible.append(p)
        if self.record_lags and self.rules is not None:
            self.stats.lags.append((self.rules.interval_end(p.interval_start), chain_now, time.time()))
        if self._user_on_final is not None:
            self._user_on_final(p, chain_now)
        for observe in self.final_observers:
            observe(p, chain_now)

    def summary(self) -> dict[str, Any]:
        s, sub = self.stats, self.submitter.stats
        reported: dict[str, int] = {}
        for scheme in s.reported.values():
            reported[scheme] = reported.get(scheme, 0) + 1
        return {"meters": len(self.meters) + len(self.field_meters), "built": s.readings_built + s.records_taken,
                "records": s.records_taken, "recordsSkipped": s.records_skipped, "recordsTooLate": s.records_too_late,
                "reportedByScheme": dict(sorted(reported.items())), "finalised": sub.finalised,
                "rejected": sub.rejected, "pending": self.submitter.pending_count(),
                "inFlight": len(self.submitter.in_flight), "sent": sub.sent, "resent": sub.resent,
                "failovers": sub.failovers, "outages": sub.outages, "sourceGaps": s.source_gaps,
                "skippedWindowClosed": s.intervals_skipped_window, "implausible": s.implausible,
                "intervalsMissed": s.intervals_missed, "intervalsMissedCoarse": s.intervals_missed_coarse,
                "emptyRows": sum(getattr(gm.source, "empty_rows", 0) for gm in self.meters.values()),
                "coarseSources": len(self._coarse_logged)}


def summary_line(s: dict[str, Any]) -> str:
    """`Gateway.summary()` in one sentence, naming what the chain cannot settle: readings flagged
    implausible, intervals missed (and how many because a source's data is coarser than the chain's
    interval), rows skipped for empty cells."""
    line = f"{s['finalised']} readings final"
    if s.get("implausible"):
        line += f" ({s['implausible']} flagged implausible by the chain: never settled)"
    line += f", {s['rejected']} rejected, {s['pending']} still in the spool"
    if s.get("intervalsMissed"):
        line += f"; {s['intervalsMissed']} intervals missed between readings (recorded as missed, not settled)"
        if s.get("intervalsMissedCoarse"):
            line += (f", {s['intervalsMissedCoarse']} of them because {s.get('coarseSources', 0)} source(s) have data "
                     "coarser than the chain's interval")
    if s.get("emptyRows"):
        line += f"; {s['emptyRows']} CSV row{'s' if s['emptyRows'] != 1 else ''} with an empty register cell skipped"
    if s.get("recordsSkipped"):
        line += f"; {s['recordsSkipped']} field meter record(s) skipped (unreadable or out of order: see the log)"
    if s.get("recordsTooLate"):
        line += f"; {s['recordsTooLate']} record(s) not sent, their settlement window had closed"
    return line


# -- explaining an implausible reading (pallets/metering.py's plausibility rule) -----------------------

KIND_IMPORT, KIND_EXPORT, KIND_BIDIRECTIONAL = 0, 1, 2       # metering.Meter.kind
STATUS_SUSPENDED = 1                                         # metering.Meter.status
_KIND_NAMES = {KIND_IMPORT: "an import meter", KIND_EXPORT: "an export meter",
               KIND_BIDIRECTIONAL: "a bidirectional meter"}


def explain_implausible(meter: dict[str, Any] | None, record: dict[str, Any] | None, interval_s: int) -> str:
    """Which plausibility rule a flagged reading broke, with its numbers, from the chain's meter
    record (kind, rated_power_w) and the reading's interval record (import_wh and export_wh deltas,
    intervals covered). The rule: a register the meter's kind does not measure must not move, and
    `delta_wh * 3600 <= rated_power_w * seconds covered` for each register it measures."""
    generic = ("more energy than the meter's rated power can move in the time since its previous reading "
               "(delta_wh * 3600 <= rated_power_w * seconds covered), or a register its kind does not measure moved")
    if not meter or not record:
        return generic
    kind, rated = meter.get("kind"), meter.get("rated_power_w")
    d_imp, d_exp, intervals = record.get("import_wh"), record.get("export_wh"), record.get("intervals")
    if not all(isinstance(v, int) for v in (kind, rated, d_imp, d_exp, intervals)):
        return generic
    if kind == KIND_IMPORT and d_exp > 0:
        return (f"its export register moved by {d_exp} Wh, but it is certified as {_KIND_NAMES[kind]}, whose export "
                "register must not move")
    if kind == KIND_EXPORT and d_imp > 0:
        return (f"its import register moved by {d_imp} Wh, but it is certified as {_KIND_NAMES[kind]}, whose import "
                "register must not move")
    covered_s = intervals * interval_s
    for name, delta in (("import", d_imp), ("export", d_exp)):
        if delta * 3600 > rated * covered_s:
            return (f"its {name} register rose {delta} Wh over {covered_s} s ({intervals} interval"
                    f"{'s' if intervals != 1 else ''}), an average of {delta * 3600 // max(covered_s, 1)} W, more "
                    f"than its rated power of {rated} W (rule: delta_wh * 3600 <= rated_power_w * seconds covered; "
                    f"{delta * 3600} > {rated * covered_s})")
    return generic


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
