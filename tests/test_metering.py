"""Metering pallet: meter certification and management, signed readings as unsigned extrinsics.

The test runtime is gridchain's pallets plus identity (6), grid (7) and metering (8). Genesis: Charlie
is a registrar, Dave the DSO of zone 1, Ferdie the DSO of zone 2, Bob a licensed prosumer who owns
two certified meters in zone 1 (`//Meter1` bidirectional 10 kW, `//Meter2` export-only 4 kW); Eve
holds no licence. Block times advance one second per block; `goto` jumps the clock.
"""
from __future__ import annotations

import dataclasses
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pallets import (grid, metering)
from primitives.extrinsic import Call, Extrinsic
from primitives.keys import Keypair, dev_keypair
from primitives.meter_reading import Reading, SignedReading, reading_hash, reading_message, sign_reading
from runtime.api import InvalidKind, InvalidTransaction
from runtime.executive import BlockError
from runtime.storage import Overlay, externalities
from tests.runtime_harness import (chain_factory, ALICE, BOB, CHARLIE, EVE, FUNDS, GENESIS_HASH, ChainHarness, default_genesis, events_named)

REGISTRAR, OWNER, OUTSIDER = CHARLIE, BOB, EVE
DSO, OTHER_DSO = dev_keypair("Dave"), dev_keypair("Ferdie")
M1, M2, M3 = (Keypair.from_uri(f"//Meter{i}") for i in (1, 2, 3))
UNKNOWN_METER = Keypair.from_uri("//Meter9")
I = grid.Config.interval_s
T = 1_700_000_100            # an interval start (aligned) just after the harness's first blocks
M1_BOUND_WH = 10_000 * I // 3600     # what 10 kW can move in one interval: 2,500 Wh
E = metering.Error


def metering_genesis() -> dict:
    g = default_genesis()
    g["balances"]["balances"] += [[DSO.address(), FUNDS], [OTHER_DSO.address(), FUNDS]]
    g["identity"] = {"participants": [
        {"address": REGISTRAR.address(), "roles": ["registrar"]},
        {"address": DSO.address(), "roles": ["dso"]},
        {"address": OTHER_DSO.address(), "roles": ["dso"]},
        {"address": OWNER.address(), "roles": ["prosumer"]},
    ]}
    g["grid"] = {"tou_bands": [[0, 0]], "links": [], "tariffs": [], "zones": [
        {"id": 1, "dso": DSO.address(), "name": "feeder-1", "import_capacity_w": 500_000,
         "export_capacity_w": 500_000},
        {"id": 2, "dso": OTHER_DSO.address(), "name": "feeder-2", "import_capacity_w": 500_000,
         "export_capacity_w": 500_000},
    ]}
    g["metering"] = {"meters": [
        {"meter": "0x" + M1.public_key.hex(), "owner": OWNER.address(), "zone": 1, "kind": 2,
         "rated_power_w": 10_000},
        {"meter": "0x" + M2.public_key.hex(), "owner": OWNER.address(), "zone": 1, "kind": 1,
         "rated_power_w": 4_000},
    ]}
    return g


new_chain = chain_factory(metering_genesis())
_RUNTIME = new_chain.runtime


@pytest.fixture
def chain() -> ChainHarness:
    return new_chain()


# --- helpers ---------------------------------------------------------------------------------
def sr(kp: Keypair, seq: int, t: int, imp: int, exp: int, genesis: bytes = GENESIS_HASH) -> SignedReading:
    return sign_reading(kp, Reading(kp.public_key, seq, t, imp, exp), genesis)


def reading_xt(signed: SignedReading) -> bytes:
    cd = metering.submit_reading.call_def
    return Extrinsic(Call(metering.pallet.index, cd.index, (signed.to_plain(),))).encode()


def goto(chain: ChainHarness, ts_s: int) -> None:
    """Produce an empty block at unix second ts_s (the next block is at ts_s + 1)."""
    assert ts_s * 1000 > chain.now_ms
    chain.now_ms = ts_s * 1000 - 1000
    chain.block()


def after(t: int) -> int:
    """A moment just after interval t ended, when its reading is due."""
    return t + I + 1


def submit(chain: ChainHarness, signed: SignedReading):
    return chain.block(reading_xt(signed))


def meter_of(chain, kp: Keypair) -> metering.Meter:
    return chain.read(lambda: metering.meters.get(kp.public_key))


