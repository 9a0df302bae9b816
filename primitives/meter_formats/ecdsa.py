"""ECDSA for field meters' records: public keys as meters publish them, strict signature
encodings, and the check itself, all through `cryptography` (OpenSSL): no curve arithmetic here.

Keys come as a DER SubjectPublicKeyInfo with a named curve, as a SEC1 point (compressed or
uncompressed) with the curve named beside it, or as raw X||Y (how EDL40 meters print them). Each is
taken only in its canonical form: a DER key must re-encode to the same bytes, a point must be on the
curve. Signatures come as DER `ECDSA-Sig-Value` (canonical DER only: a meter whose firmware pads
its integers is refused, as OpenSSL refuses it) or as fixed-width r||s.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from primitives.meter_formats.record import CURVES, MeterRecord, MeterRecordError

_CURVE_CLASSES: dict[str, type[ec.EllipticCurve]] = {
    "secp192r1": ec.SECP192R1,
    "secp256r1": ec.SECP256R1,
    "secp256k1": ec.SECP256K1,
    "brainpoolP256r1": ec.BrainpoolP256R1,
    "secp384r1": ec.SECP384R1,
    "brainpoolP384r1": ec.BrainpoolP384R1,
}
assert tuple(_CURVE_CLASSES) == CURVES

#: Field size in bytes per curve: the width of X, Y, r and s.
CURVE_BYTES = {"secp192r1": 24, "secp256r1": 32, "secp256k1": 32, "brainpoolP256r1": 32,
               "secp384r1": 48, "brainpoolP384r1": 48}

#: Order n of each curve's base point (from the curves' standard parameters, as OpenSSL prints them
#: with `openssl ecparam -param_enc explicit -text`): r and s of a signature lie in [1, n-1].
CURVE_ORDERS = {
    "secp192r1": 0xffffffffffffffffffffffff99def836146bc9b1b4d22831,
    "secp256r1": 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551,
    "secp256k1": 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141,
    "brainpoolP256r1": 0xa9fb57dba1eea9bc3e660a909d838d718c397aa3b561a6f7901e0e82974856a7,
    "secp384r1": 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973,
    "brainpoolP384r1": 0x8cb91e82a3386d280f5d6f7e50e641df152f7109ed5456b31f166e6cac0425a7cf3ab6af6b7fc3103b883202e9046565,
}

_HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384}


@dataclass(frozen=True)
class MeterPublicKey:
    """A meter's ECDSA public key: its curve and its uncompressed SEC1 point (04 || X || Y)."""

    curve: str
    sec1: bytes

    @cached_property
    def _key(self) -> ec.EllipticCurvePublicKey:
        return ec.EllipticCurvePublicKey.from_encoded_point(_CURVE_CLASSES[self.curve](), self.sec1)

    def der(self) -> bytes:
        """The key as a DER SubjectPublicKeyInfo."""
        return self._key.public_bytes(serialization.Encoding.DER,
                                      serialization.PublicFormat.SubjectPublicKeyInfo)

    def verify(self, record: MeterRecord) -> None:
        """Check the record's signature with this key; MeterRecordError if it does not hold."""
        verify_record(record, self)


def curve_name(name: str) -> str:
    """The canonical name of a curve as formats spell it (case-insensitive; `prime256v1`,
    `P-256`, `brainpool256r1` and the like accepted). MeterRecordError for anything else."""
    key = name.strip().lower().replace("-", "").replace("_", "")
    aliases = {"p256": "secp256r1", "prime256v1": "secp256r1", "nistp256": "secp256r1",
               "p384": "secp384r1", "nistp384": "secp384r1", "p192": "secp192r1",
               "prime192v1": "secp192r1", "nistp192": "secp192r1",
               "brainpool256r1": "brainpoolP256r1", "brainpool384r1": "brainpoolP384r1"}
    key = aliases.get(key, key)
    for c in CURVES:
        if c.lower() == key:
            return c
    raise MeterRecordError("curve-not-allowed", f"unknown curve {name!r}")


def load_public_key(data: bytes, curve: str | None = None) -> MeterPublicKey:
    """A public key from a DER SubjectPublicKeyInfo (named curve; `curve`, if given, must match),
    or from a SEC1 point or raw X||Y on `curve`. Only canonical encodings of points on the curve."""
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise MeterRecordError("bad-key", "the public key is empty")
    data = bytes(data)
    if curve is None:
        if data[0] == 0x30:
            return _load_der(data, None)
        raise MeterRecordError("bad-key", "a SEC1 or raw public key needs its curve named")
    c = curve_name(curve)
    width = CURVE_BYTES[c]
    # the lengths of a DER key, a SEC1 point and raw X||Y never coincide on one curve, so the
    # length decides (a raw X||Y may well begin with 0x30, the DER SEQUENCE tag)
    if len(data) not in (2 * width, 1 + 2 * width, 1 + width):
        return _load_der(data, curve)
    if len(data) == 2 * width:
        data = b"\x04" + data                       # raw X || Y
    ok_shape = (len(data) == 1 + 2 * width and data[0] == 0x04) or \
               (len(data) == 1 + width and data[0] in (0x02, 0x03))
    if not ok_shape:
        raise MeterRecordError("bad-key", f"{len(data)} bytes is not a {c} point (SEC1 or raw X||Y)")
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(_CURVE_CLASSES[c](), data)
    except ValueError:
        raise MeterRecordError("bad-key", f"the public key is not a point on {c}") from None
    return MeterPublicKey(c, key.public_bytes(serialization.Encoding.X962,
                                              serialization.PublicFormat.UncompressedPoint))


