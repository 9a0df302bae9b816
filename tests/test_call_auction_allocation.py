"""The call auction's allocation (market_engine.allocate, pallets/auction_pairing): the most energy
the no-self-trade and green rules allow at p*, whatever the arrival order, checked against an
independent max-flow (scipy, tests only) and through the composed runtime (issue 12, defect 3)."""
from __future__ import annotations

import copy

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_flow

from genesis.chain_spec import dev_spec
from pallets import build_runtime, market
from pallets import market_engine as me
from pallets.market import ASK, BID
from primitives.keys import Keypair
from tests.runtime_harness import GENESIS_HASH, ChainHarness, MemState
from tests.test_call_auction import close_gate, side, total_stable
from tests.test_market import BOB, CHARLIE, FERDIE, LOCAL_FEE, ask, bid, check_invariants, ok, trades_of

_RUNTIME = build_runtime(GENESIS_HASH)
FERDIE_ZONE1_METER = Keypair.from_uri("//Ferdie//meter-zone-1").public_key
UNLIMITED = lambda from_zone, to_zone, wh: wh  # noqa: E731  (room_for of an uncongested zone)


def volume_of(fills) -> int:
    return sum(f.wh for f in fills)


# --- the regression: 120 Wh or 115 Wh, by which ask arrived first --------------------------------
def shape_120_or_115(bob_ask_first: bool) -> tuple[list, list]:
    """Owner A (b"A") sells 5 Wh and buys 5 Wh; C sells 115 Wh at A's price; D buys 115 Wh above A.
    The plain greedy pairing gave D's bid C's whole ask when C's ask was first (A's bid then only
    meets A's own ask: 115 Wh); when A's ask was first, D took A's 5 Wh and A's bid took C's (120)."""
    a_id, c_id = (0, 1) if bob_ask_first else (1, 0)
    asks = side(False, [(100, a_id, b"A", 5, True), (100, c_id, b"C", 115, True)])
    bids = side(True, [(150, 2, b"D", 115, False), (130, 3, b"A", 5, False)])
    return asks, bids


def test_the_same_orders_clear_120_wh_whichever_ask_arrived_first():
    for bob_ask_first in (True, False):
        asks, bids = shape_120_or_115(bob_ask_first)
        price, volume = me.clearing_price(asks, bids, 20, 10**9)
        assert volume == 120
        fills = me.allocate(asks, bids, 1, price, 20, volume, UNLIMITED)
        assert volume_of(fills) == 120, bob_ask_first
        assert all(f.buyer != f.seller for f in fills)
        # A's bid is the only use for C's ask beyond D's 115 Wh: A buys 5 from C, D buys A's 5
        got = sorted((f.buyer, f.seller, f.wh) for f in fills)
        assert got == [(b"A", b"C", 5), (b"D", b"A", 5), (b"D", b"C", 110)]


def test_a_green_only_bid_keeps_the_green_ask_it_needs_whichever_came_first():
    # D (any energy) is first in priority; E will take green only. The green ask must go to E.
    for green_first in (True, False):
        g_id, n_id = (0, 1) if green_first else (1, 0)
        asks = side(False, [(100, g_id, b"G", 50, True), (100, n_id, b"N", 50, False)])
        bids = side(True, [(150, 2, b"D", 50, False), (140, 3, b"E", 50, True)])
        fills = me.allocate(asks, bids, 1, 100, 0, 100, UNLIMITED)
        assert sorted((f.buyer, f.seller, f.wh) for f in fills) == [(b"D", b"N", 50), (b"E", b"G", 50)]


def test_priority_decides_who_trades_where_the_rule_leaves_a_choice():
    # 100 Wh of demand from X, supply 60 (A, first) + 60 (B) + 60 (X itself, cheapest): X's own ask
    # cannot sell to X, so the volume is 100, from A then B by priority; X's ask stays unfilled
    asks = side(False, [(90, 0, b"X", 60, True), (100, 1, b"A", 60, True), (100, 2, b"B", 60, True)])
    bids = side(True, [(150, 3, b"X", 100, False)])
    fills = me.allocate(asks, bids, 1, 100, 0, 100, UNLIMITED)
    assert [(f.ask_id, f.wh) for f in fills] == [(1, 60), (2, 40)]