def energy(chain, kp: Keypair, t: int) -> metering.IntervalEnergy | None:
    return chain.read(lambda: metering.energy_in_interval(kp.public_key, t))


def failure(result) -> str:
    failed = events_named(result, _RUNTIME, "system", "ExtrinsicFailed")
    assert len(failed) == 1, "expected the call to fail"
    return failed[0][0][2]


def assert_rejected(chain: ChainHarness, signed: SignedReading, kind: InvalidKind, error) -> None:
    """The pool refuses the reading with `kind` and the error's sentence; a block containing it is
    invalid; and nothing in state changed."""
    before = dict(chain.state)
    xt = reading_xt(signed)
    with pytest.raises(InvalidTransaction) as e:
        chain.validate(xt)
    assert e.value.kind is kind and e.value.reason == error.message
    with pytest.raises(BlockError, match=re.escape(error.message)):
        chain.block(xt)
    assert dict(chain.state) == before


# --- happy path ------------------------------------------------------------------------------
def test_genesis_meters_and_genesis_hash_copy(chain):
    m = meter_of(chain, M1)
    assert (m.owner, m.zone, m.kind, m.rated_power_w, m.status, m.has_reading) == \
        (OWNER.public_key, 1, metering.KIND_BIDIRECTIONAL, 10_000, metering.STATUS_ACTIVE, False)
    assert chain.read(metering.chain_genesis_hash.get) == GENESIS_HASH


def test_readings_over_several_intervals_store_deltas_and_hash_not_registers(chain):
    free_before = chain.free(OWNER.public_key)
    readings = [sr(M1, 1, T, 10_000, 5_000), sr(M1, 2, T + I, 10_300, 7_000),
                sr(M1, 3, T + 2 * I, 11_000, 7_000), sr(M1, 4, T + 3 * I, 11_000, 9_500)]
    expected = [(0, 0, 0), (300, 2_000, 1), (700, 0, 1), (0, 2_500, 1)]
    for s, (di, de, n) in zip(readings, expected):
        goto(chain, after(s.reading.interval_start))
        result = submit(chain, s)
        assert events_named(result, _RUNTIME, "metering", "ReadingAccepted") == \
            [[M1.public_key, s.reading.interval_start, di, de, True]]
        assert energy(chain, M1, s.reading.interval_start) == \
            metering.IntervalEnergy(di, de, reading_hash(s), True, n)
    m = meter_of(chain, M1)
    assert (m.last_seq, m.last_interval, m.last_import_wh, m.last_export_wh) == (4, T + 3 * I, 11_000, 9_500)
    # unsigned: no account pays anything
    assert chain.free(OWNER.public_key) == free_before
    # the raw register values appear nowhere in state except the meter's last ones
    raw = (10_300).to_bytes(4, "big")
    assert not any(raw in v for v in chain.state.values())


def test_late_reading_within_the_window_is_accepted_and_window_boundary(chain):
    s = sr(M1, 1, T, 100, 100)
    window_end = T + I + metering.Config.settlement_window_intervals * I
    goto(chain, window_end - 2)            # the block including it is at window_end - 1
    submit(chain, s)
    assert energy(chain, M1, T) is not None


def test_reading_accepted_within_clock_drift_before_interval_end(chain):
    goto(chain, T + I - metering.Config.max_drift_s - 1)   # the next block is exactly at the limit
    with pytest.raises(InvalidTransaction) as e:               # the pool, a second early, says not yet
        chain.validate(reading_xt(sr(M1, 1, T, 0, 0)))
    assert e.value.kind is InvalidKind.FUTURE
    submit(chain, sr(M1, 1, T, 0, 0))
    assert meter_of(chain, M1).has_reading


def test_two_consecutive_readings_in_one_block(chain):
    goto(chain, after(T + I))
    chain.block(reading_xt(sr(M1, 1, T, 0, 0)), reading_xt(sr(M1, 2, T + I, 10, 20)))
    assert energy(chain, M1, T + I).export_wh == 20


# --- every rejection rule, each changing nothing -----------------------------------------------
@pytest.fixture
def fed(chain) -> ChainHarness:
    """M1 has a baseline at T and a reading at T + 2I (T + I missed); the clock is after T + 3I."""
    goto(chain, after(T))
    submit(chain, sr(M1, 1, T, 1_000, 500))
    goto(chain, after(T + 2 * I))
    submit(chain, sr(M1, 2, T + 2 * I, 1_100, 700))
    goto(chain, after(T + 3 * I))
    return chain


