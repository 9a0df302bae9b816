"""The transaction pool: transactions waiting for a block, modelled on Substrate's.

The runtime tags every valid transaction with what it `provides` and what it `requires` (for a signed
extrinsic: provides (signer, nonce), requires (signer, nonce - 1) while the nonce is ahead of the chain).
The pool keeps two sets:

- ready: every tag the transaction requires is provided by another ready transaction (or by the chain,
  in which case the runtime returned no requirement). A block can include it, after its providers.
- future: something it requires is missing; it waits, and becomes ready when the provider arrives.

Rules (Substrate's, as the RPC 1000-range error codes describe them):
- one transaction per provided tag: a newcomer providing a tag already provided in the pool replaces
  the holder only with a strictly higher priority (the holder is reported usurped), otherwise it is
  refused with `TooLowPriority`;
- a transaction found invalid is banned for `ban_seconds` (`TemporarilyBanned`), except one refused as
  `Future` (not valid yet: a meter's reading sent a little before its interval ends must be taken
  when it is sent again); one already in the pool
  or recently included in a block is `AlreadyImported`;
- over the count or byte limit, the lowest-priority future transactions go first, then the
  lowest-priority ready transactions nothing depends on (newest first among equals); a newcomer that
  would be the one to go is refused with `ImmediatelyDropped` (so is one larger than `max_bytes`, before
  validation);
- after every imported block the rest of the pool is revalidated against the new best state. That means
  every pending transaction goes through `validate` each block: the node's `validate` should remember
  signature verdicts by transaction hash (a signature never changes validity), so revalidation costs
  only the runtime's state checks.

Bookkeeping costs O(tags) dictionary operations per transaction plus O(log n) heap pushes: the heaps
are lazy (a stale entry is skipped when popped and the heap is compacted when garbage dominates).
Listeners hear about every status change once per pool operation, after the pool is consistent again:
a transaction that moves ready -> future -> ready inside one operation (say, while its predecessor is
replaced) is not reported at all.
"""
from __future__ import annotations

import enum
import heapq
import itertools
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

from primitives.errors import ChainError
from primitives.hashing import keccak256
from runtime.api import (
    InvalidKind,
    InvalidTransaction,
    TransactionSource,
    TransactionValidityError,
    ValidTransaction,
    nonce_tag,
)

log = logging.getLogger(__name__)



def _bannable(verdict: object) -> bool:
    """An invalid transaction is banned for a while, unless it is only not valid *yet* (Future)."""
    return isinstance(verdict, InvalidTransaction) and verdict.kind is not InvalidKind.FUTURE

class TxStatus(str, enum.Enum):
    """A transaction's status as `author_submitAndWatchExtrinsic` reports it."""

    FUTURE = "future"
    READY = "ready"
    IN_BLOCK = "inBlock"
    FINALIZED = "finalized"
    DROPPED = "dropped"
    INVALID = "invalid"
    USURPED = "usurped"


# --- errors ---------------------------------------------------------------------------------------------


class PoolError(ChainError):
    """The pool refused a transaction that may well be valid."""


class AlreadyImported(PoolError):
    rpc_code = 1013

    def __init__(self, message: str = "The transaction is already in the pool or was just included in a block.") -> None:
        super().__init__(message)


class TemporarilyBanned(PoolError):
    rpc_code = 1012

    def __init__(self, message: str = "The transaction is temporarily banned because it was found invalid.") -> None:
        super().__init__(message)


class TooLowPriority(PoolError):
    rpc_code = 1014

    def __init__(self, old: int, new: int) -> None:
        super().__init__(
            f"A transaction with the same nonce is already in the pool with priority {old}; "
            f"replacement needs a higher tip (this one has priority {new})."
        )
        self.old_priority = old
        self.new_priority = new


class ImmediatelyDropped(PoolError):
    rpc_code = 1016

    def __init__(self, message: str = "The pool is full and this transaction has the lowest priority in it.") -> None:
        super().__init__(message)


# --- types ----------------------------------------------------------------------------------------------

