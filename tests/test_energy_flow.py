"""The energy market end to end on a real dev node, through the RPC client only (issue 3's flow).

A registrar licenses two new households, the DSO certifies their meters, the issuer funds the
buyer with stablecoin; the meters report, one household sells its surplus to the other, and after
the settlement window the trade settles against metered delivery: the seller is paid, the grid fee
goes to the DSO and the buyer holds the retired certificates. Chain time runs 600x faster
(`--time-warp`), so the 15-minute intervals and the one-hour settlement window pass in seconds.
"""
from __future__ import annotations

import csv
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from node_process import DevNode, run_gridchain  # noqa: E402

from pallets import balances, certificates, grid, identity, metering, settlement, timestamp  # noqa: E402
from primitives.codec import U8, U64  # noqa: E402
from primitives.extrinsic import Call, Extrinsic  # noqa: E402
from primitives.keys import Keypair, dev_keypair  # noqa: E402
from primitives.meter_reading import Reading, sign_reading  # noqa: E402
from rpc.client import Client  # noqa: E402

ALICE, DAVE, EVE = dev_keypair("Alice"), dev_keypair("Dave"), dev_keypair("Eve")
I = grid.Config.interval_s
STABLE = 1


def seed(name: str) -> Keypair:
    return Keypair.from_uri("//flow//" + name)


def chain_now_s(c: Client) -> int:
    return U64.decode(c.get_storage(timestamp.now.prefix)) // 1000


def wait_chain_time(c: Client, t_s: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while chain_now_s(c) < t_s:
        assert time.monotonic() < deadline, f"chain time did not reach {t_s}"
        time.sleep(0.1)


def do(c: Client, who: Keypair, pallet: str, call: str, args: list) -> None:
    r = c.submit_and_watch(c.build_extrinsic(who, pallet, call, args), until="inBlock")
    assert r.success is True, f"{pallet}.{call}: {r.error}"


def report(c: Client, meter: Keypair, seq: int, interval: int, import_wh: int, export_wh: int) -> None:
    signed = sign_reading(meter, Reading(meter.public_key, seq, interval, import_wh, export_wh), c.genesis_hash())
    xt = Extrinsic(Call(metering.pallet.index, metering.submit_reading.call_def.index, (signed.to_plain(),)))
    r = c.submit_and_watch(xt.encode(), until="inBlock")
    assert r.success is True, r.error


def stable(c: Client, who: bytes) -> int:
    raw = c.get_storage(balances.asset_balance.key_of(STABLE, who))
    return U64.decode(raw) if raw else 0


def wait_settled(c: Client, trade_id: int, timeout: float = 60) -> int:
    """The trade's settlement status once settlement has recorded one (after its window closed)."""
    key = settlement.status.key_of(trade_id)
    deadline = time.monotonic() + timeout
    while c.get_storage(key) is None:
        assert time.monotonic() < deadline, f"trade {trade_id} not settled"
        time.sleep(0.2)
    return U8.decode(c.get_storage(key))


def test_households_trade_and_settle_against_metered_delivery(tmp_path):
    seller, buyer = seed("seller"), seed("buyer")
    seller_meter, buyer_meter = seed("seller-meter"), seed("buyer-meter")
    with DevNode(tmp_path / "base", block_time_ms=200, extra_args=["--time-warp", "600"]) as node, \
            Client(node.url) as c:
        node.wait_for_block(2)
        # set-up, each by the role that may do it
        for who in (seller, buyer):
            do(c, ALICE, "balances", "transfer", [who.public_key, 10**10])           # native, for fees
        do(c, ALICE, "identity", "license", [seller.public_key, int(identity.Role.PROSUMER), b"\x01" * 32])
        do(c, ALICE, "identity", "license", [buyer.public_key, int(identity.Role.CONSUMER), b"\x02" * 32])
        do(c, DAVE, "metering", "certify_meter", [seller_meter.public_key, seller.public_key, 1, 2, 10_000])
        do(c, DAVE, "metering", "certify_meter", [buyer_meter.public_key, buyer.public_key, 1, 0, 10_000])
        do(c, EVE, "balances", "mint", [STABLE, buyer.public_key, 5_000_000])

        # the meters' baselines: the last interval that has ended
        base_interval = grid.interval_start(chain_now_s(c)) - I
        report(c, seller_meter, 1, base_interval, 0, 0)
        report(c, buyer_meter, 1, base_interval, 0, 0)

        # one sells 1 kWh of surplus to the other for an interval well before its gate closes
        t = grid.interval_start(chain_now_s(c)) + 6 * I      # gate closes ~7 real seconds from now
        do(c, seller, "market", "place_ask", [1, t, 100_000, 1_000, seller_meter.public_key])
        do(c, buyer, "market", "place_bid", [1, t, 200_000, 1_000, buyer_meter.public_key, True])
        trades = node.rpc("energy_trades", [buyer.address()])
        assert len(trades) == 1 and trades[0]["wh"] == 1_000
        trade = trades[0]
        buyer_after_trade = stable(c, buyer.public_key)
        assert buyer_after_trade == 5_000_000 - trade["amount"] - trade["feeAmount"]

        # delivery: after the interval the meters report what flowed
        wait_chain_time(c, t + I)
        report(c, seller_meter, 2, t, 0, 1_500)
        report(c, buyer_meter, 2, t, 1_200, 0)

        # settlement, once the window for late readings has closed
        assert wait_settled(c, trade["tradeId"]) == settlement.SETTLED
        dave_before = 10_000 * 10**6          # Dave's genesis stablecoin (a dev household too)
        assert stable(c, seller.public_key) == trade["amount"]
        assert stable(c, DAVE.public_key) == dave_before + trade["feeAmount"]
        assert stable(c, buyer.public_key) == buyer_after_trade            # full delivery: no refund
        retired = c.get_storage(certificates.retired.key_of(certificates.token_id(1, t), buyer.public_key))
        assert retired is not None and U64.decode(retired) == 1_000

        # the settlement query and the regulator's CSV report tell the same story
        record = node.rpc("energy_settlement", [trade["tradeId"]])
        assert record["status"] == "settled"
        assert record["outcome"] == {"deliveredWh": 1_000, "paidSeller": trade["amount"],
                                     "feeToDso": trade["feeAmount"], "refundBuyer": 0, "penalty": 0,
                                     "atFault": None, "certificatesRetiredWh": 1_000}
        out = tmp_path / "report.csv"
        r = run_gridchain("report", "trades", "--from", str(t), "--to", str(t), "--rpc", node.url, "--output", str(out))
        assert r.returncode == 0, r.stderr
        rows = list(csv.DictReader(out.open()))
        assert len(rows) == 1
        row = rows[0]
        assert (row["seller"], row["buyer"], row["status"]) == (seller.address(), buyer.address(), "settled")
        assert (int(row["wh"]), int(row["feeToDso"]), int(row["penalty"])) == (1_000, trade["feeAmount"], 0)
