"""Readings as a meter builds them: register values on the chain's interval grid, signed, wrapped.

A reading reports the two cumulative registers (OBIS 1.8.0 import and 2.8.0 export, Wh) at the end
of one delivery interval [t, t + I); `interval_start` is t. Everything about its bytes is in
protocol.md section 8 and `primitives.meter_reading`; this module adds what a meter must know about
the chain to build one that will be accepted:

  - the interval length I, from the metadata constant `grid.interval_s` (falling back to an
    operator's option, default 900 s, for a node that does not publish it), because a reading off the
    grid is refused outright;
  - the timing rules (`metering.max_drift_s`, `metering.settlement_window_intervals`): a reading is
    accepted from its interval's end until the window closes, so the gateway holds a reading back
    until the chain's own time has passed the interval's end (one sent early is refused and its exact
    bytes are banned by the node for 30 minutes) and gives up on it once the window has closed;
  - the call indices of `metering.submit_reading`, from the metadata, never hard-coded.

ed25519 signatures are deterministic, so signing the same reading again yields the same bytes: a
resent reading is always the very same extrinsic, which is what makes re-submission idempotent.
"""
from __future__ import annotations

from dataclasses import dataclass

from primitives import codec
from primitives.extrinsic import Extrinsic
from primitives.keys import Keypair
from primitives.meter_reading import Reading, SignedReading, sign_reading
from rpc.client import call_from_metadata

#: the chain's defaults (grid.Config.interval_s, metering.Config), used only when a node's metadata
#: does not publish the constants
DEFAULT_INTERVAL_S = 900
DEFAULT_MAX_DRIFT_S = 60
DEFAULT_SETTLEMENT_WINDOW_INTERVALS = 4

U64_MAX = 2**64 - 1


class ReadingError(ValueError):
    """Register values or an interval that cannot make a valid reading."""


@dataclass(frozen=True)
class ChainRules:
    """What a meter must know about the chain to build readings it will accept."""

    genesis_hash: bytes
    interval_s: int = DEFAULT_INTERVAL_S
    max_drift_s: int = DEFAULT_MAX_DRIFT_S
    settlement_window_intervals: int = DEFAULT_SETTLEMENT_WINDOW_INTERVALS

    def interval_start(self, t: float) -> int:
        """Start of the interval containing chain time t."""
        s = int(t)
        return s - s % self.interval_s

    def last_ended_interval(self, now: float) -> int:
        """Start of the most recent interval that has ended by chain time `now`."""
        return self.interval_start(now) - self.interval_s

    def interval_end(self, interval_start: int) -> int:
        return interval_start + self.interval_s

    def window_end(self, interval_start: int) -> int:
        """First chain time at which a reading for this interval is refused as too late."""
        return interval_start + self.interval_s * (1 + self.settlement_window_intervals)

    def window_open(self, interval_start: int, chain_now: float) -> bool:
        return chain_now < self.window_end(interval_start)

    def may_submit(self, interval_start: int, chain_now: float) -> bool:
        """Whether the chain's time (its best block's timestamp) has passed the interval's end.

        The pallet tolerates `max_drift_s` of early arrival, but nodes of a network disagree on the
        best block for a moment, and a reading refused as early is banned by its exact bytes; so the
        gateway waits for the interval's end itself and leaves the drift allowance as a margin."""
        return chain_now >= self.interval_end(interval_start)


