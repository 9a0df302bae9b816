"""Grid zones and the DSO's limits on them: the physical side of the energy market.

A zone is a part of the distribution grid (a feeder, a transformer) run by one distribution system
operator (DSO). The DSO sets how much power may flow into the zone (import) and out of it (export),
which neighbouring zones it is linked to and how much power a link carries, the grid fee per kWh for
energy delivered from one zone to another (or within one) in each time-of-use band, and per delivery
interval operating envelopes that tighten the capacity for that interval. On a fault the DSO pauses the
zone: while paused, no orders are accepted and no matches made there. The market and settlement read
this pallet through its public functions and never trade beyond it.

Units: power in W, prices in the stablecoin's smallest unit per kWh, time in unix seconds (UTC).

Decisions:
- The delivery interval (`Config.interval_s`, 900 s) is a build constant, not a storage value: every
  pallet agrees on it without a read. A genesis `interval_s`, if present, must equal it.
- Tariffs are keyed (from zone, to zone) -> time-of-use band -> price per kWh, as a double map whose
  first key is the pair, so all bands of one zone pair iterate together. from == to is the grid fee
  for trade inside one zone; trade between two zones also needs a link (see `grid_fee_per_kwh`).
- A link limit of 0 W removes the link. An envelope applies to one interval only; intervals without
  one use the zone's capacity. `capacity_for` is min(zone capacity, envelope), so lowering a zone's
  capacity also caps envelopes set before. Pausing does not change `capacity_for`: callers check
  `is_paused` (a pause is about now, an envelope about a future interval).
- Time-of-use bands: a genesis list of (start second of the UTC day, band id), strictly ascending,
  the first starting at 0; the band at a time is the one whose start is the last at or before it.
  Without a genesis list, the whole day is band 0.
- Unknown zones: `zone` returns None, `is_paused` False, `capacity_for` (0, 0), `grid_fee_per_kwh`
  None, `is_zone_dso` False.
"""
from __future__ import annotations

import dataclasses
import itertools

from primitives import ss58
from primitives.codec import BOOL, H256, U8, U32, U64, ListOf, Text, Tuple, struct
from primitives.types import AccountId
from pallets import identity, timestamp
from pallets.identity import Role
from runtime.pallet import (ROOT, SIGNED, Origin, Pallet, PalletError, deposit_event, ensure,
                            ensure_root, ensure_signed, fail)

pallet = Pallet("grid", index=7, doc=__doc__)

ZoneId = U32
Band = U8

SECONDS_PER_DAY = 86_400


@pallet.config
class Config:
    #: length of a delivery interval; intervals start at multiples of it (unix seconds)
    interval_s = 900
    max_zones = 1024
    max_name_len = 32
    max_tou_bands = 48
    #: how far ahead of the current time a DSO may set an operating envelope
    max_envelope_ahead_s = 31 * SECONDS_PER_DAY


@struct
class Zone:
    dso: AccountId
    name: Text(32)
    import_capacity_w: U64
    export_capacity_w: U64
    paused: BOOL


@struct
class Envelope:
    import_w: U64
    export_w: U64


TouBands = ListOf(Tuple(U32, Band), max_len=Config.max_tou_bands)

# --- storage ---------------------------------------------------------------------------------
zones = pallet.map("zones", key=ZoneId, value=Zone, doc="Zone id -> DSO, name, capacity, paused")
zone_count = pallet.value("zone_count", U32, default=0, doc="Number of zones (bounded by max_zones)")
link_limits = pallet.double_map("link_limits", ZoneId, ZoneId, U64,
                                doc="(from zone, to zone) -> link capacity in W; absent = no link")
tariffs = pallet.double_map("tariffs", Tuple(ZoneId, ZoneId), Band, U64,
                            doc="(from zone, to zone), time-of-use band -> grid fee per kWh")
envelopes = pallet.double_map("envelopes", ZoneId, U64, Envelope,
                              doc="zone, interval start (unix s) -> operating envelope in W")
tou_bands = pallet.value("tou_bands", TouBands, default=((0, 0),),
                         doc="[(start second of the UTC day, band id)], ascending, first at 0")


# --- events ----------------------------------------------------------------------------------
@pallet.event
class ZoneCreated:
    zone: ZoneId
    dso: AccountId
    name: Text(32)
    import_capacity_w: U64
    export_capacity_w: U64


@pallet.event
class ZoneDsoChanged:
    zone: ZoneId
    dso: AccountId


@pallet.event
class CapacitySet:
    zone: ZoneId
    import_w: U64
    export_w: U64


