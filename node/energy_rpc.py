"""`energy_*` JSON-RPC queries: what wallets, meters and DSOs read about the energy market.

All are safe, read-only views of chain state at the best block (or at `at`), computed with the
pallets' own read functions so they can never disagree with the runtime. Accounts may be given as
SS58 addresses or 0x hex; amounts are integers in the chain's units (Wh, W, stablecoin smallest
units, prices per kWh).

Lists are paged so that no caller can receive a cut list without knowing it. A list method given
`limit` (or a `cursor`) answers a page `{items, next, at}`: the items after the cursor in a stable
order (order id, trade id, (interval, position in the interval), zone id), and `next`, a cursor for
the following page or null after the last. The cursor holds the block hash the first page was read
at and the sort key of the page's last item, so every later page reads the same state: paging can
neither skip nor repeat an item, whatever blocks arrive meanwhile. Without `limit` and `cursor` a
list method keeps its old shape, the whole list, and refuses (-32602) a list longer than MAX_PAGE
rather than cutting it (`energy_zones` answers all zones: the grid holds at most max_zones).
`energy_orderBook` is always whole: a book side holds at most market.Config.max_orders_per_side
orders.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from typing import Any, Callable, Iterator

from pallets import field_meters, grid, market, metering, settlement
from primitives import ss58
from rpc.jsonshapes import InvalidParams, parse_account, parse_hash, parse_hex, parse_int

#: most items one page holds (a `limit` above it is refused), and the longest list an unpaged call
#: answers: a longer one is refused with a pointer to paging, never cut
MAX_PAGE = 1000

SIDE_NAMES = {market.BID: "bid", market.ASK: "ask"}
METER_STATUS = {metering.STATUS_ACTIVE: "active", metering.STATUS_SUSPENDED: "suspended",
                metering.STATUS_RETIRED: "retired"}
METER_KIND = {metering.KIND_IMPORT: "import", metering.KIND_EXPORT: "export",
              metering.KIND_BIDIRECTIONAL: "bidirectional"}


def _args(params: Any, names: list[str], required: int) -> list[Any]:
    """Positional (array) or named (object) params, in `names` order; the first `required` must be given."""
    if params is None:
        params = []
    if isinstance(params, dict):
        unknown = set(params) - set(names)
        if unknown:
            raise InvalidParams(f"unknown parameter `{sorted(unknown)[0]}`")
        values = [params.get(n) for n in names]
    elif isinstance(params, list):
        if len(params) > len(names):
            raise InvalidParams(f"takes at most {len(names)} parameters, got {len(params)}")
        values = params + [None] * (len(names) - len(params))
    else:
        raise InvalidParams("params must be an array or an object")
    for n, v in zip(names[:required], values):
        if v is None:
            raise InvalidParams(f"missing required parameter `{n}`")
    return values


def _at(v: Any) -> bytes | None:
    return None if v is None else parse_hash(v, "at")


@dataclass(frozen=True)
class Paging:
    """What a list call asked for: a page (at most `limit` items whose sort key follows `after`, read
    at block `at`), or, unpaged, the whole list at `at` (None: the best block)."""
    paged: bool
    limit: int
    after: tuple[int, ...] | None
    at: bytes | None


def make_cursor(at: bytes, key: tuple[int, ...]) -> str:
    """`0x<block hash>:<sort key>`, e.g. `0x12…ef:1042` or `0x12…ef:1700003700.17`; clients pass it
    back unchanged."""
    return "0x" + at.hex() + ":" + ".".join(str(k) for k in key)


def parse_cursor(value: Any, key_len: int) -> tuple[bytes, tuple[int, ...]]:
    """(block hash, sort key) of a cursor this method returned as `next`."""
    bad = InvalidParams("cursor: not a cursor this method returned (pass its `next` back unchanged)")
    if not isinstance(value, str) or value.count(":") != 1:
        raise bad
    at_hex, key = value.split(":")
    parts = key.split(".")
    if len(parts) != key_len or not all(p.isascii() and p.isdigit() and len(p) <= 20 for p in parts):
        raise bad
    return parse_hash(at_hex, "cursor"), tuple(int(p) for p in parts)


def parse_paging(limit: Any, cursor: Any, at: Any, key_len: int) -> Paging:
    """The paging params of a list method; a cursor names its own block, which `at` may only repeat."""
    at_hash = _at(at)
    if limit is None and cursor is None:
        return Paging(False, MAX_PAGE, None, at_hash)
    n = MAX_PAGE if limit is None else parse_int(limit, "limit", lo=1, hi=MAX_PAGE)
    if cursor is None:
        return Paging(True, n, None, at_hash)
    cursor_at, after = parse_cursor(cursor, key_len)
    if at_hash is not None and at_hash != cursor_at:
        raise InvalidParams("cursor: it continues a list read at another block than `at`")
    return Paging(True, n, after, cursor_at)


#: (sort key, JSON item) pairs in sort-key order, from just after a sort key (None: from the first)
Items = Callable[[tuple[int, ...] | None], Iterator[tuple[tuple[int, ...], dict]]]


def _addr(who: bytes) -> str:
    return ss58.encode(who)


def _order_json(o: market.Order) -> dict:
    return {"orderId": o.id, "owner": _addr(o.owner), "side": SIDE_NAMES[o.side], "zone": o.zone,
            "intervalStart": o.interval_start, "pricePerKwh": o.price_per_kwh, "quantityWh": o.quantity_wh,
            "remainingWh": o.remaining_wh, "meter": "0x" + o.meter.hex(), "green": o.green,
            "escrowLocked": o.escrow_locked}


def _trade_json(t: market.Trade) -> dict:
    return {"tradeId": t.id, "intervalStart": t.interval_start, "buyer": _addr(t.buyer), "seller": _addr(t.seller),
            "buyerMeter": "0x" + t.buyer_meter.hex(), "sellerMeter": "0x" + t.seller_meter.hex(),
            "fromZone": t.from_zone, "toZone": t.to_zone, "wh": t.wh, "pricePerKwh": t.price_per_kwh,
            "feePerKwh": t.fee_per_kwh, "amount": t.amount, "feeAmount": t.fee_amount,
            **_settlement_json(t.id)}


STATUS_NAMES = {settlement.MATCHED: "matched", settlement.DELIVERING: "delivering", settlement.SETTLED: "settled",
                settlement.DISPUTED: "disputed", settlement.REFUNDED: "refunded"}
FAULT_NAMES = {settlement.NO_FAULT: None, settlement.SELLER_AT_FAULT: "seller", settlement.BUYER_AT_FAULT: "buyer"}

#: widest interval range one energy_intervalTrades call may scan (31 days of 15-minute intervals)
MAX_INTERVALS = 31 * 96


def _scheme_json(meter_id: bytes) -> dict:
    """How a meter signs: gridchain's own ed25519 readings, or a field meter's format and key."""
    fm = field_meters.get(meter_id)
    if fm is None:
        return {"scheme": field_meters.SCHEME_NAMES[field_meters.SCHEME_ED25519]}
    return {"scheme": field_meters.SCHEME_NAMES[fm.scheme], "curve": fm.curve,
            "publicKey": "0x" + fm.public_key.hex(), "deviceId": fm.device_id,
            "importObis": fm.import_obis, "exportObis": fm.export_obis}


def _settlement_json(trade_id: int) -> dict:
    """A trade's settlement status and, once final, its outcome (must run under externalities)."""
    o = settlement.outcome(trade_id)
    return {"status": STATUS_NAMES.get(settlement.trade_status(trade_id), "unknown"),
            "outcome": None if o is None else {
                "deliveredWh": o.delivered_wh, "paidSeller": o.paid_seller, "feeToDso": o.fee_to_dso,
                "refundBuyer": o.refund_buyer, "penalty": o.penalty, "atFault": FAULT_NAMES.get(o.at_fault),
                "certificatesRetiredWh": o.certificates_retired_wh}}


