"""Settlement pallet through a composed runtime with the dev chain's genesis (see tests/test_market.py
for the cast): Bob sells from his 10 kW bidirectional meter in zone 1, Charlie buys into his 15 kW
import meter in zone 1, Dave is the DSO, Alice the registrar. Penalty 40,000 per undelivered kWh (genesis).

A trade's interval is T; baselines are read for T - I, the interval's readings at T + I + 1; the
settlement window closes at T + 5I, and the hook of the block after that settles.
"""
from __future__ import annotations


import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from genesis.chain_spec import dev_spec
from pallets import (balances, certificates, market, settlement)
from pallets.market import ESCROW_ACCOUNT
from pallets.market_engine import cost
from primitives.keys import Keypair
from primitives.meter_reading import Reading, sign_reading
from runtime import storage
from runtime.storage import item_prefix
from tests.runtime_harness import chain_factory, GENESIS_HASH, ChainHarness, events_named
from tests.test_market import (ALICE, BOB, CHARLIE, DAVE, EVE, FERDIE, LOCAL_FEE, METER, STABLE, I, T,
                               _stable_balances, ask, bid, failure, goto, ok, stable)
from tests.test_metering import reading_xt

S = settlement
E = settlement.Error
PENALTY = 40_000                     # genesis; the default is 50,000
CLOSE = T + 5 * I                    # settlement window of T closes
METER_KEY = {kp: Keypair.from_uri(f"//{n}//meter") for kp, n in ((BOB, "Bob"), (CHARLIE, "Charlie"),
                                                                   (FERDIE, "Ferdie"))}
REASON = b"\x07" * 32


def settlement_genesis() -> dict:
    g = dev_spec()["genesis"]["runtimeGenesis"]["config"]
    g["settlement"] = {"penalty_per_kwh": PENALTY}
    return g


new_chain = chain_factory(settlement_genesis())
_RUNTIME = new_chain.runtime


@pytest.fixture
def chain() -> ChainHarness:
    return new_chain()


# --- helpers ---------------------------------------------------------------------------------
def named(result, name: str) -> list:
    return events_named(result, _RUNTIME, "settlement", name)


def read_meters(chain, deltas: dict, t: int = T) -> None:
    """Baselines for t - I (at t + 1), then each listed meter's reading for t (at t + I + 1):
    deltas = {keypair: (import_wh, export_wh)}; a meter mapped to None gets no reading for t."""
    goto(chain, t + 1)
    base = [reading_xt(sign_reading(METER_KEY[kp], Reading(METER_KEY[kp].public_key, 1, t - I, 0, 0),
                                    GENESIS_HASH)) for kp in sorted(deltas, key=lambda k: k.public_key)]
    ok(chain.block(*base))
    goto(chain, t + I + 1)
    xts = [reading_xt(sign_reading(METER_KEY[kp], Reading(METER_KEY[kp].public_key, 2, t, *d), GENESIS_HASH))
           for kp, d in sorted(deltas.items(), key=lambda kv: kv[0].public_key) if d is not None]
    if xts:
        ok(chain.block(*xts))


def settle(chain, close: int = CLOSE) -> list:
    """Blocks until (and including) the first whose hook sees the window closed; their results."""
    goto(chain, close)
    return [chain.block()]


def status(chain, trade_id: int) -> int:
    return chain.read(lambda: S.trade_status(trade_id))


def certs(chain, who, t=T, zone=1) -> tuple[int, int]:
    tok = (zone, t)
    return chain.read(lambda: (certificates.balance_of(tok, who.public_key),
                               certificates.retired_of(tok, who.public_key)))


def total_stable(chain) -> int:
    return chain.read(lambda: sum(_stable_balances()))


def one_trade(chain, wh=1_000, price=100_000):
    """Bob asks, Charlie bids at price + local fee: trade 0 of `wh` at `price`."""
    ok(chain.block(ask(chain, BOB, price, wh)))
    ok(chain.block(bid(chain, CHARLIE, price + LOCAL_FEE, wh)))
    return chain.read(lambda: market.trade(0))


