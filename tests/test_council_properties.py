"""The council's safety property over random sequences of motions, votes, withdrawals, enact
attempts and block gaps: a root call runs only after its motion reached its threshold and its
enactment delay passed, and at most once.

Chain: tests/test_council.py's (no sudo; five members, more than half for
balances.force_set_balance, so three ayes; voting period 10, enactment delay 2), with at most four
open motions so the cap is met too. Motion k carries `balances.force_set_balance(marker_k, amount_k)`
for an account used by no one else: its BalanceSet event and balance are the observable effect.

A hypothesis state machine keeps its own model of the motions (ayes, nays, end, enact_at, deadline)
and predicts every extrinsic's verdict before the block runs it: a refusal must come with exactly the
predicted sentence. After every step, independently of the model's predictions, from the chain's
events: every BalanceSet of a marker happened in a block that enacted that marker's motion, at or
after the enact_at its Passed event announced, a Passed event was seen with ayes at the required
count, and each marker was set at most once; and each marker's balance is its amount exactly when
the model says its motion was enacted.

Derandomized (the same examples every run); GRIDCHAIN_FUZZ=<examples> explores with fresh seeds.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from pallets import council, system
from pallets.council import Error as E
from primitives.hashing import keccak256
from primitives.keys import Keypair
from tests.council_helpers import plain_call
from tests.runtime_harness import BOB, EVE, events_named
from tests.test_council import DELAY, MEMBERS, OPERATOR, VOTING, new_chain
from tests.test_identity import failures

ACTORS: list[Keypair] = MEMBERS + [BOB, EVE, OPERATOR]      # members first, then three outsiders
MEMBER_KEYS = {k.public_key for k in MEMBERS}
REQUIRED = council.required_count(council.parse_threshold(">1/2"), len(MEMBERS))   # 3 of 5
MAX_OPEN = 4
_FUZZ = int(os.environ.get("GRIDCHAIN_FUZZ", "0"))


def marker(k: int) -> bytes:
    return keccak256(b"council-marker" + k.to_bytes(4, "big"))


def amount(k: int) -> int:
    return 1_000 + k


@dataclass
class MotionModel:
    proposer: bytes
    end: int
    ayes: set = field(default_factory=set)
    nays: set = field(default_factory=set)
    enact_at: int | None = None
    deadline: int = 0


class CouncilMachine(RuleBasedStateMachine):

    @initialize()
    def start(self) -> None:
        self._saved_cap = council.Config.max_open_motions
        council.Config.max_open_motions = MAX_OPEN
        self.chain = new_chain()
        self.runtime = self.chain.runtime
        self.next_id = 0
        self.open: dict[int, MotionModel] = {}
        self.enacted: set[int] = set()
        # observed from events, for the model-independent check
        self.passed_seen: dict[int, tuple[int, int]] = {}     # id -> (ayes, enact_at)
        self.enacted_at: dict[int, int] = {}                  # id -> block number
        self.marker_sets: dict[bytes, list[int]] = {}         # marker -> blocks that set it

    def teardown(self) -> None:
        council.Config.max_open_motions = getattr(self, "_saved_cap", council.Config.max_open_motions)

    # --- running a block --------------------------------------------------------------------
    def _expire(self, n: int) -> None:
        """The hook of block n, as the model sees it."""
        for mid in [mid for mid, m in self.open.items() if m.deadline == n]:
            del self.open[mid]

    def _run(self, xt: bytes | None, expected_error: str | None) -> None:
        self._run_many([xt] if xt is not None else [], [expected_error] if expected_error else [])

    def _run_many(self, xts: list[bytes], expected_errors: list[str]) -> None:
        """One block with `xts`; their failures must be exactly `expected_errors`, in order."""
        r = self.chain.block(*xts)
        n = self.chain.number
        got = failures(self.chain, r)
        assert got == expected_errors, f"block {n}: expected {expected_errors}, got {got}"
        for mid, ayes, _nays, enact_at in events_named(r, self.runtime, "council", "Passed"):
            self.passed_seen[mid] = (ayes, enact_at)
        for mid, _result in events_named(r, self.runtime, "council", "Enacted"):
            assert mid not in self.enacted_at, f"motion {mid} enacted twice"
            self.enacted_at[mid] = n
        for who, _free in events_named(r, self.runtime, "balances", "BalanceSet"):
            self.marker_sets.setdefault(who, []).append(n)

    def _pick(self, pick: int) -> int:
        """A motion id, mostly an open one; else one never proposed or already closed."""
        candidates = sorted(self.open) * 6 + [self.next_id, max(0, self.next_id - 1)]
        return candidates[pick % len(candidates)]

    def _tally(self, mid: int, now: int) -> None:
        m = self.open[mid]
        if len(m.ayes) >= REQUIRED:
            m.enact_at = now + DELAY
            m.deadline = m.enact_at + VOTING
        elif len(m.ayes) + len(MEMBERS) - len(m.ayes) - len(m.nays) < REQUIRED:
            del self.open[mid]

    # --- rules -------------------------------------------------------------------------------
    @rule(who=st.sampled_from([0, 1, 2, 3, 4] * 3 + [5, 6, 7]))
    def propose(self, who: int) -> None:
        kp = ACTORS[who]
        n = self.chain.number + 1
        self._expire(n)
        k = self.next_id
        xt = self.chain.xt(kp, "council", "propose",
                           plain_call(self.chain, "balances", "force_set_balance", marker(k), amount(k)))
        error = None
        if kp.public_key not in MEMBER_KEYS:
            error = E.NotMember.message
        elif len(self.open) >= MAX_OPEN:
            error = E.TooManyMotions.message
        if error is None:
            self.next_id += 1
            self.open[k] = MotionModel(kp.public_key, n + VOTING, {kp.public_key}, deadline=n + VOTING)
            self._tally(k, n)
        self._run(xt, error)

    @precondition(lambda self: self.open or self.next_id % 3 == 2)
    @rule(who=st.sampled_from([0, 1, 2, 3, 4] * 3 + [5, 6, 7]), pick=st.integers(0, 15), approve=st.sampled_from([True, True, True, False]))
    def vote(self, who: int, pick: int, approve: bool) -> None:
        kp = ACTORS[who]
        n = self.chain.number + 1
        self._expire(n)
        mid = self._pick(pick)
        xt = self.chain.xt(kp, "council", "vote", mid, approve)
        m = self.open.get(mid)
        error = None
        if kp.public_key not in MEMBER_KEYS:
            error = E.NotMember.message
        elif m is None:
            error = E.UnknownMotion.message
        elif n >= m.end:
            error = E.VotingPeriodOver.message
        elif m.enact_at is not None:
            error = E.AlreadyPassed.message
        elif kp.public_key in m.ayes or kp.public_key in m.nays:
            error = E.AlreadyVoted.message
        else:
            (m.ayes if approve else m.nays).add(kp.public_key)
            self._tally(mid, n)
        self._run(xt, error)

    @precondition(lambda self: self.open)
    @rule(pick=st.integers(0, 15), voters=st.lists(st.integers(0, len(ACTORS) - 1), min_size=1, max_size=5,
                                                          unique=True))
    def votes_in_one_block(self, pick: int, voters: list[int]) -> None:
        """Several ayes in one block (the way a motion usually passes); those after it passed are
        refused."""
        n = self.chain.number + 1
        self._expire(n)
        mid = self._pick(pick)
        xts, errors = [], []
        for who in voters:
            kp = ACTORS[who]
            xts.append(self.chain.xt(kp, "council", "vote", mid, True))
            m = self.open.get(mid)
            if kp.public_key not in MEMBER_KEYS:
                errors.append(E.NotMember.message)
            elif m is None:
                errors.append(E.UnknownMotion.message)
            elif n >= m.end:
                errors.append(E.VotingPeriodOver.message)
            elif m.enact_at is not None:
                errors.append(E.AlreadyPassed.message)
            elif kp.public_key in m.ayes or kp.public_key in m.nays:
                errors.append(E.AlreadyVoted.message)
            else:
                m.ayes.add(kp.public_key)
                self._tally(mid, n)
        self._run_many(xts, errors)

    @precondition(lambda self: self.open or self.next_id % 3 == 2)
    @rule(who=st.sampled_from([0, 1, 2, 3, 4] * 3 + [5, 6, 7]), pick=st.integers(0, 15))
    def enact(self, who: int, pick: int) -> None:
        kp = ACTORS[who]
        n = self.chain.number + 1
        self._expire(n)
        mid = self._pick(pick)
        xt = self.chain.xt(kp, "council", "enact", mid)
        m = self.open.get(mid)
        error = None
        if m is None:
            error = E.UnknownMotion.message
        elif m.enact_at is None:
            error = E.NotPassed.message
        elif n < m.enact_at:
            error = E.TooEarly.message
        else:
            del self.open[mid]
            self.enacted.add(mid)
        self._run(xt, error)

    @precondition(lambda self: self.open or self.next_id % 3 == 2)
    @rule(who=st.sampled_from([0, 1, 2, 3, 4] * 3 + [5, 6, 7]), pick=st.integers(0, 15))
    def withdraw(self, who: int, pick: int) -> None:
        kp = ACTORS[who]
        n = self.chain.number + 1
        self._expire(n)
        mid = self._pick(pick)
        xt = self.chain.xt(kp, "council", "withdraw", mid)
        m = self.open.get(mid)
        error = None
        if m is None:
            error = E.UnknownMotion.message
        elif m.proposer != kp.public_key:
            error = E.NotProposer.message
        else:
            del self.open[mid]
        self._run(xt, error)

    @rule(blocks=st.sampled_from([1, 1, 1, 1, 1, 2, VOTING - 1, VOTING + DELAY]))
    def advance(self, blocks: int) -> None:
        for _ in range(blocks):
            self._expire(self.chain.number + 1)
            self._run(None, None)

    # --- invariants ----------------------------------------------------------------------------
    @invariant()
    def a_root_call_ran_only_after_its_threshold_and_delay_and_at_most_once(self) -> None:
        if not hasattr(self, "chain"):
            return
        for k in range(self.next_id):
            sets = self.marker_sets.get(marker(k), [])
            assert len(sets) <= 1, f"motion {k}'s call ran {len(sets)} times"
            if sets:
                assert self.enacted_at.get(k) == sets[0], f"motion {k}'s call ran outside its enactment"
                ayes, enact_at = self.passed_seen[k]
                assert ayes >= REQUIRED and sets[0] >= enact_at
            free = self.chain.read(lambda k=k: system.account.get(marker(k)).free)
            assert free == (amount(k) if k in self.enacted else 0)

    @invariant()
    def the_open_motions_are_the_models(self) -> None:
        if not hasattr(self, "chain"):
            return
        on_chain = dict(self.chain.read(council.open_motions))
        assert sorted(on_chain) == sorted(self.open)
        for mid, m in on_chain.items():
            model = self.open[mid]
            assert (set(m.ayes), set(m.nays), m.end, m.enact_at, m.deadline) == \
                (model.ayes, model.nays, model.end, model.enact_at, model.deadline)
        assert self.chain.read(council.motion_count.get) == len(self.open)
        assert len(self.chain.read(lambda: list(council.deadlines.items()))) <= MAX_OPEN


CouncilMachine.TestCase.settings = settings(
    max_examples=_FUZZ or 15, stateful_step_count=30, deadline=None, derandomize=not _FUZZ,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

TestCouncilProperties = CouncilMachine.TestCase
