"""The market state machine's meter rules (tests/test_market_invariants.py): signed readings, valid
and each kind of invalid, every meter reporting an interval, suspending and reinstating a meter. A
mixin: the verdicts follow metering's rules; the machine holds the rest."""
from __future__ import annotations


from hypothesis import strategies as st
from hypothesis.stateful import rule

from pallets import metering
from primitives.meter_reading import Reading, SignedReading, sign_reading
from tests.runtime_harness import GENESIS_HASH
from tests.test_market import BOB, CHARLIE, DAVE, FERDIE
from tests.test_metering import reading_xt
from tests.test_settlement import METER_KEY
from tests.market_model import DRIFT, I, istart, Item, KP, METER_OF, MeterModel, MTE, wh, WINDOW


class MeterRules:
    """Rules about meters and their readings (see the module doc)."""

    # --- meter readings -------------------------------------------------------------------
    def reading_verdict(self, m: MeterModel, seq, t, imp, exp, forged, now):
        if forged:
            return MTE.BadReadingSignature
        if not m.active:
            return MTE.MeterSuspendedRogue if m.rogue else MTE.MeterSuspendedError
        if t % I:
            return MTE.UnalignedInterval
        if now + DRIFT < t + I:
            return MTE.IntervalNotEnded
        if now >= t + I + WINDOW * I:
            return MTE.WindowClosed
        if m.has_reading and seq == m.last_seq:
            return MTE.ReadingReplayed
        if m.has_reading and seq < m.last_seq:
            return MTE.SequenceTooLow
        if t in m.intervals:
            return MTE.DuplicateInterval
        if not m.has_reading:
            return None
        if t < m.last_interval:
            return MTE.OutOfOrder
        if imp < m.imp or exp < m.exp:
            return MTE.RegisterDecreased
        return None

    def accept_reading(self, m: MeterModel, signed):
        r = signed.reading
        if not m.has_reading:
            d_imp = d_exp = intervals = 0
            plausible = True
        else:
            d_imp, d_exp = r.import_wh - m.imp, r.export_wh - m.exp
            span = r.interval_start - m.last_interval
            intervals = span // I
            bound = m.rated_w * span
            plausible = (d_imp * 3600 <= (bound if m.kind != metering.KIND_EXPORT else 0)
                         and d_exp * 3600 <= (bound if m.kind != metering.KIND_IMPORT else 0))
        e = metering.interval_energy.get(r.meter, r.interval_start)
        assert (e.import_wh, e.export_wh, e.plausible, e.intervals) == (d_imp, d_exp, plausible, intervals)
        if not plausible:
            m.implausible = min(m.implausible + 1, 255)
        if m.implausible >= metering.Config.rogue_threshold:
            m.active, m.rogue = False, True
        m.has_reading, m.last_seq, m.last_interval, m.imp, m.exp = True, r.seq, r.interval_start, r.import_wh, \
            r.export_wh
        m.intervals.add(r.interval_start)
        m.last_signed = signed
        if plausible and d_exp > 0:
            self.minted[(m.zone, r.interval_start)] += d_exp

    @rule(owner=st.sampled_from(["Bob", "Charlie", "Ferdie"]),
          mode=st.sampled_from(["valid"] * 8 + ["late", "early", "replay", "backwards", "implausible", "seq_low",
                                                "forged", "unaligned"]),
          back=st.integers(0, 3), seq_step=st.integers(1, 3), f_imp=st.integers(0, 100), f_exp=st.integers(0, 100))
    def submit_reading(self, owner, mode, back, seq_step, f_imp, f_exp):
        owner = KP[owner]
        key = METER_KEY[owner]
        m = self.meters[key.public_key]
        one = wh(m.rated_w)
        d_imp = one * f_imp // 100 if m.kind != metering.KIND_EXPORT else 0
        d_exp = one * f_exp // 100 if m.kind != metering.KIND_IMPORT else 0
        box = {}

        def make(now):
            seq, imp, exp = m.last_seq + seq_step, m.imp + d_imp, m.exp + d_exp
            t = istart(now) - (1 + back) * I
            if mode == "late":
                t = istart(now) - (WINDOW + 1 + back) * I
            elif mode == "early":
                t = istart(now) + (back % 2) * I
            elif mode == "unaligned":
                t += 60
            elif mode == "backwards" and (m.imp or m.exp):
                imp, exp = (m.imp - 1, exp) if m.imp else (imp, m.exp - 1)
            elif mode == "implausible":
                exp = m.exp + 3 * one * (back + 2) + 1
            elif mode == "seq_low" and m.last_seq > 0:
                seq = m.last_seq - 1
            if mode == "replay" and m.last_signed is not None:
                signed = m.last_signed
            else:
                signed = sign_reading(key, Reading(key.public_key, seq, t, imp, exp), GENESIS_HASH)
            if mode == "forged":        # tampered with after signing
                signed = SignedReading(Reading(key.public_key, seq, t, imp, exp + 1), signed.signature)
            box["signed"] = signed
            return reading_xt(signed)

        def expect(now):
            make(now)
            r = box["signed"].reading
            return self.reading_verdict(m, r.seq, r.interval_start, r.import_wh, r.export_wh, mode == "forged",
                                        now)
        self.produce(Item(make, expect, None, lambda now: self.accept_reading(m, box["signed"])))

    @rule(fractions=st.lists(st.integers(0, 100), min_size=6, max_size=6))
    def meters_report(self, fractions):
        """The meter fleet reports: every active meter sends a valid reading for each ended interval
        since its last one that is still within the settlement window (its first: a baseline), in
        order, all in one block; `fractions` are each meter's import and export per interval in % of
        what its rated power moves in one."""
        now = self.chain.now_ms // 1000 + 1                         # the next block's time
        items = []
        for i, owner in enumerate((BOB, CHARLIE, FERDIE)):
            key = METER_KEY[owner]
            m = self.meters[key.public_key]
            last_ended, oldest = istart(now) - I, istart(now) - WINDOW * I
            first = max(m.last_interval + I, oldest) if m.has_reading else last_ended
            one = wh(m.rated_w)
            d_imp = one * fractions[2 * i] // 100 if m.kind != metering.KIND_EXPORT else 0
            d_exp = one * fractions[2 * i + 1] // 100 if m.kind != metering.KIND_IMPORT else 0
            for t in range(first, last_ended + 1, I):
                box = {}

                def make(now_, key=key, m=m, t=t, box=box, d_imp=d_imp, d_exp=d_exp):
                    assert now_ == now
                    box["signed"] = sign_reading(key, Reading(key.public_key, m.last_seq + 1, t, m.imp + d_imp,
                                                              m.exp + d_exp), GENESIS_HASH)
                    return reading_xt(box["signed"])

                def expect(now_, m=m, make=make, box=box):
                    make(now_)
                    r = box["signed"].reading
                    return self.reading_verdict(m, r.seq, r.interval_start, r.import_wh, r.export_wh, False, now_)
                items.append(Item(make, expect, None, lambda now_, m=m, box=box: self.accept_reading(m, box["signed"])))
        self.produce(*items)

    @rule(offset=st.integers(0, 120), fractions=st.lists(st.integers(0, 100), min_size=6, max_size=6))
    def next_interval(self, offset, fractions):
        """On to the next interval, where the meters report the one that just ended."""
        self.jump(istart(self.chain.now_ms // 1000) + I + offset)
        self.meters_report(fractions)

    @rule(owner=st.sampled_from(["Bob", "Charlie", "Ferdie"]), by=st.sampled_from(["Dave", "Dave", "Bob"]),
          suspend=st.sampled_from([True, False, False]))
    def suspend_or_reinstate_meter(self, owner, by, suspend):
        owner, by = KP[owner], KP[by]
        meter_id = METER_OF[owner.public_key]
        suspended = [k for k, mm in self.meters.items() if not mm.active]
        if not suspend and self.meters[meter_id].active and suspended:
            meter_id = suspended[0]          # mostly reinstate one that is suspended
        m = self.meters[meter_id]

        def expect(now):
            if by is not DAVE:
                return MTE.NotAuthorized
            if suspend and not m.active:
                return MTE.NotActive
            if not suspend and m.active:
                return MTE.NotSuspended
            return None

        def on_ok(now):
            m.active, m.rogue = not suspend, False
            if not suspend:
                m.implausible = 0
        self.produce(Item(lambda now: self.chain.xt(by, "metering", "suspend_meter" if suspend else "reinstate_meter",
                                                    meter_id), expect, by, on_ok))

    # drawn more often than administration, like the market's own rules (see the machine's list)
    meters_report_again = meters_report
    next_interval_again = next_interval
