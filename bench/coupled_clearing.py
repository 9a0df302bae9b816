"""Coupled clearing of a 3-zone region with 5,000 resting orders, in block import (issue 12).

The issue's figure: "Coupled clearing of 3 zones and 5,000 orders: time in block import, and the
weight declared. Target: at most 20% of one block." One block is system.Config.max_block_weight
(1e9 ns: one second of reference compute), so the target is 200 ms.

Set-up, all through the runtime on real node chains over LevelDB (an authoring chain builds every
block, a second chain imports it, its signature checks in the worker batch; `bench.settlement_bench`'s
Pair):
  - genesis (the dev spec, extended): a third zone, the zones in a line 1 - 2 - 3 as one coupled
    region, links of 20 kW downstream (1 -> 2, 2 -> 3: 5,000 Wh an interval, they bind) and 5 kW
    upstream; zone capacities of 10 MW, so the links bind and the zone rooms do not; a local tariff
    in zone 3 as in the others. Participants: per zone as many sellers (prosumers with an export
    meter) as buyers (consumers with an import meter), each placing ORDERS_EACH orders on its one
    side (one side per participant, region and interval, as the market requires).
  - orders: `--orders` signed place_ask / place_bid for one interval, spread evenly over the 3 zones
    and the 2 sides; 100 - 2,500 Wh each. `--shape mixed` (the default): asks cheap upstream (zone 1:
    30,000 - 90,000 per kWh, zone 2: 60,000 - 120,000, zone 3: 90,000 - 160,000), bids 60,000 -
    200,000 all-in everywhere, so that about half the orders are in the money, much trades in its
    own zone and the links carry what the downstream zones lack. `--shape crossing`: every bid
    (150,000 - 200,000) covers every ask (30,000 - 90,000), so nearly every order trades: the most
    trades, which cost more than the solver. 5,000 orders do not fit in 3 zones x 2 sides x 500
    (market.Config.max_orders_per_side): this process raises the bound to `--max-per-side` (1,000)
    for both chains (the pallet's file is unchanged) and says so.
  - the clearing: one block at the gate's closing time (its hooks still see the time before), then
    the block whose on_initialize clears the region (the expiry hook, before any order expires).

Printed: the clearing block's import (wall, and CPU of the importing thread split into execution,
state root and commit), the expiry hook's own CPU, trades made, the hook's declared weight
(W_EXPIRE_BASE + W_EXPIRY x units; the clearing charges coupled.UNITS_PER_ORDER units per order),
the ratio of the import to 20% of a block, the ratio of declared weight to measured time, and the
UNITS_PER_ORDER the measured cost per order calls for. `--profile` runs cProfile over the clearing
block's import (its figures are then the profiler's) and prints the top 25 by tottime (`--sort`).

    .venv/bin/python -m bench.coupled_clearing [--quick] [--orders 5000] [--shape mixed|crossing] [--profile]

--quick: 1,500 orders (they fit in 500 per side, no raised bound).
"""
from __future__ import annotations

import argparse
import cProfile
import math
import pstats
import random
import tempfile
import time
from pathlib import Path

from bench.settlement_bench import Pair
from genesis.chain_spec import DEV_TARIFFS, STABLECOIN_ASSET_ID, dev_spec, genesis_storage
from node.chain import Chain
from node.db import Database
from node.verifier import SignatureVerifier
from pallets import grid, market, metering, system
from pallets.market import coupled, state
from primitives.codec import ListOf
from primitives.extrinsic import Call, sign_extrinsic
from primitives.hashing import keccak256
from primitives.keys import Keypair

ZONES = (1, 2, 3)
ORDERS_EACH = 4                      # orders per participant, all on its one side
NATIVE = 10**12                      # 1,000 GRID: transaction fees
STABLE = 100 * 10**6                 # 100 GEUR: escrow of a few bids
#: (ask price range per zone, bid price range) per shape: "mixed" leaves about half the orders out of
#: the money; in "crossing" every bid covers every ask, so nearly every order trades (the most trades)
SHAPES = {"mixed": ({1: (30_000, 90_000), 2: (60_000, 120_000), 3: (90_000, 160_000)}, (60_000, 200_000)),
          "crossing": ({1: (30_000, 90_000), 2: (30_000, 90_000), 3: (30_000, 90_000)}, (150_000, 200_000))}
LINKS_W = [[1, 2, 20_000], [2, 3, 20_000], [2, 1, 5_000], [3, 2, 5_000]]
ZONE_CAPACITY_W = 10_000_000
RATED_W = 20_000
TARGET_SHARE = 0.20                  # the bound: 20% of one block


def key(tag: bytes, i: int) -> Keypair:
    return Keypair.from_seed(keccak256(b"bench-coupled-" + tag + i.to_bytes(4, "big")))


def raise_book_bound(per_side: int) -> None:
    """max_orders_per_side in this process only (both chains), with the book's codec bound."""
    market.Config.max_orders_per_side = per_side
    state.BookSide.max_len = per_side
    state.BookSide.checked = ListOf(state.BookEntry, max_len=per_side)


