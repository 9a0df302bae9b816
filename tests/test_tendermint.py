"""The Tendermint state machine, rule by rule (Algorithm 1 of the paper), and its messages, commit
certificates, evidence, validator set, signing guard and WAL. No network: inputs in, actions out."""
from __future__ import annotations

import os
import stat

import msgpack
import pytest

from consensus.commit import CommitCertificate, CommitSig, InvalidCommit
from consensus.evidence import DuplicateVoteEvidence, InvalidEvidence
from consensus.messages import (NO_ROUND, Proposal, Step, Vote, decode_message, encode_message, sign_proposal,
                                sign_vote)
from consensus.signer import FileSigner, MemorySigner, SigningRefused
from consensus.tendermint import (Broadcast, Decide, EvidenceFound, Rejection, ScheduleTimeout, Tendermint,
                                  TimeoutConfig)
from consensus.validator_set import InvalidValidatorSet, Validator, ValidatorSet
from consensus.wal import FileWAL, MemoryWAL, SignRecord, StartHeight, WALCorrupted, WALLocked, frame
from primitives.codec import CodecError, pack
from primitives.hashing import keccak256
from primitives.keys import dev_keypair

GENESIS = keccak256(b"gridchain/test/genesis")
OTHER_GENESIS = keccak256(b"gridchain/other/genesis")
KEYS = [dev_keypair(n) for n in ("Alice", "Bob", "Charlie", "Dave")]
EVE = dev_keypair("Eve")
VSET = ValidatorSet.from_keys(k.public_key for k in KEYS)
H = 1
A, B, C = b"\xaa" * 32, b"\xbb" * 32, b"\xcc" * 32
ALICE, BOB, CHARLIE, DAVE = range(4)
# proposer(h=1, r) = (1 + r) mod 4: round 0 Bob, 1 Charlie, 2 Dave, 3 Alice


class App:
    """The application side: proposes `value`, judges blocks (pending ones answer None)."""

    def __init__(self, value: bytes = A, invalid: tuple = (), pending: tuple = ()) -> None:
        self.value, self.invalid, self.pending = value, set(invalid), set(pending)
        self.asked_to_propose: list[tuple[int, int]] = []

    def propose_value(self, height, round):
        self.asked_to_propose.append((height, round))
        return self.value

    def validate_value(self, height, block_hash):
        if block_hash in self.pending:
            return None
        return block_hash not in self.invalid


def started(me=ALICE, app=None, wal=None, height=H):
    """A validator's machine (signer and journal on one in-memory WAL) and the outcome of its start."""
    wal = wal if wal is not None else MemoryWAL()
    m = Tendermint(VSET, GENESIS, app or App(), MemorySigner(KEYS[me], GENESIS, wal), journal=wal)
    return m, m.start(height)


def machine(me=ALICE, app=None, wal=None, height=H):
    return started(me, app, wal, height)[0]


def prevote(i, value, round=0, height=H):
    return sign_vote(KEYS[i], GENESIS, Step.PREVOTE, height, round, value)


def precommit(i, value, round=0, height=H):
    return sign_vote(KEYS[i], GENESIS, Step.PRECOMMIT, height, round, value)


def proposal(value, round=0, pol_round=None, height=H):
    return sign_proposal(KEYS[(height + round) % 4], GENESIS, height, round, value, pol_round)


def sent(outcome, kind=None):
    msgs = [a.message for a in outcome.actions if isinstance(a, Broadcast)]
    if kind == Step.PROPOSE:
        return [m for m in msgs if isinstance(m, Proposal)]
    return [m for m in msgs if isinstance(m, Vote) and (kind is None or m.kind == kind)]


def timeouts(outcome):
    return [(a.kind, a.round, a.duration_ms) for a in outcome.actions if isinstance(a, ScheduleTimeout)]


def feed(m, *msgs):
    outs = [m.on_proposal(x) if isinstance(x, Proposal) else m.on_vote(x) for x in msgs]
    for o in outs:
        assert o.rejected is None, o.rejected
    return outs


def lock_alice_on(value=A, round=0):
    """Alice at round `round`, having prevoted and precommitted `value` (locked on it)."""
    m = machine()
    advance(m, round)
    feed(m, proposal(value, round), prevote(BOB, value, round), prevote(CHARLIE, value, round))
    assert (m.locked_value, m.locked_round) == (value, round)
    return m


def advance(m, to_round):
    while m.round < to_round:
        m.on_timeout(Step.PRECOMMIT, m.height, m.round)     # line 65 needs only (height, round)


