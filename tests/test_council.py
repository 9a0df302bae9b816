"""council pallet: governance by licensed parties instead of a sudo key, rule by rule.

Chain: no sudo key. Alice the registrar, Dave the DSO of zone 1, Charlie, Ferdie and //Validator1
validator operators; these five are the council. Thresholds: more than half by default and for
grid.force_set_tariff, two thirds for the rest of grid and for the council itself; voting period
10 blocks, enactment delay 2.
"""
from __future__ import annotations

import pytest

from genesis.chain_spec import Household, dev_spec, local_spec, neighbourhood_spec
from pallets import council, grid, identity, sudo
from pallets.council import Error as E
from primitives.keys import Keypair, dev_keypair
from tests.council_helpers import council_events, pass_motion, plain_call
from tests.runtime_harness import (ALICE, BOB, CHARLIE, EVE, FUNDS, ChainHarness, chain_factory, default_genesis,
                                   events_named)
from tests.test_identity import expect_failure, failures, pallet_state

DAVE, FERDIE = dev_keypair("Dave"), dev_keypair("Ferdie")
V1 = Keypair.from_uri("//Validator1")
OPERATOR = Keypair.from_uri("//Operator")          # licensed validator operator, not a member
MEMBERS = [ALICE, DAVE, CHARLIE, FERDIE, V1]
REASON = b"\x22" * 32
VOTING, DELAY = 10, 2


def council_genesis() -> dict:
    g = default_genesis()
    del g["sudo"]
    g["balances"]["balances"] += [[k.address(), FUNDS] for k in (DAVE, FERDIE, V1, OPERATOR)]
    g["identity"] = {"participants": [
        {"address": ALICE.address(), "roles": ["registrar"]},
        {"address": DAVE.address(), "roles": ["dso"]},
        {"address": CHARLIE.address(), "roles": ["validator_operator"]},
        {"address": FERDIE.address(), "roles": ["validator_operator", "prosumer"]},
        {"address": V1.address(), "roles": ["validator_operator"]},
        {"address": OPERATOR.address(), "roles": ["validator_operator"]},
        {"address": BOB.address(), "roles": ["prosumer"]},
        {"address": EVE.address(), "roles": ["issuer"]},
    ]}
    g["grid"] = {"zones": [{"id": 1, "dso": DAVE.address(), "name": "feeder", "import_capacity_w": 100_000,
                            "export_capacity_w": 100_000}],
                 "tariffs": [[1, 1, 0, 20_000]]}
    g["council"] = {"members": [k.address() for k in MEMBERS], "voting_period": VOTING,
                    "enactment_delay": DELAY,
                    "thresholds": {"*": ">1/2", "grid": "2/3", "council": "2/3", "grid.force_set_tariff": ">1/2"}}
    return g


new_chain = chain_factory(council_genesis())
_RUNTIME = new_chain.runtime


@pytest.fixture
def chain() -> ChainHarness:
    return new_chain()


def propose(chain: ChainHarness, who: Keypair, pallet: str, call: str, *args):
    return chain.block(chain.xt(who, "council", "propose", plain_call(chain, pallet, call, *args)))


def motion_id_of(chain: ChainHarness, result) -> int:
    [proposed] = council_events(chain, result, "Proposed")
    return proposed[0]


def vote(chain: ChainHarness, who: Keypair, motion_id: int, approve: bool = True):
    return chain.block(chain.xt(who, "council", "vote", motion_id, approve))


def tariff(chain: ChainHarness, band: int = 0) -> int | None:
    return chain.read(lambda: grid.tariffs.get((1, 1), band))


def open_motions(chain: ChainHarness) -> list:
    return chain.read(council.open_motions)


def council_is_empty_of_motions(chain: ChainHarness) -> bool:
    return chain.read(lambda: (list(council.motions.items()), list(council.deadlines.items()),
                               council.motion_count.get())) == ([], [], 0)


# --- genesis -------------------------------------------------------------------------------------
def test_genesis_stores_sorted_members_periods_and_thresholds(chain):
    assert chain.read(council.members.get) == tuple(sorted(k.public_key for k in MEMBERS))
    assert chain.read(council.voting_period.get) == VOTING
    assert chain.read(council.enactment_delay.get) == DELAY
    t = chain.read(lambda: council.thresholds.get("grid"))
    assert (t.num, t.den, t.strict) == (2, 3, False)
    members = chain.read(council.members.get)
    assert chain.read(lambda: council.required_ayes("grid", "force_set_tariff", members)) == 3
    assert chain.read(lambda: council.required_ayes("grid", "create_zone", members)) == 4
    assert chain.read(lambda: council.required_ayes("balances", "force_set_balance", members)) == 3


