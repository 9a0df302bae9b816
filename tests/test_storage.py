"""Block store and state DB on LevelDB: round trips, atomic pointer moves, state readers at the head
(flat snapshot) and at old roots (trie), proofs, and pruning that keeps exactly the last N states."""
from __future__ import annotations

import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.blockstore import BlockStore, BlockStoreError
from node.db import COL_FLAT, COL_REFCOUNT, COL_TRIE, Database, DatabaseError
from node.state_db import StateDB, StateDBError, StateUnavailable
from primitives.extrinsic import extrinsic_hash
from primitives.hashing import keccak256
from primitives.trie import BLANK_ROOT, Trie, rlp_decode, verify_proof
from primitives.types import Block, Header, Justification, SignedBlock

ZERO = b"\x00" * 32


def make_block(parent: bytes, number: int, state_root: bytes = ZERO, xts: tuple[bytes, ...] = (),
               justifications: tuple[Justification, ...] = ()) -> SignedBlock:
    header = Header(parent, number, state_root, keccak256(b"".join(xts)), ())
    return SignedBlock(Block(header, xts), justifications)


@pytest.fixture
def base(tmp_path):
    return str(tmp_path / "node")


# ---------------------------------------------------------------------------------------------
# block store
# ---------------------------------------------------------------------------------------------

def build_chain(db: Database, bs: BlockStore, length: int) -> list[SignedBlock]:
    blocks = []
    parent = ZERO
    for n in range(length):
        xts = tuple(f"xt-{n}-{i}".encode() for i in range(n % 3))
        js = (Justification(b"grid", b"cert-%d" % n),) if n % 2 else ()
        sb = make_block(parent, n, keccak256(b"state%d" % n), xts, js)
        batch = db.batch()
        bs.put_block(batch, sb, set_best=True, set_finalized=True)
        db.write(batch)
        blocks.append(sb)
        parent = sb.block.header.hash()
    return blocks


def test_blocks_round_trip_and_survive_reopen(base):
    with Database(base) as db:
        bs = BlockStore(db)
        blocks = build_chain(db, bs, 6)
    with Database(base, create=False) as db:
        bs = BlockStore(db)
        for n, sb in enumerate(blocks):
            h = sb.block.header.hash()
            assert bs.hash_at(n) == h
            assert bs.header(h) == sb.block.header
            assert bs.block(h) == sb
            for i, xt in enumerate(sb.block.extrinsics):
                assert bs.find_extrinsic(extrinsic_hash(xt)) == (h, i)
        assert bs.genesis_hash() == blocks[0].block.header.hash()
        assert bs.best_hash() == bs.finalized_hash() == blocks[-1].block.header.hash()
        assert bs.best_number() == bs.finalized_number() == 5
        assert bs.hash_at(6) is None and bs.hash_at(-1) is None
        assert bs.block(b"\x01" * 32) is None and bs.header(b"\x01" * 32) is None
        assert bs.find_extrinsic(b"\x02" * 32) is None
        assert [n for n, _ in bs.iter_hashes(2, 5)] == [2, 3, 4]


def test_pointers_and_indexes_move_only_on_write(base):
    with Database(base) as db:
        bs = BlockStore(db)
        assert bs.best_hash() is None and bs.best_number() is None and bs.genesis_hash() is None
        blocks = build_chain(db, bs, 2)
        g, b1 = (sb.block.header.hash() for sb in blocks)
        sb2 = make_block(b1, 2, xts=(b"tx-a",))
        h2 = sb2.block.header.hash()
        batch = db.batch()
        bs.put_block(batch, sb2, set_best=True, set_finalized=False)
        # nothing visible before the write
        assert bs.hash_at(2) is None and bs.block(h2) is None
        assert bs.best_hash() == b1 and bs.best_number() == 1
        assert bs.find_extrinsic(extrinsic_hash(b"tx-a")) is None
        # the same batch sees its own pending block (set_finalized, justification)
        bs.add_justification(batch, h2, Justification(b"grid", b"c1"))
        db.write(batch)
        assert bs.hash_at(2) == h2 and bs.best_hash() == h2 and bs.best_number() == 2
        assert bs.finalized_hash() == b1 and bs.finalized_number() == 1
        assert bs.find_extrinsic(extrinsic_hash(b"tx-a")) == (h2, 0)
        assert bs.justifications(h2) == (Justification(b"grid", b"c1"),)

        batch = db.batch()
        bs.set_finalized(batch, h2)
        bs.add_justification(batch, h2, Justification(b"grid", b"c2"))     # replaces same engine
        bs.add_justification(batch, h2, Justification(b"beef", b"x"))
        assert bs.finalized_number() == 1
        db.write(batch)
        assert bs.finalized_hash() == h2 and bs.finalized_number() == 2
        assert bs.block(h2).justifications == (Justification(b"grid", b"c2"), Justification(b"beef", b"x"))

        # an unwritten batch leaves no trace
        batch = db.batch()
        bs.put_block(batch, make_block(h2, 3), set_best=True, set_finalized=True)
        del batch
        assert bs.best_number() == 2 and bs.hash_at(3) is None
        assert g == bs.genesis_hash()


