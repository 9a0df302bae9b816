"""The block's time, set by its author as an inherent and checked by every importer.

Times are unix milliseconds, as in Substrate (blocks can be closer than a second apart in dev mode);
pallets that work in seconds use `now_s()`. The runtime has no clock: importers compare the inherent
with their own clock (`check_inherent`), rejecting a block from too far in the future.
"""
from __future__ import annotations

from primitives.codec import BOOL, U64
from runtime.pallet import NONE, Origin, Pallet, PalletError, ensure, ensure_none

pallet = Pallet("timestamp", index=1, doc=__doc__)


@pallet.config
class Config:
    #: a block's time must be at least this much after its parent's
    minimum_period_ms = 1
    #: how far ahead of an importer's clock a block's time may be
    max_drift_ms = 30_000


now = pallet.value("now", U64, default=0, doc="Time of the current block, unix ms")
did_update = pallet.value("did_update", BOOL, default=False)


class Error(PalletError):
    AlreadySet = "the timestamp must be set once per block"
    TooEarly = "the timestamp must be at least minimum_period_ms after the parent block's"


pallet.errors(Error)


@pallet.call(0, weight=5_000, origin=NONE, inherent=True)
def set(origin: Origin, now_ms: U64) -> None:
    """Set the block's time (inherent, first extrinsic of every block)."""
    ensure_none(origin)
    ensure(not did_update.get(), Error.AlreadySet)
    prev = now.get()
    ensure(prev == 0 or now_ms >= prev + Config.minimum_period_ms, Error.TooEarly)
    now.put(now_ms)
    did_update.put(True)


@pallet.on_finalize
def _check_set(n: int) -> None:
    if not did_update.get():
        raise RuntimeError("timestamp inherent missing from the block")
    did_update.kill()


def now_s() -> int:
    return now.get() // 1000


def check_inherent(block_now_ms: int, local_now_ms: int) -> str | None:
    """Importer-side check against the local clock; returns a reason if the block is too far ahead."""
    if block_now_ms > local_now_ms + Config.max_drift_ms:
        return (f"block timestamp {block_now_ms} is {block_now_ms - local_now_ms} ms ahead of the local "
                f"clock (max drift {Config.max_drift_ms} ms)")
    return None