def _region_json(index: int, zone_ids: tuple[int, ...], c: market.RegionClearing | None) -> dict:
    """One coupled region's clearing for an interval (must run under externalities: zone modes).
    Before the region cleared, `cleared` is false, the lists are empty and the totals null, so a
    client never takes a pending clearing for one that traded nothing."""
    if c is None:
        return {"region": index, "zoneIds": list(zone_ids), "cleared": False, "zones": [], "links": [],
                "volumeWh": None, "rent": None}
    zones = [{"zone": z.zone, "mode": market.zone_mode(z.zone), "pricePerKwh": z.price_per_kwh,
              "boughtWh": z.bought_wh, "soldWh": z.sold_wh, "netImportWh": z.imported_wh - z.exported_wh,
              "importedWh": z.imported_wh, "exportedWh": z.exported_wh} for z in c.zones]
    links = [{"fromZone": x.from_zone, "toZone": x.to_zone, "flowWh": x.flow_wh, "limitWh": x.limit_wh,
              "congested": x.congested, "rent": x.rent, "dso": _addr(x.dso)} for x in c.links]
    return {"region": index, "zoneIds": list(zone_ids), "cleared": True, "zones": zones, "links": links,
            "volumeWh": c.volume_wh, "rent": c.rent}


def _levels(entries: tuple, descending: bool) -> list[dict]:
    """Depth: resting quantity per price level, best price first."""
    by_price: dict[int, list[int]] = {}
    for price, _order_id, _owner, remaining, _green in entries:
        level = by_price.setdefault(price, [0, 0])
        level[0] += remaining
        level[1] += 1
    return [{"pricePerKwh": p, "quantityWh": q, "orders": n}
            for p, (q, n) in sorted(by_price.items(), reverse=descending)]