def balances_of(chain) -> dict:
    return {n: stable(chain, kp) for n, kp in (("bob", BOB), ("charlie", CHARLIE), ("dave", DAVE),
                                               ("escrow", ESCROW_ACCOUNT))}


# --- full delivery ---------------------------------------------------------------------------
def test_full_delivery_pays_seller_and_dso_exactly_and_retires_certificates_to_the_buyer(chain):
    t = one_trade(chain, 1_000, 100_000)
    assert status(chain, 0) == S.MATCHED
    read_meters(chain, {BOB: (0, 1_000), CHARLIE: (1_000, 0)})
    assert status(chain, 0) == S.DELIVERING
    assert certs(chain, BOB) == (1_000, 0)
    before = balances_of(chain)
    [r] = settle(chain)
    after = balances_of(chain)
    assert after["bob"] - before["bob"] == t.amount == cost(1_000, 100_000)
    assert after["dave"] - before["dave"] == t.fee_amount == cost(1_000, LOCAL_FEE)
    assert after["charlie"] == before["charlie"]
    assert after["escrow"] == 0
    assert named(r, "TradeSettled") == [[0, 1_000, t.amount, t.fee_amount, 0, 0, S.NO_FAULT, 1_000]]
    assert named(r, "IntervalSettled") == [[T]]
    assert status(chain, 0) == S.SETTLED
    assert certs(chain, BOB) == (0, 0) and certs(chain, CHARLIE) == (0, 1_000)
    assert chain.read(lambda: S.escrowed_for_trade(0)) == 0


def test_nothing_settles_before_the_window_closes(chain):
    one_trade(chain)
    read_meters(chain, {BOB: (0, 1_000), CHARLIE: (1_000, 0)})
    goto(chain, CLOSE - 2)
    r = chain.block()                       # its hook sees CLOSE - 2
    assert named(r, "TradeSettled") == [] and status(chain, 0) == S.DELIVERING
    assert stable(chain, ESCROW_ACCOUNT) > 0


# --- shortfall -------------------------------------------------------------------------------
def test_a_seller_shortfall_settles_pro_rata_and_the_seller_pays_the_penalty(chain):
    t = one_trade(chain, 1_000, 100_003)     # odd price: rounding remainders go to the buyer
    read_meters(chain, {BOB: (0, 601), CHARLIE: (1_000, 0)})
    before, supply = balances_of(chain), total_stable(chain)
    [r] = settle(chain)
    after = balances_of(chain)
    paid, fee = cost(601, 100_003), cost(601, LOCAL_FEE)
    refund = t.amount + t.fee_amount - paid - fee
    penalty = cost(399, PENALTY)
    assert named(r, "TradeSettled") == [[0, 601, paid, fee, refund, penalty, S.SELLER_AT_FAULT, 601]]
    assert after["bob"] - before["bob"] == paid - penalty
    assert after["charlie"] - before["charlie"] == refund + penalty
    assert after["dave"] - before["dave"] == fee
    assert after["escrow"] == 0 and total_stable(chain) == supply
    assert certs(chain, CHARLIE) == (0, 601)


def test_a_buyer_who_takes_less_pays_the_penalty_to_the_seller(chain):
    t = one_trade(chain, 1_000, 100_000)
    read_meters(chain, {BOB: (0, 1_000), CHARLIE: (700, 0)})
    before = balances_of(chain)
    [r] = settle(chain)
    after = balances_of(chain)
    paid, fee, penalty = cost(700, 100_000), cost(700, LOCAL_FEE), cost(300, PENALTY)
    refund = t.amount + t.fee_amount - paid - fee
    assert named(r, "TradeSettled") == [[0, 700, paid, fee, refund, penalty, S.BUYER_AT_FAULT, 700]]
    assert after["bob"] - before["bob"] == paid + penalty
    assert after["charlie"] - before["charlie"] == refund - penalty
    assert certs(chain, BOB) == (300, 0)     # the undelivered part's certificates stay with Bob


