"""Market pallet through a composed runtime with the dev chain's genesis.

Cast (genesis.chain_spec dev config): Alice registrar, Dave DSO of zones 1 and 2 (250 kW each way,
linked both ways at 100 kW; grid fee off-peak 20,000 per kWh inside a zone and 35,000 across),
Bob a prosumer with a bidirectional 10 kW meter in zone 1, Ferdie a prosumer with a bidirectional
8 kW meter in zone 2 (and no stablecoin), Charlie a consumer with an import-only 15 kW meter in
zone 1, Eve the stablecoin issuer (no trading licence). Alice..Dave hold 10,000 GEUR each.
Blocks advance one second; the first is at 1_700_000_001 (22:13 UTC, off-peak band).
"""
from __future__ import annotations


import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genesis.chain_spec import dev_spec
from pallets import (balances, grid, identity, market, timestamp)
from pallets.market import ASK, BID, ESCROW_ACCOUNT, Config, escrow_for
from pallets.market_engine import cost
from primitives.codec import CodecError
from primitives.keys import Keypair, dev_keypair
from runtime.storage import item_prefix
from tests.runtime_harness import chain_factory, ChainHarness, events_named

ALICE, BOB, CHARLIE, DAVE, EVE, FERDIE = (dev_keypair(n) for n in
                                          ("Alice", "Bob", "Charlie", "Dave", "Eve", "Ferdie"))
METER = {kp: Keypair.from_uri(f"//{n}//meter").public_key
         for kp, n in ((BOB, "Bob"), (CHARLIE, "Charlie"), (FERDIE, "Ferdie"))}
I = grid.Config.interval_s
T = 1_700_001_900            # an interval start 1,900 s after genesis time: its gate closes at T - 300
LOCAL_FEE, CROSS_FEE = 20_000, 35_000
E = market.Error
STABLE = 1


new_chain = chain_factory(dev_spec()["genesis"]["runtimeGenesis"]["config"])
_RUNTIME = new_chain.runtime


@pytest.fixture
def chain() -> ChainHarness:
    return new_chain()


# --- helpers ---------------------------------------------------------------------------------
def bid(chain, who, price, wh, zone=1, t=T, meter=None, green=False, nonce=None):
    return chain.xt(who, "market", "place_bid", zone, t, price, wh, meter or METER[who], green, nonce=nonce)


def ask(chain, who, price, wh, zone=None, t=T, meter=None, nonce=None):
    zone = zone if zone is not None else (2 if who is FERDIE else 1)
    return chain.xt(who, "market", "place_ask", zone, t, price, wh, meter or METER[who], nonce=nonce)


def cancel(chain, who, order_id):
    return chain.xt(who, "market", "cancel", order_id)


def failures(result) -> list[str]:
    return [f[0][2] for f in events_named(result, _RUNTIME, "system", "ExtrinsicFailed")]


def failure(result) -> str:
    f = failures(result)
    assert len(f) == 1, "expected the call to fail"
    return f[0]


def ok(result):
    assert failures(result) == []
    return result


def trades_of(result) -> list:
    return events_named(result, _RUNTIME, "market", "TradeMatched")


def goto(chain: ChainHarness, ts_s: int) -> None:
    """Produce an empty block at unix second ts_s."""
    assert ts_s * 1000 > chain.now_ms
    chain.now_ms = ts_s * 1000 - 1000
    chain.block()


def stable(chain, kp_or_account) -> int:
    who = kp_or_account if isinstance(kp_or_account, bytes) else kp_or_account.public_key
    return chain.asset(STABLE, who)


_WATCHED = (item_prefix("balances", "asset_balance"),)
_MARKET = item_prefix("market", "orders")[:16]


def market_state(chain) -> dict:
    """Everything the market owns plus every stablecoin balance: a failed call changes none of it."""
    return {k: v for k, v in chain.state.items() if k[:16] == _MARKET or k.startswith(_WATCHED)}


