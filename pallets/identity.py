"""Who may take part in the energy market: licensed participants, their roles and their standing.

A registrar (the regulator, or a body it appoints) licenses participants in one or more roles
(prosumer, consumer, DSO, registrar, stablecoin issuer, validator operator), and can suspend,
reinstate and revoke a licence. Only a participant whose licence is ACTIVE and covers the role may act
in it: other pallets ask `is_licensed(who, role)` before they accept an order, pay a seller, or let a
DSO change a zone. Each participant has a DID-style identifier, `did:grid:<SS58 address>`, and a
keccak-256 hash of their off-chain documents (licence file, KYC record): the documents stay off
chain, the hash pins which version the registrar saw.

Every change is an event naming the participant and the acting registrar, so the event log is the
audit trail of who licensed whom, when, and why it was suspended or revoked.

Decisions:
- `license` only creates a licence for an account that has none. To change a licensed participant's
  roles use `set_roles`; a suspended one is `reinstate`d.
- Revocation is final for registrars: a revoked account can be neither reinstated nor licensed again
  by a registrar (the participant has to come back with a new account). Only root (`force_license`,
  governance) can license a revoked account again, as the escape hatch for a mistaken revocation.
- A registrar may not suspend, revoke or change the roles of its own licence (no self-dealing).
- `registrar` in a participant's record is the registrar that issued the licence; `set_roles`,
  `suspend`, `reinstate` and `revoke` name their acting registrar in their events only. A licence
  made by root (`force_license`) or at genesis names the participant itself as its registrar.
"""
from __future__ import annotations

import dataclasses
import enum

from primitives import ss58
from primitives.codec import H256, U8, U64, struct
from primitives.types import AccountId
from pallets import system
from runtime.pallet import (ROOT, SIGNED, Origin, Pallet, PalletError, deposit_event, ensure,
                            ensure_root, ensure_signed, fail)

pallet = Pallet("identity", index=6, doc=__doc__)


class Role(enum.IntFlag):
    PROSUMER = 1
    CONSUMER = 2
    DSO = 4
    REGISTRAR = 8
    ISSUER = 16
    VALIDATOR_OPERATOR = 32


class Status(enum.IntEnum):
    ACTIVE = 0
    SUSPENDED = 1
    REVOKED = 2


#: every defined role bit; a licence's roles must be a non-empty subset of these
ALL_ROLES = int(Role.PROSUMER | Role.CONSUMER | Role.DSO | Role.REGISTRAR | Role.ISSUER
                | Role.VALIDATOR_OPERATOR)

#: role names as written in the chain spec's genesis section
ROLE_NAMES = {r.name.lower(): r for r in Role}

DID_PREFIX = "did:grid:"
NO_DOCUMENT = b"\0" * 32


@pallet.config
class Config:
    """Published in the metadata: the role bits a licence's `roles` combines and the codes of its
    `status`, one constant each (`role_<name>`, `status_<name>`), so outside clients read the
    names from the chain rather than from this module."""
    all_roles = ALL_ROLES
    role_prosumer = int(Role.PROSUMER)
    role_consumer = int(Role.CONSUMER)
    role_dso = int(Role.DSO)
    role_registrar = int(Role.REGISTRAR)
    role_issuer = int(Role.ISSUER)
    role_validator_operator = int(Role.VALIDATOR_OPERATOR)
    status_active = int(Status.ACTIVE)
    status_suspended = int(Status.SUSPENDED)
    status_revoked = int(Status.REVOKED)


@struct
class Participant:
    roles: U8
    status: U8
    document_hash: H256
    registrar: AccountId
    licensed_at: U64


# --- storage ---------------------------------------------------------------------------------
participants = pallet.map("participants", key=AccountId, value=Participant,
                          doc="Account -> licence: roles, status, document hash, issuing registrar, "
                              "block licensed at")


# --- events ----------------------------------------------------------------------------------
@pallet.event
class Licensed:
    """A licence was issued (or re-issued by root); registrar is the participant itself for root
    and genesis licences."""
    who: AccountId
    registrar: AccountId
    roles: U8
    document_hash: H256


