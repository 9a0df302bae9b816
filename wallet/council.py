"""The council's side of the operator commands as a library: root calls built by name from the
node's metadata with arguments typed as text, the council's members, its open motions decoded, and
the checks `admin council` runs before signing.

A motion carries a plain call `[pallet index, call index, [args]]` (pallets/council.py). The client
builds it the way any third party can (docs/rpc.md, metadata): find the pallet and the call by name,
read each argument's declared type, and parse the text the operator typed into that type
(`parse_value`): integers, booleans, accounts (SS58, 0x public key, and on dev and local chains a
`//Dev` URI), 0x hex for hashes and bytes, text, and JSON for lists, tuples and structs. An account
is whatever the metadata types `AccountId` (alone or inside a list, option, tuple or struct); a
`[u8; 32]` is a hash, given as 0x hex. A missing, unknown or ill-typed argument is one sentence
naming it, and nothing is sent.

What the pallet would refuse (a signer who is not a member, a call that is not a root call, a second
vote, an enactment before `enact_at`) is refused here first with the pallet's own sentence, read
from the metadata's error list, so the message is the chain's and no fee is paid.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any

from primitives import ss58
from primitives.extrinsic import Call
from primitives.keys import InvalidSecret, Keypair
from wallet.admin import RoleError
from wallet.chain import ACCOUNT_TYPE, to_json
from wallet.wallet import Wallet, WalletError

#: chain types (system_chainType) on which `//Name` dev URIs may stand for accounts
DEV_CHAIN_TYPES = ("Development", "Local")
_BOOLS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
_UINT_BITS = {"u8": 8, "u16": 16, "u32": 32, "u64": 64, "u128": 128}


# ---------------------------------------------------------------------------------------------
# thresholds
# ---------------------------------------------------------------------------------------------

def required_count(num: int, den: int, strict: bool, member_count: int) -> int:
    """Ayes a motion needs out of `member_count` members under threshold num/den, the council
    pallet's rule (pallets/council.py `required_count`): at least ceil(n*num/den), or more than
    n*num/den when strict; never fewer than one (a motion always needs its proposer)."""
    need = member_count * num // den + 1 if strict else -(-member_count * num // den)
    return max(1, need)


def threshold_text(num: int, den: int, strict: bool) -> str:
    """`>1/2` (more than half) or `2/3` (at least two thirds), as the pallet writes thresholds."""
    return (">" if strict else "") + f"{num}/{den}"


# ---------------------------------------------------------------------------------------------
# metadata lookups
# ---------------------------------------------------------------------------------------------

def _by_name(items: list[dict], name: str) -> dict | None:
    return next((i for i in items if i.get("name") == name), None)


def find_call(metadata: dict, pallet: str, call: str) -> tuple[dict, dict]:
    """The metadata entries of `pallet.call`; WalletError naming what exists otherwise."""
    pallets = metadata.get("pallets", [])
    p = _by_name(pallets, pallet)
    if p is None:
        raise WalletError(f"unknown pallet {pallet!r} (the runtime's pallets: "
                          f"{', '.join(sorted(str(x['name']) for x in pallets))})")
    c = _by_name(p.get("calls") or [], call)
    if c is None:
        roots = sorted(str(x["name"]) for x in p.get("calls") or [] if x.get("origin") == "root")
        raise WalletError(f"unknown call {pallet}.{call} (its root calls: {', '.join(roots) or 'none'})")
    return p, c


def pallet_error(metadata: dict, pallet: str, name: str) -> str:
    """The sentence of a pallet's error, as the chain would report it."""
    p = _by_name(metadata.get("pallets", []), pallet) or {}
    e = _by_name(p.get("errors") or [], name)
    if e is None:
        raise WalletError(f"the node's runtime has no error {pallet}.{name} (an incompatible runtime)")
    return str(e["message"])


