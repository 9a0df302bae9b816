"""Market throughput: the matching engine alone, and orders through the runtime.

1. Engine: `market_engine.match` plus resting the remainder, for random bids and asks over two
   zones of one interval (grid fees per route, a capacity callable), in orders/s (target >= 100,000/s).
   Printed beside a same-run limit: a bare Python loop doing the same count of sorted-list inserts
   and dict updates (what a book does at the least), and the ratio to it.
2. Runtime: signed place_bid/place_ask extrinsics from licensed prosumers with meters in zones 1
   and 2, executed in blocks by the executive over an in-memory state (storage overlay, escrow
   transfers, events, fees; signatures pre-verified as on import, where workers verify them), in
   orders/s (target >= 5,000/s).

    .venv/bin/python -m bench.market_bench [--engine-orders 200000] [--runtime-orders 5000]
"""
from __future__ import annotations

import argparse
import bisect
import random
import time

from pallets import market_engine as me

FEES = {(1, 1): 20_000, (2, 2): 20_000, (1, 2): 35_000, (2, 1): 35_000}


#: (bid price range, ask price range): "crossing" trades most orders at once; "deep" leaves the
#: books near max_orders_per_side, so most orders rest (sorted inserts into long sides)
SCENARIOS = {"crossing": ((80_000, 160_000), (40_000, 120_000)),
             "deep": ((40_000, 110_000), (90_000, 160_000))}


def random_orders(n: int, owners: int, scenario: str = "crossing", seed: int = 7) -> list[me.Incoming]:
    rng = random.Random(seed)
    bid_range, ask_range = SCENARIOS[scenario]
    out = []
    for i in range(n):
        is_bid = rng.random() < 0.5
        price = rng.randint(*bid_range) if is_bid else rng.randint(*ask_range)
        out.append(me.Incoming(i, rng.randrange(owners).to_bytes(32, "big"), rng.choice((1, 2)), is_bid, price,
                               rng.randint(100, 2_500), True))
    return out


def run_engine(orders: list[me.Incoming]) -> tuple[int, int]:
    """Match every order in turn against a two-zone book; returns (fills, resting at the end)."""
    books = {True: {1: [], 2: []}, False: {1: [], 2: []}}   # is_bid -> zone -> side
    flow = {}
    cap_wh = 10**12

    def room_for(f, t, wh):
        used = flow.get((f, t), 0)
        g = min(wh, cap_wh - used)
        flow[(f, t)] = used + g
        return g

    fee_for = FEES.get
    fills = 0
    for o in orders:
        r = me.match(o, books[not o.is_bid], fee_for, room_for, 32, 128)
        fills += len(r.fills)
        if r.remaining_wh:
            side = books[o.is_bid][o.zone]
            if len(side) < 500:
                me.insert_resting(side, (o.price, o.order_id, o.owner, r.remaining_wh, o.green), o.is_bid)
    return fills, sum(len(s) for b in books.values() for s in b.values())


def bare_loop(orders: list[me.Incoming]) -> None:
    """The same count of sorted-list inserts (bounded lists, as the book) and dict updates."""
    sides = {1: [], 2: []}
    d = {}
    for o in orders:
        side = sides[o.zone]
        bisect.insort(side, (o.price, o.order_id))
        if len(side) > 500:
            side.pop()
        d[o.order_id] = o.quantity_wh


def bench_engine(n: int, scenario: str) -> None:
    orders = random_orders(n, owners=1000, scenario=scenario)
    t0 = time.perf_counter()
    fills, resting = run_engine(orders)
    engine_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    bare_loop(orders)
    bare_s = time.perf_counter() - t0
    rate, limit = n / engine_s, n / bare_s
    print(f"engine ({scenario}): {rate:,.0f} orders/s ({n:,} orders, {fills:,} fills, {resting} resting at the end); "
          f"bare insort+dict loop: {limit:,.0f}/s; ratio {rate / limit:.2f} (target >= 100,000 orders/s)")


