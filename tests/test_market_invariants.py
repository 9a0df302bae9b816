"""The energy market's invariants over random sequences of calls, readings and time, through the
composed runtime with the dev genesis (cast as in tests/test_market.py: Alice registrar, Dave DSO of
zones 1 and 2, Bob and Ferdie prosumers, Charlie consumer, Eve the GEUR issuer).

A hypothesis state machine drives the chain and keeps its own model of what the issue specifies
(licences, paused zones, envelopes, meters and the readings they accepted, the stablecoin supply the
issuer created). Every extrinsic is applied on its own through a block builder, with its verdict
predicted by the model first: a call predicted to fail must fail with that error and change nothing
but the signer's fee and nonce (and the author's fee income); a reading predicted to be rejected must
be refused by the block (it leaves no trace at all). After every step:

  1. money is conserved: native issuance never changes (fees go to the author), GEUR supply moves
     only by the issuer's mints and burns, and the balances add up to it;
  2. the escrow account holds exactly the open obligations, derived from storage: every open bid's
     cost(remaining, limit) (the all-in limit covers the largest grid fee) plus amount + fee of every
     trade that is not final;
  3. certificates minted per (zone, interval) equal the model's plausible export deltas of the
     readings accepted; per token balances + retired == minted, retired <= minted; minted and
     retired amounts never decrease, and retirements are exactly what settlement outcomes record;
  4. every trade fits the capacity in force when it matched: the zone flows and link flows it adds
     to stay within wh_in_interval(min(capacity, envelope)) (an envelope lowered later does not undo
     trades, as pallets/market documents); stored flows equal the sums over trades;
  5. both parties of every trade hold an active licence for their side when it matches (and the
     trade's zones are not paused, the buyer is not the seller);
  6. every trade's block time is before its interval's gate closure (and, the market's rule behind it,
     so is every order's, whether a call or the standing orders' hook placed it);
  7. at teardown, after the settlement window and the arbitration window have passed, every trade
     is SETTLED or REFUNDED, every order expired and the escrow is empty;
  8. every block re-executes on a copy of its parent state to the same changes, events and state
     (the in-memory harness has no trie; equal storage is equal state root), immediately and again
     at teardown, after later blocks ran;
  9. no placement leaves a continuous book crossed (a resting bid and ask that could trade).

Half the runs start from `coupled_genesis`: zones 1 and 2 are one coupled region with a binding 2 -> 1
link. There orders rest until gate closure and the expiry hook clears the region (trades in
on_initialize, after the gate by the hooks' time); the model refuses a participant's second side in
the region for an interval (BothSidesInRegion: nothing changes but the fee), checks each coupled
trade at the seller zone's price with the buyer zone's local fee and the buyer's zone price within
its limit, and each link's congestion rent (paid once, to the exporting zone's DSO) against the price
difference over the trades across it, which follow the net flow. Invariants 1-8 hold as stated; the
halts (`advance_far`, hours without a block) and small budgets spread a clearing over blocks (issue
12's defect 1, fixed as `test_a_halt_over_a_slow_coupled_clearing_still_settles_every_trade`).

The run is derandomized (the same examples every time, so CI is deterministic) and reports a failure
unshrunk; GRIDCHAIN_FUZZ=<examples> explores with fresh seeds and shrinks what it finds. A found
counter-example is kept below as a fixed sequence of the machine's rules.

The machine is split by concern: its model of the world (cast, genesis variants, records,
strategies) is tests/market_model.py, producing and checking each block and draining a run at its
end tests/market_machine_blocks.py, and the meter rules tests/market_machine_meters.py; this file
holds the set-up, the market's rules and the invariants.
"""
from __future__ import annotations

import os
from collections import defaultdict

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from genesis.chain_spec import DEV_METERS, DEV_ROLES
from pallets import balances, certificates, identity, market, metering, settlement, system
from pallets.identity import Role, Status
from pallets.market import ASK, ASK_ROLES, BID, BID_ROLES, ESCROW_ACCOUNT
from pallets.market_engine import cost
from tests.test_market import (BOB, CHARLIE, DAVE, EVE, METER, STABLE, _stable_balances, ask, bid, cancel,
                               check_invariants, new_chain)
from tests.test_market_crossed_book import crossed_pairs
from tests.test_settlement import METER_KEY, REASON
from tests.market_model import (_pick, AHEAD, BE, BY_KEY, COUPLED_LINK_W, GATE, GE, I, IE, istart, Item, KP,
                                Lic, LINK_W, ME, METER_OF, MeterModel, new_coupled_chain, OrderRec, PRICE,
                                QTY, REGION, SE, SMALL_BUDGETS, UNKNOWN_METER, wh, ZONE_CAP)
