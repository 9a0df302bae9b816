"""Canonical msgpack: the one wire and storage encoding of gridchain.

Everything that is hashed or signed must have exactly one encoding, or two honest nodes could
disagree on a hash. So: structs are msgpack arrays in a fixed field order, bytes are `bin`, text is
`str`, integers only (no floats anywhere), maps only with keys in sorted order. Decoding is strict:
it rejects trailing bytes, oversize input, wrong types, out-of-range integers, and any encoding that
would not re-encode to the same bytes (for example an integer in a wider format than needed).

Types are small objects (`U64`, `H256`, `ListOf(...)`) used as annotations on `@struct` classes; the
same objects describe call arguments and storage values, which is also what the runtime metadata
publishes, so a client can build any call from the metadata alone.
"""
from __future__ import annotations

import abc
import dataclasses
import sys
from typing import Any, ClassVar, Iterable

import msgpack

#: Upper bound on any single decoded object unless a caller asks for less. Blocks are bounded by
#: their own limit (see runtime config); this is only the outer safety net.
MAX_DECODE_BYTES = 16 * 1024 * 1024

#: Deepest nesting of arrays and maps any decoded value may have (the outermost value is level 1).
#: The codec enforces it itself, before msgpack builds anything: msgpack's C extension and its
#: pure-Python fallback stop at different depths (about 1,024 and 1,000 less the caller's stack),
#: so leaving the limit to them would let two honest nodes disagree about one block.
MAX_NESTING_DEPTH = 32


class CodecError(ValueError):
    """The input is not a valid canonical encoding of the expected type."""


# --------------------------------------------------------------------------------------------
# raw canonical encode / decode
# --------------------------------------------------------------------------------------------

def pack(obj: Any) -> bytes:
    """Encode plain data (ints, bytes, str, bool, None, lists, str/int-keyed dicts) canonically."""
    return msgpack.packb(_canonical(obj), use_bin_type=True)


def _canonical(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _canonical(obj[k]) for k in sorted(obj)}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, float):
        raise CodecError("floats are not allowed in canonical encoding")
    return obj