@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(members=[BOB.address()]), "no active registrar, DSO or validator operator licence"),
    (lambda c: c.update(members=[EVE.address()]), "no active registrar, DSO or validator operator licence"),
    (lambda c: c.update(members=[]), "non-empty"),
    (lambda c: c.update(members=[ALICE.address(), ALICE.address()]), "listed twice"),
    (lambda c: c.update(members=["not-an-address"]), "bad member address"),
    (lambda c: c.update(voting_period=0), "voting_period must be a positive"),
    (lambda c: c.update(enactment_delay=-1), "enactment_delay must be a positive"),
    (lambda c: c["thresholds"].update(grid="half"), "is not \"N/D\""),
    (lambda c: c["thresholds"].update(grid=">1/1"), "could never be met"),
    (lambda c: c["thresholds"].update(grid="3/2"), "could never be met"),
    (lambda c: c["thresholds"].update(grid="1/0"), "could never be met"),
    (lambda c: c["thresholds"].update(nosuchpallet="1/2"), "names no pallet or root call"),
    (lambda c: c["thresholds"].update({"grid.set_tariff": "1/2"}), "names no pallet or root call"),
    (lambda c: c["thresholds"].update({"grid.nosuchcall": "1/2"}), "names no pallet or root call"),
])
def test_genesis_refuses_a_bad_council(change, message):
    g = council_genesis()
    change(g["council"])
    with pytest.raises(ValueError, match=message):
        _RUNTIME.build_genesis_storage(g)


def test_a_genesis_without_council_has_no_members():
    g = council_genesis()
    del g["council"]
    chain = ChainHarness(_RUNTIME, type(new_chain().state)(_RUNTIME.build_genesis_storage(g)))
    assert chain.read(council.members.get) == ()


# --- the lifecycle -------------------------------------------------------------------------------
def test_a_tariff_changes_by_motion_proposed_voted_passed_and_enacted_after_the_delay(chain):
    assert tariff(chain) == 20_000
    r = propose(chain, DAVE, "grid", "force_set_tariff", 1, 1, 0, 12_345)
    mid = motion_id_of(chain, r)
    proposed_at = chain.number
    assert council_events(chain, r, "Proposed") == [[mid, DAVE.public_key, 7, 8, 3, proposed_at + VOTING]]
    assert council_events(chain, r, "Voted") == [[mid, DAVE.public_key, True, 1, 0]]
    r = vote(chain, ALICE, mid)
    assert council_events(chain, r, "Voted") == [[mid, ALICE.public_key, True, 2, 0]]
    assert council_events(chain, r, "Passed") == []
    r = vote(chain, CHARLIE, mid)
    enact_at = chain.number + DELAY
    assert council_events(chain, r, "Passed") == [[mid, 3, 0, enact_at]]
    # too early: refused, nothing changes
    expect_failure(chain, chain.xt(BOB, "council", "enact", mid), E.TooEarly.message, "council")
    assert tariff(chain) == 20_000
    assert chain.number + 1 == enact_at
    r = chain.block(chain.xt(BOB, "council", "enact", mid))          # anyone may enact
    assert council_events(chain, r, "Enacted") == [[mid, None]]
    assert events_named(r, _RUNTIME, "grid", "TariffSet") == [[1, 1, 0, 12_345]]
    assert tariff(chain) == 12_345
    assert council_is_empty_of_motions(chain)
    # at most once
    expect_failure(chain, chain.xt(BOB, "council", "enact", mid), E.UnknownMotion.message, "council")
    assert tariff(chain) == 12_345


def test_enact_declares_a_quarter_block_and_is_charged_only_the_call_it_carries(chain):
    out = pass_motion(chain, DAVE, [ALICE, CHARLIE], "grid", "force_set_tariff", 1, 1, 0, 1)
    call_weight = grid.force_set_tariff.call_def.weight
    [[used]] = events_named(out.block, _RUNTIME, "system", "ExtrinsicSuccess")[1:]
    # the refund keeps the extrinsic's base: only the unused part of the call's weight goes back
    assert used == _RUNTIME.limits.base_extrinsic_weight + council.W_ENACT + call_weight
    assert council.enact.call_def.weight == council.W_ENACT + council.Config.max_call_weight


