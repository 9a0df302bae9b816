"""The energy market: an order book per (zone, delivery interval), matched continuously (or, in
call-auction zones, cleared at one uniform price at gate closure: see "Call auction").

Licensed participants place limit orders for energy delivered in a future interval of their grid
zone: bids (buy) and asks (sell), a price per kWh and a quantity in Wh. An incoming order trades at
once against the opposite side of the book (continuous double auction, `pallets.market_engine`);
what is left rests until it trades, is cancelled, or expires at gate closure (unless a work bound
cut its matching short while it still crossed: see "Bounded work"). Trades are recorded per
interval for settlement, which pays sellers against metered delivery.

Rules (each is a function below, named after it):
  - Who may trade: a bid needs an active prosumer or consumer licence, an ask an active prosumer
    licence, both when placed and when a resting order is matched (a resting order of a
    participant suspended since is skipped, and waits for cancel or expiry); each order names the participant's own active meter in the order's zone, able to
    import (bids) or export (asks). Settlement checks delivery on these meters. An order may not
    exceed what its meter's rated power can move in one interval.
  - Terms: price in [min_price_per_kwh, max_price_per_kwh], quantity in [min_quantity_wh,
    max_quantity_wh]. A bid's price is its *all-in* limit: energy plus the grid fee of the route
    it trades over; an ask's price is the energy price the seller wants (see market_engine).
  - Gate closure: an order for the interval starting at t is accepted only while
    now < t - gate_closure_s, and t is at most max_intervals_ahead intervals ahead. Matching only
    happens when an order is placed, so no match ever happens after gate closure. After it the
    book is frozen (no cancel either) and its unmatched orders expire: `on_initialize` releases
    them, at most max_expiries_per_block per block, oldest interval first.
  - Paused zones: no orders in them, and no match touching them (they are left out of the routes).
  - Cross-zone trade: only over a grid link (grid.grid_fee_per_kwh is None without one), and only
    when the bid covers ask price + grid fee of the route (the fee of the delivery interval's
    time-of-use band).
  - Capacity: per (zone, interval) the Wh exported from and imported into each zone by trades,
    and per (link, interval) the Wh over it, are kept in `flows` and `link_flows`. A fill is
    limited to the room left: the seller zone's export capacity, the buyer zone's import capacity
    (grid.capacity_for, W x interval_s / 3600, rounded down) and, across zones, the link's limit
    on the *net* flow: the room from i to j is limit(i, j) - (flow(i, j) - flow(j, i)), so trades
    in opposite directions over a link cancel out and one against the net direction frees room
    along it (`link_flows` keeps the gross Wh per direction; `Room` nets them).
    A trade inside one zone counts against both its export and its import (conservative: the
    energy leaves the producing meter and enters the consuming one on the same feeder).
  - Green: a green-only bid trades only with asks from generation meters. In this version every
    export-capable meter is a prosumer's generation meter, so every ask is green; the flag is kept
    in the book so that settlement and certificates can rely on it when other kinds appear.

Standing orders ("sell my surplus whenever the price is at least X", "buy up to Y Wh at up to Z"):
  - `set_standing_order(side, zone, price_per_kwh, quantity_wh, meter, green)` records the terms of
    a bid or ask, checked as a placement of that side would be (licence, terms, known zone, the
    owner's meter in the zone able to import/export and rated for the quantity); nothing is
    escrowed then. At most max_standing_per_owner per participant. `cancel_standing_order` (owner
    only) stops it; orders it already posted stay open, to cancel with `cancel`.
  - `on_finalize` posts them for the target interval interval_start(now) + standing_lead_intervals
    x interval_s, `now` being this block's own time (set by the timestamp inherent), so the target's
    gate is open when they are placed and matched; `on_initialize` reserves the weight. A sweep walks the standing
    orders in id order (a linked list, so cancelled ids cost nothing) from a cursor, visiting at
    most max_standing_posts_per_block per block; a sweep starts when the target moves past the
    last sweep's target and none is under way. Each due order (next_interval <= target) is placed
    through the same path as place_bid/place_ask (`do_place_bid`/`do_place_ask`: escrow, matching,
    resting) inside `storage.transactional()`: StandingOrderPosted on success; on any dispatch
    error (licence lapsed, escrow unaffordable, zone paused, book full...) all its writes and
    events roll back and StandingOrderSkipped(standing_id, interval, error name) is recorded.
    Either way next_interval becomes target + interval_s: at most one post per interval.
  - A sweep that lags (more due orders than posts per block allow in one interval) goes on with
    the new target; the intervals its remaining orders missed are not posted later.
  - From runtime spec_version 2, `set_standing_order_window(..., window_start_s, window_end_s)` sets
    one with a time-of-day window (seconds of the day, UTC, [start, end), wrapping past midnight
    when start > end; start == end is refused): the sweep posts it only for a target interval whose
    start lies in the window and passes it over otherwise (no post, no event). An order without a
    window posts all day; the upgrade to version 2 gives every existing one an explicit all-day
    window (0, 86400) (`add_all_day_windows`). Cancelling removes the window.

Money (all in the stablecoin, `Config.stablecoin_asset`):
  - cost(wh, price_per_kwh) = wh * price_per_kwh // 1000: the payer is never charged more than
    agreed. A trade charges amount = cost(wh, price) to pay the seller and fee_amount =
    cost(wh, fee) to pay the DSO.
  - Escrow on placement: the buyer locks escrow_for(quantity, limit) = cost(quantity, limit) in the
    market's escrow account. Because the limit is all-in, it already covers the largest grid fee
    the bid can be charged on any route ("quantity x limit price plus the maximum grid fee" of the
    issue): a trade never charges more than price + fee <= limit per kWh, whatever the tariffs do
    after placement. The lock always equals escrow_for(remaining, limit) of the order.
  - On a fill of w Wh, the order's lock drops from escrow_for(r, limit) to escrow_for(r - w, limit);
    of that difference, amount + fee_amount stays in escrow for the trade and the rest (never
    negative, since floor(a) - floor(b) >= floor(a - b) >= cost(w, price) + cost(w, fee)) goes back
    to the buyer at once. On cancel or expiry the remaining lock goes back. So at any time:
      balance(ESCROW_ACCOUNT) == sum(open bids' escrow_locked) + sum(matched trades' amount + fee)
    and total stablecoin issuance never changes.
  - Sellers lock nothing: they commit energy, which settlement checks on their meter.

Decisions:
  - Order ids are one global sequence, which is also time priority. A fully filled, cancelled or
    expired order leaves `orders`; its trades keep what settlement needs.
  - The escrow account is keccak256(b"gridchain/market/escrow"), an account id nobody holds a key
    for (`ESCROW_ACCOUNT`).
  - A book side is stored as one value, the engine's list of (price, order id, owner, remaining,
    green) in priority order, so matching needs one read per zone and no per-order reads; it is
    written with a cheap check (`BookSideType`) and decoded with the full one. Book sides, flows and
    link flows are maps with tuple keys (zone, interval[, side]): nothing iterates them.
  - The expiry queue is `open_intervals` (ascending) and, per interval, `open_books` (its zones).
    Expiry uses the previous block's time (hooks run before the timestamp inherent), which is safe:
    a book whose gate closed in the current block cannot change, since placing needs an open gate.
  - A cancel after gate closure is refused: from then on a book only changes by expiry.
  - Lowering an envelope or link limit does not undo trades already matched; no new trade adds to
    a flow that is at or above its (new) limit.
  - Bounded work: max_fills_per_order fills and max_scan_per_order examined orders per placement,
    max_orders_per_side per book side, max_expiries_per_block expiries per block.
  - A placement never leaves a continuous book crossed (call-auction and coupled books rest
    crossed by design until they clear at gate closure). A resting bid and a resting ask are
    *crossed* when they could trade with each other: a route from the ask's zone to the bid's
    with a grid fee (a link, neither zone paused, a tariff) and room left on it (`Room`), ask
    price + fee <= bid price, different owners, the green rule met, both owners' licences active, the gate open.
    Resting orders trade only with incoming ones, so a crossed pair would stay until expiry. Hence
    when max_fills_per_order or max_scan_per_order stops an incoming order's matching while its
    remainder still crosses an order it could trade with, the remainder does not rest: it is
    trimmed, a bid's escrow for it returns at once, and OrderTrimmed(order id, owner, trimmed Wh,
    released, bound) says so (the trades it made stand; the owner may place the rest again, which
    matches on). A remainder that crosses nothing tradable rests as usual.
  - Not covered by that rule: a change outside a placement can make two resting orders tradable
    with each other (a DSO raises an envelope or link limit or lowers a tariff, a zone resumes, a
    licence is reinstated, a trade against a link's net direction frees room along it). Such a
    pair does not trade by itself: it stays until incoming orders take either side, its owners
    cancel, or the orders expire.
  - Not checked here: that a seller's open asks together fit its meter (each ask alone must), and
    the meter's status at match time (settlement checks delivery on the trade's meters).
  - Flows and trades are never pruned here (settlement's job).

Call auction (uniform price, pay-as-clear), selectable per zone:
  - The market genesis section {"call_auction_zones": [2]} (storage `call_auction_zones`; empty by
    default, so every zone trades continuously) lists the zones traded by call auction.
  - In such a zone placement does not match: orders rest (a bid's escrow is locked as usual), can
    be cancelled until gate closure, and only same-zone orders take part: no cross-zone trade
    touches a call-auction zone (continuous orders elsewhere do not see its books either).
  - At gate closure, in `on_initialize` before the interval's orders of that zone expire, the
    (zone, interval) book clears once (`auction_cleared` marks it until the book is gone). With f
    the zone's local grid fee for the interval (grid_fee_per_kwh(zone, zone, t)), an ask at a and
    a bid at b (all-in limit, as in continuous trading) are compatible at energy price p iff
    a <= p and b >= p + f. supply(p) = Wh of asks with a <= p, demand(p) = Wh of bids with
    b - f >= p, V(p) = min(supply(p), demand(p), room), room = min(export room, import room) of
    the zone for the interval (a trade inside a zone counts against both, as continuous trades).
  - Price rule (`market_engine.clearing_price`): candidates are the distinct ask prices and the
    values b - f (>= 0); p* maximises V; tie-break: the smallest |supply(p) - demand(p)|, then the
    LOWEST price (buyers pay no more than needed). Nothing trades if max V is 0.
  - Allocation (`market_engine.allocate`, pairing in `auction_pairing`): the asks with a <= p*
    and bids with b - f >= p* trade the most the rule below allows, at most V, whatever order they
    arrived in (a max-flow, asks to compatible bids, solved exactly). Which orders trade follows
    priority as far as that volume allows: the asks' fills, in (price, order id) order, are the
    lexicographically greatest of all pairings of that volume (an ask is passed over only where
    filling it would cost volume); then the bids' fills likewise in (price desc, order id) order,
    among the pairings that fill the asks so. Bids in that order take asks in theirs, each as much
    as leaves the rest pairable (with no owner on both sides and no green-only bid: the plain
    greedy pairing). Every trade is at energy price p* plus fee f
    (price_per_kwh = p*, fee_per_kwh = f, amount/fee_amount by cost()), recorded and escrowed by
    the same `record_trade` as continuous fills (the bid's surplus lock returns at once; p* + f <=
    b, so escrow never falls short), and reserved in `flows` through the same `Room`. As in
    continuous matching there are no self-trades, a green-only bid meets only green asks, and
    orders of owners whose licence is no longer active are left out (they expire); the first two
    can leave the matched volume below V(p*) (V, and so p*, does not see owners or green flags).
    Nothing clears in a zone paused at gate closure or without a local tariff. Then the
    interval's remaining orders expire as usual.
  - Bounded: one clearing reads the two book sides (at most max_orders_per_side each, sorting
    O(n log n); the pairing takes at most bids + asks + 3 x owners + 1 steps of O(log owners))
    and is charged one unit of the expiry hook's budget per order in the book; it runs only while
    budget is left, so a block's expiry work stays within max_expiries_per_block + 2 x
    max_orders_per_side units (the hook's weight counts them all).

Coupled clearing (market coupling of a region's zones, pay-as-clear with zone prices):
  - The market genesis section {"coupled_regions": [[1, 2], [5, 6, 7]]} (storage `coupled_regions`)
    names regions of zones (a feeder tree, at most max_region_zones) that clear together. A zone is
    continuous, call-auction or coupled, never two of them. Placement in a coupled zone does not
    match; orders rest, escrow as usual, cancellable until gate closure; no continuous order trades
    with a coupled zone.
  - No self-trade: a participant's orders in one region for one interval are all bids or all asks;
    the other side is refused at placement (BothSidesInRegion), so the clearing never has to
    separate an owner's own supply from its own demand.
  - At gate closure, in `on_initialize` before the interval's orders expire, the region clears once
    (`clear_coupled_region`; `auction_cleared` marks its zones until their books are gone): one
    welfare-maximising clearing over all its zones (`pallets.market_coupling`, whose docstring is the
    rule book: the problem, the algorithm and its tie-breaks, the price rule, the trades). In short:
    a bid's value for energy is its all-in limit minus its zone's local fee f_z (the buyer zone's
    point tariff, grid_fee_per_kwh(z, z, t)); the clearing maximises bids' value minus asks' cost
    subject to each zone's export and import room (as in continuous trading: the Wh sold by its
    asks, bought by its bids) and each link's limit per direction with counter-flows netted; every
    zone gets one price p_z (midpoint rule), every accepted order is in the money at it, and where
    nothing is congested every zone has the same price.
  - Trades: bilateral, along the flows, for settlement. A trade from zone i to zone j records the
    energy price p_i (the seller's zone price: amount = cost(wh, p_i)) and the fee f_j (fee_amount,
    paid at settlement to the DSO of the buyer's zone j: `fee_zones`, `fee_zone_of`); the buyer
    pays p_j + f_j per kWh. The difference cost(wh, p_j) - cost(wh, p_i) is congestion rent, split
    over the links of the trade's path and paid at the clearing from the buyer's escrow to each
    link's DSO (the from-zone's, who sets that direction's limit): CongestionRentPaid, never to a
    trader. Rent pays for link capacity the clearing allocated, so it is not refunded if the trade
    is not delivered; the trade itself (amount + fee) settles like any other: escrow, shortfall,
    penalty, disputes.
  - Left out: paused zones, zones without a local tariff for the interval's band, and orders of
    owners whose licence is no longer active. If any green-only bid takes part, non-green asks are
    left out (in this version every ask is green). Their orders expire as usual.
  - Results: `clearings[(region, interval)]` keeps per zone the price, bought and sold Wh, net
    import and export, and per link direction the flow, its limit, whether it is congested and
    its rent; RegionCleared says it happened. Should the solver's own checks ever fail (a defect,
    `market_coupling.ClearingError`), RegionNotCleared says why, nothing trades in the region for
    that interval and its orders expire: the chain goes on rather than every validator failing
    the block alike.
  - Bounded: a region has at most max_region_zones zones, so at most 2 x max_orders_per_side x
    max_region_zones orders; the clearing costs UNITS_PER_ORDER units of the expiry budget per
    order and runs only while budget is left (the hook's weight counts them all).
"""
from __future__ import annotations

