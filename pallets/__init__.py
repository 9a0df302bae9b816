"""gridchain's pallets, and the composed runtime (the list below is the runtime's pallet order)."""
from __future__ import annotations

import os

from pallets import (authorship, balances, certificates, council, field_meters, grid, identity, market,
                     metering, settlement, sudo, system, timestamp, transaction_payment, upgrades, validators)
from runtime.executive import Runtime, RuntimeVersion

#: every pallet of the runtime, by index; metadata and call indices follow this
ALL_PALLETS = [system.pallet, timestamp.pallet, authorship.pallet, balances.pallet,
               transaction_payment.pallet, sudo.pallet, identity.pallet, grid.pallet, metering.pallet,
               certificates.pallet, market.pallet, settlement.pallet, validators.pallet, field_meters.pallet,
               council.pallet, upgrades.pallet]

VERSION = RuntimeVersion()

#: The runtime versions (spec_version) this release carries, each with the storage migration that
#: enters it (None: nothing to migrate). Calls and storage items introduced by a version say so
#: (`since`); see pallets/upgrades.py for how a network switches at a scheduled height.
#:   1: the first release.
#:   2: standing orders with a time-of-day window (market.set_standing_order_window); the migration
#:      gives every existing standing order an explicit all-day window.
RELEASE_VERSIONS: dict[int, object] = {1: None, 2: market.add_all_day_windows}

#: Test-only: "1" or "1,2" limits the versions this process knows, emulating an older release (a
#: network test runs "the old binary" this way). Never set it on a production node.
VERSIONS_ENV = "GRIDCHAIN_RUNTIME_VERSIONS"


class UnknownRuntimeVersion(ValueError):
    """A runtime version this release does not carry."""

    def __init__(self, spec_version: int, known: tuple[int, ...]) -> None:
        super().__init__(f"runtime spec_version {spec_version} is not known to this release "
                         f"(it knows {', '.join(map(str, known))})")
        self.spec_version = spec_version
        self.known = known


def known_versions() -> tuple[int, ...]:
    """The spec_versions this process can run, ascending (all of RELEASE_VERSIONS unless the
    test-only GRIDCHAIN_RUNTIME_VERSIONS narrows them)."""
    limit = os.environ.get(VERSIONS_ENV, "").strip()
    if not limit:
        return tuple(sorted(RELEASE_VERSIONS))
    try:
        wanted = {int(v) for v in limit.split(",") if v.strip()}
    except ValueError:
        raise ValueError(f"{VERSIONS_ENV} must list spec versions like 1,2, not {limit!r}") from None
    known = tuple(sorted(v for v in RELEASE_VERSIONS if v in wanted))
    if 1 not in known:
        raise ValueError(f"{VERSIONS_ENV}={limit!r} must include spec_version 1")
    return known


def build_runtime(genesis_hash: bytes | None = None, spec_version: int = 1) -> Runtime:
    """The gridchain runtime of `spec_version` (default 1, the version a chain starts under), wired
    to the pallets the executive works with. Raises UnknownRuntimeVersion for a version this
    process does not know."""
    known = known_versions()
    if spec_version not in known:
        raise UnknownRuntimeVersion(spec_version, known)
    migrations = {v: m for v, m in RELEASE_VERSIONS.items() if m is not None and v <= spec_version}
    return Runtime(ALL_PALLETS, system=system, timestamp=timestamp, authorship=authorship,
                   payment=transaction_payment, genesis_hash=genesis_hash,
                   version=RuntimeVersion(spec_version=spec_version), upgrades=upgrades,
                   migrations=migrations)