def test_forged_reading_is_bad_proof(fed):
    r = Reading(M1.public_key, 3, T + 3 * I, 1_200, 800)
    forged = SignedReading(r, M2.sign(reading_message(r, GENESIS_HASH)))
    assert_rejected(fed, forged, InvalidKind.BAD_PROOF, E.BadReadingSignature)


def test_tampered_reading_is_bad_proof(fed):
    good = sr(M1, 3, T + 3 * I, 1_200, 800)
    r = good.reading
    tampered = SignedReading(Reading(r.meter, r.seq, r.interval_start, r.import_wh, r.export_wh + 1),
                             good.signature)
    assert_rejected(fed, tampered, InvalidKind.BAD_PROOF, E.BadReadingSignature)


def test_reading_signed_for_another_chain_is_bad_proof(fed):
    assert_rejected(fed, sr(M1, 3, T + 3 * I, 1_200, 800, genesis=b"\x01" * 32),
                    InvalidKind.BAD_PROOF, E.BadReadingSignature)


def test_replayed_reading_is_stale(fed):
    assert_rejected(fed, sr(M1, 2, T + 2 * I, 1_100, 700), InvalidKind.STALE, E.ReadingReplayed)


def test_lower_sequence_number_is_stale(fed):
    assert_rejected(fed, sr(M1, 1, T + 3 * I, 1_200, 800), InvalidKind.STALE, E.SequenceTooLow)


def test_second_reading_for_an_interval_is_rejected(fed):
    assert_rejected(fed, sr(M1, 3, T + 2 * I, 1_200, 800), InvalidKind.STALE, E.DuplicateInterval)


def test_reading_for_an_earlier_interval_is_out_of_order(fed):
    # T + I has no reading (missed), but the meter has already reported T + 2I
    assert_rejected(fed, sr(M1, 3, T + I, 1_050, 600), InvalidKind.STALE, E.OutOfOrder)


def test_reading_for_an_interval_not_yet_ended_is_future(fed):
    assert_rejected(fed, sr(M1, 3, T + 4 * I, 1_200, 800), InvalidKind.FUTURE, E.IntervalNotEnded)


def test_unaligned_interval_is_rejected(fed):
    assert_rejected(fed, sr(M1, 3, T + 3 * I - 300, 1_200, 800), InvalidKind.CUSTOM, E.UnalignedInterval)


@pytest.mark.parametrize("imp,exp", [(1_099, 800), (1_200, 699)])
def test_decreasing_register_is_rejected(fed, imp, exp):
    assert_rejected(fed, sr(M1, 3, T + 3 * I, imp, exp), InvalidKind.CUSTOM, E.RegisterDecreased)


def test_uncertified_meter_is_rejected(fed):
    assert_rejected(fed, sr(UNKNOWN_METER, 1, T + 3 * I, 0, 0), InvalidKind.CUSTOM, E.UnknownMeter)


def test_suspended_and_retired_meters_are_rejected(fed):
    fed.block(fed.xt(DSO, "metering", "suspend_meter", M1.public_key))
    assert_rejected(fed, sr(M1, 3, T + 3 * I, 1_200, 800), InvalidKind.CUSTOM, E.MeterSuspendedError)
    fed.block(fed.xt(DSO, "metering", "retire_meter", M1.public_key))
    assert_rejected(fed, sr(M1, 3, T + 3 * I, 1_200, 800), InvalidKind.CUSTOM, E.MeterRetiredError)


def test_reading_after_the_settlement_window_is_stale(chain):
    goto(chain, T + I + metering.Config.settlement_window_intervals * I)
    assert_rejected(chain, sr(M1, 1, T, 0, 0), InvalidKind.STALE, E.WindowClosed)


def test_same_reading_twice_in_one_block_is_an_invalid_block(chain):
    goto(chain, after(T))
    xt = reading_xt(sr(M1, 1, T, 0, 0))
    before = dict(chain.state)
    with pytest.raises(BlockError, match=re.escape(E.ReadingReplayed.message)):
        chain.block(xt, xt)
    assert dict(chain.state) == before


def test_unsigned_admin_call_has_no_validator(chain):
    from runtime.api import UnknownTransaction
    cd = metering.suspend_meter.call_def
    with pytest.raises((InvalidTransaction, UnknownTransaction)):
        chain.validate(Extrinsic(Call(metering.pallet.index, cd.index, (M1.public_key,))).encode())


