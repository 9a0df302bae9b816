"""The RPC layer's own tests: a real RpcServer on 127.0.0.1 (port 0) in front of a small fake NodeApi,
driven by real aiohttp clients over HTTP and WebSocket.

The server and the fake node live on an event loop in a background thread (`LoopThread`); test code
runs coroutines there with `lt.run(...)`, so plain (sync) tests and hypothesis work without plugins.
`tests/test_rpc_client.py` reuses the fake node and the harness.
"""
from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import socket
import struct
import time
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from primitives.hashing import keccak256
from primitives.ss58 import encode as ss58_encode
from primitives.types import (DigestItem, Header)
from rpc.jsonshapes import header_from_json
from rpc.server import RpcServer

from tests.rpc_fake import (ALICE, BOB, FAKE_METADATA, FakeNode, LoopThread, UnknownBlock,  # noqa: F401
                            lt, make_header, node, server, signed_xt)


def url(server: RpcServer) -> str:
    return f"http://127.0.0.1:{server.port}/"


async def _post(u: str, payload: Any, raw: bytes | None = None, headers: dict | None = None):
    async with aiohttp.ClientSession() as s:
        data = raw if raw is not None else json.dumps(payload).encode()
        async with s.post(u, data=data, headers=headers or {"Content-Type": "application/json"}) as r:
            body = await r.read()
            return r.status, (json.loads(body) if body else None), r.headers


def post(lt: LoopThread, server: RpcServer, payload: Any = None, raw: bytes | None = None,
         headers: dict | None = None):
    status, body, _ = lt.run(_post(url(server), payload, raw, headers))
    return status, body


def rpc(lt: LoopThread, server: RpcServer, method: str, params: Any = None) -> dict:
    req = {"jsonrpc": "2.0", "id": 1, "method": method}
    if params is not None:
        req["params"] = params
    status, body = post(lt, server, req)
    assert status == 200
    assert body["jsonrpc"] == "2.0" and body["id"] == 1
    return body


def result(lt, server, method, params=None) -> Any:
    body = rpc(lt, server, method, params)
    assert "error" not in body, body
    return body["result"]


def error(lt, server, method, params=None) -> dict:
    body = rpc(lt, server, method, params)
    assert "result" not in body, body
    return body["error"]


class WsClient:
    """A WebSocket JSON-RPC test client running on the loop thread."""

    def __init__(self, lt: LoopThread, server: RpcServer) -> None:
        self.lt = lt
        self.next_id = 0

        async def go():
            self.session = aiohttp.ClientSession()
            self.ws = await self.session.ws_connect(url(server))
        lt.run(go())

    def send(self, obj: Any) -> None:
        self.lt.run(self.ws.send_str(obj if isinstance(obj, str) else json.dumps(obj)))

    def recv(self, timeout: float = 5.0) -> Any:
        async def go():
            msg = await self.ws.receive(timeout)
            if msg.type != aiohttp.WSMsgType.TEXT:
                return msg
            return json.loads(msg.data)
        return self.lt.run(go())

    def call(self, method: str, params: Any = None) -> dict:
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params or []})
        while True:
            msg = self.recv()
            if isinstance(msg, dict) and msg.get("id") == self.next_id:
                return msg

    def close(self) -> None:
        async def go():
            await self.ws.close()
            await self.session.close()
        self.lt.run(go())


def assert_hex(value: Any, nbytes: int | None = None) -> None:
    assert isinstance(value, str) and value.startswith("0x")
    raw = bytes.fromhex(value[2:])
    if nbytes is not None:
        assert len(raw) == nbytes


def assert_header_shape(h: dict) -> None:
    assert set(h) == {"parentHash", "number", "stateRoot", "extrinsicsRoot", "digest"}
    assert_hex(h["parentHash"], 32)
    assert_hex(h["stateRoot"], 32)
    assert_hex(h["extrinsicsRoot"], 32)
    assert h["number"].startswith("0x") and int(h["number"], 16) >= 0
    assert set(h["digest"]) == {"logs"}
    for log in h["digest"]["logs"]:
        DigestItem.decode(bytes.fromhex(log[2:]))


