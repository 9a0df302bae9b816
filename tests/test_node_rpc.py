"""JSON-RPC conformance against a real `gridchain --dev` process.

One node (200 ms blocks, dev finality) serves most tests of this module; the pool test gets its own
node whose authoring timer never fires within the test, so it decides when a block is made
(`engine_createBlock`). Everything goes over loopback HTTP or WebSocket, as a wallet would.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import os
import select
import socket
import sys

import aiohttp
import msgpack
import pytest
import rlp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trie import HexaryTrie
from trie.exceptions import BadTrieProof

sys.path.insert(0, os.path.dirname(__file__))
from node_process import DevNode, NodeRpcError, http_post, run_gridchain

from pallets import balances, system
from pallets.transaction_payment import compute_fee
from primitives.codec import U64
from primitives.extrinsic import Call, sign_extrinsic
from primitives.hashing import keccak256
from primitives.keys import Keypair, dev_keypair
from rpc.client import Client
from rpc.jsonshapes import header_from_json

ALICE, BOB, CHARLIE, DAVE, EVE, FERDIE = (dev_keypair(n) for n in
                                          ("Alice", "Bob", "Charlie", "Dave", "Eve", "Ferdie"))
DEV_ACCOUNTS = (ALICE, BOB, CHARLIE, DAVE, EVE, FERDIE)
UNIT = 10**9  # GRID has 9 decimals

REQUIRED_METHODS = {
    "system_name", "system_version", "system_chain", "system_chainType", "system_properties",
    "system_health", "system_accountNextIndex", "system_peers", "system_localPeerId",
    "chain_getBlock", "chain_getBlockHash", "chain_getHeader", "chain_getFinalizedHead",
    "chain_subscribeNewHeads", "chain_subscribeFinalizedHeads",
    "state_getStorage", "state_getKeysPaged", "state_getReadProof", "state_getRuntimeVersion",
    "state_getMetadata",
    "author_submitExtrinsic", "author_submitAndWatchExtrinsic", "author_pendingExtrinsics",
}

#: what author_submitExtrinsic may answer for arbitrary bytes
SUBMIT_ERROR_CODES = {1001, 1010, 1011, 1012, 1013, 1014, 1016, -32602}


# ---------------------------------------------------------------------------------------------
# fixtures and helpers
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = DevNode(tmp_path_factory.mktemp("rpc") / "base", block_time_ms=200)
    try:
        n.start()
        n.wait_for_block(1)
        yield n
    finally:
        n.stop()


@pytest.fixture(scope="module")
def client(node):
    with Client(node.url) as c:
        yield c


def hx(b: bytes) -> str:
    return "0x" + b.hex()


def unhex(s: str) -> bytes:
    return bytes.fromhex(s[2:])


def account_info(node: DevNode, pk: bytes, at: str | None = None):
    params = [hx(system.account.key_of(pk))] + ([at] if at else [])
    raw = node.rpc("state_getStorage", params)
    return system.EMPTY_ACCOUNT if raw is None else system.AccountInfo.decode(unhex(raw))


def snapshot(node: DevNode, accounts: list[bytes]) -> dict:
    """Balances, nonces and total issuance, all read at one block."""
    at = node.rpc("chain_getBlockHash")
    issuance = node.rpc("state_getStorage", [hx(balances.total_issuance.prefix), at])
    return {"issuance": U64.decode(unhex(issuance)),
            **{hx(pk): account_info(node, pk, at) for pk in accounts}}


def events_at(node: DevNode, block_hash: str) -> list:
    raw = node.rpc("state_getStorage", [hx(system.events.prefix), block_hash])
    return msgpack.unpackb(unhex(raw), raw=False)


def event_index(metadata: dict, pallet: str, event: str) -> tuple[int, int]:
    p = next(p for p in metadata["pallets"] if p["name"] == pallet)
    e = next(e for e in p["events"] if e["name"] == event)
    return p["index"], e["index"]


def verify_read_proof(node: DevNode, keys: list[bytes], at: str) -> None:
    """state_getReadProof proves, with py-trie, exactly what state_getStorage answers at `at`."""
    proof = node.rpc("state_getReadProof", [[hx(k) for k in keys], at])
    assert proof["at"] == at
    root = unhex(node.rpc("chain_getHeader", [at])["stateRoot"])
    nodes = [rlp.decode(unhex(n)) for n in proof["proof"]]
    assert nodes, "a proof has at least the root node"
    for key in keys:
        proven = HexaryTrie.get_from_proof(root, key, nodes)
        stored = node.rpc("state_getStorage", [hx(key), at])
        if stored is None:
            assert proven == b"", f"absent key {hx(key)} proven as {proven!r}"
        else:
            assert proven == unhex(stored), f"proof of {hx(key)} disagrees with state_getStorage"


class WsRpc:
    """A bare JSON-RPC WebSocket: requests matched by id, notifications kept in arrival order."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.notes: list[dict] = []
        self.ids = 0

    async def call(self, method: str, params: list) -> dict:
        """Send one request and return its whole response object."""
        self.ids += 1
        rid = self.ids
        await self.ws.send_str(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}))
        while True:
            msg = json.loads(await self.ws.receive_str(timeout=10))
            if msg.get("id") == rid:
                return msg
            self.notes.append(msg)

    async def results(self, sub_id: str, count: int | None = None, until=None, timeout: float = 20.0) -> list:
        """Results of `sub_id`'s notifications, until `count` arrived or `until(last result)` holds."""
        out: list = []

        def done() -> bool:
            return (count is not None and len(out) >= count) or bool(until and out and until(out[-1]))

        async with asyncio.timeout(timeout):
            while not done():
                msg = self.notes.pop(0) if self.notes else json.loads(await self.ws.receive_str())
                if "id" not in msg and msg.get("params", {}).get("subscription") == sub_id:
                    out.append(msg["params"]["result"])
        return out


