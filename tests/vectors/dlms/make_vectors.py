"""Make the DLMS/COSEM general-signing test vectors in this folder (vectors.json and keys/*.pem).

No public general-signing vectors with a public key and a reusable licence exist, so these are our
own, signed with our own test keys (see README.md). The APDUs are built here byte by byte, apart from
the parser in primitives/meter_formats/dlms.py, and the expected verdicts and error codes are written
by hand, never taken from that parser.

    .venv/bin/python tests/vectors/dlms/make_vectors.py           # sign afresh, write vectors.json
    .venv/bin/python tests/vectors/dlms/make_vectors.py --check   # rebuild with the stored signatures

ECDSA signatures are randomized, so a fresh run gives new signatures (and new APDUs). Everything
else is a function of the stored signatures: `build(signatures)` gives vectors.json again byte for
byte, which tests/test_meter_format_dlms.py checks.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

HERE = Path(__file__).resolve().parent
VECTORS = HERE / "vectors.json"

#: Test keys: name -> (curve, label). The private scalar is the first field-width bytes of
#: SHA-512(label "#" counter) for the first counter (0, 1, ...) that lands in [1, n-1].
KEYS = {
    "suite1-p256": ("secp256r1", "gridchain DLMS test key, security suite 1"),
    "suite2-p384": ("secp384r1", "gridchain DLMS test key, security suite 2"),
    "other-p256": ("secp256r1", "gridchain DLMS test key, another P-256 meter"),
}
_CURVES = {"secp256r1": (ec.SECP256R1, 32, hashes.SHA256), "secp384r1": (ec.SECP384R1, 48, hashes.SHA384)}

#: Group orders n (SEC 2 / FIPS 186-4 parameters, as `openssl ecparam -param_enc explicit -text` prints).
P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551
P384_N = 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973


def derive_test_key(name: str) -> ec.EllipticCurvePrivateKey:
    curve, label = KEYS[name]
    cls, width, _ = _CURVES[curve]
    for counter in range(100):
        scalar = int.from_bytes(hashlib.sha512(f"{label}#{counter}".encode()).digest()[:width], "big")
        try:
            return ec.derive_private_key(scalar, cls())
        except ValueError:
            continue
    raise AssertionError("no scalar in range")


# --- A-XDR encoding, written out ---------------------------------------------------------------

def axdr_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    if n < 0x100:
        return bytes([0x81, n])
    return bytes([0x82]) + n.to_bytes(2, "big")


def ostr(data: bytes) -> bytes:
    return axdr_length(len(data)) + data


def cosem_datetime(y: int, mo: int, d: int, h: int, mi: int, s: int, *, deviation: int, status: int,
                   weekday: bool = True, hundredths: int = 0) -> bytes:
    """12-byte COSEM date-time; `deviation` in minutes, UTC = local + deviation."""
    dow = datetime.date(y, mo, d).isoweekday() if weekday else 0xFF
    return (y.to_bytes(2, "big") + bytes([mo, d, dow, h, mi, s, hundredths])
            + deviation.to_bytes(2, "big", signed=True) + bytes([status]))


def unix_seconds(y: int, mo: int, d: int, h: int, mi: int, s: int, deviation: int) -> int:
    local = datetime.timezone(datetime.timedelta(minutes=-deviation))
    return int(datetime.datetime(y, mo, d, h, mi, s, tzinfo=local).timestamp())


#: Value Data types: name -> (tag, bytes).
VALUE_TYPES = {"unsigned": (0x11, 1), "long-unsigned": (0x12, 2), "double-long-unsigned": (0x06, 4),
               "long64-unsigned": (0x15, 8)}
UNIT_NAMES = {27: "W", 30: "Wh", 32: "varh"}


def register(obis: tuple[int, ...], value: int, value_type: str, scaler: int, unit: int) -> bytes:
    tag, size = VALUE_TYPES[value_type]
    return (bytes([0x02, 0x03, 0x09, 0x06]) + bytes(obis) + bytes([tag]) + value.to_bytes(size, "big")
            + bytes([0x02, 0x02, 0x0F]) + scaler.to_bytes(1, "big", signed=True) + bytes([0x16, unit]))


def push_body(capture: bytes, registers: list[bytes]) -> bytes:
    return bytes([0x02, 0x02, 0x09, 0x0C]) + capture + bytes([0x01]) + axdr_length(len(registers)) \
        + b"".join(registers)


def data_notification(liip: int, body: bytes, date_time: bytes = b"") -> bytes:
    return bytes([0x0F]) + liip.to_bytes(4, "big") + ostr(date_time) + body


def header(*, transaction_id: bytes = b"", originator: bytes, recipient: bytes = b"", date_time: bytes = b"",
           other: bytes = b"") -> tuple[bytes, bytes]:
    """(originator system title, the five header fields with their lengths)."""
    return originator, ostr(transaction_id) + ostr(originator) + ostr(recipient) + ostr(date_time) + ostr(other)


def apdu(head: bytes, content: bytes, signature: bytes) -> bytes:
    return bytes([0xDF]) + head + ostr(content) + ostr(signature)


def obis_text(obis: tuple[int, ...]) -> str:
    a, b, c, d, e, f = obis
    return f"{a}-{b}:{c}.{d}.{e}" + ("" if f == 255 else f"*{f}")


# --- the records -------------------------------------------------------------------------------

def _meter(serial: int) -> bytes:
    """A system title: the 3-letter manufacturer id GRD and a 5-byte serial."""
    return b"GRD" + serial.to_bytes(5, "big")


def _record(key: str, head: tuple[bytes, bytes], liip: int, capture: tuple[int, ...], deviation: int, status: int,
            regs: list[tuple[tuple[int, ...], int, str, int, int]], *, notification_time: bytes = b"",
            weekday: bool = True, hundredths: int = 0) -> dict:
    body = push_body(cosem_datetime(*capture, deviation=deviation, status=status, weekday=weekday,
                                    hundredths=hundredths),
                     [register(*r) for r in regs])
    content = data_notification(liip, body, notification_time)
    time = unix_seconds(*capture, deviation)
    originator, head_bytes = head
    return {"key": key, "head": head_bytes, "meter_id": originator.hex(), "content": content, "time": time,
            "invoke_id": liip & 0xFFFFFF,
            "status": None if status == 0xFF else status,
            "readings": [{"obis": obis_text(o), "mantissa": v, "exponent": sc, "unit": UNIT_NAMES[u],
                          "time": time, "status": None if status == 0xFF else status}
                         for o, v, _, sc, u in regs]}


def records() -> dict[str, dict]:
    """The signed messages: name -> key, header, content and what a parser must read from them."""
    two = _record("suite1-p256", header(originator=_meter(12345678)), 1001,
                  (2024, 6, 1, 14, 15, 0), -120, 0x80,        # CEST, daylight saving active
                  [((1, 0, 1, 8, 0, 255), 12_345_678, "long64-unsigned", 0, 30),
                   ((1, 0, 2, 8, 0, 255), 987_654, "double-long-unsigned", 0, 30)])
    six = _record("suite2-p384",
                  header(transaction_id=bytes.fromhex("0102030405060708"), originator=_meter(87654321),
                         recipient=bytes.fromhex("4744530000000001"),
                         date_time=cosem_datetime(2024, 12, 31, 23, 45, 0, deviation=-60, status=0x00)),
                  0xC0ABCDEF,                                  # high priority, confirmed; invoke id 0xABCDEF
                  (2024, 12, 31, 23, 45, 0), 60, 0xFF, [
                      ((1, 0, 1, 8, 0, 255), 123_456_789_012, "long64-unsigned", -1, 30),
                      ((1, 0, 2, 8, 0, 255), 5, "long64-unsigned", -1, 30),
                      ((1, 0, 1, 8, 1, 255), 4_000_000, "double-long-unsigned", 0, 30),
                      ((1, 0, 1, 8, 0, 101), 65_535, "long-unsigned", 3, 30),     # billing period 101
                      ((1, 0, 3, 8, 0, 255), 200, "unsigned", 1, 32),
                      ((1, 0, 1, 7, 0, 255), 4_321, "long-unsigned", 0, 27)],
                  notification_time=cosem_datetime(2025, 1, 1, 0, 0, 1, deviation=-60, status=0x00),
                  weekday=False, hundredths=50)
    twelve = _record("suite1-p256", header(originator=_meter(12345679)), 7, (2025, 3, 30, 1, 59, 59), -60, 0,
                     [((1, 0, c, 8, e, 255), 10_000 * c + e, "long64-unsigned", 0, 30)
                      for c in (1, 2) for e in range(6)])
    # general-glo-ciphering: system title, then security header 0x30, frame counter, ciphertext and tag
    ciphered = {"key": "suite1-p256", "head": header(originator=_meter(12345678))[1],
                "content": bytes([0xDB]) + ostr(_meter(12345678)) + ostr(bytes([0x30]) + (1).to_bytes(4, "big")
                                                                       + bytes(range(24)))}
    return {"suite1-two-registers": two, "suite2-six-registers": six, "suite1-twelve-registers": twelve,
            "suite1-two-registers-other-key": dict(two, key="other-p256"), "suite1-ciphered-content": ciphered}


def messages() -> dict[str, tuple[str, bytes]]:
    """name -> (key name, the bytes the signature covers: header || content)."""
    return {name: (r["key"], r["head"] + r["content"]) for name, r in records().items()}


def sign(name: str) -> bytes:
    key_name, message = messages()[name]
    key = derive_test_key(key_name)
    _, width, digest = _CURVES[KEYS[key_name][0]]
    r, s = utils.decode_dss_signature(key.sign(message, ec.ECDSA(digest())))
    return r.to_bytes(width, "big") + s.to_bytes(width, "big")


# --- the cases ---------------------------------------------------------------------------------

def _flip_last_value_byte(r: dict) -> bytes:
    """The content with the low byte of its first register's value changed (the reading falsified)."""
    content = bytearray(r["content"])
    at = content.index(bytes([0x09, 0x06, 1, 0, 1, 8, 0, 255])) + 8 + 8   # type tag + 8 value bytes
    content[at] ^= 0x01
    return bytes(content)