# =============================================================================================
# method shapes
# =============================================================================================

def test_system_methods(lt, server):
    assert result(lt, server, "system_name") == "gridchain"
    assert result(lt, server, "system_version") == "0.1.0-test"
    assert result(lt, server, "system_chain") == "Development"
    assert result(lt, server, "system_chainType") == "Development"
    assert result(lt, server, "system_properties")["ss58Format"] == 6236
    assert result(lt, server, "system_health") == {"peers": 3, "isSyncing": False, "shouldHavePeers": True}
    # SS58 with the gridchain prefix, with another network's prefix, and 0x hex all work
    assert result(lt, server, "system_accountNextIndex", [ALICE.address()]) == 7
    assert result(lt, server, "system_accountNextIndex", [ss58_encode(ALICE.public_key, 42)]) == 7
    assert result(lt, server, "system_accountNextIndex", ["0x" + ALICE.public_key.hex()]) == 7
    assert result(lt, server, "system_accountNextIndex", [BOB.address()]) == 0
    err = error(lt, server, "system_accountNextIndex", ["5notAnAddress"])
    assert err["code"] == -32602 and "address" in err["message"]
    peers = result(lt, server, "system_peers")
    assert isinstance(peers, list) and peers[0]["peerId"]
    assert result(lt, server, "system_localPeerId") == "12D3KooWlocal"


def test_chain_methods(lt, server, node):
    best = result(lt, server, "chain_getBlockHash")
    assert_hex(best, 32)
    genesis = result(lt, server, "chain_getBlockHash", [0])
    assert genesis == "0x" + node.genesis.hex()
    assert result(lt, server, "chain_getBlockHash", ["0x0"]) == genesis
    assert result(lt, server, "chain_getBlockHash", [10**6]) is None
    assert result(lt, server, "chain_getBlockHash", [[0, "0x1", 10**6]])[0] == genesis
    assert result(lt, server, "chain_getHead") == best  # Substrate's alias
    assert error(lt, server, "chain_getBlockHash", [-1])["code"] == -32602
    assert error(lt, server, "chain_getBlockHash", ["12"])["code"] == -32602

    header = result(lt, server, "chain_getHeader", [genesis])
    assert_header_shape(header)
    assert header["number"] == "0x0"
    # the JSON round-trips to the same header, hence the same hash
    assert "0x" + header_from_json(header).hash().hex() == genesis
    best_header = result(lt, server, "chain_getHeader")
    assert "0x" + header_from_json(best_header).hash().hex() == best
    assert result(lt, server, "chain_getHeader", ["0x" + "ab" * 32]) is None
    err = error(lt, server, "chain_getHeader", ["0x1234"])
    assert err["code"] == -32602 and "hash" in err["message"] and "32 bytes" in err["message"]

    blk = result(lt, server, "chain_getBlock", [best])
    assert set(blk) == {"block", "justifications"}
    assert set(blk["block"]) == {"header", "extrinsics"}
    assert_header_shape(blk["block"]["header"])
    assert all(x.startswith("0x") for x in blk["block"]["extrinsics"])
    engine, data = blk["justifications"][0]
    assert engine == "0x" + b"BFT1".hex() and data.startswith("0x")
    assert result(lt, server, "chain_getBlock", [genesis])["justifications"] is None
    assert result(lt, server, "chain_getBlock", ["0x" + "00" * 32]) is None

    fin = result(lt, server, "chain_getFinalizedHead")
    assert fin == "0x" + node.finalized_head().hex()
    assert result(lt, server, "chain_getFinalisedHead") == fin


