"""Continuous matching: an incoming order trades against the opposite sides of its interval's books,
and what is left of it rests (see "Rules" and "Money" in the package docstring).

Priority, route choice and fill sizes are `pallets.market_engine`'s (pure, no storage). This module
hands it the book sides, the route fees, the capacity `Room` and the counterparties' licence check,
and writes back what it decided: trades (`record_trade`, shared with the call auction), book sides,
the orders it touched, and the expiry queue."""
from __future__ import annotations

from typing import Callable

import dataclasses

from pallets import grid, identity
from pallets import market_engine as engine
from pallets.identity import Role
from pallets.market.capacity import Room
from pallets.market.escrow import escrow_for, release_escrow
from pallets.market.modes import coupled_zones, trades_at_gate_closure
from pallets.market.state import (ASK, BID, MATCHED, Config, Error, Order, OrderTrimmed, Trade, TradeMatched,
                                  book, call_auction_zones, interval_trade_count, interval_trades, next_trade_id,
                                  open_books, open_intervals, orders, trades)
from pallets.market_engine import cost
from runtime.pallet import deposit_event, ensure


def route_fee(interval_start: int) -> Callable[[int, int], int | None]:
    """fee_for(from, to): the grid fee of the interval's band; None without a link or if paused."""
    def fee_for(from_zone: int, to_zone: int) -> int | None:
        if grid.is_paused(from_zone) or grid.is_paused(to_zone):
            return None
        return grid.grid_fee_per_kwh(from_zone, to_zone, interval_start)
    return fee_for


def counterparty_licensed(side: int) -> Callable[[bytes], bool]:
    """eligible(owner) for resting orders opposite `side`: their owner's licence must still be
    active (a participant suspended after placing an order trades no more; the order waits for
    cancel or expiry). Cached per placement."""
    roles = (Role.PROSUMER,) if side == BID else (Role.PROSUMER, Role.CONSUMER)
    seen: dict[bytes, bool] = {}

    def eligible(owner: bytes) -> bool:
        ok = seen.get(owner)
        if ok is None:
            ok = seen[owner] = any(identity.is_licensed(owner, r) for r in roles)
        return ok
    return eligible


def opposite_sides(o: Order) -> dict:
    """The other side of every book in the order's interval (the engine picks the routes)."""
    other = ASK if o.side == BID else BID
    at_gate_closure = set(call_auction_zones.get()) | coupled_zones()
    zones = (set(open_books.get(o.interval_start)) | {o.zone}) - at_gate_closure
    return {z: list(book.get((z, o.interval_start, other))) for z in sorted(zones)}


def trade_and_rest(o: Order) -> None:
    """Match an incoming order, record its trades, and rest what is left of it."""
    if trades_at_gate_closure(o.zone):
        rest(o)                 # call auction or coupled: no continuous matching, cleared at gate closure
        return
    t = o.interval_start
    incoming = engine.Incoming(o.id, o.owner, o.zone, o.side == BID, o.price_per_kwh, o.quantity_wh, o.green)
    sides = opposite_sides(o)
    room = Room(t)
    result = engine.match(incoming, sides, route_fee(t), room, Config.max_fills_per_order,
                          Config.max_scan_per_order, counterparty_licensed(o.side), room.left)
    other = ASK if o.side == BID else BID
    for zone in result.touched_zones:
        put_side((zone, t), other, sides[zone])
    room.store()
    touched = {o.id: o}
    for fill in result.fills:
        record_trade(fill, t, touched)
    o = touched.pop(o.id)
    assert o.remaining_wh == result.remaining_wh
    for resting in touched.values():
        if resting.remaining_wh == 0:
            orders.remove(resting.id)
        else:
            orders.insert(resting.id, resting)
    if result.remaining_wh > 0 and result.cut_short is not None:
        trim(o, BOUND_NAMES[result.cut_short])
    elif result.remaining_wh > 0:
        rest(o)