# -- StartRound (line 11) and the propose step --------------------------------------------------------
def test_proposer_proposes_the_applications_value_and_prevotes_it():
    app = App(value=B)
    m, start = started(me=BOB, app=app)
    [p] = sent(start, Step.PROPOSE)
    assert (p.height, p.round, p.block_hash, p.pol_round, p.proposer) == (H, 0, B, None, KEYS[BOB].public_key)
    assert p.verify(GENESIS)
    assert [v.block_hash for v in sent(start, Step.PREVOTE)] == [B]     # line 22 on its own proposal
    assert app.asked_to_propose == [(H, 0)] and m.step == Step.PREVOTE


def test_non_proposer_only_schedules_timeout_propose():
    m, start = started(me=ALICE)
    assert sent(start) == [] and sent(start, Step.PROPOSE) == []
    assert timeouts(start) == [(Step.PROPOSE, 0, TimeoutConfig().propose_ms)]
    assert m.step == Step.PROPOSE


def test_prevote_for_a_valid_proposal():                     # lines 22-24, 27
    m = machine()
    [out] = feed(m, proposal(A))
    assert [(v.kind, v.block_hash, v.validator) for v in sent(out)] == [(Step.PREVOTE, A, KEYS[ALICE].public_key)]
    assert m.step == Step.PREVOTE


def test_prevote_nil_for_an_invalid_proposal():              # line 26
    m = machine(app=App(invalid=(A,)))
    [out] = feed(m, proposal(A))
    assert [v.block_hash for v in sent(out, Step.PREVOTE)] == [None]


def test_missing_block_body_waits_then_prevotes_when_it_arrives():
    m = machine(app=App(pending=(A,)))
    [out] = feed(m, proposal(A))
    assert sent(out) == [] and m.step == Step.PROPOSE
    m.app.pending.clear()
    out = m.on_value_available(H, A)
    assert [v.block_hash for v in sent(out, Step.PREVOTE)] == [A]


def test_timeout_propose_prevotes_nil():                     # line 57
    m = machine(app=App(pending=(A,)))
    feed(m, proposal(A))
    out = m.on_timeout(Step.PROPOSE, H, 0)
    assert [v.block_hash for v in sent(out, Step.PREVOTE)] == [None] and m.step == Step.PREVOTE
    assert sent(m.on_timeout(Step.PROPOSE, H, 0)) == []     # stale: step moved on


def test_proposer_with_nothing_to_propose_moves_on_by_its_timeout():
    m, start = started(me=BOB, app=App(value=None))
    assert sent(start, Step.PROPOSE) == [] and timeouts(start) == [(Step.PROPOSE, 0, TimeoutConfig().propose_ms)]
    assert [v.block_hash for v in sent(m.on_timeout(Step.PROPOSE, H, 0), Step.PREVOTE)] == [None]


def test_a_single_validator_decides_on_its_own():
    alone = ValidatorSet.from_keys([KEYS[ALICE].public_key])
    out = Tendermint(alone, GENESIS, App(), MemorySigner(KEYS[ALICE], GENESIS)).start(H)
    [d] = [a for a in out.actions if isinstance(a, Decide)]
    d.certificate.verify(alone, GENESIS)


def test_a_follower_without_a_key_decides_but_never_speaks():
    m = Tendermint(VSET, GENESIS, App())
    outs = [m.start(H)] + feed(m, proposal(A), *[prevote(i, A) for i in (BOB, CHARLIE, DAVE)],
                               *[precommit(i, A) for i in (BOB, CHARLIE, DAVE)])
    assert [a.block_hash for o in outs for a in o.actions if isinstance(a, Decide)] == [A]
    assert not any(isinstance(a, Broadcast) for o in outs for a in o.actions)


# -- prevote step ---------------------------------------------------------------------------------------
def test_quorum_of_mixed_prevotes_schedules_timeout_prevote_once():     # line 34
    m = machine()
    feed(m, proposal(A), prevote(BOB, None))
    [out] = feed(m, prevote(CHARLIE, B))
    assert timeouts(out) == [(Step.PREVOTE, 0, TimeoutConfig().prevote_ms)]
    [out] = feed(m, prevote(DAVE, None))
    assert timeouts(out) == []


def test_quorum_prevotes_for_the_proposal_lock_and_precommit():          # line 36
    m = machine()
    outs = feed(m, proposal(A), prevote(BOB, A), prevote(CHARLIE, A))
    assert [v.block_hash for v in sent(outs[-1], Step.PRECOMMIT)] == [A]
    assert (m.locked_value, m.locked_round, m.valid_value, m.valid_round) == (A, 0, A, 0)
    assert m.step == Step.PRECOMMIT


