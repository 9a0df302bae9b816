"""Crash safety: a real child process commits blocks (state changes + block, one WriteBatch each) in a
loop and is SIGKILLed at random moments; after every kill the database must be at a block boundary:
nothing the child reported committed is lost, the flat snapshot equals the trie at the head root, the
head root is the best header's state root, and every kept (pruning-window) state is complete on disk."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from node.blockstore import BlockStore
from node.db import COL_FLAT, COL_TRIE, Database
from node.state_db import StateDB
from primitives.trie import Trie

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEEP = 3

CHILD = r"""
import random, sys
sys.path.insert(0, sys.argv[1])
from node.blockstore import BlockStore
from node.db import Database
from node.state_db import StateDB
from primitives.hashing import keccak256
from primitives.types import Block, Header, Justification, SignedBlock

base, seed, keep = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
db = Database(base)
sdb = StateDB(db, keep_states=keep)
bs = BlockStore(db)
KEYS = [keccak256(b"key%d" % i)[:rng.choice((4, 8, 32))] for i in range(3000)]
VALUES = [b"same-value-" * 4, b"x", b"other" * 10]

def value():
    return rng.choice(VALUES) if rng.random() < 0.5 else rng.randbytes(rng.randint(1, 80))

if bs.best_hash() is None:
    batch = db.batch()
    root = sdb.init_genesis(batch, {k: value() for k in KEYS[:500]})
    genesis = SignedBlock(Block(Header(b"\0" * 32, 0, root, b"\0" * 32, ()), ()), ())
    bs.put_block(batch, genesis, set_best=True, set_finalized=True)
    db.write(batch)
print("ready", flush=True)
while True:
    parent, n = bs.best_hash(), bs.best_number() + 1
    changes = {rng.choice(KEYS): (None if rng.random() < 0.3 else value()) for _ in range(rng.randint(1, 300))}
    prepared = sdb.prepare(changes)
    xts = tuple(rng.randbytes(40) for _ in range(rng.randint(0, 5)))
    header = Header(parent, n, prepared.root, keccak256(b"".join(xts)), ())
    batch = db.batch()
    sdb.commit(batch, prepared, n)
    bs.put_block(batch, SignedBlock(Block(header, xts), (Justification(b"grid", b"c%d" % n),)),
                 set_best=True, set_finalized=True)
    db.write(batch)
    print(n, flush=True)
"""


class RawStore:
    def __init__(self, db: Database) -> None:
        self.col = db.column(COL_TRIE)

    def get(self, h: bytes) -> bytes | None:
        return self.col.get(h)


def run_child_and_kill(base: str, seed: int, rng: random.Random) -> int | None:
    """Start the child, let it commit for a random while after it is ready, SIGKILL it; return the
    last block number it reported as written (None if it reported none)."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, REPO, base, str(seed), str(KEEP)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first.strip() == "ready", f"child failed to start: {first!r} {proc.stderr.read()}"
        time.sleep(rng.uniform(0.05, 0.5))
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"child exited by itself ({proc.returncode}): {err}"
    numbers = [int(line) for line in out.split("\n") if line.strip().isdigit()]
    return numbers[-1] if numbers else None


def check_consistent(base: str) -> int:
    with Database(base, create=False) as db:
        bs = BlockStore(db)
        sdb = StateDB(db, keep_states=KEEP)
        best = bs.best_number()
        head = bs.header(bs.best_hash())
        assert bs.hash_at(best) == bs.best_hash() and bs.hash_at(best + 1) is None
        assert sdb.head_number() == best
        assert sdb.head_root() == head.state_root
        flat = dict(db.iter_column(COL_FLAT))
        assert flat == dict(Trie(RawStore(db), head.state_root).iter_items())
        assert all(sdb.reader().get(k) == v for k, v in list(flat.items())[:200])
        kept = sdb.kept_roots()
        assert [n for n, _ in kept] == list(range(max(0, best - KEEP + 1), best + 1))
        for n, root in kept:
            assert bs.header_at(n).state_root == root
            sum(1 for _ in Trie(RawStore(db), root).iter_items())   # walks every node: all present
        return best


def test_sigkill_at_random_moments_loses_nothing_committed(tmp_path):
    base = str(tmp_path / "node")
    rng = random.Random(1234)
    progress = []
    for i in range(5):
        reported = run_child_and_kill(base, seed=i, rng=rng)
        best = check_consistent(base)
        if reported is not None:
            assert best >= reported
        progress.append((reported, best))
    print("reported, recovered best per kill:", progress)
    assert progress[-1][1] > 0, progress    # the child did commit blocks across the runs
