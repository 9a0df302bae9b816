"""Settlement: each matched trade is paid against what the meters measured, and ends final.

The market holds a trade's money in escrow from the moment it matches (`amount` for the seller,
`fee_amount` for the DSO). Once the settlement window of the trade's interval has closed, the
readings of both parties' meters decide how much was delivered, and settlement moves the escrow:
to the seller for the energy delivered, to the DSO for the grid fee on it, back to the buyer for
the rest; the party at fault for a shortfall pays a penalty to the other; the buyer's green claim
is made by retiring the seller's certificates. A party may instead dispute the trade, and a
licensed registrar decides.

Life of a trade (`trade_status`; the market's own `Trade.status` stays MATCHED, this pallet keeps
the status of every trade it touched in `status`):
    MATCHED     matched, its interval has not ended (absent from `status`)
    DELIVERING  its interval has ended, not yet settled; readings arrive until its settlement window
                closes (derived from the clock, not stored)
    DISPUTED    a party disputed it; the hook leaves its money alone, a registrar arbitrates
    SETTLED     final: some energy was delivered and paid for
    REFUNDED    final: nothing was delivered, the buyer got all its escrow back
A trade reaches SETTLED or REFUNDED exactly once: every payout first checks the trade is not final,
and writes its final status in the same step.

Rules (each is a function below, named after it):
  - Settlement window: a reading for interval [t, t+I) is accepted until t + I + W*I (W =
    metering.Config.settlement_window_intervals). The interval is settled by `on_initialize` in the
    first block whose hook sees now >= t + I + W*I (hooks see the previous block's time, and a
    reading in a later block carries a later time, so no reading can arrive after settlement used
    the interval) *and* the market has closed every book of t (`market_done_with`: t is no longer
    in `market.open_books`). Until then the hook stops at t and resumes in a later block.
    Why: the market records some trades for t from its own expiry hook, after gate closure: a
    call-auction book clears there, and so does a coupled region, before the interval's orders
    expire; that hook does at most max_expiries_per_block units of work a block, so after a
    halt (both hooks see a time far past t's window) a clearing can come blocks after settlement
    first looked at t. Had settlement passed t, the trades recorded later would never be visited.
    Both rules keep a book open until it is cleared and expired, so this one check covers them.
    It cannot deadlock: the market's hook runs first in every block, with the same `now`, and
    every book of t is past its gate once t's window has closed, so each block the market expires
    or clears something of the oldest open interval until t's books are gone. An interval whose
    last book the market closes in a block is settled by that same block's hook (the market's
    hook runs first, by pallet order).
    A trade recorded late still has the usual dispute window, until t + I + W*I, and is settled
    by the meters after it; one recorded when its window has already closed cannot be disputed
    and is settled by the hook that first finds t's books closed, like any trade of t.
  - Usable reading (`usable_wh`): the meter's recorded delta for the interval if the reading is
    plausible and covers at least the interval. A baseline reading (covers 0 intervals), an
    implausible reading or no reading at all is "no reading". A reading that also covers missed
    intervals before it counts at most what the meter's rated power moves in one interval.
  - Allocation (`allocate`): several trades may share a meter in an interval. A seller meter's
    export and a buyer meter's import are each handed out to the meter's trades in trade id
    order (first come), each trade taking at most its `wh`; what was handed out so far is kept per
    (meter, interval) in `export_allocated` / `import_allocated`, so a settlement spread over
    several blocks allocates exactly as one would. Every trade of the interval takes its share in
    id order, disputed or already arbitrated ones too, so a dispute never changes another trade's
    outcome.
  - Delivery (`delivery_outcome`), with s and b the seller's and buyer's allocations:
      * seller has no reading: nothing was delivered (the seller cannot prove export): delivered 0,
        seller at fault for the whole trade;
      * seller has a reading, buyer has none: the buyer's missing meter is not held against the
        seller: delivered = s (the seller's proven export), any shortfall is the seller's fault;
      * both have readings: delivered = min(wh, s, b); a shortfall is the seller's fault if s < wh,
        else the buyer's (the seller exported it all, the buyer did not take it).
  - Payout (`pay_out`), in the stablecoin, all from ESCROW_ACCOUNT, rounding like the market
    (cost(wh, price) = wh * price // 1000, never more than agreed):
        seller gets cost(delivered, price_per_kwh) (= amount on full delivery),
        the DSO of the trade's *from_zone* (where the energy entered the grid; for a cross-zone trade
        the exporting DSO collects the route fee; for a coupled trade across zones, which pays the
        buyer zone's local fee, the buyer zone's DSO: `market.fee_zone_of`) gets
        cost(delivered, fee_per_kwh),
        the buyer gets the rest of amount + fee_amount (the undelivered part and every rounding
        remainder), so the trade's escrow leaves in full and issuance is unchanged.
  - Penalty: cost(wh - delivered, penalty_per_kwh) (`penalty_per_kwh` set in genesis), paid by the
    party at fault to the other, straight from its free stablecoin balance. It is capped at what
    that party holds at settlement (a hook cannot fail a block over one trade); the event carries
    what was actually paid. Arbitration imposes no penalty.
  - Certificates: the buyer's green claim on delivered energy: min(delivered, seller's balance of
    token (from_zone, t)) certificates are retired from the seller with the buyer as beneficiary.
    A seller holding fewer (its certificates went to earlier trades, or its reading was a baseline)
    retires what it holds; the event says how many. Retiring burns them, so no Wh is claimed twice.
  - Status: SETTLED if delivered > 0, else REFUNDED.
  - Disputes: the buyer or the seller of a trade may `dispute` it from the end of its interval until
    its settlement window closes, while it is not final. The hook still allocates the disputed
    trade's metered shares (kept in `metered`) but moves no money. A licensed registrar
    `arbitrate`s: delivered = seller_share_wh (<= wh), paid out as above, no penalty. A dispute not
    arbitrated within `arbitration_window_s` after the settlement window closed is settled by the
    meters as if it had never been raised (so every trade ends final); `open_disputes` is that
    queue, bounded by max_open_disputes.
  - Bounded work: the hook settles at most max_trades_per_block trades and looks at most at
    max_intervals_per_block intervals per block, oldest first; where it stopped is kept in
    `next_interval` and `next_trade` (a position in the market's per-interval trade list, so a block
    reads only the trades it settles, however many the interval has). It is idempotent: a trade is visited once (the cursor passes
    it), and a final trade is never paid again.

Decisions:
  - `next_interval` starts lazily at the interval of the first block time the hook sees: no trade
    can be for an earlier interval, since orders are only placed for intervals ahead of now.
  - Escrow: use `escrowed_for_trade` here (0 once final) rather than the market's, which does not
    see this pallet's status.
  - Not pruned: market trades, allocations and statuses stay (they are the audit trail); pruning
    is a later issue.
"""
from __future__ import annotations

