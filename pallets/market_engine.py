"""The continuous double auction, as a pure function: an incoming order against resting books.

No storage, no clock, no floats: the market pallet reads the books, calls `match`, and writes back
what it returns. Everything here is deterministic (ties are broken by order id, which is the
placement sequence, and zones are visited in ascending order).

Book sides. A side is a Python list of resting entries, each a tuple
    (price_per_kwh, order_id, owner, remaining_wh, green)
kept in priority order: asks by (price ascending, order id), bids by (price descending, order id).
The same tuples are what the pallet stores, so no conversion happens between storage and engine.
`green` is, for an ask, "the seller's meter is a generation meter"; for a bid, "green only".

Prices. A bid's price is its all-in limit per kWh: energy plus the grid fee of whatever route it
trades over. An ask's price is the energy price the seller wants. For a route from the seller's
zone to the buyer's zone with grid fee `fee` per kWh, the *effective* price of an ask for a buyer is
`ask.price + fee`, and the *net* price of a bid for a seller is `bid.price - fee`. A bid and an ask
cross when `ask.price + fee <= bid.price` (the bid covers the grid fee).

The rules of `match`, in the order they apply:
  1. Price-time priority on the effective price: an incoming bid takes asks by lowest
     `ask.price + fee(route)`, then lowest order id; an incoming ask takes bids by highest
     `bid.price - fee(route)`, then lowest order id. Zones without a route (`fee_for` -> None) are
     not considered.
  2. A pair trades only if it crosses.
  3. The trade happens at the resting order's price: against a resting ask the energy price is
     the ask's price; against a resting bid it is the bid's limit net of the route's fee (so the
     buyer pays exactly its limit, all-in). Either way the buyer pays energy + fee <= its limit.
  4. No self-trades: a resting order of the same owner is skipped (it stays in the book), and so
     is one whose owner `eligible(owner)` says may not trade now (a licence suspended since).
  5. A green-only bid trades only with green asks.
  6. Capacity: the quantity of a fill is what `room_for(from_zone, to_zone, wh)` grants, which is
     at most `wh`; the callable *reserves* what it grants, so that several fills in one call share
     a zone's or link's room. A route granted 0 is closed for the rest of the call.
  7. Partial fills: a fill is min(incoming remaining, resting remaining, granted room); a resting
     order filled completely leaves the book, a partly filled one keeps its place (time priority).
  8. Bounded work: at most `max_fills` fills, and at most `max_scan` resting orders examined
     (skipped self-trades and green mismatches count), per incoming order. What is left of the
     incoming order is returned as its remainder.
  9. Never crossed: if a bound stopped the match while the remainder still crosses a resting order
     it could trade with (rules 2, 4, 5 and room left on the route, `room_left`), the result says
     which bound (`cut_short`) and the remainder must not rest: resting it would leave a bid and
     an ask that could trade with each other in the books, and resting orders only ever trade with
     an incoming one. Finding out walks only the crossing part of the remaining routes' sides
     (already in hand), with `eligible` per owner met and one `room_left` per route at most.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from collections.abc import Callable

from pallets import auction_pairing

PRICE, ORDER_ID, OWNER, REMAINING, GREEN = range(5)

#: the work bounds of `match`, as `MatchResult.cut_short` names them
MAX_FILLS, MAX_SCAN = "max_fills", "max_scan"

#: a resting order: (price_per_kwh, order_id, owner, remaining_wh, green)
Entry = tuple


def ask_priority(e: Entry) -> tuple[int, int]:
    """Asks: cheapest first, then earliest."""
    return (e[PRICE], e[ORDER_ID])


def bid_priority(e: Entry) -> tuple[int, int]:
    """Bids: highest limit first, then earliest."""
    return (-e[PRICE], e[ORDER_ID])


def insert_resting(side: list, entry: Entry, is_bid: bool) -> None:
    """Put an order into a book side at its priority position."""
    bisect.insort(side, entry, key=bid_priority if is_bid else ask_priority)


def remove_resting(side: list, order_id: int, price: int, is_bid: bool) -> Entry | None:
    """Take an order out of a book side (found by its priority key); None if it is not there."""
    key = bid_priority if is_bid else ask_priority
    target = (-price, order_id) if is_bid else (price, order_id)
    i = bisect.bisect_left(side, target, key=key)
    if i < len(side) and side[i][ORDER_ID] == order_id:
        return side.pop(i)
    return None


def cost(wh: int, price_per_kwh: int) -> int:
    """Money for `wh` at `price_per_kwh`, rounded down: the payer is never charged more than agreed."""
    return wh * price_per_kwh // 1000


@dataclass(frozen=True, slots=True)
class Incoming:
    """An order arriving at the market. `green` as in a book entry."""

    order_id: int
    owner: bytes
    zone: int
    is_bid: bool
    price: int
    quantity_wh: int
    green: bool = True


@dataclass(frozen=True, slots=True)
class Fill:
    """One trade: `wh` from the seller's zone to the buyer's at `price_per_kwh` (energy) plus
    `fee_per_kwh` (grid fee); `resting_id` is the order whose price set the trade price."""

    bid_id: int
    ask_id: int
    buyer: bytes
    seller: bytes
    from_zone: int
    to_zone: int
    wh: int
    price_per_kwh: int
    fee_per_kwh: int
    resting_id: int


@dataclass(slots=True)
class MatchResult:
    fills: list = field(default_factory=list)
    remaining_wh: int = 0
    #: zones whose book side `match` changed (the caller writes these back)
    touched_zones: list = field(default_factory=list)
    #: MAX_FILLS or MAX_SCAN if that bound stopped the match while the remainder still crosses a
    #: resting order it could trade with (rule 9: the remainder must not rest); None otherwise
    cut_short: str | None = None


@dataclass(slots=True, eq=False)
class _Route:
    """One zone of resting orders, seen from the incoming order: its fee and a cursor."""

    zone: int
    fee: int
    side: list
    pos: int = 0
    changed: bool = False


def _crosses(incoming: Incoming, resting: Entry, fee: int) -> bool:
    if incoming.is_bid:
        return resting[PRICE] + fee <= incoming.price
    return incoming.price + fee <= resting[PRICE]


def _rank(incoming: Incoming, r: _Route) -> tuple[int, int]:
    """Priority of a route's next resting order for the incoming order (lower is better)."""
    e = r.side[r.pos]
    if incoming.is_bid:
        return (e[PRICE] + r.fee, e[ORDER_ID])
    return (-(e[PRICE] - r.fee), e[ORDER_ID])


