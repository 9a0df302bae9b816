"""A hostile client against the RPC server: the findings of an attacker's test of the node, each with
its regression test. A real RpcServer on loopback in front of the fake node (`tests/rpc_fake.py`),
driven by raw sockets where the attack needs bytes no well-behaved client sends.

  1. batch amplification: a response-size budget per request and per batch, metadata serialized once,
     the event loop given back between a batch's calls, a rate limit on by default when external;
  2. WebSocket clients that never read: a byte cap, and reading stopped over the high-water mark;
  3. one client taking every connection slot: a per-address cap, a header deadline, loopback slots;
  4. refused connections refused quietly at accept time, and counted;
  5. absurdly long hex block numbers: -32602 without echoing the value;
  6. Origin ports: ASCII digits only.

Timings are never asserted: bounds like "answered within 10 s" only keep a failing test from hanging
(the real latencies are measured by bench/rpc_abuse.py).
"""
from __future__ import annotations

import asyncio
import base64
import gc
import http.client
import json
import logging
import os
import socket
import struct
import time
from typing import Any

import pytest

import rpc.jsonshapes as js
from rpc import limits as L
from rpc.server import RpcServer

from tests.rpc_fake import FAKE_METADATA, lt, node  # noqa: F401 - fixtures

ATTACKER = "127.0.0.2"


