"""How the market's state machine (tests/test_market_invariants.py) produces blocks and checks each
one (verdicts predicted per extrinsic, replay, events, gate closure), and how a run ends: time is
driven on until every trade is final, then everything is checked once more. A mixin: the machine
itself holds the set-up, the rules and the invariants."""
from __future__ import annotations

import dataclasses
import sys
from collections import defaultdict

from hypothesis import event

from pallets import grid, market, settlement, system, timestamp
from pallets.identity import Role, Status
from pallets.market import ASK, ASK_ROLES, BID, BID_ROLES, ESCROW_ACCOUNT, coupled
from pallets.market_engine import cost
from primitives.extrinsic import Call, Extrinsic
from runtime.api import InvalidTransaction
from runtime.executive import execute_block
from runtime.storage import Overlay, externalities
from tests.runtime_harness import MemState
from tests.test_market import DAVE, STABLE, goto
from tests.market_model import (BY_KEY, GATE, grid_fee, istart, Item, NAME, ORDER_EXPIRED, ORDER_PLACED,
                                OrderRec, REGION, REGION_CLEARINGS, RENT_PAID, STANDING_POSTED,
                                SYSTEM_OR_FEE, TRADE_MATCHED, wh, ZONE_CAP)


class BlockProduction:
    """Producing and checking blocks, and draining a run at its end (see the module doc)."""

    # --- producing blocks -----------------------------------------------------------------
    def snapshot(self):
        return ({k: dataclasses.replace(v) for k, v in self.lic.items()}, dict(self.paused), dict(self.env))

    def produce(self, *items: Item):
        """One block with `items`, each judged against its predicted verdict."""
        chain = self.chain
        parent, parent_hash, number = MemState(chain.state), chain.hashes[-1], chain.number + 1
        phases = {0: self.snapshot()}
        xt_meter = {}
        b = chain.builder()
        now = chain.now_ms // 1000
        author = chain.author.public_key
        for it in items:
            index = len(b.extrinsics)
            phases[index] = self.snapshot()
            with externalities(b.overlay):
                expected = it.expect(now)
                xt = it.make(now)
                who = it.signer.public_key if it.signer is not None else None
                fees_before = (system.account.get(who).free, system.account.get(author).free) if who else None
            kind = chain.runtime.decode(xt).call.name
            before, n_events = b.overlay.changes(), len(b.overlay.events)
            try:
                out = b.apply(xt)
            except InvalidTransaction as e:
                assert it.signer is None, f"a signed extrinsic was refused: {e.reason}"
                assert expected is not None, f"a valid reading was refused: {e.reason}"
                assert e.reason == expected.message, (e.reason, expected.message)
                self.stats["reading rejected"] += 1
                assert b.overlay.changes() == before and len(b.overlay.events) == n_events, \
                    "a rejected reading left a trace"
                continue
            got = None if out.error is None else out.error.to_plain()[2]
            self.stats[f"{kind} {'ok' if got is None else 'failed'}"] += 1
            want = None if expected is None else expected.message
            assert got == want, f"expected {want!r}, got {got!r}"
            if got is not None:
                self.assert_only_fee_changed(parent, before, b.overlay.changes(), who, author,
                                             b.overlay.events[n_events:])
                with externalities(b.overlay):
                    free_after = (system.account.get(who).free, system.account.get(author).free)
                if who != author:
                    assert fees_before[0] - free_after[0] == out.fee == free_after[1] - fees_before[1]
            else:
                xt_meter[index] = it.meter
                with externalities(b.overlay):
                    it.on_ok(now)
        phases["end"] = self.snapshot()                       # for events of on_finalize hooks
        xts = list(b.extrinsics)
        result = chain.commit(b)
        self.after_block(parent, parent_hash, number, xts, result, phases, xt_meter)
        return result

    def jump(self, ts: int):
        """An empty block at unix second ts (tests.test_market.goto), then the same checks."""
        chain = self.chain
        parent, parent_hash, number = MemState(chain.state), chain.hashes[-1], chain.number + 1
        phases = {0: self.snapshot()}
        goto(chain, ts)
        xts = [Extrinsic(Call(1, 0, (chain.now_ms,))).encode()]      # the harness's timestamp inherent
        self.after_block(parent, parent_hash, number, xts, None, phases, {})

    def tick(self):
        return self.produce()

    @staticmethod
    def assert_only_fee_changed(parent, before, after, who, author, new_events):
        def eff(ch, k):
            return ch[k] if k in ch else parent.get(k)
        changed = {k for k in set(before) | set(after) if eff(before, k) != eff(after, k)}
        allowed = {system.account.key_of(who), system.account.key_of(author)}
        assert changed <= allowed, f"a failed call changed {len(changed - allowed)} storage entries"
        assert {e[1] for e in new_events} <= SYSTEM_OR_FEE, new_events

    def replay(self, parent, parent_hash, number, xts):
        b = self.chain.runtime.begin_block(MemState(parent), parent_hash, number, self.chain.digest())
        return execute_block(b, xts)

    def after_block(self, parent, parent_hash, number, xts, result, phases, xt_meter):
        chain = self.chain
        # 8. re-execution on a copy of the parent state gives the same changes, events and state
        again = self.replay(parent, parent_hash, number, xts)
        if result is not None:
            assert again.changes == result.changes, "replay: different changes"
            assert again.events == result.events, "replay: different events"
        post = MemState(parent)
        post.apply(again.changes)
        assert post == chain.state, "replay: different state"
        self.blocks.append((parent, parent_hash, number, xts, again.changes, again.events))
        with externalities(Overlay(parent)):
            seen_by_hooks = timestamp.now_s()
        self.check_block_events(again.events, phases, xt_meter, chain.now_ms // 1000, seen_by_hooks)
        # the expiry hook (which sees the parent's time) left no order whose gate had closed by then
        late = chain.read(lambda: [o.id for _, o in market.orders.items()
                                   if not market.gate_open(o.interval_start, seen_by_hooks)])
        # ... unless it spent its whole budget: a clearing costs units too (a coupled region's
        # orders, UNITS_PER_ORDER each), and expiry goes on in the next block, as documented
        spent = self.gate_closure_work(parent, again.events) >= market.Config.max_expiries_per_block
        assert not late or self.small_budgets or spent, f"orders {late} outlived their gate closure"

    @staticmethod
    def gate_closure_work(parent, events) -> int:
        """Budget units the expiry hook used in a block, from its events: one per order expired, and
        UNITS_PER_ORDER per order in a region's books (as the parent state held them) for each
        region it cleared."""
        work = 0
        for _phase, p, e, fields in events:
            if (p, e) == ORDER_EXPIRED:
                work += 1
            elif (p, e) in REGION_CLEARINGS:
                region, t = fields[0], fields[1]
                with externalities(Overlay(parent)):
                    zones = market.coupled_regions.get()[region]
                    orders = sum(len(market.book_side(z, t, side)) for z in zones for side in (BID, ASK))
                work += coupled.UNITS_PER_ORDER * orders
        return work

    def check_block_events(self, events, phases, xt_meter, block_time, hooks_time):
        matched, rents = [], {}
        for phase, p, e, fields in events:
            if (p, e) == ORDER_PLACED:
                oid, owner, side, zone, t, price, qty, locked = fields
                meter = xt_meter.get(phase[1]) if phase[0] == 1 else None
                self.orders[oid] = OrderRec(owner, side, zone, t, price, qty, meter)
                assert locked == (cost(qty, price) if side == BID else 0)
                # the market's gate rule, which invariant 6 rests on: no order is accepted (by a call or
                # by the standing orders' hook) in a block whose time is past the interval's gate
                assert block_time < t - GATE, (f"order {oid} for {t} accepted at {block_time}, its gate closed "
                                               f"at {t - GATE} (phase {phase})")
            elif (p, e) == STANDING_POSTED:
                sid, oid, _t = fields
                self.orders[oid].meter = self.standing_meter[sid]
            elif (p, e) == TRADE_MATCHED:
                matched.append((phase, fields))
            elif (p, e) == RENT_PAID:
                t, from_zone, to_zone, flow_wh, amount, dso = fields
                assert (t, from_zone, to_zone) not in rents and amount > 0 and flow_wh > 0
                rents[(t, from_zone, to_zone)] = amount
                self.stats["congestion rent paid"] += 1
                # congestion rent goes to the DSO of the link's exporting zone, never to a trader
                assert dso == self.chain.read(lambda z=from_zone: grid.zone(z).dso) == DAVE.public_key
                assert self.lic[dso].roles & int(Role.DSO)
        rents_due: dict = defaultdict(int)
        for phase, f in matched:
            # the model as it stood when the trade matched: hooks first, then each extrinsic in turn
            at = 0 if phase[0] == 0 else phase[1] if phase[0] == 1 else "end"
            lic, paused, env = phases.get(at, phases[0])
            tid, t, bid_id, ask_id, buyer, seller, from_zone, to_zone, w, price, fee = f
            assert tid == self.n_trades, "trade ids are one sequence"
            self.n_trades += 1
            # 5. licensed parties (at the time of the match), zones not paused, no self-trade
            assert self._licensed(lic, buyer, BID_ROLES), f"trade {tid}: buyer {NAME.get(buyer)} not licensed"
            assert self._licensed(lic, seller, ASK_ROLES), f"trade {tid}: seller {NAME.get(seller)} not licensed"
            assert not paused[from_zone] and not paused[to_zone], f"trade {tid} in a paused zone"
            assert buyer != seller
            coupled = self.coupled and from_zone in REGION
            assert coupled == (self.coupled and to_zone in REGION), f"trade {tid} between zone modes"
            # 6. matched before gate closure, by block time; a coupled region's trades are made by the
            # expiry hook at gate closure, once its gate has closed by the time the hooks see
            if coupled:
                assert phase[0] == 0 and hooks_time >= t - GATE, (
                    f"coupled trade {tid} for {t} made in phase {phase} with the hooks at {hooks_time}")
            else:
                assert block_time < t - GATE, (f"trade {tid} matched at {block_time}, gate of {t} closed at "
                                               f"{t - GATE} (phase {phase})")
            # the orders and the price rules
            b, a = self.orders[bid_id], self.orders[ask_id]
            assert (b.side, a.side, b.owner, a.owner) == (BID, ASK, buyer, seller)
            assert (b.zone, a.zone, b.t, a.t) == (to_zone, from_zone, t, t)
            if coupled:
                # the seller zone's price, the buyer zone's local fee; the buyer pays its own zone's
                # price (the difference is the links' congestion rent) plus that fee, within its limit
                prices = self.chain.read(lambda t=t: {z.zone: z.price_per_kwh for z in market.clearing(0, t).zones})
                assert fee == grid_fee(to_zone, to_zone, t)
                assert price == prices[from_zone] >= a.price and prices[to_zone] + fee <= b.price
                assert prices[to_zone] >= prices[from_zone]
                if from_zone != to_zone:
                    rents_due[(t, from_zone, to_zone)] += cost(w, prices[to_zone]) - cost(w, price)
                self.stats["coupled trade"] += 1
            else:
                assert fee == grid_fee(from_zone, to_zone, t)
            assert price >= a.price and price + fee <= b.price
            rec = self.chain.read(lambda tid=tid: market.trade(tid))
            assert (rec.buyer_meter, rec.seller_meter) == (b.meter, a.meter)
            assert (rec.wh, rec.amount, rec.fee_amount) == (w, cost(w, price), cost(w, fee))
            # 4. capacity in force at the match
            rooms = [(("exp", from_zone, t), self._room(env, from_zone, t)[1]),
                     (("imp", to_zone, t), self._room(env, to_zone, t)[0])]
            if from_zone != to_zone:
                rooms.append((("link", from_zone, to_zone, t), wh(self.link_w.get((from_zone, to_zone), 0))))
            for key, room in rooms:
                self.dflow[key] += w
                used = self.dflow[key]
                if key[0] == "link":              # a link's limit holds its net flow ("Capacity")
                    used -= self.dflow.get(("link", key[2], key[1], t), 0)
                assert used <= room, f"trade {tid}: {key} at {used} Wh > {room} Wh"
            if coupled and from_zone != to_zone:
                # the clearing's trades follow the net flow: never both directions of a link
                back = ("link", to_zone, from_zone, t)
                assert not self.dflow.get(back), f"trade {tid}: flows both ways between {from_zone} and {to_zone}"
        # every link's rent is the price difference over the trades across it, paid once
        assert rents == {k: v for k, v in rents_due.items() if v}, (rents, dict(rents_due))

    @staticmethod
    def _licensed(lic, who, roles) -> bool:
        p = lic.get(who)
        return p is not None and p.status == Status.ACTIVE and any(p.roles & int(r) for r in roles)

    @staticmethod
    def _room(env, zone, t):
        imp, exp = ZONE_CAP[zone]
        e = env.get((zone, t))
        if e is not None:
            imp, exp = min(imp, e[0]), min(exp, e[1])
        return wh(imp), wh(exp)

    # --- the end: everything settles ---------------------------------------------------------
    def teardown(self):
        # hypothesis runs this in a `finally`: after a failed step, report that failure, not what
        # draining the broken state would trip on
        failing = sys.exc_info()[0] is not None
        try:
            if hasattr(self, "chain") and not failing:
                self.drain()
        finally:
            for cfg, name, value in getattr(self, "saved_config", ()):
                setattr(cfg, name, value)

    def drain(self):
        for sid, (owner, _m) in sorted(self.standing.items()):
            self._cancel_standing(BY_KEY[owner], sid)
        self.check_all()
        trades = self.chain.read(lambda: [t for _, t in market.trades.items()])
        last = max([istart(self.chain.now_ms // 1000)] + [t.interval_start for t in trades]
                   + [o.t for o in self.orders.values()])
        self.jump(max(settlement.window_closes_at(last), self.chain.now_ms // 1000) + 1)
        for _ in range(400):
            # (an interval whose orders were all cancelled stays queued until the hooks see its gate)
            if (self._unsettled(disputed_too=False) == 0 and not self._open_orders()
                    and not self.chain.read(lambda: market.open_intervals.get())):
                break
            self.tick()
            self.check_all()
        assert self._unsettled(disputed_too=False) == 0, "trades left unsettled after the settlement window"
        deadline = max([d for d, _ in self.chain.read(lambda: settlement.open_disputes.get())], default=0)
        if deadline:
            self.jump(max(deadline, self.chain.now_ms // 1000) + 1)
            for _ in range(400):
                if self._unsettled(disputed_too=True) == 0:
                    break
                self.tick()
        self.check_all()
        assert self._unsettled(disputed_too=True) == 0, "disputed trades left after the arbitration window"
        assert not self._open_orders(), "orders left after gate closure"
        assert self.chain.asset(STABLE, ESCROW_ACCOUNT) == 0, "escrow left after everything settled"
        assert self.chain.read(lambda: (settlement.open_disputes.get(), market.open_intervals.get())) == ((), ())
        for block in self.blocks[-4:] + self.blocks[:2]:
            self.replay_recorded(block)
        self.report_coverage()

    def report_coverage(self):
        def read():
            st_ = [settlement.status.get(tid) for tid, _ in market.trades.items()]
            return (st_.count(settlement.SETTLED), st_.count(settlement.REFUNDED),
                    sum(1 for _, o in settlement.outcomes.items() if o.certificates_retired_wh))
        settled, refunded, retiring = self.chain.read(read)

        def bucket(n):
            return "0" if n == 0 else "1-4" if n < 5 else "5+"
        event(f"trades: {bucket(self.n_trades)}")
        event(f"settled: {bucket(settled)}, refunded: {bucket(refunded)}")
        event(f"trades retiring certificates: {bucket(retiring)}")
        event(f"certificate tokens minted: {bucket(sum(1 for v in self.minted.values() if v))}")
        for name, n in sorted(self.stats.items()):
            event(f"{name}: {bucket(n)}")

    def check_all(self):
        self.money_is_conserved()
        self.escrow_equals_open_obligations()
        self.books_hold_exactly_the_open_orders()
        self.certificates_equal_verified_export()
        self.flows_are_the_sum_of_trades()
        self.no_continuous_book_is_crossed()
        self.trades_never_change_and_final_is_final()

    def _unsettled(self, disputed_too: bool) -> int:
        def read():
            n = 0
            for tid in [k for k, _ in market.trades.items()]:
                s = settlement.status.get(tid)
                if s not in settlement.FINAL and (disputed_too or s != settlement.DISPUTED):
                    n += 1
            return n
        return self.chain.read(read)

    def _open_orders(self) -> int:
        return self.chain.read(lambda: sum(1 for _ in market.orders.items()))