def test_quorum_prevotes_after_precommitting_nil_update_valid_value_only():   # line 36, step = precommit
    m = machine()
    m.on_timeout(Step.PROPOSE, H, 0)                                     # Alice prevotes nil
    feed(m, prevote(BOB, A), prevote(CHARLIE, A))
    out = m.on_timeout(Step.PREVOTE, H, 0)                                 # line 61
    assert [v.block_hash for v in sent(out, Step.PRECOMMIT)] == [None]
    outs = feed(m, proposal(A), prevote(DAVE, A))                         # now 2f+1 prevotes for A
    assert [sent(o) for o in outs] == [[], []]                            # no second precommit
    assert (m.valid_value, m.valid_round, m.locked_value, m.locked_round) == (A, 0, None, NO_ROUND)


def test_quorum_nil_prevotes_precommit_nil():                              # line 44
    m = machine()
    m.on_timeout(Step.PROPOSE, H, 0)
    outs = feed(m, prevote(BOB, None), prevote(CHARLIE, None))
    assert [v.block_hash for v in sent(outs[-1], Step.PRECOMMIT)] == [None]
    assert m.locked_round == NO_ROUND


def test_timeout_prevote_precommits_nil():                                  # line 61
    m = machine()
    feed(m, proposal(A), prevote(BOB, B), prevote(CHARLIE, None))
    out = m.on_timeout(Step.PREVOTE, H, 0)
    assert [v.block_hash for v in sent(out, Step.PRECOMMIT)] == [None] and m.step == Step.PRECOMMIT


# -- precommits and decision --------------------------------------------------------------------------
def test_quorum_of_precommits_schedules_timeout_precommit_and_timeout_starts_next_round():   # 47, 65
    m = machine()
    feed(m, precommit(BOB, None), precommit(CHARLIE, B))
    [out] = feed(m, precommit(DAVE, None))
    assert timeouts(out) == [(Step.PRECOMMIT, 0, TimeoutConfig().precommit_ms)]
    out = m.on_timeout(Step.PRECOMMIT, H, 0)
    assert m.round == 1 and m.step == Step.PROPOSE
    assert timeouts(out) == [(Step.PROPOSE, 1, 3000 + 500)]


def test_decide_on_quorum_of_precommits_with_a_certificate():              # line 49
    m = machine()
    outs = feed(m, proposal(A), prevote(BOB, A), prevote(CHARLIE, A), precommit(BOB, A), precommit(CHARLIE, A))
    [d] = [a for a in outs[-1].actions if isinstance(a, Decide)]
    assert (d.height, d.round, d.block_hash) == (H, 0, A)
    d.certificate.verify(VSET, GENESIS)
    assert {s.validator for s in d.certificate.signatures} == {KEYS[i].public_key for i in (ALICE, BOB, CHARLIE)}
    assert m.on_vote(precommit(DAVE, A)).rejected == Rejection.DECIDED


def test_decide_needs_the_proposal_and_works_for_an_earlier_round():
    m = machine()
    advance(m, 2)
    feed(m, precommit(BOB, A), precommit(CHARLIE, A), precommit(DAVE, A))
    assert m.decision is None                                              # 2f+1 precommits, no proposal
    [out] = feed(m, proposal(A, round=0))
    assert [a.block_hash for a in out.actions if isinstance(a, Decide)] == [A]


def test_no_decision_for_an_invalid_block_even_with_precommits():
    m = machine(app=App(invalid=(A,)))
    feed(m, proposal(A), precommit(BOB, A), precommit(CHARLIE, A), precommit(DAVE, A))
    assert m.decision is None


# -- round skip (line 55) and timeouts ------------------------------------------------------------------
def test_f_plus_one_messages_of_a_higher_round_skip_to_it():
    m = machine()
    feed(m, prevote(BOB, None, round=3))
    assert m.round == 0                                                    # f = 1: one is not enough
    [out] = feed(m, precommit(CHARLIE, None, round=3))
    assert m.round == 3
    # StartRound(3): Alice is proposer(1, 3), so she proposes, then prevotes her own proposal
    assert [p.round for p in sent(out, Step.PROPOSE)] == [3]
    assert [(v.round, v.block_hash) for v in sent(out, Step.PREVOTE)] == [(3, A)]


def test_timeouts_grow_with_the_round():
    cfg = TimeoutConfig(propose_ms=100, propose_delta_ms=10, prevote_ms=50, prevote_delta_ms=5,
                        precommit_ms=40, precommit_delta_ms=4)
    assert [cfg.duration_ms(Step.PROPOSE, r) for r in (0, 1, 7)] == [100, 110, 170]
    assert cfg.duration_ms(Step.PREVOTE, 2) == 60 and cfg.duration_ms(Step.PRECOMMIT, 3) == 52


