"""Crash safety of the whole node: SIGKILL a `gridchain --dev` process while it authors blocks full of
transfers, restart it on the same base path, and check that nothing committed was lost and that state
still adds up.

What "committed" means from outside: a block number the node reported over RPC, and a transfer whose
`author_submitAndWatchExtrinsic` said `finalized` (dev chains finalize a block as they author it).
"""
from __future__ import annotations

import asyncio
import os
import random
import re
import sys
import threading
import time

import aiohttp
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from node_process import DevNode

from pallets import balances, system
from primitives.codec import U64
from primitives.extrinsic import Extrinsic
from primitives.keys import dev_keypair
from rpc.client import AsyncClient, TxResult

pytestmark = pytest.mark.slow   # real node processes

NAMES = ("Alice", "Bob", "Charlie", "Dave", "Eve", "Ferdie")
DEV = {n: dev_keypair(n) for n in NAMES}
SENDERS = ("Bob", "Charlie", "Dave", "Eve", "Ferdie")
KILLS = 3
IN_FLIGHT = 4  # transfers per sender in flight at once (consecutive nonces)


def hx(b: bytes) -> str:
    return "0x" + b.hex()


def unhex(s: str) -> bytes:
    return bytes.fromhex(s[2:])


class TransferStream:
    """Transfers from every sender, IN_FLIGHT at a time per sender, each followed until finalized.

    Runs an asyncio loop in a thread; ends by itself when the node goes away (the WebSocket closes).
    `finalized` holds (extrinsic hex, block hash hex) of every transfer the node reported finalized.
    """

    def __init__(self, ws_url: str, seed: int) -> None:
        self.ws_url = ws_url
        self.rng = random.Random(seed)
        self.finalized: list[tuple[str, str]] = []
        self.errors: list[BaseException] = []        # the connection going away, as expected
        self.unexpected: list[BaseException] = []    # anything else: the node refused a transfer
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def start(self) -> TransferStream:
        self._thread.start()
        return self

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "transfer stream did not end"

    async def _main(self) -> None:
        async with AsyncClient(self.ws_url, timeout=5) as c:
            await asyncio.gather(*(self._sender(c, name) for name in SENDERS))

    async def _sender(self, c: AsyncClient, name: str) -> None:
        kp = DEV[name]
        try:
            nonce = await c.next_nonce(kp.public_key)
            while not self._stop.is_set():
                xts = []
                for i in range(IN_FLIGHT):
                    dest = DEV[self.rng.choice([n for n in NAMES if n != name])].public_key
                    xts.append(await c.build_extrinsic(kp, "balances", "transfer",
                                                       [dest, self.rng.randint(1, 10**6)], nonce=nonce + i))
                results = await asyncio.gather(*(c.submit_and_watch(x, until="finalized", timeout=10)
                                                 for x in xts), return_exceptions=True)
                with self._lock:
                    for x, r in zip(xts, results):
                        if isinstance(r, TxResult):
                            self.finalized.append((hx(x), hx(r.block_hash)))
                for r in results:
                    if isinstance(r, BaseException):
                        raise r
                nonce += IN_FLIGHT
        except (TimeoutError, ConnectionError, OSError, aiohttp.ClientError) as e:
            self.errors.append(e)  # the node is gone
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.unexpected.append(e)


def check_balances_add_up(node: DevNode, expected_issuance: int) -> str:
    """Sum of every account's free + reserved equals total issuance (and the genesis issuance)."""
    at = node.rpc("chain_getBlockHash")
    prefix = hx(system.account.prefix)
    keys, start = [], None
    while True:
        page = node.rpc("state_getKeysPaged", [prefix, 1000, start, at])
        if not page:
            break
        keys += page
        start = page[-1]
    assert len(keys) == len(NAMES), "only dev accounts exist (transfers stay among them)"
    total = 0
    for k in keys:
        info = system.AccountInfo.decode(unhex(node.rpc("state_getStorage", [k, at])))
        total += info.free + info.reserved
    issuance = U64.decode(unhex(node.rpc("state_getStorage", [hx(balances.total_issuance.prefix), at])))
    assert total == issuance, f"accounts hold {total}, total issuance says {issuance} (at {at})"
    assert issuance == expected_issuance, "transfers and fees never change the issuance"
    return at


def check_nonces_match_blocks(node: DevNode, at: str) -> None:
    """Each sender's nonce equals the number of its signed extrinsics in the chain up to `at`."""
    counts = {DEV[n].public_key: 0 for n in NAMES}
    h = at
    while True:
        block = node.rpc("chain_getBlock", [h])["block"]
        for x in block["extrinsics"]:
            xt = Extrinsic.decode(unhex(x))
            if xt.signature is not None:
                counts[xt.signature.signer] += 1
        if block["header"]["number"] == "0x0":
            break
        h = block["header"]["parentHash"]
    for pk, count in counts.items():
        info = system.AccountInfo.decode(unhex(node.rpc("state_getStorage", [hx(system.account.key_of(pk)), at])))
        assert info.nonce == count, f"{hx(pk)}: nonce {info.nonce}, {count} extrinsics in blocks"


