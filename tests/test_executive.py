"""Executive semantics: rollback, fees, nonces, mortality, signatures, limits, inherents."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pallets import system, transaction_payment
from primitives.extrinsic import Call, Extrinsic, Mortality
from runtime.api import InvalidKind, InvalidTransaction, UnknownTransaction
from runtime.executive import BlockError
from tests.runtime_harness import ALICE, BOB, CHARLIE, EVE, FUNDS, ChainHarness, default_genesis, events_named


@pytest.fixture
def chain() -> ChainHarness:
    return ChainHarness.new()


def test_transfer_moves_balance_and_pays_fee_to_author(chain):
    xt = chain.xt(BOB, "balances", "transfer", CHARLIE.public_key, 500)
    result = chain.block(xt)
    fee = events_named(result, chain.runtime, "transaction_payment", "TransactionFeePaid")[0][1]
    weight = system.Config.base_extrinsic_weight + chain.runtime.by_name["balances"].calls_by_name["transfer"].weight
    assert fee == transaction_payment.compute_fee(len(xt), weight, 0)
    assert chain.free(BOB.public_key) == FUNDS - 500 - fee
    assert chain.free(CHARLIE.public_key) == FUNDS + 500
    assert chain.free(ALICE.public_key) == FUNDS + fee        # Alice authored the block
    assert chain.nonce(BOB.public_key) == 1


def test_failed_call_rolls_back_but_pays_fee_uses_nonce_and_is_reported(chain):
    xt = chain.xt(BOB, "balances", "transfer_asset", 1, CHARLIE.public_key, 5000)  # Bob holds only 1000
    result = chain.block(xt)
    failed = events_named(result, chain.runtime, "system", "ExtrinsicFailed")
    assert len(failed) == 1 and "lower than the amount" in failed[0][0][2]
    assert chain.asset(1, BOB.public_key) == 1000 and chain.asset(1, CHARLIE.public_key) == 0
    assert chain.nonce(BOB.public_key) == 1
    assert chain.free(BOB.public_key) < FUNDS
    # no event from inside the failed call survives
    assert not events_named(result, chain.runtime, "balances", "AssetTransferred")


def test_stale_and_future_nonces(chain):
    chain.block(chain.xt(BOB, "system", "remark", b"hi"))
    stale = chain.xt(BOB, "system", "remark", b"again", nonce=0)
    with pytest.raises(InvalidTransaction) as e:
        chain.validate(stale)
    assert e.value.kind is InvalidKind.STALE
    future = chain.xt(BOB, "system", "remark", b"later", nonce=3)
    v = chain.validate(future)          # the pool may hold it, waiting for nonce 2
    assert v.requires and v.provides
    with pytest.raises(BlockError, match="ahead"):
        chain.block(future)


def test_signature_for_another_chain_or_spec_version_is_bad_proof(chain):
    other_chain = chain.xt(BOB, "system", "remark", b"x", genesis_hash=b"\x01" * 32)
    other_spec = chain.xt(BOB, "system", "remark", b"x", spec_version=99)
    for xt in (other_chain, other_spec):
        with pytest.raises(InvalidTransaction) as e:
            chain.validate(xt)
        assert e.value.kind is InvalidKind.BAD_PROOF


def test_tampered_extrinsic_fails_signature(chain):
    xt = bytearray(chain.xt(BOB, "balances", "transfer", CHARLIE.public_key, 5))
    xt[-1] ^= 1  # the amount, a positive fixint, becomes 4: still well-formed
    with pytest.raises(InvalidTransaction) as e:
        chain.validate(bytes(xt))
    assert e.value.kind is InvalidKind.BAD_PROOF


def test_mortal_extrinsic_expires(chain):
    for _ in range(3):
        chain.block()
    xt = chain.xt(BOB, "system", "remark", b"x", mortality=Mortality(birth=2, period=4))
    assert chain.validate(xt).longevity == 2
    chain.block()
    chain.block()
    with pytest.raises(InvalidTransaction) as e:
        chain.validate(xt)
    assert e.value.kind is InvalidKind.ANCIENT_BIRTH_BLOCK


def test_unaffordable_fee_is_payment_error():
    poor = ChainHarness.new()
    from primitives.keys import dev_keypair
    ferdie = dev_keypair("Ferdie")   # not endowed
    with pytest.raises(InvalidTransaction) as e:
        poor.validate(poor.xt(ferdie, "system", "remark", b"x"))
    assert e.value.kind is InvalidKind.PAYMENT


def test_block_weight_limit_stops_inclusion(chain, monkeypatch):
    per_transfer = system.Config.base_extrinsic_weight + chain.runtime.by_name["balances"].calls_by_name["transfer"].weight
    # room for three and a half transfers in the normal share (75%) of a block
    monkeypatch.setattr(system.Config, "max_block_weight", per_transfer * 7 * 100 // (2 * 75))
    from runtime.executive import Limits
    c = system.Config
    chain.runtime.limits = Limits(c.max_block_weight, c.max_block_length, c.normal_ratio_percent,
                                  c.block_hash_count, c.base_extrinsic_weight)
    b = chain.builder()
    included = 0
    with pytest.raises(InvalidTransaction) as e:
        for n in range(10):
            b.apply(chain.xt(BOB, "balances", "transfer", CHARLIE.public_key, 1, nonce=n))
            included += 1
    assert e.value.kind is InvalidKind.EXHAUSTS_RESOURCES
    assert included == 3   # three fit, the fourth would exceed the block's normal weight


def test_inherent_cannot_be_submitted_and_must_come_first(chain):
    ts = Extrinsic(Call(1, 0, (chain.now_ms + 5000,))).encode()
    with pytest.raises(InvalidTransaction) as e:
        chain.validate(ts)
    assert e.value.kind is InvalidKind.MANDATORY_VALIDATION
    b = chain.runtime.begin_block(chain.state, chain.hashes[-1], 1, chain.digest())
    b.apply(chain.xt(BOB, "system", "remark", b"x"))
    with pytest.raises(InvalidTransaction):
        b.apply(ts)


def test_block_without_timestamp_is_invalid(chain):
    from runtime.executive import execute_block
    with pytest.raises(BlockError, match="timestamp"):
        execute_block(chain.runtime.begin_block(chain.state, chain.hashes[-1], 1, chain.digest()), [])


def test_unsigned_call_without_validator_is_unknown(chain):
    xt = Extrinsic(Call(0, 0, (b"x",))).encode()
    with pytest.raises(UnknownTransaction):
        chain.validate(xt)


def test_sudo_dispatches_root_calls_only_for_the_key(chain):
    inner = [3, 1, [CHARLIE.public_key, 7]]   # balances.force_set_balance(charlie, 7)
    chain.block(chain.xt(ALICE, "sudo", "sudo", inner))
    assert chain.free(CHARLIE.public_key) == 7
    result = chain.block(chain.xt(BOB, "sudo", "sudo", [3, 1, [CHARLIE.public_key, 9]]))
    assert chain.free(CHARLIE.public_key) == 7
    assert "only the sudo key" in events_named(result, chain.runtime, "system", "ExtrinsicFailed")[0][0][2]


def test_root_call_signed_directly_is_bad_origin(chain):
    result = chain.block(chain.xt(BOB, "balances", "force_set_balance", BOB.public_key, 1))
    assert "root" in events_named(result, chain.runtime, "system", "ExtrinsicFailed")[0][0][2]
    assert chain.free(BOB.public_key) > 1


def test_only_the_issuer_mints_and_burns(chain):
    chain.block(chain.xt(EVE, "balances", "mint", 1, CHARLIE.public_key, 250))
    assert chain.asset(1, CHARLIE.public_key) == 250
    r = chain.block(chain.xt(BOB, "balances", "mint", 1, BOB.public_key, 10**6))
    assert "issuer" in events_named(r, chain.runtime, "system", "ExtrinsicFailed")[0][0][2]
    assert chain.asset(1, BOB.public_key) == 1000


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0, 1, 2]), st.sampled_from([0, 1, 2]),
                          st.integers(0, FUNDS * 2)), max_size=8))
def test_money_is_conserved_over_any_sequence_of_transfers(moves):
    chain = ChainHarness.new()
    keys = [BOB, CHARLIE, EVE]
    issuance = chain.total_issuance()
    assert chain.sum_native() == issuance
    nonces = [0, 0, 0]
    b = chain.builder()
    for src, dst, amount in moves:
        try:
            b.apply(chain.xt(keys[src], "balances", "transfer", keys[dst].public_key, amount, nonce=nonces[src]))
            nonces[src] += 1     # included, failed or not: the nonce is used
        except InvalidTransaction:
            pass                 # not includable (cannot pay the fee): nothing happened
    chain.commit(b)
    assert chain.sum_native() == chain.total_issuance() == issuance


def test_an_issuer_without_an_active_licence_cannot_mint():
    genesis = default_genesis()
    del genesis["identity"]                     # Eve is the asset's issuer but holds no licence
    chain = ChainHarness.new(genesis)
    r = chain.block(chain.xt(EVE, "balances", "mint", 1, CHARLIE.public_key, 250))
    assert "issuer licence" in events_named(r, chain.runtime, "system", "ExtrinsicFailed")[0][0][2]
    assert chain.asset(1, CHARLIE.public_key) == 0
