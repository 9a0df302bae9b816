"""Certificates pallet: minted on verified export through real signed readings, moved and retired
only through its public functions (settlement), never beyond what was minted.

The test runtime is gridchain's pallets (identity, grid, metering included) plus certificates (9),
with test_metering's genesis: Bob owns `//Meter1` (bidirectional, 10 kW) and `//Meter2` (export
only, 4 kW), both in zone 1. `move` and `retire` are run directly in a storage overlay over the
chain's state, as settlement would run them inside its own call.
"""
from __future__ import annotations


import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pallets import (certificates, metering)
from runtime.api import InvalidTransaction
from runtime.pallet import DispatchError
from runtime.storage import Overlay, externalities
from tests.runtime_harness import chain_factory, ALICE, CHARLIE, ChainHarness, events_named
from tests.test_metering import (M1, M1_BOUND_WH, M2, OWNER, I, T, after, goto, metering_genesis,
                                 reading_xt, sr, submit)

C = certificates
E = certificates.Error
BUYER, OTHER = CHARLIE, ALICE
TOKEN = C.token_id(1, T + I)


new_chain = chain_factory(metering_genesis())
_RUNTIME = new_chain.runtime


@pytest.fixture
def chain() -> ChainHarness:
    return new_chain()


# --- helpers ---------------------------------------------------------------------------------
def run(chain: ChainHarness, fn) -> list:
    """Run `fn` as a pallet would inside a call; commit its writes, return its events."""
    ov = Overlay(chain.state)
    with externalities(ov):
        fn()
    chain.state.apply(ov.changes())
    return ov.events


def refused(chain: ChainHarness, fn, error) -> None:
    """`fn` raises DispatchError with the error's sentence before writing anything."""
    ov = Overlay(chain.state)
    with externalities(ov), pytest.raises(DispatchError) as e:
        fn()
    assert str(e.value) == error.message
    assert ov.changes() == {} and ov.events == []


def minted_events(result) -> list:
    return events_named(result, _RUNTIME, "certificates", "Minted")


def supply(chain, token=TOKEN) -> tuple[int, int]:
    s = chain.read(lambda: C.supply_of(token))
    return s.minted_wh, s.retired_wh


def bal(chain, who, token=TOKEN) -> int:
    return chain.read(lambda: C.balance_of(token, who.public_key))


def event_plain(events: list, cls) -> list:
    return [e[3] for e in events if e[1] == C.pallet.index and e[2] == cls._event_index]


@pytest.fixture
def minted(chain) -> ChainHarness:
    """Bob holds 2,000 Wh of (zone 1, T + I), minted from M1's export in that interval."""
    goto(chain, after(T + I))
    submit(chain, sr(M1, 1, T, 10_000, 5_000))
    submit(chain, sr(M1, 2, T + I, 10_300, 7_000))
    assert bal(chain, OWNER) == 2_000
    return chain


# --- minting through real readings ---------------------------------------------------------------
def test_verified_export_mints_certificates_to_the_meter_owner(chain):
    goto(chain, after(T + 2 * I))
    baseline = submit(chain, sr(M1, 1, T, 10_000, 5_000))
    assert minted_events(baseline) == []                 # a baseline has no deltas
    r = submit(chain, sr(M1, 2, T + I, 10_300, 7_000))
    assert minted_events(r) == [[1, T + I, OWNER.public_key, 2_000]]
    assert bal(chain, OWNER) == 2_000 and supply(chain) == (2_000, 0)
    # import only: nothing exported, nothing minted
    r = submit(chain, sr(M1, 3, T + 2 * I, 11_000, 7_000))
    assert minted_events(r) == [] and supply(chain, C.token_id(1, T + 2 * I)) == (0, 0)


def test_implausible_readings_mint_nothing(chain):
    goto(chain, after(T + I))
    submit(chain, sr(M1, 1, T, 0, 0))
    submit(chain, sr(M2, 1, T, 0, 0))
    # export above what 10 kW can deliver in an interval
    r = submit(chain, sr(M1, 2, T + I, 0, M1_BOUND_WH + 1))
    assert minted_events(r) == []
    # export-only meter whose import register moved: implausible, its export is not certified
    r = submit(chain, sr(M2, 2, T + I, 1, 500))
    assert not chain.read(lambda: metering.energy_in_interval(M2.public_key, T + I)).plausible
    assert minted_events(r) == []
    assert supply(chain) == (0, 0) and bal(chain, OWNER) == 0


