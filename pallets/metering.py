"""Metering: certified smart meters and the energy they measure, interval by interval.

A DSO (for meters in its zone) or a licensed registrar certifies a meter: its ed25519 public key
(which is its id), the licensed prosumer or consumer who owns it, its zone, its kind (import, export
or bidirectional) and its rated power. Meters can be suspended, reinstated, replaced and retired.

A meter signs a reading of its cumulative registers (OBIS 1.8.0 import, 2.8.0 export, Wh) at the end
of each delivery interval (`primitives.meter_reading`) and submits it as an *unsigned* extrinsic: no
account, no fee. The pallet validates it (`validate_unsigned`, run by the pool and again when the
block applies it) and keeps, per (meter, interval), only the import and export *deltas* and the hash
of the signed reading, never the raw register series (privacy: the series reveals a household's
life; a delta per interval is what settlement needs, the hash lets the owner prove the raw reading).

Rules for a reading, in the order they are checked (each rejection is an InvalidTransaction with a
sentence from `Error`, changes nothing and leaves no trace):
  1. the meter is certified, and the signature is the meter's own, over this chain's genesis hash;
  2. the meter is active (not suspended, not retired);
  3. `seq` is at most `max_seq` and both registers at most `max_register_wh`, values no real meter
     reaches: no reading, a first one included, may set a baseline no later reading can follow;
  4. `interval_start` is on the interval grid (`grid.interval_start`);
  5. timing, with interval [t, t + I):  a reading is final at the interval's end, so it is accepted
     from `now >= t + I - max_drift_s` (meter clocks may run a little ahead of block time) until
     `now < t + I + settlement_window_intervals * I` (late readings are fine within the window;
     after it, settlement may already have used the interval);
  6. `seq` is above the last accepted one (equal: replay; lower: out of order);
  7. at most one reading per meter per interval, and intervals strictly increase: a reading for an
     interval before the meter's last one is out of order (the registers are cumulative, so a
     later reading already covers the energy of an earlier one that never arrived);
  8. registers never decrease.

Plausibility: a delta may not exceed what the meter's rated power can move in the time it covers,
`delta_wh * 3600 <= rated_power_w * (t - last_interval)`, and a register the meter's kind does not
measure (export on an import meter, import on an export meter) must not move. An implausible reading
is *not* rejected: rejected readings leave no trace on chain, so a count of them could not be kept.
It is accepted and recorded with `plausible = False` (settlement must not pay on it), and counted;
at `rogue_threshold` implausible readings in total since the meter was certified or last reinstated,
the meter is suspended automatically (a rogue meter) and `MeterSuspended(reason="rogue")` names the
zone's DSO, who investigates and reinstates (which resets the count) or replaces it.

A meter's first accepted reading is its baseline: it is recorded with zero deltas (`intervals` 0).
Each later reading records deltas against the previous accepted one, covering `intervals` =
(t - last_interval) / I intervals. The intervals skipped in between are announced by
`IntervalsMissed` and counted. Only the most recent `settlement_window_intervals` of them are recorded
one by one in `missed_intervals`: those are the only ones whose settlement window can still be open
when the reading applies (an interval k >= window + 1 intervals before the reading's closed before the
reading's own interval ended), so settlement never needs an older one, and the bound keeps a reading's
weight small. The older ones are only counted in `missed_unrecorded`. A replacement meter
starts fresh (no baseline; its first reading is its baseline), and a meter key once certified can
never be certified again, so old readings of a retired meter cannot be replayed.

Baseline reset. A meter whose register wrapped, or whose seq or registers were set too high, can
never satisfy rules 6 and 8 again. The zone's DSO (`reset_baseline`) or root (`force_reset_baseline`)
sets its last seq and registers anew; `BaselineReset` records who, why, and the old and new values.
The last interval and every per-interval record stay, so no interval can count twice: the next
reading must still be for a later interval (rule 7), and its deltas cover only the intervals since,
within the plausibility bound. A wrong baseline can at worst mis-state that one delta within the
bound, no more than the DSO, who certifies meters, could do anyway.
"""
from __future__ import annotations

import dataclasses