# --- pool tags -------------------------------------------------------------------------------
def test_pool_tag_is_meter_and_seq(chain):
    goto(chain, after(T + I))
    a = chain.validate(reading_xt(sr(M1, 7, T, 100, 0)))
    b = chain.validate(reading_xt(sr(M1, 7, T + I, 200, 0)))     # same (meter, seq), other content
    c = chain.validate(reading_xt(sr(M1, 8, T + I, 200, 0)))
    assert a.provides == b.provides == (metering.reading_tag(M1.public_key, 7),)
    assert c.provides != a.provides and a.requires == ()
    assert a.priority == metering.Config.reading_priority and a.propagate
    assert 0 < a.longevity <= metering.Config.settlement_window_intervals * I


# --- plausibility and rogue meters -------------------------------------------------------------
def test_delta_at_rated_power_is_plausible_above_it_flagged(chain):
    goto(chain, after(T + 2 * I))
    submit(chain, sr(M1, 1, T, 0, 0))
    submit(chain, sr(M1, 2, T + I, M1_BOUND_WH, M1_BOUND_WH))
    assert energy(chain, M1, T + I).plausible
    r = submit(chain, sr(M1, 3, T + 2 * I, 2 * M1_BOUND_WH + 1, M1_BOUND_WH))
    assert events_named(r, _RUNTIME, "metering", "ReadingAccepted")[0][4] is False
    assert not energy(chain, M1, T + 2 * I).plausible
    assert meter_of(chain, M1).implausible == 1
    assert meter_of(chain, M1).status == metering.STATUS_ACTIVE


def test_plausibility_bound_scales_with_missed_intervals(chain):
    goto(chain, after(T + 2 * I))
    submit(chain, sr(M1, 1, T, 0, 0))
    submit(chain, sr(M1, 2, T + 2 * I, 0, 2 * M1_BOUND_WH))     # two intervals' worth
    e = energy(chain, M1, T + 2 * I)
    assert e.plausible and e.intervals == 2


def test_register_the_kind_does_not_measure_must_not_move(chain):
    goto(chain, after(T + I))
    submit(chain, sr(M2, 1, T, 0, 0))
    submit(chain, sr(M2, 2, T + I, 1, 10))     # an export-only meter whose import register moved
    assert not energy(chain, M2, T + I).plausible


def test_rogue_meter_is_suspended_after_threshold_and_dso_notified(chain):
    goto(chain, after(T))
    submit(chain, sr(M1, 1, T, 0, 0))
    n = metering.Config.rogue_threshold
    imp = 0
    for k in range(1, n + 1):
        t = T + k * I
        goto(chain, after(t))
        imp += 10 * M1_BOUND_WH
        r = submit(chain, sr(M1, k + 1, t, imp, 0))
        suspended = events_named(r, _RUNTIME, "metering", "MeterSuspended")
        if k < n:
            assert not suspended and meter_of(chain, M1).implausible == k
        else:
            assert suspended == [[M1.public_key, 1, DSO.public_key, "rogue"]]
    assert meter_of(chain, M1).status == metering.STATUS_SUSPENDED
    t = T + (n + 1) * I
    goto(chain, after(t))
    assert_rejected(chain, sr(M1, n + 2, t, imp, 0), InvalidKind.CUSTOM, E.MeterSuspendedRogue)  # the error names the rule
    # the DSO investigates and reinstates: the count starts over, readings flow again
    chain.block(chain.xt(DSO, "metering", "reinstate_meter", M1.public_key))
    m = meter_of(chain, M1)
    assert (m.status, m.implausible) == (metering.STATUS_ACTIVE, 0)
    submit(chain, sr(M1, n + 2, t, imp + 1, 0))
    assert energy(chain, M1, t).plausible


# --- missing intervals -----------------------------------------------------------------------
def test_missed_intervals_are_recorded(chain):
    goto(chain, after(T))
    submit(chain, sr(M1, 1, T, 0, 0))
    goto(chain, after(T + 4 * I))
    r = submit(chain, sr(M1, 2, T + 4 * I, 100, 100))
    assert events_named(r, _RUNTIME, "metering", "IntervalsMissed") == [[M1.public_key, T + I, 3]]
    assert chain.read(lambda: [metering.is_missed(M1.public_key, T + k * I) for k in range(5)]) == \
        [False, True, True, True, False]
    assert energy(chain, M1, T + 4 * I).intervals == 4


