"""Standing orders: terms recorded once and posted as an order for every delivery interval (see
"Standing orders" in the package docstring). From runtime spec_version 2 a standing order may have
a time-of-day window (`set_standing_order_window`): it posts only for intervals that start inside it.

The calls keep the standing orders in a linked list in id order; the posting sweep walks it from a
cursor at the end of each block and places each due order through `do_place_bid` / `do_place_ask`
inside a storage transaction. `reserve_standing_posts` (on_initialize) and `post_standing_orders`
(on_finalize) are hooks; the package's __init__ registers them (hook order is registration order)."""
from __future__ import annotations

import dataclasses

from pallets import grid, timestamp
from pallets.market.placement import (do_place_ask, do_place_bid, ensure_licensed, ensure_order_meter,
                                      ensure_terms, is_generation_meter)
from pallets.market.state import (ASK, ASK_ROLES, BID, BID_ROLES, DAY_S, W_CANCEL_STANDING, W_MIGRATE_WINDOW,
                                  W_PLACE, W_SET_STANDING, W_SET_STANDING_WINDOW, W_STANDING_BASE, Config,
                                  Error, StandingId, StandingOrder,
                                  StandingOrderCancelled, StandingOrderPosted, StandingOrderSet,
                                  StandingOrderSkipped, next_standing_id, pallet, standing_count,
                                  standing_cursor, standing_head, standing_links, standing_of, standing_orders,
                                  standing_round, standing_tail, standing_windows)
from primitives.codec import BOOL, H256, U8, U32, U64
from runtime import storage
from runtime.pallet import (SIGNED, DispatchError, ErrorDef, Origin, deposit_event, ensure, ensure_signed,
                            fail)


# --- calls -----------------------------------------------------------------------------------
@pallet.call(3, weight=W_SET_STANDING, origin=SIGNED)
def set_standing_order(origin: Origin, side: U8, zone: U32, price_per_kwh: U64, quantity_wh: U64,
                       meter: H256, green: BOOL) -> None:
    """A standing order: an order of `side` (0 bid, 1 ask) with these terms, posted automatically
    for each delivery interval standing_lead_intervals ahead (see "Standing orders"). Checked as a
    placement of that side would be (licence, terms, zone, meter); nothing is escrowed until a post.
    `green` is a bid's green-only flag; an ask's comes from its meter."""
    record_standing(ensure_signed(origin), side, zone, price_per_kwh, quantity_wh, meter, green)


@pallet.call(5, weight=W_SET_STANDING_WINDOW, origin=SIGNED, since=2)
def set_standing_order_window(origin: Origin, side: U8, zone: U32, price_per_kwh: U64, quantity_wh: U64,
                              meter: H256, green: BOOL, window_start_s: U32, window_end_s: U32) -> None:
    """A standing order (as `set_standing_order`) that posts only for delivery intervals whose start
    lies in a time-of-day window: seconds of the day in UTC, [window_start_s, window_end_s), wrapping
    past midnight when start > end (79200 to 21600 is 22:00-06:00); 0 to 86400 is all day.
    Introduced by runtime spec_version 2."""
    who = ensure_signed(origin)
    ensure(window_start_s < DAY_S and window_end_s <= DAY_S, Error.WindowOutOfDay)
    ensure(window_start_s != window_end_s, Error.EmptyWindow)
    sid = record_standing(who, side, zone, price_per_kwh, quantity_wh, meter, green)
    standing_windows.insert(sid, (window_start_s, window_end_s))


def record_standing(who: bytes, side: int, zone: int, price_per_kwh: int, quantity_wh: int, meter: bytes,
                    green: bool) -> int:
    """Check and record a standing order's terms (the rules of `set_standing_order`); its id."""
    ensure(side in (BID, ASK), Error.InvalidSide)
    ensure_terms(price_per_kwh, quantity_wh)
    ensure(grid.zone(zone) is not None, Error.UnknownZone)
    ensure_licensed(who, BID_ROLES if side == BID else ASK_ROLES)
    m = ensure_order_meter(who, meter, zone, side, quantity_wh)
    count = standing_count.get(who)
    ensure(count < Config.max_standing_per_owner, Error.TooManyStandingOrders)
    sid = next_standing_id.get()
    next_standing_id.put(sid + 1)
    first = standing_target(timestamp.now_s())
    flag = bool(green) if side == BID else is_generation_meter(m)
    standing_orders.insert(sid, StandingOrder(who, side, zone, meter, price_per_kwh, quantity_wh, flag, first))
    standing_of.insert(who, sid, True)
    standing_count.insert(who, count + 1)
    tail = standing_tail.get()
    standing_links.insert(sid, (tail, None))
    if tail is None:
        standing_head.put(sid)
    else:
        prev_link = standing_links.get(tail)
        standing_links.insert(tail, (prev_link[0], sid))
    standing_tail.put(sid)
    deposit_event(StandingOrderSet(sid, who, side, zone, price_per_kwh, quantity_wh, first))
    return sid


