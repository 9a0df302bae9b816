"""Transaction fees: what a signed extrinsic costs, who pays, and the refund for unused weight.

fee = base_fee + length_fee_per_byte * encoded length + weight_fee_per_kilo * ceil(weight / 1000) + tip

The signer pays the declared-weight fee up front (validation rejects a signer who cannot); after
dispatch the fee for weight the call did not use is refunded. The rest goes to the block's author
(a validator operator): fees move between accounts and total issuance is unchanged.
"""
from __future__ import annotations

from primitives.types import AccountId, Balance
from pallets import authorship, balances
from runtime.pallet import Pallet, deposit_event

pallet = Pallet("transaction_payment", index=4, doc=__doc__)


@pallet.config
class Config:
    base_fee = 1_000_000
    length_fee_per_byte = 1_000
    #: per 1,000 ns of declared weight
    weight_fee_per_kilo = 10_000


@pallet.event
class TransactionFeePaid:
    who: AccountId
    actual_fee: Balance
    tip: Balance


def compute_fee(length: int, weight: int, tip: int) -> int:
    return (Config.base_fee + Config.length_fee_per_byte * length
            + Config.weight_fee_per_kilo * -(-weight // 1000) + tip)


def can_pay(who: bytes, fee: int) -> bool:
    return balances.free_balance(who) >= fee


def withdraw_fee(who: bytes, fee: int) -> None:
    """Take the full fee before dispatch (raises DispatchError if the balance is short)."""
    balances.withdraw(who, fee)


def settle_fee(who: bytes, charged: int, actual: int, tip: int) -> None:
    """After dispatch: refund what was overcharged, pay the author the rest."""
    if charged > actual:
        balances.deposit(who, charged - actual)
    author = authorship.author.get()
    if author is not None and actual > 0:
        balances.deposit(author, actual)
    elif actual > 0:
        # no author (genesis-time or tests): the fee is burned; issuance follows
        balances.total_issuance.put(balances.total_issuance.get() - actual)
    deposit_event(TransactionFeePaid(who, actual, tip))