def check_invariants(chain) -> None:
    def read():
        total = sum(_stable_balances())
        assert total == balances.assets.get(STABLE).supply, "stablecoin issuance changed"
        open_orders = [o for _, o in market.orders.items()]
        held = (sum(o.escrow_locked for o in open_orders)
                + sum(market.escrowed_for_trade(t.id) for _, t in market.trades.items()))
        assert balances.asset_balance.get(STABLE, ESCROW_ACCOUNT) == held, "escrow != open obligations"
        for o in open_orders:
            assert o.escrow_locked == (escrow_for(o.remaining_wh, o.price_per_kwh) if o.side == BID else 0)
            entries = market.book_side(o.zone, o.interval_start, o.side)
            assert (o.price_per_kwh, o.id, o.owner, o.remaining_wh, o.green) in entries
        for _, t in market.trades.items():
            assert t.amount == cost(t.wh, t.price_per_kwh) and t.fee_amount == cost(t.wh, t.fee_per_kwh)
    chain.read(read)


def flows_over_capacity(chain) -> dict:
    """(zone or link, interval) -> (flow Wh, room Wh) for every traded interval, as now; a link's
    flow is its net flow in that direction."""
    def read():
        out = {}
        for ts in {t.interval_start for _, t in market.trades.items()}:
            for zone in (1, 2):
                f = market.flow(zone, ts)
                imp_w, exp_w = grid.capacity_for(zone, ts)
                out[("import", zone, ts)] = (f.import_wh, market.wh_in_interval(imp_w))
                out[("export", zone, ts)] = (f.export_wh, market.wh_in_interval(exp_w))
                other = 3 - zone          # a link's limit holds its net flow ("Capacity")
                out[("link", zone, ts)] = (market.link_flow(zone, other, ts) - market.link_flow(other, zone, ts),
                                           market.wh_in_interval(grid.link_limit_w(zone, other) or 0))
        return out
    return chain.read(read)


def check_no_match_exceeded_capacity(before: dict, after: dict) -> None:
    """Every flow that grew is within its room (a DSO may lower an envelope below trades already
    matched: those stand, and no new trade adds to them)."""
    for key, (flow, room) in after.items():
        if flow > before.get(key, (0, 0))[0]:
            assert flow <= room, key


def _stable_balances() -> list[int]:
    """Every stablecoin balance on chain (the escrow account included)."""
    from runtime import storage
    ov = storage.current()
    prefix = balances.asset_balance.prefix_of(STABLE)
    return [balances.asset_balance.value_type.decode(ov.get(raw)) for raw in ov.iter_keys(prefix)]


# --- placing and matching --------------------------------------------------------------------
def test_a_bid_locks_quantity_times_limit_and_rests(chain):
    before = stable(chain, CHARLIE)
    r = ok(chain.block(bid(chain, CHARLIE, 150_000, 1_000)))
    assert stable(chain, CHARLIE) == before - 150_000
    assert stable(chain, ESCROW_ACCOUNT) == 150_000
    assert chain.read(lambda: market.book_side(1, T, BID)) == ((150_000, 0, CHARLIE.public_key, 1_000, False),)
    placed = events_named(r, _RUNTIME, "market", "OrderPlaced")
    assert placed == [[0, CHARLIE.public_key, BID, 1, T, 150_000, 1_000, 150_000]]
    check_invariants(chain)


def test_crossing_orders_trade_at_the_resting_price_and_release_the_surplus(chain):
    ok(chain.block(ask(chain, BOB, 100_000, 2_000)))
    before = stable(chain, CHARLIE)
    r = ok(chain.block(bid(chain, CHARLIE, 150_000, 600)))
    [tm] = trades_of(r)
    assert tm[6:] == [1, 1, 600, 100_000, LOCAL_FEE]
    amount, fee = cost(600, 100_000), cost(600, LOCAL_FEE)
    # the lock of 90,000 minus what the trade holds goes straight back
    assert stable(chain, CHARLIE) == before - amount - fee
    assert stable(chain, ESCROW_ACCOUNT) == amount + fee
    t = chain.read(lambda: market.trade(0))
    assert (t.buyer, t.seller, t.buyer_meter, t.seller_meter) == (CHARLIE.public_key, BOB.public_key,
                                                                   METER[CHARLIE], METER[BOB])
    assert (t.wh, t.amount, t.fee_amount, t.status) == (600, amount, fee, market.MATCHED)
    assert chain.read(lambda: market.escrowed_for_trade(0)) == amount + fee
    assert chain.read(lambda: [x.id for x in market.trades_in_interval(T)]) == [0]
    assert chain.read(lambda: market.book_side(1, T, ASK)) == ((100_000, 0, BOB.public_key, 1_400, True),)
    assert chain.read(lambda: market.book_side(1, T, BID)) == ()
    check_invariants(chain)