def rules_from_metadata(metadata: dict, genesis_hash: bytes, *, interval_s_option: int | None = None
                        ) -> tuple[ChainRules, list[str]]:
    """The chain's rules from `state_getMetadata`, and notes about any constant that had to fall back.

    `interval_s_option` is the operator's `--interval-s`: used only if the metadata does not publish
    `grid.interval_s`; if it does and they disagree, the option is wrong (ReadingError)."""
    notes: list[str] = []
    consts = {p.get("name"): p.get("constants") or {} for p in metadata.get("pallets", [])}
    interval_s = consts.get("grid", {}).get("interval_s")
    if isinstance(interval_s, int) and interval_s > 0:
        if interval_s_option is not None and interval_s_option != interval_s:
            raise ReadingError(f"--interval-s {interval_s_option} does not match the chain's interval of "
                               f"{interval_s} s (metadata constant grid.interval_s)")
    else:
        interval_s = interval_s_option or DEFAULT_INTERVAL_S
        notes.append(f"the node's metadata has no grid.interval_s; using {interval_s} s "
                     f"({'--interval-s' if interval_s_option else 'the default'})")
    metering = consts.get("metering", {})
    drift = metering.get("max_drift_s")
    window = metering.get("settlement_window_intervals")
    if not isinstance(drift, int):
        drift = DEFAULT_MAX_DRIFT_S
        notes.append(f"the node's metadata has no metering.max_drift_s; assuming {drift} s")
    if not isinstance(window, int):
        window = DEFAULT_SETTLEMENT_WINDOW_INTERVALS
        notes.append(f"the node's metadata has no metering.settlement_window_intervals; assuming {window}")
    return ChainRules(genesis_hash, interval_s, drift, window), notes


def build_reading(meter: bytes, seq: int, interval_start: int, import_wh: int, export_wh: int,
                  interval_s: int) -> Reading:
    """A reading, checked for what the chain would refuse on its face (range, grid alignment)."""
    if len(meter) != 32:
        raise ReadingError("a meter id is a 32-byte ed25519 public key")
    for name, v in (("seq", seq), ("interval_start", interval_start), ("import_wh", import_wh),
                    ("export_wh", export_wh)):
        if type(v) is not int or not 0 <= v <= U64_MAX:
            raise ReadingError(f"{name} must be an integer in 0..2^64-1, got {v!r}")
    if seq == 0:
        raise ReadingError("seq starts at 1")
    if interval_start % interval_s:
        raise ReadingError(f"interval start {interval_start} is not on the {interval_s} s grid")
    return Reading(meter, seq, interval_start, import_wh, export_wh)


def sign(keypair: Keypair, reading: Reading, genesis_hash: bytes) -> bytes:
    """The signed reading's canonical bytes (what the spool keeps and the extrinsic carries)."""
    return sign_reading(keypair, reading, genesis_hash).encode()


class ReadingExtrinsics:
    """Wraps signed readings in the unsigned extrinsic `metering.submit_reading(signed)`.

    The call indices come from the metadata (via `rpc.client.call_from_metadata`, never hard-coded).
    The argument is the signed reading itself, whose canonical msgpack is exactly the spooled bytes,
    so the extrinsic is `msgpack [1, nil, [pallet, call, [<signed bytes>]]]` assembled around them
    without decoding: a gateway wraps ten thousand readings an interval."""

    def __init__(self, metadata: dict) -> None:
        probe = call_from_metadata(metadata, "metering", "submit_reading", [[b"\0" * 32, 1, 0, 0, 0]])
        self.pallet_index, self.call_index = probe.pallet_index, probe.call_index
        # [1, nil, [p, c, [arg]]]: fixarray(3), 1, nil, fixarray(3), p, c, fixarray(1)
        self._prefix = (b"\x93\x01\xc0\x93" + codec.pack(self.pallet_index) + codec.pack(self.call_index)
                        + b"\x91")

    def wrap(self, signed_bytes: bytes) -> bytes:
        return self._prefix + signed_bytes


def submit_reading_extrinsic(metadata: dict, signed_bytes: bytes) -> bytes:
    """The unsigned extrinsic for one signed reading, built the long way (decode, call from
    metadata, encode): the reference `ReadingExtrinsics.wrap` is tested against."""
    signed = SignedReading.decode(signed_bytes)
    call = call_from_metadata(metadata, "metering", "submit_reading", [signed.to_plain()])
    return Extrinsic(call).encode()
