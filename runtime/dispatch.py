"""The call table of the composed runtime, and dispatch of a call with an origin.

Pallets that dispatch nested calls (sudo, later governance) go through here, so a nested call gets
the same decoding, origin check and rollback as a top-level one.
"""
from __future__ import annotations

from typing import Any

from primitives.codec import CodecError
from primitives.extrinsic import Call
from runtime import storage
from runtime.pallet import BadOrigin, CallDef, DispatchError, Origin, OriginKind, Pallet, PostInfo


class CallTable:
    def __init__(self, pallets: list[Pallet]) -> None:
        self.by_index: dict[tuple[int, int], CallDef] = {}
        for p in pallets:
            for cd in p.calls.values():
                self.by_index[(p.index, cd.index)] = cd

    def lookup(self, call: Call) -> CallDef:
        cd = self.by_index.get((call.pallet_index, call.call_index))
        if cd is None:
            raise CodecError(f"no call {call.call_index} in pallet {call.pallet_index}")
        return cd


_table: CallTable | None = None


def install(table: CallTable) -> None:
    """Make `table` the one nested dispatch uses (one runtime per process)."""
    global _table
    _table = table


def _lookup_plain(plain: Any) -> tuple[CallDef, tuple]:
    if _table is None:
        raise RuntimeError("no runtime installed")
    call = Call.from_plain(plain)
    cd = _table.lookup(call)
    return cd, cd.decode_args(call.args)


def weight_of_plain_call(plain: Any) -> int:
    try:
        cd, args = _lookup_plain(plain)
    except CodecError:
        return 0
    return cd.weight_of(args)


def check_origin(cd: CallDef, origin: Origin) -> None:
    if cd.origin is OriginKind.SIGNED and origin.kind is not OriginKind.SIGNED:
        raise BadOrigin("this call must be signed by an account")
    if cd.origin is OriginKind.ROOT and origin.kind is not OriginKind.ROOT:
        raise BadOrigin("this call needs the root origin")
    if cd.origin is OriginKind.NONE and origin.kind is not OriginKind.NONE:
        raise BadOrigin("this call must be submitted unsigned")


def dispatch(cd: CallDef, origin: Origin, args: tuple) -> PostInfo | None:
    """Run a decoded call in its own transactional layer; DispatchError rolls its writes back."""
    check_origin(cd, origin)
    with storage.transactional():
        return cd.fn(origin, *args)


def dispatch_plain_call(origin: Origin, plain: Any) -> DispatchError | None:
    """Dispatch a nested call given as plain data; returns its error instead of raising."""
    try:
        cd, args = _lookup_plain(plain)
    except CodecError as e:
        return DispatchError(f"undecodable call: {e}")
    try:
        dispatch(cd, origin, args)
    except DispatchError as e:
        return e
    return None
