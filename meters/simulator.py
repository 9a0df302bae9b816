"""The household simulator: a neighbourhood trading a simulated day over JSON-RPC, as real homes would.

Each household has an account (licensed prosumer or consumer), a certified smart meter and a
standing-order strategy (meters/strategy.py); all are outside clients of the chain, speaking only
JSON-RPC. The simulator runs three things side by side on the chain's clock (real time, or the
accelerated clock of a demo chain, primitives/chain_clock.py):

- the households' meters, through the meter SDK's gateway (meters/gateway.py): a signed reading per
  meter at every interval end, spooled durably until final. Most households have one of gridchain's
  own ed25519 meters; some have a meter of a kind installed in the field (`meter_kind_for`: OCMF,
  SML/EDL40, DLMS), a test meter (meters/field_meters.py) that signs each interval's registers in
  its own format, and whose record the gateway forwards untouched, as `gridchain meter run --source
  ocmf:|sml:|dlms:` does (`SimulatedRecordSource`);
- each household's energy manager, revising its standing orders once an hour;
- a reporter that reads the chain's trades after each hour (`energy_intervalTrades`, every page)
  and, where zones clear as a coupled region, the hour's clearings (meters/market_watch.py), and at
  the end waits for settlement of the whole day and sums it up, with the market's events (standing
  posts and skips, congestion rent) and a check that the stablecoin is conserved.

Figures the reporter prints are derived from the real household data in meters/data (CC BY 4.0;
`household.ATTRIBUTION` says whose).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meters.field_meters import DlmsTestMeter, OcmfTestMeter, SmlTestMeter
from meters.gateway import FieldGatewayMeter, Gateway, GatewayMeter
from meters.household import Household, HouseholdSpec, Registers, neighbourhood
from meters.market_watch import (ESCROW_ACCOUNT, IntervalClearing, MarketActivity, MarketWatch, format_clearings,
                                 market_rows)
from meters.record_sources import SourceRecord, field_meter_id
from meters.sources import SimulatedSource
from meters.spool import ED25519, Spool
from meters.submitter import PendingReading
from meters.strategy import ASK, BID, Prices, decision_times, household_prices, one_side, revisions, wanted
from primitives.chain_clock import ChainClock
from primitives.keys import Keypair
from rpc.client import AsyncClient, RpcError
from wallet.wallet import TxReport, Wallet, WalletError

log = logging.getLogger("gridchain.simulator")

HOUR_S = 3600
#: what a household pays its retailer per kWh from the grid, for comparison only (the chain does not
#: know retail prices): 0.30 GEUR
RETAIL_PRICE_PER_KWH = 300_000
#: transactions the strategy has in flight at once
MAX_IN_FLIGHT = 32
#: statuses after which a trade changes no more
FINAL_STATUSES = ("settled", "refunded")
#: meter kinds (the chain's scheme names) in the order reports list them, with their short names
METER_KINDS = {ED25519: "ed25519", "ocmf": "OCMF", "sml-edl40": "SML/EDL40", "dlms-general-signing": "DLMS"}
#: the registers a field meter of each kind is certified with (an EDL40 block signs one: import)
FIELD_REGISTERS = {"ocmf": ("1-0:1.8.0", "1-0:2.8.0"), "sml-edl40": ("1-0:1.17.0", ""),
                   "dlms-general-signing": ("1-0:1.8.0", "1-0:2.8.0")}


@dataclass
class SimHousehold:
    """One simulated home: who it is on chain, what its roof and family do, how it trades."""

    index: int
    name: str                    # its account is the secret URI //<name>, its meter //<name>//meter
    spec: HouseholdSpec
    zone: int
    rated_power_w: int
    prices: Prices
    household: Household = field(repr=False)
    account: Keypair = field(repr=False)
    meter: Keypair = field(repr=False)
    standing: dict[int, tuple[int, int]] = field(default_factory=dict)   # side -> (standing id, Wh)
    #: one transaction of a household at a time: its nonces must reach the node in order
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    #: a field meter (OCMF, SML/EDL40 or DLMS test meter) in place of the ed25519 one, or None
    field_meter: OcmfTestMeter | SmlTestMeter | DlmsTestMeter | None = field(default=None, repr=False)

    @property
    def prosumer(self) -> bool:
        return self.spec.pv_pct > 0

    @property
    def meter_kind(self) -> str:
        """The chain's scheme name for the household's meter."""
        return ED25519 if self.field_meter is None else self.field_meter.scheme

    @property
    def meter_id(self) -> bytes:
        """The household's meter on chain (its orders name it): the ed25519 key, or the field
        meter's id, which the chain derives from its scheme and key."""
        if self.field_meter is None:
            return self.meter.public_key
        return field_meter_id(self.field_meter.scheme, self.field_meter.public_key_sec1())

    def field_certificate(self) -> dict | None:
        """The field meter's certificate for the chain spec's field_meters genesis config (None for
        an ed25519 meter): scheme, DER key, the id its records carry and its registers."""
        m = self.field_meter
        if m is None:
            return None
        import_obis, export_obis = FIELD_REGISTERS[m.scheme]
        return {"scheme": m.scheme, "public_key": "0x" + m.public_key_der().hex(), "curve": "",
                "device_id": m.meter_id, "import_obis": import_obis, "export_obis": export_obis}