def test_sigkill_during_block_production_loses_nothing_committed(tmp_path):
    seed = int(os.environ.get("CRASH_TEST_SEED") or int.from_bytes(os.urandom(4), "big"))
    rng = random.Random(seed)
    print(f"crash test seed {seed}")
    node = DevNode(tmp_path / "base", block_time_ms=150)
    finalized: list[tuple[str, str]] = []       # over all rounds
    observed: dict[int, str] = {}               # block number -> hash, as reported before a kill
    try:
        node.start()
        genesis = node.rpc("chain_getBlockHash", [0])
        issuance = U64.decode(unhex(node.rpc("state_getStorage", [hx(balances.total_issuance.prefix), genesis])))
        for round_ in range(KILLS):
            stream = TransferStream(node.ws_url, seed + round_).start()
            # a random moment once transfers are flowing (the first finalized one), bounded in time
            started, deadline = time.monotonic(), time.monotonic() + 20
            kill_after = rng.uniform(0.5, 2.5)
            best_seen = -1
            while time.monotonic() < deadline and not (
                    stream.finalized and time.monotonic() - started >= kill_after):
                header = node.rpc("chain_getHeader")
                best_seen = int(header["number"], 16)
                observed[best_seen] = node.rpc("chain_getBlockHash", [best_seen])
                time.sleep(rng.uniform(0.0, 0.05))
            node.kill()
            stream.stop()
            finalized += stream.finalized
            assert not stream.unexpected, f"round {round_}: the node refused transfers: {stream.unexpected}"
            assert stream.finalized, f"round {round_}: no transfer was finalized before the kill ({stream.errors[:3]})"

            node.restart()
            assert node.rpc("chain_getBlockHash", [0]) == genesis
            best = node.best_number()
            print(f"round {round_}: {len(stream.finalized)} transfers finalized, best #{best_seen} seen "
                  f"before the kill, #{best} after restart")
            assert best >= best_seen, f"round {round_}: best #{best} after restart < #{best_seen} seen before the kill"
            for number, block_hash in observed.items():
                assert node.rpc("chain_getBlockHash", [number]) == block_hash, f"block #{number} changed"
            for xt_hex, block_hash in finalized:
                block = node.rpc("chain_getBlock", [block_hash])
                assert block is not None, f"finalized block {block_hash} is gone"
                assert xt_hex in block["block"]["extrinsics"]
                number = int(block["block"]["header"]["number"], 16)
                assert node.rpc("chain_getBlockHash", [number]) == block_hash, "finalized block not canonical"
            node.wait_for_block(best + 2, timeout=10)  # the chain goes on
            at = check_balances_add_up(node, issuance)
            check_nonces_match_blocks(node, at)
        assert node.stop() == 0, "a clean SIGTERM shutdown exits 0"
    finally:
        node.stop()


def test_restart_keeps_genesis_and_continues_from_best_block(tmp_path):
    node = DevNode(tmp_path / "base", block_time_ms=100)
    try:
        node.start()
        genesis = node.rpc("chain_getBlockHash", [0])
        seen = node.wait_for_block(5)
        seen_hash = node.rpc("chain_getBlockHash", [seen])
        block1 = node.rpc("chain_getBlockHash", [1])
        assert node.stop() == 0

        node.restart()
        assert node.rpc("chain_getBlockHash", [0]) == genesis
        assert node.rpc("chain_getBlockHash", [1]) == block1
        assert node.rpc("chain_getBlockHash", [seen]) == seen_hash
        resumed = [int(m) for m in re.findall(r"best #(\d+), base path", node.log_text())]
        assert len(resumed) == 2 and resumed[0] == 0 and resumed[1] >= seen, resumed
        node.wait_for_block(resumed[1] + 1)
        next_hash = node.rpc("chain_getBlockHash", [resumed[1] + 1])
        header = node.rpc("chain_getHeader", [next_hash])
        assert header["parentHash"] == node.rpc("chain_getBlockHash", [resumed[1]])
        assert f"authored block #{resumed[1] + 1} " in node.log_text().split("=== start #2")[1]
        assert "authored block #1 " not in node.log_text().split("=== start #2")[1]
    finally:
        node.stop()


def test_sigkill_during_startup_then_restart_gives_the_same_genesis(tmp_path):
    """A node killed while it creates its database (genesis) starts cleanly on the same base path."""
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    reference = DevNode(tmp_path / "reference", block_time_ms=100)
    try:
        genesis = reference.start().rpc("chain_getBlockHash", [0])
    finally:
        reference.stop()
    for i in range(3):
        node = DevNode(tmp_path / f"base{i}", block_time_ms=100)
        try:
            node.start(wait=False)
            time.sleep(rng.uniform(0.05, 0.5))
            node.kill()
            node.restart()
            assert node.rpc("chain_getBlockHash", [0]) == genesis
            node.wait_for_block(node.best_number() + 1, timeout=10)
        finally:
            node.stop()
