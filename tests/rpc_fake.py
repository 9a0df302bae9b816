"""A fake node behind a real RpcServer on a private event loop: the RPC layer's own test double,
shared by the server and client tests (a mock belongs only in the unit tests of its user)."""
from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from primitives.codec import CodecError
from primitives.errors import BadFormat, ChainError
from primitives.extrinsic import Call, Extrinsic, extrinsic_hash, sign_extrinsic
from primitives.hashing import keccak256
from primitives.keys import dev_keypair
from primitives.types import (DIGEST_PRE_RUNTIME, DIGEST_SEAL, ENGINE_GRID, Block, DigestItem, Header,
                              Justification, SignedBlock)
from rpc.api import Health, NodeInfo, RuntimeVersionInfo, TxStatusUpdate
from rpc.server import RpcServer
from runtime.api import InvalidKind, InvalidTransaction

ALICE = dev_keypair("Alice")
BOB = dev_keypair("Bob")


# =============================================================================================
# fake node
# =============================================================================================

class UnknownBlock(ChainError):
    rpc_code = 4003


class Feed:
    """An async iterator the node pushes into; registered on creation (eagerly)."""

    def __init__(self, registry: set) -> None:
        self.queue: asyncio.Queue = asyncio.Queue()
        self.registry = registry
        registry.add(self)

    def __aiter__(self) -> "Feed":
        return self

    async def __anext__(self) -> Any:
        return await self.queue.get()

    async def aclose(self) -> None:
        self.registry.discard(self)


FAKE_METADATA = {
    "pallets": [
        {"name": "system", "index": 0, "calls": [
            {"name": "remark", "index": 0, "args": [{"name": "data", "type": {"bytes": {"maxLen": 1024}}}]},
        ], "storage": [], "events": [], "errors": [], "constants": {}},
        {"name": "balances", "index": 3, "calls": [
            {"name": "transfer", "index": 0,
             "args": [{"name": "dest", "type": "AccountId"}, {"name": "amount", "type": "u64"}],
             "weight": 1000, "doc": "Transfer some balance."},
            {"name": "set_many", "index": 1,
             "args": [{"name": "who", "type": {"vec": "AccountId", "maxLen": 8}},
                      {"name": "limit", "type": {"option": "u32"}},
                      {"name": "big", "type": "u128"},
                      {"name": "flag", "type": "bool"},
                      {"name": "note", "type": "str"},
                      {"name": "point", "type": "Point"}]},
        ], "storage": [], "events": [], "errors": [], "constants": {}},
    ],
    "extrinsic": {"version": 1},
}


def make_header(number: int, parent: bytes) -> Header:
    digest = (DigestItem(DIGEST_PRE_RUNTIME, ENGINE_GRID, ALICE.public_key),
              DigestItem(DIGEST_SEAL, ENGINE_GRID, bytes([number % 256]) * 64))
    return Header(parent, number, keccak256(b"state%d" % number), keccak256(b"xts%d" % number), digest)


