"""Settlement of one interval through the node: blocks needed, time and CPU per settled trade.

The issue's figure: "Settlement of one interval with 10,000 meters and 20,000 trades completes
within 10 blocks". Set-up, all through the runtime on real node chains over LevelDB (an authoring
chain builds every block, a second chain imports it, its signature checks in the worker batch):

  - genesis (the dev spec, extended): M/2 sellers (prosumers, each with one export meter) and M/2
    buyers (consumers, each with one import meter), all in zone 1, funded in GRID (fees) and GEUR
    (buyers' escrow, and everyone's penalties); zone 1's capacity raised so that the interval's
    volume fits (the dev feeder's 250 kW would hold ~62 kWh an interval).
  - trades: T + 1 signed orders (place_ask/place_bid) for one interval, alternating ask, bid, ask,
    ... at crossing prices, sized q, 2q, 2q, ..., 2q, q: each order trades q Wh with what is left of
    the one before, so the book never holds more than one order and the orders make exactly T
    trades (every order but the first and the last in two). Ask k belongs to seller k mod M/2, bid
    k to buyer k mod M/2, so with the defaults every meter is in 4 trades with 4 counterparties.
    Real orders, not seeded storage: placement through the runtime runs at a few thousand orders
    a second, so the 20,001 orders cost well under a minute to build and import.
  - readings: every meter's baseline reading for the interval before, then its reading for the
    traded interval (signed by the meter, submitted unsigned, as bench/meter_readings.py). A tenth
    of the sellers export, and a tenth of the buyers import, half a trade less than they traded:
    their last trade (allocation is first come by trade id) is partly delivered and the party at
    fault pays a penalty, so the per-trade figure includes the penalty and certificate paths.
  - block time is moved past the interval's settlement window, then blocks are built and imported
    one by one until every trade of the interval is final (settlement.trade_status SETTLED or
    REFUNDED), each block's build and import timed.

Printed: blocks needed, trades settled per block, build and import time per settlement block (wall;
the machine is shared, so the CPU figures are the ones to compare), the import's CPU split into
execution (the hooks), state root and commit, CPU per settled trade (of the importing thread, and of
the whole process, which adds LevelDB's background compaction of both bench databases), its ratio to
the weight the pallet declares per trade (W_SETTLE_TRADE, ns of reference compute), LevelDB reads and
garbage collection per trade, and what max_trades_per_block must be to finish within 10 blocks, with
the hook's declared weight and measured time at the configured size against the block's budget
(system.Config.max_block_weight; the executive counts hook weight against the block, and normal
extrinsics get what is left, at most normal_ratio_percent).

    .venv/bin/python -m bench.settlement_bench [--meters 10000 --trades 20000] [--profile [--sort cumulative]]

--profile runs cProfile over the settlement blocks' import (node process) and prints the top 30 by
tottime. A quick run: --meters 1000 --trades 2000. `--what-if-max-trades N` sets
settlement.Config.max_trades_per_block to N in this process only (both chains agree; the pallet is
unchanged), to measure a larger cap rather than extrapolate to it.
"""
from __future__ import annotations

import argparse
import cProfile
import gc
import itertools
import math
import pstats
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from genesis.chain_spec import STABLECOIN_ASSET_ID, dev_spec, genesis_storage
from node.chain import Chain
from node.db import Database
from node.verifier import SignatureVerifier
from pallets import grid, market, metering, settlement, system
from primitives.extrinsic import Call, Extrinsic, sign_extrinsic
from primitives.hashing import keccak256
from primitives.keys import Keypair, dev_keypair
from primitives.meter_reading import Reading, sign_reading

ZONE = 1
Q_WH = 500                    # every trade's quantity
ASK_PRICE = 100_000           # energy price per kWh, stablecoin units (0.10 GEUR)
BID_LIMIT = 150_000           # all-in limit per kWh; covers the ask plus the dev chain's local fee
NATIVE = 10**12               # 1,000 GRID: transaction fees of a few orders
STABLE = 100 * 10**6          # 100 GEUR: escrow of a few bids, penalties
BASE_REGISTER = 1_000_000     # cumulative registers at the baseline reading, Wh
IDLE_BLOCKS = 2               # blocks with no settlement work, imported for the overhead baseline