def build_spec(people: list[tuple[Keypair, Keypair, int, bool]]) -> dict:
    """The dev spec with zone 3, the coupled region 1 - 2 - 3, and `people` (key, meter key, zone,
    is_seller) licensed, funded and metered."""
    spec = dev_spec()
    spec["id"] = "bench-coupled"
    cfg = spec["genesis"]["runtimeGenesis"]["config"]
    g = cfg["grid"]
    dso = g["zones"][0]["dso"]
    g["zones"].append({"id": 3, "dso": dso, "name": "feeder-east", "import_capacity_w": 0, "export_capacity_w": 0})
    for z in g["zones"]:
        z["import_capacity_w"] = z["export_capacity_w"] = ZONE_CAPACITY_W
    g["links"] = LINKS_W
    bands = (0, 1)
    g["tariffs"] = [[a, b, band, DEV_TARIFFS["local" if a == b else "cross"][band]]
                    for a in ZONES for b in ZONES for band in bands]
    cfg["market"] = {"coupled_regions": [list(ZONES)]}
    everyone = [k.address() for k, _m, _z, _s in people]
    cfg["balances"]["balances"] += [[a, NATIVE] for a in everyone]
    (stable,) = [a for a in cfg["balances"]["assets"] if a["id"] == STABLECOIN_ASSET_ID]
    stable["balances"] += [[a, STABLE] for a in everyone]
    cfg["identity"]["participants"] += [{"address": k.address(), "roles": ["prosumer" if s else "consumer"]}
                                        for k, _m, _z, s in people]
    cfg["metering"]["meters"] += [
        {"meter": "0x" + m.public_key.hex(), "owner": k.address(), "zone": z,
         "kind": metering.KIND_EXPORT if s else metering.KIND_IMPORT, "rated_power_w": RATED_W}
        for k, m, z, s in people]
    return spec