# The package's modules, lowest first; each imports only modules above it in this list:
#   state     config, constants, structs, storage, events, errors (creates `pallet`)
#   escrow    the escrow account: locks, releases, what a trade holds until settled
#   capacity  energy per interval and the capacity Room (the flows and link flows)
#   queries   read-only views for settlement, the RPC and wallets
#   modes     how each zone trades: continuous, call auction or coupled; one side per region
#   matching  continuous matching, trade recording, resting and closing orders
#   placement rules of an order; calls place_bid (0), place_ask (1), cancel (2)
#   auction   a call-auction book's clearing at gate closure
#   coupled   a coupled region's clearing at gate closure (the solver is pallets.market_coupling)
#   expiry    gate closure: clearing call auctions and coupled regions, then expiring orders (hook)
#   standing  standing orders: calls set (3), cancel (4) and set with a window (5, spec_version 2),
#             the posting sweep (hooks), the version 2 migration
# This module re-exports their public names, so `pallets.market.X` reads as before the split.
from pallets import grid
from pallets.market.auction import clear_call_auction
from pallets.market.capacity import Room, wh_in_interval
from pallets.market.escrow import (ESCROW_ACCOUNT, escrow_for, escrowed_for_trade, lock_escrow,
                                   register_settlement, release_escrow)
