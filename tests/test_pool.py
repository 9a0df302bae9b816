"""The transaction pool against a fake runtime: accounts with nonces, a tip as the priority.

A fake transaction is `account|nonce|tip|padding`. The fake `validate` answers as the runtime does for
a signed extrinsic: stale below the chain nonce, requires (account, nonce - 1) above it, provides
(account, nonce), priority = tip.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.pool import (
    AlreadyImported,
    ImmediatelyDropped,
    PoolError,
    TemporarilyBanned,
    TooLowPriority,
    TransactionPool,
    TxStatus,
)
from primitives.errors import ChainError
from primitives.hashing import keccak256
from runtime.api import (
    InvalidKind,
    InvalidTransaction,
    TransactionSource,
    UnknownKind,
    UnknownTransaction,
    ValidTransaction,
    nonce_tag,
)

ALICE, BOB, CAROL = b"alice", b"bob", b"carol"
BLOCK_1, BLOCK_2 = b"\x01" * 32, b"\x02" * 32


def tx(account: bytes, nonce: int, tip: int = 0, pad: int = 0) -> bytes:
    return b"%s|%d|%d|" % (account, nonce, tip) + b"x" * pad


def parse(data: bytes) -> tuple[bytes, int, int]:
    account, nonce, tip, _ = data.split(b"|", 3)
    return account, int(nonce), int(tip)


@dataclass
class FakeRuntime:
    """Chain nonces per account, plus accounts that cannot pay and accounts the runtime cannot judge."""

    nonces: dict[bytes, int] = field(default_factory=dict)
    broke: set[bytes] = field(default_factory=set)
    unknown: set[bytes] = field(default_factory=set)
    early: set[bytes] = field(default_factory=set)   # not valid yet (a reading before its interval ends)
    calls: list[int] = field(default_factory=list)  # batch size of each validate call

    def validate(self, datas, source):
        self.calls.append(len(datas))
        out = []
        for data in datas:
            account, nonce, tip = parse(data)
            chain = self.nonces.get(account, 0)
            if account in self.unknown:
                out.append(UnknownTransaction(UnknownKind.CANNOT_LOOKUP, "the account cannot be looked up"))
            elif account in self.broke:
                out.append(InvalidTransaction(InvalidKind.PAYMENT, "the signer cannot pay the fee"))
            elif account in self.early:
                out.append(InvalidTransaction(InvalidKind.FUTURE, "the reading's interval has not ended yet"))
            elif nonce < chain:
                out.append(InvalidTransaction(InvalidKind.STALE, "the nonce is already used"))
            else:
                requires = () if nonce == chain else (nonce_tag(account, nonce - 1),)
                out.append(ValidTransaction(priority=tip, requires=requires, provides=(nonce_tag(account, nonce),)))
        return out

    def include(self, pool: TransactionPool, datas, block_hash: bytes = BLOCK_1) -> None:
        """Apply a block containing `datas` (in order) and tell the pool."""
        for data in datas:
            account, nonce, _ = parse(data)
            assert nonce == self.nonces.get(account, 0), "the block applies nonces in order"
            self.nonces[account] = nonce + 1
        pool.block_imported(block_hash, [keccak256(d) for d in datas])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def runtime() -> FakeRuntime:
    return FakeRuntime()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def events() -> list:
    return []


@pytest.fixture
def pool(runtime, clock, events) -> TransactionPool:
    p = TransactionPool(runtime.validate, clock=clock, ban_seconds=60)
    p.add_listener(lambda h, status, extra: events.append((h, status, extra)))
    return p


def h(data: bytes) -> bytes:
    return keccak256(data)


def order(pool: TransactionPool) -> list[tuple[bytes, int, int]]:
    return [parse(t.data) for t in pool.ready()]


def statuses_of(events, data: bytes) -> list:
    return [(status, extra) for tx_hash, status, extra in events if tx_hash == h(data)]


def check_invariants(pool: TransactionPool) -> None:
    """Recompute what the pool keeps incrementally and compare."""
    txs = {t.hash: t for t in pool._txs.values()}
    provided = {}
    for t in txs.values():
        for tag in t.valid.provides:
            assert tag not in provided, "two pool transactions provide the same tag"
            provided[tag] = t.hash
    ready: set[bytes] = set()
    ready_tags: set[bytes] = set()
    changed = True
    while changed:
        changed = False
        for t in txs.values():
            if t.hash not in ready and all(tag in ready_tags for tag in t.valid.requires):
                ready.add(t.hash)
                ready_tags.update(t.valid.provides)
                changed = True
    assert {t.hash for t in txs.values() if t.ready} == ready
    assert pool.status() == {
        "ready": len(ready),
        "future": len(txs) - len(ready),
        "bytes": sum(len(t.data) for t in txs.values()),
    }
    yielded = [t.hash for t in pool.ready()]
    assert sorted(yielded) == sorted(ready), "ready() yields every ready transaction once"
    seen_tags: set[bytes] = set()
    for tx_hash in yielded:
        t = txs[tx_hash]
        assert all(tag in seen_tags for tag in t.valid.requires), "yielded before what it requires"
        assert not any(tag in seen_tags for tag in t.valid.provides), "two yielded txs provide one tag"
        seen_tags.update(t.valid.provides)
    for t in txs.values():
        if t.ready:
            leaf = not any(
                txs[w].ready for tag in t.provides for w in pool._waiting.get(tag, ()) if w in txs
            )
            assert (t.dependents == 0) == leaf
        else:
            assert t.missing == sum(1 for tag in t.requires if tag not in ready_tags)


# --- ordering ----------------------------------------------------------------------------------------


def test_ready_yields_best_first_but_never_before_a_predecessor(pool):
    pool.submit(tx(ALICE, 0, tip=10))
    pool.submit(tx(BOB, 0, tip=5))
    pool.submit(tx(ALICE, 1, tip=100))
    pool.submit(tx(CAROL, 0, tip=1))
    pool.submit(tx(CAROL, 1, tip=1000))
    assert order(pool) == [
        (ALICE, 0, 10), (ALICE, 1, 100), (BOB, 0, 5), (CAROL, 0, 1), (CAROL, 1, 1000)
    ]
    check_invariants(pool)


def test_equal_priority_goes_to_the_older_transaction(pool):
    for account in (CAROL, ALICE, BOB):
        pool.submit(tx(account, 0, tip=7))
    assert [a for a, _, _ in order(pool)] == [CAROL, ALICE, BOB]


def test_a_builder_may_stop_iterating_early(pool):
    for i in range(5):
        pool.submit(tx(ALICE, i, tip=1))
    it = pool.ready()
    assert parse(next(it).data) == (ALICE, 0, 1)
    assert parse(next(it).data) == (ALICE, 1, 1)
    assert len(pool) == 5


def test_future_becomes_ready_when_its_predecessor_arrives(pool, events):
    pool.submit(tx(ALICE, 2, tip=3))
    pool.submit(tx(ALICE, 1, tip=2))
    assert pool.status() == {"ready": 0, "future": 2, "bytes": len(tx(ALICE, 2, 3)) + len(tx(ALICE, 1, 2))}
    assert order(pool) == []
    pool.submit(tx(ALICE, 0, tip=1))
    assert pool.status()["ready"] == 3
    assert order(pool) == [(ALICE, 0, 1), (ALICE, 1, 2), (ALICE, 2, 3)]
    assert statuses_of(events, tx(ALICE, 2, 3)) == [(TxStatus.FUTURE, None), (TxStatus.READY, None)]
    assert pool.tx_status(h(tx(ALICE, 2, 3))) is TxStatus.READY
    check_invariants(pool)


# --- replacement -------------------------------------------------------------------------------------


def test_a_higher_tip_replaces_and_the_old_one_is_usurped(pool, events):
    old = pool.submit(tx(ALICE, 0, tip=5))
    dependent = pool.submit(tx(ALICE, 1, tip=5))
    new = pool.submit(tx(ALICE, 0, tip=6))
    assert pool.get(old) is None and pool.get(new) is not None
    assert (old, TxStatus.USURPED, new) in events
    # the dependent stayed ready throughout: no status churn reported for it
    assert statuses_of(events, tx(ALICE, 1, 5)) == [(TxStatus.READY, None)]
    assert [t.hash for t in pool.ready()] == [new, dependent]
    check_invariants(pool)


@pytest.mark.parametrize("tip", [5, 4])
def test_replacement_needs_a_strictly_higher_tip(pool, tip):
    pool.submit(tx(ALICE, 0, tip=5))
    with pytest.raises(TooLowPriority) as info:
        pool.submit(tx(ALICE, 0, tip=tip, pad=1))
    assert info.value.rpc_code == 1014
    assert "higher tip" in info.value.message
    assert len(pool) == 1


def test_a_future_transaction_is_replaced_too(pool, events):
    old = pool.submit(tx(ALICE, 3, tip=1))
    new = pool.submit(tx(ALICE, 3, tip=2))
    assert (old, TxStatus.USURPED, new) in events
    assert pool.status()["future"] == 1


# --- limits ------------------------------------------------------------------------------------------


def test_over_the_count_limit_futures_go_first_then_ready_leaves(runtime, clock, events):
    pool = TransactionPool(runtime.validate, max_count=4, clock=clock)
    pool.add_listener(lambda *e: events.append(e))
    pool.submit(tx(ALICE, 0, tip=1))   # ready, but ALICE 1 depends on it
    pool.submit(tx(ALICE, 1, tip=9))   # ready leaf
    pool.submit(tx(BOB, 0, tip=3))     # ready leaf
    pool.submit(tx(CAROL, 5, tip=50))  # future, high tip
    pool.submit(tx(CAROL, 0, tip=20))  # over the limit: the future goes, whatever its tip
    assert (h(tx(CAROL, 5, 50)), TxStatus.DROPPED, "pool is full") in events
    pool.submit(tx(b"dave", 0, tip=5))  # over again: ALICE 0 is cheapest but ALICE 1 depends on it
    dropped = [e[0] for e in events if e[1] is TxStatus.DROPPED]
    assert dropped == [h(tx(CAROL, 5, 50)), h(tx(BOB, 0, 3))]
    with pytest.raises(ImmediatelyDropped):
        pool.submit(tx(b"eve", 0, tip=2))  # it would be the lowest ready leaf itself
    assert sorted(a for a, _, _ in order(pool)) == [ALICE, ALICE, CAROL, b"dave"]
    check_invariants(pool)


def test_incoming_transaction_that_would_be_evicted_is_immediately_dropped(runtime, clock, events):
    pool = TransactionPool(runtime.validate, max_count=2, clock=clock)
    pool.add_listener(lambda *e: events.append(e))
    pool.submit(tx(ALICE, 0, tip=5))
    pool.submit(tx(BOB, 0, tip=5))
    with pytest.raises(ImmediatelyDropped) as info:
        pool.submit(tx(CAROL, 0, tip=5))  # equal priority: the newest goes
    assert info.value.rpc_code == 1016
    assert "pool is full" in info.value.message
    assert h(tx(CAROL, 0, 5)) not in pool and len(pool) == 2
    assert all(e[0] != h(tx(CAROL, 0, 5)) for e in events), "a refused transaction reports nothing"
    # a better one evicts the lowest ready leaf, newest first among equals
    pool.submit(tx(CAROL, 0, tip=6))
    assert [e[:2] for e in events if e[1] is TxStatus.DROPPED] == [(h(tx(BOB, 0, 5)), TxStatus.DROPPED)]
    # not banned: the dropped one may come back once there is room
    pool.block_imported(BLOCK_1, [])
    check_invariants(pool)


def test_evicting_a_ready_leaf_frees_its_predecessor_for_eviction(runtime, clock):
    pool = TransactionPool(runtime.validate, max_count=3, clock=clock)
    pool.submit(tx(ALICE, 0, tip=1))
    pool.submit(tx(ALICE, 1, tip=2))
    pool.submit(tx(ALICE, 2, tip=3))
    pool.submit(tx(BOB, 0, tip=10))  # only ALICE 2 is a leaf: it goes, though ALICE 0 is cheaper
    assert [parse(t.data) for t in pool.ready()] == [(BOB, 0, 10), (ALICE, 0, 1), (ALICE, 1, 2)]
    pool.submit(tx(CAROL, 0, tip=10))  # now ALICE 1 is the leaf
    assert sorted(a for a, _, _ in order(pool)) == [ALICE, BOB, CAROL]
    check_invariants(pool)


def test_the_byte_limit_evicts_too(runtime, clock):
    pool = TransactionPool(runtime.validate, max_bytes=300, clock=clock)
    pool.submit(tx(ALICE, 0, tip=1, pad=100))
    pool.submit(tx(BOB, 0, tip=2, pad=100))
    pool.submit(tx(CAROL, 0, tip=3, pad=100))  # ~330 bytes: ALICE (lowest) goes
    assert [a for a, _, _ in order(pool)] == [CAROL, BOB]
    assert pool.status()["bytes"] <= 300
    with pytest.raises(ImmediatelyDropped):
        pool.submit(tx(b"dave", 0, tip=100, pad=400))  # larger than the whole pool
    assert len(pool) == 2
    check_invariants(pool)


# --- bans and duplicates -----------------------------------------------------------------------------


def test_an_invalid_transaction_is_banned_for_a_while(pool, runtime, clock):
    runtime.broke.add(ALICE)
    with pytest.raises(InvalidTransaction):
        pool.submit(tx(ALICE, 0))
    runtime.broke.clear()
    with pytest.raises(TemporarilyBanned) as info:
        pool.submit(tx(ALICE, 0))
    assert info.value.rpc_code == 1012
    assert runtime.calls == [1], "a banned transaction is not validated again"
    clock.now += 61
    assert pool.submit(tx(ALICE, 0)) == h(tx(ALICE, 0))


def test_a_transaction_not_valid_yet_is_not_banned(pool, runtime):
    """A meter's reading sent a little early (1010 Future) must be taken once its interval ends."""
    runtime.early.add(ALICE)
    with pytest.raises(InvalidTransaction) as info:
        pool.submit(tx(ALICE, 0))
    assert info.value.kind is InvalidKind.FUTURE
    runtime.early.clear()
    assert pool.submit(tx(ALICE, 0)) == h(tx(ALICE, 0))