def _post(port: int, payload: Any, *, source: str = "127.0.0.1", timeout: float = 10.0,
          headers: dict | None = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    try:
        conn.request("POST", "/", body=json.dumps(payload).encode(),
                     headers={"Content-Type": "application/json", **(headers or {})})
        r = conn.getresponse()
        body = r.read()
        return r.status, (json.loads(body) if body else None)
    finally:
        conn.close()


def _call(method: str, params: Any = None, rid: Any = 1) -> dict:
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": params if params is not None else []}


def _connect_from(ip: str, port: int) -> socket.socket:
    s = socket.socket()
    s.bind((ip, 0))
    s.connect(("127.0.0.1", port))
    return s


def _closed_by_server(sock: socket.socket, within_s: float) -> bool:
    """True if the server closes `sock` (EOF or reset) before `within_s` passes."""
    sock.settimeout(within_s)
    try:
        while True:
            if sock.recv(4096) == b"":
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def _served_from_loopback(port: int, within_s: float = 10.0) -> bool:
    """Does 127.0.0.1 get an answer to system_name (retrying refused connections) within the bound?"""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            status, body = _post(port, _call("system_name"), timeout=max(0.1, deadline - time.monotonic()))
            if status == 200 and body.get("result") == "gridchain":
                return True
        except (OSError, http.client.HTTPException):
            time.sleep(0.05)
    return False


# =============================================================================================
# 1. batch amplification
# =============================================================================================

def test_batch_stops_running_calls_once_its_answer_passes_the_response_budget(lt, node):
    s = lt.serve(node, max_response_bytes=20_000)
    calls = []
    s.register("test_big", lambda params: (calls.append(1), "x" * 1000)[1], raw=True)
    try:
        status, body = _post(s.port, [_call("test_big", rid=i) for i in range(100)])
        assert status == 200
        assert body["id"] is None
        assert body["error"]["code"] == L.TOO_BIG_BATCH_RESPONSE
        assert "20000" in body["error"]["message"]
        # the calls after the budget ran out were never run
        assert 15 <= len(calls) <= 25
        # a batch within the budget is answered in full
        status, body = _post(s.port, [_call("test_big", rid=i) for i in range(10)])
        assert [r["id"] for r in body] == list(range(10))
        assert all(r["result"] == "x" * 1000 for r in body)
    finally:
        lt.stop(s)


def test_single_answer_over_the_response_budget_is_an_error_with_its_id(lt, node):
    s = lt.serve(node, max_response_bytes=5_000)
    s.register("test_huge", lambda params: "y" * 10_000, raw=True)
    try:
        status, body = _post(s.port, _call("test_huge", rid="big"))
        assert status == 200
        assert body == {"jsonrpc": "2.0", "id": "big", "error": {
            "code": L.OVERSIZED_RESPONSE, "message": "Response is too big (limit 5000 bytes)"}}
        status, body = _post(s.port, _call("system_name"))
        assert body["result"] == "gridchain"
    finally:
        lt.stop(s)


def test_metadata_is_serialized_once_for_many_calls(lt, node, monkeypatch):
    encoded = []
    real_dumps = js.dumps

    def counting_dumps(obj: Any) -> bytes:
        if obj is FAKE_METADATA:
            encoded.append(1)
        return real_dumps(obj)

    monkeypatch.setattr(js, "dumps", counting_dumps)
    s = lt.serve(node)
    try:
        status, body = _post(s.port, [_call("state_getMetadata", rid=i) for i in range(50)])
        assert status == 200 and len(body) == 50
        assert all(r["result"] == FAKE_METADATA and r["id"] == i for i, r in enumerate(body))
        status, body = _post(s.port, _call("state_getMetadata", rid=7))
        assert body == {"jsonrpc": "2.0", "result": FAKE_METADATA, "id": 7}
        assert len(encoded) == 1
    finally:
        lt.stop(s)


def test_batch_gives_the_event_loop_back_between_calls(lt, node):
    s = lt.serve(node)
    ticks = [0]
    s.register("test_ticks", lambda params: ticks[0], raw=True)

    async def ticker() -> None:
        while True:
            ticks[0] += 1
            await asyncio.sleep(0)

    task = lt.call(lambda: asyncio.ensure_future(ticker()))
    try:
        status, body = _post(s.port, [_call("test_ticks", rid=i) for i in range(50)])
        seen = [r["result"] for r in body]
        # other tasks (block authoring, other clients) ran while the batch was answered
        assert len(set(seen)) > 10
        assert seen == sorted(seen)
    finally:
        lt.call(task.cancel)
        lt.stop(s)


def test_rate_limit_is_on_by_default_beyond_loopback(node):
    external = RpcServer(node, host="0.0.0.0", port=0)
    assert external.rate_limit_per_second == L.DEFAULT_EXTERNAL_RATE_LIMIT
    assert external.rate_limit_burst == L.DEFAULT_EXTERNAL_RATE_BURST >= L.DEFAULT_MAX_BATCH_LEN
    assert RpcServer(node, host="127.0.0.1", port=0).rate_limit_per_second is None
    explicit = RpcServer(node, host="0.0.0.0", port=0, rate_limit_per_second=7)
    assert (explicit.rate_limit_per_second, explicit.rate_limit_burst) == (7, 7)
    assert RpcServer(node, host="0.0.0.0", port=0, rate_limit_per_second=0).rate_limit_per_second is None
    assert RpcServer(node, host="127.0.0.1", port=0, rate_limit_per_second=5).rate_limit_per_second == 5


def test_default_external_rate_limit_lets_one_full_batch_through_then_refuses(lt, node):
    # the external default, on a loopback test server: one 1,000-call batch passes, the next is refused
    s = lt.serve(node, rate_limit_per_second=L.DEFAULT_EXTERNAL_RATE_LIMIT,
                 rate_limit_burst=L.DEFAULT_EXTERNAL_RATE_BURST)
    try:
        batch = [_call("system_name", rid=i) for i in range(L.DEFAULT_MAX_BATCH_LEN)]
        status, body = _post(s.port, batch)
        assert status == 200 and len(body) == L.DEFAULT_MAX_BATCH_LEN
        status, body = _post(s.port, batch)
        assert status == 429 and body["error"]["code"] == L.RATE_LIMITED
    finally:
        lt.stop(s)


# =============================================================================================
# 2. WebSocket clients that do not read
# =============================================================================================

def _raw_ws(port: int, rcvbuf: int = 4096) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    resp = b""
    while b"\r\n\r\n" not in resp:
        resp += sock.recv(1)
    assert b" 101 " in resp.split(b"\r\n")[0]
    return sock


def _frame(obj: Any) -> bytes:
    payload = json.dumps(obj).encode()
    mask = os.urandom(4)
    n = len(payload)
    head = struct.pack("!BB", 0x81, 0x80 | n) if n < 126 else struct.pack("!BBH", 0x81, 0x80 | 126, n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _read_frames(sock: socket.socket, count: int, within_s: float) -> list[bytes]:
    """Read `count` server frames' payloads (unmasked; skips pings)."""
    sock.settimeout(within_s)
    buf = b""
    out: list[bytes] = []
    while len(out) < count:
        while True:
            if len(buf) >= 2:
                n = buf[1] & 0x7F
                head = 2
                if n == 126 and len(buf) >= 4:
                    n, head = struct.unpack("!H", buf[2:4])[0], 4
                elif n == 127 and len(buf) >= 10:
                    n, head = struct.unpack("!Q", buf[2:10])[0], 10
                if n < 126 or head > 2:
                    if len(buf) >= head + n:
                        if buf[0] & 0x0F in (0x1, 0x2):
                            out.append(buf[head:head + n])
                        buf = buf[head + n:]
                        break
            chunk = sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError(f"closed after {len(out)} frames")
            buf += chunk
    return out


def test_ws_server_stops_reading_a_client_whose_answers_pile_up(lt, node):
    s = lt.serve(node, ws_send_high_water=256 * 1024, ws_send_queue_bytes=64 * 2**20, ws_max_inflight=16)
    answered = []
    s.register("test_chunk", lambda params: (answered.append(1), "z" * 65_000)[1], raw=True)
    sock = _raw_ws(s.port)
    try:
        total = 1000
        sock.sendall(b"".join(_frame(_call("test_chunk", rid=i)) for i in range(total)))
        time.sleep(1.5)  # the client reads nothing meanwhile
        # the server answered what fits in socket buffers and its high-water mark, then stopped
        # reading this client's requests instead of answering all 1000 into memory (65 MB)
        paused_at = len(answered)
        assert paused_at < total // 2
        # the connection is kept: once the client reads, every request is answered
        frames = _read_frames(sock, total, within_s=20)
        assert sorted(json.loads(f)["id"] for f in frames) == list(range(total))
        assert len(answered) == total
    finally:
        sock.close()
        lt.stop(s)


def test_ws_client_over_the_byte_cap_is_dropped(lt, node):
    from primitives.types import DigestItem, Header
    s = lt.serve(node, ws_send_queue_bytes=2 * 2**20, ws_send_high_water=512 * 1024)
    sock = _raw_ws(s.port)
    try:
        sock.sendall(_frame(_call("chain_subscribeNewHeads")))
        deadline = time.monotonic() + 5
        while not node.head_feeds and time.monotonic() < deadline:
            time.sleep(0.01)
        assert node.head_feeds
        header = node.blocks[-1].block.header
        big = Header(header.parent_hash, header.number, header.state_root, header.extrinsics_root,
                     tuple(DigestItem(0, b"test", bytes([i]) * 4000) for i in range(4)))
        # 40 KB notifications: the 4096-message cap alone would let 160 MB pile up; bytes stop it
        pushed = 0
        deadline = time.monotonic() + 10
        while node.head_feeds and time.monotonic() < deadline:
            lt.call(lambda: [node.push_head(big) for _ in range(20)])
            pushed += 20
            time.sleep(0.005)
        assert not node.head_feeds
        assert pushed < 4096
        status, body = _post(s.port, _call("system_name"))
        assert body["result"] == "gridchain"
    finally:
        sock.close()
        lt.stop(s)


# =============================================================================================
# 3 and 4. connection slots
# =============================================================================================

def _hold(count: int, port: int, half_headers: bool = True) -> list[socket.socket]:
    socks = []
    for i in range(count):
        s = _connect_from(ATTACKER, port)
        if half_headers and i % 2:
            s.sendall(f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode())
        socks.append(s)
    return socks


def test_one_address_cannot_take_every_slot(lt, node):
    s = lt.serve(node)  # defaults: 100 connections, 16 per address
    socks = _hold(100, s.port)
    try:
        assert _served_from_loopback(s.port)
        time.sleep(0.2)
        assert s.refused_by_reason["max_per_ip"] >= 100 - L.DEFAULT_MAX_CONNECTIONS_PER_IP
        assert s.refused_connections >= 100 - L.DEFAULT_MAX_CONNECTIONS_PER_IP
    finally:
        for sock in socks:
            sock.close()
        lt.stop(s)


def test_loopback_keeps_reserved_slots_when_others_fill_the_server(lt, node):
    s = lt.serve(node, max_connections=40, max_connections_per_ip=1000)
    socks = _hold(60, s.port)
    try:
        assert _served_from_loopback(s.port)
        time.sleep(0.2)
        # others got every slot but the reserved ones
        assert s.refused_by_reason["max_connections"] == 60 - (40 - L.DEFAULT_RESERVED_LOOPBACK_CONNECTIONS)
        assert s.refused_by_reason["max_per_ip"] == 0
    finally:
        for sock in socks:
            sock.close()
        lt.stop(s)


def test_connections_without_complete_headers_are_closed(lt, node):
    s = lt.serve(node, header_timeout_s=0.5)
    idle = _connect_from(ATTACKER, s.port)
    half = _connect_from(ATTACKER, s.port)
    half.sendall(f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\nContent-Type: application/json\r\n".encode())
    keep = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10, source_address=(ATTACKER, 0))
    try:
        assert _closed_by_server(idle, within_s=10)
        assert _closed_by_server(half, within_s=10)
        # a connection that sent a whole request is answered and kept alive past the header deadline
        body = json.dumps(_call("system_name")).encode()
        keep.request("POST", "/", body=body, headers={"Content-Type": "application/json"})
        assert json.loads(keep.getresponse().read())["result"] == "gridchain"
        time.sleep(1.0)
        keep.request("POST", "/", body=body, headers={"Content-Type": "application/json"})
        assert json.loads(keep.getresponse().read())["result"] == "gridchain"
        # ... but a later request on it must also complete its headers in time
        keep.sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")
        assert _closed_by_server(keep.sock, within_s=10)
        assert s.header_timeouts == 3
    finally:
        idle.close()
        half.close()
        keep.close()
        lt.stop(s)


def test_refused_connections_are_quiet_and_counted(lt, node, caplog):
    caplog.set_level(logging.DEBUG)
    s = lt.serve(node, max_connections=2)
    held = [_connect_from("127.0.0.1", s.port) for _ in range(2)]
    try:
        time.sleep(0.1)
        refused = [_connect_from("127.0.0.1", s.port) for _ in range(5)]
        assert all(_closed_by_server(r, within_s=10) for r in refused)
        for r in refused:
            r.close()
        time.sleep(0.2)
        lt.call(gc.collect)
        gc.collect()
        for record in caplog.records:
            text = record.getMessage()
            assert record.exc_info is None and "Traceback" not in text, text
            assert "Task exception" not in text and "never retrieved" not in text, text
        assert s.refused_connections == 5
        assert s.refused_by_reason == {"max_connections": 5, "max_per_ip": 0}
    finally:
        for h in held:
            h.close()
        lt.stop(s)


# =============================================================================================
# 5. hex numbers
# =============================================================================================

@pytest.mark.parametrize("number", ["0x" + "f" * 14_000, "0x" + "0" * 16 + "1", ["0x1", "0x" + "9" * 20_000]])
def test_overlong_hex_block_numbers_are_invalid_params_without_echo(lt, node, caplog, number):
    s = lt.serve(node)
    try:
        status, body = _post(s.port, _call("chain_getBlockHash", [number]))
        err = body["error"]
        assert err["code"] == L.INVALID_PARAMS
        assert len(err["message"]) < 120 and "ffff" not in err["message"] and "9999" not in err["message"]
        assert "data" not in err
        assert not [r for r in caplog.records if r.exc_info is not None]
        # the longest valid one still works
        status, body = _post(s.port, _call("chain_getBlockHash", ["0x" + "f" * 16]))
        assert "error" not in body and body["result"] is None
    finally:
        lt.stop(s)


def test_out_of_range_block_number_is_not_echoed(lt, node):
    s = lt.serve(node)
    try:
        big = 10 ** 400
        status, body = _post(s.port, _call("chain_getBlockHash", [big]))
        assert body["error"]["code"] == L.INVALID_PARAMS
        assert str(big)[:50] not in body["error"]["message"]
    finally:
        lt.stop(s)


# =============================================================================================
# 6. Origin ports
# =============================================================================================

def _origin_status(port: int, origin: str) -> int:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        body = json.dumps(_call("system_name")).encode()
        sock.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Origin: " + origin.encode() + b"\r\nContent-Length: " + str(len(body)).encode()
                     + b"\r\nConnection: close\r\n\r\n" + body)
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return int(data.split(b" ", 2)[1])
    finally:
        sock.close()


@pytest.mark.parametrize("origin, allowed", [
    ("http://localhost:3000", True),
    ("http://localhost:65535", True),
    ("http://127.0.0.1", True),
    ("http://localhost:\u0661\u0662", False),      # Arabic-Indic digits
    ("http://localhost:\u00b2", False),            # superscript two
    ("http://localhost:65536", False),
    ("http://localhost:123456", False),
    ("http://localhost:", False),
    ("http://localhost:80x", False),
])
def test_origin_port_must_be_ascii_digits(lt, node, origin, allowed):
    s = lt.serve(node)
    try:
        assert (_origin_status(s.port, origin) == 200) is allowed
    finally:
        lt.stop(s)