# -- locks and proof-of-lock rounds (lines 22-32) ----------------------------------------------------
def test_locked_validator_prevotes_nil_for_another_value():
    m = lock_alice_on(A, round=0)
    advance(m, 1)
    [out] = feed(m, proposal(B, round=1))
    assert [v.block_hash for v in sent(out, Step.PREVOTE)] == [None]


def test_locked_validator_prevotes_its_locked_value_again():
    m = lock_alice_on(A, round=0)
    advance(m, 1)
    [out] = feed(m, proposal(A, round=1))
    assert [v.block_hash for v in sent(out, Step.PREVOTE)] == [A]


def test_proof_of_lock_no_older_than_the_lock_unlocks():                   # lines 28-30
    m = lock_alice_on(A, round=0)
    advance(m, 1)
    feed(m, prevote(BOB, B, 1), prevote(CHARLIE, B, 1), prevote(DAVE, B, 1))
    advance(m, 2)
    [out] = feed(m, proposal(B, round=2, pol_round=1))
    assert [v.block_hash for v in sent(out, Step.PREVOTE)] == [B]


def test_proof_of_lock_older_than_the_lock_prevotes_nil():                  # line 32
    m = machine()
    m.on_timeout(Step.PROPOSE, H, 0)
    feed(m, prevote(BOB, B, 0), prevote(CHARLIE, B, 0), prevote(DAVE, B, 0))   # POL for B in round 0
    advance(m, 1)
    feed(m, proposal(A, round=1), prevote(BOB, A, 1), prevote(CHARLIE, A, 1))
    assert (m.locked_value, m.locked_round) == (A, 1)
    advance(m, 2)
    [out] = feed(m, proposal(B, round=2, pol_round=0))
    assert [v.block_hash for v in sent(out, Step.PREVOTE)] == [None]


def test_proposal_with_proof_of_lock_waits_for_the_prevotes():
    m = machine()
    advance(m, 2)
    [out] = feed(m, proposal(B, round=2, pol_round=1))
    assert sent(out) == []
    feed(m, prevote(BOB, B, 1), prevote(CHARLIE, B, 1))
    [out] = feed(m, prevote(DAVE, B, 1))
    assert [v.block_hash for v in sent(out, Step.PREVOTE)] == [B]


def test_proposer_reproposes_its_valid_value_with_its_round():              # lines 15-16
    app = App(value=C)
    m = machine(app=app)
    advance(m, 1)
    feed(m, proposal(B, round=1), prevote(BOB, B, 1), prevote(CHARLIE, B, 1))
    assert (m.valid_value, m.valid_round) == (B, 1)
    advance(m, 2)
    out = m.on_timeout(Step.PRECOMMIT, H, 2)                               # round 3: Alice proposes
    [p] = sent(out, Step.PROPOSE)
    assert (p.round, p.block_hash, p.pol_round, p.proposer) == (3, B, 1, KEYS[ALICE].public_key)
    assert app.asked_to_propose == []                                      # the valid value, not a new one


# -- admission ---------------------------------------------------------------------------------------
def test_messages_that_do_not_count_are_rejected_with_a_reason():
    m = machine()
    bad_sig = prevote(BOB, A)
    bad_sig = Vote(bad_sig.kind, bad_sig.height, bad_sig.round, bad_sig.block_hash, bad_sig.validator,
                   bytes([bad_sig.signature[0] ^ 1]) + bad_sig.signature[1:])
    cases = [
        (sign_vote(EVE, GENESIS, Step.PREVOTE, H, 0, A), Rejection.NOT_A_VALIDATOR),
        (bad_sig, Rejection.BAD_SIGNATURE),
        (sign_vote(KEYS[BOB], OTHER_GENESIS, Step.PREVOTE, H, 0, A), Rejection.BAD_SIGNATURE),
        (prevote(BOB, A, height=0), Rejection.PAST_HEIGHT),
        (prevote(BOB, A, height=H + 2), Rejection.FUTURE_HEIGHT),
        (prevote(BOB, A, round=Tendermint.MAX_ROUND_LEAD + 1), Rejection.ROUND_TOO_FAR),
        (sign_proposal(KEYS[CHARLIE], GENESIS, H, 0, A, None), Rejection.WRONG_PROPOSER),
        (Proposal(H, 1, A, 1, KEYS[CHARLIE].public_key, b"\0" * 64), Rejection.INVALID_POL_ROUND),
    ]
    for msg, reason in cases:
        out = m.on_proposal(msg) if isinstance(msg, Proposal) else m.on_vote(msg)
        assert out.rejected == reason, (msg, out.rejected)
        assert out.actions == ()
    assert m.on_vote(prevote(BOB, A)).accepted
    assert m.on_vote(prevote(BOB, A)).rejected == Rejection.DUPLICATE
    assert Rejection.BAD_SIGNATURE.peer_fault and not Rejection.DUPLICATE.peer_fault


