"""Who may author blocks, and who authored the current one.

The author is named in the header's PreRuntime digest and signs the header (Seal digest). Until the
validators pallet (BFT consensus) replaces it, the authority set is fixed at genesis and changed by
root. Fees of a block go to its author.
"""
from __future__ import annotations

from primitives.codec import ListOf
from primitives.types import AccountId
from runtime.pallet import ROOT, Origin, Pallet, PalletError, deposit_event, ensure, ensure_root

pallet = Pallet("authorship", index=2, doc=__doc__)

authorities = pallet.value("authorities", ListOf(AccountId, max_len=1024), default=(),
                           doc="Accounts allowed to author blocks")
author = pallet.value("author", AccountId, doc="Author of the block being executed")


@pallet.event
class AuthoritiesChanged:
    authorities: ListOf(AccountId, max_len=1024)


class Error(PalletError):
    EmptyAuthoritySet = "the authority set may not be empty"


pallet.errors(Error)


@pallet.call(0, weight=50_000, origin=ROOT)
def set_authorities(origin: Origin, new: ListOf(AccountId, max_len=1024)) -> None:
    """Replace the authority set (takes effect from the next block)."""
    ensure_root(origin)
    ensure(len(new) > 0, Error.EmptyAuthoritySet)
    authorities.put(tuple(new))
    deposit_event(AuthoritiesChanged(tuple(new)))


@pallet.genesis
def _genesis(config: dict) -> None:
    from primitives import ss58
    authorities.put(tuple(ss58.decode(a, None) for a in config.get("authorities", [])))
