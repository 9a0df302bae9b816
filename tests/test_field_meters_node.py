"""Field meters end to end on a real dev node, through JSON-RPC only: the DSO certifies an OCMF meter
(P-256), an SML/EDL40 meter and a DLMS meter (suite 1); each submits its own signed records every
interval, byte for byte; the OCMF household sells its surplus to the other two, and the trades settle
against the energy those records metered, as they do for gridchain's own ed25519 meters.

Chain time runs 600x faster (`--time-warp`), so intervals and the settlement window pass in seconds.
"""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from node_process import DevNode  # noqa: E402

from meters.field_meters import DlmsTestMeter, OcmfTestMeter, SmlTestMeter  # noqa: E402
from pallets import field_meters, grid, identity, settlement  # noqa: E402
from primitives.extrinsic import Call, Extrinsic  # noqa: E402
from primitives.keys import Keypair  # noqa: E402
from rpc.client import Client, RpcError  # noqa: E402
from tests.test_energy_flow import (ALICE, DAVE, EVE, STABLE, chain_now_s, do, stable,  # noqa: E402
                                    wait_chain_time, wait_settled)

pytestmark = pytest.mark.slow   # a real node process

I = grid.Config.interval_s


def submit_record(c: Client, meter_id: bytes, record: bytes) -> None:
    xt = Extrinsic(Call(field_meters.pallet.index, field_meters.submit_record.call_def.index, (meter_id, record)))
    r = c.submit_and_watch(xt.encode(), until="inBlock")
    assert r.success is True, r.error


def certify(c: Client, meter, owner: Keypair, *, import_obis: str, export_obis: str, kind: int) -> bytes:
    scheme = {"ocmf": 1, "sml-edl40": 2, "dlms-general-signing": 3}[meter.scheme]
    do(c, DAVE, "field_meters", "certify", [scheme, meter.public_key_der(), "", meter.meter_id, import_obis,
                                            export_obis, owner.public_key, 1, kind, 10_000])
    return field_meters.field_meter_id(scheme, meter.public_key_sec1())


def test_ocmf_sml_and_dlms_meters_report_and_their_trades_settle(tmp_path):
    seller, sml_buyer, dlms_buyer = (Keypair.from_uri(f"//fieldflow//{n}") for n in ("seller", "sml", "dlms"))
    ocmf_meter = OcmfTestMeter("secp256r1", uri="//fieldflow//ocmf")
    sml_meter = SmlTestMeter(uri="//fieldflow//sml")
    dlms_meter = DlmsTestMeter(suite=1, uri="//fieldflow//dlms")
    with DevNode(tmp_path / "base", block_time_ms=200, extra_args=["--time-warp", "600"]) as node, \
            Client(node.url) as c:
        node.wait_for_block(2)
        for who, role in ((seller, identity.Role.PROSUMER), (sml_buyer, identity.Role.CONSUMER),
                          (dlms_buyer, identity.Role.CONSUMER)):
            do(c, ALICE, "balances", "transfer", [who.public_key, 10**10])
            do(c, ALICE, "identity", "license", [who.public_key, int(role), who.public_key])
        for buyer in (sml_buyer, dlms_buyer):
            do(c, EVE, "balances", "mint", [STABLE, buyer.public_key, 5_000_000])
        ocmf_id = certify(c, ocmf_meter, seller, import_obis="1-0:1.8.0", export_obis="1-0:2.8.0", kind=2)
        sml_id = certify(c, sml_meter, sml_buyer, import_obis="1-0:1.17.0", export_obis="", kind=0)
        dlms_id = certify(c, dlms_meter, dlms_buyer, import_obis="1-0:1.8.0", export_obis="1-0:2.8.0", kind=2)
        meter = node.rpc("energy_meter", ["0x" + ocmf_id.hex()])
        assert (meter["scheme"], meter["curve"], meter["deviceId"]) == ("ocmf", "secp256r1", ocmf_meter.meter_id)

        # baselines: each meter's record for the last interval that has ended
        base = grid.interval_start(chain_now_s(c)) - I
        submit_record(c, ocmf_id, ocmf_meter.record(base + I, 50_000, 20_000))
        submit_record(c, sml_id, sml_meter.record(base + I, 30_000))
        submit_record(c, dlms_id, dlms_meter.record(base + I, 40_000, 0))

        # the seller's surplus goes to both neighbours, 1 kWh each
        t = grid.interval_start(chain_now_s(c)) + 6 * I
        do(c, seller, "market", "place_ask", [1, t, 100_000, 2_000, ocmf_id])
        for buyer, meter_id in ((sml_buyer, sml_id), (dlms_buyer, dlms_id)):
            do(c, buyer, "market", "place_bid", [1, t, 200_000, 1_000, meter_id, False])
        trades = {tr["buyer"]: tr for b in (sml_buyer, dlms_buyer) for tr in node.rpc("energy_trades", [b.address()])}
        assert sorted(tr["wh"] for tr in trades.values()) == [1_000, 1_000]
        before = {b.address(): stable(c, b.public_key) for b in (sml_buyer, dlms_buyer)}

        # every interval up to the traded one and the one after: each meter reports, the registers
        # moving in the traded interval by what flowed (the seller exported 2.5 kWh)
        k = (t - base) // I
        for n in range(1, k + 1):
            wait_chain_time(c, base + (n + 1) * I)
            exported = 2_500 if n == k else 0
            imported = 1_000 if n == k else 0
            submit_record(c, ocmf_id, ocmf_meter.record(base + (n + 1) * I, 50_000, 20_000 + exported))
            submit_record(c, sml_id, sml_meter.record(base + (n + 1) * I, 30_000 + imported))
            submit_record(c, dlms_id, dlms_meter.record(base + (n + 1) * I, 40_000 + imported, 0))
        intervals = node.rpc("energy_meterIntervals", ["0x" + ocmf_id.hex(), t - I, t])
        assert [(x["status"], x.get("exportWh")) for x in intervals] == [("read", 0), ("read", 2_500)]
        assert node.rpc("energy_meter", ["0x" + ocmf_id.hex()])["lastReading"]["exportRegisterWh"] == 22_500

        # a record tampered with on the way is refused over RPC and changes nothing
        bad = dlms_meter.record(base + (k + 2) * I, 40_000 + 1_000 + 9, 0)
        bad = bad[:-70] + bytes([bad[-70] ^ 1]) + bad[-69:]
        xt = Extrinsic(Call(field_meters.pallet.index, field_meters.submit_record.call_def.index, (dlms_id, bad)))
        with pytest.raises(RpcError) as refused:
            c.request("author_submitExtrinsic", ["0x" + xt.encode().hex()])
        assert refused.value.code == 1010

        # settlement against the metered delivery, once the window for late records has closed
        for tr in trades.values():
            assert wait_settled(c, tr["tradeId"], timeout=90) == settlement.SETTLED
            record = node.rpc("energy_settlement", [tr["tradeId"]])
            assert record["outcome"]["deliveredWh"] == 1_000 and record["outcome"]["refundBuyer"] == 0
            buyer = sml_buyer if tr["buyer"] == sml_buyer.address() else dlms_buyer
            assert stable(c, buyer.public_key) == before[tr["buyer"]]        # full delivery: no refund
        assert stable(c, seller.public_key) == sum(tr["amount"] for tr in trades.values())