async def ws_session(url: str, fn):
    async with aiohttp.ClientSession() as s, s.ws_connect(url) as ws:
        return await fn(WsRpc(ws))


# ---------------------------------------------------------------------------------------------
# system, chain, state: shapes
# ---------------------------------------------------------------------------------------------

def test_system_methods_answer_substrate_shapes(node):
    assert node.rpc("system_name") == "gridchain"
    version = node.rpc("system_version")
    assert isinstance(version, str) and version[0].isdigit()
    assert node.rpc("system_chain") == "Development"
    assert node.rpc("system_chainType") == "Development"
    props = node.rpc("system_properties")
    assert props["tokenSymbol"] == "GRID" and props["tokenDecimals"] == 9 and props["ss58Format"] == 6236
    assert node.rpc("system_health") == {"peers": 0, "isSyncing": False, "shouldHavePeers": False}
    assert node.rpc("system_peers") == []
    assert isinstance(node.rpc("system_localPeerId"), str)
    # accountNextIndex takes an SS58 address or 0x account id and answers the same
    assert node.rpc("system_accountNextIndex", [FERDIE.address()]) == \
        node.rpc("system_accountNextIndex", [hx(FERDIE.public_key)])


def test_rpc_methods_lists_every_required_method(node):
    methods = set(node.rpc("rpc_methods")["methods"])
    assert REQUIRED_METHODS <= methods, f"missing: {sorted(REQUIRED_METHODS - methods)}"