def _compatible(incoming: Incoming, resting: Entry, eligible: Callable | None) -> bool:
    """No self-trades, no ineligible counterparty; a green-only bid only meets green asks."""
    if resting[OWNER] == incoming.owner:
        return False
    if eligible is not None and not eligible(resting[OWNER]):
        return False
    if incoming.is_bid:
        return resting[GREEN] or not incoming.green
    return incoming.green or not resting[GREEN]


def _trade_price(incoming: Incoming, resting: Entry, fee: int) -> int:
    """The resting order's price, as an energy price: an ask's own, a bid's limit net of the fee."""
    return resting[PRICE] if incoming.is_bid else resting[PRICE] - fee


def _routes(incoming: Incoming, sides_by_zone: dict, fee_for: Callable) -> list[_Route]:
    routes = []
    for zone in sorted(sides_by_zone):
        side = sides_by_zone[zone]
        if not side:
            continue
        fee = fee_for(zone, incoming.zone) if incoming.is_bid else fee_for(incoming.zone, zone)
        if fee is not None:
            routes.append(_Route(zone, fee, side))
    return routes


def _best_route(incoming: Incoming, routes: list[_Route]) -> _Route | None:
    best, best_rank = None, None
    for r in routes:
        rank = _rank(incoming, r)
        if best_rank is None or rank < best_rank:
            best, best_rank = r, rank
    return best


