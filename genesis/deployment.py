"""Deployment files: a real network's chain spec from a short TOML file a DSO team writes by hand.

`gridchain build-spec --from deployment.toml [--raw]` reads the file, checks it, and prints a chain
spec in the shape `genesis.chain_spec` builds (`dev`, `local`), with a council and no sudo key: on a
deployed chain every root call goes through a council motion. `genesis/examples/deployment.toml` is
a complete example with comments, and docs/operations.md ("A new deployment") walks through it.

The file's sections (every key is checked; an unknown one is an error, so a typo never passes):

    [chain]            name, id; chain_type ("Live"), block_time ("1s"), protocol_id ("grid")
    [token]            symbol, decimals; participant_balance (each participant's default balance)
    [stablecoin]       symbol, decimals, issuer (a participant with the issuer role)
    [[participants]]   name, account, roles; balance, document_hash
    [[bands]]          name, id, hours = ["HH:MM-HH:MM", ...]: the grid's time-of-use bands
    [[zones]]          id, name, dso (a participant with the dso role), import_capacity, export_capacity
    [[links]]          from, to, capacity; both_ways (false)
    [[tariffs]]        from, to, prices = { <band name> = price, ... }
    [council]          members (participant names), voting_period, enactment_delay, thresholds
    [[validators]]     operator (a participant with the validator_operator role), bls_public_key,
                       bls_proof_of_possession (as `gridchain key validator` prints them); account
                       (checked against the operator's, if given), bootnode
    [market]           interval, gate_closure (the runtime's, stated so the file says what it agreed
                       to); penalty
    [runtime]          spec_version (optional; the runtime version the chain starts under)

Units, so that a hand-written number means what it says:
- money (balances in the token, prices and the penalty in the stablecoin per kWh) is written in
  currency units as a TOML number: `0.04` is 0.04 GEUR per kWh, `1000` is 1,000 GRID. It is read
  exactly (never through a float) and must fit the currency's decimals.
- power is a whole number of watts, or a string with a unit: `"250kW"`, `"1.5MW"`, `"800W"`.
- time is a string: `"90s"`, `"15m"`, `"1h"`, `"3d"`, or a sum like `"1h30m"`. The council's
  voting_period and enactment_delay are counted in blocks on chain: a duration is converted with
  the chain's block_time (rounded up, so a period is never shorter than written), and a bare
  integer is taken as a number of blocks.

Time-of-use bands are chain-wide (the grid pallet keeps one band list for every zone pair): each
band lists its hours of the UTC day, and together the bands must cover the day exactly once (no
gap, no overlap). Every tariff prices every band, every zone has a tariff for trade inside it
(from = to), and every link has a tariff for the trade it carries: without one, no trade would
ever happen there.

Every error is one line that names the file and the line of the offending value, e.g.
`deployment.toml:23: tariff names zone 9, which no zone declares`. The lines come from
`genesis.toml_lines` (tomllib parses, a small scan finds the lines), through
`genesis.deployment_reader`'s typed getters.
"""
from __future__ import annotations

import difflib
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Any

from genesis.deployment_reader import (SECONDS_PER_DAY, U32_MAX, DeploymentError, TomlReader,
                                       shown)
from genesis.toml_lines import Path
from primitives.ss58 import GRIDCHAIN_SS58_PREFIX

__all__ = ["DeploymentError", "spec_from_file", "spec_from_text"]
#: roles a council member needs one of (the council pallet's rule)
COUNCIL_ROLES = ("registrar", "dso", "validator_operator")

_SECTIONS = {  # section -> (required keys, optional keys); "[[x]]" sections are arrays of tables
    "chain": ({"name", "id"}, {"chain_type", "block_time", "protocol_id"}),
    "token": ({"symbol", "decimals"}, {"participant_balance"}),
    "stablecoin": ({"symbol", "decimals", "issuer"}, set()),
    "participants": ({"name", "account", "roles"}, {"balance", "document_hash"}),
    "bands": ({"name", "id", "hours"}, set()),
    "zones": ({"id", "name", "dso", "import_capacity", "export_capacity"}, set()),
    "links": ({"from", "to", "capacity"}, {"both_ways"}),
    "tariffs": ({"from", "to", "prices"}, set()),
    "council": ({"members", "voting_period", "enactment_delay", "thresholds"}, set()),
    "validators": ({"operator", "bls_public_key", "bls_proof_of_possession"}, {"account", "bootnode"}),
    "market": ({"interval", "gate_closure"}, {"penalty"}),
    "runtime": (set(), {"spec_version"}),
}
_ARRAYS = {"participants", "bands", "zones", "links", "tariffs", "validators"}
_OPTIONAL_SECTIONS = {"runtime", "links"}

