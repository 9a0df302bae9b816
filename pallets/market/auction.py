"""The uniform-price call auction of one (zone, interval) book, cleared once at gate closure (see
"Call auction" in the package docstring).

The price rule and the allocation are `pallets.market_engine`'s (pure). This module reads the book
and applies what continuous matching applies (the counterparties' licence check, the capacity
`Room`, `record_trade`), then writes back the book sides and orders. Expiry calls it just before the
book's remaining orders expire."""
from __future__ import annotations

from pallets import grid
from pallets import market_engine as engine
from pallets.market.capacity import Room
from pallets.market.matching import counterparty_licensed, put_side, record_trade
from pallets.market.state import ASK, BID, auction_cleared, book, orders


def clear_call_auction(zone: int, t: int, budget: int) -> int:
    """Clear the call auction of one (zone, interval) book once, at gate closure (see "Call
    auction"); costs one unit of the expiry budget per order in the book (at most
    2 x max_orders_per_side), and may take the budget below 0. Returns the budget left."""
    key = (zone, t)
    auction_cleared.insert(key, True)
    bids, asks = list(book.get((*key, BID))), list(book.get((*key, ASK)))
    budget -= len(bids) + len(asks)
    fee = grid.grid_fee_per_kwh(zone, zone, t)
    if not bids or not asks or fee is None or grid.is_paused(zone):
        return budget
    bid_ok, ask_ok = counterparty_licensed(ASK), counterparty_licensed(BID)
    live_bids = [e for e in bids if bid_ok(e[engine.OWNER])]
    live_asks = [e for e in asks if ask_ok(e[engine.OWNER])]
    room = Room(t)
    imp_cap, exp_cap = room._zone_cap(zone)
    imp_flow, exp_flow = room._flow(zone)
    cleared = engine.clearing_price(live_asks, live_bids, fee, min(imp_cap - imp_flow, exp_cap - exp_flow))
    if cleared is None:
        return budget
    price, volume = cleared
    fills = engine.allocate(live_asks, live_bids, zone, price, fee, volume, room)
    if not fills:
        return budget
    put_side(key, BID, engine.after_fills(bids, fills, True))
    put_side(key, ASK, engine.after_fills(asks, fills, False))
    room.store()
    touched: dict = {}
    for fill in fills:
        record_trade(fill, t, touched)
    for o in touched.values():
        if o.remaining_wh == 0:
            orders.remove(o.id)
        else:
            orders.insert(o.id, o)
    return budget
