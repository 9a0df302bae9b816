"""Coupled zonal clearing (pallets.market_coupling), hand-worked textbook cases.

Each case states its orders, works out the clearing by hand in the comments (welfare-maximising
flows, the zone prices of the documented midpoint rule, the congestion rent) and checks the module
against it. tests/test_coupling_lp.py checks random instances against an LP solver.
"""
from __future__ import annotations

from pallets.market_coupling import ZoneBook, clear
from pallets.market_engine import cost

MAX_PRICE = 10_000_000
BIG = 10**12
KWH = 1000


def owner(n: int) -> bytes:
    return bytes([n]) * 32


def ask(price: int, oid: int, who: int, kwh: int) -> tuple:
    return (price, oid, owner(who), kwh * KWH, True)


def bid(price: int, oid: int, who: int, kwh: int, green: bool = False) -> tuple:
    return (price, oid, owner(who), kwh * KWH, green)


def zone(z: int, asks=(), bids=(), fee: int = 0, imp: int = BIG, exp: int = BIG) -> ZoneBook:
    return ZoneBook(z, list(asks), list(bids), fee, imp, exp)


def both_ways(i: int, j: int, kwh: int) -> dict:
    return {(i, j): kwh * KWH, (j, i): kwh * KWH}


def prices(c) -> dict:
    return {z.zone: z.price for z in c.zones}


def link(c, i: int, j: int):
    return next(x for x in c.links if (x.from_zone, x.to_zone) == (i, j))


# Two zones with linear supply steps. Zone 1 (a sunny feeder): 100 kWh at 10 and 100 kWh at 30.
# Zone 2: 100 kWh at 50, and a buyer of 150 kWh up to 60. No grid fee, to read the prices plainly.
TWO_ZONES = [zone(1, asks=[ask(10, 1, 1, 100), ask(30, 2, 1, 100)]),
             zone(2, asks=[ask(50, 3, 2, 100)], bids=[bid(60, 4, 3, 150)])]


def test_two_zones_congested_link_splits_prices_and_earns_the_rent():
    # Link 80 kWh. The buyer takes 80 kWh of zone 1's 10-ask (gain 50) until the link is full, then
    # 70 kWh of zone 2's 50-ask (gain 10). Zone 1's 10-ask is partly filled: p1 = 10; zone 2's
    # 50-ask is partly filled: p2 = 50. Rent = (50 - 10) x 80 kWh = 3,200.
    c = clear(TWO_ZONES, both_ways(1, 2, 80), MAX_PRICE)
    assert prices(c) == {1: 10, 2: 50}
    assert c.accepted == {1: 80 * KWH, 3: 70 * KWH, 4: 150 * KWH}
    assert link(c, 1, 2).flow_wh == 80 * KWH and link(c, 1, 2).congested
    assert link(c, 2, 1).flow_wh == 0 and not link(c, 2, 1).congested
    assert link(c, 1, 2).rent == 3_200 == c.rent
    z2 = next(z for z in c.zones if z.zone == 2)
    assert (z2.bought_wh, z2.sold_wh) == (150 * KWH, 70 * KWH)


def test_two_zones_without_congestion_have_one_price_and_no_rent():
    # Link 200 kWh: zone 1's asks serve the whole 150 kWh (10-ask fully, 30-ask 50 kWh); the link
    # carries 150 < 200, so both zones sit at the 30-ask's price and no rent arises.
    c = clear(TWO_ZONES, both_ways(1, 2, 200), MAX_PRICE)
    assert prices(c) == {1: 30, 2: 30}
    assert c.accepted == {1: 100 * KWH, 2: 50 * KWH, 4: 150 * KWH}
    assert link(c, 1, 2).flow_wh == 150 * KWH and not link(c, 1, 2).congested
    assert c.rent == 0
    assert {(f.ask_id, f.from_zone, f.to_zone, f.seller_price, f.buyer_price) for f in c.fills} == {
        (1, 1, 2, 30, 30), (2, 1, 2, 30, 30)}


def test_three_zones_in_a_line_price_the_congested_link_only():
    # A feeder 1 - 2 - 3. Zone 1: 200 kWh at 20. Zone 2: 50 kWh at 60 and a buyer of 100 kWh up to
    # 100. Zone 3: a buyer of 150 kWh up to 120. Links 1-2 300 kWh, 2-3 80 kWh (both ways).
    # Best gains first: zone 1 -> zone 3 (100) fills the 2-3 link with 80 kWh through zone 2; then
    # zone 1 -> zone 2 (80) serves zone 2's 100 kWh. Zone 2's own ask (60) is not needed.
    # Prices: p1 = 20 (zone 1's ask partly filled); 1-2 has room both ways, so p2 = p1 = 20; zone
    # 3's bid is partly filled: p3 = 120. Rent on 2 -> 3 = (120 - 20) x 80 kWh = 8,000; none on 1 -> 2.
    books = [zone(1, asks=[ask(20, 1, 1, 200)]),
             zone(2, asks=[ask(60, 2, 2, 50)], bids=[bid(100, 3, 3, 100)]),
             zone(3, bids=[bid(120, 4, 4, 150)])]
    c = clear(books, {**both_ways(1, 2, 300), **both_ways(2, 3, 80)}, MAX_PRICE)
    assert prices(c) == {1: 20, 2: 20, 3: 120}
    assert c.accepted == {1: 180 * KWH, 3: 100 * KWH, 4: 80 * KWH}
    assert (link(c, 1, 2).flow_wh, link(c, 1, 2).congested, link(c, 1, 2).rent) == (180 * KWH, False, 0)
    assert (link(c, 2, 3).flow_wh, link(c, 2, 3).congested, link(c, 2, 3).rent) == (80 * KWH, True, 8_000)
    through = [f for f in c.fills if f.to_zone == 3]
    assert [(f.path, f.wh, f.seller_price, f.buyer_price) for f in through] == [((1, 2, 3), 80 * KWH, 20, 120)]