@pallet.event
class RolesChanged:
    who: AccountId
    registrar: AccountId
    roles: U8


@pallet.event
class Suspended:
    who: AccountId
    registrar: AccountId
    reason_hash: H256


@pallet.event
class Reinstated:
    who: AccountId
    registrar: AccountId


@pallet.event
class Revoked:
    who: AccountId
    registrar: AccountId
    reason_hash: H256


@pallet.event
class DocumentUpdated:
    """The participant replaced its document hash; registrar is its licence's issuing registrar."""
    who: AccountId
    registrar: AccountId
    document_hash: H256


# --- errors ----------------------------------------------------------------------------------
class Error(PalletError):
    NotRegistrar = "only an active participant licensed as registrar may do this"
    InvalidRoles = "roles must be a non-empty combination of the defined role bits (1..63)"
    AlreadyLicensed = "this account already holds a licence; use set_roles or reinstate instead"
    NotParticipant = "this account holds no licence"
    RevocationIsFinal = "this licence was revoked, and a revoked licence cannot be changed or restored"
    NotActive = "only an active licence can be suspended"
    NotSuspended = "only a suspended licence can be reinstated"
    SelfAction = "a registrar may not suspend, revoke or change the roles of its own licence"


pallet.errors(Error)


# --- public interface ------------------------------------------------------------------------
def participant(who: bytes) -> Participant | None:
    return participants.get(who)


def is_licensed(who: bytes, role: Role) -> bool:
    """True if `who` holds an ACTIVE licence with every bit of `role` (Role(0): any active licence)."""
    p = participants.get(who)
    return p is not None and p.status == Status.ACTIVE and (p.roles & int(role)) == int(role)


def did_of(who: bytes) -> str:
    """The participant's DID: `did:grid:` and its SS58 address."""
    return DID_PREFIX + ss58.encode(who)


def valid_roles(roles: int) -> bool:
    return 0 < roles and roles & ~ALL_ROLES == 0


def ensure_registrar(origin: Origin) -> bytes:
    """The signer, if it is an active registrar; else NotRegistrar."""
    who = ensure_signed(origin)
    ensure(is_licensed(who, Role.REGISTRAR), Error.NotRegistrar)
    return who


def _existing(who: bytes) -> Participant:
    return participants.get(who) or fail(Error.NotParticipant)


# --- calls -----------------------------------------------------------------------------------
@pallet.call(0, weight=40_000, origin=SIGNED)
def license(origin: Origin, who: AccountId, roles: U8, document_hash: H256) -> None:
    """Registrar: license an account that holds no licence, in `roles`, against its documents' hash."""
    registrar = ensure_registrar(origin)
    ensure(valid_roles(roles), Error.InvalidRoles)
    existing = participants.get(who)
    if existing is not None:
        ensure(existing.status != Status.REVOKED, Error.RevocationIsFinal)
        fail(Error.AlreadyLicensed)
    participants.insert(who, Participant(roles, int(Status.ACTIVE), document_hash, registrar,
                                         system.number.get()))
    deposit_event(Licensed(who, registrar, roles, document_hash))


@pallet.call(1, weight=30_000, origin=SIGNED)
def set_roles(origin: Origin, who: AccountId, roles: U8) -> None:
    """Registrar: replace the roles of an active or suspended licence (not its own)."""
    registrar = ensure_registrar(origin)
    ensure(valid_roles(roles), Error.InvalidRoles)
    ensure(who != registrar, Error.SelfAction)
    p = _existing(who)
    ensure(p.status != Status.REVOKED, Error.RevocationIsFinal)
    participants.insert(who, dataclasses.replace(p, roles=roles))
    deposit_event(RolesChanged(who, registrar, roles))


