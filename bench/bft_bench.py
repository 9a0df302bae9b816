"""BFT network on loopback: finality latency, sustained transfer throughput and follower sync,
each against a single dev node given the same load in the same run.

    .venv/bin/python -m bench.bft_bench [--validators 4] [--duration 60] [--rate N]

N validators (`//Validator1..N`, as `gridchain testnet` runs them) are real processes on loopback
with a chain spec whose genesis also funds `--accounts-per-phase` fresh accounts per load phase.
Then, in this order:

1. finality latency with no load: one transfer at a time (each from its own account) with
   `author_submitAndWatchExtrinsic`, to the validators in turn; submit-to-`finalized` p50/p99, and
   the time between consecutive finalized heads (node0's `chain_subscribeFinalizedHeads`).
   Target: p50 <= 100 ms.
2. sustained load: transfers pre-signed before the phase (nonces per account), submitted open-loop
   at a fixed rate in JSON-RPC batches of `author_submitExtrinsic` over `--connections` WebSockets
   per validator (an account always talks to the same validator, as a wallet would). Finality is
   read from node0's finalized heads: every finalized block is fetched and its extrinsics matched
   to the submit times. Figures: transfers/s finalised inside the submission window, p99
   submit-to-finalized over every submitted transfer (one never finalised counts as infinite).
   A step is sustained when the client wrote >= 90% of the rate, >= 90% of it was finalised in
   the window (after a 2 s ramp) and nothing was refused or lost (15 s to drain). A burst of
   `--warmup` transfers to each node at once runs first, unmeasured: the nodes start their
   signature workers on the first batch of >= 64 checks, which stalls a validator for seconds (see
   node/verifier.py), and that is not billed to the first step. Without `--rate` the rate is stepped (`--rates`,
   `--step-duration` s each) up to the first step that is not sustained, then the highest
   sustained rate runs for `--duration` s. Each phase starts on empty pools (Prometheus
   gridchain_pool_ready) and with fresh accounts. Targets: >= 3,000 transfers/s with p99 <= 1 s.
3. sync of a lagging node: a fresh follower (no `--validator`, bootnodes = the validators) starts
   after the load; blocks/s and transfers/s it replays from the last time it was seen at block 0
   (polled every 50 ms) until it holds the finalized head of the moment it started. Target:
   >= 5,000 transfers/s. The same blocks are
   then imported offline (`Chain.import_block`, two signature workers) in this process: the
   replay rate without the network, as the limit.

The single dev node (`gridchain run --chain <dev spec + the same accounts> --validator --key
//Alice`, instant seal by default: `--dev-block-time-ms 0`, a block as soon as transactions arrive,
the closest analogue of the validators' 20 ms minimum block interval) then gets phases 1 and 2 at
the same rates, and its chain is imported offline as in 3 (a dev chain has no network to sync
from). Every process is stopped by pid in a `finally` (`node.testnet.stop_all`, then any
signature worker left behind).

The load generator runs in this process on the same two cores as the nodes; its CPU is printed
with the nodes' (main thread, other threads = libp2p/trio and executors, signature workers), per
phase, so a figure limited by the client shows as such. Figures are printed, never asserted.

Diagnosis (the node logs stay under `--base-dir`, or the temporary base is kept):

    --profile       each node under cProfile (main thread only); node0's top functions printed
    --sample        an all-thread stack sampler in each node (py-spy is not installed): self and
                    inclusive shares per thread in <node base>/node.samples at exit
    --trace         consensus events with timings in each node.log (logger bench.trace): heights,
                    proposals, validation, bodies, votes sent and received, timeouts, block sync,
                    the pool's work after a commit, event-loop stalls > 100 ms
    --no-tx-gossip  experiment: validators do not gossip transactions; the client sends each
                    transfer to every validator instead

The last three run the node through this module (`python -m bench.bft_bench node <gridchain args>`),
which patches node.bft in the node process only; no file of the node is changed.
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil

from bench.common import FUNDS, accounts
from genesis.chain_spec import dev_spec, genesis_storage, local_spec, to_raw
from node import testnet as tn

REPO = Path(__file__).resolve().parent.parent

TARGET_LATENCY_P50_MS = 100.0
TARGET_TPS = 3000.0
TARGET_P99_S = 1.0
TARGET_SYNC_TPS = 5000.0

DEFAULT_RATES = "25,50,100,200,400,700,1000,1500,2000,3000,4000,6000"


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile; inf entries (never finalised) sort last."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def fmt_ms(v: float) -> str:
    if math.isnan(v):
        return "n/a"
    return "inf" if math.isinf(v) else f"{v * 1000:.0f} ms"


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


# ---------------------------------------------------------------------------------------------
# chain specs and signed transfers
# ---------------------------------------------------------------------------------------------

def _seed_key(i: int):
    """The key of bench account i (bench.common.accounts' derivation)."""
    from primitives.hashing import keccak256  # noqa: PLC0415
    from primitives.keys import Keypair  # noqa: PLC0415
    return Keypair.from_seed(keccak256(b"bench" + i.to_bytes(4, "big")))


def _fund(spec: dict, n_accounts: int) -> dict:
    cfg = spec["genesis"]["runtimeGenesis"]["config"]
    cfg["balances"]["balances"] += [[k.address(), FUNDS] for k in accounts(n_accounts)]
    return spec


def bft_spec(validators: int, n_accounts: int) -> dict:
    from pallets import build_runtime  # noqa: PLC0415
    return to_raw(_fund(local_spec(validators), n_accounts), build_runtime())


def dev_bench_spec(n_accounts: int) -> dict:
    from pallets import build_runtime  # noqa: PLC0415
    spec = _fund(dev_spec(), n_accounts)
    spec["id"] = "bench_dev"
    return to_raw(spec, build_runtime())


def _sign_chunk(job: tuple) -> list[list[bytes]]:
    """Transfers of accounts first..first+count-1, nonces start..start+per-1: [nonce][account]."""
    from pallets import balances  # noqa: PLC0415
    from primitives.extrinsic import Call, sign_extrinsic  # noqa: PLC0415
    genesis, first, count, per, start, spec_version, tx_version = job
    keys = [_seed_key(i) for i in range(first, first + count)]
    ci = (balances.pallet.index, balances.transfer.call_def.index)
    out = []
    for nonce in range(start, start + per):
        row = []
        for j, k in enumerate(keys):
            dest = keys[(j + 1) % len(keys)].public_key
            row.append(sign_extrinsic(k, Call(*ci, (dest, 1)), nonce=nonce, genesis_hash=genesis,
                                      spec_version=spec_version, transaction_version=tx_version).encode())
        out.append(row)
    return out


def sign_transfers(pool: ProcessPoolExecutor, genesis: bytes, first: int, count: int, per: int,
                   versions: tuple[int, int]) -> list[tuple[int, bytes]]:
    """(account index, extrinsic) for `per` transfers from each of `count` accounts, nonce-major
    (every account's nonce 0, then every nonce 1, ...), signed on the process pool."""
    parts = max(1, min(8, count // 50))
    bounds = [first + count * p // parts for p in range(parts + 1)]
    jobs = [(genesis, bounds[p], bounds[p + 1] - bounds[p], per, 0, *versions) for p in range(parts)]
    chunks = list(pool.map(_sign_chunk, jobs))
    out = []
    for nonce in range(per):
        for p, chunk in enumerate(chunks):
            for j, xt in enumerate(chunk[nonce]):
                out.append((bounds[p] + j, xt))
    return out


# ---------------------------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------------------------

class Procs:
    """Every process this benchmark started (nodes), and their signature workers seen so far."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []
        self.children: dict[int, tuple[int, psutil.Process]] = {}   # pid -> (node pid, process)

    def start(self, cmd: list[str], log_path: Path, env: dict | None = None) -> subprocess.Popen:
        log = open(log_path, "ab")  # noqa: SIM115 - owned by the child's lifetime
        try:
            p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True, cwd=REPO, env=env)
        finally:
            log.close()
        self.procs.append(p)
        return p

    def note_children(self) -> None:
        for p in self.procs:
            try:
                for c in psutil.Process(p.pid).children(recursive=True):
                    self.children.setdefault(c.pid, (p.pid, c))
            except psutil.Error:
                pass

    def stop(self, only: list[subprocess.Popen] | None = None) -> None:
        """SIGTERM, then SIGKILL after the grace period (`node.testnet.stop_all`); then any signature
        worker of those nodes still alive, by pid."""
        targets = list(self.procs if only is None else only)
        self.note_children()
        try:
            tn.stop_all(targets)
        finally:
            pids = {p.pid for p in targets}
            for pid, (parent, c) in list(self.children.items()):
                if parent not in pids:
                    continue
                try:
                    c.wait(timeout=3)
                except psutil.TimeoutExpired:
                    try:
                        c.kill()   # psutil checks the pid still names the same process
                    except psutil.Error:
                        pass
                except psutil.Error:
                    pass
                del self.children[pid]
            self.procs = [p for p in self.procs if p.pid not in pids]


class CpuMeter:
    """CPU seconds of the node processes (main thread, other threads), their children (signature
    workers) and this process, between two samples."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.last = self._sample()
        self.t = time.monotonic()

    def _sample(self) -> dict[str, float]:
        s = {"main": 0.0, "threads": 0.0, "workers": 0.0, "client": 0.0}
        for pid in self.pids:
            try:
                p = psutil.Process(pid)
                for th in p.threads():
                    v = th.user_time + th.system_time
                    s["main" if th.id == pid else "threads"] += v
                for c in p.children(recursive=True):
                    try:
                        ct = c.cpu_times()
                        s["workers"] += ct.user + ct.system
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
        me = psutil.Process().cpu_times()
        s["client"] = me.user + me.system   # (the signing pool is idle during a window)
        return s

    def take(self) -> tuple[dict[str, float], float]:
        now, t = self._sample(), time.monotonic()
        d = {k: now[k] - self.last[k] for k in now}
        wall = t - self.t
        self.last, self.t = now, t
        return d, wall


def cpu_line(d: dict[str, float], wall: float, n_nodes: int, txs: int) -> str:
    tot = sum(d.values())
    per = f", {tot / txs * 1e6:,.0f} us of CPU per finalised transfer" if txs else ""
    return (f"CPU over {wall:.0f} s, in cores: node main threads {d['main'] / wall:.2f} "
            f"({d['main'] / wall / n_nodes:.2f} per node), node other threads {d['threads'] / wall:.2f}, "
            f"signature workers {d['workers'] / wall:.2f}, load client {d['client'] / wall:.2f}; "
            f"total {tot / wall:.2f} of {os.cpu_count()}{per}")


# ---------------------------------------------------------------------------------------------
# RPC plumbing (raw WebSockets: the timestamps are taken where the bytes arrive)
# ---------------------------------------------------------------------------------------------

class Rpc:
    """One WebSocket with request/response matching (requests and batches)."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session, self.url = session, url
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.pending: dict[int, asyncio.Future] = {}
        self.ids = 0
        self.reader: asyncio.Task | None = None
        self.on_notification = None

    async def connect(self) -> Rpc:
        self.ws = await self.session.ws_connect(self.url, max_msg_size=256 * 2**20, autoping=True)
        self.reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                break
            t = time.monotonic()
            obj = json.loads(msg.data)
            items = obj if type(obj) is list else [obj]
            if "method" in items[0] and "id" not in items[0]:
                if self.on_notification is not None:
                    self.on_notification(items[0], t)
                continue
            key = items[0].get("id") if type(obj) is dict else min(i.get("id") or 0 for i in items)
            fut = self.pending.pop(key, None)
            if fut is not None and not fut.done():
                fut.set_result(obj)
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError("connection closed"))

    async def call(self, method: str, params: list | None = None, timeout: float = 60) -> object:
        self.ids += 1
        rid = self.ids
        fut = asyncio.get_running_loop().create_future()
        self.pending[rid] = fut
        await self.ws.send_str(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params or []}))
        resp = await asyncio.wait_for(fut, timeout)
        if "error" in resp:
            raise RuntimeError(f"{method}: {resp['error']}")
        return resp.get("result")

    async def batch(self, calls: list[tuple[str, list]], timeout: float = 60) -> list:
        first = self.ids + 1
        reqs = [{"jsonrpc": "2.0", "id": first + i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
        self.ids += len(calls)
        fut = asyncio.get_running_loop().create_future()
        self.pending[first] = fut
        await self.ws.send_str(json.dumps(reqs))
        resp = await asyncio.wait_for(fut, timeout)
        by_id = {r.get("id"): r for r in resp}
        return [by_id.get(r["id"], {}).get("result") for r in reqs]

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            await asyncio.gather(self.reader, return_exceptions=True)


@dataclass
class TxRecord:
    phase: LoadPhase
    index: int


class FinalityTracker:
    """Follows node0's finalized heads; fetches every finalized block and matches its extrinsics."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session, self.url = session, url
        self.heads: list[tuple[int, float]] = []           # (number, arrival) per notification
        self.head_at: dict[int, float] = {}
        self.blocks: dict[int, tuple[float, int]] = {}     # number -> (finalized at, extrinsics)
        self.watch: dict[str, TxRecord] = {}                # extrinsic hex -> record
        self.fetched = 0
        self.finalized = 0
        self._wake = asyncio.Event()

    async def start(self) -> None:
        self.sub = await Rpc(self.session, self.url).connect()
        self.fetch = await Rpc(self.session, self.url).connect()
        self.sub.on_notification = self._on_head
        await self.sub.call("chain_subscribeFinalizedHeads")
        self.task = asyncio.create_task(self._fetch_loop())

    def _on_head(self, note: dict, t: float) -> None:
        n = int(note["params"]["result"]["number"], 16)
        self.heads.append((n, t))
        self.head_at.setdefault(n, t)
        if n > self.finalized:
            self.finalized = n
            self._wake.set()

    async def _fetch_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            target, t = self.finalized, self.heads[-1][1]
            while self.fetched < target:
                nums = list(range(self.fetched + 1, min(target, self.fetched + 16) + 1))
                hashes = await self.fetch.batch([("chain_getBlockHash", [n]) for n in nums])
                blocks = await self.fetch.batch([("chain_getBlock", [h]) for h in hashes])
                for n, b in zip(nums, blocks):
                    xts = b["block"]["extrinsics"]
                    # a block finalized before the notification that announced it
                    at = self._announced(n, target, t)
                    self.blocks[n] = (at, len(xts))
                    for x in xts:
                        rec = self.watch.pop(x, None)
                        if rec is not None:
                            rec.phase.final_t[rec.index] = at
                self.fetched = nums[-1]

    def _announced(self, n: int, upto: int, default: float) -> float:
        for m in range(n, upto + 1):
            if m in self.head_at:
                return self.head_at[m]
        return default

    async def wait_fetched(self, number: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.fetched < number and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    def intervals(self, t0: float, t1: float) -> list[float]:
        hs = [t for n, t in self.heads if t0 <= t <= t1]
        return [b - a for a, b in itertools.pairwise(hs)]

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.sub.close()
        await self.fetch.close()


# ---------------------------------------------------------------------------------------------
# phase 1: latency without load
# ---------------------------------------------------------------------------------------------

async def latency_phase(session: aiohttp.ClientSession, urls: list[str], tracker: FinalityTracker,
                        xts: list[bytes], gap_s: float) -> dict:
    conns = [await Rpc(session, u).connect() for u in urls]
    lat: list[float] = []
    failures = Counter()
    t_start = time.monotonic()
    try:
        for i, xt in enumerate(xts):
            c = conns[i % len(conns)]
            done = asyncio.get_running_loop().create_future()
            sub_id = None

            def on_note(note: dict, t: float, done=done) -> None:
                r = note["params"]["result"]
                if type(r) is dict and ("finalized" in r or "invalid" in r or "dropped" in r) and not done.done():
                    done.set_result((t, r))
            c.on_notification = on_note
            t0 = time.monotonic()
            try:
                sub_id = await c.call("author_submitAndWatchExtrinsic", ["0x" + xt.hex()])
                t1, r = await asyncio.wait_for(done, 30)
                if "finalized" in r:
                    lat.append(t1 - t0)
                else:
                    failures[next(iter(r))] += 1
            except (TimeoutError, RuntimeError) as e:
                failures[type(e).__name__ + ": " + str(e)[:80]] += 1
            if sub_id is not None:
                try:
                    await c.call("author_unwatchExtrinsic", [sub_id])
                except RuntimeError:
                    pass
            await asyncio.sleep(random.uniform(0, gap_s))
    finally:
        for c in conns:
            await c.close()
    t_end = time.monotonic()
    return {"lat": lat, "failures": failures, "intervals": tracker.intervals(t_start, t_end),
            "wall": t_end - t_start}


def print_latency(label: str, r: dict) -> None:
    lat, iv = r["lat"], r["intervals"]
    p50 = pct(lat, 0.5)
    print(f"  [{label}] finality latency, no load ({len(lat)} transfers one at a time"
          f"{', failures ' + str(dict(r['failures'])) if r['failures'] else ''}): "
          f"p50 {fmt_ms(p50)}, p99 {fmt_ms(pct(lat, 0.99))}, max {fmt_ms(max(lat, default=float('nan')))}"
          f"; target p50 <= {TARGET_LATENCY_P50_MS:.0f} ms -> {met(p50 * 1000 <= TARGET_LATENCY_P50_MS)}")
    print(f"  [{label}] time between consecutive finalized heads ({len(iv)} intervals): "
          f"p50 {fmt_ms(pct(iv, 0.5))}, p99 {fmt_ms(pct(iv, 0.99))}", flush=True)


# ---------------------------------------------------------------------------------------------
# phase 2: sustained load
# ---------------------------------------------------------------------------------------------

class Submitter:
    """One WebSocket that sends JSON-RPC batches of author_submitExtrinsic from a queue."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session, self.url = session, url
        self.queue: asyncio.Queue = asyncio.Queue()
        self.errors: Counter = Counter()
        self.last_write = 0.0
        self.outstanding = 0

    async def connect(self) -> Submitter:
        self.ws = await self.session.ws_connect(self.url, max_msg_size=64 * 2**20)
        self.sender = asyncio.create_task(self._send())
        self.reader = asyncio.create_task(self._read())
        return self

    def enqueue(self, phase: LoadPhase, idxs: list[int]) -> None:
        base = phase.id_base
        body = ",".join(f'{{"jsonrpc":"2.0","id":{base + i},"method":"author_submitExtrinsic",'
                        f'"params":["{phase.hexes[i]}"]}}' for i in idxs)
        self.queue.put_nowait("[" + body + "]")
        self.outstanding += 1

    async def _send(self) -> None:
        while True:
            payload = await self.queue.get()
            await self.ws.send_str(payload)
            self.last_write = time.monotonic()

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                break
            self.outstanding -= 1
            for r in json.loads(msg.data):
                if "error" in r:
                    e = r["error"]
                    self.errors[f"{e.get('code')} {e.get('message', '')[:60]}"] += 1
                    rec = PHASES_BY_ID.get(r.get("id", 0) // ID_STRIDE)
                    if rec is not None:
                        rec.refused += 1

    async def drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (self.outstanding > 0 or not self.queue.empty()) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        self.sender.cancel()
        await self.ws.close()
        await asyncio.gather(self.sender, self.reader, return_exceptions=True)


ID_STRIDE = 10_000_000
PHASES_BY_ID: dict[int, LoadPhase] = {}


@dataclass
class LoadPhase:
    name: str
    rate: float
    txs: list[tuple[int, bytes]]
    n_nodes: int
    connections: int
    to_all: bool = False          # every transfer to every node (the --no-tx-gossip experiment)
    hexes: list[str] = field(default_factory=list)
    conn_of: list[int] = field(default_factory=list)
    submit_t: list[float] = field(default_factory=list)
    final_t: list[float] = field(default_factory=list)
    refused: int = 0
    id_base: int = 0
    result: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        pid = len(PHASES_BY_ID) + 1
        PHASES_BY_ID[pid] = self
        self.id_base = pid * ID_STRIDE
        self.hexes = ["0x" + xt.hex() for _, xt in self.txs]
        # an account always talks to the same validator over the same connection
        self.conn_of = [(a % self.n_nodes) * self.connections + (a // self.n_nodes) % self.connections
                        for a, _ in self.txs]
        self.submit_t = [math.nan] * len(self.txs)
        self.final_t = [math.inf] * len(self.txs)


async def run_load(phase: LoadPhase, subs: list[Submitter], tracker: FinalityTracker, cpu: CpuMeter,
                   drain_s: float, tick_s: float = 0.02) -> dict:
    n = len(phase.txs)
    for i, h in enumerate(phase.hexes):
        tracker.watch[h] = TxRecord(phase, i)
    err0: Counter = Counter()
    for s in subs:
        err0.update(s.errors)
    cpu.take()
    t0 = time.monotonic()
    sent = 0
    while sent < n:
        now = time.monotonic()
        due = min(n, int((now - t0) * phase.rate) + 1)
        if due > sent:
            groups: dict[int, list[int]] = {}
            for i in range(sent, due):
                phase.submit_t[i] = now
                groups.setdefault(phase.conn_of[i], []).append(i)
                if phase.to_all:
                    c0 = phase.conn_of[i] % phase.connections
                    for k in range(phase.n_nodes):
                        if k * phase.connections + c0 != phase.conn_of[i]:
                            groups.setdefault(k * phase.connections + c0, []).append(i)
            for c, idxs in groups.items():
                for k in range(0, len(idxs), 1000):   # the server's batch limit
                    subs[c].enqueue(phase, idxs[k:k + 1000])
            sent = due
        await asyncio.sleep(tick_s)
    t_gen = time.monotonic()
    for s in subs:
        await s.drain(30)
    t_written = max(s.last_write for s in subs)
    cpu_d, cpu_wall = cpu.take()
    fin_head_at_end = tracker.finalized
    # drain: wait for every submitted transfer to be finalised (or give up)
    deadline = time.monotonic() + drain_s
    while time.monotonic() < deadline:
        done = sum(1 for t in phase.final_t if not math.isinf(t))
        if done + phase.refused >= n:
            break
        await asyncio.sleep(0.2)
    await tracker.wait_fetched(tracker.finalized, 10)
    for h in phase.hexes:
        tracker.watch.pop(h, None)
    window = t_gen - t0
    warm = min(2.0, window / 5)
    fin_in_window = sum(1 for t in phase.final_t if t0 + warm <= t <= t_gen)
    lat = [f - s for f, s in zip(phase.final_t, phase.submit_t)]
    finalised = sum(1 for x in lat if not math.isinf(x))
    blocks = [(t, k) for num, (t, k) in tracker.blocks.items() if t0 + warm <= t <= t_gen]
    r = {
        "rate": phase.rate, "n": n, "offered": n / max(window, 1e-9), "written_rate": n / max(t_written - t0, 1e-9),
        "fin_rate": fin_in_window / max(window - warm, 1e-9), "finalised": finalised,
        "refused": phase.refused, "lost": n - finalised,
        "p50": pct(lat, 0.5), "p99": pct(lat, 0.99), "max": max(lat) if lat else math.nan,
        "blocks": len(blocks),
        "per_block": (sum(k - 1 for _, k in blocks) / len(blocks)) if blocks else 0.0,
        "intervals": tracker.intervals(t0 + warm, t_gen), "cpu": (cpu_d, cpu_wall),
        "window": window, "fin_head_at_end": fin_head_at_end,
    }
    errs: Counter = Counter()
    for s in subs:
        errs.update(s.errors)
    errs.subtract(err0)
    r["errors"] = +errs
    # sent to every validator, a transfer may reach one after a block included it: 1013 is benign
    serious = [k for k in r["errors"] if not (phase.to_all and k.startswith("1013"))]
    r["sustained"] = (not serious and r["lost"] == 0 and r["fin_rate"] >= 0.9 * r["offered"]
                      and r["written_rate"] >= 0.9 * phase.rate)
    phase.result = r
    return r


def print_load(label: str, r: dict, n_nodes: int, full: bool) -> None:
    iv = r["intervals"]
    print(f"  [{label}] offered {r['rate']:,.0f}/s for {r['window']:.0f} s (client wrote {r['written_rate']:,.0f}/s): "
          f"finalised {r['fin_rate']:,.0f} transfers/s in the window; latency p50 {fmt_ms(r['p50'])}, "
          f"p99 {fmt_ms(r['p99'])}; {r['finalised']:,}/{r['n']:,} finalised, {r['refused']:,} refused"
          f"{' ' + str(dict(r['errors'].most_common(3))) if r['errors'] else ''}; "
          f"{r['blocks']} blocks of {r['per_block']:,.0f} transfers, head interval p50 {fmt_ms(pct(iv, 0.5))} "
          f"p99 {fmt_ms(pct(iv, 0.99))} -> {'sustained' if r['sustained'] else 'NOT sustained'}")
    if full:
        d, wall = r["cpu"]
        print(f"  [{label}]   {cpu_line(d, wall, n_nodes, int(r['fin_rate'] * (r['window'])))}")
    sys.stdout.flush()


async def pools_ready(session: aiohttp.ClientSession, prom_ports: list[int]) -> list[int | None]:
    """gridchain_pool_ready of each node (None: not answering)."""
    out: list[int | None] = []
    for port in prom_ports:
        try:
            async with session.get(f"http://127.0.0.1:{port}/metrics", timeout=aiohttp.ClientTimeout(total=5)) as r:
                text = await r.text()
            out.append(next(int(float(line.split()[-1])) for line in text.splitlines()
                            if line.startswith("gridchain_pool_ready ")))
        except (TimeoutError, aiohttp.ClientError, StopIteration, ValueError):
            out.append(None)
    return out


async def wait_pools_empty(session: aiohttp.ClientSession, prom_ports: list[int], timeout: float) -> list:
    deadline = time.monotonic() + timeout
    while True:
        ready = await pools_ready(session, prom_ports)
        if all(not r for r in ready) or time.monotonic() > deadline:
            return ready
        await asyncio.sleep(0.5)


async def load_phases(session, urls: list[str], tracker: FinalityTracker, cpu: CpuMeter, label: str,
                      next_account: int, args, signer: ProcessPoolExecutor, genesis: bytes,
                      versions: tuple[int, int], ramp: bool, main_rate: float | None,
                      prom_ports: list[int], node_pids: list[int]) -> tuple[dict, int]:
    """The rate steps (if `ramp`), then the `--duration` run at `main_rate` (None: the highest
    sustained step). Returns ({"best": highest sustained step, "best_p99": highest sustained step
    with p99 <= 1 s, "steps": [...], "main": the main result}, next free account)."""
    subs = [await Submitter(session, u).connect() for u in urls for _ in range(args.connections)]
    per_phase = args.accounts_per_phase
    best = best_p99 = None
    steps: list[dict] = []
    try:
        async def one(rate: float, duration: float, name: str, full: bool) -> dict:
            nonlocal next_account
            n = round(rate * duration)
            per = max(1, math.ceil(n / per_phase))
            t = time.monotonic()
            txs = sign_transfers(signer, genesis, next_account, per_phase, per, versions)[:n]
            next_account += per_phase
            print(f"  [{label}] {name}: {n:,} transfers from {per_phase} accounts signed in "
                  f"{time.monotonic() - t:.1f} s", flush=True)
            await asyncio.sleep(1.0)
            phase = LoadPhase(name, rate, txs, len(urls), args.connections, to_all=args.no_tx_gossip)
            r = await run_load(phase, subs, tracker, cpu, drain_s=args.drain)
            if name.startswith("warm-up"):
                print(f"  [{label}]   {r['finalised']:,}/{r['n']:,} finalised, latency p50 {fmt_ms(r['p50'])}, "
                      f"p99 {fmt_ms(r['p99'])} (not measured)", flush=True)
            else:
                print_load(label, r, len(urls), full)
            # the next phase starts on empty pools (transactions left behind a nonce gap wait as
            # "future" and are not counted)
            left = await wait_pools_empty(session, prom_ports, args.drain * 4)
            if any(left):
                print(f"  [{label}]   ready transactions still pooled after {args.drain * 4:.0f} s: {left}")
            await asyncio.sleep(1.0)
            return r

        if args.warmup:
            # the signature workers start on the first batch of >= 64 checks (a block or a gossiped
            # transaction batch that large): that start-up is not billed to the first measured
            # phase. All at once, `--warmup` to each node, so every node gossips a batch that large.
            n = args.warmup * len(urls)
            await one(n / 0.02, 0.02, f"warm-up: {args.warmup} transfers to each node at once", False)
            workers = []
            for pid in node_pids:
                try:
                    workers.append(len(psutil.Process(pid).children(recursive=True)))
                except psutil.Error:
                    workers.append(None)
            print(f"  [{label}]   signature worker processes per node after the warm-up: {workers}"
                  f"{'' if all(workers) else ' (a node without workers will pay their start-up in a measured phase)'}",
                  flush=True)
        if ramp:
            for rate in [float(x) for x in args.rates.split(",")]:
                r = await one(rate, args.step_duration, f"step {rate:,.0f}/s", True)
                steps.append(r)
                if not r["sustained"]:
                    break
                best = r
                if r["p99"] <= TARGET_P99_S:
                    best_p99 = r
        if main_rate is None:
            main_rate = best["rate"] if best is not None else float(args.rates.split(",")[0])
        main = await one(main_rate, args.duration, f"sustained {main_rate:,.0f}/s for {args.duration:.0f} s", True)
        return {"best": best, "best_p99": best_p99, "steps": steps, "main": main}, next_account
    finally:
        for s in subs:
            await s.close()


# ---------------------------------------------------------------------------------------------
# phase 3: follower sync, and the offline import limit
# ---------------------------------------------------------------------------------------------

async def follower_sync(procs: Procs, spec_path: Path, base: Path, nodes: list, rpc_port: int, p2p_port: int,
                        target: int, timeout: float) -> dict:
    fbase = base / "follower"
    fbase.mkdir(parents=True, exist_ok=True)
    boots = ",".join(n.p2p_addr for n in nodes)
    cmd = [sys.executable, "-m", "node.cli", "run", "--chain", str(spec_path), "--base-path", str(fbase),
           "--listen-addr", "127.0.0.1", "--port", str(p2p_port), "--rpc-port", str(rpc_port),
           "--no-prometheus", "--bootnodes", boots]
    t_spawn = time.monotonic()
    proc = procs.start(cmd, fbase / "node.log")
    url = f"http://127.0.0.1:{rpc_port}"
    t_up = t_first = t_done = t_zero = None
    samples: list[tuple[float, int]] = []
    async with aiohttp.ClientSession() as s:
        deadline = t_spawn + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                async with s.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "chain_getHeader", "params": []},
                                  timeout=aiohttp.ClientTimeout(total=5)) as resp:
                    best = int((await resp.json())["result"]["number"], 16)
            except (TimeoutError, aiohttp.ClientError, KeyError, TypeError, ValueError):
                await asyncio.sleep(0.2)
                continue
            now = time.monotonic()
            if t_up is None:
                t_up = now
            samples.append((now, best))
            if best == 0:
                t_zero = now
            elif t_first is None:
                t_first = now
            if best >= target:
                t_done = now
                break
            await asyncio.sleep(0.05)
    return {"proc": proc, "t_spawn": t_spawn, "t_up": t_up, "t_first": t_first, "t_zero": t_zero, "t_done": t_done,
            "samples": samples, "target": target, "exited": proc.poll()}


def offline_import(db_dir: Path, spec: dict, upto: int, max_s: float = 60.0) -> dict:
    """Import blocks 1..upto of the chain in `db_dir` into a fresh database, as a node does
    (signatures in two workers while executing); the replay limit without the network."""
    from node.chain import Chain  # noqa: PLC0415
    from node.db import Database  # noqa: PLC0415
    from node.verifier import SignatureVerifier  # noqa: PLC0415
    src = Chain(Database.open(db_dir, create=False), lambda rt: {}, keep_states=256, check_genesis=False)
    blocks = []
    for n in range(1, min(upto, src.best_number) + 1):
        blocks.append(src.blocks.block(src.blocks.hash_at(n)))
    src.db.close()
    with tempfile.TemporaryDirectory(prefix="bft-bench-import-") as tmp, SignatureVerifier(workers=2) as v:
        dst = Chain(Database.open(Path(tmp) / "db"), lambda rt: genesis_storage(spec, rt), keep_states=256,
                    verify_deferred=v.verify_batch_deferred)
        v.warm_up()
        txs = 0
        t0 = time.perf_counter()
        done = 0
        for b in blocks:
            dst.import_block(b, finalize=True, check_drift=False)
            txs += len(b.block.extrinsics) - 1
            done += 1
            if time.perf_counter() - t0 > max_s:
                break
        el = time.perf_counter() - t0
        dst.db.close()
    return {"blocks": done, "txs": txs, "s": el, "bps": done / el, "tps": txs / el}


# ---------------------------------------------------------------------------------------------
# one network (BFT validators, or the dev node)
# ---------------------------------------------------------------------------------------------

async def wait_ready(session: aiohttp.ClientSession, urls: list[str], min_peers: int, timeout: float,
                     procs: Procs) -> None:
    deadline = time.monotonic() + timeout
    pending = set(urls)
    while pending:
        if time.monotonic() > deadline:
            raise SystemExit(f"nodes not ready after {timeout:.0f} s: {sorted(pending)}; see the node.log files")
        for p in procs.procs:
            if p.poll() is not None:
                raise SystemExit(f"a node (pid {p.pid}) exited with status {p.returncode}; see its node.log")
        for u in list(pending):
            try:
                async with session.post(u, json={"jsonrpc": "2.0", "id": 1, "method": "system_health", "params": []},
                                        timeout=aiohttp.ClientTimeout(total=3)) as resp:
                    h = (await resp.json())["result"]
                async with session.post(u, json={"jsonrpc": "2.0", "id": 1, "method": "chain_getHeader",
                                                 "params": []}, timeout=aiohttp.ClientTimeout(total=3)) as resp:
                    best = int((await resp.json())["result"]["number"], 16)
                if h["peers"] >= min_peers and (min_peers == 0 or best >= 1):
                    pending.discard(u)
            except (TimeoutError, aiohttp.ClientError, KeyError, TypeError, ValueError):
                pass
        await asyncio.sleep(0.3)


async def chain_params(session: aiohttp.ClientSession, url: str) -> tuple[bytes, tuple[int, int]]:
    rpc = await Rpc(session, url.replace("http", "ws")).connect()
    try:
        g = await rpc.call("chain_getBlockHash", [0])
        rv = await rpc.call("state_getRuntimeVersion")
    finally:
        await rpc.close()
    return bytes.fromhex(g[2:]), (int(rv["specVersion"]), int(rv["transactionVersion"]))


def _label(metric: str) -> str:
    """The reason label of a metric sample name such as `x{reason="y"}`."""
    return metric.partition('reason="')[2].partition('"')[0]


async def scrape(session: aiohttp.ClientSession, ports: list[int]) -> dict:
    """Totals over the validators' Prometheus metrics that tell where consensus struggled."""
    out: Counter = Counter()
    for port in ports:
        try:
            async with session.get(f"http://127.0.0.1:{port}/metrics", timeout=aiohttp.ClientTimeout(total=5)) as r:
                text = await r.text()
        except (TimeoutError, aiohttp.ClientError):
            continue
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            name, _, value = line.rpartition(" ")
            try:
                v = float(value)
            except ValueError:
                continue
            if name.startswith("gridchain_consensus_rounds_per_height_bucket") and 'le="1.0"' in name:
                out["heights decided in round 1"] += v
            elif name.startswith("gridchain_consensus_rounds_per_height_count"):
                out["heights"] += v
            elif name.startswith("gridchain_consensus_rounds_per_height_sum"):
                out["rounds"] += v
            elif name.startswith("gridchain_gossip_drops"):
                if v:
                    out[_label(name)] += v
            elif name.startswith("gridchain_consensus_messages_rejected_total"):
                if v:
                    out["rejected " + _label(name)] += v
            elif name.startswith("gridchain_blocks_synced_total"):
                out["blocks synced (fell behind)"] += v
            elif name.startswith("gridchain_finality_latency_seconds_sum"):
                out["height time sum"] += v
            elif name.startswith("gridchain_consensus_wal_fsync_seconds_sum"):
                out["wal fsync s"] += v
            elif name.startswith("gridchain_consensus_wal_fsync_seconds_count"):
                out["wal fsyncs"] += v
    return dict(out)


def instrumented(cmd: list[str], args, base_path: Path) -> tuple[list[str], Path, dict | None]:
    """(command, log path, environment) of a node, run under cProfile (`--profile`) or the wrapper
    with the trace log and the all-thread stack sampler (`--trace`, `--sample`)."""
    assert cmd[1:3] == ["-m", "node.cli"]
    env = None
    if args.trace or args.sample or args.no_tx_gossip:
        env = dict(os.environ)
        if args.no_tx_gossip:
            env["BFT_BENCH_NO_TX_GOSSIP"] = "1"
        if args.trace:
            env["BFT_BENCH_TRACE"] = "1"
        if args.sample:
            env["BFT_BENCH_SAMPLE"] = str(base_path / "node.samples")
        cmd = [cmd[0], "-m", "bench.bft_bench", "node", *cmd[3:]]
    if args.profile:
        cmd = [cmd[0], "-m", "cProfile", "-o", str(base_path / "node.prof"), *cmd[1:]]
    return cmd, base_path / "node.log", env


async def run_network(kind: str, args, base: Path, signer: ProcessPoolExecutor, n_accounts: int,
                      procs: Procs, results: dict, ports: dict) -> None:
    """kind "bft": args.validators validators, then the follower; kind "dev": one dev node."""
    label = f"{args.validators} validators" if kind == "bft" else "dev node"
    base.mkdir(parents=True, exist_ok=True)
    t = time.monotonic()
    if kind == "bft":
        spec = bft_spec(args.validators, n_accounts)
        spec_path = base / "chain-spec.json"
        spec_path.write_text(json.dumps(spec))
        # testnet.prepare keeps the spec written above, and creates the node keys
        spec_path, nodes = tn.prepare(args.validators, base, ports["rpc"], ports["p2p"], ports["prom"])
        cmds = [instrumented(tn.node_command(spec_path, n, nodes), args, n.base_path) for n in nodes]
        urls = [n.rpc_url for n in nodes]
        prom_ports = [n.prometheus_port for n in nodes]
        min_peers = args.validators - 1
    else:
        spec = dev_bench_spec(n_accounts)
        spec_path = base / "dev-spec.json"
        spec_path.write_text(json.dumps(spec))
        port = ports["rpc"] + 90
        cmd = [sys.executable, "-m", "node.cli", "run", "--chain", str(spec_path), "--validator", "--key", "//Alice",
               "--base-path", str(base / "dev"), "--rpc-port", str(port), "--block-time-ms",
               str(args.dev_block_time_ms), "--prometheus-port", str(ports["prom"] + 90)]
        (base / "dev").mkdir(exist_ok=True)
        cmds = [instrumented(cmd, args, base / "dev")]
        urls = [f"http://127.0.0.1:{port}"]
        prom_ports = [ports["prom"] + 90]
        min_peers = 0
        nodes = []
    print(f"\n== {label}: chain spec with {n_accounts:,} funded bench accounts written in "
          f"{time.monotonic() - t:.1f} s; starting {len(cmds)} node process(es) in {base}", flush=True)
    mine = [procs.start(cmd, log, env) for cmd, log, env in cmds]
    res: dict = {"label": label}
    results[kind] = res
    async with aiohttp.ClientSession() as session:
        t = time.monotonic()
        await wait_ready(session, urls, min_peers, 120, procs)
        print(f"  [{label}] ready after {time.monotonic() - t:.1f} s (pids {', '.join(str(p.pid) for p in mine)})",
              flush=True)
        procs.note_children()
        genesis, versions = await chain_params(session, urls[0])
        ws_urls = [u.replace("http", "ws") for u in urls]
        tracker = FinalityTracker(session, ws_urls[0])
        await tracker.start()
        cpu = CpuMeter([p.pid for p in mine])
        try:
            next_account = 0
            # 1. latency, one account per sample (a lost one leaves no nonce gap behind)
            xts = [x for _, x in sign_transfers(signer, genesis, next_account, args.latency_samples, 1, versions)]
            next_account += args.latency_samples
            cpu.take()
            res["latency"] = await latency_phase(session, ws_urls, tracker, xts, args.latency_gap)
            print_latency(label, res["latency"])
            d, wall = cpu.take()
            print(f"  [{label}]   {cpu_line(d, wall, len(urls), len(res['latency']['lat']))} "
                  f"(one transfer at a time: mostly the cost of consensus itself)", flush=True)
            # 2. load: the dev node steps to its own ceiling, then runs the network's sustained rate
            ramp = not (args.rate or args.no_ramp)
            main_rate = args.rate
            if kind == "dev" and not main_rate:
                main_rate = (results.get("bft", {}).get("main") or {}).get("rate")
            lr, next_account = await load_phases(session, ws_urls, tracker, cpu, label, next_account, args,
                                                 signer, genesis, versions, ramp, main_rate, prom_ports,
                                                 [p.pid for p in mine])
            res.update(lr)
            procs.note_children()
            if kind == "bft":
                res["metrics"] = await scrape(session, [n.prometheus_port for n in nodes])
                print(f"  [{label}] consensus (Prometheus, all validators): {res['metrics']}", flush=True)
            # 3. follower sync
            target = tracker.finalized
            await tracker.wait_fetched(target, 30)
            res["chain_txs"] = sum(k - 1 for num, (_, k) in tracker.blocks.items() if num <= target)
            res["target"] = target
            if kind == "bft" and not args.no_sync:
                print(f"  [{label}] starting a follower to sync {target:,} blocks "
                      f"({res['chain_txs']:,} transfers)", flush=True)
                fs = await follower_sync(procs, spec_path, base, nodes, ports["rpc"] + 50, ports["p2p"] + 50,
                                         target, args.sync_timeout)
                res["sync"] = fs
                print_sync(label, fs, res["chain_txs"])
        finally:
            await tracker.close()
    procs.stop(mine + ([res["sync"]["proc"]] if "sync" in res else []))
    # the same blocks imported offline: the replay limit without the network
    db_dir = (nodes[0].base_path if kind == "bft" else base / "dev") / "chains" / spec["id"]
    if res.get("target"):
        try:
            res["offline"] = offline_import(db_dir, spec, res["target"], max_s=args.import_max_s)
            o = res["offline"]
            print(f"  [{label}] offline import of the same chain: {o['blocks']:,} blocks, {o['txs']:,} transfers in "
                  f"{o['s']:.1f} s: {o['bps']:,.1f} blocks/s, {o['tps']:,.0f} transfers/s", flush=True)
        except Exception as e:  # noqa: BLE001 - a figure missing must not hide the others
            print(f"  [{label}] offline import failed: {e!r}")


def print_sync(label: str, fs: dict, txs: int) -> None:
    if fs["t_done"] is None:
        last = fs["samples"][-1][1] if fs["samples"] else 0
        print(f"  [{label}] follower did NOT reach #{fs['target']} (at #{last}, exit status {fs['exited']})")
        return
    # from the last poll that still saw block 0 (polls every 50 ms): a conservative start
    el = fs["t_done"] - (fs["t_zero"] or fs["t_up"])
    el_all = fs["t_done"] - fs["t_spawn"]
    fs["tps"] = txs / el if el > 0 else math.inf
    fs["bps"] = fs["target"] / el if el > 0 else math.inf
    fs["tps_all"] = txs / el_all
    print(f"  [{label}] follower sync: {fs['target']:,} blocks, {txs:,} transfers in {el:.1f} s from the last "
          f"poll at block 0: {fs['bps']:,.1f} blocks/s, {fs['tps']:,.0f} transfers/s (from process start {el_all:.1f} s: "
          f"{fs['tps_all']:,.0f}/s; RPC up after {fs['t_up'] - fs['t_spawn']:.1f} s, first block after "
          f"{fs['t_first'] - fs['t_spawn']:.1f} s); target >= {TARGET_SYNC_TPS:,.0f}/s -> "
          f"{met(fs['tps'] >= TARGET_SYNC_TPS)}", flush=True)


# ---------------------------------------------------------------------------------------------
# summary
# ---------------------------------------------------------------------------------------------

def summary(results: dict, args) -> None:
    b, d = results.get("bft", {}), results.get("dev", {})
    print(f"\n== summary: {args.validators} validators vs one dev node (instant seal"
          f"{'' if args.dev_block_time_ms == 0 else f', {args.dev_block_time_ms} ms blocks'}), "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")

    def lat(r: dict, q: float) -> float:
        return pct(r["latency"]["lat"], q) if "latency" in r else math.nan

    def ratio(x: float, y: float) -> str:
        return f"{x / y:.2f}" if y and not math.isnan(x) and not math.isnan(y) and not math.isinf(y) else "n/a"

    if "latency" in b:
        p50, p99, dp50, dp99 = lat(b, 0.5), lat(b, 0.99), lat(d, 0.5), lat(d, 0.99)
        print(f"finality latency, no load: p50 {fmt_ms(p50)}, p99 {fmt_ms(p99)}; dev node p50 {fmt_ms(dp50)}, "
              f"p99 {fmt_ms(dp99)} (ratio p50 {ratio(p50, dp50)}); target p50 <= 100 ms -> "
              f"{met(p50 * 1000 <= TARGET_LATENCY_P50_MS)}")
        iv, div = b["latency"]["intervals"], d.get("latency", {}).get("intervals", [])
        print(f"finalized head interval, no load: p50 {fmt_ms(pct(iv, 0.5))}, p99 {fmt_ms(pct(iv, 0.99))}; "
              f"dev node p50 {fmt_ms(pct(div, 0.5))}, p99 {fmt_ms(pct(div, 0.99))}")
    if b.get("main"):
        m, dm = b["main"], d.get("main") or {}
        print(f"sustained load at {m['rate']:,.0f}/s for {m['window']:.0f} s: finalised {m['fin_rate']:,.0f} transfers/s, "
              f"p99 {fmt_ms(m['p99'])}; dev node at {dm.get('rate', math.nan):,.0f}/s: "
              f"{dm.get('fin_rate', math.nan):,.0f}/s, p99 {fmt_ms(dm.get('p99', math.nan))} "
              f"(ratio {ratio(m['fin_rate'], dm.get('fin_rate', math.nan))}); target >= {TARGET_TPS:,.0f}/s with "
              f"p99 <= {TARGET_P99_S:.0f} s -> {met(m['fin_rate'] >= TARGET_TPS and m['p99'] <= TARGET_P99_S)}")
    for key, what in (("best", "highest sustained step (finalised >= 90% of offered, none lost)"),
                      ("best_p99", "highest sustained step with p99 <= 1 s")):
        bb, db = b.get(key), d.get(key)
        if b.get("steps") or d.get("steps"):
            fb = f"{bb['fin_rate']:,.0f}/s (step {bb['rate']:,.0f}/s, p99 {fmt_ms(bb['p99'])})" if bb else "none"
            fd = f"{db['fin_rate']:,.0f}/s (step {db['rate']:,.0f}/s, p99 {fmt_ms(db['p99'])})" if db else "none"
            print(f"{what}: network {fb}; dev node {fd} "
                  f"(ratio {ratio(bb['fin_rate'] if bb else math.nan, db['fin_rate'] if db else math.nan)})")
    fs = b.get("sync")
    if fs is not None:
        o, do = b.get("offline"), d.get("offline")
        tps = fs.get("tps", math.nan)
        print(f"follower sync: {tps:,.0f} transfers/s, {fs.get('bps', math.nan):,.1f} blocks/s; offline import of "
              f"the same blocks {o['tps'] if o else math.nan:,.0f}/s (ratio {ratio(tps, o['tps'] if o else math.nan)});"
              f" dev node's chain imported offline {do['tps'] if do else math.nan:,.0f}/s "
              f"(ratio {ratio(tps, do['tps'] if do else math.nan)}); target >= {TARGET_SYNC_TPS:,.0f}/s -> "
              f"{met(tps >= TARGET_SYNC_TPS)}")
    sys.stdout.flush()


def print_profile(base: Path, n: int, top: int) -> None:
    import pstats  # noqa: PLC0415
    path = base / "bft" / "node0" / "node.prof"
    if not path.exists():
        print(f"(no profile at {path})")
        return
    print(f"\n== cProfile of validator node0 (main thread only), top {top} by tottime: {path}")
    pstats.Stats(str(path)).sort_stats("tottime").print_stats(top)


# ---------------------------------------------------------------------------------------------
# node wrapper: `python -m bench.bft_bench node <gridchain args>` runs the node with instruments
# ---------------------------------------------------------------------------------------------

def _install_trace() -> None:
    """Log what consensus does and how long it takes (logger bench.trace, into node.log): height
    starts, proposals (size, build time), validation, bodies, decisions, timeouts, block sync,
    transaction gossip received, the pool's work after a commit, and event-loop stalls > 100 ms."""
    import logging  # noqa: PLC0415

    from node import bft  # noqa: PLC0415
    from node.service import NodeService  # noqa: PLC0415
    log = logging.getLogger("bench.trace")
    D = bft.BftDriver
    now = time.monotonic
    stats = {"tx_batches": 0, "txs": 0, "tx_s": 0.0, "last": now()}

    def wrap(name, fn, cls=D):
        if hasattr(cls, name):   # node/bft.py is being worked on: instrument what is there
            setattr(cls, name, fn(getattr(cls, name)))
        else:
            log.warning("trace: %s.%s not found, not traced", cls.__name__, name)

    def quiet(fn, *args) -> None:
        """Run a trace statement; the trace must never break the node."""
        try:
            fn(*args)
        except Exception:  # noqa: BLE001
            log.debug("trace statement failed", exc_info=True)

    def start_next(orig):
        def f(self, *a, **k):
            before = self.tm.height if self.tm is not None else None
            r = orig(self, *a, **k)
            if self.tm is not None and self.tm.height != before:
                self._bench_h0 = now()
                quiet(lambda: log.info("height #%d started, pool %s", self.tm.height, self.node.pool.status()))
            return r
        return f

    def propose(orig):
        def f(self, height, round, *a, **k):
            t = now()
            h = orig(self, height, round, *a, **k)

            def say() -> None:
                b = self._bodies.get(h) if h else None
                log.info("proposed #%d round %d: %s transfers, %.0f ms", height, round,
                         len(b.block.extrinsics) - 1 if b else None, (now() - t) * 1000)
            quiet(say)
            return h
        return f

    def validate(orig):
        def f(self, height, block_hash, *a, **k):
            cached = block_hash in self._checked
            t = now()
            r = orig(self, height, block_hash, *a, **k)

            def say() -> None:
                b = self._bodies.get(block_hash)
                log.info("validate #%d 0x%s: %s (%s transfers, %.0f ms)", height, block_hash.hex()[:8], r,
                         len(b.block.extrinsics) - 1 if b else "no body", (now() - t) * 1000)
            if not cached:
                quiet(say)
            return r
        return f

    def accept_body(orig):
        def f(self, payload, *a, **k):
            src = getattr(self, "_bench_body_source", None) or "a block/1 request or sync"
            quiet(lambda: log.info("body of %d bytes (from %s)", len(payload), src))
            return orig(self, payload, *a, **k)
        return f

    def body_source(what):
        def deco(orig):
            def f(self, *a, **k):
                self._bench_body_source = what
                try:
                    return orig(self, *a, **k)
                finally:
                    self._bench_body_source = None
            return f
        return deco

    def fetch_body(orig):
        def f(self, block_hash, *a, **k):
            quiet(lambda: log.info("body 0x%s missing: fetching it from %s", block_hash.hex()[:8],
                                   (self._proposer_peer.get(block_hash) or "nobody")[-8:]))
            return orig(self, block_hash, *a, **k)
        return f

    def decide(orig):
        def f(self, d, *a, **k):
            t = now()
            r = orig(self, d, *a, **k)
            quiet(lambda: log.info("decided #%d in round %d, %.0f ms after the height started; commit + pool %.0f ms",
                                   d.height, d.round, (t - getattr(self, "_bench_h0", t)) * 1000, (now() - t) * 1000))
            return r
        return f

    def on_timeout(orig):
        def f(self, kind, height, round, *a, **k):
            if self.height == height and not self.is_decided:
                quiet(lambda: log.info("timeout %s #%d round %d", getattr(kind, "name", kind), height, round))
            return orig(self, kind, height, round, *a, **k)
        return f

    def tx_batch(orig):
        def f(self, *a, **k):
            t = now()
            r = orig(self, *a, **k)
            stats["tx_batches"] += 1
            stats["tx_s"] += now() - t
            if t - stats["last"] >= 1.0:
                quiet(lambda: log.info("tx gossip in the last %.1f s: %d batches, %.0f ms admitting them; pool %s",
                                       t - stats["last"], stats["tx_batches"], stats["tx_s"] * 1000,
                                       self.node.pool.status()))
                stats.update(tx_batches=0, tx_s=0.0, last=t)
            return r
        return f

    def import_synced(orig):
        def f(self, *a, **k):
            t = now()
            ok = orig(self, *a, **k)
            quiet(lambda: log.info("synced block #%d imported: %s, %.0f ms", self.chain.best_number, ok,
                                   (now() - t) * 1000))
            return ok
        return f

    def since(self) -> str:
        return f"+{(now() - getattr(self, '_bench_h0', now())) * 1000:.0f} ms"

    def consensus_msg(orig):
        def f(self, peer, data, *a, **k):
            def say() -> None:
                from consensus.messages import Proposal, decode_message  # noqa: PLC0415
                m = decode_message(data)
                if self.tm is not None and m.height == self.tm.height:
                    what = "PROPOSAL" if isinstance(m, Proposal) else m.kind.name
                    log.info("recv %s #%d r%d from %s %s", what, m.height, m.round, peer[-8:], since(self))
            quiet(say)
            return orig(self, peer, data, *a, **k)
        return f

    def execute(orig):
        def f(self, outcome, *a, **k):
            def say() -> None:
                from consensus.messages import Proposal  # noqa: PLC0415
                from consensus.tendermint import Broadcast  # noqa: PLC0415
                for act in outcome.actions:
                    if isinstance(act, Broadcast):
                        m = act.message
                        what = "PROPOSAL" if isinstance(m, Proposal) else m.kind.name
                        log.info("send %s #%d r%d %s", what, m.height, m.round, since(self))
            quiet(say)
            return orig(self, outcome, *a, **k)
        return f

    def start(orig):
        async def f(self):
            await orig(self)

            async def lag() -> None:
                while True:
                    t = now()
                    await asyncio.sleep(0.02)
                    late = now() - t - 0.02
                    if late > 0.1:
                        log.info("event loop stalled %.0f ms", late * 1000)
            self._tasks.append(asyncio.create_task(lag()))
        return f

    for name, fn in [("_start_next_height", start_next), ("propose_value", propose), ("validate_value", validate),
                     ("_accept_body", accept_body), ("_on_block_part", body_source("gossiped parts")),
                     ("_on_proposal_gossip", body_source("the proposal's gossip")), ("_fetch_body", fetch_body),
                     ("_decide", decide),
                     ("_on_tx_batch", tx_batch), ("_on_consensus_message", consensus_msg),
                     ("_execute", execute), ("_import_synced", import_synced),
                     ("start", start)]:
        wrap(name, fn)
    from consensus.tendermint import Tendermint  # noqa: PLC0415
    wrap("on_timeout", on_timeout, Tendermint)
    orig_after = NodeService.after_commit

    def after_commit(self, signed, block_hash, included):
        t = now()
        orig_after(self, signed, block_hash, included)
        log.info("after_commit #%d (%d included): pool work %.0f ms, pool %s", signed.block.header.number,
                 len(included), (now() - t) * 1000, self.pool.status())
    NodeService.after_commit = after_commit


def _install_sampler(path: str, interval: float = 0.005) -> None:
    """A stack sampler over every thread of the node (py-spy is not installed; cProfile sees the
    main thread only): every `interval` s, the innermost frames of each thread are counted;
    written to `path` at exit as self and inclusive counts per thread."""
    import atexit  # noqa: PLC0415
    import threading  # noqa: PLC0415
    self_counts: dict[str, Counter] = {}
    incl_counts: dict[str, Counter] = {}
    totals: Counter = Counter()
    stop = threading.Event()

    def where(fr) -> str:
        c = fr.f_code
        return f"{c.co_name} ({c.co_filename.replace(str(REPO) + '/', '').split('site-packages/')[-1]}:{fr.f_lineno})"

    def where_fn(fr) -> str:
        c = fr.f_code
        return f"{c.co_name} ({c.co_filename.replace(str(REPO) + '/', '').split('site-packages/')[-1]})"

    def run() -> None:
        me = threading.get_ident()
        while not stop.wait(interval):
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, fr in sys._current_frames().items():
                if ident == me:
                    continue
                name = names.get(ident, str(ident))
                totals[name] += 1
                self_counts.setdefault(name, Counter())[where(fr)] += 1
                seen = set()
                depth = 0
                while fr is not None and depth < 60:
                    w = where_fn(fr)
                    if w not in seen:
                        seen.add(w)
                        incl_counts.setdefault(name, Counter())[w] += 1
                    fr = fr.f_back
                    depth += 1

    def dump() -> None:
        stop.set()
        with open(path, "w") as f:
            for name, n in totals.most_common():
                f.write(f"== thread {name}: {n} samples every {interval * 1000:.0f} ms\n-- self (line):\n")
                f.writelines(f"{100 * c / n:6.1f}%  {w}\n" for w, c in self_counts[name].most_common(25))
                f.write("-- inclusive (function):\n")
                f.writelines(f"{100 * c / n:6.1f}%  {w}\n" for w, c in incl_counts[name].most_common(40))
    threading.Thread(target=run, name="bench-sampler", daemon=True).start()
    atexit.register(dump)


def node_wrapper(argv: list[str]) -> None:
    """Run `gridchain <argv>` with the instruments named in BFT_BENCH_TRACE / BFT_BENCH_SAMPLE, and
    with transaction gossip switched off if BFT_BENCH_NO_TX_GOSSIP (a diagnostic experiment)."""
    if os.environ.get("BFT_BENCH_TRACE") == "1":
        _install_trace()
    if os.environ.get("BFT_BENCH_NO_TX_GOSSIP") == "1":
        from node import bft  # noqa: PLC0415
        bft.BftDriver.gossip_transaction = lambda self, data: self._maybe_start_early()
    if os.environ.get("BFT_BENCH_SAMPLE"):
        _install_sampler(os.environ["BFT_BENCH_SAMPLE"])
    from node.cli import entry  # noqa: PLC0415
    sys.argv = ["gridchain", *argv]
    entry()


FINGERPRINTED = ("node/bft.py", "node/service.py", "node/chain.py", "node/finality.py", "node/pool.py",
                 "p2p/host.py", "p2p/topics.py", "consensus/tendermint.py")


def code_fingerprint() -> str:
    """Which revision of the node a run measured (git is not available to the benchmark)."""
    import hashlib  # noqa: PLC0415
    out = []
    for rel in FINGERPRINTED:
        path = REPO / rel
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
            stamp = time.strftime("%H:%M", time.localtime(path.stat().st_mtime))
            out.append(f"{rel} {digest} {stamp}")
        except OSError:
            out.append(f"{rel} missing")
    return ", ".join(out)


def _port_free(port: int) -> bool:
    import socket  # noqa: PLC0415
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_port_base(validators: int) -> int:
    """A base B such that RPC B.., Prometheus B+10000.., p2p B+20000.. (validators, follower at +50,
    dev node at +90) are all free now."""
    for _ in range(200):
        b = random.randrange(20000, 35000, 100)
        offsets = list(range(validators)) + [50, 90]
        if all(_port_free(b + d + o) for o in offsets for d in (0, 10000, 20000)):
            return b
    raise SystemExit("no free port range found")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument("--validators", type=int, default=4)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of the sustained-load run")
    ap.add_argument("--rate", type=float, default=None,
                    help="offered transfers/s of the sustained run (default: the highest sustained step)")
    ap.add_argument("--rates", default=DEFAULT_RATES, help="the rate steps, transfers/s")
    ap.add_argument("--step-duration", type=float, default=15.0)
    ap.add_argument("--no-ramp", action="store_true", help="no rate steps (with no --rate: the first step rate)")
    ap.add_argument("--accounts-per-phase", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=300,
                    help="transfers sent at once to each node before the measured phases (0: none)")
    ap.add_argument("--connections", type=int, default=2, help="WebSocket connections per node")
    ap.add_argument("--latency-samples", type=int, default=100)
    ap.add_argument("--latency-gap", type=float, default=0.05, help="random pause up to this many s between samples")
    ap.add_argument("--drain", type=float, default=15.0, help="s to wait for stragglers after a load phase")
    ap.add_argument("--dev-block-time-ms", type=int, default=0, help="the dev node's block time (0: instant seal)")
    ap.add_argument("--no-dev", action="store_true")
    ap.add_argument("--no-sync", action="store_true")
    ap.add_argument("--sync-timeout", type=float, default=300.0)
    ap.add_argument("--import-max-s", type=float, default=60.0, help="cap on each offline import, s")
    ap.add_argument("--profile", action="store_true", help="run the validators under cProfile")
    ap.add_argument("--profile-top", type=int, default=35)
    ap.add_argument("--trace", action="store_true",
                    help="log consensus events with timings into each node.log (logger bench.trace)")
    ap.add_argument("--no-tx-gossip", action="store_true",
                    help="diagnostic: validators do not gossip transactions; every transfer is submitted to "
                         "every validator instead")
    ap.add_argument("--sample", action="store_true",
                    help="sample every thread's stack in each node; written to node.samples at exit")
    ap.add_argument("--base-dir", type=Path, default=None, help="kept after the run (default: a temporary one)")
    ap.add_argument("--port-base", type=int, default=None, help="RPC ports from here (default: random)")
    args = ap.parse_args(argv)

    rates = [float(x) for x in args.rates.split(",")]
    load_phases_n = (0 if (args.rate or args.no_ramp) else len(rates)) + 1 + (1 if args.warmup else 0)
    n_accounts = args.latency_samples + args.accounts_per_phase * load_phases_n
    own_base = args.base_dir is None
    base = Path(tempfile.mkdtemp(prefix="bft-bench-")) if own_base else args.base_dir
    pb = args.port_base or pick_port_base(args.validators)
    ports = {"rpc": pb, "p2p": pb + 20000, "prom": pb + 10000}
    print(f"bft_bench: {args.validators} validators on loopback + one dev node, {os.cpu_count()} CPUs "
          f"(shared machine: load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}), Python "
          f"{sys.version.split()[0]}; base {base}; ports RPC {pb}+, p2p {pb + 20000}+")
    print(f"code under test (files being edited elsewhere; sha256 prefix, modified): {code_fingerprint()}")
    procs = Procs()
    results: dict = {}
    interrupted = False

    def on_term(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, on_term)
    t_all = time.monotonic()
    try:
        with ProcessPoolExecutor(max_workers=2) as signer:
            asyncio.run(run_network("bft", args, base / "bft", signer, n_accounts, procs, results, ports))
            if not args.no_dev:
                asyncio.run(run_network("dev", args, base / "dev", signer, n_accounts, procs, results, ports))
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted")
    finally:
        procs.stop()
        signal.signal(signal.SIGTERM, old)
    summary(results, args)
    print(f"(whole run {time.monotonic() - t_all:.0f} s; node logs under {base})")
    if args.profile:
        print_profile(base, args.validators, args.profile_top)
    if own_base and not interrupted and not (args.profile or args.trace or args.sample):
        shutil.rmtree(base, ignore_errors=True)
        print("(temporary base directory removed)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "node":
        node_wrapper(sys.argv[2:])
    else:
        main()