def test_the_most_specific_threshold_key_wins_and_is_recorded_in_the_motion(chain):
    r = propose(chain, ALICE, "grid", "create_zone", 2, DAVE.public_key, "south", 1, 1)   # "grid": 2/3
    assert council_events(chain, r, "Proposed")[0][4] == 4
    r = propose(chain, ALICE, "balances", "force_set_balance", BOB.public_key, 5)         # "*": >1/2
    assert council_events(chain, r, "Proposed")[0][4] == 3
    motions = dict(open_motions(chain))
    assert (motions[0].threshold.num, motions[0].threshold.den) == (2, 3)
    assert motions[1].threshold.strict


def test_a_failing_root_call_reports_its_error_in_enacted_and_changes_nothing_else(chain):
    before = pallet_state(chain, "grid")
    out = pass_motion(chain, DAVE, [ALICE, CHARLIE], "grid", "force_set_tariff", 99, 1, 0, 5)
    assert out.result == [7, grid.Error.UnknownZone.index, grid.Error.UnknownZone.message]
    assert pallet_state(chain, "grid") == before
    assert events_named(out.block, _RUNTIME, "grid", "TariffSet") == []
    assert failures(chain, out.block) == []             # enact itself succeeded: the motion is spent
    assert council_is_empty_of_motions(chain)


def test_the_council_approves_a_tariff_its_dso_could_not_set_in_another_zone(chain):
    """force_set_tariff shares set_tariff's checks: an undefined band is refused too."""
    out = pass_motion(chain, DAVE, [ALICE, CHARLIE], "grid", "force_set_tariff", 1, 1, 9, 5)
    assert out.result[2] == grid.Error.UnknownBand.message


# --- refusals ------------------------------------------------------------------------------------
def test_a_motion_from_a_non_member_is_refused(chain):
    xt = chain.xt(BOB, "council", "propose", plain_call(chain, "grid", "force_set_tariff", 1, 1, 0, 1))
    expect_failure(chain, xt, E.NotMember.message, "council")
    xt = chain.xt(OPERATOR, "council", "propose", plain_call(chain, "grid", "force_set_tariff", 1, 1, 0, 1))
    expect_failure(chain, xt, E.NotMember.message, "council")


def test_a_member_whose_licence_is_suspended_may_neither_propose_nor_vote(chain):
    r = propose(chain, DAVE, "grid", "force_set_tariff", 1, 1, 0, 1)
    mid = motion_id_of(chain, r)
    r = chain.block(chain.xt(ALICE, "identity", "suspend", CHARLIE.public_key, REASON))   # no vote needed
    assert events_named(r, _RUNTIME, "identity", "Suspended") == [[CHARLIE.public_key, ALICE.public_key, REASON]]
    expect_failure(chain, chain.xt(CHARLIE, "council", "vote", mid, True), E.NotEligible.message, "council")
    xt = chain.xt(CHARLIE, "council", "propose", plain_call(chain, "grid", "force_set_tariff", 1, 1, 0, 2))
    expect_failure(chain, xt, E.NotEligible.message, "council")


@pytest.mark.parametrize("call, error", [
    ([3, 0, [b"\x01" * 32, 5]], E.NotRootCall),                    # balances.transfer: signed
    ([7, 5, [1, b"\x00" * 32]], E.NotRootCall),                     # grid.pause_zone: the DSO's own
    ([99, 0, []], E.UndecodableCall),                                # no such pallet
    ([7, 8, [1, 1]], E.UndecodableCall),                             # wrong number of arguments
    ([7, 8, [1, 1, 0, "cheap"]], E.UndecodableCall),                 # wrong argument type
    ("not a call", E.UndecodableCall),
])
def test_a_proposal_that_is_not_a_decodable_root_call_is_refused(chain, call, error):
    expect_failure(chain, chain.xt(ALICE, "council", "propose", call), error.message, "council")


def test_a_call_heavier_than_a_motion_may_carry_is_refused(chain, monkeypatch):
    monkeypatch.setattr(council.Config, "max_call_weight", grid.force_set_tariff.call_def.weight - 1)
    xt = chain.xt(ALICE, "council", "propose", plain_call(chain, "grid", "force_set_tariff", 1, 1, 0, 1))
    expect_failure(chain, xt, E.CallTooHeavy.message, "council")