def test_meters_of_one_zone_and_interval_mint_into_one_token(chain):
    goto(chain, after(T + I))
    chain.block(reading_xt(sr(M1, 1, T, 0, 0)), reading_xt(sr(M2, 1, T, 0, 0)))
    r = chain.block(reading_xt(sr(M1, 2, T + I, 0, 1_500)), reading_xt(sr(M2, 2, T + I, 0, 700)))
    assert minted_events(r) == [[1, T + I, OWNER.public_key, 1_500], [1, T + I, OWNER.public_key, 700]]
    assert supply(chain) == (2_200, 0) and bal(chain, OWNER) == 2_200


def test_delta_over_missed_intervals_is_minted_under_the_readings_interval(chain):
    goto(chain, after(T + 2 * I))
    submit(chain, sr(M1, 1, T, 0, 0))
    submit(chain, sr(M1, 2, T + 2 * I, 0, 2 * M1_BOUND_WH))     # covers T + I (missed) and T + 2I
    assert supply(chain, C.token_id(1, T + 2 * I)) == (2 * M1_BOUND_WH, 0)
    assert supply(chain, C.token_id(1, T + I)) == (0, 0)


def test_no_call_can_transfer_certificates():
    meta = next(p for p in _RUNTIME.metadata()["pallets"] if p["name"] == "certificates")
    assert meta["index"] == 9 and meta["calls"] == [] and certificates.pallet.calls == {}


# --- mint, move, retire rules ----------------------------------------------------------------------
def test_mint_rules(chain):
    refused(chain, lambda: C.mint(OWNER.public_key, 1, T, 0), E.ZeroAmount)
    refused(chain, lambda: C.mint(OWNER.public_key, 1, T + 1, 10), E.UnalignedInterval)
    run(chain, lambda: C.mint(OWNER.public_key, 1, T, C.MAX_WH))
    refused(chain, lambda: C.mint(BUYER.public_key, 1, T, 1), E.Overflow)
    assert supply(chain, (1, T)) == (C.MAX_WH, 0)


def test_move_rules(minted):
    o, b = OWNER.public_key, BUYER.public_key
    refused(minted, lambda: C.move(TOKEN, o, b, 0), E.ZeroAmount)
    refused(minted, lambda: C.move(TOKEN, o, b, 2_001), E.InsufficientCertificates)
    refused(minted, lambda: C.move((2, T + I), o, b, 1), E.InsufficientCertificates)   # other zone
    refused(minted, lambda: C.move(TOKEN, b, o, 1), E.InsufficientCertificates)
    events = run(minted, lambda: C.move(TOKEN, o, b, 1_500))
    assert event_plain(events, C.Moved) == [[1, T + I, o, b, 1_500]]
    assert (bal(minted, OWNER), bal(minted, BUYER)) == (500, 1_500)
    assert run(minted, lambda: C.move(TOKEN, o, o, 500)) == []                  # to oneself: no-op
    run(minted, lambda: C.move(TOKEN, o, b, 500))
    assert (bal(minted, OWNER), bal(minted, BUYER)) == (0, 2_000)
    # an emptied balance leaves no storage entry behind
    assert minted.read(lambda: C.balance.contains(TOKEN, o)) is False
    assert supply(minted) == (2_000, 0)                                        # moving mints nothing


