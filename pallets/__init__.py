"""gridchain's pallets, and the composed runtime (the list below is the runtime's pallet order)."""
from __future__ import annotations

from pallets import (authorship, balances, certificates, council, field_meters, grid, identity, market,
                     metering, settlement, sudo, system, timestamp, transaction_payment, validators)
from runtime.executive import Runtime, RuntimeVersion

#: every pallet of the runtime, by index; metadata and call indices follow this
ALL_PALLETS = [system.pallet, timestamp.pallet, authorship.pallet, balances.pallet,
               transaction_payment.pallet, sudo.pallet, identity.pallet, grid.pallet, metering.pallet,
               certificates.pallet, market.pallet, settlement.pallet, validators.pallet, field_meters.pallet,
               council.pallet]

VERSION = RuntimeVersion()


def build_runtime(genesis_hash: bytes | None = None) -> Runtime:
    """The gridchain runtime, wired to the pallets the executive works with."""
    return Runtime(ALL_PALLETS, system=system, timestamp=timestamp, authorship=authorship,
                   payment=transaction_payment, genesis_hash=genesis_hash, version=VERSION)
