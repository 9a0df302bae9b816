"""Read-only views of the market for settlement, the RPC and wallets: what they may rely on without
knowing how the state is laid out. Nothing here writes."""
from __future__ import annotations

from collections.abc import Iterator

from pallets.market.state import (Flow, Order, RegionClearing, StandingOrder, Trade, book, clearings, fee_zones,
                                  flows, interval_trade_count,
                                  interval_trades, link_flows, orders, standing_of, standing_orders,
                                  trades)


def trade(trade_id: int) -> Trade | None:
    return trades.get(trade_id)


def fee_zone_of(t: Trade) -> int:
    """The zone whose tariff set a trade's grid fee, and whose DSO is paid it: the from-zone (its
    DSO sets the route's tariff), except a coupled trade across zones, which pays the buyer zone's
    local fee (see "Coupled clearing")."""
    z = fee_zones.get(t.id)
    return t.from_zone if z is None else z


def clearing(region: int, interval_start: int) -> RegionClearing | None:
    """The result of a region's coupled clearing for an interval; None before it cleared."""
    return clearings.get((region, interval_start))


def interval_trade_ids(interval_start: int, start: int = 0, limit: int | None = None) -> list[int]:
    """Ids of the trades to deliver in the interval, in id order, from position `start` (at most
    `limit` of them)."""
    count = interval_trade_count.get(interval_start)
    stop = count if limit is None else min(count, start + limit)
    return [interval_trades.get(interval_start, pos) for pos in range(start, stop)]


def trades_in_interval(interval_start: int) -> Iterator[Trade]:
    """The trades to deliver in the interval, in trade id order."""
    return (trades.get(trade_id) for trade_id in interval_trade_ids(interval_start))


def order(order_id: int) -> Order | None:
    return orders.get(order_id)


def book_side(zone: int, interval_start: int, side: int) -> tuple:
    """Resting orders (price, id, owner, remaining_wh, green), best first."""
    return book.get((zone, interval_start, side))


def flow(zone: int, interval_start: int) -> Flow:
    """Wh traded into and out of a zone for delivery in the interval."""
    return flows.get((zone, interval_start))


def link_flow(from_zone: int, to_zone: int, interval_start: int) -> int:
    """Wh traded over a link for delivery in the interval."""
    return link_flows.get((from_zone, to_zone, interval_start))


def standing_order(standing_id: int) -> StandingOrder | None:
    return standing_orders.get(standing_id)


def standing_orders_of(who: bytes) -> list[int]:
    """The standing order ids of an owner, ascending."""
    return sorted(sid for sid, _ in standing_of.iter_prefix(who))
