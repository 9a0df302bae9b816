"""The market's declarations: config, constants, order and trade structs, storage, events, errors.

The lowest module of the package: every other module imports from here and nothing here imports
them. The pallet object is created here because storage items, events and errors register on it as
they are declared (in this order, which is the metadata's and, for events and errors, their
indices). The rules that use these declarations are in the package docstring."""
from __future__ import annotations

import sys

from pallets import grid
from pallets.identity import Role
from primitives.codec import (BOOL, H256, TEXT, U8, U32, U64, CodecError, ListOf, Optional, Tuple, Type,
                              struct)
from primitives.types import AccountId
from runtime.pallet import Pallet, PalletError

#: The pallet's doc (published in the runtime metadata) is the package's docstring, the market's rule
#: book. The package is executing its imports when this module runs, so its docstring is already set;
#: reading it from sys.modules rather than importing the package keeps the dependencies one-way.
pallet = Pallet("market", index=10, doc=sys.modules[__package__].__doc__)


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
    #: zones in one coupled region (the coupled clearing's work grows with them; a region is a feeder tree)
    max_region_zones = 8
    #: coupled regions in a chain
    max_regions = 64


BID, ASK = 0, 1
#: who may place each side
BID_ROLES = (Role.PROSUMER, Role.CONSUMER)
ASK_ROLES = (Role.PROSUMER,)
MATCHED = 0

#: weights (ns of reference compute): a placement reads the books of its interval's zones and may
#: make max_fills_per_order trades; an expiry is one order released
W_PLACE = 600_000
W_CANCEL = 80_000
W_EXPIRE_BASE = 5_000
W_EXPIRY = 30_000
W_SET_STANDING = 100_000
W_CANCEL_STANDING = 80_000
W_STANDING_BASE = 5_000
#: a standing order with a window: the terms and one more write
W_SET_STANDING_WINDOW = 110_000
#: the v2 migration, per standing order: read its link, write its window
W_MIGRATE_WINDOW = 20_000
#: seconds in a (UTC) day: a window's bounds are seconds of the day
DAY_S = 86_400

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
standing_windows = pallet.map("standing_windows", key=StandingId, value=Tuple(U32, U32), since=2,
                              doc="Standing id -> (start_s, end_s): seconds of the day (UTC) whose intervals it "
                                  "posts for, [start, end), wrapping past midnight when start > end; none: all day")
call_auction_zones = pallet.value("call_auction_zones", ListOf(U32, max_len=grid.Config.max_zones), default=(),
                                  doc="Zones traded by uniform-price call auction at gate closure (genesis)")
auction_cleared = pallet.map("auction_cleared", key=Tuple(U32, U64), value=BOOL, default=False,
                             doc="(zone, interval start) -> True once its call auction (or its region's "
                                 "coupled clearing) has cleared")


@struct
class ZoneClearing:
    """One zone's part of a coupled clearing."""
    zone: U32
    price_per_kwh: U64        # the zone's energy price: its sellers get it, its buyers pay it + the zone's fee
    bought_wh: U64
    sold_wh: U64
    imported_wh: U64          # over links, net
    exported_wh: U64


@struct
class LinkClearing:
    """One direction of a link in a coupled clearing."""
    from_zone: U32
    to_zone: U32
    flow_wh: U64              # net flow this way
    limit_wh: U64             # the direction's room before the clearing
    congested: BOOL           # the flow reached the limit
    rent: U64                 # congestion rent earned, paid to `dso`
    dso: AccountId            # the from-zone's DSO, who sets this direction's limit


@struct
class RegionClearing:
    zones: ListOf(ZoneClearing, max_len=Config.max_region_zones)
    links: ListOf(LinkClearing, max_len=Config.max_region_zones * (Config.max_region_zones - 1))
    volume_wh: U64            # Wh traded
    rent: U64                 # total congestion rent


coupled_regions = pallet.value("coupled_regions",
                               ListOf(ListOf(U32, max_len=Config.max_region_zones), max_len=Config.max_regions),
                               default=(), doc="Regions of zones cleared together at gate closure (genesis), "
                                               "each a list of zone ids, ascending")
clearings = pallet.map("clearings", key=Tuple(U32, U64), value=RegionClearing,
                       doc="(region index, interval start) -> the result of the region's coupled clearing")
fee_zones = pallet.map("fee_zones", key=TradeId, value=U32,
                       doc="Trade id -> the zone whose tariff set the trade's grid fee and whose DSO is paid it, "
                           "where that is not the trade's from_zone (coupled trades across zones)")


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


@pallet.event
class RegionCleared:
    """A coupled region's books cleared together for an interval (the result is in `clearings`)."""
    region: U32
    interval_start: U64
    volume_wh: U64
    rent: U64


@pallet.event
class RegionNotCleared:
    """The clearing's own checks failed (a defect): nothing traded in the region for the interval,
    its orders expire as usual and the chain goes on. Operators: report it with the interval."""
    region: U32
    interval_start: U64
    reason: TEXT


@pallet.event
class CongestionRentPaid:
    """A congested link's rent, (price difference) x flow, went to its DSO; never to a trader."""
    interval_start: U64
    from_zone: U32
    to_zone: U32
    flow_wh: U64
    amount: U64
    dso: AccountId


@pallet.event
class OrderTrimmed:
    """An incoming order's matching stopped at a work bound while it still crossed an order it could
    trade with: its remainder did not rest (a book is never left crossed), a bid's escrow for it
    returned at once."""
    order_id: OrderId
    owner: AccountId
    trimmed_wh: U64
    released: U64
    bound: TEXT               # max_fills_per_order | max_scan_per_order


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
    BothSidesInRegion = ("in a coupled region a participant may hold bids or asks for an interval, not both "
                         "(no self-trade): cancel the other side first")
    WindowOutOfDay = ("a window's bounds are seconds of the day (UTC): window_start_s below 86400, "
                      "window_end_s at most 86400")
    EmptyWindow = ("a window's start and end must differ (start == end would never post); "
                   "0 to 86400 is all day, a start above the end wraps past midnight")


pallet.errors(Error)
