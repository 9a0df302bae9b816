"""The DSO's and the council's commands (`gridchain admin dso ...`, `gridchain admin council ...`)
against real dev nodes in child processes, through the encrypted keystore and JSON-RPC only. On the
dev chain Dave is the DSO of zones 1 and 2, Alice the registrar, Bob and Charlie households, and the
council is Alice and Dave (more than half: both), with an enactment delay of 2 blocks.

Two nodes: one for the DSO, with chain time 600x faster (`--time-warp`) so a meter's delivery
intervals pass in seconds and its readings can raise the alerts for real (a missed interval, three
implausible readings, the automatic rogue suspension); one for the council, with 3 s blocks, so a
motion's 2-block enactment delay is long enough to be caught "too early" by the CLI right after the
vote that passed it. The flows run the CLI in-process (click's CliRunner); some bad inputs run the
real `gridchain` command, as an operator would. Every bad input is one line, exit status 1, and
nothing sent (the signer's nonce does not move) or changed.
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
from node_process import DevNode, run_gridchain

from pallets.council import Error as CouncilError
from primitives.codec import unpack
from primitives.extrinsic import Extrinsic
from primitives.hashing import keccak256
from primitives.keys import Keypair, dev_keypair
from primitives.meter_reading import Reading, sign_reading
from rpc.client import Client, call_from_metadata
from wallet.cli_admin import admin
from wallet.keystore import KdfParams, Keystore

pytestmark = pytest.mark.slow

PASSWORD = "a grid operator's password"
I = 900                                   # the dev chain's delivery interval, s
ALICE, BOB, CHARLIE, DAVE = (dev_keypair(n) for n in ("Alice", "Bob", "Charlie", "Dave"))
NOW_KEY = "0x" + (keccak256(b"timestamp")[:16] + keccak256(b"now")[:16]).hex()
GEUR = 10**6


def meter_key(name: str) -> Keypair:
    return Keypair.from_uri(f"//dso-test//{name}")


def hexid(kp: Keypair) -> str:
    return "0x" + kp.public_key.hex()


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with DevNode(tmp_path_factory.mktemp("dso") / "base", block_time_ms=200,
                 extra_args=["--time-warp", "600"]) as n:
        n.wait_for_block(1)
        yield n


@pytest.fixture(scope="module")
def council_node(tmp_path_factory):
    with DevNode(tmp_path_factory.mktemp("council") / "base", block_time_ms=3000) as n:
        n.wait_for_block(1, timeout=30)
        yield n


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Path:
    store = Keystore(tmp_path_factory.mktemp("keystore") / "wallet")
    for name, kp in (("alice", ALICE), ("bob", BOB), ("charlie", CHARLIE), ("dave", DAVE)):
        store.add(name, kp.seed, PASSWORD, KdfParams.minimal())
    return store.directory


def _invoke(node: DevNode, keys: Path, args: tuple[str, ...], json_: bool = True):
    return CliRunner().invoke(admin, [*args, "--rpc", node.url, "--keystore", str(keys), *(["--json"] if json_ else [])],
                              env={"GRIDCHAIN_WALLET_PASSWORD": PASSWORD}, prog_name="gridchain admin")


def cli(node: DevNode, keys: Path, *args: str) -> dict | list:
    """`gridchain admin ARGS --json` in-process; it must succeed; the JSON it printed."""
    r = _invoke(node, keys, args)
    assert r.exit_code == 0, f"{' '.join(args)} exited {r.exit_code}: {r.stderr or r.output}"
    return json.loads(r.stdout)


def cli_error(node: DevNode, keys: Path, *args: str) -> str:
    """A failing command in-process: exit status 1 and exactly one line on stderr, returned."""
    r = _invoke(node, keys, args, json_=False)
    assert r.exit_code == 1, f"{' '.join(args)}: expected a failure, got {r.exit_code}: {r.output}"
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


def real_error(node: DevNode, keys: Path, *args: str) -> str:
    """A failing command through the real `gridchain` executable: exit 1, one stderr line."""
    p = run_gridchain("admin", *args, "--rpc", node.url, "--keystore", str(keys),
                      env={**os.environ, "GRIDCHAIN_WALLET_PASSWORD": PASSWORD})
    assert p.returncode == 1, p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    return lines[0]


def nonce(node: DevNode, kp: Keypair) -> int:
    return node.rpc("system_accountNextIndex", [kp.address()])


def chain_now_s(node: DevNode) -> int:
    return unpack(bytes.fromhex(node.rpc("state_getStorage", [NOW_KEY])[2:])) // 1000


def wait_chain_time(node: DevNode, t_s: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while chain_now_s(node) < t_s:
        assert time.monotonic() < deadline, f"chain time did not reach {t_s}"
        time.sleep(0.1)


def zone(node: DevNode, keys: Path, zone_id: int) -> dict:
    return next(z for z in cli(node, keys, "dso", "zones") if z["zone"] == zone_id)


def meter(node: DevNode, keys: Path, kp: Keypair) -> dict | None:
    return next((m for m in cli(node, keys, "dso", "meters") if m["meter"] == hexid(kp)), None)


def tariff(node: DevNode, keys: Path, a: int, b: int, band: int) -> int | None:
    rows = cli(node, keys, "dso", "tariffs", "--zone", str(a))["tariffs"]
    return next((t["pricePerKwh"] for t in rows if (t["fromZone"], t["toZone"], t["band"]) == (a, b, band)), None)


# ---------------------------------------------------------------------------------------------
# the DSO: zones, capacities, links, tariffs, envelopes, pause and resume
# ---------------------------------------------------------------------------------------------

def test_zones_list_the_dev_feeders_with_their_dso_capacities_and_links(node, keys):
    zones = cli(node, keys, "dso", "zones")
    assert [z["zone"] for z in zones] == [1, 2]
    z1 = zones[0]
    assert z1["name"] == "feeder-north" and z1["dso"] == DAVE.address() and z1["paused"] is False
    assert (z1["importCapacityW"], z1["exportCapacityW"]) == (250_000, 250_000)
    assert z1["links"] == [{"toZone": 2, "limitW": 100_000}]
    t = cli(node, keys, "dso", "tariffs")
    assert [b["band"] for b in t["bands"]] == [0, 1, 0] and t["bands"][1]["start"] == "07:00"
    assert {"fromZone": 1, "toZone": 1, "band": 0, "pricePerKwh": 20_000} in t["tariffs"]


def test_the_dso_sets_capacity_link_tariff_and_envelope(node, keys):
    r = cli(node, keys, "dso", "set-capacity", "1", "--import", "200kW", "--export", "180kW", "--as", "dave")
    assert r["success"] is True and r["importW"] == 200_000
    z = zone(node, keys, 1)
    assert (z["importCapacityW"], z["exportCapacityW"]) == (200_000, 180_000)
    cli(node, keys, "dso", "set-capacity", "1", "--export", "190kW", "--as", "dave")      # import unchanged
    z = zone(node, keys, 1)
    assert (z["importCapacityW"], z["exportCapacityW"]) == (200_000, 190_000)

    cli(node, keys, "dso", "set-link", "1", "2", "--limit", "80kW", "--as", "dave")
    assert zone(node, keys, 1)["links"] == [{"toZone": 2, "limitW": 80_000}]

    r = cli(node, keys, "dso", "set-tariff", "1", "2", "--band", "1", "--price", "0.07", "--as", "dave")
    assert r["pricePerKwh"] == 70_000 and r["events"][0]["event"] == "TariffSet"
    assert tariff(node, keys, 1, 2, 1) == 70_000

    r = cli(node, keys, "dso", "set-envelope", "1", "--interval", "+40", "--import", "150kW", "--export", "100kW",
            "--as", "dave")
    start = r["intervalStart"]
    assert start % I == 0 and start > chain_now_s(node)
    usage = node.rpc("energy_zoneUsage", [1, start])
    assert (usage["importCapacityWh"], usage["exportCapacityWh"]) == (150_000 * I // 3600, 100_000 * I // 3600)


def test_the_dso_pauses_and_resumes_a_zone(node, keys):
    r = cli(node, keys, "dso", "pause", "2", "--reason", "transformer T2 tripped", "--as", "dave")
    assert r["reasonHash"] == "0x" + keccak256(b"transformer T2 tripped").hex()
    assert zone(node, keys, 2)["paused"] is True
    before = nonce(node, DAVE)
    assert "zone 2 is already paused" in cli_error(node, keys, "dso", "pause", "2", "--reason", "x", "--as", "dave")
    assert nonce(node, DAVE) == before
    cli(node, keys, "dso", "resume", "2", "--as", "dave")
    assert zone(node, keys, 2)["paused"] is False
    assert "zone 2 is not paused" in cli_error(node, keys, "dso", "resume", "2", "--as", "dave")


# ---------------------------------------------------------------------------------------------
# the DSO: meters and alerts
# ---------------------------------------------------------------------------------------------

def submit_reading(c: Client, md: dict, genesis: bytes, m: Keypair, seq: int, interval: int, export_wh: int) -> None:
    signed = sign_reading(m, Reading(m.public_key, seq, interval, 0, export_wh), genesis)
    xt = Extrinsic(call_from_metadata(md, "metering", "submit_reading", [signed.to_plain()])).encode()
    assert c.submit_and_watch(xt, until="inBlock").success is True


def test_meter_life_cycle_and_alerts_from_real_readings(node, keys):
    """A meter certified by the DSO skips an interval and then reads more than its rated power three
    times: the chain records the missed interval, the implausible readings and suspends it as a rogue
    meter; `alerts` lists all of them, `meters` shows why it is suspended; the DSO reinstates,
    suspends and retires it, and replaces another meter."""
    m = meter_key("rogue")
    start_block = node.best_number() + 1
    r = cli(node, keys, "dso", "certify-meter", hexid(m), "bob", "--zone", "1", "--kind", "export",
            "--rated-power", "1kW", "--as", "dave")
    assert r["success"] is True
    row = meter(node, keys, m)
    assert row == {**row, "owner": BOB.address(), "zone": 1, "kind": "export", "ratedPowerW": 1000,
                   "status": "active", "suspendedAs": None, "lastInterval": None}

    with Client(node.url) as c:
        md = c.metadata()
        genesis = c.genesis_hash()
        base = chain_now_s(node) // I * I - I                 # the last interval that has ended
        submit_reading(c, md, genesis, m, 1, base, 0)          # the baseline
        wait_chain_time(node, base + 5 * I)                   # base + 4I has ended too
        # base + I is skipped; 1 kW moves at most 500 Wh in two intervals, 250 Wh in one
        submit_reading(c, md, genesis, m, 2, base + 2 * I, 10_000)
        submit_reading(c, md, genesis, m, 3, base + 3 * I, 20_000)
        submit_reading(c, md, genesis, m, 4, base + 4 * I, 30_000)

    row = meter(node, keys, m)
    assert (row["status"], row["suspendedAs"], row["implausibleReadings"]) == ("suspended", "rogue", 3)
    a = cli(node, keys, "dso", "alerts", "--from-block", str(start_block), "--zone", "1")
    mine = [x for x in a["alerts"] if x["meter"] == hexid(m)]
    assert [x["kind"] for x in mine] == ["missed-intervals", "implausible-reading", "implausible-reading",
                                         "implausible-reading", "rogue-meter"]
    assert (mine[0]["fromInterval"], mine[0]["count"]) == (base + I, 1)
    assert [x["exportWh"] for x in mine[1:4]] == [10_000, 10_000, 10_000]
    assert all(x["zone"] == 1 for x in mine)
    assert cli(node, keys, "dso", "alerts", "--from-block", str(start_block), "--zone", "2")["alerts"] == []

    cli(node, keys, "dso", "reinstate-meter", hexid(m), "--as", "dave")
    assert (meter(node, keys, m)["status"], meter(node, keys, m)["implausibleReadings"]) == ("active", 0)
    cli(node, keys, "dso", "suspend-meter", hexid(m), "--as", "dave")
    assert meter(node, keys, m)["suspendedAs"] == "operator"
    cli(node, keys, "dso", "retire-meter", hexid(m), "--as", "dave")
    assert meter(node, keys, m)["status"] == "retired"
    assert "is retired" in cli_error(node, keys, "dso", "retire-meter", hexid(m), "--as", "dave")
    assert "already been certified" in cli_error(node, keys, "dso", "certify-meter", hexid(m), "bob", "--zone", "1",
                                                 "--kind", "export", "--rated-power", "1kW", "--as", "dave")

    old, new = meter_key("old"), meter_key("new")
    cli(node, keys, "dso", "certify-meter", hexid(old), "charlie", "--zone", "2", "--kind", "import",
        "--rated-power", "5kW", "--as", "dave")
    r = cli(node, keys, "dso", "replace-meter", hexid(old), hexid(new), "--rated-power", "7.5kW", "--as", "dave")
    assert [e["event"] for e in r["events"] if e["pallet"] == "metering"] == ["MeterRetired", "MeterReplaced",
                                                                              "MeterCertified"]
    assert meter(node, keys, old)["status"] == "retired"
    n = meter(node, keys, new)
    assert (n["owner"], n["zone"], n["kind"], n["ratedPowerW"], n["status"]) == \
        (CHARLIE.address(), 2, "import", 7_500, "active")
    assert {x["meter"] for x in cli(node, keys, "dso", "meters", "--owner", "charlie", "--zone", "2")} == \
        {hexid(old), hexid(new)}


def test_dso_commands_with_the_wrong_key_or_bad_input_send_nothing(node, keys):
    before = {who.address(): nonce(node, who) for who in (BOB, DAVE, ALICE)}
    z1 = zone(node, keys, 1)
    m = meter_key("never")
    line = real_error(node, keys, "dso", "set-capacity", "1", "--import", "1kW", "--as", "bob")
    assert "account bob" in line and "does not hold the dso role (it holds: prosumer); nothing was sent" in line
    for args in (("set-tariff", "1", "1", "--band", "0", "--price", "0.5"), ("pause", "1", "--reason", "mine"),
                 ("set-link", "1", "2", "--limit", "1MW"),
                 ("set-envelope", "1", "--interval", "+20", "--import", "1kW", "--export", "1kW")):
        assert "does not hold the dso role" in cli_error(node, keys, "dso", *args, "--as", "bob")
    line = cli_error(node, keys, "dso", "certify-meter", hexid(m), "bob", "--zone", "1", "--kind", "export",
                     "--rated-power", "1kW", "--as", "bob")
    assert "is neither the DSO of zone 1 nor a licensed registrar" in line
    assert "zone 1 is not paused" in cli_error(node, keys, "dso", "resume", "1", "--as", "dave")
    for args, expected in (
            (("set-capacity", "7", "--import", "1kW", "--as", "dave"), "no zone 7"),
            (("set-capacity", "1", "--import", "12 parsecs", "--as", "dave"), "not a power"),
            (("set-capacity", "1", "--as", "dave"), "give --import, --export or both"),
            (("set-tariff", "1", "2", "--band", "9", "--price", "0.05", "--as", "dave"), "no time-of-use band 9"),
            (("set-tariff", "1", "2", "--band", "0", "--price", "five", "--as", "dave"), "not a price"),
            (("set-envelope", "1", "--interval", "+20", "--import", "900kW", "--export", "1kW", "--as", "dave"),
             "may not exceed zone 1's capacity"),
            (("set-envelope", "1", "--interval", "+4000", "--import", "1kW", "--export", "1kW", "--as", "dave"),
             "is too far ahead"),
            (("set-link", "1", "1", "--limit", "1kW", "--as", "dave"), "a link joins two different zones"),
            (("pause", "1", "--as", "dave"), "--reason TEXT or --reason-hash"),
            (("certify-meter", hexid(m), "dave", "--zone", "1", "--kind", "export", "--rated-power", "1kW",
              "--as", "dave"), "holds no active prosumer or consumer licence"),
            (("certify-meter", hexid(m), "bob", "--zone", "1", "--kind", "export", "--rated-power", "0W",
              "--as", "dave"), "rated power must be between 1 W"),
            (("certify-meter", "0x1234", "bob", "--zone", "1", "--kind", "export", "--rated-power", "1kW",
              "--as", "dave"), "METER must be 0x followed by 64 hex digits"),
            (("suspend-meter", hexid(m), "--as", "dave"), "no certified meter"),
            (("set-capacity", "1", "--import", "1kW"), "no signing account: give --as NAME"),
            (("alerts", "--from-block", "5", "--to-block", "2"), "is after the last block")):
        assert expected in cli_error(node, keys, "dso", *args), args
    assert {who.address(): nonce(node, who) for who in (BOB, DAVE, ALICE)} == before
    assert zone(node, keys, 1) == z1
    assert meter(node, keys, m) is None


# ---------------------------------------------------------------------------------------------
# the council
# ---------------------------------------------------------------------------------------------

def motions(node: DevNode, keys: Path) -> list[dict]:
    return cli(node, keys, "council", "motions")["motions"]


def wait_best(node: DevNode, number: int) -> None:
    node.wait_for_block(number, timeout=30)


def test_a_council_motion_changes_a_tariff_after_its_votes_and_delay(council_node, keys):
    node = council_node
    members = cli(node, keys, "council", "members")
    assert sorted(m["account"] for m in members) == sorted([ALICE.address(), DAVE.address()])
    assert tariff(node, keys, 1, 2, 0) == 35_000

    r = cli(node, keys, "council", "propose", "grid", "force_set_tariff", "from_zone=1", "to_zone=2", "band=0",
            "price_per_kwh=42000", "--as", "alice", "--wait", "inBlock")
    motion_id = r["motionId"]
    assert r["success"] is True and r["required"] == 2 and r["enactAt"] is None
    assert r["call"] == "grid.force_set_tariff(from_zone=1, to_zone=2, band=0, price_per_kwh=42000)"
    # a second motion whose call fails as root (zone 1 exists): enacted, closed, and reported as failed
    bad = cli(node, keys, "council", "propose", "grid", "create_zone", "zone_id=1", "dso=//Dave", "name=again",
              "import_capacity_w=1", "export_capacity_w=1", "--as", "alice", "--wait", "inBlock")["motionId"]

    (m,) = [x for x in motions(node, keys) if x["id"] == motion_id]
    assert (m["pallet"], m["callName"], m["args"]) == ("grid", "force_set_tariff",
                                                       {"from_zone": 1, "to_zone": 2, "band": 0, "price_per_kwh": 42_000})
    assert (m["proposer"], m["ayes"], m["nays"], m["required"], m["status"], m["enactAt"]) == \
        (ALICE.address(), 1, 0, 2, "voting", None)
    assert m["ayeVoters"] == [ALICE.address()] and m["end"] > 0

    listed = motions(node, keys)
    alice_nonce = nonce(node, ALICE)
    line = cli_error(node, keys, "council", "vote", str(motion_id), "--aye", "--as", "alice")
    assert CouncilError.AlreadyVoted.message in line and "nothing was sent" in line
    line = real_error(node, keys, "council", "vote", str(motion_id), "--aye", "--as", "bob")
    assert "account bob" in line and "is not a council member" in line
    assert nonce(node, ALICE) == alice_nonce and motions(node, keys) == listed

    cli(node, keys, "council", "vote", str(bad), "--aye", "--as", "dave", "--wait", "inBlock")
    r = cli(node, keys, "council", "vote", str(motion_id), "--aye", "--as", "dave", "--wait", "inBlock")
    assert (r["ayes"], r["nays"], r["outcome"]) == (2, 0, "passed")
    enact_at = r["enactAt"]
    bob_nonce = nonce(node, BOB)
    line = cli_error(node, keys, "council", "enact", str(motion_id), "--as", "bob")        # at once: too early
    assert CouncilError.TooEarly.message in line and f"enactable from block #{enact_at}" in line
    assert nonce(node, BOB) == bob_nonce and tariff(node, keys, 1, 2, 0) == 35_000
    (m,) = [x for x in motions(node, keys) if x["id"] == motion_id]
    assert (m["status"], m["enactAt"]) == ("passed", enact_at)

    wait_best(node, enact_at - 1)
    assert [x["status"] for x in motions(node, keys) if x["id"] == motion_id] == ["enactable"]
    r = cli(node, keys, "council", "enact", str(motion_id), "--as", "bob", "--wait", "inBlock")   # anyone may
    assert r["success"] is True and r["callError"] is None
    assert [e["event"] for e in r["events"] if e["pallet"] in ("grid", "council")] == ["TariffSet", "Enacted"]
    assert tariff(node, keys, 1, 2, 0) == 42_000
    assert motion_id not in [x["id"] for x in motions(node, keys)]
    assert CouncilError.UnknownMotion.message in cli_error(node, keys, "council", "enact", str(motion_id),
                                                           "--as", "bob")

    line = cli_error(node, keys, "council", "enact", str(bad), "--as", "bob", "--wait", "inBlock")
    assert f"motion {bad} was enacted (and is closed), but its call failed as root" in line
    assert "a zone with this id already exists" in line
    assert bad not in [x["id"] for x in motions(node, keys)]


def test_council_bad_input_is_one_line_and_sends_nothing(council_node, keys):
    node = council_node
    listed = motions(node, keys)
    before = {who.address(): nonce(node, who) for who in (ALICE, BOB, DAVE)}
    for args, expected in (
            (("propose", "grid", "force_set_tariff", "from_zone=1", "to_zone=2", "band=0", "price_per_kwh=1",
              "--as", "bob"), "is not a council member"),
            (("propose", "grid", "force_set_tarif", "--as", "alice"),
             "unknown call grid.force_set_tarif (its root calls: create_zone, force_set_tariff, set_zone_dso)"),
            (("propose", "gird", "force_set_tariff", "--as", "alice"), "unknown pallet 'gird'"),
            (("propose", "grid", "set_tariff", "from_zone=1", "to_zone=2", "band=0", "price_per_kwh=1",
              "--as", "alice"), "grid.set_tariff is not a root call (its origin is signed)"),
            (("propose", "grid", "force_set_tariff", "from_zone=1", "to_zone=2", "band=0", "price_per_kwh=0.05",
              "--as", "alice"), "argument price_per_kwh: expected a whole number"),
            (("propose", "grid", "force_set_tariff", "from_zone=1", "to_zone=2", "band=256", "price_per_kwh=1",
              "--as", "alice"), "argument band: expected a whole number from 0 to 255 (u8)"),
            (("propose", "grid", "force_set_tariff", "from_zone=1", "to_zone=2", "band=0", "--as", "alice"),
             "missing argument price_per_kwh"),
            (("propose", "grid", "force_set_tariff", "from_zone=1", "to_zone=2", "band=0", "price_per_kwh=1",
              "fee=2", "--as", "alice"), "has no argument fee"),
            (("propose", "grid", "force_set_tariff", "from_zone=1", "from_zone=2", "--as", "alice"),
             "argument from_zone is given twice"),
            (("propose", "grid", "set_zone_dso", "zone_id=1", "dso=5NotAnAddress", "--as", "alice"),
             "argument dso: '5NotAnAddress' is not an account"),
            (("propose", "council", "set_members", "new_members=//Alice", "--as", "alice"),
             "argument new_members: expected JSON"),
            (("propose", "council", "set_threshold", "kind=*", "num=1", "den=2", "strict=maybe", "--as", "alice"),
             "argument strict: expected true or false"),
            (("vote", "99", "--aye", "--as", "dave"), CouncilError.UnknownMotion.message),
            (("vote", "0", "--as", "dave"), "give --aye or --nay"),
            (("enact", "99", "--as", "alice"), CouncilError.UnknownMotion.message),
            (("withdraw", "99", "--as", "alice"), CouncilError.UnknownMotion.message)):
        assert expected in cli_error(node, keys, "council", *args), args
    assert {who.address(): nonce(node, who) for who in (ALICE, BOB, DAVE)} == before
    assert motions(node, keys) == listed


def test_a_motion_is_withdrawn_by_its_proposer_only(council_node, keys):
    node = council_node
    r = cli(node, keys, "council", "propose", "council", "set_members", 'new_members=["//Alice", "//Dave"]',
            "--as", "alice", "--wait", "inBlock")
    motion_id = r["motionId"]
    (m,) = [x for x in motions(node, keys) if x["id"] == motion_id]
    assert m["args"] == {"new_members": [ALICE.address(), DAVE.address()]}
    line = cli_error(node, keys, "council", "withdraw", str(motion_id), "--as", "dave")
    assert CouncilError.NotProposer.message in line
    assert motion_id in [x["id"] for x in motions(node, keys)]
    cli(node, keys, "council", "withdraw", str(motion_id), "--as", "alice", "--wait", "inBlock")
    assert motion_id not in [x["id"] for x in motions(node, keys)]