def test_messages_before_start_are_refused():
    m = Tendermint(VSET, GENESIS, App(), MemorySigner(KEYS[ALICE], GENESIS))
    assert m.on_vote(prevote(BOB, A)).rejected == Rejection.NOT_STARTED


def test_next_height_messages_are_kept_and_replayed_by_start():
    m = machine()
    assert m.on_proposal(proposal(C, height=H + 1)).accepted
    out = m.start(H + 1)
    assert [v.block_hash for v in sent(out, Step.PREVOTE)] == [C]


def test_equivocation_produces_verifiable_evidence_once_and_both_votes_count():
    m = machine()
    feed(m, proposal(A))
    out_a = m.on_vote(prevote(BOB, A))
    out_b = m.on_vote(prevote(BOB, B))
    [ev] = [a.evidence for a in out_b.actions if isinstance(a, EvidenceFound)]
    ev.verify(VSET, GENESIS)
    assert ev.validator == KEYS[BOB].public_key and out_a.accepted
    assert not [a for a in m.on_vote(prevote(BOB, C)).actions if isinstance(a, EvidenceFound)]
    out = m.on_vote(prevote(CHARLIE, A))                                   # Bob still counts for A
    assert [v.block_hash for v in sent(out, Step.PRECOMMIT)] == [A]


def test_commit_certificate_from_a_peer_decides_and_a_short_one_is_refused():
    m = machine()
    short = CommitCertificate.from_precommits([precommit(BOB, A), precommit(CHARLIE, A)], VSET)
    assert m.on_commit(short).rejected == Rejection.INVALID_COMMIT
    cert = CommitCertificate.from_precommits([precommit(i, A) for i in (BOB, CHARLIE, DAVE)], VSET)
    out = m.on_commit(cert)
    assert [(a.height, a.block_hash) for a in out.actions if isinstance(a, Decide)] == [(H, A)]


def test_catch_up_messages_carry_the_proposal_and_its_proof_of_lock():
    m = machine()
    advance(m, 2)
    feed(m, prevote(BOB, B, 1), prevote(CHARLIE, B, 1), prevote(DAVE, B, 1), proposal(B, round=2, pol_round=1))
    msgs = m.catch_up_messages()
    assert proposal(B, round=2, pol_round=1) in msgs
    assert {v.validator for v in msgs if isinstance(v, Vote) and v.round == 1} == \
        {KEYS[i].public_key for i in (BOB, CHARLIE, DAVE)}
    assert any(isinstance(v, Vote) and v.validator == KEYS[ALICE].public_key and v.round == 2 for v in msgs)


# -- recovery ------------------------------------------------------------------------------------------
def test_recover_from_the_wal_restores_the_lock_and_re_signs_identically():
    wal = MemoryWAL()
    m = machine(wal=wal)
    outs = feed(m, proposal(A), prevote(BOB, A), prevote(CHARLIE, A))
    [my_precommit] = sent(outs[-1], Step.PRECOMMIT)
    wal.crash()                                                            # lose what was not synced
    again = Tendermint(VSET, GENESIS, App(), MemorySigner(KEYS[ALICE], GENESIS, wal), journal=wal)
    out = again.recover(wal.entries(), H)
    assert (again.locked_value, again.locked_round, again.step) == (A, 0, Step.PRECOMMIT)
    assert my_precommit in sent(out, Step.PRECOMMIT)                       # same signature, re-sent
    advance(again, 1)
    [out] = feed(again, proposal(B, round=1))
    assert [v.block_hash for v in sent(out, Step.PREVOTE)] == [None]       # still locked on A


def test_recover_from_a_file_wal_after_a_process_restart(tmp_path):
    path = tmp_path / "consensus.wal"
    wal = FileWAL(path)
    m = Tendermint(VSET, GENESIS, App(pending=(A,)), FileSigner(KEYS[ALICE], GENESIS, wal), journal=wal)
    m.start(H)
    feed(m, proposal(A), prevote(BOB, A))
    m.app.pending.clear()
    m.on_value_available(H, A)                                             # now Alice prevotes A
    [out] = feed(m, prevote(CHARLIE, A))
    [my_precommit] = sent(out, Step.PRECOMMIT)
    wal.close()                                                            # the process dies
    wal = FileWAL(path)
    again = Tendermint(VSET, GENESIS, App(), FileSigner(KEYS[ALICE], GENESIS, wal), journal=wal)
    out = again.recover(wal.entries(), H)
    assert (again.locked_value, again.locked_round, again.step) == (A, 0, Step.PRECOMMIT)
    assert my_precommit in sent(out, Step.PRECOMMIT)
    wal.close()