def test_the_penalty_is_capped_at_what_the_party_at_fault_holds(chain):
    t = one_trade(chain, 1_000, 100_000)
    read_meters(chain, {BOB: (0, 0), CHARLIE: (1_000, 0)})
    # Bob gives away all his stablecoin but 1,000 units
    ok(chain.block(chain.xt(BOB, "balances", "transfer_asset", STABLE, EVE.public_key,
                            stable(chain, BOB) - 1_000)))
    [r] = settle(chain)
    assert named(r, "TradeRefunded") == [[0, t.amount + t.fee_amount, 1_000, S.SELLER_AT_FAULT]]
    assert stable(chain, BOB) == 0
    assert status(chain, 0) == S.REFUNDED


# --- no readings -----------------------------------------------------------------------------
def test_without_a_seller_reading_the_buyer_is_refunded_in_full_and_the_seller_penalised(chain):
    t = one_trade(chain, 1_000, 100_000)
    read_meters(chain, {BOB: None, CHARLIE: (1_000, 0)})
    before = balances_of(chain)
    [r] = settle(chain)
    after = balances_of(chain)
    penalty = cost(1_000, PENALTY)
    assert named(r, "TradeRefunded") == [[0, t.amount + t.fee_amount, penalty, S.SELLER_AT_FAULT]]
    assert after["charlie"] - before["charlie"] == t.amount + t.fee_amount + penalty
    assert after["bob"] - before["bob"] == -penalty
    assert after["escrow"] == 0 and status(chain, 0) == S.REFUNDED


def test_without_a_buyer_reading_the_sellers_metered_export_is_paid(chain):
    t = one_trade(chain, 1_000, 100_000)
    read_meters(chain, {BOB: (0, 1_000), CHARLIE: None})
    [r] = settle(chain)
    assert named(r, "TradeSettled") == [[0, 1_000, t.amount, t.fee_amount, 0, 0, S.NO_FAULT, 1_000]]


def test_no_readings_at_all_refund_the_buyer_and_penalise_the_seller(chain):
    t = one_trade(chain, 1_000, 100_000)
    [r] = settle(chain)
    assert named(r, "TradeRefunded") == [[0, t.amount + t.fee_amount, cost(1_000, PENALTY),
                                          S.SELLER_AT_FAULT]]


def test_an_implausible_reading_counts_as_no_reading(chain):
    t = one_trade(chain, 1_000, 100_000)
    read_meters(chain, {BOB: (0, 3_000), CHARLIE: (1_000, 0)})     # 3,000 Wh > 10 kW x 15 min
    [r] = settle(chain)
    assert named(r, "TradeRefunded") == [[0, t.amount + t.fee_amount, cost(1_000, PENALTY),
                                          S.SELLER_AT_FAULT]]


# --- shared meters ---------------------------------------------------------------------------
def test_trades_sharing_a_seller_meter_are_allocated_in_trade_id_order(chain):
    ok(chain.block(ask(chain, BOB, 100_000, 1_500)))
    ok(chain.block(bid(chain, CHARLIE, 120_000, 1_000)))      # trade 0: 1,000 Wh
    ok(chain.block(bid(chain, CHARLIE, 120_000, 500)))        # trade 1: 500 Wh
    read_meters(chain, {BOB: (0, 1_200), CHARLIE: (1_500, 0)})
    [r] = settle(chain)
    settled = {e[0]: e for e in named(r, "TradeSettled")}
    assert settled[0][1] == 1_000 and settled[0][6] == S.NO_FAULT
    assert settled[1][1] == 200 and settled[1][6] == S.SELLER_AT_FAULT
    assert stable(chain, ESCROW_ACCOUNT) == 0
    assert certs(chain, CHARLIE) == (0, 1_200)


