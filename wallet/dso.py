"""The DSO's side of the operator commands as a library: zones with their links, tariffs by
time-of-use band, the meter registry, alerts from the metering pallet's events, and the checks every
DSO command runs before it signs.

A change a pallet would refuse is refused here first, from the same state, in one sentence (the
signer is not the zone's DSO, the zone or meter does not exist or is in the wrong state), so the
command sends nothing and pays no fee: the rules are those of pallets/grid.py (`ensure_zone_dso`:
the zone's DSO, still licensed as a DSO) and pallets/metering.py (`_ensure_manager`: the zone's DSO
or a licensed registrar). Units are the chain's: W, Wh, smallest stablecoin units per kWh.
"""
from __future__ import annotations

from wallet import units
from wallet.admin import EventReader, RoleError, licences, require_role, role_names
from wallet.wallet import Wallet, WalletError

#: meter kinds, statuses and suspension reasons as the metering pallet numbers them
METER_KINDS = {"import": 0, "export": 1, "bidirectional": 2}
KIND_NAMES = {v: k for k, v in METER_KINDS.items()}
ACTIVE, SUSPENDED, RETIRED = 0, 1, 2
METER_STATUS = {ACTIVE: "active", SUSPENDED: "suspended", RETIRED: "retired"}
SUSPENSION_REASON = {0: "operator", 1: "rogue"}
#: `alerts_in` reads at most this many blocks per call; without a range, the last DEFAULT_ALERT_BLOCKS
MAX_ALERT_BLOCKS = 10_000
DEFAULT_ALERT_BLOCKS = 600


# ---------------------------------------------------------------------------------------------
# checks run before signing
# ---------------------------------------------------------------------------------------------

def label(w: Wallet, who: bytes, name: str | None) -> str:
    return f"{name} ({w.address(who)})" if name else w.address(who)


async def zone_of(w: Wallet, zone_id: int, at: bytes) -> dict:
    z = await w.state.read("grid", "zones", zone_id, at=at)
    if z is None:
        raise WalletError(f"no zone {zone_id} on this chain (`admin dso zones` lists them)")
    return z


async def require_zone_dso(w: Wallet, who: bytes, name: str | None, zone_id: int, at: bytes) -> dict:
    """The zone, if `who` holds an active DSO licence and is the zone's DSO (grid.ensure_zone_dso)."""
    await require_role(w, who, "dso", name=name, at=at)
    z = await zone_of(w, zone_id, at)
    if z["dso"] != who:
        raise RoleError(f"account {label(w, who, name)} is not the DSO of zone {zone_id} (its DSO is "
                        f"{w.address(z['dso'])}); nothing was sent")
    return z


async def require_meter_manager(w: Wallet, who: bytes, name: str | None, zone_id: int, at: bytes) -> None:
    """`who` may manage the zone's meters: its licensed DSO, or a licensed registrar (as metering's
    `_ensure_manager` rules)."""
    z = await zone_of(w, zone_id, at)
    if z["dso"] == who:
        await require_role(w, who, "dso", name=name, at=at)
        return
    try:
        await require_role(w, who, "registrar", name=name, at=at)
    except RoleError:
        p = await w.state.read("identity", "participants", who, at=at)
        held = "it holds no licence" if p is None else \
            "it holds: " + (", ".join(role_names(w, int(p["roles"]))) or "none")
        raise RoleError(f"account {label(w, who, name)} is neither the DSO of zone {zone_id} nor a licensed "
                        f"registrar ({held}), who alone manage its meters; nothing was sent") from None


async def meter_of(w: Wallet, meter: bytes, at: bytes) -> dict:
    m = await w.state.read("metering", "meters", meter, at=at)
    if m is None:
        raise WalletError(f"no certified meter 0x{meter.hex()} on this chain")
    return m


async def require_owner_licensed(w: Wallet, owner: bytes, at: bytes) -> None:
    p = await w.state.read("identity", "participants", owner, at=at)
    lic = licences(w)
    if p is not None and int(p["status"]) == lic.active:
        if int(p["roles"]) & (lic.bit("prosumer") | lic.bit("consumer")):
            return
    raise WalletError(f"the owner {w.address(owner)} holds no active prosumer or consumer licence: "
                      "a registrar licenses the household first")


def rated_power_w(w: Wallet, text: str) -> int:
    watts = units.parse_power(text)
    cap = int(w.state.constant("metering", "max_rated_power_w"))
    if not 0 < watts <= cap:
        raise WalletError(f"a meter's rated power must be between 1 W and {units.format_power(cap)}")
    return watts


# ---------------------------------------------------------------------------------------------
# reads
# ---------------------------------------------------------------------------------------------

async def zones_overview(w: Wallet) -> list[dict]:
    """Every zone (energy_zones) with its links out, both read at one block."""
    at = await w.state.best_hash()
    rows, _ = await w.client.request_all("energy_zones", {"at": "0x" + at.hex()})
    keys, _more = await w.state.keys_with_prefix(w.state.prefix("grid", "link_limits"), at, None)
    limits = await w.state.read_keys("grid", "link_limits", keys, at)
    links: dict[int, list[dict]] = {}
    for k, limit in zip(keys, limits):
        a, b = w.state.decode_keys("grid", "link_limits", k)
        links.setdefault(a, []).append({"toZone": b, "limitW": limit})
    return [{**z, "links": sorted(links.get(z["zone"], []), key=lambda x: x["toZone"])} for z in rows]


def _seconds_of_day(t: int) -> str:
    return f"{t // 3600:02d}:{t % 3600 // 60:02d}"


