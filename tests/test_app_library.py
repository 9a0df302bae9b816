"""The browser's chain library (app/src/chain) against the Python implementation.

The web app builds and signs extrinsics, storage keys and keystore files itself, so its bytes must be
the node's bytes. The vectors are computed here, from the Python code (tests/protocol_vectors.py,
which keeps docs/protocol.md in step, plus calls, storage keys, struct values and events built from
the runtime's own metadata), written to a JSON file and handed to `node --test app/test/` through
GRIDCHAIN_VECTORS: nothing is copied into the JavaScript tests. A keystore file written by the Python
wallet goes the same way (GRIDCHAIN_PY_KEYSTORE), and the files the JavaScript vault writes come back
(GRIDCHAIN_JS_KEYSTORE_DIR) and must open here.

The slow test submits a balances.transfer built and signed by the JavaScript library to a real
`gridchain --dev` node and checks that it finalizes and moves the balance.

`python -m tests.test_app_library OUT.json` writes the vectors file alone, for running
`GRIDCHAIN_VECTORS=OUT.json npm test` in app/ by hand.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "app"
GENESIS = bytes.fromhex("11" * 32)
#: safe integers travel as JSON numbers, larger ones as decimal strings (JavaScript's 2^53 limit)
SAFE_MAX = 2**53 - 1
#: the Python wallet's keystore file opened by the JavaScript tests, and what they must find in it
PY_KEYSTORE_URI = "//Ferdie"
PY_KEYSTORE_PASSWORD = "correct horse ☃ battery"
#: the password of the keystore files the JavaScript tests write for Python to open (//Charlie's seed)
JS_KEYSTORE_PASSWORD = "browser ünïcode pw"
NPM_CI_TIMEOUT_S = 600
NODE_TEST_TIMEOUT_S = 240


def _jsonable(value: Any) -> Any:
    """Plain values as the JavaScript side renders them: bytes as 0x-hex, big ints as strings."""
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if -SAFE_MAX <= value <= SAFE_MAX else str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    raise TypeError(f"cannot put {type(value).__name__} in the vectors")


def _sample(types: dict, t: Any, account: bytes, depth: int = 0) -> Any:
    """A plain value of metadata type `t`, with big integers, accounts and text that exercise the codec."""
    if isinstance(t, str):
        if t in ("u8", "u16", "u32"):
            return {"u8": 200, "u16": 60_000, "u32": 4_000_000_000}[t]
        if t == "u64":
            return 2**60 + 12_345 if depth % 2 == 1 else 70_000
        if t == "u128":
            return (2**100 + 7).to_bytes(16, "big")
        if t == "bool":
            return True
        if t == "AccountId":
            return account
        if t.startswith("[u8;"):
            return bytes(range(int(t[4:-1].strip())))
        if t in ("str",):
            return "zone é"
        if t == "bytes":
            return b"\x01\x02\x03"
        if t == "raw":
            return 5
        return [_sample(types, f["type"], account, depth + 1) for f in types[t]]
    if "option" in t:
        return _sample(types, t["option"], account, depth + 1) if depth % 2 == 0 else None
    if "vec" in t:
        return [_sample(types, t["vec"], account, depth + 1), _sample(types, t["vec"], account, depth + 2)]
    if "tuple" in t:
        return [_sample(types, x, account, depth + 1) for x in t["tuple"]]
    if "bytes" in t:
        return b"\xff" * 3
    if "str" in t:
        return "gridchain ⚡"
    raise ValueError(f"no sample for {t!r}")


def build_vectors() -> dict:
    """Every value the browser must compute identically, from the Python implementation."""
    from pallets import build_runtime
    from primitives import codec, ss58
    from primitives.keys import Keypair, dev_keypair, secret_seed_from_uri
    from rpc.client import call_from_metadata
    from rpc.jsonshapes import header_to_json
    from tests import protocol_vectors
    from wallet.chain import ChainState

    metadata = build_runtime().metadata()
    state = ChainState(None, metadata)  # type: ignore[arg-type]  (keys and decoding need no client)
    alice, bob = dev_keypair("Alice"), dev_keypair("Bob")

    uris = ["//Alice", "//Bob", "//Alice//stash", "//7", "//" + "a-very-long-junction-name-over-32-bytes",
            "legal winner thank year wave sausage worth useful legal winner thank yellow",
            "legal winner thank year wave sausage worth useful legal winner thank yellow//hot///secret",
            "0x" + "42" * 32 + "//x",
            "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
            "letter advice cage absurd amount doctor acoustic avoid letter advice cage absurd amount doctor "
            "acoustic avoid letter advice cage absurd amount doctor acoustic bless"]
    keys = []
    for uri in uris:
        kp = Keypair.from_uri(uri)
        keys.append({"uri": uri, "seed": "0x" + secret_seed_from_uri(uri).hex(),
                     "publicKey": "0x" + kp.public_key.hex(), "ss58": kp.address(),
                     "ss58Generic": ss58.encode(kp.public_key, 42),
                     "signature": "0x" + kp.sign(b"gridchain").hex()})

    bob_ss58 = bob.address()
    cases = [("balances", "transfer", {"dest": bob_ss58, "amount": 1_000_000}),
             ("balances", "transfer", {"dest": "0x" + bob.public_key.hex(), "amount": 2**64 - 1}),
             ("balances", "create_asset", {"asset": 7, "symbol": "GEUR", "decimals": 6, "issuer": bob_ss58}),
             ("market", "place_bid", {"zone": 1, "interval_start": 1_750_000_500, "price_per_kwh": 120_000,
                                      "quantity_wh": 1_500, "meter": "0x" + "ab" * 32, "green_only": True}),
             ("market", "cancel", {"order_id": 2**53 + 1}),
             ("field_meters", "certify", {"scheme": 1, "public_key": "0x0102ff", "curve": "secp256r1",
                                          "device_id": "meter ☀ 1", "import_obis": "1-0:1.8.0",
                                          "export_obis": "", "owner": bob_ss58, "zone": 3, "kind": 2,
                                          "rated_power_w": 10_000}),
             ("council", "set_members", {"new_members": [alice.address(), bob_ss58]})]
    calls = []
    for pallet, name, args in cases:
        py_args = {k: int(v) if isinstance(v, str) and v.isdigit() else v for k, v in args.items()}
        call = call_from_metadata(metadata, pallet, name, py_args)
        calls.append({"pallet": pallet, "call": name, "args": _jsonable(args), "encoded": "0x" + call.encode().hex()})
    inner = call_from_metadata(metadata, "balances", "transfer", {"dest": bob_ss58, "amount": 5})
    outer = call_from_metadata(metadata, "sudo", "sudo", {"call": inner.to_plain()})
    nested = {"inner": {"pallet": "balances", "call": "transfer", "args": {"dest": bob_ss58, "amount": 5}},
              "outer": {"pallet": "sudo", "call": "sudo"}, "encoded": "0x" + outer.encode().hex()}

    storage = []
    for pallet, item, py_keys, js_keys in [
            ("system", "account", [alice.public_key], [alice.address()]),
            ("balances", "asset_balance", [1, alice.public_key], [1, alice.address()]),
            ("balances", "asset_balance", [1], [1]),
            ("identity", "participants", [bob.public_key], ["0x" + bob.public_key.hex()]),
            ("system", "block_hash", [2**40], [2**40]),
            ("timestamp", "now", [], [])]:
        storage.append({"pallet": pallet, "item": item, "keys": js_keys,
                        "key": "0x" + state.key(pallet, item, *py_keys).hex()})

    values = []
    for name, fields in sorted(metadata["types"].items()):
        plain = _sample(metadata["types"], name, alice.public_key)
        decoded = state.decode(name, plain)
        values.append({"type": name, "encoded": "0x" + codec.pack(plain).hex(),
                       "rendered": _jsonable(state.render(name, decoded, lambda b: ss58.encode(b)))})

    failed = next(e["index"] for e in state.pallet("system")["events"] if e["name"] == "ExtrinsicFailed")
    transfer = next(e["index"] for e in state.pallet("balances")["events"] if e["name"] == "Transfer")
    raw_events = [[[0], state.pallet("balances")["index"], transfer, [bob.public_key, alice.public_key, 2**60]],
                  [[1, 1], state.pallet("balances")["index"], transfer, [alice.public_key, bob.public_key, 1000]],
                  [[1, 2], state.pallet("system")["index"], failed, [[3, 0, "the balance is too low"], 40_000]],
                  [[2], 250, 9, [b"\x01"]]]
    events_raw = codec.pack(raw_events)
    events = []
    for ev in state.block_events(events_raw):
        types = state.event_field_types(ev.pallet, ev.name)
        fields = {k: state.render(types.get(k), v, lambda b: ss58.encode(b)) for k, v in ev.fields.items()}
        events.append({"pallet": ev.pallet, "name": ev.name, "fields": _jsonable(fields)})

    ints = [0, 1, 127, 128, 255, 256, 65_535, 65_536, 2**32 - 1, 2**32, 2**53 - 1, 2**53, 2**64 - 1]
    sealed_header_hex = protocol_vectors.vectors()["header.sealed"]
    from primitives.types import Header
    header = Header.decode(bytes.fromhex(sealed_header_hex[2:]))

    return {
        "protocol": protocol_vectors.vectors(),
        "genesisHash": "0x" + GENESIS.hex(),
        "metadata": metadata,
        "keys": keys,
        "calls": calls,
        "nestedCall": nested,
        "storage": storage,
        "values": values,
        "events": {"encoded": "0x" + events_raw.hex(), "decoded": events},
        "integers": [{"value": _jsonable(i), "encoded": "0x" + codec.pack(i).hex()} for i in ints],
        "headerJson": header_to_json(header),
        "pyKeystore": {"uri": PY_KEYSTORE_URI, "password": PY_KEYSTORE_PASSWORD,
                       "publicKey": "0x" + Keypair.from_uri(PY_KEYSTORE_URI).public_key.hex()},
        "jsKeystore": {"uri": "//Charlie", "password": JS_KEYSTORE_PASSWORD},
    }


def write_python_keystore(directory: Path) -> Path:
    """A keystore file as the `gridchain wallet` writes it (minimal argon2id cost, for speed)."""
    from primitives.keys import secret_seed_from_uri
    from wallet.keystore import KdfParams, Keystore
    info = Keystore(directory).add("ferdie", secret_seed_from_uri(PY_KEYSTORE_URI), PY_KEYSTORE_PASSWORD,
                                   KdfParams.minimal())
    return info.path


def _node() -> str:
    node = shutil.which("node")
    assert node, "Node.js is needed for the web app's tests (the machines have it: apt install nodejs)"
    return node


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """app/node_modules, installed from the lock file when missing or older than it (bounded in time)."""
    target = APP / "node_modules"
    installed = target / ".package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < (APP / "package-lock.json").stat().st_mtime:
        npm = shutil.which("npm")
        assert npm, "npm is needed to install the web app's packages"
        r = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=APP, capture_output=True, text=True,
                           timeout=NPM_CI_TIMEOUT_S, check=False)
        assert r.returncode == 0, f"npm ci failed in app/:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return target


def _websocket_flags(node: str) -> list[str]:
    """Node 20 has a WebSocket class only behind a flag (22 has it by default), the browser's API."""
    r = subprocess.run([node, "-e", "process.exit(typeof WebSocket === 'function' ? 0 : 1)"],
                       capture_output=True, timeout=30, check=False)
    return [] if r.returncode == 0 else ["--experimental-websocket"]


