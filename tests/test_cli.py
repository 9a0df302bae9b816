"""The `gridchain` command, run as a user would: a subprocess of this checkout's venv.

Every failing command must exit non-zero with exactly one line on stderr.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from node_process import DevNode, free_port, gridchain_cmd, run_gridchain

from pallets import system
from primitives import ss58
from primitives.hashing import keccak256
from primitives.keys import Keypair, dev_keypair

ALICE_PK = "0x88dc3417d5058ec4b4503e0c12ea1a0a89be200fe98922423d4334014fa6b0ee"
ALICE_SEED = "0xabf8e5bdbe30c65656c0a3cbd181ff8a56294a69dfedd27982aace4a76909115"
ALICE_SS58 = "fMkHY6THpUdSzwXUauErZ4RiiV6htpkVcjHZg2VUvHeuSTuhJ"
BOB = dev_keypair("Bob")
HEX32 = re.compile(r"0x[0-9a-f]{64}")


def ok(*args: str) -> subprocess.CompletedProcess:
    r = run_gridchain(*args)
    assert r.returncode == 0, f"gridchain {' '.join(args)} exited {r.returncode}: {r.stderr}"
    return r


def fails_with_one_line(*args: str, mentions: str | None = None) -> str:
    r = run_gridchain(*args)
    assert r.returncode != 0, f"gridchain {' '.join(args)} succeeded: {r.stdout[:300]}"
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{r.stderr}"
    if mentions is not None:
        assert mentions.lower() in lines[0].lower(), lines[0]
    return lines[0]


# ---------------------------------------------------------------------------------------------
# help
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [
    (), ("run",), ("key",), ("key", "generate"), ("key", "inspect"), ("build-spec",), ("purge-chain",),
    ("export-blocks",), ("import-blocks",), ("tx",), ("tx", "transfer"), ("query",), ("query", "balance"),
], ids=lambda c: " ".join(c) or "gridchain")
def test_help_of_every_command_exits_zero(command):
    r = ok(*command, "--help")
    assert r.stdout.startswith("Usage: gridchain"), r.stdout[:200]
    assert r.stderr == ""


def test_top_level_help_lists_every_command():
    out = ok("--help").stdout
    for cmd in ("run", "key", "build-spec", "purge-chain", "export-blocks", "import-blocks", "tx", "query"):
        assert re.search(rf"^\s+{cmd}\s", out, re.MULTILINE), cmd


# ---------------------------------------------------------------------------------------------
# keys
# ---------------------------------------------------------------------------------------------

def test_key_generate_json_has_substrate_fields_and_inspect_agrees():
    key = json.loads(ok("key", "generate", "--output-type", "json").stdout)
    assert len(key["secretPhrase"].split()) == 12
    assert HEX32.fullmatch(key["secretSeed"]) and HEX32.fullmatch(key["publicKey"])
    assert key["accountId"] == key["publicKey"]
    assert isinstance(key["networkId"], str) and key["networkId"]
    pk, prefix = ss58.decode_with_prefix(key["ss58Address"])
    assert "0x" + pk.hex() == key["publicKey"] and prefix == 6236
    kp = Keypair.from_uri(key["secretPhrase"])
    assert "0x" + kp.seed.hex() == key["secretSeed"] and "0x" + kp.public_key.hex() == key["publicKey"]

    again = json.loads(ok("key", "inspect", key["secretPhrase"], "--output-type", "json").stdout)
    assert again["publicKey"] == key["publicKey"] and again["ss58Address"] == key["ss58Address"]
    assert again["secretSeed"] == key["secretSeed"]
    text = ok("key", "inspect", key["secretPhrase"]).stdout
    assert key["publicKey"] in text and key["ss58Address"] in text
    public = json.loads(ok("key", "inspect", key["ss58Address"], "--output-type", "json").stdout)
    assert public["publicKey"] == key["publicKey"] and "secretSeed" not in public

    other = json.loads(ok("key", "generate", "--output-type", "json").stdout)
    assert other["secretPhrase"] != key["secretPhrase"] and other["publicKey"] != key["publicKey"]
    long = json.loads(ok("key", "generate", "--words", "24", "--output-type", "json").stdout)
    assert len(long["secretPhrase"].split()) == 24


def test_key_inspect_dev_uri_gives_the_well_known_key():
    alice = json.loads(ok("key", "inspect", "//Alice", "--output-type", "json").stdout)
    assert alice["publicKey"] == ALICE_PK
    assert alice["secretSeed"] == ALICE_SEED
    assert alice["ss58Address"] == ALICE_SS58


@pytest.mark.parametrize("uri", ["not a phrase xyz", "//Alice/soft", "0x1234"])
def test_key_inspect_of_a_bad_secret_fails_with_one_line(uri):
    fails_with_one_line("key", "inspect", uri)


# ---------------------------------------------------------------------------------------------
# chain specs
# ---------------------------------------------------------------------------------------------

def test_build_spec_dev_is_a_substrate_shaped_spec():
    spec = json.loads(ok("build-spec", "--chain", "dev").stdout)
    assert spec["name"] == "Development" and spec["id"] == "dev" and spec["chainType"] == "Development"
    props = spec["properties"]
    assert props["tokenSymbol"] == "GRID" and props["tokenDecimals"] == 9 and props["ss58Format"] == 6236
    assert "runtimeGenesis" in spec["genesis"]


def test_build_spec_raw_is_identical_across_runs_and_processes():
    procs = [subprocess.Popen(gridchain_cmd("build-spec", "--chain", "dev", "--raw"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        outs.append(out)
    outs.append(ok("build-spec", "--chain", "dev", "--raw").stdout)
    assert outs[0] == outs[1] == outs[2]
    raw = json.loads(outs[0])
    top = raw["genesis"]["raw"]["top"]
    assert "runtimeGenesis" not in raw["genesis"]
    alice_key = "0x" + system.account.key_of(bytes.fromhex(ALICE_PK[2:])).hex()
    alice = system.AccountInfo.decode(bytes.fromhex(top[alice_key][2:]))
    assert alice.nonce == 0 and alice.free == 1_000_000 * 10**9
    assert list(top) == sorted(top), "raw storage is listed in key order"


def test_build_spec_of_an_unknown_chain_fails_with_one_line():
    fails_with_one_line("build-spec", "--chain", "nosuch", mentions="nosuch")


# ---------------------------------------------------------------------------------------------
# the database: export, import, purge
# ---------------------------------------------------------------------------------------------

def best_of(base, what: str, pruning: tuple[str, ...] = ()) -> tuple[int, str]:
    """(best number, best hash) of the chain at `base`, read from a non-authoring node over RPC."""
    n = DevNode(base, command=("run", "--chain", "dev"), extra_args=pruning)
    try:
        n.start()
        header = n.rpc("chain_getHeader")
        best_hash = n.rpc("chain_getBlockHash")
        assert n.rpc("chain_getHeader", [best_hash]) == header, f"{what}: best moved without an author"
        return int(header["number"], 16), best_hash
    finally:
        n.stop()


def authored_chain(base, pruning: tuple[str, ...], blocks: int = 6) -> tuple[int, str]:
    """Run a dev node on `base` until it has `blocks` blocks, stop it; (best number, best hash)."""
    with DevNode(base, block_time_ms=100, extra_args=pruning) as node:
        node.wait_for_block(blocks)
    number, best_hash = best_of(base, "source", pruning)
    assert number >= blocks
    return number, best_hash


@pytest.mark.parametrize("pruning", [(), ("--pruning", "archive")], ids=["default-pruning", "archive"])
def test_export_then_import_reproduces_the_chain(tmp_path, pruning):
    src = tmp_path / "src"
    number, best_hash = authored_chain(src, pruning)

    blocks = tmp_path / "blocks.bin"
    r = ok("export-blocks", "--chain", "dev", "--base-path", str(src), str(blocks))
    assert f"exported {number} blocks (1..{number})" in r.stderr

    dst = tmp_path / "dst"
    r = ok("import-blocks", "--chain", "dev", "--base-path", str(dst), *pruning, str(blocks))
    assert f"imported {number} blocks" in r.stdout and f"best is #{number}" in r.stdout
    assert best_of(dst, "imported", pruning) == (number, best_hash)
    again = ok("import-blocks", "--chain", "dev", "--base-path", str(dst), str(blocks))
    assert f"imported 0 blocks, skipped {number}" in again.stdout


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A block file exported from an archive-mode dev chain: (path, best number)."""
    tmp = tmp_path_factory.mktemp("export")
    number, _ = authored_chain(tmp / "src", ("--pruning", "archive"))
    ok("export-blocks", "--chain", "dev", "--base-path", str(tmp / "src"), str(tmp / "blocks.bin"))
    return tmp / "blocks.bin", number


