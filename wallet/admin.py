"""The operators' side of the wallet as a library: who signs (`--as NAME`), whether that key holds
the role a command needs, the licensed participants, and the chain's events decoded by metadata.

Operator commands (`gridchain admin ...`, wallet/cli_admin.py and the DSO and council groups) are
outside clients like the household wallet: they sign with a key from the encrypted keystore and
speak JSON-RPC only. Before any of them signs, it checks on chain that the key holds an ACTIVE
licence in the role the call needs (`require_role`), so a command run with the wrong key says so in
one line and sends nothing (no fee paid, no failed call in a block).

Role bits and licence status codes come from the node's metadata: the identity pallet publishes
one constant per role (`role_prosumer` = 1, ...) and per status (`status_active` = 0, ...), so the
names the commands accept and print are the chain's own, and no pallet code is imported.
"""
from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import click

from primitives import ss58
from primitives.codec import unpack
from rpc.client import RpcError
from wallet.chain import ChainState, Event
from wallet.wallet import Wallet, WalletError

#: the key under which `--as NAME` is kept in the click context's `meta` (shared by every level)
AS_META_KEY = "gridchain.admin.as"


class RoleError(WalletError):
    """The signing key does not hold an active licence in the role a command needs; nothing was sent."""


# ---------------------------------------------------------------------------------------------
# roles
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Licences:
    """The identity pallet's role bits and licence status codes, as its metadata constants
    `role_<name>` and `status_<name>` publish them; each list ordered by value (prosumer first)."""

    roles: tuple[tuple[str, int], ...]
    statuses: tuple[tuple[str, int], ...]

    @classmethod
    def of(cls, state: ChainState) -> "Licences":
        consts = state.pallet("identity").get("constants") or {}

        def published(prefix: str) -> tuple[tuple[str, int], ...]:
            found = [(k[len(prefix):], v) for k, v in consts.items()
                     if k.startswith(prefix) and type(v) is int]
            return tuple(sorted(found, key=lambda kv: (kv[1], kv[0])))
        roles, statuses = published("role_"), published("status_")
        if not roles or not any(name == "active" for name, _ in statuses):
            raise WalletError("the node's runtime publishes no role and status constants in its identity "
                              "pallet (role_<name>, status_<name>): an incompatible runtime")
        return cls(roles, statuses)

    def names(self, bits: int) -> list[str]:
        """The names of the role bits set in `bits`."""
        return [name for name, bit in self.roles if bits & bit]

    def bit(self, name: str) -> int:
        """A role's bit by name; WalletError naming the known roles for an unknown one."""
        want = name.strip().lower()
        for n, bit in self.roles:
            if n == want:
                return bit
        raise WalletError(f"unknown role {name.strip()!r} (known roles: {', '.join(n for n, _ in self.roles)})")

    def parse(self, text: str) -> int:
        """`prosumer,consumer` -> the role bits."""
        bits = 0
        for part in (p.strip() for p in text.split(",")):
            if part:
                bits |= self.bit(part)
        if bits == 0:
            raise WalletError(f"no role given: name one or more of {', '.join(n for n, _ in self.roles)}, "
                              "separated by commas")
        return bits

    def status_name(self, code: int) -> str:
        return next((n for n, c in self.statuses if c == code), f"status {code}")

    def status_code(self, name: str) -> int:
        want = name.strip().lower()
        for n, c in self.statuses:
            if n == want:
                return c
        raise WalletError(f"unknown licence status {name.strip()!r} (known: {', '.join(n for n, _ in self.statuses)})")

    @property
    def active(self) -> int:
        return self.status_code("active")


def licences(w: Wallet) -> Licences:
    """The role and status names of the chain `w` is connected to."""
    return Licences.of(w.state)


def role_names(w: Wallet, bits: int) -> list[str]:
    """The names of the role bits set in `bits`, in the pallet's order (prosumer first)."""
    return licences(w).names(bits)