def meter_kind_for(number: int, prosumer: bool) -> str:
    """The neighbourhood's mix of meters, by household number (1-based): most keep gridchain's
    ed25519 meters; every 5th has an OCMF meter (P-256), every 7th a DLMS meter (security suite 1),
    and every 6th an SML/EDL40 meter if it is import-only (an EDL40 block signs one register, so a
    household with PV, which exports, cannot have one)."""
    if number % 5 == 0:
        return "ocmf"
    if number % 7 == 0:
        return "dlms-general-signing"
    if number % 6 == 0 and not prosumer:
        return "sml-edl40"
    return ED25519


def field_test_meter(kind: str, name: str) -> OcmfTestMeter | SmlTestMeter | DlmsTestMeter | None:
    """The household's field test meter, its key derived from the household's name."""
    if kind == "ocmf":
        return OcmfTestMeter("secp256r1", uri=f"//{name}//ocmf")
    if kind == "sml-edl40":
        return SmlTestMeter(uri=f"//{name}//sml")
    if kind == "dlms-general-signing":
        return DlmsTestMeter(1, uri=f"//{name}//dlms")
    return None


def build_households(n: int, seed: int = 2011, zones: tuple[int, ...] = (1, 2),
                     split_by_pv: bool = False) -> list[SimHousehold]:
    """n households named Household1..n, alternating over `zones` (or, with `split_by_pv`, those
    with PV on zones[0] and those without on zones[1]: a street of rooftop PV and one of flats), with
    meters of the kinds `meter_kind_for` gives; the same arguments always give the same
    neighbourhood, so a chain spec and a simulator built apart agree on it."""
    out = []
    for i, spec in enumerate(neighbourhood(n, seed)):
        name = f"Household{i + 1}"
        zone = zones[0 if spec.pv_pct > 0 else 1] if split_by_pv else zones[i % len(zones)]
        out.append(SimHousehold(
            index=i, name=name, spec=spec, zone=zone,
            rated_power_w=10_000 if spec.pv_pct > 0 else 15_000, prices=household_prices(i, seed),
            household=Household(spec), account=Keypair.from_uri(f"//{name}"),
            meter=Keypair.from_uri(f"//{name}//meter"),
            field_meter=field_test_meter(meter_kind_for(i + 1, spec.pv_pct > 0), name)))
    return out


