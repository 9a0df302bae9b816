"""Paging of the energy_* lists against a real dev node holding more trades than one page.

Bob offers surplus in two intervals and Charlie buys it 1 Wh at a time, 1,200 trades in all (more
than the 1,000 a page holds), while blocks keep coming. Every list query must page through to the
end, each item exactly once; an unpaged call longer than a page must be refused, never cut; and the
regulator's CSV (`gridchain report trades`) and the wallet must hold every trade the chain holds.
"""
from __future__ import annotations

import asyncio
import csv
import io
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from node_process import DevNode, NodeRpcError, run_gridchain  # noqa: E402

from genesis.chain_spec import dev_meter_uri  # noqa: E402
from node.energy_rpc import MAX_PAGE  # noqa: E402
from pallets import grid, market  # noqa: E402
from primitives.codec import U32  # noqa: E402
from primitives.keys import Keypair, dev_keypair  # noqa: E402
from rpc.client import AsyncClient, Client, RpcError  # noqa: E402
from wallet.wallet import Wallet  # noqa: E402

pytestmark = pytest.mark.slow   # a real node process

BOB, CHARLIE = dev_keypair("Bob"), dev_keypair("Charlie")
#: Charlie's 1 Wh bids per interval, in two intervals: 1,200 trades, more than one default page
BIDS_PER_INTERVAL = 600
#: Bob's asks priced out of Charlie's reach, so that they stay open (orders to page through)
OPEN_ASKS = 25
CHEAP_ASK_WH = 2_500


def meter(owner: str) -> bytes:
    return Keypair.from_uri(dev_meter_uri(owner)).public_key


def submit_all(c: Client, xts: list[bytes]) -> None:
    """Submit signed extrinsics in batches (the node takes at most 1000 calls per batch)."""
    for i in range(0, len(xts), 400):
        results = c.batch([("author_submitExtrinsic", ["0x" + xt.hex()]) for xt in xts[i:i + 400]])
        refused = [r for r in results if isinstance(r, RpcError)]
        assert not refused, refused[:3]


def wait_until(what: str, check, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout} s")
        time.sleep(0.2)


def signed(c: Client, who: Keypair, call: str, args: list, nonce: int) -> bytes:
    return c.build_extrinsic(who, "market", call, args, nonce=nonce, mortal_period=None)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """(node, (t1, t2)): 1,200 trades in intervals t1 and t2 of zone 1 and Bob's 27 open asks."""
    with DevNode(tmp_path_factory.mktemp("paging") / "base", block_time_ms=200) as node:
        node.wait_for_block(1)
        # intervals far enough ahead that their gates stay open for the whole setup
        t1 = grid.interval_start(int(time.time())) + 4 * grid.Config.interval_s
        t2 = t1 + grid.Config.interval_s
        with Client(node.url) as c:
            n = c.next_nonce(BOB.public_key)
            asks = [signed(c, BOB, "place_ask", [1, t, 100_000, CHEAP_ASK_WH, meter("Bob")], n + i)
                    for i, t in enumerate((t1, t2))]
            asks += [signed(c, BOB, "place_ask", [1, t1, 900_000, 1, meter("Bob")], n + 2 + i)
                     for i in range(OPEN_ASKS)]
            submit_all(c, asks)
            wait_until("Bob's asks resting",
                       lambda: len(node.rpc("energy_orders", [BOB.address()])) == 2 + OPEN_ASKS)
            n = c.next_nonce(CHARLIE.public_key)
            bids = [signed(c, CHARLIE, "place_bid", [1, t, 200_000, 1, meter("Charlie"), False], n + i)
                    for i, t in enumerate([t1] * BIDS_PER_INTERVAL + [t2] * BIDS_PER_INTERVAL)]
            submit_all(c, bids)
            wait_until("every bid traded", lambda: all(
                node.rpc("energy_zoneUsage", [1, t])["exportedWh"] == BIDS_PER_INTERVAL for t in (t1, t2)))
        yield node, (t1, t2)


def storage_trade_count(node: DevNode, t: int) -> int:
    """`market.interval_trade_count` of an interval, read as raw storage (not through energy_*)."""
    raw = node.rpc("state_getStorage", ["0x" + market.interval_trade_count.key_of(t).hex()])
    return 0 if raw is None else U32.decode(bytes.fromhex(raw[2:]))