def test_recover_rearms_only_the_pending_timeouts_of_the_current_round():
    wal = MemoryWAL()
    m = machine(wal=wal)
    feed(m, proposal(A), prevote(BOB, None), prevote(CHARLIE, B))          # timeout prevote scheduled
    again = Tendermint(VSET, GENESIS, App(), MemorySigner(KEYS[ALICE], GENESIS, wal), journal=wal)
    out = again.recover(wal.entries(), H)
    assert timeouts(out) == [(Step.PREVOTE, 0, TimeoutConfig().prevote_ms)]


def test_a_vote_signed_before_a_crash_stands_over_what_the_replay_would_say():
    wal = MemoryWAL()
    old = MemorySigner(KEYS[ALICE], GENESIS, wal)
    signed = old.sign_vote(Step.PRECOMMIT, H, 0, A)                        # inputs behind it are lost
    m = Tendermint(VSET, GENESIS, App(), MemorySigner(KEYS[ALICE], GENESIS, wal), journal=wal)
    m.start(H)
    m.on_timeout(Step.PROPOSE, H, 0)
    outs = feed(m, prevote(BOB, None), prevote(CHARLIE, None), prevote(DAVE, None))   # says: precommit nil
    assert sent(outs[-1], Step.PRECOMMIT) == [signed]
    assert (m.locked_value, m.locked_round) == (A, 0)


# -- messages --------------------------------------------------------------------------------------
def test_messages_round_trip_through_the_wire_envelope():
    for msg in (prevote(BOB, A), precommit(CHARLIE, None, round=7), proposal(B, round=2, pol_round=1)):
        assert decode_message(encode_message(msg)) == msg


def test_a_flipped_byte_or_a_foreign_genesis_fails_verification():
    v = prevote(BOB, A)
    assert v.verify(GENESIS) and not v.verify(OTHER_GENESIS)
    for field_value in ({"round": 1}, {"height": 2}, {"block_hash": B}, {"block_hash": None},
                        {"kind": Step.PRECOMMIT}, {"validator": KEYS[CHARLIE].public_key}):
        assert not Vote(**{**{f: getattr(v, f) for f in ("kind", "height", "round", "block_hash", "validator",
                                                         "signature")}, **field_value}).verify(GENESIS)
    raw = bytearray(encode_message(v))
    raw[-1] ^= 0x01                                                         # last signature byte
    assert not decode_message(bytes(raw)).verify(GENESIS)
    p = proposal(A, round=1, pol_round=0)
    assert p.verify(GENESIS) and not p.verify(OTHER_GENESIS)
    assert not Proposal(p.height, p.round, p.block_hash, None, p.proposer, p.signature).verify(GENESIS)


@pytest.mark.parametrize("data", [
    encode_message(prevote(BOB, A)) + b"\0",                                # trailing byte
    pack([2, [3, 1, 0, None, b"\1" * 32, b"\2" * 64]]),                     # vote kind 3
    pack([2, [0, 1, 0, None, b"\1" * 32, b"\2" * 64]]),                     # a vote cannot be "propose"
    pack([9, [1, 1, 0, None, b"\1" * 32, b"\2" * 64]]),                     # unknown tag
    pack([1, [1, 0, b"\1" * 31, None, b"\1" * 32, b"\2" * 64]]),            # short hash
    msgpack.packb([2, [1, 1.0, 0, None, b"\1" * 32, b"\2" * 64]]),          # a float height
    msgpack.packb([2, [1, 1, 0, None, b"\1" * 32]]),                        # a field missing
    msgpack.packb([2, {"kind": 1}]),                                        # a map
    encode_message(prevote(BOB, A))[:-1],                                   # truncated
    b"\x92\x02\x96\x01\xcf" + (1).to_bytes(8, "big") + b"\x00\xc0" + b"\xc4\x20" + b"\1" * 32 + b"\xc4\x40" + b"\2" * 64,
    b"\xc1",
    b"",
    b"\x00" * 600,                                                         # oversize
])
def test_decoding_rejects_anything_but_a_canonical_message(data):
    with pytest.raises(CodecError):
        decode_message(data)