_HOURS = re.compile(r"^(\d\d):(\d\d)-(\d\d):(\d\d)$")
_THRESHOLD = re.compile(r"^(>?)(\d{1,3})/(\d{1,3})$")
_CHAIN_ID = re.compile(r"^[a-z0-9_]{1,64}$")
_SYMBOL = re.compile(r"^[A-Z][A-Z0-9]{0,15}$")
_BOOTNODE = re.compile(r"^/ip4/([0-9.]+)/tcp/(\d{1,5})/p2p/([1-9A-HJ-NP-Za-km-z]{40,64})$")


@dataclass
class _Participant:
    name: str
    account: str
    roles: list[str]
    index: int
    balance: int


# ---------------------------------------------------------------------------------------------
# the sections
# ---------------------------------------------------------------------------------------------

def _participants(f: TomlReader, token_decimals: int, symbol: str, default_balance: int) -> dict[str, _Participant]:
    from pallets.identity import ROLE_NAMES  # noqa: PLC0415
    out: dict[str, _Participant] = {}
    accounts: dict[str, Path] = {}
    for p in f.entries("participants"):
        name = f.text(p + ("name",), 32)
        if name in out:
            f.fail(p + ("name",), f"participant {name!r} is already declared at line "
                                  f"{f.line(('participants', out[name].index))}")
        account = f.address(p + ("account",))
        if account in accounts:
            f.fail(p + ("account",), f"account {account} is already participant "
                                     f"{f.get(accounts[account] + ('name',))!r} (line {f.line(accounts[account])})")
        accounts[account] = p
        roles = f.array(p + ("roles",))
        for k, r in enumerate(roles):
            if not isinstance(r, str) or r not in ROLE_NAMES:
                f.fail(p + ("roles", k), f"unknown role {r!r}; roles are {', '.join(ROLE_NAMES)}")
            if roles.index(r) != k:
                f.fail(p + ("roles", k), f"role {r!r} is listed twice")
        if "document_hash" in f.get(p):
            f.hex_bytes(p + ("document_hash",), 32)
        balance = f.money(p + ("balance",), token_decimals, symbol) if "balance" in f.get(p) else default_balance
        if balance == 0:
            f.fail(p, f"participant {name!r} would start with no {symbol} to pay transaction fees: give it a "
                      "balance, or set [token] participant_balance")
        out[name] = _Participant(name, account, list(roles), p[1], balance)
    return out


def _participant_with(f: TomlReader, path: Path, people: dict[str, _Participant], roles: tuple[str, ...],
                      what: str) -> _Participant:
    """The participant a value names, which must hold one of `roles` in this file."""
    name = f.text(path, 32)
    if name not in people:
        hint = difflib.get_close_matches(name, sorted(people), n=1)
        did = f" (did you mean {hint[0]!r}?)" if hint else ""
        f.fail(path, f"{what} {name!r} is not a participant of this file{did}")
    who = people[name]
    if not any(r in who.roles for r in roles):
        f.fail(path, f"{what} {name!r} holds no {' or '.join(roles)} role in this file "
                     f"(its roles, line {f.line(('participants', who.index, 'roles'))}: {', '.join(who.roles)})")
    return who


