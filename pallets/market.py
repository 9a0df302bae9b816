"""The energy market: an order book per (zone, delivery interval), matched continuously (or, in
call-auction zones, cleared at one uniform price at gate closure: see "Call auction").

Licensed participants place limit orders for energy delivered in a future interval of their grid
zone: bids (buy) and asks (sell), a price per kWh and a quantity in Wh. An incoming order trades at
once against the opposite side of the book (continuous double auction, `pallets.market_engine`);
what is left rests until it trades, is cancelled, or expires at gate closure. Trades are recorded
per interval for settlement, which pays sellers against metered delivery.

Rules (each is a function below, named after it):
  - Who may trade: a bid needs an active prosumer or consumer licence, an ask an active prosumer
    licence, both when placed and when a resting order is matched (a resting order of a
    participant suspended since is skipped, and waits for cancel or expiry); each order names the participant's own active meter in the order's zone, able to
    import (bids) or export (asks). Settlement checks delivery on these meters. An order may not
    exceed what its meter's rated power can move in one interval.
  - Terms: price in [min_price_per_kwh, max_price_per_kwh], quantity in [min_quantity_wh,
    max_quantity_wh]. A bid's price is its *all-in* limit: energy plus the grid fee of the route
    it trades over; an ask's price is the energy price the seller wants (see market_engine).
  - Gate closure: an order for the interval starting at t is accepted only while
    now < t - gate_closure_s, and t is at most max_intervals_ahead intervals ahead. Matching only
    happens when an order is placed, so no match ever happens after gate closure. After it the
    book is frozen (no cancel either) and its unmatched orders expire: `on_initialize` releases
    them, at most max_expiries_per_block per block, oldest interval first.
  - Paused zones: no orders in them, and no match touching them (they are left out of the routes).
  - Cross-zone trade: only over a grid link (grid.grid_fee_per_kwh is None without one), and only
    when the bid covers ask price + grid fee of the route (the fee of the delivery interval's
    time-of-use band).
  - Capacity: per (zone, interval) the Wh exported from and imported into each zone by trades,
    and per (link, interval) the Wh over it, are kept in `flows` and `link_flows`. A fill is
    limited to the room left: the seller zone's export capacity, the buyer zone's import capacity
    (grid.capacity_for, W x interval_s / 3600, rounded down) and, across zones, the link's limit.
    A trade inside one zone counts against both its export and its import (conservative: the
    energy leaves the producing meter and enters the consuming one on the same feeder).
  - Green: a green-only bid trades only with asks from generation meters. In this version every
    export-capable meter is a prosumer's generation meter, so every ask is green; the flag is kept
    in the book so that settlement and certificates can rely on it when other kinds appear.

Standing orders ("sell my surplus whenever the price is at least X", "buy up to Y Wh at up to Z"):
  - `set_standing_order(side, zone, price_per_kwh, quantity_wh, meter, green)` records the terms of
    a bid or ask, checked as a placement of that side would be (licence, terms, known zone, the
    owner's meter in the zone able to import/export and rated for the quantity); nothing is
    escrowed then. At most max_standing_per_owner per participant. `cancel_standing_order` (owner
    only) stops it; orders it already posted stay open, to cancel with `cancel`.
  - `on_finalize` posts them for the target interval interval_start(now) + standing_lead_intervals
    x interval_s, `now` being this block's own time (set by the timestamp inherent), so the target's
    gate is open when they are placed and matched; `on_initialize` reserves the weight. A sweep walks the standing
    orders in id order (a linked list, so cancelled ids cost nothing) from a cursor, visiting at
    most max_standing_posts_per_block per block; a sweep starts when the target moves past the
    last sweep's target and none is under way. Each due order (next_interval <= target) is placed
    through the same path as place_bid/place_ask (`do_place_bid`/`do_place_ask`: escrow, matching,
    resting) inside `storage.transactional()`: StandingOrderPosted on success; on any dispatch
    error (licence lapsed, escrow unaffordable, zone paused, book full...) all its writes and
    events roll back and StandingOrderSkipped(standing_id, interval, error name) is recorded.
    Either way next_interval becomes target + interval_s: at most one post per interval.
  - A sweep that lags (more due orders than posts per block allow in one interval) goes on with
    the new target; the intervals its remaining orders missed are not posted later.

Money (all in the stablecoin, `Config.stablecoin_asset`):
  - cost(wh, price_per_kwh) = wh * price_per_kwh // 1000: the payer is never charged more than
    agreed. A trade charges amount = cost(wh, price) to pay the seller and fee_amount =
    cost(wh, fee) to pay the DSO.
  - Escrow on placement: the buyer locks escrow_for(quantity, limit) = cost(quantity, limit) in the
    market's escrow account. Because the limit is all-in, it already covers the largest grid fee
    the bid can be charged on any route ("quantity x limit price plus the maximum grid fee" of the
    issue): a trade never charges more than price + fee <= limit per kWh, whatever the tariffs do
    after placement. The lock always equals escrow_for(remaining, limit) of the order.
  - On a fill of w Wh, the order's lock drops from escrow_for(r, limit) to escrow_for(r - w, limit);
    of that difference, amount + fee_amount stays in escrow for the trade and the rest (never
    negative, since floor(a) - floor(b) >= floor(a - b) >= cost(w, price) + cost(w, fee)) goes back
    to the buyer at once. On cancel or expiry the remaining lock goes back. So at any time:
      balance(ESCROW_ACCOUNT) == sum(open bids' escrow_locked) + sum(matched trades' amount + fee)
    and total stablecoin issuance never changes.
  - Sellers lock nothing: they commit energy, which settlement checks on their meter.

Decisions:
  - Order ids are one global sequence, which is also time priority. A fully filled, cancelled or
    expired order leaves `orders`; its trades keep what settlement needs.
  - The escrow account is keccak256(b"gridchain/market/escrow"), an account id nobody holds a key
    for (`ESCROW_ACCOUNT`).
  - A book side is stored as one value, the engine's list of (price, order id, owner, remaining,
    green) in priority order, so matching needs one read per zone and no per-order reads; it is
    written with a cheap check (`BookSideType`) and decoded with the full one. Book sides, flows and
    link flows are maps with tuple keys (zone, interval[, side]): nothing iterates them.
  - The expiry queue is `open_intervals` (ascending) and, per interval, `open_books` (its zones).
    Expiry uses the previous block's time (hooks run before the timestamp inherent), which is safe:
    a book whose gate closed in the current block cannot change, since placing needs an open gate.
  - A cancel after gate closure is refused: from then on a book only changes by expiry.
  - Lowering an envelope or link limit does not undo trades already matched; no new trade adds to
    a flow that is at or above its (new) limit.
  - Bounded work: max_fills_per_order fills and max_scan_per_order examined orders per placement,
    max_orders_per_side per book side, max_expiries_per_block expiries per block.
  - Not checked here: that a seller's open asks together fit its meter (each ask alone must), and
    the meter's status at match time (settlement checks delivery on the trade's meters).
  - Flows and trades are never pruned here (settlement's job).

Call auction (uniform price, pay-as-clear), selectable per zone:
  - The market genesis section {"call_auction_zones": [2]} (storage `call_auction_zones`; empty by
    default, so every zone trades continuously) lists the zones traded by call auction.
  - In such a zone placement does not match: orders rest (a bid's escrow is locked as usual), can
    be cancelled until gate closure, and only same-zone orders take part: no cross-zone trade
    touches a call-auction zone (continuous orders elsewhere do not see its books either).
  - At gate closure, in `on_initialize` before the interval's orders of that zone expire, the
    (zone, interval) book clears once (`auction_cleared` marks it until the book is gone). With f
    the zone's local grid fee for the interval (grid_fee_per_kwh(zone, zone, t)), an ask at a and
    a bid at b (all-in limit, as in continuous trading) are compatible at energy price p iff
    a <= p and b >= p + f. supply(p) = Wh of asks with a <= p, demand(p) = Wh of bids with
    b - f >= p, V(p) = min(supply(p), demand(p), room), room = min(export room, import room) of
    the zone for the interval (a trade inside a zone counts against both, as continuous trades).
  - Price rule (`market_engine.clearing_price`): candidates are the distinct ask prices and the
    values b - f (>= 0); p* maximises V; tie-break: the smallest |supply(p) - demand(p)|, then the
    LOWEST price (buyers pay no more than needed). Nothing trades if max V is 0.
  - Allocation (`market_engine.allocate`): compatible asks by (price, order id), bids by (price
    desc, order id), paired greedily up to V; every trade is at energy price p* plus fee f
    (price_per_kwh = p*, fee_per_kwh = f, amount/fee_amount by cost()), recorded and escrowed by
    the same `record_trade` as continuous fills (the bid's surplus lock returns at once; p* + f <=
    b, so escrow never falls short), and reserved in `flows` through the same `Room`. As in
    continuous matching there are no self-trades, a green-only bid meets only green asks, and
    orders of owners whose licence is no longer active are left out (they expire); the first two
    can leave the matched volume below V(p*). Nothing clears in a zone paused at gate closure or
    without a local tariff. Then the interval's remaining orders expire as usual.
  - Bounded: one clearing reads the two book sides (at most max_orders_per_side each, sorting
    O(n log n); the greedy pairing is O(bids x asks) at worst) and is charged one unit of the
    expiry hook's budget per order in the book; it runs only while budget is left, so a block's
    expiry work stays within max_expiries_per_block + 2 x max_orders_per_side units (the hook's
    weight counts them all).
"""
from __future__ import annotations

