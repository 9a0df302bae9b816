"""Coupled zonal clearing (pallets.market_coupling) against an independent LP oracle.

Random small regions (2 to 4 zones, up to 6 asks and 6 bids a zone, binding or generous zone and
link rooms, one-way links) are cleared by the module and solved as a linear programme with the
HiGHS solver (scipy, a test dependency only): variables are the Wh accepted per order and the net
flow per linked pair of zones, within -room(j, i) <= n_ij <= room(i, j); each zone balances
(sold + inflow = bought + outflow) and keeps its export and import room; the objective is the
welfare sum((bid price - zone fee) x Wh) - sum(ask price x Wh). The LP is a network flow with
integer data, so its optimum is integral; the module's welfare, computed in integers from
`Clearing.accepted`, must equal it (to 1e-6 relative, the solver's tolerance).

Beyond the welfare, every result is checked for what the module doc promises: no room, link or
order exceeded; zone balance from the link flows; every accepted order in the money at its zone's
price and every order left over with room to spare out of it; each trade's prices, path and
payment; trades adding up to the orders and the link flows; one price where nothing is congested;
the congestion rent; and the same clearing whatever order the books and their entries come in.

By default the run is derandomized (the same examples every time); GRIDCHAIN_FUZZ=<examples>
explores with fresh seeds and that many examples.
"""
from __future__ import annotations

import copy
import os
import random
from collections import defaultdict
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from pallets.market_coupling import Clearing, ZoneBook, clear
from pallets.market_engine import GREEN, ORDER_ID, OWNER, PRICE, REMAINING, cost

