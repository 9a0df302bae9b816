"""The uniform-price call auction (market pallet, "Call auction"): the clearing rule alone, with
properties over random books, and through the composed runtime with a genesis making zone 1 (or 2)
a call-auction zone."""
from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from genesis.chain_spec import dev_spec
from pallets import build_runtime, market
from pallets import market_engine as me
from pallets.market import ASK, BID, ESCROW_ACCOUNT
from pallets.market_engine import cost, insert_resting
from tests.runtime_harness import GENESIS_HASH, ChainHarness, MemState, events_named
from tests.test_market import (BOB, CHARLIE, FERDIE, LOCAL_FEE, T, _stable_balances, ask, bid,
                               check_invariants, goto, ok, stable, trades_of)

_RUNTIME = build_runtime(GENESIS_HASH)


def auction_chain(zones=(1,), zone1_capacity_w=None) -> ChainHarness:
    config = copy.deepcopy(dev_spec()["genesis"]["runtimeGenesis"]["config"])
    config["market"] = {"call_auction_zones": list(zones)}
    if zone1_capacity_w is not None:
        z1 = next(z for z in config["grid"]["zones"] if z["id"] == 1)
        z1["import_capacity_w"] = z1["export_capacity_w"] = zone1_capacity_w
    chain = ChainHarness(_RUNTIME, MemState(_RUNTIME.build_genesis_storage(config)))
    chain.block()
    return chain


def total_stable(chain) -> int:
    return chain.read(lambda: sum(_stable_balances()))


def close_gate(chain):
    """Reach gate closure of T; the next block's hook (previous block's time) clears the auction."""
    goto(chain, T - market.Config.gate_closure_s)
    return chain.block()


# --- the clearing rule alone -------------------------------------------------------------------
def side(is_bid, entries):
    s: list = []
    for e in entries:
        insert_resting(s, e, is_bid)
    return s


def curves(asks, bids, fee, p):
    return (sum(e[3] for e in asks if e[0] <= p), sum(e[3] for e in bids if e[0] - fee >= p))


def test_tie_break_smallest_excess_then_lowest_price():
    # asks 100 x 500, 120 x 500; bids (all-in) 150 x 600, 130 x 600; fee 20
    asks = side(False, [(100, 0, b"a", 500, True), (120, 1, b"b", 500, True)])
    bids = side(True, [(150, 2, b"c", 600, False), (130, 3, b"d", 600, False)])
    # V(120) = V(130) = 600 with |excess| 400 each: the lowest price wins
    assert me.clearing_price(asks, bids, 20, 10**9) == (120, 600)
    # same max volume, different excess: asks 10 x 100, bids 30 x 100 and 25 x 100, fee 0 ->
    # V(10..25) = 100; excess at 10 and 25 is 100 - 200 = -100, at 30 it is 0 (V 100): 30 wins
    asks = side(False, [(10, 0, b"a", 100, True)])
    bids = side(True, [(30, 1, b"c", 100, False), (25, 2, b"d", 100, False)])
    assert me.clearing_price(asks, bids, 0, 10**9) == (30, 100)
    assert me.clearing_price(asks, side(True, [(9, 3, b"c", 100, False)]), 0, 10**9) is None


entry_terms = st.tuples(st.integers(1, 40), st.integers(1, 50))


@settings(max_examples=200, deadline=None)
@given(st.lists(entry_terms, min_size=0, max_size=6), st.lists(entry_terms, min_size=0, max_size=6),
       st.integers(0, 10), st.integers(0, 200))
def test_clearing_maximises_volume_like_brute_force(ask_terms, bid_terms, fee, room):
    asks = side(False, [(p, i, bytes([i]), q, True) for i, (p, q) in enumerate(ask_terms)])
    n = len(asks)
    bids = side(True, [(p, n + i, bytes([n + i]), q, False) for i, (p, q) in enumerate(bid_terms)])
    # brute force over every integer price (covers every candidate)
    vol = {p: min(*curves(asks, bids, fee, p), room) for p in range(0, 60)}
    best_v = max(vol.values())
    got = me.clearing_price(asks, bids, fee, room)
    if best_v == 0:
        assert got is None
        return
    p, v = got
    assert v == best_v == vol[p]
    cands = {e[0] for e in asks} | {e[0] - fee for e in bids if e[0] - fee >= 0}
    key = lambda q: (-vol[q], abs(curves(asks, bids, fee, q)[0] - curves(asks, bids, fee, q)[1]), q)
    assert p == min(cands, key=key)
    # allocation (distinct owners): exactly V, compatible pairs, no order overfilled, price p*
    fills = me.allocate(asks, bids, 7, p, fee, v, lambda f, t, wh: wh)
    assert sum(f.wh for f in fills) == v
    price_of = {e[1]: e for e in asks + bids}
    used: dict = {}
    for f in fills:
        assert f.price_per_kwh == p and f.fee_per_kwh == fee and f.wh > 0
        assert price_of[f.ask_id][0] <= p and price_of[f.bid_id][0] >= p + fee
        used[f.ask_id] = used.get(f.ask_id, 0) + f.wh
        used[f.bid_id] = used.get(f.bid_id, 0) + f.wh
    assert all(used[oid] <= price_of[oid][3] for oid in used)