def test_an_ask_against_a_resting_bid_charges_the_buyer_exactly_its_limit(chain):
    ok(chain.block(bid(chain, CHARLIE, 150_000, 1_000)))
    before = stable(chain, CHARLIE)
    r = ok(chain.block(ask(chain, BOB, 90_000, 400)))
    [tm] = trades_of(r)
    assert tm[9:] == [150_000 - LOCAL_FEE, LOCAL_FEE]
    assert stable(chain, CHARLIE) == before          # nothing released: the limit is what it pays
    o = chain.read(lambda: market.order(0))
    assert (o.remaining_wh, o.escrow_locked) == (600, escrow_for(600, 150_000))
    check_invariants(chain)


def test_rounding_never_overcharges_and_every_unit_is_accounted_for(chain):
    ok(chain.block(ask(chain, BOB, 33_333, 7)))
    before = stable(chain, CHARLIE)
    ok(chain.block(bid(chain, CHARLIE, 77_777, 13)))
    t = chain.read(lambda: market.trade(0))
    assert (t.amount, t.fee_amount) == (7 * 33_333 // 1000, 7 * LOCAL_FEE // 1000)
    o = chain.read(lambda: market.order(1))
    assert o.escrow_locked == 6 * 77_777 // 1000
    assert before - stable(chain, CHARLIE) == t.amount + t.fee_amount + o.escrow_locked
    check_invariants(chain)


def test_cancel_returns_the_remaining_escrow(chain):
    ok(chain.block(ask(chain, BOB, 100_000, 300)))
    before = stable(chain, CHARLIE)
    ok(chain.block(bid(chain, CHARLIE, 130_000, 1_000)))
    r = ok(chain.block(cancel(chain, CHARLIE, 1)))
    assert events_named(r, _RUNTIME, "market", "OrderCancelled") == [[1, CHARLIE.public_key,
                                                                      escrow_for(700, 130_000)]]
    assert before - stable(chain, CHARLIE) == cost(300, 100_000) + cost(300, LOCAL_FEE)
    assert chain.read(lambda: market.book_side(1, T, BID)) == ()
    assert chain.read(lambda: market.order(1)) is None
    check_invariants(chain)


def test_no_self_trade(chain):
    ok(chain.block(ask(chain, BOB, 50_000, 500)))
    r = ok(chain.block(bid(chain, BOB, 200_000, 500)))
    assert trades_of(r) == []
    assert len(chain.read(lambda: market.book_side(1, T, BID))) == 1
    check_invariants(chain)


def test_a_resting_order_of_a_participant_suspended_since_does_not_trade(chain):
    ok(chain.block(ask(chain, BOB, 50_000, 500)))
    ok(chain.block(chain.xt(ALICE, "identity", "suspend", BOB.public_key, b"\2" * 32)))
    r = ok(chain.block(bid(chain, CHARLIE, 100_000, 500)))
    assert trades_of(r) == []
    ok(chain.block(cancel(chain, BOB, 0)))         # a suspended participant may still withdraw
    check_invariants(chain)


def test_cross_zone_match_only_when_the_bid_covers_ask_plus_fee(chain):
    ok(chain.block(ask(chain, FERDIE, 30_000, 1_000)))
    r = ok(chain.block(bid(chain, CHARLIE, 30_000 + CROSS_FEE - 1, 500)))
    assert trades_of(r) == []
    r = ok(chain.block(bid(chain, CHARLIE, 30_000 + CROSS_FEE, 500)))
    [tm] = trades_of(r)
    assert tm[5:] == [FERDIE.public_key, 2, 1, 500, 30_000, CROSS_FEE]
    assert chain.read(lambda: market.link_flow(2, 1, T)) == 500
    f1, f2 = chain.read(lambda: (market.flow(1, T), market.flow(2, T)))
    assert (f1.import_wh, f1.export_wh, f2.import_wh, f2.export_wh) == (500, 0, 0, 500)
    check_invariants(chain)


def test_cheapest_all_in_wins_across_zones(chain):
    ok(chain.block(ask(chain, BOB, 50_000, 500), ask(chain, FERDIE, 30_000, 500)))
    # Bob 50,000 + 20,000 = 70,000 all-in; Ferdie 30,000 + 35,000 = 65,000: Ferdie first
    r = ok(chain.block(bid(chain, CHARLIE, 100_000, 700)))
    assert [(tm[5], tm[8]) for tm in trades_of(r)] == [(FERDIE.public_key, 500), (BOB.public_key, 200)]
    check_invariants(chain)


def test_no_match_exceeds_a_zone_envelope(chain):
    ok(chain.block(chain.xt(DAVE, "grid", "set_envelope", 1, T, 250_000, 4_000)))  # export 1,000 Wh
    ok(chain.block(ask(chain, BOB, 50_000, 2_500)))
    r = ok(chain.block(bid(chain, CHARLIE, 100_000, 2_500)))
    assert [tm[8] for tm in trades_of(r)] == [1_000]
    r = ok(chain.block(bid(chain, CHARLIE, 100_000, 100)))
    assert trades_of(r) == []
    f = chain.read(lambda: market.flow(1, T))
    assert f.export_wh == 1_000 == market.wh_in_interval(4_000)
    check_no_match_exceeded_capacity({}, flows_over_capacity(chain))
    check_invariants(chain)


def test_no_match_exceeds_the_buyer_zone_import_room(chain):
    ok(chain.block(chain.xt(DAVE, "grid", "set_envelope", 1, T, 2_000, 250_000)))  # import 500 Wh
    ok(chain.block(ask(chain, FERDIE, 10_000, 1_000)))
    r = ok(chain.block(bid(chain, CHARLIE, 100_000, 1_000)))
    assert [tm[8] for tm in trades_of(r)] == [500]
    assert flows_over_capacity(chain)[("import", 1, T)] == (500, 500)
    check_invariants(chain)


def test_no_match_exceeds_a_link(chain):
    ok(chain.block(chain.xt(DAVE, "grid", "set_link_limit", 2, 1, 1_200)))          # 300 Wh per interval
    ok(chain.block(ask(chain, FERDIE, 10_000, 1_000)))
    r = ok(chain.block(bid(chain, CHARLIE, 100_000, 1_000)))
    assert [tm[8] for tm in trades_of(r)] == [300]
    assert flows_over_capacity(chain)[("link", 2, T)] == (300, 300)
    check_invariants(chain)


def test_paused_zone_is_left_out_of_matching(chain):
    ok(chain.block(ask(chain, FERDIE, 10_000, 1_000)))
    ok(chain.block(chain.xt(DAVE, "grid", "pause_zone", 2, b"\1" * 32)))
    r = ok(chain.block(bid(chain, CHARLIE, 100_000, 500)))
    assert trades_of(r) == []
    check_invariants(chain)


def test_green_only_bids_match_prosumer_asks(chain):
    ok(chain.block(ask(chain, BOB, 50_000, 500)))
    r = ok(chain.block(bid(chain, CHARLIE, 100_000, 500, green=True)))
    assert len(trades_of(r)) == 1


# --- gate closure and expiry -----------------------------------------------------------------
def test_orders_expire_at_gate_closure_and_release_their_escrow(chain):
    before = stable(chain, CHARLIE)
    ok(chain.block(bid(chain, CHARLIE, 100_000, 1_000), ask(chain, BOB, 200_000, 1_000)))
    goto(chain, T - Config.gate_closure_s - 1)        # the last second the gate is open
    assert chain.read(lambda: market.order(0)) is not None
    # the gate closes with the next block: placements in it fail, and nothing has expired yet
    assert failure(chain.block(bid(chain, CHARLIE, 100_000, 10))) == E.GateClosed.message
    assert chain.read(lambda: market.order(0)) is not None
    r = chain.block()                                 # its on_initialize sees the closed gate
    expired = events_named(r, _RUNTIME, "market", "OrderExpired")
    assert sorted(e[0] for e in expired) == [0, 1]
    assert stable(chain, CHARLIE) == before and stable(chain, ESCROW_ACCOUNT) == 0
    assert chain.read(lambda: (market.open_intervals.get(), market.open_books.get(T),
                               market.book_side(1, T, BID), market.book_side(1, T, ASK))) == ((), (), (), ())
    check_invariants(chain)


def test_cancel_after_gate_closure_is_refused(chain):
    ok(chain.block(bid(chain, CHARLIE, 100_000, 1_000)))
    goto(chain, T - Config.gate_closure_s - 1)
    before = market_state(chain)
    r = chain.block(cancel(chain, CHARLIE, 0))        # at T - gate_closure_s: closed, not yet expired
    assert failure(r) == E.GateClosed.message
    assert market_state(chain) == before


def test_expiry_is_bounded_per_block(chain, monkeypatch):
    monkeypatch.setattr(Config, "max_expiries_per_block", 2)
    ok(chain.block(*(bid(chain, CHARLIE, 100_000 + i, 10, nonce=i) for i in range(5))))
    goto(chain, T - Config.gate_closure_s)
    counts = [len(events_named(chain.block(), _RUNTIME, "market", "OrderExpired")) for _ in range(4)]
    assert counts == [2, 2, 1, 0]
    assert stable(chain, ESCROW_ACCOUNT) == 0
    check_invariants(chain)


def test_expiry_runs_oldest_interval_first_and_leaves_open_ones(chain):
    ok(chain.block(bid(chain, CHARLIE, 100_000, 10, t=T + I), bid(chain, CHARLIE, 100_000, 10, nonce=1)))
    goto(chain, T - Config.gate_closure_s)
    r = chain.block()
    assert [e[0] for e in events_named(r, _RUNTIME, "market", "OrderExpired")] == [1]
    assert chain.read(lambda: market.open_intervals.get()) == (T + I,)
    check_invariants(chain)


# --- bad input: each rejected with its error, nothing changed -----------------------------------
def _suspend_bob(chain):
    ok(chain.block(chain.xt(ALICE, "identity", "suspend", BOB.public_key, b"\2" * 32)))


def _pause_zone_1(chain):
    ok(chain.block(chain.xt(DAVE, "grid", "pause_zone", 1, b"\1" * 32)))


IMPORT_ONLY = Keypair.from_uri("//Bob//import").public_key


def _certify_import_meter_for_bob(chain):
    ok(chain.block(chain.xt(DAVE, "metering", "certify_meter", IMPORT_ONLY, BOB.public_key, 1, 0, 5_000)))


def _suspend_bobs_meter(chain):
    ok(chain.block(chain.xt(DAVE, "metering", "suspend_meter", METER[BOB])))


def _bob_asks(chain):
    ok(chain.block(ask(chain, BOB, 100_000, 100)))


NOW_INTERVAL = 1_700_000_100      # starts 100 s after the chain's clock: within gate closure

BAD_INPUTS = {
    "unlicensed participant": (None, lambda c: ask(c, EVE, 100_000, 100, meter=METER[BOB]), E.NotLicensed),
    "consumer selling": (None, lambda c: ask(c, CHARLIE, 100_000, 100, meter=METER[CHARLIE]), E.NotLicensed),
    "suspended participant": (_suspend_bob, lambda c: ask(c, BOB, 100_000, 100), E.LicenceNotActive),
    "after gate closure": (None, lambda c: bid(c, CHARLIE, 100_000, 100, t=NOW_INTERVAL), E.GateClosed),
    "too far ahead": (None, lambda c: bid(c, CHARLIE, 100_000, 100, t=T + 97 * I), E.TooFarAhead),
    "unaligned interval": (None, lambda c: bid(c, CHARLIE, 100_000, 100, t=T + 1), E.UnalignedInterval),
    "paused zone": (_pause_zone_1, lambda c: ask(c, BOB, 100_000, 100), E.ZonePaused),
    "unknown zone": (None, lambda c: bid(c, CHARLIE, 100_000, 100, zone=9), E.UnknownZone),
    "zero price": (None, lambda c: bid(c, CHARLIE, 0, 100), E.PriceOutOfBounds),
    "price beyond bounds": (None, lambda c: ask(c, BOB, Config.max_price_per_kwh + 1, 100), E.PriceOutOfBounds),
    "zero quantity": (None, lambda c: ask(c, BOB, 100_000, 0), E.QuantityOutOfBounds),
    "quantity beyond bounds": (None, lambda c: bid(c, CHARLIE, 100, Config.max_quantity_wh + 1),
                               E.QuantityOutOfBounds),
    "unaffordable escrow": (None, lambda c: bid(c, FERDIE, 100_000, 100, zone=2), E.InsufficientFunds),
    "unknown meter": (None, lambda c: ask(c, BOB, 100_000, 100, meter=b"\x09" * 32), E.UnknownMeter),
    "someone else's meter": (None, lambda c: bid(c, CHARLIE, 100_000, 100, meter=METER[BOB]), E.NotMeterOwner),
    "meter in another zone": (None, lambda c: ask(c, BOB, 100_000, 100, zone=2), E.MeterInOtherZone),
    "suspended meter": (_suspend_bobs_meter, lambda c: ask(c, BOB, 100_000, 100), E.MeterNotActive),
    "import-only meter asking": (_certify_import_meter_for_bob,
                                 lambda c: ask(c, BOB, 100_000, 100, meter=IMPORT_ONLY), E.MeterCannotExport),
    "above meter rating": (None, lambda c: ask(c, BOB, 100_000, 2_501), E.ExceedsMeterRating),
    "cancel of someone else's order": (_bob_asks, lambda c: cancel(c, CHARLIE, 0), E.NotOrderOwner),
    "cancel of an unknown order": (None, lambda c: cancel(c, CHARLIE, 42), E.UnknownOrder),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_rejected_with_its_error_and_changes_nothing(chain, case):
    setup, make, error = BAD_INPUTS[case]
    if setup:
        setup(chain)
    before = market_state(chain)
    r = chain.block(make(chain))
    assert failure(r) == error.message
    assert market_state(chain) == before
    check_invariants(chain)


def test_a_negative_price_cannot_even_be_encoded(chain):
    with pytest.raises(CodecError):
        bid(chain, CHARLIE, -1, 100)
    with pytest.raises(CodecError):
        ask(chain, BOB, 100_000, -5)


@pytest.mark.parametrize("call", ["transfer", "transfer_asset", "mint"])
def test_no_one_can_pay_into_the_escrow_account_directly(chain, call):
    """Money sent there would belong to no one: the escrow must equal what the market owes."""
    before = stable(chain, ESCROW_ACCOUNT), chain.free(ESCROW_ACCOUNT)
    if call == "transfer":
        xt = chain.xt(BOB, "balances", "transfer", ESCROW_ACCOUNT, 1_000)
    elif call == "transfer_asset":
        xt = chain.xt(BOB, "balances", "transfer_asset", STABLE, ESCROW_ACCOUNT, 1)
    else:
        xt = chain.xt(EVE, "balances", "mint", STABLE, ESCROW_ACCOUNT, 1)
    assert failure(chain.block(xt)) == balances.Error.CustodyAccount.message
    assert (stable(chain, ESCROW_ACCOUNT), chain.free(ESCROW_ACCOUNT)) == before


def test_a_full_book_side_refuses_the_order(chain, monkeypatch):
    monkeypatch.setattr(Config, "max_orders_per_side", 2)
    ok(chain.block(*(bid(chain, CHARLIE, 100_000, 10, nonce=i) for i in range(2))))
    before = market_state(chain)
    assert failure(chain.block(bid(chain, CHARLIE, 100_000, 10))) == E.BookFull.message
    assert market_state(chain) == before


# --- random sequences -------------------------------------------------------------------------
_ACTORS_BID = [(CHARLIE, 1), (BOB, 1)]
_ACTORS_ASK = [(BOB, 1), (FERDIE, 2)]

_place = st.one_of(
    st.tuples(st.just("bid"), st.sampled_from(_ACTORS_BID), st.integers(40_000, 200_000), st.integers(1, 2_500),
              st.integers(0, 2), st.booleans()),
    st.tuples(st.just("ask"), st.sampled_from(_ACTORS_ASK), st.integers(1, 120_000), st.integers(1, 2_000),
              st.integers(0, 2), st.booleans()),
)
_other = st.one_of(
    st.tuples(st.just("cancel"), st.sampled_from([BOB, CHARLIE, FERDIE]), st.integers(0, 8)),
    st.tuples(st.just("envelope"), st.sampled_from([1, 2]), st.integers(0, 2), st.integers(0, 20_000)),
    st.tuples(st.just("time"), st.integers(1, 700)),
    st.tuples(st.just("licence"), st.sampled_from([BOB, CHARLIE, FERDIE]), st.booleans()),
    st.tuples(st.just("pause"), st.sampled_from([1, 2]), st.booleans()),
)
#: two actions in three place an order
action = st.integers(0, 2).flatmap(lambda i: _place if i else _other)


def check_new_trades(chain, since: int) -> int:
    """Trades matched in the last block: licensed parties, zones not paused, gate still open."""
    def read():
        n = market.next_trade_id.get()
        for i in range(since, n):
            t = market.trade(i)
            assert identity.is_licensed(t.seller, identity.Role.PROSUMER)
            assert (identity.is_licensed(t.buyer, identity.Role.PROSUMER)
                    or identity.is_licensed(t.buyer, identity.Role.CONSUMER))
            assert not grid.is_paused(t.from_zone) and not grid.is_paused(t.to_zone)
            assert market.gate_open(t.interval_start, timestamp.now_s())
            assert t.buyer != t.seller
        return n
    return chain.read(read)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(action, min_size=1, max_size=20))
def test_money_is_conserved_escrow_matches_obligations_and_trades_follow_the_rules_over_any_sequence(actions):
    chain = new_chain()
    flows = flows_over_capacity(chain)
    trades = 0
    for a in actions:
        if a[0] == "bid":
            _, (who, zone), price, wh, k, green = a
            chain.block(bid(chain, who, price, wh, zone=zone, t=T + k * I, green=green))
        elif a[0] == "ask":
            _, (who, zone), price, wh, k, _ = a
            chain.block(ask(chain, who, price, wh, zone=zone, t=T + k * I))
        elif a[0] == "cancel":
            chain.block(cancel(chain, a[1], a[2]))
        elif a[0] == "envelope":
            _, zone, k, w = a
            chain.block(chain.xt(DAVE, "grid", "set_envelope", zone, T + k * I, w, w))
        elif a[0] == "licence":
            call = "suspend" if a[2] else "reinstate"
            chain.block(chain.xt(ALICE, "identity", call, a[1].public_key, *([b"\3" * 32] if a[2] else [])))
        elif a[0] == "pause":
            _, zone, pause = a
            chain.block(chain.xt(DAVE, "grid", "pause_zone" if pause else "resume_zone", zone,
                                 *([b"\4" * 32] if pause else [])))
        else:
            goto(chain, chain.now_ms // 1000 + a[1])
        trades = check_new_trades(chain, trades)
        check_invariants(chain)
        flows, before = flows_over_capacity(chain), flows
        check_no_match_exceeded_capacity(before, flows)
