"""State-trie throughput per block: Trie.apply against py-trie's best batch mode on the same data.

Run: .venv/bin/python -m bench.trie_bench [--existing N] [--batch N] [--blocks N] [--profile]

A block's state changes arrive as one batch; this measures key updates per second for a batch of
10,000 changes (70 % overwrites, 30 % new keys) on a trie that already holds 100,000 storage-like
keys (32 bytes, values of 40-100 bytes), including encoding and hashing every new node and
writing `new_nodes` to a dict store. py-trie starts from a copy of our store (the nodes are
byte-identical), so both run the same blocks from the same state, and their roots are compared.
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import time

from primitives.trie import Trie

TARGET_RATE = 50_000
TARGET_RATIO = 8


def make_blocks(rng: random.Random, existing: list[bytes], batch: int, blocks: int
                ) -> list[dict[bytes, bytes]]:
    """Blocks of `batch` changes: overwrites of existing keys and inserts of new ones."""
    out = []
    for _ in range(blocks):
        changes = {}
        for k in rng.sample(existing, batch * 7 // 10):
            changes[k] = rng.randbytes(rng.randint(40, 100))
        while len(changes) < batch:
            changes[rng.randbytes(32)] = rng.randbytes(rng.randint(40, 100))
        out.append(changes)
    return out


def run_ours(trie: Trie, store: dict, blocks: list[dict[bytes, bytes]]) -> tuple[list[int], list[bytes]]:
    """Per-block nanoseconds for apply + persisting new nodes, and the roots produced."""
    times, roots = [], []
    for changes in blocks:
        t0 = time.perf_counter_ns()
        upd = trie.apply(changes)
        store.update(upd.new_nodes)
        times.append(time.perf_counter_ns() - t0)
        roots.append(upd.root)
    return times, roots


def run_py_trie(store: dict, root: bytes, blocks: list[dict[bytes, bytes]]) -> tuple[int, list[bytes]]:
    from trie import HexaryTrie

    trie = HexaryTrie(store, root)
    roots, elapsed = [], 0
    for changes in blocks:
        t0 = time.perf_counter_ns()
        with trie.squash_changes() as memory_trie:
            for k, v in changes.items():
                memory_trie[k] = v
        elapsed += time.perf_counter_ns() - t0
        roots.append(trie.root_hash)
    return elapsed, roots


def rate(updates: int, ns: int) -> int:
    return updates * 1_000_000_000 // max(ns, 1)


def median(xs: list[int]) -> int:
    return sorted(xs)[len(xs) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--existing", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--blocks", type=int, default=7, help="blocks timed for our trie")
    ap.add_argument("--py-blocks", type=int, default=2, help="blocks timed for py-trie (slow)")
    ap.add_argument("--profile", action="store_true", help="cProfile our apply instead of comparing")
    args = ap.parse_args()

    rng = random.Random(2024)
    initial = {rng.randbytes(32): rng.randbytes(rng.randint(40, 100)) for _ in range(args.existing)}
    store: dict[bytes, bytes] = {}
    trie = Trie(store)
    t0 = time.perf_counter_ns()
    store.update(trie.apply(initial).new_nodes)
    build_ns = time.perf_counter_ns() - t0
    print(f"initial build: {args.existing} keys in one apply, {build_ns // 1_000_000} ms "
          f"({rate(args.existing, build_ns)} inserts/s), {len(store)} nodes")
    blocks = make_blocks(rng, list(initial), args.batch, max(args.blocks, args.py_blocks))
    snapshot, base_root = dict(store), trie.root

    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        run_ours(trie, store, blocks[:args.blocks])
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(20)
        return

    # A long-lived Trie, as the node keeps one: its cache holds the nodes it built.
    times, roots = run_ours(trie, store, blocks[:args.blocks])
    per_block = median(times)
    ours = rate(args.batch, per_block)
    print(f"trie.apply (long-lived Trie): {args.blocks} blocks x {args.batch} updates, median "
          f"{per_block // 1_000_000} ms per block (min {min(times) // 1_000_000}, "
          f"max {max(times) // 1_000_000})")

    # A Trie just opened on the store (node restart): one counting walk, then a cold cache.
    cold_store = dict(snapshot)
    t0 = time.perf_counter_ns()
    opened = Trie(cold_store, base_root)
    opened._position_counts()
    walk_ns = time.perf_counter_ns() - t0
    cold_times, cold_roots = run_ours(opened, cold_store, blocks[:1])
    assert cold_roots == roots[:1]
    print(f"freshly opened Trie: node-count walk {walk_ns // 1_000_000} ms (once per opened root), "
          f"first block {cold_times[0] // 1_000_000} ms ({rate(args.batch, cold_times[0])} updates/s)")

    py_ns, py_roots = run_py_trie(dict(snapshot), base_root, blocks[:args.py_blocks])
    assert py_roots == roots[:args.py_blocks], "roots differ from py-trie"
    theirs = rate(args.batch * args.py_blocks, py_ns)
    ratio10 = ours * 10 // max(theirs, 1)
    verdict = "ok" if ours >= TARGET_RATE and ratio10 >= TARGET_RATIO * 10 else "BELOW TARGET"
    print(f"trie.apply: {ours} updates/s; py-trie: {theirs} updates/s; "
          f"ratio {ratio10 // 10}.{ratio10 % 10}x (target >= {TARGET_RATIO}x and "
          f">= {TARGET_RATE} updates/s: {verdict}); roots identical to py-trie")


if __name__ == "__main__":
    main()
