"""RPC abuse: what a hostile client can do to a real dev node, against the issue's limits.

    .venv/bin/python -m bench.rpc_abuse [--clients 8] [--batch 1000] [--duration 15] [--attackers 100]

Starts `gridchain --dev --rpc-port N` in a subprocess (temporary base path, 1 s blocks), a fresh
node for each attack, and runs these attacks one after another, each bounded in time:

  batches     `--clients` HTTP clients each send `--batch`-call `state_getMetadata` batches, one after
              another, for `--duration` seconds. Figure: the node's peak resident memory (the kernel's
              high-water mark, VmHWM, so no sampling gap hides a spike), compared with 400 MB; also the
              longest wait for a new block seen meanwhile (block production should not stall).
  batches-in-budget  the same with batches just small enough for their answers (some 110 metadata
              copies, 10 MiB) to stay within the response budget, so every one is answered in full.
  ws-no-read  two WebSocket clients send metadata requests and never read their answers, for
              `--duration` seconds. Figure: peak resident memory again.
  slots       `--attackers` TCP connections from 127.0.0.2 held open (half of them idle, half with a
              request line and never the end of the headers), re-opened whenever the node closes one,
              as the attacker's client does. Figure: the time a client on 127.0.0.1 waits for the
              answer to `system_health` on a fresh connection (retrying when refused), worst of several
              tries spread over 12 s, compared with 2 s.

Figures are printed, never asserted. 127.0.0.2 is loopback on Linux without configuration.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

RSS_LIMIT_MB = 400
RESPONSE_BUDGET = 10 * 2**20  # the server's default max_response_bytes
LATENCY_LIMIT_S = 2.0
ATTACKER_IP = "127.0.0.2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status_mb(pid: int, field: str) -> float:
    """A memory figure from /proc/<pid>/status in MiB: VmHWM is the peak resident set size, which
    psutil does not expose."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


# ---------------------------------------------------------------------------------------------
# a tiny HTTP/1.1 client (keep-alive, Content-Length bodies only: the node always sends one)
# ---------------------------------------------------------------------------------------------

async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await reader.readexactly(length) if length else b""
    return status, body


def _post_bytes(port: int, body: bytes) -> bytes:
    return (f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def rpc(port: int, method: str, params: list | None = None, timeout: float = 10.0) -> object:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    try:
        writer.write(_post_bytes(port, json.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()))
        _status, body = await asyncio.wait_for(_read_response(reader), timeout)
        return json.loads(body)["result"]
    finally:
        writer.close()


# ---------------------------------------------------------------------------------------------
# attack 1: metadata batches over HTTP
# ---------------------------------------------------------------------------------------------

async def _batch_client(port: int, body: bytes, until: float, stats: dict) -> None:
    request = _post_bytes(port, body)
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        try:
            while time.monotonic() < until:
                writer.write(request)
                status, resp = await asyncio.wait_for(_read_response(reader), 60)
                stats["requests"] += 1
                stats["bytes"] += len(resp)
                stats["largest"] = max(stats["largest"], len(resp))
                if status != 200:
                    stats[f"http {status}"] = stats.get(f"http {status}", 0) + 1
                elif resp.startswith(b"{"):  # one error for the whole batch
                    code = json.loads(resp)["error"]["code"]
                    stats[f"error {code}"] = stats.get(f"error {code}", 0) + 1
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
            stats["dropped"] += 1
        finally:
            writer.close()


async def _watch_blocks(port: int, until: float) -> float:
    """Longest time without a new best block while the attack runs (polled every 0.1 s)."""
    last_number, last_change, worst = -1, time.monotonic(), 0.0
    while time.monotonic() < until:
        try:
            header = await rpc(port, "chain_getHeader", timeout=30)
            number = int(header["number"], 16)  # type: ignore[index]
        except (OSError, asyncio.TimeoutError, ValueError, KeyError):
            number = last_number
        now = time.monotonic()
        if number != last_number:
            worst = max(worst, now - last_change)
            last_number, last_change = number, now
        await asyncio.sleep(0.1)
    return max(worst, time.monotonic() - last_change)


async def attack_batches(port: int, clients: int, batch: int, duration: float) -> dict:
    body = json.dumps([{"jsonrpc": "2.0", "id": i, "method": "state_getMetadata", "params": []}
                       for i in range(batch)]).encode()
    stats = {"requests": 0, "bytes": 0, "largest": 0, "dropped": 0}
    until = time.monotonic() + duration
    watcher = asyncio.create_task(_watch_blocks(port, until))
    await asyncio.gather(*(_batch_client(port, body, until, stats) for _ in range(clients)))
    stats["block_gap_s"] = await watcher
    stats["request_kb"] = len(body) / 1024
    return stats


# ---------------------------------------------------------------------------------------------
# attack 2: WebSocket clients that never read
# ---------------------------------------------------------------------------------------------

def _ws_frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes([0x81, 0x80 | n])
    elif n < 65536:
        head = bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x81, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def _ws_no_read(port: int, until: float, stats: dict) -> None:
    """Open a WebSocket, send metadata requests as fast as the node takes them, read nothing; when
    the node drops the connection, open another (as an attacker would)."""
    frame = _ws_frame(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "state_getMetadata"}).encode())
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        blocked = False
        try:
            writer.write((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          "Sec-WebSocket-Version: 13\r\n\r\n").encode())
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            stats["connections"] += 1
            while time.monotonic() < until and not writer.transport.is_closing():
                writer.write(frame * 50)
                t0 = time.monotonic()
                # the send buffer fills once the node stops reading this client (backpressure)
                await asyncio.wait_for(writer.drain(), max(0.01, until - t0))
                if time.monotonic() - t0 > 1.0 and not blocked:
                    blocked = True
                    stats["paused"] += 1
                stats["sent"] += 50
        except asyncio.TimeoutError:
            pass
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if time.monotonic() < until:
                stats["dropped"] += 1  # the node closed it before the attack ended
            writer.transport.abort()