def test_state_methods(lt, server, node):
    assert result(lt, server, "state_getStorage", ["0x0101"]) == "0x" + b"one".hex()
    assert result(lt, server, "state_getStorage", ["0x0909"]) is None
    best = result(lt, server, "chain_getBlockHash")
    assert result(lt, server, "state_getStorage", ["0x0101", best]) == "0x" + b"one".hex()
    assert result(lt, server, "state_getStorageHash", ["0x0101"]) == "0x" + keccak256(b"one").hex()
    assert result(lt, server, "state_getStorageSize", ["0x0101"]) == 3
    err = error(lt, server, "state_getStorage", ["0x0101", "0x" + "11" * 32])
    assert err["code"] == 4003 and err["message"] == "Unknown block"
    assert error(lt, server, "state_getStorage", ["0101"])["code"] == -32602
    assert error(lt, server, "state_getStorage", [])["code"] == -32602

    assert result(lt, server, "state_getKeysPaged", ["0x01", 10]) == ["0x0101", "0x0102", "0x0103"]
    assert result(lt, server, "state_getKeysPaged", ["0x01", 1, "0x0101"]) == ["0x0102"]
    assert result(lt, server, "state_getKeysPaged", ["0x", 2]) == ["0x0101", "0x0102"]
    err = error(lt, server, "state_getKeysPaged", ["0x01", 1001])
    assert err["code"] == -32602 and "count" in err["message"]

    proof = result(lt, server, "state_getReadProof", [["0x0101", "0x0102"]])
    assert set(proof) == {"at", "proof"} and proof["at"] == best
    assert proof["proof"] == ["0xc0", "0xc20102"]
    assert error(lt, server, "state_getReadProof", ["0x0101"])["code"] == -32602

    rv = result(lt, server, "state_getRuntimeVersion")
    for k, v in {"specName": "gridchain", "implName": "gridchain-node", "specVersion": 100,
                 "implVersion": 1, "transactionVersion": 2, "stateVersion": 1, "apis": []}.items():
        assert rv[k] == v
    assert result(lt, server, "chain_getRuntimeVersion") == rv
    assert result(lt, server, "state_getMetadata") == FAKE_METADATA


def test_author_methods(lt, server, node):
    xt = signed_xt()
    h = result(lt, server, "author_submitExtrinsic", ["0x" + xt.hex()])
    assert h == "0x" + keccak256(xt).hex()
    assert "0x" + xt.hex() in result(lt, server, "author_pendingExtrinsics")

    err = error(lt, server, "author_submitExtrinsic", ["0x" + signed_xt(pallet=9).hex()])
    assert err["code"] == 1010
    assert err["message"] == "Invalid Transaction: Inability to pay some fees"
    assert err["data"] == "Payment: Inability to pay some fees"
    err = error(lt, server, "author_submitExtrinsic", ["0xdeadbeef"])
    assert err["code"] == 1001 and "invalid format" in err["message"]
    err = error(lt, server, "author_submitExtrinsic", ["0x" + "00" * (70 * 1024)])
    assert err["code"] == -32602
    # subscriptions need a WebSocket
    err = error(lt, server, "author_submitAndWatchExtrinsic", ["0x" + xt.hex()])
    assert err["code"] == -32601 and "WebSocket" in err["message"]
    lt.run(node.seal_block())


def test_rpc_methods_and_extra_methods(lt, server):
    methods = result(lt, server, "rpc_methods")["methods"]
    assert methods == sorted(methods)
    for name in ("system_health", "chain_getBlock", "chain_subscribeNewHeads", "chain_unsubscribeNewHeads",
                 "chain_subscribeFinalizedHeads", "chain_subscribeFinalisedHeads", "chain_getFinalisedHead",
                 "chain_subscribeNewHead", "state_getReadProof", "author_submitAndWatchExtrinsic",
                 "author_unwatchExtrinsic", "engine_createBlock", "rpc_methods", "energy_zones"):
        assert name in methods, name
    assert result(lt, server, "energy_zones") == [{"zone": 1, "capacityW": 5000}]
    assert result(lt, server, "energy_echo", [1, "a"]) == {"echo": [1, "a"]}
    assert result(lt, server, "energy_echo", {"zone": 2}) == {"echo": {"zone": 2}}
    assert result(lt, server, "energy_admin") == "admin done"  # unsafe, but we are on loopback
    assert result(lt, server, "system_name") == "gridchain"  # built-ins win over extra methods
    err = error(lt, server, "energy_boom")
    assert err == {"code": -32603, "message": "Internal error"}
    err = error(lt, server, "energy_fail")
    assert err["code"] == 1010 and err["data"] == "Stale: nonce too low"


