"""The anatomy of a pallet, without macros.

A pallet module creates one `Pallet` and declares, in this order, what FRAME declares:

    pallet = Pallet("balances", index=3, doc=__doc__)
    class Config: existential_deposit = 0                  # constants fixed at genesis/build
    accounts = pallet.map("accounts", key=AccountId, value=AccountData, default=...)
    @pallet.event
    class Transfer: source: AccountId; dest: AccountId; amount: Balance
    class Error(PalletError): InsufficientBalance = "the sender's free balance is too low"
    pallet.errors(Error)
    @pallet.call(0, weight=W_TRANSFER, origin=SIGNED)
    def transfer(origin, dest: AccountId, amount: Balance) -> None: ...
    @pallet.on_initialize / @pallet.on_finalize / @pallet.genesis

Everything a client needs to build a call (indices, argument names and types, weights, docs) is
read from these declarations into the runtime metadata.
"""
from __future__ import annotations

import dataclasses
import enum
import inspect
from dataclasses import dataclass
from typing import Any, Callable

from primitives.codec import CodecError, Type, as_type, describe, struct
from runtime import storage
from runtime.storage import StorageDoubleMap, StorageMap, StorageValue


# ------------------------------------------------------------------------------------------
# origins
# ------------------------------------------------------------------------------------------

class OriginKind(enum.Enum):
    SIGNED = "signed"
    ROOT = "root"
    NONE = "none"


SIGNED = OriginKind.SIGNED
ROOT = OriginKind.ROOT
NONE = OriginKind.NONE


@dataclass(frozen=True, slots=True)
class Origin:
    kind: OriginKind
    who: bytes | None = None

    @classmethod
    def signed(cls, who: bytes) -> "Origin":
        return cls(OriginKind.SIGNED, who)

    @classmethod
    def root(cls) -> "Origin":
        return cls(OriginKind.ROOT)

    @classmethod
    def none(cls) -> "Origin":
        return cls(OriginKind.NONE)


# ------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ErrorDef:
    """One declared error of a pallet: where it comes from and the sentence a user reads."""

    pallet: str
    pallet_index: int
    index: int
    name: str
    message: str

    def to_json(self) -> dict:
        return {"module": self.pallet, "error": self.name, "message": self.message}


class PalletError:
    """Base of a pallet's `Error` class: each attribute is a sentence; `pallet.errors()` indexes them."""


class DispatchError(Exception):
    """A call failed: its writes roll back, its fee stays paid, and an ExtrinsicFailed event says why."""

    def __init__(self, error: ErrorDef | str) -> None:
        self.error = error
        super().__init__(error.message if isinstance(error, ErrorDef) else error)

    def to_json(self) -> dict:
        if isinstance(self.error, ErrorDef):
            return self.error.to_json()
        return {"module": None, "error": "Other", "message": self.error}

    def to_plain(self) -> list:
        if isinstance(self.error, ErrorDef):
            return [self.error.pallet_index, self.error.index, self.error.message]
        return [255, 0, self.error]


class BadOrigin(DispatchError):
    def __init__(self, message: str = "the call was made by the wrong kind of origin") -> None:
        super().__init__(ErrorDef("system", 0, 254, "BadOrigin", message))


def fail(error: ErrorDef | str) -> Any:
    raise DispatchError(error)


def ensure(condition: Any, error: ErrorDef | str) -> None:
    if not condition:
        raise DispatchError(error)


def ensure_signed(origin: Origin) -> bytes:
    if origin.kind is not OriginKind.SIGNED or origin.who is None:
        raise BadOrigin("this call must be signed by an account")
    return origin.who


def ensure_root(origin: Origin) -> None:
    if origin.kind is not OriginKind.ROOT:
        raise BadOrigin("this call needs the root origin")


def ensure_none(origin: Origin) -> None:
    if origin.kind is not OriginKind.NONE:
        raise BadOrigin("this call must be submitted unsigned")


# ------------------------------------------------------------------------------------------
# events
# ------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class EventRecord:
    """An event as stored: when it happened (phase), which pallet and event, and its fields."""

    phase: list  # [0] initialization | [1, i] applying extrinsic i | [2] finalization
    pallet_index: int
    event_index: int
    data: list


def deposit_event(event: Any) -> None:
    """Record an event for the current phase of the block; dropped if the call rolls back."""
    ov = storage.current()
    cls = type(event)
    ov.events.append([ov.phase, cls._pallet_index, cls._event_index, event.to_plain()])


