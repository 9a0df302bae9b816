"""Scheduled runtime upgrades (pallets/upgrades.py) and runtime version 2's windowed standing orders.

Same cast and genesis as tests/test_market.py (the dev chain's, where Alice is sudo). A block runs
under the version its parent's state names, as the node's chain picks it (`run`)."""
from __future__ import annotations

import time

import pytest

from genesis.chain_spec import dev_spec, genesis_storage
from node.chain import Chain, ImportError_, UnknownRuntimeVersionError
from node.db import Database
from pallets import VERSIONS_ENV, UnknownRuntimeVersion, build_runtime, known_versions, market, upgrades
from pallets import sudo as sudo_pallet
from pallets.market import ASK, BID
from primitives.codec import CodecError
from primitives.extrinsic import Call, sign_extrinsic
from primitives.hashing import keccak256
from runtime.api import InvalidTransaction
from runtime.executive import BlockError, execute_block
from tests.runtime_harness import GENESIS_HASH, ChainHarness, MemState, events_named
from tests.rpc_fake import lt, node, server  # noqa: F401 - fixtures of the client test
from tests.test_market import ALICE, BOB, CHARLIE, METER, failure, ok

RUNTIMES = {v: build_runtime(GENESIS_HASH, v) for v in (1, 2)}
GENESIS = dev_spec()["genesis"]["runtimeGenesis"]["config"]
DAY = 86_400


def new_chain(genesis: dict = GENESIS) -> ChainHarness:
    rt = RUNTIMES[1]
    ch = ChainHarness(rt, MemState(rt.build_genesis_storage(genesis)))
    run(ch)
    return ch


def version_of_next(ch: ChainHarness) -> int:
    return ch.read(lambda: upgrades.version_for_block(ch.number + 1))


def run(ch: ChainHarness, *xts) -> object:
    """A block under the version its parent's state names; `xts` are functions of the chain that
    sign for it (so they sign the version the block runs)."""
    ch.runtime = RUNTIMES[version_of_next(ch)]
    return ch.block(*(x(ch) for x in xts))


def sudo(call_name: str, *args, pallet: str = "upgrades"):
    def make(ch: ChainHarness) -> bytes:
        p = ch.runtime.by_name[pallet]
        cd = p.calls_by_name[call_name]
        inner = [p.index, cd.index, [t.to_plain(a) for t, a in zip(cd.arg_types, args)]]
        return ch.xt(ALICE, "sudo", "sudo", inner)
    return make


def sudid_error(result) -> str | None:
    (sudid,) = events_named(result, RUNTIMES[1], "sudo", "Sudid")
    return None if sudid[0] is None else sudid[0][2]


def signed(who, pallet: str, call: str, *args):
    return lambda ch: ch.xt(who, pallet, call, *args)


def standing(who, side, price, wh, window=None):
    zone = 1
    if window is None:
        return signed(who, "market", "set_standing_order", side, zone, price, wh, METER[who], False)
    return signed(who, "market", "set_standing_order_window", side, zone, price, wh, METER[who], False, *window)


def state_of(ch):
    return ch.read(lambda: (upgrades.version_in_force.get(), upgrades.scheduled.get()))


# --- scheduling rules ------------------------------------------------------------------------
def test_schedule_records_the_upgrade_and_its_event():
    ch = new_chain()
    r = run(ch, sudo("schedule", 2, ch.number + 5))
    assert sudid_error(r) is None
    assert events_named(r, RUNTIMES[1], "upgrades", "UpgradeScheduled") == [[2, ch.number + 4]]
    assert state_of(ch) == (1, (2, ch.number + 4))


@pytest.mark.parametrize("ahead", [0, -1])
def test_a_height_not_in_the_future_is_refused(ahead):
    ch = new_chain()
    r = run(ch, sudo("schedule", 2, ch.number + 1 + ahead))     # the block being built is number + 1
    assert "future block" in sudid_error(r)
    assert state_of(ch) == (1, None)


def test_a_version_not_newer_is_refused():
    ch = new_chain()
    r = run(ch, sudo("schedule", 1, ch.number + 10))
    assert "newer than the runtime version in force" in sudid_error(r)
    assert state_of(ch) == (1, None)