def match(incoming: Incoming, sides_by_zone: dict, fee_for: Callable[[int, int], int | None],
          room_for: Callable[[int, int, int], int], max_fills: int, max_scan: int,
          eligible: Callable[[bytes], bool] | None = None,
          room_left: Callable[[int, int], int] | None = None) -> MatchResult:
    """Match `incoming` against the opposite book sides, one list per zone (see the module rules).

    Mutates the lists of `sides_by_zone`: filled resting orders leave, partly filled ones shrink.
    `fee_for(from_zone, to_zone)` is the grid fee per kWh of a route, None where no trade may flow;
    `room_for(from_zone, to_zone, wh)` grants and reserves up to `wh`; `eligible(owner)`, if
    given, says whether a resting order's owner may trade; `room_left(from_zone, to_zone)`, if
    given, is the room `room_for` would grant now, without reserving it (without it, every route
    counts as having room when rule 9 asks).
    """
    result = MatchResult(remaining_wh=incoming.quantity_wh)
    routes = _routes(incoming, sides_by_zone, fee_for)
    all_routes = list(routes)
    scanned = 0
    while routes and result.remaining_wh > 0 and len(result.fills) < max_fills and scanned < max_scan:
        r = _best_route(incoming, routes)
        resting = r.side[r.pos]
        if not _crosses(incoming, resting, r.fee):
            routes.remove(r)            # sorted: nothing further on this route crosses either
            continue
        scanned += 1
        if not _compatible(incoming, resting, eligible):
            _advance(r, routes)
            continue
        from_zone, to_zone = (r.zone, incoming.zone) if incoming.is_bid else (incoming.zone, r.zone)
        wanted = min(result.remaining_wh, resting[REMAINING])
        granted = room_for(from_zone, to_zone, wanted)
        if granted <= 0:
            routes.remove(r)            # no room on this route for the rest of the call
            continue
        assert granted <= wanted, "room_for granted more than asked"
        result.fills.append(_fill(incoming, resting, r, from_zone, to_zone, granted))
        result.remaining_wh -= granted
        _consume(r, resting, granted, routes)
    if result.remaining_wh > 0 and routes and _tradable_cross_left(incoming, routes, eligible, room_left):
        result.cut_short = MAX_FILLS if len(result.fills) >= max_fills else MAX_SCAN
    result.touched_zones = [r.zone for r in all_routes if _compact(r)]
    return result


def _tradable_cross_left(incoming: Incoming, routes: list[_Route], eligible: Callable | None,
                         room_left: Callable | None) -> bool:
    """Rule 9: does a remaining route still hold a resting order the incoming one could trade with?
    Called only when a bound stopped the loop (otherwise the loop emptied `routes`). Each route is
    walked from its cursor while its orders cross; room is the route's, so one look-up decides it."""
    for r in routes:
        for i in range(r.pos, len(r.side)):
            resting = r.side[i]
            if resting is None:
                continue
            if not _crosses(incoming, resting, r.fee):
                break
            if _compatible(incoming, resting, eligible):
                from_zone, to_zone = (r.zone, incoming.zone) if incoming.is_bid else (incoming.zone, r.zone)
                if room_left is None or room_left(from_zone, to_zone) > 0:
                    return True
                break
    return False


def _fill(incoming: Incoming, resting: Entry, r: _Route, from_zone: int, to_zone: int, wh: int) -> Fill:
    price = _trade_price(incoming, resting, r.fee)
    if incoming.is_bid:
        return Fill(incoming.order_id, resting[ORDER_ID], incoming.owner, resting[OWNER], from_zone, to_zone,
                    wh, price, r.fee, resting[ORDER_ID])
    return Fill(resting[ORDER_ID], incoming.order_id, resting[OWNER], incoming.owner, from_zone, to_zone,
                wh, price, r.fee, resting[ORDER_ID])


def _consume(r: _Route, resting: Entry, wh: int, routes: list[_Route]) -> None:
    r.changed = True
    left = resting[REMAINING] - wh
    if left == 0:
        r.side[r.pos] = None            # removed when the call ends (keeps cursors valid meanwhile)
        _advance(r, routes)
    else:
        r.side[r.pos] = (resting[PRICE], resting[ORDER_ID], resting[OWNER], left, resting[GREEN])


def _advance(r: _Route, routes: list[_Route]) -> None:
    r.pos += 1
    if r.pos >= len(r.side):
        routes.remove(r)


def _compact(r: _Route) -> bool:
    """Drop the filled (None) slots of a route's side; True if the side changed at all."""
    if r.changed and None in r.side:
        r.side[:] = [e for e in r.side if e is not None]
    return r.changed