from typing import Callable

import dataclasses

from pallets import balances, grid, identity, metering, timestamp
from pallets import market_engine as engine
from pallets.identity import Role
from pallets.market_engine import ORDER_ID, cost
from primitives.codec import (BOOL, H256, TEXT, U8, U32, U64, CodecError, ListOf, Optional, Tuple, Type,
                              struct)
from primitives.hashing import keccak256
from primitives.types import AccountId
from runtime import storage
from runtime.pallet import (SIGNED, DispatchError, ErrorDef, Origin, Pallet, PalletError, deposit_event,
                            ensure, ensure_signed, fail)

pallet = Pallet("market", index=10, doc=__doc__)


# --- config ----------------------------------------------------------------------------------
@pallet.config
class Config:
    #: orders for an interval close this many seconds before it starts
    gate_closure_s = 300
    #: how many intervals ahead an order may be placed
    max_intervals_ahead = 96
    min_price_per_kwh = 1
    max_price_per_kwh = 10_000_000
    min_quantity_wh = 1
    max_quantity_wh = 1_000_000
    max_orders_per_side = 500
    max_fills_per_order = 32
    #: resting orders an incoming order may examine (fills, skipped self-trades and green mismatches)
    max_scan_per_order = 128
    max_expiries_per_block = 200
    #: intervals with open books at once (max_intervals_ahead ahead plus a backlog awaiting expiry)
    max_open_intervals = 256
    stablecoin_asset = 1
    #: standing orders one participant may hold at once
    max_standing_per_owner = 8
    #: standing orders visited (posted or skipped) per block by the posting hook
    max_standing_posts_per_block = 100
    #: a standing order posts for the interval starting at interval_start(now) + this many intervals
    standing_lead_intervals = 2


BID, ASK = 0, 1
#: who may place each side
BID_ROLES = (Role.PROSUMER, Role.CONSUMER)
ASK_ROLES = (Role.PROSUMER,)
MATCHED = 0

#: the account holding buyers' escrow: keccak256(b"gridchain/market/escrow"); no key signs for it
ESCROW_ACCOUNT = keccak256(b"gridchain/market/escrow")
balances.register_custody_account(ESCROW_ACCOUNT)

#: weights (ns of reference compute): a placement reads the books of its interval's zones and may
#: make max_fills_per_order trades; an expiry is one order released
W_PLACE = 600_000
W_CANCEL = 80_000
W_EXPIRE_BASE = 5_000
W_EXPIRY = 30_000
W_SET_STANDING = 100_000
W_CANCEL_STANDING = 80_000
W_STANDING_BASE = 5_000

