"""Money: the native fee token, and a multi-asset ledger in which the stablecoin lives.

The native token pays transaction fees; its balances sit in `system.account`. Energy is bought and
sold in assets (the stablecoin, asset id 1 in the dev chain), which only the asset's issuer may mint
and burn, and only while it holds an active issuer licence (identity pallet): the issuer stands for
the regulated e-money institution that holds the fiat reserve, so on-chain supply always matches
what it has taken in. Root creates assets and appoints issuers.

Conservation: every call moves value between accounts, except mint and burn, which change the
asset's recorded supply by exactly the amount; `force_set_balance` adjusts the native total issuance.
"""
from __future__ import annotations

from primitives import ss58
from primitives.codec import U8, U32, Text, struct
from primitives.types import AccountId, Balance
from pallets import identity, system
from runtime.pallet import (ROOT, SIGNED, Origin, Pallet, PalletError, deposit_event, ensure,
                            ensure_root, ensure_signed, fail)

pallet = Pallet("balances", index=3, doc=__doc__)

AssetId = U32


@pallet.config
class Config:
    max_symbol_len = 16


@struct
class AssetDetails:
    symbol: Text(16)
    decimals: U8
    issuer: AccountId
    supply: Balance


# --- storage ---------------------------------------------------------------------------------
total_issuance = pallet.value("total_issuance", Balance, default=0, doc="Native tokens in existence")
assets = pallet.map("assets", key=AssetId, value=AssetDetails, doc="Asset id -> details and supply")
asset_balance = pallet.double_map("asset_balance", key1=AssetId, key2=AccountId, value=Balance,
                                  default=0, doc="(asset, account) -> balance")


# --- events ----------------------------------------------------------------------------------
@pallet.event
class Transfer:
    source: AccountId
    dest: AccountId
    amount: Balance


@pallet.event
class BalanceSet:
    who: AccountId
    free: Balance


@pallet.event
class AssetCreated:
    asset: AssetId
    symbol: Text(16)
    issuer: AccountId


@pallet.event
class IssuerChanged:
    asset: AssetId
    issuer: AccountId


@pallet.event
class Minted:
    asset: AssetId
    to: AccountId
    amount: Balance


@pallet.event
class Burned:
    asset: AssetId
    amount: Balance


@pallet.event
class AssetTransferred:
    asset: AssetId
    source: AccountId
    dest: AccountId
    amount: Balance


# --- errors ----------------------------------------------------------------------------------
class Error(PalletError):
    InsufficientBalance = "the account's free balance is lower than the amount"
    ZeroAmount = "the amount must be greater than zero"
    Overflow = "the balance would exceed the largest representable amount"
    UnknownAsset = "no asset with this id exists"
    AssetExists = "an asset with this id already exists"
    NotIssuer = "only the asset's issuer may mint or burn it"
    IssuerNotLicensed = "the issuer may mint or burn only while it holds an active issuer licence"
    SymbolTooLong = "an asset symbol may have at most 16 characters"
    SelfTransfer = "sender and recipient are the same account"
    CustodyAccount = ("this account holds other participants' funds in custody (escrow); only its pallet "
                      "moves money in and out of it")


pallet.errors(Error)

MAX_BALANCE = 2**64 - 1

#: Accounts that hold others' money for a pallet (the market's escrow). Their balance must equal
#: what that pallet owes, so the transfer and mint calls refuse to pay into them: money sent there
#: would belong to no one. Registered by the owning pallet at import (a one-way dependency, like
#: FRAME's config traits); a constant of the runtime, so every node agrees.
custody_accounts: set[bytes] = set()


def register_custody_account(account: bytes) -> None:
    custody_accounts.add(account)


# --- public interface (fees, escrow, settlement) --------------------------------------------
def free_balance(who: bytes) -> int:
    return system.account.get(who).free


def withdraw(who: bytes, amount: int) -> None:
    """Take `amount` of native token from `who` (the caller decides where it goes)."""
    info = system.account.get(who)
    ensure(info.free >= amount, Error.InsufficientBalance)
    system.account.insert(who, system.AccountInfo(info.nonce, info.free - amount, info.reserved))


def deposit(who: bytes, amount: int) -> None:
    info = system.account.get(who)
    ensure(info.free + amount <= MAX_BALANCE, Error.Overflow)
    system.account.insert(who, system.AccountInfo(info.nonce, info.free + amount, info.reserved))


def transfer_native(source: bytes, dest: bytes, amount: int) -> None:
    ensure(amount > 0, Error.ZeroAmount)
    ensure(source != dest, Error.SelfTransfer)
    withdraw(source, amount)
    deposit(dest, amount)
    deposit_event(Transfer(source, dest, amount))


def asset_balance_of(asset: int, who: bytes) -> int:
    return asset_balance.get(asset, who)


def asset_transfer(asset: int, source: bytes, dest: bytes, amount: int) -> None:
    """Move `amount` of `asset`; used by the transfer call and by escrow and settlement."""
    ensure(amount > 0, Error.ZeroAmount)
    ensure(assets.contains(asset), Error.UnknownAsset)
    if source == dest:
        return
    have = asset_balance.get(asset, source)
    ensure(have >= amount, Error.InsufficientBalance)
    theirs = asset_balance.get(asset, dest)
    ensure(theirs + amount <= MAX_BALANCE, Error.Overflow)
    _set_asset_balance(asset, source, have - amount)
    asset_balance.insert(asset, dest, theirs + amount)