from pallets import certificates, grid, identity, system, timestamp  # certificates: mint hook
from primitives import ss58
from primitives.codec import BOOL, H256, U8, U32, U64, CodecError, Optional, Text, struct
from primitives.meter_reading import SignedReading, reading_hash, reading_message, reading_signature_ok
from primitives.types import AccountId
from runtime.api import InvalidKind, InvalidTransaction, SignatureCheck, TransactionSource, ValidTransaction
from runtime.pallet import (NONE, ROOT, SIGNED, CallDef, DispatchError, ErrorDef, Origin, Pallet,
                            PalletError, PostInfo, deposit_event, ensure, ensure_none, ensure_root,
                            ensure_signed, fail)

pallet = Pallet("metering", index=8, doc=__doc__)


# --- config ----------------------------------------------------------------------------------
@pallet.config
class Config:
    #: a reading is accepted until this many intervals after its interval ended
    settlement_window_intervals = 4
    #: a reading may arrive this many seconds before its interval ends by block time (clock skew)
    max_drift_s = 60
    #: implausible readings (in total since certification or reinstatement) that suspend a meter
    rogue_threshold = 3
    #: upper bound on a meter's rated power (100 MW)
    max_rated_power_w = 100_000_000
    #: pool priority of every reading (fixed: readings do not bid against each other)
    reading_priority = 2**48
    #: highest seq a reading or a baseline may carry: a reading a second would take 8.9 million years
    max_seq = 2**48
    #: highest register value (Wh) a reading or a baseline may carry, 1 PWh: a household meter's
    #: 9-digit kWh display wraps at 10^12 Wh, and the largest meter certifiable here (100 MW) would
    #: need over 1,100 years at full power; the u64 end (1.8e19) stays 18,000 times further away
    max_register_wh = 10**15


KIND_IMPORT, KIND_EXPORT, KIND_BIDIRECTIONAL = 0, 1, 2
STATUS_ACTIVE, STATUS_SUSPENDED, STATUS_RETIRED = 0, 1, 2

MeterId = H256

#: weights, nanoseconds of reference compute: a reading is dominated by its ed25519 check (run in
#: validation and again at apply) and half a dozen storage reads and writes; each recorded missed
#: interval is one more write
W_READING = 120_000
W_MISSED_INTERVAL = 3_000
W_CERTIFY = 50_000
W_ADMIN = 30_000
W_REPLACE = 70_000


@struct
class Meter:
    owner: AccountId
    zone: U32
    kind: U8                 # KIND_IMPORT | KIND_EXPORT | KIND_BIDIRECTIONAL
    rated_power_w: U64
    status: U8               # STATUS_ACTIVE | STATUS_SUSPENDED | STATUS_RETIRED
    last_seq: U64
    last_interval: U64       # interval_start of the last accepted reading
    last_import_wh: U64      # registers of the last accepted reading
    last_export_wh: U64
    implausible: U8          # implausible readings since certification or reinstatement
    has_reading: BOOL        # False until the baseline reading is accepted


@struct
class IntervalEnergy:
    import_wh: U64           # import register delta over the covered intervals, Wh
    export_wh: U64           # export register delta, Wh
    reading_hash: H256       # keccak-256 of the signed reading (primitives.meter_reading.reading_hash)
    plausible: BOOL          # False: recorded for the rogue-meter count, not to be settled on
    intervals: U32           # intervals the deltas cover: 1, or 1 + missed ones; 0 for a baseline


# --- storage ---------------------------------------------------------------------------------
meters = pallet.map("meters", key=MeterId, value=Meter, doc="Meter public key -> certified meter")
interval_energy = pallet.double_map("interval_energy", key1=MeterId, key2=U64, value=IntervalEnergy,
                                    doc="(meter, interval start) -> energy deltas and reading hash")
missed_intervals = pallet.double_map("missed_intervals", key1=MeterId, key2=U64, value=BOOL,
                                     doc="(meter, interval start) -> True for an interval with no reading")
missed_unrecorded = pallet.map("missed_unrecorded", key=MeterId, value=U64, default=0,
                               doc="Missed intervals too old to be settled any more when noticed, counted only")
SUSPENDED_OPERATOR, SUSPENDED_ROGUE = 0, 1
suspension_reason = pallet.map("suspension_reason", key=MeterId, value=U8,
                               doc="Why a suspended meter is suspended: 0 by its DSO or a registrar, 1 rogue")
