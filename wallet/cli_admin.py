"""`gridchain admin ...` and `gridchain events`: the operators' commands (see docs/admin.md).

Like the household wallet (wallet/cli.py), every command is a thin layer over a library, signs with
a key from the encrypted keystore (`--as NAME`) and speaks JSON-RPC only; failures are one line on
stderr and exit status 1, and `--json` prints one JSON document. Before signing, a command checks on
chain that its key holds the role the call needs (`wallet.admin.require_role`), so the wrong key
sends nothing. This module holds the registrar's, the issuer's and arbitration's commands and
`events`; wallet/cli_dso.py and wallet/cli_council.py the DSO's and the council's.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click

from primitives.hashing import keccak256
from rpc.client import AsyncClient
from wallet import units
from wallet.admin import (
    EventFilter,
    EventReader,
    as_option,
    parse_roles,
    participants,
    require_role,
    role_names,
    signer_name,
)
from wallet.cli_common import (
    WalletCommand,
    WalletGroup,
    common_options,
    current_settings,
    emit,
    finish_tx,
    hex32,
    run_job,
    table,
    tx_options,
    unlock,
)
from wallet.wallet import Asset, TxReport, Wallet, WalletError, parse_account

#: the document hash of a licence issued without documents
NO_DOCUMENT = b"\0" * 32


def admin_options(fn: Callable) -> Callable:
    """The wallet's common options and `--as NAME`, accepted on every admin group and command."""
    return as_option(common_options(fn))


def signed_job(role: str, job: Callable[[Wallet, Any], Awaitable[TxReport]]) -> TxReport:
    """Unlock the `--as` account, check on chain that it holds `role`, then run `job(wallet, keypair)`."""
    s = current_settings()
    name = signer_name()
    kp = unlock(s, name)

    async def go(w: Wallet) -> TxReport:
        await require_role(w, kp.public_key, role, name=name)
        return await job(w, kp)
    return run_job(s, go)


def document_hash(text: str) -> bytes:
    """`0x` and 64 hex digits as given, or the keccak-256 of a file's bytes."""
    if text.startswith("0x"):
        return hex32(text, "a document hash")
    try:
        return keccak256(Path(text).read_bytes())
    except OSError as e:
        raise WalletError(f"cannot read document file {text}: {e.strerror or e}") from None


def reason_hash(text: str) -> bytes:
    """The keccak-256 of a reason's text: the text stays off chain, the hash pins it."""
    if not text.strip():
        raise WalletError("the reason must not be empty")
    return keccak256(text.encode())


@click.group(cls=WalletGroup)
@admin_options
def admin() -> None:
    """Operators' commands: the registrar, the stablecoin issuer, arbitration, the DSO and the
    council. Each signs with a keystore account (--as NAME) that must hold the role on chain."""


# ---------------------------------------------------------------------------------------------
# registrar
# ---------------------------------------------------------------------------------------------

@admin.group(cls=WalletGroup)
@admin_options
def registrar() -> None:
    """Licences: license, set roles, suspend, reinstate, revoke, documents, participants."""


def _who(account: str) -> bytes:
    return parse_account(account, current_settings().store())


def _licence_tx(call: str, args: dict, result: dict, wait: str, describe: Callable[[TxReport], str],
                roles: str | None = None) -> None:
    """Sign `identity.<call>` as the `--as` registrar. `roles` (text such as `prosumer,consumer`) is
    parsed with the names the node's metadata publishes, then sent as `args["roles"]` and shown as
    `result["roles"]`."""
    s = current_settings()

    async def job(w: Wallet, kp: Any) -> TxReport:
        if roles is not None:
            bits = parse_roles(w, roles)
            args["roles"], result["roles"] = bits, role_names(w, bits)
        r = await w.submit(kp, "identity", call, args, until=wait)
        r.result = {k: (w.address(v) if k == "account" else v) for k, v in result.items()}
        return r
    r = signed_job("registrar", job)
    finish_tx(s, r, lambda: describe(r))


@registrar.command("license")
@click.argument("account")
@click.option("--roles", required=True, metavar="R1,R2",
              help="Roles, comma-separated: prosumer, consumer, dso, registrar, issuer, validator_operator.")
