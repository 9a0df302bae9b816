"""The rules of an order, and the calls that place and cancel one (see "Rules" in the package
docstring).

Each check is a function named after its rule. `do_place_bid` / `do_place_ask` apply them all, lock
a bid's escrow and hand the order to matching; the calls and the standing orders' posts share them,
so a post is checked exactly as a placed order is."""
from __future__ import annotations

from pallets import grid, identity, metering, timestamp
from pallets import market_engine as engine
from pallets.market.capacity import wh_in_interval
from pallets.market.escrow import escrow_for, lock_escrow
from pallets.market.matching import close_order, put_side, trade_and_rest
from pallets.market.modes import ensure_one_side_in_region
from pallets.market.state import (ASK, ASK_ROLES, BID, BID_ROLES, W_CANCEL, W_PLACE, Config, Error, Order,
                                  OrderCancelled, OrderId, OrderPlaced, book, next_order_id, orders, pallet)
from primitives.codec import BOOL, H256, U32, U64
from runtime.pallet import SIGNED, Origin, deposit_event, ensure, ensure_signed, fail


# --- rules of an order -----------------------------------------------------------------------
def ensure_terms(price_per_kwh: int, quantity_wh: int) -> None:
    ensure(Config.min_price_per_kwh <= price_per_kwh <= Config.max_price_per_kwh, Error.PriceOutOfBounds)
    ensure(Config.min_quantity_wh <= quantity_wh <= Config.max_quantity_wh, Error.QuantityOutOfBounds)


def gate_open(interval_start: int, now_s: int) -> bool:
    """Orders for an interval are accepted while now < start - gate_closure_s."""
    return now_s < interval_start - Config.gate_closure_s


def ensure_gate_open(interval_start: int) -> None:
    ensure(interval_start % grid.Config.interval_s == 0, Error.UnalignedInterval)
    now_s = timestamp.now_s()
    ensure(gate_open(interval_start, now_s), Error.GateClosed)
    ensure(interval_start <= grid.interval_start(now_s) + Config.max_intervals_ahead * grid.Config.interval_s,
           Error.TooFarAhead)


def ensure_zone_trading(zone: int) -> None:
    ensure(grid.zone(zone) is not None, Error.UnknownZone)
    ensure(not grid.is_paused(zone), Error.ZonePaused)


def ensure_licensed(who: bytes, roles: tuple) -> None:
    """The participant holds one of `roles`, and the licence is active."""
    p = identity.participant(who)
    ensure(p is not None and any(p.roles & int(r) for r in roles), Error.NotLicensed)
    ensure(p.status == identity.Status.ACTIVE, Error.LicenceNotActive)


def ensure_order_meter(who: bytes, meter_id: bytes, zone: int, side: int, quantity_wh: int) -> metering.Meter:
    m = metering.get_meter(meter_id) or fail(Error.UnknownMeter)
    ensure(m.owner == who, Error.NotMeterOwner)
    ensure(m.zone == zone, Error.MeterInOtherZone)
    ensure(m.status == metering.STATUS_ACTIVE, Error.MeterNotActive)
    if side == BID:
        ensure(m.kind in (metering.KIND_IMPORT, metering.KIND_BIDIRECTIONAL), Error.MeterCannotImport)
    else:
        ensure(m.kind in (metering.KIND_EXPORT, metering.KIND_BIDIRECTIONAL), Error.MeterCannotExport)
    ensure(quantity_wh <= wh_in_interval(m.rated_power_w), Error.ExceedsMeterRating)
    return m


def is_generation_meter(m: metering.Meter) -> bool:
    """Every export-capable meter is a prosumer's generation meter in this version."""
    return m.kind in (metering.KIND_EXPORT, metering.KIND_BIDIRECTIONAL)


def new_order_id() -> int:
    oid = next_order_id.get()
    next_order_id.put(oid + 1)
    return oid


def do_place_bid(who: bytes, zone: int, interval_start: int, price_per_kwh: int, quantity_wh: int,
                 meter: bytes, green_only: bool) -> int:
    """place_bid for `who` (the call and standing orders share it); returns the order id."""
    ensure_terms(price_per_kwh, quantity_wh)
    ensure_gate_open(interval_start)
    ensure_zone_trading(zone)
    ensure_licensed(who, BID_ROLES)
    ensure_order_meter(who, meter, zone, BID, quantity_wh)
    ensure_one_side_in_region(who, zone, interval_start, BID)
    locked = escrow_for(quantity_wh, price_per_kwh)
    lock_escrow(who, locked)
    o = Order(new_order_id(), who, BID, zone, interval_start, price_per_kwh, quantity_wh, quantity_wh,
              meter, green_only, locked)
    deposit_event(OrderPlaced(o.id, who, BID, zone, interval_start, price_per_kwh, quantity_wh, locked))
    trade_and_rest(o)
    return o.id


def do_place_ask(who: bytes, zone: int, interval_start: int, price_per_kwh: int, quantity_wh: int,
                 meter: bytes) -> int:
    """place_ask for `who` (the call and standing orders share it); returns the order id."""
    ensure_terms(price_per_kwh, quantity_wh)
    ensure_gate_open(interval_start)
    ensure_zone_trading(zone)
    ensure_licensed(who, ASK_ROLES)
    m = ensure_order_meter(who, meter, zone, ASK, quantity_wh)
    ensure_one_side_in_region(who, zone, interval_start, ASK)
    o = Order(new_order_id(), who, ASK, zone, interval_start, price_per_kwh, quantity_wh, quantity_wh,
              meter, is_generation_meter(m), 0)
    deposit_event(OrderPlaced(o.id, who, ASK, zone, interval_start, price_per_kwh, quantity_wh, 0))
    trade_and_rest(o)
    return o.id


# --- calls -----------------------------------------------------------------------------------
@pallet.call(0, weight=W_PLACE, origin=SIGNED)
def place_bid(origin: Origin, zone: U32, interval_start: U64, price_per_kwh: U64, quantity_wh: U64,
              meter: H256, green_only: BOOL) -> None:
    """Buy `quantity_wh` delivered to `meter` in the interval, paying at most `price_per_kwh` all-in
    (energy + grid fee). Locks quantity x limit in escrow; trades at once where it crosses."""
    do_place_bid(ensure_signed(origin), zone, interval_start, price_per_kwh, quantity_wh, meter, green_only)


@pallet.call(1, weight=W_PLACE, origin=SIGNED)
def place_ask(origin: Origin, zone: U32, interval_start: U64, price_per_kwh: U64, quantity_wh: U64,
              meter: H256) -> None:
    """Sell `quantity_wh` exported by `meter` in the interval for at least `price_per_kwh` (energy
    price, grid fee not included); trades at once where it crosses."""
    do_place_ask(ensure_signed(origin), zone, interval_start, price_per_kwh, quantity_wh, meter)


@pallet.call(2, weight=W_CANCEL, origin=SIGNED)
def cancel(origin: Origin, order_id: OrderId) -> None:
    """Withdraw an open order before its gate closes; a bid's remaining escrow returns."""
    who = ensure_signed(origin)
    o = orders.get(order_id) or fail(Error.UnknownOrder)
    ensure(o.owner == who, Error.NotOrderOwner)
    ensure(gate_open(o.interval_start, timestamp.now_s()), Error.GateClosed)
    key = (o.zone, o.interval_start)
    side = list(book.get((*key, o.side)))
    engine.remove_resting(side, o.id, o.price_per_kwh, o.side == BID)
    put_side(key, o.side, side)
    released = close_order(o)
    deposit_event(OrderCancelled(o.id, who, released))