chain_genesis_hash = pallet.value("chain_genesis_hash", H256,
                                  doc="The genesis hash readings are signed over, copied at block 1")


# --- events ----------------------------------------------------------------------------------
@pallet.event
class MeterCertified:
    meter: MeterId
    owner: AccountId
    zone: U32
    kind: U8
    rated_power_w: U64
    by: AccountId


@pallet.event
class MeterSuspended:
    """A meter stopped being trusted; reason "rogue" (automatic) or "operator" (by DSO or registrar)."""
    meter: MeterId
    zone: U32
    dso: AccountId
    reason: Text(16)


@pallet.event
class MeterReinstated:
    meter: MeterId
    by: AccountId


@pallet.event
class MeterRetired:
    meter: MeterId
    by: AccountId


@pallet.event
class MeterReplaced:
    old: MeterId
    new: MeterId
    rated_power_w: U64
    by: AccountId


@pallet.event
class ReadingAccepted:
    meter: MeterId
    interval_start: U64
    import_delta_wh: U64
    export_delta_wh: U64
    plausible: BOOL


@pallet.event
class IntervalsMissed:
    meter: MeterId
    from_interval: U64
    count: U64


@pallet.event
class BaselineReset:
    """A meter's baseline was reset by the zone's DSO (`by`) or by root (`by` None); the next
    reading needs a seq above `new_seq`, registers not below the new ones, and an interval after
    `last_interval` (unchanged)."""
    meter: MeterId
    zone: U32
    by: Optional(AccountId)
    last_interval: U64
    old_seq: U64
    old_import_wh: U64
    old_export_wh: U64
    new_seq: U64
    new_import_wh: U64
    new_export_wh: U64
    reason: Text(64)


# --- errors ----------------------------------------------------------------------------------
class Error(PalletError):
    # administration
    UnknownZone = "no grid zone with this id exists"
    NotAuthorized = "only the zone's DSO or a licensed registrar may certify or manage its meters"
    OwnerNotLicensed = "a meter's owner must hold an active prosumer or consumer licence"
    MeterExists = "a meter with this key has already been certified (keys are never reused)"
    UnknownMeter = "no meter with this key is certified"
    BadMeterKind = "a meter's kind is 0 (import), 1 (export) or 2 (bidirectional)"
    BadRatedPower = "a meter's rated power must be between 1 W and max_rated_power_w"
    NotActive = "only an active meter can be suspended"
    NotSuspended = "only a suspended meter can be reinstated"
    AlreadyRetired = "the meter is already retired"
    # readings
    GenesisUnknown = "readings are accepted from block 1 on, once the genesis hash is on chain"
    BadReadingSignature = ("the reading is not signed by its meter for this chain "
                           "(forged, tampered with, or signed over another genesis hash)")
    MeterSuspendedError = ("the meter was suspended by its DSO or a registrar; its readings are refused "
                           "until it is reinstated")
    MeterSuspendedRogue = ("the meter was suspended automatically as a rogue meter: rogue_threshold (3) "
                           "implausible readings, each moving more energy than its rated power allows "
                           "(delta_wh * 3600 > rated_power_w * seconds covered) or moving a register its "
                           "kind does not measure; the zone's DSO must check it and reinstate it")
    MeterRetiredError = "the meter is retired; its readings are refused"
    UnalignedInterval = "the reading's interval start is not on the chain's delivery-interval grid"
    IntervalNotEnded = "the reading's interval has not ended yet (beyond the allowed clock drift)"
    WindowClosed = "the reading arrived after its interval's settlement window closed"
    ReadingReplayed = "a reading with this sequence number was already accepted (replay)"
    SequenceTooLow = "the reading's sequence number is below the meter's last accepted one"
    DuplicateInterval = "the meter already has a reading for this interval"
    OutOfOrder = "the reading is for an interval before the meter's last accepted reading"
    RegisterDecreased = "a cumulative register (import or export) is lower than in the last reading"
    SeqOutOfRange = "a meter's sequence number may be at most max_seq (2^48); no real meter counts that far"
    RegisterOutOfRange = ("a meter register (import or export) may be at most max_register_wh "
                          "(10^15 Wh); no real meter gets that far")
    # baseline reset
    NotZoneDso = "only the licensed DSO of the meter's zone (or root) may reset its baseline"
    NoBaseline = "the meter has no accepted reading yet: its first reading sets its baseline"
    RetiredNoReset = "a retired meter's baseline cannot be reset"
    EmptyReason = "a baseline reset must give its reason"


