"""Coupled clearing through the composed runtime: signed orders, real hooks, settlement.

Genesis: the dev chain (see tests/test_market.py for the cast) with zones 1 and 2 as one coupled
region, and zone 2 handed to its own DSO ("South", licensed in genesis) so that a test can tell
which DSO is paid what. Zone 1's DSO is Dave. The link 2 -> 1 carries 4 kW (1,000 Wh a 15-minute
interval); 1 -> 2 stays at 100 kW. Off-peak local fee 20,000 per kWh in both zones.

The worked case (`place_case`): Ferdie (zone 2) asks 2,000 Wh at 50,000; Bob (zone 1) asks 2,000 Wh
at 120,000; Charlie (zone 1) bids 3,000 Wh up to 200,000 all-in, i.e. 180,000 for energy after
zone 1's fee. The best pair, Ferdie -> Charlie (gain 130,000), fills the 2 -> 1 link with 1,000 Wh;
Bob -> Charlie (gain 60,000) gives the other 2,000 Wh. Prices: zone 2's ask is partly filled, so
p2 = 50,000; zone 1 lies between Bob's accepted ask (120,000) and Charlie's accepted value
(180,000): midpoint 150,000. The link is congested: rent = (150,000 - 50,000) x 1 kWh = 100,000,
paid to zone 2's DSO (the link's exporting side). Charlie pays 150,000 + 20,000 per kWh.
"""
from __future__ import annotations

import copy

import pytest

from genesis.chain_spec import dev_spec
from pallets import grid, market, settlement
from pallets.market import ASK, BID
from pallets.market_engine import cost
from primitives import ss58
from primitives.keys import Keypair
from tests.runtime_harness import chain_factory, events_named
from tests.test_market import (BOB, CHARLIE, DAVE, FERDIE, LOCAL_FEE, T, ask, bid, check_invariants,
                               failure, goto, ok, stable, trades_of)
from tests.test_settlement import read_meters, settle

SOUTH = Keypair.from_uri("//South")


def coupled_genesis() -> dict:
    config = copy.deepcopy(dev_spec()["genesis"]["runtimeGenesis"]["config"])
    config["identity"]["participants"].append({"address": ss58.encode(SOUTH.public_key), "roles": ["dso"]})
    config["balances"]["balances"].append([ss58.encode(SOUTH.public_key), 10**15])
    z2 = next(z for z in config["grid"]["zones"] if z["id"] == 2)
    z2["dso"] = ss58.encode(SOUTH.public_key)
    config["grid"]["links"] = [[1, 2, 100_000], [2, 1, 4_000]]
    config["market"] = {"coupled_regions": [[1, 2]]}
    config["settlement"] = {"penalty_per_kwh": 40_000}
    return config


new_chain = chain_factory(coupled_genesis())
_RUNTIME = new_chain.runtime


@pytest.fixture
def chain():
    return new_chain()


def market_events(result, name: str) -> list:
    return events_named(result, _RUNTIME, "market", name)


def place_case(chain) -> None:
    ok(chain.block(ask(chain, FERDIE, 50_000, 2_000)))
    ok(chain.block(ask(chain, BOB, 120_000, 2_000)))
    r = ok(chain.block(bid(chain, CHARLIE, 200_000, 3_000)))
    assert trades_of(r) == []                      # coupled zones do not match continuously
    check_invariants(chain)


def close_gate(chain):
    goto(chain, T - market.Config.gate_closure_s)
    return chain.block()


def test_the_region_clears_at_gate_closure_with_zone_prices_and_congestion_rent(chain):
    charlie = stable(chain, CHARLIE)
    place_case(chain)
    south, dave = stable(chain, SOUTH), stable(chain, DAVE)
    r = close_gate(chain)
    got = sorted((e[4], e[5], e[8], e[9], e[10]) for e in trades_of(r))
    # (buyer, seller, wh, energy price = seller zone's price, fee = buyer zone's local fee)
    assert sorted((t[0], t[1]) for t in got) == sorted([(CHARLIE.public_key, FERDIE.public_key),
                                                        (CHARLIE.public_key, BOB.public_key)])
    by_seller = {t[1]: t for t in got}
    assert by_seller[FERDIE.public_key][2:] == (1_000, 50_000, LOCAL_FEE)
    assert by_seller[BOB.public_key][2:] == (2_000, 150_000, LOCAL_FEE)
    (rent,) = market_events(r, "CongestionRentPaid")
    assert (rent[1], rent[2], rent[3], rent[4], rent[5]) == (2, 1, 1_000, 100_000, SOUTH.public_key)
    (cleared,) = market_events(r, "RegionCleared")
    assert (cleared[0], cleared[1], cleared[2], cleared[3]) == (0, T, 3_000, 100_000)
    assert stable(chain, SOUTH) == south + 100_000                      # rent at clearing
    assert stable(chain, DAVE) == dave                                  # fees wait for settlement
    # Charlie paid his zone's price plus its fee for 3 kWh (the rest of his escrow came back)
    assert charlie - stable(chain, CHARLIE) == cost(3_000, 150_000) + cost(3_000, LOCAL_FEE)
    result = chain.read(lambda: market.clearing(0, T))
    zones = {z.zone: z for z in result.zones}
    assert (zones[1].price_per_kwh, zones[1].bought_wh, zones[1].sold_wh, zones[1].imported_wh) == (
        150_000, 3_000, 2_000, 1_000)
    assert (zones[2].price_per_kwh, zones[2].sold_wh, zones[2].exported_wh) == (50_000, 1_000, 1_000)
    links = {(x.from_zone, x.to_zone): x for x in result.links}
    assert (links[(2, 1)].flow_wh, links[(2, 1)].congested, links[(2, 1)].rent) == (1_000, True, 100_000)
    assert (links[(1, 2)].flow_wh, links[(1, 2)].congested, links[(1, 2)].rent) == (0, False, 0)
    assert chain.read(lambda: market.book_side(1, T, BID)) == ()        # Charlie fully filled
    check_invariants(chain)


