"""The energy_* queries against a real dev node: a household offers surplus, a neighbour bids, and
the order book, orders, trades, meters and zone usage read back through JSON-RPC only."""
from __future__ import annotations

import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from node_process import DevNode, NodeRpcError  # noqa: E402

from genesis.chain_spec import dev_meter_uri  # noqa: E402
from pallets import grid, market  # noqa: E402
from primitives.keys import Keypair, dev_keypair  # noqa: E402
from rpc.client import Client  # noqa: E402

BOB, CHARLIE = dev_keypair("Bob"), dev_keypair("Charlie")


def meter_hex(owner: str) -> str:
    return "0x" + Keypair.from_uri(dev_meter_uri(owner)).public_key.hex()


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with DevNode(tmp_path_factory.mktemp("energy") / "base", block_time_ms=200) as n:
        n.wait_for_block(1)
        yield n


def test_order_book_orders_trades_meter_and_zone_usage(node):
    # an interval far enough ahead that its gate is open for the whole test
    t = grid.interval_start(int(time.time())) + 4 * grid.Config.interval_s
    with Client(node.url) as c:
        ask = c.build_extrinsic(BOB, "market", "place_ask", [1, t, 100_000, 1_000, meter_hex("Bob")])
        assert c.submit_and_watch(ask, until="inBlock").success is True
        book = node.rpc("energy_orderBook", [1, t])
        assert book["asks"] == [{"pricePerKwh": 100_000, "quantityWh": 1_000, "orders": 1}] and book["bids"] == []
        orders = node.rpc("energy_orders", [BOB.address()])
        assert [(o["side"], o["remainingWh"], o["intervalStart"]) for o in orders] == [("ask", 1_000, t)]

        # Charlie's all-in limit covers the ask price plus any local tariff band
        bid = c.build_extrinsic(CHARLIE, "market", "place_bid", [1, t, 200_000, 400, meter_hex("Charlie"), False])
        assert c.submit_and_watch(bid, until="inBlock").success is True
    trades = node.rpc("energy_trades", [CHARLIE.address()])
    assert len(trades) == 1
    tr = trades[0]
    assert (tr["buyer"], tr["seller"], tr["wh"], tr["pricePerKwh"]) == (CHARLIE.address(), BOB.address(), 400, 100_000)
    assert tr["feePerKwh"] in (20_000, 40_000) and tr["amount"] == 400 * 100_000 // 1000
    assert node.rpc("energy_trades", [BOB.address(), t, t]) == trades
    assert node.rpc("energy_trades", [BOB.address(), t + 900]) == []
    assert node.rpc("energy_orderBook", [1, t])["asks"] == [{"pricePerKwh": 100_000, "quantityWh": 600, "orders": 1}]

    usage = node.rpc("energy_zoneUsage", [1, t])
    assert usage["exportedWh"] == 400 and usage["importedWh"] == 400
    assert usage["exportCapacityWh"] == market.wh_in_interval(250_000)
    zones = node.rpc("energy_zones")
    assert [z["zone"] for z in zones] == [1, 2] and zones[0]["dso"] == dev_keypair("Dave").address()

    meter = node.rpc("energy_meter", [meter_hex("Bob")])
    assert meter["owner"] == BOB.address() and meter["status"] == "active" and meter["lastReading"] is None
    assert node.rpc("energy_meter", ["0x" + "00" * 32]) is None
    assert node.rpc("energy_settlement", [tr["tradeId"]]) == {"tradeId": tr["tradeId"], "status": "matched",
                                                             "outcome": None}
    assert node.rpc("energy_settlement", [10**6]) is None
    assert [x["tradeId"] for x in node.rpc("energy_intervalTrades", [t, t])] == [tr["tradeId"]]


@pytest.mark.parametrize("method,params", [
    ("energy_orderBook", [1]),                      # missing intervalStart
    ("energy_orderBook", ["one", 0]),               # zone not an integer
    ("energy_orders", ["not an address"]),
    ("energy_meter", ["0x1234"]),                   # not 32 bytes
    ("energy_trades", [BOB.address(), -1]),
    ("energy_zones", [None, 2, None, 4]),           # too many
    ("energy_settlement", ["x"]),
    ("energy_intervalTrades", [1_800, 900]),        # to before from
    ("energy_intervalTrades", [0, 10**9]),          # wider than a month of intervals
])
def test_bad_params_are_invalid_params(node, method, params):
    with pytest.raises(NodeRpcError) as e:
        node.rpc(method, params)
    assert e.value.error["code"] == -32602
    assert node.rpc("system_health")["isSyncing"] is False