OrderId = U64
TradeId = U64
StandingId = U64


@struct
class StandingOrder:
    owner: AccountId
    side: U8                  # BID | ASK
    zone: U32
    meter: H256
    price_per_kwh: U64        # as the order of that side: bids all-in limit, asks energy price
    quantity_wh: U64
    green: BOOL               # bids: green only; asks: from a generation meter
    next_interval: U64        # the next interval start to post for


@struct
class Order:
    id: U64
    owner: AccountId
    side: U8                  # BID | ASK
    zone: U32
    interval_start: U64
    price_per_kwh: U64        # bids: all-in limit; asks: energy price
    quantity_wh: U64
    remaining_wh: U64
    meter: H256
    green: BOOL               # bids: green only; asks: from a generation meter
    escrow_locked: U64        # bids: escrow_for(remaining_wh, price_per_kwh); asks: 0


@struct
class Trade:
    id: U64
    interval_start: U64
    buyer: AccountId
    seller: AccountId
    buyer_meter: H256
    seller_meter: H256
    from_zone: U32
    to_zone: U32
    wh: U64
    price_per_kwh: U64        # energy price, to the seller
    fee_per_kwh: U64          # grid fee of the route, to the DSO
    amount: U64               # cost(wh, price_per_kwh), held in escrow
    fee_amount: U64           # cost(wh, fee_per_kwh), held in escrow
    status: U8                # MATCHED


@struct
class Flow:
    import_wh: U64
    export_wh: U64


BookEntry = Tuple(U64, U64, H256, U64, BOOL)                 # market_engine.Entry


class BookSideType(Type):
    """`ListOf(BookEntry)`, same encoding and metadata, written cheaply.

    Every order rewrites the book sides it touches (up to max_orders_per_side entries), and the
    generic codec checks each field of each entry on every write. Entries are built only by this
    pallet from already-checked values (call arguments, stored orders), so a write checks the
    length and converts; decoding from state still checks everything (the generic type)."""

    def __init__(self, max_len: int) -> None:
        self.checked = ListOf(BookEntry, max_len=max_len)
        self.name = self.checked.name
        self.max_len = max_len

    def to_plain(self, value) -> list:
        if type(value) is not tuple or len(value) > self.max_len:
            raise CodecError(f"expected a tuple of at most {self.max_len} book entries")
        return value            # tuples of tuples: msgpack writes them as arrays, like lists

    def from_plain(self, plain) -> tuple:
        return self.checked.from_plain(plain)

    def describe(self):
        return self.checked.describe()


BookSide = BookSideType(Config.max_orders_per_side)

# --- storage ---------------------------------------------------------------------------------
orders = pallet.map("orders", key=OrderId, value=Order, doc="Open order id -> order")
next_order_id = pallet.value("next_order_id", U64, default=0, doc="Id of the next order (time priority)")
book = pallet.map("book", key=Tuple(U32, U64, U8), value=BookSide, default=(),
                  doc="(zone, interval start, side) -> resting orders in priority order")
open_books = pallet.map("open_books", key=U64, value=ListOf(U32, max_len=grid.Config.max_zones), default=(),
                        doc="Interval start -> zones with a book in it (ascending), until expiry")
open_intervals = pallet.value("open_intervals", ListOf(U64, max_len=Config.max_open_intervals), default=(),
                              doc="Interval starts with open books (ascending): the expiry queue")
flows = pallet.map("flows", key=Tuple(U32, U64), value=Flow, default=Flow(0, 0),
                   doc="(zone, interval start) -> Wh imported into and exported from it by trades")
link_flows = pallet.map("link_flows", key=Tuple(U32, U32, U64), value=U64, default=0,
                        doc="(from zone, to zone, interval start) -> Wh traded over the link")
trades = pallet.map("trades", key=TradeId, value=Trade, doc="Trade id -> trade")
next_trade_id = pallet.value("next_trade_id", U64, default=0)
interval_trade_count = pallet.map("interval_trade_count", key=U64, value=U32, default=0,
                                  doc="Interval start -> trades matched for delivery in it")
interval_trades = pallet.double_map("interval_trades", U64, U32, TradeId,
                                    doc="(interval start, position 0..count) -> trade id, in match (= id) "
                                        "order: settlement pages through an interval without reading the rest")
standing_orders = pallet.map("standing_orders", key=StandingId, value=StandingOrder,
                             doc="Standing order id -> standing order")
next_standing_id = pallet.value("next_standing_id", U64, default=0, doc="Id of the next standing order")
standing_of = pallet.double_map("standing_of", AccountId, StandingId, BOOL,
                                doc="owner, standing id -> True: each owner's standing orders")
standing_count = pallet.map("standing_count", key=AccountId, value=U32, default=0,
                            doc="owner -> number of standing orders held (max_standing_per_owner)")
standing_links = pallet.map("standing_links", key=StandingId, value=Tuple(Optional(U64), Optional(U64)),
                            doc="Standing id -> (previous, next) in the list of standing orders (id order)")
standing_head = pallet.value("standing_head", Optional(U64), default=None, doc="Lowest standing id")
standing_tail = pallet.value("standing_tail", Optional(U64), default=None, doc="Highest standing id")
standing_cursor = pallet.value("standing_cursor", Optional(U64), default=None,
                               doc="Standing id where the posting sweep resumes; None: no sweep under way")
standing_round = pallet.value("standing_round", U64, default=0,
                              doc="Target interval of the last posting sweep started")
call_auction_zones = pallet.value("call_auction_zones", ListOf(U32, max_len=grid.Config.max_zones), default=(),
                                  doc="Zones traded by uniform-price call auction at gate closure (genesis)")
auction_cleared = pallet.map("auction_cleared", key=Tuple(U32, U64), value=BOOL, default=False,
                             doc="(zone, interval start) -> True once its call auction has cleared")


# --- events ----------------------------------------------------------------------------------
@pallet.event
class OrderPlaced:
    order_id: OrderId
    owner: AccountId
    side: U8
    zone: U32
    interval_start: U64
    price_per_kwh: U64
    quantity_wh: U64
    escrow_locked: U64