def test_only_missed_intervals_settlement_can_still_ask_about_are_recorded_the_rest_counted(chain):
    window = metering.Config.settlement_window_intervals
    gap = window + 3
    goto(chain, after(T))
    submit(chain, sr(M1, 1, T, 0, 0))
    last = T + (gap + 1) * I
    goto(chain, after(last))
    r = submit(chain, sr(M1, 2, last, 100, 100))
    assert events_named(r, _RUNTIME, "metering", "IntervalsMissed") == [[M1.public_key, T + I, gap]]
    recorded = chain.read(lambda: [metering.is_missed(M1.public_key, T + k * I) for k in range(1, gap + 1)])
    assert recorded == [False] * 3 + [True] * window       # the most recent ones
    assert chain.read(lambda: metering.missed_unrecorded.get(M1.public_key)) == 3
    # every interval not recorded had its settlement window closed before this reading arrived
    close_of_newest_unrecorded = T + 3 * I + I + window * I
    assert close_of_newest_unrecorded <= last


# --- certification and management permissions -------------------------------------------------
def test_dso_certifies_in_its_zone_and_registrar_anywhere(chain):
    r = chain.block(chain.xt(DSO, "metering", "certify_meter", M3.public_key, OWNER.public_key, 1, 0, 5_000))
    assert events_named(r, _RUNTIME, "metering", "MeterCertified") == \
        [[M3.public_key, OWNER.public_key, 1, 0, 5_000, DSO.public_key]]
    m4 = Keypair.from_uri("//Meter4")
    chain.block(chain.xt(REGISTRAR, "metering", "certify_meter", m4.public_key, OWNER.public_key, 2, 2, 5_000))
    assert meter_of(chain, m4).zone == 2


@pytest.mark.parametrize("signer,meter,owner,zone,kind,power,error", [
    (OTHER_DSO, M3, OWNER, 1, 2, 5_000, E.NotAuthorized),       # a DSO of another zone
    (OUTSIDER, M3, OWNER, 1, 2, 5_000, E.NotAuthorized),
    (DSO, M3, OUTSIDER, 1, 2, 5_000, E.OwnerNotLicensed),
    (REGISTRAR, M3, OWNER, 99, 2, 5_000, E.UnknownZone),
    (DSO, M1, OWNER, 1, 2, 5_000, E.MeterExists),
    (DSO, M3, OWNER, 1, 3, 5_000, E.BadMeterKind),
    (DSO, M3, OWNER, 1, 2, 0, E.BadRatedPower),
])
def test_certification_errors(chain, signer, meter, owner, zone, kind, power, error):
    r = chain.block(chain.xt(signer, "metering", "certify_meter", meter.public_key, owner.public_key,
                             zone, kind, power))
    assert failure(r) == error.message
    if meter is M3:
        assert meter_of(chain, M3) is None


def test_suspend_reinstate_retire_permissions_and_states(chain):
    for call in ("suspend_meter", "retire_meter"):
        r = chain.block(chain.xt(OTHER_DSO, "metering", call, M1.public_key))
        assert failure(r) == E.NotAuthorized.message
    assert failure(chain.block(chain.xt(DSO, "metering", "reinstate_meter", M1.public_key))) == \
        E.NotSuspended.message
    r = chain.block(chain.xt(DSO, "metering", "suspend_meter", M1.public_key))
    assert events_named(r, _RUNTIME, "metering", "MeterSuspended") == \
        [[M1.public_key, 1, DSO.public_key, "operator"]]
    assert failure(chain.block(chain.xt(DSO, "metering", "suspend_meter", M1.public_key))) == E.NotActive.message
    chain.block(chain.xt(REGISTRAR, "metering", "reinstate_meter", M1.public_key))
    chain.block(chain.xt(REGISTRAR, "metering", "retire_meter", M1.public_key))
    assert meter_of(chain, M1).status == metering.STATUS_RETIRED
    assert failure(chain.block(chain.xt(DSO, "metering", "retire_meter", M1.public_key))) == \
        E.AlreadyRetired.message
    assert failure(chain.block(chain.xt(DSO, "metering", "suspend_meter", UNKNOWN_METER.public_key))) == \
        E.UnknownMeter.message
    # a retired key can never be certified again
    assert failure(chain.block(chain.xt(DSO, "metering", "certify_meter", M1.public_key, OWNER.public_key,
                                        1, 2, 10_000))) == E.MeterExists.message


