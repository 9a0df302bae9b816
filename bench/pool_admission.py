"""Pool admission of signed transfers: the node's real path, end to end.

Each batch goes through NodeService's validator: decode, signature checks in the worker pool (two
processes), runtime validity against the best state (nonce, mortality, fee), then the pool's
bookkeeping. Prints transfers admitted per second, and the ratio to raw single-core PyNaCl
verifies per second measured in the same run.

    .venv/bin/python -m bench.pool_admission [--accounts 4000] [--per-account 5] [--batch 1000]
"""
from __future__ import annotations

import argparse
import time

from bench.common import accounts, raw_verify_rate, spec_with_accounts, transfers
from node.service import NodeConfig, NodeService
from runtime.api import TransactionSource


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=4000)
    ap.add_argument("--per-account", type=int, default=5)
    ap.add_argument("--batch", type=int, default=1000)
    args = ap.parse_args()
    keys = accounts(args.accounts)
    total = args.accounts * args.per_account
    node = NodeService(NodeConfig(spec=spec_with_accounts(keys), pool_max_count=total + 10))
    try:
        xts = transfers(keys, args.per_account, node.chain.genesis_hash)
        node.verifier.verify_batch([])   # start the workers outside the timed part
        node.verifier.warm_up()
        t = time.perf_counter()
        admitted = 0
        for i in range(0, len(xts), args.batch):
            results = node.pool.submit_batch(xts[i:i + args.batch], TransactionSource.EXTERNAL)
            admitted += sum(1 for r in results if isinstance(r, bytes))
        batch_s = time.perf_counter() - t
        assert admitted == total, f"only {admitted} of {total} admitted"
        status = node.pool.status()
        limit = raw_verify_rate()
        rate = total / batch_s
        print(f"pool: {status}")
        print(f"pool admission (batches of {args.batch}): {rate:,.0f} transfers/s; raw ed25519 verify on one "
              f"core: {limit:,.0f}/s; ratio {rate / limit:.2f} (target >= 20,000/s)")
    finally:
        import asyncio
        asyncio.run(node.stop())


if __name__ == "__main__":
    main()