@pallet.event
class OrderCancelled:
    order_id: OrderId
    owner: AccountId
    released: U64


@pallet.event
class OrderExpired:
    order_id: OrderId
    owner: AccountId
    released: U64


@pallet.event
class TradeMatched:
    trade_id: TradeId
    interval_start: U64
    bid_id: OrderId
    ask_id: OrderId
    buyer: AccountId
    seller: AccountId
    from_zone: U32
    to_zone: U32
    wh: U64
    price_per_kwh: U64
    fee_per_kwh: U64


@pallet.event
class StandingOrderSet:
    standing_id: StandingId
    owner: AccountId
    side: U8
    zone: U32
    price_per_kwh: U64
    quantity_wh: U64
    next_interval: U64


@pallet.event
class StandingOrderCancelled:
    standing_id: StandingId
    owner: AccountId


@pallet.event
class StandingOrderPosted:
    standing_id: StandingId
    order_id: OrderId
    interval_start: U64


@pallet.event
class StandingOrderSkipped:
    standing_id: StandingId
    interval_start: U64
    reason: TEXT              # the name of the error that stopped the placement


# --- errors ----------------------------------------------------------------------------------
class Error(PalletError):
    PriceOutOfBounds = "the price per kWh must be between min_price_per_kwh and max_price_per_kwh"
    QuantityOutOfBounds = "the quantity must be between min_quantity_wh and max_quantity_wh"
    UnalignedInterval = "the delivery interval must start at a multiple of the grid's interval_s"
    GateClosed = "the interval's gate has closed: no orders or cancels within gate_closure_s of its start"
    TooFarAhead = "the interval starts more than max_intervals_ahead intervals ahead"
    UnknownZone = "no grid zone with this id exists"
    ZonePaused = "the zone is paused by its DSO: no orders are accepted there"
    NotLicensed = "bids need a prosumer or consumer licence, asks a prosumer licence"
    LicenceNotActive = "the participant's licence is suspended or revoked"
    UnknownMeter = "no certified meter with this id exists"
    NotMeterOwner = "the meter belongs to someone else"
    MeterInOtherZone = "the meter is not in the order's zone"
    MeterNotActive = "the meter is suspended or retired"
    MeterCannotImport = "a bid needs a meter that can import (import or bidirectional)"
    MeterCannotExport = "an ask needs a meter that can export (export or bidirectional)"
    ExceedsMeterRating = "the quantity exceeds what the meter's rated power can move in one interval"
    InsufficientFunds = "the buyer's stablecoin balance cannot cover the escrow (quantity x limit)"
    BookFull = "this side of the book already holds max_orders_per_side orders"
    TooManyOpenIntervals = "too many intervals have open books (max_open_intervals)"
    UnknownOrder = "no open order with this id exists"
    NotOrderOwner = "only the order's owner may cancel it"
    InvalidSide = "the side must be 0 (bid) or 1 (ask)"
    TooManyStandingOrders = "the participant already holds max_standing_per_owner standing orders"
    UnknownStandingOrder = "no standing order with this id exists"
    NotStandingOrderOwner = "only the standing order's owner may cancel it"


pallet.errors(Error)


# --- public interface (settlement, RPC) --------------------------------------------------------
def trade(trade_id: int) -> Trade | None:
    return trades.get(trade_id)


def interval_trade_ids(interval_start: int, start: int = 0, limit: int | None = None) -> list[int]:
    """Ids of the trades to deliver in the interval, in id order, from position `start` (at most
    `limit` of them)."""
    count = interval_trade_count.get(interval_start)
    stop = count if limit is None else min(count, start + limit)
    return [interval_trades.get(interval_start, pos) for pos in range(start, stop)]


def trades_in_interval(interval_start: int):
    """The trades to deliver in the interval, in trade id order."""
    return (trades.get(trade_id) for trade_id in interval_trade_ids(interval_start))


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


def order(order_id: int) -> Order | None:
    return orders.get(order_id)


def book_side(zone: int, interval_start: int, side: int) -> tuple:
    """Resting orders (price, id, owner, remaining_wh, green), best first."""
    return book.get((zone, interval_start, side))


def flow(zone: int, interval_start: int) -> Flow:
    """Wh traded into and out of a zone for delivery in the interval."""
    return flows.get((zone, interval_start))


def link_flow(from_zone: int, to_zone: int, interval_start: int) -> int:
    """Wh traded over a link for delivery in the interval."""
    return link_flows.get((from_zone, to_zone, interval_start))


def escrow_for(quantity_wh: int, limit_per_kwh: int) -> int:
    """What a bid locks: quantity x its all-in limit, rounded down like every charge."""
    return cost(quantity_wh, limit_per_kwh)


def wh_in_interval(power_w: int) -> int:
    """Energy a power can move in one interval, rounded down (never over capacity)."""
    return power_w * grid.Config.interval_s // 3600


# --- rules of an order -----------------------------------------------------------------------
def ensure_terms(price_per_kwh: int, quantity_wh: int) -> None:
    ensure(Config.min_price_per_kwh <= price_per_kwh <= Config.max_price_per_kwh, Error.PriceOutOfBounds)
    ensure(Config.min_quantity_wh <= quantity_wh <= Config.max_quantity_wh, Error.QuantityOutOfBounds)


def gate_open(interval_start: int, now_s: int) -> bool:
    """Orders for an interval are accepted while now < start - gate_closure_s."""
    return now_s < interval_start - Config.gate_closure_s


def ensure_gate_open(interval_start: int) -> None:
    ensure(interval_start % grid.Config.interval_s == 0, Error.UnalignedInterval)
    now_s = timestamp.now_s()
    ensure(gate_open(interval_start, now_s), Error.GateClosed)
    ensure(interval_start <= grid.interval_start(now_s) + Config.max_intervals_ahead * grid.Config.interval_s,
           Error.TooFarAhead)


def ensure_zone_trading(zone: int) -> None:
    ensure(grid.zone(zone) is not None, Error.UnknownZone)
    ensure(not grid.is_paused(zone), Error.ZonePaused)