def _tou_bands(f: TomlReader) -> tuple[list[list[int]], dict[str, int]]:
    """[[start second, band id], ...] for the grid genesis, and band name -> id."""
    ranges: list[tuple[int, int, int, Path]] = []      # (start s, end s, band id, path)
    names: dict[str, int] = {}
    ids: dict[int, Path] = {}
    for p in f.entries("bands"):
        name = f.text(p + ("name",), 32)
        band = f.integer(p + ("id",), 0, 255)
        if name in names:
            f.fail(p + ("name",), f"band {name!r} is already declared")
        if band in ids:
            f.fail(p + ("id",), f"band id {band} is already band {f.get(ids[band] + ('name',))!r}")
        names[name], ids[band] = band, p
        for k, h in enumerate(f.array(p + ("hours",))):
            m = _HOURS.match(h) if isinstance(h, str) else None
            hp = p + ("hours", k)
            if m is None:
                f.fail(hp, f"hours must read \"HH:MM-HH:MM\" (UTC), e.g. \"07:00-22:00\", not {shown(h)}")
            h0, m0, h1, m1 = map(int, m.groups())
            start, end = h0 * 3600 + m0 * 60, h1 * 3600 + m1 * 60
            if m0 > 59 or m1 > 59 or start >= SECONDS_PER_DAY or end > SECONDS_PER_DAY or start >= end:
                f.fail(hp, f"hours {h!r} are not a range within one day (00:00 to 24:00; write a range "
                           "across midnight as two)")
            ranges.append((start, end, band, hp))
    ranges.sort(key=lambda r: (r[0], f.line(r[3])))
    covered, last = 0, None
    for start, end, _band, hp in ranges:
        if last is not None and start < covered:
            first, second = sorted([last, hp], key=f.line)
            f.fail(second, f"hours {f.get(second)!r} overlap {f.get(first)!r} (line {f.line(first)}): every "
                           "moment of the day is in exactly one band")
        if start > covered:
            f.fail(hp, f"no band covers {_hhmm(covered)}-{_hhmm(start)}: the bands must cover the whole day")
        covered, last = end, hp
    if covered < SECONDS_PER_DAY:
        f.fail(ranges[-1][3], f"no band covers {_hhmm(covered)}-24:00: the bands must cover the whole day")
    out: list[list[int]] = []
    for start, _end, band, _hp in ranges:
        if not out or out[-1][1] != band:          # adjacent ranges of one band are one stretch
            out.append([start, band])
    if len(out) > 48:
        f.fail(("bands",), f"the bands change {len(out)} times a day; the grid allows 48")
    return out, names


def _hhmm(s: int) -> str:
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}"


def _zone_ref(f: TomlReader, path: Path, zones: dict[int, Path], what: str) -> int:
    z = f.integer(path, 0, U32_MAX)
    if z not in zones:
        f.fail(path, f"{what} names zone {z}, which no zone declares (zones: "
                     f"{', '.join(map(str, sorted(zones))) or 'none'})")
    return z


def _grid(f: TomlReader, people: dict[str, _Participant], stable_decimals: int, stable_symbol: str,
          interval_s: int) -> dict:
    bands, band_ids = _tou_bands(f)
    zones: dict[int, Path] = {}
    zone_list = []
    for p in f.entries("zones"):
        z = f.integer(p + ("id",), 0, U32_MAX)
        if z in zones:
            f.fail(p + ("id",), f"zone {z} is already declared at line {f.line(zones[z])}")
        zones[z] = p
        name = f.text(p + ("name",), 32)
        dso = _participant_with(f, p + ("dso",), people, ("dso",), "the zone's DSO")
        zone_list.append({"id": z, "dso": dso.account, "name": name,
                          "import_capacity_w": f.power_w(p + ("import_capacity",)),
                          "export_capacity_w": f.power_w(p + ("export_capacity",))})
    links: dict[tuple[int, int], Path] = {}
    link_list = []
    for p in f.entries("links"):
        a = _zone_ref(f, p + ("from",), zones, "link")
        b = _zone_ref(f, p + ("to",), zones, "link")
        if a == b:
            f.fail(p + ("to",), f"a link joins two different zones, not zone {a} with itself")
        w = f.power_w(p + ("capacity",))
        if w == 0:
            f.fail(p + ("capacity",), "a link's capacity must be positive (leave a link out to have none)")
        both = f.boolean(p + ("both_ways",)) if "both_ways" in f.get(p) else False
        for pair in [(a, b), (b, a)] if both else [(a, b)]:
            if pair in links:
                f.fail(p + ("from",), f"link {pair[0]} -> {pair[1]} is already declared at line "
                                      f"{f.line(links[pair])}")
            links[pair] = p
            link_list.append([pair[0], pair[1], w])
    tariffs: dict[tuple[int, int], Path] = {}
    tariff_list = []
    for p in f.entries("tariffs"):
        a = _zone_ref(f, p + ("from",), zones, "tariff")
        b = _zone_ref(f, p + ("to",), zones, "tariff")
        if (a, b) in tariffs:
            f.fail(p + ("from",), f"tariff {a} -> {b} is already given at line {f.line(tariffs[(a, b)])}")
        if a != b and (a, b) not in links:
            f.fail(p + ("to",), f"tariff {a} -> {b} prices trade over a link that is not declared: add a [[links]] "
                      f"entry {a} -> {b} (or both_ways)")
        tariffs[(a, b)] = p
        prices = f.get(p + ("prices",))
        if not isinstance(prices, dict):
            f.fail(p + ("prices",), "prices must be a table { <band name> = price per kWh, ... }")
        for band in prices:
            if band not in band_ids:
                f.fail(p + ("prices", band), f"tariff {a} -> {b} prices band {band!r}, which no band declares "
                                             f"(bands: {', '.join(band_ids)})")
        for band, band_id in band_ids.items():
            if band not in prices:
                f.fail(p + ("prices",), f"tariff {a} -> {b} has no price for band {band!r}: every band needs "
                                        "one, or no trade happens in it")
            price = f.money(p + ("prices", band), stable_decimals, f"{stable_symbol} per kWh")
            tariff_list.append([a, b, band_id, price])
    for z, p in zones.items():
        if (z, z) not in tariffs:
            f.fail(p + ("id",), f"zone {z} has no tariff for trade inside it: add a [[tariffs]] entry from = {z}, to = {z}")
    for (a, b), p in links.items():
        if (a, b) not in tariffs:
            f.fail(p + ("from",), f"link {a} -> {b} has no tariff: add a [[tariffs]] entry from = {a}, to = {b}, or no "
                      "trade ever crosses it")
    return {"interval_s": interval_s, "tou_bands": bands, "zones": zone_list, "links": link_list,
            "tariffs": sorted(tariff_list)}


