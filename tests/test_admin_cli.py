"""The operators' commands (`gridchain admin ...`, `gridchain events`) against a real dev node in a
child process, through the encrypted keystore and JSON-RPC only. On the dev chain Alice is the
registrar, Eve the stablecoin issuer, Bob and Charlie households (genesis/chain_spec.py).

The flows run the CLI in-process (click's CliRunner); the bad inputs and `events --follow` run the
real `gridchain` command, as an operator would. Chain time runs 600x faster (`--time-warp`) so a
trade's delivery interval passes in seconds and it can be disputed.
"""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, os.path.dirname(__file__))
from node_process import DevNode, free_port, gridchain_cmd, run_gridchain

from primitives.codec import unpack
from primitives.hashing import keccak256
from primitives.keys import Keypair, dev_keypair
from wallet.cli import wallet
from wallet.cli_admin import admin
from wallet.keystore import KdfParams, Keystore

pytestmark = pytest.mark.slow

PASSWORD = "an operator's password"
I = 900                                   # the dev chain's delivery interval, s
GATE_S = 300                              # its gate closure before an interval, s
ALICE, BOB, CHARLIE, EVE = (dev_keypair(n) for n in ("Alice", "Bob", "Charlie", "Eve"))
NEWCOMERS = {name: Keypair.from_uri(f"//admin-test//{name}") for name in ("newbie", "follower", "stranger", "lapsed")}
GEUR = 10**6
NOW_KEY = "0x" + (keccak256(b"timestamp")[:16] + keccak256(b"now")[:16]).hex()


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with DevNode(tmp_path_factory.mktemp("admin") / "base", block_time_ms=200,
                 extra_args=["--time-warp", "600"]) as n:
        n.wait_for_block(1)
        yield n


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Path:
    """A keystore with the dev chain's registrar, issuer and households, and unlicensed newcomers."""
    store = Keystore(tmp_path_factory.mktemp("keystore") / "wallet")
    for name, kp in (("alice", ALICE), ("bob", BOB), ("charlie", CHARLIE), ("eve", EVE), *NEWCOMERS.items()):
        store.add(name, kp.seed, PASSWORD, KdfParams.minimal())
    return store.directory


def _invoke(group, node: DevNode, keys: Path, args: tuple[str, ...]):
    return CliRunner().invoke(group, [*args, "--rpc", node.url, "--keystore", str(keys), "--json"],
                              env={"GRIDCHAIN_WALLET_PASSWORD": PASSWORD})


def cli(node: DevNode, keys: Path, *args: str, group=admin) -> dict | list:
    """Run `gridchain admin ARGS --json` in-process; it must succeed; returns the JSON it printed."""
    r = _invoke(group, node, keys, args)
    assert r.exit_code == 0, f"{' '.join(args)} exited {r.exit_code}: {r.stderr or r.output}"
    return json.loads(r.stdout)


def participant(node: DevNode, keys: Path, who: Keypair) -> dict | None:
    return next((p for p in cli(node, keys, "registrar", "participants") if p["account"] == who.address()), None)


def supply(node: DevNode, keys: Path) -> int:
    return cli(node, keys, "issuer", "supply")["supply"]


def geur(node: DevNode, keys: Path, who: str) -> int:
    return cli(node, keys, "balance", who, "--no-certificates", group=wallet)["stablecoin"]["balance"]


def block_number(node: DevNode, block_hash: str) -> int:
    return int(node.rpc("chain_getHeader", [block_hash])["number"], 16)


def events_json(node: DevNode, keys: Path, *args: str) -> list[dict]:
    """`gridchain events ARGS --json` in-process: one JSON object per line."""
    from wallet.cli_admin import events
    r = _invoke(events, node, keys, args)
    assert r.exit_code == 0, r.stderr or r.output
    return [json.loads(line) for line in r.stdout.splitlines()]


def chain_now_s(node: DevNode) -> int:
    return unpack(bytes.fromhex(node.rpc("state_getStorage", [NOW_KEY])[2:])) // 1000