# --- bounded, idempotent hook ----------------------------------------------------------------
def test_settlement_spans_blocks_in_chunks_and_ends_every_trade_final_once(chain, monkeypatch):
    monkeypatch.setattr(S.Config, "max_trades_per_block", 2)
    ok(chain.block(ask(chain, BOB, 100_000, 2_000)))
    for _ in range(5):
        ok(chain.block(bid(chain, CHARLIE, 120_000, 300)))
    read_meters(chain, {BOB: (0, 1_400), CHARLIE: (1_500, 0)})
    supply = total_stable(chain)
    goto(chain, CLOSE)
    seen = []
    for _ in range(5):
        r = chain.block()
        seen.append(sorted(e[0] for e in named(r, "TradeSettled")))
    assert seen == [[0, 1], [2, 3], [4], [], []]
    assert [status(chain, i) for i in range(5)] == [S.SETTLED] * 5
    delivered = [300, 300, 300, 300, 200]     # 1,400 Wh exported, allocated by id
    assert chain.read(lambda: S.export_allocated.get(METER[BOB], T)) == sum(delivered)
    assert stable(chain, ESCROW_ACCOUNT) == 0 and total_stable(chain) == supply
    assert certs(chain, CHARLIE) == (0, 1_400)


def test_running_the_hook_again_changes_nothing(chain):
    one_trade(chain)
    read_meters(chain, {BOB: (0, 1_000), CHARLIE: (1_000, 0)})
    settle(chain)
    # re-run the hook by hand on the settled state, and run more blocks
    before = dict(chain.state)

    def again():
        S.pay_out(market.trade(0), 0, S.SELLER_AT_FAULT)      # a final trade is never paid again
        S.next_interval.put(T)                                # and a rewound cursor pays nothing
        S.next_trade.kill()
        S.settle_closed_intervals(chain.number + 1)
        return storage.current().changes()
    changes = chain.read(again)
    keys_changed = {k for k, v in changes.items() if before.get(k) != v}
    # only the cursor and the allocation records move; no balance, status or certificate does
    guarded = (item_prefix("balances", "asset_balance"), item_prefix("settlement", "status"),
               item_prefix("certificates", "balance")[:16])          # the whole certificates pallet
    touched_money = [k for k in keys_changed if k.startswith(guarded)]
    assert touched_money == []
    r = chain.block()
    assert named(r, "TradeSettled") == [] and named(r, "TradeRefunded") == []


# --- disputes --------------------------------------------------------------------------------
def test_a_disputed_trade_waits_for_a_registrar_whose_decision_moves_the_escrow(chain):
    t = one_trade(chain, 1_000, 100_000)
    read_meters(chain, {BOB: (0, 1_000), CHARLIE: (1_000, 0)})
    r = ok(chain.block(chain.xt(CHARLIE, "settlement", "dispute", 0, REASON)))
    assert named(r, "TradeDisputed") == [[0, CHARLIE.public_key, REASON]]
    assert status(chain, 0) == S.DISPUTED
    [r] = settle(chain)
    assert named(r, "TradeSettled") == [] and status(chain, 0) == S.DISPUTED
    assert stable(chain, ESCROW_ACCOUNT) == t.amount + t.fee_amount
    assert chain.read(lambda: S.metered.get(0)) == S.Metered(1_000, 1_000)
    before = balances_of(chain)
    r = ok(chain.block(chain.xt(ALICE, "settlement", "arbitrate", 0, 400)))
    after = balances_of(chain)
    paid, fee = cost(400, 100_000), cost(400, LOCAL_FEE)
    assert named(r, "TradeSettled") == [[0, 400, paid, fee, t.amount + t.fee_amount - paid - fee, 0,
                                         S.NO_FAULT, 400]]
    assert named(r, "DisputeResolved") == [[0, ALICE.public_key, 400]]
    assert after["bob"] - before["bob"] == paid and after["dave"] - before["dave"] == fee
    assert after["escrow"] == 0 and status(chain, 0) == S.SETTLED
    assert chain.read(lambda: (S.open_disputes.get(), S.disputes.get(0), S.metered.get(0))) == ((), None, None)
    # final: no second arbitration, no second dispute
    assert failure(chain.block(chain.xt(ALICE, "settlement", "arbitrate", 0, 400))) == E.NotDisputed.message
    assert failure(chain.block(chain.xt(BOB, "settlement", "dispute", 0, REASON))) == E.AlreadyFinal.message


