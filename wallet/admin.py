"""The operators' side of the wallet as a library: who signs (`--as NAME`), whether that key holds
the role a command needs, the licensed participants, and the chain's events decoded by metadata.

Operator commands (`gridchain admin ...`, wallet/cli_admin.py and the DSO and council groups) are
outside clients like the household wallet: they sign with a key from the encrypted keystore and
speak JSON-RPC only. Before any of them signs, it checks on chain that the key holds an ACTIVE
licence in the role the call needs (`require_role`), so a command run with the wrong key says so in
one line and sends nothing (no fee paid, no failed call in a block).

Roles and licence statuses are the identity pallet's own enums (`pallets.identity.Role` and
`Status`: the storage value holds their integer bits), so their names cannot drift from the chain's.
"""
from __future__ import annotations

from typing import Any

import click

from pallets.identity import ROLE_NAMES, Role, Status
from wallet.wallet import Wallet, WalletError

#: the key under which `--as NAME` is kept in the click context's `meta` (shared by every level)
AS_META_KEY = "gridchain.admin.as"


class RoleError(WalletError):
    """The signing key does not hold an active licence in the role a command needs; nothing was sent."""


# ---------------------------------------------------------------------------------------------
# roles
# ---------------------------------------------------------------------------------------------

def role_names(bits: int) -> list[str]:
    """The names of the role bits set in `bits`, in the pallet's order (prosumer first)."""
    return [r.name.lower() for r in Role if bits & int(r)]


def parse_roles(text: str) -> int:
    """`prosumer,consumer` -> the Role bits; WalletError naming the known roles for an unknown one."""
    bits = 0
    for part in (p.strip().lower() for p in text.split(",")):
        if not part:
            continue
        r = ROLE_NAMES.get(part)
        if r is None:
            raise WalletError(f"unknown role {part!r} (known roles: {', '.join(ROLE_NAMES)})")
        bits |= int(r)
    if bits == 0:
        raise WalletError(f"no role given: name one or more of {', '.join(ROLE_NAMES)}, separated by commas")
    return bits


def role_of(name: str) -> Role:
    r = ROLE_NAMES.get(name.strip().lower())
    if r is None:
        raise WalletError(f"unknown role {name!r} (known roles: {', '.join(ROLE_NAMES)})")
    return r


def status_name(code: int) -> str:
    try:
        return Status(code).name.lower()
    except ValueError:
        return f"status {code}"


async def require_role(w: Wallet, who: bytes, role: str, *, name: str | None = None,
                       at: bytes | None = None) -> dict:
    """Check on chain that account `who` holds an ACTIVE licence in `role` before signing anything.

    `role` is a role name as the identity pallet spells it: "prosumer", "consumer", "dso",
    "registrar", "issuer" or "validator_operator". `name` is the keystore account name the user
    typed (`--as NAME`), used in the message. Returns the participant's decoded licence record
    (`roles`, `status`, `document_hash`, `registrar`, `licensed_at`) when the check passes.

    Raises `RoleError` (a `WalletError`, so the CLI prints it as one line and exits 1) otherwise:
        account bob (5FHn...) does not hold the registrar role (it holds: prosumer); nothing was sent
        account bob (5FHn...) holds no licence, so not the registrar role; nothing was sent
        account bob (5FHn...) holds the registrar role, but its licence is suspended; nothing was sent

    A pallet checks more than the role for some calls (a DSO acts only on its own zones, an issuer
    only on its own asset); those checks stay the pallet's, whose refusal the CLI prints as is.
    """
    bits = int(role_of(role))
    p = await w.state.read("identity", "participants", who, at=at)
    label = f"{name} ({w.address(who)})" if name else w.address(who)
    if p is None:
        raise RoleError(f"account {label} holds no licence, so not the {role} role; nothing was sent")
    held = int(p["roles"])
    if held & bits != bits:
        raise RoleError(f"account {label} does not hold the {role} role "
                        f"(it holds: {', '.join(role_names(held)) or 'none'}); nothing was sent")
    if int(p["status"]) != Status.ACTIVE:
        raise RoleError(f"account {label} holds the {role} role, but its licence is "
                        f"{status_name(int(p['status']))}; nothing was sent")
    return p


# ---------------------------------------------------------------------------------------------
# `--as NAME`: the keystore account that signs an operator command
# ---------------------------------------------------------------------------------------------

def _remember_as(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
    if value is not None:
        ctx.meta[AS_META_KEY] = value


def as_option(fn: Any) -> Any:
    """`--as NAME` on a group or command; read it back with `signer_name()` (the innermost wins)."""
    return click.option("--as", "as_", metavar="NAME", expose_value=False, callback=_remember_as,
                        help="The keystore account that signs (it must hold the command's role).")(fn)


def signer_name() -> str:
    """The `--as NAME` given on the command line; WalletError if there was none."""
    name = click.get_current_context().meta.get(AS_META_KEY)
    if not name:
        raise WalletError("no signing account: give --as NAME (an account in the keystore)")
    return str(name)


# ---------------------------------------------------------------------------------------------
# participants
# ---------------------------------------------------------------------------------------------

async def participants(w: Wallet, *, status: str | None = None, role: str | None = None) -> list[dict]:
    """Every licensed participant (all of `identity.participants`, read at one block), optionally
    only those in `status` (active, suspended, revoked) or holding `role`, ordered by address."""
    want_status = None if status is None else _status_of(status)
    want_role = None if role is None else int(role_of(role))
    at = await w.state.best_hash()
    keys, _more = await w.state.keys_with_prefix(w.state.prefix("identity", "participants"), at, None)
    values = await w.state.read_keys("identity", "participants", keys, at)
    out = []
    for k, p in zip(keys, values):
        if p is None:
            continue
        if want_status is not None and int(p["status"]) != want_status:
            continue
        if want_role is not None and int(p["roles"]) & want_role != want_role:
            continue
        who = w.state.decode_keys("identity", "participants", k)[0]
        out.append({"account": w.address(who), "roles": role_names(int(p["roles"])),
                    "status": status_name(int(p["status"])),
                    "documentHash": "0x" + bytes(p["document_hash"]).hex(),
                    "registrar": w.address(p["registrar"]), "licensedAt": int(p["licensed_at"])})
    out.sort(key=lambda r: r["account"])
    return out


def _status_of(name: str) -> int:
    try:
        return int(Status[name.strip().upper()])
    except KeyError:
        raise WalletError(f"unknown licence status {name!r} (known: "
                          f"{', '.join(s.name.lower() for s in Status)})") from None