def test_blockstore_refuses_forks_and_gaps(base):
    with Database(base) as db:
        bs = BlockStore(db)
        blocks = build_chain(db, bs, 3)
        h2 = blocks[2].block.header.hash()
        with pytest.raises(BlockStoreError):
            bs.put_block(db.batch(), make_block(h2, 4), set_best=True, set_finalized=True)   # gap
        with pytest.raises(BlockStoreError):
            bs.put_block(db.batch(), make_block(b"\x09" * 32, 3), set_best=True, set_finalized=True)
        other = make_block(blocks[1].block.header.hash(), 2, state_root=b"\x07" * 32)
        with pytest.raises(BlockStoreError):
            bs.put_block(db.batch(), other, set_best=True, set_finalized=True)               # fork
        with pytest.raises(BlockStoreError):
            bs.put_block(db.batch(), make_block(ZERO, 0, b"\x05" * 32), set_best=False, set_finalized=False)
        with pytest.raises(BlockStoreError):
            bs.set_finalized(db.batch(), blocks[1].block.header.hash())                    # backwards
        with pytest.raises(BlockStoreError):
            bs.set_finalized(db.batch(), b"\x03" * 32)
        # re-putting the same block is harmless
        batch = db.batch()
        bs.put_block(batch, blocks[2], set_best=True, set_finalized=True)
        db.write(batch)
        assert bs.best_number() == 2


def test_database_open_errors(base, tmp_path):
    with pytest.raises(DatabaseError):
        Database(str(tmp_path / "missing"), create=False)
    db = Database(base)
    with pytest.raises(DatabaseError, match="in use"):
        Database(base)
    db.close()
    Database(base).close()            # the lock is released on close


# ---------------------------------------------------------------------------------------------
# state: model-based
# ---------------------------------------------------------------------------------------------

# Small key alphabet and a few repeated values (40 bytes: leaves are hashed nodes, so identical
# subtrees at different positions and across time are stored once and shared).
KEY = st.lists(st.sampled_from([0x00, 0x01, 0x10, 0x11, 0xFF]), min_size=1, max_size=3).map(bytes)
VALUE = st.sampled_from([b"v" * 40, b"w" * 40, b"\x01", b"long-" * 12, b""])
BATCH = st.dictionaries(KEY, st.one_of(st.none(), VALUE), max_size=10)
PREFIXES = [b"", b"\x00", b"\x01", b"\x10", b"\x11", b"\xff", b"\x01\x10", b"\xff\xff"]
UNIVERSE = sorted({bytes(x) for x in
                   [[a] for a in (0, 1, 16, 17, 255)] +
                   [[a, b] for a in (0, 1, 16, 17, 255) for b in (0, 1, 16, 17, 255)]}) + [b"\x01\x10\x11"]


def apply_model(model: dict[bytes, bytes], changes: dict[bytes, bytes | None]) -> dict[bytes, bytes]:
    out = dict(model)
    for k, v in changes.items():
        if v:
            out[k] = v
        else:
            out.pop(k, None)
    return out


def expected_keys(model: dict, prefix: bytes, start_after: bytes | None) -> list[bytes]:
    return sorted(k for k in model if k.startswith(prefix) and (start_after is None or k > start_after))


