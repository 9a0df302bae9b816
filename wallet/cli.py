"""`gridchain wallet ...`: the household wallet's commands (see docs/wallet.md).

Each command is a thin layer over `wallet.wallet`: parse human units, unlock the account, run one
async call against the node, print text or (`--json`) one JSON document on stdout; failures are one
line on stderr and exit status 1 (`wallet.cli_common.WalletGroup`). This module holds the group and
the account, balance and transfer commands; `wallet.cli_market` the market's.

The options `--rpc`, `--keystore`, `--json` and `--password-file` are accepted both before the
command (`gridchain wallet --json balance bob`) and after it (`gridchain wallet balance bob --json`).
"""
from __future__ import annotations

import sys

import click

from wallet import units
from wallet.cli_common import (
    Settings,
    WalletGroup,
    common_options,
    current_settings,
    emit,
    finish_tx,
    read_password,
    run_job,
    table,
    tx_options,
    unlock,
)
from wallet.cli_market import dispute, order, standing, trades
from wallet.keystore import KDF_PRESETS
from wallet.wallet import (
    TxReport,
    Wallet,
    WalletError,
    create_account,
    import_account,
    parse_account,
)

# ---------------------------------------------------------------------------------------------
# the group and account commands
# ---------------------------------------------------------------------------------------------

@click.group(cls=WalletGroup)
@common_options
def wallet() -> None:
    """Household wallet: keys in an encrypted keystore, balances, transfers, energy orders, trades
    and disputes, through a node's JSON-RPC. Amounts take human units: 12.5 (GEUR), 1.2kWh, 500Wh,
    0.12 (GEUR per kWh); intervals +N, unix seconds or ISO time."""


@wallet.command()
@click.argument("name")
@click.option("--words", type=click.Choice(["12", "24"]), default="12", show_default=True)
@click.option("--kdf", type=click.Choice(list(KDF_PRESETS)), default="moderate", show_default=True,
              help="Password hashing cost; 'minimal' is for tests only and offers no protection.")
@common_options
def new(name: str, words: str, kdf: str) -> None:
    """Create an account from a new mnemonic (shown once: write it down)."""
    s = current_settings()
    store = s.store()
    if store.exists(name):
        raise WalletError(f"an account named {name!r} already exists in {store.directory}")
    info, phrase = create_account(store, name, read_password(s, confirm=True), words=int(words), kdf=KDF_PRESETS[kdf]())
    emit(s, {"name": info.name, "address": info.address, "publicKey": "0x" + info.public_key.hex(),
              "secretPhrase": phrase, "keystore": str(info.path)},
          lambda: f"created account {info.name}: {info.address}\n"
                  f"secret phrase (shown only now; it is the only backup of this key, keep it offline):\n"
                  f"  {phrase}\nkeystore file: {info.path}")


@wallet.command("import")
@click.argument("name")
@click.option("--uri", help="Secret URI: //Bob, '<mnemonic>//path', 0x<seed>.")
@click.option("--mnemonic", help="BIP39 mnemonic (words in quotes).")
@click.option("--kdf", type=click.Choice(list(KDF_PRESETS)), default="moderate", show_default=True,
              help="Password hashing cost; 'minimal' is for tests only and offers no protection.")
@common_options
def import_(name: str, uri: str | None, mnemonic: str | None, kdf: str) -> None:
    """Import an account from a secret URI or mnemonic (asked for, hidden, if neither is given)."""
    s = current_settings()
    if uri and mnemonic:
        raise WalletError("give --uri or --mnemonic, not both")
    secret = uri or mnemonic
    store = s.store()
    if store.exists(name):
        raise WalletError(f"an account named {name!r} already exists in {store.directory}")
    if secret is None:
        if not sys.stdin.isatty():
            raise WalletError("no secret: use --uri or --mnemonic (no terminal to ask on)")
        secret = click.prompt("Secret URI or mnemonic", hide_input=True, err=True)
    info = import_account(store, name, secret, read_password(s, confirm=True), kdf=KDF_PRESETS[kdf]())
    emit(s, {"name": info.name, "address": info.address, "publicKey": "0x" + info.public_key.hex(),
              "keystore": str(info.path)},
          lambda: f"imported account {info.name}: {info.address}")