# -- commit certificates and evidence ---------------------------------------------------------------
def test_commit_certificate_verifies_2f_plus_1_distinct_precommits():
    good = CommitCertificate.from_precommits([precommit(i, A, round=2) for i in (DAVE, ALICE, CHARLIE)], VSET)
    good.verify(VSET, GENESIS)
    assert [s.validator for s in good.signatures] == [KEYS[i].public_key for i in (ALICE, CHARLIE, DAVE)]
    assert CommitCertificate.decode(good.encode()) == good
    sig = {i: precommit(i, A, round=2).signature for i in range(4)}
    bad = {
        "voting power": [CommitSig(KEYS[i].public_key, sig[i]) for i in (ALICE, BOB)],
        "appears twice": [CommitSig(KEYS[i].public_key, sig[i]) for i in (ALICE, BOB, BOB)],
        "not a validator": [CommitSig(KEYS[i].public_key, sig[i]) for i in (ALICE, BOB)]
        + [CommitSig(EVE.public_key, sign_vote(EVE, GENESIS, Step.PRECOMMIT, H, 2, A).signature)],
        "bad precommit signature": [CommitSig(KEYS[i].public_key, sig[i]) for i in (ALICE, BOB)]
        + [CommitSig(KEYS[CHARLIE].public_key, precommit(CHARLIE, B, round=2).signature)],
    }
    for reason, sigs in bad.items():
        with pytest.raises(InvalidCommit, match=reason):
            CommitCertificate(H, 2, A, tuple(sigs)).verify(VSET, GENESIS)
    with pytest.raises(InvalidCommit):
        good.verify(VSET, OTHER_GENESIS)


def test_evidence_verifies_only_real_equivocation_and_has_one_encoding():
    a, b = prevote(BOB, A, round=3), prevote(BOB, None, round=3)
    ev = DuplicateVoteEvidence.from_votes(a, b)
    assert ev == DuplicateVoteEvidence.from_votes(b, a) and ev.vote_a.block_hash is None
    ev.verify(VSET, GENESIS)
    assert DuplicateVoteEvidence.decode(ev.encode()) == ev
    broken = [
        DuplicateVoteEvidence.from_votes(a, prevote(CHARLIE, None, round=3)),
        DuplicateVoteEvidence.from_votes(a, prevote(BOB, None, round=4)),
        DuplicateVoteEvidence.from_votes(a, precommit(BOB, None, round=3)),
        DuplicateVoteEvidence(a, a),
        DuplicateVoteEvidence(a, b),                                          # wrong order
        DuplicateVoteEvidence.from_votes(a, Vote(b.kind, b.height, b.round, B, b.validator, b.signature)),
        DuplicateVoteEvidence.from_votes(sign_vote(EVE, GENESIS, Step.PREVOTE, H, 3, A),
                                         sign_vote(EVE, GENESIS, Step.PREVOTE, H, 3, B)),
    ]
    for e in broken:
        with pytest.raises(InvalidEvidence):
            e.verify(VSET, GENESIS)


# -- validator set -------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,f,quorum,skip", [(1, 0, 1, 1), (2, 0, 2, 1), (3, 0, 3, 1), (4, 1, 3, 2),
                                             (5, 1, 4, 2), (6, 1, 5, 2), (7, 2, 5, 3), (10, 3, 7, 4)])
def test_quorum_arithmetic(n, f, quorum, skip):
    vs = ValidatorSet.from_keys(keccak256(bytes([i])) for i in range(n))
    assert (vs.f, vs.quorum_power, vs.skip_power) == (f, quorum, skip)
    assert 2 * quorum - n >= f + 1                                            # two quorums share an honest one
    assert n - f >= quorum                                                    # the honest alone make a quorum


def test_proposer_rotates_round_robin_by_height_plus_round():
    assert [VSET.proposer(1, r) for r in range(5)] == [KEYS[i].public_key for i in (1, 2, 3, 0, 1)]
    assert VSET.proposer(2, 0) == VSET.proposer(1, 1)


def test_bad_validator_sets_are_refused():
    for bad in ([], [Validator(A, 1), Validator(A, 1)], [Validator(A, 0)], [Validator(b"\1" * 31, 1)]):
        with pytest.raises(InvalidValidatorSet):
            ValidatorSet(bad)


