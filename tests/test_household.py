"""Simulated households on the shipped real data, and their standing-order strategy."""
from __future__ import annotations

import pytest

from meters.household import DATA_FILE, DataError, Household, HouseholdSpec, Registers, load_profile, neighbourhood
from meters.strategy import ASK, BID, REVISE_PCT, one_side, revision, revisions, standing_plan, wanted

MIDNIGHT = 1_764_028_800          # 2025-11-25 00:00 UTC, a whole number of days since the epoch


def test_shipped_data_is_a_whole_year_with_its_attribution():
    profile = load_profile()
    assert profile.slots == 17_568 and profile.days == 366
    # the data's own totals: 11,876.7 kWh consumed and 2,592.8 kWh generated over the year
    assert abs(sum(profile.consumption_wh) - 11_876_738) < 17_568
    assert abs(sum(profile.generation_wh) - 2_592_808) < 17_568
    readme = (DATA_FILE.parent / "README.md").read_text()
    assert "CC BY 4.0" in readme and "doi:10.1080/14786451.2015.1100196" in readme


def test_energy_splits_exactly_into_intervals_and_meter_netting_balances():
    h = Household(HouseholdSpec(day_offset=170, load_pct=90, pv_pct=300))
    day = (MIDNIGHT, MIDNIGHT + 86_400)
    c, g = h.energy(*day)
    imp, exp = h.flows(*day)
    assert imp - exp == c - g and g > 0
    quarter_hours = [h.flows(MIDNIGHT + k * 900, MIDNIGHT + (k + 1) * 900) for k in range(96)]
    assert sum(q[0] for q in quarter_hours) == imp and sum(q[1] for q in quarter_hours) == exp
    # the PV peak is around the chain's noon, nothing at midnight
    assert h.energy(MIDNIGHT, MIDNIGHT + 3600)[1] == 0
    assert h.energy(MIDNIGHT + 11 * 3600, MIDNIGHT + 13 * 3600)[1] > 0


def test_registers_never_decrease_and_restart_from_any_point_alike():
    h = Household(HouseholdSpec(day_offset=30, load_pct=100, pv_pct=200))
    regs = Registers(h, MIDNIGHT, import_wh=1_000_000, export_wh=5)
    values = [regs.at(MIDNIGHT + k * 900) for k in range(97)]
    assert values[0] == (1_000_000, 5)
    assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in zip(values, values[1:]))
    fresh = Registers(h, MIDNIGHT, import_wh=1_000_000, export_wh=5)
    assert fresh.at(MIDNIGHT + 50 * 900) == values[50]
    with pytest.raises(ValueError):
        regs.at(MIDNIGHT - 1)


def test_neighbourhood_is_seeded_and_varied():
    a, b = neighbourhood(30, seed=7), neighbourhood(30, seed=7)
    assert a == b and a != neighbourhood(30, seed=8)
    assert sum(1 for s in a if s.pv_pct == 0) == 10
    assert len({s.day_offset for s in a}) > 20


def test_a_malformed_data_row_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(",GC,GG\n2011-07-01 00:00:00,0.4,0.0\n2011-07-01 00:30:00,lots,0.0\n")
    with pytest.raises(DataError, match=r"bad.csv:3: GC is not a number"):
        load_profile(bad)
    gap = tmp_path / "gap.csv"
    gap.write_text(",GC,GG\n2011-07-01 00:00:00,0.4,0.0\n2011-07-01 01:30:00,0.4,0.0\n")
    with pytest.raises(DataError, match=r"gap.csv:3: .* does not follow"):
        load_profile(gap)


def test_strategy_sells_surplus_at_noon_buys_at_night_and_revises_only_on_real_change():
    h = Household(HouseholdSpec(day_offset=170, load_pct=60, pv_pct=400))
    noon = wanted(h, MIDNIGHT + 11 * 3600, MIDNIGHT + 12 * 3600, 900, prosumer=True)
    night = wanted(h, MIDNIGHT + 2 * 3600, MIDNIGHT + 3 * 3600, 900, prosumer=True)
    assert noon[ASK] > 0 and night[ASK] == 0 and night[BID] > 0
    assert wanted(h, MIDNIGHT + 11 * 3600, MIDNIGHT + 12 * 3600, 900, prosumer=False)[ASK] == 0
    assert revision(0, 0) == "keep" and revision(0, 100) == "set" and revision(100, 0) == "cancel"
    assert revision(100, 120) == "keep" and revision(100, 130) == "replace"


def test_strategy_keeps_one_side_per_hour_and_cancels_before_it_sets():
    # a coupled region refuses a participant's bid and ask for one interval (BothSidesInRegion)
    assert one_side({BID: 120, ASK: 300}) == {BID: 0, ASK: 300}
    assert one_side({BID: 300, ASK: 120}) == {BID: 300, ASK: 0}
    assert one_side({BID: 0, ASK: 0}) == {BID: 0, ASK: 0}
    # from buying to selling: the bid goes first, so no sweep sees both standing orders
    assert revisions({BID: 200, ASK: 0}, {BID: 0, ASK: 300}) == [(BID, "cancel", 0), (ASK, "set", 300)]
    assert revisions({BID: 0, ASK: 300}, {BID: 500, ASK: 0}) == [(ASK, "cancel", 0), (BID, "set", 500)]
    assert revisions({BID: 100, ASK: 0}, {BID: 110, ASK: 0}) == []


def test_the_standing_plan_posts_one_side_per_household_asks_at_noon_and_bids_at_night():
    sunny = Household(HouseholdSpec(day_offset=170, load_pct=60, pv_pct=400))
    flat = Household(HouseholdSpec(day_offset=30, load_pct=100, pv_pct=0))
    plan = standing_plan({"sunny": (sunny, True), "flat": (flat, False)}, MIDNIGHT, 24)
    noon, night = plan[MIDNIGHT + 12 * 3600], plan[MIDNIGHT + 2 * 3600]
    assert noon["sunny"][0] == ASK and night["sunny"][0] == BID
    assert noon["flat"][0] == BID and night["flat"][0] == BID
    # the first revision (an hour before the day) posts from 15 minutes before the day, the last
    # interval of the day gets nothing (the day's end cancels)
    assert min(plan) == MIDNIGHT - 900 and max(plan) == MIDNIGHT + 24 * 3600 - 1800
    # what it posts at noon is what the household wants for that hour, up to the revision's slack
    want = one_side(wanted(sunny, MIDNIGHT + 11 * 3600 + 1800, MIDNIGHT + 12 * 3600 + 1800, 900, True))
    assert noon["sunny"][0] == ASK and abs(noon["sunny"][1] - want[ASK]) * 100 <= noon["sunny"][1] * REVISE_PCT
