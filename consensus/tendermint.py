"""Tendermint consensus for one validator, as a pure state machine: messages in, actions out.

Read this beside Algorithm 1 of "The latest gossip on BFT consensus" (Buchman, Kwon, Milosevic, 2018).
Each upon-rule is one method named after what it waits for, with the rule's line in its docstring;
`StartRound` (line 11) and the three `OnTimeout` functions (lines 57-67) are methods too. The machine
does no I/O, reads no clock and draws no randomness: the same inputs give the same actions, which is
what lets `recover` rebuild a height from the WAL and the simulation replay a seed exactly.

Inputs (each returns an `Outcome`: the actions to carry out, and a `Rejection` if the input was
refused; nothing else is raised for any well-typed message):

    start(height, validators=None)       begin a height at round 0 (line 10; lines 52-54)
    on_proposal(proposal)                 a decoded `Proposal` from the network
    on_vote(vote)                         a decoded `Vote` from the network
    on_timeout(kind, height, round)       a timer set by `ScheduleTimeout` went off
    on_commit(certificate)                catch-up: a `CommitCertificate` for this height from a peer
    on_value_available(height, hash)      the application can now judge a block it answered None for
    recover(wal_entries, height)          after a restart, replay the height from the WAL

Outputs (actions): `Broadcast(message)` to all validators; `ScheduleTimeout(kind, height, round,
duration_ms)`, to be fed back through `on_timeout` (stale timeouts are ignored, so never cancel);
`Decide(height, round, block_hash, certificate)`; `EvidenceFound(evidence)`.

The application, injected as an `Application`, supplies and judges values without the machine doing
I/O: `propose_value(height, round)` returns the hash of a block it has built (None: nothing to
propose yet, and the round runs on its timeout); `validate_value(height, block_hash)` returns True,
False, or None when the block body has not arrived; the machine then waits, as CometBFT waits for
block parts, and the node calls `on_value_available` once it has the block. A block's validity is
asked once per height and remembered. Values are block hashes: block bodies travel outside consensus.

Own messages are signed through the injected `Signer` (the guard in `consensus.signer`); a machine
without a signer, or whose key is not in the set, follows and decides but never votes. Accepted inputs
are written to the `Journal` (the WAL) before they take effect.

Wiring in a node: `wal = FileWAL(path)`, `signer = FileSigner(keypair, genesis_hash, wal)`, `machine =
Tendermint(validators, genesis_hash, app, signer, config, journal=wal)`, then `machine.recover(
wal.entries(), committed_height + 1)`. Carry out actions in order; score a peer down when
`outcome.rejected.peer_fault`; on `Decide`, commit the block durably, `wal.compact(height + 1)`, then
`start(height + 1, validators)`. Gossip is lossy: re-send `catch_up_messages()` when (height, round,
step) has not moved for a while, and answer a message for a committed height with its certificate.

Departures from the paper, each for a reason:
- Deciding does not start the next height (lines 52-54). The node must commit the block (and may
  change the validator set) first, then call `start(height + 1, validators)`. Messages for the next
  height that arrive meanwhile are kept (up to `FUTURE_BUFFER_LIMIT`) and replayed by `start`.
- The proposer also schedules timeoutPropose (line 21 schedules it for the others only), so a
  proposer whose application had no value, or whose guard refused to sign, still moves on.
- `on_commit` decides on a verified commit certificate without the proposal. It is rule 49 with the
  2f+1 precommits delivered at once; it is how a node that missed a decision catches up.
- Messages for rounds more than `MAX_ROUND_LEAD` ahead are refused, to bound memory.

Counting, as the paper counts messages: a quorum for a block is the power of the distinct validators
that signed a vote for it. A validator that signed two different votes for one step counts toward
both (it is Byzantine; quorum intersection holds with up to f of those) and `EvidenceFound` is emitted.
Counting only each validator's first vote would let an equivocator hide a proof of lock from some
honest validators and stall the height (the simulation found exactly that). To bound memory, beyond
`MAX_CONFLICTING_VOTES` a validator's further votes for one step are kept only for nil or a proposed block.
"""
from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from consensus.commit import CommitCertificate, InvalidCommit
from consensus.evidence import DuplicateVoteEvidence
from consensus.messages import NO_ROUND, Message, Proposal, Step, Vote
from consensus.signer import Signer, SigningRefused
from consensus.validator_set import ValidatorSet
from consensus.wal import Entry, Journal, SignRecord, StartHeight, TimeoutFired, ValueAvailable


