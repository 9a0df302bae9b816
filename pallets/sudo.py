"""A single key that may dispatch calls as root: how a young chain is administered.

The governance pallet replaces it (validators and registrars voting); until then the sudo key comes
from the chain spec and can be handed over or dropped.
"""
from __future__ import annotations

from primitives import ss58
from primitives.codec import Raw
from primitives.types import AccountId
from runtime.pallet import SIGNED, Origin, Pallet, PalletError, deposit_event, ensure, ensure_signed
from runtime import dispatch

pallet = Pallet("sudo", index=5, doc=__doc__)

key = pallet.value("key", AccountId, doc="The account that may act as root")


@pallet.event
class Sudid:
    """A root call was dispatched; result is null on success, else the error."""
    result: Raw()


@pallet.event
class KeyChanged:
    new: AccountId


class Error(PalletError):
    RequireSudo = "only the sudo key may do this"


pallet.errors(Error)


def _call_weight(call: Raw()) -> int:
    return 20_000 + dispatch.weight_of_plain_call(call)


@pallet.call(0, weight=_call_weight, origin=SIGNED)
def sudo(origin: Origin, call: Raw()) -> None:
    """Dispatch `call` ([pallet index, call index, args]) with the root origin."""
    ensure(ensure_signed(origin) == key.get(), Error.RequireSudo)
    err = dispatch.dispatch_plain_call(Origin.root(), call)
    deposit_event(Sudid(None if err is None else err.to_plain()))


@pallet.call(1, weight=20_000, origin=SIGNED)
def set_key(origin: Origin, new: AccountId) -> None:
    """Hand the sudo key to another account."""
    ensure(ensure_signed(origin) == key.get(), Error.RequireSudo)
    key.put(new)
    deposit_event(KeyChanged(new))


@pallet.genesis
def _genesis(config: dict) -> None:
    if config.get("key"):
        key.put(ss58.decode(config["key"], None))
