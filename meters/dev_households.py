"""The dev households' meters: //Bob//meter, //Charlie//meter and //Ferdie//meter reporting on real data.

Every gridchain spec (dev, local, the demo's neighbourhood) certifies three dev households' meters at
genesis, so that a newcomer can trade as Bob, Charlie or Ferdie from the wallet or the web app: Bob
and Ferdie have rooftop PV and bidirectional meters, Charlie has none and an import-only meter. A
trade settles against metered delivery, so without readings every trade of theirs would settle as
a missed reading (a shortfall, with a penalty) and their meter charts would stay empty. This module
gives them meters as a vendor's gateway would run them: one `Gateway` of the meter SDK, a signed
reading per meter at each interval end of the chain's clock, durably spooled, from a household of
the shipped real data (`meters.household`, attribution in `household.ATTRIBUTION`).

The households are fixed, not drawn, and sized to the meters' certificates: the data household's
highest half hour is 4.0 kWh (8 kW), so Ferdie's 8 kW meter gets 80% of its load, Bob's 10 kW meter
its full load, Charlie's 15 kW meter 120%; Charlie has no PV, so his import-only meter's export
register never moves. `tests/test_demo_keep.py` checks them against the genesis certificates.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from meters.gateway import Gateway, GatewayMeter
from meters.household import HouseholdSpec
from meters.sources import SimulatedSource
from meters.spool import Spool
from primitives.keys import Keypair

#: the simulated sources' seed (their spool state names it; the spec below is what they read)
DEV_SEED = 2011


@dataclass(frozen=True)
class DevHousehold:
    """A dev household: its name (account //<name>, meter //<name>//meter) and what its home does."""

    name: str
    spec: HouseholdSpec

    @property
    def prosumer(self) -> bool:
        return self.spec.pv_pct > 0

    @property
    def meter(self) -> Keypair:
        return Keypair.from_uri(f"//{self.name}//meter")


#: Bob: a 5.4 kWp roof (three times the data household's); Charlie: a flat without PV; Ferdie: a
#: 3.6 kWp roof and a smaller family. Each reads a different day of the data.
DEV_HOUSEHOLDS: tuple[DevHousehold, ...] = (
    DevHousehold("Bob", HouseholdSpec(day_offset=0, load_pct=100, pv_pct=300)),
    DevHousehold("Charlie", HouseholdSpec(day_offset=1, load_pct=120, pv_pct=0)),
    DevHousehold("Ferdie", HouseholdSpec(day_offset=2, load_pct=80, pv_pct=200)),
)


def dev_gateway(urls: list[str], spool_path: Path, clock: Callable[[], float], poll_s: float = 0.5) -> Gateway:
    """One gateway for the dev households' meters on the node(s) at `urls`, on the chain's `clock`
    (unix seconds; `primitives.chain_clock.ChainClock.now_s` for an accelerated chain), spooled at
    `spool_path`. Run it with `Gateway.run(stop)` for as long as the meters should report; a meter
    starts with the latest interval that has ended when the gateway first reaches a node."""
    meters = [GatewayMeter(h.meter, SimulatedSource(i, seed=DEV_SEED, spec=h.spec))
              for i, h in enumerate(DEV_HOUSEHOLDS)]
    return Gateway(meters, Spool.open(spool_path), urls, clock=clock, poll_s=poll_s)
