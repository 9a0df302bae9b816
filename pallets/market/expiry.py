"""Gate closure: after an interval's gate has closed its books change only here. Call-auction books
and coupled regions clear, then the unmatched orders expire and a bid's escrow returns, oldest interval first, within a
per-block budget (see "Decisions" and "Call auction" in the package docstring).

`expire_closed_books` is an on_initialize hook; the package's __init__ registers it (hook order is
registration order)."""
from __future__ import annotations

from pallets import timestamp
from pallets.market.auction import clear_call_auction
from pallets.market.coupled import clear_coupled_region
from pallets.market.modes import region_of
from pallets.market.matching import close_order, put_side
from pallets.market.placement import gate_open
from pallets.market.state import (ASK, BID, W_EXPIRE_BASE, W_EXPIRY, Config, OrderExpired, auction_cleared,
                                  book, call_auction_zones, open_books, open_intervals, orders)
from pallets.market_engine import ORDER_ID
from runtime.pallet import deposit_event


# --- hook (registered in __init__, in order) -------------------------------------------------
def expire_closed_books(n: int) -> int:
    """Release the unmatched orders of books whose gate has closed, oldest interval first, at most
    max_expiries_per_block orders per block. `now` here is the previous block's time (hooks run
    before the timestamp inherent); placements need now < gate, so a closed book never changes."""
    now_s = timestamp.now_s()
    budget = Config.max_expiries_per_block
    intervals = list(open_intervals.get())
    start = len(intervals)
    while intervals and budget > 0 and not gate_open(intervals[0], now_s):
        budget = expire_interval(intervals[0], budget)
        if open_books.contains(intervals[0]):
            break
        intervals.pop(0)
    if len(intervals) != start:
        open_intervals.put(tuple(intervals))
    return W_EXPIRE_BASE + W_EXPIRY * (Config.max_expiries_per_block - budget)


def expire_interval(t: int, budget: int) -> int:
    """Expire up to `budget` orders of the interval's books; returns the budget left."""
    zones = list(open_books.get(t))
    auction = call_auction_zones.get()
    while zones and budget > 0:
        if not auction_cleared.get((zones[0], t)):
            region = region_of(zones[0])
            if zones[0] in auction:
                budget = clear_call_auction(zones[0], t, budget)
            elif region is not None:
                budget = clear_coupled_region(region, t, budget)
            if budget <= 0:
                break
        budget = expire_book((zones[0], t), budget)
        if book.contains((zones[0], t, BID)) or book.contains((zones[0], t, ASK)):
            break
        if auction_cleared.contains((zones[0], t)):
            auction_cleared.remove((zones[0], t))
        zones.pop(0)
    if zones:
        open_books.insert(t, tuple(zones))
    else:
        open_books.remove(t)
    return budget


def expire_book(key: tuple, budget: int) -> int:
    for side_id in (BID, ASK):
        side = list(book.get((*key, side_id)))
        if not side:
            continue
        while side and budget > 0:
            e = side.pop()
            o = orders.get(e[ORDER_ID])
            released = close_order(o)
            deposit_event(OrderExpired(o.id, o.owner, released))
            budget -= 1
        put_side(key, side_id, side)
    return budget