def test_room_for_caps_the_fills_and_the_last_one_is_partial():
    asks, bids = shape_120_or_115(False)
    granted = []

    def room_for(from_zone, to_zone, wh):
        g = min(wh, 112 - sum(granted))
        granted.append(g)
        return g
    fills = me.allocate(asks, bids, 1, 100, 20, 120, room_for)
    assert volume_of(fills) == 112 and all(f.wh > 0 for f in fills)


# --- against an independent max-flow, over any arrival order -------------------------------------
def scipy_max_flow(asks: list, bids: list, cap: int) -> int:
    """Max-flow source -> (cap) -> asks -> compatible bids -> sink, with scipy (the oracle)."""
    n_a, n_b = len(asks), len(bids)
    size = n_a + n_b + 3
    hub, source, sink = 0, 1, size - 1
    big = sum(e[3] for e in asks) + 1
    m = np.zeros((size, size), dtype=np.int32)
    m[hub, source] = cap
    for i, a in enumerate(asks):
        m[source, 2 + i] = a[3]
        for j, b in enumerate(bids):
            if a[2] != b[2] and (a[4] or not b[4]):
                m[2 + i, 2 + n_a + j] = big
    for j, b in enumerate(bids):
        m[2 + n_a + j, sink] = b[3]
    return int(maximum_flow(csr_matrix(m), hub, sink).flow_value)


OWNERS = [b"o1", b"o2", b"o3", b"o4"]
order_terms = st.tuples(st.integers(1, 30), st.sampled_from(OWNERS), st.integers(1, 40), st.booleans())


def book(ask_terms, bid_terms, ask_ids, bid_ids) -> tuple[list, list]:
    asks = side(False, [(p, ask_ids[i], o, q, g) for i, (p, o, q, g) in enumerate(ask_terms)])
    bids = side(True, [(p, bid_ids[i], o, q, g) for i, (p, o, q, g) in enumerate(bid_terms)])
    return asks, bids


def check_fills(fills, asks, bids, price, fee, volume) -> None:
    by_id = {e[1]: e for e in asks + bids}
    used: dict = {}
    for f in fills:
        a, b = by_id[f.ask_id], by_id[f.bid_id]
        assert f.wh > 0 and f.price_per_kwh == price and f.fee_per_kwh == fee
        assert a[2] != b[2] and (f.seller, f.buyer) == (a[2], b[2]), "self-trade"
        assert a[4] or not b[4], "green-only bid with a non-green ask"
        assert a[0] <= price and b[0] - fee >= price, "order out of the money"
        used[f.ask_id] = used.get(f.ask_id, 0) + f.wh
        used[f.bid_id] = used.get(f.bid_id, 0) + f.wh
    assert all(used[oid] <= by_id[oid][3] for oid in used), "order over-filled"
    assert volume_of(fills) <= volume


@settings(max_examples=300, deadline=None)
@given(st.lists(order_terms, max_size=7), st.lists(order_terms, max_size=7), st.integers(0, 30),
       st.integers(0, 8), st.integers(0, 300), st.randoms(use_true_random=False))
def test_volume_is_the_max_flow_whatever_the_arrival_order(ask_terms, bid_terms, price, fee, volume, rnd):
    n_a, n_b = len(ask_terms), len(bid_terms)
    arrivals = [list(range(n_a + n_b)), list(range(n_a + n_b))[::-1]]
    arrivals += [rnd.sample(range(n_a + n_b), n_a + n_b) for _ in range(3)]
    volumes = set()
    for ids in arrivals:
        asks, bids = book(ask_terms, bid_terms, ids[:n_a], ids[n_a:])
        fills = me.allocate(asks, bids, 1, price, fee, volume, UNLIMITED)
        check_fills(fills, asks, bids, price, fee, volume)
        volumes.add(volume_of(fills))
    live_asks = [e for e in asks if e[0] <= price]
    live_bids = [e for e in bids if e[0] - fee >= price]
    assert volumes == {scipy_max_flow(live_asks, live_bids, volume)}