def ensure_licensed(who: bytes, roles: tuple) -> None:
    """The participant holds one of `roles`, and the licence is active."""
    p = identity.participant(who)
    ensure(p is not None and any(p.roles & int(r) for r in roles), Error.NotLicensed)
    ensure(p.status == identity.Status.ACTIVE, Error.LicenceNotActive)


def ensure_order_meter(who: bytes, meter_id: bytes, zone: int, side: int, quantity_wh: int) -> metering.Meter:
    m = metering.get_meter(meter_id) or fail(Error.UnknownMeter)
    ensure(m.owner == who, Error.NotMeterOwner)
    ensure(m.zone == zone, Error.MeterInOtherZone)
    ensure(m.status == metering.STATUS_ACTIVE, Error.MeterNotActive)
    if side == BID:
        ensure(m.kind in (metering.KIND_IMPORT, metering.KIND_BIDIRECTIONAL), Error.MeterCannotImport)
    else:
        ensure(m.kind in (metering.KIND_EXPORT, metering.KIND_BIDIRECTIONAL), Error.MeterCannotExport)
    ensure(quantity_wh <= wh_in_interval(m.rated_power_w), Error.ExceedsMeterRating)
    return m


def is_generation_meter(m: metering.Meter) -> bool:
    """Every export-capable meter is a prosumer's generation meter in this version."""
    return m.kind in (metering.KIND_EXPORT, metering.KIND_BIDIRECTIONAL)


def lock_escrow(who: bytes, amount: int) -> None:
    ensure(balances.asset_balance_of(Config.stablecoin_asset, who) >= amount, Error.InsufficientFunds)
    if amount > 0:
        balances.asset_transfer(Config.stablecoin_asset, who, ESCROW_ACCOUNT, amount)


def release_escrow(who: bytes, amount: int) -> None:
    if amount > 0:
        balances.asset_transfer(Config.stablecoin_asset, ESCROW_ACCOUNT, who, amount)


def new_order_id() -> int:
    oid = next_order_id.get()
    next_order_id.put(oid + 1)
    return oid


def do_place_bid(who: bytes, zone: int, interval_start: int, price_per_kwh: int, quantity_wh: int,
                 meter: bytes, green_only: bool) -> int:
    """place_bid for `who` (the call and standing orders share it); returns the order id."""
    ensure_terms(price_per_kwh, quantity_wh)
    ensure_gate_open(interval_start)
    ensure_zone_trading(zone)
    ensure_licensed(who, BID_ROLES)
    ensure_order_meter(who, meter, zone, BID, quantity_wh)
    locked = escrow_for(quantity_wh, price_per_kwh)
    lock_escrow(who, locked)
    o = Order(new_order_id(), who, BID, zone, interval_start, price_per_kwh, quantity_wh, quantity_wh,
              meter, green_only, locked)
    deposit_event(OrderPlaced(o.id, who, BID, zone, interval_start, price_per_kwh, quantity_wh, locked))
    trade_and_rest(o)
    return o.id


def do_place_ask(who: bytes, zone: int, interval_start: int, price_per_kwh: int, quantity_wh: int,
                 meter: bytes) -> int:
    """place_ask for `who` (the call and standing orders share it); returns the order id."""
    ensure_terms(price_per_kwh, quantity_wh)
    ensure_gate_open(interval_start)
    ensure_zone_trading(zone)
    ensure_licensed(who, ASK_ROLES)
    m = ensure_order_meter(who, meter, zone, ASK, quantity_wh)
    o = Order(new_order_id(), who, ASK, zone, interval_start, price_per_kwh, quantity_wh, quantity_wh,
              meter, is_generation_meter(m), 0)
    deposit_event(OrderPlaced(o.id, who, ASK, zone, interval_start, price_per_kwh, quantity_wh, 0))
    trade_and_rest(o)
    return o.id


# --- calls -----------------------------------------------------------------------------------
@pallet.call(0, weight=W_PLACE, origin=SIGNED)
def place_bid(origin: Origin, zone: U32, interval_start: U64, price_per_kwh: U64, quantity_wh: U64,
              meter: H256, green_only: BOOL) -> None:
    """Buy `quantity_wh` delivered to `meter` in the interval, paying at most `price_per_kwh` all-in
    (energy + grid fee). Locks quantity x limit in escrow; trades at once where it crosses."""
    do_place_bid(ensure_signed(origin), zone, interval_start, price_per_kwh, quantity_wh, meter, green_only)


@pallet.call(1, weight=W_PLACE, origin=SIGNED)
def place_ask(origin: Origin, zone: U32, interval_start: U64, price_per_kwh: U64, quantity_wh: U64,
              meter: H256) -> None:
    """Sell `quantity_wh` exported by `meter` in the interval for at least `price_per_kwh` (energy
    price, grid fee not included); trades at once where it crosses."""
    do_place_ask(ensure_signed(origin), zone, interval_start, price_per_kwh, quantity_wh, meter)


@pallet.call(2, weight=W_CANCEL, origin=SIGNED)
def cancel(origin: Origin, order_id: OrderId) -> None:
    """Withdraw an open order before its gate closes; a bid's remaining escrow returns."""
    who = ensure_signed(origin)
    o = orders.get(order_id) or fail(Error.UnknownOrder)
    ensure(o.owner == who, Error.NotOrderOwner)
    ensure(gate_open(o.interval_start, timestamp.now_s()), Error.GateClosed)
    key = (o.zone, o.interval_start)
    side = list(book.get((*key, o.side)))
    engine.remove_resting(side, o.id, o.price_per_kwh, o.side == BID)
    put_side(key, o.side, side)
    released = close_order(o)
    deposit_event(OrderCancelled(o.id, who, released))


