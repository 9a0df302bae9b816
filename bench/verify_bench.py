"""How fast the node verifies transaction signatures: `SignatureVerifier.verify_batch` (worker
processes plus the caller) against a plain single-process PyNaCl loop, measured in the same run.

    .venv/bin/python -m bench.verify_bench [--count 20000] [--workers 2] [--rounds 3]

Prints verifies/s for each and the ratio. The machine is shared and noisy: take the best of a few rounds.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import time

from nacl.bindings import crypto_sign_open
from nacl.signing import SigningKey

from node.verifier import SignatureVerifier
from runtime.api import SignatureCheck


def make_checks(count: int, bad_every: int = 10) -> list[SignatureCheck]:
    """`count` checks over 64 keys and ~150-byte messages; every `bad_every`-th signature is corrupt."""
    keys = [SigningKey(bytes([i]) * 32) for i in range(64)]
    checks = []
    for i in range(count):
        key = keys[i % len(keys)]
        message = b"gridchain-tx" + i.to_bytes(8, "big") + bytes(130)
        signature = key.sign(message).signature
        if bad_every and i % bad_every == 0:
            signature = bytes([signature[0] ^ 1]) + signature[1:]
        checks.append(SignatureCheck(bytes(key.verify_key), signature, message))
    return checks


def raw_loop(checks: list[SignatureCheck]) -> list[bool]:
    """The baseline: one process, one PyNaCl call per signature."""
    out = []
    for c in checks:
        try:
            crypto_sign_open(c.signature + c.message, c.public_key)
            out.append(True)
        except Exception:
            out.append(False)
    return out


def best_rate(fn, checks, rounds: int) -> tuple[float, list[bool]]:
    best, result = 0.0, []
    for _ in range(rounds):
        t0 = time.perf_counter()
        result = fn(checks)
        best = max(best, len(checks) / (time.perf_counter() - t0))
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--start-method", default="spawn")
    args = parser.parse_args()

    checks = make_checks(args.count)
    print(f"{args.count} signatures, {os.cpu_count()} cores, {args.workers} workers ({args.start_method})")

    raw, expected = best_rate(raw_loop, checks, args.rounds)
    print(f"raw PyNaCl loop, one process : {raw:>9,.0f} verifies/s")

    t0 = time.perf_counter()
    verifier = SignatureVerifier(workers=args.workers, start_method=args.start_method, eager=True)
    print(f"worker start-up              : {(time.perf_counter() - t0) * 1000:9.0f} ms")
    with verifier:
        rate, got = best_rate(verifier.verify_batch, checks, args.rounds)
        assert got == expected, "verify_batch disagrees with the raw loop"
        print(f"verify_batch                 : {rate:>9,.0f} verifies/s  ({rate / raw:.2f}x the raw loop)")

        async def run_async(cs):
            return await verifier.verify_batch_async(cs)

        arate, got = best_rate(lambda cs: asyncio.run(run_async(cs)), checks, args.rounds)
        assert got == expected, "verify_batch_async disagrees with the raw loop"
        print(f"verify_batch_async           : {arate:>9,.0f} verifies/s  ({arate / raw:.2f}x the raw loop)")

        small = checks[:32]
        t0 = time.perf_counter()
        for _ in range(100):
            verifier.verify_batch(small)
        per = (time.perf_counter() - t0) / 100
        print(f"inline batch of 32           : {per * 1e6:9.0f} us per batch")


if __name__ == "__main__":
    main()
