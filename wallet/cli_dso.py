"""`gridchain admin dso ...`: the distribution system operator's commands (docs/admin.md, DSO).

A DSO runs grid zones (pallets/grid.py) and the meters in them (pallets/metering.py): it sets a
zone's import and export capacity, the links to neighbouring zones, the grid fee per kWh in each
time-of-use band, operating envelopes for single delivery intervals, pauses a zone on a fault and
resumes it, and certifies, suspends, reinstates, replaces and retires meters. These are SIGNED calls
checked by role on chain; no vote is needed (the council's ROOT calls are `admin council`).

Like the household wallet, the commands are outside clients: the key comes from the encrypted
keystore (`--as NAME`), everything else is JSON-RPC. Before signing, each command checks on chain
what the pallet would refuse (the signer holds an active DSO licence and runs the zone, the zone or
meter exists and is in the right state), so a wrong key or a wrong zone is one line, exit status 1,
and nothing sent. Units as the wallet's (wallet/units.py): power `250kW`, prices `0.05` (stablecoin
per kWh), intervals `+N`. `alerts` reads the metering pallet's events block by block: rogue meters
(suspended automatically after too many implausible readings), implausible readings, and intervals
a meter missed.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable

import click

from primitives.hashing import keccak256
from primitives.keys import Keypair
from wallet import units
from wallet.admin import as_option, signer_name
from wallet.cli_common import (
    WalletGroup,
    common_options,
    current_settings,
    emit,
    finish_tx,
    hex32,
    price_text,
    run_job,
    table,
    tx_options,
    unlock,
)
from wallet.dso import (
    ACTIVE,
    DEFAULT_ALERT_BLOCKS,
    METER_KINDS,
    METER_STATUS,
    RETIRED,
    SUSPENDED,
    alerts_in,
    meter_of,
    meter_registry,
    rated_power_w,
    require_meter_manager,
    require_owner_licensed,
    require_zone_dso,
    tariffs_overview,
    zone_of,
    zones_overview,
)
from wallet.wallet import TxReport, Wallet, WalletError, parse_account

ZONE_ID = click.IntRange(0, 2**32 - 1)
BAND = click.IntRange(0, 255)


@click.group(cls=WalletGroup)
@common_options
@as_option
def dso() -> None:
    """The DSO's zones, capacities, links, tariffs, envelopes, pauses and meters, and alerts about
    rogue meters and missed intervals. Changes are signed by the zone's DSO (--as NAME)."""


# ---------------------------------------------------------------------------------------------
# checks run before signing
# ---------------------------------------------------------------------------------------------

def _signer() -> tuple[str, Keypair]:
    """The `--as NAME` account, unlocked (before the node is asked anything)."""
    name = signer_name()
    return name, unlock(current_settings(), name)


def _send(job: Callable[[Wallet], Awaitable[tuple[Wallet, TxReport]]]) -> tuple[Wallet, TxReport]:
    return run_job(current_settings(), job)


# ---------------------------------------------------------------------------------------------
# zones, capacities, links
# ---------------------------------------------------------------------------------------------

def _zones_text(rows: list[dict]) -> str:
    if not rows:
        return "no zones"
    return table([["zone", "name", "dso", "import", "export", "state", "mode", "links"]]
                 + [[str(z["zone"]), z["name"], z["dso"], units.format_power(z["importCapacityW"]),
                     units.format_power(z["exportCapacityW"]), "PAUSED" if z["paused"] else "running",
                     z.get("mode", ""),
                     ", ".join(f"->{x['toZone']} {units.format_power(x['limitW'])}" for x in z["links"]) or "-"]
                    for z in rows])


@dso.command("zones")
@common_options
def zones_cmd() -> None:
    """List the zones: DSO, capacities, paused state, trading mode and links to other zones."""
    s = current_settings()
    rows = run_job(s, zones_overview)
    emit(s, rows, lambda: _zones_text(rows))