def unpack(data: bytes, max_size: int = MAX_DECODE_BYTES, *, typed: bool = False) -> Any:
    """Decode canonical msgpack; reject trailing bytes, oversize input and non-canonical forms.

    `typed=True` is for callers that check every field's type afterwards (extrinsics, structs):
    their type checks already refuse floats and maps, so the generic scan for them is skipped.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_size:
        raise CodecError(f"input of {len(data)} bytes exceeds the limit of {max_size}")
    check_structure(data)
    try:
        obj = msgpack.unpackb(
            data, raw=False, use_list=True, strict_map_key=False,
            max_bin_len=max_size, max_str_len=max_size, max_array_len=max_size,
            max_map_len=max_size, max_ext_len=0,
        )
    except msgpack.ExtraData:
        raise CodecError("trailing bytes after the encoded value") from None
    except (ValueError, msgpack.UnpackException, TypeError, UnicodeDecodeError) as e:
        raise CodecError(f"malformed msgpack: {e}") from None
    if not typed:
        _reject_floats_and_unsorted(obj)
    if msgpack.packb(obj, use_bin_type=True) != bytes(data):
        raise CodecError("non-canonical encoding")
    return obj


# What each leading byte of a msgpack value is, for `check_structure`:
# (kind, header bytes, width of the big-endian length or count that follows the type byte).
_SCALAR, _BLOB, _ARRAY, _MAP, _FORBIDDEN = range(5)


def _layout_table() -> tuple[tuple[int, int, int], ...]:
    table: list[tuple[int, int, int]] = [(_FORBIDDEN, 0, 0)] * 256
    for b in range(0x00, 0x80):
        table[b] = (_SCALAR, 1, 0)                     # positive fixint
    for b in range(0xE0, 0x100):
        table[b] = (_SCALAR, 1, 0)                     # negative fixint
    for b in range(0x80, 0x90):
        table[b] = (_MAP, 1, 0)                        # fixmap, count in the low 4 bits
    for b in range(0x90, 0xA0):
        table[b] = (_ARRAY, 1, 0)                      # fixarray, count in the low 4 bits
    for b in range(0xA0, 0xC0):
        table[b] = (_BLOB, 1, 0)                       # fixstr, length in the low 5 bits
    for b in (0xC0, 0xC2, 0xC3):
        table[b] = (_SCALAR, 1, 0)                     # nil, false, true
    for b, width in ((0xC4, 1), (0xC5, 2), (0xC6, 4), (0xD9, 1), (0xDA, 2), (0xDB, 4)):
        table[b] = (_BLOB, 1 + width, width)           # bin 8/16/32, str 8/16/32
    for b, size in ((0xCC, 2), (0xCD, 3), (0xCE, 5), (0xCF, 9), (0xD0, 2), (0xD1, 3), (0xD2, 5), (0xD3, 9)):
        table[b] = (_SCALAR, size, 0)                  # uint and int 8/16/32/64
    table[0xDC], table[0xDD] = (_ARRAY, 3, 2), (_ARRAY, 5, 4)
    table[0xDE], table[0xDF] = (_MAP, 3, 2), (_MAP, 5, 4)
    # left forbidden: 0xC1 (never used), float 32/64 (0xCA, 0xCB), every ext type (0xC7-0xC9, 0xD4-0xD8)
    return tuple(table)


_LAYOUT = _layout_table()
_FORBIDDEN_NAMES = {0xC1: "the reserved byte", 0xCA: "a float", 0xCB: "a float"}


def check_structure(data: bytes, max_depth: int = MAX_NESTING_DEPTH) -> None:
    """Walk msgpack's headers without building anything and refuse what the codec never accepts:
    nesting deeper than `max_depth`, floats, ext types, the reserved byte, a length or count that
    runs past the input, and trailing bytes.

    This runs before msgpack decodes, without recursion, so the verdict on any input is the codec's
    own and the same under msgpack's C extension and its pure-Python fallback, whatever the
    caller's stack depth. Blobs are skipped by their length, so the cost is one step per value.
    """
    view = data if type(data) is bytes else bytes(data)
    end = len(view)
    pos = 0
    remaining = [1]                 # values still to read at each open nesting level
    layout = _LAYOUT
    while remaining:
        if remaining[-1] == 0:
            remaining.pop()
            continue
        remaining[-1] -= 1
        if pos >= end:
            raise CodecError("truncated input")
        b = view[pos]
        kind, header, width = layout[b]
        if kind == _SCALAR:
            pos += header
            continue
        if kind == _FORBIDDEN:
            what = _FORBIDDEN_NAMES.get(b, "an ext type")
            raise CodecError(f"{what} (0x{b:02x}) is not allowed in canonical encoding")
        if width:
            if pos + header > end:
                raise CodecError("truncated input")
            n = int.from_bytes(view[pos + 1:pos + header], "big") if width > 1 else view[pos + 1]
        else:
            n = b & (0x1F if kind == _BLOB else 0x0F)
        pos += header
        if kind == _BLOB:
            pos += n
            continue
        if len(remaining) > max_depth:
            raise CodecError(f"nested deeper than {max_depth} levels")
        if n:
            # a count is a promise of at least one byte per value: refuse early one the input cannot keep
            if pos + n > end:
                raise CodecError("truncated input")
            remaining.append(n * 2 if kind == _MAP else n)
    if pos > end:
        raise CodecError("truncated input")
    if pos != end:
        raise CodecError("trailing bytes after the encoded value")


def _reject_floats_and_unsorted(obj: Any) -> None:
    if isinstance(obj, float):
        raise CodecError("floats are not allowed")
    if isinstance(obj, list):
        for v in obj:
            _reject_floats_and_unsorted(v)
    elif isinstance(obj, dict):
        keys = list(obj)
        try:
            ordered = keys == sorted(keys)
        except TypeError:
            raise CodecError("map keys of mixed types") from None
        if not ordered:
            raise CodecError("map keys are not in sorted order")
        for v in obj.values():
            _reject_floats_and_unsorted(v)


# --------------------------------------------------------------------------------------------
# types
# --------------------------------------------------------------------------------------------

class Type(abc.ABC):
    """A codec type: turns a Python value into plain msgpack data and back, checking as it goes."""

    name: str = "?"

    @abc.abstractmethod
    def to_plain(self, value: Any) -> Any:
        """Check `value` and return its plain msgpack form."""

    @abc.abstractmethod
    def from_plain(self, plain: Any) -> Any:
        """Check decoded msgpack data and return the Python value."""

    def describe(self) -> Any:
        """JSON-friendly description for runtime metadata."""
        return self.name

    def encode(self, value: Any) -> bytes:
        return msgpack.packb(self.to_plain(value), use_bin_type=True)

    def decode(self, data: bytes, max_size: int = MAX_DECODE_BYTES) -> Any:
        return self.from_plain(unpack(data, max_size, typed=not isinstance(self, Raw)))

    def __repr__(self) -> str:
        return self.name


class UInt(Type):
    def __init__(self, bits: int) -> None:
        self.bits = bits
        self.max = (1 << bits) - 1
        self.name = f"u{bits}"

    def to_plain(self, value: Any) -> int:
        return self.from_plain(value)

    def from_plain(self, plain: Any) -> int:
        if type(plain) is not int:
            raise CodecError(f"expected {self.name}, got {type(plain).__name__}")
        if plain < 0 or plain > self.max:
            raise CodecError(f"{plain} is out of range for {self.name}")
        return plain


class BigUInt(Type):
    """An unsigned integer wider than 64 bits, carried as big-endian bytes (msgpack stops at 64)."""

    def __init__(self, bits: int) -> None:
        self.bits = bits
        self.max = (1 << bits) - 1
        self.nbytes = bits // 8
        self.name = f"u{bits}"

    def to_plain(self, value: Any) -> bytes:
        if type(value) is not int or value < 0 or value > self.max:
            raise CodecError(f"{value!r} is not a valid {self.name}")
        return value.to_bytes(self.nbytes, "big")

    def from_plain(self, plain: Any) -> int:
        if type(plain) is not bytes or len(plain) != self.nbytes:
            raise CodecError(f"expected {self.name} as {self.nbytes} big-endian bytes")
        return int.from_bytes(plain, "big")


class Bool(Type):
    name = "bool"

    def to_plain(self, value: Any) -> bool:
        return self.from_plain(value)

    def from_plain(self, plain: Any) -> bool:
        if type(plain) is not bool:
            raise CodecError(f"expected bool, got {type(plain).__name__}")
        return plain


class Bytes(Type):
    """Byte string, of a fixed length or bounded by max_len.

    `name` renames a fixed-length one in metadata without changing its encoding: an account is
    32 bytes like a hash, but the metadata calls it "AccountId" so clients can tell the two apart."""

    def __init__(self, length: int | None = None, max_len: int = MAX_DECODE_BYTES,
                 name: str | None = None) -> None:
        self.length = length
        self.max_len = max_len
        self.name = name or (f"[u8; {length}]" if length is not None else "bytes")

    def to_plain(self, value: Any) -> bytes:
        if isinstance(value, (bytearray, memoryview)):
            value = bytes(value)
        return self.from_plain(value)

    def from_plain(self, plain: Any) -> bytes:
        if type(plain) is not bytes:
            raise CodecError(f"expected {self.name}, got {type(plain).__name__}")
        if self.length is not None and len(plain) != self.length:
            raise CodecError(f"expected {self.length} bytes, got {len(plain)}")
        if len(plain) > self.max_len:
            raise CodecError(f"{len(plain)} bytes exceeds the limit of {self.max_len}")
        return plain

    def describe(self) -> Any:
        if self.length is not None:
            return self.name
        return {"bytes": {"maxLen": self.max_len}}


class Text(Type):
    def __init__(self, max_len: int = 256) -> None:
        self.max_len = max_len
        self.name = "str"

    def to_plain(self, value: Any) -> str:
        return self.from_plain(value)

    def from_plain(self, plain: Any) -> str:
        if type(plain) is not str:
            raise CodecError(f"expected str, got {type(plain).__name__}")
        if len(plain.encode()) > self.max_len:
            raise CodecError(f"text longer than {self.max_len} bytes")
        return plain

    def describe(self) -> Any:
        return {"str": {"maxLen": self.max_len}}


class ListOf(Type):
    def __init__(self, item: Any, max_len: int = 65536) -> None:
        self.item = item = as_type(item)
        self.max_len = max_len
        self.name = f"Vec<{item.name}>"

    def to_plain(self, value: Any) -> list:
        if not isinstance(value, (list, tuple)):
            raise CodecError(f"expected a list, got {type(value).__name__}")
        if len(value) > self.max_len:
            raise CodecError(f"list longer than {self.max_len}")
        return [self.item.to_plain(v) for v in value]

    def from_plain(self, plain: Any) -> tuple:
        if type(plain) is not list:
            raise CodecError(f"expected a list, got {type(plain).__name__}")
        if len(plain) > self.max_len:
            raise CodecError(f"list longer than {self.max_len}")
        return tuple(self.item.from_plain(v) for v in plain)

    def describe(self) -> Any:
        return {"vec": describe(self.item), "maxLen": self.max_len}


class Optional(Type):
    """None or a value; encoded as nil or the value itself."""

    def __init__(self, item: Any) -> None:
        self.item = item = as_type(item)
        self.name = f"Option<{item.name}>"

    def to_plain(self, value: Any) -> Any:
        return None if value is None else self.item.to_plain(value)

    def from_plain(self, plain: Any) -> Any:
        return None if plain is None else self.item.from_plain(plain)

    def describe(self) -> Any:
        return {"option": describe(self.item)}


class Tuple(Type):
    def __init__(self, *items: Any) -> None:
        self.items = items = tuple(as_type(i) for i in items)
        self.name = "(" + ", ".join(i.name for i in items) + ")"

    def to_plain(self, value: Any) -> list:
        if not isinstance(value, (list, tuple)) or len(value) != len(self.items):
            raise CodecError(f"expected a {len(self.items)}-tuple")
        return [t.to_plain(v) for t, v in zip(self.items, value)]

    def from_plain(self, plain: Any) -> tuple:
        if type(plain) is not list or len(plain) != len(self.items):
            raise CodecError(f"expected a {len(self.items)}-element array")
        return tuple(t.from_plain(v) for t, v in zip(self.items, plain))

    def describe(self) -> Any:
        return {"tuple": [describe(i) for i in self.items]}


class Raw(Type):
    """Already-plain msgpack data, checked only for canonical form (used for nested calls)."""

    name = "raw"

    def to_plain(self, value: Any) -> Any:
        return value

    def from_plain(self, plain: Any) -> Any:
        return plain


def collect_structs(t: Any, out: dict[str, list[dict]]) -> None:
    """Add every struct reachable from type `t` to `out` (name -> fields), for runtime metadata."""
    if isinstance(t, type) and issubclass(t, Struct):
        t = StructType(t)
    if isinstance(t, StructType):
        if t.name not in out:
            out[t.name] = t.cls.describe_fields()
            for _n, ft in t.cls.FIELDS:
                collect_structs(ft, out)
    elif isinstance(t, (ListOf, Optional)):
        collect_structs(t.item, out)
    elif isinstance(t, Tuple):
        for i in t.items:
            collect_structs(i, out)


def describe(t: Any) -> Any:
    if isinstance(t, StructType):
        return t.name
    if isinstance(t, Type):
        return t.describe()
    if isinstance(t, type) and issubclass(t, Struct):
        return t.__name__
    raise TypeError(f"not a codec type: {t!r}")


# --------------------------------------------------------------------------------------------
# structs
# --------------------------------------------------------------------------------------------

class Struct:
    """Base of `@struct` classes: frozen dataclasses encoded as arrays in field order."""

    FIELDS: ClassVar[tuple[tuple[str, Any], ...]] = ()
    #: (field name, its type's to_plain) pairs, precomputed: structs are encoded on hot paths
    _CONVERTERS: ClassVar[tuple[tuple[str, Any], ...]] = ()
    _DECODERS: ClassVar[tuple[Any, ...]] = ()

    def to_plain(self) -> list:
        return [conv(getattr(self, name)) for name, conv in self._CONVERTERS]

    @classmethod
    def from_plain(cls, plain: Any) -> "Struct":
        if type(plain) is not list or len(plain) != len(cls.FIELDS):
            raise CodecError(f"{cls.__name__}: expected an array of {len(cls.FIELDS)} fields")
        try:
            return cls(*[conv(p) for conv, p in zip(cls._DECODERS, plain)])
        except CodecError:
            pass
        for (name, t), p in zip(cls.FIELDS, plain):   # slow path: name the offending field
            try:
                t.from_plain(p)
            except CodecError as e:
                raise CodecError(f"{cls.__name__}.{name}: {e}") from None
        raise CodecError(f"{cls.__name__}: invalid value")

    def encode(self) -> bytes:
        return msgpack.packb(self.to_plain(), use_bin_type=True)

    @classmethod
    def decode(cls, data: bytes, max_size: int = MAX_DECODE_BYTES) -> Any:
        return cls.from_plain(unpack(data, max_size, typed=True))

    @classmethod
    def describe_fields(cls) -> list[dict]:
        return [{"name": n, "type": describe(t)} for n, t in cls.FIELDS]


class StructType(Type):
    """Adapter so a Struct class can sit wherever a Type is expected."""

    def __init__(self, cls: type[Struct]) -> None:
        self.cls = cls
        self.name = cls.__name__

    def to_plain(self, value: Any) -> Any:
        if not isinstance(value, self.cls):
            raise CodecError(f"expected {self.name}, got {type(value).__name__}")
        return value.to_plain()

    def from_plain(self, plain: Any) -> Any:
        return self.cls.from_plain(plain)


def as_type(t: Any) -> Type:
    """Accept a Type or a Struct class."""
    if isinstance(t, Type):
        return t
    if isinstance(t, type) and issubclass(t, Struct):
        return StructType(t)
    raise TypeError(f"not a codec type: {t!r}")


def struct(cls: type) -> type:
    """Turn an annotated class into a frozen, slotted dataclass with a canonical array encoding.

    Annotations must be codec types (instances of `Type`) or other struct classes, in wire order.
    """
    module_globals = vars(sys.modules[cls.__module__])
    fields = tuple(
        (name, as_type(eval(t, module_globals) if isinstance(t, str) else t))  # noqa: S307 - annotations only
        for name, t in cls.__dict__.get("__annotations__", {}).items()
    )
    ns = dict(cls.__dict__)
    ns.pop("__dict__", None)
    ns.pop("__weakref__", None)
    bases = cls.__bases__ if Struct in cls.__mro__ else (Struct,) + tuple(b for b in cls.__bases__ if b is not object)
    new_cls = type(cls.__name__, bases, ns)
    new_cls.__qualname__ = cls.__qualname__
    new_cls.__module__ = cls.__module__
    new_cls.FIELDS = fields
    new_cls._CONVERTERS = tuple((name, t.to_plain) for name, t in fields)
    new_cls._DECODERS = tuple(t.from_plain for _name, t in fields)
    return dataclasses.dataclass(frozen=True, slots=True)(new_cls)


def field_names(cls: type[Struct]) -> Iterable[str]:
    return (n for n, _ in cls.FIELDS)


# Common types, named as in Substrate where one exists.
U8 = UInt(8)
U16 = UInt(16)
U32 = UInt(32)
U64 = UInt(64)
U128 = BigUInt(128)
BOOL = Bool()
H256 = Bytes(32)
H512 = Bytes(64)
BYTES = Bytes()
TEXT = Text()