def test_open_motions_are_capped(chain, monkeypatch):
    monkeypatch.setattr(council.Config, "max_open_motions", 2)
    for price in (1, 2):
        propose(chain, ALICE, "grid", "force_set_tariff", 1, 1, 0, price)
    xt = chain.xt(ALICE, "council", "propose", plain_call(chain, "grid", "force_set_tariff", 1, 1, 0, 3))
    expect_failure(chain, xt, E.TooManyMotions.message, "council")


def test_votes_are_once_per_member_by_members_and_within_the_period(chain):
    mid = motion_id_of(chain, propose(chain, DAVE, "grid", "force_set_tariff", 1, 1, 0, 1))
    expect_failure(chain, chain.xt(DAVE, "council", "vote", mid, True), E.AlreadyVoted.message, "council")
    vote(chain, ALICE, mid, False)
    expect_failure(chain, chain.xt(ALICE, "council", "vote", mid, True), E.AlreadyVoted.message, "council")
    expect_failure(chain, chain.xt(BOB, "council", "vote", mid, True), E.NotMember.message, "council")
    expect_failure(chain, chain.xt(CHARLIE, "council", "vote", 77, True), E.UnknownMotion.message, "council")
    vote(chain, CHARLIE, mid)
    r = vote(chain, FERDIE, mid)
    assert council_events(chain, r, "Passed") == [[mid, 3, 1, chain.number + DELAY]]
    expect_failure(chain, chain.xt(V1, "council", "vote", mid, True), E.AlreadyPassed.message, "council")


def test_a_vote_after_the_voting_period_is_refused(chain, monkeypatch):
    mid = motion_id_of(chain, propose(chain, DAVE, "grid", "force_set_tariff", 1, 1, 0, 1))
    vote(chain, ALICE, mid)
    vote(chain, CHARLIE, mid)                              # passed; waits to be enacted
    end = dict(open_motions(chain))[mid].end
    while chain.number + 1 < end:
        chain.block()
    expect_failure(chain, chain.xt(V1, "council", "vote", mid, True), E.VotingPeriodOver.message, "council")


def test_a_motion_fails_once_the_members_who_have_not_voted_cannot_pass_it(chain):
    mid = motion_id_of(chain, propose(chain, DAVE, "grid", "force_set_tariff", 1, 1, 0, 1))
    vote(chain, ALICE, mid, False)
    r = vote(chain, CHARLIE, mid, False)
    assert council_events(chain, r, "Failed") == []        # 1 aye + 2 undecided could still make 3
    r = vote(chain, FERDIE, mid, False)
    assert council_events(chain, r, "Failed") == [[mid, 1, 3]]
    assert council_is_empty_of_motions(chain)
    expect_failure(chain, chain.xt(V1, "council", "vote", mid, True), E.UnknownMotion.message, "council")


def test_an_unpassed_motion_expires_at_the_end_of_its_voting_period(chain):
    mid = motion_id_of(chain, propose(chain, DAVE, "grid", "force_set_tariff", 1, 1, 0, 1))
    end = chain.number + VOTING
    while chain.number + 1 < end:
        r = chain.block()
        assert council_events(chain, r, "Expired") == []
    r = chain.block()
    assert council_events(chain, r, "Expired") == [[mid]]
    assert council_is_empty_of_motions(chain)
    expect_failure(chain, chain.xt(BOB, "council", "enact", mid), E.UnknownMotion.message, "council")


def test_a_passed_motion_not_enacted_in_time_expires(chain):
    mid = motion_id_of(chain, propose(chain, DAVE, "grid", "force_set_tariff", 1, 1, 0, 1))
    vote(chain, ALICE, mid)
    r = vote(chain, CHARLIE, mid)
    enact_at = council_events(chain, r, "Passed")[0][3]
    while chain.number + 1 < enact_at + VOTING:
        chain.block()
    r = chain.block()
    assert council_events(chain, r, "Expired") == [[mid]]
    expect_failure(chain, chain.xt(BOB, "council", "enact", mid), E.UnknownMotion.message, "council")
    assert tariff(chain) == 20_000


def test_enacting_a_motion_still_in_voting_is_refused(chain):
    mid = motion_id_of(chain, propose(chain, DAVE, "grid", "force_set_tariff", 1, 1, 0, 1))
    expect_failure(chain, chain.xt(DAVE, "council", "enact", mid), E.NotPassed.message, "council")