def _root_call_kinds() -> set[str]:
    """Threshold keys the council accepts: "*", pallets with root calls, and "<pallet>.<call>"."""
    from pallets import ALL_PALLETS  # noqa: PLC0415
    from runtime.pallet import ROOT  # noqa: PLC0415
    kinds = {"*"}
    for pallet in ALL_PALLETS:
        for cd in pallet.calls.values():
            if cd.origin is ROOT:
                kinds |= {pallet.name, f"{pallet.name}.{cd.name}"}
    return kinds


def _council(f: TomlReader, people: dict[str, _Participant], block_time_ms: int) -> dict:
    (p,) = f.entries("council")
    members = []
    for k, _ in enumerate(f.array(p + ("members",))):
        who = _participant_with(f, p + ("members", k), people, COUNCIL_ROLES, "council member")
        if who.account in members:
            f.fail(p + ("members", k), f"council member {who.name!r} is listed twice")
        members.append(who.account)
    table = f.get(p + ("thresholds",))
    if not isinstance(table, dict):
        f.fail(p + ("thresholds",), "thresholds must be a table { \"*\" = \">1/2\", ... }")
    if "*" not in table:
        f.fail(p + ("thresholds",), "thresholds need a default \"*\" (e.g. \"*\" = \">1/2\")")
    kinds = _root_call_kinds()
    thresholds = {}
    for kind, text in table.items():
        tp = p + ("thresholds", kind)
        if kind not in kinds:
            hint = difflib.get_close_matches(kind, sorted(kinds), n=1)
            did = f" (did you mean {hint[0]!r}?)" if hint else ""
            f.fail(tp, f"threshold key {kind!r} names no pallet with root calls, nor a root call, of this "
                       f"runtime{did}")
        m = _THRESHOLD.match(text) if isinstance(text, str) else None
        if m is None:
            f.fail(tp, f"threshold {shown(text)} must read \"N/D\" (at least N/D of the members) or "
                       "\">N/D\" (more than N/D)")
        strict, num, den = m.group(1) == ">", int(m.group(2)), int(m.group(3))
        if den == 0 or num > den or (strict and num == den) or den > 255:
            f.fail(tp, f"threshold {text!r} can never be met: it needs 0 < D <= 255, N <= D, and not more "
                       "than all members")
        thresholds[kind] = text
    delay = f.blocks(p + ("enactment_delay",), block_time_ms)
    return {"members": members, "voting_period": f.blocks(p + ("voting_period",), block_time_ms),
            "enactment_delay": delay, "thresholds": thresholds}