_FUZZ = int(os.environ.get("GRIDCHAIN_FUZZ", "0"))
_SETTINGS = settings(max_examples=_FUZZ or 200, deadline=None, derandomize=not _FUZZ,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

GENEROUS = 10**7                       # more Wh than any instance's orders add up to


@dataclass
class Region:
    """One instance: the books, the link rooms and the price cap, as `clear` takes them."""

    books: list
    link_room: dict
    max_price: int


# --- instances -----------------------------------------------------------------------------------
_quantity_wh = st.one_of(st.integers(1, 50).map(lambda kwh: kwh * 1000), st.integers(1, 50_000))
_zone_room = st.one_of(st.just(GENEROUS), st.integers(0, 150_000))
_link_room = st.one_of(st.none(), st.none(), st.just(GENEROUS), st.integers(0, 60_000))
_two_way_room = st.one_of(st.just(GENEROUS), st.just(GENEROUS), st.integers(1, 60_000))


def _owner(side: int, n: int) -> bytes:
    return bytes([side, n]) + bytes(30)


@st.composite
def regions(draw, ask_green: bool = True, both_ways: bool = False, top_price: int = 200,
            top_fee: int = 20) -> Region:
    """A random region; asks are green unless `ask_green` is False (then random, as bids' flags);
    with `both_ways` every link exists in both directions (often with room to spare); a small
    `top_price` makes ties (trades of gain 0, zero-cost cycles of flow) common."""
    n = draw(st.integers(2, 4))
    ids = draw(st.lists(st.integers(1, 12), min_size=n, max_size=n, unique=True))
    counts = [(draw(st.integers(0, 6)), draw(st.integers(0, 6))) for _ in ids]
    total = sum(a + b for a, b in counts)
    oids = draw(st.lists(st.integers(1, 400), min_size=total, max_size=total, unique=True))
    books = []
    for zone, (n_asks, n_bids) in zip(ids, counts):
        asks = [(draw(st.integers(1, top_price)), oids.pop(), _owner(1, draw(st.integers(0, 3))),
                 draw(_quantity_wh), True if ask_green else draw(st.booleans()))
                for _ in range(n_asks)]
        bids = [(draw(st.integers(1, top_price)), oids.pop(), _owner(2, draw(st.integers(0, 3))),
                 draw(_quantity_wh), draw(st.booleans()))
                for _ in range(n_bids)]
        books.append(ZoneBook(zone, asks, bids, draw(st.integers(0, top_fee)),
                              draw(_zone_room), draw(_zone_room)))
    link_room = {}
    for i in ids:
        for j in ids:
            if both_ways and i < j:
                if draw(st.integers(0, 3)):             # linked, in both directions
                    link_room[(i, j)], link_room[(j, i)] = draw(_two_way_room), draw(_two_way_room)
            elif not both_ways and i != j:
                room = draw(_link_room)
                if room is not None:
                    link_room[(i, j)] = room
    # the cap is at least every order's price (the caller's bound: above it, a bid left over with
    # import room to spare would have no supporting price)
    return Region(books, link_room, draw(st.sampled_from([200, 1000, 10_000])))


# --- the oracle ----------------------------------------------------------------------------------
def _takes_part(region: Region):
    """The documented green rule: with a green-only bid in the region, non-green asks stay out."""
    green_only = any(e[GREEN] for b in region.books for e in b.bids)
    return lambda ask: ask[GREEN] or not green_only


def lp_welfare(region: Region) -> float:
    """The welfare optimum of the region's LP (HiGHS)."""
    takes_part = _takes_part(region)
    zones = [b.zone for b in region.books]
    index = {z: k for k, z in enumerate(zones)}
    columns = []                        # (zone index, objective coefficient, upper bound, kind)
    for k, b in enumerate(region.books):
        columns += [(k, a[PRICE], a[REMAINING] if takes_part(a) else 0, "ask") for a in b.asks]
        columns += [(k, -(e[PRICE] - b.fee), e[REMAINING], "bid") for e in b.bids]
    linked = [(i, j) for (i, j), room in region.link_room.items() if room > 0]
    pairs = sorted({(min(i, j), max(i, j)) for i, j in linked})
    n_orders, n = len(columns), len(columns) + len(pairs)
    if n == 0:
        return 0.0
    c = [col[1] for col in columns] + [0] * len(pairs)      # minimise -welfare
    bounds = [(0, col[2]) for col in columns]
    room = region.link_room
    bounds += [(-room.get((j, i), 0), room.get((i, j), 0)) for i, j in pairs]
    a_eq = [[0.0] * n for _ in zones]   # sold - bought - net outflow = 0
    a_ub = [[0.0] * n for _ in range(2 * len(zones))]
    b_ub = []
    for col_k, (k, _, _, kind) in enumerate(columns):
        a_eq[k][col_k] = 1.0 if kind == "ask" else -1.0
        a_ub[2 * k + (0 if kind == "ask" else 1)][col_k] = 1.0
    for b in region.books:
        b_ub += [max(0, b.export_room), max(0, b.import_room)]
    for p, (i, j) in enumerate(pairs):
        a_eq[index[i]][n_orders + p] = -1.0       # net flow i -> j leaves i
        a_eq[index[j]][n_orders + p] = 1.0        # and arrives in j
    res = linprog(c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=[0.0] * len(zones), bounds=bounds,
                  method="highs")
    assert res.status == 0, res.message
    return -res.fun


def module_welfare(region: Region, result: Clearing) -> int:
    welfare = 0
    for b in region.books:
        welfare -= sum(a[PRICE] * result.accepted.get(a[ORDER_ID], 0) for a in b.asks)
        welfare += sum((e[PRICE] - b.fee) * result.accepted.get(e[ORDER_ID], 0) for e in b.bids)
    return welfare


# --- the checks ----------------------------------------------------------------------------------
def _connected_both_ways(region: Region) -> bool:
    """Every link exists in both directions and the links join all zones."""
    rooms = {k: v for k, v in region.link_room.items() if v > 0}
    if any((j, i) not in rooms for i, j in rooms):
        return False
    zones = [b.zone for b in region.books]
    seen, todo = {zones[0]}, [zones[0]]
    while todo:
        k = todo.pop()
        for (i, j) in rooms:
            if i == k and j not in seen:
                seen.add(j)
                todo.append(j)
    return len(seen) == len(zones)


def check_clearing(region: Region, result: Clearing) -> None:
    books = {b.zone: b for b in region.books}
    price = {z.zone: z.price for z in result.zones}
    asks = {a[ORDER_ID]: (b.zone, a) for b in region.books for a in b.asks}
    bids = {e[ORDER_ID]: (b.zone, e) for b in region.books for e in b.bids}
    took = result.accepted
    takes_part = _takes_part(region)

    # welfare: equal to the LP optimum
    lp = lp_welfare(region)
    welfare = module_welfare(region, result)
    assert abs(welfare - lp) <= 1e-6 * max(1.0, abs(lp)), (welfare, lp)

    # orders: none over-filled, none unknown, non-participating asks untouched
    assert set(took) <= set(asks) | set(bids)
    assert all(0 < wh <= (asks.get(oid) or bids.get(oid))[1][REMAINING] for oid, wh in took.items())
    assert all(oid not in took for oid, (_, a) in asks.items() if not takes_part(a))

    # zones: results for each zone, ascending; sums, rooms, prices within [0, max_price]
    assert [z.zone for z in result.zones] == sorted(books)
    for z in result.zones:
        b = books[z.zone]
        assert z.sold_wh == sum(took.get(a[ORDER_ID], 0) for a in b.asks)
        assert z.bought_wh == sum(took.get(e[ORDER_ID], 0) for e in b.bids)
        assert z.sold_wh <= b.export_room and z.bought_wh <= b.import_room
        assert 0 <= z.price <= region.max_price

    # links: exactly the directions with room, flows within room, net (one way a pair), balance
    links = {(lk.from_zone, lk.to_zone): lk for lk in result.links}
    assert [(lk.from_zone, lk.to_zone) for lk in result.links] == sorted(links)
    assert set(links) == {k for k, v in region.link_room.items() if v > 0}
    flow = defaultdict(int)
    for (i, j), lk in links.items():
        assert lk.room_wh == region.link_room[(i, j)]
        assert 0 <= lk.flow_wh <= lk.room_wh
        assert lk.congested == (lk.flow_wh == lk.room_wh)
        flow[(i, j)] = lk.flow_wh
    for (i, j) in links:
        assert flow[(i, j)] == 0 or flow[(j, i)] == 0
    for z in result.zones:
        inflow = sum(f for (i, j), f in flow.items() if j == z.zone)
        outflow = sum(f for (i, j), f in flow.items() if i == z.zone)
        assert z.sold_wh + inflow == z.bought_wh + outflow, z.zone

    # prices: accepted orders in the money; left-over orders out of it where room remains
    for z in result.zones:
        b, p = books[z.zone], z.price
        for a in b.asks:
            if not takes_part(a):
                continue
            if took.get(a[ORDER_ID], 0) > 0:
                assert a[PRICE] <= p, (z.zone, a)
            if took.get(a[ORDER_ID], 0) < a[REMAINING] and z.sold_wh < b.export_room:
                assert a[PRICE] >= p, (z.zone, a)
        for e in b.bids:
            if took.get(e[ORDER_ID], 0) > 0:
                assert e[PRICE] - b.fee >= p, (z.zone, e)
            if took.get(e[ORDER_ID], 0) < e[REMAINING] and z.bought_wh < b.import_room:
                assert e[PRICE] - b.fee <= p, (z.zone, e)
    # a direction with room left lets no price rise along it; with none congested, one price
    for (i, j) in {(i, j) for i in books for j in books if i != j}:
        residual = max(0, region.link_room.get((i, j), 0)) - flow[(i, j)] + flow[(j, i)]
        if residual > 0:
            assert price[j] <= price[i], ((i, j), price)
    if _connected_both_ways(region) and not any(lk.congested for lk in result.links):
        assert len(set(price.values())) == 1, price

    # fills: parties, prices, payment, path along positive flows
    per_order = defaultdict(int)
    per_link = defaultdict(int)
    rent = defaultdict(int)
    for f in result.fills:
        (az, a), (bz, e) = asks[f.ask_id], bids[f.bid_id]
        assert f.wh > 0
        assert (f.from_zone, f.to_zone, f.seller, f.buyer) == (az, bz, a[OWNER], e[OWNER])
        assert f.seller != f.buyer
        assert not e[GREEN] or a[GREEN], "a green-only bid met a non-green ask"
        assert f.seller_price == price[az] and f.buyer_price == price[bz]
        assert f.fee_per_kwh == books[bz].fee
        assert f.buyer_price >= f.seller_price
        assert cost(f.wh, f.buyer_price) + cost(f.wh, f.fee_per_kwh) <= cost(f.wh, e[PRICE])
        assert f.path[0] == az and f.path[-1] == bz and len(set(f.path)) == len(f.path)
        for k, m in zip(f.path, f.path[1:]):
            assert flow[(k, m)] > 0, (f, (k, m))
            per_link[(k, m)] += f.wh
            rent[(k, m)] += cost(f.wh, price[m]) - cost(f.wh, price[k])
        per_order[f.ask_id] += f.wh
        per_order[f.bid_id] += f.wh
    assert dict(per_order) == took
    assert {k: v for k, v in flow.items() if v} == dict(per_link)

    # rent: per link, the sum over its trades of cost(w, p_to) - cost(w, p_from), never negative;
    # each trade's term lies between floor and ceil of w x (p_to - p_from) / 1000, so the link's
    # rent is within one unit per trade of (p_to - p_from) x flow / 1000; and the total is what
    # the buyers' zone prices exceed the sellers' by, trade by trade
    for (i, j), lk in links.items():
        assert lk.rent == rent.get((i, j), 0) >= 0, ((i, j), lk.rent)
        step = price[j] - price[i]
        crossing = [f.wh for f in result.fills if (i, j) in zip(f.path, f.path[1:])]
        assert sum(w * step // 1000 for w in crossing) <= lk.rent \
            <= sum(-(-w * step // 1000) for w in crossing)
        assert abs(1000 * lk.rent - step * lk.flow_wh) < 1000 * max(1, len(crossing))
    assert result.rent == sum(cost(f.wh, f.buyer_price) - cost(f.wh, f.seller_price)
                              for f in result.fills)


def shuffled(region: Region, rng: random.Random) -> Region:
    books = [ZoneBook(b.zone, rng.sample(b.asks, len(b.asks)), rng.sample(b.bids, len(b.bids)),
                      b.fee, b.import_room, b.export_room) for b in region.books]
    rng.shuffle(books)
    items = list(region.link_room.items())
    rng.shuffle(items)
    return Region(books, dict(items), region.max_price)


def _clear(region: Region) -> Clearing:
    return clear(region.books, region.link_room, region.max_price)


# --- the properties ------------------------------------------------------------------------------
@_SETTINGS
@given(regions(), st.randoms(use_true_random=False))
def test_coupled_clearing_is_welfare_optimal_feasible_and_priced_by_its_rule(region, rng):
    before = copy.deepcopy(region)
    result = _clear(region)
    assert region == before, "clear mutated its arguments"
    check_clearing(region, result)
    assert _clear(shuffled(region, rng)) == result


@_SETTINGS
@given(regions(both_ways=True), st.randoms(use_true_random=False))
def test_links_both_ways_with_room_to_spare_give_one_price_and_the_clearing_is_optimal(region, rng):
    result = _clear(region)
    check_clearing(region, result)        # one price where connected and nothing congested
    assert _clear(shuffled(region, rng)) == result


@_SETTINGS
@given(regions(both_ways=True, top_price=4, top_fee=1), st.randoms(use_true_random=False))
def test_ties_of_price_still_clear_optimally_and_deterministically(region, rng):
    result = _clear(region)
    check_clearing(region, result)
    assert _clear(shuffled(region, rng)) == result


@_SETTINGS
@given(regions(ask_green=False), st.randoms(use_true_random=False))
def test_green_only_bids_leave_non_green_asks_out_and_the_rest_is_optimal(region, rng):
    zone0 = region.books[0]
    # a green-only bid takes part (the cheapest possible, so it need not trade)
    green_bid = (1, 999, _owner(2, 9), 1000, True)
    region.books[0] = ZoneBook(zone0.zone, zone0.asks, zone0.bids + [green_bid], zone0.fee,
                               zone0.import_room, zone0.export_room)
    result = _clear(region)
    check_clearing(region, result)
    assert _clear(shuffled(region, rng)) == result


@_SETTINGS
@given(regions(ask_green=False))
def test_without_green_only_bids_non_green_asks_take_part(region):
    for k, b in enumerate(region.books):
        region.books[k] = ZoneBook(b.zone, b.asks, [e[:GREEN] + (False,) for e in b.bids],
                                   b.fee, b.import_room, b.export_room)
    check_clearing(region, _clear(region))