def report_rows(node: DevNode, t1: int, t2: int, *args: str) -> tuple[list[dict], str]:
    r = run_gridchain("report", "trades", "--from", str(t1), "--to", str(t2), "--rpc", node.ws_url, *args)
    assert r.returncode == 0, r.stderr
    return list(csv.DictReader(io.StringIO(r.stdout))), r.stderr


@pytest.mark.parametrize("page_size", [[], ["--page-size", "7"]], ids=["default-pages", "pages-of-7"])
def test_report_trades_csv_holds_every_trade_the_chain_holds(chain, page_size):
    node, (t1, t2) = chain
    rows, err = report_rows(node, t1, t2, *page_size)
    # the chain's own totals by other paths: the trade count in storage, the zone's metered flow
    count = storage_trade_count(node, t1) + storage_trade_count(node, t2)
    exported = sum(node.rpc("energy_zoneUsage", [1, t])["exportedWh"] for t in (t1, t2))
    assert count == 2 * BIDS_PER_INTERVAL > MAX_PAGE
    assert len(rows) == count, err
    assert sum(int(r["wh"]) for r in rows) == exported
    assert len({r["tradeId"] for r in rows}) == count                 # each trade once
    assert f"{count} trades" in err


def pages(node: DevNode, method: str, params: dict, limit: int) -> list[dict]:
    """Every page of a list query over raw JSON-RPC, each `next` passed back as `cursor`."""
    out = [node.rpc(method, {**params, "limit": limit})]
    while out[-1]["next"] is not None:
        out.append(node.rpc(method, {**params, "limit": limit, "cursor": out[-1]["next"]}))
    return out


def items_once(method: str, ps: list[dict], key, limit: int) -> list:
    """The items of pages, checked: each page within its limit and read at one block, sort keys
    strictly increasing across pages (so no item twice), `next` null on the last page only."""
    assert len({p["at"] for p in ps}) == 1, f"{method}: pages read at different blocks"
    assert all(len(p["items"]) <= limit for p in ps) and all(p["next"] for p in ps[:-1])
    items = [i for p in ps for i in p["items"]]
    keys = [key(i) for i in items]
    assert keys == sorted(set(keys)), f"{method}: an item repeated or out of order"
    return items


def test_paging_any_list_query_returns_every_item_exactly_once(chain):
    node, (t1, t2) = chain
    trade_id = lambda i: i["tradeId"]                           # noqa: E731
    before = node.best_number()
    # every trade of the range, pages of 7 (172 pages, while blocks keep coming) and of the default
    for limit in (7, MAX_PAGE):
        got = items_once("energy_intervalTrades", pages(node, "energy_intervalTrades",
                                                        {"fromInterval": t1, "toInterval": t2}, limit),
                         lambda i: (i["intervalStart"], i["tradeId"]), limit)
        assert len(got) == storage_trade_count(node, t1) + storage_trade_count(node, t2) == 2 * BIDS_PER_INTERVAL
        assert [i["intervalStart"] for i in got].count(t2) == BIDS_PER_INTERVAL
    assert node.best_number() > before, "the chain moved on while paging"
    ids = {trade_id(i) for i in got}
    # the same trades from the buyer's side and from the seller's, by trade id
    charlie = items_once("energy_trades", pages(node, "energy_trades", {"account": CHARLIE.address(),
                                                                        "fromInterval": t1, "toInterval": t2}, 13),
                         trade_id, 13)
    assert {trade_id(i) for i in charlie} == ids and all(i["buyer"] == CHARLIE.address() for i in charlie)
    bob_t2 = items_once("energy_trades", pages(node, "energy_trades", {"account": BOB.address(),
                                                                       "fromInterval": t2, "toInterval": t2}, 100),
                        trade_id, 100)
    assert {trade_id(i) for i in bob_t2} == {trade_id(i) for i in got if i["intervalStart"] == t2}
    # Bob's open orders, one a page; the book shows the same orders resting in t1
    whole = node.rpc("energy_orders", [BOB.address()])
    for limit in (1, 7):
        orders = items_once("energy_orders", pages(node, "energy_orders", {"account": BOB.address()}, limit),
                            lambda i: i["orderId"], limit)
        assert orders == whole and len(orders) == 2 + OPEN_ASKS
    book = node.rpc("energy_orderBook", [1, t1])
    assert sum(level["orders"] for level in book["asks"]) == sum(o["intervalStart"] == t1 for o in whole)
    assert market.Config.max_orders_per_side <= MAX_PAGE         # why the book needs no pages
    zones = items_once("energy_zones", pages(node, "energy_zones", {}, 1), lambda i: i["zone"], 1)
    assert zones == node.rpc("energy_zones") and [z["zone"] for z in zones] == [1, 2]


