"""Storage benchmark: commit one block that changes 10,000 keys on top of a 100,000-key state.

Prints figures (never asserts). Run: `.venv/bin/python -m bench.storage_bench`.
Keys look like runtime storage keys (32-byte item prefix + 16-byte hash + 32-byte account).
"""
from __future__ import annotations

import random
import tempfile
import time

from node.db import COL_TRIE, Database
from node.state_db import StateDB
from primitives.hashing import keccak256


def storage_key(i: int) -> bytes:
    account = keccak256(b"account%d" % i)
    return keccak256(b"Balances")[:16] + keccak256(b"Account")[:16] + keccak256(account)[:16] + account


def run(keep_states: int | None, base_keys: int = 100_000, changed: int = 10_000) -> None:
    rng = random.Random(7)
    keys = [storage_key(i) for i in range(base_keys)]
    with tempfile.TemporaryDirectory() as d:
        db = Database(d)
        sdb = StateDB(db, keep_states=keep_states)
        t0 = time.perf_counter()
        batch = db.batch()
        sdb.init_genesis(batch, {k: rng.randbytes(48) for k in keys})
        db.write(batch)
        t_genesis = time.perf_counter() - t0
        mode = "archive" if keep_states is None else f"keep {keep_states}"
        print(f"[{mode}] genesis: {base_keys} keys, {db.count(COL_TRIE)} trie nodes in {t_genesis:.2f} s")
        roots = []
        for n in range(1, 5):
            changes = {k: rng.randbytes(48) for k in rng.sample(keys, changed)}
            t0 = time.perf_counter()
            prepared = sdb.prepare(changes)
            t1 = time.perf_counter()
            batch = db.batch()
            sdb.commit(batch, prepared, n)
            t2 = time.perf_counter()
            db.write(batch)
            t3 = time.perf_counter()
            roots.append(prepared.root)
            print(f"[{mode}] block #{n}: {changed} changed keys: prepare (trie apply) {t1 - t0:.3f} s, "
                  f"commit into batch {t2 - t1:.3f} s, LevelDB write {t3 - t2:.3f} s, "
                  f"total {t3 - t0:.3f} s ({len(prepared.update.new_nodes)} new nodes, "
                  f"{len(prepared.update.obsolete)} obsolete)")
        reader = sdb.reader()
        sample = rng.sample(keys, 20_000)
        t0 = time.perf_counter()
        for k in sample:
            reader.get(k)
        t_cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        for k in sample:
            reader.get(k)
        t_hot = time.perf_counter() - t0
        print(f"[{mode}] head reads: {len(sample) / t_cold:,.0f}/s first touch, {len(sample) / t_hot:,.0f}/s cached")
        old = sdb.reader(roots[-2])
        t0 = time.perf_counter()
        for k in sample[:5000]:
            old.get(k)
        print(f"[{mode}] trie reads at an older root: {5000 / (time.perf_counter() - t0):,.0f}/s")
        db.close()

        # after a restart: cold caches, and the trie rebuilds its reference index on the first apply
        db = Database(d)
        sdb = StateDB(db, keep_states=keep_states)
        reader = sdb.reader()
        t0 = time.perf_counter()
        for k in sample:
            reader.get(k)
        t_cold = time.perf_counter() - t0
        changes = {k: rng.randbytes(48) for k in rng.sample(keys, changed)}
        t0 = time.perf_counter()
        prepared = sdb.prepare(changes)
        batch = db.batch()
        sdb.commit(batch, prepared, 5)
        db.write(batch)
        print(f"[{mode}] after restart: head reads {len(sample) / t_cold:,.0f}/s (LevelDB), first block "
              f"of {changed} changes {time.perf_counter() - t0:.3f} s (includes the trie's index walk)")
        db.close()


def main() -> None:
    run(None)       # archive
    run(256)        # pruning, window not yet full: reference counting only
    run(2)          # pruning, window full: every block also deletes the nodes of an old state


if __name__ == "__main__":
    main()