@pallet.event
class LinkLimitSet:
    """A link's capacity was set; 0 W means the link was removed."""
    from_zone: ZoneId
    to_zone: ZoneId
    capacity_w: U64


@pallet.event
class TariffSet:
    from_zone: ZoneId
    to_zone: ZoneId
    band: Band
    price_per_kwh: U64


@pallet.event
class ZonePaused:
    zone: ZoneId
    dso: AccountId
    reason_hash: H256


@pallet.event
class ZoneResumed:
    zone: ZoneId
    dso: AccountId


@pallet.event
class EnvelopeSet:
    zone: ZoneId
    interval_start: U64
    import_w: U64
    export_w: U64


# --- errors ----------------------------------------------------------------------------------
class Error(PalletError):
    UnknownZone = "no zone with this id exists"
    ZoneExists = "a zone with this id already exists"
    TooManyZones = "the grid already has the maximum number of zones (max_zones)"
    EmptyName = "a zone needs a name"
    NotZoneDso = "only the zone's DSO may change it"
    NotLicensedDso = "the DSO must hold an active identity licence with the DSO role"
    SameZone = "a link joins two different zones"
    UnknownBand = "no time-of-use band with this id is defined"
    AlreadyPaused = "the zone is already paused"
    NotPaused = "the zone is not paused"
    UnalignedInterval = "an interval must start at a multiple of interval_s seconds"
    IntervalInPast = "the interval has already started"
    IntervalTooFar = "the interval starts too far ahead (more than max_envelope_ahead_s)"
    EnvelopeAboveCapacity = "an envelope may not exceed the zone's import or export capacity"


pallet.errors(Error)


# --- public interface (market, metering, settlement) ----------------------------------------
def zone(zone_id: int) -> Zone | None:
    return zones.get(zone_id)


def is_zone_dso(zone_id: int, who: bytes) -> bool:
    z = zones.get(zone_id)
    return z is not None and z.dso == who


def is_paused(zone_id: int) -> bool:
    z = zones.get(zone_id)
    return z is not None and z.paused


def interval_start(ts_s: int) -> int:
    """The start of the delivery interval containing `ts_s`."""
    return ts_s - ts_s % Config.interval_s


def band_of(bands: tuple, ts_s: int) -> int:
    """The band of `ts_s` under a band list (pure: the rule behind `band_at`)."""
    second_of_day = ts_s % SECONDS_PER_DAY
    band = bands[0][1] if bands else 0
    for start, b in bands:
        if start > second_of_day:
            break
        band = b
    return band


def band_at(ts_s: int) -> int:
    """The time-of-use band in force at `ts_s`."""
    return band_of(tou_bands.get(), ts_s)


def band_defined(band: int) -> bool:
    return any(b == band for _start, b in tou_bands.get())


def grid_fee_per_kwh(from_zone: int, to_zone: int, ts_s: int) -> int | None:
    """Grid fee per kWh for energy from `from_zone` to `to_zone` delivered at `ts_s`; None if either
    zone is unknown, the zones differ and have no link, or no tariff is set for that band."""
    if not zones.contains(from_zone) or not zones.contains(to_zone):
        return None
    if from_zone != to_zone and not link_limits.contains(from_zone, to_zone):
        return None
    return tariffs.get((from_zone, to_zone), band_at(ts_s))


def link_limit_w(from_zone: int, to_zone: int) -> int | None:
    return link_limits.get(from_zone, to_zone)


def capacity_for(zone_id: int, interval_start_s: int) -> tuple[int, int]:
    """(import_w, export_w) available in the interval: the zone's capacity, lowered by the interval's
    envelope if one is set; (0, 0) for an unknown zone."""
    z = zones.get(zone_id)
    if z is None:
        return (0, 0)
    env = envelopes.get(zone_id, interval_start_s)
    if env is None:
        return (z.import_capacity_w, z.export_capacity_w)
    return (min(z.import_capacity_w, env.import_w), min(z.export_capacity_w, env.export_w))


def ensure_zone_dso(origin: Origin, zone_id: int) -> tuple[bytes, Zone]:
    """The signer and its zone, if the zone exists and the signer is its still-licensed DSO."""
    who = ensure_signed(origin)
    z = zones.get(zone_id) or fail(Error.UnknownZone)
    ensure(z.dso == who, Error.NotZoneDso)
    ensure(identity.is_licensed(who, Role.DSO), Error.NotLicensedDso)
    return who, z