class SimulatedRecordSource:
    """A field test meter on a simulated household: at each interval end of the chain's clock it
    signs the household's registers in its own format, as the meter would emit its record, and hands
    the record to the gateway (the same path as a record file, `meters.record_sources`).

    Installed, with zero registers, at the start of the last interval that has ended when it is first
    polled, as `SimulatedSource` installs an ed25519 meter; its installation, next interval and the
    meter's counter are kept in the spool with the records."""

    def __init__(self, meter: OcmfTestMeter | SmlTestMeter | DlmsTestMeter, spec: HouseholdSpec,
                 interval_s: int = 900) -> None:
        self.meter, self.spec, self.interval_s = meter, spec, interval_s
        self.scheme = meter.scheme
        self.description = f"simulated {meter.scheme} meter {meter.meter_id}"
        self._registers: Registers | None = None
        self._next: int | None = None            # start of the next interval to sign

    def configure(self, state: dict[str, Any]) -> None:
        if state.get("kind") == "simulated-records" and "installed_at" in state:
            self._registers = Registers(Household(self.spec), int(state["installed_at"]))
            self._next, self.meter.counter = int(state["next"]), int(state["counter"])

    def state(self) -> dict[str, Any]:
        if self._registers is None or self._next is None:
            return {"kind": "simulated-records"}
        return {"kind": "simulated-records", "installed_at": self._registers.installed_at, "next": self._next,
                "counter": self.meter.counter}

    def poll(self, now_s: float) -> list[SourceRecord]:
        step = self.interval_s
        if self._registers is None or self._next is None:
            first = int(now_s) // step * step - step
            self._registers, self._next = Registers(Household(self.spec), first), first
        out = []
        while self._next + step <= now_s:
            end = self._next + step
            import_wh, export_wh = self._registers.at(end)
            record = self.meter.record(end, import_wh, export_wh)     # an EDL40 meter refuses export
            out.append(SourceRecord(f"{self.description} at {end}", record))
            self._next = end
        return out


@dataclass
class HourReport:
    """What the neighbourhood did in one hour of the simulated day."""

    start: int
    trades: int = 0
    traded_wh: int = 0
    amount: int = 0             # paid for energy, stablecoin units
    fees: int = 0               # grid fees of the trades, stablecoin units
    consumption_wh: int = 0
    generation_wh: int = 0
    self_consumed_wh: int = 0   # consumption met by the household's own PV
    best_block: int = 0
    finalized_block: int = 0
    #: meter kind -> how many meters of that kind had a reading final during the hour
    meters_reported: dict[str, int] = field(default_factory=dict)
    #: the coupled region's clearings of the hour's intervals (none where the zones trade continuously)
    clearings: list[IntervalClearing] = field(default_factory=list)
    zone_names: dict[int, str] = field(default_factory=dict)

    @property
    def local_share(self) -> float:
        """Share of consumption met by PV in the neighbourhood: own PV plus energy bought locally
        (matched; settlement later pays what was delivered)."""
        if not self.consumption_wh:
            return 0.0
        return min(1.0, (self.self_consumed_wh + self.traded_wh) / self.consumption_wh)


@dataclass
class Summary:
    households: int
    hours: int
    trades: int = 0
    traded_wh: int = 0
    delivered_wh: int = 0
    amount: int = 0
    paid_sellers: int = 0
    fees_to_dso: int = 0
    penalties: int = 0
    certificates_retired_wh: int = 0
    refunded_trades: int = 0
    unsettled_trades: int = 0
    consumption_wh: int = 0
    generation_wh: int = 0
    self_consumed_wh: int = 0
    blocks: int = 0
    finalized_block: int = 0
    tx_finality_ms: list[float] = field(default_factory=list)
    tx_failed: int = 0
    readings: dict[str, Any] = field(default_factory=dict)
    #: meter kind -> (meters of that kind with a reading final on chain, meters of that kind)
    meter_kinds: dict[str, tuple[int, int]] = field(default_factory=dict)
    wall_s: float = 0.0
    #: standing-order posts and skips, congestion rent paid, from the market's events
    market: MarketActivity = field(default_factory=MarketActivity)
    clearings: list[IntervalClearing] = field(default_factory=list)
    zone_names: dict[int, str] = field(default_factory=dict)
    #: the stablecoin's supply against every account's balance at the start and at the end
    #: (MarketWatch.money)
    money_start: dict[str, Any] = field(default_factory=dict)
    money: dict[str, Any] = field(default_factory=dict)
    day_start: int = 0

    @property
    def avg_price_per_kwh(self) -> float:
        return self.amount * 1000 / self.traded_wh if self.traded_wh else 0.0

    @property
    def avg_fee_per_kwh(self) -> float:
        return self.fees_to_dso * 1000 / self.delivered_wh if self.delivered_wh else 0.0

    @property
    def self_sufficiency(self) -> float:
        """Share of the neighbourhood's consumption met by its own PV: self-consumed plus delivered
        through the market."""
        if not self.consumption_wh:
            return 0.0
        return min(1.0, (self.self_consumed_wh + self.delivered_wh) / self.consumption_wh)

    @property
    def self_sufficiency_alone(self) -> float:
        """The same without trading: each home's own PV only."""
        return self.self_consumed_wh / self.consumption_wh if self.consumption_wh else 0.0

    def finality_ms(self, q: float) -> float | None:
        return percentile(self.tx_finality_ms, q)