from pallets import balances, certificates, grid, identity, market, metering, timestamp
from pallets.identity import Role
from pallets.market import ESCROW_ACCOUNT, Trade, TradeId
from pallets.market_engine import cost
from primitives.codec import H256, U8, U64, ListOf, Optional, Tuple, struct
from primitives.types import AccountId
from runtime.pallet import SIGNED, Origin, Pallet, PalletError, deposit_event, ensure, ensure_signed, fail

pallet = Pallet("settlement", index=11, doc=__doc__)


# --- config ----------------------------------------------------------------------------------
@pallet.config
class Config:
    #: default penalty per undelivered kWh, stablecoin units (genesis may set another)
    penalty_per_kwh = 50_000
    #: trades settled per block by the hook: 20,000 trades (10,000 households trading twice) settle
    #: within 10 blocks; at W_SETTLE_TRADE that is up to 70% of a block's weight, and normal
    #: extrinsics get what is left of the block (the executive counts hook weight against the block)
    max_trades_per_block = 2_000
    #: intervals the hook looks at per block (catch-up after a long pause is spread out)
    max_intervals_per_block = 16
    #: a disputed trade not arbitrated this long after its settlement window closed settles by meters
    arbitration_window_s = 7 * 24 * 3600
    #: disputes awaiting arbitration at once
    max_open_disputes = 1024


MATCHED, DELIVERING, SETTLED, DISPUTED, REFUNDED = 0, 1, 2, 3, 4
FINAL = (SETTLED, REFUNDED)
NO_FAULT, SELLER_AT_FAULT, BUYER_AT_FAULT = 0, 1, 2

#: weights (ns of reference compute): one trade is ~a dozen reads and writes (readings,
#: allocations, three transfers, a penalty, a retirement, the status) and ~5 keys for the state
#: root; measured by `python -m bench.settlement_bench` at ~190 us of execution and ~150 us of
#: state root and commit per trade
W_HOOK_BASE = 10_000
#: one interval looked at: the market's open-books check, its trade count, the cursor writes
W_INTERVAL = 20_000
W_SETTLE_TRADE = 350_000
W_DISPUTE = 60_000
W_ARBITRATE = W_SETTLE_TRADE + 40_000