from tests.market_machine_blocks import BlockProduction
from tests.market_machine_meters import MeterRules


class MarketMachine(BlockProduction, MeterRules, RuleBasedStateMachine):

    # --- set-up ---------------------------------------------------------------------------
    @initialize(small_budgets=st.booleans(), coupled=st.booleans())
    def start(self, small_budgets=False, coupled=False):
        """A fresh dev chain; with `small_budgets` the hooks' per-block bounds are tiny, so that
        expiry and settlement spread over blocks (restored at teardown); with `coupled` zones 1 and
        2 are one coupled region (`coupled_genesis`): their orders rest and clear together at gate
        closure, one side per participant per interval."""
        self.saved_config = [(cfg, name, getattr(cfg, name)) for cfg, name, _ in SMALL_BUDGETS]
        self.small_budgets = small_budgets
        if small_budgets:
            for cfg, name, value in SMALL_BUDGETS:
                setattr(cfg, name, value)
        self.coupled = coupled
        self.link_w = COUPLED_LINK_W if coupled else LINK_W
        self.chain = new_coupled_chain() if coupled else new_chain()
        c = self.chain
        self.lic = {KP[n].public_key: Lic(identity.roles_from_names(r)) for n, r in DEV_ROLES.items()}
        self.paused = {z: False for z in ZONE_CAP}
        self.env: dict = {}
        self.meters = {METER_KEY[KP[o]].public_key: MeterModel(METER_KEY[KP[o]], KP[o].public_key, z, k, w)
                       for o, z, k, w in DEV_METERS}
        self.stable_supply = c.read(lambda: balances.assets.get(STABLE).supply)
        self.native_issuance = c.read(lambda: balances.total_issuance.get())
        self.minted: dict = defaultdict(int)
        self.orders: dict[int, OrderRec] = {}
        self.standing: dict[int, tuple[bytes, bytes]] = {}         # standing id -> (owner, meter)
        self.standing_meter: dict[int, bytes] = {}                  # every standing id ever set -> meter
        self.standing_count: dict = defaultdict(int)
        self.n_trades = 0
        self.dflow: dict = defaultdict(int)                          # derived from trades as they match
        self.finals: dict = {}                                       # trade id -> (status, outcome)
        self.trade_records: dict = {}
        self.cert_seen: dict = {}
        self.retired_seen: dict = {}
        self.blocks: list = []                                       # (parent, hash, number, xts, changes, events)
        self.stats: dict = defaultdict(int)                          # outcomes seen, for coverage events

    # --- orders ---------------------------------------------------------------------------
    def order_verdict(self, side, who, zone, t, price, qty, meter, now, placing=True):
        """The error a placement must fail with, None if it must be accepted (the checks of
        market.do_place_bid/do_place_ask in their order; `placing` False: set_standing_order's, which
        neither checks a pause nor locks escrow)."""
        C = market.Config
        if not C.min_price_per_kwh <= price <= C.max_price_per_kwh:
            return ME.PriceOutOfBounds
        if not C.min_quantity_wh <= qty <= C.max_quantity_wh:
            return ME.QuantityOutOfBounds
        if t % I:
            return ME.UnalignedInterval
        if not now < t - GATE:
            return ME.GateClosed
        if t > istart(now) + C.max_intervals_ahead * I:
            return ME.TooFarAhead
        if zone not in ZONE_CAP:
            return ME.UnknownZone
        if placing and self.paused[zone]:
            return ME.ZonePaused
        p = self.lic.get(who)
        if p is None or not any(p.roles & int(r) for r in (BID_ROLES if side == BID else ASK_ROLES)):
            return ME.NotLicensed
        if p.status != Status.ACTIVE:
            return ME.LicenceNotActive
        m = self.meters.get(meter)
        if m is None:
            return ME.UnknownMeter
        if m.owner != who:
            return ME.NotMeterOwner
        if m.zone != zone:
            return ME.MeterInOtherZone
        if not m.active:
            return ME.MeterNotActive
        if side == BID and m.kind == metering.KIND_EXPORT:
            return ME.MeterCannotImport
        if side == ASK and m.kind == metering.KIND_IMPORT:
            return ME.MeterCannotExport
        if qty > wh(m.rated_w):
            return ME.ExceedsMeterRating
        if placing and self.coupled and zone in REGION and self._open_sides_in_region(who, t) - {side}:
            return ME.BothSidesInRegion
        if placing and side == BID and balances.asset_balance_of(STABLE, who) < cost(qty, price):
            return ME.InsufficientFunds
        return None

    @staticmethod
    def _open_sides_in_region(who, t) -> set:
        """The sides of `who`'s open orders for interval t in the coupled region (read in the block)."""
        return {o.side for _, o in market.orders.items() if o.owner == who and o.interval_start == t
                and o.zone in REGION}

    def _order_meter(self, who, choice):
        own = METER_OF.get(who.public_key, METER[BOB])
        if choice == "own":
            return own
        if choice == "unknown":
            return UNKNOWN_METER
        return next(m for m in self.meters if m != own)

    @rule(who=st.sampled_from(["Bob", "Charlie", "Charlie", "Ferdie", "Eve"]), side=st.sampled_from([BID, ASK]),
          zone=st.sampled_from(["own"] * 5 + ["other", 9]), ahead=AHEAD, price=PRICE, qty=QTY,
          meter=st.sampled_from(["own"] * 8 + ["other", "unknown"]), green=st.booleans())
    def place_order(self, who, side, zone, ahead, price, qty, meter, green):
        who = KP[who]
        meter_id = self._order_meter(who, meter)
        own_zone = self.meters[METER_OF[who.public_key]].zone if who.public_key in METER_OF else 1
        z = own_zone if zone == "own" else (3 - own_zone if zone == "other" else zone)

        def when(now):
            return istart(now) + I + 1 if ahead == "unaligned" else istart(now) + ahead * I

        def make(now):
            if side == BID:
                return bid(self.chain, who, price, qty, zone=z, t=when(now), meter=meter_id, green=green)
            return ask(self.chain, who, price, qty, zone=z, t=when(now), meter=meter_id)
        self.produce(Item(make, lambda now: self.order_verdict(side, who.public_key, z, when(now), price, qty,
                                                               meter_id, now), who, meter=meter_id))

    @rule(seller=st.sampled_from(["Bob", "Ferdie"]), ahead=st.integers(1, 3), price=st.integers(10_000, 120_000),
          spread=st.integers(-20_000, 80_000), qty=st.integers(1, 2_000), qty2=st.integers(1, 2_000))
    def crossing_orders(self, seller, ahead, price, spread, qty, qty2):
        """An ask then a bid for the same interval at prices that often cross (one block each)."""
        seller = KP[seller]
        for who, side, p, q in ((seller, ASK, price, qty), (CHARLIE, BID, price + 35_000 + spread, qty2)):
            meter_id = METER_OF[who.public_key]
            z = self.meters[meter_id].zone

            def make(now, who=who, side=side, p=p, q=q, z=z, meter_id=meter_id):
                t = istart(now) + ahead * I
                return (bid if side == BID else ask)(self.chain, who, p, q, zone=z, t=t, meter=meter_id)
            self.produce(Item(make, lambda now, who=who, side=side, p=p, q=q, z=z, meter_id=meter_id:
                              self.order_verdict(side, who.public_key, z, istart(now) + ahead * I, p, q,
                                                 meter_id, now), who, meter=meter_id))

    @rule(who=st.sampled_from(["Bob", "Ferdie"]), n=st.integers(0, 10**6), same_side=st.booleans(),
          price=st.integers(10_000, 200_000), qty=st.integers(1, 2_000))
    def another_order_for_the_interval(self, who, n, same_side, price, qty):
        """Another order of a participant for an interval in which it has an open order: in the
        coupled region the other side must be refused (BothSidesInRegion) and change nothing but
        the fee; the same side is accepted. Without an open order, an order two intervals ahead."""
        who = KP[who]
        meter_id = METER_OF[who.public_key]
        zone = self.meters[meter_id].zone
        mine = self.chain.read(lambda: sorted((o.interval_start, o.side) for _, o in market.orders.items()
                                              if o.owner == who.public_key))
        pick = _pick(mine, n)
        side = (BID if n % 2 else ASK) if pick is None else pick[1] if same_side else 1 - pick[1]

        def when(now):
            return istart(now) + 2 * I if pick is None else pick[0]

        def make(now):
            return (bid if side == BID else ask)(self.chain, who, price, qty, zone=zone, t=when(now), meter=meter_id)
        def expect(now):
            verdict = self.order_verdict(side, who.public_key, zone, when(now), price, qty, meter_id, now)
            self.stats["second side in the region refused"] += verdict is ME.BothSidesInRegion
            return verdict
        self.produce(Item(make, expect, who, meter=meter_id))

    @rule(who=st.sampled_from(["Bob", "Charlie", "Ferdie"]), n=st.integers(0, 10**6))
    def cancel_order(self, who, n):
        who = KP[who]
        ids = sorted(self.orders) + [10**9]
        oid = ids[n % len(ids)]

        def expect(now):
            o = market.orders.get(oid)
            if o is None:
                return ME.UnknownOrder
            if o.owner != who.public_key:
                return ME.NotOrderOwner
            if not market.gate_open(o.interval_start, now):
                return ME.GateClosed
            return None
        self.produce(Item(lambda now: cancel(self.chain, who, oid), expect, who))

    # --- standing orders --------------------------------------------------------------------
    @rule(who=st.sampled_from(["Bob", "Charlie", "Ferdie"]), side=st.sampled_from([BID] * 4 + [ASK] * 4 + [2]),
          price=st.integers(30_000, 200_000), qty=st.integers(1, 1_500), green=st.booleans())
    def set_standing_order(self, who, side, price, qty, green):
        who = KP[who]
        meter_id = METER_OF[who.public_key]
        zone = self.meters[meter_id].zone

        def expect(now):
            if side not in (BID, ASK):
                return ME.InvalidSide
            v = self.order_verdict(side, who.public_key, zone, istart(now) + 4 * I, price, qty, meter_id, now,
                                   placing=False)
            if v is None and self.standing_count[who.public_key] >= market.Config.max_standing_per_owner:
                return ME.TooManyStandingOrders
            return v

        def on_ok(now):
            sid = market.next_standing_id.get() - 1
            self.standing[sid] = (who.public_key, meter_id)
            self.standing_meter[sid] = meter_id
            self.standing_count[who.public_key] += 1
        self.produce(Item(lambda now: self.chain.xt(who, "market", "set_standing_order", side, zone, price, qty,
                                                    meter_id, green), expect, who, on_ok))

    @rule(who=st.sampled_from(["Bob", "Charlie", "Ferdie"]), n=st.integers(0, 10**6))
    def cancel_standing_order(self, who, n):
        who = KP[who]
        ids = sorted(self.standing) + [10**6]
        sid = ids[n % len(ids)]
        self._cancel_standing(who, sid)

    def _cancel_standing(self, who, sid):
        def expect(now):
            if sid not in self.standing:
                return ME.UnknownStandingOrder
            return None if self.standing[sid][0] == who.public_key else ME.NotStandingOrderOwner

        def on_ok(now):
            del self.standing[sid]
            self.standing_count[who.public_key] -= 1
        self.produce(Item(lambda now: self.chain.xt(who, "market", "cancel_standing_order", sid), expect, who,
                          on_ok))

    # --- licences, zones, envelopes ---------------------------------------------------------
    @rule(action=st.sampled_from(["suspend"] * 8 + ["reinstate"] * 10 + ["revoke"]),
          whom=st.sampled_from(["Bob", "Charlie", "Ferdie", "Eve", "Dave", "Alice"]),
          by=st.sampled_from(["Alice"] * 5 + ["Bob"]))
    def licence(self, action, whom, by):
        whom, by = KP[whom], KP[by]
        if action == "revoke" and whom is DAVE:
            whom = EVE                      # keep the DSO: zones need it for the rest of the run
        suspended = [k for k, p in self.lic.items() if p.status == Status.SUSPENDED]
        if action == "reinstate" and self.lic[whom.public_key].status != Status.SUSPENDED and suspended:
            whom = BY_KEY[suspended[0]]      # mostly reinstate one that is suspended
        who = whom.public_key

        def expect(now):
            if not self._licensed(self.lic, by.public_key, (Role.REGISTRAR,)):
                return IE.NotRegistrar
            if action != "reinstate" and who == by.public_key:
                return IE.SelfAction
            p = self.lic.get(who)
            if p is None:
                return IE.NotParticipant
            if p.status == Status.REVOKED:
                return IE.RevocationIsFinal
            if action == "suspend" and p.status != Status.ACTIVE:
                return IE.NotActive
            if action == "reinstate" and p.status != Status.SUSPENDED:
                return IE.NotSuspended
            return None

        def on_ok(now):
            self.lic[who].status = {"suspend": Status.SUSPENDED, "reinstate": Status.ACTIVE,
                                    "revoke": Status.REVOKED}[action]
        args = (who,) if action == "reinstate" else (who, b"\x03" * 32)
        self.produce(Item(lambda now: self.chain.xt(by, "identity", action, *args), expect, by, on_ok))

    def _dso_verdict(self, by, zone):
        if zone not in ZONE_CAP:
            return GE.UnknownZone
        if by is not DAVE:
            return GE.NotZoneDso
        if not self._licensed(self.lic, DAVE.public_key, (Role.DSO,)):
            return GE.NotLicensedDso
        return None

    @rule(zone=st.sampled_from([1, 2, 1, 2, 9]), by=st.sampled_from(["Dave"] * 4 + ["Bob"]), pause=st.booleans())
    def pause_or_resume_zone(self, zone, by, pause):
        by = KP[by]
        def expect(now):
            v = self._dso_verdict(by, zone)
            if v is None and pause and self.paused[zone]:
                return GE.AlreadyPaused
            if v is None and not pause and not self.paused[zone]:
                return GE.NotPaused
            return v

        def on_ok(now):
            self.paused[zone] = pause
        args = (zone, b"\x04" * 32) if pause else (zone,)
        self.produce(Item(lambda now: self.chain.xt(by, "grid", "pause_zone" if pause else "resume_zone", *args),
                          expect, by, on_ok))

    @rule(zone=st.sampled_from([1, 2]), ahead=st.sampled_from([0, 1, 1, 2, 2, 3, -1, "unaligned"]),
          imp=st.one_of(st.integers(0, 20_000), st.just(260_000)), exp=st.integers(0, 20_000))
    def set_envelope(self, zone, ahead, imp, exp):
        def when(now):
            return istart(now) + I + 1 if ahead == "unaligned" else istart(now) + ahead * I

        def expect(now):
            t = when(now)
            v = self._dso_verdict(DAVE, zone)
            if v is None:
                if t % I:
                    return GE.UnalignedInterval
                if t < now:
                    return GE.IntervalInPast
                if imp > ZONE_CAP[zone][0] or exp > ZONE_CAP[zone][1]:
                    return GE.EnvelopeAboveCapacity
            return v

        def on_ok(now):
            self.env[(zone, when(now))] = (imp, exp)
        self.produce(Item(lambda now: self.chain.xt(DAVE, "grid", "set_envelope", zone, when(now), imp, exp),
                          expect, DAVE, on_ok))

    # --- money ------------------------------------------------------------------------------
    @rule(by=st.sampled_from(["Eve"] * 4 + ["Bob"]), to=st.sampled_from(["Bob", "Charlie", "Ferdie", "Eve"]),
          amount=st.one_of(st.integers(1, 10**9), st.just(0)), burn=st.booleans())
    def mint_or_burn(self, by, to, amount, burn):
        by, to = KP[by], KP[to]
        def expect(now):
            if by is not EVE:
                return BE.NotIssuer
            if not self._licensed(self.lic, EVE.public_key, (Role.ISSUER,)):
                return BE.IssuerNotLicensed
            if amount == 0:
                return BE.ZeroAmount
            if burn and balances.asset_balance_of(STABLE, EVE.public_key) < amount:
                return BE.InsufficientBalance
            return None

        def on_ok(now):
            self.stable_supply += -amount if burn else amount
        if burn:
            make = lambda now: self.chain.xt(by, "balances", "burn", STABLE, amount)
        else:
            make = lambda now: self.chain.xt(by, "balances", "mint", STABLE, to.public_key, amount)
        self.produce(Item(make, expect, by, on_ok))

    @rule(source=st.sampled_from(["Bob", "Charlie", "Dave", "Ferdie"]),
          dest=st.sampled_from(["Bob", "Charlie", "Eve", "Ferdie"]),
          percent=st.sampled_from([0, 1, 10, 50, 99, 100, 101]))
    def transfer_stablecoin(self, source, dest, percent):
        source, dest = KP[source], KP[dest]
        have = self.chain.asset(STABLE, source.public_key)
        amount = have * percent // 100 + (1 if percent > 100 else 0)

        def expect(now):
            if source is dest:
                return BE.SelfTransfer
            if amount == 0:
                return BE.ZeroAmount
            if balances.asset_balance_of(STABLE, source.public_key) < amount:
                return BE.InsufficientBalance
            return None
        self.produce(Item(lambda now: self.chain.xt(source, "balances", "transfer_asset", STABLE, dest.public_key,
                                                    amount), expect, source))

    # --- disputes -----------------------------------------------------------------------------
    @rule(n=st.integers(0, 10**6), party=st.sampled_from(["buyer", "buyer", "seller", "seller", "other"]))
    def dispute(self, n, party):
        now = self.chain.now_ms // 1000 + 1                         # the next block's time
        open_now = self.chain.read(lambda: [
            tid for tid, t in market.trades.items()
            if t.interval_start + I <= now < settlement.window_closes_at(t.interval_start)
            and settlement.status.get(tid) is None])
        tid = _pick(open_now, n) if open_now and n % 4 else n % (self.n_trades + 1)
        rec = self.chain.read(lambda: market.trade(tid))
        who = DAVE if rec is None or party == "other" else BY_KEY[rec.buyer if party == "buyer" else rec.seller]

        def expect(now):
            t = market.trade(tid)
            if t is None:
                return SE.UnknownTrade
            if who.public_key not in (t.buyer, t.seller):
                return SE.NotParty
            s = settlement.status.get(tid)
            if s in settlement.FINAL:
                return SE.AlreadyFinal
            if s == settlement.DISPUTED:
                return SE.AlreadyDisputed
            if now < t.interval_start + I:
                return SE.DisputeWindowNotOpen
            if now >= settlement.window_closes_at(t.interval_start):
                return SE.DisputeWindowClosed
            return None
        self.produce(Item(lambda now: self.chain.xt(who, "settlement", "dispute", tid, REASON), expect, who))

    @rule(n=st.integers(0, 10**6), by=st.sampled_from(["Alice"] * 4 + ["Bob"]), share=st.integers(0, 101))
    def arbitrate(self, n, by, share):
        by = KP[by]
        disputed = self.chain.read(lambda: [t for _, t in settlement.open_disputes.get()])
        tid = _pick(disputed, n) if disputed and n % 4 else n % (self.n_trades + 1)
        rec = self.chain.read(lambda: market.trade(tid))
        seller_wh = (rec.wh * share // 100 + (1 if share > 100 else 0)) if rec is not None else 0

        def expect(now):
            if not self._licensed(self.lic, by.public_key, (Role.REGISTRAR,)):
                return SE.NotRegistrar
            t = market.trade(tid)
            if t is None:
                return SE.UnknownTrade
            if settlement.status.get(tid) != settlement.DISPUTED:
                return SE.NotDisputed
            if seller_wh > t.wh:
                return SE.ShareTooLarge
            return None
        self.produce(Item(lambda now: self.chain.xt(by, "settlement", "arbitrate", tid, seller_wh), expect, by))

    # --- time -------------------------------------------------------------------------------
    @rule()
    def one_block(self):
        self.tick()

    @rule(gaps=st.lists(st.integers(1, 3 * I), min_size=1, max_size=4), report=st.booleans(),
          fractions=st.lists(st.integers(0, 100), min_size=6, max_size=6))
    def advance(self, gaps, report=False, fractions=(0,) * 6):
        """Empty blocks after irregular gaps (seconds since the previous block): a chain that stalls;
        then, if `report`, the meters catch up on the intervals that ended meanwhile."""
        for gap in gaps:
            self.jump(self.chain.now_ms // 1000 + gap)
        if report:
            self.meters_report(fractions)

    @rule(hours=st.integers(2, 30))
    def advance_far(self, hours):
        self.jump(self.chain.now_ms // 1000 + hours * 3600)

    @rule(n=st.integers(0, 10**6))
    def replay_an_earlier_block(self, n):
        if not self.blocks:
            self.tick()
        self.replay_recorded(self.blocks[n % len(self.blocks)])

    def replay_recorded(self, block):
        parent, parent_hash, number, xts, changes, events = block
        again = self.replay(parent, parent_hash, number, xts)
        assert again.changes == changes and again.events == events, f"block {number} replays differently later"

    # the core of the market, drawn more often than administration (hypothesis picks rules evenly)
    crossing_orders_again = crossing_orders
    crossing_orders_once_more = crossing_orders
    place_order_again = place_order
    another_order_for_the_interval_again = another_order_for_the_interval
    dispute_again = dispute
    set_standing_order_again = set_standing_order
    set_standing_order_once_more = set_standing_order
    advance_again = advance

    # --- invariants ---------------------------------------------------------------------------
    @invariant()
    def money_is_conserved(self):
        def read():
            supply = balances.assets.get(STABLE).supply
            held = sum(_stable_balances())
            native = sum(i.free + i.reserved for _, i in system.account.items())
            return supply, held, native, balances.total_issuance.get()
        supply, held, native, issuance = self.chain.read(read)
        assert supply == held == self.stable_supply, (supply, held, self.stable_supply)
        assert native == issuance == self.native_issuance, (native, issuance, self.native_issuance)

    @invariant()
    def escrow_equals_open_obligations(self):
        def read():
            due = 0
            for o in [o for _, o in market.orders.items()]:
                locks = cost(o.remaining_wh, o.price_per_kwh) if o.side == BID else 0
                assert o.escrow_locked == locks, f"order {o.id} locks {o.escrow_locked}, owes {locks}"
                due += locks
            for tid, t in market.trades.items():
                if settlement.status.get(tid) not in settlement.FINAL:
                    due += cost(t.wh, t.price_per_kwh) + cost(t.wh, t.fee_per_kwh)
            return due, balances.asset_balance_of(STABLE, ESCROW_ACCOUNT)
        due, held = self.chain.read(read)
        assert held == due, f"escrow holds {held}, open obligations are {due}"
        check_invariants(self.chain)          # tests/test_market.py's own escrow and book checks

    @invariant()
    def books_hold_exactly_the_open_orders(self):
        def read():
            booked = {}
            for (zone, t, side), entries in market.book.items():
                for price, oid, owner, left, green in entries:
                    assert oid not in booked, f"order {oid} booked twice"
                    booked[oid] = (zone, t, side, price, owner, left, green)
            open_ = {o.id: (o.zone, o.interval_start, o.side, o.price_per_kwh, o.owner, o.remaining_wh, o.green)
                     for _, o in market.orders.items()}
            return booked, open_
        booked, open_ = self.chain.read(read)
        assert booked == open_, "the books and the open orders differ"
        assert all(0 < v[5] <= self.orders[k].qty for k, v in open_.items())

    @invariant()
    def certificates_equal_verified_export(self):
        def read():
            out = {}
            for tok, s in certificates.supply.items():
                held = [w for _, w in certificates.balance.iter_prefix(tok)]
                claims = dict(certificates.retired.iter_prefix(tok))
                out[tuple(tok)] = (s.minted_wh, s.retired_wh, held, claims)
            retired_by_trades = defaultdict(int)
            for tid, t in market.trades.items():
                o = settlement.outcomes.get(tid)
                if o is not None:
                    assert o.certificates_retired_wh <= o.delivered_wh <= t.wh
                    retired_by_trades[(t.from_zone, t.interval_start)] += o.certificates_retired_wh
            return out, retired_by_trades
        tokens, by_trades = self.chain.read(read)
        assert {k: v[0] for k, v in tokens.items() if v[0]} == {k: v for k, v in self.minted.items() if v}, \
            "certificates minted != plausible exported Wh of accepted readings"
        for tok, (minted, retired, held, claims) in tokens.items():
            assert all(w >= 0 for w in held) and retired <= minted
            assert sum(held) + retired == minted, tok
            assert sum(claims.values()) == retired == by_trades.get(tok, 0), tok
            m0, r0 = self.cert_seen.get(tok, (0, 0))
            assert minted >= m0 and retired >= r0, f"{tok}: certificates un-minted or un-retired"
            self.cert_seen[tok] = (minted, retired)
            for who, w in claims.items():
                assert w >= self.retired_seen.get((tok, who), 0), "a retired amount went back"
                self.retired_seen[(tok, who)] = w
        assert all(v == 0 or k in tokens for k, v in by_trades.items())

    @invariant()
    def flows_are_the_sum_of_trades(self):
        def read():
            derived = defaultdict(int)
            for t in [t for _, t in market.trades.items()]:
                derived[("exp", t.from_zone, t.interval_start)] += t.wh
                derived[("imp", t.to_zone, t.interval_start)] += t.wh
                if t.from_zone != t.to_zone:
                    derived[("link", t.from_zone, t.to_zone, t.interval_start)] += t.wh
            stored = {}
            for key in list(derived):
                if key[0] == "link":
                    stored[key] = market.link_flow(*key[1:])
                else:
                    f = market.flow(key[1], key[2])
                    stored[key] = f.export_wh if key[0] == "exp" else f.import_wh
            return dict(derived), stored
        derived, stored = self.chain.read(read)
        assert derived == stored == {k: v for k, v in self.dflow.items() if v}

    @invariant()
    def no_continuous_book_is_crossed(self):
        """9. No placement leaves a continuous book crossed: no resting bid and ask could trade with
        each other (tests/test_market_crossed_book.py's `crossed_pairs`, pair by pair). A pair made
        tradable by a change outside a placement (a licence, a pause, an envelope, a cross-zone trade
        netting a link's flow) is left as the market documents: pairs of orders all placed before the
        model last saw such a change are excused."""
        widening = (tuple(sorted((k, v.status) for k, v in self.lic.items())), tuple(sorted(self.paused.items())),
                    tuple(sorted(self.env.items())),
                    tuple(sorted(kv for kv in self.dflow.items() if kv[0][0] == "link")))
        if widening != getattr(self, "widening", None):
            self.widening = widening
            self.excused_below = self.chain.read(lambda: market.next_order_id.get())

        def read():
            return [p for t in market.open_intervals.get() for z in market.open_books.get(t)
                    for p in crossed_pairs(z, t)]
        crossed = sorted({p for p in self.chain.read(read) if max(p) >= self.excused_below})
        assert not crossed, f"crossed (bid, ask) pairs left in the books: {crossed}"

    @invariant()
    def trades_never_change_and_final_is_final(self):
        def read():
            return ({tid: t for tid, t in market.trades.items()},
                    {tid: (settlement.status.get(tid), settlement.outcomes.get(tid))
                     for tid, _ in market.trades.items()})
        trades, states = self.chain.read(read)
        assert len(trades) == self.n_trades
        for tid, t in trades.items():
            assert self.trade_records.setdefault(tid, t) == t, f"trade {tid} was rewritten"
            s, o = states[tid]
            assert s in (None, settlement.DISPUTED, *settlement.FINAL)
            assert (s in settlement.FINAL) == (o is not None)
            if tid in self.finals:
                assert states[tid] == self.finals[tid], f"final trade {tid} changed"
            elif s in settlement.FINAL:
                self.finals[tid] = states[tid]

#: GRIDCHAIN_FUZZ=<examples> explores with fresh random seeds and more examples (100 steps each; a long
#: run needs pytest's per-test --timeout raised above pyproject's 300 s, see docs/benchmarks.md); by
#: default the run is derandomized (the same examples every time), so CI is deterministic
_FUZZ = int(os.environ.get("GRIDCHAIN_FUZZ", "0"))
MarketMachine.TestCase.settings = settings(
    max_examples=_FUZZ or 30, stateful_step_count=100, deadline=None, derandomize=not _FUZZ,
    # by default a failure is reported as found, unshrunk (shrinking these runs takes minutes; the
    # fixed reproducers below are the shrunk ones); GRIDCHAIN_FUZZ shrinks
    phases=list(Phase) if _FUZZ else [Phase.explicit, Phase.reuse, Phase.generate],
    report_multiple_bugs=bool(_FUZZ),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
TestMarketInvariants = MarketMachine.TestCase


def test_a_standing_order_is_not_posted_or_matched_after_gate_closure_by_a_late_block():
    """A counter-example of invariant 6 found by the machine, as a fixed sequence: the standing
    orders' hook checks the gate against the previous block's time, so a block that follows the
    first block of an interval after a gap of more than ~10 minutes posts Bob's bid for an interval
    whose gate has closed by its own time, and it matches Ferdie's resting ask there."""
    machine = MarketMachine()
    machine.start()
    machine.set_standing_order(who="Bob", side=BID, price=87_154, qty=1, green=False)
    machine.crossing_orders(seller="Ferdie", ahead=3, price=10_000, spread=-1, qty=1, qty2=1)
    machine.advance(gaps=[96, 1_501])     # the first block of an interval, then none for 25 minutes
    machine.check_all()


def test_a_halt_over_a_slow_coupled_clearing_still_settles_every_trade():
    """Issue 12's defect 1 in a coupled region, as a fixed sequence of the machine's rules: with the
    hooks' budgets tiny, the region's clearing and the expiry of its orders spread over blocks, and
    a halt of 30 hours puts the first blocks after it past the settlement window of both intervals.
    Ferdie's cheap energy in zone 2 fills the 2 -> 1 link (congestion rent to the DSO); Bob's second
    side in the region is refused; teardown drives time on until every trade is final and checks
    the invariants on the way."""
    machine = MarketMachine()
    machine.report_coverage = lambda: None               # hypothesis events exist only inside a test
    machine.start(small_budgets=True, coupled=True)
    try:
        for ahead in (2, 3):
            machine.crossing_orders(seller="Ferdie", ahead=ahead, price=30_000, spread=40_000, qty=1_500, qty2=2_000)
            machine.crossing_orders(seller="Bob", ahead=ahead, price=60_000, spread=20_000, qty=800, qty2=1_000)
        machine.another_order_for_the_interval(who="Bob", n=0, same_side=False, price=90_000, qty=100)
        assert machine.stats["place_bid failed"] == 1                 # BothSidesInRegion, nothing changed
        intervals = sorted({o.t for o in machine.orders.values()})
        machine.advance_far(hours=30)
        for _ in range(4):
            machine.one_block()
        machine.check_all()
        for t in intervals:
            result = machine.chain.read(lambda t=t: market.clearing(0, t))
            links = {(x.from_zone, x.to_zone): x for x in result.links}
            assert (links[(2, 1)].flow_wh, links[(2, 1)].congested) == (1_000, True) and links[(2, 1)].rent > 0
        assert machine.n_trades >= 4                                  # both sellers traded, both intervals
    finally:
        machine.teardown()
