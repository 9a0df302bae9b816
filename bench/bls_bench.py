"""BLS12-381 throughput: primitives.bls (py-arkworks-bls12381) against py_ecc, measured in the same run.

    .venv/bin/python -m bench.bls_bench [--seconds 0.3] [--rounds 3] [--ref-iterations 2]

Prints operations per second of sign, verify, aggregate and fast-aggregate-verify for 4 / 7 / 32
signers on the fast backend, and the same operations on py_ecc (the pure-Python reference, a few
iterations only: it takes ~0.1-1 s per call) with the speed-up. Also a whole finality-certificate
check (`finality_certificate.verify`), the figure a light client pays per block.

fast-aggregate-verify is shown twice for the fast backend: "warm" with the validator keys already
decoded (a node or light client keeps its validator set), "cold" with the decoded-key cache cleared
before every call (each key decompressed and subgroup-checked again). The machine is shared and
noisy: the fast backend's figure is the best of a few rounds.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import time
from collections.abc import Callable
from functools import partial

from py_ecc.bls import G2ProofOfPossession as Reference

from primitives import bls
from consensus import finality_certificate as fc

SIGNER_COUNTS = (4, 7, 32)
GENESIS = hashlib.sha256(b"bench genesis").digest()
BLOCK = hashlib.sha256(b"bench block").digest()
HEIGHT = 1_000


def best_rate(fn: Callable[[], object], seconds: float, rounds: int) -> float:
    """Calls per second: the best of `rounds` runs of about `seconds` each (noise only slows down)."""
    fn()  # warm up (first-call costs, caches the steady state keeps)
    best = 0.0
    for _ in range(rounds):
        calls, t0 = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds:
                break
        best = max(best, calls / elapsed)
    return best


def ref_rate(fn: Callable[[], object], iterations: int) -> float:
    """Calls per second of a slow reference call, from a few timed iterations."""
    t0 = time.perf_counter()
    for _ in range(iterations):
        fn()
    return iterations / (time.perf_counter() - t0)


def cold_fast_aggregate_verify(keys: list[bytes], message: bytes, signature: bytes) -> bool:
    """fast_aggregate_verify with every key decoded and subgroup-checked again (cache emptied first)."""
    bls._pubkey_point.cache_clear()
    return bls.fast_aggregate_verify(keys, message, signature)


def row(name: str, fast: float, ref: float | None) -> None:
    ref_part = f"{ref:>9.2f}/s {1000 / ref:>8.0f} ms   {fast / ref:>6.0f}x" if ref else f"{'-':>11} {'-':>11}   {'-':>7}"
    print(f"{name:<34} {fast:>9,.0f}/s {1000 / fast:>8.3f} ms   {ref_part}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.3, help="length of one timed round (fast backend)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per figure, best taken (fast backend)")
    parser.add_argument("--ref-iterations", type=int, default=2, help="py_ecc calls per figure")
    args = parser.parse_args()

    n_max = max(SIGNER_COUNTS)
    sks = [bls.keygen(hashlib.sha256(b"bench validator" + i.to_bytes(4, "big")).digest()) for i in range(n_max)]
    pks = [bls.sk_to_pk(sk) for sk in sks]
    message = fc.finality_message(GENESIS, HEIGHT, BLOCK)
    partials = [fc.sign_finality(sk, GENESIS, HEIGHT, BLOCK) for sk in sks]
    signature = partials[0]

    # The two implementations must agree before their speeds mean anything.
    assert Reference.Sign(sks[0], message) == signature, "py_ecc and the fast backend disagree"

    print(f"BLS12-381 POP ciphersuite, {len(message)}-byte finality message, {os.cpu_count()} cores; "
          f"fast backend best of {args.rounds} x {args.seconds} s, py_ecc {args.ref_iterations} calls")
    print(f"{'operation':<34} {'fast':>11} {'per op':>11}   {'py_ecc':>11} {'per op':>11}   {'speed-up':>7}")

    row("sign", best_rate(lambda: bls.sign(sks[0], message), args.seconds, args.rounds),
        ref_rate(lambda: Reference.Sign(sks[0], message), args.ref_iterations))
    row("verify", best_rate(lambda: bls.verify(pks[0], message, signature), args.seconds, args.rounds),
        ref_rate(lambda: Reference.Verify(pks[0], message, signature), args.ref_iterations))

    for n in SIGNER_COUNTS:
        sigs = partials[:n]
        row(f"aggregate {n} signatures", best_rate(partial(bls.aggregate, sigs), args.seconds, args.rounds),
            ref_rate(partial(Reference.Aggregate, sigs), args.ref_iterations))

    for n in SIGNER_COUNTS:
        keys, agg = pks[:n], bls.aggregate(partials[:n])
        assert bls.fast_aggregate_verify(keys, message, agg)
        assert Reference.FastAggregateVerify(keys, message, agg), "py_ecc refuses the fast backend's aggregate"
        warm = best_rate(partial(bls.fast_aggregate_verify, keys, message, agg), args.seconds, args.rounds)
        ref = ref_rate(partial(Reference.FastAggregateVerify, keys, message, agg), max(1, args.ref_iterations // 2))
        row(f"fast-aggregate-verify {n}, warm", warm, ref)
        row(f"fast-aggregate-verify {n}, cold",
            best_rate(partial(cold_fast_aggregate_verify, keys, message, agg), args.seconds, args.rounds), None)

    for n in SIGNER_COUNTS:
        quorum = fc.default_quorum(n)
        cert = fc.build(dict(enumerate(partials[:quorum])), pks[:n], genesis_hash=GENESIS, height=HEIGHT,
                        block_hash=BLOCK, check_partials=False)
        fc.verify(cert, pks[:n], GENESIS)
        row(f"certificate verify, {quorum} of {n}",
            best_rate(partial(fc.verify, cert, pks[:n], GENESIS), args.seconds, args.rounds), None)

if __name__ == "__main__":
    main()