def test_an_unknown_validity_is_not_banned(pool, runtime):
    runtime.unknown.add(ALICE)
    with pytest.raises(UnknownTransaction):
        pool.submit(tx(ALICE, 0))
    runtime.unknown.clear()
    pool.submit(tx(ALICE, 0))


def test_a_duplicate_is_already_imported(pool):
    pool.submit(tx(ALICE, 0))
    with pytest.raises(AlreadyImported) as info:
        pool.submit(tx(ALICE, 0))
    assert info.value.rpc_code == 1013
    assert isinstance(info.value, PoolError) and isinstance(info.value, ChainError)


def test_a_just_included_transaction_is_already_imported(pool, runtime, clock):
    pool.submit(tx(ALICE, 0))
    runtime.include(pool, [tx(ALICE, 0)])
    with pytest.raises(AlreadyImported):
        pool.submit(tx(ALICE, 0))
    clock.now += 61
    with pytest.raises(InvalidTransaction):  # forgotten by the pool; the runtime says stale
        pool.submit(tx(ALICE, 0))


def test_submit_batch_validates_once_and_reports_each_result(pool, runtime):
    pool.submit(tx(CAROL, 0))
    runtime.calls.clear()
    runtime.nonces[BOB] = 3
    results = pool.submit_batch([tx(ALICE, 0), tx(ALICE, 1), tx(ALICE, 0), tx(BOB, 1), tx(CAROL, 0), tx(BOB, 3)])
    assert runtime.calls == [4]
    assert results[0] == h(tx(ALICE, 0)) and results[1] == h(tx(ALICE, 1)) and results[5] == h(tx(BOB, 3))
    assert isinstance(results[2], AlreadyImported)  # twice in the batch
    assert isinstance(results[3], InvalidTransaction)
    assert isinstance(results[4], AlreadyImported)  # already in the pool
    assert pool.is_banned(h(tx(BOB, 1)))