async def attack_ws_no_read(port: int, duration: float) -> dict:
    stats = {"sent": 0, "connections": 0, "paused": 0, "dropped": 0}
    until = time.monotonic() + duration
    await asyncio.gather(*(_ws_no_read(port, until, stats) for _ in range(2)))
    return stats


# ---------------------------------------------------------------------------------------------
# attack 3: connection slots from 127.0.0.2
# ---------------------------------------------------------------------------------------------

async def _hold_slot(port: int, half_headers: bool, stop: asyncio.Event, stats: dict) -> None:
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(ATTACKER_IP, 0))
        except OSError:
            await asyncio.sleep(0.05)
            continue
        stats["opened"] += 1
        try:
            if half_headers:
                writer.write(f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode())
            # hold the slot until the node closes it (EOF) or the attack ends
            eof = asyncio.ensure_future(reader.read(1))
            eof.add_done_callback(lambda t: t.cancelled() or t.exception())
            stopped = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait([eof, stopped], return_when=asyncio.FIRST_COMPLETED)
            if eof in done:
                stats["closed_by_node"] += 1
            eof.cancel()
            stopped.cancel()
        except OSError:
            pass
        finally:
            writer.transport.abort()


async def _victim_latency(port: int, give_up_s: float) -> float:
    """Seconds until 127.0.0.1 gets an answer to system_health on a fresh connection."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "system_health", "params": []}).encode()
    t0 = time.monotonic()
    while time.monotonic() - t0 < give_up_s:
        left = give_up_s - (time.monotonic() - t0)
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.1", 0)), left)
            try:
                writer.write(_post_bytes(port, body))
                status, _resp = await asyncio.wait_for(_read_response(reader), left)
                if status == 200:
                    return time.monotonic() - t0
            finally:
                writer.close()
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            pass
        await asyncio.sleep(0.02)
    return float("inf")


async def attack_slots(port: int, attackers: int, duration: float, probes: int) -> dict:
    """Hold `attackers` slots; probe from 127.0.0.1 `probes` times spread over `duration` seconds
    (the attacker holds on until the last probe is answered or given up)."""
    stats = {"opened": 0, "closed_by_node": 0}
    stop = asyncio.Event()
    holders = [asyncio.create_task(_hold_slot(port, i % 2 == 1, stop, stats)) for i in range(attackers)]
    await asyncio.sleep(1.0)  # let the attacker take its slots first
    latencies = []
    t0 = time.monotonic()
    for i in range(probes):
        await asyncio.sleep(max(0.0, t0 + i * duration / probes - time.monotonic()))
        latencies.append(await _victim_latency(port, give_up_s=20.0))
    stop.set()
    await asyncio.gather(*holders)
    stats["latencies"] = latencies
    return stats


# ---------------------------------------------------------------------------------------------

def start_node(tmp: Path, port: int) -> subprocess.Popen:
    gridchain = str(Path(sys.executable).with_name("gridchain"))
    log = open(tmp / "node.log", "w")
    proc = subprocess.Popen([gridchain, "--dev", "--rpc-port", str(port)], stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"node exited: see {log.name}")
        try:
            asyncio.run(rpc(port, "system_health", timeout=2))
            return proc
        except (OSError, asyncio.TimeoutError, ValueError, KeyError, asyncio.IncompleteReadError):
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("node did not start serving RPC within 60 s")


def stop_node(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class _Node:
    """A fresh dev node for one attack: started, its resting memory read, stopped afterwards."""

    def __init__(self, tmp: Path, name: str) -> None:
        self.dir = tmp / name
        self.dir.mkdir()
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "_Node":
        self.proc = start_node(self.dir, self.port)
        time.sleep(2.0)  # let start-up settle before taking the baseline
        self.rest_mb = psutil.Process(self.proc.pid).memory_info().rss / 2**20
        return self

    def peak_mb(self) -> float:
        assert self.proc is not None
        return _status_mb(self.proc.pid, "VmHWM")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            alive = self.proc.poll() is None
            if not alive:
                print(f"    the node DIED (exit code {self.proc.returncode})")
            stop_node(self.proc)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--batch", type=int, default=1000, help="calls per batch")
    ap.add_argument("--duration", type=float, default=15.0, help="seconds per memory attack")
    ap.add_argument("--attackers", type=int, default=100, help="connections held from 127.0.0.2")
    ap.add_argument("--slots-duration", type=float, default=12.0,
                    help="seconds over which the 127.0.0.1 tries are spread")
    ap.add_argument("--probes", type=int, default=6, help="127.0.0.1 requests during the slots attack")
    args = ap.parse_args(argv)
    print(f"rpc_abuse: a fresh dev node per attack, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for name, batch in (("batches", args.batch), ("batches-in-budget", 0)):
            with _Node(tmp, name) as node:
                if not batch:  # as many calls as fit in the 10 MiB response budget
                    metadata_bytes = len(json.dumps(asyncio.run(rpc(node.port, "state_getMetadata")),
                                                    separators=(",", ":")))
                    batch = RESPONSE_BUDGET // (metadata_bytes + 40)
                s = asyncio.run(attack_batches(node.port, args.clients, batch, args.duration))
                peak = node.peak_mb()
                outcome = ", ".join(f"{k} x{v}" for k, v in s.items() if k.startswith(("http", "error")))
                print(f"  {name}: {args.clients} clients x {batch}-call state_getMetadata batches "
                      f"({s['request_kb']:.0f} KB each) for {args.duration:.0f} s: {s['requests']} answered "
                      f"({outcome or 'all with results'}), largest answer {s['largest'] / 2**20:.1f} MiB, "
                      f"{s['bytes'] / 2**20:.0f} MiB in all, {s['dropped']} connections dropped")
                print(f"    peak RSS {peak:.0f} MB (at rest {node.rest_mb:.0f} MB); limit {RSS_LIMIT_MB} MB; "
                      f"ratio {peak / RSS_LIMIT_MB:.2f}; longest wait for a block {s['block_gap_s']:.1f} s "
                      f"(block time 1 s)")

        with _Node(tmp, "ws") as node:
            w = asyncio.run(attack_ws_no_read(node.port, args.duration))
            peak = node.peak_mb()
            print(f"  ws-no-read: 2 WebSocket clients sent {w['sent']} metadata requests and read nothing "
                  f"for {args.duration:.0f} s, reconnecting when dropped ({w['connections']} connections: "
                  f"{w['paused']} held back by backpressure, {w['dropped']} dropped by the node)")
            print(f"    peak RSS {peak:.0f} MB (at rest {node.rest_mb:.0f} MB); limit {RSS_LIMIT_MB} MB; "
                  f"ratio {peak / RSS_LIMIT_MB:.2f}")

        with _Node(tmp, "slots") as node:
            c = asyncio.run(attack_slots(node.port, args.attackers, args.slots_duration, args.probes))
            lat = c["latencies"]
            worst = max(lat)
            print(f"  slots: {args.attackers} connections held from {ATTACKER_IP} ({c['opened']} opened, "
                  f"{c['closed_by_node']} closed by the node)")
            print(f"    127.0.0.1 system_health latency: worst {worst:.3f} s over {len(lat)} tries in "
                  f"{args.slots_duration:.0f} s ({', '.join(f'{x:.3f}' for x in lat)}); "
                  f"limit {LATENCY_LIMIT_S:.0f} s; ratio {worst / LATENCY_LIMIT_S:.2f}")


if __name__ == "__main__":
    main()