@pallet.call(4, weight=W_CANCEL_STANDING, origin=SIGNED)
def cancel_standing_order(origin: Origin, standing_id: StandingId) -> None:
    """Stop a standing order: it posts no more. Orders it already posted stay (cancel them with
    `cancel`)."""
    who = ensure_signed(origin)
    so = standing_orders.get(standing_id) or fail(Error.UnknownStandingOrder)
    ensure(so.owner == who, Error.NotStandingOrderOwner)
    prev, nxt = standing_links.get(standing_id)
    if prev is None:
        standing_head.put(nxt) if nxt is not None else standing_head.kill()
    else:
        standing_links.insert(prev, (standing_links.get(prev)[0], nxt))
    if nxt is None:
        standing_tail.put(prev) if prev is not None else standing_tail.kill()
    else:
        standing_links.insert(nxt, (prev, standing_links.get(nxt)[1]))
    if standing_cursor.get() == standing_id:
        standing_cursor.put(nxt) if nxt is not None else standing_cursor.kill()
    standing_links.remove(standing_id)
    standing_orders.remove(standing_id)
    standing_windows.remove(standing_id)
    standing_of.remove(who, standing_id)
    count = standing_count.get(who) - 1
    standing_count.insert(who, count) if count else standing_count.remove(who)
    deposit_event(StandingOrderCancelled(standing_id, who))


def standing_target(now_s: int) -> int:
    """The interval standing orders post for at time now_s."""
    return grid.interval_start(now_s) + Config.standing_lead_intervals * grid.Config.interval_s


def in_window(window: tuple[int, int] | None, interval_start: int) -> bool:
    """Does an interval starting at `interval_start` (unix seconds) lie in a standing order's window
    (None: all day)? The start's second of the day (UTC) is in [start, end), or, when the window
    wraps past midnight (start > end), at or after start or before end."""
    if window is None:
        return True
    start, end = window
    t = interval_start % DAY_S
    return start <= t < end if start < end else (t >= start or t < end)


def add_all_day_windows() -> int:
    """Runtime spec_version 2's migration: every standing order that exists gets an explicit all-day
    window (0, 86400), so every standing order of the new version has one. It walks the list of
    standing orders once, in id order, writing one entry each; returns the weight used."""
    visited = 0
    sid = standing_head.get()
    while sid is not None:
        if not standing_windows.contains(sid):
            standing_windows.insert(sid, (0, DAY_S))
        visited += 1
        sid = standing_links.get(sid)[1]
    return W_STANDING_BASE + W_MIGRATE_WINDOW * visited


# --- hooks (registered in __init__, in order) ------------------------------------------------
def reserve_standing_posts(n: int) -> int:
    """The weight `post_standing_orders` may use at the end of this block: hooks declare their
    weight up front, before the block's extrinsics take the rest."""
    now_s = timestamp.now_s()
    if now_s == 0 or (standing_cursor.get() is None and standing_head.get() is None):
        return W_STANDING_BASE
    return W_STANDING_BASE + W_PLACE * Config.max_standing_posts_per_block


def post_standing_orders(n: int) -> None:
    """Post due standing orders for the target interval (standing_target of this block's own time,
    set by the timestamp inherent, so the target's gate is open at the time the orders are placed
    and matched), in standing-id order from a cursor, visiting at most max_standing_posts_per_block
    per block. At the end of the block: on_initialize only knows the previous block's time, and a
    block may come long after it."""
    now_s = timestamp.now_s()
    target = standing_target(now_s)
    cursor = standing_cursor.get()
    if cursor is None:              # no sweep under way: start one once the target moves on
        if target <= standing_round.get() or standing_head.get() is None:
            return
        standing_round.put(target)
        cursor = standing_head.get()
    visited = 0
    while cursor is not None and visited < Config.max_standing_posts_per_block:
        so = standing_orders.get(cursor)
        nxt = standing_links.get(cursor)[1]
        # outside its window an order is passed over: no post, no event, next_interval unchanged
        if so.next_interval <= target and in_window(standing_windows.get(cursor), target):
            post_standing(cursor, so, target)
        visited += 1
        cursor = nxt
    standing_cursor.put(cursor) if cursor is not None else standing_cursor.kill()


def post_standing(sid: int, so: StandingOrder, target: int) -> None:
    """Place one standing order's order for `target` through the placement path; on any dispatch
    error its writes and events roll back and StandingOrderSkipped says why. Either way the next
    post is for the interval after `target`."""
    try:
        with storage.transactional():
            if so.side == BID:
                oid = do_place_bid(so.owner, so.zone, target, so.price_per_kwh, so.quantity_wh, so.meter, so.green)
            else:
                oid = do_place_ask(so.owner, so.zone, target, so.price_per_kwh, so.quantity_wh, so.meter)
        deposit_event(StandingOrderPosted(sid, oid, target))
    except DispatchError as e:
        reason = e.error.name if isinstance(e.error, ErrorDef) else str(e.error)
        deposit_event(StandingOrderSkipped(sid, target, reason))
    standing_orders.insert(sid, dataclasses.replace(so, next_interval=target + grid.Config.interval_s))
