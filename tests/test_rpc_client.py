"""The RPC client library against a real RpcServer in front of the fake node (tests/rpc_fake.py)."""
from __future__ import annotations

import asyncio

import pytest

from tests.rpc_fake import ALICE, BOB, FAKE_METADATA, lt, node, server, signed_xt  # noqa: F401

from primitives.codec import U128
from primitives.extrinsic import Extrinsic, Mortality, extrinsic_hash, verify_extrinsic_signature  # noqa: E402
from primitives.hashing import keccak256  # noqa: E402
from primitives.ss58 import encode as ss58_encode  # noqa: E402
from rpc.client import AsyncClient, Client, RpcError, call_from_metadata, convert_arg  # noqa: E402


@pytest.fixture(params=["http", "ws"])
def base_url(request, server):
    return f"{request.param}://127.0.0.1:{server.port}/"


def test_request_batch_and_errors(lt, base_url):
    async def go():
        async with AsyncClient(base_url) as c:
            assert await c.request("system_name") == "gridchain"
            assert (await c.request("system_health"))["peers"] == 3
            with pytest.raises(RpcError) as e:
                await c.request("no_such_method")
            assert e.value.code == -32601
            with pytest.raises(RpcError) as e:
                await c.request("author_submitExtrinsic", ["0x" + signed_xt(pallet=9).hex()])
            assert e.value.code == 1010 and e.value.data == "Payment: Inability to pay some fees"
            results = await c.batch([("system_chain", []), ("nope", []), ("chain_getBlockHash", [0])])
            assert results[0] == "Development"
            assert isinstance(results[1], RpcError) and results[1].code == -32601
            assert results[2].startswith("0x")
            assert await c.batch([]) == []
    lt.run(go())


def test_chain_helpers(lt, base_url, node):
    async def go():
        async with AsyncClient(base_url) as c:
            g = await c.genesis_hash()
            assert g == node.genesis
            assert await c.genesis_hash() is g  # cached
            assert (await c.runtime_version())["specVersion"] == 100
            assert await c.metadata() == FAKE_METADATA
            assert await c.next_nonce(ALICE.public_key) == 7
            assert await c.get_storage(b"\x01\x01") == b"one"
            assert await c.get_storage(b"\x09") is None
            at, proof = await c.read_proof([b"\x01\x01"])
            assert at == node.blocks[-1].block.header.hash() and proof == [b"\xc0", b"\xc2\x01\x02"]
            with pytest.raises(RpcError) as e:
                await c.get_storage(b"\x01", at=b"\x11" * 32)
            assert e.value.code == 4003
    lt.run(go())


def test_subscriptions(lt, base_url, node):
    async def go():
        async with AsyncClient(base_url) as c:
            sub = await c.subscribe("chain_subscribeNewHeads", [], "chain_unsubscribeNewHeads")
            first = await sub.next(5)
            assert int(first["number"], 16) == len(node.blocks) - 1
            await node.seal_block()
            second = await sub.next(5)
            assert int(second["number"], 16) == int(first["number"], 16) + 1
            await sub.unsubscribe()
            with pytest.raises(StopAsyncIteration):
                await sub.__anext__()
            async with await c.subscribe("chain_subscribeFinalizedHeads", None,
                                         "chain_unsubscribeFinalizedHeads") as fin:
                async for head in fin:
                    assert head["number"].startswith("0x")
                    break
            await asyncio.sleep(0.05)
        assert not node.head_feeds and not node.fin_feeds
    lt.run(go())


