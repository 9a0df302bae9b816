"""A fleet of simulated meters behind one gateway, against a dev node, for a simulated day.

N meters (default 10,000) certified at genesis (owned by the dev prosumer Bob, zone 1, bidirectional,
20 kW rated: the simulated households peak near 11 kW, above a 10 kW rating, which would flag
readings implausible and suspend meters), each a household of `meters.household` on real data,
report one reading per 15-minute interval through ONE gateway process (`meters.gateway`, in this
process) to a dev node (`gridchain run --chain SPEC --validator --key //Alice`, a child process).
Chain time runs W times faster so a day passes in minutes. Half way through, the node is killed for
`--outage-intervals` intervals of chain time (default 10) and restarted.

    .venv/bin/python -m bench.meter_fleet [--meters 10000] [--hours 24] [--warp 60]
                                          [--outage-intervals 10] [--clock spec|node]

Clocks (`--clock`):
  spec  (default) the chain spec fixes the warp (`consensus.timeWarp`, `primitives.chain_clock`), so
        chain time is a function of wall time and keeps running while the node is down, as on a real
        chain. The gateway uses the same clock. An outage longer than the settlement window
        (`metering.settlement_window_intervals`, 4) therefore makes the chain refuse the readings of
        the intervals older than the window when the node is back (WindowClosed): the spool records
        them as rejected with that reason; their energy is not lost, the next accepted reading of
        each meter carries it (registers are cumulative).
  node  `--time-warp W` on the node, whose clock stands still while it is down (it resumes from its
        last block's time); the gateway follows the node's chain time (NodeChainClock). The outage
        is then a pause of the simulated world: nothing expires, and what was in flight at the kill
        is delivered after the restart.

Prints: readings finalised per second (sustained, and the burst rate while an interval's readings
drain), the lag from an interval's end to its reading being final (p50/p99, chain seconds and wall
seconds), the outage (readings spooled meanwhile, catch-up time after the restart, refused as too
late), and the checks: no reading lost (every reading built is final, rejected with a reason, or
still pending), none duplicated, every meter's chain record equal to its last final reading, and a
sample of meters checked interval by interval against the chain (reading hashes). The limit beside
the rate is raw ed25519 verification on one core, measured in the same run (each reading costs the
node one verification at admission; bench.meter_readings measures block import alone).
"""
from __future__ import annotations

import argparse
import array
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from node_process import DevNode  # noqa: E402

from bench.common import raw_verify_rate  # noqa: E402
from genesis.chain_spec import dev_spec  # noqa: E402
from meters.gateway import Gateway, GatewayMeter, NodeChainClock  # noqa: E402
from meters.household import ATTRIBUTION  # noqa: E402
from meters.sources import SimulatedSource  # noqa: E402
from meters.spool import Spool  # noqa: E402
from meters.submitter import PendingReading  # noqa: E402
from pallets import metering  # noqa: E402
from primitives.chain_clock import ChainClock  # noqa: E402
from primitives.hashing import keccak256  # noqa: E402
from primitives.keys import Keypair, dev_keypair  # noqa: E402
from rpc.client import Client, RpcError  # noqa: E402

I = 900
SAMPLE_METERS = 50


def meter_keys(n: int) -> list[Keypair]:
    return [Keypair.from_seed(keccak256(b"meter-fleet" + i.to_bytes(4, "big"))) for i in range(n)]


def fleet_spec(keys: list[Keypair], clock: str, warp: int) -> dict:
    spec = dev_spec()
    spec["id"] = "meter_fleet"
    spec["name"] = "Meter fleet bench"
    bob = dev_keypair("Bob").address()
    spec["genesis"]["runtimeGenesis"]["config"]["metering"]["meters"] += [
        {"meter": "0x" + k.public_key.hex(), "owner": bob, "zone": 1, "kind": 2, "rated_power_w": 20_000}
        for k in keys]
    if clock == "spec":
        now_ms = int(time.time() * 1000)
        spec["consensus"]["timeWarp"] = ChainClock(warp, now_ms, now_ms).to_json()
    return spec


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


