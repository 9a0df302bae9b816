"""Untrusted extrinsics cannot stop or split consensus.

Three ways they once could: a call nested hundreds of levels deep inside `sudo.sudo` made weight
computation recurse until `RecursionError`, at a depth that depended on the caller's stack (so the
proposer accepted what every other validator refused); msgpack's C extension and its pure-Python
fallback accepted different nestings; and an exception that was not a `DispatchError` (a value that
does not fit its storage type) escaped dispatch and failed the whole block, every block after it.
"""
from __future__ import annotations

import sys

import pytest

from pallets import ALL_PALLETS, VERSION, authorship, balances, system, timestamp, transaction_payment
from primitives.codec import MAX_NESTING_DEPTH, U64
from primitives.errors import BadFormat
from primitives.extrinsic import EXTRINSIC_DOMAIN, Call, Extrinsic
from primitives.keys import signing_message
from runtime.api import InvalidKind, InvalidTransaction
from runtime.dispatch import INTERNAL_ERROR, MAX_CALL_NESTING
from runtime.executive import Runtime
from runtime.pallet import NONE, SIGNED, Origin, Pallet
from tests.runtime_harness import ALICE, BOB, FUNDS, GENESIS_HASH, ChainHarness, events_named

SUDO = 5            # pallet index of sudo; its call 0 is `sudo(call)`
REMARK = [0, 0, [b"innermost"]]     # system.remark


def nested_sudo(levels: int, inner: list = REMARK) -> list:
    """`sudo(sudo(...(inner)))` with `levels` sudo calls, as plain call data."""
    call = inner
    for _ in range(levels):
        call = [SUDO, 0, [call]]
    return call


def nested_sudo_bytes(levels: int) -> bytes:
    """The same, written as msgpack bytes directly: deeper than msgpack's own packer goes."""
    inner = b"\x93\x00\x00\x91\xc4\x09innermost"
    return b"\x93\x05\x00\x91" * levels + inner


def signed_from_call_bytes(who, call_bytes: bytes, nonce: int = 0, genesis_hash: bytes = GENESIS_HASH) -> bytes:
    """A correctly signed immortal extrinsic around raw call bytes, as an attacker would build it
    (msgpack's own packer refuses to go as deep). `nonce` must be below 128 (a positive fixint)."""
    assert 0 <= nonce < 128
    payload = (b"\x97" + call_bytes + b"\x92\x00\x00" + bytes([nonce]) + b"\x00"
               + bytes([VERSION.spec_version]) + bytes([VERSION.transaction_version])
               + b"\xc4\x20" + genesis_hash)
    sig = who.sign(signing_message(EXTRINSIC_DOMAIN, genesis_hash, payload))
    signature = b"\x95\xc4\x20" + who.public_key + b"\xc4\x40" + sig + b"\x92\x00\x00" + bytes([nonce]) + b"\x00"
    return b"\x93\x01" + signature + call_bytes


@pytest.fixture
def chain() -> ChainHarness:
    return ChainHarness.new()


def _verdict(rt: Runtime, data: bytes) -> str:
    try:
        d = rt.decode(data)
    except (BadFormat, InvalidTransaction) as e:
        return f"refused: {e.message}"
    return f"decoded, weight {d.weight}"


def _at_stack_depth(frames: int, fn):
    """Run `fn` with about `frames` extra Python frames below it."""
    if frames <= 0:
        return fn()
    return _at_stack_depth(frames - 1, fn)