# ---------------------------------------------------------------------------------------------
# typed values from text
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ArgParser:
    """Parses an argument's text into the plain value of its metadata type; `AccountId` (anywhere
    in the type) takes an account as SS58, 0x public key or, on dev chains, a //Name URI."""

    types: dict[str, list[dict]]      # the metadata's struct types
    dev_uris: bool                    # accept //Name URIs for accounts (dev and local chains only)

    def account(self, text: str, name: str) -> bytes:
        t = text.strip()
        if t.startswith("//"):
            if not self.dev_uris:
                raise WalletError(f"argument {name}: dev URIs such as {t} name accounts on dev and local chains "
                                  "only; give an SS58 address or a 0x public key")
            try:
                return Keypair.from_uri(t).public_key
            except InvalidSecret as e:
                raise WalletError(f"argument {name}: {e}") from None
        if t.startswith("0x"):
            return self.hex(t, name, 32)
        try:
            return ss58.decode_with_prefix(t)[0]
        except ss58.AddressError as e:
            raise WalletError(f"argument {name}: {t!r} is not an account (SS58 address or 0x public key: {e})") from None

    @staticmethod
    def hex(text: str, name: str, length: int | None) -> bytes:
        b = None
        if text.startswith("0x"):
            try:
                b = bytes.fromhex(text[2:])
            except ValueError:
                b = None
        if b is None or (length is not None and len(b) != length):
            need = f"0x and {2 * length} hex digits" if length is not None else "0x-prefixed hex"
            raise WalletError(f"argument {name}: expected {need}, got {text!r}")
        return b

    def text(self, t: Any, text: str, name: str) -> Any:
        """`text` as typed on the command line, as the plain value of metadata type `t`."""
        if isinstance(t, str):
            if t in _UINT_BITS:
                digits = text.strip().replace("_", "")
                if not digits.isdigit() or int(digits) >= 2 ** _UINT_BITS[t]:
                    raise WalletError(f"argument {name}: expected a whole number from 0 to {2 ** _UINT_BITS[t] - 1} "
                                      f"({t}), got {text!r}")
                return int(digits)
            if t == "bool":
                b = _BOOLS.get(text.strip().lower())
                if b is None:
                    raise WalletError(f"argument {name}: expected true or false, got {text!r}")
                return b
            if t == ACCOUNT_TYPE:
                return self.account(text, name)
            if t.startswith("[u8;"):
                return self.hex(text, name, int(t[4:-1]))
            if t == "bytes":
                return self.hex(text, name, None)
            if t == "str":
                return text
            return self.json_value(t, self._json(text, name), name)     # raw or a struct
        if "str" in t:
            limit = t["str"].get("maxLen") if isinstance(t["str"], dict) else None
            if limit is not None and len(text.encode()) > limit:
                raise WalletError(f"argument {name}: at most {limit} bytes of text, got {len(text.encode())}")
            return text
        if "bytes" in t:
            return self.hex(text, name, None)
        if "option" in t:
            return None if text.strip().lower() in ("none", "null") else self.text(t["option"], text, name)
        return self.json_value(t, self._json(text, name), name)        # vec, tuple

    @staticmethod
    def _json(text: str, name: str) -> Any:
        try:
            return json.loads(text)
        except ValueError:
            raise WalletError(f"argument {name}: expected JSON (a list such as [1, 2] or an object), "
                              f"got {text!r}") from None

    def json_value(self, t: Any, v: Any, name: str) -> Any:
        """A JSON value (inside a list, tuple or struct) as the plain value of type `t`."""
        if isinstance(t, dict) and "vec" in t:
            if not isinstance(v, list):
                raise WalletError(f"argument {name}: expected a JSON list, got {json.dumps(v)}")
            return [self.json_value(t["vec"], x, f"{name}[{i}]") for i, x in enumerate(v)]
        if isinstance(t, dict) and "tuple" in t:
            if not isinstance(v, list) or len(v) != len(t["tuple"]):
                raise WalletError(f"argument {name}: expected a JSON list of {len(t['tuple'])} items")
            return [self.json_value(tt, x, f"{name}[{i}]") for i, (tt, x) in enumerate(zip(t["tuple"], v))]
        if isinstance(t, dict) and "option" in t:
            return None if v is None else self.json_value(t["option"], v, name)
        if isinstance(t, str) and t in self.types:
            fields = self.types[t]
            if isinstance(v, dict):
                unknown = sorted(set(v) - {f["name"] for f in fields})
                missing = [f["name"] for f in fields if f["name"] not in v]
                if unknown or missing:
                    raise WalletError(f"argument {name}: a {t} has the fields "
                                      f"{', '.join(f['name'] for f in fields)}")
                v = [v[f["name"]] for f in fields]
            if not isinstance(v, list) or len(v) != len(fields):
                raise WalletError(f"argument {name}: a {t} is a JSON object or list of {len(fields)} fields")
            return [self.json_value(f["type"], x, f"{name}.{f['name']}") for f, x in zip(fields, v)]
        if t == "raw":
            return v
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, int):
            v = str(v)
        if not isinstance(v, str):
            raise WalletError(f"argument {name}: unexpected JSON value {json.dumps(v)}")
        return self.text(t, v, name)