def test_the_proposer_withdraws_a_motion_and_no_one_else_may(chain):
    mid = motion_id_of(chain, propose(chain, DAVE, "grid", "force_set_tariff", 1, 1, 0, 1))
    expect_failure(chain, chain.xt(ALICE, "council", "withdraw", mid), E.NotProposer.message, "council")
    r = chain.block(chain.xt(DAVE, "council", "withdraw", mid))
    assert council_events(chain, r, "Cancelled") == [[mid]]
    assert council_is_empty_of_motions(chain)
    expect_failure(chain, chain.xt(ALICE, "council", "vote", mid, True), E.UnknownMotion.message, "council")


def test_the_council_cancels_a_passed_motion_by_another_motion(chain):
    target = motion_id_of(chain, propose(chain, DAVE, "grid", "force_set_tariff", 1, 1, 0, 1))
    chain.block(*[chain.xt(k, "council", "vote", target, True) for k in (ALICE, CHARLIE)])
    out = pass_motion(chain, ALICE, [CHARLIE, FERDIE, V1], "council", "cancel", target)
    assert out.result is None
    assert council_events(chain, out.block, "Cancelled") == [[target]]
    assert council_is_empty_of_motions(chain)
    assert tariff(chain) == 20_000


def test_a_root_call_made_directly_is_refused(chain):
    r = chain.block(chain.xt(DAVE, "grid", "force_set_tariff", 1, 1, 0, 1))
    assert failures(chain, r) == ["this call needs the root origin"]
    assert tariff(chain) == 20_000


def test_emergency_actions_stay_with_their_role_and_need_no_vote(chain):
    r = chain.block(chain.xt(DAVE, "grid", "pause_zone", 1, REASON),
                    chain.xt(ALICE, "identity", "suspend", BOB.public_key, REASON))
    assert failures(chain, r) == []
    assert chain.read(lambda: grid.is_paused(1))
    assert chain.read(lambda: identity.participants.get(BOB.public_key).status) == identity.Status.SUSPENDED
    assert council_events(chain, r, "Proposed") == []


# --- membership and thresholds -----------------------------------------------------------------
def test_membership_changes_only_by_motion_with_the_councils_threshold(chain):
    # add: "council" is 2/3 of five members, so four ayes
    r = propose(chain, ALICE, "council", "add_member", OPERATOR.public_key)
    assert council_events(chain, r, "Proposed")[0][4] == 4
    mid = motion_id_of(chain, r)
    vote(chain, DAVE, mid)
    r = vote(chain, CHARLIE, mid)
    assert council_events(chain, r, "Passed") == []
    vote(chain, FERDIE, mid)
    chain.block()
    chain.block()
    r = chain.block(chain.xt(ALICE, "council", "enact", mid))
    assert council_events(chain, r, "Enacted") == [[mid, None]]
    assert council_events(chain, r, "MemberAdded") == [[OPERATOR.public_key]]
    assert OPERATOR.public_key in chain.read(council.members.get)
    assert list(chain.read(council.members.get)) == sorted(chain.read(council.members.get))
    # the newcomer proposes; removing a member likewise takes a motion
    out = pass_motion(chain, OPERATOR, [ALICE, DAVE, CHARLIE], "council", "remove_member", V1.public_key)
    assert out.result is None and council_events(chain, out.block, "MemberRemoved") == [[V1.public_key]]
    assert V1.public_key not in chain.read(council.members.get)
    # a direct call is refused
    r = chain.block(chain.xt(ALICE, "council", "add_member", BOB.public_key))
    assert failures(chain, r) == ["this call needs the root origin"]


@pytest.mark.parametrize("call, args, error", [
    ("add_member", (BOB.public_key,), E.NotEligible),          # a household
    ("add_member", (ALICE.public_key,), E.AlreadyMember),
    ("remove_member", (BOB.public_key,), E.NotMember),
    ("set_members", ((),), E.EmptyMembers),
    ("set_members", ((ALICE.public_key, ALICE.public_key),), E.DuplicateMember),
    ("set_members", ((ALICE.public_key, EVE.public_key),), E.NotEligible),
    ("set_threshold", ("grid", 1, 0, False), E.ThresholdUnmeetable),
    ("set_threshold", ("grid", 3, 2, False), E.ThresholdUnmeetable),
    ("set_threshold", ("grid", 2, 2, True), E.ThresholdUnmeetable),
    ("set_threshold", ("nosuchpallet", 1, 2, False), E.UnknownKind),
    ("set_threshold", ("grid.set_tariff", 1, 2, False), E.UnknownKind),
])
def test_a_bad_membership_or_threshold_change_fails_in_its_motion_and_changes_nothing(chain, call, args, error):
    before = chain.read(lambda: (council.members.get(), list(council.thresholds.items())))
    out = pass_motion(chain, ALICE, [DAVE, CHARLIE, FERDIE], "council", call, *args)
    assert out.result == [council.pallet.index, error.index, error.message]
    assert chain.read(lambda: (council.members.get(), list(council.thresholds.items()))) == before