@dso.command("set-capacity")
@click.argument("zone", type=ZONE_ID)
@click.option("--import", "import_", default=None, help="Import capacity, e.g. 250kW (default: unchanged).")
@click.option("--export", "export", default=None, help="Export capacity, e.g. 200kW (default: unchanged).")
@tx_options
@as_option
@common_options
def set_capacity(zone: int, import_: str | None, export: str | None, wait: str) -> None:
    """Set ZONE's import and export capacity (the zone's DSO)."""
    if import_ is None and export is None:
        raise WalletError("give --import, --export or both (e.g. --import 250kW)")
    import_w = None if import_ is None else units.parse_power(import_)
    export_w = None if export is None else units.parse_power(export)
    name, kp = _signer()

    async def job(w: Wallet) -> tuple[Wallet, TxReport]:
        at = await w.state.best_hash()
        z = await require_zone_dso(w, kp.public_key, name, zone, at)
        args = {"zone_id": zone, "import_w": z["import_capacity_w"] if import_w is None else import_w,
                "export_w": z["export_capacity_w"] if export_w is None else export_w}
        r = await w.submit(kp, "grid", "set_capacity", args, until=wait)
        r.result = {"zone": zone, "importW": args["import_w"], "exportW": args["export_w"]}
        return w, r
    _w, r = _send(job)
    finish_tx(current_settings(), r, lambda: f"zone {zone}: import {units.format_power(r.result['importW'])}, "
                                             f"export {units.format_power(r.result['exportW'])}")


@dso.command("set-link")
@click.argument("from_zone", metavar="FROM", type=ZONE_ID)
@click.argument("to_zone", metavar="TO", type=ZONE_ID)
@click.option("--limit", required=True, help="Power the link carries from FROM to TO, e.g. 100kW; 0 removes it.")
@tx_options
@as_option
@common_options
def set_link(from_zone: int, to_zone: int, limit: str, wait: str) -> None:
    """Set the link from zone FROM to zone TO (the DSO of FROM)."""
    if from_zone == to_zone:
        raise WalletError("a link joins two different zones")
    limit_w = units.parse_power(limit)
    name, kp = _signer()

    async def job(w: Wallet) -> tuple[Wallet, TxReport]:
        at = await w.state.best_hash()
        await require_zone_dso(w, kp.public_key, name, from_zone, at)
        await zone_of(w, to_zone, at)
        r = await w.submit(kp, "grid", "set_link_limit",
                           {"from_zone": from_zone, "to_zone": to_zone, "capacity_w": limit_w}, until=wait)
        r.result = {"fromZone": from_zone, "toZone": to_zone, "limitW": limit_w}
        return w, r
    _w, r = _send(job)
    finish_tx(current_settings(), r, lambda: f"link {from_zone} -> {to_zone} removed" if limit_w == 0 else
              f"link {from_zone} -> {to_zone}: {units.format_power(limit_w)}")


# ---------------------------------------------------------------------------------------------
# tariffs and envelopes
# ---------------------------------------------------------------------------------------------

def _tariffs_text(w: Wallet, t: dict) -> str:
    bands = ", ".join(f"band {b['band']} from {b['start']} UTC" for b in t["bands"])
    if not t["tariffs"]:
        return f"time-of-use bands: {bands}\nno tariffs"
    return f"time-of-use bands: {bands}\n" + table(
        [["from", "to", "band", "grid fee"]]
        + [[str(r["fromZone"]), str(r["toZone"]), str(r["band"]), price_text(w, r["pricePerKwh"])]
           for r in t["tariffs"]])


@dso.command("tariffs")
@click.option("--zone", type=ZONE_ID, default=None, help="Only tariffs from or to this zone.")
@common_options
def tariffs_cmd(zone: int | None) -> None:
    """List the grid fees per kWh by zone pair and time-of-use band, and the bands' hours."""
    s = current_settings()

    async def job(w: Wallet) -> tuple[Wallet, dict]:
        return w, await tariffs_overview(w, zone)
    w, t = run_job(s, job)
    emit(s, t, lambda: _tariffs_text(w, t))


