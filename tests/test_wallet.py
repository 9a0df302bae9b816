"""The household wallet against a real dev node in a child process, through JSON-RPC only: accounts
imported from the dev chain, balances, a stablecoin transfer, orders, standing orders, a trade
between two households in the history, a dispute, certificates from metered export, and the CLI's
one-line errors. Chain time runs 600x faster (`--time-warp`), so delivery intervals pass in seconds.

The CLI runs in-process (click's CliRunner) for the flows and as the real `gridchain` command for
the end-to-end and error cases. Accounts use the cheapest argon2 setting, so tests stay fast.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, os.path.dirname(__file__))
from node_process import DevNode, free_port, run_gridchain

from genesis.chain_spec import dev_meter_uri
from primitives.codec import unpack
from primitives.extrinsic import Extrinsic
from primitives.hashing import keccak256
from primitives.keys import Keypair, dev_keypair
from primitives.meter_reading import Reading, sign_reading
from rpc.client import Client, call_from_metadata
from wallet import units
from wallet.cli import wallet
from wallet.keystore import KdfParams, Keystore

PASSWORD = "a household's password"
I = 900                                   # the dev chain's delivery interval, s
GATE_S = 300                              # its gate closure before an interval, s
BOB, CHARLIE, DAVE, FERDIE = (dev_keypair(n) for n in ("Bob", "Charlie", "Dave", "Ferdie"))
GEUR = 10**6
NOW_KEY = "0x" + (keccak256(b"timestamp")[:16] + keccak256(b"now")[:16]).hex()


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with DevNode(tmp_path_factory.mktemp("wallet") / "base", block_time_ms=200,
                 extra_args=["--time-warp", "600"]) as n:
        n.wait_for_block(1)
        yield n


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Path:
    """A keystore holding the dev households, and one account with no funds at all."""
    store = Keystore(tmp_path_factory.mktemp("keystore") / "wallet")
    for name, kp in (("bob", BOB), ("charlie", CHARLIE), ("dave", DAVE), ("ferdie", FERDIE)):
        store.add(name, kp.seed, PASSWORD, KdfParams.minimal())
    store.add("pauper", Keypair.from_uri("//wallet-test//pauper").seed, PASSWORD, KdfParams.minimal())
    return store.directory


def cli(node: DevNode, keys: Path, *args: str) -> dict | list:
    """Run `gridchain wallet ARGS --json` in-process; it must succeed; returns the JSON it printed."""
    r = CliRunner().invoke(wallet, [*args, "--rpc", node.url, "--keystore", str(keys), "--json"],
                           env={"GRIDCHAIN_WALLET_PASSWORD": PASSWORD}, prog_name="gridchain wallet")
    assert r.exit_code == 0, f"wallet {' '.join(args)} exited {r.exit_code}: {r.stderr or r.output}"
    return json.loads(r.stdout)


def cli_error(node: DevNode, keys: Path, *args: str) -> str:
    """Run a failing wallet command in-process; returns its one stderr line."""
    r = CliRunner().invoke(wallet, [*args, "--rpc", node.url, "--keystore", str(keys)],
                           env={"GRIDCHAIN_WALLET_PASSWORD": PASSWORD}, prog_name="gridchain wallet")
    assert r.exit_code == 1, f"expected a failure, got {r.exit_code}: {r.output}"
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def chain_now_s(node: DevNode) -> int:
    return unpack(bytes.fromhex(node.rpc("state_getStorage", [NOW_KEY])[2:])) // 1000


def wait_chain_time(node: DevNode, t_s: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while chain_now_s(node) < t_s:
        assert time.monotonic() < deadline, f"chain time did not reach {t_s}"
        time.sleep(0.1)


def open_interval(node: DevNode, margin_s: int = 1800) -> int:
    """The first delivery interval whose gate is still open `margin_s` of chain time from now."""
    now = chain_now_s(node)
    return (now + margin_s + GATE_S) // I * I + I


# ---------------------------------------------------------------------------------------------
# units (pure)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,decimals,expect", [
    ("12.5", 6, 12_500_000), ("12.5GEUR", 6, 12_500_000), ("0.000001 geur", 6, 1), ("3", 9, 3 * 10**9),
    ("1_000.25", 6, 1_000_250_000), (".5", 6, 500_000), ("7.", 0, 7),
])
def test_amounts_parse_exactly(text, decimals, expect):
    assert units.parse_amount(text, decimals, "GEUR") == expect


@pytest.mark.parametrize("text", ["-1", "1.2.3", "0.0000001", "12 GRID", "", "1e6", "twelve"])
def test_bad_amounts_are_refused(text):
    with pytest.raises(units.UnitError):
        units.parse_amount(text, 6, "GEUR")


@pytest.mark.parametrize("text,wh", [("500", 500), ("500Wh", 500), ("1.2kWh", 1_200), ("0.25 MWh", 250_000),
                                     ("2kwh", 2_000)])
def test_energy_parses_to_whole_wh(text, wh):
    assert units.parse_energy(text) == wh


@pytest.mark.parametrize("text", ["1.5Wh", "0.0001kWh", "5 GW", "-3kWh", "kWh"])
def test_bad_energy_is_refused(text):
    with pytest.raises(units.UnitError):
        units.parse_energy(text)


def test_prices_intervals_and_formatting():
    assert units.parse_price("0.12", 6, "GEUR") == units.parse_price("0.12 GEUR/kWh", 6, "GEUR") == 120_000
    with pytest.raises(units.UnitError):
        units.parse_price("0.12 GRID/kWh", 6, "GEUR")
    assert units.parse_interval("+2", 1_000, 900) == 2_700
    assert units.parse_interval("1800", 0, 900) == 1_800
    assert units.parse_interval("1970-01-01T00:30Z", 0, 900) == 1_800
    assert units.parse_interval("1970-01-01T01:30+01:00", 0, 900) == 1_800
    for bad in ("1801", "1970-01-01T00:30", "tomorrow"):
        with pytest.raises(units.UnitError):
            units.parse_interval(bad, 0, 900)
    assert units.format_amount(12_500_000, 6, "GEUR") == "12.5 GEUR"
    assert units.format_amount(10**15, 9, "GRID") == "1,000,000 GRID"
    assert units.format_energy(1_200) == "1.2 kWh" and units.format_energy(999) == "999 Wh"
    assert units.format_time(1_800) == "1970-01-01T00:30:00Z"


# ---------------------------------------------------------------------------------------------
# against the node
# ---------------------------------------------------------------------------------------------

def test_import_of_a_dev_account_gives_its_well_known_address(node, keys):
    out = cli(node, keys, "import", "bob2", "--uri", "//Bob", "--kdf", "minimal")
    assert out["address"] == BOB.address() and out["publicKey"] == "0x" + BOB.public_key.hex()
    listed = {a["name"]: a["address"] for a in cli(node, keys, "list")}
    assert listed["bob2"] == BOB.address() and listed["ferdie"] == FERDIE.address()
    assert cli(node, keys, "show", "bob2")["address"] == BOB.address()
    assert "already exists" in cli_error(node, keys, "import", "bob2", "--uri", "//Charlie", "--kdf", "minimal")


def test_balances_and_a_stablecoin_transfer(node, keys):
    bob_before = cli(node, keys, "balance", "bob")
    dave_before = cli(node, keys, "balance", DAVE.address())          # an address works as well as a name
    assert bob_before["native"]["symbol"] == "GRID" and bob_before["native"]["decimals"] == 9
    assert bob_before["stablecoin"]["symbol"] == "GEUR" and bob_before["stablecoin"]["decimals"] == 6
    assert bob_before["native"]["free"] > 0 and bob_before["stablecoin"]["balance"] >= 13 * GEUR

    r = cli(node, keys, "transfer", "bob", "dave", "12.5", "--asset", "geur")
    assert r["success"] is True and r["status"] == "finalized" and r["amount"] == 12_500_000
    assert {"pallet": "balances", "event": "AssetTransferred",
            "fields": {"asset": 1, "source": "0x" + BOB.public_key.hex(), "dest": "0x" + DAVE.public_key.hex(),
                       "amount": 12_500_000}} in r["events"]

    bob_after, dave_after = cli(node, keys, "balance", "bob"), cli(node, keys, "balance", "dave")
    assert bob_after["stablecoin"]["balance"] == bob_before["stablecoin"]["balance"] - 12_500_000
    assert dave_after["stablecoin"]["balance"] == dave_before["stablecoin"]["balance"] + 12_500_000
    assert bob_after["native"]["free"] < bob_before["native"]["free"]                # the fee, in GRID
    assert bob_after["native"]["nonce"] == bob_before["native"]["nonce"] + 1


def test_an_order_is_listed_until_it_is_cancelled(node, keys):
    placed = cli(node, keys, "order", "place", "bob", "--side", "ask", "--interval", "+8", "--price", "9",
                 "--quantity", "1.5kWh")
    assert placed["success"] is True and placed["trades"] == [] and placed["restingWh"] == 1_500
    assert placed["zone"] == 1 and placed["meter"] == "0x" + Keypair.from_uri(dev_meter_uri("Bob")).public_key.hex()
    oid = placed["orderId"]
    mine = {o["orderId"]: o for o in cli(node, keys, "order", "list", "bob")}
    assert (mine[oid]["side"], mine[oid]["pricePerKwh"], mine[oid]["remainingWh"]) == ("ask", 9 * GEUR, 1_500)
    assert mine[oid]["intervalStart"] == placed["intervalStart"]

    cancelled = cli(node, keys, "order", "cancel", "bob", str(oid))
    assert cancelled["success"] is True and cancelled["orderId"] == oid
    assert oid not in {o["orderId"] for o in cli(node, keys, "order", "list", "bob")}
    assert "no open order" in cli_error(node, keys, "order", "cancel", "bob", str(oid))


def test_a_standing_order_is_set_listed_and_cancelled(node, keys):
    made = cli(node, keys, "standing", "set", "ferdie", "--side", "ask", "--price", "9.5", "--quantity", "200Wh")
    sid = made["standingId"]
    assert made["success"] is True and made["zone"] == 2            # the zone of Ferdie's one meter
    listed = {s["standingId"]: s for s in cli(node, keys, "standing", "list", "ferdie")}
    assert (listed[sid]["side"], listed[sid]["zone"], listed[sid]["quantityWh"], listed[sid]["pricePerKwh"]) == \
        ("ask", 2, 200, 9_500_000)

    assert cli(node, keys, "standing", "cancel", "ferdie", str(sid))["success"] is True
    assert sid not in {s["standingId"] for s in cli(node, keys, "standing", "list", "ferdie")}
    assert f"no standing order {sid}" in cli_error(node, keys, "standing", "cancel", "ferdie", str(sid))


def test_crossing_orders_trade_and_the_trade_can_be_disputed(node, keys):
    t = open_interval(node)
    ask = cli(node, keys, "order", "place", "bob", "--side", "ask", "--interval", str(t), "--price", "0.1",
              "--quantity", "1kWh")
    bid = cli(node, keys, "order", "place", "charlie", "--side", "bid", "--interval", units.format_time(t),
              "--price", "0.2", "--quantity", "400Wh", "--green")
    assert ask["trades"] == [] and len(bid["trades"]) == 1 and bid["restingWh"] == 0
    trade = bid["trades"][0]
    assert (trade["wh"], trade["pricePerKwh"], trade["counterparty"]) == (400, 100_000, BOB.address())

    history = {x["tradeId"]: x for x in cli(node, keys, "trades", "charlie")}
    mine = history[trade["tradeId"]]
    assert (mine["role"], mine["seller"], mine["wh"], mine["status"]) == ("buyer", BOB.address(), 400, "matched")
    assert cli(node, keys, "trades", "bob", "--from", str(t), "--to", str(t))[-1]["role"] == "seller"
    assert cli(node, keys, "trades", "bob", "--from", str(t + I)) == []

    # too early: the wallet says so before paying a fee
    assert "once its delivery interval has ended" in cli_error(node, keys, "dispute", "open", "charlie",
                                                              str(trade["tradeId"]), "--reason", "x")
    wait_chain_time(node, t + I)
    reason = "my meter recorded no import in that interval"
    opened = cli(node, keys, "dispute", "open", "charlie", str(trade["tradeId"]), "--reason", reason)
    assert opened["success"] is True and opened["reasonHash"] == "0x" + keccak256(reason.encode()).hex()
    shown = cli(node, keys, "dispute", "show", str(trade["tradeId"]))
    assert shown["status"] == "disputed" and shown["dispute"]["by"] == CHARLIE.address()
    assert shown["dispute"]["reasonHash"] == opened["reasonHash"] and shown["trade"]["wh"] == 400
    assert shown["disputeWindow"] == {"opens": t + I, "closes": t + 5 * I}
    assert "already disputed" in cli_error(node, keys, "dispute", "open", "bob", str(trade["tradeId"]),
                                           "--reason", "me too")


def test_certificates_from_metered_export_show_in_the_balance(node, keys):
    meter = Keypair.from_uri(dev_meter_uri("Ferdie"))
    with Client(node.url) as c:
        md, genesis = c.metadata(), c.genesis_hash()

        def report(seq: int, interval: int, export_wh: int) -> None:
            signed = sign_reading(meter, Reading(meter.public_key, seq, interval, 0, export_wh), genesis)
            xt = Extrinsic(call_from_metadata(md, "metering", "submit_reading", [signed.to_plain()])).encode()
            assert c.submit_and_watch(xt, until="inBlock").success is True

        base = chain_now_s(node) // I * I - I                     # the last interval that has ended
        report(1, base, 0)                                        # the meter's baseline
        wait_chain_time(node, base + 2 * I)
        report(2, base + I, 700)                                  # 700 Wh exported in the next interval
    certs = cli(node, keys, "balance", "ferdie")["certificates"]
    assert certs["complete"] is True and certs["heldWh"] == 700 and certs["retiredWh"] == 0
    assert certs["held"] == [{"zone": 2, "intervalStart": base + I, "wh": 700}]
    assert certs["zones"] == [{"zone": 2, "heldWh": 700, "retiredWh": 0, "intervals": 1}]
    assert cli(node, keys, "balance", "charlie")["certificates"]["heldWh"] == 0


# ---------------------------------------------------------------------------------------------
# the real `gridchain wallet` command
# ---------------------------------------------------------------------------------------------

def test_gridchain_wallet_end_to_end_with_group_options_and_a_password_file(node, keys, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    r = run_gridchain("wallet", "--json", "--rpc", node.url, "--keystore", str(keys), "--password-file", str(pw),
                      "transfer", "bob", CHARLIE.address(), "0.5", "--asset", "GEUR", "--wait", "inBlock",
                      env={k: v for k, v in os.environ.items() if k != "GRIDCHAIN_WALLET_PASSWORD"})
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["success"] is True and out["status"] in ("inBlock", "finalized") and out["amount"] == 500_000
    text = run_gridchain("wallet", "balance", "charlie", "--rpc", node.url, "--keystore", str(keys))
    assert text.returncode == 0 and "GEUR" in text.stdout and CHARLIE.address() in text.stdout


@pytest.mark.parametrize("case", ["wrong-password", "unreachable", "bad-amount", "unknown-account", "rejected",
                                  "failed-in-block", "bad-side"])
def test_every_bad_input_is_one_line_on_stderr_and_a_nonzero_exit(node, keys, case):
    env = {**os.environ, "GRIDCHAIN_WALLET_PASSWORD": PASSWORD}
    common = ["--keystore", str(keys), "--rpc", node.url]
    args, expect = {
        "wrong-password": (["transfer", "bob", "dave", "1"], "wrong password or corrupt keystore"),
        "unreachable": (["balance", "bob", "--rpc", f"http://127.0.0.1:{free_port()}"], "cannot reach the node"),
        "bad-amount": (["transfer", "bob", "dave", "1.2.3", "--asset", "geur"], "not an amount"),
        "unknown-account": (["transfer", "ghost", "dave", "1"], "no account named 'ghost'"),
        "rejected": (["transfer", "pauper", "dave", "1"], "the node rejected the transaction"),
        "failed-in-block": (["transfer", "dave", "bob", "1000000", "--asset", "geur"],
                            "the account's free balance is lower than the amount"),
        "bad-side": (["order", "place", "bob", "--side", "sideways", "--interval", "+4", "--price", "1",
                      "--quantity", "1kWh"], "sideways"),
    }[case]
    if case == "wrong-password":
        env["GRIDCHAIN_WALLET_PASSWORD"] = "not the password"
    r = run_gridchain("wallet", *common, *args, env=env)
    assert r.returncode != 0, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("Error: ") and expect in lines[0], lines[0]
    assert "Traceback" not in r.stderr + r.stdout