def test_the_last_member_cannot_be_removed(chain):
    out = pass_motion(chain, ALICE, [DAVE, CHARLIE, FERDIE], "council", "set_members", (ALICE.public_key,))
    assert out.result is None and chain.read(council.members.get) == (ALICE.public_key,)
    # one member: every motion passes on its proposer's aye
    out = pass_motion(chain, ALICE, [], "council", "remove_member", ALICE.public_key)
    assert out.result == [council.pallet.index, E.LastMember.index, E.LastMember.message]
    assert chain.read(council.members.get) == (ALICE.public_key,)


def test_a_threshold_set_by_motion_applies_to_later_motions(chain):
    out = pass_motion(chain, ALICE, [DAVE, CHARLIE, FERDIE], "council", "set_threshold",
                      "balances.force_set_balance", 1, 1, False)
    assert out.result is None
    assert council_events(chain, out.block, "ThresholdSet") == [["balances.force_set_balance", 1, 1, False]]
    r = propose(chain, ALICE, "balances", "force_set_balance", BOB.public_key, 5)
    assert council_events(chain, r, "Proposed")[0][4] == 5


def test_a_removed_members_vote_stops_counting_and_the_count_follows_the_members(chain):
    target = motion_id_of(chain, propose(chain, DAVE, "grid", "force_set_tariff", 1, 1, 0, 7))
    vote(chain, FERDIE, target)                        # 2 of 3 ayes
    out = pass_motion(chain, ALICE, [DAVE, CHARLIE, V1], "council", "remove_member", FERDIE.public_key)
    assert out.result is None
    m = dict(open_motions(chain))[target]
    assert m.ayes == (DAVE.public_key,)               # Ferdie's aye no longer counts
    # four members: more than half is three; Alice and Charlie pass it
    vote(chain, ALICE, target)
    r = vote(chain, CHARLIE, target)
    assert council_events(chain, r, "Passed")[0][:3] == [target, 3, 0]


def test_removing_members_passes_a_motion_that_now_has_enough_ayes(chain):
    target = motion_id_of(chain, propose(chain, DAVE, "grid", "force_set_tariff", 1, 1, 0, 7))
    vote(chain, ALICE, target)                          # 2 ayes of 5 members (3 needed)
    out = pass_motion(chain, CHARLIE, [DAVE, FERDIE, V1, ALICE], "council", "set_members",
                      (ALICE.public_key, DAVE.public_key, CHARLIE.public_key))
    assert out.result is None
    # three members: more than half is two; Alice and Dave's ayes pass it at once
    passed = council_events(chain, out.block, "Passed")
    assert passed and passed[0][:3] == [target, 2, 0]


# --- chain specs ---------------------------------------------------------------------------------
def test_only_the_dev_chain_has_a_sudo_key_and_every_preset_has_a_council():
    dev = dev_spec()["genesis"]["runtimeGenesis"]["config"]
    assert dev["sudo"]["key"] == ALICE.address()
    assert dev["council"]["members"] == [ALICE.address(), DAVE.address()]
    for spec in (local_spec(4), neighbourhood_spec(4, [Household("House1", True, 1, 5_000)])):
        config = spec["genesis"]["runtimeGenesis"]["config"]
        assert "sudo" not in config
        operators = [Keypair.from_uri(f"//Validator{i}").address() for i in range(1, 5)]
        assert config["council"]["members"] == [ALICE.address(), DAVE.address(), *operators]
        assert config["council"]["thresholds"]["validators"] == "2/3"
        storage = _RUNTIME.build_genesis_storage(config)        # the genesis checks pass
        chain = ChainHarness(_RUNTIME, type(new_chain().state)(storage))
        assert chain.read(council.members.get) == tuple(sorted(
            [ALICE.public_key, DAVE.public_key] + [Keypair.from_uri(f"//Validator{i}").public_key
                                                   for i in range(1, 5)]))
        assert chain.read(sudo.key.get) is None