@dataclass
class Tracker:
    """What the gateway reports as final, kept compactly (a million readings a day)."""

    index: dict[bytes, int]
    warp: int
    chain_lag_s: array.array = field(default_factory=lambda: array.array("d"))
    interval_end: array.array = field(default_factory=lambda: array.array("q"))
    final_wall: array.array = field(default_factory=lambda: array.array("d"))
    spool_to_final_s: array.array = field(default_factory=lambda: array.array("d"))
    first_spooled: dict[int, float] = field(default_factory=dict)                # interval end -> wall
    seen: dict[int, bytearray] = field(default_factory=dict)
    last_final: dict[int, tuple[int, int, int]] = field(default_factory=dict)   # meter -> (seq, import, export)
    duplicates: int = 0
    sample_hashes: dict[tuple[int, int], bytes] = field(default_factory=dict)   # (meter, interval) -> hash

    def on_final(self, p: PendingReading, chain_now: float | None) -> None:
        m = self.index.get(p.meter, -1)
        seen = self.seen.setdefault(m, bytearray())
        if len(seen) <= p.seq:
            seen.extend(b"\0" * (p.seq + 64 - len(seen)))
        if seen[p.seq]:
            self.duplicates += 1
        seen[p.seq] = 1
        end = p.interval_start + I
        self.interval_end.append(end)
        self.chain_lag_s.append((chain_now or end) - end)
        now = time.time()
        self.final_wall.append(now)
        self.spool_to_final_s.append(now - p.spooled_wall)
        if p.spooled_wall and p.spooled_wall < self.first_spooled.get(end, float("inf")):
            self.first_spooled[end] = p.spooled_wall
        r = metering.SignedReading.decode(p.signed).reading
        last = self.last_final.get(m)
        if last is None or p.seq > last[0]:
            self.last_final[m] = (p.seq, r.import_wh, r.export_wh)
        if 0 <= m < SAMPLE_METERS:
            self.sample_hashes[(m, p.interval_start)] = p.hash


def node_cpu_s(node: DevNode) -> float:
    try:
        proc = psutil.Process(node.pid)
        total = sum(proc.cpu_times()[:2])
        for child in proc.children(recursive=True):
            try:
                total += sum(child.cpu_times()[:2])
            except psutil.NoSuchProcess:
                pass
        return total
    except (psutil.NoSuchProcess, TypeError):
        return 0.0


async def run_fleet(args: argparse.Namespace, node: DevNode, spool: Spool, keys: list[Keypair],
                    tracker: Tracker, clock, log: logging.Logger) -> dict:
    meters = [GatewayMeter(k, SimulatedSource(i)) for i, k in enumerate(keys)]
    gw = Gateway(meters, spool, [node.url], clock=clock, poll_s=args.poll_s, max_in_flight=args.max_in_flight,
                 backoff_max_s=2.0, on_final=tracker.on_final)
    out: dict = {}
    task = asyncio.create_task(gw.run())
    node_cpu = 0.0
    try:
        while gw.rules is None or clock() <= 0:
            assert not task.done(), task.exception()
            await asyncio.sleep(0.1)
        start_chain = clock()
        first_interval = gw.rules.interval_start(start_chain)
        end_chain = first_interval + int(args.hours * 3600)
        outage_at = first_interval + int(args.hours * 3600 * args.outage_at) // I * I + I // 3
        out.update(first_interval=first_interval, end_chain=end_chain, wall_start=time.time())
        cpu0 = time.process_time()
        if args.outage_intervals > 0:
            while clock() < outage_at:
                assert not task.done(), task.exception()
                await asyncio.sleep(0.1)
            built_before = gw.stats.readings_built
            node_cpu += node_cpu_s(node)
            kill_chain, kill_wall = clock(), time.time()
            await asyncio.to_thread(node.kill)
            log.warning("bench: node killed at chain time %d; down for %d intervals", kill_chain, args.outage_intervals)
            await asyncio.sleep(args.outage_intervals * I / args.warp)
            restart_wall = time.time()
            await asyncio.to_thread(node.restart)
            up_wall = time.time()
            out.update(kill_chain=kill_chain, kill_wall=kill_wall, restart_wall=restart_wall, up_wall=up_wall,
                       built_during_outage=gw.stats.readings_built - built_before,
                       rejected_before_restart=gw.submitter.stats.rejected)
            # catch-up: until nothing that ended before the restart is still waiting
            restart_chain = clock() if args.clock == "spec" else kill_chain
            while True:
                assert not task.done(), task.exception()
                oldest = min((q[0].interval_start for q in gw.submitter.queues.values() if q), default=None)
                if oldest is None or oldest + I > restart_chain:
                    break
                await asyncio.sleep(0.1)
            out.update(catch_up_s=time.time() - up_wall, caught_up_wall=time.time(), restart_chain=restart_chain,
                       rejected_in_catch_up=gw.submitter.stats.rejected - out["rejected_before_restart"])
            log.warning("bench: caught up %.1f s after the node answered again", out["catch_up_s"])
        while clock() < end_chain + I:
            assert not task.done(), task.exception()
            await asyncio.sleep(0.2)
        deadline = time.time() + 5 * I / args.warp + 30
        while gw.submitter.pending_count() and time.time() < deadline:
            assert not task.done(), task.exception()
            await asyncio.sleep(0.1)
        out.update(wall_end=time.time(), gateway_cpu_s=time.process_time() - cpu0,
                   node_cpu_s=node_cpu + node_cpu_s(node))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    out["gateway"] = gw
    return out


