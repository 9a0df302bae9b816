"""The council's typed arguments without a node: text parsed into each metadata type the way
`gridchain admin council propose` does (wallet/council.py), and which call arguments hold accounts
(from the pallets' own declarations, aliases such as `Members = ListOf(AccountId, ...)` included)."""
from __future__ import annotations

import pytest

from pallets import council as council_pallet
from pallets import grid
from primitives.keys import dev_keypair
from wallet.council import ArgParser, account_args
from wallet.wallet import WalletError

ALICE, DAVE = dev_keypair("Alice"), dev_keypair("Dave")
TYPES = {"Envelope": [{"name": "import_w", "type": "u64"}, {"name": "export_w", "type": "u64"}]}
DEV = ArgParser(TYPES, dev_uris=True)
LIVE = ArgParser(TYPES, dev_uris=False)


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
    assert DEV.text(t, text, "arg", False) == expect


def test_accounts_are_ss58_0x_or_dev_uris_on_dev_chains_only():
    for text in (ALICE.address(), "0x" + ALICE.public_key.hex(), "//Alice"):
        assert DEV.text("[u8; 32]", text, "who", True) == ALICE.public_key
    assert LIVE.text("[u8; 32]", DAVE.address(), "who", True) == DAVE.public_key
    with pytest.raises(WalletError, match="dev URIs such as //Alice name accounts on dev and local chains only"):
        LIVE.text("[u8; 32]", "//Alice", "who", True)
    assert DEV.text({"vec": "[u8; 32]"}, '["//Alice", "%s"]' % DAVE.address(), "members", True) == \
        [ALICE.public_key, DAVE.public_key]


@pytest.mark.parametrize("t,text,account,message", [
    ("u8", "256", False, "argument a: expected a whole number from 0 to 255 (u8), got '256'"),
    ("u32", "-1", False, "expected a whole number"),
    ("u64", "0.05", False, "expected a whole number"),
    ("bool", "maybe", False, "expected true or false"),
    ("[u8; 32]", ALICE.address(), False, "expected 0x and 64 hex digits"),    # a hash, not an account
    ("[u8; 32]", "5NotAnAddress", True, "is not an account"),
    ("[u8; 4]", "0x0102", False, "expected 0x and 8 hex digits"),
    ({"str": {"maxLen": 4}}, "too long", False, "at most 4 bytes of text"),
    ({"vec": "u32"}, "1, 2", False, "expected JSON"),
    ({"vec": "u32"}, '{"a": 1}', False, "expected a JSON list"),
    ({"vec": "u8"}, "[1, 300]", False, "argument a[1]: expected a whole number from 0 to 255"),
    ("Envelope", '{"import_w": 1}', False, "a Envelope has the fields import_w, export_w"),
])
def test_ill_typed_text_is_one_sentence_naming_the_argument(t, text, account, message):
    with pytest.raises(WalletError) as e:
        DEV.text(t, text, "a", account)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_account_arguments_come_from_the_pallets_declarations():
    create = grid.pallet.calls_by_name["create_zone"]
    assert account_args(grid.pallet.index, create.index) == {"dso"}
    tariff = grid.pallet.calls_by_name["force_set_tariff"]
    assert account_args(grid.pallet.index, tariff.index) == frozenset()
    set_members = council_pallet.pallet.calls_by_name["set_members"]      # Members = ListOf(AccountId, ...)
    assert account_args(council_pallet.pallet.index, set_members.index) == {"new_members"}
