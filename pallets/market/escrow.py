"""The market's money: the escrow account and the stablecoin buyers lock in it (see "Money" in the
package docstring).

Placement locks a bid's escrow here, matching keeps each trade's amount and fee in escrow and
returns the surplus, cancel and expiry return the rest: every move the market makes in and out of
the escrow account goes through these few functions, so the market's side of the invariant
    balance(ESCROW_ACCOUNT) == sum(open bids' escrow_locked) + sum(matched trades' amount + fee)
rests on one module."""
from __future__ import annotations

from typing import Callable

from pallets import balances
from pallets.market.state import MATCHED, Config, Error, trades
from pallets.market_engine import cost
from primitives.hashing import keccak256
from runtime.pallet import ensure


#: the account holding buyers' escrow: keccak256(b"gridchain/market/escrow"); no key signs for it
ESCROW_ACCOUNT = keccak256(b"gridchain/market/escrow")
balances.register_custody_account(ESCROW_ACCOUNT)


def escrow_for(quantity_wh: int, limit_per_kwh: int) -> int:
    """What a bid locks: quantity x its all-in limit, rounded down like every charge."""
    return cost(quantity_wh, limit_per_kwh)


def lock_escrow(who: bytes, amount: int) -> None:
    ensure(balances.asset_balance_of(Config.stablecoin_asset, who) >= amount, Error.InsufficientFunds)
    if amount > 0:
        balances.asset_transfer(Config.stablecoin_asset, who, ESCROW_ACCOUNT, amount)


def release_escrow(who: bytes, amount: int) -> None:
    if amount > 0:
        balances.asset_transfer(Config.stablecoin_asset, ESCROW_ACCOUNT, who, amount)


#: How to tell that a trade has been settled, registered by the settlement pallet (which builds on
#: this one; a callback instead of an import keeps the dependency one-way, as FRAME's config traits do).
_is_settled: Callable[[int], bool] = lambda trade_id: False


def register_settlement(is_settled: Callable[[int], bool]) -> None:
    global _is_settled
    _is_settled = is_settled


def escrowed_for_trade(trade_id: int) -> int:
    """Stablecoin held in ESCROW_ACCOUNT for a trade: its amount plus its grid fee until settled."""
    t = trades.get(trade_id)
    return 0 if t is None or t.status != MATCHED or _is_settled(trade_id) else t.amount + t.fee_amount
