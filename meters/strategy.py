"""A household's trading strategy: standing orders sized from its own forecast, revised hourly.

A household's energy manager does not trade interval by interval. It keeps at most one standing ask
(selling the PV surplus it expects) and one standing bid (buying the deficit it expects); the chain
posts them for every interval `standing_lead_intervals` ahead. Once an hour it looks at the hour
those posts will cover and revises: a standing order whose quantity is off by more than a quarter is
replaced, one no longer wanted is cancelled. So a sunny midday posts asks and the evening posts
bids, with a few transactions per household per hour.

The forecast is the household's own data for that hour, taken at 80%: a perfect forecast with a
safety margin, because selling more than it delivers costs the household a penalty per kWh.
Prices are per household and fixed: asks between 0.05 and 0.09 GEUR per kWh, all-in bid limits
between 0.12 and 0.16 (they must cover the grid fee: 0.02-0.06 per kWh on the dev feeders).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from meters.household import Household

BID, ASK = 0, 1
#: share of the forecast a household commits to
COMMIT_PCT = 80
#: smallest standing order worth a transaction, Wh per interval
MIN_ORDER_WH = 20
#: a standing order is replaced when the wanted quantity differs from it by more than this share
REVISE_PCT = 25


@dataclass(frozen=True)
class Prices:
    ask_per_kwh: int      # energy price asked for PV surplus, stablecoin units per kWh
    bid_per_kwh: int      # all-in limit bid for a deficit (energy price plus grid fee)


def household_prices(index: int, seed: int = 2011) -> Prices:
    rng = random.Random(seed * 1_000_003 + index)
    return Prices(ask_per_kwh=rng.randrange(50_000, 90_001, 1_000), bid_per_kwh=rng.randrange(120_000, 160_001, 1_000))


def wanted(household: Household, start: int, end: int, interval_s: int, prosumer: bool) -> dict[int, int]:
    """Quantity per interval (Wh) the household wants standing on each side for intervals in
    [start, end): the committed share of its average surplus (asks, prosumers only) and deficit."""
    n = max(1, (end - start) // interval_s)
    imp, exp = household.flows(start, end)
    out = {BID: imp * COMMIT_PCT // 100 // n, ASK: exp * COMMIT_PCT // 100 // n if prosumer else 0}
    return {side: (q // 10 * 10 if q >= MIN_ORDER_WH else 0) for side, q in out.items()}


def revision(current_wh: int, wanted_wh: int) -> str:
    """What to do with one side's standing order: 'keep', 'cancel', 'set' (none yet) or 'replace'."""
    if wanted_wh == 0:
        return "cancel" if current_wh else "keep"
    if current_wh == 0:
        return "set"
    if abs(wanted_wh - current_wh) * 100 > current_wh * REVISE_PCT:
        return "replace"
    return "keep"