# ------------------------------------------------------------------------------------------
# calls
# ------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PostInfo:
    """What a call may return: the weight it actually used, if less than declared (refunded)."""

    actual_weight: int | None = None
    pays_fee: bool = True


@dataclass
class CallDef:
    pallet: "Pallet"
    index: int
    name: str
    fn: Callable[..., Any]
    arg_names: tuple[str, ...]
    arg_types: tuple[Type, ...]
    weight: int | Callable[..., int]
    origin: OriginKind
    inherent: bool
    doc: str
    #: the runtime spec_version that introduced the call: a runtime built for an older version
    #: leaves it out of its call table and metadata
    since: int = 1

    def decode_args(self, plain_args: tuple) -> tuple:
        if len(plain_args) != len(self.arg_types):
            raise CodecError(f"{self.pallet.name}.{self.name} takes {len(self.arg_types)} arguments, "
                             f"got {len(plain_args)}")
        out = []
        for name, t, v in zip(self.arg_names, self.arg_types, plain_args):
            try:
                out.append(t.from_plain(v))
            except CodecError as e:
                raise CodecError(f"{self.pallet.name}.{self.name}({name}): {e}") from None
        return tuple(out)

    def weight_of(self, args: tuple) -> int:
        return self.weight(*args) if callable(self.weight) else self.weight

    def describe(self) -> dict:
        return {"name": self.name, "index": self.index,
                "args": [{"name": n, "type": describe(t)} for n, t in zip(self.arg_names, self.arg_types)],
                "origin": self.origin.value,
                "weight": self.weight if isinstance(self.weight, int) else "depends on arguments",
                "inherent": self.inherent, "doc": self.doc}


# ------------------------------------------------------------------------------------------
# the pallet
# ------------------------------------------------------------------------------------------