# -- signing guard and WAL ---------------------------------------------------------------------------------
def test_guard_refuses_a_second_different_vote_and_repeats_the_same_one():
    s = MemorySigner(KEYS[ALICE], GENESIS)
    v = s.sign_vote(Step.PREVOTE, H, 0, A)
    assert s.sign_vote(Step.PREVOTE, H, 0, A) == v
    with pytest.raises(SigningRefused) as refused:
        s.sign_vote(Step.PREVOTE, H, 0, None)
    assert refused.value.previous == v
    s.sign_vote(Step.PRECOMMIT, H, 1, None)
    with pytest.raises(SigningRefused, match="will not sign"):             # going back to round 0
        s.sign_vote(Step.PRECOMMIT, H, 0, A)
    p = s.sign_proposal(H, 2, A, 1)
    with pytest.raises(SigningRefused):
        s.sign_proposal(H, 2, A, None)                                        # pol_round is signed too
    assert s.sign_proposal(H, 2, A, 1) == p


def test_file_guard_survives_a_crash_and_tolerates_a_torn_tail(tmp_path):
    path = tmp_path / "consensus.wal"
    s = FileSigner(KEYS[ALICE], GENESIS, path)
    v = s.sign_vote(Step.PREVOTE, H, 0, A)
    s.wal.close()                                                           # "crash": nothing more is written
    with open(path, "ab") as f:
        f.write(frame(b"\x92\x01\x91\x05")[:7])                             # a torn append
    s = FileSigner(KEYS[ALICE], GENESIS, path)
    assert s.wal.torn_bytes == 7
    with pytest.raises(SigningRefused):
        s.sign_vote(Step.PREVOTE, H, 0, B)
    assert s.sign_vote(Step.PREVOTE, H, 0, A) == v
    s.sign_vote(Step.PRECOMMIT, H, 0, A)
    s.wal.close()
    with open(path, "ab") as f:
        f.write(b"\0" * 40)                                                  # zero fill after a crash
    wal = FileWAL(path)
    assert [e.step for e in wal.entries() if isinstance(e, SignRecord)] == [Step.PREVOTE, Step.PRECOMMIT]
    assert wal.torn_bytes == 40
    wal.close()


def test_damage_before_the_last_frame_stops_the_wal(tmp_path):
    path = tmp_path / "consensus.wal"
    wal = FileWAL(path)
    wal.append(StartHeight(1), sync=True)
    wal.append(StartHeight(2), sync=True)
    wal.close()
    data = bytearray(path.read_bytes())
    data[9] ^= 0xFF                                                          # inside the first payload
    path.write_bytes(bytes(data))
    with pytest.raises(WALCorrupted):
        FileWAL(path)


def test_signature_is_fsynced_before_it_is_returned(tmp_path, monkeypatch):
    path = tmp_path / "consensus.wal"
    events = []
    real_fsync = os.fsync

    def fsync(fd):
        is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
        events.append(("fsync-dir",) if is_dir else ("fsync", path.read_bytes()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    s = FileSigner(KEYS[ALICE], GENESIS, path)
    assert ("fsync-dir",) in events                                           # new file: directory synced
    events.clear()
    v = s.sign_vote(Step.PRECOMMIT, H, 4, B)
    events.append(("returned",))
    assert [e[0] for e in events] == ["fsync", "returned"]
    assert v.signature in events[0][1]                                        # on disk when fsync ran
    s.wal.close()


def test_wal_compaction_keeps_recent_heights_and_the_guard(tmp_path):
    path = tmp_path / "consensus.wal"
    s = FileSigner(KEYS[ALICE], GENESIS, path)
    s.sign_vote(Step.PREVOTE, 1, 0, A)
    s.sign_vote(Step.PREVOTE, 2, 0, A)
    s.wal.compact(2)
    s.sign_vote(Step.PRECOMMIT, 2, 0, A)                                   # appends go to the new file
    s.wal.close()
    again = FileSigner(KEYS[ALICE], GENESIS, path)
    assert [(e.height, e.step) for e in again.wal.entries()] == [(2, Step.PREVOTE), (2, Step.PRECOMMIT)]
    with pytest.raises(SigningRefused):
        again.sign_vote(Step.PREVOTE, 2, 0, B)
    again.wal.close()


def test_a_wal_in_use_cannot_be_opened_twice(tmp_path):
    wal = FileWAL(tmp_path / "consensus.wal")
    with pytest.raises(WALLocked):
        FileSigner(KEYS[ALICE], GENESIS, tmp_path / "consensus.wal")       # a second instance of the node
    wal.close()
    FileWAL(tmp_path / "consensus.wal").close()


def test_memory_wal_crash_loses_only_what_was_not_synced():
    wal = MemoryWAL()
    wal.append(StartHeight(1))
    wal.append(StartHeight(2), sync=True)
    wal.append(StartHeight(3))
    wal.crash()
    assert [e.height for e in wal.entries()] == [1, 2]