@click.option("--document", metavar="FILE|0xHASH", default=None,
              help="The licence's documents: a file (its keccak-256 is recorded) or a 0x hash.")
@tx_options
@admin_options
def license_(account: str, roles: str, document: str | None, wait: str) -> None:
    """License ACCOUNT (a keystore name or an address) in the given roles."""
    who = _who(account)
    doc = NO_DOCUMENT if document is None else document_hash(document)
    _licence_tx("license", {"who": who, "document_hash": doc},
                {"account": who, "documentHash": "0x" + doc.hex()}, wait,
                lambda r: f"licensed {r.result['account']} as {', '.join(r.result['roles'])}", roles=roles)


@registrar.command("set-roles")
@click.argument("account")
@click.option("--roles", required=True, metavar="R1,R2", help="The licence's new roles, comma-separated.")
@tx_options
@admin_options
def set_roles(account: str, roles: str, wait: str) -> None:
    """Replace the roles of ACCOUNT's licence (active or suspended)."""
    who = _who(account)
    _licence_tx("set_roles", {"who": who}, {"account": who}, wait,
                lambda r: f"{r.result['account']} now holds: {', '.join(r.result['roles'])}", roles=roles)


@registrar.command()
@click.argument("account")
@click.option("--reason", required=True, help="Why (kept off chain; its keccak-256 is recorded).")
@tx_options
@admin_options
def suspend(account: str, reason: str, wait: str) -> None:
    """Suspend ACCOUNT's active licence: it can no longer act in any role until reinstated."""
    who, h = _who(account), reason_hash(reason)
    _licence_tx("suspend", {"who": who, "reason_hash": h}, {"account": who, "reasonHash": "0x" + h.hex()}, wait,
                lambda r: f"suspended {r.result['account']} (reason hash {r.result['reasonHash']})")


@registrar.command()
@click.argument("account")
@tx_options
@admin_options
def reinstate(account: str, wait: str) -> None:
    """Make ACCOUNT's suspended licence active again."""
    who = _who(account)
    _licence_tx("reinstate", {"who": who}, {"account": who}, wait,
                lambda r: f"reinstated {r.result['account']}")


@registrar.command()
@click.argument("account")
@click.option("--reason", required=True, help="Why (kept off chain; its keccak-256 is recorded).")
@tx_options
@admin_options
def revoke(account: str, reason: str, wait: str) -> None:
    """Revoke ACCOUNT's licence. Final: a revoked account cannot be reinstated or licensed again."""
    who, h = _who(account), reason_hash(reason)
    _licence_tx("revoke", {"who": who, "reason_hash": h}, {"account": who, "reasonHash": "0x" + h.hex()}, wait,
                lambda r: f"revoked {r.result['account']} (reason hash {r.result['reasonHash']})")


@registrar.command("set-document")
@click.argument("document", metavar="FILE|0xHASH")
@tx_options
@admin_options
def set_document(document: str, wait: str) -> None:
    """Replace the document hash of the signer's own licence (any licensed participant may)."""
    s = current_settings()
    doc = document_hash(document)
    name = signer_name()
    kp = unlock(s, name)

    async def job(w: Wallet) -> TxReport:
        p = await w.state.read("identity", "participants", kp.public_key)
        if p is None:
            raise WalletError(f"account {name} ({w.address(kp.public_key)}) holds no licence; nothing was sent")
        r = await w.submit(kp, "identity", "set_document", {"document_hash": doc}, until=wait)
        r.result = {"account": w.address(kp.public_key), "documentHash": "0x" + doc.hex()}
        return r
    r = run_job(s, job)
    finish_tx(s, r, lambda: f"the licence of {r.result['account']} now pins documents {r.result['documentHash']}")


@registrar.command("participants")
@click.option("--status", type=click.Choice(["active", "suspended", "revoked"]), default=None,
              help="Only licences in this status.")
@click.option("--role", default=None, help="Only licences holding this role.")
@admin_options
def participants_(status: str | None, role: str | None) -> None:
    """List licensed participants with their roles and status (needs no key)."""
    s = current_settings()
    rows = run_job(s, lambda w: participants(w, status=status, role=role))
    emit(s, rows, lambda: table([["account", "roles", "status", "licensed at", "documents"]]
                                + [[p["account"], ",".join(p["roles"]), p["status"], f"#{p['licensedAt']}",
                                    _doc_text(p["documentHash"])] for p in rows]) if rows else "no participants")