@struct
class Dispute:
    by: AccountId
    reason_hash: H256
    deadline_s: U64           # settled by meters if not arbitrated by then


@struct
class Metered:
    """A disputed trade's metered shares, kept for the registrar and the arbitration timeout."""
    seller_wh: Optional(U64)  # None: the seller meter had no usable reading
    buyer_wh: Optional(U64)


# --- storage ---------------------------------------------------------------------------------
@struct
class Outcome:
    """How a final trade settled: the regulator's record of money, fault and certificates."""
    delivered_wh: U64
    paid_seller: U64
    fee_to_dso: U64
    refund_buyer: U64
    penalty: U64              # actually paid by the party at fault
    at_fault: U8              # NO_FAULT | SELLER_AT_FAULT | BUYER_AT_FAULT
    certificates_retired_wh: U64


outcomes = pallet.map("outcomes", key=TradeId, value=Outcome,
                      doc="Trade id -> how it settled (for reports and settlement queries)")
status = pallet.map("status", key=TradeId, value=U8,
                    doc="Trade id -> DISPUTED | SETTLED | REFUNDED (absent: MATCHED or DELIVERING)")
penalty_per_kwh = pallet.value("penalty_per_kwh", U64, default=Config.penalty_per_kwh,
                               doc="Penalty per undelivered kWh paid by the party at fault")
next_interval = pallet.value("next_interval", U64, default=0,
                             doc="Start of the next interval to settle (0: not started yet)")
next_trade = pallet.value("next_trade", U64, default=0,
                          doc="Position in next_interval's trade list (market.interval_trades) the hook resumes at")
export_allocated = pallet.double_map("export_allocated", H256, U64, U64, default=0,
                                     doc="(seller meter, interval) -> export Wh handed out to trades")
import_allocated = pallet.double_map("import_allocated", H256, U64, U64, default=0,
                                     doc="(buyer meter, interval) -> import Wh handed out to trades")
disputes = pallet.map("disputes", key=TradeId, value=Dispute, doc="Disputed trade id -> dispute")
metered = pallet.map("metered", key=TradeId, value=Metered,
                     doc="Disputed trade id -> its metered shares, once the hook has passed it")
open_disputes = pallet.value("open_disputes", ListOf(Tuple(U64, U64), max_len=Config.max_open_disputes),
                             default=(), doc="(deadline_s, trade id) of unresolved disputes, ascending")


# --- events ----------------------------------------------------------------------------------
@pallet.event
class TradeSettled:
    """Energy was delivered: the escrow went to the seller, the DSO and back to the buyer."""
    trade_id: TradeId
    delivered_wh: U64
    paid_seller: U64
    fee_to_dso: U64
    refund_buyer: U64
    penalty: U64              # actually paid by the party at fault
    at_fault: U8              # NO_FAULT | SELLER_AT_FAULT | BUYER_AT_FAULT
    certificates_retired_wh: U64


@pallet.event
class TradeRefunded:
    """Nothing was delivered: the buyer's escrow went back in full."""
    trade_id: TradeId
    refund_buyer: U64
    penalty: U64
    at_fault: U8


@pallet.event
class TradeDisputed:
    trade_id: TradeId
    by: AccountId
    reason_hash: H256


@pallet.event
class DisputeResolved:
    trade_id: TradeId
    registrar: AccountId
    seller_share_wh: U64


@pallet.event
class DisputeTimedOut:
    """No registrar decided in time: the trade settled by its meters."""
    trade_id: TradeId


@pallet.event
class IntervalSettled:
    """Every trade of the interval has been visited (those under dispute wait for a registrar)."""
    interval_start: U64


# --- errors ----------------------------------------------------------------------------------
class Error(PalletError):
    UnknownTrade = "no trade with this id exists"
    NotParty = "only the buyer or the seller of a trade may dispute it"
    NotRegistrar = "only an active registrar may arbitrate a dispute"
    AlreadyFinal = "the trade is already settled or refunded"
    AlreadyDisputed = "the trade is already disputed"
    DisputeWindowNotOpen = "a trade can be disputed only once its delivery interval has ended"
    DisputeWindowClosed = "the trade's settlement window has closed: it can no longer be disputed"
    NotDisputed = "the trade is not under dispute"
    ShareTooLarge = "the seller's share cannot exceed the trade's quantity"
    TooManyDisputes = "too many disputes await arbitration (max_open_disputes)"