def _load_der(data: bytes, curve: str | None) -> MeterPublicKey:
    try:
        key = serialization.load_der_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise MeterRecordError("bad-key", "the public key is not a valid DER SubjectPublicKeyInfo "
                                          "on a named curve") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise MeterRecordError("bad-key", "the public key is not an elliptic-curve key")
    if key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != data:
        raise MeterRecordError("bad-key", "the DER public key is not in canonical form")
    c = curve_name(key.curve.name)
    if curve is not None and curve_name(curve) != c:
        raise MeterRecordError("key-mismatch", f"the key is on {c}, not {curve_name(curve)}")
    return MeterPublicKey(c, key.public_bytes(serialization.Encoding.X962,
                                              serialization.PublicFormat.UncompressedPoint))


def signature_from_der(data: bytes) -> tuple[int, int]:
    """(r, s) from a DER ECDSA-Sig-Value; only canonical DER (minimal positive INTEGERs)."""
    try:
        r, s = utils.decode_dss_signature(bytes(data))
    except ValueError:
        raise MeterRecordError("bad-signature-encoding", "the signature is not valid DER") from None
    if r <= 0 or s <= 0 or utils.encode_dss_signature(r, s) != bytes(data):
        raise MeterRecordError("bad-signature-encoding", "the DER signature is not in canonical form")
    return r, s


def signature_from_raw(data: bytes, width: int) -> tuple[int, int]:
    """(r, s) from r || s, each `width` bytes big-endian."""
    if len(data) != 2 * width:
        raise MeterRecordError("bad-signature-encoding",
                               f"a raw signature here is {2 * width} bytes (r || s), not {len(data)}")
    r, s = int.from_bytes(data[:width], "big"), int.from_bytes(data[width:], "big")
    if r == 0 or s == 0:
        raise MeterRecordError("bad-signature-encoding", "r and s must not be zero")
    return r, s


def check_signature_range(signature: tuple[int, int], curve: str) -> None:
    """r and s must both lie in [1, n-1] for `curve`: anything else is a malformed signature
    ("bad-signature-encoding"), not merely one that fails the check."""
    n = CURVE_ORDERS[curve]
    r, s = signature
    if not (0 < r < n and 0 < s < n):
        raise MeterRecordError("bad-signature-encoding", f"r and s must lie in [1, n-1] for {curve}")


def verify_record(record: MeterRecord, key: MeterPublicKey) -> None:
    """The ECDSA check of `record` under `key`. The record's declared curve must be the key's;
    raises MeterRecordError ("key-mismatch", "unsupported", "bad-signature") if it does not hold."""
    if record.curve and record.curve != key.curve:
        raise MeterRecordError("key-mismatch",
                               f"the record is signed on {record.curve} but the key is on {key.curve}")
    hash_cls = _HASHES.get(record.hash)
    if hash_cls is None:
        raise MeterRecordError("unsupported", f"unsupported hash {record.hash!r}")
    check_signature_range(record.signature, key.curve)
    r, s = record.signature
    try:
        key._key.verify(utils.encode_dss_signature(r, s), record.signed_data, ec.ECDSA(hash_cls()))
    except (InvalidSignature, ValueError):
        raise MeterRecordError("bad-signature", "the signature does not verify with the meter's key") from None


# ------------------------------------------------------------------------------------------
# the batch form: what the node's signature workers receive for a field meter's record
# ------------------------------------------------------------------------------------------

def signature_der(signature: tuple[int, int]) -> bytes:
    """(r, s) as a DER ECDSA-Sig-Value: how a record's signature travels to the node's workers."""
    return utils.encode_dss_signature(*signature)


def check_scheme(curve: str, hash_name: str) -> str:
    """The `scheme` of a batched signature check of a record on `curve` with `hash_name`."""
    return f"ecdsa-{curve}-{hash_name}"


_KEY_CACHE: dict[tuple[str, bytes], ec.EllipticCurvePublicKey] = {}
_KEY_CACHE_MAX = 65536


def verify_check(scheme: str, public_key: bytes, signature_der: bytes, message: bytes) -> bool:
    """The ECDSA check a pallet handed to the node's worker batch (`check_scheme`): the public key
    as an uncompressed SEC1 point, the signature as DER. False for anything malformed."""
    parts = scheme.split("-")
    if len(parts) != 3 or parts[0] != "ecdsa" or parts[1] not in _CURVE_CLASSES or parts[2] not in _HASHES:
        return False
    curve, hash_cls = parts[1], _HASHES[parts[2]]
    key = _KEY_CACHE.get((curve, public_key))
    try:
        if key is None:
            key = ec.EllipticCurvePublicKey.from_encoded_point(_CURVE_CLASSES[curve](), public_key)
            if len(_KEY_CACHE) >= _KEY_CACHE_MAX:
                _KEY_CACHE.clear()
            _KEY_CACHE[(curve, public_key)] = key
        key.verify(signature_der, message, ec.ECDSA(hash_cls()))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