# --- calls -----------------------------------------------------------------------------------
@pallet.call(0, weight=40_000, origin=ROOT)
def create_zone(origin: Origin, zone_id: ZoneId, dso: AccountId, name: Text(32), import_capacity_w: U64,
                export_capacity_w: U64) -> None:
    """Root: create a zone run by `dso` (a licensed DSO) with its import and export capacity in W."""
    ensure_root(origin)
    ensure(not zones.contains(zone_id), Error.ZoneExists)
    ensure(zone_count.get() < Config.max_zones, Error.TooManyZones)
    ensure(name != "", Error.EmptyName)
    ensure(identity.is_licensed(dso, Role.DSO), Error.NotLicensedDso)
    zones.insert(zone_id, Zone(dso, name, import_capacity_w, export_capacity_w, False))
    zone_count.put(zone_count.get() + 1)
    deposit_event(ZoneCreated(zone_id, dso, name, import_capacity_w, export_capacity_w))


@pallet.call(1, weight=30_000, origin=ROOT)
def set_zone_dso(origin: Origin, zone_id: ZoneId, dso: AccountId) -> None:
    """Root: hand a zone to another licensed DSO."""
    ensure_root(origin)
    z = zones.get(zone_id) or fail(Error.UnknownZone)
    ensure(identity.is_licensed(dso, Role.DSO), Error.NotLicensedDso)
    zones.insert(zone_id, dataclasses.replace(z, dso=dso))
    deposit_event(ZoneDsoChanged(zone_id, dso))


@pallet.call(2, weight=30_000, origin=SIGNED)
def set_capacity(origin: Origin, zone_id: ZoneId, import_w: U64, export_w: U64) -> None:
    """Zone DSO: set the zone's import and export capacity in W."""
    _who, z = ensure_zone_dso(origin, zone_id)
    zones.insert(zone_id, dataclasses.replace(z, import_capacity_w=import_w, export_capacity_w=export_w))
    deposit_event(CapacitySet(zone_id, import_w, export_w))


@pallet.call(3, weight=30_000, origin=SIGNED)
def set_link_limit(origin: Origin, from_zone: ZoneId, to_zone: ZoneId, capacity_w: U64) -> None:
    """DSO of the from-zone: set how many W may flow from it to another zone; 0 removes the link."""
    ensure(from_zone != to_zone, Error.SameZone)
    ensure_zone_dso(origin, from_zone)
    ensure(zones.contains(to_zone), Error.UnknownZone)
    if capacity_w == 0:
        link_limits.remove(from_zone, to_zone)
    else:
        link_limits.insert(from_zone, to_zone, capacity_w)
    deposit_event(LinkLimitSet(from_zone, to_zone, capacity_w))


@pallet.call(4, weight=30_000, origin=SIGNED)
def set_tariff(origin: Origin, from_zone: ZoneId, to_zone: ZoneId, band: Band, price_per_kwh: U64) -> None:
    """DSO of the from-zone: set the grid fee per kWh from it to `to_zone` (itself for trade inside
    the zone) in a time-of-use band."""
    ensure_zone_dso(origin, from_zone)
    _set_tariff(from_zone, to_zone, band, price_per_kwh)


def _set_tariff(from_zone: int, to_zone: int, band: int, price_per_kwh: int) -> None:
    """The checks and write shared by the DSO's `set_tariff` and root's `force_set_tariff`."""
    ensure(zones.contains(from_zone) and zones.contains(to_zone), Error.UnknownZone)
    ensure(band_defined(band), Error.UnknownBand)
    tariffs.insert((from_zone, to_zone), band, price_per_kwh)
    deposit_event(TariffSet(from_zone, to_zone, band, price_per_kwh))


@pallet.call(5, weight=25_000, origin=SIGNED)
def pause_zone(origin: Origin, zone_id: ZoneId, reason_hash: H256) -> None:
    """Zone DSO: stop all orders and matches in the zone (a fault); `reason_hash` pins the report."""
    who, z = ensure_zone_dso(origin, zone_id)
    ensure(not z.paused, Error.AlreadyPaused)
    zones.insert(zone_id, dataclasses.replace(z, paused=True))
    deposit_event(ZonePaused(zone_id, who, reason_hash))


@pallet.call(6, weight=25_000, origin=SIGNED)
def resume_zone(origin: Origin, zone_id: ZoneId) -> None:
    """Zone DSO: let trading in a paused zone resume."""
    who, z = ensure_zone_dso(origin, zone_id)
    ensure(z.paused, Error.NotPaused)
    zones.insert(zone_id, dataclasses.replace(z, paused=False))
    deposit_event(ZoneResumed(zone_id, who))