def key(tag: bytes, i: int) -> Keypair:
    return Keypair.from_seed(keccak256(b"bench-settle-" + tag + i.to_bytes(4, "big")))


def order_plan(trades: int, sellers: int, buyers: int) -> list[tuple[bool, int, int]]:
    """(is_ask, owner index, quantity Wh) of the T + 1 orders, in placement order: alternating
    ask/bid sized q, 2q, ..., 2q, q, so that order i trades q with order i - 1 (trade i - 1)."""
    plan = []
    for i in range(trades + 1):
        is_ask = i % 2 == 0
        owner = (i // 2) % (sellers if is_ask else buyers)
        qty = Q_WH if i in (0, trades) else 2 * Q_WH
        plan.append((is_ask, owner, qty))
    return plan


def traded_wh(plan: list[tuple[bool, int, int]], sellers: int, buyers: int) -> tuple[list[int], list[int]]:
    """Wh each seller sold and each buyer bought (trade i - 1 is between orders i - 1 and i)."""
    sold, bought = [0] * sellers, [0] * buyers
    for prev, cur in itertools.pairwise(plan):
        ask, bid = (prev, cur) if prev[0] else (cur, prev)
        sold[ask[1]] += Q_WH
        bought[bid[1]] += Q_WH
    return sold, bought


def short(i: int, offset: int) -> bool:
    """A tenth of the meters measure half a trade less than their owner traded."""
    return i % 10 == offset


def build_spec(sellers: list[Keypair], buyers: list[Keypair], seller_meters: list[Keypair],
               buyer_meters: list[Keypair], rated_w: int, zone_capacity_w: int) -> dict:
    spec = dev_spec()
    spec["id"] = "bench-settlement"
    cfg = spec["genesis"]["runtimeGenesis"]["config"]
    everyone = [k.address() for k in sellers + buyers]
    cfg["balances"]["balances"] += [[a, NATIVE] for a in everyone]
    (stable,) = [a for a in cfg["balances"]["assets"] if a["id"] == STABLECOIN_ASSET_ID]
    stable["balances"] += [[a, STABLE] for a in everyone]
    cfg["identity"]["participants"] += (
        [{"address": k.address(), "roles": ["prosumer"]} for k in sellers]
        + [{"address": k.address(), "roles": ["consumer"]} for k in buyers])
    cfg["metering"]["meters"] += (
        [{"meter": "0x" + m.public_key.hex(), "owner": k.address(), "zone": ZONE, "kind": metering.KIND_EXPORT,
          "rated_power_w": rated_w} for k, m in zip(sellers, seller_meters)]
        + [{"meter": "0x" + m.public_key.hex(), "owner": k.address(), "zone": ZONE, "kind": metering.KIND_IMPORT,
            "rated_power_w": rated_w} for k, m in zip(buyers, buyer_meters)])
    for z in cfg["grid"]["zones"]:
        if z["id"] == ZONE:
            z["import_capacity_w"] = z["export_capacity_w"] = zone_capacity_w
    return spec


class Pair:
    """The authoring chain `a` and the importing chain `b`; every block goes through both.

    The importer's state-root preparation and commit are wrapped to time them (thread CPU of the
    importing thread), so an import splits into execution (with the block's checks), state root,
    and commit (LevelDB batch and write)."""

    def __init__(self, a: Chain, b: Chain, *, time_gc: bool = True) -> None:
        self.a, self.b = a, b
        self.author = dev_keypair("Alice")
        # (private hooks of the node: a wrap whose attribute is gone is skipped, its figure stays 0)
        self.phase = {"root": 0.0, "commit": 0.0}
        self._wrap(b.state, "prepare", self._timed("root", getattr(b.state, "prepare", None)))
        self._wrap(b, "_commit", self._timed("commit", getattr(b, "_commit", None)))
        # reads that miss the node's caches and go to LevelDB: flat state values, trie nodes
        self.misses = {"flat": 0, "node": 0}
        self._wrap(b.state, "_flat_raw_get", self._counted("flat", getattr(b.state, "_flat_raw_get", None)))
        store = getattr(b.state, "_store", None)
        self._wrap(store, "_col_get", self._counted("node", getattr(store, "_col_get", None)))
        # time in the cyclic garbage collector (it runs inside whatever allocates); not under
        # cProfile, which would bill the collections to the callback's clock reads
        self.gc_s, self._gc_t0 = 0.0, 0.0
        self.time_gc = time_gc
        if time_gc:
            gc.callbacks.append(self._gc)

    def _gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_t0 = time.thread_time()
        else:
            self.gc_s += time.thread_time() - self._gc_t0

    def _counted(self, name: str, fn):
        misses = self.misses

        def leveldb_get(key):
            misses[name] += 1
            return fn(key)
        return leveldb_get

    @staticmethod
    def _wrap(obj, attr: str, wrapper) -> None:
        if obj is not None and hasattr(obj, attr):
            setattr(obj, attr, wrapper)

    def _timed(self, name: str, fn):
        def timed_phase(*args, **kwargs):
            c0 = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.phase[name] += time.thread_time() - c0
        return timed_phase

    def block(self, candidates: list[tuple[bytes, bytes]], now_ms: int, profiler=None) -> Row:
        """Build one block from the candidates and import it."""
        t0 = time.perf_counter()
        built = self.a.build_block(self.author, candidates, finalize=True, now_ms=now_ms)
        build_s = time.perf_counter() - t0
        assert not built.skipped_invalid, built.skipped_invalid[:3]
        self.phase = dict.fromkeys(self.phase, 0.0)
        self.misses.update(flat=0, node=0)
        self.gc_s = 0.0
        t0, c0, th0 = time.perf_counter(), time.process_time(), time.thread_time()
        if profiler:
            profiler.enable()
        result = self.b.import_block(built.signed, finalize=True)
        if profiler:
            profiler.disable()
        import_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
        thread_s = time.thread_time() - th0
        return Row(len(built.signed.block.extrinsics) - 1, 0, build_s, import_s, cpu_s, thread_s,
                   self.phase["root"], self.phase["commit"], self.gc_s, self.misses["flat"], self.misses["node"],
                   result)

    def fill(self, candidates: list[tuple[bytes, bytes]], now_ms: int) -> tuple[int, int]:
        """Blocks (1 s apart from now_ms) until every candidate is in one; every call must succeed.
        Returns (blocks, next now_ms)."""
        done = blocks = 0
        while done < len(candidates):
            row = self.block(candidates[done:], now_ms)
            n, result = row.included, row.result
            assert n > 0, "a block took none of the candidates"
            failed = [e for e in result.events if e[1] == system.pallet.index
                      and e[2] == system.ExtrinsicFailed._event_index]
            assert not failed, f"{len(failed)} extrinsics failed, e.g. {failed[0]}"
            done += n
            blocks += 1
            now_ms += 1000
        return blocks, now_ms


@dataclass
class Row:
    included: int             # extrinsics besides the timestamp
    settled: int              # trades made final (TradeSettled + TradeRefunded events)
    build_s: float            # authoring, wall
    import_s: float           # import, wall
    cpu_s: float              # import, node process CPU (every thread: LevelDB's background ones too)
    thread_s: float           # import, CPU of the importing thread
    root_s: float             # of which: state root (trie update), thread CPU
    commit_s: float           # of which: commit (LevelDB batch and synced write), thread CPU
    gc_s: float               # of the thread CPU: in the cyclic garbage collector
    flat_misses: int          # state values read from LevelDB (not in the value cache)
    node_misses: int          # trie nodes read from LevelDB (not in the node cache)
    result: object

    @property
    def exec_s(self) -> float:
        """Import thread CPU outside state root and commit: block checks and execution (the hooks)."""
        return self.thread_s - self.root_s - self.commit_s


def readings(meters: list[Keypair], seq: int, interval: int, registers: list[tuple[int, int]],
             genesis_hash: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    call = (metering.pallet.index, metering.submit_reading.call_def.index)
    for m, (imp, exp) in zip(meters, registers):
        signed = sign_reading(m, Reading(m.public_key, seq, interval, imp, exp), genesis_hash)
        x = Extrinsic(Call(*call, (signed.to_plain(),))).encode()
        out.append((keccak256(x), x))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--meters", type=int, default=10_000, help="meters: half sellers', half buyers'")
    ap.add_argument("--trades", type=int, default=20_000, help="trades in the settled interval")
    ap.add_argument("--target-blocks", type=int, default=10, help="the issue's bound on settlement blocks")
    ap.add_argument("--profile", action="store_true", help="cProfile the settlement blocks' import")
    ap.add_argument("--what-if-max-trades", type=int, default=None, metavar="N",
                    help="what-if: run with settlement.Config.max_trades_per_block = N in this process "
                         "(both chains; the pallet's file is unchanged)")
    ap.add_argument("--sort", default="tottime", help="pstats sort key with --profile")
    ap.add_argument("--quiet", action="store_true", help="no line per settlement block")
    args = ap.parse_args()
    if args.meters < 4 or args.meters % 2 or args.trades < 2:
        ap.error("--meters must be even and >= 4, --trades >= 2")
    n_side = args.meters // 2
    if args.what_if_max_trades:
        settlement.Config.max_trades_per_block = args.what_if_max_trades
        print(f"WHAT-IF: settlement.Config.max_trades_per_block = {args.what_if_max_trades} in this process")
    I = grid.Config.interval_s
    setup_t0 = time.perf_counter()

    sellers = [key(b"seller", i) for i in range(n_side)]
    buyers = [key(b"buyer", i) for i in range(n_side)]
    seller_meters = [key(b"seller-meter", i) for i in range(n_side)]
    buyer_meters = [key(b"buyer-meter", i) for i in range(n_side)]
    plan = order_plan(args.trades, n_side, n_side)
    sold, bought = traded_wh(plan, n_side, n_side)
    # rated for the largest order and the largest interval delta (plausibility), in whole kW
    most_wh = max(2 * Q_WH, *sold, *bought)
    rated_w = math.ceil(most_wh * 3600 / I / 1000) * 1000
    zone_capacity_w = 2 * math.ceil(args.trades * Q_WH * 3600 / I)
    spec = build_spec(sellers, buyers, seller_meters, buyer_meters, rated_w, zone_capacity_w)

    # the traded interval t: ended 8 intervals ago, so that every block time (orders before t,
    # readings after it, settlement after its window) stays behind the importer's clock
    t = grid.interval_start(int(time.time())) - 8 * I
    window_closes = settlement.window_closes_at(t)
    assert window_closes + 600 < time.time(), "settlement blocks would be ahead of the clock"
    now_ms = (t - I) * 1000            # first block: orders for t are open until t - gate_closure_s

    with tempfile.TemporaryDirectory() as tmp, SignatureVerifier() as verifier:
        g0 = time.perf_counter()
        a = Chain(Database.open(Path(tmp) / "a"), lambda rt: genesis_storage(spec, rt))
        b = Chain(Database.open(Path(tmp) / "b"), lambda rt: genesis_storage(spec, rt),
                  verify_deferred=verifier.verify_batch_deferred)
        genesis_s = time.perf_counter() - g0
        verifier.warm_up()
        pair = Pair(a, b, time_gc=not args.profile)
        gh = a.genesis_hash

        # --- trades, through signed orders -----------------------------------------------------
        s0 = time.perf_counter()
        nonces: dict[bytes, int] = {}
        orders = []
        for is_ask, owner, qty in plan:
            k, meter = (sellers[owner], seller_meters[owner]) if is_ask else (buyers[owner], buyer_meters[owner])
            if is_ask:
                call = Call(market.pallet.index, market.place_ask.call_def.index,
                            (ZONE, t, ASK_PRICE, qty, meter.public_key))
            else:
                call = Call(market.pallet.index, market.place_bid.call_def.index,
                            (ZONE, t, BID_LIMIT, qty, meter.public_key, False))
            nonce = nonces.get(k.public_key, 0)
            nonces[k.public_key] = nonce + 1
            x = sign_extrinsic(k, call, nonce=nonce, genesis_hash=gh, spec_version=1,
                               transaction_version=1).encode()
            orders.append((keccak256(x), x))
        sign_s = time.perf_counter() - s0
        o0 = time.perf_counter()
        order_blocks, now_ms = pair.fill(orders, now_ms)
        orders_s = time.perf_counter() - o0
        assert now_ms // 1000 < t - market.Config.gate_closure_s, "orders ran past gate closure"
        n_trades = b.read(lambda: market.next_trade_id.get())
        assert n_trades == args.trades, f"{n_trades} trades, expected {args.trades}"
        ids = b.read(lambda: market.interval_trade_ids(t))
        assert ids == list(range(args.trades)), "the interval does not hold exactly the bench's trades"

        # --- readings: baselines for t - I (at t), then the traded interval (at t + I) ------------
        r0 = time.perf_counter()
        base = [(BASE_REGISTER, BASE_REGISTER)] * n_side
        sell_regs = [(BASE_REGISTER, BASE_REGISTER + wh - (Q_WH // 2 if short(i, 9) and wh else 0))
                     for i, wh in enumerate(sold)]
        buy_regs = [(BASE_REGISTER + wh - (Q_WH // 2 if short(i, 4) and wh else 0), BASE_REGISTER)
                    for i, wh in enumerate(bought)]
        now_ms = t * 1000
        baseline_blocks, _ = pair.fill(readings(seller_meters, 1, t - I, base, gh)
                                       + readings(buyer_meters, 1, t - I, base, gh), now_ms)
        now_ms = (t + I) * 1000
        reading_blocks, now_ms = pair.fill(readings(seller_meters, 2, t, sell_regs, gh)
                                           + readings(buyer_meters, 2, t, buy_regs, gh), now_ms)
        readings_s = time.perf_counter() - r0

        # --- settlement --------------------------------------------------------------------------
        # this block's hooks still see the readings' time; the next block's hooks see the window closed
        pair.block([], window_closes * 1000)
        now_ms = window_closes * 1000 + 1000
        assert b.read(lambda: settlement.next_interval.get()) <= t
        setup_s = time.perf_counter() - setup_t0
        print(f"set-up: {args.meters:,} meters ({n_side:,} sellers, {n_side:,} buyers, rated {rated_w:,} W), "
              f"{args.trades:,} trades of {Q_WH} Wh in one interval of zone {ZONE} from {len(orders):,} signed "
              f"orders in {order_blocks} blocks ({orders_s:.1f} s to build and import, {sign_s:.1f} s to sign); "
              f"{2 * args.meters:,} readings in {baseline_blocks + reading_blocks} blocks ({readings_s:.1f} s); "
              f"genesis of both chains {genesis_s:.1f} s; set-up total {setup_s:.0f} s")

        settled_ev = (settlement.pallet.index, settlement.TradeSettled._event_index)
        refunded_ev = (settlement.pallet.index, settlement.TradeRefunded._event_index)
        profiler = cProfile.Profile() if args.profile else None
        rows: list[Row] = []
        while b.read(lambda: settlement.next_interval.get()) <= t:
            assert len(rows) < 2 * math.ceil(args.trades / settlement.Config.max_trades_per_block) + 10
            row = pair.block([], now_ms, profiler)
            now_ms += 1000
            row.settled = sum(1 for e in row.result.events if (e[1], e[2]) in (settled_ev, refunded_ev))
            rows.append(row)
            if not args.quiet:
                print(f"  settlement block {len(rows):>3}: {row.settled:>5} trades; build {row.build_s * 1e3:6.0f} ms, "
                      f"import {row.import_s * 1e3:6.0f} ms; import CPU: thread {row.thread_s * 1e3:6.0f} ms "
                      f"(execution {row.exec_s * 1e3:4.0f}, state root {row.root_s * 1e3:4.0f}, "
                      f"commit {row.commit_s * 1e3:3.0f}; gc {row.gc_s * 1e3:3.0f}), process {row.cpu_s * 1e3:6.0f} ms; "
                      f"LevelDB reads: {row.flat_misses:,} values, {row.node_misses:,} trie nodes")
        # idle blocks: what building and importing a block costs with no settlement work
        idle = min((pair.block([], now_ms + i * 1000) for i in range(IDLE_BLOCKS)), key=lambda r: r.thread_s)

        total = sum(r.settled for r in rows)
        final = b.read(lambda: [settlement.trade_status(i) for i in range(args.trades)])
        n_settled = sum(1 for s in final if s == settlement.SETTLED)
        n_refunded = sum(1 for s in final if s == settlement.REFUNDED)
        assert n_settled + n_refunded == args.trades == total, (n_settled, n_refunded, total)
        n_penalised = b.read(lambda: sum(1 for i in range(args.trades) if settlement.outcome(i).penalty > 0))

        # --- figures -------------------------------------------------------------------------------
        per_block = settlement.Config.max_trades_per_block
        blocks = len(rows)

        def avg_ms(f) -> float:
            return sum(f(r) for r in rows) / blocks * 1e3

        def per_trade_us(f, minus: float = 0.0) -> float:
            return (sum(f(r) for r in rows) - blocks * minus) / total * 1e6

        cpu_us = per_trade_us(lambda r: r.cpu_s)
        thread_us = per_trade_us(lambda r: r.thread_s)
        exec_us = per_trade_us(lambda r: r.exec_s, idle.exec_s)                  # the hook's work
        store_us = per_trade_us(lambda r: r.root_s + r.commit_s, idle.root_s + idle.commit_s)
        w_ns = settlement.W_SETTLE_TRADE
        sys_cfg = system.Config
        block_ms = sys_cfg.max_block_weight / 1e6
        print(f"settlement of one interval, {args.meters:,} meters and {args.trades:,} trades "
              f"({n_settled:,} settled, {n_refunded:,} refunded, {n_penalised:,} with a penalty): "
              f"{blocks} blocks at max_trades_per_block = {per_block} "
              f"(target <= {args.target_blocks} blocks: {'met' if blocks <= args.target_blocks else 'NOT met'})")
        print(f"trades settled per block: {total / blocks:,.0f} on average, {max(r.settled for r in rows):,} at most "
              f"(max_trades_per_block)")
        print(f"per settlement block: build {avg_ms(lambda r: r.build_s):.0f} ms, import {avg_ms(lambda r: r.import_s):.0f} ms "
              f"(wall, average; {sum(r.build_s + r.import_s for r in rows):.1f} s for all {blocks}); import CPU of the "
              f"importing thread {avg_ms(lambda r: r.thread_s):.0f} ms = execution {avg_ms(lambda r: r.exec_s):.0f} + "
              f"state root {avg_ms(lambda r: r.root_s):.0f} + commit {avg_ms(lambda r: r.commit_s):.0f}; "
              f"an idle block: build {idle.build_s * 1e3:.1f} ms, import {idle.import_s * 1e3:.1f} ms")
        print(f"node CPU per settled trade (import): {cpu_us:,.0f} us of process CPU (every thread, LevelDB compaction "
              f"of both bench databases included), {thread_us:,.0f} us of the importing thread; of which above an "
              f"idle block: execution (the hook) {exec_us:,.0f} us, state root + commit {store_us:,.0f} us")
        print(f"ratio to the declared weight W_SETTLE_TRADE = {w_ns / 1e3:,.0f} us: execution {exec_us * 1e3 / w_ns:.2f}, "
              f"importing thread all in {thread_us * 1e3 / w_ns:.2f}, process CPU {cpu_us * 1e3 / w_ns:.2f}")
        writes = per_trade_us(lambda r: len(r.result.changes), len(idle.result.changes)) / 1e6
        print(f"state per settled trade: {writes:.1f} keys written; cache misses (import): "
              f"{per_trade_us(lambda r: r.flat_misses) / 1e6:.1f} state values "
              f"and {per_trade_us(lambda r: r.node_misses) / 1e6:.1f} trie nodes read from LevelDB"
              + (f"; garbage collector {avg_ms(lambda r: r.gc_s):.0f} ms a block "
                 f"({per_trade_us(lambda r: r.gc_s):.0f} us per trade)" if pair.time_gc else ""))
        need = math.ceil(args.trades / args.target_blocks)
        declared_ms = (settlement.W_HOOK_BASE + 2 * settlement.W_INTERVAL + per_block * w_ns) / 1e6
        hook_ms = per_block * exec_us / 1e3
        import_ms = idle.thread_s * 1e3 + hook_ms + per_block * store_us / 1e3
        print(f"to settle {args.trades:,} trades within {args.target_blocks} blocks: max_trades_per_block >= {need:,} "
              f"(it is {per_block:,}). At {per_block:,} a block: declared hook weight {declared_ms:.0f} ms, "
              f"{declared_ms / block_ms:.0%} of the {block_ms:.0f} ms block (normal extrinsics get the rest); "
              f"measured: the hook {hook_ms:,.0f} ms, the whole import {import_ms:,.0f} ms of CPU "
              f"({'within' if import_ms <= block_ms else 'OVER'} the {block_ms:.0f} ms block); authoring costs as "
              f"much again on the author")
        if profiler:
            pstats.Stats(profiler).sort_stats(args.sort).print_stats(30)
        assert b.best_hash == a.best_hash
        a.db.close()
        b.db.close()


if __name__ == "__main__":
    main()
