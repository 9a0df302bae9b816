"""Deployment files (`gridchain build-spec --from FILE`): the shipped example builds into a spec with
a council and no sudo whose genesis the runtime accepts, docs/operations.md shows that same file,
and each kind of bad input is refused with one line naming the file and the offending line."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from genesis.chain_spec import genesis_storage
from genesis.deployment import DeploymentError, spec_from_file, spec_from_text
from genesis.toml_lines import key_lines
from node.cli import main
from pallets import build_runtime, council, grid, identity, sudo, validators
from p2p.topics import parse_peer_addr
from primitives import ss58
from primitives.keys import Keypair
from runtime.storage import Overlay, externalities
from tests.node_process import run_gridchain
from tests.runtime_harness import MemState

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "genesis" / "examples" / "deployment.toml"
TEXT = EXAMPLE.read_text()


def pk(uri: str) -> bytes:
    return Keypair.from_uri(uri).public_key


# ---------------------------------------------------------------------------------------------
# the example
# ---------------------------------------------------------------------------------------------

def test_example_builds_a_spec_with_a_council_and_no_sudo():
    spec = spec_from_file(EXAMPLE)
    config = spec["genesis"]["runtimeGenesis"]["config"]
    assert "sudo" not in config
    assert spec["consensus"]["engine"] == "bft" and spec["chainType"] == "Live"
    assert [len(config["grid"]["zones"]), len(config["validators"]["validators"])] == [3, 4]
    assert config["council"]["voting_period"] == 86_400 and config["council"]["enactment_delay"] == 600
    for addr in spec["bootNodes"]:
        parse_peer_addr(addr)                     # what `run` accepts
    storage = genesis_storage(spec, build_runtime())
    with externalities(Overlay(MemState(storage))):
        assert sudo.key.get() is None
        members = set(council.members.get())
        assert members == {pk(u) for u in ("//Regulator", "//NorthGrid", "//SouthGrid", "//Validator1",
                                           "//Validator2", "//Validator3", "//Validator4")}
        assert council.thresholds.get("grid.force_set_tariff") is not None
        assert {v.account for v in validators.validators.get()} == {pk(f"//Validator{i}") for i in range(1, 5)}
        assert identity.is_licensed(pk("//Treasury"), identity.Role.ISSUER)
        assert grid.zone(3).dso == pk("//SouthGrid")
        assert grid.link_limit_w(3, 2) == 80_000
        assert grid.tariffs.get((3, 3), 1) == 45_000          # 0.045 GEUR/kWh in the peak band
        assert grid.tou_bands.get() == ((0, 0), (7 * 3600, 1), (22 * 3600, 0))


def test_build_spec_from_the_example_prints_a_raw_spec():
    r = CliRunner().invoke(main, ["build-spec", "--from", str(EXAMPLE), "--raw"])
    assert r.exit_code == 0, r.output
    spec = json.loads(r.output)
    assert "raw" in spec["genesis"] and spec["id"] == "riverside"
    plain = spec_from_file(EXAMPLE)
    assert {bytes.fromhex(k[2:]): bytes.fromhex(v[2:]) for k, v in spec["genesis"]["raw"]["top"].items()} \
        == genesis_storage(plain, build_runtime())


def test_from_and_chain_are_exclusive():
    r = CliRunner().invoke(main, ["build-spec", "--from", str(EXAMPLE), "--chain", "local"])
    assert r.exit_code != 0 and "exclusive" in r.output and "{" not in r.output


def test_the_operations_doc_shows_the_example_verbatim():
    doc = (ROOT / "docs" / "operations.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", doc, re.S)
    assert TEXT in blocks, "docs/operations.md must include genesis/examples/deployment.toml verbatim"


# ---------------------------------------------------------------------------------------------
# bad files: one line, the file's name, the offending line
# ---------------------------------------------------------------------------------------------

def variant(old: str, new: str, at: str = "") -> tuple[str, int]:
    """The example with `old` (unique) replaced by `new`; and the line of `at` within `new` (of its
    start by default)."""
    assert TEXT.count(old) == 1, old
    text = TEXT.replace(old, new)
    pos = TEXT.index(old) + new.index(at)         # the text before the replacement is unchanged
    return text, text[:pos].count("\n") + 1


def error_of(text: str) -> str:
    with pytest.raises(DeploymentError) as e:
        spec_from_text(text, "deployment.toml")
    message = str(e.value)
    assert "\n" not in message
    return message


ZONE3 = 'id = 3\nname = "feeder-south"\ndso = "south-grid"\n'
PEAK = 'name = "peak"\nid = 1\nhours = ["07:00-22:00"]'


@pytest.mark.parametrize("old,new,mentions,at", [x if len(x) == 4 else (*x, "") for x in [
    # unknown zone in a tariff or a link
    ("from = 3\nto = 3\nprices", "from = 3\nto = 9\nprices", "tariff names zone 9, which no zone declares", "to ="),
    ("from = 2\nto = 3\ncapacity", "from = 2\nto = 7\ncapacity", "link names zone 7", "to ="),
    # bands: overlap, a gap, an unknown band in a tariff, a band left unpriced
    (PEAK, PEAK.replace("07:00", "06:30"), "overlap '00:00-07:00'", "hours"),
    (PEAK, PEAK.replace("07:00", "08:00"), "no band covers 07:00-08:00", "hours"),
    ("prices = { off-peak = 0.022, peak = 0.045 }", "prices = { off-peak = 0.022, peek = 0.045 }",
     "band 'peek', which no band declares"),
    ("prices = { off-peak = 0.022, peak = 0.045 }", "prices = { off-peak = 0.022 }", "no price for band 'peak'"),
    # typos
    ('import_capacity = "200kW"', 'import_capcity = "200kW"', "unknown key 'import_capcity'"),
    ("[market]", "[markets]", "unknown section 'markets' (did you mean 'market'?)"),
    # addresses
    ('account = "fMmfVL8x6a5xNifzpiVGr14nkvaXQkCATuTCzHvb5tLWMMqJT"',
     'account = "fMmfVL8x6a5xNifzpiVGr14nkvaXQkCATuTCzHvb5tLWMMqJt"', "is not a gridchain address"),
    # roles: a council member or a validator the file does not license for it
    ('"validator-3", "validator-4"]', '"validator-3", "treasury"]', "council member 'treasury' holds no"),
    ('operator = "validator-4"', 'operator = "south-grid"', "holds no validator_operator role"),
    ('dso = "north-grid"\nimport_capacity = "250kW"', 'dso = "nrth-grid"\nimport_capacity = "250kW"',
     "'nrth-grid' is not a participant of this file (did you mean 'north-grid'?)"),
    ('issuer = "treasury"', 'issuer = "regulator"', "holds no issuer role"),
    # thresholds that can never be met, or name nothing
    ('council = "2/3"', 'council = "3/2"', "can never be met"),
    ('council = "2/3"', 'council = ">1/1"', "can never be met"),
    ('"grid.force_set_tariff" = ">1/2"', '"grid.force_set_tarif" = ">1/2"', "names no pallet"),
    ('"grid.force_set_tariff" = ">1/2"', '"grid.set_tariff" = ">1/2"', "names no pallet"),
    # duplicates
    ("id = 2\nname = \"feeder-east\"", "id = 1\nname = \"feeder-east\"", "zone 1 is already declared"),
    ("from = 2\nto = 1\nprices", "from = 1\nto = 2\nprices", "tariff 1 -> 2 is already given"),
    # wrong types and values
    ("decimals = 6", 'decimals = "six"', "must be a whole number, not a string"),
    ('capacity = "80kW"', "capacity = 80.5", "whole watts"),
    ("off-peak = 0.020, peak = 0.040 }\n\n[[tariffs]]\nfrom = 2",
     "off-peak = 0.0200001, peak = 0.040 }\n\n[[tariffs]]\nfrom = 2", "at most 6 decimal places"),
    ('interval = "15m"', 'interval = "30m"', "fixed at 900 s"),
    ('enactment_delay = "10m"', 'enactment_delay = "10 minutes"', "must be a duration"),
    ('block_time = "1s"', 'block_time = 1', "must be a duration"),
    ("/ip4/192.0.2.13/tcp/30333/p2p/", "/ip4/192.0.2.313/tcp/30333/p2p/", "bootnode"),
]])
def test_bad_file_is_refused_with_its_line(old, new, mentions, at):
    text, line = variant(old, new, at)
    message = error_of(text)
    assert mentions in message, message
    assert message.startswith(f"deployment.toml:{line}: "), (line, message)


def test_missing_field_names_the_table_that_lacks_it():
    text, line = variant(ZONE3, 'id = 3\nname = "feeder-south"\n')
    message = error_of(text)
    assert message == f"deployment.toml:{line - 1}: zones[3] lacks 'dso'"
    assert text.splitlines()[line - 2] == "[[zones]]"


def test_a_validator_whose_proof_of_possession_is_another_keys_is_refused():
    pops = re.findall(r'bls_proof_of_possession = "(0x[0-9a-f]+)"', TEXT)
    text, line = variant(f'bls_proof_of_possession = "{pops[1]}"', f'bls_proof_of_possession = "{pops[0]}"')
    assert error_of(text).startswith(f"deployment.toml:{line}: the BLS proof of possession does not match")


def test_a_link_without_a_tariff_and_a_zone_without_one_are_refused():
    link_tariff = "[[tariffs]]\nfrom = 3\nto = 2\nprices = { off-peak = 0.035, peak = 0.060 }\n\n"
    text, _ = variant(link_tariff, "")
    line = text[:text.index("from = 2\nto = 3\ncapacity")].count("\n") + 1
    assert error_of(text) == (f"deployment.toml:{line}: link 3 -> 2 has no tariff: add a [[tariffs]] entry "
                              "from = 3, to = 2, or no trade ever crosses it")
    local = "[[tariffs]]\nfrom = 2\nto = 2\nprices = { off-peak = 0.020, peak = 0.040 }\n\n"
    text, _ = variant(local, "")
    line = text[:text.index("id = 2\nname")].count("\n") + 1
    assert error_of(text).startswith(f"deployment.toml:{line}: zone 2 has no tariff for trade inside it")


def test_not_toml_names_the_line_tomllib_found():
    text, line = variant('symbol = "GEUR"', 'symbol = "GEUR')
    assert error_of(text).startswith(f"deployment.toml:{line}: not valid TOML")


def test_cli_prints_one_line_and_nothing_on_stdout(tmp_path):
    text, line = variant("from = 3\nto = 3\nprices", "from = 3\nto = 9\nprices", at="to =")
    bad = tmp_path / "deployment.toml"
    bad.write_text(text)
    r = run_gridchain("build-spec", "--from", str(bad), "--raw")
    assert r.returncode != 0 and r.stdout == ""
    assert r.stderr.splitlines() == [f"Error: deployment.toml:{line}: tariff names zone 9, which no zone declares "
                                     "(zones: 1, 2, 3)"]


def test_generate_node_key_prints_the_peer_id_the_node_will_have(tmp_path):
    from p2p.keys import load_or_create_node_key, peer_id_of
    first = run_gridchain("key", "generate-node-key", "--base-path", str(tmp_path / "node"))
    again = run_gridchain("key", "generate-node-key", "--base-path", str(tmp_path / "node"))
    assert first.returncode == again.returncode == 0, first.stderr + again.stderr
    assert first.stdout.strip() == again.stdout.strip() == peer_id_of(load_or_create_node_key(tmp_path / "node"))
    assert "already exists" in again.stderr and first.stderr == ""


def test_line_scan_finds_keys_elements_and_array_tables():
    lines = key_lines(TEXT)
    rows = TEXT.splitlines()
    assert rows[lines[("zones", 2)] - 1] == "[[zones]]"
    assert rows[lines[("zones", 2, "dso")] - 1] == 'dso = "south-grid"'
    assert rows[lines[("council", "members", 6)] - 1].strip().endswith('"validator-4"]')
    assert rows[lines[("council", "thresholds", "grid.force_set_tariff")] - 1].startswith('"grid.force_set_tariff"')
    assert rows[lines[("tariffs", 6, "prices", "peak")] - 1] == "prices = { off-peak = 0.035, peak = 0.060 }"
    assert ss58.decode(spec_from_text(TEXT)["genesis"]["runtimeGenesis"]["config"]["council"]["members"][0])
