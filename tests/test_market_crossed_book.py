"""A placement never leaves a book crossed (issue 12, defect 2; market docstring "Bounded work").

A resting bid and a resting ask are crossed when they could trade with each other: a route from
the ask's zone to the bid's with a grid fee and room left, ask price + fee <= bid price, different
owners, the green rule met, both owners licensed, the gate open. An incoming order whose matching
stops at max_fills_per_order or max_scan_per_order while it still crosses such an order does not
rest: its remainder is trimmed (OrderTrimmed), a bid's escrow for it returns at once.

Through the composed runtime with the dev genesis (cast as in tests/test_market.py), and the
engine's rule 9 alone as a property over random books."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pallets import grid, identity, market, timestamp
from pallets import market_engine as me
from pallets.identity import Role
from pallets.market import ASK, BID, ESCROW_ACCOUNT, Config, escrow_for
from pallets.market_engine import Incoming, cost, insert_resting
from tests.runtime_harness import events_named
from tests.test_market import (_RUNTIME, BOB, CHARLIE, DAVE, FERDIE, T, ask, bid, cancel, check_invariants,
                               failure, new_chain, ok, stable, trades_of)


# --- the definition, checked pair by pair -----------------------------------------------------
def _room_left(from_zone: int, to_zone: int, t: int) -> int:
    """Room for one more Wh from `from_zone` to `to_zone` in t: zone envelopes, and the link's limit
    on the net flow (market docstring "Capacity"); computed here from the stored flows."""
    imp_cap = market.wh_in_interval(grid.capacity_for(to_zone, t)[0])
    exp_cap = market.wh_in_interval(grid.capacity_for(from_zone, t)[1])
    room = min(exp_cap - market.flow(from_zone, t).export_wh, imp_cap - market.flow(to_zone, t).import_wh)
    if from_zone != to_zone:
        limit_w = grid.link_limit_w(from_zone, to_zone)
        if not limit_w:
            return 0
        net = market.link_flow(from_zone, to_zone, t) - market.link_flow(to_zone, from_zone, t)
        room = min(room, market.wh_in_interval(limit_w) - net)
    return room


def _could_trade(bid_zone: int, b: tuple, ask_zone: int, a: tuple, t: int) -> bool:
    fee = grid.grid_fee_per_kwh(ask_zone, bid_zone, t)
    if fee is None or grid.is_paused(ask_zone) or grid.is_paused(bid_zone):
        return False
    buyer_ok = any(identity.is_licensed(b[me.OWNER], r) for r in (Role.PROSUMER, Role.CONSUMER))
    seller_ok = identity.is_licensed(a[me.OWNER], Role.PROSUMER)
    return (a[me.PRICE] + fee <= b[me.PRICE] and a[me.OWNER] != b[me.OWNER]
            and (a[me.GREEN] or not b[me.GREEN]) and buyer_ok and seller_ok
            and market.gate_open(t, timestamp.now_s()) and _room_left(ask_zone, bid_zone, t) > 0)


def crossed_pairs(zone: int, interval: int) -> list[tuple[int, int]]:
    """(bid id, ask id) of every crossed pair with an order resting in `zone` for `interval`, each
    checked by the definition (call inside chain.read). Continuous zones only: a call-auction or
    coupled book crosses by design until it clears at gate closure."""
    zones = [z for z in sorted(set(market.open_books.get(interval)) | {zone})
             if market.zone_mode(z) == market.CONTINUOUS]
    pairs = set()
    for bid_zone in zones:
        for ask_zone in zones:
            if zone not in (bid_zone, ask_zone):
                continue
            for b in market.book_side(bid_zone, interval, BID):
                for a in market.book_side(ask_zone, interval, ASK):
                    if _could_trade(bid_zone, b, ask_zone, a, interval):
                        pairs.add((b[me.ORDER_ID], a[me.ORDER_ID]))
    return sorted(pairs)


def no_crossed_book(chain, t: int = T) -> list:
    return chain.read(lambda: sorted({p for z in (1, 2) for p in crossed_pairs(z, t)}))


def trimmed(result) -> list:
    return events_named(result, _RUNTIME, "market", "OrderTrimmed")


# --- a bid against many small asks --------------------------------------------------------------
def _bob_asks(chain, n: int, wh: int = 10) -> None:
    base = chain.nonce(BOB.public_key)
    for start in range(0, n, 10):
        ok(chain.block(*(ask(chain, BOB, 50_000 + i, wh, nonce=base + i) for i in range(start, min(n, start + 10)))))


def test_a_bid_stopped_by_max_fills_does_not_rest_crossed_and_its_escrow_returns():
    chain = new_chain()
    _bob_asks(chain, 40)                                   # orders 0..39, 10 Wh each at 50,000..50,039
    assert Config.max_fills_per_order == 32
    before = stable(chain, CHARLIE)
    r = ok(chain.block(bid(chain, CHARLIE, 100_000, 1_000)))   # order 40
    fills = trades_of(r)
    assert [tm[3] for tm in fills] == list(range(32))      # the 32 cheapest asks, in price order
    assert no_crossed_book(chain) == []
    paid = sum(cost(tm[8], tm[9]) + cost(tm[8], tm[10]) for tm in fills)
    assert trimmed(r) == [[40, CHARLIE.public_key, 1_000 - 320, escrow_for(680, 100_000), "max_fills_per_order"]]
    assert stable(chain, CHARLIE) == before - paid         # the trimmed part's escrow came back at once
    assert chain.read(lambda: (market.order(40), market.book_side(1, T, BID))) == (None, ())
    assert len(chain.read(lambda: market.book_side(1, T, ASK))) == 8
    check_invariants(chain)
    # the trades stand; placing the rest again matches on
    r = ok(chain.block(bid(chain, CHARLIE, 100_000, 680)))
    assert [tm[3] for tm in trades_of(r)] == list(range(32, 40))
    assert no_crossed_book(chain) == [] and trimmed(r) == []
    assert chain.read(lambda: market.book_side(1, T, BID))[0][me.REMAINING] == 600
    check_invariants(chain)


def test_an_ask_stopped_by_max_fills_does_not_rest_crossed():
    chain = new_chain()
    base = chain.nonce(CHARLIE.public_key)
    for start in range(0, 40, 10):
        ok(chain.block(*(bid(chain, CHARLIE, 200_000 - i, 10, nonce=base + i) for i in range(start, start + 10))))
    r = ok(chain.block(ask(chain, BOB, 50_000, 1_000)))      # order 40
    assert [tm[2] for tm in trades_of(r)] == list(range(32))
    assert trimmed(r) == [[40, BOB.public_key, 680, 0, "max_fills_per_order"]]
    assert no_crossed_book(chain) == []
    assert chain.read(lambda: (market.order(40), market.book_side(1, T, ASK))) == (None, ())
    check_invariants(chain)


def test_a_bid_stopped_by_max_scan_does_not_rest_crossed(monkeypatch):
    """Bob's own cheap asks use up the scan (self-trades are skipped but examined); Ferdie's ask in
    zone 2 still crosses Bob's bid: the bid's remainder is trimmed, not rested."""
    monkeypatch.setattr(Config, "max_scan_per_order", 5)
    chain = new_chain()
    ok(chain.block(*(ask(chain, BOB, 10_000 + i, 100, nonce=i) for i in range(5))))   # orders 0..4
    ok(chain.block(ask(chain, FERDIE, 10_000, 100)))                                   # order 5: 45,000 all-in
    r = ok(chain.block(bid(chain, BOB, 60_000, 100)))                                  # order 6
    assert trades_of(r) == []
    assert trimmed(r) == [[6, BOB.public_key, 100, escrow_for(100, 60_000), "max_scan_per_order"]]
    assert no_crossed_book(chain) == []
    assert stable(chain, ESCROW_ACCOUNT) == 0
    check_invariants(chain)


def test_a_remainder_crossing_nothing_it_could_trade_with_rests(monkeypatch):
    """Stopped by the scan bound, but what still crosses is Bob's own ask: not a crossed pair, so
    the bid rests (it would trade with a later ask from someone else)."""
    monkeypatch.setattr(Config, "max_scan_per_order", 5)
    chain = new_chain()
    ok(chain.block(*(ask(chain, BOB, 10_000 + i, 100, nonce=i) for i in range(6))))   # orders 0..5
    r = ok(chain.block(bid(chain, BOB, 60_000, 100)))                                  # order 6
    assert trades_of(r) == [] and trimmed(r) == []
    assert chain.read(lambda: market.book_side(1, T, BID))[0][me.ORDER_ID] == 6
    assert no_crossed_book(chain) == []
    check_invariants(chain)


def test_a_remainder_rests_when_the_last_allowed_fill_took_the_last_crossing_ask():
    chain = new_chain()
    _bob_asks(chain, 32)
    ok(chain.block(ask(chain, BOB, 90_000, 10, nonce=32)))   # order 32: does not cross a 100,000 bid + fee
    r = ok(chain.block(bid(chain, CHARLIE, 100_000, 1_000)))
    assert len(trades_of(r)) == 32 and trimmed(r) == []
    assert chain.read(lambda: market.book_side(1, T, BID)) == ((100_000, 33, CHARLIE.public_key, 680, False),)
    assert no_crossed_book(chain) == []
    check_invariants(chain)


def test_a_remainder_rests_when_the_crossing_asks_left_have_no_room():
    """Stopped at max_fills with an ask still crossing in zone 2 (ranked after the 32 filled), but
    the link 2 -> 1 is full: no pair could trade, so the remainder rests."""
    chain = new_chain()
    ok(chain.block(chain.xt(DAVE, "grid", "set_link_limit", 2, 1, 400)))     # 100 Wh per interval
    ok(chain.block(ask(chain, FERDIE, 1_000, 100)))                                     # order 0, fills the link
    ok(chain.block(bid(chain, CHARLIE, 200_000, 100)))                                  # order 1
    ok(chain.block(ask(chain, FERDIE, 40_000, 100)))                                    # order 2: 75,000 all-in
    _bob_asks(chain, 32)                                                                # orders 3..34
    r = ok(chain.block(bid(chain, CHARLIE, 100_000, 1_000)))                            # order 35
    assert len(trades_of(r)) == 32 and trimmed(r) == []
    assert chain.read(lambda: market.order(35)).remaining_wh == 680
    assert no_crossed_book(chain) == []
    check_invariants(chain)


def test_a_trimmed_bid_can_be_cancelled_no_more_and_leaves_no_lock():
    chain = new_chain()
    _bob_asks(chain, 40)
    ok(chain.block(bid(chain, CHARLIE, 100_000, 1_000)))
    assert failure(chain.block(cancel(chain, CHARLIE, 40))) == market.Error.UnknownOrder.message
    held = chain.read(lambda: sum(market.escrowed_for_trade(i) for i in range(32)))
    assert stable(chain, ESCROW_ACCOUNT) == held


# --- the engine's rule 9 alone --------------------------------------------------------------------
OWNERS = [b"a", b"b", b"c"]


@st.composite
def books(draw):
    zones = [1, 2]
    sides = {}
    oid = 0
    is_bid = draw(st.booleans())
    for z in zones:
        side: list = []
        for _ in range(draw(st.integers(0, 12))):
            insert_resting(side, (draw(st.integers(1, 30)), oid, draw(st.sampled_from(OWNERS)),
                                  draw(st.integers(1, 20)), draw(st.booleans())), not is_bid)
            oid += 1
        sides[z] = side
    fees = {(f, t): draw(st.one_of(st.none(), st.integers(0, 5))) for f in zones for t in zones}
    room = {(f, t): draw(st.integers(0, 60)) for f in zones for t in zones}
    incoming = Incoming(oid, draw(st.sampled_from(OWNERS)), draw(st.sampled_from(zones)), is_bid,
                        draw(st.integers(1, 30)), draw(st.integers(1, 200)), draw(st.booleans()))
    eligible = {o: draw(st.booleans()) or o == b"a" for o in OWNERS}
    return incoming, sides, fees, room, eligible, draw(st.integers(1, 6)), draw(st.integers(1, 10))


@settings(max_examples=400, deadline=None)
@given(books())
def test_the_engine_flags_exactly_the_remainders_that_would_rest_crossed(case):
    incoming, sides, fees, room, eligible, max_fills, max_scan = case

    def room_for(f, t, wh):
        g = max(0, min(wh, room[(f, t)]))
        room[(f, t)] -= g
        return g

    r = me.match(incoming, sides, lambda f, t: fees[(f, t)], room_for, max_fills, max_scan,
                 lambda o: eligible[o], lambda f, t: max(0, room[(f, t)]))
    crossing_left = []
    for zone, side in sides.items():
        f, t = (zone, incoming.zone) if incoming.is_bid else (incoming.zone, zone)
        fee = fees[(f, t)]
        for e in side:
            crosses = fee is not None and (e[0] + fee <= incoming.price if incoming.is_bid
                                           else incoming.price + fee <= e[0])
            green_ok = (e[4] or not incoming.green) if incoming.is_bid else (incoming.green or not e[4])
            if crosses and e[2] != incoming.owner and eligible[e[2]] and green_ok and room[(f, t)] > 0:
                crossing_left.append(e[1])
    if r.remaining_wh == 0:
        assert r.cut_short is None
    else:
        # what rests crosses nothing tradable; what crosses something is flagged, with its bound
        assert (r.cut_short is not None) == bool(crossing_left)
        if r.cut_short == me.MAX_FILLS:
            assert len(r.fills) == max_fills
        elif r.cut_short == me.MAX_SCAN:
            assert len(r.fills) < max_fills