def test_blocks_are_produced_linked_and_final_when_authored(node):
    start = node.best_number()
    fin0 = node.rpc("chain_getHeader", [node.rpc("chain_getFinalizedHead")])
    node.wait_for_block(start + 3, timeout=10)

    best_hash = node.rpc("chain_getBlockHash")
    block = node.rpc("chain_getBlock", [best_hash])
    header = block["block"]["header"]
    assert set(header) == {"parentHash", "number", "stateRoot", "extrinsicsRoot", "digest"}
    assert hx(header_from_json(header).hash()) == best_hash, "block hash is keccak of the sealed header"
    number = int(header["number"], 16)
    assert number >= start + 3
    assert len(block["block"]["extrinsics"]) >= 1, "every block carries the timestamp inherent"
    assert node.rpc("chain_getBlockHash", [number - 1]) == header["parentHash"]

    genesis_hash = node.rpc("chain_getBlockHash", [0])
    genesis = node.rpc("chain_getHeader", [genesis_hash])
    assert genesis["number"] == "0x0" and genesis["parentHash"] == hx(b"\0" * 32)
    assert genesis["digest"]["logs"] == []
    assert f"genesis {genesis_hash}" in node.log_text(), "the node logs the genesis hash it serves"
    assert node.rpc("chain_getBlockHash", [10**9]) is None

    # dev chains: a block is final when authored, so the finalized head keeps up with the best
    fin1_hash = node.rpc("chain_getFinalizedHead")
    fin1 = int(node.rpc("chain_getHeader", [fin1_hash])["number"], 16)
    assert fin1 > int(fin0["number"], 16)
    assert node.rpc("chain_getBlockHash", [fin1]) == fin1_hash
    assert fin1 >= number


def test_metadata_lists_the_pallets_with_call_indices(node):
    md = node.rpc("state_getMetadata")
    pallets = {p["name"]: p for p in md["pallets"]}
    assert {"system", "timestamp", "authorship", "balances", "transaction_payment", "sudo"} <= set(pallets)
    assert len({p["index"] for p in md["pallets"]}) == len(md["pallets"]), "pallet indices are unique"
    for p in md["pallets"]:
        idx = [c["index"] for c in p.get("calls") or []]
        assert len(set(idx)) == len(idx) and all(isinstance(i, int) for i in idx), p["name"]
    assert pallets["balances"]["index"] == 3
    transfer = next(c for c in pallets["balances"]["calls"] if c["name"] == "transfer")
    assert transfer["index"] == 0
    assert [a["name"] for a in transfer["args"]] == ["dest", "amount"]
    assert any(c["name"] == "set" for c in pallets["timestamp"]["calls"])
    assert any(c["name"] == "sudo" for c in pallets["sudo"]["calls"])

    rv = node.rpc("state_getRuntimeVersion")
    assert rv["specName"] == "gridchain"
    assert type(rv["specVersion"]) is int and rv["specVersion"] >= 1
    assert type(rv["transactionVersion"]) is int
    assert md["runtime"]["specVersion"] == rv["specVersion"]


def test_keys_paged_are_ascending_and_page_with_start_key(node):
    at = node.rpc("chain_getBlockHash")
    prefix = hx(system.account.prefix)
    keys = node.rpc("state_getKeysPaged", [prefix, 1000, None, at])
    assert len(keys) >= len(DEV_ACCOUNTS)
    assert all(k.startswith(prefix) for k in keys)
    assert keys == sorted(keys, key=unhex) and len(set(keys)) == len(keys), "strictly ascending"
    for kp in DEV_ACCOUNTS:
        assert hx(system.account.key_of(kp.public_key)) in keys

    pages, start = [], None
    while True:
        page = node.rpc("state_getKeysPaged", [prefix, 2, start, at])
        assert len(page) <= 2
        if not page:
            break
        pages.extend(page)
        start = page[-1]
    assert pages == keys, "paging with startKey walks the same keys, each once"
    # startKey is exclusive
    assert node.rpc("state_getKeysPaged", [prefix, 1, keys[0], at]) == keys[1:2]
    # a prefix that matches nothing
    assert node.rpc("state_getKeysPaged", [hx(b"\xff" * 32), 10, None, at]) == []
    with pytest.raises(NodeRpcError) as e:
        node.rpc("state_getKeysPaged", [prefix, 1001])
    assert e.value.code == -32602


def test_read_proofs_verify_with_py_trie_for_present_and_absent_keys(node):
    at = node.rpc("chain_getFinalizedHead")
    present = [system.account.key_of(kp.public_key) for kp in (ALICE, BOB)] + [balances.total_issuance.prefix]
    absent = [system.account.key_of(os.urandom(32)), os.urandom(40)]
    verify_read_proof(node, present + absent, at)
    for key in present:  # and one key at a time
        verify_read_proof(node, [key], at)
    verify_read_proof(node, [absent[0]], at)
    # a proof against the wrong state root proves nothing
    proof = node.rpc("state_getReadProof", [[hx(present[0])], at])
    with pytest.raises(BadTrieProof):
        HexaryTrie.get_from_proof(os.urandom(32), present[0], [rlp.decode(unhex(n)) for n in proof["proof"]])