def build(signatures: dict[str, bytes]) -> dict:
    """vectors.json as a dict, given the signature of each message."""
    recs = records()
    two, six, twelve = recs["suite1-two-registers"], recs["suite2-six-registers"], recs["suite1-twelve-registers"]
    sig1, sig2 = signatures["suite1-two-registers"], signatures["suite2-six-registers"]
    cases: list[dict] = []

    def valid(case_id: str, name: str, suite: int | None, what: str) -> None:
        r = recs[name]
        cases.append({"id": case_id, "description": what, "suite": suite, "public_key": r["key"],
                      "apdu_hex": apdu(r["head"], r["content"], signatures[name]).hex(),
                      "expected_verdict": "valid", "expected_error": None,
                      "signed_data_hex": (r["head"] + r["content"]).hex(), "meter_id": r["meter_id"],
                      "counter": r["invoke_id"],
                      "time": r["time"], "readings": r["readings"]})

    def invalid(case_id: str, what: str, raw: bytes, code: str, suite: int | None = 1,
                key: str = "suite1-p256") -> None:
        cases.append({"id": case_id, "description": what, "suite": suite, "public_key": key,
                      "apdu_hex": raw.hex(), "expected_verdict": "invalid", "expected_error": code})

    valid("dlms-suite1-p256-import-export", "suite1-two-registers", 1,
          "Suite 1 (P-256, SHA-256): import and export registers in Wh, capture time in CEST")
    valid("dlms-suite1-signature-length-decides", "suite1-two-registers", None,
          "The same APDU with no suite named: the 64-byte signature means suite 1")
    valid("dlms-suite2-p384-six-registers", "suite2-six-registers", 2,
          "Suite 2 (P-384, SHA-384): every header field present, six registers of four value types, "
          "scalers -1 to 3, a billing-period register (F = 101), content length in the 81 nn form")
    valid("dlms-suite1-twelve-registers", "suite1-twelve-registers", 1,
          "Suite 1 with twelve registers: content length in the 82 nn nn form")

    head, content = two["head"], two["content"]
    n1 = (P256_N).to_bytes(32, "big")
    invalid("dlms-content-byte-flipped", "One byte of the import register's value changed after signing",
            apdu(head, _flip_last_value_byte(two), sig1), "bad-signature")
    invalid("dlms-signed-by-another-key", "A valid signature by another meter's P-256 key",
            apdu(head, content, signatures["suite1-two-registers-other-key"]), "bad-signature")
    invalid("dlms-signature-63-bytes", "The signature without its last byte", apdu(head, content, sig1[:63]),
            "bad-signature-encoding")
    invalid("dlms-signature-65-bytes", "The signature with a byte appended", apdu(head, content, sig1 + b"\x00"),
            "bad-signature-encoding")
    invalid("dlms-r-zero", "r = 0", apdu(head, content, bytes(32) + sig1[32:]), "bad-signature-encoding")
    invalid("dlms-s-zero", "s = 0", apdu(head, content, sig1[:32] + bytes(32)), "bad-signature-encoding")
    invalid("dlms-r-equals-n", "r = n of P-256", apdu(head, content, n1 + sig1[32:]), "bad-signature-encoding")
    invalid("dlms-s-above-n", "s = 2^256 - 1 > n of P-256", apdu(head, content, sig1[:32] + b"\xff" * 32),
            "bad-signature-encoding")
    invalid("dlms-suite2-s-equals-n", "Suite 2 with s = n of P-384",
            apdu(six["head"], six["content"], sig2[:48] + P384_N.to_bytes(48, "big")), "bad-signature-encoding",
            suite=2, key="suite2-p384")
    invalid("dlms-trailing-byte", "One byte after the signature", apdu(head, content, sig1) + b"\x00", "malformed")
    good = apdu(head, content, sig1)
    invalid("dlms-wrong-axdr-length", "The originator system title's length says 9 instead of 8",
            good[:2] + b"\x09" + good[3:], "malformed")
    invalid("dlms-non-shortest-length", "The originator's length as 81 08 instead of 08",
            good[:2] + b"\x81\x08" + good[3:], "malformed")
    content_at = 1 + len(head)
    invalid("dlms-content-length-one-more", "The content length one more than the content",
            good[:content_at] + bytes([good[content_at] + 1]) + good[content_at + 1:], "malformed")
    invalid("dlms-content-length-one-less", "The content length one less than the content",
            good[:content_at] + bytes([good[content_at] - 1]) + good[content_at + 1:], "malformed")
    invalid("dlms-suite2-signature-to-suite1-meter", "A valid suite 2 APDU (96-byte signature) for a meter "
            "certified with suite 1", apdu(six["head"], six["content"], sig2), "bad-signature-encoding",
            suite=1, key="suite1-p256")
    invalid("dlms-suite1-record-with-p384-key", "A valid suite 1 APDU checked with a P-384 key",
            good, "key-mismatch", suite=None, key="suite2-p384")
    ciphered = recs["suite1-ciphered-content"]
    invalid("dlms-ciphered-content", "A correctly signed general-glo-ciphering content (0xDB): the chain "
            "cannot read its registers", apdu(ciphered["head"], ciphered["content"],
                                              signatures["suite1-ciphered-content"]), "unsupported")

    keys = {}
    for name, (curve, label) in KEYS.items():
        public = derive_test_key(name).public_key()
        keys[name] = {"curve": curve, "label": label, "private_key_file": f"keys/{name}.pem",
                      "public_key_der_hex": public.public_bytes(
                          serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo).hex(),
                      "public_key_sec1_hex": public.public_bytes(
                          serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint).hex()}
    return {
        "about": "DLMS/COSEM general-signing test vectors made by gridchain with its own test keys "
                 "(tests/vectors/dlms/README.md). Test keys only: never certify them for real energy.",
        "keys": keys,
        "signatures": {name: {"key": key, "message_hex": message.hex(), "signature_hex": signatures[name].hex()}
                       for name, (key, message) in messages().items()},
        "cases": cases,
    }


def private_key_pem(name: str) -> bytes:
    return derive_test_key(name).private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())


def dump(document: dict) -> str:
    return json.dumps(document, indent=1) + "\n"


def stored_signatures() -> dict[str, bytes]:
    document = json.loads(VECTORS.read_text(encoding="utf-8"))
    return {name: bytes.fromhex(s["signature_hex"]) for name, s in document["signatures"].items()}


def main(argv: list[str]) -> int:
    if argv[1:] == ["--check"]:
        same = dump(build(stored_signatures())) == VECTORS.read_text(encoding="utf-8")
        print("vectors.json matches" if same else "vectors.json differs from what the stored signatures give")
        return 0 if same else 1
    if argv[1:]:
        print(__doc__)
        return 2
    (HERE / "keys").mkdir(exist_ok=True)
    for name in KEYS:
        (HERE / "keys" / f"{name}.pem").write_bytes(private_key_pem(name))
    VECTORS.write_text(dump(build({name: sign(name) for name in messages()})), encoding="utf-8")
    print(f"wrote {VECTORS} and {len(KEYS)} keys")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