def test_a_second_schedule_is_refused_until_the_first_is_cancelled():
    ch = new_chain()
    at = ch.number + 10
    run(ch, sudo("schedule", 2, at))
    r = run(ch, sudo("schedule", 3, at + 5))
    assert "already scheduled" in sudid_error(r)
    assert state_of(ch) == (1, (2, at))
    r = run(ch, sudo("cancel"))
    assert events_named(r, RUNTIMES[1], "upgrades", "UpgradeCancelled") == [[2, at]]
    assert state_of(ch) == (1, None)
    assert "no upgrade is scheduled" in sudid_error(run(ch, sudo("cancel")))
    assert sudid_error(run(ch, sudo("schedule", 3, at + 5))) is None


def test_schedule_and_cancel_need_the_root_origin():
    ch = new_chain()
    assert "root origin" in failure(run(ch, signed(BOB, "upgrades", "schedule", 2, ch.number + 10)))
    run(ch, sudo("schedule", 2, ch.number + 10))
    assert "root origin" in failure(run(ch, signed(BOB, "upgrades", "cancel")))
    assert state_of(ch)[1] is not None


# --- the switch ------------------------------------------------------------------------------
def test_the_block_at_the_height_runs_version_2_and_migrates_existing_standing_orders():
    ch = new_chain()
    ok(run(ch, standing(BOB, ASK, 50_000, 500), standing(CHARLIE, BID, 100_000, 400)))
    at = ch.number + 3
    run(ch, sudo("schedule", 2, at))
    run(ch)
    assert ch.number == at - 1 and version_of_next(ch) == 2
    assert ch.read(lambda: market.standing_windows.get(0)) is None
    r = run(ch)
    assert ch.runtime is RUNTIMES[2]
    upgraded = [e for e in r.events if e[1] == upgrades.pallet.index]
    assert [(e[0], e[3]) for e in upgraded] == [([0], [1, 2])]        # RuntimeUpgraded, at initialization
    assert state_of(ch) == (2, None)
    assert ch.read(lambda: [market.standing_windows.get(s) for s in (0, 1)]) == [(0, DAY), (0, DAY)]
    # the next block neither migrates again nor says so
    r = run(ch)
    assert [e for e in r.events if e[1] == upgrades.pallet.index] == []


def test_a_runtime_refuses_a_block_of_another_version():
    ch = new_chain()
    run(ch, sudo("schedule", 2, ch.number + 2))
    with pytest.raises(BlockError, match="runs under runtime spec_version 2, not 1"):
        RUNTIMES[1].begin_block(ch.state, ch.hashes[-1], ch.number + 1, ch.digest())
    with pytest.raises(BlockError, match="runs under runtime spec_version 1, not 2"):
        RUNTIMES[2].begin_block(ch.state, ch.hashes[-2], ch.number, ch.digest())


def test_metadata_and_version_differ_between_versions():
    v1, v2 = (RUNTIMES[v].metadata() for v in (1, 2))
    assert (v1["runtime"]["specVersion"], v2["runtime"]["specVersion"]) == (1, 2)

    def market_of(md):
        p = next(p for p in md["pallets"] if p["name"] == "market")
        return [c["name"] for c in p["calls"]], [s["name"] for s in p["storage"]]
    (calls1, items1), (calls2, items2) = market_of(v1), market_of(v2)
    assert "set_standing_order_window" not in calls1 and "standing_windows" not in items1
    assert set(calls2) - set(calls1) == {"set_standing_order_window"}
    assert set(items2) - set(items1) == {"standing_windows"}


def test_a_version_2_call_does_not_exist_under_version_1():
    ch = new_chain()
    cd = market.set_standing_order_window.call_def
    with pytest.raises(CodecError, match=f"no call {cd.index} in pallet {market.pallet.index}"):
        RUNTIMES[1].calls.lookup(Call(market.pallet.index, cd.index, ()))
    xt = ChainHarness(RUNTIMES[2], ch.state).xt(BOB, "market", "set_standing_order_window", ASK, 1, 50_000,
                                                500, METER[BOB], False, 0, DAY)
    with pytest.raises(InvalidTransaction, match="no call 5 in pallet 10"):
        ch.validate(xt)