pallet.errors(Error)


# --- public interface (RPC, tests) -------------------------------------------------------------
def interval_s() -> int:
    return grid.Config.interval_s


def window_closes_at(interval_start: int) -> int:
    """Readings for the interval are accepted until this second; then it is settled."""
    return interval_start + interval_s() * (1 + metering.Config.settlement_window_intervals)


def trade_status(trade_id: int) -> int | None:
    """MATCHED, DELIVERING, DISPUTED, SETTLED or REFUNDED; None for an unknown trade."""
    t = market.trade(trade_id)
    if t is None:
        return None
    s = status.get(trade_id)
    if s is not None:
        return s
    return DELIVERING if timestamp.now_s() >= t.interval_start + interval_s() else MATCHED


def outcome(trade_id: int) -> Outcome | None:
    """How a final trade settled; None before that."""
    return outcomes.get(trade_id)


def is_final(trade_id: int) -> bool:
    return status.get(trade_id) in FINAL


def escrowed_for_trade(trade_id: int) -> int:
    """Stablecoin still held in escrow for the trade: amount + fee until it is final, then 0."""
    return market.escrowed_for_trade(trade_id)


market.register_settlement(is_final)


# --- rules -----------------------------------------------------------------------------------
def usable_wh(meter_id: bytes, interval_start: int, exported: bool) -> int | None:
    """The meter's energy for the interval that settlement may rely on; None for no reading."""
    e = metering.energy_in_interval(meter_id, interval_start)
    if e is None or not e.plausible or e.intervals == 0:
        return None
    wh = e.export_wh if exported else e.import_wh
    if e.intervals > 1:
        m = metering.get_meter(meter_id)
        wh = min(wh, market.wh_in_interval(m.rated_power_w)) if m is not None else 0
    return wh


def allocate(allocated, meter_id: bytes, interval_start: int, reading_wh: int | None, want_wh: int) -> int | None:
    """Hand out up to want_wh of the meter's reading to the next trade (first come, by trade id)."""
    if reading_wh is None:
        return None
    so_far = allocated.get(meter_id, interval_start)
    granted = max(0, min(want_wh, reading_wh - so_far))
    if granted:
        allocated.insert(meter_id, interval_start, so_far + granted)
    return granted


def delivery_outcome(wh: int, seller_wh: int | None, buyer_wh: int | None) -> tuple[int, int]:
    """(delivered_wh, at_fault) from the parties' allocations (None: no reading)."""
    if seller_wh is None:
        return 0, SELLER_AT_FAULT
    if buyer_wh is None:
        buyer_wh = wh                      # the seller is not held to the buyer's missing meter
    delivered = min(wh, seller_wh, buyer_wh)
    if delivered == wh:
        return delivered, NO_FAULT
    return delivered, SELLER_AT_FAULT if seller_wh < wh else BUYER_AT_FAULT


def dso_of(t: Trade) -> bytes:
    """The grid fee goes to the DSO whose tariff set it: of the zone the energy entered the grid in
    (the route's tariff), or for a coupled trade across zones of the buyer's zone (its local fee)."""
    z = grid.zone(market.fee_zone_of(t))
    return z.dso if z is not None else t.buyer       # a zone is never removed; refund otherwise


def release(dest: bytes, amount: int) -> None:
    if amount > 0:
        balances.asset_transfer(market.Config.stablecoin_asset, ESCROW_ACCOUNT, dest, amount)


def charge_penalty(t: Trade, undelivered_wh: int, at_fault: int) -> int:
    """The party at fault pays cost(undelivered, penalty_per_kwh) to the other, capped at its
    stablecoin balance; returns what was paid."""
    if at_fault == NO_FAULT or undelivered_wh == 0:
        return 0
    payer, payee = (t.seller, t.buyer) if at_fault == SELLER_AT_FAULT else (t.buyer, t.seller)
    asset = market.Config.stablecoin_asset
    due = cost(undelivered_wh, penalty_per_kwh.get())
    paid = min(due, balances.asset_balance_of(asset, payer))
    if paid > 0:
        balances.asset_transfer(asset, payer, payee, paid)
    return paid


