"""Block import: apply + state root + LevelDB commit, in transfers per second.

An authoring chain builds blocks of signed transfers; a second chain with the same genesis imports
them (verifying every signature in the worker pool, executing, checking both roots, committing one
WriteBatch per block). Prints transfers/s and the ratio to raw single-core ed25519 verifies/s
measured in the same run (every imported transfer needs one verify).

    .venv/bin/python -m bench.block_import [--accounts 5000] [--blocks 4]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import accounts, raw_verify_rate, spec_with_accounts, transfers
from genesis.chain_spec import genesis_storage
from node.chain import Chain
from node.db import Database
from node.verifier import SignatureVerifier
from primitives.keys import dev_keypair
from primitives.hashing import keccak256
from primitives.trie import ordered_trie_root
from runtime.executive import execute_block


def print_phases(chain: Chain, signed, verifier: SignatureVerifier) -> None:
    """The steps of Chain.import_block, timed one by one (checks of author and seal omitted)."""
    h = signed.block.header
    xts = list(signed.block.extrinsics)
    t = [time.perf_counter()]
    builder = chain.runtime.begin_block(chain.state.reader(None), h.parent_hash, h.number,
                                        h.without_seal().digest)
    checks = [builder.signature_check(x) for x in xts]
    t.append(time.perf_counter())
    collect = verifier.verify_batch_deferred([c for c in checks if c is not None])
    result = execute_block(builder, xts, [None if c is None else True for c in checks])
    t.append(time.perf_counter())
    assert all(collect())
    t.append(time.perf_counter())
    assert ordered_trie_root(xts) == h.extrinsics_root
    t.append(time.perf_counter())
    prepared = chain.state.prepare(result.changes)
    assert prepared.root == h.state_root
    t.append(time.perf_counter())
    chain._commit(signed, prepared, True)
    t.append(time.perf_counter())
    names = ["signature messages", "execute (workers verify)", "wait for workers", "extrinsics root",
             "state trie", "LevelDB batch + write"]
    print(f"  block #{h.number} ({len(xts)} extrinsics): " +
          ", ".join(f"{n} {1000 * (t[i + 1] - t[i]):.0f} ms" for i, n in enumerate(names)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=5000)
    ap.add_argument("--blocks", type=int, default=4)
    ap.add_argument("--keep-states", type=int, default=256)
    ap.add_argument("--phases", action="store_true", help="also time each phase of import")
    args = ap.parse_args()
    keys = accounts(args.accounts)
    spec = spec_with_accounts(keys)
    alice = dev_keypair("Alice")
    with tempfile.TemporaryDirectory() as tmp, SignatureVerifier() as verifier:
        t0 = time.perf_counter()
        a = Chain(Database.open(Path(tmp) / "a"), lambda rt: genesis_storage(spec, rt), keep_states=args.keep_states)
        b = Chain(Database.open(Path(tmp) / "b"), lambda rt: genesis_storage(spec, rt), keep_states=args.keep_states,
                  verify_deferred=verifier.verify_batch_deferred)
        print(f"genesis with {args.accounts} funded accounts: {time.perf_counter() - t0:.1f} s (two chains)")
        xts = transfers(keys, args.blocks, a.genesis_hash)
        built = []
        t0 = time.perf_counter()
        for i in range(args.blocks):
            chunk = xts[i * args.accounts:(i + 1) * args.accounts]
            blk = a.build_block(alice, ((keccak256(x), x) for x in chunk), finalize=True)
            assert len(blk.signed.block.extrinsics) == len(chunk) + 1, "block did not take every transfer"
            built.append(blk.signed)
        author_s = time.perf_counter() - t0
        verifier.warm_up()  # workers start lazily; do not bill their start-up to import
        t0 = time.perf_counter()
        for signed in built:
            b.import_block(signed, finalize=True)
        import_s = time.perf_counter() - t0
        assert b.best_hash == a.best_hash
        if args.phases:
            c = Chain(Database.open(Path(tmp) / "c"), lambda rt: genesis_storage(spec, rt),
                      keep_states=args.keep_states)
            for signed in built:
                print_phases(c, signed, verifier)
            c.db.close()
        n = args.blocks * args.accounts
        limit = raw_verify_rate()
        rate = n / import_s
        print(f"authoring (signatures pre-verified): {n / author_s:,.0f} transfers/s")
        print(f"block import: {rate:,.0f} transfers/s ({args.blocks} blocks of {args.accounts}); "
              f"raw ed25519 verify on one core: {limit:,.0f}/s; ratio {rate / limit:.2f} (target >= 10,000/s)")
        a.db.close()
        b.db.close()


if __name__ == "__main__":
    main()
