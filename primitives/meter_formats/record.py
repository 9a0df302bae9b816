"""What every field meter's signed record comes down to, whatever its format.

Meters already installed in homes and chargers sign their own formats (OCMF, SML/EDL40, DLMS/COSEM
general-signing) with ECDSA. Each format module parses the bytes exactly as the meter sent them,
strictly and deterministically, into a `MeterRecord`: the bytes the signature covers, the signature,
the curve and hash the format declares, the meter's identity as the format carries it, and the
register values, exact (a mantissa and a power of ten, never a float). The runtime and the offline
verifier (`gridchain meter verify`) both use these parsers, so the chain and a consumer reach the same
verdict on the same bytes.

Pure: no clock, no floats, no I/O. Everything a parser refuses is a `MeterRecordError` with a short
machine-readable `code` and a sentence.
"""
from __future__ import annotations

from dataclasses import dataclass, field

#: Largest record any parser accepts, in bytes (an OCMF string with a few readings is ~1 KB; an SML
#: file with one GetList.Res ~0.5 KB; a DLMS general-signing APDU with a data-notification ~0.3 KB).
MAX_RECORD_BYTES = 8192

#: Curve names as used throughout (OpenSSL/SEC spelling, brainpool as in RFC 5639).
CURVES = ("secp192r1", "secp256r1", "secp256k1", "brainpoolP256r1", "secp384r1", "brainpoolP384r1")

#: Hash names.
HASHES = ("sha256", "sha384")


class MeterRecordError(ValueError):
    """A record refused: `code` names the rule (stable, for programs), the message says why (for people).

    Codes: "too-large", "malformed" (does not parse), "integrity" (a checksum or structure rule of
    the format fails), "unsupported" (a valid record of a kind we do not take: algorithm, unit,
    version), "curve-not-allowed", "bad-key" (public key malformed, not canonical, not on the
    curve), "key-mismatch" (the key's curve is not the record's), "bad-signature-encoding"
    (malformed or non-canonical DER, wrong raw length, r or s out of range), "bad-signature"
    (the ECDSA check fails).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class RegisterValue:
    """One register value as the meter signed it: exactly `mantissa` x 10^`exponent` `unit`."""

    obis: str                 # canonical OBIS "A-B:C.D.E" (for example "1-0:1.8.0"), F dropped
    mantissa: int
    exponent: int
    unit: str                 # "Wh", "kWh", "varh", ... as the format names it
    time: int | None = None   # unix seconds (UTC) of this value, if the format gives one
    status: int | None = None
    label: str = ""           # the format's own tag for the value (OCMF TX "B"/"E"; SML list name)


@dataclass(frozen=True)
class MeterRecord:
    """A parsed, not yet verified, signed meter record."""

    format: str               # "ocmf" | "sml-edl40" | "edl40-xml" | "isa-edl40p-sml" | "dlms-general-signing"
    meter_id: str             # the meter's identity as the format carries it: OCMF MS (serial),
                              # SML server id (hex), DLMS originator system title (hex)
    signed_data: bytes        # exactly the bytes the signature covers
    signature: tuple[int, int]  # (r, s)
    curve: str                # what the record declares (one of CURVES); "" if the key decides
    hash: str                 # one of HASHES
    readings: tuple[RegisterValue, ...]
    counter: int | None = None  # the format's own running counter (OCMF pagination, SML
                                # pagination, DLMS invoke-id), if any
    time: int | None = None     # unix seconds (UTC) the record as a whole refers to, if any
    fields: dict[str, str] = field(default_factory=dict)  # further fields, for display only