class Pallet:
    """Declarations of one pallet; the executive reads them, metadata publishes them."""

    def __init__(self, name: str, index: int, doc: str | None = "") -> None:
        self.name = name
        self.index = index
        self.doc = (doc or "").strip()
        self.storage: list[Any] = []
        #: storage item name -> the spec_version that introduced it (absent: 1)
        self.storage_since: dict[str, int] = {}
        self.calls: dict[int, CallDef] = {}
        self.calls_by_name: dict[str, CallDef] = {}
        self.events: list[type] = []
        self.error_defs: list[ErrorDef] = []
        self.constants: dict[str, Any] = {}
        self.hooks_initialize: list[Callable[[int], int]] = []
        self.hooks_finalize: list[Callable[[int], None]] = []
        self.genesis_builder: Callable[[dict], None] | None = None
        self.unsigned_validator: Callable[..., Any] | None = None
        self.unsigned_signature: Callable[..., Any] | None = None

    # storage --------------------------------------------------------------------------
    def value(self, name: str, value: Any, default: Any = None, doc: str = "", since: int = 1) -> StorageValue:
        return self._add_storage(StorageValue(self.name, name, value, default, doc), since)

    def map(self, name: str, key: Any, value: Any, default: Any = None, doc: str = "",
            since: int = 1) -> StorageMap:
        return self._add_storage(StorageMap(self.name, name, key, value, default, doc), since)

    def double_map(self, name: str, key1: Any, key2: Any, value: Any, default: Any = None,
                   doc: str = "", since: int = 1) -> StorageDoubleMap:
        return self._add_storage(StorageDoubleMap(self.name, name, key1, key2, value, default, doc), since)

    def _add_storage(self, item: Any, since: int) -> Any:
        """Declare a storage item; `since` is the spec_version that introduced it (metadata of an
        older runtime version leaves it out)."""
        self.storage.append(item)
        if since != 1:
            self.storage_since[item.name] = since
        return item

    # constants ------------------------------------------------------------------------
    def config(self, cls: type) -> type:
        """Publish a Config class's upper-case-free public attributes as constants."""
        for k, v in vars(cls).items():
            if not k.startswith("_") and isinstance(v, (int, str, bool, bytes)):
                self.constants[k] = v
        return cls

    # events -----------------------------------------------------------------------------
    def event(self, cls: type) -> type:
        new = struct(cls)
        new._pallet_index = self.index
        new._event_index = len(self.events)
        new._pallet_name = self.name
        self.events.append(new)
        return new

    # errors -----------------------------------------------------------------------------
    def errors(self, cls: type) -> type:
        for name, message in vars(cls).items():
            if name.startswith("_") or not isinstance(message, str):
                continue
            d = ErrorDef(self.name, self.index, len(self.error_defs), name, message)
            self.error_defs.append(d)
            setattr(cls, name, d)
        return cls

    # calls ------------------------------------------------------------------------------
    def call(self, index: int, *, weight: int | Callable[..., int], origin: OriginKind = SIGNED,
             inherent: bool = False, since: int = 1) -> Callable[[Callable], Callable]:
        """Declare call `index`; `since` is the runtime spec_version that introduced it (see
        `calls_in`)."""
        def register(fn: Callable) -> Callable:
            params = list(inspect.signature(fn).parameters.values())[1:]  # first is origin
            ann = inspect.get_annotations(fn, eval_str=True)
            names = tuple(p.name for p in params)
            types = tuple(as_type(ann[n]) for n in names)
            if index in self.calls:
                raise ValueError(f"{self.name}: call index {index} used twice")
            cd = CallDef(self, index, fn.__name__, fn, names, types, weight, origin, inherent,
                         inspect.getdoc(fn) or "", since)
            self.calls[index] = cd
            self.calls_by_name[cd.name] = cd
            fn.call_def = cd
            return fn
        return register

    # hooks ------------------------------------------------------------------------------
    def on_initialize(self, fn: Callable[[int], int]) -> Callable[[int], int]:
        """fn(block_number) -> weight used; runs before the block's extrinsics."""
        self.hooks_initialize.append(fn)
        return fn

    def on_finalize(self, fn: Callable[[int], None]) -> Callable[[int], None]:
        """fn(block_number); runs after the block's extrinsics."""
        self.hooks_finalize.append(fn)
        return fn

    def genesis(self, fn: Callable[[dict], None]) -> Callable[[dict], None]:
        """fn(config) writes the pallet's genesis state from its section of the chain spec."""
        self.genesis_builder = fn
        return fn

    def signature_of_unsigned(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """fn(call_def, args) -> SignatureCheck | None: the signature an unsigned call carries (a
        meter's over its reading), so the node verifies it in its worker batch with the signed
        extrinsics' and tells the validator (`signature_ok`) instead of the pallet checking inline."""
        self.unsigned_signature = fn
        return fn

    def validate_unsigned(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """fn(call_def, args, source, signature_ok) -> ValidTransaction, or raise InvalidTransaction.

        signature_ok: True when the node verified the signature named by `signature_of_unsigned`
        already, None when the validator must check it itself."""
        self.unsigned_validator = fn
        return fn

    # runtime versions ---------------------------------------------------------------------
    def calls_in(self, spec_version: int) -> list[CallDef]:
        """The calls a runtime of `spec_version` dispatches (those introduced by then), by index."""
        return [self.calls[i] for i in sorted(self.calls) if self.calls[i].since <= spec_version]

    def storage_in(self, spec_version: int) -> list[Any]:
        """The storage items a runtime of `spec_version` publishes in its metadata."""
        return [s for s in self.storage if self.storage_since.get(s.name, 1) <= spec_version]

    # metadata ---------------------------------------------------------------------------
    def describe(self, spec_version: int | None = None) -> dict:
        """The pallet's metadata as a runtime of `spec_version` has it (None: every declaration).
        Events and errors are not versioned: one added later is listed by older versions too."""
        calls = self.calls_in(spec_version) if spec_version is not None else \
            [self.calls[i] for i in sorted(self.calls)]
        items = self.storage_in(spec_version) if spec_version is not None else self.storage
        return {
            "name": self.name,
            "index": self.index,
            "doc": self.doc,
            "calls": [cd.describe() for cd in calls],
            "storage": [s.describe() for s in items],
            "events": [{"name": e.__name__, "index": e._event_index, "fields": e.describe_fields(),
                        "doc": inspect.getdoc(e) or ""} for e in self.events],
            "errors": [{"name": d.name, "index": d.index, "message": d.message} for d in self.error_defs],
            "constants": {k: (("0x" + v.hex()) if isinstance(v, bytes) else v)
                          for k, v in self.constants.items()},
        }


def event_fields(event: Any) -> dict:
    """An event's fields by name, for JSON output."""
    return {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