@wallet.command("list")
@common_options
def list_() -> None:
    """List the keystore's accounts."""
    s = current_settings()
    accounts = s.store().accounts()
    emit(s, [{"name": a.name, "address": a.address, "publicKey": "0x" + a.public_key.hex()} for a in accounts],
          lambda: "\n".join(f"{a.name}  {a.address}" for a in accounts)
          or f"no accounts in {s.store().directory}")


@wallet.command()
@click.argument("name")
@common_options
def show(name: str) -> None:
    """Show an account's address and public key."""
    s = current_settings()
    a = s.store().info(name)
    emit(s, {"name": a.name, "address": a.address, "publicKey": "0x" + a.public_key.hex(), "keystore": str(a.path)},
          lambda: f"{a.name}\n  address     {a.address}\n  public key  0x{a.public_key.hex()}\n  file        {a.path}")


# ---------------------------------------------------------------------------------------------
# balances, transfers, meters
# ---------------------------------------------------------------------------------------------

def _balance_text(w: Wallet, b: dict, label: str) -> str:
    n, st = b["native"], b["stablecoin"]
    lines = [f"account       {label}",
             f"{n['symbol']:<13} {units.format_amount(n['free'], n['decimals'], n['symbol'])} free"
             + (f", {units.format_amount(n['reserved'], n['decimals'], n['symbol'])} reserved" if n["reserved"] else ""),
             (f"{st['symbol']:<13} {units.format_amount(st['balance'], st['decimals'], st['symbol'])}"
              f" (+ {units.format_amount(st['lockedInBids'], st['decimals'], st['symbol'])} locked in open bids)")]
    c = b.get("certificates")
    if c is not None:
        lines.append(f"certificates  {units.format_energy(c['heldWh'])} held, "
                     f"{units.format_energy(c['retiredWh'])} retired as green claims"
                     + ("" if c["complete"] else " (scan incomplete: very large chain)"))
        for z in c["zones"]:
            lines.append(f"  zone {z['zone']}: {units.format_energy(z['heldWh'])} held over {z['intervals']} "
                         f"interval(s), {units.format_energy(z['retiredWh'])} retired")
    return "\n".join(lines)


@wallet.command()
@click.argument("account")
@click.option("--certificates/--no-certificates", default=True, show_default=True,
              help="Also sum the certificates held (scans the certificate ledger).")
@common_options
def balance(account: str, certificates: bool) -> None:
    """Show balances of ACCOUNT (a keystore name or an address): native token, stablecoin, certificates."""
    s = current_settings()
    who = parse_account(account, s.store())

    async def job(w: Wallet) -> tuple[Wallet, dict]:
        return w, await w.balances(who, certificates=certificates)
    w, b = run_job(s, job)
    label = b["account"] if account == b["account"] else f"{account} ({b['account']})"
    emit(s, b, lambda: _balance_text(w, b, label))


@wallet.command()
@click.argument("name")
@click.argument("dest")
@click.argument("amount")
@click.option("--asset", default=None, help="Asset symbol or id: the native token (default) or the stablecoin, e.g. geur.")
@tx_options
@common_options
def transfer(name: str, dest: str, amount: str, asset: str | None, wait: str) -> None:
    """Send AMOUNT of an asset from account NAME to DEST; AMOUNT like 12.5, DEST a name or an address."""
    s = current_settings()
    to = parse_account(dest, s.store())
    kp = unlock(s, name)

    async def job(w: Wallet) -> TxReport:
        a = await w.asset(asset) if asset else w.chain.native
        value = units.parse_amount(amount, a.decimals, a.symbol)
        return await w.transfer(kp, to, value, a, until=wait)
    r = run_job(s, job)
    a = r.result["asset"]
    finish_tx(s, r, lambda: f"sent {units.format_amount(r.result['amount'], a['decimals'], a['symbol'])} "
                          f"to {r.result['to']}")


@wallet.command()
@click.argument("account")
@common_options
def meters(account: str) -> None:
    """List the certified meters of ACCOUNT (orders name one of them)."""
    s = current_settings()
    who = parse_account(account, s.store())
    ms = run_job(s, lambda w: w.meters_of(who))
    emit(s, ms, lambda: table([["meter", "zone", "kind", "rated", "status"]]
                                + [[m["meter"], str(m["zone"]), m["kind"], f"{m['ratedPowerW']} W", m["status"]]
                                   for m in ms]) if ms else "no meters")


for _command in (order, standing, trades, dispute):
    wallet.add_command(_command)

__all__ = ["Settings", "wallet"]
