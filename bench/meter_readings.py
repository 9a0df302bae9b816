"""Signed meter readings applied in block import, in readings per second (issue 3's figure).

N meters certified at genesis (owned by the dev prosumer Bob, zone 1) report two intervals: the
baseline readings, then readings with deltas that mint certificates. An authoring chain builds the
blocks; a second chain imports them, verifying every meter's signature in the worker batch while the
block executes. Prints readings/s per block and the ratio to raw single-core ed25519 verifies/s
measured in the same run.

    .venv/bin/python -m bench.meter_readings [--meters 1500] [--profile [--sort cumulative]]

It also prints the node process's CPU time per reading: the serial part, which bounds the rate
whatever the workers do. See docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

from bench.common import raw_verify_rate
from genesis.chain_spec import dev_spec, genesis_storage
from node.chain import Chain
from node.db import Database
from node.verifier import SignatureVerifier
from pallets import grid, metering
from primitives.extrinsic import Call, Extrinsic
from primitives.hashing import keccak256
from primitives.keys import Keypair, dev_keypair
from primitives.meter_reading import Reading, sign_reading


def _per_block_prefixes() -> tuple[bytes, ...]:
    """Items every block rewrites whatever it holds (they replace, not grow, state)."""
    from pallets import system, timestamp  # noqa: PLC0415
    return (system.events.prefix, system.extrinsic_count.prefix, system.block_weight.prefix,
            system.number.prefix, system.parent_hash.prefix, timestamp.now.prefix, system.block_hash.prefix,
            system.account.prefix, metering.meters.prefix)   # a meter's record is rewritten, not added


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--meters", type=int, default=1500)
    ap.add_argument("--profile", action="store_true", help="cProfile the imports (node process only)")
    ap.add_argument("--sort", default="tottime", help="pstats sort key with --profile")
    args = ap.parse_args()
    keys = [Keypair.from_seed(keccak256(b"bench-meter" + i.to_bytes(4, "big"))) for i in range(args.meters)]
    spec = dev_spec()
    bob = dev_keypair("Bob").address()
    spec["genesis"]["runtimeGenesis"]["config"]["metering"]["meters"] += [
        {"meter": "0x" + k.public_key.hex(), "owner": bob, "zone": 1, "kind": 2,
         "rated_power_w": 10_000} for k in keys]
    alice = dev_keypair("Alice")
    with tempfile.TemporaryDirectory() as tmp, SignatureVerifier() as verifier:
        a = Chain(Database.open(Path(tmp) / "a"), lambda rt: genesis_storage(spec, rt))
        b = Chain(Database.open(Path(tmp) / "b"), lambda rt: genesis_storage(spec, rt),
                  verify_deferred=verifier.verify_batch_deferred)
        now = int(time.time() * 1000)
        blocks = [a.build_block(alice, [], finalize=True, now_ms=now).signed]
        t = grid.interval_start(now // 1000) - 2 * grid.Config.interval_s
        for seq, (interval, register) in enumerate([(t, 100), (t + grid.Config.interval_s, 600)], start=1):
            xts = [Extrinsic(Call(metering.pallet.index, metering.submit_reading.call_def.index, (
                sign_reading(k, Reading(k.public_key, seq, interval, register, register), a.genesis_hash).to_plain(),
            ))).encode() for k in keys]
            built = a.build_block(alice, [(keccak256(x), x) for x in xts], finalize=True, now_ms=now + seq * 1000)
            assert len(built.signed.block.extrinsics) == args.meters + 1, "block did not take every reading"
            blocks.append(built.signed)
        verifier.warm_up()  # workers start lazily; do not bill their start-up to import
        b.import_block(blocks[0], finalize=True)
        limit = raw_verify_rate()
        profiler = cProfile.Profile() if args.profile else None
        for signed, what in zip(blocks[1:], ["baseline readings", "readings with deltas (mint certificates)"]):
            t0, c0 = time.perf_counter(), time.process_time()
            if profiler:
                profiler.enable()
            result = b.import_block(signed, finalize=True)
            if profiler:
                profiler.disable()
            rate = args.meters / (time.perf_counter() - t0)
            cpu_us = (time.process_time() - c0) / args.meters * 1e6
            print(f"block import, {args.meters} {what}: {rate:,.0f} readings/s; raw ed25519 verify on one core: "
                  f"{limit:,.0f}/s; ratio {rate / limit:.2f} (issue 3 target >= 10,000/s); "
                  f"node process CPU {cpu_us:.0f} us per reading (signatures in the workers)")
        # state a meter adds per interval: every key/value the delta block wrote, minus what is
        # rewritten rather than added (events, timestamp, counters, accounts, meter records)
        grown = sum(len(k) + len(v) for k, v in result.changes.items()
                    if v is not None and not k.startswith(_per_block_prefixes()))
        print(f"state per meter per interval: {grown / args.meters:,.0f} bytes of keys and values "
              f"(the interval record and certificate entries; a meter that skips intervals adds a marker per gap)")
        if profiler:
            pstats.Stats(profiler).sort_stats(args.sort).print_stats(45)
        assert b.best_hash == a.best_hash
        a.db.close()
        b.db.close()


if __name__ == "__main__":
    main()