pallet.errors(Error)


# --- public interface (settlement, RPC) --------------------------------------------------------
def energy_in_interval(meter: bytes, interval_start: int) -> IntervalEnergy | None:
    """The energy a meter recorded for the interval starting at `interval_start`, if any."""
    return interval_energy.get(meter, interval_start)


def get_meter(meter_id: bytes) -> Meter | None:
    return meters.get(meter_id)


def is_missed(meter_id: bytes, interval_start: int) -> bool:
    return missed_intervals.contains(meter_id, interval_start)


def genesis_hash() -> bytes | None:
    """The hash readings must be signed over: copied from system at block 1 (system prunes old
    block hashes, so it keeps its own copy); before that, the pool sees it in system's map."""
    h = chain_genesis_hash.get()
    return h if h is not None else system.block_hash.get(0)


# --- reading validation (pool and block) ------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class CheckedReading:
    meter: Meter
    import_delta_wh: int
    export_delta_wh: int
    intervals: int            # intervals the deltas cover (0 for the baseline)
    plausible: bool
    window_end_s: int         # first block time at which the reading would be too late


def _reject(kind: InvalidKind, error: ErrorDef) -> InvalidTransaction:
    return InvalidTransaction(kind, error.message)


def check_reading(signed: SignedReading, *, verify_signature: bool = True) -> CheckedReading:
    """Every rule a reading must pass, against current state; raises InvalidTransaction."""
    r = signed.reading
    gh = genesis_hash()
    if gh is None:
        raise _reject(InvalidKind.FUTURE, Error.GenesisUnknown)
    m = meters.get(r.meter)
    if m is None:
        raise _reject(InvalidKind.CUSTOM, Error.UnknownMeter)
    if verify_signature and not reading_signature_ok(signed, gh):
        raise _reject(InvalidKind.BAD_PROOF, Error.BadReadingSignature)
    return check_values(r.meter, m, r.seq, r.interval_start, r.import_wh, r.export_wh)


def check_values(meter_id: bytes, m: Meter, seq: int, interval_start: int, import_wh: int,
                 export_wh: int) -> CheckedReading:
    """Rules 2-8 for a reading of certified meter `m` whose signature was checked, whatever its
    format (the field_meters pallet maps OCMF, SML and DLMS records onto these); raises
    InvalidTransaction."""
    if m.status == STATUS_SUSPENDED:
        raise _reject(InvalidKind.CUSTOM, Error.MeterSuspendedRogue
                      if suspension_reason.get(meter_id) == SUSPENDED_ROGUE else Error.MeterSuspendedError)
    if m.status == STATUS_RETIRED:
        raise _reject(InvalidKind.CUSTOM, Error.MeterRetiredError)
    range_error = _out_of_range(seq, import_wh, export_wh)
    if range_error is not None:
        raise _reject(InvalidKind.CUSTOM, range_error)

    t, step = interval_start, grid.Config.interval_s
    if grid.interval_start(t) != t:
        raise _reject(InvalidKind.CUSTOM, Error.UnalignedInterval)
    now = timestamp.now_s()
    interval_end = t + step
    window_end = interval_end + Config.settlement_window_intervals * step
    if now + Config.max_drift_s < interval_end:
        raise _reject(InvalidKind.FUTURE, Error.IntervalNotEnded)
    if now >= window_end:
        raise _reject(InvalidKind.STALE, Error.WindowClosed)

    if m.has_reading:
        if seq == m.last_seq:
            raise _reject(InvalidKind.STALE, Error.ReadingReplayed)
        if seq < m.last_seq:
            raise _reject(InvalidKind.STALE, Error.SequenceTooLow)
    if interval_energy.contains(meter_id, t):
        raise _reject(InvalidKind.STALE, Error.DuplicateInterval)
    if not m.has_reading:
        return CheckedReading(m, 0, 0, 0, True, window_end)
    if t < m.last_interval:
        raise _reject(InvalidKind.STALE, Error.OutOfOrder)
    if import_wh < m.last_import_wh or export_wh < m.last_export_wh:
        raise _reject(InvalidKind.CUSTOM, Error.RegisterDecreased)

    d_import, d_export = import_wh - m.last_import_wh, export_wh - m.last_export_wh
    span_s = t - m.last_interval
    return CheckedReading(m, d_import, d_export, span_s // step,
                          _plausible(m, d_import, d_export, span_s), window_end)