@pallet.call(3, weight=W_SET_STANDING, origin=SIGNED)
def set_standing_order(origin: Origin, side: U8, zone: U32, price_per_kwh: U64, quantity_wh: U64,
                       meter: H256, green: BOOL) -> None:
    """A standing order: an order of `side` (0 bid, 1 ask) with these terms, posted automatically
    for each delivery interval standing_lead_intervals ahead (see "Standing orders"). Checked as a
    placement of that side would be (licence, terms, zone, meter); nothing is escrowed until a post.
    `green` is a bid's green-only flag; an ask's comes from its meter."""
    who = ensure_signed(origin)
    ensure(side in (BID, ASK), Error.InvalidSide)
    ensure_terms(price_per_kwh, quantity_wh)
    ensure(grid.zone(zone) is not None, Error.UnknownZone)
    ensure_licensed(who, BID_ROLES if side == BID else ASK_ROLES)
    m = ensure_order_meter(who, meter, zone, side, quantity_wh)
    count = standing_count.get(who)
    ensure(count < Config.max_standing_per_owner, Error.TooManyStandingOrders)
    sid = next_standing_id.get()
    next_standing_id.put(sid + 1)
    first = standing_target(timestamp.now_s())
    flag = bool(green) if side == BID else is_generation_meter(m)
    standing_orders.insert(sid, StandingOrder(who, side, zone, meter, price_per_kwh, quantity_wh, flag, first))
    standing_of.insert(who, sid, True)
    standing_count.insert(who, count + 1)
    tail = standing_tail.get()
    standing_links.insert(sid, (tail, None))
    if tail is None:
        standing_head.put(sid)
    else:
        prev_link = standing_links.get(tail)
        standing_links.insert(tail, (prev_link[0], sid))
    standing_tail.put(sid)
    deposit_event(StandingOrderSet(sid, who, side, zone, price_per_kwh, quantity_wh, first))


@pallet.call(4, weight=W_CANCEL_STANDING, origin=SIGNED)
def cancel_standing_order(origin: Origin, standing_id: StandingId) -> None:
    """Stop a standing order: it posts no more. Orders it already posted stay (cancel them with
    `cancel`)."""
    who = ensure_signed(origin)
    so = standing_orders.get(standing_id) or fail(Error.UnknownStandingOrder)
    ensure(so.owner == who, Error.NotStandingOrderOwner)
    prev, nxt = standing_links.get(standing_id)
    if prev is None:
        standing_head.put(nxt) if nxt is not None else standing_head.kill()
    else:
        standing_links.insert(prev, (standing_links.get(prev)[0], nxt))
    if nxt is None:
        standing_tail.put(prev) if prev is not None else standing_tail.kill()
    else:
        standing_links.insert(nxt, (prev, standing_links.get(nxt)[1]))
    if standing_cursor.get() == standing_id:
        standing_cursor.put(nxt) if nxt is not None else standing_cursor.kill()
    standing_links.remove(standing_id)
    standing_orders.remove(standing_id)
    standing_of.remove(who, standing_id)
    count = standing_count.get(who) - 1
    standing_count.insert(who, count) if count else standing_count.remove(who)
    deposit_event(StandingOrderCancelled(standing_id, who))


def standing_target(now_s: int) -> int:
    """The interval standing orders post for at time now_s."""
    return grid.interval_start(now_s) + Config.standing_lead_intervals * grid.Config.interval_s


def standing_order(standing_id: int) -> StandingOrder | None:
    return standing_orders.get(standing_id)


def standing_orders_of(who: bytes) -> list[int]:
    """The standing order ids of an owner, ascending."""
    return sorted(sid for sid, _ in standing_of.iter_prefix(who))


# --- matching --------------------------------------------------------------------------------
class Room:
    """Capacity left in one interval, reserved fill by fill (market_engine's `room_for`)."""

    def __init__(self, interval_start: int) -> None:
        self.t = interval_start
        self.zone_flow: dict[int, list[int]] = {}      # zone -> [import_wh, export_wh]
        self.link_flow: dict[tuple[int, int], int] = {}
        self.zone_cap: dict[int, tuple[int, int]] = {}  # zone -> (import_wh, export_wh) allowed
        self.link_cap: dict[tuple[int, int], int] = {}
        self.reserved = False

    def _zone_cap(self, zone: int) -> tuple[int, int]:
        cap = self.zone_cap.get(zone)
        if cap is None:
            imp_w, exp_w = grid.capacity_for(zone, self.t)
            cap = self.zone_cap[zone] = (wh_in_interval(imp_w), wh_in_interval(exp_w))
        return cap

    def _link_cap(self, route: tuple[int, int]) -> int:
        cap = self.link_cap.get(route)
        if cap is None:
            cap = self.link_cap[route] = wh_in_interval(grid.link_limit_w(*route) or 0)
        return cap

    def _flow(self, zone: int) -> list[int]:
        f = self.zone_flow.get(zone)
        if f is None:
            stored = flows.get((zone, self.t))
            f = self.zone_flow[zone] = [stored.import_wh, stored.export_wh]
        return f

    def _link(self, route: tuple[int, int]) -> int:
        if route not in self.link_flow:
            self.link_flow[route] = link_flows.get((*route, self.t))
        return self.link_flow[route]

    def __call__(self, from_zone: int, to_zone: int, wh: int) -> int:
        src, dst = self._flow(from_zone), self._flow(to_zone)
        export_room = self._zone_cap(from_zone)[1] - src[1]
        import_room = self._zone_cap(to_zone)[0] - dst[0]
        granted = min(wh, export_room, import_room)
        if from_zone != to_zone:
            route = (from_zone, to_zone)
            granted = min(granted, self._link_cap(route) - self._link(route))
        if granted <= 0:
            return 0
        self.reserved = True
        src[1] += granted
        dst[0] += granted
        if from_zone != to_zone:
            self.link_flow[(from_zone, to_zone)] += granted
        return granted

    def store(self) -> None:
        if not self.reserved:
            return
        for zone, (imp, exp) in sorted(self.zone_flow.items()):
            flows.insert((zone, self.t), Flow(imp, exp))
        for route, wh in sorted(self.link_flow.items()):
            link_flows.insert((*route, self.t), wh)