def build_call(w: Wallet, pallet: str, call: str, assignments: list[str], *, dev_uris: bool) -> tuple[Call, dict]:
    """The root call `pallet.call` with arguments from `NAME=VALUE` texts, and its description."""
    p, c = find_call(w.state.metadata, pallet, call)
    if c.get("origin") != "root":
        raise WalletError(f"{pallet}.{call} is not a root call (its origin is {c.get('origin')}): a motion "
                          "carries root calls only; the role's own key signs this one directly")
    given: dict[str, str] = {}
    for a in assignments:
        key, eq, value = a.partition("=")
        if not eq or not key:
            raise WalletError(f"argument {a!r} is not NAME=VALUE")
        if key in given:
            raise WalletError(f"argument {key} is given twice")
        given[key] = value
    decl = c.get("args") or []
    names = [d["name"] for d in decl]
    unknown = [k for k in given if k not in names]
    if unknown:
        raise WalletError(f"{pallet}.{call} has no argument {unknown[0]} (its arguments: {', '.join(names) or 'none'})")
    missing = [n for n in names if n not in given]
    if missing:
        signature = ", ".join(f"{d['name']}: {_type_text(d['type'])}" for d in decl)
        raise WalletError(f"{pallet}.{call}: missing argument {missing[0]} (its arguments: {signature})")
    parser = ArgParser(w.state.types, dev_uris)
    plain = tuple(parser.text(d["type"], given[d["name"]], d["name"]) for d in decl)
    the_call = Call(int(p["index"]), int(c["index"]), plain)
    return the_call, describe_call(w, the_call.to_plain())


def _type_text(t: Any) -> str:
    return t if isinstance(t, str) else json.dumps(t, separators=(",", ":"))


# ---------------------------------------------------------------------------------------------
# decoding a motion's call
# ---------------------------------------------------------------------------------------------

def describe_call(w: Wallet, plain: Any) -> dict:
    """A plain call as {pallet, call, args: {name: value}} with accounts as SS58 addresses and
    other bytes as 0x-hex; unknown indices stay numbers."""
    try:
        pi, ci, args = plain
    except (TypeError, ValueError):
        return {"pallet": None, "call": None, "args": to_json(plain)}
    p = next((x for x in w.state.metadata.get("pallets", []) if x.get("index") == pi), None)
    c = None if p is None else next((x for x in p.get("calls") or [] if x.get("index") == ci), None)
    if p is None or c is None or len(c.get("args") or []) != len(args):
        return {"pallet": p["name"] if p else pi, "call": ci, "args": to_json(args)}
    out = {d["name"]: w.state.render(d["type"], w.state.decode(d["type"], v), w.address)
           for d, v in zip(c["args"], args)}
    return {"pallet": p["name"], "call": c["name"], "args": out}