@pallet.call(2, weight=30_000, origin=SIGNED)
def suspend(origin: Origin, who: AccountId, reason_hash: H256) -> None:
    """Registrar: suspend an active licence (not its own); `reason_hash` pins the off-chain reasons."""
    registrar = ensure_registrar(origin)
    ensure(who != registrar, Error.SelfAction)
    p = _existing(who)
    ensure(p.status != Status.REVOKED, Error.RevocationIsFinal)
    ensure(p.status == Status.ACTIVE, Error.NotActive)
    participants.insert(who, dataclasses.replace(p, status=int(Status.SUSPENDED)))
    deposit_event(Suspended(who, registrar, reason_hash))


@pallet.call(3, weight=30_000, origin=SIGNED)
def reinstate(origin: Origin, who: AccountId) -> None:
    """Registrar: make a suspended licence active again (a revoked one cannot be reinstated)."""
    registrar = ensure_registrar(origin)
    p = _existing(who)
    ensure(p.status != Status.REVOKED, Error.RevocationIsFinal)
    ensure(p.status == Status.SUSPENDED, Error.NotSuspended)
    participants.insert(who, dataclasses.replace(p, status=int(Status.ACTIVE)))
    deposit_event(Reinstated(who, registrar))


@pallet.call(4, weight=30_000, origin=SIGNED)
def revoke(origin: Origin, who: AccountId, reason_hash: H256) -> None:
    """Registrar: revoke an active or suspended licence (not its own). Final: see the pallet doc."""
    registrar = ensure_registrar(origin)
    ensure(who != registrar, Error.SelfAction)
    p = _existing(who)
    ensure(p.status != Status.REVOKED, Error.RevocationIsFinal)
    participants.insert(who, dataclasses.replace(p, status=int(Status.REVOKED)))
    deposit_event(Revoked(who, registrar, reason_hash))


@pallet.call(5, weight=25_000, origin=SIGNED)
def set_document(origin: Origin, document_hash: H256) -> None:
    """Participant: replace the hash of its own off-chain documents (active or suspended licence)."""
    who = ensure_signed(origin)
    p = _existing(who)
    ensure(p.status != Status.REVOKED, Error.RevocationIsFinal)
    participants.insert(who, dataclasses.replace(p, document_hash=document_hash))
    deposit_event(DocumentUpdated(who, p.registrar, document_hash))


@pallet.call(6, weight=40_000, origin=ROOT)
def force_license(origin: Origin, who: AccountId, roles: U8, document_hash: H256) -> None:
    """Root: license (or re-license, whatever its status) an account, for example the first
    registrars; the record names the account itself as its registrar."""
    ensure_root(origin)
    ensure(valid_roles(roles), Error.InvalidRoles)
    participants.insert(who, Participant(roles, int(Status.ACTIVE), document_hash, who, system.number.get()))
    deposit_event(Licensed(who, who, roles, document_hash))


# --- genesis ---------------------------------------------------------------------------------
def roles_from_names(names: list) -> int:
    """["registrar", "dso"] -> Role bits; raises ValueError on an unknown or missing role."""
    roles = 0
    for n in names:
        r = ROLE_NAMES.get(str(n).lower())
        if r is None:
            raise ValueError(f"identity genesis: unknown role {n!r} (known: {', '.join(ROLE_NAMES)})")
        roles |= int(r)
    if roles == 0:
        raise ValueError("identity genesis: a participant needs at least one role")
    return roles


@pallet.genesis
def _genesis(config: dict) -> None:
    """{"participants": [{"address": ss58, "roles": ["registrar", "dso", ...],
    "document_hash": "0x..." (optional, 32 bytes)}]}, licensed at block 0 by themselves."""
    for entry in config.get("participants", []):
        who = ss58.decode(entry["address"], None)
        if participants.contains(who):
            raise ValueError(f"identity genesis: {entry['address']} is listed twice")
        doc = entry.get("document_hash")
        document_hash = NO_DOCUMENT if doc is None else bytes.fromhex(doc.removeprefix("0x"))
        if len(document_hash) != 32:
            raise ValueError(f"identity genesis: document_hash of {entry['address']} is not 32 bytes")
        participants.insert(who, Participant(roles_from_names(entry["roles"]), int(Status.ACTIVE),
                                             document_hash, who, 0))
