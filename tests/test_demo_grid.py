"""The demo's coupled feeders, without starting a node: the spec it writes is one the runtime accepts
(feeders 1 and 2 one coupled region, the link at the rating asked for, `local` untouched), and the
link it rates from the households' standing-order plan binds at noon and nowhere at night."""
from __future__ import annotations

import copy

import pytest

from genesis.chain_spec import ChainSpecError, Household, couple_feeders, local_spec, neighbourhood_spec
from meters.simulator import build_households
from node.demo import LINK_SHARE, NORTH, SOUTH, size_link, unlimited_flows
from pallets import grid, known_versions, market, upgrades
from primitives.keys import Keypair
from tests.runtime_harness import chain_factory

DAY = 1_796_688_000          # 2026-12-08 00:00 UTC, a whole number of days since the epoch
HOUR = 3600


def _demo(n: int = 20) -> tuple[list, dict]:
    sims = build_households(n, 2011, zones=(NORTH, SOUTH), split_by_pv=True)
    spec = neighbourhood_spec(4, [Household(h.name, h.prosumer, h.zone, h.rated_power_w, h.field_certificate())
                                  for h in sims])
    return sims, spec


def test_homes_with_pv_are_on_feeder_north_and_the_others_on_feeder_south():
    sims, _ = _demo()
    assert {h.zone for h in sims if h.prosumer} == {NORTH}
    assert {h.zone for h in sims if not h.prosumer} == {SOUTH}
    assert sum(1 for h in sims if h.zone == SOUTH) == 6


def test_the_demo_spec_couples_the_feeders_and_the_runtime_accepts_it():
    _, spec = _demo(8)
    before = copy.deepcopy(local_spec())
    couple_feeders(spec, 4_832)
    chain = chain_factory(spec["genesis"]["runtimeGenesis"]["config"])()
    assert chain.read(lambda: market.coupled_regions.get()) == ((1, 2),)
    assert chain.read(lambda: (grid.link_limit_w(1, 2), grid.link_limit_w(2, 1))) == (4_832, 4_832)
    assert chain.read(lambda: market.zone_mode(1)) == market.COUPLED
    assert local_spec() == before                               # the shared presets stay continuous
    assert "market" not in local_spec()["genesis"]["runtimeGenesis"]["config"]
    with pytest.raises(ChainSpecError, match="positive power"):
        couple_feeders(spec, 0)


def test_the_link_is_rated_below_the_noon_flow_so_it_binds_at_noon_and_not_at_night():
    sims, spec = _demo()
    config = spec["genesis"]["runtimeGenesis"]["config"]["grid"]
    sizing = size_link(sims, config, DAY, 24)
    flows = unlimited_flows(sims, config, DAY, 24)
    link_wh = sizing.link_w * 900 // HOUR
    noon = [flows[DAY + 12 * HOUR + q * 900] for q in range(4)]
    assert sizing.hour_start == DAY + 12 * HOUR and sizing.flow_wh == min(noon)
    assert link_wh == min(noon) * LINK_SHARE[0] // LINK_SHARE[1]
    assert all(f > link_wh for f in noon)                      # congested in every noon interval
    night = [f for t, f in flows.items() if not 7 * HOUR <= t - DAY < 19 * HOUR]
    assert night and all(f < link_wh for f in night)          # no surplus to send: nothing binds


def test_a_run_without_surplus_keeps_a_link_that_never_binds():
    sims, spec = _demo()
    sizing = size_link(sims, spec["genesis"]["runtimeGenesis"]["config"]["grid"], DAY + 20 * HOUR, 4)
    assert sizing.hour_start is None and sizing.flow_wh == 0 and sizing.link_w >= 100_000


def test_the_demo_starts_under_the_newest_runtime_so_a_standing_order_takes_a_daytime_window():
    """The web app offers windowed standing orders (runtime version 2) on the demo's chain."""
    _, spec = _demo(8)
    config = spec["genesis"]["runtimeGenesis"]["config"]
    assert config["upgrades"] == {"spec_version": known_versions()[-1]} and known_versions()[-1] >= 2
    assert "upgrades" not in local_spec()["genesis"]["runtimeGenesis"]["config"]   # local stays at 1
    chain = chain_factory(config)()
    assert chain.read(upgrades.version_in_force.get) == known_versions()[-1]
    home, meter = Keypair.from_uri("//Household1"), Keypair.from_uri("//Household1//meter").public_key
    chain.block(chain.xt(home, "market", "set_standing_order_window", market.ASK, NORTH, 50_000, 500, meter, False,
                         8 * HOUR, 17 * HOUR))
    assert chain.read(lambda: [w for _, w in market.standing_windows.items()]) == [(8 * HOUR, 17 * HOUR)]