def _doc_text(h: str) -> str:
    return "none" if h == "0x" + NO_DOCUMENT.hex() else h


# ---------------------------------------------------------------------------------------------
# issuer
# ---------------------------------------------------------------------------------------------

@admin.group(cls=WalletGroup)
@admin_options
def issuer() -> None:
    """The stablecoin issuer: mint, burn, supply."""


asset_option = click.option("--asset", default=None, metavar="ID|SYMBOL",
                            help="The asset (default: the market's stablecoin).")


async def _asset_details(w: Wallet, asset: str | None) -> tuple[Asset, dict]:
    a = await w.asset(asset) if asset else w.chain.stablecoin
    if a.id is None:
        raise WalletError(f"{a.symbol} is the native token: only assets have an issuer, mint and burn")
    d = await w.state.read("balances", "assets", a.id)
    if d is None:
        raise WalletError(f"no asset {a.id} on this chain")
    return a, d


def _issuer_job(asset: str | None, call: str, amount: str, args: Callable[[Asset, int], dict],
                wait: str) -> TxReport:
    name = signer_name()

    async def job(w: Wallet, kp: Any) -> TxReport:
        a, d = await _asset_details(w, asset)
        if d["issuer"] != kp.public_key:
            raise WalletError(f"account {name} ({w.address(kp.public_key)}) is not the issuer of {a.symbol} "
                              f"(asset {a.id}; its issuer is {w.address(d['issuer'])}); nothing was sent")
        value = units.parse_amount(amount, a.decimals, a.symbol)
        if value == 0:
            raise WalletError("the amount must be greater than zero")
        r = await w.submit(kp, "balances", call, args(a, value), until=wait)
        r.result = {"asset": a.to_json(), "amount": value, "supplyBefore": d["supply"]}
        return r
    return signed_job("issuer", job)


@issuer.command()
@click.argument("account")
@click.argument("amount")
@asset_option
@tx_options
@admin_options
def mint(account: str, amount: str, asset: str | None, wait: str) -> None:
    """Issue AMOUNT (e.g. 250 or 250GEUR) of the asset to ACCOUNT, against money received off chain."""
    s = current_settings()
    to = _who(account)
    r = _issuer_job(asset, "mint", amount, lambda a, v: {"asset": a.id, "to": to, "amount": v}, wait)
    a = r.result["asset"]
    finish_tx(s, r, lambda: f"minted {units.format_amount(r.result['amount'], a['decimals'], a['symbol'])} "
                          f"to {account}")


@issuer.command()
@click.argument("amount")
@asset_option
@tx_options
@admin_options
def burn(amount: str, asset: str | None, wait: str) -> None:
    """Destroy AMOUNT of the asset from the issuer's own holdings (redeemed off chain)."""
    s = current_settings()
    r = _issuer_job(asset, "burn", amount, lambda a, v: {"asset": a.id, "amount": v}, wait)
    a = r.result["asset"]
    finish_tx(s, r, lambda: f"burned {units.format_amount(r.result['amount'], a['decimals'], a['symbol'])}")


@issuer.command()
@asset_option
@admin_options
def supply(asset: str | None) -> None:
    """The asset's total supply and its issuer (needs no key)."""
    s = current_settings()

    async def job(w: Wallet) -> dict:
        a, d = await _asset_details(w, asset)
        return {**a.to_json(), "supply": d["supply"], "issuer": w.address(d["issuer"])}
    out = run_job(s, job)
    emit(s, out, lambda: f"{units.format_amount(out['supply'], out['decimals'], out['symbol'])} in circulation "
                         f"(asset {out['assetId']}, issuer {out['issuer']})")


# ---------------------------------------------------------------------------------------------
# arbitration
# ---------------------------------------------------------------------------------------------

@admin.group(cls=WalletGroup)
@admin_options
def arbitration() -> None:
    """Disputed trades: list those awaiting a decision, decide one (a registrar's task)."""