def test_a_transaction_signed_for_version_1_is_refused_after_the_switch_with_the_reason():
    ch = new_chain()
    run(ch, sudo("schedule", 2, ch.number + 2))
    old = ch.xt(BOB, "system", "remark", b"signed for v1")       # ch.runtime is still version 1
    ch.runtime = RUNTIMES[2]                                        # the next block runs version 2
    with pytest.raises(InvalidTransaction, match="signed for runtime spec_version 1, but the chain runs "
                                                 "spec_version 2 now"):
        ch.validate(old)
    builder = RUNTIMES[2].begin_block(ch.state, ch.hashes[-1], ch.number + 1, ch.digest())
    with pytest.raises(BlockError, match="signed for runtime spec_version 1"):
        execute_block(builder, [ch.timestamp(), old])
    ok(run(ch, signed(BOB, "system", "remark", b"signed again for v2")))


# --- the node's chain: a release that lacks the version stops ---------------------------------
def test_a_chain_without_the_scheduled_version_refuses_the_block_with_one_line(tmp_path, monkeypatch):
    spec = dev_spec()
    new, old = (Chain(Database.open(tmp_path / n), lambda rt: genesis_storage(spec, rt)) for n in ("new", "old"))
    try:
        now_ms = int(time.time() * 1000)

        def author(*xts: bytes):
            nonlocal now_ms
            now_ms += 1000
            return new.build_block(ALICE, [(keccak256(x), x) for x in xts], finalize=True, now_ms=now_ms)

        def both(*xts: bytes):
            built = author(*xts)
            old.import_block(built.signed, finalize=True, check_drift=False)

        both()
        inner = [upgrades.pallet.index, upgrades.schedule.call_def.index, [2, 3]]
        xt = sign_extrinsic(ALICE, Call(sudo_pallet.pallet.index, sudo_pallet.sudo.call_def.index, (inner,)),
                            nonce=0, genesis_hash=new.genesis_hash, spec_version=1, transaction_version=1)
        both(xt.encode())                                     # block 2 schedules version 2 at block 3
        assert old.read(lambda: upgrades.scheduled.get()) == (2, 3)
        block3 = author()                                     # the new release runs it under version 2
        assert new.runtime_at(None).version.spec_version == 2
        monkeypatch.setenv(VERSIONS_ENV, "1")                 # "the old release"
        assert known_versions() == (1,)
        best = old.best_hash
        with pytest.raises(UnknownRuntimeVersionError) as caught:
            old.import_block(block3.signed, finalize=True, check_drift=False)
        assert isinstance(caught.value, ImportError_)
        assert str(caught.value) == ("runtime spec_version 2 is scheduled at block #3 and this node knows "
                                     "versions 1; install a gridchain release that knows spec_version 2")
        assert old.best_hash == best and old.best_number == 2
        with pytest.raises(UnknownRuntimeVersionError):
            old.propose_block(ALICE, [])
        with pytest.raises(UnknownRuntimeVersion):
            build_runtime(spec_version=2)
    finally:
        new.db.close()
        old.db.close()


def test_the_test_knob_must_keep_version_1(monkeypatch):
    monkeypatch.setenv(VERSIONS_ENV, "2")
    with pytest.raises(ValueError, match="must include spec_version 1"):
        known_versions()
    monkeypatch.setenv(VERSIONS_ENV, "one")
    with pytest.raises(ValueError, match="must list spec versions"):
        known_versions()


# --- version 2: standing orders with a time-of-day window ------------------------------------
def v2_chain() -> ChainHarness:
    """A chain that starts under version 2 (its genesis names it); first block at 22:13 UTC."""
    ch = new_chain(dict(GENESIS, upgrades={"spec_version": 2}))
    assert ch.runtime is RUNTIMES[2]
    return ch


def posted(result) -> list:
    return [e[0] for e in events_named(result, RUNTIMES[2], "market", "StandingOrderPosted")]


def block_at(ch: ChainHarness, ts_s: int):
    ch.now_ms = ts_s * 1000 - 1000
    return run(ch)