def _validators(f: TomlReader, people: dict[str, _Participant]) -> tuple[list[dict], list[str]]:
    from primitives import bls  # noqa: PLC0415
    out, boots, seen = [], [], {}
    for p in f.entries("validators"):
        who = _participant_with(f, p + ("operator",), people, ("validator_operator",), "validator operator")
        if who.name in seen:
            f.fail(p + ("operator",), f"{who.name!r} already runs the validator at line {seen[who.name]}")
        seen[who.name] = f.line(p)
        if "account" in f.get(p) and f.address(p + ("account",)) != who.account:
            f.fail(p + ("account",), f"account differs from operator {who.name!r}'s ({who.account}): a validator "
                                     "key's account must be its operator's")
        pk = f.hex_bytes(p + ("bls_public_key",), bls.PUBKEY_LEN)
        pop = f.hex_bytes(p + ("bls_proof_of_possession",), bls.SIGNATURE_LEN)
        try:
            ok = bls.pop_verify(bytes.fromhex(pk[2:]), bytes.fromhex(pop[2:]))
        except bls.BlsError as e:
            f.fail(p + ("bls_public_key",), f"bad BLS public key: {e}")
        if not ok:
            f.fail(p + ("bls_proof_of_possession",), "the BLS proof of possession does not match the public key "
                                                     "(copy both from one `gridchain key validator` output)")
        out.append({"account": who.account, "bls_public_key": pk, "bls_proof_of_possession": pop})
        if "bootnode" in f.get(p):
            boots.append(_bootnode(f, p + ("bootnode",)))
    if not out:
        f.fail(("validators",), "a chain needs at least one [[validators]] entry")
    return out, boots


def _bootnode(f: TomlReader, path: Path) -> str:
    v = f.text(path, 256)
    m = _BOOTNODE.match(v)
    ok = m is not None and int(m.group(2)) <= 65535
    if ok:
        try:
            ipaddress.IPv4Address(m.group(1))
        except ValueError:
            ok = False
    if not ok:
        f.fail(path, f"bootnode {v!r} must read /ip4/<address>/tcp/<port>/p2p/<peer id> (the peer id "
                     "`gridchain key generate-node-key` prints)")
    return v


def _market(f: TomlReader, stable_decimals: int, stable_symbol: str) -> tuple[int, dict]:
    """The interval length (checked against the runtime's) and the settlement genesis."""
    from pallets import grid, market  # noqa: PLC0415
    (p,) = f.entries("market")
    interval_s = f.duration_s(p + ("interval",))
    if interval_s != grid.Config.interval_s:
        f.fail(p + ("interval",), f"this runtime's delivery interval is fixed at {grid.Config.interval_s} s "
                                  f"({grid.Config.interval_s // 60}m), not {interval_s} s")
    gate_s = f.duration_s(p + ("gate_closure",))
    if gate_s != market.Config.gate_closure_s:
        f.fail(p + ("gate_closure",), f"this runtime's gate closure is fixed at {market.Config.gate_closure_s} s "
                                      f"({market.Config.gate_closure_s // 60}m) before an interval, not {gate_s} s")
    settlement = {}
    if "penalty" in f.get(p):
        settlement["penalty_per_kwh"] = f.money(p + ("penalty",), stable_decimals, f"{stable_symbol} per kWh")
    return interval_s, settlement


# ---------------------------------------------------------------------------------------------
# the spec
# ---------------------------------------------------------------------------------------------