from pallets.market.expiry import expire_book, expire_closed_books, expire_interval
from pallets.market.coupled import clear_coupled_region
from pallets.market.modes import (CALL_AUCTION, CONTINUOUS, COUPLED, coupled_zones, ensure_one_side_in_region,
                                  is_call_auction_zone, region_of, zone_mode)
from pallets.market.matching import (close_order, counterparty_licensed, opposite_sides,
                                     put_side, queue_interval, record_trade, rest, route_fee, trade_and_rest,
                                     trim)
from pallets.market.placement import (cancel, do_place_ask, do_place_bid, ensure_gate_open, ensure_licensed,
                                      ensure_order_meter, ensure_terms, ensure_zone_trading, gate_open,
                                      is_generation_meter, new_order_id, place_ask, place_bid)
from pallets.market.queries import (book_side, clearing, fee_zone_of, flow, interval_trade_ids, link_flow, order,
                                    standing_order, standing_orders_of, trade, trades_in_interval)
from pallets.market.standing import (add_all_day_windows, cancel_standing_order, in_window, post_standing,
                                     post_standing_orders, record_standing, reserve_standing_posts,
                                     set_standing_order, set_standing_order_window, standing_target)
from pallets.market.state import (ASK, ASK_ROLES, BID, BID_ROLES, MATCHED, W_CANCEL, W_CANCEL_STANDING,
                                  W_EXPIRE_BASE, W_EXPIRY, W_PLACE, W_SET_STANDING, W_STANDING_BASE,
                                  BookEntry, BookSide, BookSideType, Config, Error, Flow, Order,
                                  OrderCancelled, OrderExpired, OrderId, OrderPlaced, OrderTrimmed, StandingId,
                                  StandingOrder, StandingOrderCancelled, StandingOrderPosted,
                                  StandingOrderSet, StandingOrderSkipped, Trade, TradeId, TradeMatched,
                                  CongestionRentPaid, LinkClearing, RegionCleared, RegionClearing,
                                  RegionNotCleared,
                                  ZoneClearing, clearings, coupled_regions, fee_zones,
                                  auction_cleared, book, call_auction_zones, flows, interval_trade_count,
                                  interval_trades, link_flows, next_order_id, next_standing_id, next_trade_id,
                                  open_books, open_intervals, orders, pallet, standing_count, standing_cursor,
                                  standing_head, standing_links, standing_of, standing_orders, standing_round,
                                  standing_tail, standing_windows, trades)