class FakeNode:
    """Just enough of NodeApi for the RPC layer: a short chain, a storage dict, a pool."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.blocks: list[SignedBlock] = []
        self.by_hash: dict[bytes, SignedBlock] = {}
        self.finalized = 0
        self.storage = {b"\x01\x01": b"one", b"\x01\x02": b"two", b"\x01\x03": b"three", b"\x02": b"x"}
        self.pool: list[bytes] = []
        self.head_feeds: set[Feed] = set()
        self.fin_feeds: set[Feed] = set()
        self.watch_gate: asyncio.Event | None = None
        parent = b"\0" * 32
        for n in range(4):
            h = self._append(n, parent, [b"\x93\x01\xc0\x93\x00\x00\x90"] if n else [])
            parent = h
        self.finalized = 2
        self.genesis = self.blocks[0].block.header.hash()

    def _append(self, n: int, parent: bytes, xts: list[bytes]) -> bytes:
        header = make_header(n, parent)
        just = (Justification(b"BFT1", b"cert%d" % n),) if n else ()
        sb = SignedBlock(Block(header, tuple(xts)), just)
        self.blocks.append(sb)
        h = header.hash()
        self.by_hash[h] = sb
        return h

    def _at(self, at: bytes | None) -> SignedBlock:
        if at is None:
            return self.blocks[-1]
        sb = self.by_hash.get(at)
        if sb is None:
            raise UnknownBlock("Unknown block", data="0x" + at.hex())
        return sb

    # system
    def info(self) -> NodeInfo:
        return NodeInfo("gridchain", "0.1.0-test", "Development", "Development",
                        {"tokenSymbol": "GRID", "tokenDecimals": 6, "ss58Format": 6236})

    def health(self) -> Health:
        return Health(3, False, True)

    def account_next_index(self, account: bytes) -> int:
        return 7 if account == ALICE.public_key else 0

    def peers(self) -> list[dict]:
        return [{"peerId": "12D3KooWtest", "roles": "FULL", "bestHash": "0x00", "bestNumber": 3}]

    def local_peer_id(self) -> str:
        return "12D3KooWlocal"

    def sync_state(self) -> dict:
        return {"startingBlock": 0, "currentBlock": 3, "highestBlock": 3}

    # chain
    def get_block(self, block_hash: bytes | None) -> SignedBlock | None:
        if block_hash is None:
            return self.blocks[-1]
        return self.by_hash.get(block_hash)

    def get_block_hash(self, number: int | None) -> bytes | None:
        if number is None:
            number = len(self.blocks) - 1
        if number >= len(self.blocks):
            return None
        return self.blocks[number].block.header.hash()

    def get_header(self, block_hash: bytes | None) -> Header | None:
        b = self.get_block(block_hash)
        return None if b is None else b.block.header

    def finalized_head(self) -> bytes:
        return self.blocks[self.finalized].block.header.hash()

    def subscribe_new_heads(self) -> Feed:
        return Feed(self.head_feeds)

    def subscribe_finalized_heads(self) -> Feed:
        return Feed(self.fin_feeds)

    # state
    def get_storage(self, key: bytes, at: bytes | None) -> bytes | None:
        self._at(at)
        if key == b"\xde\xad":
            raise RuntimeError("simulated bug with a secret traceback")
        return self.storage.get(key)

    def get_keys_paged(self, prefix: bytes, count: int, start_key: bytes | None,
                       at: bytes | None) -> list[bytes]:
        self._at(at)
        keys = sorted(k for k in self.storage if k.startswith(prefix) and (start_key is None or k > start_key))
        return keys[:count]

    def get_read_proof(self, keys: list[bytes], at: bytes | None) -> tuple[bytes, list[bytes]]:
        sb = self._at(at)
        return sb.block.header.hash(), [b"\xc0", b"\xc2\x01\x02"]

    def runtime_version(self, at: bytes | None) -> RuntimeVersionInfo:
        self._at(at)
        return RuntimeVersionInfo("gridchain", "gridchain-node", 100, 1, 2, 1)

    def metadata(self, at: bytes | None) -> dict:
        self._at(at)
        return FAKE_METADATA

    # author
    def _check(self, xt: bytes) -> Extrinsic:
        try:
            decoded = Extrinsic.decode(xt)
        except CodecError as e:
            raise BadFormat(f"Extrinsic has invalid format: {e}") from None
        if decoded.call.pallet_index == 9:
            raise InvalidTransaction(InvalidKind.PAYMENT, "Inability to pay some fees")
        return decoded

    async def submit_extrinsic(self, extrinsic: bytes) -> bytes:
        self._check(extrinsic)
        self.pool.append(extrinsic)
        return extrinsic_hash(extrinsic)

    async def submit_and_watch(self, extrinsic: bytes):
        self._check(extrinsic)
        self.pool.append(extrinsic)
        return self._watch(extrinsic)

    async def _watch(self, extrinsic: bytes):
        yield TxStatusUpdate("ready")
        if self.watch_gate is not None:
            await self.watch_gate.wait()
        block_hash = await self.seal_block()
        yield TxStatusUpdate("inBlock", block_hash)
        await asyncio.sleep(0.01)
        yield TxStatusUpdate("finalized", block_hash)

    def pending_extrinsics(self) -> list[bytes]:
        return list(self.pool)

    async def seal_block(self) -> bytes:
        parent = self.blocks[-1].block.header.hash()
        h = self._append(len(self.blocks), parent, self.pool)
        self.pool = []
        self.finalized = len(self.blocks) - 1
        header = self.blocks[-1].block.header
        for f in list(self.head_feeds):
            f.queue.put_nowait(header)
        for f in list(self.fin_feeds):
            f.queue.put_nowait(header)
        return h

    def push_head(self, header: Header) -> None:
        for f in list(self.head_feeds):
            f.queue.put_nowait(header)

    def extra_methods(self) -> dict[str, Any]:
        async def echo(params):
            await asyncio.sleep(0)
            return {"echo": params}

        def admin(params):
            return "admin done"
        admin.unsafe = True

        def boom(params):
            raise ValueError("internal detail that must not leak")

        def fail(params):
            raise InvalidTransaction(InvalidKind.STALE, "nonce too low")

        return {"energy_zones": lambda params: [{"zone": 1, "capacityW": 5000}],
                "energy_echo": echo, "energy_admin": admin, "energy_boom": boom,
                "energy_fail": fail, "system_name": lambda p: "shadowed"}


def signed_xt(pallet: int = 3, nonce: int = 0, genesis: bytes = b"\0" * 32) -> bytes:
    call = Call(pallet, 0, (BOB.public_key, 5))
    return sign_extrinsic(ALICE, call, nonce=nonce, genesis_hash=genesis, spec_version=100,
                          transaction_version=2).encode()


# =============================================================================================
# harness
# =============================================================================================

class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 20.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn, *args):
        async def go():
            return fn(*args)
        return self.run(go())

    def serve(self, node: FakeNode, **kw) -> RpcServer:
        async def go():
            node.loop = self.loop
            server = RpcServer(node, host="127.0.0.1", port=0, **kw)
            await server.start()
            return server
        return self.run(go())

    def stop(self, server: RpcServer) -> None:
        self.run(server.stop())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def lt():
    t = LoopThread()
    yield t
    t.close()


@pytest.fixture(scope="module")
def node():
    return FakeNode()


@pytest.fixture(scope="module")
def server(lt, node):
    s = lt.serve(node)
    yield s
    lt.stop(s)


