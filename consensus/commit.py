"""Commit certificates: the 2f+1 precommits that prove a block was decided at a height.

A certificate is what the paper's decision rule (line 49) saw: precommits of one round for one block
from validators holding at least 2f+1 of the voting power. Anyone holding the height's validator set
and the genesis hash can check it, so it serves three uses: the block's justification in the block
store, catch-up of a node that missed the decision (`Tendermint.on_commit`), and input to the BLS
finality certificate built on top.

Every precommit in a certificate has the same kind, height, round and block hash, so only the
(validator, signature) pairs are stored (as CometBFT's Commit does); `precommits()` rebuilds the full
votes. Encoding (canonical msgpack array)::

    height u64, round u32, block_hash bin 32, signatures [[validator bin 32, signature bin 64], ...]

Signatures are sorted by the validator's position in the set, so one decision has one encoding for a
given set of signers.
"""
from __future__ import annotations

from collections.abc import Iterable

from consensus.messages import Step, Vote
from consensus.validator_set import MAX_VALIDATORS, ValidatorSet
from primitives.codec import H256, H512, U32, U64, ListOf, struct


class InvalidCommit(ValueError):
    """A commit certificate that does not prove a decision; the message says which check failed."""


@struct
class CommitSig:
    """One validator's precommit signature inside a certificate."""

    validator: H256
    signature: H512


@struct
class CommitCertificate:
    """Precommits for `block_hash` in (`height`, `round`) by at least 2f+1 of the voting power."""

    height: U64
    round: U32
    block_hash: H256
    signatures: ListOf(CommitSig, max_len=MAX_VALIDATORS)

    @classmethod
    def from_precommits(cls, precommits: Iterable[Vote], validators: ValidatorSet) -> CommitCertificate:
        """Build a certificate from precommits that all agree (the caller checked their signatures).

        Raises InvalidCommit if they are empty or disagree on height, round or block.
        """
        votes = list(precommits)
        if not votes:
            raise InvalidCommit("a certificate needs at least one precommit")
        first = votes[0]
        if first.block_hash is None:
            raise InvalidCommit("a certificate commits a block, not nil")
        for v in votes:
            if (v.kind, v.height, v.round, v.block_hash) != (Step.PRECOMMIT, first.height, first.round,
                                                              first.block_hash):
                raise InvalidCommit("precommits of a certificate must agree on height, round and block")
        order = {pk: i for i, pk in enumerate(validators.public_keys)}
        votes.sort(key=lambda v: order.get(v.validator, len(order)))
        return cls(first.height, first.round, first.block_hash,
                   tuple(CommitSig(v.validator, v.signature) for v in votes))

    def precommits(self) -> tuple[Vote, ...]:
        """The precommits this certificate carries, as votes."""
        return tuple(Vote(Step.PRECOMMIT, self.height, self.round, self.block_hash, s.validator, s.signature)
                     for s in self.signatures)

    def signer_power(self, validators: ValidatorSet) -> int:
        """Voting power of the distinct validators named (signatures are not checked here)."""
        return sum(validators.power_of(pk) for pk in {s.validator for s in self.signatures})

    def verify(self, validators: ValidatorSet, genesis_hash: bytes) -> None:
        """Check that 2f+1 of the power of `validators` signed a precommit for this block.

        Raises InvalidCommit naming the first failed check: a signer outside the set, a signer listed
        twice, a bad signature, or too little power. Returns None when the certificate holds.
        """
        seen: set[bytes] = set()
        power = 0
        votes = self.precommits()
        for vote in votes:
            if vote.validator not in validators:
                raise InvalidCommit(f"precommit from {vote.validator.hex()}, who is not a validator")
            if vote.validator in seen:
                raise InvalidCommit(f"validator {vote.validator.hex()} appears twice")
            seen.add(vote.validator)
            power += validators.power_of(vote.validator)
        if not validators.has_quorum(power):   # before the costly signature checks
            raise InvalidCommit(f"precommits hold {power} of {validators.total_power} voting power; "
                                f"{validators.quorum_power} are needed")
        for vote in votes:
            if not vote.verify(genesis_hash):
                raise InvalidCommit(f"bad precommit signature from {vote.validator.hex()}")

    def is_valid(self, validators: ValidatorSet, genesis_hash: bytes) -> bool:
        """`verify` as a boolean."""
        try:
            self.verify(validators, genesis_hash)
        except InvalidCommit:
            return False
        return True