@dso.command("set-tariff")
@click.argument("from_zone", metavar="FROM", type=ZONE_ID)
@click.argument("to_zone", metavar="TO", type=ZONE_ID)
@click.option("--band", type=BAND, required=True, help="Time-of-use band id (`tariffs` lists the bands).")
@click.option("--price", required=True, help="Grid fee per kWh in the stablecoin, e.g. 0.05.")
@tx_options
@as_option
@common_options
def set_tariff(from_zone: int, to_zone: int, band: int, price: str, wait: str) -> None:
    """Set the grid fee per kWh for energy from zone FROM to zone TO (FROM itself for trade inside
    it) in one band (the DSO of FROM; a tariff framework the council approves is `admin council
    propose grid force_set_tariff ...`)."""
    name, kp = _signer()

    async def job(w: Wallet) -> tuple[Wallet, TxReport]:
        st = w.chain.stablecoin
        price_per_kwh = units.parse_price(price, st.decimals, st.symbol)
        at = await w.state.best_hash()
        await require_zone_dso(w, kp.public_key, name, from_zone, at)
        await zone_of(w, to_zone, at)
        bands = await w.state.read("grid", "tou_bands", at=at) or [(0, 0)]
        if band not in {b for _s, b in bands}:
            raise WalletError(f"no time-of-use band {band} on this chain (bands: "
                              f"{', '.join(str(b) for b in sorted({b for _s, b in bands}))})")
        r = await w.submit(kp, "grid", "set_tariff", {"from_zone": from_zone, "to_zone": to_zone, "band": band,
                                                      "price_per_kwh": price_per_kwh}, until=wait)
        r.result = {"fromZone": from_zone, "toZone": to_zone, "band": band, "pricePerKwh": price_per_kwh}
        return w, r
    w, r = _send(job)
    finish_tx(current_settings(), r, lambda: f"tariff {from_zone} -> {to_zone} band {band}: "
                                             f"{price_text(w, r.result['pricePerKwh'])}")


@dso.command("set-envelope")
@click.argument("zone", type=ZONE_ID)
@click.option("--interval", required=True, help="Delivery interval: +N (intervals from now), unix s or ISO time.")
@click.option("--import", "import_", required=True, help="Import limit in the interval, e.g. 150kW.")
@click.option("--export", "export", required=True, help="Export limit in the interval, e.g. 100kW.")
@tx_options
@as_option
@common_options
def set_envelope(zone: int, interval: str, import_: str, export: str, wait: str) -> None:
    """Limit ZONE's import and export for one future delivery interval, within its capacity (the
    zone's DSO)."""
    import_w, export_w = units.parse_power(import_), units.parse_power(export)
    name, kp = _signer()

    async def job(w: Wallet) -> tuple[Wallet, TxReport]:
        at = await w.state.best_hash()
        z = await require_zone_dso(w, kp.public_key, name, zone, at)
        now = await w.now_s()
        start = units.parse_interval(interval, now, w.chain.interval_s)
        if start < now:
            raise WalletError(f"the interval starting {units.format_time(start)} has already started "
                              f"(chain time is {units.format_time(now)})")
        ahead_s = int(w.state.constant("grid", "max_envelope_ahead_s"))
        if start > now + ahead_s:
            raise WalletError(f"the interval starting {units.format_time(start)} is too far ahead: an envelope "
                              f"is set at most {ahead_s // 86_400} days ahead")
        if import_w > z["import_capacity_w"] or export_w > z["export_capacity_w"]:
            raise WalletError(f"an envelope may not exceed zone {zone}'s capacity (import "
                              f"{units.format_power(z['import_capacity_w'])}, export "
                              f"{units.format_power(z['export_capacity_w'])})")
        r = await w.submit(kp, "grid", "set_envelope", {"zone_id": zone, "interval_start": start,
                                                        "import_w": import_w, "export_w": export_w}, until=wait)
        r.result = {"zone": zone, "intervalStart": start, "importW": import_w, "exportW": export_w}
        return w, r
    _w, r = _send(job)
    finish_tx(current_settings(), r, lambda: f"zone {zone} in the interval starting "
              f"{units.format_time(r.result['intervalStart'])}: import {units.format_power(import_w)}, "
              f"export {units.format_power(export_w)}")