def route_fee(interval_start: int):
    """fee_for(from, to): the grid fee of the interval's band; None without a link or if paused."""
    def fee_for(from_zone: int, to_zone: int) -> int | None:
        if grid.is_paused(from_zone) or grid.is_paused(to_zone):
            return None
        return grid.grid_fee_per_kwh(from_zone, to_zone, interval_start)
    return fee_for


def counterparty_licensed(side: int):
    """eligible(owner) for resting orders opposite `side`: their owner's licence must still be
    active (a participant suspended after placing an order trades no more; the order waits for
    cancel or expiry). Cached per placement."""
    roles = (Role.PROSUMER,) if side == BID else (Role.PROSUMER, Role.CONSUMER)
    seen: dict[bytes, bool] = {}

    def eligible(owner: bytes) -> bool:
        ok = seen.get(owner)
        if ok is None:
            ok = seen[owner] = any(identity.is_licensed(owner, r) for r in roles)
        return ok
    return eligible


def opposite_sides(o: Order) -> dict:
    """The other side of every book in the order's interval (the engine picks the routes)."""
    other = ASK if o.side == BID else BID
    auction = set(call_auction_zones.get())
    zones = (set(open_books.get(o.interval_start)) | {o.zone}) - auction
    return {z: list(book.get((z, o.interval_start, other))) for z in sorted(zones)}


def is_call_auction_zone(zone: int) -> bool:
    return zone in call_auction_zones.get()


def trade_and_rest(o: Order) -> None:
    """Match an incoming order, record its trades, and rest what is left of it."""
    if is_call_auction_zone(o.zone):
        rest(o)                 # a call-auction zone: no continuous matching, cleared at gate closure
        return
    t = o.interval_start
    incoming = engine.Incoming(o.id, o.owner, o.zone, o.side == BID, o.price_per_kwh, o.quantity_wh, o.green)
    sides = opposite_sides(o)
    room = Room(t)
    result = engine.match(incoming, sides, route_fee(t), room, Config.max_fills_per_order,
                          Config.max_scan_per_order, counterparty_licensed(o.side))
    other = ASK if o.side == BID else BID
    for zone in result.touched_zones:
        put_side((zone, t), other, sides[zone])
    room.store()
    touched = {o.id: o}
    for fill in result.fills:
        record_trade(fill, t, touched)
    o = touched.pop(o.id)
    assert o.remaining_wh == result.remaining_wh
    for resting in touched.values():
        if resting.remaining_wh == 0:
            orders.remove(resting.id)
        else:
            orders.insert(resting.id, resting)
    if result.remaining_wh > 0:
        rest(o)


def record_trade(fill: engine.Fill, t: int, touched: dict) -> None:
    """One fill: the trade is recorded, its money stays in escrow, the buyer's surplus lock returns."""
    bid = touched.get(fill.bid_id) or orders.get(fill.bid_id)
    ask = touched.get(fill.ask_id) or orders.get(fill.ask_id)
    amount, fee_amount = cost(fill.wh, fill.price_per_kwh), cost(fill.wh, fill.fee_per_kwh)
    left = bid.remaining_wh - fill.wh
    lock_after = escrow_for(left, bid.price_per_kwh)
    surplus = bid.escrow_locked - lock_after - amount - fee_amount
    assert surplus >= 0, "escrow would fall short of a trade"
    release_escrow(bid.owner, surplus)
    touched[bid.id] = dataclasses.replace(bid, remaining_wh=left, escrow_locked=lock_after)
    touched[ask.id] = dataclasses.replace(ask, remaining_wh=ask.remaining_wh - fill.wh)
    trade_id = next_trade_id.get()
    next_trade_id.put(trade_id + 1)
    trades.insert(trade_id, Trade(trade_id, t, bid.owner, ask.owner, bid.meter, ask.meter, fill.from_zone,
                                  fill.to_zone, fill.wh, fill.price_per_kwh, fill.fee_per_kwh, amount,
                                  fee_amount, MATCHED))
    position = interval_trade_count.get(t)
    interval_trades.insert(t, position, trade_id)
    interval_trade_count.insert(t, position + 1)
    deposit_event(TradeMatched(trade_id, t, bid.id, ask.id, bid.owner, ask.owner, fill.from_zone,
                               fill.to_zone, fill.wh, fill.price_per_kwh, fill.fee_per_kwh))


def rest(o: Order) -> None:
    """Put what is left of an order into its book, and the book into the expiry queue."""
    key = (o.zone, o.interval_start)
    side = list(book.get((*key, o.side)))
    ensure(len(side) < Config.max_orders_per_side, Error.BookFull)
    engine.insert_resting(side, (o.price_per_kwh, o.id, o.owner, o.remaining_wh, o.green), o.side == BID)
    book.insert((*key, o.side), tuple(side))
    orders.insert(o.id, o)
    zones = open_books.get(o.interval_start)
    if o.zone not in zones:
        if not zones:
            queue_interval(o.interval_start)
        open_books.insert(o.interval_start, tuple(sorted((*zones, o.zone))))


def queue_interval(t: int) -> None:
    intervals = open_intervals.get()
    ensure(len(intervals) < Config.max_open_intervals, Error.TooManyOpenIntervals)
    open_intervals.put(tuple(sorted((*intervals, t))))


def put_side(key: tuple, side: int, entries: list) -> None:
    if entries:
        book.insert((*key, side), tuple(entries))
    else:
        book.remove((*key, side))


def close_order(o: Order) -> int:
    """Remove an open order and return a bid's remaining escrow; returns what was released."""
    orders.remove(o.id)
    release_escrow(o.owner, o.escrow_locked)
    return o.escrow_locked


# --- hooks -----------------------------------------------------------------------------------
@pallet.genesis
def _genesis(config: dict) -> None:
    """{"call_auction_zones": [zone id, ...]} (optional): zones traded by call auction."""
    zones = tuple(sorted({int(z) for z in config.get("call_auction_zones", [])}))
    for z in zones:
        if grid.zone(z) is None:
            raise ValueError(f"market genesis: call auction zone {z} is not a grid zone")
    if zones:
        call_auction_zones.put(zones)


