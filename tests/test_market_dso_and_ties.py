"""Two market rules the rest of the suite only touched by chance (issue 12):

  - each zone with its own DSO: a cross-zone trade's grid fee goes to the DSO of the zone the
    energy left (the from-zone, whose tariff for the route set the fee), and the other DSO gets
    nothing (settlement's `dso_of`);
  - equal effective prices across zones: the lower order id goes first, whatever the zones
    (market_engine rule 1), for a buyer choosing between asks and for a seller between bids.

Through the composed runtime with the dev genesis (cast as in tests/test_market.py), changed so
that zone 2's DSO is Grace (Dave keeps zone 1) and Ferdie also holds stablecoin."""
from __future__ import annotations

import copy

from genesis.chain_spec import dev_spec
from pallets import grid, market
from pallets.market_engine import cost
from primitives.keys import Keypair
from tests.runtime_harness import chain_factory, events_named
from tests.test_market import (BOB, CHARLIE, CROSS_FEE, DAVE, FERDIE, LOCAL_FEE, T, ask, bid, check_invariants,
                               ok, stable, trades_of)
from tests.test_settlement import read_meters, settle

GRACE = Keypair.from_uri("//Grace")


def two_dso_genesis() -> dict:
    g = copy.deepcopy(dev_spec()["genesis"]["runtimeGenesis"]["config"])
    g["identity"]["participants"].append({"address": GRACE.address(), "roles": ["dso"]})
    zone2 = next(z for z in g["grid"]["zones"] if z["id"] == 2)
    zone2["dso"] = GRACE.address()
    g["balances"]["assets"][0]["balances"].append([FERDIE.address(), 10_000_000_000])
    return g


new_chain = chain_factory(two_dso_genesis())
_RUNTIME = new_chain.runtime


# --- which DSO is paid ---------------------------------------------------------------------------
def test_a_cross_zone_trade_pays_its_fee_to_the_exporting_zones_dso_only():
    chain = new_chain()
    assert chain.read(lambda: (grid.zone(1).dso, grid.zone(2).dso)) == (DAVE.public_key,
                                                                                     GRACE.public_key)
    ok(chain.block(ask(chain, FERDIE, 30_000, 1_000)))                        # zone 2 exports
    r = ok(chain.block(bid(chain, CHARLIE, 30_000 + CROSS_FEE, 1_000)))       # zone 1 imports
    [tm] = trades_of(r)
    assert (tm[6], tm[7], tm[8], tm[10]) == (2, 1, 1_000, CROSS_FEE)
    read_meters(chain, {FERDIE: (0, 1_000), CHARLIE: (1_000, 0)})
    before = {who: stable(chain, who) for who in (DAVE, GRACE, FERDIE)}
    [r] = settle(chain)
    settled = events_named(r, _RUNTIME, "settlement", "TradeSettled")
    assert [s[:4] for s in settled] == [[0, 1_000, cost(1_000, 30_000), cost(1_000, CROSS_FEE)]]
    assert stable(chain, GRACE) - before[GRACE] == cost(1_000, CROSS_FEE)   # zone 2's DSO: the fee
    assert stable(chain, DAVE) == before[DAVE]                               # zone 1's DSO: nothing
    assert stable(chain, FERDIE) - before[FERDIE] == cost(1_000, 30_000)
    assert stable(chain, market.ESCROW_ACCOUNT) == 0


# --- ties across zones ---------------------------------------------------------------------------
def test_equal_all_in_asks_across_zones_fill_the_lower_order_id_first():
    """Ferdie's ask in zone 2 (order 0) and Bob's in zone 1 (order 1) cost Charlie the same all-in:
    30,000 + 35,000 = 45,000 + 20,000. Zone order (1 before 2) and id order disagree; id wins."""
    chain = new_chain()
    ok(chain.block(ask(chain, FERDIE, 30_000, 500)))                       # order 0, zone 2
    ok(chain.block(ask(chain, BOB, 65_000 - LOCAL_FEE, 500)))               # order 1, zone 1
    r = ok(chain.block(bid(chain, CHARLIE, 65_000, 500)))                   # takes only one of them
    assert [(tm[3], tm[5], tm[6], tm[8]) for tm in trades_of(r)] == [(0, FERDIE.public_key, 2, 500)]
    assert chain.read(lambda: market.book_side(1, T, market.ASK))[0][1] == 1     # Bob's still rests
    check_invariants(chain)


def test_equal_net_bids_across_zones_fill_the_lower_order_id_first():
    """Ferdie's bid in zone 2 (order 0) and Charlie's in zone 1 (order 1) pay Bob the same net of
    the fee: 100,000 - 35,000 = 85,000 - 20,000. Zone order and id order disagree; id wins."""
    chain = new_chain()
    ok(chain.block(bid(chain, FERDIE, 65_000 + CROSS_FEE, 500, zone=2)))   # order 0, zone 2
    ok(chain.block(bid(chain, CHARLIE, 65_000 + LOCAL_FEE, 500)))          # order 1, zone 1
    r = ok(chain.block(ask(chain, BOB, 60_000, 500)))                       # takes only one of them
    assert [(tm[2], tm[4], tm[7], tm[8], tm[9]) for tm in trades_of(r)] == [(0, FERDIE.public_key, 2, 500, 65_000)]
    assert chain.read(lambda: market.book_side(1, T, market.BID))[0][1] == 1     # Charlie's still rests
    check_invariants(chain)
