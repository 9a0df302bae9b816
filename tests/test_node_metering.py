"""A dev household's smart meter reports to a real dev node over JSON-RPC, as firmware would.

The meter holds only its key: it builds a reading, signs it with the chain's genesis hash, wraps it
in an unsigned extrinsic and submits it. The node's pool validates it through the metering pallet;
bad readings get error 1010 with the pallet's reason and change nothing.
"""
from __future__ import annotations

import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from node_process import DevNode, NodeRpcError  # noqa: E402

from genesis.chain_spec import dev_meter_uri  # noqa: E402
from pallets import grid, metering  # noqa: E402
from primitives.extrinsic import Call, Extrinsic  # noqa: E402
from primitives.keys import Keypair  # noqa: E402
from primitives.meter_reading import Reading, sign_reading  # noqa: E402


def reading_xt(meter: Keypair, genesis: bytes, seq: int, interval: int, import_wh: int, export_wh: int) -> str:
    signed = sign_reading(meter, Reading(meter.public_key, seq, interval, import_wh, export_wh), genesis)
    xt = Extrinsic(Call(metering.pallet.index, metering.submit_reading.call_def.index, (signed.to_plain(),)))
    return "0x" + xt.encode().hex()


def interval_energy(node: DevNode, meter: bytes, interval: int):
    raw = node.rpc("state_getStorage", ["0x" + metering.interval_energy.key_of(meter, interval).hex()])
    return None if raw is None else metering.IntervalEnergy.decode(bytes.fromhex(raw[2:]))


def submit_error(node: DevNode, xt_hex: str) -> dict:
    with pytest.raises(NodeRpcError) as e:
        node.rpc("author_submitExtrinsic", [xt_hex])
    return e.value.error


def test_meter_reports_over_rpc_and_bad_readings_are_refused(tmp_path):
    meter = Keypair.from_uri(dev_meter_uri("Bob"))
    with DevNode(tmp_path / "base", block_time_ms=200) as node:
        node.wait_for_block(2)
        genesis = bytes.fromhex(node.rpc("chain_getBlockHash", [0])[2:])
        # three intervals that have ended by the node's own clock: t0 (baseline), t1, and `last`
        # (the latest, left for the bad readings)
        now = int(time.time())
        last = grid.interval_start(now) - grid.Config.interval_s
        t1 = last - grid.Config.interval_s
        t0 = t1 - grid.Config.interval_s

        node.rpc("author_submitExtrinsic", [reading_xt(meter, genesis, 1, t0, 10_000, 5_000)])   # baseline
        node.wait_for_block(node.best_number() + 2)
        node.rpc("author_submitExtrinsic", [reading_xt(meter, genesis, 2, t1, 10_300, 6_200)])
        node.wait_for_block(node.best_number() + 2)
        e = interval_energy(node, meter.public_key, t1)
        assert e is not None and (e.import_wh, e.export_wh, e.plausible) == (300, 1_200, True)

        forged = Keypair.from_uri("//NotAMeter")
        bad = {   # what -> (extrinsic, the kind of refusal expected in the error's data)
            "replayed sequence": (reading_xt(meter, genesis, 2, last, 10_400, 6_300), "Stale"),
            "other chain": (reading_xt(meter, b"\x01" * 32, 3, last, 10_400, 6_300), "BadProof"),
            "interval not ended": (reading_xt(meter, genesis, 3, grid.interval_start(now) + 10 * 900, 10_400, 6_300),
                                   "Future"),
            "register decreased": (reading_xt(meter, genesis, 3, last, 10_200, 6_300), "Custom"),
            "register beyond any real meter": (reading_xt(meter, genesis, 3, last, 2**64 - 1, 6_300), "Custom"),
        }
        signed_by_other = sign_reading(forged, Reading(forged.public_key, 1, t1, 1, 1), genesis)
        bad["unknown meter"] = ("0x" + Extrinsic(Call(metering.pallet.index, metering.submit_reading.call_def.index,
                                                      (signed_by_other.to_plain(),))).encode().hex(), "Custom")
        errors = {}
        for what, (xt, kind) in bad.items():
            err = errors[what] = submit_error(node, xt)
            assert err["code"] == 1010 and err["data"].startswith(kind + ":"), (what, err)
        beyond = errors["register beyond any real meter"]["data"]
        assert beyond == "Custom: " + metering.Error.RegisterOutOfRange.message
        node.wait_for_block(node.best_number() + 2)
        # nothing the bad readings said reached the chain
        assert interval_energy(node, meter.public_key, last) is None
        assert node.rpc("system_health")["isSyncing"] is False