__all__ = [
    "CALL_AUCTION", "CONTINUOUS", "COUPLED", "clear_coupled_region", "clearing", "clearings",
    "CongestionRentPaid", "coupled_regions", "coupled_zones", "ensure_one_side_in_region", "fee_zone_of",
    "fee_zones", "LinkClearing", "region_of", "RegionCleared", "RegionClearing", "RegionNotCleared",
    "zone_mode", "ZoneClearing",
    "ASK", "ASK_ROLES", "auction_cleared", "BID", "BID_ROLES", "book", "book_side", "BookEntry", "BookSide",
    "BookSideType", "call_auction_zones", "cancel", "cancel_standing_order", "clear_call_auction",
    "close_order", "Config", "counterparty_licensed", "do_place_ask", "do_place_bid", "ensure_gate_open",
    "ensure_licensed", "ensure_order_meter", "ensure_terms", "ensure_zone_trading", "Error", "ESCROW_ACCOUNT",
    "escrow_for", "escrowed_for_trade", "expire_book", "expire_closed_books", "expire_interval", "Flow",
    "flow", "flows", "gate_open", "interval_trade_count", "interval_trade_ids", "interval_trades",
    "is_call_auction_zone", "is_generation_meter", "link_flow", "link_flows", "lock_escrow", "MATCHED",
    "new_order_id", "next_order_id", "next_standing_id", "next_trade_id", "open_books", "open_intervals",
    "opposite_sides", "Order", "order", "OrderCancelled", "OrderExpired", "OrderId", "OrderPlaced", "orders", "OrderTrimmed", "trim",
    "pallet", "place_ask", "place_bid", "post_standing", "post_standing_orders", "put_side", "queue_interval",
    "record_trade", "register_settlement", "release_escrow", "reserve_standing_posts", "rest", "Room",
    "route_fee", "set_standing_order", "standing_count", "standing_cursor", "standing_head", "standing_links",
    "standing_of", "standing_order", "standing_orders", "standing_orders_of", "standing_round",
    "standing_tail", "standing_target", "StandingId", "StandingOrder", "StandingOrderCancelled",
    "StandingOrderPosted", "StandingOrderSet", "StandingOrderSkipped", "Trade", "trade", "trade_and_rest",
    "TradeId", "TradeMatched", "trades", "trades_in_interval", "W_CANCEL", "W_CANCEL_STANDING",
    "W_EXPIRE_BASE", "W_EXPIRY", "W_PLACE", "W_SET_STANDING", "W_STANDING_BASE", "wh_in_interval",
    "add_all_day_windows", "in_window", "record_standing", "set_standing_order_window", "standing_windows",
]