def test_build_extrinsic_decodes_and_verifies(lt, base_url, node):
    async def go():
        async with AsyncClient(base_url) as c:
            best = node.blocks[-1].block.header
            raw = await c.build_extrinsic(ALICE, "balances", "transfer",
                                          {"dest": BOB.address(), "amount": 1234}, tip=5)
            xt = Extrinsic.decode(raw)
            assert xt.call.pallet_index == 3 and xt.call.call_index == 0
            assert xt.call.args == (BOB.public_key, 1234)
            s = xt.signature
            assert s.signer == ALICE.public_key and s.nonce == 7 and s.tip == 5
            assert s.mortality == Mortality(best.number, 64)
            assert verify_extrinsic_signature(xt, node.genesis, 100, 2, best.hash())
            assert not verify_extrinsic_signature(xt, node.genesis, 101, 2, best.hash())

            # immortal, explicit nonce, positional args with hex and SS58 of another network
            raw = await c.build_extrinsic(ALICE, "Balances", "transfer",
                                          [ss58_encode(BOB.public_key, 42), 1], nonce=3, mortal_period=None)
            xt = Extrinsic.decode(raw)
            assert xt.signature.nonce == 3 and xt.signature.mortality.immortal
            assert xt.call.args == (BOB.public_key, 1)
            assert verify_extrinsic_signature(xt, node.genesis, 100, 2, node.genesis)

            h = await c.submit(raw)
            assert h == extrinsic_hash(raw) == keccak256(raw)

            with pytest.raises(ValueError, match="unknown pallet"):
                await c.build_extrinsic(ALICE, "nope", "transfer", [])
            with pytest.raises(ValueError, match="missing"):
                await c.build_extrinsic(ALICE, "balances", "transfer", {"dest": BOB.public_key})
            with pytest.raises(ValueError, match="u64"):
                await c.build_extrinsic(ALICE, "balances", "transfer", [BOB.public_key, -1])
    lt.run(go())


def test_argument_conversion_table():
    call = call_from_metadata(FAKE_METADATA, "balances", "set_many", {
        "who": [ALICE.address(), "0x" + BOB.public_key.hex()], "limit": None, "big": 2**100,
        "flag": True, "note": "hi", "point": [1, 2]})
    assert call.args == ([ALICE.public_key, BOB.public_key], None, U128.to_plain(2**100), True, "hi", [1, 2])
    assert call_from_metadata(FAKE_METADATA, "system", "remark", ["0x0102"]).args == (b"\x01\x02",)
    assert convert_arg({"option": "u32"}, 5) == 5
    assert convert_arg({"tuple": ["u8", "bool"]}, (1, False)) == [1, False]
    with pytest.raises(ValueError):
        convert_arg("[u8; 32]", b"short")
    for account in (ALICE.address(), ALICE.public_key, "0x" + ALICE.public_key.hex()):
        assert convert_arg("AccountId", account, "who") == ALICE.public_key
    for bad in (b"short", "0x0102", "5NotAnAddress", 7):
        with pytest.raises(ValueError, match="who"):
            convert_arg("AccountId", bad, "who")
    with pytest.raises(ValueError):
        convert_arg("u8", 256)
    with pytest.raises(ValueError):
        convert_arg("bool", 1)
    Extrinsic(call).encode()  # plain msgpack values throughout


def test_submit_and_watch(lt, base_url, node):
    async def go():
        async with AsyncClient(base_url) as c:
            raw = await c.build_extrinsic(ALICE, "balances", "transfer", [BOB.public_key, 1], nonce=20)
            res = await c.submit_and_watch(raw)
            assert res.status == "finalized" and res.hash == extrinsic_hash(raw)
            assert res.block_hash == node.blocks[-1].block.header.hash()
            assert res.statuses[0] == "ready" and "inBlock" in res.statuses[1]
            raw = await c.build_extrinsic(ALICE, "balances", "transfer", [BOB.public_key, 1], nonce=21)
            res = await c.submit_and_watch(raw, until="inBlock")
            assert res.status == "inBlock" and res.block_hash is not None
            with pytest.raises(RpcError) as e:
                await c.submit_and_watch(signed_xt(pallet=9))
            assert e.value.code == 1010
    lt.run(go())


def test_sync_client_from_plain_code(server, node):
    with Client(f"http://127.0.0.1:{server.port}") as c:
        assert c.request("system_name") == "gridchain"
        assert c.batch([("system_chain", []), ("system_chainType", [])]) == ["Development", "Development"]
        assert c.genesis_hash() == node.genesis
        with pytest.raises(RpcError):
            c.request("nope")
        raw = c.build_extrinsic(ALICE, "balances", "transfer", {"dest": BOB.public_key, "amount": 9}, nonce=30)
        assert Extrinsic.decode(raw).call.args == (BOB.public_key, 9)
        res = c.submit_and_watch(raw)
        assert res.status == "finalized"
        with c.subscribe("chain_subscribeNewHeads", [], "chain_unsubscribeNewHeads") as sub:
            head = sub.next(5)
            assert head["number"].startswith("0x")
    with pytest.raises(RuntimeError):
        c.request("system_name")