def target_of(ch: ChainHarness) -> int:
    return market.standing_target(ch.now_ms // 1000)


def test_in_window_follows_the_time_of_day_and_wraps_past_midnight():
    day0 = 1_700_006_400 - 1_700_006_400 % DAY
    at = lambda h, m=0: day0 + h * 3600 + m * 60        # noqa: E731
    night = (22 * 3600, 6 * 3600)
    assert [market.in_window(night, at(h)) for h in (21, 22, 23, 0, 5)] == [False, True, True, True, True]
    assert market.in_window(night, at(6)) is False and market.in_window(night, at(5, 45)) is True
    day = (6 * 3600, 22 * 3600)
    assert [market.in_window(day, at(h)) for h in (5, 6, 12, 21, 22)] == [False, True, True, True, False]
    assert market.in_window((0, DAY), at(0)) and market.in_window((0, DAY), at(23, 45))
    assert market.in_window(None, at(3))


def test_a_windowed_standing_order_posts_only_inside_its_window_across_midnight():
    ch = v2_chain()
    r = ok(run(ch, standing(BOB, ASK, 50_000, 500, window=(22 * 3600, 6 * 3600)),
               standing(CHARLIE, BID, 10_000, 400, window=(6 * 3600, 22 * 3600))))
    assert target_of(ch) % DAY == 22 * 3600 + 30 * 60          # 22:30: Bob's night window only
    assert posted(r) == [0]
    assert ch.read(lambda: market.standing_windows.get(0)) == (22 * 3600, 6 * 3600)
    base = ch.now_ms // 1000 - ch.now_ms // 1000 % DAY + DAY  # next midnight
    # target 05:45 (inside the night window), then 06:00 (the day window's start, the night's end)
    assert posted(block_at(ch, base + 5 * 3600 + 15 * 60)) == [0]
    assert target_of(ch) % DAY == 5 * 3600 + 45 * 60
    assert posted(block_at(ch, base + 5 * 3600 + 30 * 60)) == [1]
    assert target_of(ch) % DAY == 6 * 3600
    assert posted(block_at(ch, base + 21 * 3600 + 15 * 60)) == [1]      # target 21:45
    assert posted(block_at(ch, base + 21 * 3600 + 30 * 60)) == [0]      # target 22:00


@pytest.mark.parametrize("window, error", [((3600, 3600), "must differ"), ((DAY, 3600), "below 86400"),
                                           ((0, DAY + 1), "at most 86400")])
def test_a_bad_window_is_refused_and_changes_nothing(window, error):
    ch = v2_chain()
    r = run(ch, standing(BOB, ASK, 50_000, 500, window=window))
    assert error in failure(r)
    assert ch.read(lambda: (market.next_standing_id.get(), list(market.standing_windows.items()))) == (0, [])


def test_cancel_removes_the_window():
    ch = v2_chain()
    ok(run(ch, standing(BOB, ASK, 50_000, 500, window=(0, 3600))))
    ok(run(ch, signed(BOB, "market", "cancel_standing_order", 0)))
    assert ch.read(lambda: (market.standing_orders.get(0), market.standing_windows.get(0))) == (None, None)


# --- clients sign the version in force at each submission ------------------------------------
def test_the_client_reads_the_runtime_version_for_every_extrinsic(lt, server, node, monkeypatch):
    """A long-running client (a household's energy manager) keeps signing across an upgrade: the
    second extrinsic signs the spec_version the node reports then (before the fix the first answer
    was cached for the client's lifetime, and every later transaction was refused)."""
    from primitives.extrinsic import Extrinsic, verify_extrinsic_signature  # noqa: PLC0415
    from rpc.api import RuntimeVersionInfo  # noqa: PLC0415
    from rpc.client import AsyncClient  # noqa: PLC0415

    async def go() -> list[Extrinsic]:
        out = []
        async with AsyncClient(f"http://127.0.0.1:{server.port}/") as c:
            for version in (100, 101):
                monkeypatch.setattr(type(node), "runtime_version",
                                    lambda self, at, v=version: RuntimeVersionInfo("gridchain", "gridchain-node",
                                                                                   v, 1, 2, 1))
                raw = await c.build_extrinsic(ALICE, "system", "remark", [b"x"], mortal_period=None)
                out.append(Extrinsic.decode(raw))
        return out
    first, second = lt.run(go())
    assert verify_extrinsic_signature(first, node.genesis, 100, 2, node.genesis)
    assert verify_extrinsic_signature(second, node.genesis, 101, 2, node.genesis)