# ---------------------------------------------------------------------------------------------
# the done-when flow: a new key from the CLI, funded, sends a transfer over a WebSocket
# ---------------------------------------------------------------------------------------------

def test_new_cli_key_is_funded_then_pays_bob_over_websocket(node, client):
    out = run_gridchain("key", "generate", "--output-type", "json")
    assert out.returncode == 0, out.stderr
    key = json.loads(out.stdout)
    kp = Keypair.from_uri(key["secretPhrase"])
    assert hx(kp.public_key) == key["publicKey"] and kp.address() == key["ss58Address"]
    assert kp.seed == unhex(key["secretSeed"])
    assert account_info(node, kp.public_key) == system.EMPTY_ACCOUNT

    fund, amount = 5 * UNIT, 1 * UNIT + 123
    xt = client.build_extrinsic(ALICE, "balances", "transfer", [kp.public_key, fund])
    funded = client.submit_and_watch(xt, until="finalized", timeout=20)
    assert funded.status == "finalized"
    assert hx(xt) in node.rpc("chain_getBlock", [hx(funded.block_hash)])["block"]["extrinsics"]
    assert account_info(node, kp.public_key, hx(funded.block_hash)) == system.AccountInfo(0, fund, 0)

    xt2 = client.build_extrinsic(kp, "balances", "transfer", [BOB.public_key, amount])

    async def submit_and_watch(ws: WsRpc) -> list:
        resp = await ws.call("author_submitAndWatchExtrinsic", [hx(xt2)])
        assert "result" in resp, resp
        return await ws.results(resp["result"], until=lambda r: isinstance(r, dict) and "finalized" in r)

    statuses = asyncio.run(ws_session(node.ws_url, submit_and_watch))
    names = [s if isinstance(s, str) else next(iter(s)) for s in statuses]
    assert names == ["ready", "inBlock", "finalized"], statuses
    block_hash = statuses[1]["inBlock"]
    assert statuses[2]["finalized"] == block_hash

    block = node.rpc("chain_getBlock", [block_hash])["block"]
    assert hx(xt2) in block["extrinsics"]
    parent = block["header"]["parentHash"]
    before_sender, after_sender = account_info(node, kp.public_key, parent), account_info(node, kp.public_key, block_hash)
    before_bob, after_bob = account_info(node, BOB.public_key, parent), account_info(node, BOB.public_key, block_hash)

    pallet_i, event_i = event_index(node.rpc("state_getMetadata"), "transaction_payment", "TransactionFeePaid")
    fees = [fields[1] for _phase, p, e, fields in events_at(node, block_hash)
            if (p, e) == (pallet_i, event_i) and fields[0] == kp.public_key]
    assert len(fees) == 1, "one TransactionFeePaid event for the sender"
    fee = fees[0]
    declared = system.Config.base_extrinsic_weight + balances.transfer.call_def.weight
    assert 0 < fee <= compute_fee(len(xt2), declared, 0)

    assert after_bob.free == before_bob.free + amount
    assert before_sender.free == fund
    assert after_sender.free == fund - amount - fee
    assert after_sender.nonce == 1
    assert node.rpc("system_accountNextIndex", [key["ss58Address"]]) == 1

    # the sender's account, proven against the finalized state root
    fin = node.rpc("chain_getFinalizedHead")
    verify_read_proof(node, [system.account.key_of(kp.public_key)], fin)


# ---------------------------------------------------------------------------------------------
# the pool: accountNextIndex, pendingExtrinsics, futures, replacement
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def idle_node(tmp_path):
    """A dev node whose authoring timer does not fire during a test: blocks only on request."""
    n = DevNode(tmp_path / "idle", block_time_ms=120_000)
    try:
        yield n.start()
    finally:
        n.stop()