def test_coupled_flow_serves_the_higher_value_not_the_earlier_order():
    # Zone 1: 150 kWh at 30; a local buyer of 100 kWh up to 40 placed FIRST (id 2). Zone 2: a buyer
    # of 100 kWh up to 90 placed later (id 3). Link 1 -> 2 100 kWh. Continuous trading would have
    # filled the earlier local bid first; the coupled clearing sends 100 kWh to zone 2 (gain 60)
    # and gives the local bid what is left, 50 kWh (gain 10). p1 = 40 (the local bid is partly
    # filled); zone 2 lies in [40, 90] (the link's reverse room ties p1 <= p2): midpoint 65.
    # Rent = (65 - 40) x 100 kWh = 2,500.
    books = [zone(1, asks=[ask(30, 1, 1, 150)], bids=[bid(40, 2, 2, 100)]),
             zone(2, bids=[bid(90, 3, 3, 100)])]
    c = clear(books, both_ways(1, 2, 100), MAX_PRICE)
    assert c.accepted == {1: 150 * KWH, 2: 50 * KWH, 3: 100 * KWH}
    assert prices(c) == {1: 40, 2: 65}
    assert link(c, 1, 2).congested and link(c, 1, 2).rent == 2_500


def test_fees_are_the_buyer_zones_and_bound_what_a_buyer_pays():
    # Zone 2's local fee 15: its buyer (all-in 60) values energy at 45. Zone 1's ask at 40 crosses.
    # p1 = 40 (ask partly filled), p2 = p1 (link with room both ways): 40. The buyer pays
    # 40 + 15 = 55 <= 60 per kWh, the seller gets 40, the fee of 15 is zone 2's.
    books = [zone(1, asks=[ask(40, 1, 1, 100)], fee=5), zone(2, bids=[bid(60, 2, 2, 50)], fee=15)]
    c = clear(books, both_ways(1, 2, 500), MAX_PRICE)
    (f,) = c.fills
    assert (f.seller_price, f.buyer_price, f.fee_per_kwh, f.wh) == (40, 40, 15, 50 * KWH)
    assert cost(f.wh, f.buyer_price) + cost(f.wh, f.fee_per_kwh) <= cost(f.wh, 60)


def test_a_one_way_link_carries_nothing_back():
    # Only 2 -> 1 exists; zone 1's cheap ask cannot reach zone 2's buyer.
    books = [zone(1, asks=[ask(10, 1, 1, 10)]), zone(2, bids=[bid(90, 2, 2, 10)])]
    c = clear(books, {(2, 1): 100 * KWH}, MAX_PRICE)
    assert c.accepted == {} and c.fills == [] and c.rent == 0


def test_counter_flows_net_on_a_link():
    # Zone 1 needs 100 kWh more than it has cheaply, zone 2 likewise in the other direction of a 50 kWh
    # link: the optimal flows would run both ways; netted, the link carries the difference only.
    books = [zone(1, asks=[ask(10, 1, 1, 100)], bids=[bid(50, 2, 2, 150)]),
             zone(2, asks=[ask(20, 3, 3, 100)], bids=[bid(50, 4, 4, 50)])]
    c = clear(books, both_ways(1, 2, 50), MAX_PRICE)
    net = link(c, 2, 1).flow_wh - link(c, 1, 2).flow_wh
    assert link(c, 1, 2).flow_wh == 0 or link(c, 2, 1).flow_wh == 0
    assert net == 50 * KWH
    assert c.accepted == {1: 100 * KWH, 2: 150 * KWH, 3: 100 * KWH, 4: 50 * KWH}


def test_zone_capacity_curtails_and_green_only_bids_meet_only_green_asks():
    grey = (5, 1, owner(1), 100 * KWH, False)
    books = [zone(1, asks=[grey, ask(30, 2, 2, 100)], bids=[bid(90, 3, 3, 50, green=True)], imp=40 * KWH)]
    c = clear(books, {}, MAX_PRICE)
    assert c.accepted == {2: 40 * KWH, 3: 40 * KWH}          # import room 40 kWh; grey ask left out
    assert all(f.ask_id == 2 for f in c.fills)


def test_the_clearing_does_not_depend_on_the_order_books_arrive_in():
    books = [zone(3, bids=[bid(120, 4, 4, 150)]),
             zone(1, asks=[ask(20, 1, 1, 200)]),
             zone(2, asks=[ask(60, 2, 2, 50)], bids=[bid(100, 3, 3, 100)])]
    links = {**both_ways(1, 2, 300), **both_ways(2, 3, 80)}
    a = clear(books, links, MAX_PRICE)
    b = clear(list(reversed(books)), dict(reversed(list(links.items()))), MAX_PRICE)
    assert a == b