@settings(max_examples=150, deadline=None)
@given(st.lists(order_terms, max_size=6), st.lists(order_terms, max_size=6), st.integers(0, 30),
       st.integers(0, 300))
def test_filled_orders_follow_priority_as_far_as_the_rule_allows(ask_terms, bid_terms, price, volume):
    """The asks' fills in priority order are the greedy of the max-flow: after the first k asks,
    exactly what those k asks alone could trade (so no ask is passed over unless it must be);
    then the bids' likewise, against the asks as filled."""
    asks, bids = book(ask_terms, bid_terms, range(len(ask_terms)), range(len(ask_terms), 20))
    fills = me.allocate(asks, bids, 1, price, 0, volume, UNLIMITED)
    live_asks = [e for e in asks if e[0] <= price]
    live_bids = [e for e in bids if e[0] >= price]
    filled = {e[1]: 0 for e in live_asks + live_bids}
    for f in fills:
        filled[f.ask_id] += f.wh
        filled[f.bid_id] += f.wh
    for k in range(len(live_asks) + 1):
        assert sum(filled[e[1]] for e in live_asks[:k]) == scipy_max_flow(live_asks[:k], live_bids, volume)
    as_filled = [(e[0], e[1], e[2], filled[e[1]], e[4]) for e in live_asks]
    for k in range(len(live_bids) + 1):
        assert sum(filled[e[1]] for e in live_bids[:k]) == scipy_max_flow(as_filled, live_bids[:k], volume)


# --- through the runtime ---------------------------------------------------------------------------
def auction_chain_with_a_second_seller() -> ChainHarness:
    """The dev genesis, zone 1 a call-auction zone, and Ferdie with a second meter in zone 1 (so zone
    1 has two sellers: Bob, who also buys, and Ferdie)."""
    config = copy.deepcopy(dev_spec()["genesis"]["runtimeGenesis"]["config"])
    config["market"] = {"call_auction_zones": [1]}
    config["metering"]["meters"].append({"meter": "0x" + FERDIE_ZONE1_METER.hex(), "owner": FERDIE.address(),
                                         "zone": 1, "kind": 2, "rated_power_w": 8_000})
    chain = ChainHarness(_RUNTIME, MemState(_RUNTIME.build_genesis_storage(config)))
    chain.block()
    return chain


def test_the_runtime_clears_120_wh_whichever_ask_arrived_first():
    """The issue's case through signed orders and the real hooks: Bob sells 5 Wh and buys 5 Wh,
    Ferdie sells 115 Wh at Bob's price, Charlie buys 115 Wh bidding above Bob."""
    for bob_ask_first in (True, False):
        chain = auction_chain_with_a_second_seller()
        total = total_stable(chain)
        bob_ask = lambda: ask(chain, BOB, 100_000, 5)                       # noqa: E731
        ferdie_ask = lambda: ask(chain, FERDIE, 100_000, 115, zone=1, meter=FERDIE_ZONE1_METER)  # noqa: E731
        for place in ((bob_ask, ferdie_ask) if bob_ask_first else (ferdie_ask, bob_ask)):
            ok(chain.block(place()))
        ok(chain.block(bid(chain, CHARLIE, 150_000, 115)))
        ok(chain.block(bid(chain, BOB, 130_000, 5)))
        r = close_gate(chain)
        tms = trades_of(r)
        assert sum(tm[8] for tm in tms) == 120, bob_ask_first
        assert all(tm[4] != tm[5] for tm in tms), "self-trade"
        pairs = sorted((tm[4], tm[5], tm[8]) for tm in tms)
        assert pairs == sorted([(BOB.public_key, FERDIE.public_key, 5), (CHARLIE.public_key, BOB.public_key, 5),
                                (CHARLIE.public_key, FERDIE.public_key, 110)])
        assert {(tm[9], tm[10]) for tm in tms} == {(100_000, LOCAL_FEE)}
        f = chain.read(lambda: market.flow(1, tms[0][1]))
        assert (f.import_wh, f.export_wh) == (120, 120)
        assert chain.read(lambda: market.book_side(1, tms[0][1], ASK)) == ()
        assert chain.read(lambda: market.book_side(1, tms[0][1], BID)) == ()
        assert total_stable(chain) == total
        check_invariants(chain)