def percentile(values: list[float], q: float) -> float | None:
    """The q-quantile (nearest rank) of `values`, None if there are none."""
    xs = sorted(values)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else None


def simulated_gateway(households: list[SimHousehold], urls: list[str], spool_path: Path, clock: ChainClock,
                      last_reading_at: int | None = None, seed: int = 2011) -> Gateway:
    """The households' meters behind one gateway (the meter SDK's, as a vendor would run it), each
    reading its household's simulated registers, on the chain's clock, with a durable spool. With
    `last_reading_at` the meters take no reading for intervals ending after that chain time (the
    end of the simulated day), so what they deliver is the day's and nothing stays pending."""
    meters: list[GatewayMeter | FieldGatewayMeter] = [
        GatewayMeter(h.meter, SimulatedSource(h.index, seed=seed, spec=h.spec)) if h.field_meter is None
        else FieldGatewayMeter(h.meter_id, SimulatedRecordSource(h.field_meter, h.spec)) for h in households]

    def meter_clock() -> float:
        now = clock.now_s()
        return now if last_reading_at is None else min(now, last_reading_at + 0.5)
    return Gateway(meters, Spool.open(spool_path), urls, clock=meter_clock, poll_s=0.25, record_lags=True)


def reading_figures(gateway: Gateway, clock: ChainClock) -> dict[str, Any]:
    """What the meters did: readings built, finalised, rejected, still pending, and the lag from an
    interval's end (on the chain's clock) to its reading being final, in wall seconds."""
    s = gateway.summary()
    lags = [wall - clock.wall_ms_at(end * 1000) / 1000 for end, _chain, wall in gateway.stats.lags]
    out = {k: s[k] for k in ("built", "finalised", "rejected", "pending")}
    if lags:
        out["lag p50"] = f"{percentile(lags, 0.5):.1f} s"
        out["lag p99"] = f"{percentile(lags, 0.99):.1f} s"
    return out