def test_replace_meter_retires_old_and_new_starts_fresh(chain):
    goto(chain, after(T))
    submit(chain, sr(M1, 1, T, 5_000, 5_000))
    assert failure(chain.block(chain.xt(OUTSIDER, "metering", "replace_meter", M1.public_key,
                                        M3.public_key, 8_000))) == E.NotAuthorized.message
    assert failure(chain.block(chain.xt(DSO, "metering", "replace_meter", M1.public_key,
                                        M2.public_key, 8_000))) == E.MeterExists.message
    r = chain.block(chain.xt(DSO, "metering", "replace_meter", M1.public_key, M3.public_key, 8_000))
    assert events_named(r, _RUNTIME, "metering", "MeterReplaced") == \
        [[M1.public_key, M3.public_key, 8_000, DSO.public_key]]
    assert meter_of(chain, M1).status == metering.STATUS_RETIRED
    new = meter_of(chain, M3)
    assert (new.owner, new.zone, new.kind, new.rated_power_w, new.has_reading, new.last_seq) == \
        (OWNER.public_key, 1, metering.KIND_BIDIRECTIONAL, 8_000, False, 0)
    goto(chain, after(T + I))
    assert_rejected(chain, sr(M1, 2, T + I, 5_100, 5_100), InvalidKind.CUSTOM, E.MeterRetiredError)
    submit(chain, sr(M3, 1, T + I, 3, 4))            # the new meter's baseline
    assert energy(chain, M3, T + I) == metering.IntervalEnergy(0, 0, reading_hash(sr(M3, 1, T + I, 3, 4)), True, 0)


def test_genesis_rejects_meter_in_unknown_zone_or_for_unlicensed_owner():
    for bad in ({"zone": 99}, {"owner": OUTSIDER.address()}):
        g = metering_genesis()
        g["metering"]["meters"][0].update(bad)
        with pytest.raises(ValueError, match="metering genesis"):
            _RUNTIME.build_genesis_storage(g)


# --- bounds on seq and registers, and the DSO's baseline reset ----------------------------------
WRAP_WH = 999_999_999_000         # a 9-digit kWh register just before it rolls over


def metering_state(chain) -> dict:
    """Everything the metering pallet stores."""
    prefixes = tuple(item.prefix for item in metering.pallet.storage)
    return {k: v for k, v in chain.state.items() if k.startswith(prefixes)}


def write_state(chain, fn) -> None:
    """Write storage directly, as a chain that ran before today's rules could have left it."""
    ov = Overlay(chain.state)
    with externalities(ov):
        fn()
    chain.state.apply(ov.changes())


def reset_xt(chain, signer, meter=M1, seq=1, imp=0, exp=0, reason="register wrap 1.8.0"):
    return chain.xt(signer, "metering", "reset_baseline", meter.public_key, seq, imp, exp, reason)


def baseline(chain, kp: Keypair = M1) -> tuple:
    m = meter_of(chain, kp)
    return (m.last_seq, m.last_interval, m.last_import_wh, m.last_export_wh)


@pytest.mark.parametrize("seq,imp,exp,error", [
    (2**48 + 1, 0, 0, E.SeqOutOfRange),
    (2**64 - 1, 0, 0, E.SeqOutOfRange),
    (1, 10**15 + 1, 0, E.RegisterOutOfRange),
    (1, 0, 2**64 - 1, E.RegisterOutOfRange),
])
def test_a_first_reading_beyond_any_real_meter_is_refused(chain, seq, imp, exp, error):
    goto(chain, after(T))
    assert_rejected(chain, sr(M1, seq, T, imp, exp), InvalidKind.CUSTOM, error)
    assert not meter_of(chain, M1).has_reading


def test_a_reading_at_the_bounds_is_accepted_and_a_later_one_beyond_them_refused(chain):
    goto(chain, after(T + I))
    submit(chain, sr(M1, 2**48 - 1, T, 10**15, 10**15))
    assert baseline(chain) == (2**48 - 1, T, 10**15, 10**15)
    assert_rejected(chain, sr(M1, 2**48 + 1, T + I, 10**15, 10**15), InvalidKind.CUSTOM, E.SeqOutOfRange)
    assert_rejected(chain, sr(M1, 2**48, T + I, 10**15 + 1, 10**15), InvalidKind.CUSTOM, E.RegisterOutOfRange)
    submit(chain, sr(M1, 2**48, T + I, 10**15, 10**15))