def wait_chain_time(node: DevNode, t_s: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while chain_now_s(node) < t_s:
        assert time.monotonic() < deadline, f"chain time did not reach {t_s}"
        time.sleep(0.1)


# ---------------------------------------------------------------------------------------------
# the registrar
# ---------------------------------------------------------------------------------------------

def test_the_registrar_licenses_suspends_reinstates_and_revokes(node, keys, tmp_path):
    newbie = NEWCOMERS["newbie"]
    doc = tmp_path / "licence.pdf"
    doc.write_bytes(b"licence of the newbie household, signed")
    assert participant(node, keys, newbie) is None

    licensed = cli(node, keys, "registrar", "license", "newbie", "--roles", "prosumer,consumer",
                   "--document", str(doc), "--as", "alice")
    assert licensed["success"] is True and licensed["roles"] == ["prosumer", "consumer"]
    p = participant(node, keys, newbie)
    assert (p["roles"], p["status"], p["registrar"]) == (["prosumer", "consumer"], "active", ALICE.address())
    assert p["documentHash"] == "0x" + keccak256(doc.read_bytes()).hex()

    assert cli(node, keys, "registrar", "suspend", newbie.address(), "--reason", "tampered meter seal",
               "--as", "alice")["success"] is True
    assert participant(node, keys, newbie)["status"] == "suspended"
    suspended = cli(node, keys, "registrar", "participants", "--status", "suspended")
    assert newbie.address() in {x["account"] for x in suspended}
    assert {x["status"] for x in suspended} == {"suspended"}

    cli(node, keys, "registrar", "reinstate", "newbie", "--as", "alice")
    assert participant(node, keys, newbie)["status"] == "active"
    cli(node, keys, "registrar", "set-roles", "newbie", "--roles", "consumer", "--as", "alice")
    assert participant(node, keys, newbie)["roles"] == ["consumer"]
    consumers = {x["account"] for x in cli(node, keys, "registrar", "participants", "--role", "consumer")}
    assert {newbie.address(), CHARLIE.address()} <= consumers and BOB.address() not in consumers

    # the participant replaces its own document hash (paying the fee from a little GRID)
    cli(node, keys, "transfer", "alice", "newbie", "1", group=wallet)
    new_doc = "0x" + "ab" * 32
    assert cli(node, keys, "registrar", "set-document", new_doc, "--as", "newbie")["documentHash"] == new_doc
    assert participant(node, keys, newbie)["documentHash"] == new_doc

    revoked = cli(node, keys, "registrar", "revoke", "newbie", "--reason", "left the scheme", "--as", "alice")
    assert revoked["reasonHash"] == "0x" + keccak256(b"left the scheme").hex()
    assert participant(node, keys, newbie)["status"] == "revoked"

    # the audit trail: every step is an identity event naming the newbie, Licensed first
    first = block_number(node, licensed["blockHash"])
    trail = events_json(node, keys, "--from-block", str(first), "--account", "newbie")
    assert [(e["pallet"], e["event"]) for e in trail if e["pallet"] == "identity"] == [
        ("identity", "Licensed"), ("identity", "Suspended"), ("identity", "Reinstated"),
        ("identity", "RolesChanged"), ("identity", "DocumentUpdated"), ("identity", "Revoked")]
    lic = trail[0]
    assert lic["block"] == first and lic["fields"] == {
        "who": newbie.address(), "registrar": ALICE.address(), "roles": 3,
        "document_hash": "0x" + keccak256(doc.read_bytes()).hex()}
    assert all(newbie.address() in json.dumps(e["fields"]) for e in trail)
    only_identity = events_json(node, keys, "--from-block", str(first), "--pallet", "identity")
    assert {e["pallet"] for e in only_identity} == {"identity"} and len(only_identity) >= 6


def test_a_suspended_registrar_key_sends_nothing(node, keys):
    """The role is there, the licence is not active: refused before signing, no nonce used."""
    lapsed = NEWCOMERS["lapsed"]
    cli(node, keys, "registrar", "license", "lapsed", "--roles", "registrar", "--as", "alice")
    cli(node, keys, "registrar", "suspend", "lapsed", "--reason", "audit pending", "--as", "alice")
    nonce = node.rpc("system_accountNextIndex", [lapsed.address()])
    r = run_gridchain("admin", "registrar", "suspend", "bob", "--reason", "x", "--as", "lapsed",
                      "--rpc", node.url, "--keystore", str(keys),
                      env={**os.environ, "GRIDCHAIN_WALLET_PASSWORD": PASSWORD})
    assert r.returncode == 1 and r.stderr.strip() == (
        f"Error: account lapsed ({lapsed.address()}) holds the registrar role, but its licence is suspended; "
        "nothing was sent")
    assert node.rpc("system_accountNextIndex", [lapsed.address()]) == nonce
    assert participant(node, keys, BOB)["status"] == "active"


# ---------------------------------------------------------------------------------------------
# the issuer
# ---------------------------------------------------------------------------------------------

def test_the_issuer_mints_and_burns_and_the_supply_follows_exactly(node, keys):
    before, bob_before = supply(node, keys), geur(node, keys, "bob")
    minted = cli(node, keys, "issuer", "mint", "bob", "250.5", "--as", "eve")
    assert minted["success"] is True and minted["amount"] == 250_500_000
    assert {"pallet": "balances", "event": "Minted",
            "fields": {"asset": 1, "to": "0x" + BOB.public_key.hex(), "amount": 250_500_000}} in minted["events"]
    assert supply(node, keys) == before + 250_500_000
    assert geur(node, keys, "bob") == bob_before + 250_500_000

    cli(node, keys, "issuer", "mint", "eve", "10GEUR", "--as", "eve", "--asset", "geur")
    eve_held = geur(node, keys, "eve")
    burned = cli(node, keys, "issuer", "burn", "4.25", "--as", "eve")
    assert burned["success"] is True and burned["amount"] == 4_250_000
    assert supply(node, keys) == before + 250_500_000 + 10 * GEUR - 4_250_000
    assert geur(node, keys, "eve") == eve_held - 4_250_000


# ---------------------------------------------------------------------------------------------
# arbitration
# ---------------------------------------------------------------------------------------------

def test_a_dispute_is_listed_and_decided_by_the_registrar(node, keys):
    now = chain_now_s(node)
    t = (now + 1800 + GATE_S) // I * I + I                      # an interval whose gate is open
    cli(node, keys, "order", "place", "bob", "--side", "ask", "--interval", str(t), "--price", "0.1",
        "--quantity", "1kWh", group=wallet)
    bid = cli(node, keys, "order", "place", "charlie", "--side", "bid", "--interval", str(t), "--price", "0.2",
              "--quantity", "400Wh", group=wallet)
    trade_id = bid["trades"][0]["tradeId"]
    wait_chain_time(node, t + I)
    cli(node, keys, "dispute", "open", "charlie", str(trade_id), "--reason", "no import recorded", group=wallet)

    listed = {d["tradeId"]: d for d in cli(node, keys, "arbitration", "disputes")}
    assert trade_id in listed
    d = listed[trade_id]
    assert d["status"] == "disputed" and d["dispute"]["by"] == CHARLIE.address()
    assert (d["trade"]["seller"], d["trade"]["buyer"], d["trade"]["wh"]) == (BOB.address(), CHARLIE.address(), 400)

    decided = cli(node, keys, "arbitration", "decide", str(trade_id), "--seller-share", "0.3kWh", "--as", "alice")
    assert decided["success"] is True and decided["sellerShareWh"] == 300
    assert {"pallet": "settlement", "event": "DisputeResolved",
            "fields": {"trade_id": trade_id, "registrar": "0x" + ALICE.public_key.hex(),
                       "seller_share_wh": 300}} in decided["events"]
    assert trade_id not in {x["tradeId"] for x in cli(node, keys, "arbitration", "disputes")}
    shown = cli(node, keys, "dispute", "show", str(trade_id), group=wallet)
    assert shown["status"] == "settled" and shown["outcome"]["deliveredWh"] == 300 and shown["dispute"] is None


# ---------------------------------------------------------------------------------------------
# events --follow
# ---------------------------------------------------------------------------------------------

def test_events_follow_prints_an_event_that_happens_after_it_starts(node, keys):
    follower = NEWCOMERS["follower"]
    env = {**os.environ, "GRIDCHAIN_WALLET_PASSWORD": PASSWORD}
    proc = subprocess.Popen(gridchain_cmd("events", "--follow", "--json", "--rpc", node.url,
                                          "--keystore", str(keys)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True)
    reader.start()
    try:
        first = json.loads(lines.get(timeout=30))      # running: it printed a finalized block's events
        licensed = cli(node, keys, "registrar", "license", "follower", "--roles", "consumer", "--as", "alice")
        at = block_number(node, licensed["blockHash"])
        assert at > first["block"]
        deadline = time.monotonic() + 30
        seen = None
        while seen is None:
            e = json.loads(lines.get(timeout=max(0.1, deadline - time.monotonic())))
            if (e["pallet"], e["event"]) == ("identity", "Licensed") and e["fields"]["who"] == follower.address():
                seen = e
        assert seen["block"] == at and seen["fields"]["registrar"] == ALICE.address()
        assert proc.poll() is None                      # still following
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


# ---------------------------------------------------------------------------------------------
# bad input: one line, a non-zero exit, nothing changed on chain
# ---------------------------------------------------------------------------------------------

BAD_INPUTS = {
    "unknown-account": (["admin", "registrar", "license", "stranger", "--roles", "consumer", "--as", "ghost"],
                        "no account named 'ghost'"),
    "wrong-password": (["admin", "registrar", "license", "stranger", "--roles", "consumer", "--as", "alice"],
                       "wrong password or corrupt keystore"),
    "wrong-role-registrar": (["admin", "registrar", "license", "stranger", "--roles", "consumer", "--as", "bob"],
                             f"account bob ({BOB.address()}) does not hold the registrar role (it holds: prosumer); "
                             "nothing was sent"),
    "wrong-role-issuer": (["admin", "issuer", "mint", "bob", "1", "--as", "alice"],
                          "does not hold the issuer role (it holds: registrar, validator_operator)"),
    "no-licence": (["admin", "arbitration", "decide", "0", "--seller-share", "1kWh", "--as", "stranger"],
                   "holds no licence, so not the registrar role; nothing was sent"),
    "no-signer": (["admin", "registrar", "reinstate", "bob"], "no signing account: give --as NAME"),
    "bad-address": (["admin", "registrar", "license", "5NotAnAddress", "--roles", "consumer", "--as", "alice"],
                    "not an account: '5NotAnAddress'"),
    "unknown-role": (["admin", "registrar", "license", "stranger", "--roles", "consumer,wizard", "--as", "alice"],
                     "unknown role 'wizard'"),
    "bad-amount": (["admin", "issuer", "mint", "bob", "1.2.3", "--as", "eve"], "not an amount: '1.2.3'"),
    "bad-energy": (["admin", "arbitration", "decide", "0", "--seller-share", "1.5Wh", "--as", "alice"],
                   "not a whole number of Wh"),
    "bad-document": (["admin", "registrar", "license", "stranger", "--roles", "consumer", "--document", "0x12",
                      "--as", "alice"], "a document hash must be 0x followed by 64 hex digits"),
    "unreachable": (["admin", "issuer", "supply", "--rpc", "http://127.0.0.1:{port}"], "cannot reach the node"),
    "unknown-pallet": (["events", "--pallet", "nope"], "unknown pallet 'nope'"),
    "pallet-refusal": (["admin", "registrar", "suspend", "stranger", "--reason", "x", "--as", "alice"],
                       "identity.suspend failed in block"),
}


def _snapshot(node: DevNode, keys: Path) -> dict:
    return {"participants": cli(node, keys, "registrar", "participants"), "supply": supply(node, keys),
            "nonces": {kp.address(): node.rpc("system_accountNextIndex", [kp.address()])
                       for kp in (ALICE, BOB, EVE, NEWCOMERS["stranger"])}}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_every_bad_input_is_one_line_a_nonzero_exit_and_changes_nothing(node, keys, case):
    args, expect = BAD_INPUTS[case]
    args = [a.replace("{port}", str(free_port())) for a in args]
    env = {**os.environ, "GRIDCHAIN_WALLET_PASSWORD": "not the password" if case == "wrong-password" else PASSWORD}
    before = _snapshot(node, keys)
    r = run_gridchain(*args, "--rpc", node.url, "--keystore", str(keys), env=env) if case != "unreachable" \
        else run_gridchain(*args, "--keystore", str(keys), env=env)
    assert r.returncode != 0, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("Error: ") and expect in lines[0], lines[0]
    assert "Traceback" not in r.stderr + r.stdout
    after = _snapshot(node, keys)
    if case == "pallet-refusal":                   # refused in its block: the registrar paid the fee, no more
        assert "this account holds no licence" in lines[0]
        after["nonces"][ALICE.address()] -= 1
    assert after == before
