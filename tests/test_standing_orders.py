"""Standing orders of the market pallet: posted automatically for each interval at the end of a
block (on_finalize, at the block's own time), starting with the block that sets them.

Same cast and genesis as tests/test_market.py (whose helpers this reuses)."""
from __future__ import annotations

from collections import Counter

from pallets import grid, market
from pallets.market import ASK, BID, Config
from tests.runtime_harness import events_named
from tests.test_market import (BOB, CHARLIE, DAVE, EVE, FERDIE, METER, _RUNTIME, E, check_invariants, chain,  # noqa: F401
                               failure, goto, ok, stable, trades_of)

I = grid.Config.interval_s


def standing(ch, who, side, price, wh, zone=None, meter=None, green=False, nonce=None):
    zone = zone if zone is not None else (2 if who is FERDIE else 1)
    return ch.xt(who, "market", "set_standing_order", side, zone, price, wh, meter or METER[who], green,
                 nonce=nonce)


def cancel_standing(ch, who, sid, nonce=None):
    return ch.xt(who, "market", "cancel_standing_order", sid, nonce=nonce)


def named(r, name):
    return events_named(r, _RUNTIME, "market", name)


def target(ch) -> int:
    """The interval the last block's hook posted for (it runs at that block's own time)."""
    return market.standing_target(ch.now_ms // 1000)


def block_at(ch, ts_s: int):
    """An empty block at unix second ts_s; its result."""
    assert ts_s * 1000 > ch.now_ms
    ch.now_ms = ts_s * 1000 - 1000
    return ch.block()


def book_and_money(ch) -> tuple:
    def read():
        return (sorted((k, o) for k, o in market.orders.items()), market.next_order_id.get(),
                sorted((k, t) for k, t in market.trades.items()))
    return (ch.read(read), stable(ch, BOB), stable(ch, CHARLIE), stable(ch, FERDIE),
            stable(ch, market.ESCROW_ACCOUNT))


def test_a_standing_ask_and_bid_post_for_the_next_intervals_and_match(chain):
    r = ok(chain.block(standing(chain, BOB, ASK, 50_000, 500), standing(chain, CHARLIE, BID, 100_000, 400)))
    assert [e[0] for e in named(r, "StandingOrderSet")] == [0, 1]
    assert chain.read(lambda: market.standing_orders_of(BOB.public_key)) == [0]
    t1 = target(chain)
    assert [(e[0], e[2]) for e in named(r, "StandingOrderPosted")] == [(0, t1), (1, t1)]
    [tm] = trades_of(r)
    assert (tm[1], tm[8]) == (t1, 400)
    assert named(chain.block(), "StandingOrderPosted") == []        # once per interval
    check_invariants(chain)
    # the next interval: posted again, for the interval after
    r = block_at(chain, t1 - 2 * I + I)   # a block whose own time is in the next interval
    assert [(e[0], e[2]) for e in named(r, "StandingOrderPosted")] == [(0, t1 + I), (1, t1 + I)]
    assert [tm[1] for tm in trades_of(r)] == [t1 + I]
    so = chain.read(lambda: market.standing_order(0))
    assert so.next_interval == t1 + 2 * I
    check_invariants(chain)


def test_posting_happens_once_per_interval(chain):
    r = ok(chain.block(standing(chain, BOB, ASK, 50_000, 100)))
    posted = [e[2] for e in named(r, "StandingOrderPosted")]
    for _ in range(250):                  # crosses at least two interval boundaries (1 s blocks)
        r = chain.block()
        posted += [e[2] for e in named(r, "StandingOrderPosted")]
    counts = Counter(posted)
    assert len(counts) >= 2 and set(counts.values()) == {1}
    assert sorted(counts) == [posted[0] + k * I for k in range(len(counts))]
    check_invariants(chain)


def test_cancel_stops_posting_and_leaves_posted_orders(chain):
    r = ok(chain.block(standing(chain, BOB, ASK, 50_000, 100)))
    t1 = target(chain)
    [(sid, oid, t)] = named(r, "StandingOrderPosted")
    r = ok(chain.block(cancel_standing(chain, BOB, 0)))
    assert named(r, "StandingOrderCancelled") == [[0, BOB.public_key]]
    assert chain.read(lambda: (market.standing_order(0), market.standing_orders_of(BOB.public_key))) == (None, [])
    assert chain.read(lambda: market.order(oid)) is not None       # the posted order stays
    goto(chain, t1 - I)
    for _ in range(3):
        r = chain.block()
        assert named(r, "StandingOrderPosted") == [] and named(r, "StandingOrderSkipped") == []
    check_invariants(chain)


def test_an_unaffordable_standing_bid_is_skipped_and_changes_no_balance(chain):
    before = book_and_money(chain)
    r = ok(chain.block(standing(chain, FERDIE, BID, 100_000, 500)))    # Ferdie holds no stablecoin
    t1 = target(chain)
    assert named(r, "StandingOrderSkipped") == [[0, t1, "InsufficientFunds"]]
    assert named(r, "StandingOrderPosted") == [] and named(r, "OrderPlaced") == []
    after = book_and_money(chain)
    assert after[0] == before[0] and after[1:] == before[1:]       # the book, orders and every balance
    assert chain.read(lambda: market.standing_order(0)).next_interval == t1 + I
    check_invariants(chain)


def test_a_standing_order_in_a_paused_zone_is_skipped(chain):
    ok(chain.block(standing(chain, BOB, ASK, 50_000, 100)))    # first post, at the end of this block
    t2 = target(chain) + I
    ok(chain.block(chain.xt(DAVE, "grid", "pause_zone", 1, b"\1" * 32)))
    before = book_and_money(chain)
    r = block_at(chain, t2 - 2 * I)       # the block whose own time makes t2 the target
    assert named(r, "StandingOrderSkipped") == [[0, t2, "ZonePaused"]]
    assert book_and_money(chain) == before
    assert chain.read(lambda: market.standing_order(0)).next_interval == t2 + I
    assert book_and_money(chain) == before
    check_invariants(chain)


def _market_snapshot(ch) -> dict:
    prefix = market.orders.prefix[:16]
    return {k: v for k, v in ch.state.items() if k[:16] == prefix}


def test_bad_set_and_cancel_are_rejected_with_their_error_and_change_nothing(chain):
    ok(chain.block(standing(chain, BOB, ASK, 50_000, 100)))
    chain.block()
    cases = [
        (lambda: standing(chain, EVE, BID, 100_000, 100, zone=1, meter=METER[CHARLIE]), E.NotLicensed),
        (lambda: standing(chain, CHARLIE, ASK, 100_000, 100), E.NotLicensed),
        (lambda: standing(chain, BOB, 2, 100_000, 100), E.InvalidSide),
        (lambda: standing(chain, BOB, BID, 0, 100), E.PriceOutOfBounds),
        (lambda: standing(chain, BOB, BID, 100_000, 0), E.QuantityOutOfBounds),
        (lambda: standing(chain, BOB, BID, 100_000, 100, zone=99), E.UnknownZone),
        (lambda: standing(chain, BOB, BID, 100_000, 100, meter=METER[CHARLIE]), E.NotMeterOwner),
        (lambda: standing(chain, BOB, BID, 100_000, 100, zone=2), E.MeterInOtherZone),
        (lambda: standing(chain, BOB, ASK, 100_000, 1_000_000), E.ExceedsMeterRating),
        (lambda: standing(chain, BOB, BID, 100_000, 100, meter=b"\7" * 32), E.UnknownMeter),
        (lambda: cancel_standing(chain, BOB, 5), E.UnknownStandingOrder),
        (lambda: cancel_standing(chain, CHARLIE, 0), E.NotStandingOrderOwner),
    ]
    for make, err in cases:
        before = _market_snapshot(chain), book_and_money(chain)
        r = chain.block(make())
        assert failure(r) == err.message
        assert (_market_snapshot(chain), book_and_money(chain)) == before
    assert chain.read(lambda: market.standing_order(0)) is not None


def test_per_owner_limit(chain):
    n = Config.max_standing_per_owner
    nonce = chain.nonce(BOB.public_key)
    ok(chain.block(*(standing(chain, BOB, ASK, 50_000 + i, 10, nonce=nonce + i) for i in range(n))))
    r = chain.block(standing(chain, BOB, ASK, 60_000, 10))
    assert failure(r) == E.TooManyStandingOrders.message
    ok(chain.block(cancel_standing(chain, BOB, 3)))
    ok(chain.block(standing(chain, BOB, ASK, 60_000, 10)))
    assert chain.read(lambda: market.standing_orders_of(BOB.public_key)) == [0, 1, 2, 4, 5, 6, 7, n]


def test_the_per_block_bound_holds_with_many_standing_orders(chain, monkeypatch):
    monkeypatch.setattr(Config, "max_standing_posts_per_block", 3)
    n = Config.max_standing_per_owner
    xts = []
    for who, side, price in ((BOB, ASK, 50_000), (CHARLIE, BID, 100_000), (FERDIE, BID, 100_000)):
        nonce = chain.nonce(who.public_key)
        xts += [standing(chain, who, side, price, 10, nonce=nonce + i) for i in range(n)]
    r = ok(chain.block(*xts))
    t1 = target(chain)
    visited = [e[0] for e in named(r, "StandingOrderPosted")] + [e[0] for e in named(r, "StandingOrderSkipped")]
    assert len(visited) <= 3
    for _ in range(10):
        r = chain.block()
        ids = [e[0] for e in named(r, "StandingOrderPosted")] + [e[0] for e in named(r, "StandingOrderSkipped")]
        assert len(ids) <= 3
        visited += ids
    assert sorted(visited) == list(range(3 * n))          # each once, in id order across blocks
    assert visited == sorted(visited)
    skipped = [e for e in visited if e >= 2 * n]
    assert len(skipped) == n                              # Ferdie cannot afford any
    assert all(chain.read(lambda: market.standing_order(i)).next_interval == t1 + I for i in range(3 * n))
    check_invariants(chain)


def check_standing_list(ch) -> list[int]:
    """The linked list holds exactly the standing orders, in id order, with consistent links."""
    def read():
        ids = sorted(k for k, _ in market.standing_orders.items())
        walked, prev, cur = [], None, market.standing_head.get()
        while cur is not None:
            p, nxt = market.standing_links.get(cur)
            assert p == prev
            walked.append(cur)
            prev, cur = cur, nxt
        assert market.standing_tail.get() == prev
        assert walked == ids
        assert sorted(k for k, _ in market.standing_links.items()) == ids
        return ids
    return ch.read(read)


def test_cancelling_the_order_under_the_cursor_moves_the_sweep_on(chain, monkeypatch):
    monkeypatch.setattr(Config, "max_standing_posts_per_block", 3)
    nonce = chain.nonce(BOB.public_key)
    r = ok(chain.block(*(standing(chain, BOB, ASK, 50_000 + i, 10, nonce=nonce + i) for i in range(6))))
    assert [e[0] for e in named(r, "StandingOrderPosted")] == [0, 1, 2]    # its hook stopped on 3
    assert chain.read(lambda: market.standing_cursor.get()) == 3
    r = ok(chain.block(cancel_standing(chain, BOB, 3)))   # cancelling 3 moves the cursor on to 4
    assert [e[0] for e in named(r, "StandingOrderPosted")] == [4, 5]
    assert chain.read(lambda: market.standing_cursor.get()) is None
    assert check_standing_list(chain) == [0, 1, 2, 4, 5]
    nonce = chain.nonce(BOB.public_key)
    ok(chain.block(cancel_standing(chain, BOB, 0, nonce=nonce), cancel_standing(chain, BOB, 5, nonce=nonce + 1)))
    assert check_standing_list(chain) == [1, 2, 4]
    ok(chain.block(*(cancel_standing(chain, BOB, i, nonce=nonce + 2 + k) for k, i in enumerate((2, 1, 4)))))
    assert check_standing_list(chain) == []
    assert chain.read(lambda: (market.standing_head.get(), market.standing_count.get(BOB.public_key))) == (None, 0)
    ok(chain.block(standing(chain, BOB, ASK, 50_000, 10)))
    assert check_standing_list(chain) == [6]
    check_invariants(chain)
