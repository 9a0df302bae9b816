"""A small in-memory runtime for unit tests of the executive and pallets: genesis defaults, one
dict as state, blocks applied in order. A test overrides only what it is about."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from pallets import build_runtime
from primitives.extrinsic import Call, Extrinsic, Mortality, sign_extrinsic
from primitives.keys import Keypair, dev_keypair
from primitives.types import DIGEST_PRE_RUNTIME, ENGINE_GRID, DigestItem
from runtime.executive import BlockResult, Runtime, execute_block
from runtime.storage import Overlay, externalities

GENESIS_HASH = b"\x42" * 32
ALICE, BOB, CHARLIE, EVE = (dev_keypair(n) for n in ("Alice", "Bob", "Charlie", "Eve"))
FUNDS = 10**15


class MemState(dict):
    def iter_keys(self, prefix: bytes, start_after: bytes | None = None) -> Iterator[bytes]:
        return iter(sorted(k for k in self if k.startswith(prefix) and (start_after is None or k > start_after)))

    def apply(self, changes: dict) -> None:
        for k, v in changes.items():
            if v is None:
                self.pop(k, None)
            else:
                self[k] = v


def default_genesis() -> dict:
    return {
        "authorship": {"authorities": [ALICE.address()]},
        "balances": {"balances": [[k.address(), FUNDS] for k in (ALICE, BOB, CHARLIE, EVE)],
                     "assets": [{"id": 1, "symbol": "GEUR", "decimals": 6, "issuer": EVE.address(),
                                 "balances": [[BOB.address(), 1000]]}]},
        "sudo": {"key": ALICE.address()},
        "identity": {"participants": [{"address": EVE.address(), "roles": ["issuer"]}]},
    }


@dataclass
class ChainHarness:
    runtime: Runtime
    state: MemState
    number: int = 0
    hashes: list = field(default_factory=lambda: [GENESIS_HASH])
    now_ms: int = 1_700_000_000_000
    author: Keypair = ALICE

    @classmethod
    def new(cls, genesis: dict | None = None, pallets_runtime: Runtime | None = None) -> "ChainHarness":
        rt = pallets_runtime or build_runtime(GENESIS_HASH)
        return cls(rt, MemState(rt.build_genesis_storage(genesis or default_genesis())))

    def timestamp(self) -> bytes:
        self.now_ms += 1000
        return Extrinsic(Call(1, 0, (self.now_ms,))).encode()

    def xt(self, who: Keypair, pallet: str, call: str, *args: Any, nonce: int | None = None, tip: int = 0,
           mortality: Mortality = Mortality(), genesis_hash: bytes = GENESIS_HASH, spec_version: int | None = None) -> bytes:
        p = self.runtime.by_name[pallet]
        cd = p.calls_by_name[call]
        plain = tuple(t.to_plain(a) for t, a in zip(cd.arg_types, args))
        if nonce is None:
            nonce = self.nonce(who.public_key)
        birth_hash = None if mortality.immortal else self.hashes[mortality.birth]
        return sign_extrinsic(who, Call(p.index, cd.index, plain), nonce=nonce, genesis_hash=genesis_hash,
                              spec_version=spec_version or self.runtime.version.spec_version,
                              transaction_version=self.runtime.version.transaction_version, tip=tip,
                              mortality=mortality, birth_hash=birth_hash).encode()

    def digest(self) -> tuple:
        return (DigestItem(DIGEST_PRE_RUNTIME, ENGINE_GRID, self.author.public_key),)

    def block(self, *xts: bytes) -> BlockResult:
        """Execute a block (import rules: every extrinsic must apply) and commit it."""
        n = self.number + 1
        builder = self.runtime.begin_block(self.state, self.hashes[-1], n, self.digest())
        result = execute_block(builder, [self.timestamp(), *xts])
        self.state.apply(result.changes)
        self.number = n
        self.hashes.append(bytes([n % 256]) * 32)
        return result

    def builder(self):
        b = self.runtime.begin_block(self.state, self.hashes[-1], self.number + 1, self.digest())
        b.apply(self.timestamp())
        return b

    def commit(self, b) -> BlockResult:
        result = b.finish()
        self.state.apply(result.changes)
        self.number += 1
        self.hashes.append(bytes([self.number % 256]) * 32)
        return result

    def validate(self, data: bytes):
        ctx = self.runtime.validation_context(self.state, self.hashes[-1], self.number)
        return ctx.validate(ctx.decode(data), None)

    def read(self, fn):
        with externalities(Overlay(self.state)):
            return fn()

    def nonce(self, who: bytes) -> int:
        from pallets import system
        return self.read(lambda: system.account.get(who).nonce)

    def free(self, who: bytes) -> int:
        from pallets import system
        return self.read(lambda: system.account.get(who).free)

    def asset(self, asset: int, who: bytes) -> int:
        from pallets import balances
        return self.read(lambda: balances.asset_balance.get(asset, who))

    def total_issuance(self) -> int:
        from pallets import balances
        return self.read(lambda: balances.total_issuance.get())

    def sum_native(self) -> int:
        from pallets import system
        return self.read(lambda: sum(i.free + i.reserved for _, i in system.account.items()))


def chain_factory(genesis: dict) -> Callable[[], "ChainHarness"]:
    """Fresh chains of the composed runtime from `genesis`, each at block 1 (so metering knows the
    genesis hash); the genesis storage is built once and copied per chain. The runtime is the
    version the genesis starts under (its `upgrades` spec_version, else 1)."""
    runtime = build_runtime(GENESIS_HASH, spec_version=genesis.get("upgrades", {}).get("spec_version", 1))
    state = runtime.build_genesis_storage(genesis)

    def new_chain() -> ChainHarness:
        chain = ChainHarness(runtime, MemState(state))
        chain.block()
        return chain
    new_chain.runtime = runtime      # for events_named and metadata lookups
    return new_chain


def events_named(result: BlockResult, runtime: Runtime, pallet: str, name: str) -> list:
    p = runtime.by_name[pallet]
    ev = next(e for e in p.events if e.__name__ == name)
    return [e[3] for e in result.events if e[1] == p.index and e[2] == ev._event_index]
