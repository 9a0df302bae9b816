"""`energy_clearing` and `gridchain report clearing` through the real RPC server, in process.

A real NodeService (LevelDB, the composed runtime, the transaction pool, instant seal) with zones 1
and 2 as one coupled region (genesis of tests/test_coupled_clearing.py), behind a real RpcServer on
127.0.0.1. Its chain clock is the test's, so the gate closure of interval T comes when the test says.
The orders are signed and submitted over RPC: the worked case of tests/test_coupled_clearing.py
(zone 1 at 150,000 per kWh buying 3,000 Wh, zone 2 at 50,000 selling 1,000 Wh over the congested
2 -> 1 link, rent 100,000 to zone 2's DSO "South"). The next interval, T + 900, has not cleared.
"""
from __future__ import annotations

import csv
import io

import pytest
from click.testing import CliRunner

from genesis.chain_spec import dev_spec
from node.cli import main
from node.energy_rpc import MAX_INTERVALS
from node.service import NodeConfig, NodeService
from pallets import grid, market
from rpc.client import Client, RpcError
from rpc.server import RpcServer
from tests.node_process import run_gridchain
from tests.rpc_fake import LoopThread
from tests.test_coupled_clearing import SOUTH, coupled_genesis
from tests.test_market import BOB, CHARLIE, DAVE, FERDIE, METER, T

I = grid.Config.interval_s
START_MS = 1_700_000_000_000     # the chain clock at the first block: interval T's gate is open


class TestClock:
    """The chain clock of the node under test: moves only when the test moves it."""

    __test__ = False

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


@pytest.fixture(scope="module")
def lt():
    loop = LoopThread()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def node(lt, tmp_path_factory):
    """{url, service, before}: the node with the region cleared for T, and `before`, the hash of the
    block just before the one that cleared it."""
    spec = dev_spec()
    spec["genesis"]["runtimeGenesis"]["config"] = coupled_genesis()
    clock = TestClock(START_MS)

    async def start() -> tuple[NodeService, RpcServer]:
        service = NodeService(NodeConfig(spec=spec, base_path=tmp_path_factory.mktemp("clearing") / "base",
                                         author_uri="//Alice", block_time_ms=0, verifier_workers=0))
        service.chain.clock_ms = clock
        await service.start()
        server = RpcServer(service, host="127.0.0.1", port=0)
        await server.start()
        return service, server

    service, server = lt.run(start(), timeout=120)
    try:
        url = f"http://127.0.0.1:{server.port}"
        with Client(url) as c:
            for who, call, args in ((FERDIE, "place_ask", [2, T, 50_000, 2_000, METER[FERDIE]]),
                                    (BOB, "place_ask", [1, T, 120_000, 2_000, METER[BOB]]),
                                    (CHARLIE, "place_bid", [1, T, 200_000, 3_000, METER[CHARLIE], False])):
                r = c.submit_and_watch(c.build_extrinsic(who, "market", call, args), until="inBlock", timeout=30)
                assert r.success is True, r.error
            clock.ms = (T - market.Config.gate_closure_s + 1) * 1000     # past the gate closure of T
            # hooks see the previous block's time: the block after the first one past gate closure clears
            before = c.request("engine_createBlock", [True])["hash"]
            assert all(region["cleared"] is False for region in c.request("energy_clearing", [T])["regions"])
            c.request("engine_createBlock", [True])
        yield {"url": url, "service": service, "before": before}
    finally:
        async def stop() -> None:
            await server.stop()
            await service.stop()
        lt.run(stop(), timeout=60)


def rpc(node: dict, method: str, params: list | dict | None = None):
    with Client(node["url"]) as c:
        return c.request(method, params)


def test_energy_clearing_reads_the_region_s_prices_flows_and_rent(node):
    got = rpc(node, "energy_clearing", [T])
    assert got["intervalStart"] == T and got["at"] == rpc(node, "chain_getBlockHash")
    (region,) = got["regions"]
    assert (region["region"], region["zoneIds"], region["cleared"]) == (0, [1, 2], True)
    assert (region["volumeWh"], region["rent"]) == (3_000, 100_000)
    zones = {z["zone"]: z for z in region["zones"]}
    assert zones[1] == {"zone": 1, "mode": "coupled", "pricePerKwh": 150_000, "boughtWh": 3_000, "soldWh": 2_000,
                        "netImportWh": 1_000, "importedWh": 1_000, "exportedWh": 0}
    assert zones[2] == {"zone": 2, "mode": "coupled", "pricePerKwh": 50_000, "boughtWh": 0, "soldWh": 1_000,
                        "netImportWh": -1_000, "importedWh": 0, "exportedWh": 1_000}
    links = {(x["fromZone"], x["toZone"]): x for x in region["links"]}
    assert links[(2, 1)] == {"fromZone": 2, "toZone": 1, "flowWh": 1_000, "limitWh": 1_000, "congested": True,
                             "rent": 100_000, "dso": SOUTH.address()}
    assert links[(1, 2)] == {"fromZone": 1, "toZone": 2, "flowWh": 0, "limitWh": market.wh_in_interval(100_000),
                             "congested": False, "rent": 0, "dso": DAVE.address()}
    # named params and an explicit `at` read the same
    assert rpc(node, "energy_clearing", {"intervalStart": T, "at": got["at"]}) == got


