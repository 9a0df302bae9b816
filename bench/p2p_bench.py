"""How fast the p2p layer moves gossip and requests between two processes on loopback, against
raw trio TCP between the same two kinds of process, measured in the same run.

    .venv/bin/python -m bench.p2p_bench [--count 3000] [--rate 500] [--requests 300]

This process runs a P2PHost (asyncio loop, libp2p in its thread); the other side is
tests/p2p_peer.py (the script the tests drive), which publishes sequence- and time-stamped
messages. Figures:

* gossip throughput: `--count` messages published as fast as `publish` accepts them, 250 B and
  16 KiB: delivered messages per second, and how many arrived (gossip may drop under overload);
* gossip latency: the same sizes at a steady rate, by default half the flood throughput just
  measured (latency at saturation is only queueing), or `--rate`: p50/p99 from `publish` in the
  peer to the handler here (both read the same wall clock);
* request/response: sequential round trips of 64 B and 16 KiB to the peer's echo handler;
* CPU per gossip message, for each gossip run: CPU time spent while the run lasted divided by the
  messages delivered, for this (receiving) process, for its libp2p thread alone, and for the
  publishing peer process (read from /proc; Linux only). Idle CPU is ~0, so this is the cost of
  moving one message, the figure that bounds how many messages/s the 2 cores can carry.

The same-run limit is raw trio TCP between this process and a child: length-prefixed frames
streamed one way (msg/s) and a ping-pong echo (round trip). libp2p adds noise encryption, yamux,
protobuf, a signature per message and, here, two thread hops; the ratio says what all that costs.
For what this layer adds on top of py-libp2p, the latency runs are repeated with bare py-libp2p
(gossipsub v1.1, spam protection off, subscription drained in a tight loop) at the same rate.
The machine is shared and noisy: run it twice before quoting a figure. For the effect of
p2p/libp2p_tuning.py, alternate runs with GRIDCHAIN_LIBP2P_TUNING=0 (py-libp2p's own code paths,
in both processes) and without it.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import multiaddr
import trio

from p2p.host import P2PConfig, P2PHost
from p2p.topics import TopicKind

REPO = Path(__file__).resolve().parent.parent
PEER_SCRIPT = REPO / "tests" / "p2p_peer.py"
GENESIS = bytes(range(32))
SIZES = (250, 16 * 1024)


def thread_cpu(thread: Any) -> float:
    """CPU seconds used so far by a running threading.Thread (nan where unsupported)."""
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    except (AttributeError, OSError, TypeError):
        return float("nan")


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by another process, from /proc (nan elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


# ---------------------------------------------------------------------------------------------
# the same-run limit: raw trio TCP
# ---------------------------------------------------------------------------------------------

async def raw_server() -> None:
    """Child mode: frames in; 'S' frames are counted and acknowledged once `n` arrived, others echoed."""
    async def handle(stream: trio.SocketStream) -> None:
        buf = bytearray()
        pending = 0

        async def frame() -> bytes | None:
            while True:
                if len(buf) >= 4:
                    n = int.from_bytes(buf[:4], "big")
                    if len(buf) >= 4 + n:
                        out = bytes(buf[4:4 + n])
                        del buf[:4 + n]
                        return out
                data = await stream.receive_some(1 << 16)
                if not data:
                    return None
                buf.extend(data)

        while (msg := await frame()) is not None:
            if msg[:1] == b"N":      # announce a stream of n frames
                pending = int(msg[1:])
            elif msg[:1] == b"S":    # one streamed frame
                pending -= 1
                if pending == 0:
                    await stream.send_all(b"\0\0\0\1D")
            else:                    # echo
                await stream.send_all(len(msg).to_bytes(4, "big") + msg)

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    print(listeners[0].socket.getsockname()[1], flush=True)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, handle, listeners)
        await trio.to_thread.run_sync(sys.stdin.readline)
        nursery.cancel_scope.cancel()


async def raw_client(port: int, count: int) -> dict[str, float]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    out: dict[str, float] = {}

    async def read_exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            data += await stream.receive_some(n - len(data))
        return data

    for size in SIZES:
        body = b"S" + os.urandom(size - 1)
        frame = len(body).to_bytes(4, "big") + body
        announce = b"N%d" % count
        await stream.send_all(len(announce).to_bytes(4, "big") + announce)
        t0 = time.perf_counter()
        for _ in range(count):
            await stream.send_all(frame)
        await read_exactly(5)
        out[f"stream_{size}"] = count / (time.perf_counter() - t0)
    for size in (64, 16 * 1024):
        body = b"E" + os.urandom(size - 1)
        frame = len(body).to_bytes(4, "big") + body
        times = []
        for _ in range(300):
            t0 = time.perf_counter()
            await stream.send_all(frame)
            await read_exactly(len(frame))
            times.append(time.perf_counter() - t0)
        out[f"rtt_{size}"] = statistics.median(times)
    await stream.aclose()
    return out


def measure_raw(count: int) -> dict[str, float]:
    child = subprocess.Popen([sys.executable, "-m", "bench.p2p_bench", "--raw-server"], cwd=REPO,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        port = int(child.stdout.readline())  # type: ignore[union-attr]
        return trio.run(raw_client, port, count)
    finally:
        child.stdin.write("stop\n")  # type: ignore[union-attr]
        child.stdin.flush()  # type: ignore[union-attr]
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


# ---------------------------------------------------------------------------------------------
# bare py-libp2p, for what the p2p layer itself costs
# ---------------------------------------------------------------------------------------------

def _bare_pubsub() -> tuple[Any, Any, Any]:
    from libp2p import new_host
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11, GossipSub
    from libp2p.pubsub.pubsub import Pubsub
    host = new_host(key_pair=create_new_key_pair(), listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")])
    router = GossipSub(protocols=[PROTOCOL_ID_V11], degree=6, degree_low=4, degree_high=12, heartbeat_interval=1,
                       spam_protection_enabled=False)
    return host, router, Pubsub(host, router)


async def bare_publisher(addr: str, count: int, size: int, rate: float) -> None:
    """Child mode: bare py-libp2p publishing time-stamped messages on topic "bench" at `rate`,
    and answering "/bench/echo" requests."""
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from libp2p.request_response import BytesCodec, RequestResponse
    from libp2p.tools.anyio_service import background_trio_service
    host, router, pubsub = _bare_pubsub()

    async def echo(request: bytes, ctx: Any) -> bytes:
        return b"echo:" + request
    RequestResponse(host).set_handler("/bench/echo", echo, BytesCodec())
    async with background_trio_service(router), background_trio_service(pubsub):
        async with host.run(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            await pubsub.wait_until_ready()
            await pubsub.subscribe("bench")
            info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
            await host.connect(info)
            await pubsub.wait_for_mesh(info.peer_id, "bench", timeout=30)
            filler, t0 = os.urandom(size - 16), time.time()
            for i in range(count):
                await trio.sleep(max(0.0, t0 + i / rate - time.time()))
                await pubsub.publish("bench", struct.pack(">Qd", i, time.time()) + filler)
            await trio.to_thread.run_sync(sys.stdin.readline)


async def bare_receiver(count: int, size: int, rate: float, requests: int) -> dict[str, float]:
    """Bare py-libp2p receiving from a bare child, its subscription drained as fast as it can;
    then `requests` sequential request/response round trips of `size` bytes to the child."""
    from libp2p.request_response import BytesCodec, RequestResponse
    from libp2p.tools.anyio_service import background_trio_service
    host, router, pubsub = _bare_pubsub()
    rr = RequestResponse(host)
    got: list[tuple[float, float]] = []
    times: list[float] = []
    async with background_trio_service(router), background_trio_service(pubsub):
        async with host.run(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            await pubsub.wait_until_ready()
            sub = await pubsub.subscribe("bench")
            argv = [sys.executable, "-m", "bench.p2p_bench", "--bare-publisher", str(host.get_addrs()[0]),
                    "--count", str(count), "--size", str(size), "--rate", str(rate)]
            child = subprocess.Popen(argv, cwd=REPO, stdin=subprocess.PIPE, text=True)
            try:
                while len(got) < count:
                    with trio.move_on_after(30 if not got else 3) as scope:
                        msg = await sub.get()
                        got.append((time.time(), struct.unpack_from(">Qd", msg.data)[1]))
                    if scope.cancelled_caught:
                        break
                peer = next(iter(pubsub.peers))
                payload = os.urandom(size)
                for _ in range(requests):
                    t0 = time.perf_counter()
                    await rr.send_request(peer, ["/bench/echo"], payload, BytesCodec())
                    times.append(time.perf_counter() - t0)
            finally:
                child.communicate("stop\n", timeout=10)
    latencies = [r - s for r, s in got]
    return {"delivered": len(got), "count": count, "p50": pct(latencies, 0.5), "p99": pct(latencies, 0.99),
            "rr_p50": pct(times, 0.5)}


# ---------------------------------------------------------------------------------------------
# libp2p, this process against tests/p2p_peer.py
# ---------------------------------------------------------------------------------------------

class Peer:
    """tests/p2p_peer.py as the publishing side."""

    def __init__(self, base: Path, bootnode: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(PEER_SCRIPT), "--base", str(base), "--genesis", GENESIS.hex(),
             "--bootnode", bootnode], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.peer_id = ""

    async def event(self, name: str, timeout: float = 60.0) -> dict:
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = await loop.run_in_executor(None, self.proc.stdout.readline)  # type: ignore[union-attr]
            if not line:
                raise RuntimeError("peer process ended")
            event = json.loads(line)
            if event["event"] == name:
                return event
        raise TimeoutError(name)

    def send(self, **cmd: object) -> None:
        self.proc.stdin.write(json.dumps(cmd) + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]

    def stop(self) -> None:
        try:
            self.send(cmd="stop")
            self.proc.stdin.close()  # type: ignore[union-attr]
            self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


async def gossip_run(host: P2PHost, peer: Peer, received: list[tuple[float, int, float]], size: int,
                     count: int, rate: float) -> dict[str, float]:
    received.clear()
    drops_before = {k: v for k, v in host.counters_snapshot().items() if "drop" in k}
    libp2p_thread = host._bridge._thread if host._bridge is not None else None  # the libp2p (trio) thread
    cpu0 = (time.process_time(), thread_cpu(libp2p_thread), process_cpu(peer.proc.pid))
    peer.send(cmd="publish_many", kind=TopicKind.TX.value, count=count, size=size, rate=rate)
    sent = await peer.event("published_many")
    last, idle_since = -1, time.monotonic()
    while len(received) < count and time.monotonic() - idle_since < 3.0:
        await asyncio.sleep(0.05)
        if len(received) != last:
            last, idle_since = len(received), time.monotonic()
    cpu1 = (time.process_time(), thread_cpu(libp2p_thread), process_cpu(peer.proc.pid))
    n = max(1, len(received))
    cpu = {"cpu_here_us": (cpu1[0] - cpu0[0]) / n * 1e6, "cpu_thread_us": (cpu1[1] - cpu0[1]) / n * 1e6,
           "cpu_peer_us": (cpu1[2] - cpu0[2]) / n * 1e6}
    if not received:
        return {"delivered": 0, "rate": 0.0, "p50": float("nan"), "p99": float("nan"), "refused": sent["refused"],
                "local_drops": 0, "count": count, **cpu}
    latencies = [recv - sent_at for recv, _, sent_at in received]
    first_sent = min(s for _, _, s in received)
    span = max(r for r, _, _ in received) - first_sent
    drops_after = {k: v for k, v in host.counters_snapshot().items() if "drop" in k}
    return {"delivered": len({seq for _, seq, _ in received}), "rate": len(received) / span if span > 0 else 0.0,
            "p50": pct(latencies, 0.5), "p99": pct(latencies, 0.99), "refused": sent["refused"],
            "local_drops": sum(drops_after.values()) - sum(drops_before.values()), "count": count, **cpu}


async def measure_p2p(count: int, rate: float, requests: int) -> dict[str, dict[str, float]]:
    base = Path(tempfile.mkdtemp(prefix="p2p-bench-"))
    host = P2PHost(P2PConfig(base_path=base / "host", genesis_hash=GENESIS, listen_addrs=["/ip4/127.0.0.1/tcp/0"],
                             inbound_queue=1 << 16))
    received: list[tuple[float, int, float]] = []

    def on_tx(origin: str, data: bytes) -> None:
        seq, sent_at = struct.unpack_from(">Qd", data)
        received.append((time.time(), seq, sent_at))

    host.on_message(TopicKind.TX, on_tx)
    await host.start()
    peer = Peer(base / "peer", host.listen_addrs[0])
    out: dict[str, dict[str, float]] = {}
    try:
        ready = await peer.event("ready")
        peer.peer_id = ready["peer_id"]
        while not await host.topic_peers(TopicKind.TX):
            await asyncio.sleep(0.05)
        await gossip_run(host, peer, received, 250, 200, 0)  # warm-up
        for size in SIZES:
            out[f"flood_{size}"] = await gossip_run(host, peer, received, size, count, 0)
            steady = rate or max(10.0, round(out[f"flood_{size}"]["rate"] / 2))
            out[f"steady_{size}"] = await gossip_run(host, peer, received, size, int(min(count, steady * 5)), steady)
            out[f"steady_{size}"]["offered"] = steady
        for size in (64, 16 * 1024):
            payload = os.urandom(size)
            times = []
            for _ in range(requests):
                t0 = time.perf_counter()
                await host.request(peer.peer_id, "echo/1", payload)
                times.append(time.perf_counter() - t0)
            out[f"request_{size}"] = {"p50": pct(times, 0.5), "p99": pct(times, 0.99), "rate": len(times) / sum(times)}
    finally:
        peer.stop()
        await host.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000, help="messages per throughput run")
    parser.add_argument("--rate", type=float, default=0, help="msg/s of the latency runs (0: half the flood rate)")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--raw-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bare-publisher", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=250, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_server:
        trio.run(raw_server)
        return
    if args.bare_publisher:
        trio.run(bare_publisher, args.bare_publisher, args.count, args.size, args.rate)
        return

    print(f"p2p between two processes on loopback, {os.cpu_count()} cores")
    raw = measure_raw(args.count)
    p2p = asyncio.run(measure_p2p(args.count, args.rate, args.requests))
    bare = {size: trio.run(bare_receiver, p2p[f"steady_{size}"]["count"], size, p2p[f"steady_{size}"]["offered"],
                           args.requests // 3) for size in SIZES}
    for size in SIZES:
        f, s = p2p[f"flood_{size}"], p2p[f"steady_{size}"]
        limit = raw[f"stream_{size}"]
        print(f"gossip {size:>6} B, flood : {f['rate']:>8,.0f} msg/s delivered, {f['delivered']}/{args.count} arrived "
              f"(refused at publish {f['refused']}, dropped here {f['local_drops']}); raw TCP {limit:>9,.0f} msg/s "
              f"({f['rate'] / limit:.4f}x)")
        b = bare[size]
        print(f"gossip {size:>6} B, {s['offered']:>4.0f}/s: latency p50 {s['p50'] * 1e3:6.2f} ms, "
              f"p99 {s['p99'] * 1e3:6.2f} ms, {s['delivered']}/{s['count']} arrived; bare py-libp2p at that rate: "
              f"p50 {b['p50'] * 1e3:.2f} ms, p99 {b['p99'] * 1e3:.2f} ms, {b['delivered']}/{b['count']} arrived")
    for run in ("flood", "steady"):
        for size in SIZES:
            r = p2p[f"{run}_{size}"]
            print(f"gossip {size:>6} B, {run:<6} CPU per message: receiver {r['cpu_here_us']:5.0f} us "
                  f"(its libp2p thread {r['cpu_thread_us']:5.0f} us), publisher process {r['cpu_peer_us']:5.0f} us")
    for size, bare_size in ((64, 250), (16 * 1024, 16 * 1024)):
        r, rtt, b = p2p[f"request_{size}"], raw[f"rtt_{size}"], bare[bare_size]
        print(f"request/response {size:>6} B: p50 {r['p50'] * 1e3:6.2f} ms, p99 {r['p99'] * 1e3:6.2f} ms, "
              f"{r['rate']:,.0f} req/s sequential; raw TCP echo p50 {rtt * 1e3:.3f} ms ({r['p50'] / rtt:.0f}x); "
              f"bare py-libp2p ({bare_size} B) p50 {b['rr_p50'] * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