def test_remove_invalid_bans_reports_and_demotes_dependents(pool, events):
    pool.submit(tx(ALICE, 0))
    pool.submit(tx(ALICE, 1))
    pool.remove_invalid([h(tx(ALICE, 0))], "ExhaustsResources: too heavy")
    assert (h(tx(ALICE, 0)), TxStatus.INVALID, "ExhaustsResources: too heavy") in events
    assert pool.status()["future"] == 1
    assert statuses_of(events, tx(ALICE, 1)) == [(TxStatus.READY, None), (TxStatus.FUTURE, None)]
    with pytest.raises(TemporarilyBanned):
        pool.submit(tx(ALICE, 0))
    check_invariants(pool)


# --- blocks ------------------------------------------------------------------------------------------


def test_revalidation_after_a_block_drops_stale_and_promotes_futures(pool, runtime, events):
    pool.submit(tx(ALICE, 0))
    pool.submit(tx(ALICE, 2))          # future: waits for ALICE 1
    pool.submit(tx(BOB, 0, tip=1))     # will go stale: another BOB 0 is in the block
    pool.submit(tx(CAROL, 0))
    pool.submit(tx(CAROL, 1))
    runtime.calls.clear()
    runtime.include(pool, [tx(ALICE, 0), tx(ALICE, 1), tx(BOB, 0, tip=99)])
    assert runtime.calls == [4], "one validate call for everything left"
    assert order(pool) == [(ALICE, 2, 0), (CAROL, 0, 0), (CAROL, 1, 0)]
    assert statuses_of(events, tx(ALICE, 2)) == [(TxStatus.FUTURE, None), (TxStatus.READY, None)]
    assert statuses_of(events, tx(BOB, 0, 1))[-1] == (TxStatus.INVALID, "Stale: the nonce is already used")
    assert pool.is_banned(h(tx(BOB, 0, 1)))
    assert (h(tx(ALICE, 0)), TxStatus.IN_BLOCK, BLOCK_1) in events
    check_invariants(pool)