def test_a_region_not_yet_cleared_says_so_with_empty_lists(node):
    pending = {"region": 0, "zoneIds": [1, 2], "cleared": False, "zones": [], "links": [],
               "volumeWh": None, "rent": None}
    assert rpc(node, "energy_clearing", [T + I])["regions"] == [pending]
    # pinned to the block before gate closure, interval T had not cleared either
    before = rpc(node, "energy_clearing", [T, node["before"]])
    assert before["at"] == node["before"] and before["regions"] == [pending]


def test_energy_zones_names_each_zone_s_mode(node):
    assert [(z["zone"], z["mode"]) for z in rpc(node, "energy_zones")] == [(1, "coupled"), (2, "coupled")]


@pytest.mark.parametrize("params,words", [
    ([-900], "out of range"),
    ([T + 1], "not the start of an interval"),
    (["1700001900"], "expected an integer"),
    ([1.5], "expected an integer"),
    ([True], "expected an integer"),
    ([], "missing required parameter `intervalStart`"),
    ([T, None, 1], "at most 2 parameters"),
    ({"interval": T}, "unknown parameter `interval`"),
    ([T, "0x12"], "at: expected 32 bytes"),
])
def test_bad_params_are_invalid_params_and_change_nothing(node, params, words):
    best, clearing = rpc(node, "chain_getBlockHash"), rpc(node, "energy_clearing", [T])
    with pytest.raises(RpcError) as e:
        rpc(node, "energy_clearing", params)
    assert e.value.code == -32602 and words in e.value.message
    assert rpc(node, "chain_getBlockHash") == best and rpc(node, "energy_clearing", [T]) == clearing


def test_an_unknown_block_is_4003(node):
    with pytest.raises(RpcError) as e:
        rpc(node, "energy_clearing", [T, "0x" + "11" * 32])
    assert e.value.code == 4003


def report(node: dict, *args: str, scheme: str = "http"):
    url = node["url"].replace("http", scheme, 1)
    return CliRunner().invoke(main, ["report", "clearing", "--rpc", url, *args])


def test_report_clearing_writes_zone_rows_for_the_regulator(node):
    r = report(node, "--from", str(T), "--to", str(T + I))
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [(x["intervalStart"], x["region"], x["zone"], x["pricePerKwh"], x["boughtWh"], x["soldWh"],
             x["netImportWh"]) for x in rows] == [
        (str(T), "0", "1", "150000", "3000", "2000", "1000"),
        (str(T), "0", "2", "50000", "0", "1000", "-1000")]
    # T + 900 has not cleared: no rows, counted on standard error
    assert "2 zone rows from 1 region clearings over 2 intervals (1 not cleared)" in r.stderr


def test_report_clearing_over_many_batches_holds_every_interval_once(node):
    """Over 201 intervals (three batch requests): the one cleared interval's rows, once."""
    r = report(node, "--from", str(T - 100 * I), "--to", str(T + 100 * I))
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [(x["intervalStart"], x["zone"]) for x in rows] == [(str(T), "1"), (str(T), "2")]
    assert "over 201 intervals (200 not cleared)" in r.stderr


def test_report_clearing_writes_link_rows_to_a_file(node, tmp_path):
    out = tmp_path / "links.csv"
    r = report(node, "--from", str(T), "--to", str(T), "--kind", "links", "--output", str(out), scheme="ws")
    assert r.exit_code == 0, r.output
    rows = {(x["fromZone"], x["toZone"]): x for x in csv.DictReader(out.open())}
    assert set(rows) == {("1", "2"), ("2", "1")}
    assert (rows[("2", "1")]["flowWh"], rows[("2", "1")]["limitWh"], rows[("2", "1")]["congested"],
            rows[("2", "1")]["rent"], rows[("2", "1")]["dso"]) == ("1000", "1000", "true", "100000", SOUTH.address())
    assert rows[("1", "2")]["congested"] == "false" and rows[("1", "2")]["dso"] == DAVE.address()


@pytest.mark.parametrize("args,words", [
    (["--from", str(T + I), "--to", str(T)], "--to is before --from"),
    (["--from", "0", "--to", str((MAX_INTERVALS + 1) * I)], f"at most {MAX_INTERVALS} intervals"),
    (["--from", "-900", "--to", str(T)], "--from"),
    (["--from", str(T), "--to", str(T), "--kind", "trades"], "--kind"),
])
def test_report_clearing_refuses_bad_ranges_with_one_line_and_writes_nothing(node, tmp_path, args, words):
    """Through the `gridchain` entry point (a short-lived CLI process, no node), as a user runs it."""
    out = tmp_path / "never.csv"
    r = run_gridchain("report", "clearing", "--rpc", node["url"], *args, "--output", str(out))
    assert r.returncode != 0 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and words in r.stderr, r.stderr
    assert not out.exists()


def test_report_clearing_names_an_unreachable_node(tmp_path):
    r = CliRunner().invoke(main, ["report", "clearing", "--from", str(T), "--to", str(T),
                                  "--rpc", "http://127.0.0.1:9"])
    assert r.exit_code != 0 and "cannot reach the node" in r.stderr