def check_reader(reader, model: dict[bytes, bytes]) -> None:
    for k in UNIVERSE:
        assert reader.get(k) == model.get(k), k
    for k in model:
        assert reader.get(k) == model[k]
    for p in PREFIXES:
        assert list(reader.iter_keys(p)) == expected_keys(model, p, None)
        for after in (b"\x01", b"\x00\xff", b"\x10\x11\x00", b"\xff"):
            assert list(reader.iter_keys(p, after)) == expected_keys(model, p, after), (p, after)


class RawStore:
    """The trie node column with no cache in front: what is really on disk."""

    def __init__(self, db: Database) -> None:
        self.col = db.column(COL_TRIE)

    def get(self, h: bytes) -> bytes | None:
        return self.col.get(h)


def child_hashes(node: list) -> list[bytes]:
    """Hashes referenced by a decoded (generic RLP) trie node, looking into inline children."""
    if len(node) == 17:
        refs = node[:16]
    elif node[0][0] >> 4 in (0, 1):      # extension (hex-prefix flag 0/1); leaves have no children
        refs = [node[1]]
    else:
        return []
    out = []
    for r in refs:
        if isinstance(r, list):
            out += child_hashes(r)
        elif len(r) == 32:
            out.append(r)
    return out


def reachable(store, root: bytes) -> set[bytes]:
    """Every hashed node reachable from `root`; asserts that each is in `store`."""
    if root == BLANK_ROOT:
        return set()
    seen = {root}
    stack = [root]
    while stack:
        rlp = store.get(stack.pop())
        assert rlp is not None, "a node reachable from a kept root was deleted"
        for c in child_hashes(rlp_decode(rlp)):
            if c not in seen:
                seen.add(c)
                stack.append(c)
    return seen


SLOW = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SLOW
@given(genesis=BATCH, batches=st.lists(BATCH, min_size=1, max_size=10))
def test_archive_state_matches_model_and_reference_trie(genesis, batches):
    with tempfile.TemporaryDirectory() as d:
        db = Database(d)
        sdb = StateDB(db)
        ref = Trie({})
        models, roots = [], []
        batch = db.batch()
        root = sdb.init_genesis(batch, {k: v for k, v in genesis.items() if v is not None})
        assert sdb.head_root() == BLANK_ROOT     # moves only on write
        db.write(batch)
        model = apply_model({}, {k: v for k, v in genesis.items() if v is not None})
        upd = ref.apply({k: v for k, v in genesis.items() if v is not None})
        assert root == upd.root == sdb.head_root()
        ref_store = dict(upd.new_nodes)
        models.append(model), roots.append(root)
        head_reader = sdb.reader()
        for n, changes in enumerate(batches, start=1):
            prepared = sdb.prepare(changes)
            upd = ref.apply(changes)
            ref_store.update(upd.new_nodes)
            assert prepared.root == upd.root
            batch = db.batch()
            sdb.commit(batch, prepared, n)
            assert sdb.head_root() == roots[-1] and head_reader.get(b"\x01") == model.get(b"\x01")
            db.write(batch)
            model = apply_model(model, changes)
            models.append(model), roots.append(prepared.root)
            assert sdb.head_root() == prepared.root and sdb.head_number() == n
            check_reader(head_reader, model)           # follows the head, flat snapshot
        # the flat snapshot holds exactly the head state
        assert dict(db.iter_column(COL_FLAT)) == model
        # every old root: trie reads agree with the model, proofs verify against the root
        for root, model in zip(roots, models):
            r = sdb.reader(root)
            check_reader(r, model)
            proof = sdb.prove(root, UNIVERSE)
            for k in UNIVERSE:
                assert verify_proof(root, k, proof) == model.get(k)
            assert sdb.prove(root, [b"\x11"]) == Trie(ref_store, root).prove(b"\x11")
        db.close()


@SLOW
@given(keep=st.sampled_from([1, 2, 3, 5]), batches=st.lists(BATCH, min_size=1, max_size=14),
       reopen_at=st.integers(0, 14))