def participants(n_orders: int) -> list[tuple[Keypair, Keypair, int, bool]]:
    """Participant i: zone 1 + i % 3, a seller if (i // 3) is even; ORDERS_EACH orders each."""
    n = math.ceil(n_orders / ORDERS_EACH)
    return [(key(b"p", i), key(b"m", i), ZONES[i % 3], (i // 3) % 2 == 0) for i in range(n)]


def signed_orders(people, n_orders: int, t: int, genesis_hash: bytes, shape: str) -> list[tuple[bytes, bytes]]:
    """n_orders signed orders for interval t, participant by participant in turn (nonce order)."""
    ask_prices, bid_prices = SHAPES[shape]
    rng = random.Random(12)
    out = []
    for k in range(n_orders):
        who, meter, zone, seller = people[k % len(people)]
        nonce = k // len(people)
        wh = rng.randint(100, 2_500)
        if seller:
            call = Call(market.pallet.index, market.place_ask.call_def.index,
                        (zone, t, rng.randint(*ask_prices[zone]), wh, meter.public_key))
        else:
            call = Call(market.pallet.index, market.place_bid.call_def.index,
                        (zone, t, rng.randint(*bid_prices), wh, meter.public_key, False))
        x = sign_extrinsic(who, call, nonce=nonce, genesis_hash=genesis_hash, spec_version=1,
                           transaction_version=1).encode()
        out.append((keccak256(x), x))
    return out


class HookMeter:
    """Wraps the market's expiry hook (both chains share the pallet): the last call's thread CPU
    and the weight it declared."""

    def __init__(self) -> None:
        hooks = market.pallet.hooks_initialize
        self.index = hooks.index(market.expire_closed_books)
        self.original = hooks[self.index]
        self.cpu_s, self.weight = 0.0, 0
        hooks[self.index] = self.timed

    def timed(self, n: int) -> int:
        c0 = time.thread_time()
        weight = self.original(n)
        self.cpu_s, self.weight = time.thread_time() - c0, weight
        return weight


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=5_000, help="resting orders in the region")
    ap.add_argument("--quick", action="store_true", help="1,500 orders")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="mixed", help="order prices (see SHAPES)")
    ap.add_argument("--max-per-side", type=int, default=1_000,
                    help="market.Config.max_orders_per_side in this process, if the orders need more than 500")
    ap.add_argument("--profile", action="store_true", help="cProfile the clearing block's import")
    ap.add_argument("--sort", default="tottime", help="pstats sort key with --profile")
    args = ap.parse_args()
    n = 1_500 if args.quick else args.orders
    per_side = math.ceil(n / (2 * len(ZONES)))
    if per_side > market.Config.max_orders_per_side:
        if per_side > args.max_per_side:
            ap.error(f"{n:,} orders need {per_side} per book side: raise --max-per-side")
        print(f"NOTE: {n:,} orders need up to {per_side} per book side; market.Config.max_orders_per_side raised "
              f"from {market.Config.max_orders_per_side} to {args.max_per_side} in this process (both chains)")
        raise_book_bound(args.max_per_side)
    I = grid.Config.interval_s
    gate = market.Config.gate_closure_s
    people = participants(n)
    spec = build_spec(people)
    # the traded interval: in the past, so that every block time stays behind the importer's clock
    t = grid.interval_start(int(time.time())) - 8 * I
    now_ms = (t - I) * 1000
    hook = HookMeter()
    with tempfile.TemporaryDirectory() as tmp, SignatureVerifier() as verifier:
        g0 = time.perf_counter()
        a = Chain(Database.open(Path(tmp) / "a"), lambda rt: genesis_storage(spec, rt))
        b = Chain(Database.open(Path(tmp) / "b"), lambda rt: genesis_storage(spec, rt),
                  verify_deferred=verifier.verify_batch_deferred)
        genesis_s = time.perf_counter() - g0
        verifier.warm_up()
        pair = Pair(a, b, time_gc=not args.profile)
        s0 = time.perf_counter()
        orders = signed_orders(people, n, t, a.genesis_hash, args.shape)
        order_blocks, now_ms = pair.fill(orders, now_ms)
        setup_s = time.perf_counter() - s0
        assert now_ms // 1000 < t - gate, "orders ran past gate closure"
        resting = b.read(lambda: {(z, s): len(market.book_side(z, t, s)) for z in ZONES for s in (market.BID,
                                                                                                  market.ASK)})
        assert sum(resting.values()) == n, resting
        print(f"set-up: {len(people):,} participants (one side each, {ORDERS_EACH} orders each), {n:,} resting "
              f"orders for one interval in zones 1 - 2 - 3 (per zone bids/asks: "
              + ", ".join(f"{resting[(z, market.BID)]}/{resting[(z, market.ASK)]}" for z in ZONES)
              + f") from {order_blocks} blocks ({setup_s:.1f} s to sign, build and import); genesis of both "
              f"chains {genesis_s:.1f} s")

        idle = pair.block([], (t - gate) * 1000)           # its hooks still see the time before the gate
        assert b.read(lambda: market.clearing(0, t)) is None
        profiler = cProfile.Profile() if args.profile else None
        row = pair.block([], (t - gate) * 1000 + 1000, profiler)
        result = b.read(lambda: market.clearing(0, t))
        assert result is not None, "the region did not clear"
        trades = b.read(lambda: market.next_trade_id.get())
        rents = [x for x in result.links if x.rent]
        hook_ms, weight_ms = hook.cpu_s * 1e3, hook.weight / 1e6
        block_ms = system.Config.max_block_weight / 1e6
        target_ms = TARGET_SHARE * block_ms
        above_idle_ms = (row.thread_s - idle.thread_s) * 1e3
        under = " (under cProfile)" if args.profile else ""
        print(f"clearing ({args.shape} prices): {trades:,} trades, {result.volume_wh:,} Wh; zone prices "
              + ", ".join(f"{z.zone}: {z.price_per_kwh:,}" for z in result.zones)
              + f"; congested links {[(x.from_zone, x.to_zone) for x in result.links if x.congested]}, "
              f"rent {result.rent:,} over {len(rents)} links")
        print(f"clearing block import{under}: {row.import_s * 1e3:.0f} ms wall; importing thread CPU "
              f"{row.thread_s * 1e3:.0f} ms = execution {row.exec_s * 1e3:.0f} (the expiry hook "
              f"{hook_ms:.0f}) + state root {row.root_s * 1e3:.0f} + commit {row.commit_s * 1e3:.0f}; "
              f"{len(row.result.changes):,} keys written; an idle block's import {idle.thread_s * 1e3:.1f} ms")
        print(f"target: 20% of one block = {target_ms:.0f} ms: ratio {row.thread_s * 1e3 / target_ms:.2f} "
              f"(import CPU), {hook_ms / target_ms:.2f} (the hook alone) "
              f"({'met' if row.thread_s * 1e3 <= target_ms else 'NOT met'})")
        per_order_all_us = above_idle_ms * 1e3 / n
        per_order_hook_us = hook_ms * 1e3 / n
        units = coupled.UNITS_PER_ORDER
        print(f"declared hook weight {weight_ms:.0f} ms = W_EXPIRE_BASE + W_EXPIRY x (max_expiries_per_block - "
              f"budget left), {units} units ({units * market.W_EXPIRY / 1e3:.0f} us) per order: "
              f"{weight_ms / block_ms:.0%} of the block; ratio declared / measured: {weight_ms / hook_ms:.2f} "
              f"(the hook), {weight_ms / above_idle_ms:.2f} (the import above an idle block)")
        need_hook = math.ceil(per_order_hook_us * 1e3 / market.W_EXPIRY)
        need_all = math.ceil(per_order_all_us * 1e3 / market.W_EXPIRY)
        print(f"per order: the hook {per_order_hook_us:.0f} us, the import above an idle block "
              f"{per_order_all_us:.0f} us; UNITS_PER_ORDER (W_EXPIRY = {market.W_EXPIRY / 1e3:.0f} us) to cover "
              f"them: {need_hook} (the hook), {need_all} (all in); it is {units}")
        if profiler:
            pstats.Stats(profiler).sort_stats(args.sort).print_stats(25)
        assert b.best_hash == a.best_hash
        a.db.close()
        b.db.close()


if __name__ == "__main__":
    main()
