"""The signing guard: a validator never signs two different messages for one (height, round, step).

Equivocation is the one thing an honest validator can be punished for, and the easy way to commit it
is to crash after signing a vote and, on restart, sign a different one for the same step. So every
signature goes through this guard, which:

1. looks up (height, round, step) among what it has signed: the same message again gets the same
   signature back (a restarted node replaying its WAL re-signs its votes idempotently); a different
   one is refused with `SigningRefused`, carrying the message signed before;
2. refuses to go back: nothing is signed below the highest (height, round, step) signed so far,
   because an honest state machine only moves forward;
3. appends a `SignRecord` to the write-ahead log and fsyncs it *before* returning the signature, so
   the record is on disk before the message can leave the node.

The state machine reacts to a refusal by adopting the earlier message as its own (see
`Tendermint._sign_vote`), so what it counts always matches what the network may have seen.

Implementations: `FileSigner` (the log in a file, for a node) and `MemorySigner` (the log in a
`MemoryWAL`, for the simulation; it survives a simulated crash). Both take the WAL object so the
node can share one log with the state machine's journal; `FileSigner` also accepts a path.
Only the current height's records are kept in memory; `FileWAL.compact` prunes the file.
"""
from __future__ import annotations

import os
from typing import Protocol

from consensus.messages import Message, Proposal, Step, Vote, sign_proposal, sign_vote
from consensus.wal import FileWAL, MemoryWAL, SignRecord
from primitives.keys import Keypair


class SigningRefused(Exception):
    """The guard would not sign: `previous` is the different message already signed for that step
    (None when the request went backwards to a step with nothing signed)."""

    def __init__(self, reason: str, previous: Message | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.previous = previous


class Signer(Protocol):
    """What the state machine needs to sign its own messages."""

    public_key: bytes

    def sign_proposal(self, height: int, round: int, block_hash: bytes, pol_round: int | None) -> Proposal:
        """The signed proposal, or SigningRefused."""

    def sign_vote(self, kind: Step, height: int, round: int, block_hash: bytes | None) -> Vote:
        """The signed vote, or SigningRefused."""


class GuardedSigner:
    """A key behind the guard; the log it persists to is any `Journal` (a FileWAL or a MemoryWAL)."""

    def __init__(self, keypair: Keypair, genesis_hash: bytes, wal: FileWAL | MemoryWAL) -> None:
        self._keypair = keypair
        self._genesis_hash = genesis_hash
        self.wal = wal
        self.public_key = keypair.public_key
        self._signed: dict[tuple[int, int, int], SignRecord] = {}
        self._last: tuple[int, int, int] | None = None
        for entry in wal.entries():
            if isinstance(entry, SignRecord):
                self._remember(entry)

    @property
    def last_signed(self) -> tuple[int, int, int] | None:
        """The highest (height, round, step) signed, as persisted."""
        return self._last

    def sign_proposal(self, height: int, round: int, block_hash: bytes, pol_round: int | None) -> Proposal:
        rec = self._guard(height, round, Step.PROPOSE, block_hash, pol_round)
        if rec is not None:
            return self._proposal(rec)
        msg = sign_proposal(self._keypair, self._genesis_hash, height, round, block_hash, pol_round)
        self._persist(SignRecord(height, round, int(Step.PROPOSE), block_hash, pol_round, msg.signature))
        return msg

    def sign_vote(self, kind: Step, height: int, round: int, block_hash: bytes | None) -> Vote:
        if kind not in (Step.PREVOTE, Step.PRECOMMIT):
            raise ValueError("a vote is a prevote or a precommit")
        rec = self._guard(height, round, kind, block_hash, None)
        if rec is not None:
            return self._vote(rec)
        msg = sign_vote(self._keypair, self._genesis_hash, kind, height, round, block_hash)
        self._persist(SignRecord(height, round, int(kind), block_hash, None, msg.signature))
        return msg

    # -- the guard ----------------------------------------------------------------------------------
    def _guard(self, height: int, round: int, step: Step, block_hash: bytes | None,
               pol_round: int | None) -> SignRecord | None:
        """The identical earlier record (to re-issue), None to go ahead, or SigningRefused."""
        hrs = (height, round, int(step))
        rec = self._signed.get(hrs)
        if rec is not None:
            if rec.block_hash == block_hash and rec.pol_round == pol_round:
                return rec
            previous = self._proposal(rec) if step == Step.PROPOSE else self._vote(rec)
            raise SigningRefused(f"already signed a different {step.name.lower()} at height {height} "
                                 f"round {round}", previous)
        if self._last is not None and hrs < self._last:
            raise SigningRefused(f"will not sign {step.name.lower()} at height {height} round {round}: "
                                 f"already signed at (height, round, step) {self._last}")
        return None

    def _persist(self, rec: SignRecord) -> None:
        self.wal.append(rec, sync=True)     # durable before the caller sees the signature
        self._remember(rec)

    def _remember(self, rec: SignRecord) -> None:
        if self._last is None or rec.height > self._last[0]:
            self._signed = {}                # only the current height can be asked for again
        if self._last is None or rec.hrs > self._last:
            self._last = rec.hrs
        if rec.height == self._last[0]:
            self._signed[rec.hrs] = rec

    def _vote(self, rec: SignRecord) -> Vote:
        return Vote(Step(rec.step), rec.height, rec.round, rec.block_hash, self.public_key, rec.signature)

    def _proposal(self, rec: SignRecord) -> Proposal:
        assert rec.block_hash is not None
        return Proposal(rec.height, rec.round, rec.block_hash, rec.pol_round, self.public_key, rec.signature)


class FileSigner(GuardedSigner):
    """The guard with its log in a file: pass a path (a log of its own) or the node's shared FileWAL."""

    def __init__(self, keypair: Keypair, genesis_hash: bytes, wal: FileWAL | str | os.PathLike) -> None:
        super().__init__(keypair, genesis_hash, wal if isinstance(wal, FileWAL) else FileWAL(wal))


class MemorySigner(GuardedSigner):
    """The guard with its log in memory (the simulation's disk); a fresh MemoryWAL if none is given."""

    def __init__(self, keypair: Keypair, genesis_hash: bytes, wal: MemoryWAL | None = None) -> None:
        super().__init__(keypair, genesis_hash, wal if wal is not None else MemoryWAL())