def test_account_next_index_counts_pool_transactions(idle_node):
    node = idle_node
    with Client(node.url) as c:
        n = c.next_nonce(CHARLIE.public_key)
        assert n == 0
        xts = [c.build_extrinsic(CHARLIE, "balances", "transfer", [DAVE.public_key, 1000 + i], nonce=n + i)
               for i in range(2)]
        hashes = [node.rpc("author_submitExtrinsic", [hx(x)]) for x in xts]
        assert node.best_number() == 0, "no block was authored meanwhile"
        assert node.rpc("system_accountNextIndex", [CHARLIE.address()]) == n + 2
        assert node.rpc("author_pendingExtrinsics") == [hx(x) for x in xts]

        # the same bytes again: already imported; same nonce and tip: too low a priority to replace
        with pytest.raises(NodeRpcError) as e:
            node.rpc("author_submitExtrinsic", [hx(xts[0])])
        assert e.value.code == 1013
        rival = c.build_extrinsic(CHARLIE, "balances", "transfer", [EVE.public_key, 7], nonce=n)
        with pytest.raises(NodeRpcError) as e:
            node.rpc("author_submitExtrinsic", [hx(rival)])
        assert e.value.code == 1014

        # a gap: nonce n+5 waits as future and does not move accountNextIndex
        future = c.build_extrinsic(CHARLIE, "balances", "transfer", [DAVE.public_key, 5], nonce=n + 5)
        node.rpc("author_submitExtrinsic", [hx(future)])
        assert node.rpc("system_accountNextIndex", [CHARLIE.address()]) == n + 2
        assert hx(future) in node.rpc("author_pendingExtrinsics")

        made = node.rpc("engine_createBlock", [True, True])
        block = node.rpc("chain_getBlock", [made["hash"]])["block"]
        submitted = [hx(x) for x in xts]
        assert [e for e in block["extrinsics"] if e in submitted] == submitted, "both, in nonce order"
        assert hx(future) not in block["extrinsics"]
        assert hashes == [hx(keccak256(x)) for x in xts]
        assert account_info(node, CHARLIE.public_key).nonce == n + 2
        assert node.rpc("system_accountNextIndex", [CHARLIE.address()]) == n + 2
        assert node.rpc("author_pendingExtrinsics") == [hx(future)]


# ---------------------------------------------------------------------------------------------
# bad input: the right error, nothing changes, the node keeps serving
# ---------------------------------------------------------------------------------------------

def _oversize_post(port: int, size: int) -> int:
    """POST a `size`-byte body; return the HTTP status (the server may answer before reading it all)."""
    head = (f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size}\r\nConnection: close\r\n\r\n").encode()
    chunk = b" " * 65536
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head)
        sent = 0
        try:
            while sent < size:
                readable, _, _ = select.select([s], [], [], 0)
                if readable:
                    break
                sent += s.send(chunk[: min(len(chunk), size - sent)])
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        try:
            while b"\r\n" not in data:
                part = s.recv(4096)
                if not part:
                    break
                data += part
        except ConnectionResetError:
            pass
    assert data.startswith(b"HTTP/1.1 "), data[:100]
    return int(data.split(b" ")[1])


def _submit_error(node: DevNode, xt_hex) -> dict:
    resp = node.rpc_raw("author_submitExtrinsic", [xt_hex])
    assert "error" in resp, f"accepted: {resp}"
    return resp["error"]


