"""A link's limit applies to the net flow over it (issue 12, defect 4; market docstring "Capacity").

Energy traded from zone i to zone j and from j to i in one interval cancels out on the wire: the
room for a new trade from i to j is limit(i, j) - (flow(i, j) - flow(j, i)), `link_flows` keeping
the gross Wh per direction. Through the composed runtime with the dev genesis (cast as in
tests/test_market.py), Ferdie also holding stablecoin so that he can buy in zone 2."""
from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genesis.chain_spec import dev_spec
from pallets import grid, market
from tests.runtime_harness import chain_factory
from tests.test_market import BOB, CHARLIE, DAVE, FERDIE, T, ask, bid, cancel, check_invariants, ok, trades_of


def netting_genesis(links=None) -> dict:
    g = copy.deepcopy(dev_spec()["genesis"]["runtimeGenesis"]["config"])
    g["balances"]["assets"][0]["balances"].append([FERDIE.address(), 10_000_000_000])
    if links is not None:
        g["grid"]["links"] = links
    return g


new_chain = chain_factory(netting_genesis())
#: 1 -> 2 at 1,200 W (300 Wh per interval), 2 -> 1 at 2,000 W (500 Wh)
small_links_chain = chain_factory(netting_genesis([[1, 2, 1_200], [2, 1, 2_000]]))
LIMIT_WH = {(1, 2): 300, (2, 1): 500}


def link_flows(chain, t=T) -> dict:
    return chain.read(lambda: {(1, 2): market.link_flow(1, 2, t), (2, 1): market.link_flow(2, 1, t)})


def test_opposite_trades_over_one_link_both_fit_when_netted():
    chain = new_chain()
    for a, b in ((2, 1), (1, 2)):
        ok(chain.block(chain.xt(DAVE, "grid", "set_link_limit", a, b, 1_200)))         # 300 Wh per interval
    ok(chain.block(ask(chain, FERDIE, 10_000, 700)))                                     # order 0, zone 2
    r = ok(chain.block(bid(chain, CHARLIE, 100_000, 300)))                             # 2 -> 1: the link is full
    assert [(tm[6], tm[7], tm[8]) for tm in trades_of(r)] == [(2, 1, 300)]
    ok(chain.block(ask(chain, BOB, 10_000, 300)))                                        # order 2, zone 1
    r = ok(chain.block(bid(chain, FERDIE, 100_000, 300, zone=2)))                      # 1 -> 2 nets it to 0
    assert [(tm[3], tm[6], tm[7], tm[8]) for tm in trades_of(r)] == [(2, 1, 2, 300)]
    r = ok(chain.block(bid(chain, CHARLIE, 100_000, 300)))                             # fits again
    assert [(tm[3], tm[6], tm[7], tm[8]) for tm in trades_of(r)] == [(0, 2, 1, 300)]
    # gross flows per direction are kept (and shown); their difference is within the limit
    assert link_flows(chain) == {(2, 1): 600, (1, 2): 300}
    r = ok(chain.block(bid(chain, CHARLIE, 100_000, 100)))                             # net 2 -> 1 at 300: full
    assert trades_of(r) == []
    f1, f2 = chain.read(lambda: (market.flow(1, T), market.flow(2, T)))
    # zones are not netted: each keeps its gross import and export
    assert (f1.import_wh, f1.export_wh, f2.import_wh, f2.export_wh) == (600, 300, 300, 600)
    check_invariants(chain)


def test_a_limit_lowered_below_the_net_flow_stops_trades_along_it_not_against_it():
    chain = new_chain()
    ok(chain.block(ask(chain, FERDIE, 10_000, 900)))                                     # order 0, zone 2
    ok(chain.block(bid(chain, CHARLIE, 100_000, 400)))                                   # 2 -> 1: 400
    ok(chain.block(chain.xt(DAVE, "grid", "set_link_limit", 2, 1, 800)))                 # 200 Wh < 400
    r = ok(chain.block(bid(chain, CHARLIE, 100_000, 100)))                             # order 2
    assert trades_of(r) == []
    ok(chain.block(cancel(chain, CHARLIE, 2)))
    ok(chain.block(ask(chain, BOB, 10_000, 300)))
    r = ok(chain.block(bid(chain, FERDIE, 100_000, 300, zone=2)))                      # against: fits
    assert [(tm[6], tm[7], tm[8]) for tm in trades_of(r)] == [(1, 2, 300)]
    # net 2 -> 1 is now 100 of 200 Wh: 100 more fit along it
    r = ok(chain.block(bid(chain, CHARLIE, 100_000, 150)))
    assert [tm[8] for tm in trades_of(r)] == [100]
    assert link_flows(chain) == {(2, 1): 500, (1, 2): 300}
    check_invariants(chain)


# --- over any sequence ---------------------------------------------------------------------------
_BIDDERS = [(CHARLIE, 1), (BOB, 1), (FERDIE, 2)]
_SELLERS = [(BOB, 1), (FERDIE, 2)]
_order = st.one_of(
    st.tuples(st.just("bid"), st.sampled_from(_BIDDERS), st.integers(40_000, 120_000), st.integers(1, 800)),
    st.tuples(st.just("ask"), st.sampled_from(_SELLERS), st.integers(1, 60_000), st.integers(1, 800)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_order, min_size=1, max_size=16))
def test_the_net_flow_over_a_link_never_exceeds_either_directions_limit(orders):
    chain = small_links_chain()
    for kind, (who, zone), price, wh in orders:
        if kind == "bid":
            chain.block(bid(chain, who, price, wh, zone=zone))
        else:
            chain.block(ask(chain, who, price, wh, zone=zone))
        flows = link_flows(chain)
        for (a, b), limit in LIMIT_WH.items():
            assert flows[(a, b)] - flows[(b, a)] <= limit, (a, b, flows)

        def gross():
            out = {(1, 2): 0, (2, 1): 0}
            for _, t in market.trades.items():
                if t.from_zone != t.to_zone:
                    out[(t.from_zone, t.to_zone)] += t.wh
            return out
        assert chain.read(gross) == flows                 # link_flows: the gross Wh per direction
    check_invariants(chain)
    assert chain.read(lambda: grid.link_limit_w(1, 2)) == 1_200
