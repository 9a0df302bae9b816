"""RPC server throughput and latency: `system_health` over keep-alive HTTP.

    .venv/bin/python -m bench.rpc_bench [--duration 10] [--connections 8] [--depth 4]

The server runs in a separate process (pinned to its own core when the machine has two or more),
so the client does not compete with it for the GIL. The client is a raw asyncio HTTP/1.1 client:
`--connections` keep-alive connections, each with `--depth` pipelined requests in flight, which
costs far less per request than an aiohttp client session and so measures the server, not the
client. Two targets run back to back with the same client:

  limit  a bare aiohttp low-level server answering every request with a constant JSON body
  rpc    RpcServer (JSON parse, request checks, method dispatch, NodeApi call, JSON encode)

and the report gives requests/s, p50/p99 latency and rpc/limit. Figures are printed, never asserted.
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import re
import sys
import time
from collections import deque

REQUEST_BODY = b'{"jsonrpc":"2.0","id":1,"method":"system_health","params":[]}'
_CL = re.compile(rb"content-length:\s*(\d+)", re.I)


# ---------------------------------------------------------------------------------------------
# server side (child process)
# ---------------------------------------------------------------------------------------------

class MinimalNode:
    """The least a NodeApi needs for the benchmark: constant answers."""

    def __init__(self) -> None:
        from rpc.api import Health, NodeInfo, RuntimeVersionInfo
        self._health = Health(peers=4, is_syncing=False, should_have_peers=True)
        self._info = NodeInfo("gridchain", "bench", "Development", "Development", {})
        self._rv = RuntimeVersionInfo("gridchain", "gridchain", 1, 1, 1, 1)

    def info(self): return self._info
    def health(self): return self._health
    def account_next_index(self, account): return 0
    def peers(self): return []
    def local_peer_id(self): return "bench"
    def get_block(self, block_hash): return None
    def get_block_hash(self, number): return None
    def get_header(self, block_hash): return None
    def finalized_head(self): return b"\0" * 32
    def subscribe_new_heads(self): raise NotImplementedError
    def subscribe_finalized_heads(self): raise NotImplementedError
    def get_storage(self, key, at): return None
    def get_keys_paged(self, prefix, count, start_key, at): return []
    def get_read_proof(self, keys, at): return b"\0" * 32, []
    def runtime_version(self, at): return self._rv
    def metadata(self, at): return {"pallets": []}
    async def submit_extrinsic(self, extrinsic): return b"\0" * 32
    async def submit_and_watch(self, extrinsic): raise NotImplementedError
    def pending_extrinsics(self): return []
    async def seal_block(self): return b"\0" * 32
    def extra_methods(self): return {}


def _pin(cpu: int) -> None:
    try:
        if len(os.sched_getaffinity(0)) >= 2:
            os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        pass


def _serve(kind: str, port_q: "mp.Queue", stop_ev: "mp.Event") -> None:
    _pin(1)

    async def main() -> None:
        from aiohttp import web
        if kind == "rpc":
            from rpc.server import RpcServer
            server = RpcServer(MinimalNode(), host="127.0.0.1", port=0)
            await server.start()
            port_q.put(server.port)
            while not stop_ev.is_set():
                await asyncio.sleep(0.2)
            await server.stop()
        else:
            body = b'{"jsonrpc":"2.0","result":{"peers":4,"isSyncing":false,"shouldHavePeers":true},"id":1}'
            headers = {"Content-Type": "application/json; charset=utf-8"}

            async def handler(request: web.BaseRequest) -> web.Response:
                await request.read()
                return web.Response(body=body, headers=headers)

            runner = web.ServerRunner(web.Server(handler, access_log=None))
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port_q.put(runner.addresses[0][1])
            while not stop_ev.is_set():
                await asyncio.sleep(0.2)
            await runner.cleanup()

    asyncio.run(main())


# ---------------------------------------------------------------------------------------------
# client side (this process)
# ---------------------------------------------------------------------------------------------

class _Conn(asyncio.Protocol):
    def __init__(self, request: bytes, depth: int, stats: "_Stats") -> None:
        self.request = request
        self.depth = depth
        self.stats = stats
        self.sent: deque[float] = deque()
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        now = time.perf_counter()
        for _ in range(self.depth):
            self.sent.append(now)
        transport.write(self.request * self.depth)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        stats = self.stats
        now = time.perf_counter()
        n_new = 0
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end]
            m = _CL.search(head)
            length = int(m.group(1)) if m else 0
            total = end + 4 + length
            if len(buf) < total:
                break
            if not head.startswith(b"HTTP/1.1 200"):
                stats.errors += 1
            buf = buf[total:]
            stats.record(now - self.sent.popleft())
            n_new += 1
        self.buf = buf
        if n_new and not stats.stopping:
            for _ in range(n_new):
                self.sent.append(now)
            self.transport.write(self.request * n_new)  # type: ignore[union-attr]
        elif stats.stopping and not self.sent and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


class _Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.count = 0
        self.errors = 0
        self.recording = False
        self.stopping = False

    def record(self, latency: float) -> None:
        if self.recording:
            self.count += 1
            self.latencies.append(latency)


async def _load(port: int, duration: float, warmup: float, connections: int, depth: int) -> dict:
    loop = asyncio.get_running_loop()
    request = (f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(REQUEST_BODY)}\r\n\r\n").encode() + REQUEST_BODY
    stats = _Stats()
    conns = []
    for _ in range(connections):
        _t, proto = await loop.create_connection(lambda: _Conn(request, depth, stats), "127.0.0.1", port)
        conns.append(proto)
    await asyncio.sleep(warmup)
    stats.recording = True
    t0 = time.perf_counter()
    await asyncio.sleep(duration)
    elapsed = time.perf_counter() - t0
    stats.recording = False
    stats.stopping = True
    await asyncio.wait([c.done for c in conns], timeout=5)
    for c in conns:
        if c.transport is not None:
            c.transport.close()
    lat = sorted(stats.latencies)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")

    return {"rps": stats.count / elapsed, "p50": pct(0.50), "p99": pct(0.99), "errors": stats.errors,
            "n": stats.count}


def run_target(kind: str, args: argparse.Namespace, duration: float) -> dict:
    ctx = mp.get_context("spawn")
    port_q: mp.Queue = ctx.Queue()
    stop_ev = ctx.Event()
    proc = ctx.Process(target=_serve, args=(kind, port_q, stop_ev), daemon=True)
    proc.start()
    try:
        port = port_q.get(timeout=30)
        _pin(0)
        return asyncio.run(_load(port, duration, args.warmup, args.connections, args.depth))
    finally:
        stop_ev.set()
        proc.join(10)
        if proc.is_alive():
            proc.terminate()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=10.0, help="seconds measured per target, in total")
    ap.add_argument("--rounds", type=int, default=2,
                    help="alternating rounds per target (the best is reported: other load on a shared "
                         "machine only ever makes a round slower)")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--depth", type=int, default=4, help="pipelined requests in flight per connection")
    args = ap.parse_args(argv)
    rounds = max(1, args.rounds)
    per_round = args.duration / rounds
    print(f"rpc_bench: system_health over HTTP keep-alive, {args.connections} connections x "
          f"{args.depth} in flight, {rounds} x {per_round:.1f} s per target (best round shown), "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    results: dict[str, dict] = {}
    for _ in range(rounds):
        for kind in ("limit", "rpc"):
            r = run_target("bare" if kind == "limit" else "rpc", args, per_round)
            if kind not in results or r["rps"] > results[kind]["rps"]:
                results[kind] = r
    for kind in ("limit", "rpc"):
        r = results[kind]
        print(f"  {kind:<6} {r['rps']:>9,.0f} req/s   p50 {r['p50']:6.2f} ms   p99 {r['p99']:6.2f} ms"
              f"   ({r['n']:,} requests, {r['errors']} errors)")
    ratio = results["rpc"]["rps"] / results["limit"]["rps"] if results["limit"]["rps"] else float("nan")
    print(f"  rpc/limit {ratio:.2f}   target: >= 5,000 req/s with p99 < 10 ms -> "
          f"{'met' if results['rpc']['rps'] >= 5000 and results['rpc']['p99'] < 10 else 'NOT met'}")


if __name__ == "__main__":
    main()