def test_import_of_a_truncated_file_fails_with_one_line(tmp_path, exported):
    path, _number = exported
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(path.read_bytes()[:-7])
    fails_with_one_line("import-blocks", "--chain", "dev", "--base-path", str(tmp_path / "t"), str(truncated),
                        mentions="truncated")
    truncated.write_bytes(path.read_bytes()[:2])  # inside the first length prefix
    fails_with_one_line("import-blocks", "--chain", "dev", "--base-path", str(tmp_path / "t2"), str(truncated),
                        mentions="truncated")


def test_import_of_a_corrupted_block_fails_with_one_line_and_keeps_it_out(tmp_path, exported):
    path, number = exported
    corrupt = bytearray(path.read_bytes())
    corrupt[len(corrupt) - 40] ^= 0x01  # inside the last block
    (tmp_path / "corrupt.bin").write_bytes(corrupt)
    line = fails_with_one_line("import-blocks", "--chain", "dev", "--base-path", str(tmp_path / "c"),
                               str(tmp_path / "corrupt.bin"))
    assert f"#{number}" in line or "malformed" in line, line
    # the blocks before it are in; the corrupted one is not
    assert best_of(tmp_path / "c", "corrupt import", ())[0] == number - 1   # a new database: default pruning
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x00\x00\x00\x05hello")
    fails_with_one_line("import-blocks", "--chain", "dev", "--base-path", str(tmp_path / "g"), str(garbage),
                        mentions="malformed")