async def open_disputes(w: Wallet) -> list[dict]:
    """Every dispute awaiting arbitration, by deadline: the trade, who raised it, the meters' shares."""
    queue = await w.state.read("settlement", "open_disputes") or []
    return [{**await w.dispute_status(trade_id), "tradeId": trade_id} for _deadline, trade_id in queue]


def _share_text(m: dict | None, key: str) -> str:
    if m is None:
        return "pending"
    return "none" if m[key] is None else units.format_energy(m[key])


@arbitration.command()
@admin_options
def disputes() -> None:
    """Disputes awaiting a decision, with each trade, its parties and the meters' shares (needs no key)."""
    s = current_settings()
    rows = run_job(s, open_disputes)
    emit(s, rows, lambda: table(
        [["trade", "interval", "seller", "buyer", "quantity", "raised by", "deadline", "seller meter",
          "buyer meter"]]
        + [[str(d["tradeId"]), units.format_time(d["trade"]["intervalStart"]), d["trade"]["seller"],
            d["trade"]["buyer"], units.format_energy(d["trade"]["wh"]), d["dispute"]["by"],
            units.format_time(d["dispute"]["arbitrationDeadline"]), _share_text(d["metered"], "sellerWh"),
            _share_text(d["metered"], "buyerWh")] for d in rows]) if rows else "no open disputes")


@arbitration.command()
@click.argument("trade_id", type=click.IntRange(0, None))
@click.option("--seller-share", required=True, metavar="ENERGY",
              help="What the seller delivered, e.g. 1.2kWh or 400Wh (at most the trade's quantity).")
@tx_options
@admin_options
def decide(trade_id: int, seller_share: str, wait: str) -> None:
    """Decide disputed trade TRADE_ID: the seller is paid for --seller-share, the buyer refunded the rest."""
    s = current_settings()
    wh = units.parse_energy(seller_share)

    async def job(w: Wallet, kp: Any) -> TxReport:
        r = await w.submit(kp, "settlement", "arbitrate", {"trade_id": trade_id, "seller_share_wh": wh}, until=wait)
        r.result = {"tradeId": trade_id, "sellerShareWh": wh}
        return r
    r = signed_job("registrar", job)
    finish_tx(s, r, lambda: f"decided trade {trade_id}: the seller delivered {units.format_energy(wh)}")


# ---------------------------------------------------------------------------------------------
# events
# ---------------------------------------------------------------------------------------------

@click.command(cls=WalletCommand)
@click.option("--follow", is_flag=True, help="Keep printing the events of each newly finalized block (Ctrl-C ends).")
@click.option("--pallet", default=None, help="Only this pallet's events (its name, e.g. identity).")
@click.option("--account", default=None, help="Only events naming this account (a keystore name or an address).")
@click.option("--from-block", type=click.IntRange(0, None), default=None,
              help="First block (default: the last finalized block).")
@common_options
def events(follow: bool, pallet: str | None, account: str | None, from_block: int | None) -> None:
    """Print the decoded events of finalized blocks: one line each, or (--json) one JSON object per line."""
    s = current_settings()
    who = None if account is None else parse_account(account, s.store())

    async def go() -> None:
        async with AsyncClient(s.url) as client:
            w = await Wallet.connect(client)
            name = None
            if pallet is not None:
                known = [p["name"] for p in w.state.metadata.get("pallets", [])]
                name = next((n for n in known if n.lower() == pallet.lower()), None)
                if name is None:
                    raise WalletError(f"unknown pallet {pallet!r} (the runtime's pallets: {', '.join(known)})")
            flt = EventFilter(name, who)
            async for e in EventReader(w).follow(from_block, follow=follow):
                if flt.matches(e):
                    click.echo(json.dumps(e.to_json(w.chain.ss58_format)) if s.json
                               else e.line(w.chain.ss58_format))
    try:
        asyncio.run(go())
    except KeyboardInterrupt:
        pass                                        # the way --follow ends


# ---------------------------------------------------------------------------------------------
# the DSO's and the council's groups (wallet/cli_dso.py, wallet/cli_council.py)
# ---------------------------------------------------------------------------------------------

from wallet.cli_council import council  # noqa: E402
from wallet.cli_dso import dso  # noqa: E402

admin.add_command(dso)
admin.add_command(council)

__all__ = ["admin", "admin_options", "events", "signed_job"]