@pallet.on_initialize
def expire_closed_books(n: int) -> int:
    """Release the unmatched orders of books whose gate has closed, oldest interval first, at most
    max_expiries_per_block orders per block. `now` here is the previous block's time (hooks run
    before the timestamp inherent); placements need now < gate, so a closed book never changes."""
    now_s = timestamp.now_s()
    budget = Config.max_expiries_per_block
    intervals = list(open_intervals.get())
    start = len(intervals)
    while intervals and budget > 0 and not gate_open(intervals[0], now_s):
        budget = expire_interval(intervals[0], budget)
        if open_books.contains(intervals[0]):
            break
        intervals.pop(0)
    if len(intervals) != start:
        open_intervals.put(tuple(intervals))
    return W_EXPIRE_BASE + W_EXPIRY * (Config.max_expiries_per_block - budget)


def expire_interval(t: int, budget: int) -> int:
    """Expire up to `budget` orders of the interval's books; returns the budget left."""
    zones = list(open_books.get(t))
    auction = call_auction_zones.get()
    while zones:
        if zones[0] in auction and not auction_cleared.get((zones[0], t)):
            budget = clear_call_auction(zones[0], t, budget)
            if budget <= 0:
                break
        budget = expire_book((zones[0], t), budget)
        if book.contains((zones[0], t, BID)) or book.contains((zones[0], t, ASK)):
            break
        if auction_cleared.contains((zones[0], t)):
            auction_cleared.remove((zones[0], t))
        zones.pop(0)
    if zones:
        open_books.insert(t, tuple(zones))
    else:
        open_books.remove(t)
    return budget


def clear_call_auction(zone: int, t: int, budget: int) -> int:
    """Clear the call auction of one (zone, interval) book once, at gate closure (see "Call
    auction"); costs one unit of the expiry budget per order in the book (at most
    2 x max_orders_per_side), and may take the budget below 0. Returns the budget left."""
    key = (zone, t)
    auction_cleared.insert(key, True)
    bids, asks = list(book.get((*key, BID))), list(book.get((*key, ASK)))
    budget -= len(bids) + len(asks)
    fee = grid.grid_fee_per_kwh(zone, zone, t)
    if not bids or not asks or fee is None or grid.is_paused(zone):
        return budget
    bid_ok, ask_ok = counterparty_licensed(ASK), counterparty_licensed(BID)
    live_bids = [e for e in bids if bid_ok(e[engine.OWNER])]
    live_asks = [e for e in asks if ask_ok(e[engine.OWNER])]
    room = Room(t)
    imp_cap, exp_cap = room._zone_cap(zone)
    imp_flow, exp_flow = room._flow(zone)
    cleared = engine.clearing_price(live_asks, live_bids, fee, min(imp_cap - imp_flow, exp_cap - exp_flow))
    if cleared is None:
        return budget
    price, volume = cleared
    fills = engine.allocate(live_asks, live_bids, zone, price, fee, volume, room)
    if not fills:
        return budget
    put_side(key, BID, engine.after_fills(bids, fills, True))
    put_side(key, ASK, engine.after_fills(asks, fills, False))
    room.store()
    touched: dict = {}
    for fill in fills:
        record_trade(fill, t, touched)
    for o in touched.values():
        if o.remaining_wh == 0:
            orders.remove(o.id)
        else:
            orders.insert(o.id, o)
    return budget


def expire_book(key: tuple, budget: int) -> int:
    for side_id in (BID, ASK):
        side = list(book.get((*key, side_id)))
        if not side:
            continue
        while side and budget > 0:
            e = side.pop()
            o = orders.get(e[ORDER_ID])
            released = close_order(o)
            deposit_event(OrderExpired(o.id, o.owner, released))
            budget -= 1
        put_side(key, side_id, side)
    return budget


@pallet.on_initialize
def reserve_standing_posts(n: int) -> int:
    """The weight `post_standing_orders` may use at the end of this block: hooks declare their
    weight up front, before the block's extrinsics take the rest."""
    now_s = timestamp.now_s()
    if now_s == 0 or (standing_cursor.get() is None and standing_head.get() is None):
        return W_STANDING_BASE
    return W_STANDING_BASE + W_PLACE * Config.max_standing_posts_per_block


@pallet.on_finalize
def post_standing_orders(n: int) -> None:
    """Post due standing orders for the target interval (standing_target of this block's own time,
    set by the timestamp inherent, so the target's gate is open at the time the orders are placed
    and matched), in standing-id order from a cursor, visiting at most max_standing_posts_per_block
    per block. At the end of the block: on_initialize only knows the previous block's time, and a
    block may come long after it."""
    now_s = timestamp.now_s()
    target = standing_target(now_s)
    cursor = standing_cursor.get()
    if cursor is None:              # no sweep under way: start one once the target moves on
        if target <= standing_round.get() or standing_head.get() is None:
            return
        standing_round.put(target)
        cursor = standing_head.get()
    visited = 0
    while cursor is not None and visited < Config.max_standing_posts_per_block:
        so = standing_orders.get(cursor)
        nxt = standing_links.get(cursor)[1]
        if so.next_interval <= target:
            post_standing(cursor, so, target)
        visited += 1
        cursor = nxt
    standing_cursor.put(cursor) if cursor is not None else standing_cursor.kill()


def post_standing(sid: int, so: StandingOrder, target: int) -> None:
    """Place one standing order's order for `target` through the placement path; on any dispatch
    error its writes and events roll back and StandingOrderSkipped says why. Either way the next
    post is for the interval after `target`."""
    try:
        with storage.transactional():
            if so.side == BID:
                oid = do_place_bid(so.owner, so.zone, target, so.price_per_kwh, so.quantity_wh, so.meter, so.green)
            else:
                oid = do_place_ask(so.owner, so.zone, target, so.price_per_kwh, so.quantity_wh, so.meter)
        deposit_event(StandingOrderPosted(sid, oid, target))
    except DispatchError as e:
        reason = e.error.name if isinstance(e.error, ErrorDef) else str(e.error)
        deposit_event(StandingOrderSkipped(sid, target, reason))
    standing_orders.insert(sid, dataclasses.replace(so, next_interval=target + grid.Config.interval_s))