def test_purge_chain_removes_the_database(tmp_path):
    base = tmp_path / "base"
    with DevNode(base, block_time_ms=100) as node:
        node.wait_for_block(2)
    db = base / "chains" / "dev" / "db"
    assert db.is_dir()
    r = ok("purge-chain", "--chain", "dev", "--base-path", str(base), "-y")
    assert str(db) in r.stdout
    assert not db.exists()
    fails_with_one_line("purge-chain", "--chain", "dev", "--base-path", str(base), "-y", mentions="does not exist")
    assert best_of(base, "after purge")[0] == 0, "a purged chain starts again from genesis"


# ---------------------------------------------------------------------------------------------
# wallet commands against a running node
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def running_node(tmp_path_factory):
    n = DevNode(tmp_path_factory.mktemp("cli") / "base", block_time_ms=0)  # instant seal
    try:
        yield n.start()
    finally:
        n.stop()


def query_balance(node: DevNode, who: str) -> dict:
    return json.loads(ok("query", "balance", who, "--rpc", node.ws_url).stdout)


def test_tx_transfer_is_finalized_and_query_balance_shows_it(running_node):
    node = running_node
    bob = BOB.address()
    before = query_balance(node, bob)
    assert before["account"] == bob and before["free"] > 0

    r = ok("tx", "transfer", "--from", "//Alice", "--to", bob, "--amount", "1000", "--rpc", node.ws_url)
    m = re.fullmatch(r"finalized in block (0x[0-9a-f]{64}) \(extrinsic (0x[0-9a-f]{64})\)\n", r.stdout)
    assert m, r.stdout
    block = node.rpc("chain_getBlock", [m.group(1)])["block"]
    assert any("0x" + keccak256(bytes.fromhex(x[2:])).hex() == m.group(2) for x in block["extrinsics"])

    after = query_balance(node, bob)
    assert after["free"] == before["free"] + 1000
    assert after["nonce"] == before["nonce"] and after["reserved"] == before["reserved"]
    # the same answer by public key and by dev URI
    assert query_balance(node, "0x" + BOB.public_key.hex()) == after
    assert query_balance(node, "//Bob") == after


def test_tx_transfer_refused_by_the_node_fails_with_one_line(running_node):
    pauper = "0x" + os.urandom(32).hex()
    line = fails_with_one_line("tx", "transfer", "--from", pauper, "--to", BOB.address(), "--amount", "5",
                               "--rpc", running_node.ws_url)
    assert "1010" in line or "Payment" in line, line


def test_tx_transfer_to_an_unreachable_node_fails_with_one_line():
    url = f"ws://127.0.0.1:{free_port()}"
    fails_with_one_line("tx", "transfer", "--from", "//Alice", "--to", BOB.address(), "--amount", "1000",
                        "--rpc", url, mentions="cannot reach")
    fails_with_one_line("query", "balance", BOB.address(), "--rpc", url, mentions="cannot reach")


def test_tx_transfer_that_fails_in_its_block_is_not_reported_as_done(running_node):
    """More than the sender has: the extrinsic is included (its fee is paid) but the transfer fails
    (balances.InsufficientBalance); the command must not say it was done."""
    node = running_node
    dave, charlie = dev_keypair("Dave").address(), dev_keypair("Charlie").address()
    before_dave, before_charlie = query_balance(node, dave), query_balance(node, charlie)
    r = run_gridchain("tx", "transfer", "--from", "//Dave", "--to", charlie, "--amount",
                      str(before_dave["free"] * 5), "--rpc", node.ws_url)
    after_dave, after_charlie = query_balance(node, dave), query_balance(node, charlie)
    assert after_charlie == before_charlie, "nothing arrived"
    assert after_dave["nonce"] == before_dave["nonce"] + 1 and after_dave["free"] < before_dave["free"], \
        "the failed extrinsic was included and its fee paid"
    assert r.returncode != 0, f"exit 0 for a transfer that did not happen; stdout: {r.stdout.strip()}"
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_tx_transfer_of_an_amount_above_u64_fails_with_one_line(running_node):
    fails_with_one_line("tx", "transfer", "--from", "//Alice", "--to", BOB.address(), "--amount", str(2**64),
                        "--rpc", running_node.ws_url)


def test_tx_transfer_with_a_bad_url_fails_with_one_line():
    fails_with_one_line("tx", "transfer", "--from", "//Alice", "--to", BOB.address(), "--amount", "5",
                        "--rpc", "foo://127.0.0.1:9944")


def test_query_balance_with_a_bad_url_fails_with_one_line():
    fails_with_one_line("query", "balance", BOB.address(), "--rpc", "foo://127.0.0.1:9944")
