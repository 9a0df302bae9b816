"""A deployment from its file to a running network governed by its council, as an operations team
would do it, with real processes on loopback:

1. the shipped example deployment file, with its bootnodes moved to free loopback ports and a
   2-block enactment delay, becomes a raw chain spec through `gridchain build-spec --from --raw`;
2. four validators start from that spec alone: each finds the others through the spec's bootNodes
   (no --bootnodes on the command line), and blocks are finalized;
3. the keys are imported with `gridchain wallet import`; the registrar licenses two households,
   the DSO certifies their meters, the issuer mints the buyer's stablecoin (`gridchain admin ...`);
4. the council changes the grid fee of trade inside zone 1 for a coming interval's time-of-use
   band with `gridchain admin council propose grid force_set_tariff ...`, `vote`, `enact`;
5. the households place crossing orders for that interval (`gridchain wallet order place`), and
   the trade records the new fee per kWh, not the file's.

Every gridchain command runs as a subprocess, as an operator types it.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from genesis.deployment import spec_from_text
from p2p.keys import load_or_create_node_key, peer_id_of
from pallets import grid, timestamp
from primitives.codec import unpack
from primitives.keys import Keypair
from tests.bft_network import BftNetwork, free_ports
from tests.node_process import gridchain_cmd

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parent.parent / "genesis" / "examples" / "deployment.toml"
PASSWORD = "riverside operations"
KEYS = {"regulator": "//Regulator", "north-grid": "//NorthGrid", "south-grid": "//SouthGrid",
        "treasury": "//Treasury", "validator-1": "//Validator1", "validator-2": "//Validator2",
        "seller": "//Riverside//seller", "buyer": "//Riverside//buyer"}
NEW_FEE = 77_000                         # 0.077 GEUR per kWh: neither of the file's zone-1 fees
GATE_S, I = 300, 900


def deployment_text(addrs: list[str]) -> str:
    """The example, with its validators reachable on loopback and motions enactable 2 blocks after passing."""
    text = EXAMPLE.read_text()
    boots = iter(addrs)
    text, n = re.subn(r'^bootnode = ".*"$', lambda _: f'bootnode = "{next(boots)}"', text, flags=re.M)
    assert n == 4
    assert text.count('enactment_delay = "10m"') == 1
    return text.replace('enactment_delay = "10m"', "enactment_delay = 2")


class Operator:
    """Runs `gridchain ...` as subprocesses against one node, with one keystore."""

    def __init__(self, rpc: str, keystore: Path) -> None:
        self.rpc = rpc
        self.keystore = keystore
        self.env = {**os.environ, "GRIDCHAIN_WALLET_PASSWORD": PASSWORD}

    def args(self, *args: str) -> list[str]:
        return gridchain_cmd(*args, "--rpc", self.rpc, "--keystore", str(self.keystore), "--json")

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(self.args(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=self.env)

    @staticmethod
    def finish(p: subprocess.Popen, timeout: float = 60) -> dict:
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, f"{' '.join(p.args[1:])} exited {p.returncode}: {err.strip()}"
        return json.loads(out)

    def __call__(self, *args: str) -> dict:
        return self.finish(self.start(*args))

    def all(self, *commands: tuple[str, ...]) -> list[dict]:
        """Commands signed by different accounts, run side by side."""
        return [self.finish(p) for p in [self.start(*c) for c in commands]]


def chain_now_s(net: BftNetwork) -> int:
    """The chain's time (the best block's timestamp inherent), in unix seconds."""
    raw = net.nodes[0].rpc("state_getStorage", ["0x" + timestamp.now.prefix.hex()])
    return unpack(bytes.fromhex(raw[2:])) // 1000


def test_a_deployment_file_becomes_a_network_whose_council_sets_the_fee_trades_pay(tmp_path):
    base = tmp_path / "net"
    ports = free_ports(12)
    peers = [peer_id_of(load_or_create_node_key(base / f"node{i}")) for i in range(4)]
    addrs = [f"/ip4/127.0.0.1/tcp/{ports[3 * i + 1]}/p2p/{peers[i]}" for i in range(4)]
    deployment = tmp_path / "deployment.toml"
    deployment.write_text(deployment_text(addrs))
    plain = spec_from_text(deployment.read_text())["genesis"]["runtimeGenesis"]["config"]

    built = subprocess.run(gridchain_cmd("build-spec", "--from", str(deployment), "--raw"), capture_output=True,
                           text=True, timeout=60)
    assert built.returncode == 0, built.stderr
    spec = json.loads(built.stdout)
    assert spec["bootNodes"] == addrs and "raw" in spec["genesis"]

    net = BftNetwork(base, 4, spec=spec)
    for k, node in enumerate(net.nodes):          # the ports the bootnodes name; no --bootnodes flags
        node.spec = replace(node.spec, rpc_port=ports[3 * k], p2p_port=ports[3 * k + 1],
                            prometheus_port=ports[3 * k + 2])
        node.port = node.spec.rpc_port
        node.peers = []
    try:
        net.start()
        net.wait_finalized(2, timeout=90)
        ops = Operator(net.nodes[0].spec.rpc_url, tmp_path / "keystore")
        for name, uri in KEYS.items():
            ops("wallet", "import", name, "--uri", uri, "--kdf", "minimal")

        # households: licences, meters, money
        ops("admin", "registrar", "license", "seller", "--roles", "prosumer", "--as", "regulator")
        ops("admin", "registrar", "license", "buyer", "--roles", "consumer", "--as", "regulator")
        meter = {h: "0x" + Keypair.from_uri(f"{KEYS[h]}//meter").public_key.hex() for h in ("seller", "buyer")}
        ops.all(("admin", "dso", "certify-meter", meter["seller"], "seller", "--zone", "1", "--kind",
                 "bidirectional", "--rated-power", "10kW", "--as", "north-grid"),
                ("admin", "issuer", "mint", "buyer", "100", "--as", "treasury"),
                ("wallet", "transfer", "regulator", "seller", "10"))
        ops.all(("admin", "dso", "certify-meter", meter["buyer"], "buyer", "--zone", "1", "--kind", "import",
                 "--rated-power", "10kW", "--as", "north-grid"),
                ("wallet", "transfer", "regulator", "buyer", "10"))

        # the council sets the fee of the coming interval's band; the file's fee is different
        now = chain_now_s(net)
        target = grid.interval_start(now) + I
        while target - GATE_S < now + 60:         # time for the motion before the gate closes
            target += I
        band = grid.band_of(tuple(map(tuple, plain["grid"]["tou_bands"])), target)
        old_fee = next(fee for a, b, bd, fee in plain["grid"]["tariffs"] if (a, b, bd) == (1, 1, band))
        proposed = ops("admin", "council", "propose", "grid", "force_set_tariff", "from_zone=1", "to_zone=1",
                       f"band={band}", f"price_per_kwh={NEW_FEE}", "--as", "regulator")
        motion = str(proposed["motionId"])
        votes = ops.all(*[("admin", "council", "vote", motion, "--aye", "--as", who)
                          for who in ("north-grid", "validator-1", "validator-2")])
        enact_at = next(v["enactAt"] for v in votes if v.get("enactAt") is not None)   # 4 of 7: passed
        net.poll(f"block #{enact_at}", lambda: int(net.nodes[0].rpc("chain_getHeader")["number"], 16) >= enact_at,
                 timeout=30)
        enacted = ops("admin", "council", "enact", motion, "--as", "south-grid")
        assert enacted["callError"] is None

        # crossing orders for the target interval trade at the new fee
        ops("wallet", "order", "place", "seller", "--side", "ask", "--interval", str(target), "--price", "0.10",
            "--quantity", "1kWh")
        ops("wallet", "order", "place", "buyer", "--side", "bid", "--interval", str(target), "--price", "0.30",
            "--quantity", "1kWh")
        trades = net.nodes[1].rpc("energy_intervalTrades", {"fromInterval": target, "toInterval": target})
        assert len(trades) == 1, trades
        assert trades[0]["feePerKwh"] == NEW_FEE != old_fee
        assert trades[0]["wh"] == 1000 and trades[0]["feeAmount"] == NEW_FEE
    finally:
        net.stop()