class Simulator:
    """Drive `households` through [day_start, day_start + hours) of chain time on the node(s) at
    `urls`, reading time from `clock`. Meter readings go through `gateway` when given
    (`simulated_gateway`), so a run can also leave the meters to separate processes."""

    def __init__(self, urls: list[str], clock: ChainClock, households: list[SimHousehold], day_start: int,
                 hours: int = 24, interval_s: int = 900, gateway: Gateway | None = None,
                 on_hour: Callable[[HourReport], None] | None = None,
                 on_tick: Callable[[float, str], None] | None = None) -> None:
        if day_start % interval_s:
            raise ValueError("the simulated day must start on an interval boundary")
        self.urls = urls
        self.clock = clock
        self.households = households
        self.day_start = day_start
        self.hours = hours
        self.interval_s = interval_s
        self.gateway = gateway
        self.on_hour = on_hour or (lambda r: None)
        self.on_tick = on_tick or (lambda frac, text: None)
        self.client = AsyncClient(urls[0], timeout=30)
        self.summary = Summary(households=len(households), hours=hours)
        self._sem = asyncio.Semaphore(MAX_IN_FLIGHT)
        self.wallet: Wallet | None = None
        self.watch: MarketWatch | None = None
        self._start_block = 0
        self._hour_reported: dict[bytes, str] = {}      # meter -> kind, final since the last hour line
        if gateway is not None:
            gateway.final_observers.append(self._meter_final)

    def _meter_final(self, p: PendingReading, _chain_now: float | None) -> None:
        self._hour_reported[p.meter] = p.scheme

    @property
    def day_end(self) -> int:
        return self.day_start + self.hours * HOUR_S

    async def sleep_until(self, chain_s: float) -> None:
        delay = (self.clock.wall_ms_at(int(chain_s * 1000)) - time.time() * 1000) / 1000
        if delay > 0:
            await asyncio.sleep(delay)

    # -- the run ----------------------------------------------------------------------------
    async def run(self) -> Summary:
        t0 = time.monotonic()
        self.wallet = await Wallet.connect(self.client)
        self.watch = await MarketWatch.connect(self.client, self.wallet.state)
        self.summary.zone_names, self.summary.day_start = self.watch.zone_names, self.day_start
        self.summary.money_start = await self.watch.money(self.wallet.chain.stablecoin.id, self._money_labels())
        self._start_block = await self._best_number()
        stop_meters = asyncio.Event()
        meters = asyncio.create_task(self.gateway.run(stop_meters)) if self.gateway is not None else None
        try:
            strategy = asyncio.create_task(self._strategy())
            await self._report_hours()
            await strategy
            await self._settle_day()
            if self.gateway is not None:
                await self._drain_meters()
        finally:
            stop_meters.set()
            if meters is not None:
                await meters
            if self.gateway is not None:
                self.summary.readings = reading_figures(self.gateway, self.clock)
                reported = list(self.gateway.stats.reported.values())
                kinds = [h.meter_kind for h in self.households]
                self.summary.meter_kinds = {k: (reported.count(k), kinds.count(k)) for k in METER_KINDS
                                            if k in kinds}
            await self.client.close()
        self.summary.wall_s = time.monotonic() - t0
        return self.summary

    async def _drain_meters(self, timeout_s: float = 30.0) -> None:
        """Let the gateway deliver what it has spooled (bounded): a stop leaves nothing pending."""
        deadline = time.monotonic() + timeout_s
        while self.gateway.submitter.pending_count() and time.monotonic() < deadline:
            self.on_tick(1.0, f"meters: {self.gateway.submitter.pending_count()} readings to deliver")
            await asyncio.sleep(0.2)

    async def _best_number(self) -> int:
        header = await self.client.request("chain_getHeader", [])
        return int(header["number"], 16) if isinstance(header["number"], str) else int(header["number"])

    async def _finalized_number(self) -> int:
        h = await self.client.request("chain_getFinalizedHead", [])
        header = await self.client.request("chain_getHeader", [h])
        return int(header["number"], 16) if isinstance(header["number"], str) else int(header["number"])

    # -- households' energy managers ----------------------------------------------------------
    async def _strategy(self) -> None:
        """Once an hour from an hour before the day starts: revise every household's standing
        order for the hour it will post for, one side at a time (`one_side`: the demo's feeders
        clear as one coupled region); at the day's end, cancel them all."""
        times = decision_times(self.day_start, self.hours, self.interval_s)
        for k, (decide_at, start) in enumerate(times):
            await self.sleep_until(decide_at)
            last = k == len(times) - 1
            jobs = []
            for h in self.households:
                want = {BID: 0, ASK: 0} if last else one_side(
                    wanted(h.household, start, start + HOUR_S, self.interval_s, h.prosumer))
                changes = revisions({side: q for side, (_sid, q) in h.standing.items()}, want)
                if changes:
                    jobs.append(self._revise(h, changes))
            await asyncio.gather(*jobs)

    async def _revise(self, h: SimHousehold, changes: list[tuple[int, str, int]]) -> None:
        """One household's changes, in order (cancels first). A failed one is counted and ends the
        household's revision for this hour: after a failed cancel, setting the other side could
        leave it with both."""
        async with self._sem, h.lock:
            for side, action, quantity in changes:
                side_name = "bid" if side == BID else "ask"
                try:
                    if action in ("cancel", "replace"):
                        sid, _ = h.standing.pop(side)
                        await self._timed(self.wallet.cancel_standing_order(h.account, sid))
                    if action in ("set", "replace"):
                        price = h.prices.bid_per_kwh if side == BID else h.prices.ask_per_kwh
                        report = await self._timed(self.wallet.set_standing_order(
                            h.account, side_name, price, quantity, zone=h.zone, meter=h.meter_id))
                        if report.result.get("standingId") is not None:
                            h.standing[side] = (report.result["standingId"], quantity)
                except (TimeoutError, RpcError, WalletError, OSError) as e:
                    self.summary.tx_failed += 1
                    log.warning("%s: %s of a standing %s failed: %s", h.name, action, side_name, e)
                    return

    async def _timed(self, call: Any) -> TxReport:
        """Run one wallet call, recording build-to-finalized time; a call that failed in its block
        is an error (the household's view of its standing orders must follow the chain's)."""
        t = time.monotonic()
        report = await call
        self.summary.tx_finality_ms.append((time.monotonic() - t) * 1000)
        if not report.ok:
            raise WalletError(f"{report.call} failed on chain: {report.error}")
        return report

    # -- reporting ----------------------------------------------------------------------------
    async def _trades(self, start: int, end: int) -> list[dict]:
        """Every trade delivered in intervals [start, end), page by page at one block."""
        trades, _at = await self.client.request_all("energy_intervalTrades",
                                                    {"fromInterval": start, "toInterval": end - self.interval_s})
        return trades

    async def _report_hours(self) -> None:
        for k in range(self.hours):
            start = self.day_start + k * HOUR_S
            end = start + HOUR_S
            self.on_tick(k / self.hours, f"simulated {_clock(start)}")
            await self._tick_until(end, k)
            r = HourReport(start=start)
            for t in await self._trades(start, end):
                r.trades += 1
                r.traded_wh += t["wh"]
                r.amount += t["amount"]
                r.fees += t["feeAmount"]
            for h in self.households:
                c, g = h.household.energy(start, end)
                imp, _ = h.household.flows(start, end)
                r.consumption_wh += c
                r.generation_wh += g
                r.self_consumed_wh += c - imp
            r.best_block = await self._best_number()
            r.finalized_block = await self._finalized_number()
            if self.watch.coupled:
                r.clearings = await self.watch.clearings(start, end, self.interval_s)
                r.zone_names = self.watch.zone_names
                self.summary.clearings += r.clearings
            self.summary.market.add(await self.watch.scan())
            reported = list(self._hour_reported.values())
            r.meters_reported = {k: reported.count(k) for k in METER_KINDS if k in reported}
            self._hour_reported.clear()
            self.summary.consumption_wh += r.consumption_wh
            self.summary.generation_wh += r.generation_wh
            self.summary.self_consumed_wh += r.self_consumed_wh
            self.on_hour(r)

    async def _tick_until(self, end: int, hour: int) -> None:
        """Sleep until chain time `end`, updating the progress display a few times on the way."""
        while True:
            now = self.clock.now_s()
            if now >= end:
                return
            frac = (hour + 1 - (end - now) / HOUR_S) / self.hours
            self.on_tick(max(0.0, frac), f"simulated {_clock(int(now))}")
            await asyncio.sleep(min(0.5, max(0.05, (self.clock.wall_ms_at(end * 1000) - time.time() * 1000) / 1000)))

    async def _settle_day(self, timeout_s: float = 120.0) -> None:
        """Wait until every trade of the day is final (its settlement window has closed and the
        settlement hook has run), then total the outcomes."""
        deadline = time.monotonic() + timeout_s
        while True:
            trades = await self._trades(self.day_start, self.day_end)
            pending = [t for t in trades if t["status"] not in FINAL_STATUSES]
            self.on_tick(1.0, f"settling: {len(trades) - len(pending)}/{len(trades)} trades final")
            if not pending or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        s = self.summary
        for t in trades:
            s.trades += 1
            s.traded_wh += t["wh"]
            s.amount += t["amount"]
            o = t["outcome"]
            if t["status"] not in FINAL_STATUSES or o is None:
                s.unsettled_trades += 1
                continue
            s.refunded_trades += t["status"] == "refunded"
            s.delivered_wh += o["deliveredWh"]
            s.paid_sellers += o["paidSeller"]
            s.fees_to_dso += o["feeToDso"]
            s.penalties += o["penalty"]
            s.certificates_retired_wh += o["certificatesRetiredWh"]
        s.finalized_block = await self._finalized_number()
        s.blocks = s.finalized_block - self._start_block
        s.market.add(await self.watch.scan())
        s.money = await self.watch.money(self.wallet.chain.stablecoin.id, self._money_labels())

    def _money_labels(self) -> dict[bytes, str]:
        """Whose balance is whose in the money check: the households, the DSO, the market's escrow."""
        labels = {h.account.public_key: "households" for h in self.households}
        labels.update({dso: "DSO" for dso in self.watch.dsos})
        labels[ESCROW_ACCOUNT] = "market escrow"
        return labels