def parse_roles(w: Wallet, text: str) -> int:
    """`prosumer,consumer` -> the role bits; WalletError naming the known roles for an unknown one."""
    return licences(w).parse(text)


def status_name(w: Wallet, code: int) -> str:
    return licences(w).status_name(code)


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
    lic = licences(w)
    bits = lic.bit(role)
    p = await w.state.read("identity", "participants", who, at=at)
    label = f"{name} ({w.address(who)})" if name else w.address(who)
    if p is None:
        raise RoleError(f"account {label} holds no licence, so not the {role} role; nothing was sent")
    held = int(p["roles"])
    if held & bits != bits:
        raise RoleError(f"account {label} does not hold the {role} role "
                        f"(it holds: {', '.join(lic.names(held)) or 'none'}); nothing was sent")
    if int(p["status"]) != lic.active:
        raise RoleError(f"account {label} holds the {role} role, but its licence is "
                        f"{lic.status_name(int(p['status']))}; nothing was sent")
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
    lic = licences(w)
    want_status = None if status is None else lic.status_code(status)
    want_role = None if role is None else lic.bit(role)
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
        out.append({"account": w.address(who), "roles": lic.names(int(p["roles"])),
                    "status": lic.status_name(int(p["status"])),
                    "documentHash": "0x" + bytes(p["document_hash"]).hex(),
                    "registrar": w.address(p["registrar"]), "licensedAt": int(p["licensed_at"])})
    out.sort(key=lambda r: r["account"])
    return out


# ---------------------------------------------------------------------------------------------
# events of finalized blocks, decoded by the node's metadata
# ---------------------------------------------------------------------------------------------

#: block hashes, events and runtime versions asked for per JSON-RPC batch when reading a range
EVENT_BATCH = 100
#: the node's error code for a block whose state it no longer keeps (events live in the state)
STATE_PRUNED = 4003


@dataclass(frozen=True)
class BlockEvent:
    """One event of a finalized block: where it happened, and the event decoded by metadata."""

    number: int
    block_hash: bytes
    index: int                       # position among the block's events
    phase: str                       # "initialization", "extrinsic", "finalization"
    extrinsic: int | None            # the extrinsic's index in the block, for phase "extrinsic"
    event: Event
    #: the chain state (metadata) of the block's runtime version, which decoded the event and
    #: types its fields: a field holds accounts where its metadata type has `AccountId` in it
    state: ChainState = field(compare=False, repr=False)

    @property
    def accounts(self) -> list[bytes]:
        """Every account the event names (the filter `--account` matches against)."""
        types = self.state.event_field_types(self.event.pallet, self.event.name)
        return [a for k, v in self.event.fields.items() for a in self.state.accounts_in(types.get(k), v)]

    def display_fields(self, ss58_format: int) -> dict[str, Any]:
        """Fields ready for JSON: accounts as SS58 addresses, other bytes as 0x-hex."""
        types = self.state.event_field_types(self.event.pallet, self.event.name)
        return {k: self.state.render(types.get(k), v, lambda a: ss58.encode(a, ss58_format))
                for k, v in self.event.fields.items()}

    def to_json(self, ss58_format: int) -> dict:
        return {"block": self.number, "blockHash": "0x" + self.block_hash.hex(), "index": self.index,
                "phase": self.phase, "extrinsic": self.extrinsic, "pallet": self.event.pallet,
                "event": self.event.name, "fields": self.display_fields(ss58_format)}

    def line(self, ss58_format: int) -> str:
        """One line of text: `#12 ext 1  identity.Licensed who=5F... roles=3 ...`."""
        where = f"ext {self.extrinsic}" if self.phase == "extrinsic" else self.phase[:4]
        fields = " ".join(f"{k}={json.dumps(v) if not isinstance(v, (str, int)) or isinstance(v, bool) else v}"
                          for k, v in self.display_fields(ss58_format).items())
        return f"#{self.number} {where:<6} {self.event.pallet}.{self.event.name} {fields}".rstrip()