class Application(Protocol):
    """What the machine asks of the chain: a value to propose, and whether a proposed value is valid."""

    def propose_value(self, height: int, round: int) -> bytes | None:
        """getValue() of line 18: the hash of a block to propose, or None if there is none yet."""

    def validate_value(self, height: int, block_hash: bytes) -> bool | None:
        """valid(v): True or False, or None while the block is not available to judge."""


@dataclass(frozen=True)
class TimeoutConfig:
    """timeoutX(r) = X_ms + X_delta_ms * r: timeouts grow with the round, so after GST they become long
    enough for honest validators to hear each other (the paper's liveness argument). CometBFT's defaults."""

    propose_ms: int = 3000
    propose_delta_ms: int = 500
    prevote_ms: int = 1000
    prevote_delta_ms: int = 500
    precommit_ms: int = 1000
    precommit_delta_ms: int = 500

    def duration_ms(self, kind: Step, round: int) -> int:
        if kind == Step.PROPOSE:
            return self.propose_ms + self.propose_delta_ms * round
        if kind == Step.PREVOTE:
            return self.prevote_ms + self.prevote_delta_ms * round
        return self.precommit_ms + self.precommit_delta_ms * round


class Rejection(enum.Enum):
    """Why an input was refused. `peer_fault` says whether the peer that sent it should be scored down:
    benign ones happen in honest gossip (duplicates, stragglers), the others only from faulty peers."""

    NOT_STARTED = ("no height has been started yet", False)
    PAST_HEIGHT = ("the message is for an earlier height", False)
    FUTURE_HEIGHT = ("the message is for a later height than can be kept", False)
    DECIDED = ("this height is already decided", False)
    ROUND_TOO_FAR = ("the round is too far ahead of ours", False)
    DUPLICATE = ("already have this message", False)
    CONFLICTING_VOTE = ("yet another conflicting vote from an equivocator (evidence already emitted)", False)
    CONFLICTING_PROPOSAL = ("the proposer already proposed differently in this round", False)
    NOT_A_VALIDATOR = ("the signer is not in the validator set", True)
    WRONG_PROPOSER = ("the signer is not the proposer of that round", True)
    INVALID_POL_ROUND = ("the proof-of-lock round is not before the proposal's round", True)
    BAD_SIGNATURE = ("the signature does not verify", True)
    INVALID_COMMIT = ("the commit certificate does not verify", True)

    def __init__(self, sentence: str, peer_fault: bool) -> None:
        self.sentence = sentence
        self.peer_fault = peer_fault


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send `message` to every validator (the paper's broadcast, which includes ourselves: the machine
    has already counted it)."""

    message: Message


@dataclass(frozen=True, slots=True)
class ScheduleTimeout:
    """Call `on_timeout(kind, height, round)` after `duration_ms`."""

    kind: Step
    height: int
    round: int
    duration_ms: int


@dataclass(frozen=True, slots=True)
class Decide:
    """`block_hash` is decided at `height` (line 51); `certificate` holds the 2f+1 precommits."""

    height: int
    round: int
    block_hash: bytes
    certificate: CommitCertificate


@dataclass(frozen=True, slots=True)
class EvidenceFound:
    """A validator equivocated; hand the evidence to the evidence pool / slashing."""

    evidence: DuplicateVoteEvidence


Action = Broadcast | ScheduleTimeout | Decide | EvidenceFound


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one input: actions to carry out in order, and the rejection, if it was refused."""

    actions: tuple[Action, ...] = ()
    rejected: Rejection | None = None

    @property
    def accepted(self) -> bool:
        return self.rejected is None


