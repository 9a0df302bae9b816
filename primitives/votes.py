"""Consensus votes and equivocation evidence: shared by the consensus engine and the runtime.

They live here, not in `consensus/`, because the chain itself must check them: the validators
pallet verifies evidence of equivocation on chain, and pallets may not import the consensus engine
(DESIGN.md: consensus never imports the runtime, and the runtime only primitives).

Vote (wire array, in this order)::

    kind        u8      1 = prevote, 2 = precommit (`Step`)
    height      u64
    round       u32
    block_hash  nil | bin 32     nil = a vote for no block ("nil" in the Tendermint paper)
    validator   bin 32  the voter's ed25519 public key
    signature   bin 64  ed25519 over signing_message(b"gridchain/vote/v1", genesis_hash,
                        pack([kind, height, round, block_hash]))

Evidence of equivocation is `[vote_a, vote_b]`: two votes by one validator for one (height, round,
kind) and different blocks, ordered by block hash (nil first) so that one equivocation has exactly one
encoding whichever vote a node saw first.
"""
from __future__ import annotations

import enum
from collections.abc import Container
from typing import Any

from primitives.codec import H256, H512, U32, U64, CodecError, Optional, Type, pack, struct
from primitives.keys import verify_domain

VOTE_DOMAIN = b"gridchain/vote/v1"


class Step(enum.IntEnum):
    """The step of a round. Also the kind of a vote (prevote, precommit) and of a timeout."""

    PROPOSE = 0
    PREVOTE = 1
    PRECOMMIT = 2


class _VoteKind(Type):
    """A `Step` that a vote may carry: prevote or precommit, as u8."""

    name = "VoteKind"

    def to_plain(self, value: Any) -> int:
        if type(value) is Step:
            value = int(value)
        return int(self.from_plain(value))

    def from_plain(self, plain: Any) -> Step:
        if type(plain) is not int or plain not in (Step.PREVOTE, Step.PRECOMMIT):
            raise CodecError(f"a vote kind is 1 (prevote) or 2 (precommit), not {plain!r}")
        return Step(plain)

    def describe(self) -> Any:
        return "u8"


VOTE_KIND = _VoteKind()


def vote_payload(kind: Step, height: int, round: int, block_hash: bytes | None) -> bytes:
    """The bytes after the domain tag and genesis hash that a vote signature covers."""
    return pack([int(kind), height, round, block_hash])


@struct
class Vote:
    """A prevote or precommit for `block_hash` (None = nil) in (height, round), signed by `validator`."""

    kind: VOTE_KIND
    height: U64
    round: U32
    block_hash: Optional(H256)
    validator: H256
    signature: H512

    def signed_payload(self) -> bytes:
        return vote_payload(self.kind, self.height, self.round, self.block_hash)

    def verify(self, genesis_hash: bytes) -> bool:
        """True if `signature` is the validator's signature of this vote on this chain."""
        return verify_domain(self.validator, self.signature, VOTE_DOMAIN, genesis_hash, self.signed_payload())


class InvalidEvidence(ValueError):
    """Evidence that does not prove equivocation; the message says which check failed."""


def _order(vote: Vote) -> bytes:
    return b"" if vote.block_hash is None else vote.block_hash


@struct
class DuplicateVoteEvidence:
    """Two conflicting votes by one validator for one (height, round, kind)."""

    vote_a: Vote
    vote_b: Vote

    @classmethod
    def from_votes(cls, first: Vote, second: Vote) -> "DuplicateVoteEvidence":
        """The evidence for two votes, in canonical order (checks nothing; see `verify`)."""
        a, b = sorted((first, second), key=_order)
        return cls(a, b)

    @property
    def validator(self) -> bytes:
        return self.vote_a.validator

    @property
    def height(self) -> int:
        return self.vote_a.height

    def key(self) -> tuple[bytes, int, int, int]:
        """(validator, height, round, kind): one equivocation, however many conflicting votes it has."""
        a = self.vote_a
        return (a.validator, a.height, a.round, int(a.kind))

    def verify(self, validators: Container[bytes], genesis_hash: bytes) -> None:
        """Check that this proves equivocation by a member of `validators` (anything that answers
        `public_key in validators`); raise InvalidEvidence if not.

        Both votes must come from one validator of the set, for the same height, round and kind, for
        different blocks (nil counts as a block here), in canonical order, with valid signatures.
        """
        a, b = self.vote_a, self.vote_b
        if a.validator != b.validator:
            raise InvalidEvidence("the two votes are from different validators")
        if a.validator not in validators:
            raise InvalidEvidence(f"{a.validator.hex()} is not a validator")
        if (a.height, a.round, a.kind) != (b.height, b.round, b.kind):
            raise InvalidEvidence("the two votes are for different heights, rounds or kinds")
        if a.block_hash == b.block_hash:
            raise InvalidEvidence("the two votes are for the same block: that is a duplicate, not equivocation")
        if _order(a) > _order(b):
            raise InvalidEvidence("the votes are not in canonical order (lower block hash first, nil lowest)")
        if not a.verify(genesis_hash) or not b.verify(genesis_hash):
            raise InvalidEvidence("a vote's signature does not verify")

    def is_valid(self, validators: Container[bytes], genesis_hash: bytes) -> bool:
        """`verify` as a boolean."""
        try:
            self.verify(validators, genesis_hash)
        except InvalidEvidence:
            return False
        return True
