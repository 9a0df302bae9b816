"""Runtime upgrades: which runtime version (spec_version) is in force, and the one scheduled next.

A running network changes its rules without stopping: the council passes a motion that schedules
a spec_version at a future block height; every validator runs a node binary that carries the
runtime versions it knows (`pallets.RELEASE_VERSIONS`), installed ahead of the height.

Rules:
  - `schedule(spec_version, at)` (root: a council motion, or sudo on dev chains) refuses a height
    that is not in the future, a version not newer than the one in force, and a second schedule
    while one is pending (cancel it first). Nothing checks that a node knows the version: a node is
    told when it cannot go on (below), the chain's rules cannot depend on which binary runs them.
  - Which version runs block n is decided from its parent's state (`version_for_block`): the
    scheduled version once n reaches its height, else `spec_version`.
  - In the block at the height, before any hook, the executive runs the storage migrations of each
    version stepped through (`enter_version`), sets `spec_version`, clears `scheduled` and records
    `RuntimeUpgraded(from, to)`. Migrations are deterministic and visit each item once.
  - A node whose binary does not know the version a block runs under neither authors, votes for
    nor imports it: it stops with one line naming the version to install (node/chain.py).
  - A transaction signs the spec_version (see docs/protocol.md): one signed for the old version is
    refused once the new one runs; clients read the runtime version for every submission.
"""
from __future__ import annotations

from typing import Callable

from pallets import system
from primitives.codec import U32, U64, Optional, Tuple
from runtime.pallet import (ROOT, Origin, Pallet, PalletError, deposit_event, ensure, ensure_root)

pallet = Pallet("upgrades", index=15, doc=__doc__)

#: the weight of scheduling or cancelling: a few reads and one write
W_SCHEDULE = 30_000
#: the weight of switching versions, besides the migrations' own
W_ENTER = 30_000

# --- storage ---------------------------------------------------------------------------------
version_in_force = pallet.value("spec_version", U32, default=1,
                            doc="The runtime spec_version in force (the last block ran under it)")
scheduled = pallet.value("scheduled", Optional(Tuple(U32, U64)), default=None,
                         doc="(spec_version, at block): the upgrade scheduled next, if any")


# --- events ----------------------------------------------------------------------------------
@pallet.event
class UpgradeScheduled:
    """Blocks from `at` on run under runtime `spec_version`: install a node release that knows it
    before then."""
    spec_version: U32
    at: U64


@pallet.event
class UpgradeCancelled:
    spec_version: U32
    at: U64


@pallet.event
class RuntimeUpgraded:
    """This block is the first under `to_version`; its migrations ran before anything else."""
    from_version: U32
    to_version: U32


# --- errors ----------------------------------------------------------------------------------
class Error(PalletError):
    HeightInPast = "the upgrade's height must be a future block (above the current block number)"
    VersionNotNewer = "the scheduled spec_version must be newer than the runtime version in force"
    AlreadyScheduled = "an upgrade is already scheduled; cancel it first"
    NothingScheduled = "no upgrade is scheduled"


pallet.errors(Error)


# --- calls -----------------------------------------------------------------------------------
@pallet.call(0, weight=W_SCHEDULE, origin=ROOT)
def schedule(origin: Origin, spec_version: U32, at: U64) -> None:
    """Run blocks from height `at` under runtime `spec_version` (its migrations run in block `at`)."""
    ensure_root(origin)
    ensure(at > system.number.get(), Error.HeightInPast)
    ensure(spec_version > version_in_force.get(), Error.VersionNotNewer)
    ensure(scheduled.get() is None, Error.AlreadyScheduled)
    scheduled.put((spec_version, at))
    deposit_event(UpgradeScheduled(spec_version, at))


@pallet.call(1, weight=W_SCHEDULE, origin=ROOT)
def cancel(origin: Origin) -> None:
    """Drop the scheduled upgrade (before its height)."""
    ensure_root(origin)
    pending = scheduled.get()
    ensure(pending is not None, Error.NothingScheduled)
    scheduled.kill()
    deposit_event(UpgradeCancelled(pending[0], pending[1]))


# --- the executive's interface ---------------------------------------------------------------
def version_for_block(number: int) -> int:
    """The spec_version block `number` runs under, read from its parent's state: the scheduled one
    once the block reaches its height, else the one in force."""
    pending = scheduled.get()
    if pending is not None and number >= pending[1]:
        return pending[0]
    return version_in_force.get()


def enter_version(to: int, migrations: dict[int, Callable[[], int]]) -> int:
    """Called by the executive at the start of every block run by the runtime of version `to`: in the
    first block under `to`, run the migration of every version stepped through (from + 1 .. to, in
    order), record the switch and clear the schedule. Returns the weight used."""
    start = version_in_force.get()
    if start == to:
        return 0
    weight = W_ENTER
    for v in range(start + 1, to + 1):
        migrate = migrations.get(v)
        if migrate is not None:
            weight += migrate()
    version_in_force.put(to)
    scheduled.kill()
    deposit_event(RuntimeUpgraded(start, to))
    return weight


# --- genesis ---------------------------------------------------------------------------------
@pallet.genesis
def _genesis(config: dict) -> None:
    """{"spec_version": N} (optional, default 1): a new chain may start under a later version; its
    genesis state is then that version's (nothing to migrate)."""
    v = config.get("spec_version", 1)
    if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v < 2**32:
        raise ValueError(f"upgrades genesis: spec_version must be a positive integer, not {v!r}")
    if v != 1:
        version_in_force.put(v)