@pallet.call(7, weight=30_000, origin=SIGNED)
def set_envelope(origin: Origin, zone_id: ZoneId, interval_start: U64, import_w: U64, export_w: U64) -> None:
    """Zone DSO: limit the zone's import and export in W for one future delivery interval (within
    the zone's capacity); `interval_start` is a multiple of interval_s not yet begun."""
    _who, z = ensure_zone_dso(origin, zone_id)
    ensure(interval_start % Config.interval_s == 0, Error.UnalignedInterval)
    now_s = timestamp.now_s()
    ensure(interval_start >= now_s, Error.IntervalInPast)
    ensure(interval_start <= now_s + Config.max_envelope_ahead_s, Error.IntervalTooFar)
    ensure(import_w <= z.import_capacity_w and export_w <= z.export_capacity_w, Error.EnvelopeAboveCapacity)
    envelopes.insert(zone_id, interval_start, Envelope(import_w, export_w))
    deposit_event(EnvelopeSet(zone_id, interval_start, import_w, export_w))


@pallet.call(8, weight=30_000, origin=ROOT)
def force_set_tariff(origin: Origin, from_zone: ZoneId, to_zone: ZoneId, band: Band, price_per_kwh: U64) -> None:
    """Root (a council motion): set the grid fee per kWh from `from_zone` to `to_zone` in a
    time-of-use band, the tariff framework the council approves; the same checks and event as the
    DSO's `set_tariff`."""
    ensure_root(origin)
    _set_tariff(from_zone, to_zone, band, price_per_kwh)


# --- genesis ---------------------------------------------------------------------------------
def check_tou_bands(bands: list) -> tuple:
    """Validate a genesis band list: [[start second of day, band id], ...], ascending, first at 0."""
    out = tuple((int(s), int(b)) for s, b in bands)
    if not out or out[0][0] != 0:
        raise ValueError("grid genesis: tou_bands must start with a band at second 0 of the day")
    if len(out) > Config.max_tou_bands:
        raise ValueError(f"grid genesis: at most {Config.max_tou_bands} tou_bands")
    for (s0, _), (s1, _) in itertools.pairwise(out):
        if s1 <= s0:
            raise ValueError("grid genesis: tou_bands starts must be strictly ascending")
    for s, b in out:
        if not 0 <= s < SECONDS_PER_DAY or not 0 <= b <= 255:
            raise ValueError(f"grid genesis: bad tou band [{s}, {b}]")
    return out


@pallet.genesis
def _genesis(config: dict) -> None:
    """{"interval_s": 900 (optional, must equal Config.interval_s),
    "tou_bands": [[0, 0], [25200, 1], [79200, 0]],
    "zones": [{"id", "dso": ss58, "name", "import_capacity_w", "export_capacity_w"}],
    "links": [[from, to, capacity_w]], "tariffs": [[from, to, band, price_per_kwh]]}
    Runs after identity's genesis, so zone DSOs must be licensed there."""
    if "interval_s" in config and config["interval_s"] != Config.interval_s:
        raise ValueError(f"grid genesis: interval_s is fixed at {Config.interval_s} s in this runtime")
    if "tou_bands" in config:
        tou_bands.put(check_tou_bands(config["tou_bands"]))
    for zc in config.get("zones", []):
        zid, dso = zc["id"], ss58.decode(zc["dso"], None)
        if zones.contains(zid):
            raise ValueError(f"grid genesis: zone {zid} is listed twice")
        if not identity.is_licensed(dso, Role.DSO):
            raise ValueError(f"grid genesis: the DSO of zone {zid} holds no active DSO licence")
        if not zc["name"]:
            raise ValueError(f"grid genesis: zone {zid} needs a name")
        zones.insert(zid, Zone(dso, zc["name"], zc["import_capacity_w"], zc["export_capacity_w"], False))
    count = len(config.get("zones", []))
    if count > Config.max_zones:
        raise ValueError(f"grid genesis: more than {Config.max_zones} zones")
    zone_count.put(count)
    for from_zone, to_zone, capacity_w in config.get("links", []):
        if from_zone == to_zone or not zones.contains(from_zone) or not zones.contains(to_zone):
            raise ValueError(f"grid genesis: bad link {from_zone} -> {to_zone}")
        if capacity_w > 0:
            link_limits.insert(from_zone, to_zone, capacity_w)
    for from_zone, to_zone, band, price in config.get("tariffs", []):
        if not zones.contains(from_zone) or not zones.contains(to_zone):
            raise ValueError(f"grid genesis: tariff for unknown zone {from_zone} -> {to_zone}")
        if not band_defined(band):
            raise ValueError(f"grid genesis: tariff for undefined band {band}")
        tariffs.insert((from_zone, to_zone), band, price)
