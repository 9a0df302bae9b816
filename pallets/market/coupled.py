"""Coupled clearing of a region's books at gate closure (see "Coupled clearing" in the package
docstring): the storage side of `pallets.market_coupling`, which is pure.

This module reads the region's books, rooms and link limits, hands them to the solver, and writes
back what it decided: the trades (as `record_trade` records them, batched, with the same escrow
rules as every other trade), the book sides and orders, the flows, the congestion rent paid to each link's DSO, and the
clearing's result for `energy_clearing` and the regulator's report. Expiry calls it once per
(region, interval), before the region's remaining orders expire."""
from __future__ import annotations

import dataclasses

from pallets import grid
from pallets import market_coupling as coupling
from pallets import market_engine as engine
from pallets.market.capacity import Room, wh_in_interval
from pallets.market.escrow import escrow_for, release_escrow
from pallets.market.matching import counterparty_licensed, put_side
from pallets.market.state import (ASK, BID, MATCHED, Config, CongestionRentPaid, LinkClearing, Order,
                                  RegionCleared, RegionClearing, RegionNotCleared, Trade, TradeMatched,
                                  ZoneClearing, auction_cleared, book, clearings, coupled_regions, fee_zones,
                                  interval_trade_count, interval_trades, next_trade_id, open_books, orders,
                                  trades)
from pallets.market_engine import cost
from runtime.pallet import deposit_event

#: expiry-budget units one order of a coupled region costs (one unit is W_EXPIRY of weight): the
#: clearing reads, solves and writes back, measured by `python -m bench.coupled_clearing`
UNITS_PER_ORDER = 3


def region_books(zones: tuple, t: int, room: Room) -> tuple[list, dict, int]:
    """The region's books for the solver, its link rooms, and how many orders were read. A paused
    zone and a zone without a local tariff for the interval's band take no part; orders of owners
    whose licence lapsed since are left out (they expire)."""
    bid_ok, ask_ok = counterparty_licensed(ASK), counterparty_licensed(BID)
    books, read = [], 0
    taking_part = []
    for z in zones:
        bids, asks = book.get((z, t, BID)), book.get((z, t, ASK))
        read += len(bids) + len(asks)
        fee = grid.grid_fee_per_kwh(z, z, t)
        if fee is None or grid.is_paused(z):
            continue
        taking_part.append(z)
        imp_cap, exp_cap = room._zone_cap(z)
        imp_flow, exp_flow = room._flow(z)
        books.append(coupling.ZoneBook(z, [e for e in asks if ask_ok(e[engine.OWNER])],
                                       [e for e in bids if bid_ok(e[engine.OWNER])], fee,
                                       imp_cap - imp_flow, exp_cap - exp_flow))
    link_room = {}
    for i in taking_part:
        for j in taking_part:
            if i != j and grid.link_limit_w(i, j):
                net = room._link((i, j)) - room._link((j, i))
                link_room[(i, j)] = wh_in_interval(grid.link_limit_w(i, j)) - net
    return books, link_room, read


def clear_coupled_region(region: int, t: int, budget: int) -> int:
    """Clear one region's books for interval t together, once; costs UNITS_PER_ORDER units of the
    expiry budget per order in the region's books and may take the budget below 0 (as a call
    auction may). Returns the budget left."""
    zones = tuple(coupled_regions.get()[region])
    for z in open_books.get(t):
        if z in zones:
            auction_cleared.insert((z, t), True)
    room = Room(t)
    books, link_room, read = region_books(zones, t, room)
    budget -= UNITS_PER_ORDER * read
    try:
        result = coupling.clear(books, link_room, Config.max_price_per_kwh)
    except coupling.ClearingError as e:
        # A defect in the solver must not halt the chain: every validator would fail this block
        # alike. The solver writes nothing, so the region simply does not trade this interval.
        deposit_event(RegionNotCleared(region, t, str(e)))
        return budget
    if result.fills:
        apply_fills(zones, t, result, room)
    record_result(region, t, result)
    return budget


def apply_fills(zones: tuple, t: int, result: coupling.Clearing, room: Room) -> None:
    """Write the clearing's trades: book sides, flows, trades and escrow, rent to the links' DSOs."""
    for z in zones:
        mine = [f for f in result.fills if f.to_zone == z]
        if mine:
            put_side((z, t), BID, engine.after_fills(list(book.get((z, t, BID))), mine, True))
        mine = [f for f in result.fills if f.from_zone == z]
        if mine:
            put_side((z, t), ASK, engine.after_fills(list(book.get((z, t, ASK))), mine, False))
    for zr in result.zones:
        f = room._flow(zr.zone)
        f[0] += zr.bought_wh
        f[1] += zr.sold_wh
    for lr in result.links:
        if lr.flow_wh:
            room._link((lr.from_zone, lr.to_zone))
            room.link_flow[(lr.from_zone, lr.to_zone)] += lr.flow_wh
    room.reserved = True
    room.store()
    record_trades(t, result)
    for lr in result.links:
        if lr.rent:
            dso = grid.zone(lr.from_zone).dso
            release_escrow(dso, lr.rent)
            deposit_event(CongestionRentPaid(t, lr.from_zone, lr.to_zone, lr.flow_wh, lr.rent, dso))