def test_named_params(lt, server, node):
    genesis = "0x" + node.genesis.hex()
    assert result(lt, server, "chain_getBlockHash", {"number": 0}) == genesis
    assert result(lt, server, "chain_getHeader", {"hash": genesis})["number"] == "0x0"
    assert result(lt, server, "state_getKeysPaged", {"prefix": "0x01", "count": 1}) == ["0x0101"]
    err = error(lt, server, "chain_getHeader", {"blockHash": genesis})
    assert err["code"] == -32602 and "blockHash" in err["message"]
    err = error(lt, server, "state_getKeysPaged", {"prefix": "0x01"})
    assert err["code"] == -32602 and "count" in err["message"]


def test_engine_create_block(lt, server, node):
    before = len(node.blocks)
    r = result(lt, server, "engine_createBlock", [True, True])
    assert set(r) == {"hash", "aux"}
    assert r["hash"] == "0x" + node.blocks[-1].block.header.hash().hex()
    assert len(node.blocks) == before + 1
    err = error(lt, server, "engine_createBlock", [False, True])
    assert err["code"] == 12000
    best = result(lt, server, "chain_getBlockHash")
    assert result(lt, server, "engine_createBlock", [True, False, best])["hash"].startswith("0x")
    assert error(lt, server, "engine_createBlock", [True, False, "0x" + "00" * 32])["code"] == -32602
    assert error(lt, server, "engine_createBlock", ["yes"])["code"] == -32602


def test_health_endpoint_and_cors(lt, server):
    async def go():
        async with aiohttp.ClientSession() as s:
            async with s.get(url(server) + "health") as r:
                health = (r.status, await r.json())
            req = {"jsonrpc": "2.0", "id": 1, "method": "system_name"}
            async with s.post(url(server), json=req, headers={"Origin": "http://evil.example"}) as r:
                evil = r.status
            async with s.post(url(server), json=req, headers={"Origin": "http://localhost:3000"}) as r:
                local = (r.status, r.headers.get("Access-Control-Allow-Origin"))
            async with s.options(url(server), headers={"Origin": "https://127.0.0.1:8443"}) as r:
                pre = (r.status, r.headers.get("Access-Control-Allow-Origin"))
            async with s.get(url(server)) as r:
                plain_get = r.status
            return health, evil, local, pre, plain_get
    health, evil, local, pre, plain_get = lt.run(go())
    assert health == (200, {"peers": 3, "isSyncing": False, "shouldHavePeers": True})
    assert evil == 403
    assert local == (200, "http://localhost:3000")
    assert pre == (200, "https://127.0.0.1:8443")
    assert plain_get == 405


# =============================================================================================
# JSON-RPC protocol
# =============================================================================================

def test_batch_and_notifications(lt, server):
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "system_name"},
        {"jsonrpc": "2.0", "method": "system_name"},               # notification: no response
        {"jsonrpc": "2.0", "id": "two", "method": "nope"},
        5,
        {"jsonrpc": "2.0", "id": 3, "method": "state_getKeysPaged", "params": ["0x01", 1]},
    ]
    status, body = post(lt, server, batch)
    assert status == 200 and isinstance(body, list) and len(body) == 4
    by_id = {r["id"]: r for r in body if r["id"] is not None}
    assert by_id[1]["result"] == "gridchain"
    assert by_id["two"]["error"]["code"] == -32601
    assert by_id[3]["result"] == ["0x0101"]
    assert [r["error"]["code"] for r in body if r["id"] is None] == [-32600]

    status, body = post(lt, server, {"jsonrpc": "2.0", "method": "system_name"})
    assert status == 200 and body is None
    status, body = post(lt, server, [{"jsonrpc": "2.0", "method": "system_name"},
                                     {"jsonrpc": "2.0", "method": "nope"}])
    assert status == 200 and body is None
    status, body = post(lt, server, [])
    assert body["error"]["code"] == -32600 and body["id"] is None