Validate = Callable[[Sequence[bytes], TransactionSource], "list[ValidTransaction | TransactionValidityError]"]
Listener = Callable[[bytes, TxStatus, object], None]

POOL_FULL = "pool is full"

_FUTURE_CLASS = 0  # eviction classes: futures go before ready leaves
_READY_CLASS = 1


@dataclass(eq=False, slots=True)
class PoolTransaction:
    """One transaction in the pool. `ready` is maintained by the pool; treat the object as read-only."""

    hash: bytes
    data: bytes
    valid: ValidTransaction
    source: TransactionSource
    seq: int  # insertion order: ties in priority go to the older transaction
    ready: bool = False
    # bookkeeping below: deduplicated tags, the count of required tags no ready transaction provides
    # (future only), the count of ready transactions requiring one of ours, and our live heap entries.
    requires: tuple[bytes, ...] = field(default=(), repr=False)
    provides: tuple[bytes, ...] = field(default=(), repr=False)
    missing: int = field(default=0, repr=False)
    dependents: int = field(default=0, repr=False)
    root_entry: tuple | None = field(default=None, repr=False)
    evict_entry: tuple | None = field(default=None, repr=False)

    @property
    def priority(self) -> int:
        return self.valid.priority


def _unique(tags: tuple[bytes, ...]) -> tuple[bytes, ...]:
    return tags if len(tags) < 2 else tuple(dict.fromkeys(tags))


class _ExpiringSet:
    """Hashes remembered for a while (bans, recent inclusions), at most `capacity` of them.

    Expiry times are appended in clock order, so purging is amortised O(1) from the left of a deque.
    """

    def __init__(self, seconds: float, capacity: int) -> None:
        self.seconds = seconds
        self.capacity = capacity
        self._until: dict[bytes, float] = {}
        self._order: deque[tuple[float, bytes]] = deque()

    def add(self, key: bytes, now: float) -> None:
        until = now + self.seconds
        self._until[key] = until
        self._order.append((until, key))
        while len(self._until) > self.capacity:  # over capacity: forget the oldest first
            expiry, old = self._order.popleft()
            if self._until.get(old) == expiry:
                del self._until[old]
        if len(self._order) > 2 * len(self._until) + 64:  # the same keys added again and again
            self._order = deque((u, k) for u, k in self._order if self._until.get(k) == u)

    def purge(self, now: float) -> None:
        order, until = self._order, self._until
        while order and order[0][0] <= now:
            expiry, key = order.popleft()
            if until.get(key) == expiry:
                del until[key]

    def __contains__(self, key: bytes) -> bool:
        return key in self._until

    def __len__(self) -> int:
        return len(self._until)


