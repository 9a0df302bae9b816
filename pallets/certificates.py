"""Certificates: energy tokens that say where and when green energy was made, and who used it.

A certificate is a multi-token (ERC-1155-like) amount in watt-hours of one token id, the grid zone
and delivery interval the energy was exported in: `TokenId = (zone u32, interval_start u64)`, a
2-tuple (`Tuple(U32, U64)`), so the same id means the same thing to every pallet, the RPC and the
storage key (the canonical msgpack array `[zone, interval_start]`).

Life of a certificate:
  - *minted* to a meter's owner when the metering pallet accepts a **plausible** reading with an
    export delta (`mint`, called from `metering.submit_reading`; implausible readings mint nothing).
    A reading that covers several intervals (the ones in between were missed) mints its whole
    export delta under the reading's own `interval_start`, exactly where metering records that
    delta in `interval_energy`: the chain never saw how the energy spread over the missed
    intervals, so it does not invent a split. Certificates therefore equal verified exported Wh,
    token by token: `supply(zone, t).minted_wh` is the sum of the plausible export deltas that
    the zone's meters recorded for interval `t`.
  - *moved* only by settlement (`move`), from the seller to the buyer of a matched trade. There is
    no transfer call: a certificate is not a tradable good of its own, it follows the energy.
  - *retired* (`retire`) to a beneficiary when the buyer's delivery is metered: burnt from the
    holder's balance and added to the beneficiary's `retired` record, the green claim. A retired
    Wh can never be retired again or moved, because it is no longer in any balance.

Invariant, per token: `sum(balance) + supply.retired_wh == supply.minted_wh`, hence
`retired_wh <= minted_wh` always. The pallet has no calls; its public functions below are for
other pallets, each checks all its rules before writing, so on misuse it raises a DispatchError
with a sentence and changes nothing.
"""
from __future__ import annotations

from collections.abc import Iterator

from pallets import grid
from primitives.codec import U32, U64, Tuple, struct
from primitives.types import AccountId
from runtime.pallet import Pallet, PalletError, deposit_event, ensure

pallet = Pallet("certificates", index=9, doc=__doc__)

#: (zone, interval_start): the zone the energy was exported in and the start of its delivery interval
TokenId = Tuple(U32, U64)

MAX_WH = 2**64 - 1

#: weight of one `mint` (two reads, two writes, an event), for callers that add it to their own
W_MINT = 15_000


@pallet.config
class Config:
    #: certificates are in watt-hours
    unit = "Wh"


@struct
class TokenSupply:
    minted_wh: U64           # every Wh ever minted under the token
    retired_wh: U64          # of which retired (burnt into green claims); never above minted_wh


# --- storage ---------------------------------------------------------------------------------
balance = pallet.double_map("balance", key1=TokenId, key2=AccountId, value=U64, default=0,
                            doc="(token, account) -> certificates held, Wh")
retired = pallet.double_map("retired", key1=TokenId, key2=AccountId, value=U64, default=0,
                            doc="(token, beneficiary) -> certificates retired in its name, Wh")
supply = pallet.map("supply", key=TokenId, value=TokenSupply, default=TokenSupply(0, 0),
                    doc="token -> Wh minted and retired")


# --- events ----------------------------------------------------------------------------------
@pallet.event
class Minted:
    """Verified export of `wh` in `zone` during the interval starting at `interval_start`."""
    zone: U32
    interval_start: U64
    owner: AccountId
    wh: U64


@pallet.event
class Moved:
    """Settlement moved certificates from the seller to the buyer of a trade."""
    zone: U32
    interval_start: U64
    source: AccountId
    dest: AccountId
    wh: U64


@pallet.event
class Retired:
    """Certificates burnt from `holder` as `beneficiary`'s green claim on metered delivery."""
    zone: U32
    interval_start: U64
    holder: AccountId
    beneficiary: AccountId
    wh: U64


# --- errors ----------------------------------------------------------------------------------
class Error(PalletError):
    ZeroAmount = "a certificate amount must be greater than zero Wh"
    InsufficientCertificates = "the holder has fewer certificates of this zone and interval than the amount"
    Overflow = "the certificate amount would exceed the largest representable number of Wh"
    UnalignedInterval = "a certificate's interval start must be on the chain's delivery-interval grid"
    RetiredExceedsMinted = "certificates cannot be retired beyond what was minted for the zone and interval"