def record_trades(t: int, result: coupling.Clearing) -> None:
    """Record the clearing's trades as `record_trade` records one (same trade, same event, same
    escrow), batched: the trade counters are read and written once, each order once, and each
    buyer's surplus escrow returns in one transfer. The surplus is the sum of record_trade's per-fill
    surpluses (they telescope), so the state is the one fill-by-fill recording would leave; it is
    never negative because each fill costs the buyer at most cost(wh, limit) and
    escrow_for(r0) - escrow_for(r1) >= cost(r0 - r1, limit) >= the sum of the fills' costs."""
    price_of = {zr.zone: zr.price for zr in result.zones}
    touched: dict[int, Order] = {}          # order id -> the order as it was before the clearing
    taken: dict[int, int] = {}              # order id -> Wh its fills took
    paid: dict[int, int] = {}               # bid id -> amount + fee + rent of its fills
    trade_id = next_trade_id.get()
    position = interval_trade_count.get(t)
    for f in result.fills:
        bid = touched.get(f.bid_id) or touched.setdefault(f.bid_id, orders.get(f.bid_id))
        ask = touched.get(f.ask_id) or touched.setdefault(f.ask_id, orders.get(f.ask_id))
        amount, fee_amount = cost(f.wh, f.seller_price), cost(f.wh, f.fee_per_kwh)
        rent = sum(r for _link, r in coupling.hop_rents(f, price_of))
        paid[bid.id] = paid.get(bid.id, 0) + amount + fee_amount + rent
        taken[bid.id] = taken.get(bid.id, 0) + f.wh
        taken[ask.id] = taken.get(ask.id, 0) + f.wh
        trades.insert(trade_id, Trade(trade_id, t, bid.owner, ask.owner, bid.meter, ask.meter, f.from_zone,
                                      f.to_zone, f.wh, f.seller_price, f.fee_per_kwh, amount, fee_amount,
                                      MATCHED))
        interval_trades.insert(t, position, trade_id)
        if f.from_zone != f.to_zone:
            fee_zones.insert(trade_id, f.to_zone)
        deposit_event(TradeMatched(trade_id, t, bid.id, ask.id, bid.owner, ask.owner, f.from_zone, f.to_zone,
                                   f.wh, f.seller_price, f.fee_per_kwh))
        trade_id += 1
        position += 1
    next_trade_id.put(trade_id)
    interval_trade_count.insert(t, position)
    for oid in sorted(touched):
        o = touched[oid]
        left = o.remaining_wh - taken[oid]
        lock_after = o.escrow_locked
        if o.side == BID:
            lock_after = escrow_for(left, o.price_per_kwh)
            surplus = o.escrow_locked - lock_after - paid[oid]
            assert surplus >= 0, "escrow would fall short of a trade"
            release_escrow(o.owner, surplus)
        if left == 0:
            orders.remove(oid)
        else:
            orders.insert(oid, dataclasses.replace(o, remaining_wh=left, escrow_locked=lock_after))


def record_result(region: int, t: int, result: coupling.Clearing) -> None:
    """Keep the result for `energy_clearing`, and say it in an event."""
    imported: dict[int, int] = {}
    exported: dict[int, int] = {}
    for lr in result.links:
        exported[lr.from_zone] = exported.get(lr.from_zone, 0) + lr.flow_wh
        imported[lr.to_zone] = imported.get(lr.to_zone, 0) + lr.flow_wh
    zones = tuple(ZoneClearing(zr.zone, zr.price, zr.bought_wh, zr.sold_wh, imported.get(zr.zone, 0),
                               exported.get(zr.zone, 0)) for zr in result.zones)
    links = tuple(LinkClearing(lr.from_zone, lr.to_zone, lr.flow_wh, lr.room_wh, lr.congested, lr.rent,
                               grid.zone(lr.from_zone).dso) for lr in result.links)
    volume = sum(zr.bought_wh for zr in result.zones)
    clearings.insert((region, t), RegionClearing(zones, links, volume, result.rent))
    deposit_event(RegionCleared(region, t, volume, result.rent))