def test_bad_input_gets_the_right_error_and_changes_nothing(node, client):
    # Dave sends one transfer first, so that he has a used nonce to replay
    setup = client.build_extrinsic(DAVE, "balances", "transfer", [FERDIE.public_key, 10**6])
    client.submit_and_watch(setup, until="finalized", timeout=20)
    pauper = Keypair.from_uri("0x" + os.urandom(32).hex())
    watched = [kp.public_key for kp in DEV_ACCOUNTS] + [pauper.public_key]
    before = snapshot(node, watched)
    dave_next = node.rpc("system_accountNextIndex", [DAVE.address()])
    assert dave_next == before[hx(DAVE.public_key)].nonce >= 1
    best_before = node.best_number()

    # malformed hex is a parameter error; well-formed hex that is not an extrinsic is 1001
    for bad in ("0xzz", "0x123", "deadbeef", 17, None):
        assert _submit_error(node, bad)["code"] == -32602, bad
    for bad in (b"", b"\x00", b"\x93\x01\xc0", b"\xc1", b"\x93\x02\xc0\x93\x03\x00\x90", setup[:-3]):
        err = _submit_error(node, hx(bad))
        assert err["code"] == 1001, (bad, err)

    rv = node.rpc("state_getRuntimeVersion")
    call = Call(3, 0, (BOB.public_key, 1))

    def signed(kp, nonce, genesis, call=call):
        return sign_extrinsic(kp, call, nonce=nonce, genesis_hash=genesis, spec_version=rv["specVersion"],
                              transaction_version=rv["transactionVersion"]).encode()

    genesis = unhex(node.rpc("chain_getBlockHash", [0]))
    err = _submit_error(node, hx(signed(DAVE, dave_next, b"\x42" * 32)))
    assert err["code"] == 1010 and "BadProof" in err["data"], err
    stale = signed(DAVE, dave_next - 1, genesis)
    err = _submit_error(node, hx(stale))
    assert err["code"] == 1010 and "Stale" in err["data"], err
    assert _submit_error(node, hx(stale))["code"] == 1012, "an extrinsic found invalid is banned for a while"
    err = _submit_error(node, hx(signed(pauper, 0, genesis)))
    assert err["code"] == 1010 and "Payment" in err["data"], err
    # a valid signature on a call that does not exist
    bad_call = sign_extrinsic(DAVE, Call(3, 200, ()), nonce=dave_next, genesis_hash=genesis,
                              spec_version=rv["specVersion"], transaction_version=rv["transactionVersion"])
    err = _submit_error(node, hx(bad_call.encode()))
    assert err["code"] == 1010 and "Call" in err["data"], err

    # a nonce far ahead waits in the pool as future; a short mortality makes it expire and leave
    future = client.build_extrinsic(DAVE, "balances", "transfer", [BOB.public_key, 1],
                                    nonce=dave_next + 1000, mortal_period=6)

    async def watch_future(ws: WsRpc) -> list:
        # over a WebSocket too, a refused extrinsic is an error response, not a subscription
        other_stale = signed(DAVE, dave_next - 1, genesis, call=Call(3, 0, (BOB.public_key, 2)))
        stale = await ws.call("author_submitAndWatchExtrinsic", [hx(other_stale)])
        assert stale["error"]["code"] == 1010 and "Stale" in stale["error"]["data"], stale
        resp = await ws.call("author_submitAndWatchExtrinsic", [hx(future)])
        assert "result" in resp, resp
        assert hx(future) in node.rpc("author_pendingExtrinsics")
        return await ws.results(resp["result"], timeout=15,
                                until=lambda r: r in ("invalid", "dropped") or isinstance(r, dict))

    statuses = asyncio.run(ws_session(node.ws_url, watch_future))
    assert statuses[0] == "future" and statuses[-1] in ("invalid", "dropped"), statuses
    assert hx(future) not in node.rpc("author_pendingExtrinsics")

    # transport- and protocol-level errors
    status, body = http_post(node.port, b'{"jsonrpc":"2.0","id":1,"method":')
    assert status == 200 and json.loads(body)["error"]["code"] == -32700
    assert node.rpc_raw("no_such_method")["error"]["code"] == -32601
    for method, params in (("chain_getBlockHash", ["abc"]), ("chain_getBlock", [123]),
                           ("state_getStorage", [42]), ("system_accountNextIndex", ["not-an-address"]),
                           ("state_getKeysPaged", ["0x00", "ten"]), ("chain_getHeader", ["0x1234"])):
        assert node.rpc_raw(method, params)["error"]["code"] == -32602, (method, params)
    assert _oversize_post(node.port, 11 * 2**20) == 413

    # nothing changed, and the node still serves and authors
    assert node.rpc("system_health")["isSyncing"] is False
    node.wait_for_block(best_before + 2, timeout=10)
    assert snapshot(node, watched) == before
    assert node.rpc("system_accountNextIndex", [DAVE.address()]) == dave_next
    assert node.rpc("author_pendingExtrinsics") == []


