"""Consensus simulation over many seeds: safety and liveness checks per seed, and seeds per second.

Each seed is one deterministic run of `consensus.simulation.run` (N validators, real ed25519 votes,
a seeded network with delays, drops, partitions, crashes with WAL recovery, equivocators), with the
scenario taken in turn from the list. Any seed with a violation is printed with the command that
replays it exactly. Printed beside the rate, as the limit measured in the same run: the time spent
inside ed25519 signing and verifying (PyNaCl calls, timed as they happen), i.e. the floor the
simulation could reach if its own Python (state machine, event queue, network) cost nothing.

    .venv/bin/python -m bench.consensus_sim --seeds 2000 [--validators 4] [--heights 4] [--scenario mixed]
    .venv/bin/python -m bench.consensus_sim --seed 1234 --scenario mixed     # replay one seed, verbosely
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import nacl.bindings

from consensus.simulation import SCENARIOS, run


def scenario_for(seed: int, choice: str) -> str:
    return SCENARIOS[seed % len(SCENARIOS)] if choice == "all" else choice


def replay_command(seed: int, scenario: str, validators: int, heights: int) -> str:
    return (f".venv/bin/python -m bench.consensus_sim --seed {seed} --scenario {scenario} "
            f"--validators {validators} --heights {heights}")


class _Timed:
    """Counts and times calls through a function without changing what it does."""

    def __init__(self, fn: Callable) -> None:
        self.fn, self.calls, self.seconds = fn, 0, 0.0

    def __call__(self, *args: object) -> object:
        self.calls += 1
        t = time.perf_counter()
        try:
            return self.fn(*args)
        finally:
            self.seconds += time.perf_counter() - t


def replay_one(seed: int, scenario: str, validators: int, heights: int) -> int:
    r = run(seed, n_validators=validators, heights=heights, faults=scenario)
    print(f"seed {seed} scenario {scenario}: {r.faults}")
    print(f"virtual time {r.time_ms} ms, {r.messages} messages, highest deciding round {r.max_round}, "
          f"{len(r.evidence)} pieces of evidence, liveness expected: {r.liveness_expected}")
    for node, blocks in r.decided.items():
        print(f"  validator {node}: {' '.join(b.hex()[:8] for b in blocks)}")
    for v in r.violations:
        print(f"  VIOLATION {v}")
    print("ok" if r.ok else "FAILED")
    return 0 if r.ok else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=2000, help="how many seeds to run")
    ap.add_argument("--start", type=int, default=0, help="first seed")
    ap.add_argument("--seed", type=int, default=None, help="replay this one seed and print what happened")
    ap.add_argument("--scenario", default="all", choices=("all",) + SCENARIOS)
    ap.add_argument("--validators", type=int, default=4)
    ap.add_argument("--heights", type=int, default=4)
    args = ap.parse_args()
    if args.seed is not None:
        return replay_one(args.seed, scenario_for(args.seed, args.scenario), args.validators, args.heights)

    signs = _Timed(nacl.bindings.crypto_sign)
    opens = _Timed(nacl.bindings.crypto_sign_open)
    failures: list[tuple[int, str, list[str]]] = []
    stats = {s: [0, 0, 0, 0] for s in SCENARIOS}     # seeds, messages, evidence, highest round
    t0 = time.perf_counter()
    nacl.bindings.crypto_sign, nacl.bindings.crypto_sign_open = signs, opens   # timed, not changed
    try:
        for seed in range(args.start, args.start + args.seeds):
            scenario = scenario_for(seed, args.scenario)
            r = run(seed, n_validators=args.validators, heights=args.heights, faults=scenario)
            st = stats[scenario]
            st[0] += 1
            st[1] += r.messages
            st[2] += len(r.evidence)
            st[3] = max(st[3], r.max_round)
            if not r.ok:
                failures.append((seed, scenario, r.violations))
                print(f"FAIL seed {seed} ({scenario}): {r.violations[0]}\n  replay: "
                      f"{replay_command(seed, scenario, args.validators, args.heights)}", flush=True)
    finally:
        nacl.bindings.crypto_sign, nacl.bindings.crypto_sign_open = signs.fn, opens.fn
    elapsed = time.perf_counter() - t0
    crypto_s = signs.seconds + opens.seconds
    for name, (n, msgs, ev, rnd) in stats.items():
        if n:
            print(f"  {name:9s} {n:6d} seeds, {msgs / n:7.0f} messages/seed, {ev / n:5.2f} evidence/seed, "
                  f"highest deciding round {rnd}")
    print(f"consensus simulation: {args.seeds / elapsed:,.1f} seeds/s ({args.seeds} seeds x {args.heights} heights, "
          f"{args.validators} validators, {elapsed:.1f} s); ed25519: {signs.calls:,} signs + {opens.calls:,} "
          f"verifies took {crypto_s:.1f} s, share {crypto_s / elapsed:.2f}; the crypto floor alone would allow "
          f"{args.seeds / crypto_s:,.1f} seeds/s")
    print(f"{len(failures)} failing seed(s)" + ("" if not failures else ": " + ", ".join(str(f[0]) for f in failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
