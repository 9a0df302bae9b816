"""Run every benchmark in turn (`make bench`); each prints its figures and the ratio to a limit
measured in the same run. Results and their interpretation: docs/benchmarks.md.

Benchmarks load both cores: run them on an otherwise idle machine, one at a time, as this does.
"""
from __future__ import annotations

import subprocess
import sys

BENCHES = [
    ("trie", ["bench.trie_bench"]),
    ("signature verifier", ["bench.verify_bench"]),
    ("pool admission", ["bench.pool_admission"]),
    ("block import", ["bench.block_import"]),
    ("meter readings in block import", ["bench.meter_readings"]),
    ("field meters' records in block import", ["bench.field_meter_bench"]),
    ("market", ["bench.market_bench"]),
    ("call auction allocation", ["bench.call_auction_alloc"]),
    ("coupled clearing of 3 zones, 5,000 orders", ["bench.coupled_clearing"]),
    ("storage commit", ["bench.storage_bench"]),
    ("RPC", ["bench.rpc_bench"]),
    ("RPC under abuse", ["bench.rpc_abuse"]),
    ("worker processes after a SIGKILL", ["bench.orphan_exit"]),
    ("node memory", ["bench.node_memory"]),
    ("settlement of one interval", ["bench.settlement_bench"]),
    ("council calls and runtime version 2's migration", ["bench.governance_bench"]),
    ("BLS finality signatures", ["bench.bls_bench"]),
    ("consensus simulation", ["bench.consensus_sim", "--seeds", "2000"]),
    ("p2p gossip and requests", ["bench.p2p_bench"]),
    ("BFT network", ["bench.bft_bench"]),
    ("web app in a browser", ["bench.app_bench"]),
]


def main() -> int:
    failed = []
    for name, module in BENCHES:
        print(f"\n=== {name}: python -m {' '.join(module)}", flush=True)
        if subprocess.call([sys.executable, "-m", *module]) != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