# ---------------------------------------------------------------------------------------------
# pause and resume
# ---------------------------------------------------------------------------------------------

@dso.command("pause")
@click.argument("zone", type=ZONE_ID)
@click.option("--reason", default=None, help="The fault report; its keccak-256 hash goes on chain, keep the text.")
@click.option("--reason-hash", default=None, help="0x hash of a report kept elsewhere (instead of --reason).")
@tx_options
@as_option
@common_options
def pause(zone: int, reason: str | None, reason_hash: str | None, wait: str) -> None:
    """Stop all orders and matches in ZONE after a fault (the zone's DSO; no vote needed)."""
    if (reason is None) == (reason_hash is None):
        raise WalletError("give the pause's reason with --reason TEXT or --reason-hash 0x..., one of them")
    digest = keccak256(reason.encode()) if reason is not None else hex32(reason_hash, "--reason-hash")
    name, kp = _signer()

    async def job(w: Wallet) -> tuple[Wallet, TxReport]:
        at = await w.state.best_hash()
        z = await require_zone_dso(w, kp.public_key, name, zone, at)
        if z["paused"]:
            raise WalletError(f"zone {zone} is already paused")
        r = await w.submit(kp, "grid", "pause_zone", {"zone_id": zone, "reason_hash": digest}, until=wait)
        r.result = {"zone": zone, "reasonHash": "0x" + digest.hex()}
        return w, r
    _w, r = _send(job)
    finish_tx(current_settings(), r, lambda: f"zone {zone} paused (reason hash 0x{digest.hex()}): no orders "
                                             "or matches there until it is resumed")


@dso.command("resume")
@click.argument("zone", type=ZONE_ID)
@tx_options
@as_option
@common_options
def resume(zone: int, wait: str) -> None:
    """Let trading in a paused ZONE resume (the zone's DSO)."""
    name, kp = _signer()

    async def job(w: Wallet) -> tuple[Wallet, TxReport]:
        at = await w.state.best_hash()
        z = await require_zone_dso(w, kp.public_key, name, zone, at)
        if not z["paused"]:
            raise WalletError(f"zone {zone} is not paused")
        r = await w.submit(kp, "grid", "resume_zone", {"zone_id": zone}, until=wait)
        r.result = {"zone": zone}
        return w, r
    _w, r = _send(job)
    finish_tx(current_settings(), r, lambda: f"zone {zone} resumed")


# ---------------------------------------------------------------------------------------------
# meters
# ---------------------------------------------------------------------------------------------

def _meters_text(rows: list[dict]) -> str:
    if not rows:
        return "no meters"
    return table([["meter", "owner", "zone", "kind", "rated", "status", "implausible", "last interval"]]
                 + [[r["meter"], r["owner"], str(r["zone"]), r["kind"], units.format_power(r["ratedPowerW"]),
                     r["status"] + (f" ({r['suspendedAs']})" if r["suspendedAs"] else ""),
                     str(r["implausibleReadings"]),
                     units.format_time(r["lastInterval"]) if r["lastInterval"] is not None else "-"]
                    for r in rows])


@dso.command("meters")
@click.option("--zone", type=ZONE_ID, default=None, help="Only the meters of this zone.")
@click.option("--owner", default=None, help="Only the meters of this account (keystore name or address).")
@common_options
def meters_cmd(zone: int | None, owner: str | None) -> None:
    """List the meter registry: owner, zone, kind, rated power, status (a suspension says whether the
    meter went rogue), implausible readings counted, last interval read."""
    s = current_settings()
    who = None if owner is None else parse_account(owner, s.store())
    rows = run_job(s, lambda w: meter_registry(w, zone, who))
    emit(s, rows, lambda: _meters_text(rows))