pallet.errors(Error)


# --- public interface (metering, settlement, RPC) ---------------------------------------------
def token_id(zone: int, interval_start: int) -> tuple[int, int]:
    """The token of energy exported in `zone` during the interval starting at `interval_start`."""
    return (zone, interval_start)


def balance_of(token: tuple[int, int], who: bytes) -> int:
    """Wh of `token` that `who` holds (not retired)."""
    return balance.get(token, who)


def retired_of(token: tuple[int, int], beneficiary: bytes) -> int:
    """Wh of `token` retired as `beneficiary`'s green claim."""
    return retired.get(token, beneficiary)


def supply_of(token: tuple[int, int]) -> TokenSupply:
    """Wh of `token` minted and retired so far (zeros for a token never minted)."""
    return supply.get(token)


def holders(token: tuple[int, int]) -> Iterator[tuple[bytes, int]]:
    """(account, Wh) for every holder of `token`, in storage-key order (RPC and tests; never in a
    block, the set is user-growable)."""
    return balance.iter_prefix(token)


def mint(owner: bytes, zone: int, interval_start: int, wh: int) -> None:
    """Create `wh` certificates of (zone, interval_start) for `owner`.

    Only the metering pallet calls this, for the export delta of a plausible reading: that is the
    one way certificates come into being, so the supply is always verified exported Wh.
    """
    ensure(wh > 0, Error.ZeroAmount)
    ensure(grid.interval_start(interval_start) == interval_start, Error.UnalignedInterval)
    token = token_id(zone, interval_start)
    s = supply.get(token)
    ensure(s.minted_wh + wh <= MAX_WH, Error.Overflow)    # no balance can then overflow either
    supply.insert(token, TokenSupply(s.minted_wh + wh, s.retired_wh))
    balance.insert(token, owner, balance.get(token, owner) + wh)
    deposit_event(Minted(zone, interval_start, owner, wh))


def move(token: tuple[int, int], source: bytes, dest: bytes, wh: int) -> None:
    """Move `wh` certificates of `token` from `source` to `dest`.

    For the settlement pallet only (seller to buyer of a settled trade): certificates are not
    freely transferable, and no call exposes this. Moving to oneself checks the amount and the
    balance and then does nothing (no event).
    """
    ensure(wh > 0, Error.ZeroAmount)
    have = balance.get(token, source)
    ensure(have >= wh, Error.InsufficientCertificates)
    if source == dest:
        return
    _set_balance(token, source, have - wh)
    balance.insert(token, dest, balance.get(token, dest) + wh)   # bounded by minted_wh
    deposit_event(Moved(token[0], token[1], source, dest, wh))


def retire(token: tuple[int, int], holder: bytes, wh: int, beneficiary: bytes) -> None:
    """Burn `wh` certificates of `token` from `holder` into `beneficiary`'s green claim.

    Called by settlement when the buyer's delivery is metered. A retired Wh leaves every balance,
    so it can be retired only once, and the retired total never exceeds the minted total.
    """
    ensure(wh > 0, Error.ZeroAmount)
    have = balance.get(token, holder)
    ensure(have >= wh, Error.InsufficientCertificates)
    s = supply.get(token)
    ensure(s.retired_wh + wh <= s.minted_wh, Error.RetiredExceedsMinted)
    _set_balance(token, holder, have - wh)
    retired.insert(token, beneficiary, retired.get(token, beneficiary) + wh)
    supply.insert(token, TokenSupply(s.minted_wh, s.retired_wh + wh))
    deposit_event(Retired(token[0], token[1], holder, beneficiary, wh))


def _set_balance(token: tuple[int, int], who: bytes, wh: int) -> None:
    if wh == 0:
        balance.remove(token, who)
    else:
        balance.insert(token, who, wh)


# --- calls -----------------------------------------------------------------------------------
# None: certificates are minted by metering, moved and retired by settlement, never by a user.