def test_browser_library_matches_the_python_implementation(tmp_path: Path, node_modules: Path) -> None:
    """`node --test app/test/` with this implementation's vectors and keystore file, then the
    keystore files the browser's vault wrote open with the Python wallet."""
    from primitives.keys import secret_seed_from_uri
    from wallet.keystore import decrypt_seed

    vectors = tmp_path / "vectors.json"
    vectors.write_text(json.dumps(build_vectors()))
    py_keystore = write_python_keystore(tmp_path / "py-keystore")
    js_dir = tmp_path / "js-keystore"
    js_dir.mkdir()
    env = {**os.environ, "GRIDCHAIN_VECTORS": str(vectors), "GRIDCHAIN_PY_KEYSTORE": str(py_keystore),
           "GRIDCHAIN_JS_KEYSTORE_DIR": str(js_dir)}
    r = subprocess.run([_node(), "--test", "--test-reporter=spec", "test/"], cwd=APP, env=env,
                       capture_output=True, text=True, timeout=NODE_TEST_TIMEOUT_S, check=False)
    assert r.returncode == 0, f"node --test app/test/ failed:\n{r.stdout[-12000:]}\n{r.stderr[-4000:]}"

    written = sorted(js_dir.glob("*.json"))
    assert [p.name for p in written] == ["charlie-browser-cost.json", "charlie-minimal.json"], r.stdout[-3000:]
    for path in written:
        doc = json.loads(path.read_text())
        assert decrypt_seed(doc, JS_KEYSTORE_PASSWORD, str(path)) == secret_seed_from_uri("//Charlie")