def _set_asset_balance(asset: int, who: bytes, amount: int) -> None:
    if amount == 0:
        asset_balance.remove(asset, who)
    else:
        asset_balance.insert(asset, who, amount)


# --- calls -----------------------------------------------------------------------------------
@pallet.call(0, weight=40_000, origin=SIGNED)
def transfer(origin: Origin, dest: AccountId, amount: Balance) -> None:
    """Send native tokens to another account."""
    ensure(dest not in custody_accounts, Error.CustodyAccount)
    transfer_native(ensure_signed(origin), dest, amount)


@pallet.call(1, weight=30_000, origin=ROOT)
def force_set_balance(origin: Origin, who: AccountId, free: Balance) -> None:
    """Set an account's free native balance; total issuance follows the difference."""
    ensure_root(origin)
    info = system.account.get(who)
    total_issuance.put(total_issuance.get() - info.free + free)
    system.account.insert(who, system.AccountInfo(info.nonce, free, info.reserved))
    deposit_event(BalanceSet(who, free))


@pallet.call(2, weight=40_000, origin=ROOT)
def create_asset(origin: Origin, asset: AssetId, symbol: Text(16), decimals: U8, issuer: AccountId) -> None:
    """Create an asset (for example the stablecoin) and name the one account that may mint and burn it."""
    ensure_root(origin)
    ensure(not assets.contains(asset), Error.AssetExists)
    assets.insert(asset, AssetDetails(symbol, decimals, issuer, 0))
    deposit_event(AssetCreated(asset, symbol, issuer))


@pallet.call(3, weight=30_000, origin=ROOT)
def set_issuer(origin: Origin, asset: AssetId, issuer: AccountId) -> None:
    """Hand the right to mint and burn an asset to another account."""
    ensure_root(origin)
    d = assets.get(asset) or fail(Error.UnknownAsset)
    assets.insert(asset, AssetDetails(d.symbol, d.decimals, issuer, d.supply))
    deposit_event(IssuerChanged(asset, issuer))


@pallet.call(4, weight=40_000, origin=SIGNED)
def mint(origin: Origin, asset: AssetId, to: AccountId, amount: Balance) -> None:
    """Issue new units to an account against money the issuer has received off chain."""
    who = ensure_signed(origin)
    d = assets.get(asset) or fail(Error.UnknownAsset)
    ensure(d.issuer == who, Error.NotIssuer)
    ensure(identity.is_licensed(who, identity.Role.ISSUER), Error.IssuerNotLicensed)
    ensure(amount > 0, Error.ZeroAmount)
    ensure(to not in custody_accounts, Error.CustodyAccount)
    ensure(d.supply + amount <= MAX_BALANCE, Error.Overflow)
    assets.insert(asset, AssetDetails(d.symbol, d.decimals, d.issuer, d.supply + amount))
    asset_balance.insert(asset, to, asset_balance.get(asset, to) + amount)
    deposit_event(Minted(asset, to, amount))


@pallet.call(5, weight=40_000, origin=SIGNED)
def burn(origin: Origin, asset: AssetId, amount: Balance) -> None:
    """Destroy units the issuer holds (redeemed by their owner for money off chain)."""
    who = ensure_signed(origin)
    d = assets.get(asset) or fail(Error.UnknownAsset)
    ensure(d.issuer == who, Error.NotIssuer)
    ensure(identity.is_licensed(who, identity.Role.ISSUER), Error.IssuerNotLicensed)
    ensure(amount > 0, Error.ZeroAmount)
    have = asset_balance.get(asset, who)
    ensure(have >= amount, Error.InsufficientBalance)
    _set_asset_balance(asset, who, have - amount)
    assets.insert(asset, AssetDetails(d.symbol, d.decimals, d.issuer, d.supply - amount))
    deposit_event(Burned(asset, amount))


@pallet.call(6, weight=45_000, origin=SIGNED)
def transfer_asset(origin: Origin, asset: AssetId, dest: AccountId, amount: Balance) -> None:
    """Send units of an asset (for example stablecoin) to another account."""
    who = ensure_signed(origin)
    ensure(who != dest, Error.SelfTransfer)
    ensure(dest not in custody_accounts, Error.CustodyAccount)
    asset_transfer(asset, who, dest, amount)
    deposit_event(AssetTransferred(asset, who, dest, amount))


# --- genesis ---------------------------------------------------------------------------------
@pallet.genesis
def _genesis(config: dict) -> None:
    """{"balances": [[address, amount], ...], "assets": [{"id", "symbol", "decimals", "issuer",
    "balances": [[address, amount], ...]}]}"""
    issuance = 0
    for addr, amount in config.get("balances", []):
        who = ss58.decode(addr, None)
        info = system.account.get(who)
        system.account.insert(who, system.AccountInfo(info.nonce, info.free + amount, info.reserved))
        issuance += amount
    total_issuance.put(issuance)
    for a in config.get("assets", []):
        supply = 0
        for addr, amount in a.get("balances", []):
            who = ss58.decode(addr, None)
            asset_balance.insert(a["id"], who, asset_balance.get(a["id"], who) + amount)
            supply += amount
        assets.insert(a["id"], AssetDetails(a["symbol"], a["decimals"], ss58.decode(a["issuer"], None), supply))