def call_text(d: dict) -> str:
    """`grid.force_set_tariff(from_zone=1, to_zone=2, band=1, price_per_kwh=50000)`."""
    args = ", ".join(f"{k}={json.dumps(v) if not isinstance(v, (int, str)) or isinstance(v, bool) else v}"
                     for k, v in d["args"].items())
    return f"{d['pallet']}.{d['call']}({args})"


# ---------------------------------------------------------------------------------------------
# members and motions
# ---------------------------------------------------------------------------------------------

def _label(w: Wallet, who: bytes, name: str | None) -> str:
    return f"{name} ({w.address(who)})" if name else w.address(who)


async def members(w: Wallet, at: bytes | None = None) -> list[bytes]:
    return [bytes(m) for m in await w.state.read("council", "members", at=at) or []]


async def require_member(w: Wallet, who: bytes, name: str | None, at: bytes) -> list[bytes]:
    """The members, if `who` is one of them; RoleError (nothing sent) otherwise."""
    current = await members(w, at)
    if not current:
        raise WalletError("this chain has no council (its root calls go through sudo)")
    if who not in current:
        raise RoleError(f"account {_label(w, who, name)} is not a council member "
                        f"({pallet_error(w.state.metadata, 'council', 'NotMember')}); nothing was sent")
    return current


async def motion(w: Wallet, motion_id: int, at: bytes) -> dict:
    m = await w.state.read("council", "motions", motion_id, at=at)
    if m is None:
        raise WalletError(f"motion {motion_id}: {pallet_error(w.state.metadata, 'council', 'UnknownMotion')}")
    return m


async def best_number(w: Wallet, at: bytes) -> int:
    return int((await w.client.request("chain_getHeader", ["0x" + at.hex()]))["number"], 16)


def motion_json(w: Wallet, motion_id: int, m: dict, member_count: int, best: int) -> dict:
    """A motion as `admin council motions` shows it. The next block is the first that could enact
    it, so a passed motion is enactable once the best block is enact_at - 1."""
    t = m["threshold"]          # decoded by the metadata's `Threshold` struct: num, den, strict
    num, den, strict = int(t["num"]), int(t["den"]), bool(t["strict"])
    d = describe_call(w, m["call"])
    enact_at = m["enact_at"]
    if enact_at is None:
        status = "voting"
    else:
        status = "enactable" if best + 1 >= enact_at else "passed"
    return {"id": motion_id, "call": call_text(d), "pallet": d["pallet"], "callName": d["call"], "args": d["args"],
            "proposer": w.address(m["proposer"]), "ayes": len(m["ayes"]), "nays": len(m["nays"]),
            "required": required_count(num, den, strict, member_count),
            "threshold": threshold_text(num, den, strict),
            "ayeVoters": [w.address(a) for a in m["ayes"]], "nayVoters": [w.address(a) for a in m["nays"]],
            "end": m["end"], "status": status, "enactAt": enact_at}


async def motions(w: Wallet) -> tuple[int, list[dict]]:
    """(best block, every open motion by id)."""
    at = await w.state.best_hash()
    best = await best_number(w, at)
    count = len(await members(w, at))
    keys, _more = await w.state.keys_with_prefix(w.state.prefix("council", "motions"), at, None)
    values = await w.state.read_keys("council", "motions", keys, at)
    rows = [motion_json(w, w.state.decode_keys("council", "motions", k)[0], m, count, best)
            for k, m in zip(keys, values) if m is not None]
    return best, sorted(rows, key=lambda r: r["id"])


async def chain_allows_dev_uris(w: Wallet) -> bool:
    return str(await w.client.request("system_chainType", [])) in DEV_CHAIN_TYPES