# --- through the runtime -----------------------------------------------------------------------
def test_orders_rest_and_clear_at_one_uniform_price_at_gate_closure():
    chain = auction_chain()
    total = total_stable(chain)
    ok(chain.block(ask(chain, BOB, 100_000, 500)))
    ok(chain.block(ask(chain, BOB, 120_000, 500)))
    r1 = ok(chain.block(bid(chain, CHARLIE, 150_000, 600)))
    r2 = ok(chain.block(bid(chain, CHARLIE, 130_000, 600)))
    assert trades_of(r1) == [] and trades_of(r2) == []       # no continuous matching
    assert len(chain.read(lambda: market.book_side(1, T, ASK))) == 2
    assert len(chain.read(lambda: market.book_side(1, T, BID))) == 2
    check_invariants(chain)
    charlie = stable(chain, CHARLIE)
    r = close_gate(chain)
    tms = trades_of(r)
    # V(120,000) = V(130,000) = 600 Wh, same |excess|: the lowest price
    assert [tm[2:4] for tm in tms] == [[2, 0], [2, 1]]
    assert [(tm[8], tm[9], tm[10]) for tm in tms] == [(500, 120_000, LOCAL_FEE), (100, 120_000, LOCAL_FEE)]
    trades = chain.read(lambda: list(market.trades_in_interval(T)))
    assert all(t.price_per_kwh == 120_000 and t.fee_per_kwh == LOCAL_FEE for t in trades)
    assert all(t.amount == cost(t.wh, 120_000) and t.fee_amount == cost(t.wh, LOCAL_FEE) for t in trades)
    paid = sum(t.amount + t.fee_amount for t in trades)
    # the surplus of the filled bid and the whole lock of the unfilled one come back
    assert stable(chain, CHARLIE) == charlie + 600 * 130_000 // 1000 + 600 * 150_000 // 1000 - paid
    expired = events_named(r, _RUNTIME, "market", "OrderExpired")
    assert sorted(e[0] for e in expired) == [1, 3]
    assert chain.read(lambda: market.book_side(1, T, ASK)) == ()
    assert chain.read(lambda: market.book_side(1, T, BID)) == ()
    assert stable(chain, ESCROW_ACCOUNT) == paid
    assert total_stable(chain) == total
    check_invariants(chain)
    f = chain.read(lambda: market.flow(1, T))
    assert (f.import_wh, f.export_wh) == (600, 600)
    chain.block()                                            # clears once only
    assert len(chain.read(lambda: list(market.trades_in_interval(T)))) == 2


def test_capacity_caps_the_cleared_volume():
    chain = auction_chain(zone1_capacity_w=2_000)            # 500 Wh per 15-minute interval
    total = total_stable(chain)
    ok(chain.block(ask(chain, BOB, 100_000, 1_000)))
    ok(chain.block(bid(chain, CHARLIE, 150_000, 1_000)))
    r = close_gate(chain)
    tms = trades_of(r)
    assert sum(tm[8] for tm in tms) == 500
    f = chain.read(lambda: market.flow(1, T))
    assert (f.import_wh, f.export_wh) == (500, 500)
    assert total_stable(chain) == total
    check_invariants(chain)


def test_no_cross_zone_matching_and_continuous_zones_unaffected():
    chain = auction_chain(zones=(2,))
    total = total_stable(chain)
    ok(chain.block(ask(chain, FERDIE, 10_000, 500)))         # zone 2: call auction, rests
    r = ok(chain.block(bid(chain, CHARLIE, 150_000, 500)))   # zone 1: continuous; no cross-zone trade
    assert trades_of(r) == []
    r = ok(chain.block(ask(chain, BOB, 100_000, 300)))       # zone 1 matches on placement as before
    [tm] = trades_of(r)
    assert (tm[8], tm[9], tm[10]) == (300, 150_000 - LOCAL_FEE, LOCAL_FEE)   # resting bid net of fee
    r = close_gate(chain)
    assert trades_of(r) == []                                # zone 2 book has no bids
    assert chain.read(lambda: market.book_side(2, T, ASK)) == ()
    assert total_stable(chain) == total
    check_invariants(chain)