def test_pruning_keeps_exactly_the_last_n_states(keep, batches, reopen_at):
    with tempfile.TemporaryDirectory() as d:
        db = Database(d)
        sdb = StateDB(db, keep_states=keep)
        batch = db.batch()
        genesis = {b"\x01": b"v" * 40, b"\x11": b"v" * 40, b"\x10\x01": b"w" * 40}
        roots = [sdb.init_genesis(batch, genesis)]
        db.write(batch)
        models = [dict(genesis)]
        for n, changes in enumerate(batches, start=1):
            if n == reopen_at:
                db.close()
                db = Database(d, create=False)
                sdb = StateDB(db, keep_states=keep)
            prepared = sdb.prepare(changes)
            batch = db.batch()
            sdb.commit(batch, prepared, n)
            db.write(batch)
            roots.append(prepared.root)
            models.append(apply_model(models[-1], changes))

            kept_numbers = range(max(0, n - keep + 1), n + 1)
            assert [k for k, _ in sdb.kept_roots()] == list(kept_numbers)
            raw = RawStore(db)
            live: set[bytes] = set()
            for i in kept_numbers:
                live |= reachable(raw, roots[i])                       # every node still on disk
                assert dict(Trie(raw, roots[i]).iter_items()) == models[i]
            on_disk = {k for k, _ in db.iter_column(COL_TRIE)}
            assert on_disk == live                                     # and nothing else
            assert {k for k, _ in db.iter_column(COL_REFCOUNT)} == live
            kept_roots = {roots[i] for i in kept_numbers}
            for i in range(0, n + 1):
                if i in kept_numbers:
                    check_reader(sdb.reader(roots[i]), models[i])
                    proof = sdb.prove(roots[i], [b"\x01", b"\x10\x01"])
                    assert verify_proof(roots[i], b"\x01", proof) == models[i].get(b"\x01")
                elif roots[i] not in kept_roots and roots[i] != BLANK_ROOT:
                    with pytest.raises(StateUnavailable):
                        sdb.reader(roots[i])
                    with pytest.raises(StateUnavailable):
                        sdb.prove(roots[i], [b"\x01"])
        assert sdb.refcount_anomalies == 0
        db.close()


# ---------------------------------------------------------------------------------------------
# state: specific behaviour
# ---------------------------------------------------------------------------------------------

def test_pinned_reader_survives_head_move_and_fails_clearly_when_pruned(base):
    with Database(base) as db:
        sdb = StateDB(db, keep_states=2)
        batch = db.batch()
        r0 = sdb.init_genesis(batch, {b"a": b"1" * 40, b"b": b"2"})
        db.write(batch)
        pinned = sdb.reader(r0)
        follow = sdb.reader()
        it = pinned.iter_keys(b"")                     # made at head: flat snapshot iterator
        roots = [r0]
        for n in (1, 2):
            p = sdb.prepare({b"a": b"%d" % n * 40, b"c": b"x"})
            batch = db.batch()
            sdb.commit(batch, p, n)
            db.write(batch)
            roots.append(p.root)
            if n == 1:
                assert pinned.get(b"a") == b"1" * 40 and pinned.get(b"c") is None   # via the trie now
                assert list(pinned.iter_keys(b"")) == [b"a", b"b"]
                assert list(it) == [b"a", b"b"]
                assert follow.get(b"a") == b"1" * 40 and follow.root == p.root
        with pytest.raises(StateUnavailable, match="State already discarded"):
            pinned.get(b"a")
        with pytest.raises(StateUnavailable):
            sdb.reader(r0)
        assert sdb.reader(roots[1]).get(b"a") == b"1" * 40
        assert follow.get(b"a") == b"2" * 40