def spec_from_text(text: str, name: str = "deployment.toml") -> dict:
    """The chain spec a deployment file describes (readable genesis, no sudo); DeploymentError naming
    `name` and the line of the first problem."""
    from pallets import market  # noqa: PLC0415
    f = TomlReader(name, text, _SECTIONS, _ARRAYS, _OPTIONAL_SECTIONS)
    f.check_sections()
    (c,) = f.entries("chain")
    chain_id = f.text(c + ("id",))
    if not _CHAIN_ID.match(chain_id):
        f.fail(c + ("id",), f"chain id {chain_id!r} may hold only a-z, 0-9 and _ (it names the database folder)")
    block_time_ms = 1000 * f.duration_s(c + ("block_time",)) if "block_time" in f.get(c) else 1000
    if block_time_ms == 0:
        f.fail(c + ("block_time",), "block_time must be positive")
    chain_type = f.text(c + ("chain_type",)) if "chain_type" in f.get(c) else "Live"
    if chain_type not in ("Live", "Local"):
        f.fail(c + ("chain_type",), f"chain_type is \"Live\" or \"Local\" (a deployment has no dev accounts), "
                                    f"not {chain_type!r}")
    (t,) = f.entries("token")
    (s,) = f.entries("stablecoin")
    symbols = {}
    for sec in (t, s):
        sym = f.text(sec + ("symbol",), 16)
        if not _SYMBOL.match(sym):
            f.fail(sec + ("symbol",), f"symbol {sym!r} must be 1 to 16 capital letters or digits, e.g. GEUR")
        symbols[sec[0]] = (sym, f.integer(sec + ("decimals",), 0, 18))
    (token_sym, token_dec), (stable_sym, stable_dec) = symbols["token"], symbols["stablecoin"]
    default_balance = f.money(t + ("participant_balance",), token_dec, token_sym) \
        if "participant_balance" in f.get(t) else 0
    people = _participants(f, token_dec, token_sym, default_balance)
    if not any("registrar" in p.roles for p in people.values()):
        f.fail(("participants",), "no participant holds the registrar role: a chain needs one to license "
                                  "households")
    issuer = _participant_with(f, s + ("issuer",), people, ("issuer",), "the stablecoin's issuer")
    interval_s, settlement = _market(f, stable_dec, stable_sym)
    grid = _grid(f, people, stable_dec, stable_sym, interval_s)
    council = _council(f, people, block_time_ms)
    validators, boots = _validators(f, people)
    config: dict[str, Any] = {
        "identity": {"participants": [
            {"address": p.account, "roles": p.roles,
             **({"document_hash": f.get(("participants", p.index, "document_hash"))}
                if "document_hash" in f.get(("participants", p.index)) else {})}
            for p in people.values()]},
        "grid": grid,
        "authorship": {"authorities": [v["account"] for v in validators]},
        "validators": {"validators": validators},
        "balances": {
            "balances": [[p.account, p.balance] for p in people.values()],
            "assets": [{"id": market.Config.stablecoin_asset, "symbol": stable_sym, "decimals": stable_dec,
                        "issuer": issuer.account, "balances": []}]},
        "settlement": settlement,
        "council": council,
    }
    for r in f.entries("runtime"):
        if "spec_version" in f.get(r):
            from pallets import known_versions  # noqa: PLC0415
            version = f.integer(r + ("spec_version",), 1, U32_MAX)
            if version not in known_versions():
                f.fail(r + ("spec_version",), f"this release knows runtime spec_versions "
                                              f"{', '.join(map(str, known_versions()))}, not {version}")
            config["upgrades"] = {"spec_version": version}
    return {
        "name": f.text(c + ("name",)), "id": chain_id, "chainType": chain_type, "bootNodes": boots,
        "protocolId": f.text(c + ("protocol_id",), 32) if "protocol_id" in f.get(c) else "grid",
        "properties": {"tokenSymbol": token_sym, "tokenDecimals": token_dec, "ss58Format": GRIDCHAIN_SS58_PREFIX,
                       "stablecoin": {"assetId": market.Config.stablecoin_asset, "symbol": stable_sym,
                                      "decimals": stable_dec}},
        "consensus": {"engine": "bft", "blockTimeMs": block_time_ms},
        "genesis": {"runtimeGenesis": {"config": config}},
    }


def spec_from_file(path: str | FilePath) -> dict:
    """`spec_from_text` of a file; the spec's genesis is also built once, so anything the runtime
    itself refuses is reported here rather than when the first validator starts."""
    from genesis.chain_spec import ChainSpecError, genesis_storage  # noqa: PLC0415
    from pallets import build_runtime  # noqa: PLC0415
    path = FilePath(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DeploymentError(f"cannot read deployment file {path}: {e}") from None
    spec = spec_from_text(text, path.name)
    try:
        genesis_storage(spec, build_runtime())
    except ChainSpecError as e:
        raise DeploymentError(f"{path.name}: the runtime refuses this genesis: {e}") from None
    return spec