@pytest.mark.parametrize("levels", [MAX_CALL_NESTING + 1, 40, 322, 1000, 5000])
def test_a_deeply_nested_sudo_is_refused_the_same_at_any_stack_depth(chain, levels):
    data = signed_from_call_bytes(BOB, nested_sudo_bytes(levels))
    room = sys.getrecursionlimit() - len(_stack()) - 50
    verdicts = {_at_stack_depth(frames, lambda: _verdict(chain.runtime, data))
                for frames in (0, room // 2, room)}
    assert len(verdicts) == 1, verdicts
    (verdict,) = verdicts
    assert verdict.startswith("refused"), verdict
    with pytest.raises((BadFormat, InvalidTransaction)):
        chain.validate(data)


def _stack() -> list:
    import inspect
    return inspect.stack(0)


def test_nesting_up_to_the_limit_dispatches_and_one_more_is_an_invalid_call(chain):
    # the deepest allowed nesting is weighed level by level and included; the inner sudo then
    # fails as root is not a signed origin (sudo needs the key's signature), as any nesting would
    ok = chain.xt(ALICE, "sudo", "sudo", nested_sudo(MAX_CALL_NESTING - 1))
    sudo_weight = 20_000
    remark = chain.runtime.by_name["system"].calls_by_name["remark"]
    assert chain.runtime.decode(ok).weight == (system.Config.base_extrinsic_weight
                                              + MAX_CALL_NESTING * sudo_weight + remark.weight_of((b"innermost",)))
    result = chain.block(ok)
    sudid = events_named(result, chain.runtime, "sudo", "Sudid")
    assert len(sudid) == 1 and sudid[0][0][2] == "this call must be signed by an account"
    assert len(events_named(result, chain.runtime, "system", "ExtrinsicSuccess")) == 2
    too_deep = chain.xt(ALICE, "sudo", "sudo", nested_sudo(MAX_CALL_NESTING))
    with pytest.raises(InvalidTransaction) as e:
        chain.validate(too_deep)
    assert e.value.kind is InvalidKind.CALL and "nested" in e.value.message
    before = chain.free(ALICE.public_key)
    with pytest.raises(Exception, match="nested"):
        chain.block(too_deep)
    assert chain.free(ALICE.public_key) == before     # refused outright: no fee, nothing changed


def test_the_codec_refuses_nesting_past_its_limit_before_decoding():
    from primitives.codec import CodecError, unpack
    assert unpack(b"\x91" * MAX_NESTING_DEPTH + b"\x00") is not None
    for depth in (MAX_NESTING_DEPTH + 1, 1000, 1100, 100_000):
        with pytest.raises(CodecError, match="nested deeper"):
            unpack(b"\x91" * depth + b"\x00")


# ------------------------------------------------------------------------------------------
# C: any exception inside a call fails that call, rolls back and pays the fee
# ------------------------------------------------------------------------------------------

faulty = Pallet("faulty", index=200, doc="A pallet whose calls fail in ways that are not DispatchErrors.")
touched = faulty.value("touched", U64, default=0)


@faulty.call(0, weight=10_000, origin=SIGNED)
def write_then_raise(origin: Origin, kind: U64) -> None:
    """Write to storage, then fail with an exception that is not a DispatchError."""
    touched.put(touched.get() + 1)
    balances.total_issuance.put(0)
    if kind == 0:
        raise KeyError("a lookup that a pallet did not expect to fail")
    if kind == 1:
        touched.put(2**64)          # does not fit u64: CodecError from the storage write
    if kind == 3:
        raise OSError("the node's storage failed under it")
    raise ZeroDivisionError("division by zero")


@pytest.fixture
def faulty_chain() -> ChainHarness:
    rt = Runtime([*ALL_PALLETS, faulty], system=system, timestamp=timestamp, authorship=authorship,
                 payment=transaction_payment, genesis_hash=GENESIS_HASH, version=VERSION)
    return ChainHarness.new(pallets_runtime=rt)


@pytest.mark.parametrize("kind", [0, 1, 2], ids=["KeyError", "CodecError-from-storage", "ZeroDivisionError"])
def test_a_call_failing_with_any_exception_rolls_back_and_pays_its_fee(faulty_chain, kind):
    chain = faulty_chain
    issuance = chain.total_issuance()
    result = chain.block(chain.xt(BOB, "faulty", "write_then_raise", kind))
    failed = events_named(result, chain.runtime, "system", "ExtrinsicFailed")
    assert len(failed) == 1 and failed[0][0] == [255, 0, INTERNAL_ERROR]
    assert chain.read(lambda: touched.get()) == 0                 # its writes rolled back
    assert chain.total_issuance() == issuance
    assert chain.nonce(BOB.public_key) == 1                       # nonce used
    assert chain.free(BOB.public_key) < FUNDS                     # fee paid
    # and the chain goes on: the next block builds
    chain.block(chain.xt(BOB, "system", "remark", b"still here"))


def test_a_fault_of_the_nodes_own_storage_is_no_verdict_on_the_call(faulty_chain):
    """An OSError (the node's storage failing under it) is this node's problem, which another node
    would not see: it must not become an ExtrinsicFailed that only this node records."""
    before = dict(faulty_chain.state)
    with pytest.raises(OSError):
        faulty_chain.block(faulty_chain.xt(BOB, "faulty", "write_then_raise", 3))
    assert dict(faulty_chain.state) == before


def test_root_setting_a_balance_past_u64_fails_the_call_not_the_block(chain):
    too_much = 2**64 - 1
    xt = chain.xt(ALICE, "sudo", "sudo", [3, 1, [BOB.public_key, too_much]])
    result = chain.block(xt)            # before the fix: CodecError out of block building
    sudid = events_named(result, chain.runtime, "sudo", "Sudid")
    assert sudid and sudid[0][0] is not None
    assert chain.free(BOB.public_key) == FUNDS
    chain.block(chain.xt(ALICE, "system", "remark", b"next"))


@faulty.call(1, weight=10_000, origin=NONE)
def unsigned_note(origin: Origin, value: U64) -> None:
    """An unsigned call whose validator (below) fails with an unexpected exception."""
    touched.put(value)


def _broken_validator(*_args, **_kwargs):
    raise IndexError("a validator bug")


faulty.unsigned_validator = _broken_validator


def test_an_unsigned_validator_that_raises_refuses_only_its_extrinsic(faulty_chain):
    chain = faulty_chain
    data = Extrinsic(Call(faulty.index, 1, (7,))).encode()
    with pytest.raises(InvalidTransaction) as e:
        chain.validate(data)
    assert e.value.kind is InvalidKind.CALL and "IndexError" in e.value.message
    with pytest.raises(Exception, match="IndexError"):     # a block carrying it is refused whole
        chain.block(data)
    chain.block(chain.xt(BOB, "system", "remark", b"the chain goes on"))
    assert chain.read(lambda: touched.get()) == 0