def test_a_wrapped_register_is_recovered_by_the_dso_baseline_reset(chain):
    goto(chain, after(T))
    submit(chain, sr(M1, 1, T, WRAP_WH, 5_000))
    goto(chain, after(T + I))
    wrapped = sr(M1, 2, T + I, 400, 5_100)           # the import register rolled over to 0 and counted 400
    assert_rejected(chain, wrapped, InvalidKind.CUSTOM, E.RegisterDecreased)
    record_t = energy(chain, M1, T)
    r = chain.block(reset_xt(chain, DSO, seq=1, imp=0, exp=5_000))
    assert events_named(r, _RUNTIME, "metering", "BaselineReset") == [[
        M1.public_key, 1, DSO.public_key, T, 1, WRAP_WH, 5_000, 1, 0, 5_000, "register wrap 1.8.0"]]
    assert baseline(chain) == (1, T, 0, 5_000)
    # the meter reports again: the very reading refused before now counts its 400 Wh
    submit(chain, wrapped)
    assert energy(chain, M1, T + I) == metering.IntervalEnergy(400, 100, reading_hash(wrapped), True, 1)
    goto(chain, after(T + 2 * I))
    submit(chain, sr(M1, 3, T + 2 * I, 900, 5_100))
    assert energy(chain, M1, T + 2 * I).import_wh == 500
    # an interval already read keeps its one reading: the reset opened no second one
    assert_rejected(chain, sr(M1, 4, T, 1_000, 5_200), InvalidKind.STALE, E.DuplicateInterval)
    assert energy(chain, M1, T) == record_t


def test_a_meter_stuck_at_the_end_of_seq_is_recovered_and_no_old_interval_reopens(chain):
    """A meter whose seq reached 2^64-1 (possible before the bound) can never send a higher one; the
    DSO lowers its seq, and the kept last interval still refuses anything at or before it."""
    goto(chain, after(T))
    submit(chain, sr(M1, 1, T, 1_000, 500))
    goto(chain, after(T + 2 * I))
    submit(chain, sr(M1, 2, T + 2 * I, 1_100, 600))              # T + I missed
    write_state(chain, lambda: metering.meters.mutate(
        M1.public_key, lambda m: dataclasses.replace(m, last_seq=2**64 - 1)))
    goto(chain, after(T + 3 * I))
    assert_rejected(chain, sr(M1, 3, T + 3 * I, 1_200, 700), InvalidKind.STALE, E.SequenceTooLow)
    chain.block(reset_xt(chain, DSO, seq=0, imp=1_100, exp=600, reason="seq overflow"))
    assert baseline(chain) == (0, T + 2 * I, 1_100, 600)
    # with any seq now above the meter's, the intervals up to its last reading stay closed: the one
    # already read keeps its reading, the missed one before it stays missed
    assert_rejected(chain, sr(M1, 1, T + 2 * I, 1_150, 650), InvalidKind.STALE, E.DuplicateInterval)
    assert_rejected(chain, sr(M1, 1, T + I, 1_050, 550), InvalidKind.STALE, E.OutOfOrder)
    submit(chain, sr(M1, 1, T + 3 * I, 1_200, 700))
    e = energy(chain, M1, T + 3 * I)
    assert (e.import_wh, e.export_wh, e.intervals) == (100, 100, 1)
    assert chain.read(lambda: metering.is_missed(M1.public_key, T + I))


@pytest.mark.parametrize("signer", [OTHER_DSO, REGISTRAR, OWNER, OUTSIDER])
def test_only_the_zone_dso_may_reset_a_baseline(chain, signer):
    goto(chain, after(T))
    submit(chain, sr(M1, 1, T, WRAP_WH, 5_000))
    before = metering_state(chain)
    r = chain.block(reset_xt(chain, signer))
    assert failure(r) == E.NotZoneDso.message
    assert not events_named(r, _RUNTIME, "metering", "BaselineReset")
    assert metering_state(chain) == before


