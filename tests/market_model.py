"""The world the market's state machine (tests/test_market_invariants.py) models: the cast, the
genesis variants (continuous, and zones 1 and 2 coupled), the hooks' small budgets, event ids, the
model records it keeps (meters, licences, orders, planned extrinsics) and the strategies of its rules."""
from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from genesis.chain_spec import DEV_METERS, DEV_ROLES, DEV_TARIFFS, dev_spec
from pallets import balances, grid, identity, market, metering, settlement, system
from pallets.identity import Status
from tests.runtime_harness import chain_factory
from tests.test_market import ALICE, BOB, CHARLIE, DAVE, EVE, FERDIE
from tests.test_settlement import METER_KEY

I = grid.Config.interval_s
GATE = market.Config.gate_closure_s
WINDOW = metering.Config.settlement_window_intervals
DRIFT = metering.Config.max_drift_s
ME, SE, GE, IE, BE, MTE = (market.Error, settlement.Error, grid.Error, identity.Error, balances.Error,
                           metering.Error)

_GENESIS = dev_spec()["genesis"]["runtimeGenesis"]["config"]
_GRID = _GENESIS["grid"]
ZONE_CAP = {z["id"]: (z["import_capacity_w"], z["export_capacity_w"]) for z in _GRID["zones"]}
LINK_W = {(a, b): w for a, b, w in _GRID["links"]}
#: the coupled variant of the genesis: zones 1 and 2 clear together at gate closure, and the link
#: 2 -> 1 carries 4 kW (1,000 Wh an interval), so it binds whenever Ferdie (zone 2) sells to zone 1
REGION = (1, 2)
COUPLED_LINK_W = {(1, 2): 100_000, (2, 1): 4_000}
RENT_PAID = (market.pallet.index, market.CongestionRentPaid._event_index)
BANDS = tuple(tuple(b) for b in _GRID["tou_bands"])

KP = {"Alice": ALICE, "Bob": BOB, "Charlie": CHARLIE, "Dave": DAVE, "Eve": EVE, "Ferdie": FERDIE}
assert set(KP) == set(DEV_ROLES)
NAME = {kp.public_key: n for n, kp in KP.items()}
BY_KEY = {kp.public_key: kp for kp in KP.values()}
METER_OF = {KP[o].public_key: METER_KEY[KP[o]].public_key for o, *_ in DEV_METERS}     # owner -> meter
UNKNOWN_METER = b"\x09" * 32


def coupled_genesis() -> dict:
    config = copy.deepcopy(_GENESIS)
    config["grid"]["links"] = [[a, b, w] for (a, b), w in sorted(COUPLED_LINK_W.items())]
    config["market"] = {"coupled_regions": [list(REGION)]}
    return config


new_coupled_chain = chain_factory(coupled_genesis())
#: per-block bounds of the hooks, made tiny in some runs: (config, name, small value)
SMALL_BUDGETS = [(market.Config, "max_expiries_per_block", 2), (settlement.Config, "max_trades_per_block", 2),
                 (settlement.Config, "max_intervals_per_block", 3)]

TRADE_MATCHED = (market.pallet.index, market.TradeMatched._event_index)
ORDER_PLACED = (market.pallet.index, market.OrderPlaced._event_index)
STANDING_POSTED = (market.pallet.index, market.StandingOrderPosted._event_index)
ORDER_EXPIRED = (market.pallet.index, market.OrderExpired._event_index)
REGION_CLEARINGS = {(market.pallet.index, market.RegionCleared._event_index),
                    (market.pallet.index, market.RegionNotCleared._event_index)}
SYSTEM_OR_FEE = {system.pallet.index, 4}          # ExtrinsicFailed, TransactionFeePaid


def istart(ts: int) -> int:
    return grid.interval_start(ts)


def wh(power_w: int) -> int:
    return market.wh_in_interval(power_w)


def grid_fee(from_zone: int, to_zone: int, t: int) -> int:
    return DEV_TARIFFS["local" if from_zone == to_zone else "cross"][grid.band_of(BANDS, t)]


@dataclasses.dataclass
class MeterModel:
    key: Any
    owner: bytes
    zone: int
    kind: int
    rated_w: int
    active: bool = True
    rogue: bool = False          # suspended automatically (not by the DSO)
    has_reading: bool = False
    last_seq: int = 0
    last_interval: int = 0
    imp: int = 0
    exp: int = 0
    implausible: int = 0
    intervals: set = dataclasses.field(default_factory=set)
    last_signed: Any = None


@dataclasses.dataclass
class Lic:
    roles: int
    status: int = Status.ACTIVE


@dataclasses.dataclass
class OrderRec:
    owner: bytes
    side: int
    zone: int
    t: int
    price: int
    qty: int
    meter: bytes | None


@dataclasses.dataclass
class Item:
    """One extrinsic of a block: built and judged once the block's time is known (inside the
    builder, after the hooks ran); `expect` returns None (success) or the ErrorDef it must fail or be
    rejected with; `on_ok` updates the model after a success."""
    make: Callable[[int], bytes]
    expect: Callable[[int], Any]
    signer: Any = None
    on_ok: Callable[[int], None] = lambda now: None
    meter: bytes | None = None


def _pick(seq: list, n: int):
    return seq[n % len(seq)] if seq else None


def mostly(valid, edges: list):
    """`valid` four times in five, else one of the edge values (some out of bounds)."""
    return st.one_of(valid, valid, valid, valid, st.sampled_from(edges))


PRICE = mostly(st.integers(1_000, 250_000),
               [0, 1, market.Config.max_price_per_kwh, market.Config.max_price_per_kwh + 1])
QTY = mostly(st.integers(1, 2_600), [0, 3_751, market.Config.max_quantity_wh + 1])
AHEAD = st.sampled_from([1, 1, 1, 2, 2, 3, 0, -1, 4, 6, 97, "unaligned"])
