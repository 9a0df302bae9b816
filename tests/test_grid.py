"""grid pallet: zones, capacities, links, tariffs, pauses and operating envelopes; the DSO's rules."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pallets import grid, identity, timestamp
from pallets.identity import Role
from runtime import dispatch
from runtime.pallet import DispatchError, Origin
from runtime.storage import Overlay, externalities
from tests.runtime_harness import BOB, CHARLIE, EVE, events_named
from tests.test_identity import (DAVE, FERDIE, REASON, base_genesis, expect_failure, failures, new_chain,
                                 root, sudo_errors)

E = grid.Error
INTERVAL = grid.Config.interval_s
BANDS = [[0, 0], [25200, 1], [79200, 0]]


def grid_genesis() -> dict:
    """Charlie runs zones 1 and 2, Dave (also a DSO) zone 3; 1 -> 2 linked; tariffs in zone 1 and 1 -> 2."""
    g = base_genesis()
    g["identity"]["participants"].append({"address": DAVE.address(), "roles": ["dso", "prosumer"]})
    g["grid"] = {
        "interval_s": INTERVAL,
        "tou_bands": BANDS,
        "zones": [
            {"id": 1, "dso": CHARLIE.address(), "name": "feeder-1", "import_capacity_w": 100_000,
             "export_capacity_w": 50_000},
            {"id": 2, "dso": CHARLIE.address(), "name": "feeder-2", "import_capacity_w": 80_000,
             "export_capacity_w": 40_000},
            {"id": 3, "dso": DAVE.address(), "name": "transformer-3", "import_capacity_w": 500_000,
             "export_capacity_w": 500_000},
        ],
        "links": [[1, 2, 20_000]],
        "tariffs": [[1, 1, 0, 10], [1, 1, 1, 25], [1, 2, 1, 30]],
    }
    return g


@pytest.fixture
def chain():
    return new_chain(grid_genesis())


def read(chain, fn, *args):
    return chain.read(lambda: fn(*args))


def now_s(chain) -> int:
    """The time the next block will carry (the harness adds a second per block)."""
    return (chain.now_ms + 1000) // 1000


def next_interval(chain, k: int = 1) -> int:
    return grid.interval_start(now_s(chain)) + k * INTERVAL


# --- genesis and read functions --------------------------------------------------------------------
def test_genesis_builds_zones_links_tariffs_and_bands(chain):
    z = read(chain, grid.zone, 1)
    assert z == grid.Zone(CHARLIE.public_key, "feeder-1", 100_000, 50_000, False)
    assert read(chain, grid.zone, 9) is None
    assert read(chain, grid.is_zone_dso, 3, DAVE.public_key)
    assert not read(chain, grid.is_zone_dso, 3, CHARLIE.public_key)
    assert read(chain, grid.zone_count.get) == 3
    assert read(chain, grid.link_limit_w, 1, 2) == 20_000 and read(chain, grid.link_limit_w, 2, 1) is None
    assert read(chain, grid.tou_bands.get) == tuple(tuple(b) for b in BANDS)
    day = 1_700_006_400 - 1_700_006_400 % 86_400             # midnight UTC
    assert read(chain, grid.band_at, day) == 0 and read(chain, grid.band_at, day + 25_199) == 0
    assert read(chain, grid.band_at, day + 25_200) == 1 and read(chain, grid.band_at, day + 79_199) == 1
    assert read(chain, grid.band_at, day + 79_200) == 0
    assert read(chain, grid.grid_fee_per_kwh, 1, 1, day) == 10
    assert read(chain, grid.grid_fee_per_kwh, 1, 1, day + 30_000) == 25
    assert read(chain, grid.grid_fee_per_kwh, 1, 2, day + 30_000) == 30
    assert read(chain, grid.grid_fee_per_kwh, 1, 2, day) is None          # no tariff in band 0
    assert read(chain, grid.grid_fee_per_kwh, 2, 1, day + 30_000) is None  # no link 2 -> 1
    assert read(chain, grid.grid_fee_per_kwh, 1, 9, day) is None           # unknown zone
    assert read(chain, grid.capacity_for, 1, next_interval(chain)) == (100_000, 50_000)
    assert read(chain, grid.capacity_for, 9, next_interval(chain)) == (0, 0)
    assert not read(chain, grid.is_paused, 1) and not read(chain, grid.is_paused, 9)


def test_defaults_without_grid_genesis():
    chain = new_chain()
    assert read(chain, grid.band_at, 12345) == 0
    assert read(chain, grid.zone_count.get) == 0


@pytest.mark.parametrize("change, message", [
    (lambda g: g.update(interval_s=60), "interval_s is fixed"),
    (lambda g: g.update(tou_bands=[[100, 0]]), "second 0"),
    (lambda g: g.update(tou_bands=[[0, 0], [500, 1], [500, 2]]), "strictly ascending"),
    (lambda g: g.update(tou_bands=[[0, 0], [86_400, 1]]), "bad tou band"),
    (lambda g: g["zones"].append(dict(g["zones"][0])), "listed twice"),
    (lambda g: g["zones"].append({**g["zones"][0], "id": 4, "dso": BOB.address()}), "no active DSO licence"),
    (lambda g: g["zones"].append({**g["zones"][0], "id": 4, "name": ""}), "needs a name"),
    (lambda g: g["links"].append([1, 1, 5]), "bad link"),
    (lambda g: g["links"].append([1, 9, 5]), "bad link"),
    (lambda g: g["tariffs"].append([1, 9, 0, 5]), "unknown zone"),
    (lambda g: g["tariffs"].append([1, 2, 7, 5]), "undefined band"),
])
def test_genesis_rejects_bad_config(change, message):
    g = grid_genesis()
    change(g["grid"])
    with pytest.raises(ValueError, match=message):
        new_chain(g)


def test_interval_start_and_band_at_are_pure_integer_rules():
    assert grid.interval_start(1_700_000_000) == 1_699_999_200
    assert grid.interval_start(1_699_999_200) == 1_699_999_200
    assert grid.band_of((), 5) == 0


@settings(max_examples=300, deadline=None)
@given(ts=st.integers(min_value=0, max_value=2**40))
def test_interval_start_is_the_aligned_floor_for_any_time(ts):
    start = grid.interval_start(ts)
    assert type(start) is int and start % INTERVAL == 0 and start <= ts < start + INTERVAL


@st.composite
def band_lists(draw):
    starts = draw(st.lists(st.integers(min_value=1, max_value=86_399), max_size=10, unique=True))
    starts = [0] + sorted(starts)
    return tuple((s, draw(st.integers(min_value=0, max_value=255))) for s in starts)


@settings(max_examples=300, deadline=None)
@given(bands=band_lists(), ts=st.integers(min_value=0, max_value=2**40))
def test_band_at_any_time_is_the_band_of_the_last_start_at_or_before_it(bands, ts):
    second = ts % 86_400
    expected = max((s, b) for s, b in bands if s <= second)[1]
    assert grid.band_of(bands, ts) == expected
    assert grid.band_of(bands, ts + 86_400) == expected            # the same every day
    assert grid.check_tou_bands([list(b) for b in bands]) == bands


# --- create_zone / set_zone_dso (root) -------------------------------------------------------------
def test_root_creates_a_zone_for_a_licensed_dso(chain):
    result = chain.block(root(chain, "grid", "create_zone", 4, DAVE.public_key, "feeder-4", 7_000, 3_000))
    assert sudo_errors(chain, result) == []
    assert read(chain, grid.zone, 4) == grid.Zone(DAVE.public_key, "feeder-4", 7_000, 3_000, False)
    assert read(chain, grid.zone_count.get) == 4
    assert events_named(result, chain.runtime, "grid", "ZoneCreated") == [
        [4, DAVE.public_key, "feeder-4", 7_000, 3_000]]


@pytest.mark.parametrize("args, sentence", [
    ((1, DAVE.public_key, "again", 1, 1), E.ZoneExists.message),
    ((4, BOB.public_key, "feeder-4", 1, 1), E.NotLicensedDso.message),    # prosumer, not DSO
    ((4, FERDIE.public_key, "feeder-4", 1, 1), E.NotLicensedDso.message),  # no licence
    ((4, DAVE.public_key, "", 1, 1), E.EmptyName.message),
])
def test_create_zone_errors(chain, args, sentence):
    expect_failure(chain, root(chain, "grid", "create_zone", *args), sentence, "grid")


def test_create_zone_beyond_max_zones_is_refused(chain, monkeypatch):
    monkeypatch.setattr(grid.Config, "max_zones", 3)
    expect_failure(chain, root(chain, "grid", "create_zone", 4, DAVE.public_key, "x", 1, 1),
                   E.TooManyZones.message, "grid")


def test_create_zone_needs_root(chain):
    expect_failure(chain, chain.xt(CHARLIE, "grid", "create_zone", 4, CHARLIE.public_key, "x", 1, 1),
                   "this call needs the root origin", "grid")


def test_root_hands_a_zone_to_another_dso(chain):
    result = chain.block(root(chain, "grid", "set_zone_dso", 1, DAVE.public_key))
    assert sudo_errors(chain, result) == []
    assert read(chain, grid.is_zone_dso, 1, DAVE.public_key)
    assert events_named(result, chain.runtime, "grid", "ZoneDsoChanged") == [[1, DAVE.public_key]]
    expect_failure(chain, chain.xt(CHARLIE, "grid", "set_capacity", 1, 1, 1), E.NotZoneDso.message, "grid")


@pytest.mark.parametrize("args, sentence", [
    ((9, DAVE.public_key), E.UnknownZone.message),
    ((1, BOB.public_key), E.NotLicensedDso.message),
])
def test_set_zone_dso_errors(chain, args, sentence):
    expect_failure(chain, root(chain, "grid", "set_zone_dso", *args), sentence, "grid")


# --- DSO calls --------------------------------------------------------------------------------------
def test_dso_sets_capacity(chain):
    result = chain.block(chain.xt(CHARLIE, "grid", "set_capacity", 1, 60_000, 0))
    assert failures(chain, result) == []
    assert read(chain, grid.capacity_for, 1, next_interval(chain)) == (60_000, 0)
    assert events_named(result, chain.runtime, "grid", "CapacitySet") == [[1, 60_000, 0]]


@pytest.mark.parametrize("signer, zone, sentence", [
    (CHARLIE, 9, E.UnknownZone.message),
    (DAVE, 1, E.NotZoneDso.message),
    (BOB, 1, E.NotZoneDso.message),
])
def test_set_capacity_errors(chain, signer, zone, sentence):
    expect_failure(chain, chain.xt(signer, "grid", "set_capacity", zone, 1, 1), sentence, "grid")


def test_a_dso_whose_licence_is_suspended_cannot_act(chain):
    chain.block(chain.xt(EVE, "identity", "suspend", CHARLIE.public_key, REASON))
    for call, args in (("set_capacity", (1, 1, 1)), ("set_link_limit", (1, 2, 5)),
                       ("set_tariff", (1, 2, 0, 5)), ("pause_zone", (1, REASON)),
                       ("resume_zone", (1,)), ("set_envelope", (1, next_interval(chain), 1, 1))):
        expect_failure(chain, chain.xt(CHARLIE, "grid", call, *args), E.NotLicensedDso.message, "grid")


def test_dso_sets_and_removes_a_link(chain):
    result = chain.block(chain.xt(CHARLIE, "grid", "set_link_limit", 2, 3, 15_000))
    assert failures(chain, result) == []
    assert read(chain, grid.link_limit_w, 2, 3) == 15_000
    assert events_named(result, chain.runtime, "grid", "LinkLimitSet") == [[2, 3, 15_000]]
    chain.block(chain.xt(CHARLIE, "grid", "set_link_limit", 1, 2, 0))
    assert read(chain, grid.link_limit_w, 1, 2) is None
    assert read(chain, grid.grid_fee_per_kwh, 1, 2, 30_000) is None   # the tariff stays, the link is gone


@pytest.mark.parametrize("signer, args, sentence", [
    (CHARLIE, (1, 1, 5), E.SameZone.message),
    (CHARLIE, (9, 1, 5), E.UnknownZone.message),
    (CHARLIE, (1, 9, 5), E.UnknownZone.message),
    (DAVE, (1, 3, 5), E.NotZoneDso.message),          # Dave runs the to-zone, not the from-zone
])
def test_set_link_limit_errors(chain, signer, args, sentence):
    expect_failure(chain, chain.xt(signer, "grid", "set_link_limit", *args), sentence, "grid")


def test_dso_sets_a_tariff(chain):
    result = chain.block(chain.xt(CHARLIE, "grid", "set_tariff", 1, 2, 0, 12))
    assert failures(chain, result) == []
    assert read(chain, grid.grid_fee_per_kwh, 1, 2, 0) == 12
    assert events_named(result, chain.runtime, "grid", "TariffSet") == [[1, 2, 0, 12]]


@pytest.mark.parametrize("signer, args, sentence", [
    (CHARLIE, (9, 1, 0, 5), E.UnknownZone.message),
    (CHARLIE, (1, 9, 0, 5), E.UnknownZone.message),
    (DAVE, (1, 1, 0, 5), E.NotZoneDso.message),
    (CHARLIE, (1, 2, 2, 5), E.UnknownBand.message),
])
def test_set_tariff_errors(chain, signer, args, sentence):
    expect_failure(chain, chain.xt(signer, "grid", "set_tariff", *args), sentence, "grid")


def test_dso_pauses_and_resumes_a_zone(chain):
    r1 = chain.block(chain.xt(CHARLIE, "grid", "pause_zone", 1, REASON))
    assert failures(chain, r1) == [] and read(chain, grid.is_paused, 1)
    assert events_named(r1, chain.runtime, "grid", "ZonePaused") == [[1, CHARLIE.public_key, REASON]]
    expect_failure(chain, chain.xt(CHARLIE, "grid", "pause_zone", 1, REASON), E.AlreadyPaused.message, "grid")
    r2 = chain.block(chain.xt(CHARLIE, "grid", "resume_zone", 1))
    assert failures(chain, r2) == [] and not read(chain, grid.is_paused, 1)
    assert events_named(r2, chain.runtime, "grid", "ZoneResumed") == [[1, CHARLIE.public_key]]
    expect_failure(chain, chain.xt(CHARLIE, "grid", "resume_zone", 1), E.NotPaused.message, "grid")


@pytest.mark.parametrize("signer, call, args, sentence", [
    (CHARLIE, "pause_zone", (9, REASON), E.UnknownZone.message),
    (DAVE, "pause_zone", (1, REASON), E.NotZoneDso.message),
    (CHARLIE, "resume_zone", (9,), E.UnknownZone.message),
    (DAVE, "resume_zone", (1,), E.NotZoneDso.message),
])
def test_pause_and_resume_errors(chain, signer, call, args, sentence):
    expect_failure(chain, chain.xt(signer, "grid", call, *args), sentence, "grid")


def test_dso_sets_an_envelope_for_a_future_interval(chain):
    start = next_interval(chain)
    result = chain.block(chain.xt(CHARLIE, "grid", "set_envelope", 1, start, 30_000, 60_000 // 2))
    assert failures(chain, result) == []
    assert read(chain, grid.capacity_for, 1, start) == (30_000, 30_000)
    assert read(chain, grid.capacity_for, 1, start + INTERVAL) == (100_000, 50_000)
    assert events_named(result, chain.runtime, "grid", "EnvelopeSet") == [[1, start, 30_000, 30_000]]
    chain.block(chain.xt(CHARLIE, "grid", "set_capacity", 1, 10_000, 50_000))   # capacity below envelope
    assert read(chain, grid.capacity_for, 1, start) == (10_000, 30_000)


def test_set_envelope_errors(chain):
    start = next_interval(chain)
    cases = [
        (CHARLIE, (9, start, 1, 1), E.UnknownZone.message),
        (DAVE, (1, start, 1, 1), E.NotZoneDso.message),
        (CHARLIE, (1, start + 1, 1, 1), E.UnalignedInterval.message),
        (CHARLIE, (1, start - INTERVAL, 1, 1), E.IntervalInPast.message),   # the current interval
        (CHARLIE, (1, start + grid.Config.max_envelope_ahead_s, 1, 1), E.IntervalTooFar.message),
        (CHARLIE, (1, start, 100_001, 1), E.EnvelopeAboveCapacity.message),
        (CHARLIE, (1, start, 1, 50_001), E.EnvelopeAboveCapacity.message),
    ]
    for signer, args, sentence in cases:
        expect_failure(chain, chain.xt(signer, "grid", "set_envelope", *args), sentence, "grid")


def test_dso_calls_made_directly_raise_their_error(chain):
    with externalities(Overlay(chain.state)):
        with pytest.raises(DispatchError, match="only the zone's DSO"):
            grid.set_capacity(Origin.signed(DAVE.public_key), 1, 1, 1)
        assert identity.is_licensed(CHARLIE.public_key, Role.DSO)


# --- property -----------------------------------------------------------------------------------------
_calls = st.one_of(
    st.tuples(st.just("set_capacity"), st.integers(0, 200_000), st.integers(0, 200_000)),
    st.tuples(st.just("set_envelope"), st.integers(0, 3), st.integers(0, 200_000), st.integers(0, 200_000)),
)


@pytest.fixture(scope="module")
def genesis_chain():
    return new_chain(grid_genesis())


@settings(max_examples=150, deadline=None)
@given(calls=st.lists(_calls, max_size=25))
def test_capacity_for_never_exceeds_zone_capacity_over_any_sequence_of_calls(genesis_chain, calls):
    chain = genesis_chain
    p = chain.runtime.by_name["grid"]
    dso = Origin.signed(CHARLIE.public_key)
    base = 1_700_000_100            # an interval start after the time set below
    with externalities(Overlay(chain.state)):
        timestamp.now.put(1_700_000_000_000)
        for c in calls:
            if c[0] == "set_capacity":
                args = (1, c[1], c[2])
            else:
                args = (1, base + c[1] * INTERVAL, c[2], c[3])
            try:
                dispatch.dispatch(p.calls_by_name[c[0]], dso, args)
            except DispatchError as e:
                assert e.error.name == "EnvelopeAboveCapacity"
            z = grid.zone(1)
            for k in range(4):
                imp, exp = grid.capacity_for(1, base + k * INTERVAL)
                assert 0 <= imp <= z.import_capacity_w and 0 <= exp <= z.export_capacity_w
                env = grid.envelopes.get(1, base + k * INTERVAL)
                if env is not None:
                    assert (imp, exp) == (min(env.import_w, z.import_capacity_w),
                                          min(env.export_w, z.export_capacity_w))