def test_root_resets_a_baseline_through_sudo_and_a_direct_root_call_is_refused(chain):
    goto(chain, after(T))
    submit(chain, sr(M1, 1, T, WRAP_WH, 5_000))
    cd = metering.force_reset_baseline.call_def
    before = metering_state(chain)
    r = chain.block(chain.xt(DSO, "metering", "force_reset_baseline", M1.public_key, 1, 0, 0, "x"))
    assert "root" in failure(r) and metering_state(chain) == before
    inner = [metering.pallet.index, cd.index, [M1.public_key, 1, 0, 5_000, "DSO unreachable; ticket 42"]]
    r = chain.block(chain.xt(ALICE, "sudo", "sudo", inner))
    assert events_named(r, _RUNTIME, "sudo", "Sudid") == [[None]]
    assert events_named(r, _RUNTIME, "metering", "BaselineReset") == [[
        M1.public_key, 1, None, T, 1, WRAP_WH, 5_000, 1, 0, 5_000, "DSO unreachable; ticket 42"]]
    assert baseline(chain) == (1, T, 0, 5_000)


def test_baseline_reset_errors_change_nothing(chain):
    goto(chain, after(T))
    submit(chain, sr(M1, 1, T, 1_000, 500))
    cases = [
        ({"meter": UNKNOWN_METER}, E.UnknownMeter),
        ({"meter": M2}, E.NoBaseline),                  # M2 never reported
        ({"reason": ""}, E.EmptyReason),
        ({"seq": 2**48 + 1}, E.SeqOutOfRange),
        ({"imp": 10**15 + 1}, E.RegisterOutOfRange),
    ]
    for args, error in cases:
        before = metering_state(chain)
        assert failure(chain.block(reset_xt(chain, DSO, **args))) == error.message
        assert metering_state(chain) == before
    chain.block(chain.xt(DSO, "metering", "retire_meter", M1.public_key))
    before = metering_state(chain)
    assert failure(chain.block(reset_xt(chain, DSO))) == E.RetiredNoReset.message
    assert metering_state(chain) == before


# --- property: energy is conserved between registers and deltas ---------------------------------
_steps = st.lists(st.tuples(
    st.integers(-1, 3),                       # interval advance (<= 0: duplicate or out of order)
    st.integers(-1, 2),                       # seq advance (<= 0: replay or lower)
    st.integers(-50, 3_000),                  # import delta (negative: decreasing register)
    st.integers(-50, 6_000),                  # export delta (above 2,500 per interval: implausible)
    st.sampled_from(["ok", "ok", "ok", "forged", "foreign"]),
), min_size=1, max_size=10)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_steps)
def test_export_deltas_sum_to_register_difference_over_any_reading_sequence(steps):
    chain = new_chain()
    t, seq, imp, exp = T, 1, 10_000, 20_000
    accepted: list[tuple[int, int]] = []      # (import, export) registers of accepted readings
    for dt, dseq, dimp, dexp, how in steps:
        t2, seq2 = t + dt * I, max(0, seq + dseq)
        imp2, exp2 = max(0, imp + dimp), max(0, exp + dexp)
        chain.now_ms = max(chain.now_ms, after(max(t, t2)) * 1000)
        if how == "forged":
            r = Reading(M1.public_key, seq2, t2, imp2, exp2)
            s = SignedReading(r, M2.sign(reading_message(r, GENESIS_HASH)))
        else:
            s = sr(M1, seq2, t2, imp2, exp2, genesis=GENESIS_HASH if how == "ok" else b"\x07" * 32)
        before = dict(chain.state)
        b = chain.builder()
        try:
            b.apply(reading_xt(s))
            ok = True
        except InvalidTransaction:
            ok = False
        chain.commit(b)
        if ok:
            accepted.append((imp2, exp2))
            t, seq, imp, exp = t2, seq2, imp2, exp2
        else:
            # a rejected reading changes nothing but the block's own bookkeeping
            changed = {k for k in set(before) | set(chain.state) if before.get(k) != chain.state.get(k)}
            assert not any(k.startswith(p.prefix) for k in changed for p in metering.pallet.storage)
    records = chain.read(lambda: list(metering.interval_energy.iter_prefix(M1.public_key)))
    assert len(records) == len(accepted)
    if accepted:
        assert sum(e.export_wh for _, e in records) == accepted[-1][1] - accepted[0][1]
        assert sum(e.import_wh for _, e in records) == accepted[-1][0] - accepted[0][0]
        m = meter_of(chain, M1)
        assert (m.last_import_wh, m.last_export_wh) == accepted[-1]