async def tariffs_overview(w: Wallet, zone: int | None) -> dict:
    """The time-of-use bands and every tariff (from zone, to zone, band, price per kWh), by zone
    pair and band; with `zone`, those from or to it."""
    at = await w.state.best_hash()
    bands = await w.state.read("grid", "tou_bands", at=at) or [(0, 0)]
    keys, _more = await w.state.keys_with_prefix(w.state.prefix("grid", "tariffs"), at, None)
    prices = await w.state.read_keys("grid", "tariffs", keys, at)
    rows = []
    for k, price in zip(keys, prices):
        (a, b), band = w.state.decode_keys("grid", "tariffs", k)
        if zone is None or zone in (a, b):
            rows.append({"fromZone": a, "toZone": b, "band": band, "pricePerKwh": price})
    rows.sort(key=lambda r: (r["fromZone"], r["toZone"], r["band"]))
    return {"bands": [{"start": _seconds_of_day(st), "startSecond": st, "band": b} for st, b in bands],
            "tariffs": rows}


async def meter_registry(w: Wallet, zone: int | None = None, owner: bytes | None = None) -> list[dict]:
    """Every certified meter (optionally of one zone or owner) with its status, read from
    `metering.meters` at one block; a suspended meter says why (by its operator, or rogue)."""
    at = await w.state.best_hash()
    keys, _more = await w.state.keys_with_prefix(w.state.prefix("metering", "meters"), at, None)
    values = await w.state.read_keys("metering", "meters", keys, at)
    rows = []
    for k, m in zip(keys, values):
        if m is None or (zone is not None and m["zone"] != zone) or (owner is not None and m["owner"] != owner):
            continue
        meter = w.state.decode_keys("metering", "meters", k)[0]
        rows.append({"meter": "0x" + bytes(meter).hex(), "owner": w.address(m["owner"]), "zone": m["zone"],
                     "kind": KIND_NAMES.get(m["kind"], str(m["kind"])), "ratedPowerW": m["rated_power_w"],
                     "status": METER_STATUS.get(m["status"], str(m["status"])), "suspendedAs": None,
                     "implausibleReadings": m["implausible"],
                     "lastInterval": m["last_interval"] if m["has_reading"] else None})
    suspended = [r for r in rows if r["status"] == "suspended"]
    if suspended:
        reason_keys = [w.state.key("metering", "suspension_reason", bytes.fromhex(r["meter"][2:])) for r in suspended]
        for r, code in zip(suspended, await w.state.read_keys("metering", "suspension_reason", reason_keys, at)):
            r["suspendedAs"] = SUSPENSION_REASON.get(code, "operator") if code is not None else "operator"
    return sorted(rows, key=lambda r: (r["zone"], r["owner"], r["meter"]))


# ---------------------------------------------------------------------------------------------
# alerts: rogue meters, implausible readings, missed intervals
# ---------------------------------------------------------------------------------------------

def alert_of(block: int, pallet: str, name: str, fields: dict) -> dict | None:
    """The alert a metering event raises, or None: a rogue meter (suspended automatically), an
    implausible reading (counted towards rogue), or intervals a meter's reading skipped."""
    if pallet != "metering":
        return None
    if name == "MeterSuspended" and fields.get("reason") == "rogue":
        return {"block": block, "kind": "rogue-meter", "meter": "0x" + bytes(fields["meter"]).hex(),
                "zone": fields["zone"]}
    if name == "ReadingAccepted" and fields.get("plausible") is False:
        return {"block": block, "kind": "implausible-reading", "meter": "0x" + bytes(fields["meter"]).hex(),
                "intervalStart": fields["interval_start"], "importWh": fields["import_delta_wh"],
                "exportWh": fields["export_delta_wh"]}
    if name == "IntervalsMissed":
        return {"block": block, "kind": "missed-intervals", "meter": "0x" + bytes(fields["meter"]).hex(),
                "fromInterval": fields["from_interval"], "count": fields["count"]}
    return None


async def alerts_in(w: Wallet, from_block: int | None, to_block: int | None, zone: int | None) -> dict:
    """The alerts of finalized blocks [from_block, to_block] (default: the last DEFAULT_ALERT_BLOCKS
    up to the finalized head), each event decoded by its block's metadata; every alert names its
    meter's zone (from the registry for events that do not carry it)."""
    reader = EventReader(w)
    head = await reader.finalized_number()
    last = head if to_block is None else to_block
    first = max(1, last - DEFAULT_ALERT_BLOCKS + 1) if from_block is None else from_block
    if last > head:
        raise WalletError(f"block {last} is not finalized yet (the finalized head is block {head})")
    if first > last:
        raise WalletError(f"--from-block {first} is after the last block asked for ({last})")
    if last - first + 1 > MAX_ALERT_BLOCKS:
        raise WalletError(f"at most {MAX_ALERT_BLOCKS} blocks per command: narrow --from-block/--to-block")
    out = [a for e in await reader.blocks(first, last)
           if (a := alert_of(e.number, e.event.pallet, e.event.name, e.event.fields)) is not None]
    missing = sorted({a["meter"] for a in out if "zone" not in a})
    zones: dict[str, int] = {}
    if missing:
        keys = [w.state.key("metering", "meters", bytes.fromhex(m[2:])) for m in missing]
        for m, rec in zip(missing, await w.state.read_keys("metering", "meters", keys)):
            if rec is not None:
                zones[m] = rec["zone"]
    for a in out:
        a.setdefault("zone", zones.get(a["meter"]))
    if zone is not None:
        out = [a for a in out if a["zone"] == zone]
    return {"fromBlock": first, "toBlock": last, "alerts": out}
