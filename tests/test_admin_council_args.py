"""The operator commands' metadata reading without a node: text parsed into each metadata type the
way `gridchain admin council propose` does (wallet/council.py); which arguments and event fields hold
accounts, from the metadata's `AccountId` type alone (inside lists, options, tuples and structs, and
aliases such as council's `Members = ListOf(AccountId, ...)`); role and status names from the
identity pallet's published constants; and the council's required ayes, computed by the wallet, equal
to the pallet's own rule."""
from __future__ import annotations

import pytest

from pallets import build_runtime
from pallets import council as council_pallet
from pallets.identity import Role, Status
from primitives.keys import dev_keypair
from wallet.admin import Licences
from wallet.chain import ChainState
from wallet.council import ArgParser, required_count, threshold_text
from wallet.wallet import WalletError

ALICE, DAVE = dev_keypair("Alice"), dev_keypair("Dave")
TYPES = {"Envelope": [{"name": "import_w", "type": "u64"}, {"name": "export_w", "type": "u64"}]}
DEV = ArgParser(TYPES, dev_uris=True)
LIVE = ArgParser(TYPES, dev_uris=False)
METADATA = build_runtime().metadata()
STATE = ChainState(None, METADATA)      # no client: only the metadata lookups are used


@pytest.mark.parametrize("t,text,expect", [
    ("u8", "255", 255), ("u64", "42_000", 42_000), ("u128", str(2**100), 2**100),
    ("bool", "true", True), ("bool", "No", False),
    ({"str": {"maxLen": 8}}, "feeder-e", "feeder-e"),
    ({"option": "u32"}, "none", None), ({"option": "u32"}, "7", 7),
    ({"vec": "u32", "maxLen": 4}, "[1, 2, 3]", [1, 2, 3]),
    ({"tuple": ["u32", "bool"]}, "[5, true]", [5, True]),
    ("Envelope", '{"import_w": 1000, "export_w": 2000}', [1000, 2000]),
    ("Envelope", "[1000, 2000]", [1000, 2000]),
    ("[u8; 4]", "0x01020304", b"\x01\x02\x03\x04"),
    ("bytes", "0x", b""),
])
def test_text_parses_into_its_declared_type(t, text, expect):
    assert DEV.text(t, text, "arg") == expect


def test_accounts_are_ss58_0x_or_dev_uris_on_dev_chains_only():
    for text in (ALICE.address(), "0x" + ALICE.public_key.hex(), "//Alice"):
        assert DEV.text("AccountId", text, "who") == ALICE.public_key
    assert LIVE.text("AccountId", DAVE.address(), "who") == DAVE.public_key
    with pytest.raises(WalletError, match="dev URIs such as //Alice name accounts on dev and local chains only"):
        LIVE.text("AccountId", "//Alice", "who")
    assert DEV.text({"vec": "AccountId"}, '["//Alice", "%s"]' % DAVE.address(), "members") == \
        [ALICE.public_key, DAVE.public_key]
    # inside a struct too: the type, not the argument's name, says where accounts are
    owned = ArgParser({"Owned": [{"name": "owner", "type": "AccountId"}, {"name": "hash", "type": "[u8; 32]"}]},
                      dev_uris=True)
    assert owned.text("Owned", '{"owner": "//Dave", "hash": "0x%s"}' % ("11" * 32), "o") == \
        [DAVE.public_key, b"\x11" * 32]


@pytest.mark.parametrize("t,text,message", [
    ("u8", "256", "argument a: expected a whole number from 0 to 255 (u8), got '256'"),
    ("u32", "-1", "expected a whole number"),
    ("u64", "0.05", "expected a whole number"),
    ("bool", "maybe", "expected true or false"),
    ("[u8; 32]", ALICE.address(), "expected 0x and 64 hex digits"),    # a hash, not an account
    ("AccountId", "5NotAnAddress", "is not an account"),
    ("[u8; 4]", "0x0102", "expected 0x and 8 hex digits"),
    ({"str": {"maxLen": 4}}, "too long", "at most 4 bytes of text"),
    ({"vec": "u32"}, "1, 2", "expected JSON"),
    ({"vec": "u32"}, '{"a": 1}', "expected a JSON list"),
    ({"vec": "u8"}, "[1, 300]", "argument a[1]: expected a whole number from 0 to 255"),
    ("Envelope", '{"import_w": 1}', "a Envelope has the fields import_w, export_w"),
])
def test_ill_typed_text_is_one_sentence_naming_the_argument(t, text, message):
    with pytest.raises(WalletError) as e:
        DEV.text(t, text, "a")
    assert message in str(e.value) and "\n" not in str(e.value)