def check_chain(url: str, keys: list[Keypair], tracker: Tracker, records: dict) -> dict:
    """Every meter's chain record against the gateway's: the chain's last reading is the last one
    the gateway saw final (same seq and registers), or one it spooled after that and had not yet
    confirmed when the run ended (never a seq it did not hand out); a sample interval by interval."""
    mismatched_meters = 0
    sample_checked = sample_bad = 0
    with Client(url, timeout=120) as c:
        for start in range(0, len(keys), 1000):
            chunk = list(range(start, min(start + 1000, len(keys))))
            res = c.batch([("state_getStorage", ["0x" + metering.meters.key_of(keys[i].public_key).hex()])
                           for i in chunk])
            for i, raw in zip(chunk, res):
                if isinstance(raw, RpcError) or raw is None:
                    mismatched_meters += 1
                    continue
                m = metering.Meter.decode(bytes.fromhex(raw[2:]))
                last = tracker.last_final.get(i)
                rec = records.get(keys[i].public_key)
                if last is None or rec is None:
                    mismatched_meters += 1
                elif m.last_seq == last[0]:
                    mismatched_meters += (m.last_import_wh, m.last_export_wh) != last[1:]
                else:           # confirmed after the run stopped watching: must be a later seq of ours
                    mismatched_meters += not (last[0] < m.last_seq < rec.next_seq
                                              and m.last_import_wh <= rec.last_import_wh)
        items = sorted(tracker.sample_hashes.items())
        for start in range(0, len(items), 1000):
            chunk = items[start:start + 1000]
            res = c.batch([("state_getStorage", ["0x" + metering.interval_energy.key_of(
                keys[m].public_key, t).hex()]) for (m, t), _h in chunk])
            for ((_m, _t), h), raw in zip(chunk, res):
                sample_checked += 1
                if isinstance(raw, RpcError) or raw is None or \
                        metering.IntervalEnergy.decode(bytes.fromhex(raw[2:])).reading_hash != h:
                    sample_bad += 1
    return {"mismatched_meters": mismatched_meters, "sample_checked": sample_checked, "sample_bad": sample_bad}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--meters", type=int, default=10_000)
    ap.add_argument("--hours", type=float, default=24.0, help="simulated hours of chain time")
    ap.add_argument("--warp", type=int, default=60, help="chain time speed-up (an interval takes 900/W s)")
    ap.add_argument("--block-time-ms", type=int, default=1000)
    ap.add_argument("--outage-intervals", type=int, default=10, help="node down for this many intervals (0: none)")
    ap.add_argument("--outage-at", type=float, default=0.5, help="when, as a fraction of the day")
    ap.add_argument("--clock", choices=["spec", "node"], default="spec")
    ap.add_argument("--poll-s", type=float, default=0.25)
    ap.add_argument("--max-in-flight", type=int, default=5000)
    ap.add_argument("--keep", type=Path, default=None, help="keep the node and spool in this directory")
    ap.add_argument("--verbose", action="store_true", help="show the gateway's log")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    log = logging.getLogger("bench.meter_fleet")
    if args.verbose:
        logging.getLogger("gridchain.meter").setLevel(logging.DEBUG)
    else:    # the gateway's own lines (one per rejected reading, up to 20 a round) stay quiet
        logging.getLogger("gridchain.meter").setLevel(logging.ERROR)

    limit = raw_verify_rate()
    keys = meter_keys(args.meters)
    index = {k.public_key: i for i, k in enumerate(keys)}
    tmp_ctx = tempfile.TemporaryDirectory(prefix="meter-fleet-") if args.keep is None else None
    base = Path(tmp_ctx.name) if tmp_ctx else args.keep
    base.mkdir(parents=True, exist_ok=True)
    spec_path = base / "spec.json"
    spec = fleet_spec(keys, args.clock, args.warp)
    spec_path.write_text(json.dumps(spec))
    clock = ChainClock.from_spec(spec).now_s if args.clock == "spec" else NodeChainClock()
    extra = ["--no-prometheus"] + (["--time-warp", str(args.warp)] if args.clock == "node" else [])
    node = DevNode(base / "node", block_time_ms=args.block_time_ms, extra_args=extra, ready_timeout=300,
                   command=("run", "--chain", str(spec_path), "--validator", "--key", "//Alice"))
    tracker = Tracker(index, args.warp)
    t_setup = time.time()
    print(f"meter fleet: {args.meters:,} meters, {args.hours:g} h of chain time at {args.warp}x "
          f"({I / args.warp:.1f} s per interval), blocks every {args.block_time_ms} ms, clock '{args.clock}', "
          f"outage of {args.outage_intervals} intervals; raw ed25519 verify on one core: {limit:,.0f}/s", flush=True)
    spool = Spool.open(base / "gateway.spool")
    try:
        node.start()
        print(f"node up in {time.time() - t_setup:.1f} s (genesis with {args.meters:,} meters)", flush=True)
        res = asyncio.run(run_fleet(args, node, spool, keys, tracker, clock, log))
        gw: Gateway = res["gateway"]
        checks = check_chain(node.url, keys, tracker, spool.meters())
    finally:
        node.stop()
    # -- accounting: every reading built is final, rejected (with a reason) or still pending ------------
    records = spool.meters()
    rejected = spool.rejected()
    pending = spool.pending()
    spool.close()
    rejected_by = {}
    for r in rejected:
        kind = (r.reason or "?").split(":", 1)[0]
        rejected_by[kind] = rejected_by.get(kind, 0) + 1
    lost = 0
    rej_seqs: dict[bytes, set[int]] = {}
    for r in rejected + pending:
        rej_seqs.setdefault(r.meter, set()).add(r.seq)
    for m, rec in records.items():
        i = index.get(m, -1)
        seen = tracker.seen.get(i, bytearray())
        other = rej_seqs.get(m, set())
        for seq in range(1, rec.next_seq):
            if not (seq < len(seen) and seen[seq]) and seq not in other:
                lost += 1
    built = gw.stats.readings_built
    finals = len(tracker.chain_lag_s)
    # -- figures -----------------------------------------------------------------------------------------
    wall = res["wall_end"] - res["wall_start"]
    outage_s = res.get("up_wall", 0) - res.get("kill_wall", 0)
    steady_lags = [lag for lag, end in zip(tracker.chain_lag_s, tracker.interval_end)
                   if not ("kill_chain" in res and res["kill_chain"] - I <= end <= res["kill_chain"]
                           + (args.outage_intervals + 6) * I)]
    # burst: per interval, its readings / (last one final - first one spooled), for the intervals
    # outside the outage whose readings were (nearly) all delivered
    by_end: dict[int, list[float]] = {}
    for end, w in zip(tracker.interval_end, tracker.final_wall):
        by_end.setdefault(end, []).append(w)
    bursts = [len(ws) / (max(ws) - tracker.first_spooled[end]) for end, ws in by_end.items()
              if len(ws) >= 0.99 * args.meters and end in tracker.first_spooled
              and max(ws) > tracker.first_spooled[end]
              and not ("kill_chain" in res and res["kill_chain"] - I <= end <= res["kill_chain"]
                       + (args.outage_intervals + 6) * I)]
    sustained = finals / (wall - outage_s) if wall > outage_s else float("nan")
    # capacity: the best rate over any window of one interval's wall time, and the rate during the
    # catch-up after the outage (a backlog waiting all along, so the node is the limit)
    window_s = I / args.warp
    walls = sorted(tracker.final_wall)
    peak, j = 0.0, 0
    for i, w in enumerate(walls):
        while walls[j] < w - window_s:
            j += 1
        peak = max(peak, (i - j + 1) / window_s)
    catch_up_rate = float("nan")
    if "caught_up_wall" in res:
        n = sum(1 for w in walls if res["up_wall"] <= w <= res["caught_up_wall"])
        catch_up_rate = n / max(res["caught_up_wall"] - res["up_wall"], 1e-9)
    print(f"readings built {built:,}, final {finals:,} over {wall:.0f} s of wall time ({outage_s:.0f} s of it "
          f"with the node down)")
    print(f"finalised readings/s: sustained {sustained:,.0f}/s (the offered load is {args.meters * args.warp / I:,.0f}/s); "
          f"an interval's readings from first spooled to last final: median {statistics.median(bursts) if bursts else float('nan'):,.0f}/s; "
          f"best over one interval's wall time ({window_s:.0f} s): {peak:,.0f}/s; during the catch-up: "
          f"{catch_up_rate:,.0f}/s; ratio of the best rate to raw ed25519 verify on one core: {peak / limit:.3f}")
    print(f"lag interval end -> final (outside the outage): p50 {pct(steady_lags, 0.5):,.0f} chain s "
          f"({pct(steady_lags, 0.5) / args.warp:.2f} s wall), p99 {pct(steady_lags, 0.99):,.0f} chain s "
          f"({pct(steady_lags, 0.99) / args.warp:.2f} s wall); all readings p99 "
          f"{pct(list(tracker.chain_lag_s), 0.99):,.0f} chain s; spooled -> final (wall): p50 "
          f"{pct(list(tracker.spool_to_final_s), 0.5):.2f} s, p99 {pct(list(tracker.spool_to_final_s), 0.99):.2f} s")
    if "kill_wall" in res:
        print(f"outage: node down {outage_s:.1f} s wall ({args.outage_intervals} intervals); readings spooled "
              f"meanwhile {res['built_during_outage']:,}; caught up {res['catch_up_s']:.1f} s after the node "
              f"answered again ({res['catch_up_s'] * args.warp / I:.1f} intervals); refused during catch-up "
              f"{res['rejected_in_catch_up']:,}")
    print(f"rejected (kept in the spool with the reason): {len(rejected):,} {rejected_by}; pending at the end "
          f"{len(pending):,}")
    print(f"lost (built, yet neither final, rejected nor pending): {lost}; duplicated (final twice): "
          f"{tracker.duplicates}; meters whose chain record differs from their last final reading: "
          f"{checks['mismatched_meters']}; sample of {SAMPLE_METERS} meters, {checks['sample_checked']:,} "
          f"intervals checked against the chain's reading hashes: {checks['sample_bad']} wrong")
    print(f"CPU: gateway process {res['gateway_cpu_s']:.0f} s ({res['gateway_cpu_s'] / max(finals, 1) * 1e6:.0f} us "
          f"per reading), node and its workers {res['node_cpu_s']:.0f} s "
          f"({res['node_cpu_s'] / max(finals, 1) * 1e6:.0f} us per reading)")
    print(f"gateway: {gw.summary()}")
    print(f"raw ed25519 verify on one core at the end of the run: {raw_verify_rate():,.0f}/s "
          f"(at the start: {limit:,.0f}/s; a difference means other load on the machine)")
    print(ATTRIBUTION)
    if tmp_ctx:
        tmp_ctx.cleanup()


if __name__ == "__main__":
    main()