def _out_of_range(seq: int, import_wh: int, export_wh: int) -> ErrorDef | None:
    """The error for a seq or register beyond what a real meter reaches, if any (rule 3)."""
    if seq > Config.max_seq:
        return Error.SeqOutOfRange
    if import_wh > Config.max_register_wh or export_wh > Config.max_register_wh:
        return Error.RegisterOutOfRange
    return None


def _plausible(m: Meter, d_import_wh: int, d_export_wh: int, span_s: int) -> bool:
    """Deltas within what the rated power can move in span_s, on the registers the kind measures."""
    bound = m.rated_power_w * span_s            # Wh * 3600
    import_bound = bound if m.kind in (KIND_IMPORT, KIND_BIDIRECTIONAL) else 0
    export_bound = bound if m.kind in (KIND_EXPORT, KIND_BIDIRECTIONAL) else 0
    return d_import_wh * 3600 <= import_bound and d_export_wh * 3600 <= export_bound


@pallet.signature_of_unsigned
def _reading_signature(call_def: CallDef, args: tuple) -> SignatureCheck | None:
    """The meter's signature over its reading, for the node's batch verifier (None: check inline)."""
    if call_def is not submit_reading.call_def:
        return None
    (signed,) = args
    gh = genesis_hash()
    if gh is None:
        return None
    return SignatureCheck(signed.reading.meter, signed.signature, reading_message(signed.reading, gh))


@pallet.validate_unsigned
def _validate_unsigned(call_def: CallDef, args: tuple, source: TransactionSource,
                       signature_ok: bool | None = None) -> ValidTransaction:
    if call_def is not submit_reading.call_def:
        raise InvalidTransaction(InvalidKind.CALL, "only metering.submit_reading may be submitted unsigned")
    (signed,) = args
    checked = check_reading(signed, verify_signature=signature_ok is None)
    if source == TransactionSource.IN_BLOCK:
        _pre_dispatch.checked = (signed, checked)
    r = signed.reading
    return ValidTransaction(
        priority=Config.reading_priority,
        requires=(),
        provides=(reading_tag(r.meter, r.seq),),
        # in blocks, assuming at least a second between blocks; the pool revalidates after each
        # block anyway, so a reading whose window closes sooner is dropped then
        longevity=max(1, checked.window_end_s - timestamp.now_s()),
        propagate=True,
    )


class _PreDispatch:
    """The check of the reading about to be dispatched, handed from validation to the call.

    The executive validates an unsigned extrinsic in a block immediately before dispatching it, on
    the same state (`BlockBuilder.apply`), so checking the reading a second time in the call would
    only repeat work: about a quarter of a reading's cost. The call takes the result only for the
    very object just validated, and checks again otherwise (any other path to the call)."""
    checked: tuple[SignedReading, CheckedReading] | None = None

    def take(self, signed: SignedReading) -> CheckedReading | None:
        held, self.checked = self.checked, None
        return held[1] if held is not None and held[0] is signed else None


_pre_dispatch = _PreDispatch()


def reading_tag(meter_id: bytes, seq: int) -> bytes:
    """The pool tag of a reading: one per (meter, seq), so duplicates and replays are dropped."""
    return b"mr" + meter_id + seq.to_bytes(8, "big")


# --- calls -----------------------------------------------------------------------------------
def _ensure_manager(who: bytes, zone_id: int) -> None:
    ensure(grid.is_zone_dso(zone_id, who) or identity.is_licensed(who, identity.Role.REGISTRAR),
           Error.NotAuthorized)


def _owner_licensed(owner: bytes) -> bool:
    return (identity.is_licensed(owner, identity.Role.PROSUMER)
            or identity.is_licensed(owner, identity.Role.CONSUMER))


def _zone_dso(zone_id: int) -> bytes:
    z = grid.zone(zone_id)
    return z.dso if z is not None else b"\0" * 32


def _new_meter(owner: bytes, zone: int, kind: int, rated_power_w: int) -> Meter:
    return Meter(owner, zone, kind, rated_power_w, STATUS_ACTIVE, 0, 0, 0, 0, 0, False)