# ---------------------------------------------------------------------------------------------
# fuzz: random and mutated extrinsic bytes
# ---------------------------------------------------------------------------------------------

_FUZZ_KEY = Keypair.from_seed(b"\x07" * 32)  # never funded: even an intact extrinsic cannot pay


@pytest.fixture(scope="module")
def fuzz_seed(node, client):
    """A well-formed, correctly signed extrinsic from an unfunded key, and the accounts to watch."""
    xt = client.build_extrinsic(_FUZZ_KEY, "balances", "transfer", [BOB.public_key, 5], mortal_period=0)
    return xt


def _mutate(data: bytes, ops: list[tuple[int, int, int]]) -> bytes:
    b = bytearray(data)
    for kind, pos, val in ops:
        if not b:
            b.append(val)
            continue
        i = pos % len(b)
        if kind == 0:
            b[i] ^= (val or 1)
        elif kind == 1:
            del b[i:]
        elif kind == 2:
            b.insert(i, val)
        else:
            del b[i]
    return bytes(b)


_mutations = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2**16), st.integers(0, 255)),
                      min_size=1, max_size=4)


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.one_of(st.binary(max_size=300), st.integers(65_000, 70_000).map(lambda n: bytes([0x93, 0x01]) + b"\xc4" * n),
                      _mutations.map(lambda ops: ("mutate", ops))))
def test_fuzzed_extrinsics_get_json_rpc_errors_and_the_node_survives(node, fuzz_seed, data):
    if isinstance(data, tuple):
        data = _mutate(fuzz_seed, data[1])
    resp = node.rpc_raw("author_submitExtrinsic", [hx(data)])
    assert resp.get("jsonrpc") == "2.0"
    if "error" in resp:
        err = resp["error"]
        assert err["code"] in SUBMIT_ERROR_CODES, err
        assert isinstance(err["message"], str) and err["message"]
    else:
        assert isinstance(resp["result"], str) and len(unhex(resp["result"])) == 32


def test_node_is_healthy_and_unchanged_after_fuzzing(node, fuzz_seed):
    # runs after the fuzz test (file order): the node still answers, authors, and nothing was paid
    assert node.rpc("system_health")["peers"] == 0
    n = node.best_number()
    node.wait_for_block(n + 1, timeout=10)
    assert account_info(node, _FUZZ_KEY.public_key) == system.EMPTY_ACCOUNT
    err = _submit_error(node, hx(fuzz_seed))
    assert err["code"] in (1010, 1012) and ("Payment" in str(err.get("data")) or err["code"] == 1012)


# ---------------------------------------------------------------------------------------------
# subscriptions
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method,unsubscribe", [
    ("chain_subscribeNewHeads", "chain_unsubscribeNewHeads"),
    ("chain_subscribeFinalizedHeads", "chain_unsubscribeFinalizedHeads"),
])
def test_head_subscriptions_deliver_consecutive_linked_headers(node, method, unsubscribe):
    async def go(ws: WsRpc) -> tuple[list, dict, dict]:
        sub = (await ws.call(method, []))["result"]
        heads = await ws.results(sub, count=5, timeout=15)
        unsub = await ws.call(unsubscribe, [sub])
        again = await ws.call(unsubscribe, [sub])
        return heads, unsub, again

    heads, unsub, again = asyncio.run(ws_session(node.ws_url, go))
    numbers = [int(h["number"], 16) for h in heads]
    assert numbers == list(range(numbers[0], numbers[0] + 5)), numbers
    for prev, cur in itertools.pairwise(heads):
        assert cur["parentHash"] == hx(header_from_json(prev).hash())
    for h in heads:  # every announced header is the one the node stores at that number
        assert node.rpc("chain_getBlockHash", [int(h["number"], 16)]) == hx(header_from_json(h).hash())
    assert unsub["result"] is True and again["result"] is False