def retire_certificates(t: Trade, delivered_wh: int) -> int:
    """Retire up to delivered_wh of the seller's certificates of (from_zone, t) to the buyer."""
    token = certificates.token_id(t.from_zone, t.interval_start)
    wh = min(delivered_wh, certificates.balance_of(token, t.seller))
    if wh > 0:
        certificates.retire(token, t.seller, wh, t.buyer)
    return wh


def pay_out(t: Trade, delivered_wh: int, at_fault: int, with_penalty: bool = True) -> None:
    """Move the trade's whole escrow and make it final (once: a final trade is left alone)."""
    if is_final(t.id):
        return
    assert delivered_wh <= t.wh
    paid_seller = cost(delivered_wh, t.price_per_kwh)
    fee_to_dso = cost(delivered_wh, t.fee_per_kwh)
    refund_buyer = t.amount + t.fee_amount - paid_seller - fee_to_dso
    assert refund_buyer >= 0
    release(t.seller, paid_seller)
    release(dso_of(t), fee_to_dso)
    release(t.buyer, refund_buyer)
    if not with_penalty:
        at_fault = NO_FAULT
    penalty = charge_penalty(t, t.wh - delivered_wh, at_fault)
    retired_wh = retire_certificates(t, delivered_wh)
    status.insert(t.id, SETTLED if delivered_wh > 0 else REFUNDED)
    outcome = Outcome(delivered_wh, paid_seller, fee_to_dso, refund_buyer, penalty, at_fault, retired_wh)
    outcomes.insert(t.id, outcome)
    if delivered_wh > 0:
        deposit_event(TradeSettled(t.id, *outcome.to_plain()))   # the event carries the record's fields
    else:
        deposit_event(TradeRefunded(t.id, refund_buyer, penalty, at_fault))


def settle_by_meters(t: Trade) -> None:
    """Allocate the trade's share of both meters; pay out unless it is disputed or final."""
    seller_wh = allocate(export_allocated, t.seller_meter, t.interval_start,
                         usable_wh(t.seller_meter, t.interval_start, exported=True), t.wh)
    buyer_wh = allocate(import_allocated, t.buyer_meter, t.interval_start,
                        usable_wh(t.buyer_meter, t.interval_start, exported=False), t.wh)
    s = status.get(t.id)
    if s in FINAL:
        return
    if s == DISPUTED:
        metered.insert(t.id, Metered(seller_wh, buyer_wh))
        return
    delivered, at_fault = delivery_outcome(t.wh, seller_wh, buyer_wh)
    pay_out(t, delivered, at_fault)


def settle_interval(interval_start: int, budget: int) -> tuple[int, bool]:
    """Visit the interval's trades from the cursor (a position in the market's per-interval list,
    which is in id order) on; (budget left, all done). Reads only the trades it settles."""
    first = next_trade.get()
    count = market.interval_trade_count.get(interval_start)
    take = min(budget, count - first)
    for trade_id in market.interval_trade_ids(interval_start, first, take):
        settle_by_meters(market.trade(trade_id))
    budget -= take
    if first + take < count:
        next_trade.put(first + take)
        return budget, False
    if count:
        deposit_event(IntervalSettled(interval_start))
    return budget, True


def resolve_timed_out_disputes(now_s: int, budget: int) -> int:
    """Settle by meters the disputes whose arbitration deadline passed (once the hook has allocated
    their meters); returns the budget left."""
    queue = list(open_disputes.get())
    kept = []
    for deadline_s, trade_id in queue:
        if budget > 0 and deadline_s <= now_s and metered.contains(trade_id):
            m = metered.get(trade_id)
            t = market.trade(trade_id)
            delivered, at_fault = delivery_outcome(t.wh, m.seller_wh, m.buyer_wh)
            status.remove(trade_id)           # DISPUTED -> final in pay_out
            pay_out(t, delivered, at_fault)
            close_dispute(trade_id)
            deposit_event(DisputeTimedOut(trade_id))
            budget -= 1
        else:
            kept.append((deadline_s, trade_id))
    if len(kept) != len(queue):
        open_disputes.put(tuple(kept))
    return budget


def close_dispute(trade_id: int) -> None:
    disputes.remove(trade_id)
    metered.remove(trade_id)