def _meter_id(text: str, what: str = "METER") -> bytes:
    b = hex32(text, what)
    assert b is not None
    return b


@dso.command("certify-meter")
@click.argument("meter")
@click.argument("owner")
@click.option("--zone", type=ZONE_ID, required=True, help="The zone the meter is in.")
@click.option("--kind", type=click.Choice(list(METER_KINDS)), required=True,
              help="What it measures: import, export or bidirectional.")
@click.option("--rated-power", required=True, help="Its rated power, e.g. 5kW.")
@tx_options
@as_option
@common_options
def certify_meter(meter: str, owner: str, zone: int, kind: str, rated_power: str, wait: str) -> None:
    """Certify METER (0x its ed25519 public key) for OWNER (a licensed household: keystore name or
    address) in a zone (the zone's DSO, or a registrar)."""
    meter_id = _meter_id(meter)
    s = current_settings()
    owner_id = parse_account(owner, s.store())
    name, kp = _signer()

    async def job(w: Wallet) -> tuple[Wallet, TxReport]:
        watts = rated_power_w(w, rated_power)
        at = await w.state.best_hash()
        await require_meter_manager(w, kp.public_key, name, zone, at)
        await require_owner_licensed(w, owner_id, at)
        if await w.state.read("metering", "meters", meter_id, at=at) is not None:
            raise WalletError(f"meter 0x{meter_id.hex()} has already been certified (a meter key is never reused)")
        r = await w.submit(kp, "metering", "certify_meter",
                           {"meter": meter_id, "owner": owner_id, "zone": zone, "kind": METER_KINDS[kind],
                            "rated_power_w": watts}, until=wait)
        r.result = {"meter": "0x" + meter_id.hex(), "owner": w.address(owner_id), "zone": zone, "kind": kind,
                    "ratedPowerW": watts}
        return w, r
    _w, r = _send(job)
    finish_tx(s, r, lambda: f"meter 0x{meter_id.hex()} certified: {kind}, "
                            f"{units.format_power(r.result['ratedPowerW'])}, zone {zone}, owner {r.result['owner']}")


def _meter_change(meter: str, call: str, allowed: tuple[int, ...], refusal: str, wait: str, done: str) -> None:
    """Suspend, reinstate or retire a meter: the zone's DSO or a registrar, the meter in a status
    the call accepts."""
    meter_id = _meter_id(meter)
    name, kp = _signer()

    async def job(w: Wallet) -> tuple[Wallet, TxReport]:
        at = await w.state.best_hash()
        m = await meter_of(w, meter_id, at)
        await require_meter_manager(w, kp.public_key, name, m["zone"], at)
        if m["status"] not in allowed:
            raise WalletError(f"meter 0x{meter_id.hex()} is {METER_STATUS.get(m['status'], m['status'])}: "
                              f"{refusal}")
        r = await w.submit(kp, "metering", call, {"meter": meter_id}, until=wait)
        r.result = {"meter": "0x" + meter_id.hex(), "zone": m["zone"]}
        return w, r
    _w, r = _send(job)
    finish_tx(current_settings(), r, lambda: f"meter 0x{meter_id.hex()} {done}")


@dso.command("suspend-meter")
@click.argument("meter")
@tx_options
@as_option
@common_options
def suspend_meter(meter: str, wait: str) -> None:
    """Stop accepting METER's readings (the zone's DSO, or a registrar)."""
    _meter_change(meter, "suspend_meter", (ACTIVE,), "only an active meter can be suspended", wait, "suspended")


@dso.command("reinstate-meter")
@click.argument("meter")
@tx_options
@as_option
@common_options
def reinstate_meter(meter: str, wait: str) -> None:
    """Accept a suspended METER's readings again; its implausible-reading count starts over."""
    _meter_change(meter, "reinstate_meter", (SUSPENDED,), "only a suspended meter can be reinstated", wait,
                  "reinstated")