def _clock(t: int) -> str:
    return time.strftime("%H:%M", time.gmtime(t))


def format_hour(r: HourReport, stable_decimals: int = 6) -> str:
    unit = 10 ** stable_decimals
    price = f"{r.amount * 1000 / r.traded_wh / unit:.3f}" if r.traded_wh else "  -  "
    return (f"{_clock(r.start)}-{_clock(r.start + HOUR_S)}  trades {r.trades:4d}  traded {r.traded_wh / 1000:7.2f} kWh  "
            f"price {price} GEUR/kWh  fees {r.fees / unit:6.3f} GEUR  PV {r.generation_wh / 1000:6.2f} kWh  "
            f"load {r.consumption_wh / 1000:6.2f} kWh  local share {r.local_share:4.0%}  "
            f"block #{r.best_block} (final #{r.finalized_block})"
            + (f"  meters {format_kinds(r.meters_reported)}" if r.meters_reported else "")
            + _coupled_line(r, unit))


def _coupled_line(r: HourReport, unit: int) -> str:
    """The hour's coupled clearings as a second, indented line ('' when nothing cleared)."""
    line = format_clearings(r.clearings, r.zone_names, unit)
    return "" if line is None else "\n" + " " * 13 + line


def format_kinds(counts: dict[str, Any]) -> str:
    """Meter kinds with a count each, in METER_KINDS order: `ed25519 5, OCMF 1, SML/EDL40 1, DLMS 1`."""
    return ", ".join(f"{METER_KINDS[k]} {counts[k]}" for k in METER_KINDS if k in counts)


