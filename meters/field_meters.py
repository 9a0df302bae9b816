"""Test meters of the kinds installed in the field: each signs its readings in its own format with its
own ECDSA test key, byte for byte as a real meter of that kind sends them.

gridchain accepts the records real meters sign (OCMF from Eichrecht chargers and meters, SML/EDL40
from German smart meters, DLMS/COSEM general-signing from IEC 62056 meters) unchanged. Tests, the demo
and the offline verifier need such records for intervals of their choosing, so each class here is a
meter: given an interval's end and its import and export register totals, `record()` returns the
exact bytes the meter would transmit, and advances the format's own counter (OCMF pagination, SML
pagination, DLMS invoke-id) without gaps.

Keys are test keys only, derived from a label (`gridchain test meter //Bob//ocmf`) so a test or
the demo gets the same meter every run. Never certify one of these keys for real energy.

Register values are integer Wh in and exact out: OCMF carries kWh with 3 decimals (1 Wh steps),
SML carries 0.1 Wh (scaler -1), DLMS carries Wh (scaler 0). No floats anywhere.
"""
from __future__ import annotations

import datetime
import hashlib
import json

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from primitives.meter_formats.ecdsa import CURVE_BYTES

#: Curves an OCMF meter may sign with (the OCMF `SA` values gridchain accepts).
OCMF_CURVES = ("secp256r1", "secp256k1", "brainpoolP256r1", "secp384r1", "brainpoolP384r1")

_CURVE_CLASSES: dict[str, type[ec.EllipticCurve]] = {
    "secp256r1": ec.SECP256R1, "secp256k1": ec.SECP256K1, "brainpoolP256r1": ec.BrainpoolP256R1,
    "secp384r1": ec.SECP384R1, "brainpoolP384r1": ec.BrainpoolP384R1,
}

#: OBIS codes of the two registers every test meter reports: active energy import (A+) and export (A-).
IMPORT_OBIS = "1-0:1.8.0"
EXPORT_OBIS = "1-0:2.8.0"

LABEL_PREFIX = "gridchain test meter "


def derive_test_key(label: str, curve: str) -> ec.EllipticCurvePrivateKey:
    """The test key a label names on `curve`: the private scalar is the first field-width bytes of
    SHA-512(label "#" counter) for the first counter (0, 1, ...) that gives a scalar in [1, n-1].
    (brainpoolP256r1's order is about 0.66 x 2^256, so about a third of the labels need a retry.)"""
    if curve not in _CURVE_CLASSES:
        raise ValueError(f"no test meters on curve {curve!r} (one of {', '.join(_CURVE_CLASSES)})")
    width = CURVE_BYTES[curve]
    for counter in range(1000):
        digest = hashlib.sha512(f"{label}#{counter}".encode()).digest()
        try:
            return ec.derive_private_key(int.from_bytes(digest[:width], "big"), _CURVE_CLASSES[curve]())
        except ValueError:
            continue
    raise AssertionError("unreachable: 1000 scalars out of range")