def _check_certification(meter_id: bytes, owner: bytes, zone: int, kind: int, rated_power_w: int) -> None:
    ensure(grid.zone(zone) is not None, Error.UnknownZone)
    ensure(kind in (KIND_IMPORT, KIND_EXPORT, KIND_BIDIRECTIONAL), Error.BadMeterKind)
    ensure(0 < rated_power_w <= Config.max_rated_power_w, Error.BadRatedPower)
    ensure(_owner_licensed(owner), Error.OwnerNotLicensed)
    ensure(not meters.contains(meter_id), Error.MeterExists)


@pallet.call(0, weight=W_CERTIFY, origin=SIGNED)
def certify_meter(origin: Origin, meter: MeterId, owner: AccountId, zone: U32, kind: U8,
                  rated_power_w: U64) -> None:
    """Certify a meter (its public key) for a licensed owner in a zone. Signed by the zone's DSO or
    a licensed registrar."""
    certify(ensure_signed(origin), meter, owner, zone, kind, rated_power_w)


def certify(who: bytes, meter_id: bytes, owner: bytes, zone: int, kind: int, rated_power_w: int) -> None:
    """The rule of certifying a meter, whatever its scheme (`certify_meter` for gridchain's own
    meters, the field_meters pallet for meters that sign OCMF, SML or DLMS): `who` manages the zone."""
    ensure(grid.zone(zone) is not None, Error.UnknownZone)
    _ensure_manager(who, zone)
    _check_certification(meter_id, owner, zone, kind, rated_power_w)
    meters.insert(meter_id, _new_meter(owner, zone, kind, rated_power_w))
    deposit_event(MeterCertified(meter_id, owner, zone, kind, rated_power_w, who))


def _managed_meter(who: bytes, meter_id: bytes) -> Meter:
    m = meters.get(meter_id) or fail(Error.UnknownMeter)
    _ensure_manager(who, m.zone)
    return m


@pallet.call(1, weight=W_ADMIN, origin=SIGNED)
def suspend_meter(origin: Origin, meter: MeterId) -> None:
    """Stop accepting a meter's readings. Zone DSO or registrar."""
    who = ensure_signed(origin)
    m = _managed_meter(who, meter)
    ensure(m.status == STATUS_ACTIVE, Error.NotActive)
    meters.insert(meter, dataclasses.replace(m, status=STATUS_SUSPENDED))
    suspension_reason.insert(meter, SUSPENDED_OPERATOR)
    deposit_event(MeterSuspended(meter, m.zone, _zone_dso(m.zone), "operator"))


@pallet.call(2, weight=W_ADMIN, origin=SIGNED)
def reinstate_meter(origin: Origin, meter: MeterId) -> None:
    """Accept a suspended meter's readings again; its implausible-reading count starts over.
    Zone DSO or registrar."""
    who = ensure_signed(origin)
    m = _managed_meter(who, meter)
    ensure(m.status == STATUS_SUSPENDED, Error.NotSuspended)
    meters.insert(meter, dataclasses.replace(m, status=STATUS_ACTIVE, implausible=0))
    suspension_reason.remove(meter)
    deposit_event(MeterReinstated(meter, who))


@pallet.call(3, weight=W_ADMIN, origin=SIGNED)
def retire_meter(origin: Origin, meter: MeterId) -> None:
    """Retire a meter for good (its key can never be certified again). Zone DSO or registrar."""
    who = ensure_signed(origin)
    m = _managed_meter(who, meter)
    ensure(m.status != STATUS_RETIRED, Error.AlreadyRetired)
    meters.insert(meter, dataclasses.replace(m, status=STATUS_RETIRED))
    deposit_event(MeterRetired(meter, who))


@pallet.call(4, weight=W_REPLACE, origin=SIGNED)
def replace_meter(origin: Origin, old: MeterId, new_meter: MeterId, new_rated_power_w: U64) -> None:
    """Retire `old` and certify `new_meter` for the same owner, zone and kind. The new meter starts
    fresh: its first reading is its baseline. Zone DSO or registrar."""
    replace(ensure_signed(origin), old, new_meter, new_rated_power_w)