def test_an_unpaged_list_longer_than_a_page_is_refused_never_cut(chain):
    node, (t1, t2) = chain
    for method, params in (("energy_intervalTrades", [t1, t2]), ("energy_trades", [CHARLIE.address(), t1, t2])):
        with pytest.raises(NodeRpcError) as e:
            node.rpc(method, params)
        assert e.value.code == -32602 and "limit" in e.value.message, e.value.error
    # a list that fits keeps its old shape and is whole
    assert len(node.rpc("energy_intervalTrades", [t1, t1])) == BIDS_PER_INTERVAL
    assert len(node.rpc("energy_trades", [BOB.address(), t2, t2])) == BIDS_PER_INTERVAL


def test_bad_paging_params_are_invalid_params_and_change_nothing(chain):
    node, (t1, t2) = chain
    first = node.rpc("energy_intervalTrades", {"fromInterval": t1, "toInterval": t2, "limit": 5})
    other_block = node.rpc("chain_getBlockHash", [1])
    for params in ({"limit": 0}, {"limit": MAX_PAGE + 1}, {"limit": "ten"}, {"cursor": "garbage"},
                   {"cursor": first["next"].split(".")[0]},              # a key of the wrong shape
                   {"cursor": first["next"], "at": other_block},         # names two blocks
                   {"cursor": first["next"] + "x"}):
        with pytest.raises(NodeRpcError) as e:
            node.rpc("energy_intervalTrades", {"fromInterval": t1, "toInterval": t2, **params})
        assert e.value.code == -32602, (params, e.value.error)
    with pytest.raises(NodeRpcError) as e:                              # a block this node never saw
        node.rpc("energy_zones", {"cursor": "0x" + "11" * 32 + ":1"})
    assert e.value.code == 4003
    again = node.rpc("energy_intervalTrades", {"fromInterval": t1, "toInterval": t2, "limit": 5,
                                               "at": first["at"]})
    assert again == first and node.rpc("system_health")["isSyncing"] is False


def test_the_wallet_reads_every_trade_and_open_order(chain):
    node, (t1, t2) = chain

    async def read() -> tuple[list, list, dict]:
        async with AsyncClient(node.url) as client:
            w = await Wallet.connect(client)
            return (await w.trades(CHARLIE.public_key, t1, t2), await w.open_orders(BOB.public_key),
                    await w.balances(BOB.public_key, certificates=False))
    trades, orders, balances = asyncio.run(read())
    assert len(trades) == len({t["tradeId"] for t in trades}) == 2 * BIDS_PER_INTERVAL
    assert all(t["role"] == "buyer" for t in trades)
    assert len(orders) == 2 + OPEN_ASKS
    assert balances["stablecoin"]["lockedInBids"] == 0          # asks lock nothing


def test_pages_read_one_block_while_new_trades_arrive(chain):
    """A trade made while a report is being paged belongs to a later block: the pages hold exactly
    the trades of the block the first page was read at, none twice, none missing."""
    node, (t1, t2) = chain
    t3 = t2 + grid.Config.interval_s
    with Client(node.url) as c:
        ask = c.build_extrinsic(BOB, "market", "place_ask", [1, t3, 100_000, CHEAP_ASK_WH, meter("Bob")])
        assert c.submit_and_watch(ask, until="inBlock").success

        def bids(k: int) -> None:
            n = c.next_nonce(CHARLIE.public_key)
            submit_all(c, [signed(c, CHARLIE, "place_bid", [1, t3, 200_000, 1, meter("Charlie"), False], n + i)
                           for i in range(k)])
        bids(30)
        wait_until("30 trades in t3", lambda: storage_trade_count(node, t3) == 30)
        ps = [node.rpc("energy_intervalTrades", {"fromInterval": t3, "toInterval": t3, "limit": 4})]
        bids(10)
        wait_until("10 more", lambda: storage_trade_count(node, t3) == 40)
        while ps[-1]["next"] is not None:
            ps.append(node.rpc("energy_intervalTrades", {"fromInterval": t3, "toInterval": t3, "limit": 4,
                                                         "cursor": ps[-1]["next"]}))
    got = items_once("energy_intervalTrades", ps, lambda i: i["tradeId"], 4)
    assert len(got) == 30
    assert len(node.rpc("energy_intervalTrades", [t3, t3])) == 40