def _call_args(pallet: str, call: str) -> dict:
    p = next(p for p in METADATA["pallets"] if p["name"] == pallet)
    return {a["name"]: a["type"] for a in next(c for c in p["calls"] if c["name"] == call)["args"]}


def test_account_arguments_and_fields_come_from_the_metadata_types():
    def accounts(types: dict) -> set[str]:
        return {n for n, t in types.items() if STATE.holds_accounts(t)}
    assert accounts(_call_args("grid", "create_zone")) == {"dso"}
    assert accounts(_call_args("grid", "force_set_tariff")) == set()
    assert accounts(_call_args("identity", "license")) == {"who"}          # not document_hash, also 32 bytes
    assert accounts(_call_args("council", "set_members")) == {"new_members"}   # Members = ListOf(AccountId, ...)
    assert accounts(STATE.event_field_types("identity", "Suspended")) == {"who", "registrar"}
    assert accounts(STATE.event_field_types("council", "MembersSet")) == {"members"}
    assert STATE.holds_accounts("Motion") and not STATE.holds_accounts("Threshold")
    assert STATE.event_field_types("identity", "NoSuchEvent") == {}


def test_render_shows_accounts_by_type_and_hashes_as_hex():
    ss58 = DAVE.address
    motion = STATE.decode("Motion", [ALICE.public_key, [6, 0, []], 6, 0, 1, [1, 2, True], [ALICE.public_key],
                                     [], 10, None, 10])
    shown = STATE.render("Motion", motion, lambda a: "acct:" + a.hex()[:4])
    assert shown["proposer"] == shown["ayes"][0] == "acct:" + ALICE.public_key.hex()[:4]
    assert shown["threshold"] == {"num": 1, "den": 2, "strict": True}
    assert STATE.accounts_in("Motion", motion) == [ALICE.public_key, ALICE.public_key]
    doc = b"\x22" * 32
    assert STATE.render("[u8; 32]", doc, ss58) == "0x" + doc.hex()
    assert STATE.render({"option": "AccountId"}, DAVE.public_key, lambda a: ss58()) == DAVE.address()
    assert STATE.render({"tuple": ["u32", "AccountId"]}, (1, DAVE.public_key), lambda a: "d") == [1, "d"]
    assert STATE.accounts_in({"vec": {"tuple": ["[u8; 32]", "AccountId"]}}, [(doc, DAVE.public_key)]) == \
        [DAVE.public_key]


def test_role_and_status_names_come_from_the_identity_pallets_constants():
    lic = Licences.of(STATE)
    assert lic.roles == tuple((r.name.lower(), int(r)) for r in Role)
    assert lic.statuses == tuple((s.name.lower(), int(s)) for s in Status)
    assert lic.parse("prosumer, DSO") == int(Role.PROSUMER | Role.DSO)
    assert lic.names(int(Role.CONSUMER | Role.VALIDATOR_OPERATOR)) == ["consumer", "validator_operator"]
    assert lic.status_name(int(Status.SUSPENDED)) == "suspended" and lic.status_name(9) == "status 9"
    assert lic.active == int(Status.ACTIVE)
    with pytest.raises(WalletError, match="unknown role 'wizard' \\(known roles: prosumer, consumer, dso, "
                                          "registrar, issuer, validator_operator\\)"):
        lic.parse("consumer,wizard")
    with pytest.raises(WalletError, match="no role given"):
        lic.parse(" , ")
    older = {"pallets": [{"name": "identity", "index": 6, "constants": {"all_roles": 63}}]}
    with pytest.raises(WalletError, match="an incompatible runtime"):
        Licences.of(ChainState(None, older))


def test_required_ayes_are_the_council_pallets_rule():
    """The wallet computes a motion's required ayes itself; for every threshold num/den (den up to
    7, strict or not) and every council size up to 12 it equals pallets.council.required_count."""
    checked = 0
    for den in range(1, 8):
        for num in range(0, den + 1):
            for strict in (False, True):
                t = council_pallet.Threshold(num, den, strict)
                assert threshold_text(num, den, strict) == council_pallet.threshold_text(t)
                for n in range(0, 13):
                    assert required_count(num, den, strict, n) == council_pallet.required_count(t, n), (t, n)
                    checked += 1
    assert checked == 35 * 2 * 13
