"""Settlement waits for the market's late call-auction clearing (issue 12, defect 1).

A call-auction zone's trades for interval t are recorded by the market's expiry hook when it clears
the book at gate closure, and that hook does at most max_expiries_per_block units of work a block.
After a halt both hooks see a time far past t's settlement window: settlement must not pass t
while the market still has open books for it, or the trades recorded later stay DELIVERING with
their escrow locked for good. Through the composed runtime with the dev chain's genesis and zone 1
traded by call auction (cast as in tests/test_market.py: Bob sells, Charlie buys, both in zone 1).
"""
from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genesis.chain_spec import dev_spec
from pallets import market, settlement
from pallets.market import ESCROW_ACCOUNT
from primitives.keys import Keypair
from primitives.meter_reading import Reading, sign_reading
from tests.runtime_harness import GENESIS_HASH, ChainHarness, chain_factory, events_named
from tests.test_market import ALICE, BOB, CHARLIE, I, T, ask, bid, check_invariants, failure, goto, ok, stable
from tests.test_metering import reading_xt

S = settlement
REASON = b"\x07" * 32
METER_KEY = {kp: Keypair.from_uri(f"//{n}//meter") for kp, n in ((BOB, "Bob"), (CHARLIE, "Charlie"))}


def auction_genesis() -> dict:
    config = copy.deepcopy(dev_spec()["genesis"]["runtimeGenesis"]["config"])
    config["market"] = {"call_auction_zones": [1]}
    return config


new_chain = chain_factory(auction_genesis())
_RUNTIME = new_chain.runtime


@pytest.fixture
def chain() -> ChainHarness:
    return new_chain()


# --- helpers ---------------------------------------------------------------------------------
def named(result, pallet: str, name: str) -> list:
    return events_named(result, _RUNTIME, pallet, name)


def fill_book(chain, t: int, n: int = 3) -> None:
    """n asks by Bob and 2n bids by Charlie for zone 1, interval t: they rest (call auction) and
    clear at gate closure into a few trades; n low bids (and what is left of the asks) do not
    trade and expire after the clearing, so the book outlasts a small expiry budget."""
    for k in range(n):
        ok(chain.block(ask(chain, BOB, 100_000 + 10_000 * k, 400, t=t)))
        ok(chain.block(bid(chain, CHARLIE, 160_000 - 10_000 * k, 300, t=t),
                       bid(chain, CHARLIE, 60_000, 100, t=t, nonce=chain.nonce(CHARLIE.public_key) + 1)))


def trade_ids(chain, t: int) -> list[int]:
    return chain.read(lambda: [tr.id for tr in market.trades_in_interval(t)])


def statuses(chain) -> list[int]:
    n = chain.read(lambda: market.next_trade_id.get())
    return chain.read(lambda: [S.trade_status(i) for i in range(n)])


def drained(chain, last_interval: int) -> bool:
    """The market has expired every book and settlement's cursor is past `last_interval`."""
    return chain.read(lambda: market.open_intervals.get() == ()
                      and S.next_interval.get() > last_interval)


def run_until_drained(chain, last_interval: int, max_blocks: int = 60) -> list:
    """Empty blocks until drained, checking escrow == open obligations after each; their results."""
    results = []
    while not drained(chain, last_interval):
        assert len(results) < max_blocks, "the hooks did not drain the backlog"
        results.append(chain.block())
        check_invariants(chain)
    return results


def assert_all_final_and_escrow_empty(chain) -> None:
    sts = statuses(chain)
    assert sts and all(s in S.FINAL for s in sts), sts
    assert S.DELIVERING not in sts
    assert stable(chain, ESCROW_ACCOUNT) == 0          # every order expired, every trade final
    check_invariants(chain)


