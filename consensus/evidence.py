"""Evidence of equivocation: one validator signing two different votes for the same height, round and kind.

An honest validator never does this (its signing guard refuses), so the pair is self-contained proof of
misbehaviour that anyone with the validator set and the genesis hash can check; the validators
pallet removes the offender when a node reports it (`validators.report_equivocation`). The state machine emits it as an `EvidenceFound` action the
moment a second, different, validly signed vote arrives.

Encoding (canonical msgpack): `[vote_a, vote_b]`, each a `Vote` array. The two votes are put in a
fixed order (by block hash, nil first) so that one equivocation has exactly one encoding, whichever
vote a node saw first; `key()` names it for de-duplication.
"""
from __future__ import annotations

# The evidence format is shared with the runtime, which verifies it on chain (validators pallet), so
# it is defined in primitives; `verify` accepts a ValidatorSet (anything answering `key in set`).
from primitives.votes import DuplicateVoteEvidence, InvalidEvidence  # noqa: F401