@pytest.mark.parametrize("raw, code", [
    (b"{not json", -32700),
    (b"", -32700),
    (b"\xff\xfe", -32700),
    (b"[" * 100_000, -32700),
    (b"5", -32600),
    (b'"x"', -32600),
    (b"null", -32600),
    (b'{"jsonrpc": "1.0", "id": 1, "method": "system_name"}', -32600),
    (b'{"id": 1, "method": "system_name"}', -32600),
    (b'{"jsonrpc": "2.0", "id": 1}', -32600),
    (b'{"jsonrpc": "2.0", "id": 1, "method": 5}', -32600),
    (b'{"jsonrpc": "2.0", "id": [1], "method": "system_name"}', -32600),
    (b'{"jsonrpc": "2.0", "id": 1, "method": "no_such_method"}', -32601),
    (b'{"jsonrpc": "2.0", "id": 1, "method": "system_name", "params": [1]}', -32602),
    (b'{"jsonrpc": "2.0", "id": 1, "method": "system_name", "params": 5}', -32602),
    (b'{"jsonrpc": "2.0", "id": 1, "method": "chain_getBlockHash", "params": [1.5]}', -32602),
    (b'{"jsonrpc": "2.0", "id": 1, "method": "chain_getBlockHash", "params": [99999999999999999999999]}', -32602),
    (b'{"jsonrpc": "2.0", "id": 1, "method": "state_getStorage", "params": ["0xzz"]}', -32602),
    (b'{"jsonrpc": "2.0", "id": 1, "method": "state_getStorage", "params": ["0x123"]}', -32602),
    (b'{"jsonrpc": "2.0", "id": 1, "method": "state_getStorage", "params": ["0xdead"]}', -32603),
])
def test_protocol_errors(lt, server, raw, code):
    status, body = post(lt, server, raw=raw)
    assert status == 200
    assert body["jsonrpc"] == "2.0" and "result" not in body
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    if code == -32603:
        assert body["error"] == {"code": -32603, "message": "Internal error"}
        assert body["id"] == 1
    if code in (-32700,):
        assert body["id"] is None


def test_param_count_message(lt, server):
    err = error(lt, server, "chain_getHeader", ["0x" + "00" * 32, 1])
    assert err["code"] == -32602 and "at most 1 parameter" in err["message"]


def test_oversize_body(lt, node):
    s = lt.serve(node, max_request_bytes=1024)
    try:
        big = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "state_getStorage",
                          "params": ["0x" + "00" * 2000]}).encode()
        status, body = post(lt, s, raw=big)
        assert status == 413 and body["error"]["code"] == -32007

        async def chunked():
            async def gen():
                for _ in range(4):
                    yield b" " * 400
            async with aiohttp.ClientSession() as sess:
                async with sess.post(url(s), data=gen()) as r:
                    return r.status
        assert lt.run(chunked()) == 413

        ws = WsClient(lt, s)
        ws.send("[" + " " * 2000 + "]")
        msg = ws.recv()
        assert not isinstance(msg, dict) and msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                                          aiohttp.WSMsgType.ERROR)
        ws.close()
        assert result(lt, s, "system_name") == "gridchain"  # still serving
    finally:
        lt.stop(s)


def test_rate_limit(lt, node):
    s = lt.serve(node, rate_limit_per_second=3)
    try:
        statuses = [post(lt, s, {"jsonrpc": "2.0", "id": 1, "method": "system_name"})[0] for _ in range(12)]
        assert statuses[:3] == [200] * 3 and 429 in statuses
        status, body = post(lt, s, {"jsonrpc": "2.0", "id": 1, "method": "system_name"})
        if status == 429:
            assert body["error"]["code"] == -32029
        time.sleep(1.1)
        ws = WsClient(lt, s)
        errors = [ws.call("system_name").get("error") for _ in range(12)]
        assert errors[:2] == [None, None]
        assert {"code": -32029, "message": "rate limit exceeded"} in errors
        ws.close()
    finally:
        lt.stop(s)