def test_an_unarbitrated_dispute_settles_by_the_meters_after_the_arbitration_window(chain, monkeypatch):
    monkeypatch.setattr(S.Config, "arbitration_window_s", 2 * I)
    t = one_trade(chain, 1_000, 100_000)
    read_meters(chain, {BOB: (0, 800), CHARLIE: (1_000, 0)})
    ok(chain.block(chain.xt(BOB, "settlement", "dispute", 0, REASON)))
    settle(chain)
    assert status(chain, 0) == S.DISPUTED
    goto(chain, CLOSE + 2 * I)
    r = chain.block()
    assert named(r, "DisputeTimedOut") == [[0]]
    paid, fee = cost(800, 100_000), cost(800, LOCAL_FEE)
    assert named(r, "TradeSettled") == [[0, 800, paid, fee, t.amount + t.fee_amount - paid - fee,
                                         cost(200, PENALTY), S.SELLER_AT_FAULT, 800]]
    assert status(chain, 0) == S.SETTLED and stable(chain, ESCROW_ACCOUNT) == 0


def test_an_arbitration_before_the_hook_reaches_the_trade_is_not_paid_twice(chain):
    one_trade(chain, 1_000, 100_000)
    read_meters(chain, {BOB: (0, 1_000), CHARLIE: (1_000, 0)})
    ok(chain.block(chain.xt(CHARLIE, "settlement", "dispute", 0, REASON)))
    ok(chain.block(chain.xt(ALICE, "settlement", "arbitrate", 0, 1_000)))
    supply = balances_of(chain)
    [r] = settle(chain)
    assert named(r, "TradeSettled") == [] and balances_of(chain) == supply
    assert status(chain, 0) == S.SETTLED


# --- wrong role and bad input ----------------------------------------------------------------
def _settlement_state(chain) -> dict:
    mine = item_prefix("settlement", "status")[:16]
    money = item_prefix("balances", "asset_balance")
    return {k: v for k, v in chain.state.items() if k[:16] == mine or k.startswith(money)}


@pytest.mark.parametrize("who, call, args, error", [
    (DAVE, "dispute", (0, REASON), E.NotParty),
    (FERDIE, "dispute", (0, REASON), E.NotParty),
    (CHARLIE, "dispute", (9, REASON), E.UnknownTrade),
    (CHARLIE, "arbitrate", (0, 500), E.NotRegistrar),
    (DAVE, "arbitrate", (0, 500), E.NotRegistrar),
    (ALICE, "arbitrate", (9, 500), E.UnknownTrade),
    (ALICE, "arbitrate", (0, 500), E.NotDisputed),
])
def test_a_call_by_the_wrong_party_or_on_a_bad_trade_is_rejected_and_changes_nothing(chain, who, call, args,
                                                                                       error):
    one_trade(chain)
    read_meters(chain, {BOB: (0, 1_000), CHARLIE: (1_000, 0)})
    before = _settlement_state(chain)
    r = chain.block(chain.xt(who, "settlement", call, *args))
    assert failure(r) == error.message
    after = _settlement_state(chain)
    # only the caller's fee (native token) moves; no settlement or stablecoin state does
    assert after == before