class EnergyRpc:
    """The method group; `read(fn, at)` runs a pallet read function against state at a block."""

    def __init__(self, read: Callable[[Callable[[], Any], bytes | None], Any],
                 resolve: Callable[[bytes | None], bytes]) -> None:
        """`resolve(at)` names the block a read at `at` sees (the best block's hash for None), so a
        page's cursor can pin it."""
        self.read = read
        self.resolve = resolve

    def methods(self) -> dict[str, Callable[[Any], Any]]:
        return {
            "energy_orderBook": self.order_book,
            "energy_orders": self.orders,
            "energy_trades": self.trades,
            "energy_meter": self.meter,
            "energy_meterIntervals": self.meter_intervals,
            "energy_zones": self.zones,
            "energy_zoneUsage": self.zone_usage,
            "energy_settlement": self.settlement,
            "energy_intervalTrades": self.interval_trades,
            "energy_clearing": self.clearing,
        }

    def list_result(self, paging: Paging, what: str, items: Items, unpaged_max: int = MAX_PAGE) -> list | dict:
        """A page `{items, next, at}` of `items`, or for an unpaged call the whole list, refused
        (-32602) when longer than `unpaged_max`: a list is never cut without the caller knowing."""
        if not paging.paged:
            def read_all() -> list[dict]:
                out = [item for _key, item in islice(items(None), unpaged_max + 1)]
                if len(out) > unpaged_max:
                    raise InvalidParams(f"more than {unpaged_max} {what} match: ask for pages with `limit` "
                                        "and continue with each page's `next` as `cursor`")
                return out
            return self.read(read_all, paging.at)
        at = self.resolve(paging.at)

        def read_page() -> dict:
            rows = list(islice(items(paging.after), paging.limit + 1))
            page = rows[:paging.limit]
            return {"items": [item for _key, item in page],
                    "next": make_cursor(at, page[-1][0]) if len(rows) > paging.limit else None,
                    "at": "0x" + at.hex()}
        return self.read(read_page, at)

    def order_book(self, params: Any) -> dict:
        """[zone, intervalStart, at?] -> depth per price level on both sides."""
        zone, t, at = _args(params, ["zone", "intervalStart", "at"], 2)
        zone, t = parse_int(zone, "zone", hi=2**32 - 1), parse_int(t, "intervalStart")

        def read() -> dict:
            bids = market.book_side(zone, t, market.BID)
            asks = market.book_side(zone, t, market.ASK)
            return {"zone": zone, "intervalStart": t, "bids": _levels(bids, descending=True),
                    "asks": _levels(asks, descending=False)}
        return self.read(read, _at(at))

    def orders(self, params: Any) -> list[dict] | dict:
        """[account, at?, limit?, cursor?] -> the account's open orders, oldest first (by order id)."""
        who, at, limit, cursor = _args(params, ["account", "at", "limit", "cursor"], 1)
        who = parse_account(who, "account")
        paging = parse_paging(limit, cursor, at, key_len=1)

        def items(after: tuple[int, ...] | None) -> Iterator[tuple[tuple[int, ...], dict]]:
            mine = sorted(((oid, o) for oid, o in market.orders.items() if o.owner == who), key=lambda p: p[0])
            return (((oid,), _order_json(o)) for oid, o in mine if after is None or oid > after[0])
        return self.list_result(paging, "orders", items)

    def trades(self, params: Any) -> list[dict] | dict:
        """[account, fromInterval?, toInterval?, at?, limit?, cursor?] -> the account's trades as buyer
        or seller, by trade id."""
        who, lo, hi, at, limit, cursor = _args(
            params, ["account", "fromInterval", "toInterval", "at", "limit", "cursor"], 1)
        who = parse_account(who, "account")
        lo = 0 if lo is None else parse_int(lo, "fromInterval")
        hi = 2**64 - 1 if hi is None else parse_int(hi, "toInterval")
        paging = parse_paging(limit, cursor, at, key_len=1)

        def items(after: tuple[int, ...] | None) -> Iterator[tuple[tuple[int, ...], dict]]:
            # trade ids are a sequence and trades are never removed: walk it from the cursor on
            for trade_id in range(0 if after is None else after[0] + 1, market.next_trade_id.get()):
                t = market.trades.get(trade_id)
                if t is not None and who in (t.buyer, t.seller) and lo <= t.interval_start <= hi:
                    yield (trade_id,), _trade_json(t)
        return self.list_result(paging, "trades", items)

    def meter(self, params: Any) -> dict | None:
        """[meter, at?] -> a meter's certificate, status and last accepted reading; null if unknown."""
        meter_id, at = _args(params, ["meter", "at"], 1)
        meter_id = parse_hex(meter_id, "meter", length=32)

        def read() -> dict | None:
            m = metering.get_meter(meter_id)
            if m is None:
                return None
            last = metering.energy_in_interval(meter_id, m.last_interval) if m.has_reading else None
            return {"meter": "0x" + meter_id.hex(), "owner": _addr(m.owner), "zone": m.zone,
                    "kind": METER_KIND.get(m.kind, str(m.kind)), "ratedPowerW": m.rated_power_w,
                    "status": METER_STATUS.get(m.status, str(m.status)), "implausibleReadings": m.implausible,
                    **_scheme_json(meter_id),
                    "lastReading": None if not m.has_reading else {
                        "seq": m.last_seq, "intervalStart": m.last_interval,
                        "importWh": last.import_wh if last else 0, "exportWh": last.export_wh if last else 0,
                        "importRegisterWh": m.last_import_wh, "exportRegisterWh": m.last_export_wh,
                        "plausible": last.plausible if last else True,
                        "readingHash": "0x" + last.reading_hash.hex() if last else None}}
        return self.read(read, _at(at))

    def meter_intervals(self, params: Any) -> list[dict] | None:
        """[meter, fromInterval, toInterval, at?] -> the meter's energy per interval in the range:
        import and export Wh of each interval a reading closed (with how many intervals its delta
        covers and whether it was plausible), intervals recorded as missed, and nothing known for
        the rest; null for an unknown meter."""
        meter_id, lo, hi, at = _args(params, ["meter", "fromInterval", "toInterval", "at"], 3)
        meter_id = parse_hex(meter_id, "meter", length=32)
        lo, hi = grid.interval_start(parse_int(lo, "fromInterval")), parse_int(hi, "toInterval")
        if hi < lo:
            raise InvalidParams("toInterval is before fromInterval")
        if (hi - lo) // grid.Config.interval_s > MAX_INTERVALS:
            raise InvalidParams(f"at most {MAX_INTERVALS} intervals per call")

        def read() -> list[dict] | None:
            if metering.get_meter(meter_id) is None:
                return None
            out = []
            for t in range(lo, hi + 1, grid.Config.interval_s):
                e = metering.energy_in_interval(meter_id, t)
                if e is not None:
                    out.append({"intervalStart": t, "status": "read", "importWh": e.import_wh,
                                "exportWh": e.export_wh, "intervals": e.intervals, "plausible": e.plausible})
                elif metering.is_missed(meter_id, t):
                    out.append({"intervalStart": t, "status": "missed"})
                else:
                    out.append({"intervalStart": t, "status": "none"})
            return out
        return self.read(read, _at(at))

    def zones(self, params: Any) -> list[dict] | dict:
        """[at?, limit?, cursor?] -> every zone with its DSO, capacities and state, by zone id."""
        at, limit, cursor = _args(params, ["at", "limit", "cursor"], 0)
        paging = parse_paging(limit, cursor, at, key_len=1)

        def items(after: tuple[int, ...] | None) -> Iterator[tuple[tuple[int, ...], dict]]:
            for zid, z in sorted(grid.zones.items(), key=lambda p: p[0]):
                if after is None or zid > after[0]:
                    yield (zid,), {"zone": zid, "name": z.name, "dso": _addr(z.dso),
                                   "importCapacityW": z.import_capacity_w, "exportCapacityW": z.export_capacity_w,
                                   "paused": z.paused, "mode": market.zone_mode(zid)}
        # the grid holds at most max_zones zones: unpaged, the whole list is always answered
        return self.list_result(paging, "zones", items, unpaged_max=max(MAX_PAGE, grid.Config.max_zones))

    def zone_usage(self, params: Any) -> dict | None:
        """[zone, intervalStart, at?] -> the interval's capacity (envelope applied) and traded flows."""
        zone, t, at = _args(params, ["zone", "intervalStart", "at"], 2)
        zone, t = parse_int(zone, "zone", hi=2**32 - 1), parse_int(t, "intervalStart")

        def read() -> dict | None:
            if grid.zone(zone) is None:
                return None
            import_w, export_w = grid.capacity_for(zone, t)
            f = market.flow(zone, t)
            return {"zone": zone, "intervalStart": t, "paused": grid.is_paused(zone),
                    "importCapacityWh": market.wh_in_interval(import_w),
                    "exportCapacityWh": market.wh_in_interval(export_w),
                    "importedWh": f.import_wh, "exportedWh": f.export_wh}
        return self.read(read, _at(at))

    def settlement(self, params: Any) -> dict | None:
        """[tradeId, at?] -> the trade's settlement status and outcome; null for an unknown trade."""
        trade_id, at = _args(params, ["tradeId", "at"], 1)
        trade_id = parse_int(trade_id, "tradeId")

        def read() -> dict | None:
            if market.trade(trade_id) is None:
                return None
            return {"tradeId": trade_id, **_settlement_json(trade_id)}
        return self.read(read, _at(at))

    def interval_trades(self, params: Any) -> list[dict] | dict:
        """[fromInterval, toInterval, at?, limit?, cursor?] -> every trade delivered in the range, with
        its settlement, by interval and then trade id (the regulator's report; `gridchain report
        trades` writes it as CSV)."""
        lo, hi, at, limit, cursor = _args(params, ["fromInterval", "toInterval", "at", "limit", "cursor"], 2)
        lo, hi = grid.interval_start(parse_int(lo, "fromInterval")), parse_int(hi, "toInterval")
        if hi < lo:
            raise InvalidParams("toInterval is before fromInterval")
        if (hi - lo) // grid.Config.interval_s > MAX_INTERVALS:
            raise InvalidParams(f"at most {MAX_INTERVALS} intervals per call")
        paging = parse_paging(limit, cursor, at, key_len=2)

        def items(after: tuple[int, ...] | None) -> Iterator[tuple[tuple[int, ...], dict]]:
            # sort key (interval start, position in the interval's append-only trade list)
            for t in range(lo, hi + 1, grid.Config.interval_s):
                if after is not None and t < after[0]:
                    continue
                first = after[1] + 1 if after is not None and t == after[0] else 0
                for pos in range(first, market.interval_trade_count.get(t)):
                    yield (t, pos), _trade_json(market.trade(market.interval_trades.get(t, pos)))
        return self.list_result(paging, "trades", items)

    def clearing(self, params: Any) -> dict:
        """[intervalStart, at?] -> every coupled region's clearing for the interval, by region index:
        per zone its price, bought and sold Wh and net import; per link direction its flow, limit,
        congestion and rent; all read at one block, named in `at` (`gridchain report clearing`
        writes it as CSV for the regulator)."""
        t, at = _args(params, ["intervalStart", "at"], 1)
        t = parse_int(t, "intervalStart")
        if t % grid.Config.interval_s:
            raise InvalidParams(f"intervalStart: {t} is not the start of an interval "
                                f"(a multiple of {grid.Config.interval_s} s)")
        at_hash = self.resolve(_at(at))

        def read() -> dict:
            regions = [_region_json(index, tuple(zone_ids), market.clearing(index, t))
                       for index, zone_ids in enumerate(market.coupled_regions.get())]
            return {"intervalStart": t, "at": "0x" + at_hash.hex(), "regions": regions}
        return self.read(read, at_hash)