# --- regression ------------------------------------------------------------------------------
def test_a_halt_over_a_slow_clearing_still_settles_every_trade(chain, monkeypatch):
    monkeypatch.setattr(market.Config, "max_expiries_per_block", 2)
    fill_book(chain, T)
    fill_book(chain, T + I)
    check_invariants(chain)
    # halt: the next block comes after T + I's settlement window closed (hooks see it one block later)
    goto(chain, S.window_closes_at(T + I) + 10 * I)
    r = chain.block()                       # market clears T (over budget), settlement waits for T
    assert trade_ids(chain, T) and not trade_ids(chain, T + I)
    assert named(r, "settlement", "IntervalSettled") == []
    late_ids: list[int] = []
    settled_in: dict[int, int] = {}
    gone_at = None
    for step in range(60):
        if drained(chain, T + I):
            break
        open_before = chain.read(lambda: market.open_books.contains(T + I))
        if not late_ids and trade_ids(chain, T + I):
            late_ids = trade_ids(chain, T + I)
            # recorded after its window closed: no dispute any more, and not final until the market
            # has expired the rest of its book
            assert all(S.DELIVERING == s for s in (statuses(chain)[i] for i in late_ids))
            r = chain.block(chain.xt(CHARLIE, "settlement", "dispute", late_ids[0], REASON))
            assert failure(r) == S.Error.DisputeWindowClosed.message
        else:
            r = chain.block()
        check_invariants(chain)
        for e in named(r, "settlement", "TradeRefunded") + named(r, "settlement", "TradeSettled"):
            settled_in[e[0]] = step
        if open_before and not chain.read(lambda: market.open_books.contains(T + I)):
            gone_at = step
    assert late_ids, "the market never cleared T + I"
    # the late trades are settled by the hook run of the very block whose market hook closed the
    # interval's last book (the market's hook runs first)
    assert [settled_in.get(i) for i in late_ids] == [gone_at] * len(late_ids)
    assert_all_final_and_escrow_empty(chain)


# --- a late trade whose window is still open -------------------------------------------------
def read_meters(chain, t: int, deltas: dict) -> None:
    """Baselines for t - I, then readings for t, in blocks from now on (the window must be open)."""
    kps = sorted(deltas, key=lambda k: k.public_key)
    ok(chain.block(*(reading_xt(sign_reading(METER_KEY[kp], Reading(METER_KEY[kp].public_key, 1, t - I, 0, 0),
                                                 GENESIS_HASH)) for kp in kps)))
    ok(chain.block(*(reading_xt(sign_reading(METER_KEY[kp], Reading(METER_KEY[kp].public_key, 2, t, *deltas[kp]),
                                                 GENESIS_HASH)) for kp in kps)))


def test_a_trade_cleared_late_within_its_window_is_disputable_then_settled_by_the_meters(chain, monkeypatch):
    monkeypatch.setattr(market.Config, "max_expiries_per_block", 2)
    fill_book(chain, T)
    goto(chain, T + I + 1)                  # halt across T's gate closure and delivery
    chain.block()                           # its hook sees T + I + 1: clears T, late
    ids = trade_ids(chain, T)
    assert len(ids) >= 2
    assert [statuses(chain)[i] for i in ids] == [S.DELIVERING] * len(ids)
    ok(chain.block(chain.xt(CHARLIE, "settlement", "dispute", ids[0], REASON)))
    wh = chain.read(lambda: sum(market.trade(i).wh for i in ids))
    read_meters(chain, T, {BOB: (0, wh), CHARLIE: (wh, 0)})
    goto(chain, S.window_closes_at(T))
    run_until_drained(chain, T)
    sts = statuses(chain)
    assert sts[ids[0]] == S.DISPUTED
    assert all(sts[i] == S.SETTLED for i in ids[1:])    # full delivery, by the meters
    ok(chain.block(chain.xt(ALICE, "settlement", "arbitrate", ids[0], 0)))
    assert_all_final_and_escrow_empty(chain)


# --- property: any gaps between blocks -------------------------------------------------------
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(gaps=st.lists(st.integers(1, 8 * I), min_size=1, max_size=6), budget=st.integers(1, 4))
def test_every_trade_ends_final_over_any_block_gaps(gaps, budget, monkeypatch):
    monkeypatch.setattr(market.Config, "max_expiries_per_block", budget)
    chain = new_chain()
    for t in (T, T + I, T + 2 * I):
        fill_book(chain, t, n=2)
    for gap in gaps:
        goto(chain, chain.now_ms // 1000 + gap)
        check_invariants(chain)
    goto(chain, max(chain.now_ms // 1000 + 1, S.window_closes_at(T + 2 * I)))
    run_until_drained(chain, T + 2 * I)
    assert_all_final_and_escrow_empty(chain)