# --- through the runtime -----------------------------------------------------------------------
def bench_runtime(n: int, per_block: int) -> None:
    from genesis.chain_spec import STABLECOIN_ASSET_ID, dev_spec
    from pallets import (ALL_PALLETS, VERSION, authorship, grid, identity, market, metering, system,
                         timestamp, transaction_payment)
    from primitives.extrinsic import Call, Extrinsic, sign_extrinsic
    from primitives.hashing import keccak256
    from primitives.keys import Keypair
    from runtime.executive import Runtime, execute_block
    from tests.runtime_harness import MemState

    genesis_hash = b"\x42" * 32
    rt = Runtime(ALL_PALLETS + [identity.pallet, grid.pallet, metering.pallet, market.pallet], system=system,
                 timestamp=timestamp, authorship=authorship, payment=transaction_payment,
                 genesis_hash=genesis_hash, version=VERSION)
    keys = [Keypair.from_seed(keccak256(b"market-bench" + i.to_bytes(4, "big"))) for i in range(n)]
    meters = [keccak256(b"meter" + i.to_bytes(4, "big")) for i in range(n)]
    cfg = dev_spec()["genesis"]["runtimeGenesis"]["config"]
    cfg["balances"]["balances"] += [[k.address(), 10**12] for k in keys]
    cfg["balances"]["assets"][0]["balances"] += [[k.address(), 10**12] for k in keys]
    cfg["identity"]["participants"] += [{"address": k.address(), "roles": ["prosumer"]} for k in keys]
    cfg["metering"]["meters"] += [{"meter": "0x" + m.hex(), "owner": k.address(), "zone": 1 + i % 2, "kind": 2,
                                   "rated_power_w": 20_000} for i, (k, m) in enumerate(zip(keys, meters))]
    t0 = time.perf_counter()
    state = MemState(rt.build_genesis_storage(cfg))
    genesis_s = time.perf_counter() - t0
    assert STABLECOIN_ASSET_ID == market.Config.stablecoin_asset

    now_ms = 1_700_000_000_000
    first_interval = 1_700_001_900
    rng = random.Random(11)
    xts = []
    place_bid, place_ask = market.place_bid.call_def, market.place_ask.call_def
    for i, (k, m) in enumerate(zip(keys, meters)):
        zone, t = 1 + i % 2, first_interval + 900 * rng.randrange(4)
        wh = rng.randint(100, 2_500)
        if rng.random() < 0.5:
            call = Call(market.pallet.index, place_bid.index, (zone, t, rng.randint(80_000, 160_000), wh, m, False))
        else:
            call = Call(market.pallet.index, place_ask.index, (zone, t, rng.randint(40_000, 120_000), wh, m))
        xts.append(sign_extrinsic(k, call, nonce=0, genesis_hash=genesis_hash,
                                  spec_version=rt.version.spec_version,
                                  transaction_version=rt.version.transaction_version).encode())
    from primitives.types import DIGEST_PRE_RUNTIME, ENGINE_GRID, DigestItem
    digest = (DigestItem(DIGEST_PRE_RUNTIME, ENGINE_GRID, keys[0].public_key),)
    parent = genesis_hash
    events = failed = 0
    t0 = time.perf_counter()
    for b, start in enumerate(range(0, n, per_block)):
        chunk = xts[start:start + per_block]
        now_ms += 1000
        inherent = Extrinsic(Call(timestamp.pallet.index, 0, (now_ms,))).encode()
        builder = rt.begin_block(state, parent, b + 1, digest)
        result = execute_block(builder, [inherent, *chunk], [None] + [True] * len(chunk))
        state.apply(result.changes)
        parent = keccak256(parent)
        events += len(result.events)
        failed += sum(1 for e in result.events if e[1] == system.pallet.index and e[2] == 1)
    runtime_s = time.perf_counter() - t0

    def count():
        from runtime.storage import Overlay, externalities
        with externalities(Overlay(state)):
            return market.next_trade_id.get(), market.next_order_id.get()
    trades, orders = count()
    print(f"runtime: {n / runtime_s:,.0f} orders/s ({n:,} signed orders in blocks of {per_block}, "
          f"signatures pre-verified; {orders:,} accepted, {failed} failed, {trades:,} trades; "
          f"genesis with {n:,} prosumers and meters {genesis_s:.1f} s) (target >= 5,000 orders/s)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine-orders", type=int, default=200_000)
    ap.add_argument("--runtime-orders", type=int, default=5_000)
    ap.add_argument("--per-block", type=int, default=1_000)
    args = ap.parse_args()
    if args.engine_orders:
        for scenario in SCENARIOS:
            bench_engine(args.engine_orders, scenario)
    if args.runtime_orders:
        bench_runtime(args.runtime_orders, args.per_block)


if __name__ == "__main__":
    main()