def test_unsafe_methods_refused_when_external(lt, node):
    s = lt.serve(node, rpc_methods_unsafe="safe")
    try:
        for method, params in (("engine_createBlock", [True, True]), ("energy_admin", []),
                               ("system_peers", [])):
            err = error(lt, s, method, params)
            assert err == {"code": -32601, "message": "RPC call is unsafe to be called externally"}
        assert result(lt, s, "author_pendingExtrinsics") == []  # safe
    finally:
        lt.stop(s)
    # "auto" decides by the listening address
    assert RpcServer(node, host="0.0.0.0", port=0).allow_unsafe is False
    assert RpcServer(node, host="127.0.0.1", port=0).allow_unsafe is True
    assert RpcServer(node, host="::1", port=0).allow_unsafe is True
    assert RpcServer(node, host="0.0.0.0", port=0, rpc_methods_unsafe="unsafe").allow_unsafe is True
    with pytest.raises(ValueError):
        RpcServer(node, rpc_methods_unsafe="maybe")


def test_max_connections(lt, node):
    s = lt.serve(node, max_connections=2)
    try:
        a, b = WsClient(lt, s), WsClient(lt, s)
        assert a.call("system_name")["result"] == "gridchain"
        with pytest.raises((aiohttp.ClientError, ConnectionError, asyncio.TimeoutError)):
            WsClient(lt, s)
        a.close()
        b.close()
        time.sleep(0.1)
        assert result(lt, s, "system_name") == "gridchain"
    finally:
        lt.stop(s)


# =============================================================================================
# WebSocket and subscriptions
# =============================================================================================

def test_ws_calls_batch_and_errors(lt, server):
    ws = WsClient(lt, server)
    try:
        assert ws.call("system_name")["result"] == "gridchain"
        ws.send([{"jsonrpc": "2.0", "id": 100, "method": "system_chain"},
                 {"jsonrpc": "2.0", "id": 101, "method": "nope"}])
        batch = ws.recv()
        assert {r["id"] for r in batch} == {100, 101}
        ws.send("{oops")
        assert ws.recv()["error"]["code"] == -32700
        ws.send("[]")
        assert ws.recv()["error"]["code"] == -32600
        assert ws.call("chain_unsubscribeNewHeads", ["nope"])["result"] is False
    finally:
        ws.close()


def test_new_heads_subscription(lt, server, node):
    ws = WsClient(lt, server)
    try:
        r = ws.call("chain_subscribeNewHeads")
        sub = r["result"]
        assert isinstance(sub, str)
        first = ws.recv()
        assert first["method"] == "chain_newHead" and first["jsonrpc"] == "2.0"
        assert first["params"]["subscription"] == sub
        assert_header_shape(first["params"]["result"])
        assert first["params"]["result"] == result(lt, server, "chain_getHeader")  # starts at best

        new_hash = lt.run(node.seal_block())
        note = ws.recv()
        assert note["params"]["subscription"] == sub
        assert "0x" + header_from_json(note["params"]["result"]).hash().hex() == "0x" + new_hash.hex()

        fin_sub = ws.call("chain_subscribeFinalisedHeads")["result"]
        fin_first = ws.recv()
        assert fin_first["method"] == "chain_finalizedHead" and fin_first["params"]["subscription"] == fin_sub

        assert ws.call("chain_unsubscribeFinalizedHeads", [sub])["result"] is False  # wrong kind
        assert ws.call("chain_unsubscribeNewHeads", [sub])["result"] is True
        assert ws.call("chain_unsubscribeNewHeads", [sub])["result"] is False
        lt.run(node.seal_block())
        note = ws.recv()
        assert note["method"] == "chain_finalizedHead"  # the new-heads subscription is gone
        assert ws.call("chain_unsubscribeFinalisedHeads", [fin_sub])["result"] is True
        lt.run(node.seal_block())
        with pytest.raises((asyncio.TimeoutError, TimeoutError)):
            ws.recv(timeout=0.3)
        assert not node.head_feeds and not node.fin_feeds
    finally:
        ws.close()


