"""`energy_*` JSON-RPC queries: what wallets, meters and DSOs read about the energy market.

All are safe, read-only views of chain state at the best block (or at `at`), computed with the
pallets' own read functions so they can never disagree with the runtime. Accounts may be given as
SS58 addresses or 0x hex; amounts are integers in the chain's units (Wh, W, stablecoin smallest
units, prices per kWh).
"""
from __future__ import annotations

from typing import Any, Callable

from pallets import grid, market, metering, settlement
from primitives import ss58
from rpc.jsonshapes import InvalidParams, parse_account, parse_hash, parse_hex, parse_int

#: most orders or trades one call returns (a scan of state, so it is bounded)
MAX_ITEMS = 1000

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


def _settlement_json(trade_id: int) -> dict:
    """A trade's settlement status and, once final, its outcome (must run under externalities)."""
    o = settlement.outcome(trade_id)
    return {"status": STATUS_NAMES.get(settlement.trade_status(trade_id), "unknown"),
            "outcome": None if o is None else {
                "deliveredWh": o.delivered_wh, "paidSeller": o.paid_seller, "feeToDso": o.fee_to_dso,
                "refundBuyer": o.refund_buyer, "penalty": o.penalty, "atFault": FAULT_NAMES.get(o.at_fault),
                "certificatesRetiredWh": o.certificates_retired_wh}}


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

    def __init__(self, read: Callable[[Callable[[], Any], bytes | None], Any]) -> None:
        self.read = read

    def methods(self) -> dict[str, Callable[[Any], Any]]:
        return {
            "energy_orderBook": self.order_book,
            "energy_orders": self.orders,
            "energy_trades": self.trades,
            "energy_meter": self.meter,
            "energy_zones": self.zones,
            "energy_zoneUsage": self.zone_usage,
            "energy_settlement": self.settlement,
            "energy_intervalTrades": self.interval_trades,
        }

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

    def orders(self, params: Any) -> list[dict]:
        """[account, at?] -> the account's open orders, oldest first."""
        who, at = _args(params, ["account", "at"], 1)
        who = parse_account(who, "account")

        def read() -> list[dict]:
            out = [_order_json(o) for _id, o in market.orders.items() if o.owner == who]
            return sorted(out, key=lambda o: o["orderId"])[:MAX_ITEMS]
        return self.read(read, _at(at))

    def trades(self, params: Any) -> list[dict]:
        """[account, fromInterval?, toInterval?, at?] -> the account's trades as buyer or seller."""
        who, lo, hi, at = _args(params, ["account", "fromInterval", "toInterval", "at"], 1)
        who = parse_account(who, "account")
        lo = 0 if lo is None else parse_int(lo, "fromInterval")
        hi = 2**64 - 1 if hi is None else parse_int(hi, "toInterval")

        def read() -> list[dict]:
            out = [_trade_json(t) for _id, t in market.trades.items()
                   if who in (t.buyer, t.seller) and lo <= t.interval_start <= hi]
            return sorted(out, key=lambda t: t["tradeId"])[:MAX_ITEMS]
        return self.read(read, _at(at))

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
                    "lastReading": None if not m.has_reading else {
                        "seq": m.last_seq, "intervalStart": m.last_interval,
                        "importWh": last.import_wh if last else 0, "exportWh": last.export_wh if last else 0,
                        "plausible": last.plausible if last else True,
                        "readingHash": "0x" + last.reading_hash.hex() if last else None}}
        return self.read(read, _at(at))

    def zones(self, params: Any) -> list[dict]:
        """[at?] -> every zone with its DSO, capacities and state."""
        (at,) = _args(params, ["at"], 0)

        def read() -> list[dict]:
            return [{"zone": zid, "name": z.name, "dso": _addr(z.dso), "importCapacityW": z.import_capacity_w,
                     "exportCapacityW": z.export_capacity_w, "paused": z.paused}
                    for zid, z in sorted(grid.zones.items())]
        return self.read(read, _at(at))

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

    def interval_trades(self, params: Any) -> list[dict]:
        """[fromInterval, toInterval, at?] -> every trade delivered in the range, with its settlement
        (the regulator's report; `gridchain report trades` writes it as CSV)."""
        lo, hi, at = _args(params, ["fromInterval", "toInterval", "at"], 2)
        lo, hi = grid.interval_start(parse_int(lo, "fromInterval")), parse_int(hi, "toInterval")
        if hi < lo:
            raise InvalidParams("toInterval is before fromInterval")
        if (hi - lo) // grid.Config.interval_s > MAX_INTERVALS:
            raise InvalidParams(f"at most {MAX_INTERVALS} intervals per call")

        def read() -> list[dict]:
            out: list[dict] = []
            for t in range(lo, hi + 1, grid.Config.interval_s):
                for trade in market.trades_in_interval(t):
                    out.append(_trade_json(trade))
                    if len(out) >= MAX_ITEMS:
                        return out
            return out
        return self.read(read, _at(at))