def replace(who: bytes, old: bytes, new_meter: bytes, new_rated_power_w: int) -> None:
    """The rule of replacing a meter, whatever the schemes of the old and the new one."""
    m = _managed_meter(who, old)
    ensure(m.status != STATUS_RETIRED, Error.AlreadyRetired)
    _check_certification(new_meter, m.owner, m.zone, m.kind, new_rated_power_w)
    meters.insert(old, dataclasses.replace(m, status=STATUS_RETIRED))
    meters.insert(new_meter, _new_meter(m.owner, m.zone, m.kind, new_rated_power_w))
    deposit_event(MeterRetired(old, who))
    deposit_event(MeterReplaced(old, new_meter, new_rated_power_w, who))
    deposit_event(MeterCertified(new_meter, m.owner, m.zone, m.kind, new_rated_power_w, who))


#: the most a reading adds beyond its own check: a certificate mint and the missed intervals it records
W_MINT_AND_MISSED = certificates.W_MINT + Config.settlement_window_intervals * W_MISSED_INTERVAL


@pallet.call(5, weight=W_READING + W_MINT_AND_MISSED, origin=NONE)
def submit_reading(origin: Origin, signed: SignedReading) -> PostInfo:
    """A meter's signed reading (unsigned extrinsic, no fee): records the interval's deltas."""
    ensure_none(origin)
    # validate_unsigned checked everything (signature included) just before, on this state
    checked = _pre_dispatch.take(signed)
    if checked is None:
        try:
            checked = check_reading(signed, verify_signature=False)
        except InvalidTransaction as e:
            raise DispatchError(e.reason) from None
    r = signed.reading
    extra = record_reading(r.meter, checked, r.seq, r.interval_start, r.import_wh, r.export_wh,
                           reading_hash(signed))
    return PostInfo(actual_weight=W_READING + extra)


def record_reading(meter_id: bytes, checked: CheckedReading, seq: int, interval_start: int,
                   import_wh: int, export_wh: int, signed_hash: bytes) -> int:
    """Record a reading that passed `check_values` (from any format): the interval's deltas, the
    missed intervals before it, the meter's new baseline, certificates for verified export, and
    the rogue-meter count. Returns the weight beyond the reading's own (mint, missed intervals)."""
    m = checked.meter
    recorded = 0
    if m.has_reading:
        recorded = _record_missed(meter_id, m.last_interval, interval_start)
    interval_energy.insert(meter_id, interval_start, IntervalEnergy(
        checked.import_delta_wh, checked.export_delta_wh, signed_hash, checked.plausible,
        checked.intervals))
    implausible = m.implausible if checked.plausible else min(m.implausible + 1, 255)
    rogue = implausible >= Config.rogue_threshold
    meters.insert(meter_id, dataclasses.replace(
        m, last_seq=seq, last_interval=interval_start, last_import_wh=import_wh,
        last_export_wh=export_wh, implausible=implausible, has_reading=True,
        status=STATUS_SUSPENDED if rogue else m.status))
    deposit_event(ReadingAccepted(meter_id, interval_start, checked.import_delta_wh,
                                  checked.export_delta_wh, checked.plausible))
    # verified export mints generation certificates to the owner, all under this reading's interval
    # (where interval_energy records the delta); see the certificates pallet
    minted = checked.plausible and checked.export_delta_wh > 0
    if minted:
        certificates.mint(m.owner, m.zone, interval_start, checked.export_delta_wh)
    if rogue:
        suspension_reason.insert(meter_id, SUSPENDED_ROGUE)
        deposit_event(MeterSuspended(meter_id, m.zone, _zone_dso(m.zone), "rogue"))
    return (certificates.W_MINT if minted else 0) + recorded * W_MISSED_INTERVAL


@pallet.call(6, weight=W_ADMIN, origin=SIGNED)
def reset_baseline(origin: Origin, meter: MeterId, seq: U64, import_wh: U64, export_wh: U64,
                   reason: Text(64)) -> None:
    """Set a meter's baseline (last seq, import and export registers) to new values, after its
    register wrapped or its seq or registers were set beyond reach; its last interval stays, so no
    interval can be read twice. Signed by the licensed DSO of the meter's zone; `reason` (a code or
    a sentence) goes into the `BaselineReset` event with the old and new values."""
    who = ensure_signed(origin)
    m = meters.get(meter) or fail(Error.UnknownMeter)
    ensure(grid.is_zone_dso(m.zone, who) and identity.is_licensed(who, identity.Role.DSO), Error.NotZoneDso)
    _reset_baseline(meter, m, who, seq, import_wh, export_wh, reason)