#: the Config names of the engine's work bounds, as OrderTrimmed says them
BOUND_NAMES = {engine.MAX_FILLS: "max_fills_per_order", engine.MAX_SCAN: "max_scan_per_order"}


def trim(o: Order, bound: str) -> None:
    """The remainder of an order whose matching a work bound stopped while it still crossed an
    order it could trade with: it does not rest (it would leave the book crossed, since resting
    orders trade only with incoming ones); a bid's escrow for it returns now."""
    release_escrow(o.owner, o.escrow_locked)
    deposit_event(OrderTrimmed(o.id, o.owner, o.remaining_wh, o.escrow_locked, bound))


def record_trade(fill: engine.Fill, t: int, touched: dict, rent: int = 0) -> int:
    """One fill: the trade is recorded, its money stays in escrow, the buyer's surplus lock returns.
    `rent` is what the buyer pays beyond amount + fee (a coupled trade's congestion rent): it is
    left in escrow for the caller to pay out. Returns the trade id."""
    bid = touched.get(fill.bid_id) or orders.get(fill.bid_id)
    ask = touched.get(fill.ask_id) or orders.get(fill.ask_id)
    amount, fee_amount = cost(fill.wh, fill.price_per_kwh), cost(fill.wh, fill.fee_per_kwh)
    left = bid.remaining_wh - fill.wh
    lock_after = escrow_for(left, bid.price_per_kwh)
    surplus = bid.escrow_locked - lock_after - amount - fee_amount - rent
    assert surplus >= 0, "escrow would fall short of a trade"
    release_escrow(bid.owner, surplus)
    touched[bid.id] = dataclasses.replace(bid, remaining_wh=left, escrow_locked=lock_after)
    touched[ask.id] = dataclasses.replace(ask, remaining_wh=ask.remaining_wh - fill.wh)
    trade_id = next_trade_id.get()
    next_trade_id.put(trade_id + 1)
    trades.insert(trade_id, Trade(trade_id, t, bid.owner, ask.owner, bid.meter, ask.meter, fill.from_zone,
                                  fill.to_zone, fill.wh, fill.price_per_kwh, fill.fee_per_kwh, amount,
                                  fee_amount, MATCHED))
    position = interval_trade_count.get(t)
    interval_trades.insert(t, position, trade_id)
    interval_trade_count.insert(t, position + 1)
    deposit_event(TradeMatched(trade_id, t, bid.id, ask.id, bid.owner, ask.owner, fill.from_zone,
                               fill.to_zone, fill.wh, fill.price_per_kwh, fill.fee_per_kwh))
    return trade_id


def rest(o: Order) -> None:
    """Put what is left of an order into its book, and the book into the expiry queue."""
    key = (o.zone, o.interval_start)
    side = list(book.get((*key, o.side)))
    ensure(len(side) < Config.max_orders_per_side, Error.BookFull)
    engine.insert_resting(side, (o.price_per_kwh, o.id, o.owner, o.remaining_wh, o.green), o.side == BID)
    book.insert((*key, o.side), tuple(side))
    orders.insert(o.id, o)
    zones = open_books.get(o.interval_start)
    if o.zone not in zones:
        if not zones:
            queue_interval(o.interval_start)
        open_books.insert(o.interval_start, tuple(sorted((*zones, o.zone))))


def queue_interval(t: int) -> None:
    intervals = open_intervals.get()
    ensure(len(intervals) < Config.max_open_intervals, Error.TooManyOpenIntervals)
    open_intervals.put(tuple(sorted((*intervals, t))))


def put_side(key: tuple, side: int, entries: list) -> None:
    if entries:
        book.insert((*key, side), tuple(entries))
    else:
        book.remove((*key, side))


def close_order(o: Order) -> int:
    """Remove an open order and return a bid's remaining escrow; returns what was released."""
    orders.remove(o.id)
    release_escrow(o.owner, o.escrow_locked)
    return o.escrow_locked
