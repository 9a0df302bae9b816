"""A household's trading strategy: standing orders sized from its own forecast, revised hourly.

A household's energy manager does not trade interval by interval. It keeps one standing order: an
ask (selling the PV surplus it expects) or a bid (buying the deficit it expects); the chain posts it
for every interval `standing_lead_intervals` ahead. Once an hour it looks at the hour those posts
will cover and revises: a standing order whose quantity is off by more than a quarter is replaced,
one no longer wanted is cancelled. So a sunny midday posts asks and the evening posts bids, with a
few transactions per household per hour.

One side at a time (`one_side`): in a coupled region the market refuses a participant's order on
one side for an interval in which it already has an order on the other (BothSidesInRegion), and a
standing order of the other side would be skipped for it. An hour with both some surplus and some
deficit (a prosumer's morning or evening) keeps the larger side only.

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


def one_side(want: dict[int, int]) -> dict[int, int]:
    """`wanted`'s quantities with only the larger side kept (the ask on a tie), the other 0."""
    keep = ASK if want[ASK] >= want[BID] else BID
    return {side: (q if side == keep else 0) for side, q in want.items()}


def revision(current_wh: int, wanted_wh: int) -> str:
    """What to do with one side's standing order: 'keep', 'cancel', 'set' (none yet) or 'replace'."""
    if wanted_wh == 0:
        return "cancel" if current_wh else "keep"
    if current_wh == 0:
        return "set"
    if abs(wanted_wh - current_wh) * 100 > current_wh * REVISE_PCT:
        return "replace"
    return "keep"


def revisions(current: dict[int, int], want: dict[int, int]) -> list[tuple[int, str, int]]:
    """The changes to one household's standing orders, (side, action, wanted Wh) for each side not
    kept, cancels first: the other side's order must be gone before the new one is set, or the
    market's posting sweep could meet both for one interval and skip one (BothSidesInRegion)."""
    out = [(side, revision(current.get(side, 0), want[side]), want[side]) for side in (ASK, BID)]
    return sorted((c for c in out if c[1] != "keep"), key=lambda c: c[1] != "cancel")


def decision_times(day_start: int, hours: int, interval_s: int, lead_intervals: int = 2) -> list[tuple[int, int]]:
    """When the energy manager revises, and the start of the hour each revision is for: once an
    hour from an hour before the day, for the hour its posts begin with (`lead_intervals` ahead,
    the chain's standing_lead_intervals); the last one, at the day's end, cancels everything."""
    return [(day_start - 3600 + k * 3600, day_start - 3600 + k * 3600 + lead_intervals * interval_s)
            for k in range(hours + 1)]


def standing_plan(households: dict[str, tuple[Household, bool]], day_start: int, hours: int,
                  interval_s: int = 900) -> dict[int, dict[str, tuple[int, int]]]:
    """What the households' standing orders will post: interval start -> {household: (side, Wh)},
    for households posting in it. `households` maps a name to its (Household, prosumer). The same
    decisions as the simulator's energy managers (`one_side`, `revisions`), walked ahead of time, so
    that a demo can size its grid from what will be traded. A revision is decided at an interval's
    start and lands in one of its blocks, after the chain's sweep posted the old orders for the
    hour's first interval, so it posts from the interval after that on."""
    current: dict[str, dict[int, int]] = {name: {BID: 0, ASK: 0} for name in households}
    plan: dict[int, dict[str, tuple[int, int]]] = {}
    for k, (_decide_at, start) in enumerate(decision_times(day_start, hours, interval_s)):
        if k == hours:
            break
        for name, (household, prosumer) in households.items():
            want = one_side(wanted(household, start, start + 3600, interval_s, prosumer))
            for side, action, quantity in revisions(current[name], want):
                current[name][side] = 0 if action == "cancel" else quantity
            for t in range(start + interval_s, start + interval_s + 3600, interval_s):
                for side in (BID, ASK):
                    if current[name][side]:
                        plan.setdefault(t, {})[name] = (side, current[name][side])
    return plan
