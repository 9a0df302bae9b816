"""What every `gridchain wallet` command shares: options, password input, running a job against the
node, printing, and turning every error into one line.

Every failure (unknown account, wrong password, unreachable node, a refusal or failed call with
the node's reason, a bad amount) must reach the user as one line on stderr and exit status 1:
`WalletGroup.invoke` turns the errors the layers below raise into `click.ClickException`s, which
`gridchain` prints as `Error: ...`.
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import click

from primitives.keys import Keypair
from rpc.client import AsyncClient, RpcError
from wallet import units
from wallet.chain import ChainError
from wallet.keystore import Keystore, KeystoreError
from wallet.wallet import TxReport, Wallet, WalletError

DEFAULT_RPC = "http://127.0.0.1:9944"
PASSWORD_ENV = "GRIDCHAIN_WALLET_PASSWORD"
RPC_ENV = "GRIDCHAIN_RPC"
WAIT_CHOICES = ("finalized", "inBlock")


@dataclass
class Settings:
    """Options gathered from the group and the command; unset ones fall back to env, then defaults."""

    rpc: str | None = None
    keystore: Path | None = None
    json: bool = False
    password_file: Path | None = None

    @property
    def url(self) -> str:
        return self.rpc or os.environ.get(RPC_ENV) or DEFAULT_RPC

    def store(self) -> Keystore:
        return Keystore(self.keystore)


def current_settings() -> Settings:
    return click.get_current_context().ensure_object(Settings)


def remember(attr: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value not in (None, False):
            setattr(ctx.ensure_object(Settings), attr, value)
    return callback


def common_options(fn: Callable) -> Callable:
    """The options every wallet command takes, also accepted on the `wallet` group."""
    opts = [
        click.option("--rpc", metavar="URL", expose_value=False, callback=remember("rpc"),
                     help=f"Node RPC endpoint, http(s):// or ws(s):// (default ${RPC_ENV} or {DEFAULT_RPC})."),
        click.option("--keystore", metavar="DIR", type=click.Path(path_type=Path), expose_value=False,
                     callback=remember("keystore"),
                     help="Keystore directory (default $GRIDCHAIN_KEYSTORE or ~/.gridchain/wallet)."),
        click.option("--json", "json_", is_flag=True, default=False, expose_value=False, callback=remember("json"),
                     help="Machine-readable output: one JSON document on stdout."),
        click.option("--password-file", metavar="FILE", type=click.Path(path_type=Path), expose_value=False,
                     callback=remember("password_file"),
                     help=f"Read the keystore password from the first line of FILE (else ${PASSWORD_ENV}, "
                          "else a hidden prompt)."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def tx_options(fn: Callable) -> Callable:
    return click.option("--wait", type=click.Choice(WAIT_CHOICES), default="finalized", show_default=True,
                        help="Return once the transaction is finalized, or already when it is in a block.")(fn)


def one_line(text: str) -> str:
    return " ".join(str(text).split())


@contextmanager
def one_line_errors(settings: Settings) -> Iterator[None]:
    """Turn every error the wallet layers raise into one line (`click.ClickException`, exit 1)."""
    try:
        yield
    except (click.ClickException, click.exceptions.Exit, click.Abort):
        raise
    except (KeystoreError, WalletError, units.UnitError, ChainError) as e:
        raise click.ClickException(one_line(e)) from None
    except RpcError as e:
        refused = (isinstance(e.code, int) and 1000 <= e.code < 1100) or (
            e.code == -32000 and e.message.startswith("extrinsic "))   # dropped / usurped while watched
        if refused:
            raise click.ClickException(one_line(f"the node rejected the transaction: {e.message}")) from None
        raise click.ClickException(one_line(f"the node answered with an error: {e}")) from None
    except TimeoutError:                 # (an OSError: it goes first)
        raise click.ClickException(f"timed out waiting for the node at {settings.url}") from None
    except (OSError, aiohttp.ClientError, ConnectionError) as e:
        raise click.ClickException(one_line(f"cannot reach the node at {settings.url}: "
                                            f"{e or type(e).__name__}")) from None
    except ValueError as e:          # e.g. a bad RPC URL, or an argument the client cannot encode
        raise click.ClickException(one_line(e)) from None
    except Exception as e:  # noqa: BLE001 - a node answer of an unexpected shape, or a bug: still one line
        raise click.ClickException(one_line(f"unexpected {type(e).__name__}: {e} (please report this)")) from None


class WalletGroup(click.Group):
    """Turns every error the wallet layers raise into one line and exit status 1 (never a traceback)."""

    def invoke(self, ctx: click.Context) -> Any:
        settings = ctx.ensure_object(Settings)      # one object, shared with the subcommands' contexts
        with one_line_errors(settings):
            return super().invoke(ctx)


class WalletCommand(click.Command):
    """A stand-alone command (not under a WalletGroup) with the same one-line errors."""

    def invoke(self, ctx: click.Context) -> Any:
        with one_line_errors(ctx.ensure_object(Settings)):
            return super().invoke(ctx)


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def read_password(settings: Settings, *, confirm: bool = False) -> str:
    """From --password-file, else $GRIDCHAIN_WALLET_PASSWORD, else a hidden prompt on a terminal."""
    if settings.password_file is not None:
        try:
            with open(settings.password_file, encoding="utf-8") as f:
                line = f.readline()
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
            raise WalletError(f"cannot read password file {settings.password_file}: {reason}") from None
        return line.rstrip("\r\n")
    env = os.environ.get(PASSWORD_ENV)
    if env:
        return env
    if not sys.stdin.isatty():
        raise WalletError(f"no password: use --password-file FILE or set {PASSWORD_ENV} (no terminal to ask on)")
    return click.prompt("Keystore password", hide_input=True, confirmation_prompt=confirm, err=True)


def unlock(settings: Settings, name: str) -> Keypair:
    store = settings.store()
    store.info(name)                       # unknown or damaged account: fail before asking for a password
    return store.unlock(name, read_password(settings))


def run_job(settings: Settings, job: Callable[[Wallet], Awaitable[Any]]) -> Any:
    """Connect to the node, learn the chain, run `job`, close the connection."""
    async def go() -> Any:
        async with AsyncClient(settings.url) as client:
            return await job(await Wallet.connect(client))
    return asyncio.run(go())


def emit(settings: Settings, data: Any, text: Callable[[], str]) -> None:
    if settings.json:
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(text())


def hex32(text: str | None, what: str) -> bytes | None:
    if text is None:
        return None
    try:
        b = bytes.fromhex(text[2:]) if text.startswith("0x") else b""
    except ValueError:
        b = b""
    if len(b) != 32:
        raise WalletError(f"{what} must be 0x followed by 64 hex digits")
    return b


def finish_tx(settings: Settings, report: TxReport, describe: Callable[[], str]) -> None:
    """Print a transaction's report; a call that failed in its block is an error (exit 1)."""
    where = f"block 0x{report.block_hash.hex()}" if report.block_hash else "a block"
    if settings.json:
        click.echo(json.dumps(report.to_json(), indent=2))
    if report.success is False:
        raise click.ClickException(one_line(f"{report.call} failed in {where}: {report.error} (the fee was paid)"))
    if settings.json:
        return
    click.echo(f"{report.status} in {where} (extrinsic 0x{report.hash.hex()})")
    if report.success is None:
        click.echo("the node could not say whether the call succeeded: check its effect before retrying")
    click.echo(describe())


def money(w: Wallet, units_: int) -> str:
    s = w.chain.stablecoin
    return units.format_amount(units_, s.decimals, s.symbol)


def price_text(w: Wallet, per_kwh: int) -> str:
    s = w.chain.stablecoin
    return units.format_price(per_kwh, s.decimals, s.symbol)


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