def test_a_share_above_the_trade_and_disputes_outside_the_window_are_rejected(chain):
    one_trade(chain)
    r = chain.block(chain.xt(CHARLIE, "settlement", "dispute", 0, REASON))
    assert failure(r) == E.DisputeWindowNotOpen.message              # the interval has not ended
    read_meters(chain, {BOB: (0, 1_000), CHARLIE: (1_000, 0)})
    ok(chain.block(chain.xt(CHARLIE, "settlement", "dispute", 0, REASON)))
    assert failure(chain.block(chain.xt(BOB, "settlement", "dispute", 0, REASON))) == E.AlreadyDisputed.message
    assert failure(chain.block(chain.xt(ALICE, "settlement", "arbitrate", 0, 1_001))) == E.ShareTooLarge.message


def test_a_dispute_after_the_settlement_window_is_rejected_even_before_the_hook_settles(chain, monkeypatch):
    monkeypatch.setattr(S.Config, "max_trades_per_block", 0)     # the hook is behind
    one_trade(chain)
    goto(chain, CLOSE)
    assert status(chain, 0) == S.DELIVERING
    assert failure(chain.block(chain.xt(CHARLIE, "settlement", "dispute", 0, REASON))) == \
        E.DisputeWindowClosed.message


# --- properties ------------------------------------------------------------------------------
_ask = st.tuples(st.sampled_from(["bob_ask", "ferdie_ask"]), st.integers(60_000, 120_000), st.integers(100, 1_200))
_bid = st.tuples(st.just("bid"), st.integers(90_000, 180_000), st.integers(100, 1_200))
_orders = st.tuples(st.lists(_ask, min_size=1, max_size=4), st.lists(_bid, min_size=1, max_size=4)).flatmap(
    lambda ab: st.permutations(ab[0] + ab[1]))
_reading = st.one_of(st.none(), st.integers(0, 2_100))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(orders=_orders, bob_export=_reading, ferdie_export=_reading,
       charlie_import=_reading, chunk=st.integers(1, 4), dispute=st.booleans())
def test_money_is_conserved_and_every_trade_ends_final_over_any_orders_and_readings(
        orders, bob_export, ferdie_export, charlie_import, chunk, dispute, monkeypatch):
    monkeypatch.setattr(S.Config, "max_trades_per_block", chunk)
    chain = new_chain()
    supply = chain.read(lambda: balances.assets.get(STABLE).supply)
    assert total_stable(chain) == supply
    for side, price, wh in orders:
        if side == "bid":
            xt = bid(chain, CHARLIE, price, wh)
        else:
            xt = ask(chain, BOB if side == "bob_ask" else FERDIE, price, wh)
        chain.block(xt)               # some may fail (e.g. a price the buyer cannot cover): fine
    n_trades = chain.read(lambda: market.next_trade_id.get())
    event(f"trades: {min(n_trades, 3)}{'+' if n_trades >= 3 else ''}")
    read_meters(chain, {BOB: None if bob_export is None else (0, bob_export),
                        FERDIE: None if ferdie_export is None else (0, ferdie_export),
                        CHARLIE: None if charlie_import is None else (charlie_import, 0)})
    if dispute and n_trades:
        ok(chain.block(chain.xt(CHARLIE, "settlement", "dispute", 0, REASON)))
    goto(chain, CLOSE)
    for _ in range(n_trades // chunk + 2):
        chain.block()
        assert total_stable(chain) == supply
    if dispute and n_trades:
        assert status(chain, 0) == S.DISPUTED
        ok(chain.block(chain.xt(ALICE, "settlement", "arbitrate", 0, 0)))
    assert all(status(chain, i) in S.FINAL for i in range(n_trades))
    assert total_stable(chain) == supply
    # every order expired at gate closure and every trade is final: nothing is left in escrow
    assert stable(chain, ESCROW_ACCOUNT) == 0
    for zone, export in ((1, bob_export), (2, ferdie_export)):
        sup = chain.read(lambda z=zone: certificates.supply_of((z, T)))
        assert sup.retired_wh <= sup.minted_wh <= (export or 0)   # implausible: none minted
        assert certs(chain, CHARLIE, zone=zone)[1] == sup.retired_wh