def test_prepare_is_side_effect_free_until_commit(base):
    with Database(base) as db:
        sdb = StateDB(db)
        batch = db.batch()
        r0 = sdb.init_genesis(batch, {b"k%d" % i: b"v" * 40 for i in range(50)})
        db.write(batch)
        nodes_before = db.count(COL_TRIE)
        abandoned = sdb.prepare({b"k1": None, b"zz": b"new" * 20})
        assert sdb.head_root() == r0 and sdb.reader().get(b"k1") == b"v" * 40
        assert db.count(COL_TRIE) == nodes_before
        second = sdb.prepare({b"k2": b"other"})            # discards the first preparation
        with pytest.raises(StateDBError):
            sdb.commit(db.batch(), second, 5)               # wrong number
        batch = db.batch()
        sdb.commit(batch, second, 1)
        db.write(batch)
        assert sdb.reader().get(b"k2") == b"other" and sdb.reader().get(b"k1") == b"v" * 40
        with pytest.raises(StateDBError):
            sdb.commit(db.batch(), abandoned, 2)            # not on top of the head any more
        ref = Trie({})
        ref.apply({b"k%d" % i: b"v" * 40 for i in range(50)})
        assert ref.apply({b"k2": b"other"}).root == sdb.head_root()
        # the head trie still works after the discarded preparation
        third = sdb.prepare({b"k3": None})
        assert third.root == ref.apply({b"k3": None}).root


def test_mode_is_fixed_and_unknown_roots_are_reported(base):
    with Database(base) as db:
        sdb = StateDB(db)
        batch = db.batch()
        sdb.init_genesis(batch, {b"a": b"b"})
        db.write(batch)
        with pytest.raises(StateUnavailable, match="Unknown state root"):
            sdb.reader(b"\x42" * 32)
        assert sdb.reader(BLANK_ROOT).get(b"a") is None
        with pytest.raises(StateDBError):
            sdb.init_genesis(db.batch(), {})
    with Database(base) as db:
        with pytest.raises(StateDBError, match="archive mode"):
            StateDB(db, keep_states=4)
    with pytest.raises(ValueError):
        StateDB(None, keep_states=0)  # type: ignore[arg-type]


def test_flat_and_trie_iteration_edges(base):
    keys = [b"", b"\x00", b"\xff", b"\xff\xff", b"\xff\xff\x00", b"\x7f\xff", b"\x80"]
    with Database(base) as db:
        sdb = StateDB(db, keep_states=4)
        batch = db.batch()
        storage = {k: b"value-%d" % i * 4 for i, k in enumerate(keys) if k}
        r0 = sdb.init_genesis(batch, storage)
        db.write(batch)
        p = sdb.prepare({b"\x01": b"x"})
        batch = db.batch()
        sdb.commit(batch, p, 1)
        db.write(batch)
        head, old = sdb.reader(), sdb.reader(r0)
        for prefix in keys:
            for after in [None] + keys:
                exp = expected_keys(storage, prefix, after)
                assert list(old.iter_keys(prefix, after)) == exp, (prefix, after)
                exp_head = expected_keys({**storage, b"\x01": b"x"}, prefix, after)
                assert list(head.iter_keys(prefix, after)) == exp_head, (prefix, after)
        assert list(sdb.iter_keys(r0, b"\xff")) == [b"\xff", b"\xff\xff", b"\xff\xff\x00"]


def test_recurring_subtree_is_not_pruned_while_a_kept_state_needs_it(base):
    v, w = b"V" * 40, b"W" * 40
    with Database(base) as db:
        sdb = StateDB(db, keep_states=2)
        batch = db.batch()
        # 0x0110 and 0x1110 end in identical leaves (path "110", value v): one node, two slots
        roots = [sdb.init_genesis(batch, {b"\x01\x10": v, b"\x11\x10": v, b"\x21\x10": w})]
        db.write(batch)
        leaf = {h for h in reachable(RawStore(db), roots[0])}
        steps = [{b"\x01\x10": w},        # the shared leaf loses one slot, stays reachable
                 {b"\x11\x10": None},     # now it leaves the head state (obsolete in block 2)
                 {b"\x11\x10": v},        # and comes back (new in block 3)
                 {b"\x21\x10": v},        # block 4: state 2 (without it) leaves the window
                 {b"\x30": w}]
        for n, changes in enumerate(steps, start=1):
            p = sdb.prepare(changes)
            batch = db.batch()
            sdb.commit(batch, p, n)
            db.write(batch)
            roots.append(p.root)
            live = reachable(RawStore(db), roots[-1]) | reachable(RawStore(db), roots[-2])
            assert {k for k, _ in db.iter_column(COL_TRIE)} == live
        assert leaf & live                 # the recurring leaf is there, stored once
        assert sdb.reader(roots[-2]).get(b"\x11\x10") == v
        assert sdb.refcount_anomalies == 0