# --- genesis ---------------------------------------------------------------------------------
@pallet.genesis
def _genesis(config: dict) -> None:
    """{"call_auction_zones": [zone id, ...], "coupled_regions": [[zone id, ...], ...]} (both
    optional): zones traded by call auction, and regions of zones cleared together. A zone not named
    trades continuously; no zone is in two of them."""
    zones = tuple(sorted({int(z) for z in config.get("call_auction_zones", [])}))
    for z in zones:
        if grid.zone(z) is None:
            raise ValueError(f"market genesis: call auction zone {z} is not a grid zone")
    if zones:
        call_auction_zones.put(zones)
    regions = check_coupled_regions(config.get("coupled_regions", []), set(zones))
    if regions:
        coupled_regions.put(regions)


def check_coupled_regions(regions: list, auction: set) -> tuple:
    """Validate the genesis regions: each a non-empty list of known zones, at most max_region_zones,
    no zone twice, none also a call-auction zone."""
    if not isinstance(regions, list) or len(regions) > Config.max_regions:
        raise ValueError(f"market genesis: coupled_regions must be a list of at most {Config.max_regions} regions")
    seen: set[int] = set()
    out = []
    for n, region in enumerate(regions):
        if not isinstance(region, list) or not 1 <= len(region) <= Config.max_region_zones:
            raise ValueError(f"market genesis: coupled region {n} must list 1 to {Config.max_region_zones} zones")
        for z in region:
            if not isinstance(z, int) or isinstance(z, bool) or grid.zone(z) is None:
                raise ValueError(f"market genesis: coupled region {n}: {z!r} is not a grid zone")
            if z in seen or z in auction:
                raise ValueError(f"market genesis: zone {z} is in two coupled regions or also a call-auction zone")
            seen.add(z)
        out.append(tuple(sorted(region)))
    return tuple(out)


# --- hooks -----------------------------------------------------------------------------------
# The runtime runs a pallet's hooks in registration order, so they are all registered here, in one
# place, whatever order the modules above are imported in: on_initialize runs gate closure (clear
# call auctions, expire orders) and then reserves the weight of the posting sweep; on_finalize
# posts the standing orders.
pallet.on_initialize(expire_closed_books)
pallet.on_initialize(reserve_standing_posts)
pallet.on_finalize(post_standing_orders)