def test_closing_ws_cancels_subscriptions(lt, server, node):
    ws = WsClient(lt, server)
    for _ in range(3):
        ws.call("chain_subscribeNewHead")
    assert len(node.head_feeds) == 3
    ws.close()
    deadline = time.time() + 3
    while node.head_feeds and time.time() < deadline:
        time.sleep(0.02)
    assert not node.head_feeds


def test_stop_closes_websockets(lt):
    node = FakeNode()
    s = lt.serve(node)
    ws = WsClient(lt, s)
    ws.call("chain_subscribeNewHeads")
    ws.recv()
    t0 = time.time()
    lt.stop(s)
    assert time.time() - t0 < 3
    msg = ws.recv()
    assert not isinstance(msg, dict) and msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert not node.head_feeds
    ws.close()


def test_subscription_limit(lt, node):
    s = lt.serve(node, max_subscriptions_per_connection=2)
    ws = WsClient(lt, s)
    try:
        ids = [ws.call("chain_subscribeNewHeads").get("result") for _ in range(2)]
        assert all(isinstance(i, str) for i in ids)
        err = ws.call("chain_subscribeNewHeads")["error"]
        assert err["code"] == -32006
        assert ws.call("chain_unsubscribeNewHeads", [ids[0]])["result"] is True
        assert isinstance(ws.call("chain_subscribeNewHeads")["result"], str)
    finally:
        ws.close()
        lt.stop(s)


def test_submit_and_watch(lt, server, node):
    ws = WsClient(lt, server)
    try:
        xt = signed_xt(nonce=1)
        r = ws.call("author_submitAndWatchExtrinsic", ["0x" + xt.hex()])
        sub = r["result"]
        seen = []
        while len(seen) < 3:
            msg = ws.recv()
            assert msg["method"] == "author_extrinsicUpdate" and msg["params"]["subscription"] == sub
            seen.append(msg["params"]["result"])
        assert seen[0] == "ready"
        block = "0x" + node.blocks[-1].block.header.hash().hex()
        assert seen[1] == {"inBlock": block}
        assert seen[2] == {"finalized": block}
        # the subscription ended with the terminal status
        assert ws.call("author_unwatchExtrinsic", [sub])["result"] is False

        err = ws.call("author_submitAndWatchExtrinsic", ["0x" + signed_xt(pallet=9).hex()])["error"]
        assert err["code"] == 1010 and err["data"] == "Payment: Inability to pay some fees"

        node.watch_gate = asyncio.Event()
        sub = ws.call("author_submitAndWatchExtrinsic", ["0x" + signed_xt(nonce=2).hex()])["result"]
        assert ws.recv()["params"]["result"] == "ready"
        assert ws.call("author_unwatchExtrinsic", [sub])["result"] is True
    finally:
        node.watch_gate = None
        ws.close()


def _raw_ws_connect(port: int, rcvbuf: int = 4096) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    resp = b""
    while b"\r\n\r\n" not in resp:
        resp += sock.recv(1)
    assert b" 101 " in resp.split(b"\r\n")[0]
    return sock


def _ws_frame(text: str) -> bytes:
    payload = text.encode()
    mask = os.urandom(4)
    n = len(payload)
    head = struct.pack("!BB", 0x81, 0x80 | n) if n < 126 else struct.pack("!BBH", 0x81, 0x80 | 126, n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def test_slow_client_is_dropped(lt, node):
    s = lt.serve(node, ws_send_queue=8)
    sock = _raw_ws_connect(s.port)
    try:
        sock.sendall(_ws_frame(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "chain_subscribeNewHeads"})))
        deadline = time.time() + 3
        while not node.head_feeds and time.time() < deadline:
            time.sleep(0.01)
        assert node.head_feeds
        header = node.blocks[-1].block.header
        big = Header(header.parent_hash, header.number, header.state_root, header.extrinsics_root,
                     tuple(DigestItem(0, b"test", bytes([i]) * 4000) for i in range(16)))
        # the client never reads: the node keeps producing; the server must drop the client
        deadline = time.time() + 10
        while node.head_feeds and time.time() < deadline:
            lt.call(lambda: [node.push_head(big) for _ in range(50)])
            time.sleep(0.01)
        assert not node.head_feeds
        assert result(lt, s, "system_name") == "gridchain"
    finally:
        sock.close()
        lt.stop(s)