# --- uniform-price call auction ----------------------------------------------------------------
def clearing_price(asks: list, bids: list, fee: int, room: int) -> tuple[int, int] | None:
    """The call auction's (energy price p*, volume V) for one book, or None if nothing crosses.

    An ask at a and a bid at b (all-in) are compatible at energy price p iff a <= p and b >= p + fee.
    V(p) = min(supply(p), demand(p), room). Candidates: the distinct ask prices and the values
    bid price - fee (>= 0). p* maximises V; among prices with the same V, the one with the smallest
    |supply(p) - demand(p)|; then the lowest price. Pure and deterministic (integers only)."""
    candidates = sorted({e[PRICE] for e in asks} | {e[PRICE] - fee for e in bids if e[PRICE] - fee >= 0})
    a_sorted = sorted((e[PRICE], e[REMAINING]) for e in asks)
    a_prices, a_cum = [a for a, _ in a_sorted], [0]
    for _, wh in a_sorted:
        a_cum.append(a_cum[-1] + wh)
    b_sorted = sorted((e[PRICE] - fee, e[REMAINING]) for e in bids)
    b_nets, b_cum = [b for b, _ in b_sorted], [0]
    for _, wh in b_sorted:
        b_cum.append(b_cum[-1] + wh)
    best, best_key = None, None
    for p in candidates:          # O((n + m) log(n + m)): prefix sums over the sorted prices
        supply = a_cum[bisect.bisect_right(a_prices, p)]
        demand = b_cum[-1] - b_cum[bisect.bisect_left(b_nets, p)]
        volume = min(supply, demand, max(room, 0))
        key = (-volume, abs(supply - demand), p)
        if best_key is None or key < best_key:
            best, best_key = (p, volume), key
    if best is None or best[1] <= 0:
        return None
    return best


def allocate(asks: list, bids: list, zone: int, price: int, fee: int, volume: int,
             room_for: Callable[[int, int, int], int]) -> list[Fill]:
    """Fills of a cleared call auction at energy price p* = `price` plus `fee`, each fill at p*.

    Takes part: asks with price <= p*, bids with price - fee >= p* (the same orders that make up
    supply(p*) and demand(p*)). As in `match`, a pair never has one owner on both sides and a
    green-only bid meets only green asks. Within that rule (see `auction_pairing`):
      - the volume is the most those orders can trade, capped at `volume` (V from
        `clearing_price`, already within the zone's room); it depends on quantities, owners and
        green flags only, never on the order ids (arrival order);
      - which asks trade follows priority (price, order id) as far as the rule lets: the fill
        vector of the asks in that order is the lexicographically greatest among the pairings of
        that volume; then likewise the bids by (price desc, order id), among the pairings that
        fill the asks so (where `volume` does not cut the volume, that is the bids' own greatest);
      - pairing: bids by priority, each taking asks by priority, from each as much as leaves the
        rest pairable (the plain greedy pairing whenever no owner is on both sides and no bid
        is green-only).
    Fills come in that order. `room_for(zone, zone, wh)` is then asked fill by fill; where it
    grants less than a fill, that part is the last fill. Does not mutate its arguments."""
    live_asks = sorted((e for e in asks if e[PRICE] <= price), key=ask_priority)
    live_bids = sorted((e for e in bids if e[PRICE] - fee >= price), key=bid_priority)
    pairs = auction_pairing.pair([(e[OWNER], e[REMAINING], e[GREEN]) for e in live_asks],
                                 [(e[OWNER], e[REMAINING], e[GREEN]) for e in live_bids], volume)
    fills: list[Fill] = []
    for b_i, a_i, wh in pairs:
        a, b = live_asks[a_i], live_bids[b_i]
        granted = room_for(zone, zone, wh)
        if granted > 0:
            fills.append(Fill(b[ORDER_ID], a[ORDER_ID], b[OWNER], a[OWNER], zone, zone, granted, price, fee,
                              a[ORDER_ID]))
        if granted < wh:
            break
    return fills


def after_fills(side: list, fills: list, is_bid: bool) -> list:
    """A book side with the fills taken out: filled entries leave, partly filled ones shrink."""
    taken: dict[int, int] = {}
    for f in fills:
        oid = f.bid_id if is_bid else f.ask_id
        taken[oid] = taken.get(oid, 0) + f.wh
    out = []
    for e in side:
        left = e[REMAINING] - taken.get(e[ORDER_ID], 0)
        if left > 0:
            out.append(e if left == e[REMAINING] else (e[PRICE], e[ORDER_ID], e[OWNER], left, e[GREEN]))
    return out