def _check_registers(import_wh: int, export_wh: int) -> None:
    for name, v in (("import_wh", import_wh), ("export_wh", export_wh)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ValueError(f"{name} must be a non-negative integer number of Wh, not {v!r}")


class _EcdsaTestMeter:
    """What every test meter shares: its key, its public key in the encodings certificates use, and
    the running counter."""

    scheme: str = ""

    def __init__(self, key: ec.EllipticCurvePrivateKey, hash_name: str, counter: int) -> None:
        if counter < 0:
            raise ValueError("the counter starts at 0 or above")
        self._key = key
        self._hash = hashes.SHA384() if hash_name == "sha384" else hashes.SHA256()
        self.counter = counter

    @property
    def curve(self) -> str:
        """The key's curve, as named throughout (secp256r1, brainpoolP256r1, ...)."""
        return {c().name: name for name, c in _CURVE_CLASSES.items()}[self._key.curve.name]

    def public_key_der(self) -> bytes:
        """The public key as a DER SubjectPublicKeyInfo (named curve)."""
        return self._key.public_key().public_bytes(serialization.Encoding.DER,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)

    def public_key_sec1(self) -> bytes:
        """The public key as an uncompressed SEC1 point, 04 || X || Y."""
        return self._key.public_key().public_bytes(serialization.Encoding.X962,
                                                   serialization.PublicFormat.UncompressedPoint)

    def public_key_raw(self) -> bytes:
        """The public key as X || Y (how EDL40 meters print it)."""
        return self.public_key_sec1()[1:]

    def _sign(self, data: bytes) -> tuple[int, int]:
        return utils.decode_dss_signature(self._key.sign(data, ec.ECDSA(self._hash)))

    def _sign_raw(self, data: bytes) -> bytes:
        """r || s, each the curve's field width, big-endian."""
        width = CURVE_BYTES[self.curve]
        r, s = self._sign(data)
        return r.to_bytes(width, "big") + s.to_bytes(width, "big")


# ---------------------------------------------------------------------------------------------
# OCMF
# ---------------------------------------------------------------------------------------------

def ocmf_time(ts: int) -> str:
    """Unix seconds as OCMF writes a time, in UTC and synchronised: `2024-05-01T12:15:00,000+0000 S`."""
    t = datetime.datetime.fromtimestamp(ts, datetime.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + ",000+0000 S"


def kwh_text(wh: int) -> str:
    """Whole Wh as kWh with exactly 3 decimals (exact: 1 Wh = 0.001 kWh): 12345 -> "12.345"."""
    return f"{wh // 1000}.{wh % 1000:03d}"


class OcmfTestMeter(_EcdsaTestMeter):
    """An OCMF meter: `OCMF|{payload}|{signature}` with two register readings per record.

    The payload is compact JSON as chargers emit it: FV 1.0, the gateway's GI/GS/GV, pagination
    PG "T<n>", the meter's vendor and serial (MV/MM/MS), no identification (IS false), and RD with
    import (1-0:1.8.0) and export (1-0:2.8.0) in kWh with 3 decimals, each stamped with the
    interval's end (TM, sync state S) and status G (good). The signature section carries
    SA "ECDSA-<curve>-SHA256" and SD, the DER signature in hex, over the payload bytes exactly as
    emitted. OCMF hashes with SHA-256 on every curve, P-384 and brainpoolP384r1 included.
    """

    scheme = "ocmf"

    def __init__(self, curve: str = "secp256r1", *, uri: str = "//Alice//ocmf",
                 key: ec.EllipticCurvePrivateKey | None = None, serial: str | None = None,
                 pagination: int = 1, rv_as_string: bool = False) -> None:
        """The meter with the test key `gridchain test meter {uri}` on `curve` (or `key`, if given);
        its first record carries pagination `pagination`. `rv_as_string` writes RV as a JSON string
        ("12.345"), as some meters do, instead of a number."""
        if curve not in OCMF_CURVES:
            raise ValueError(f"OCMF test meters sign on {', '.join(OCMF_CURVES)}, not {curve!r}")
        super().__init__(key if key is not None else derive_test_key(LABEL_PREFIX + uri, curve),
                         "sha256", pagination)
        if self.curve != curve:
            raise ValueError(f"the key is on {self.curve}, not {curve}")
        self.rv_as_string = rv_as_string
        self.serial = serial or "GRD" + hashlib.sha256(self.public_key_sec1()).hexdigest()[:13].upper()

    @property
    def meter_id(self) -> str:
        """The meter's serial (OCMF `MS`), how the chain certifies an OCMF meter."""
        return self.serial

    def payload(self, interval_end_ts: int, import_wh: int, export_wh: int, pagination: int) -> str:
        """The OCMF payload text for one reading (what is signed)."""
        _check_registers(import_wh, export_wh)
        tm = ocmf_time(interval_end_ts)

        def rv(wh: int) -> str:
            return json.dumps(kwh_text(wh)) if self.rv_as_string else kwh_text(wh)

        readings = ",".join(
            f'{{"TM":{json.dumps(tm)},"RV":{rv(wh)},"RI":{json.dumps(obis)},"RU":"kWh","RT":"AC","ST":"G"}}'
            for obis, wh in ((IMPORT_OBIS, import_wh), (EXPORT_OBIS, export_wh)))
        head = {"FV": "1.0", "GI": "gridchain test gateway", "GS": self.serial, "GV": "1.0",
                "PG": f"T{pagination}", "MV": "gridchain", "MM": "test meter", "MS": self.serial,
                "MF": "1.0", "IS": False}
        return json.dumps(head, separators=(",", ":"))[:-1] + f',"RD":[{readings}]}}'

    def record(self, interval_end_ts: int, import_wh: int, export_wh: int) -> bytes:
        """The OCMF string for this interval (UTF-8), with the next pagination number."""
        payload = self.payload(interval_end_ts, import_wh, export_wh, self.counter)
        r, s = self._sign(payload.encode())
        sig = {"SA": f"ECDSA-{self.curve}-SHA256", "SD": utils.encode_dss_signature(r, s).hex().upper()}
        self.counter += 1
        return f"OCMF|{payload}|{json.dumps(sig, separators=(',', ':'))}".encode()


# ---------------------------------------------------------------------------------------------
# SML / EDL40
# ---------------------------------------------------------------------------------------------

#: A meter's seconds index counts from its commissioning; the test meters were "commissioned" at
#: 2000-01-01T00:00:00Z, so any interval since then has an index that fits EDL40's 32 bits.
EDL40_COMMISSIONED_AT = 946_684_800


class SmlTestMeter(_EcdsaTestMeter):
    """An EDL40 meter (P-256): an SML file (OpenRes, GetList.Res, CloseRes) per reading, signed by
    the list signature over the 320-byte EDL40 block, as `primitives/meter_formats/sml.py` encodes
    and parses it.

    EDL40 signs exactly one register, the import register 1-0:1.17.0 in 0.1 Wh (scaler -1), so this
    is an import-only meter: `record()` refuses any export other than 0, rather than send an export
    value the signature does not cover. Its time is the interval's end, sent as a localTimestamp
    with the meter's offset (`local_offset_min`, CET by default; the block holds local time, the
    parser gives UTC); its pagination runs without gaps; its seconds index counts from
    EDL40_COMMISSIONED_AT.
    """

    scheme = "sml-edl40"

    def __init__(self, *, uri: str = "//Alice//sml", key: ec.EllipticCurvePrivateKey | None = None,
                 server_id: bytes | None = None, pagination: int = 1, local_offset_min: int = 60,
                 logbook: bytes = b"\x00\x00") -> None:
        """The meter with the test key `gridchain test meter {uri}` on P-256 (or `key`); its server id
        defaults to 0A 01 "GRD" and 5 bytes of the key's hash."""
        super().__init__(key if key is not None else derive_test_key(LABEL_PREFIX + uri, "secp256r1"),
                         "sha256", pagination)
        if self.curve != "secp256r1":
            raise ValueError(f"an EDL40 test meter signs on secp256r1, not {self.curve}")
        self.server_id = server_id or b"\x0a\x01GRD" + hashlib.sha256(self.public_key_sec1()).digest()[:5]
        if len(self.server_id) != 10:
            raise ValueError("an SML server id is 10 bytes")
        self.local_offset_min = local_offset_min
        self.logbook = logbook

    @classmethod
    def from_uri(cls, uri: str, **kw: object) -> SmlTestMeter:
        """The test meter the label `gridchain test meter {uri}` names, e.g. uri "//Bob//sml"."""
        return cls(uri=uri, **kw)  # type: ignore[arg-type]

    @property
    def meter_id(self) -> str:
        """The server id in lower-case hex, as SML records carry it."""
        return self.server_id.hex()

    def record(self, interval_end_ts: int, import_wh: int, export_wh: int = 0) -> bytes:
        """The SML file for this interval, with the next pagination number."""
        from primitives.meter_formats import sml  # noqa: PLC0415 - the encoder lives with the parser

        _check_registers(import_wh, export_wh)
        if export_wh != 0:
            raise ValueError("an EDL40 meter signs only its import register (1-0:1.17.0); export must be 0")
        seconds_index = interval_end_ts - EDL40_COMMISSIONED_AT
        if not 0 <= seconds_index < 2**32:
            raise ValueError(f"interval end {interval_end_ts} is outside the meter's 32-bit seconds index")
        raw = sml.encode_edl40_file(self.server_id, import_wh * 10, -1, interval_end_ts, self.local_offset_min,
                                    self.counter, seconds_index, self._sign_raw, logbook=self.logbook,
                                    curve="secp256r1")
        self.counter += 1
        return raw


# ---------------------------------------------------------------------------------------------
# DLMS/COSEM general-signing
# ---------------------------------------------------------------------------------------------

#: DLMS security suite -> (curve, hash).
DLMS_SUITES = {1: ("secp256r1", "sha256"), 2: ("secp384r1", "sha384")}

#: The COSEM unit code of Wh.
COSEM_WH = 30


def axdr_length(n: int) -> bytes:
    """An A-XDR length in its shortest form: nn, 81 nn or 82 nn nn."""
    if n < 0x80:
        return bytes([n])
    if n < 0x100:
        return bytes([0x81, n])
    if n < 0x10000:
        return b"\x82" + n.to_bytes(2, "big")
    raise ValueError(f"{n} bytes is beyond any record")


def _octets(data: bytes) -> bytes:
    return axdr_length(len(data)) + data


def cosem_date_time(utc: int, local_offset_min: int) -> bytes:
    """The 12-byte COSEM date-time of `utc` as a meter `local_offset_min` ahead of UTC writes it:
    local calendar time, deviation -offset (the Blue Book's: UTC = local + deviation), status 00."""
    t = datetime.datetime.fromtimestamp(utc + 60 * local_offset_min, datetime.UTC)
    return (t.year.to_bytes(2, "big") + bytes([t.month, t.day, t.isoweekday(), t.hour, t.minute, t.second, 0])
            + (-local_offset_min).to_bytes(2, "big", signed=True) + b"\x00")


def _register(obis: bytes, wh: int) -> bytes:
    """structure(3) {logical-name, value (double-long-unsigned, or long64-unsigned above 32 bits),
    scaler-unit {0, Wh}}."""
    value = b"\x06" + wh.to_bytes(4, "big") if wh < 2**32 else b"\x15" + wh.to_bytes(8, "big")
    return b"\x02\x03" + b"\x09\x06" + obis + value + b"\x02\x02" + b"\x0f\x00" + bytes([0x16, COSEM_WH])


class DlmsTestMeter(_EcdsaTestMeter):
    """A DLMS/COSEM meter pushing its registers as a data-notification inside a general-signing APDU
    (IEC 62056-5-3), in the register-push layout `primitives/meter_formats/dlms.py` defines.

    Suite 1 signs with P-256 and SHA-256, suite 2 with P-384 and SHA-384; the signature is r||s.
    Each push carries the capture time (the interval's end, local time with the meter's deviation)
    and two registers in Wh (scaler 0): 1-0:1.8.0 import and 1-0:2.8.0 export. The invoke id (24
    bits) is the meter's counter and rises by one per push. The APDU's header: the counter as a
    4-byte transaction-id, the meter's own system title as originator (its id), and no recipient,
    date-time or other information (a push is for whoever receives it).
    """

    scheme = "dlms-general-signing"

    def __init__(self, suite: int = 1, *, uri: str = "//Alice//dlms", key: ec.EllipticCurvePrivateKey | None = None,
                 system_title: bytes | None = None, invoke_id: int = 1, local_offset_min: int = 60) -> None:
        """The meter of security suite `suite` with the test key `gridchain test meter {uri}` (or
        `key`); its system title defaults to "GRD" and 5 bytes of the key's hash."""
        if suite not in DLMS_SUITES:
            raise ValueError(f"DLMS security suites 1 and 2 sign, not {suite!r}")
        curve, hash_name = DLMS_SUITES[suite]
        super().__init__(key if key is not None else derive_test_key(LABEL_PREFIX + uri, curve), hash_name,
                         invoke_id)
        if self.curve != curve:
            raise ValueError(f"a suite {suite} meter signs on {curve}, not {self.curve}")
        self.suite = suite
        self.system_title = system_title or b"GRD" + hashlib.sha256(self.public_key_sec1()).digest()[:5]
        if len(self.system_title) != 8:
            raise ValueError("a DLMS system title is 8 bytes")
        self.local_offset_min = local_offset_min

    @classmethod
    def from_uri(cls, uri: str, suite: int = 1, **kw: object) -> DlmsTestMeter:
        """The test meter the label `gridchain test meter {uri}` names, e.g. uri "//Bob//dlms"."""
        return cls(suite, uri=uri, **kw)  # type: ignore[arg-type]

    @property
    def meter_id(self) -> str:
        """The originator system title in lower-case hex, as the APDU carries it."""
        return self.system_title.hex()

    def content(self, interval_end_ts: int, import_wh: int, export_wh: int, invoke_id: int) -> bytes:
        """The data-notification (the signed content) for one push."""
        _check_registers(import_wh, export_wh)
        if not 0 <= invoke_id < 2**24:
            raise ValueError(f"invoke id {invoke_id} does not fit DLMS's 24 bits")
        if not max(import_wh, export_wh) < 2**64:
            raise ValueError("a register beyond 64 bits")
        body = (b"\x02\x02" + b"\x09\x0c" + cosem_date_time(interval_end_ts, self.local_offset_min)
                + b"\x01\x02" + _register(bytes.fromhex("0100010800ff"), import_wh)
                + _register(bytes.fromhex("0100020800ff"), export_wh))
        return b"\x0f" + invoke_id.to_bytes(4, "big") + b"\x00" + body

    def record(self, interval_end_ts: int, import_wh: int, export_wh: int) -> bytes:
        """The general-signing APDU for this interval, with the next invoke id."""
        content = self.content(interval_end_ts, import_wh, export_wh, self.counter)
        header = (_octets(self.counter.to_bytes(4, "big")) + _octets(self.system_title) + _octets(b"")
                  + _octets(b"") + _octets(b""))
        signature = self._sign_raw(header + content)
        self.counter += 1
        return b"\xdf" + header + _octets(content) + _octets(signature)