@pytest.mark.slow
def test_transfer_built_in_the_browser_library_finalizes_on_a_dev_node(tmp_path: Path, node_modules: Path) -> None:
    """//Bob sends 1.5 GRID to //Dave with an extrinsic the JavaScript library built and signed; the
    node accepts it, finalizes it, and the balances move by exactly the amount (plus Bob's fee)."""
    from primitives.keys import dev_keypair
    from rpc.client import Client
    from tests.node_process import DevNode
    from wallet.chain import ChainState

    amount = 1_500_000_000
    bob, dave = dev_keypair("Bob"), dev_keypair("Dave")
    node = _node()
    with DevNode(tmp_path / "node", block_time_ms=200) as dev, Client(dev.url) as client:
        def free(who: bytes) -> int:
            state = ChainState(client._async, client.metadata())  # noqa: SLF001 - read-only key building
            key = state.key("system", "account", who)
            raw = client.get_storage(key)
            return state.decode_value("system", "account", raw)["free"] if raw else 0

        bob_before, dave_before = free(bob.public_key), free(dave.public_key)
        r = subprocess.run([node, *_websocket_flags(node), "scripts/submit-transfer.mjs", dev.ws_url, "//Bob",
                            dave.address(), str(amount)],
                           cwd=APP, capture_output=True, text=True, timeout=90, check=False)
        assert r.returncode == 0, f"submit.mjs failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}\n{dev.log_tail()}"
        report = json.loads(r.stdout.strip().splitlines()[-1])
        assert report["success"] is True, report
        assert report["statuses"][0] == "signing" and report["statuses"][-1] == "finalized", report
        transfer = report["events"][0]
        assert (transfer["pallet"], transfer["name"], transfer["fields"]) == (
            "balances", "Transfer", {"source": bob.address(), "dest": dave.address(), "amount": amount})
        block = client.request("chain_getBlock", [report["blockHash"]])
        assert report["extrinsic"] in block["block"]["extrinsics"]
        assert transfer["extrinsicIndex"] == block["block"]["extrinsics"].index(report["extrinsic"])
        assert free(dave.public_key) == dave_before + amount
        assert int(report["destFreeAfter"]) - int(report["destFreeBefore"]) == amount   # read by the library
        assert bob_before - free(bob.public_key) > amount     # the amount and the fee
        # the heads the library followed carry the hashes the node gives their numbers
        assert report["finalizedHeads"], report
        for number, block_hash in report["finalizedHeads"]:
            assert client.request("chain_getBlockHash", [number]) == block_hash
        # roles and status named from identity's metadata constants, as the Python wallet reads them
        state = ChainState(client._async, client.metadata())  # noqa: SLF001 - read-only key building
        licence = state.decode_value("identity", "participants",
                                     client.get_storage(state.key("identity", "participants", bob.public_key)))
        consts = state.pallet("identity")["constants"]
        roles = sorted(k[5:] for k, bit in consts.items() if k.startswith("role_") and licence["roles"] & bit)
        status = next(k[7:] for k, v in consts.items() if k.startswith("status_") and v == licence["status"])
        assert roles and sorted(report["senderRoles"]["roles"]) == roles, report
        assert report["senderRoles"]["status"] == status == "active"

        # a call the runtime refuses comes back with the pallet's sentence, as the page shows it
        r = subprocess.run([node, *_websocket_flags(node), "scripts/submit-transfer.mjs", dev.ws_url, "//Bob",
                            dave.address(), str(2**63)],
                           cwd=APP, capture_output=True, text=True, timeout=90, check=False)
        assert r.returncode == 0, f"submit.mjs failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
        refused = json.loads(r.stdout.strip().splitlines()[-1])
        assert refused["success"] is False and refused["error"], refused
        assert free(dave.public_key) == dave_before + amount

        # an account that cannot pay the fee: the node refuses the transaction, with its reason
        r = subprocess.run([node, *_websocket_flags(node), "scripts/submit-transfer.mjs", dev.ws_url, "//Unfunded",
                            dave.address(), "1"],
                           cwd=APP, capture_output=True, text=True, timeout=90, check=False)
        assert r.returncode == 0, f"submit.mjs failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
        invalid = json.loads(r.stdout.strip().splitlines()[-1])
        assert invalid["code"] == 1010 and invalid["rejected"].startswith("Invalid Transaction: "), invalid
        assert invalid["statuses"] == ["signing", "invalid"], invalid
        assert free(dave.public_key) == dave_before + amount


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "vectors.json")
    out.write_text(json.dumps(build_vectors()))
    print(f"wrote {out}")
