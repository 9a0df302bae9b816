"""Consensus messages: the signed proposal and the two kinds of vote, and their exact bytes.

These are the only things validators say to each other about a height, so their encoding is part of
the protocol. Both are `@struct`s (canonical msgpack arrays, fields in the order below) and both are
signed through `primitives.keys` over (domain tag, genesis hash, payload), so a vote cannot be
replayed as anything else and nothing signed on one chain counts on another.

Vote (wire array, in this order)::

    kind        u8      1 = prevote, 2 = precommit (`Step`)
    height      u64
    round       u32
    block_hash  nil | bin 32     nil = a vote for no block ("nil" in the paper)
    validator   bin 32  the voter's ed25519 public key
    signature   bin 64  ed25519 over signing_message(b"gridchain/vote/v1", genesis_hash,
                        pack([kind, height, round, block_hash]))

Proposal::

    height      u64
    round       u32
    block_hash  bin 32       the proposed block, by hash (block bodies travel separately)
    pol_round   nil | u32    the paper's `validRound`: the round whose 2f+1 prevotes justify
                             re-proposing this block; nil where the paper writes -1
    proposer    bin 32
    signature   bin 64  ed25519 over signing_message(b"gridchain/proposal/v1", genesis_hash,
                        pack([height, round, block_hash, pol_round]))

The codec has unsigned integers only, so the paper's -1 ("no proof-of-lock round") is msgpack nil on
the wire and `None` in Python; inside the state machine `NO_ROUND = -1` is used as in the paper.

On the wire a message travels in an envelope `[tag, message]`, tag 1 = proposal, 2 = vote:
`encode_message` / `decode_message`. Decoding is strict: anything but a canonical encoding of one of
the two raises `CodecError` (a `ValueError`) and nothing else.
"""
from __future__ import annotations

from primitives.codec import H256, H512, U32, U64, CodecError, Optional, pack, struct, unpack
from primitives.keys import Keypair, verify_domain
# Votes are shared with the runtime (the validators pallet verifies equivocation evidence), so they
# are defined in primitives; re-exported here as part of the consensus message set.
from primitives.votes import VOTE_DOMAIN, VOTE_KIND, Step, Vote, vote_payload  # noqa: F401

PROPOSAL_DOMAIN = b"gridchain/proposal/v1"

#: The paper's -1: "no round" for lockedRound, validRound and a proposal without proof of lock.
NO_ROUND = -1

#: A consensus message is small; refuse anything larger before parsing it.
MAX_MESSAGE_BYTES = 512


@struct
class Proposal:
    """The round's proposer proposing `block_hash`, justified by prevotes of `pol_round` if not None."""

    height: U64
    round: U32
    block_hash: H256
    pol_round: Optional(U32)
    proposer: H256
    signature: H512

    def signed_payload(self) -> bytes:
        return proposal_payload(self.height, self.round, self.block_hash, self.pol_round)

    def verify(self, genesis_hash: bytes) -> bool:
        """True if `signature` is the proposer's signature of this proposal on this chain."""
        return verify_domain(self.proposer, self.signature, PROPOSAL_DOMAIN, genesis_hash, self.signed_payload())

    @property
    def valid_round(self) -> int:
        """`pol_round` as the paper writes it: -1 when there is no proof-of-lock round."""
        return NO_ROUND if self.pol_round is None else self.pol_round


Message = Proposal | Vote


def proposal_payload(height: int, round: int, block_hash: bytes, pol_round: int | None) -> bytes:
    """The bytes after the domain tag and genesis hash that a proposal signature covers."""
    return pack([height, round, block_hash, pol_round])


def sign_vote(keypair: Keypair, genesis_hash: bytes, kind: Step, height: int, round: int,
              block_hash: bytes | None) -> Vote:
    """Sign a vote with no double-signing guard.

    Validators sign through `consensus.signer` instead; this is for the guard itself, for tests and for
    the simulation's deliberately equivocating validator.
    """
    if kind not in (Step.PREVOTE, Step.PRECOMMIT):
        raise ValueError("a vote is a prevote or a precommit")
    sig = keypair.sign_domain(VOTE_DOMAIN, genesis_hash, vote_payload(kind, height, round, block_hash))
    return Vote(Step(kind), height, round, block_hash, keypair.public_key, sig)


def sign_proposal(keypair: Keypair, genesis_hash: bytes, height: int, round: int, block_hash: bytes,
                  pol_round: int | None) -> Proposal:
    """Sign a proposal with no double-signing guard (see `sign_vote`)."""
    if pol_round is not None and not 0 <= pol_round < round:
        raise ValueError("a proof-of-lock round lies before the proposal's round")
    sig = keypair.sign_domain(PROPOSAL_DOMAIN, genesis_hash, proposal_payload(height, round, block_hash, pol_round))
    return Proposal(height, round, block_hash, pol_round, keypair.public_key, sig)


_TAG_PROPOSAL = 1
_TAG_VOTE = 2


def encode_message(msg: Message) -> bytes:
    """The wire envelope `[tag, message]` of a proposal or a vote."""
    if isinstance(msg, Proposal):
        return pack([_TAG_PROPOSAL, msg.to_plain()])
    if isinstance(msg, Vote):
        return pack([_TAG_VOTE, msg.to_plain()])
    raise TypeError(f"not a consensus message: {type(msg).__name__}")


def decode_message(data: bytes, max_size: int = MAX_MESSAGE_BYTES) -> Message:
    """Decode a wire envelope; any input that is not exactly one canonical message raises CodecError.

    The signature is not checked here (that needs the validator set): the state machine does it.
    """
    plain = unpack(data, max_size, typed=True)
    if type(plain) is not list or len(plain) != 2 or type(plain[0]) is not int:
        raise CodecError("a consensus message is an array [tag, message]")
    tag, body = plain
    if tag == _TAG_PROPOSAL:
        return Proposal.from_plain(body)
    if tag == _TAG_VOTE:
        return Vote.from_plain(body)
    raise CodecError(f"unknown consensus message tag {tag}")