def format_summary(s: Summary, grid_fee_local: tuple[int, int] | None = None, stable_decimals: int = 6) -> list[str]:
    """The end-of-day summary as aligned lines."""
    unit = 10 ** stable_decimals
    p50, p99 = s.finality_ms(0.5), s.finality_ms(0.99)
    tariff = (f" (the DSO's local grid fee: {grid_fee_local[0] / unit:.2f} off-peak, {grid_fee_local[1] / unit:.2f} "
              f"peak)") if grid_fee_local else ""
    latency = (f"{p50:.0f} ms p50, {p99:.0f} ms p99 from signing to finalized, over {len(s.tx_finality_ms)} "
               f"household transactions" if p50 is not None else "n/a (no household transaction)")
    if s.tx_failed:
        latency += f"; {s.tx_failed} failed"
    rows = [
        ("energy traded locally", (f"{s.traded_wh / 1000:.2f} kWh in {s.trades} trades; delivered and settled "
                                  f"{s.delivered_wh / 1000:.2f} kWh ({s.refunded_trades} refunded, "
                                  f"{s.unsettled_trades} not yet final)")),
        ("average local price", (f"{s.avg_price_per_kwh / unit:.4f} GEUR/kWh to sellers plus "
                                f"{s.avg_fee_per_kwh / unit:.4f} GEUR/kWh grid fees, against a retail grid price "
                                f"of {RETAIL_PRICE_PER_KWH / unit:.2f} GEUR/kWh{tariff}")),
        ("fees to the DSO", (f"{s.fees_to_dso / unit:.4f} GEUR; sellers paid {s.paid_sellers / unit:.4f} GEUR; "
                            f"penalties {s.penalties / unit:.4f} GEUR")),
        ("certificates retired", f"{s.certificates_retired_wh / 1000:.2f} kWh of generation certificates to buyers"),
        ("self-sufficiency", (f"{s.self_sufficiency:.1%} of {s.consumption_wh / 1000:.1f} kWh consumed (own PV alone "
                             f"{s.self_sufficiency_alone:.1%}; PV generated {s.generation_wh / 1000:.1f} kWh)")),
        ("blocks", f"{s.blocks} finalized during the run (finalized head #{s.finalized_block})"),
        ("finality latency", latency),
    ]
    rows += market_rows(s.clearings, s.market, s.zone_names, (s.day_start, s.day_start + s.hours * HOUR_S),
                        s.money_start, s.money, unit)
    if s.readings:
        rows.append(("meter readings", ", ".join(f"{k} {v}" for k, v in s.readings.items())))
    if s.meter_kinds:
        rows.append(("meters reported", format_kinds({k: f"{n}/{total}" for k, (n, total) in s.meter_kinds.items()})
                     + " (of each kind: meters with a reading final on chain / meters)"))
    head = f"neighbourhood of {s.households} households, {s.hours} simulated hours in {s.wall_s:.0f} s"
    return [head] + [f"{label:<23} {text}" for label, text in rows]