@dso.command("retire-meter")
@click.argument("meter")
@tx_options
@as_option
@common_options
def retire_meter(meter: str, wait: str) -> None:
    """Retire METER for good: its key can never be certified again."""
    _meter_change(meter, "retire_meter", (ACTIVE, SUSPENDED), "a retired meter stays retired", wait, "retired")


@dso.command("replace-meter")
@click.argument("old")
@click.argument("new")
@click.option("--rated-power", required=True, help="The new meter's rated power, e.g. 5kW.")
@tx_options
@as_option
@common_options
def replace_meter(old: str, new: str, rated_power: str, wait: str) -> None:
    """Retire meter OLD and certify NEW (0x public key) for the same owner, zone and kind; the new
    meter's first reading is its baseline."""
    old_id, new_id = _meter_id(old, "OLD"), _meter_id(new, "NEW")
    name, kp = _signer()

    async def job(w: Wallet) -> tuple[Wallet, TxReport]:
        watts = rated_power_w(w, rated_power)
        at = await w.state.best_hash()
        m = await meter_of(w, old_id, at)
        await require_meter_manager(w, kp.public_key, name, m["zone"], at)
        if m["status"] == RETIRED:
            raise WalletError(f"meter 0x{old_id.hex()} is already retired")
        if await w.state.read("metering", "meters", new_id, at=at) is not None:
            raise WalletError(f"meter 0x{new_id.hex()} has already been certified (a meter key is never reused)")
        await require_owner_licensed(w, m["owner"], at)
        r = await w.submit(kp, "metering", "replace_meter",
                           {"old": old_id, "new_meter": new_id, "new_rated_power_w": watts}, until=wait)
        r.result = {"old": "0x" + old_id.hex(), "new": "0x" + new_id.hex(), "zone": m["zone"], "ratedPowerW": watts}
        return w, r
    _w, r = _send(job)
    finish_tx(current_settings(), r, lambda: f"meter 0x{old_id.hex()} retired and replaced by 0x{new_id.hex()} "
                                             f"({units.format_power(r.result['ratedPowerW'])})")


# ---------------------------------------------------------------------------------------------
# alerts: rogue meters, implausible readings, missed intervals
# ---------------------------------------------------------------------------------------------

def _alert_text(a: dict) -> str:
    if a["kind"] == "rogue-meter":
        return "suspended automatically as a rogue meter; check it, then reinstate or replace it"
    if a["kind"] == "implausible-reading":
        return (f"implausible reading for {units.format_time(a['intervalStart'])}: "
                f"{units.format_energy(a['importWh'])} in, {units.format_energy(a['exportWh'])} out")
    return f"{a['count']} interval(s) without a reading from {units.format_time(a['fromInterval'])}"


@dso.command("alerts")
@click.option("--from-block", type=click.IntRange(1), default=None,
              help=f"First block to read (default: the last {DEFAULT_ALERT_BLOCKS} blocks).")
@click.option("--to-block", type=click.IntRange(1), default=None, help="Last block to read (default: the best).")
@click.option("--zone", type=ZONE_ID, default=None, help="Only alerts about meters of this zone.")
@common_options
def alerts(from_block: int | None, to_block: int | None, zone: int | None) -> None:
    """List rogue-meter, implausible-reading and missed-interval events of the metering pallet."""
    s = current_settings()
    res = run_job(s, lambda w: alerts_in(w, from_block, to_block, zone))
    rows = res["alerts"]
    emit(s, res, lambda: (f"blocks {res['fromBlock']}..{res['toBlock']}: " + (
        "no alerts" if not rows else f"{len(rows)} alert(s)\n" + table(
            [["block", "alert", "meter", "zone", "what"]]
            + [[str(a["block"]), a["kind"], a["meter"], str(a["zone"]), _alert_text(a)] for a in rows]))))
