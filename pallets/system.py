"""Accounts, nonces, block context, events and recent block hashes: what every other pallet stands on.

An account's nonce and its native balance live in one record (as in Substrate, where the balances
pallet keeps its data in system's account store): a transfer reads and writes one value per party.
"""
from __future__ import annotations

from primitives.codec import BYTES, H256, U32, U64, ListOf, Raw, struct
from primitives.hashing import keccak256
from primitives.types import AccountId, Balance
from runtime.pallet import SIGNED, Origin, Pallet, PalletError, deposit_event, ensure

pallet = Pallet("system", index=0, doc=__doc__)


# --- config ----------------------------------------------------------------------------------
@pallet.config
class Config:
    #: recent block hashes kept in state; bounds how long a mortal extrinsic can live
    block_hash_count = 2400
    #: weight is measured in nanoseconds of reference compute; a block may take at most one second
    #: of it, so a node keeps up with one-second blocks (import adds signature checks in parallel)
    max_block_weight = 1_000_000_000
    #: what every extrinsic costs besides its call (decoding, nonce, fee, events), measured with
    #: `python -m bench.block_import`: a transfer authors at ~13,000/s, ~75 us all in
    base_extrinsic_weight = 35_000
    max_block_length = 5 * 1024 * 1024
    #: share of a block's weight and length open to normal extrinsics; the rest is for hooks/inherents
    normal_ratio_percent = 75


@struct
class AccountInfo:
    nonce: U32
    free: Balance
    reserved: Balance


EMPTY_ACCOUNT = AccountInfo(0, 0, 0)

# --- storage ---------------------------------------------------------------------------------
account = pallet.map("account", key=AccountId, value=AccountInfo, default=EMPTY_ACCOUNT,
                     doc="Nonce and native balance of every account")
number = pallet.value("number", U64, default=0, doc="Number of the block being executed")
parent_hash = pallet.value("parent_hash", H256, default=b"\0" * 32)
block_hash = pallet.map("block_hash", key=U64, value=H256, doc="Hashes of the last block_hash_count blocks")
events = pallet.value("events", ListOf(Raw(), max_len=2**24), default=(),
                      doc="Events of the last block: [phase, pallet index, event index, fields]")
extrinsic_count = pallet.value("extrinsic_count", U32, default=0)
block_weight = pallet.value("block_weight", U64, default=0, doc="Weight used by the last block")


# --- events ----------------------------------------------------------------------------------
@pallet.event
class ExtrinsicSuccess:
    """An extrinsic completed; weight is what it actually used."""
    weight: U64


@pallet.event
class ExtrinsicFailed:
    """An extrinsic's call failed: its changes were rolled back but its fee was paid."""
    error: Raw()
    weight: U64


@pallet.event
class Remarked:
    sender: AccountId
    hash: H256


# --- errors ----------------------------------------------------------------------------------
class Error(PalletError):
    RemarkTooLong = "a remark may hold at most 4096 bytes"


pallet.errors(Error)


# --- calls -----------------------------------------------------------------------------------
@pallet.call(0, weight=20_000, origin=SIGNED)
def remark(origin: Origin, data: BYTES) -> None:
    """Put a note on chain; only its hash is kept, in an event."""
    ensure(len(data) <= 4096, Error.RemarkTooLong)
    deposit_event(Remarked(origin.who, keccak256(data)))


# --- public interface for other pallets and the executive ----------------------------------
def inc_nonce(who: bytes) -> None:
    info = account.get(who)
    account.insert(who, AccountInfo(info.nonce + 1, info.free, info.reserved))


def initialize(n: int, parent: bytes) -> None:
    """Start block n: remember the parent's hash and forget the oldest one kept."""
    number.put(n)
    parent_hash.put(parent)
    block_hash.insert(n - 1, parent)
    if n - 1 >= Config.block_hash_count:
        block_hash.remove(n - 1 - Config.block_hash_count)
    events.kill()

