"""The call table of the composed runtime, and dispatch of a call with an origin.

Pallets that dispatch nested calls (sudo, later governance) go through here, so a nested call gets
the same decoding, origin check and rollback as a top-level one.

Two rules keep an untrusted call from stopping or splitting consensus:
- nesting is bounded: a call may carry calls at most `MAX_CALL_NESTING` levels below the
  extrinsic's own call, and both the weight and the dispatch of nested calls count the levels, so
  nothing here recurses deeper than that, whatever the input (the codec's own depth limit bounds
  the bytes first);
- a call that fails in any way (a pallet's error, or any other exception, such as a value that does
  not fit its storage type) fails as a `DispatchError` with a fixed message: its writes roll back
  and its fee stays paid, and every node records the same result.
"""
from __future__ import annotations

import contextvars
import logging
from typing import Any

from primitives.codec import CodecError
from primitives.extrinsic import Call
from runtime.api import ENVIRONMENT_FAULTS
from runtime import storage
from runtime.pallet import BadOrigin, CallDef, DispatchError, Origin, OriginKind, Pallet, PostInfo


class CallTable:
    """The calls a runtime dispatches, by (pallet index, call index). Built for one runtime
    spec_version: a call introduced by a later version is not in it (see `Pallet.call`'s `since`)."""

    def __init__(self, pallets: list[Pallet], spec_version: int | None = None) -> None:
        self.by_index: dict[tuple[int, int], CallDef] = {}
        for p in pallets:
            for cd in p.calls.values():
                if spec_version is None or cd.since <= spec_version:
                    self.by_index[(p.index, cd.index)] = cd

    def lookup(self, call: Call) -> CallDef:
        cd = self.by_index.get((call.pallet_index, call.call_index))
        if cd is None:
            raise CodecError(f"no call {call.call_index} in pallet {call.pallet_index}")
        return cd


#: How many levels of calls a call may carry below itself (sudo(call) is one level).
MAX_CALL_NESTING = 8

#: The ExtrinsicFailed message of a call that raised something other than a DispatchError. It is
#: fixed, not the exception's text, which can differ between Python versions and would then split
#: the event's bytes and so the state root.
INTERNAL_ERROR = "the call failed with an internal error and changed nothing"

_log = logging.getLogger(__name__)

_table: CallTable | None = None
_nesting: contextvars.ContextVar[int] = contextvars.ContextVar("call_nesting", default=0)


class CallNestingTooDeep(CodecError):
    """A call carries calls more than MAX_CALL_NESTING levels deep: the extrinsic is invalid."""


def install(table: CallTable) -> None:
    """Make `table` the one nested dispatch uses. A node holds a runtime per spec_version, so the
    executive installs its runtime's table whenever it starts work (decoding, validating, a block):
    the runtime never runs concurrently with itself, so the table in force is the running one's."""
    global _table
    _table = table


def _lookup_plain(plain: Any) -> tuple[CallDef, tuple]:
    if _table is None:
        raise RuntimeError("no runtime installed")
    call = Call.from_plain(plain)
    cd = _table.lookup(call)
    return cd, cd.decode_args(call.args)


def _enter_nested() -> contextvars.Token:
    depth = _nesting.get()
    if depth >= MAX_CALL_NESTING:
        raise CallNestingTooDeep(f"calls nested more than {MAX_CALL_NESTING} levels deep")
    return _nesting.set(depth + 1)


def weight_of_plain_call(plain: Any) -> int:
    """Weight of a nested call given as plain data (0 if it does not decode: it then fails when
    dispatched). Raises CallNestingTooDeep past MAX_CALL_NESTING, which makes the whole extrinsic
    invalid before any signature or origin check runs."""
    token = _enter_nested()
    try:
        try:
            cd, args = _lookup_plain(plain)
        except CallNestingTooDeep:
            raise
        except CodecError:
            return 0
        return cd.weight_of(args)
    finally:
        _nesting.reset(token)


def check_origin(cd: CallDef, origin: Origin) -> None:
    if cd.origin is OriginKind.SIGNED and origin.kind is not OriginKind.SIGNED:
        raise BadOrigin("this call must be signed by an account")
    if cd.origin is OriginKind.ROOT and origin.kind is not OriginKind.ROOT:
        raise BadOrigin("this call needs the root origin")
    if cd.origin is OriginKind.NONE and origin.kind is not OriginKind.NONE:
        raise BadOrigin("this call must be submitted unsigned")


def dispatch(cd: CallDef, origin: Origin, args: tuple) -> PostInfo | None:
    """Run a decoded call in its own transactional layer. Any failure rolls its writes back and is
    raised as a DispatchError (see INTERNAL_ERROR for exceptions that are not one)."""
    check_origin(cd, origin)
    try:
        with storage.transactional():
            return cd.fn(origin, *args)
    except (DispatchError, *ENVIRONMENT_FAULTS):
        raise
    except Exception as e:  # noqa: BLE001 - any failure of a call fails that call, never the block
        _log.warning("%s.%s raised %s: %s", cd.pallet.name, cd.name, type(e).__name__, e)
        raise DispatchError(INTERNAL_ERROR) from None


def dispatch_plain_call(origin: Origin, plain: Any) -> DispatchError | None:
    """Dispatch a nested call given as plain data; returns its error instead of raising."""
    try:
        token = _enter_nested()
    except CallNestingTooDeep as e:
        return DispatchError(str(e))
    try:
        try:
            cd, args = _lookup_plain(plain)
        except CodecError as e:
            return DispatchError(f"undecodable call: {e}")
        try:
            dispatch(cd, origin, args)
        except DispatchError as e:
            return e
        return None
    finally:
        _nesting.reset(token)


def lookup_plain_call(plain: Any) -> tuple[CallDef, tuple]:
    """A nested call given as plain data, decoded against the installed call table: its definition
    and arguments, without dispatching it (governance checks a motion's call when it is proposed).
    Raises CodecError if it does not decode."""
    return _lookup_plain(plain)


def installed_calls() -> list[CallDef]:
    """Every call of the installed call table, by (pallet index, call index); genesis builders
    check names against it."""
    if _table is None:
        raise RuntimeError("no runtime installed")
    return [_table.by_index[k] for k in sorted(_table.by_index)]