def test_coupled_trades_settle_and_each_dso_gets_what_is_documented(chain):
    place_case(chain)
    close_gate(chain)
    dave, south = stable(chain, DAVE), stable(chain, SOUTH)
    read_meters(chain, {BOB: (0, 2_000), FERDIE: (0, 1_000), CHARLIE: (3_000, 0)})
    settle(chain)
    ids = chain.read(lambda: market.interval_trade_ids(T))
    assert len(ids) == 2
    assert all(chain.read(lambda i=i: settlement.trade_status(i)) == settlement.SETTLED for i in ids)
    # the grid fee of both trades is zone 1's (the buyer's) local fee, paid to zone 1's DSO, Dave;
    # the cross-zone trade's fee does not go to the exporting zone's DSO
    assert stable(chain, DAVE) - dave == cost(1_000, LOCAL_FEE) + cost(2_000, LOCAL_FEE)
    assert stable(chain, SOUTH) == south
    assert chain.read(lambda: grid.zone(2).dso) == SOUTH.public_key
    check_invariants(chain)


def test_a_participant_holds_one_side_per_region_and_interval(chain):
    ok(chain.block(ask(chain, BOB, 120_000, 1_000)))
    assert failure(chain.block(bid(chain, BOB, 200_000, 1_000))) == market.Error.BothSidesInRegion.message
    # another interval is another auction
    ok(chain.block(bid(chain, BOB, 200_000, 1_000, t=T + 900)))
    check_invariants(chain)


def test_nothing_crosses_a_paused_zone_and_its_orders_expire(chain):
    place_case(chain)
    ok(chain.block(chain.xt(SOUTH, "grid", "pause_zone", 2, b"\x01" * 32)))
    r = close_gate(chain)
    # zone 2 takes no part: Charlie buys only Bob's 2,000 Wh, inside zone 1, at one price
    assert sorted((e[5], e[8]) for e in trades_of(r)) == [(BOB.public_key, 2_000)]
    assert market_events(r, "CongestionRentPaid") == []
    goto(chain, T + 60)
    chain.block()
    assert chain.read(lambda: market.book_side(2, T, ASK)) == ()     # Ferdie's ask expired
    assert chain.read(lambda: market.open_books.contains(T)) is False
    check_invariants(chain)


def test_genesis_refuses_bad_regions():
    config = coupled_genesis()
    runtime = new_chain.runtime
    for regions, words in (([[1, 9]], "not a grid zone"), ([[1, 2], [2]], "two coupled regions"),
                           ([[]], "1 to"), ([list(range(1, 12))], "1 to")):
        config["market"] = {"coupled_regions": regions}
        with pytest.raises(ValueError, match=words):
            runtime.build_genesis_storage(config)
    config["market"] = {"coupled_regions": [[1, 2]], "call_auction_zones": [2]}
    with pytest.raises(ValueError, match="call-auction"):
        runtime.build_genesis_storage(config)


def test_a_failing_solver_check_leaves_the_region_untraded_and_the_chain_running(chain, monkeypatch):
    from pallets import market_coupling

    def broken(*_args, **_kwargs):
        raise market_coupling.ClearingError("a zone's energy balance does not hold")

    place_case(chain)
    charlie = stable(chain, CHARLIE)
    monkeypatch.setattr(market_coupling, "clear", broken)
    r = close_gate(chain)
    assert trades_of(r) == []
    (failed,) = market_events(r, "RegionNotCleared")
    assert (failed[0], failed[1], failed[2]) == (0, T, "a zone's energy balance does not hold")
    assert chain.read(lambda: market.clearing(0, T)) is None
    goto(chain, T + 60)
    chain.block()                                   # the orders expire, the chain goes on
    assert chain.read(lambda: market.open_books.contains(T)) is False
    assert stable(chain, CHARLIE) == charlie + cost(3_000, 200_000)     # his escrow came back
    check_invariants(chain)
