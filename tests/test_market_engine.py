"""The matching engine alone: price-time priority, partial fills, resting price, self-trades, green,
grid fees, room limits, bounded work, and properties over random books."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pallets import market_engine as me
from pallets.market_engine import Incoming, insert_resting, match, remove_resting

A, B, C, D = b"a" * 32, b"b" * 32, b"c" * 32, b"d" * 32
BIG = 10**12


def no_fee(_f, _t):
    return 0


def unlimited(_f, _t, wh):
    return wh


def book(is_bid: bool, *entries) -> list:
    side: list = []
    for e in entries:
        insert_resting(side, e, is_bid)
    return side


def ask(price, oid, owner=A, wh=100, green=True):
    return (price, oid, owner, wh, green)


bid = ask


def run(incoming, sides, fee_for=no_fee, room_for=unlimited, max_fills=32, max_scan=128):
    return match(incoming, sides, fee_for, room_for, max_fills, max_scan)


# --- priority --------------------------------------------------------------------------------
def test_book_sides_keep_price_time_priority():
    asks = book(False, ask(30, 5), ask(10, 7), ask(10, 2), ask(20, 1))
    assert [e[1] for e in asks] == [2, 7, 1, 5]
    bids = book(True, bid(30, 5), bid(10, 7), bid(30, 2), bid(20, 1))
    assert [e[1] for e in bids] == [2, 5, 1, 7]


def test_remove_resting_finds_the_order_by_its_key():
    asks = book(False, ask(30, 5), ask(10, 7), ask(10, 2))
    assert remove_resting(asks, 7, 10, False)[1] == 7
    assert remove_resting(asks, 7, 10, False) is None
    assert [e[1] for e in asks] == [2, 5]


def test_incoming_bid_takes_cheapest_then_earliest_ask():
    asks = book(False, ask(30, 1), ask(10, 3), ask(10, 2))
    r = run(Incoming(9, B, 1, True, 40, 250), {1: asks})
    assert [(f.ask_id, f.wh, f.price_per_kwh) for f in r.fills] == [(2, 100, 10), (3, 100, 10), (1, 50, 30)]
    assert r.remaining_wh == 0
    assert asks == [ask(30, 1, wh=50)]
    assert r.touched_zones == [1]


def test_incoming_ask_takes_highest_then_earliest_bid():
    bids = book(True, bid(10, 1), bid(30, 3), bid(30, 2))
    r = run(Incoming(9, B, 1, False, 20, 500), {1: bids})
    assert [(f.bid_id, f.wh, f.price_per_kwh) for f in r.fills] == [(2, 100, 30), (3, 100, 30)]
    assert r.remaining_wh == 300          # the bid at 10 does not cross an ask at 20
    assert bids == [bid(10, 1)]


def test_no_cross_no_fill():
    asks = book(False, ask(50, 1))
    r = run(Incoming(9, B, 1, True, 49, 100), {1: asks})
    assert r.fills == [] and r.remaining_wh == 100 and r.touched_zones == []
    assert asks == [ask(50, 1)]


def test_trade_at_resting_price_both_ways():
    r = run(Incoming(9, B, 1, True, 100, 10), {1: book(False, ask(60, 1))})
    assert r.fills[0].price_per_kwh == 60 and r.fills[0].resting_id == 1
    r = run(Incoming(9, B, 1, False, 60, 10), {1: book(True, bid(100, 1))})
    assert r.fills[0].price_per_kwh == 100 and r.fills[0].resting_id == 1
    assert (r.fills[0].buyer, r.fills[0].seller) == (A, B)


def test_partial_fill_keeps_time_priority_of_the_resting_order():
    asks = book(False, ask(10, 1, wh=100), ask(10, 2, wh=100))
    run(Incoming(9, B, 1, True, 10, 30), {1: asks})
    assert asks == [ask(10, 1, wh=70), ask(10, 2, wh=100)]


# --- self-trades and green -------------------------------------------------------------------
def test_self_trade_is_skipped_and_stays_in_the_book():
    asks = book(False, ask(10, 1, owner=B), ask(20, 2, owner=A))
    r = run(Incoming(9, B, 1, True, 30, 150), {1: asks})
    assert [(f.ask_id, f.wh) for f in r.fills] == [(2, 100)]
    assert asks == [ask(10, 1, owner=B)]
    assert r.remaining_wh == 50


def test_ineligible_resting_owner_is_skipped():
    asks = book(False, ask(10, 1, owner=C), ask(20, 2, owner=A))
    r = match(Incoming(9, B, 1, True, 30, 150), {1: asks}, no_fee, unlimited, 32, 128,
              eligible=lambda owner: owner != C)
    assert [f.ask_id for f in r.fills] == [2]
    assert asks == [ask(10, 1, owner=C)]


def test_green_only_bid_skips_grey_asks():
    asks = book(False, ask(10, 1, green=False), ask(20, 2, green=True))
    r = run(Incoming(9, B, 1, True, 30, 100, green=True), {1: asks})
    assert [f.ask_id for f in r.fills] == [2]
    r = run(Incoming(10, B, 1, True, 30, 100, green=False), {1: asks})
    assert [f.ask_id for f in r.fills] == [1]


def test_grey_ask_skips_green_only_bids():
    bids = book(True, bid(30, 1, green=True), bid(20, 2, green=False))
    r = run(Incoming(9, B, 1, False, 10, 100, green=False), {1: bids})
    assert [f.bid_id for f in r.fills] == [2]


# --- grid fees -------------------------------------------------------------------------------
def fees(table):
    return lambda f, t: table.get((f, t))


def test_bid_ranks_asks_by_price_plus_route_fee():
    table = {(1, 1): 5, (2, 1): 30}
    sides = {1: book(False, ask(40, 2)), 2: book(False, ask(20, 1))}
    r = run(Incoming(9, B, 1, True, 100, 150), sides, fees(table))
    # zone 1 ask costs 45 all-in, zone 2 ask 50: zone 1 first although dearer at the meter
    assert [(f.ask_id, f.from_zone, f.fee_per_kwh) for f in r.fills] == [(2, 1, 5), (1, 2, 30)]


def test_cross_zone_match_needs_the_bid_to_cover_the_fee():
    sides = {2: book(False, ask(20, 1))}
    assert run(Incoming(9, B, 1, True, 49, 10), sides, fees({(2, 1): 30})).fills == []
    r = run(Incoming(9, B, 1, True, 50, 10), sides, fees({(2, 1): 30}))
    assert r.fills[0].price_per_kwh + r.fills[0].fee_per_kwh == 50


def test_no_route_no_match():
    sides = {2: book(False, ask(1, 1))}
    assert run(Incoming(9, B, 1, True, 100, 10), sides, fees({(1, 1): 0})).fills == []


def test_ask_against_resting_bid_pays_bid_limit_net_of_fee():
    sides = {2: book(True, bid(100, 1))}
    r = run(Incoming(9, B, 1, False, 50, 10), sides, fees({(1, 2): 30}))
    f = r.fills[0]
    assert (f.from_zone, f.to_zone, f.price_per_kwh, f.fee_per_kwh) == (1, 2, 70, 30)
    assert run(Incoming(9, B, 1, False, 71, 10), {2: book(True, bid(100, 1))}, fees({(1, 2): 30})).fills == []


# --- room and bounds -------------------------------------------------------------------------
def test_room_limits_fills_and_closes_the_route():
    granted = []

    def room(f, t, wh):
        g = min(wh, 120 - sum(granted))
        granted.append(g)
        return g

    asks = book(False, ask(10, 1), ask(10, 2), ask(10, 3))
    r = run(Incoming(9, B, 1, True, 10, 300), {1: asks}, room_for=room)
    assert [f.wh for f in r.fills] == [100, 20]
    assert r.remaining_wh == 180
    assert asks == [ask(10, 2, wh=80), ask(10, 3)]


def test_closed_route_does_not_stop_other_routes():
    def room(f, t, wh):
        return 0 if f == 1 else wh

    sides = {1: book(False, ask(1, 1)), 2: book(False, ask(5, 2))}
    r = run(Incoming(9, B, 1, True, 10, 100), sides, room_for=room)
    assert [f.ask_id for f in r.fills] == [2]


def test_max_fills_bounds_the_work():
    asks = book(False, *(ask(10, i, wh=1) for i in range(10)))
    r = run(Incoming(99, B, 1, True, 10, 100), {1: asks}, max_fills=3)
    assert len(r.fills) == 3 and r.remaining_wh == 97 and len(asks) == 7


def test_max_scan_counts_skipped_orders():
    asks = book(False, *(ask(10, i, owner=B, wh=1) for i in range(10)), ask(10, 50))
    r = run(Incoming(99, B, 1, True, 10, 100), {1: asks}, max_scan=5)
    assert r.fills == [] and len(asks) == 11


# --- properties ------------------------------------------------------------------------------
OWNERS = [A, B, C, D]


@st.composite
def scenario(draw):
    zones = [1, 2, 3]
    is_bid = draw(st.booleans())
    sides = {}
    oid = 0
    for z in zones:
        entries = []
        for _ in range(draw(st.integers(0, 8))):
            oid += 1
            entries.append((draw(st.integers(1, 60)), oid, draw(st.sampled_from(OWNERS)),
                            draw(st.integers(1, 50)), draw(st.booleans())))
        sides[z] = book(not is_bid, *entries)
    table = {(f, t): draw(st.integers(0, 15)) for f in zones for t in zones if draw(st.booleans())}
    zone_room = {z: draw(st.integers(0, 200)) for z in zones}
    link_room = {(f, t): draw(st.integers(0, 100)) for f in zones for t in zones if f != t}
    incoming = Incoming(1000, draw(st.sampled_from(OWNERS)), draw(st.sampled_from(zones)), is_bid,
                        draw(st.integers(1, 80)), draw(st.integers(1, 300)), draw(st.booleans()))
    return incoming, sides, table, zone_room, link_room, draw(st.integers(1, 40))


@settings(max_examples=300, deadline=None)
@given(scenario())
def test_fills_never_exceed_room_never_cross_and_conserve_quantity(s):
    incoming, sides, table, zone_room, link_room, max_fills = s
    before = {e[1]: e for side in sides.values() for e in side}
    used = {"zone": dict.fromkeys(zone_room, 0), "link": dict.fromkeys(link_room, 0)}

    def room_for(f, t, wh):
        g = min(wh, zone_room[f] - used["zone"][f], zone_room[t] - used["zone"][t])
        if f != t:
            g = min(g, link_room[(f, t)] - used["link"][(f, t)])
        g = max(g, 0)
        used["zone"][f] += g
        if t != f:
            used["zone"][t] += g
            used["link"][(f, t)] += g
        return g

    r = match(incoming, sides, lambda f, t: table.get((f, t)), room_for, max_fills, 64)
    assert len(r.fills) <= max_fills
    # no fill exceeds room: the zones' and links' use stays within what room_for had
    for z, u in used["zone"].items():
        assert u <= zone_room[z]
    for f in r.fills:
        resting = before[f.ask_id if incoming.is_bid else f.bid_id]
        limit, ask_price = (incoming.price, resting[0]) if incoming.is_bid else (resting[0], incoming.price)
        fee = table[(f.from_zone, f.to_zone)]
        assert f.fee_per_kwh == fee
        assert ask_price + fee <= limit                         # never crosses the wrong way
        assert f.price_per_kwh + f.fee_per_kwh <= limit         # the buyer never pays above its limit
        assert f.price_per_kwh >= ask_price                     # the seller never gets less than asked
        assert f.buyer != f.seller
        assert f.wh > 0
    # quantities are conserved: incoming and every resting order
    assert r.remaining_wh + sum(f.wh for f in r.fills) == incoming.quantity_wh
    after = {e[1]: e for side in sides.values() for e in side}
    for oid, e in before.items():
        taken = sum(f.wh for f in r.fills if oid in (f.ask_id, f.bid_id))
        assert after.get(oid, (0, 0, 0, 0))[3] == e[3] - taken
        assert (oid in after) == (e[3] - taken > 0)
    # books stay in priority order
    for side in sides.values():
        key = me.ask_priority if incoming.is_bid else me.bid_priority
        assert side == sorted(side, key=key)


@settings(max_examples=200, deadline=None)
@given(scenario())
def test_fills_come_in_priority_order(s):
    incoming, sides, table, _zr, _lr, max_fills = s
    r = match(incoming, sides, lambda f, t: table.get((f, t)), unlimited, max_fills, 64)
    ranks = []
    for f in r.fills:
        zone = f.from_zone if incoming.is_bid else f.to_zone
        resting_price = f.price_per_kwh if incoming.is_bid else f.price_per_kwh + f.fee_per_kwh
        eff = resting_price + f.fee_per_kwh if incoming.is_bid else -(resting_price - f.fee_per_kwh)
        ranks.append((eff, f.resting_id))
        assert zone in sides
    assert ranks == sorted(ranks)