class TransactionPool:
    """Ready and future transactions with provides/requires tags, limits, bans and revalidation.

    Owned by the node's event loop: not thread-safe.
    """

    def __init__(
        self,
        validate: Validate,
        *,
        max_count: int = 8192,
        max_bytes: int = 20 * 2**20,
        ban_seconds: float = 1800,
        clock: Callable[[], float] = time.monotonic,
        hasher: Callable[[bytes], bytes] = keccak256,
        max_remembered: int = 65536,
    ) -> None:
        self._validate = validate
        self.max_count = max_count
        self.max_bytes = max_bytes
        self._clock = clock
        self._hasher = hasher
        self._banned = _ExpiringSet(ban_seconds, max_remembered)
        self._included = _ExpiringSet(ban_seconds, max_remembered)
        self._listeners: list[Listener] = []
        self._seq = itertools.count()
        self._reset()
        # per operation: status before the operation for transactions whose ready flag changed
        # (None for a newcomer), and the terminal events, in order
        self._touched: dict[bytes, bool | None] = {}
        self._events: list[tuple[bytes, TxStatus, object]] = []

    def _reset(self) -> None:
        self._txs: dict[bytes, PoolTransaction] = {}  # insertion (= seq) order
        self._provider: dict[bytes, bytes] = {}  # tag -> hash of the pool transaction providing it
        self._ready_tags: dict[bytes, bytes] = {}  # tag -> hash, for ready providers only
        self._waiting: dict[bytes, set[bytes]] = {}  # tag -> hashes of pool transactions requiring it
        self._roots: list[tuple] = []  # max-heap of ready txs that require nothing: (-priority, seq, hash)
        self._evict: list[tuple] = []  # min-heap of eviction candidates: (class, priority, -seq, hash)
        self._ready_count = 0
        self._bytes = 0

    # --- listeners and events --------------------------------------------------------------------------

    def add_listener(self, fn: Listener) -> None:
        """`fn(tx_hash, status, extra)` on every status change: extra is the block hash for IN_BLOCK and
        FINALIZED, the reason for DROPPED and INVALID, the replacing hash for USURPED, else None."""
        self._listeners.append(fn)

    def _flush(self) -> None:
        touched, self._touched = self._touched, {}
        events, self._events = self._events, []
        self._compact()
        if not self._listeners:
            return
        out: list[tuple[bytes, TxStatus, object]] = []
        txs = self._txs
        for h, before in touched.items():
            tx = txs.get(h)
            if tx is not None and tx.ready is not before:
                out.append((h, TxStatus.READY if tx.ready else TxStatus.FUTURE, None))
        out.extend(events)
        for h, status, extra in out:
            for fn in self._listeners:
                try:
                    fn(h, status, extra)
                except Exception:
                    log.exception("transaction pool listener failed on %s %s", h.hex(), status.value)

    # --- queries ---------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._txs)

    def __contains__(self, tx_hash: bytes) -> bool:
        return tx_hash in self._txs

    def get(self, tx_hash: bytes) -> PoolTransaction | None:
        return self._txs.get(tx_hash)

    def tx_status(self, tx_hash: bytes) -> TxStatus | None:
        """READY or FUTURE for a transaction in the pool, else None (for an RPC watcher that subscribes
        after `submit` returned)."""
        tx = self._txs.get(tx_hash)
        if tx is None:
            return None
        return TxStatus.READY if tx.ready else TxStatus.FUTURE

    def status(self) -> dict:
        return {"ready": self._ready_count, "future": len(self._txs) - self._ready_count, "bytes": self._bytes}

    def pending(self) -> list[bytes]:
        """Every transaction's bytes, ready and future, oldest first."""
        return [tx.data for tx in self._txs.values()]

    def next_nonce(self, account: bytes, chain_nonce: int) -> int:
        """The nonce the account's next transaction should carry: the chain's, advanced past every
        consecutive nonce already in the pool (backs `system_accountNextIndex`)."""
        nonce = chain_nonce
        provider = self._provider
        while nonce_tag(account, nonce) in provider:
            nonce += 1
        return nonce

    def is_banned(self, tx_hash: bytes) -> bool:
        self._banned.purge(self._clock())
        return tx_hash in self._banned

    def ready(self) -> Iterator[PoolTransaction]:
        """Ready transactions for a block, best first (priority descending, then oldest), but never
        before the transactions providing the tags it requires (Substrate's BestIterator).

        The iterator works on the live pool: a transaction removed meanwhile is skipped. A builder that
        cannot include a transaction (block full) simply stops iterating.
        """
        txs, waiting = self._txs, self._waiting
        heap = list(self._roots)  # already a heap; stale entries are skipped below
        done_tags: set[bytes] = set()
        yielded: set[bytes] = set()
        while heap:
            neg_priority, seq, h = heapq.heappop(heap)
            tx = txs.get(h)
            if (
                tx is None
                or not tx.ready
                or h in yielded
                or tx.seq != seq
                or tx.valid.priority != -neg_priority
                or not all(t in done_tags for t in tx.requires)
                or any(t in done_tags for t in tx.provides)
            ):
                continue
            yielded.add(h)
            done_tags.update(tx.provides)
            yield tx
            for tag in tx.provides:
                for w in waiting.get(tag, ()):
                    wt = txs.get(w)
                    if wt is not None and wt.ready and w not in yielded and all(t in done_tags for t in wt.requires):
                        heapq.heappush(heap, (-wt.valid.priority, wt.seq, w))

    # --- submission ------------------------------------------------------------------------------------

    def submit(self, data: bytes, source: TransactionSource = TransactionSource.EXTERNAL) -> bytes:
        """Validate and add one transaction; return its hash. Raises the runtime's validity error or a
        `PoolError`."""
        result = self.submit_batch([data], source)[0]
        if isinstance(result, Exception):
            raise result
        return result

    def submit_batch(
        self, datas: Sequence[bytes], source: TransactionSource = TransactionSource.EXTERNAL
    ) -> list[bytes | ChainError]:
        """Add many transactions with one call to `validate`. Each result is the hash or the error."""
        now = self._clock()
        self._banned.purge(now)
        self._included.purge(now)
        hasher, banned, included, txs = self._hasher, self._banned, self._included, self._txs
        hashes = [hasher(d) for d in datas]
        results: list[bytes | ChainError | None] = [None] * len(datas)
        fresh: list[int] = []
        seen: set[bytes] = set()
        for i, h in enumerate(hashes):
            if h in banned:
                results[i] = TemporarilyBanned()
            elif h in txs or h in included or h in seen:
                results[i] = AlreadyImported()
            elif len(datas[i]) > self.max_bytes:
                results[i] = ImmediatelyDropped("The transaction is larger than the whole pool may hold.")
            else:
                seen.add(h)
                fresh.append(i)
        if not fresh:
            return results  # type: ignore[return-value]
        verdicts = self._validate([datas[i] for i in fresh], source)
        if len(verdicts) != len(fresh):
            raise ValueError(f"validate returned {len(verdicts)} verdicts for {len(fresh)} transactions")
        try:
            for i, verdict in zip(fresh, verdicts):
                h = hashes[i]
                if isinstance(verdict, ValidTransaction):
                    try:
                        self._import(h, datas[i], verdict, source, next(self._seq))
                        self._enforce_limits(h)
                        results[i] = h
                    except PoolError as e:
                        results[i] = e
                elif isinstance(verdict, ChainError):
                    if _bannable(verdict):
                        banned.add(h, now)
                    results[i] = verdict
                else:
                    raise TypeError(f"validate returned {type(verdict).__name__}, not a verdict")
        finally:
            self._flush()
        return results  # type: ignore[return-value]

    # --- blocks ----------------------------------------------------------------------------------------

    def block_imported(self, block_hash: bytes, included_hashes: Sequence[bytes]) -> None:
        """A new best block: drop what it included, then revalidate the rest against the new state."""
        now = self._clock()
        self._banned.purge(now)
        self._included.purge(now)
        try:
            for h in included_hashes:
                self._included.add(h, now)
                if h in self._txs:
                    self._remove(h)
                self._events.append((h, TxStatus.IN_BLOCK, block_hash))
            self._revalidate(now)
        finally:
            self._flush()

    def block_finalized(self, block_hash: bytes, included_hashes: Sequence[bytes]) -> None:
        """Report FINALIZED for the transactions of a finalized block."""
        self._events.extend((h, TxStatus.FINALIZED, block_hash) for h in included_hashes)
        self._flush()

    def remove_invalid(self, hashes: Sequence[bytes], reason: str) -> None:
        """Remove, ban and report INVALID (for example, found invalid when a block applied them)."""
        now = self._clock()
        try:
            for h in hashes:
                self._banned.add(h, now)
                if h in self._txs:
                    self._remove(h)
                    self._events.append((h, TxStatus.INVALID, reason))
        finally:
            self._flush()

    def _revalidate(self, now: float) -> None:
        """Ask the runtime about every transaction again and re-place the survivors (one `validate`
        call per transaction source, in practice one)."""
        old = list(self._txs.values())  # seq order
        if not old:
            return
        by_source: dict[TransactionSource, list[PoolTransaction]] = {}
        for tx in old:
            by_source.setdefault(tx.source, []).append(tx)
        verdict_of: dict[bytes, object] = {}
        for source, group in by_source.items():
            verdicts = self._validate([tx.data for tx in group], source)
            if len(verdicts) != len(group):
                raise ValueError(f"validate returned {len(verdicts)} verdicts for {len(group)} transactions")
            for tx, verdict in zip(group, verdicts):
                verdict_of[tx.hash] = verdict

        touched = self._touched
        for tx in old:
            touched.setdefault(tx.hash, tx.ready)
        self._reset()
        for tx in old:
            verdict = verdict_of[tx.hash]
            if isinstance(verdict, ValidTransaction):
                try:
                    self._import(tx.hash, tx.data, verdict, tx.source, tx.seq)
                except TooLowPriority:
                    winner = self._provider[next(t for t in _unique(verdict.provides) if t in self._provider)]
                    self._events.append((tx.hash, TxStatus.USURPED, winner))
            elif isinstance(verdict, InvalidTransaction):
                if _bannable(verdict):
                    self._banned.add(tx.hash, now)
                self._events.append((tx.hash, TxStatus.INVALID, _reason(verdict)))
            else:  # unknown validity, or any other error: drop without a ban
                self._events.append((tx.hash, TxStatus.DROPPED, _reason(verdict)))

    # --- the ready/future machinery --------------------------------------------------------------------

    def _import(self, h: bytes, data: bytes, valid: ValidTransaction, source: TransactionSource, seq: int) -> None:
        requires = _unique(valid.requires)
        provides = _unique(valid.provides)
        provider = self._provider
        txs = self._txs
        # one transaction per provided tag: replace only with a strictly higher priority
        rivals = None
        for tag in provides:
            holder = provider.get(tag)
            if holder is not None:
                old = txs[holder]
                if old.valid.priority >= valid.priority:
                    raise TooLowPriority(old.valid.priority, valid.priority)
                if rivals is None:
                    rivals = []
                if holder not in rivals:
                    rivals.append(holder)
        if rivals:
            for holder in rivals:
                self._remove(holder)
                self._events.append((holder, TxStatus.USURPED, h))

        tx = PoolTransaction(h, data, valid, source, seq, requires=requires, provides=provides)
        txs[h] = tx
        self._bytes += len(data)
        self._touched.setdefault(h, None)
        for tag in provides:
            provider[tag] = h
        waiting = self._waiting
        ready_tags = self._ready_tags
        missing = 0
        for tag in requires:
            ws = waiting.get(tag)
            if ws is None:
                waiting[tag] = {h}
            else:
                ws.add(h)
            if tag not in ready_tags:
                missing += 1
        if missing:
            tx.missing = missing
            self._push_evict(tx, _FUTURE_CLASS)
        else:
            self._promote(tx)

    def _push_evict(self, tx: PoolTransaction, cls: int) -> None:
        entry = (cls, tx.valid.priority, -tx.seq, tx.hash)
        tx.evict_entry = entry
        heapq.heappush(self._evict, entry)

    def _promote(self, first: PoolTransaction) -> None:
        """Make `first` ready, then every future transaction that was waiting only for it (and so on)."""
        txs, waiting, ready_tags, touched = self._txs, self._waiting, self._ready_tags, self._touched
        stack = [first]
        while stack:
            tx = stack.pop()
            tx.ready = True
            tx.missing = 0
            tx.dependents = 0
            touched.setdefault(tx.hash, False)
            self._ready_count += 1
            for tag in tx.requires:
                p = txs[ready_tags[tag]]
                p.dependents += 1
                p.evict_entry = None  # no longer a leaf: its heap entry goes stale
            if not tx.requires:
                entry = (-tx.valid.priority, tx.seq, tx.hash)
                tx.root_entry = entry
                heapq.heappush(self._roots, entry)
            self._push_evict(tx, _READY_CLASS)
            for tag in tx.provides:
                ready_tags[tag] = tx.hash
                for w in waiting.get(tag, ()):
                    wt = txs[w]
                    if not wt.ready:
                        wt.missing -= 1
                        if wt.missing == 0:
                            stack.append(wt)

    def _leave_ready(self, first: PoolTransaction) -> None:
        """Take `first` out of the ready set, with everything that depends on it (they become future)."""
        txs, waiting, ready_tags, touched = self._txs, self._waiting, self._ready_tags, self._touched
        # 1. the ready subtree hanging off `first`
        group: dict[bytes, PoolTransaction] = {first.hash: first}
        stack = [first]
        while stack:
            tx = stack.pop()
            for tag in tx.provides:
                for w in waiting.get(tag, ()):
                    wt = txs.get(w)
                    if wt is not None and wt.ready and w not in group:
                        group[w] = wt
                        stack.append(wt)
        # 2. their tags are no longer provided by the ready set
        removed_tags: list[bytes] = []
        for tx in group.values():
            touched.setdefault(tx.hash, True)
            tx.ready = False
            tx.root_entry = None
            for tag in tx.provides:
                if ready_tags.get(tag) == tx.hash:
                    del ready_tags[tag]
                    removed_tags.append(tag)
        self._ready_count -= len(group)
        # 3. providers outside the group lose a dependent (and may become evictable leaves)
        for tx in group.values():
            for tag in tx.requires:
                ph = ready_tags.get(tag)
                if ph is not None:
                    p = txs[ph]
                    p.dependents -= 1
                    if p.dependents == 0:
                        self._push_evict(p, _READY_CLASS)
        # 4. the group is future now; other futures waiting on the removed tags miss one more
        for tx in group.values():
            tx.dependents = 0
            tx.missing = sum(1 for tag in tx.requires if tag not in ready_tags)
            self._push_evict(tx, _FUTURE_CLASS)
        for tag in removed_tags:
            for w in waiting.get(tag, ()):
                if w not in group:
                    wt = txs[w]
                    if not wt.ready:
                        wt.missing += 1

    def _remove(self, h: bytes) -> PoolTransaction:
        """Take a transaction out of the pool (no event: the caller reports why)."""
        tx = self._txs[h]
        if tx.ready:
            self._leave_ready(tx)
        del self._txs[h]
        self._bytes -= len(tx.data)
        provider, waiting = self._provider, self._waiting
        for tag in tx.provides:
            if provider.get(tag) == h:
                del provider[tag]
        for tag in tx.requires:
            ws = waiting.get(tag)
            if ws is not None:
                ws.discard(h)
                if not ws:
                    del waiting[tag]
        tx.root_entry = tx.evict_entry = None
        return tx

    def _enforce_limits(self, incoming: bytes) -> None:
        """Evict until within limits: lowest-priority futures, then lowest-priority ready leaves."""
        txs = self._txs
        while len(txs) > self.max_count or self._bytes > self.max_bytes:
            victim = self._pop_victim()
            if victim is None:  # cannot happen while the pool is non-empty: the ready set is a DAG
                break
            self._remove(victim.hash)
            if victim.hash == incoming:
                raise ImmediatelyDropped()
            self._events.append((victim.hash, TxStatus.DROPPED, POOL_FULL))

    def _pop_victim(self) -> PoolTransaction | None:
        heap, txs = self._evict, self._txs
        while heap:
            entry = heapq.heappop(heap)
            tx = txs.get(entry[3])
            if tx is not None and tx.evict_entry is entry:
                tx.evict_entry = None
                return tx
        return None

    def _compact(self) -> None:
        """Drop stale heap entries once they outnumber the live ones (amortised O(1) per push)."""
        limit = 2 * len(self._txs) + 1024
        if len(self._evict) > limit:
            txs = self._txs
            self._evict = [e for e in self._evict if (t := txs.get(e[3])) is not None and t.evict_entry is e]
            heapq.heapify(self._evict)
        if len(self._roots) > limit:
            txs = self._txs
            self._roots = [e for e in self._roots if (t := txs.get(e[2])) is not None and t.root_entry is e]
            heapq.heapify(self._roots)


def _reason(error: object) -> str:
    """The reason string a listener gets for an invalid or dropped transaction."""
    data = getattr(error, "data", None)
    if isinstance(data, str) and data:
        return data
    return str(error)