class Tendermint:
    """One validator's consensus state for the current height."""

    #: messages for rounds further ahead than this are refused (memory bound)
    MAX_ROUND_LEAD = 1000
    #: messages kept for the next height while the application commits this one
    FUTURE_BUFFER_LIMIT = 4096
    #: conflicting votes kept per validator and step, beyond which only nil or proposed blocks count
    MAX_CONFLICTING_VOTES = 4

    def __init__(self, validators: ValidatorSet, genesis_hash: bytes, app: Application,
                 signer: Signer | None = None, config: TimeoutConfig = TimeoutConfig(),
                 journal: Journal | None = None) -> None:
        self.validators = validators
        self.genesis_hash = genesis_hash
        self.app = app
        self.signer = signer
        self.config = config
        self.journal = journal
        self.started = False
        self.height = 0                      # h_p
        self._future: dict[Message, None] = {}
        self._actions: list[Action] = []
        self._replaying = False
        self._reset_height()

    def _reset_height(self) -> None:
        """Line 53 (and lines 2-9): fresh round state, locks and message log for a new height."""
        self.round = 0                       # round_p
        self.step = Step.PROPOSE             # step_p
        self.decision: bytes | None = None   # decision_p[h_p]
        self.locked_value: bytes | None = None
        self.locked_round = NO_ROUND
        self.valid_value: bytes | None = None
        self.valid_round = NO_ROUND
        self._me = self.signer.public_key if self.signer and self.signer.public_key in self.validators else None
        self._proposals: dict[int, Proposal] = {}
        self._votes: dict[tuple[int, Step], dict[bytes, Vote]] = {}       # first vote of each validator
        self._by_hash: dict[tuple[int, Step], dict[bytes | None, dict[bytes, Vote]]] = {}   # None = nil
        self._power: dict[tuple[int, Step], dict[bytes | None, int]] = {}  # power behind each block hash
        self._total: dict[tuple[int, Step], int] = {}                      # power of distinct voters
        self._conflicts: dict[tuple[int, Step, bytes], int] = {}
        self._senders: dict[int, set[bytes]] = {}
        self._sender_power: dict[int, int] = {}
        self._fired: set[tuple[int, int]] = set()     # (rule line, round): "for the first time"
        self._validity: dict[bytes, bool] = {}
        self._evidence: set[tuple[bytes, int, int, int]] = set()
        self._pending_commit: CommitCertificate | None = None

    # -- inputs ---------------------------------------------------------------------------------------
    def start(self, height: int, validators: ValidatorSet | None = None) -> Outcome:
        """Line 10, `upon start do StartRound(0)`, for `height` (the next height after a Decide, with
        that height's validator set if it changed). Replays messages kept for this height."""
        if self.started and height <= self.height:
            raise ValueError(f"height {height} is not after the current height {self.height}")
        if validators is not None:
            self.validators = validators
        self._actions = []
        kept = [m for m in self._future if m.height == height]
        self._future = {}
        self.height, self.started = height, True
        self._reset_height()
        self._journal(StartHeight(height))
        self.start_round(0)
        self._run_rules(())
        for msg in kept:
            self._admit_proposal(msg) if isinstance(msg, Proposal) else self._admit_vote(msg)
        return self._outcome(None)

    def on_proposal(self, proposal: Proposal) -> Outcome:
        """A proposal from the network; see the rules at lines 22, 28, 36 and 49."""
        if not isinstance(proposal, Proposal):
            raise TypeError("on_proposal takes a Proposal")
        self._actions = []
        return self._outcome(self._admit_proposal(proposal))

    def on_vote(self, vote: Vote) -> Outcome:
        """A prevote or precommit from the network; see the rules at lines 28-55."""
        if not isinstance(vote, Vote):
            raise TypeError("on_vote takes a Vote")
        self._actions = []
        return self._outcome(self._admit_vote(vote))

    def on_timeout(self, kind: Step, height: int, round: int) -> Outcome:
        """A timer from `ScheduleTimeout` went off; lines 57, 61 and 65 check that it is not stale."""
        self._actions = []
        if self.started and self.decision is None and height == self.height and round == self.round:
            self._journal(TimeoutFired(int(kind), height, round))
            {Step.PROPOSE: self.on_timeout_propose, Step.PREVOTE: self.on_timeout_prevote,
             Step.PRECOMMIT: self.on_timeout_precommit}[Step(kind)](height, round)
            self._run_rules(())
        return self._outcome(None)

    def on_commit(self, certificate: CommitCertificate) -> Outcome:
        """Catch-up: a peer's certificate that this height was decided. Rule 49 with the 2f+1
        precommits at once: decide if it verifies and the application finds the block valid."""
        self._actions = []
        rejection = self._gate(certificate.height, certificate.round, buffer=None)
        if rejection is None:
            try:
                certificate.verify(self.validators, self.genesis_hash)
            except InvalidCommit:
                rejection = Rejection.INVALID_COMMIT
        if rejection is None:
            self._journal(certificate)
            self._pending_commit = certificate
            self._try_pending_commit()
        return self._outcome(rejection)

    def on_value_available(self, height: int, block_hash: bytes) -> Outcome:
        """The application can now judge `block_hash` (it answered None before): re-run the rules."""
        self._actions = []
        if self.started and self.decision is None and height == self.height:
            self._journal(ValueAvailable(height, block_hash))
            self._try_pending_commit()
            self._run_rules(r for r, p in self._proposals.items() if p.block_hash == block_hash)
        return self._outcome(None)

    def recover(self, entries: Iterable[Entry], height: int, validators: ValidatorSet | None = None) -> Outcome:
        """After a restart: replay `height` from the WAL entries (from its last `StartHeight` on) into
        this fresh machine, re-signing through the guard (which returns the same signatures).

        Returns what the node must do now: re-broadcast its own messages of the current round, arm the
        timeouts of the current round that had not fired, and any Decide or evidence found.
        With no `StartHeight(height)` in the log this is just `start(height)`.
        """
        entries = list(entries)
        starts = [i for i, e in enumerate(entries) if isinstance(e, StartHeight) and e.height == height]
        if not starts:
            return self.start(height, validators)
        actions: list[Action] = []
        self._replaying = True
        try:
            actions += self.start(height, validators).actions
            for e in entries[starts[-1] + 1:]:
                if isinstance(e, (SignRecord, StartHeight)) or e.height != height:
                    continue
                if isinstance(e, Proposal):
                    actions += self.on_proposal(e).actions
                elif isinstance(e, Vote):
                    actions += self.on_vote(e).actions
                elif isinstance(e, TimeoutFired):
                    actions += self.on_timeout(Step(e.kind), e.height, e.round).actions
                elif isinstance(e, CommitCertificate):
                    actions += self.on_commit(e).actions
                else:
                    actions += self.on_value_available(e.height, e.block_hash).actions
        finally:
            self._replaying = False
        fired = {Step(e.kind) for e in entries[starts[-1] + 1:]
                 if isinstance(e, TimeoutFired) and (e.height, e.round) == (height, self.round)}
        keep = [a for a in actions if isinstance(a, (Decide, EvidenceFound))]
        keep += [a for a in actions if isinstance(a, ScheduleTimeout) and a.height == self.height
                 and a.round == self.round and a.kind not in fired
                 and a.kind in (self.step, Step.PRECOMMIT)]        # a propose/prevote timeout of a past step is moot
        keep += [Broadcast(m) for m in self.own_messages() if m.round == self.round]
        return Outcome(tuple(keep))

    # -- what the node may ask --------------------------------------------------------------------------
    def own_messages(self) -> list[Message]:
        """This validator's proposals and votes at the current height, in round order."""
        out: list[Message] = [p for r, p in sorted(self._proposals.items()) if p.proposer == self._me]
        out += [vs[self._me] for _k, vs in sorted(self._votes.items()) if self._me in vs]
        return sorted(out, key=lambda m: m.round)

    def catch_up_messages(self) -> list[Message]:
        """What to re-gossip when nothing has moved for a while (gossip is lossy): own messages of this
        and the previous round, own prevotes of the locked and valid rounds, and the current round's
        proposal with the prevotes that justify its pol_round (so others can apply line 28)."""
        rounds = {self.round, self.round - 1, self.locked_round, self.valid_round}
        out = [m for m in self.own_messages() if m.round in rounds]
        proposal = self._proposals.get(self.round)
        if proposal is not None:
            if proposal.proposer != self._me:
                out.append(proposal)
            if proposal.pol_round is not None:
                pol = self._by_hash.get((proposal.pol_round, Step.PREVOTE), {}).get(proposal.block_hash, {})
                out += [v for v in pol.values() if v.validator != self._me]
        return out

    def proposal(self, round: int) -> Proposal | None:
        return self._proposals.get(round)

    def votes(self, round: int, kind: Step) -> dict[bytes, Vote]:
        return dict(self._votes.get((round, kind), {}))

    # -- admission: checks every message passes before it counts ------------------------------------------
    def _gate(self, height: int, round: int, buffer: Message | None) -> Rejection | None:
        """Height and round checks common to all messages; keeps next-height messages in the buffer."""
        if not self.started:
            return Rejection.NOT_STARTED
        if height < self.height:
            return Rejection.PAST_HEIGHT
        if height > self.height:
            if buffer is None or height != self.height + 1 or len(self._future) >= self.FUTURE_BUFFER_LIMIT:
                return Rejection.FUTURE_HEIGHT
            self._future[buffer] = None
            return None
        if self.decision is not None:
            return Rejection.DECIDED
        if round > self.round + self.MAX_ROUND_LEAD:
            return Rejection.ROUND_TOO_FAR
        return None

    def _admit_proposal(self, p: Proposal) -> Rejection | None:
        rejection = self._gate(p.height, p.round, buffer=p)
        if rejection is not None or p.height != self.height:
            return rejection
        if p.proposer != self.validators.proposer(p.height, p.round):
            return Rejection.WRONG_PROPOSER
        if p.pol_round is not None and p.pol_round >= p.round:
            return Rejection.INVALID_POL_ROUND
        existing = self._proposals.get(p.round)
        if existing == p:
            return Rejection.DUPLICATE
        if not p.verify(self.genesis_hash):
            return Rejection.BAD_SIGNATURE
        if existing is not None:
            return Rejection.CONFLICTING_PROPOSAL
        self._journal(p)
        self._proposals[p.round] = p
        self._note_sender(p.round, p.proposer)
        self._run_rules((p.round,))
        return None

    def _admit_vote(self, v: Vote) -> Rejection | None:
        rejection = self._gate(v.height, v.round, buffer=v)
        if rejection is not None or v.height != self.height:
            return rejection
        if v.validator not in self.validators:
            return Rejection.NOT_A_VALIDATOR
        key = (v.round, v.kind)
        if self._by_hash.get(key, {}).get(v.block_hash, {}).get(v.validator) == v:
            return Rejection.DUPLICATE
        if not v.verify(self.genesis_hash):
            return Rejection.BAD_SIGNATURE
        first = self._votes.get(key, {}).get(v.validator)
        if first is not None:
            if first.block_hash == v.block_hash:
                return Rejection.DUPLICATE         # unreachable with ed25519: one signature per message
            evidence = DuplicateVoteEvidence.from_votes(first, v)
            if evidence.key() not in self._evidence:
                self._evidence.add(evidence.key())
                self._actions.append(EvidenceFound(evidence))
            conflicts = self._conflicts.get((v.round, v.kind, v.validator), 0)
            if conflicts >= self.MAX_CONFLICTING_VOTES and v.block_hash is not None and \
                    all(p.block_hash != v.block_hash for p in self._proposals.values()):
                return Rejection.CONFLICTING_VOTE
            self._conflicts[(v.round, v.kind, v.validator)] = conflicts + 1
        self._journal(v)
        self._count(v)
        self._run_rules((v.round,))
        return None

    def _count(self, v: Vote) -> None:
        key = (v.round, v.kind)
        power = self.validators.power_of(v.validator)
        first = self._votes.setdefault(key, {})
        if v.validator not in first:
            first[v.validator] = v
            self._total[key] = self._total.get(key, 0) + power
            self._note_sender(v.round, v.validator)
        self._by_hash.setdefault(key, {}).setdefault(v.block_hash, {})[v.validator] = v
        by_hash = self._power.setdefault(key, {})
        by_hash[v.block_hash] = by_hash.get(v.block_hash, 0) + power

    def _note_sender(self, round: int, validator: bytes) -> None:
        senders = self._senders.setdefault(round, set())
        if validator not in senders:
            senders.add(validator)
            self._sender_power[round] = self._sender_power.get(round, 0) + self.validators.power_of(validator)

    # -- the rules ----------------------------------------------------------------------------------
    def _run_rules(self, touched: Iterable[int]) -> None:
        """Fire enabled rules until none is: the rules of the current round, the decision rule for every
        round a new message touched, and the round skip for a touched round ahead of ours."""
        touched = set(touched)
        fired = True
        while fired and self.decision is None:
            if any(self.upon_proposal_and_quorum_precommits(r) for r in sorted(touched | {self.round})):
                return
            fired = (self.upon_proposal_in_propose_step()
                     or self.upon_proposal_with_proof_of_lock()
                     or self.upon_quorum_prevotes_any()
                     or self.upon_proposal_and_quorum_prevotes()
                     or self.upon_quorum_prevotes_nil()
                     or self.upon_quorum_precommits_any()
                     or any(self.upon_f_plus_one_in_higher_round(r) for r in sorted(touched) if r > self.round))

    def start_round(self, round: int) -> None:
        """Lines 11-21, StartRound(round): the proposer proposes its valid value, else a new one."""
        self.round, self.step = round, Step.PROPOSE
        self._schedule(Step.PROPOSE)           # all validators, see "departures"
        if self._me is None or self.validators.proposer(self.height, round) != self._me:
            return
        if round in self._proposals:           # our own, relayed back to us after a restart
            self._actions.append(Broadcast(self._proposals[round]))
            return
        value = self.valid_value if self.valid_value is not None else self.app.propose_value(self.height, round)
        if value is None:
            return
        pol_round = None if self.valid_round == NO_ROUND else self.valid_round
        try:
            proposal = self.signer.sign_proposal(self.height, round, value, pol_round)
        except SigningRefused as refused:
            if not isinstance(refused.previous, Proposal):
                return
            proposal = refused.previous
        self._proposals[round] = proposal
        self._note_sender(round, self._me)
        self._actions.append(Broadcast(proposal))

    def upon_proposal_in_propose_step(self) -> bool:
        """Line 22: upon <PROPOSAL, h, round, v, -1> from proposer(h, round) while step = propose:
        prevote v if it is valid and we are not locked on another value, else nil."""
        p = self._proposals.get(self.round)
        if self.step != Step.PROPOSE or p is None or p.pol_round is not None:
            return False
        valid = self._valid(p.block_hash)
        if valid is None:
            return False                       # wait for the block, or for timeoutPropose
        ok = valid and (self.locked_round == NO_ROUND or self.locked_value == p.block_hash)
        self._cast(Step.PREVOTE, p.block_hash if ok else None)
        self.step = Step.PREVOTE
        return True

    def upon_proposal_with_proof_of_lock(self) -> bool:
        """Line 28: upon <PROPOSAL, h, round, v, vr> from proposer(h, round) AND 2f+1 <PREVOTE, h, vr,
        id(v)> while step = propose and 0 <= vr < round: prevote v if valid and our lock is no newer
        than vr (or is on v), else nil."""
        p = self._proposals.get(self.round)
        if self.step != Step.PROPOSE or p is None or p.pol_round is None:
            return False
        vr = p.pol_round
        if not self._quorum(vr, Step.PREVOTE, p.block_hash):
            return False
        valid = self._valid(p.block_hash)
        if valid is None:
            return False
        ok = valid and (self.locked_round <= vr or self.locked_value == p.block_hash)
        self._cast(Step.PREVOTE, p.block_hash if ok else None)
        self.step = Step.PREVOTE
        return True

    def upon_quorum_prevotes_any(self) -> bool:
        """Line 34: upon 2f+1 <PREVOTE, h, round, *> while step = prevote for the first time:
        schedule OnTimeoutPrevote."""
        if self.step != Step.PREVOTE or (34, self.round) in self._fired:
            return False
        if not self.validators.has_quorum(self._total.get((self.round, Step.PREVOTE), 0)):
            return False
        self._fired.add((34, self.round))
        self._schedule(Step.PREVOTE)
        return True

    def upon_proposal_and_quorum_prevotes(self) -> bool:
        """Line 36: upon <PROPOSAL, h, round, v, *> from proposer(h, round) AND 2f+1 <PREVOTE, h, round,
        id(v)> while valid(v) and step >= prevote for the first time: lock on v and precommit it (if
        still in prevote), and remember v as the valid value."""
        p = self._proposals.get(self.round)
        if self.step == Step.PROPOSE or p is None or (36, self.round) in self._fired:
            return False
        if not self._quorum(self.round, Step.PREVOTE, p.block_hash) or self._valid(p.block_hash) is not True:
            return False
        self._fired.add((36, self.round))
        if self.step == Step.PREVOTE:
            self.locked_value, self.locked_round = p.block_hash, self.round
            self._cast(Step.PRECOMMIT, p.block_hash)
            self.step = Step.PRECOMMIT
        self.valid_value, self.valid_round = p.block_hash, self.round
        return True

    def upon_quorum_prevotes_nil(self) -> bool:
        """Line 44: upon 2f+1 <PREVOTE, h, round, nil> while step = prevote: precommit nil."""
        if self.step != Step.PREVOTE or not self._quorum(self.round, Step.PREVOTE, None):
            return False
        self._cast(Step.PRECOMMIT, None)
        self.step = Step.PRECOMMIT
        return True

    def upon_quorum_precommits_any(self) -> bool:
        """Line 47: upon 2f+1 <PRECOMMIT, h, round, *> for the first time: schedule OnTimeoutPrecommit."""
        if (47, self.round) in self._fired:
            return False
        if not self.validators.has_quorum(self._total.get((self.round, Step.PRECOMMIT), 0)):
            return False
        self._fired.add((47, self.round))
        self._schedule(Step.PRECOMMIT)
        return True

    def upon_proposal_and_quorum_precommits(self, round: int) -> bool:
        """Line 49: upon <PROPOSAL, h, r, v, *> from proposer(h, r) AND 2f+1 <PRECOMMIT, h, r, id(v)>
        while decision[h] = nil: if valid(v), decide v (any round r, not only the current one)."""
        p = self._proposals.get(round)
        if self.decision is not None or p is None or not self._quorum(round, Step.PRECOMMIT, p.block_hash):
            return False
        if self._valid(p.block_hash) is not True:
            return False
        precommits = self._by_hash[(round, Step.PRECOMMIT)][p.block_hash].values()
        self._decide(CommitCertificate.from_precommits(precommits, self.validators))
        return True

    def upon_f_plus_one_in_higher_round(self, round: int) -> bool:
        """Line 55: upon f+1 <*, h, round, *, *> with round > round_p: StartRound(round). Someone honest
        is there already, so catch up instead of waiting out our own timeouts."""
        if round <= self.round or self._sender_power.get(round, 0) < self.validators.skip_power:
            return False
        self.start_round(round)
        return True

    def on_timeout_propose(self, height: int, round: int) -> None:
        """Line 57: no acceptable proposal in time: prevote nil."""
        if (height, round) == (self.height, self.round) and self.step == Step.PROPOSE:
            self._cast(Step.PREVOTE, None)
            self.step = Step.PREVOTE

    def on_timeout_prevote(self, height: int, round: int) -> None:
        """Line 61: prevotes did not agree in time: precommit nil."""
        if (height, round) == (self.height, self.round) and self.step == Step.PREVOTE:
            self._cast(Step.PRECOMMIT, None)
            self.step = Step.PRECOMMIT

    def on_timeout_precommit(self, height: int, round: int) -> None:
        """Line 65: the round did not decide in time: start the next one."""
        if (height, round) == (self.height, self.round):
            self.start_round(round + 1)

    # -- helpers ----------------------------------------------------------------------------------------
    def _quorum(self, round: int, kind: Step, block_hash: bytes | None) -> bool:
        return self.validators.has_quorum(self._power.get((round, kind), {}).get(block_hash, 0))

    def _valid(self, block_hash: bytes) -> bool | None:
        """valid(v), asked of the application once per block and height (None is asked again)."""
        known = self._validity.get(block_hash)
        if known is None:
            known = self.app.validate_value(self.height, block_hash)
            if known is not None:
                self._validity[block_hash] = bool(known)
        return known

    def _cast(self, kind: Step, block_hash: bytes | None) -> None:
        """Sign our vote through the guard, count it, broadcast it. If the guard already signed a
        different vote here (a restart that lost inputs), that earlier vote is the one that stands:
        count and re-send it, and if it was a precommit for a block, lock on that block as we did then."""
        if self._me is None:
            return
        try:
            vote = self.signer.sign_vote(kind, self.height, self.round, block_hash)
        except SigningRefused as refused:
            if not isinstance(refused.previous, Vote):
                return
            vote = refused.previous
            if kind == Step.PRECOMMIT and vote.block_hash is not None and self.locked_round < vote.round:
                self.locked_value, self.locked_round = vote.block_hash, vote.round
        if self._me not in self._votes.get((vote.round, vote.kind), {}):
            self._count(vote)
        self._actions.append(Broadcast(vote))

    def _schedule(self, kind: Step) -> None:
        self._actions.append(ScheduleTimeout(kind, self.height, self.round, self.config.duration_ms(kind, self.round)))

    def _decide(self, certificate: CommitCertificate) -> None:
        """Line 51: decision[h] = v. The node commits, then calls start(h + 1)."""
        self.decision = certificate.block_hash
        self._pending_commit = None
        self._actions.append(Decide(certificate.height, certificate.round, certificate.block_hash, certificate))

    def _try_pending_commit(self) -> None:
        cert = self._pending_commit
        if cert is None or self.decision is not None:
            return
        valid = self._valid(cert.block_hash)
        if valid is None:
            return
        self._pending_commit = None
        if valid:
            self._decide(cert)

    def _journal(self, entry: Entry) -> None:
        if self.journal is not None and not self._replaying:
            self.journal.append(entry)

    def _outcome(self, rejection: Rejection | None) -> Outcome:
        actions, self._actions = tuple(self._actions), []
        return Outcome(actions, rejection)

    @property
    def is_decided(self) -> bool:
        return self.decision is not None