def test_retire_rules_and_a_certificate_retires_only_once(minted):
    o, b, x = OWNER.public_key, BUYER.public_key, OTHER.public_key
    run(minted, lambda: C.move(TOKEN, o, b, 1_200))
    refused(minted, lambda: C.retire(TOKEN, b, 0, b), E.ZeroAmount)
    refused(minted, lambda: C.retire(TOKEN, b, 1_201, b), E.InsufficientCertificates)
    events = run(minted, lambda: C.retire(TOKEN, b, 1_000, x))       # retired for a beneficiary
    assert event_plain(events, C.Retired) == [[1, T + I, b, x, 1_000]]
    assert minted.read(lambda: (C.retired_of(TOKEN, x), C.retired_of(TOKEN, b))) == (1_000, 0)
    assert bal(minted, BUYER) == 200 and supply(minted) == (2_000, 1_000)
    run(minted, lambda: C.retire(TOKEN, b, 200, b))
    # the retired Wh are gone from every balance: they cannot be retired (or moved) again
    refused(minted, lambda: C.retire(TOKEN, b, 1, b), E.InsufficientCertificates)
    refused(minted, lambda: C.move(TOKEN, b, o, 1), E.InsufficientCertificates)
    run(minted, lambda: C.retire(TOKEN, o, 800, o))
    assert supply(minted) == (2_000, 2_000)
    refused(minted, lambda: C.retire(TOKEN, o, 1, o), E.InsufficientCertificates)


def test_retire_never_exceeds_minted_even_with_a_corrupt_balance(minted):
    # defence in depth: a balance that somehow exceeded the supply still cannot retire beyond it
    run(minted, lambda: C.balance.insert(TOKEN, OWNER.public_key, 5_000))
    refused(minted, lambda: C.retire(TOKEN, OWNER.public_key, 2_001, OWNER.public_key),
            E.RetiredExceedsMinted)


# --- property: certificates equal verified export, retired never exceeds minted -----------------
_steps = st.lists(st.tuples(
    st.sampled_from([M1, M2]),
    st.integers(0, 2),                         # interval advance (0: duplicate interval, rejected)
    st.integers(0, 1_500),                     # import delta (any on M2: implausible)
    st.integers(0, 3_500),                     # export delta (M1 above 2,500 per interval, M2 above
                                               # 1,000: implausible)
    st.integers(0, 3_000),                     # Wh to move to the buyer, then to retire from it
), min_size=1, max_size=8)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_steps)
def test_minted_equals_plausible_export_and_retired_never_exceeds_minted(steps):
    chain = new_chain()
    o, b = OWNER.public_key, BUYER.public_key
    regs = {M1: [T, 1, 0, 0], M2: [T, 1, 0, 0]}          # next interval, seq, import, export
    for kp, dt, dimp, dexp, settle_wh in steps:
        t, seq, imp, exp = regs[kp]
        t2, imp2, exp2 = t + dt * I, imp + dimp, exp + dexp
        chain.now_ms = max(chain.now_ms, after(t2) * 1000)
        b_ = chain.builder()
        try:
            b_.apply(reading_xt(sr(kp, seq, t2, imp2, exp2)))
            regs[kp] = [t2, seq + 1, imp2, exp2]
        except InvalidTransaction:
            pass
        chain.commit(b_)
        # settlement of some of the newest token: move to the buyer, retire half in its name
        token = C.token_id(1, regs[kp][0])
        have = bal(chain, OWNER, token)
        if 0 < settle_wh <= have:
            run(chain, lambda tok=token, wh=settle_wh: C.move(tok, o, b, wh))
            run(chain, lambda tok=token, wh=settle_wh: C.retire(tok, b, wh // 2 or wh, b))
        else:
            refused(chain, lambda tok=token, wh=have + 1: C.retire(tok, o, wh, o), E.InsufficientCertificates)

    def plausible_export() -> dict:
        out: dict = {}
        for kp in (M1, M2):
            for t, e in metering.interval_energy.iter_prefix(kp.public_key):
                if e.plausible:
                    out[t] = out.get(t, 0) + e.export_wh
        return {t: wh for t, wh in out.items() if wh}

    expected = chain.read(plausible_export)
    supplies = chain.read(lambda: {tok: s for tok, s in C.supply.items()})
    assert {tok[1]: s.minted_wh for tok, s in supplies.items()} == expected
    assert all(tok[0] == 1 for tok in supplies)
    for tok, s in supplies.items():
        held = chain.read(lambda tok=tok: sum(wh for _, wh in C.holders(tok)))
        claims = chain.read(lambda tok=tok: sum(v for _, v in C.retired.iter_prefix(tok)))
        assert s.retired_wh <= s.minted_wh
        assert held + s.retired_wh == s.minted_wh and claims == s.retired_wh