def test_revalidation_may_send_a_ready_transaction_back_to_future(pool, runtime, events):
    pool.submit(tx(CAROL, 0))
    pool.submit(tx(CAROL, 1))
    runtime.broke.add(b"nobody")
    runtime.nonces[CAROL] = 0
    # CAROL 0 becomes invalid (cannot pay) while CAROL 1 is judged on nonce alone
    original = runtime.validate

    def validate(datas, source):
        out = original(datas, source)
        return [
            InvalidTransaction(InvalidKind.PAYMENT, "cannot pay") if parse(d)[:2] == (CAROL, 0) else v
            for d, v in zip(datas, out)
        ]

    pool._validate = validate
    pool.block_imported(BLOCK_1, [])
    assert pool.status() == {"ready": 0, "future": 1, "bytes": len(tx(CAROL, 1))}
    assert statuses_of(events, tx(CAROL, 1))[-1] == (TxStatus.FUTURE, None)
    assert statuses_of(events, tx(CAROL, 0))[-1] == (TxStatus.INVALID, "Payment: cannot pay")
    check_invariants(pool)


def test_listener_sees_ready_in_block_finalized(pool, runtime, events):
    data = tx(ALICE, 0)
    pool.submit(data)
    runtime.include(pool, [data], BLOCK_1)
    pool.block_finalized(BLOCK_1, [h(data)])
    assert statuses_of(events, data) == [
        (TxStatus.READY, None),
        (TxStatus.IN_BLOCK, BLOCK_1),
        (TxStatus.FINALIZED, BLOCK_1),
    ]
    assert len(pool) == 0