@dataclass(frozen=True)
class EventFilter:
    """Which events to show: of one pallet (by name), and/or naming one account in any field."""

    pallet: str | None = None
    account: bytes | None = None

    def matches(self, e: BlockEvent) -> bool:
        if self.pallet is not None and e.event.pallet != self.pallet:
            return False
        return self.account is None or self.account in e.accounts


class EventReader:
    """Reads and decodes the events of blocks by number, each by the metadata of its own runtime
    version (fetched once per spec version), so a runtime upgrade mid-range decodes right."""

    def __init__(self, w: Wallet) -> None:
        self.w = w
        self._states: dict[int, ChainState] = {}
        self._events_key = "0x" + w.state.prefix("system", "events").hex()

    async def finalized_number(self) -> int:
        head = await self.w.client.request("chain_getFinalizedHead", [])
        header = await self.w.client.request("chain_getHeader", [head])
        return int(header["number"], 16)

    async def _state_for(self, spec_version: int, block_hash: str) -> ChainState:
        st = self._states.get(spec_version)
        if st is None:
            metadata = await self.w.client.request("state_getMetadata", [block_hash])
            st = self._states[spec_version] = ChainState(self.w.client, metadata)
        return st

    async def blocks(self, first: int, last: int) -> list[BlockEvent]:
        """The events of blocks `first..last` (inclusive), in order."""
        out: list[BlockEvent] = []
        for lo in range(first, last + 1, EVENT_BATCH):
            numbers = list(range(lo, min(last, lo + EVENT_BATCH - 1) + 1))
            hashes = await self.w.client.batch([("chain_getBlockHash", [n]) for n in numbers])
            calls: list[tuple[str, list]] = []
            for n, h in zip(numbers, hashes):
                if isinstance(h, RpcError):
                    raise h
                if h is None:
                    raise WalletError(f"the node has no block {n}")
                calls += [("state_getStorage", [self._events_key, h]), ("state_getRuntimeVersion", [h])]
            results = await self.w.client.batch(calls)
            for i, (n, h) in enumerate(zip(numbers, hashes)):
                raw, version = results[2 * i], results[2 * i + 1]
                for r in (raw, version):
                    if isinstance(r, RpcError) and r.code == STATE_PRUNED:
                        raise WalletError(f"cannot read the events of block {n}: {r.message}")
                    if isinstance(r, RpcError):
                        raise r
                st = await self._state_for(int(version["specVersion"]), h)
                records = unpack(bytes.fromhex(raw[2:])) if raw else []
                for j, (phase, pallet_index, event_index, data) in enumerate(records):
                    ev = st._event(pallet_index, event_index, data)   # as block_events, keeping the phase
                    kind = {0: "initialization", 1: "extrinsic", 2: "finalization"}.get(phase[0], str(phase))
                    out.append(BlockEvent(n, bytes.fromhex(h[2:]), j, kind,
                                          phase[1] if phase[0] == 1 else None, ev, st))
        return out

    async def follow(self, first: int | None, *, follow: bool) -> AsyncIterator[BlockEvent]:
        """Events of finalized blocks from `first` (None: the last finalized block) up to the
        finalized head; with `follow`, then those of each newly finalized block, for ever.

        The subscription is opened before the head is read, so no block finalized in between is
        missed; every notified head is filled in from the last block read (a notification may
        cover several blocks)."""
        sub = None
        if follow:
            sub = await self.w.client.subscribe("chain_subscribeFinalizedHeads", [],
                                                "chain_unsubscribeFinalizedHeads")
        try:
            head = await self.finalized_number()
            start = head if first is None else first
            if start > head and not follow:
                raise WalletError(f"block {start} is not finalized yet (the finalized head is block {head})")
            for e in await self.blocks(start, head) if start <= head else []:
                yield e
            next_block = max(start, head + 1)
            while sub is not None:
                header = await sub.next()
                number = int(header["number"], 16)
                if number >= next_block:
                    for e in await self.blocks(next_block, number):
                        yield e
                    next_block = number + 1
        finally:
            if sub is not None:
                await sub.unsubscribe()