# --- calls -----------------------------------------------------------------------------------
@pallet.call(0, weight=W_DISPUTE, origin=SIGNED)
def dispute(origin: Origin, trade_id: TradeId, reason_hash: H256) -> None:
    """The buyer or seller contests a trade's delivery, after its interval ended and before its
    settlement window closes; the hook then leaves it to a registrar."""
    who = ensure_signed(origin)
    t = market.trade(trade_id) or fail(Error.UnknownTrade)
    ensure(who in (t.buyer, t.seller), Error.NotParty)
    s = status.get(trade_id)
    ensure(s not in FINAL, Error.AlreadyFinal)
    ensure(s != DISPUTED, Error.AlreadyDisputed)
    now_s = timestamp.now_s()
    ensure(now_s >= t.interval_start + interval_s(), Error.DisputeWindowNotOpen)
    closes = window_closes_at(t.interval_start)
    ensure(now_s < closes, Error.DisputeWindowClosed)
    queue = open_disputes.get()
    ensure(len(queue) < Config.max_open_disputes, Error.TooManyDisputes)
    deadline_s = closes + Config.arbitration_window_s
    open_disputes.put(tuple(sorted((*queue, (deadline_s, trade_id)))))
    disputes.insert(trade_id, Dispute(who, reason_hash, deadline_s))
    status.insert(trade_id, DISPUTED)
    deposit_event(TradeDisputed(trade_id, who, reason_hash))


@pallet.call(1, weight=W_ARBITRATE, origin=SIGNED)
def arbitrate(origin: Origin, trade_id: TradeId, seller_share_wh: U64) -> None:
    """A registrar decides a disputed trade: the seller delivered `seller_share_wh`; the escrow is
    paid out on that, without penalty, and the trade is final."""
    who = ensure_signed(origin)
    ensure(identity.is_licensed(who, Role.REGISTRAR), Error.NotRegistrar)
    t = market.trade(trade_id) or fail(Error.UnknownTrade)
    ensure(status.get(trade_id) == DISPUTED, Error.NotDisputed)
    ensure(seller_share_wh <= t.wh, Error.ShareTooLarge)
    status.remove(trade_id)
    pay_out(t, seller_share_wh, NO_FAULT, with_penalty=False)
    open_disputes.put(tuple(e for e in open_disputes.get() if e[1] != trade_id))
    close_dispute(trade_id)
    deposit_event(DisputeResolved(trade_id, who, seller_share_wh))


# --- hooks -----------------------------------------------------------------------------------
def market_done_with(interval_start: int) -> bool:
    """The market will record no more trades for the interval: none of its books is still open.

    One key read, and exact: a book leaves `market.open_books` only once it has been cleared (call
    auction, at gate closure, from the market's expiry hook) and all its orders have expired, and
    no book can open again for an interval whose gate has closed (settlement asks only after the
    window closed, long after the gate). `t in market.open_intervals` says the same but decodes
    the whole expiry queue."""
    return not market.open_books.contains(interval_start)


@pallet.on_initialize
def settle_closed_intervals(n: int) -> int:
    """Settle the trades of intervals whose settlement window has closed and whose books the market
    has closed, oldest first, at most max_trades_per_block trades and max_intervals_per_block
    intervals per block; then the disputes whose arbitration deadline passed. `now` is the previous
    block's time. An interval whose books are still open stops the walk (see "Settlement window");
    its check counts as a looked-at interval, so the weight covers it."""
    now_s = timestamp.now_s()
    if now_s == 0:
        return W_HOOK_BASE
    t = next_interval.get()
    if t == 0:
        t = grid.interval_start(now_s)
        next_interval.put(t)
    budget = Config.max_trades_per_block
    looked = 0
    while looked < Config.max_intervals_per_block and budget > 0 and window_closes_at(t) <= now_s:
        looked += 1
        if not market_done_with(t):
            break                       # the market may still record trades for t: wait for it
        budget, done = settle_interval(t, budget)
        if not done:
            break
        t += interval_s()
        next_interval.put(t)
        next_trade.kill()
    budget = resolve_timed_out_disputes(now_s, budget)
    return W_HOOK_BASE + W_INTERVAL * looked + W_SETTLE_TRADE * (Config.max_trades_per_block - budget)


# --- genesis ---------------------------------------------------------------------------------
@pallet.genesis
def _genesis(config: dict) -> None:
    """{"penalty_per_kwh": 50000 (optional; default Config.penalty_per_kwh)}"""
    p = config.get("penalty_per_kwh", Config.penalty_per_kwh)
    if not isinstance(p, int) or isinstance(p, bool) or p < 0:
        raise ValueError("settlement genesis: penalty_per_kwh must be a non-negative integer")
    penalty_per_kwh.put(p)