def test_a_failing_listener_does_not_break_the_pool(pool, events):
    def bad(*_):
        raise RuntimeError("boom")

    pool.add_listener(bad)
    pool.submit(tx(ALICE, 0))
    assert events == [(h(tx(ALICE, 0)), TxStatus.READY, None)]


def test_next_nonce_counts_consecutive_pool_nonces_only(pool, runtime):
    runtime.nonces[ALICE] = 3
    assert pool.next_nonce(ALICE, 3) == 3
    pool.submit(tx(ALICE, 3))
    pool.submit(tx(ALICE, 4))
    pool.submit(tx(ALICE, 6))  # a gap at 5
    assert pool.next_nonce(ALICE, 3) == 5
    assert pool.next_nonce(BOB, 0) == 0
    pool.submit(tx(ALICE, 5))
    assert pool.next_nonce(ALICE, 3) == 7


def test_pending_lists_ready_and_future(pool):
    pool.submit(tx(ALICE, 0))
    pool.submit(tx(BOB, 4))
    assert pool.pending() == [tx(ALICE, 0), tx(BOB, 4)]
    assert pool.get(h(tx(BOB, 4))).source is TransactionSource.EXTERNAL


# --- properties --------------------------------------------------------------------------------------

ACCOUNTS = [ALICE, BOB, CAROL]
op = st.one_of(
    st.tuples(st.just("submit"), st.sampled_from(ACCOUNTS), st.integers(0, 5), st.integers(0, 3)),
    st.tuples(st.just("block"), st.integers(0, 4)),
    st.tuples(st.just("invalid"), st.integers(0, 10)),
    st.tuples(st.just("broke"), st.sampled_from(ACCOUNTS)),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(op, max_size=40), st.integers(3, 12))
def test_ready_never_yields_a_tx_before_its_requirement_or_two_txs_for_one_tag(ops, max_count):
    runtime = FakeRuntime()
    pool = TransactionPool(runtime.validate, max_count=max_count, clock=Clock())
    for operation in ops:
        if operation[0] == "submit":
            _, account, nonce, tip = operation
            try:
                pool.submit(tx(account, nonce, tip))
            except ChainError:
                pass
        elif operation[0] == "block":  # the builder takes the first k ready transactions
            block = []
            for t in pool.ready():
                if len(block) == operation[1]:
                    break
                block.append(t.data)
            runtime.include(pool, block)
        elif operation[0] == "broke":  # the account can no longer pay, or can again
            runtime.broke ^= {operation[1]}
        else:
            pending = list(pool._txs)
            if pending:
                pool.remove_invalid([pending[operation[1] % len(pending)]], "bad")
        assert len(pool) <= max_count
        check_invariants(pool)