@pallet.call(7, weight=W_ADMIN, origin=ROOT)
def force_reset_baseline(origin: Origin, meter: MeterId, seq: U64, import_wh: U64, export_wh: U64,
                         reason: Text(64)) -> None:
    """Root (sudo or governance): `reset_baseline` for any meter, for a zone whose DSO cannot act."""
    ensure_root(origin)
    m = meters.get(meter) or fail(Error.UnknownMeter)
    _reset_baseline(meter, m, None, seq, import_wh, export_wh, reason)


def _reset_baseline(meter_id: bytes, m: Meter, by: bytes | None, seq: int, import_wh: int, export_wh: int,
                    reason: str) -> None:
    """The rule of a baseline reset, whoever asked: a meter with a baseline, not retired, new values
    within reach, a reason; everything but the three baseline values (status, last interval, the
    implausible count, every per-interval record) stays as it is."""
    ensure(m.status != STATUS_RETIRED, Error.RetiredNoReset)
    ensure(m.has_reading, Error.NoBaseline)
    ensure(reason != "", Error.EmptyReason)
    range_error = _out_of_range(seq, import_wh, export_wh)
    if range_error is not None:
        fail(range_error)
    meters.insert(meter_id, dataclasses.replace(m, last_seq=seq, last_import_wh=import_wh,
                                                last_export_wh=export_wh))
    deposit_event(BaselineReset(meter_id, m.zone, by, m.last_interval, m.last_seq, m.last_import_wh,
                                m.last_export_wh, seq, import_wh, export_wh, reason))


def _record_missed(meter_id: bytes, last_interval: int, interval_start: int) -> int:
    """Mark the intervals strictly between the last reading and this one as missed: the most recent
    `settlement_window_intervals` one by one (settlement may still ask about them), the older ones
    only counted. Returns how many were recorded one by one."""
    step = grid.Config.interval_s
    first = last_interval + step
    count = (interval_start - first) // step
    if count <= 0:
        return 0
    recorded = min(count, Config.settlement_window_intervals)
    for i in range(1, recorded + 1):
        missed_intervals.insert(meter_id, interval_start - i * step, True)
    if count > recorded:
        missed_unrecorded.insert(meter_id, missed_unrecorded.get(meter_id) + count - recorded)
    deposit_event(IntervalsMissed(meter_id, first, count))
    return recorded


# --- hooks -----------------------------------------------------------------------------------
@pallet.on_initialize
def _remember_genesis_hash(n: int) -> int:
    """At the first block, copy the genesis hash (system has just stored it as block 0's hash)."""
    if chain_genesis_hash.exists():
        return 1_000
    h = system.block_hash.get(0)
    if h is not None:
        chain_genesis_hash.put(h)
    return 5_000


# --- genesis ---------------------------------------------------------------------------------
@pallet.genesis
def _genesis(config: dict) -> None:
    """{"meters": [{"meter": "0x<public key>", "owner": ss58, "zone": 1, "kind": 2,
    "rated_power_w": 10000}]}; runs after identity and grid (lower indices), so it checks zones and
    owners' licences as certify_meter does."""
    for entry in config.get("meters", []):
        certify_at_genesis(bytes.fromhex(entry["meter"].removeprefix("0x")), entry, f"meter {entry['meter']}")


def certify_at_genesis(meter_id: bytes, entry: dict, what: str) -> None:
    """A meter in a chain spec (`entry`: owner, zone, kind, rated_power_w), checked as certification
    checks it; ValueError naming `what` if the spec is wrong. The field_meters pallet's genesis too."""
    owner = ss58.decode(entry["owner"], None)
    zone, kind, rated = entry["zone"], entry.get("kind", KIND_BIDIRECTIONAL), entry["rated_power_w"]
    try:
        H256.to_plain(meter_id)
        _check_certification(meter_id, owner, zone, kind, rated)
    except (CodecError, DispatchError) as e:
        raise ValueError(f"metering genesis, {what}: {e}") from None
    meters.insert(meter_id, _new_meter(owner, zone, kind, rated))