# =============================================================================================
# fuzzing: any input gets a well-formed answer, and the server keeps serving
# =============================================================================================

def _check_response(obj: Any) -> None:
    assert isinstance(obj, dict), obj
    assert obj.get("jsonrpc") == "2.0"
    assert "id" in obj
    assert ("result" in obj) != ("error" in obj)
    if "error" in obj:
        assert isinstance(obj["error"]["code"], int)
        assert isinstance(obj["error"]["message"], str)
        if obj["error"]["code"] == -32603:
            assert "Traceback" not in json.dumps(obj)


class _HttpPoster:
    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def post(self, body: bytes) -> tuple[int, bytes]:
        for attempt in range(2):
            try:
                self.conn.request("POST", "/", body=body, headers={"Content-Type": "application/json"})
                r = self.conn.getresponse()
                return r.status, r.read()
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                if attempt:
                    raise
        raise AssertionError("unreachable")


def _check_http(status: int, body: bytes) -> None:
    assert status in (200, 413, 429), status
    if not body:
        assert status == 200
        return
    obj = json.loads(body)
    if isinstance(obj, list):
        assert obj
        for item in obj:
            _check_response(item)
    else:
        _check_response(obj)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=20) | st.sampled_from(["0x", "0x00", "0x" + "ab" * 32, "0x0101", "0xzz"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def poster(server):
    return _HttpPoster(server.port)


def _method_names(server) -> list[str]:
    return sorted(server.methods)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.binary(max_size=300))
def test_fuzz_random_bytes(lt, server, poster, data):
    _check_http(*poster.post(data))


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=json_values)
def test_fuzz_random_json(lt, server, poster, value):
    _check_http(*poster.post(json.dumps(value).encode()))


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzz_mutated_requests(lt, server, poster, data):
    names = _method_names(server)
    req: dict[str, Any] = {"jsonrpc": "2.0", "id": data.draw(st.integers(0, 10**6) | st.text(max_size=5)),
                           "method": data.draw(st.sampled_from(names)),
                           "params": data.draw(st.lists(json_values, max_size=4) | st.dictionaries(
                               st.sampled_from(["hash", "at", "key", "number", "count", "prefix", "x"]),
                               json_values, max_size=3))}
    for _ in range(data.draw(st.integers(0, 2))):
        field = data.draw(st.sampled_from(["jsonrpc", "id", "method", "params"]))
        if data.draw(st.booleans()):
            req.pop(field, None)
        else:
            req[field] = data.draw(json_values)
    payload = req if data.draw(st.booleans()) else [req, {"jsonrpc": "2.0", "id": "ok", "method": "system_name"}]
    _check_http(*poster.post(json.dumps(payload).encode()))


def test_fuzz_keeps_serving(lt, server, poster):
    status, body = poster.post(b'{"jsonrpc":"2.0","id":9,"method":"system_health"}')
    assert status == 200 and json.loads(body)["result"]["peers"] == 3


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(messages=st.lists(st.binary(max_size=100).map(lambda b: b.decode("latin-1")) | json_values.map(json.dumps),
                         min_size=1, max_size=4))
def test_fuzz_websocket(lt, server, messages):
    async def go():
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(url(server)) as ws:
                for m in messages:
                    await ws.send_str(m)
                await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": "probe", "method": "system_name"}))
                while True:
                    msg = await ws.receive(5)
                    assert msg.type == aiohttp.WSMsgType.TEXT, msg
                    obj = json.loads(msg.data)
                    for item in obj if isinstance(obj, list) else [obj]:
                        if "method" in item and "id" not in item:  # a subscription notification
                            continue
                        _check_response(item)
                        if item["id"] == "probe":
                            assert item["result"] == "gridchain"
                            return
    lt.run(go())
