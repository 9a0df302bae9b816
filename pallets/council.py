"""The council: licensed parties govern the chain together, in place of a sudo key.

Its members are the regulator's registrar, the DSOs and the validator operators (each must hold an
ACTIVE identity licence in one of those roles). Anything that needs the root origin (creating a
zone, a tariff framework, the validator set, a runtime upgrade, the council's own membership) is
reached through a motion: a member proposes the root call, members vote, and once the motion has
its threshold of ayes and the enactment delay has passed, anyone enacts it and the call runs as
root. Every step is an event, so participants see what is coming before it happens. Day-to-day and
emergency actions stay SIGNED calls of their role (a DSO pausing its zone, a registrar suspending a
licence) and need no vote.

Rules, in the order a motion meets them:
- `propose(call)`: by a member; `call` is the plain call `[pallet index, call index, [args]]` and
  must decode and need the root origin. Its weight (from its declared weight function) is recorded
  and may not exceed `max_call_weight`; the proposer's aye counts at once. At most
  `max_open_motions` motions are open at a time.
- The threshold is resolved when the motion is proposed, from the most specific key of the genesis
  (or `set_threshold`) table: `"<pallet>.<call>"`, then `"<pallet>"`, then `"*"`, and is recorded in
  the motion. `"N/D"` means at least N/D of the members, `">N/D"` more than N/D; the required count
  of ayes is recomputed against the current member count at every tally (never fewer than one).
- Tally: a vote by someone who is no longer a member does not count. This is kept true by dropping
  a leaving member's votes from every open motion when membership changes (if they rejoin they may
  vote again), and every open motion is tallied again then, since the required count moved.
  A motion passes (`Passed`, enact_at = now + enactment_delay) when its ayes reach the required
  count, and fails (`Failed`, closed) when even the members who have not voted could no longer
  bring it there.
- Voting is open in blocks before `end` (= proposed at + voting_period); at block `end` the hook
  expires a motion that has not passed. A passed motion takes no more votes.
- `enact(id)`: by anyone, at or after `enact_at`; the motion is removed first (so it can never run
  twice, even if its call tries to touch it), then its call is dispatched as root in its own
  transactional layer; `Enacted(id, result)` carries None or the call's error as `sudo.Sudid` shows
  it. A passed motion not enacted within `voting_period` blocks after `enact_at` expires.
- `withdraw(id)` by the proposer, or `cancel(id)` by root (a council motion), before enactment.
- Membership (`add_member`, `remove_member`, `set_members`) and thresholds (`set_threshold`) are
  ROOT calls, so only the council itself changes them. The last member cannot be removed, and a
  threshold that can never be met is refused.

Weight: `enact` declares its base plus `max_call_weight` (the call is only known from storage) and
refunds the difference to the weight recorded at proposal. The hook's work is bounded: motions are
indexed by the block at which the hook must look at them (`deadlines`), so it reads only those, and
there are never more than `max_open_motions` of them in all.
"""
from __future__ import annotations

import dataclasses
import re

from pallets import identity, system
from pallets.identity import Role
from primitives import ss58
from primitives.codec import BOOL, U8, U32, U64, CodecError, ListOf, Optional, Raw, Text, struct
from primitives.types import AccountId
from runtime import dispatch
from runtime.pallet import (ROOT, SIGNED, Origin, OriginKind, Pallet, PalletError, PostInfo, deposit_event,
                            ensure, ensure_root, ensure_signed, fail)

pallet = Pallet("council", index=14, doc=__doc__)


# --- config ----------------------------------------------------------------------------------
@pallet.config
class Config:
    #: most council members (a 100-validator local testnet plus its registrar and DSO fit)
    max_members = 128
    #: most motions open at once: bounds the hook's work and the re-tally on a membership change
    max_open_motions = 64
    #: heaviest call a motion may carry: a quarter of a block
    max_call_weight = system.Config.max_block_weight // 4
    #: longest threshold key ("<pallet>.<call>")
    max_kind_len = 64


#: roles that make an account eligible for the council
ELIGIBLE_ROLES = (Role.REGISTRAR, Role.DSO, Role.VALIDATOR_OPERATOR)
#: the default threshold when a genesis names none for "*"
DEFAULT_THRESHOLD = ">1/2"
DEFAULT_VOTING_PERIOD = 50
DEFAULT_ENACTMENT_DELAY = 2

W_PROPOSE = 80_000        # decode and weigh the call, write the motion and the deadline index
W_VOTE = 150_000          # the vote that passes a motion: rewrite it, move its deadline, Passed
W_ENACT = 60_000          # plus the call's recorded weight (refunded down to it)
W_CLOSE = 80_000          # withdraw, cancel: remove the motion and its index entry
W_MEMBERSHIP = 60_000 + 40_000 * Config.max_open_motions   # prune and re-tally every open motion
W_SET_THRESHOLD = 25_000
W_HOOK = 5_000            # read the deadline index of the block
W_HOOK_PER_MOTION = 30_000

Members = ListOf(AccountId, max_len=Config.max_members)
Kind = Text(Config.max_kind_len)


@struct
class Threshold:
    """num/den of the members; strict: more than that, else at least that."""
    num: U8
    den: U8
    strict: BOOL


@struct
class Motion:
    proposer: AccountId
    call: Raw()                  # the plain call [pallet index, call index, [args]]
    pallet_index: U8
    call_index: U8
    call_weight: U64             # the call's weight when proposed; enact refunds down to it
    threshold: Threshold         # resolved from the most specific key when proposed
    ayes: Members                # sorted; always current members (see the pallet doc)
    nays: Members
    end: U64                     # first block in which votes are no longer taken
    enact_at: Optional(U64)      # None while voting; set when the motion passes
    deadline: U64                # block whose hook expires the motion: end, or enact_at + voting_period


# --- storage ---------------------------------------------------------------------------------
members = pallet.value("members", Members, default=(), doc="Council members, sorted by account id")
voting_period = pallet.value("voting_period", U64, default=DEFAULT_VOTING_PERIOD,
                             doc="Blocks a motion is open for votes; also the window to enact it")
enactment_delay = pallet.value("enactment_delay", U64, default=DEFAULT_ENACTMENT_DELAY,
                               doc="Blocks between a motion passing and the first block it may be enacted in")
thresholds = pallet.map("thresholds", key=Kind, value=Threshold,
                        doc="\"*\" | \"<pallet>\" | \"<pallet>.<call>\" -> threshold of motions of that kind")
motions = pallet.map("motions", key=U32, value=Motion, doc="Open motions by id")
motion_count = pallet.value("motion_count", U32, default=0, doc="Number of open motions")
next_motion_id = pallet.value("next_motion_id", U32, default=0, doc="Id of the next motion proposed")
deadlines = pallet.map("deadlines", key=U64, value=ListOf(U32, max_len=Config.max_open_motions),
                       doc="Block -> ids of the open motions its hook must expire if still open then")


# --- events ----------------------------------------------------------------------------------
@pallet.event
class Proposed:
    """A member proposed a root call; `required` ayes pass it (against today's members); votes are
    taken in blocks before `end`."""
    motion_id: U32
    proposer: AccountId
    pallet_index: U8
    call_index: U8
    required: U32
    end: U64


@pallet.event
class Voted:
    motion_id: U32
    who: AccountId
    approve: BOOL
    ayes: U32
    nays: U32


@pallet.event
class Passed:
    """The motion reached its threshold; it may be enacted from block `enact_at`."""
    motion_id: U32
    ayes: U32
    nays: U32
    enact_at: U64


@pallet.event
class Failed:
    """The motion can no longer reach its threshold; it is closed."""
    motion_id: U32
    ayes: U32
    nays: U32


@pallet.event
class Enacted:
    """The motion's call ran as root; result is null on success, else its error (as sudo.Sudid)."""
    motion_id: U32
    result: Raw()


@pallet.event
class Cancelled:
    """Withdrawn by its proposer, or cancelled by the council."""
    motion_id: U32


@pallet.event
class Expired:
    """Not passed within its voting period, or passed and not enacted in time."""
    motion_id: U32


@pallet.event
class MemberAdded:
    who: AccountId


@pallet.event
class MemberRemoved:
    who: AccountId


@pallet.event
class MembersSet:
    members: Members


@pallet.event
class ThresholdSet:
    kind: Kind
    num: U8
    den: U8
    strict: BOOL


# --- errors ----------------------------------------------------------------------------------
class Error(PalletError):
    NotMember = "only a council member may do this"
    NotEligible = "a council member must hold an active licence as registrar, DSO or validator operator"
    TooManyMotions = "the council has the most open motions it may have (max_open_motions); let some close first"
    UndecodableCall = "the proposed call does not decode as a call of this runtime"
    NotRootCall = "only a call that needs the root origin can be proposed (a role's own calls need no motion)"
    CallTooHeavy = "the proposed call weighs more than a motion may carry (max_call_weight)"
    UnknownMotion = "no open motion has this id (never proposed, or enacted, cancelled, failed or expired)"
    VotingPeriodOver = "the motion's voting period is over"
    AlreadyPassed = "the motion has passed and takes no more votes"
    AlreadyVoted = "this member has already voted on this motion"
    NotPassed = "the motion has not passed, so it cannot be enacted"
    TooEarly = "the motion's enactment delay is not over yet"
    NotProposer = "only the motion's proposer may withdraw it"
    AlreadyMember = "the account is already a council member"
    LastMember = "the council's last member cannot be removed"
    EmptyMembers = "the council needs at least one member"
    DuplicateMember = "an account is listed twice among the members"
    TooManyMembers = "the council would have more than max_members members"
    ThresholdUnmeetable = ("the threshold could never be met: it needs a positive denominator, a numerator "
                           "no larger than it, and \">N/N\" is impossible")
    UnknownKind = "the kind names no pallet or call of this runtime (use \"*\", \"<pallet>\" or \"<pallet>.<call>\")"


pallet.errors(Error)


# --- thresholds --------------------------------------------------------------------------------
_THRESHOLD_TEXT = re.compile(r"^(>?)([0-9]{1,3})/([0-9]{1,3})$")


def threshold_meetable(t: Threshold) -> bool:
    """A threshold some set of ayes can meet: den > 0, num <= den, and not more than all."""
    return t.den > 0 and t.num <= t.den and not (t.strict and t.num == t.den)


def parse_threshold(text: str) -> Threshold:
    """"N/D" or ">N/D" -> Threshold; ValueError if malformed or unmeetable."""
    m = _THRESHOLD_TEXT.match(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"threshold {text!r} is not \"N/D\" or \">N/D\"")
    num, den = int(m.group(2)), int(m.group(3))
    if num > 255 or den > 255:
        raise ValueError(f"threshold {text!r}: numerator and denominator are at most 255")
    t = Threshold(num, den, m.group(1) == ">")
    if not threshold_meetable(t):
        raise ValueError(f"threshold {text!r} could never be met")
    return t


def threshold_text(t: Threshold) -> str:
    return (">" if t.strict else "") + f"{t.num}/{t.den}"


def required_count(t: Threshold, member_count: int) -> int:
    """Ayes needed out of `member_count` members: at least ceil(n*num/den), or more than n*num/den
    when strict; never fewer than one (a motion always needs its proposer)."""
    if t.strict:
        need = member_count * t.num // t.den + 1
    else:
        need = -(-member_count * t.num // t.den)
    return max(1, need)


def resolve_threshold(pallet_name: str, call_name: str) -> Threshold:
    """The threshold of a call's motions: the most specific key wins ("<pallet>.<call>" >
    "<pallet>" > "*"); without any, the default (more than half)."""
    for kind in (f"{pallet_name}.{call_name}", pallet_name, "*"):
        t = thresholds.get(kind)
        if t is not None:
            return t
    return parse_threshold(DEFAULT_THRESHOLD)


def required_ayes(pallet_name: str, call_name: str, member_list: tuple | list) -> int:
    """How many ayes a motion for pallet.call needs with these members."""
    return required_count(resolve_threshold(pallet_name, call_name), len(member_list))


def kind_exists(kind: str) -> bool:
    """"*", or the name of a pallet with root calls, or "<pallet>.<call>" of a root call, in the
    installed runtime."""
    if kind == "*":
        return True
    root_calls = [cd for cd in dispatch.installed_calls() if cd.origin is OriginKind.ROOT]
    return any(kind in (cd.pallet.name, f"{cd.pallet.name}.{cd.name}") for cd in root_calls)


# --- public interface ----------------------------------------------------------------------------
def is_member(who: bytes) -> bool:
    return who in members.get()


def is_eligible(who: bytes) -> bool:
    """An ACTIVE licence as registrar, DSO or validator operator."""
    return any(identity.is_licensed(who, r) for r in ELIGIBLE_ROLES)


def motion(motion_id: int) -> Motion | None:
    return motions.get(motion_id)


def open_motions() -> list[tuple[int, Motion]]:
    """Every open motion (at most max_open_motions), by id."""
    return sorted(motions.items(), key=lambda kv: kv[0])


# --- internals -------------------------------------------------------------------------------
def _ensure_member(origin: Origin) -> bytes:
    who = ensure_signed(origin)
    ensure(is_member(who), Error.NotMember)
    ensure(is_eligible(who), Error.NotEligible)
    return who


def _index_add(block: int, motion_id: int) -> None:
    deadlines.insert(block, tuple(sorted((deadlines.get(block) or ()) + (motion_id,))))


def _index_remove(block: int, motion_id: int) -> None:
    rest = tuple(i for i in (deadlines.get(block) or ()) if i != motion_id)
    if rest:
        deadlines.insert(block, rest)
    else:
        deadlines.remove(block)


def _close(motion_id: int, m: Motion) -> None:
    """Remove an open motion and its deadline entry."""
    motions.remove(motion_id)
    _index_remove(m.deadline, motion_id)
    motion_count.put(motion_count.get() - 1)


def _tally(motion_id: int, m: Motion) -> Motion | None:
    """Decide a motion still in voting against the current members: pass it, fail it (closed: None),
    or leave it open. Returns the motion as now stored."""
    if m.enact_at is not None:
        return m
    n = len(members.get())
    need = required_count(m.threshold, n)
    ayes, nays = len(m.ayes), len(m.nays)
    if ayes >= need:
        enact_at = system.number.get() + enactment_delay.get()
        passed = dataclasses.replace(m, enact_at=enact_at, deadline=enact_at + voting_period.get())
        _index_remove(m.deadline, motion_id)
        _index_add(passed.deadline, motion_id)
        motions.insert(motion_id, passed)
        deposit_event(Passed(motion_id, ayes, nays, enact_at))
        return passed
    if ayes + max(0, n - ayes - nays) < need:
        _close(motion_id, m)
        deposit_event(Failed(motion_id, ayes, nays))
        return None
    return m


def _membership_changed() -> None:
    """Drop votes of accounts no longer members from every open motion, then tally each again
    (the required count follows the member count). At most max_open_motions motions."""
    current = set(members.get())
    for motion_id, m in open_motions():
        kept = dataclasses.replace(m, ayes=tuple(a for a in m.ayes if a in current),
                                   nays=tuple(a for a in m.nays if a in current))
        if kept != m:
            motions.insert(motion_id, kept)
        _tally(motion_id, kept)


def _check_members(new: tuple) -> tuple:
    ensure(len(new) > 0, Error.EmptyMembers)
    ensure(len(set(new)) == len(new), Error.DuplicateMember)
    ensure(len(new) <= Config.max_members, Error.TooManyMembers)
    ensure(all(is_eligible(w) for w in new), Error.NotEligible)
    return tuple(sorted(new))


# --- calls -----------------------------------------------------------------------------------
@pallet.call(0, weight=W_PROPOSE, origin=SIGNED)
def propose(origin: Origin, call: Raw()) -> None:
    """Member: propose a root call ([pallet index, call index, [args]]); your aye counts at once."""
    who = _ensure_member(origin)
    ensure(motion_count.get() < Config.max_open_motions, Error.TooManyMotions)
    try:
        cd, args = dispatch.lookup_plain_call(call)
        call_weight = cd.weight_of(args)
    except CodecError:
        fail(Error.UndecodableCall)
    ensure(cd.origin is OriginKind.ROOT, Error.NotRootCall)
    ensure(call_weight <= Config.max_call_weight, Error.CallTooHeavy)
    threshold = resolve_threshold(cd.pallet.name, cd.name)
    motion_id = next_motion_id.get()
    next_motion_id.put(motion_id + 1)
    end = system.number.get() + voting_period.get()
    m = Motion(who, call, cd.pallet.index, cd.index, call_weight, threshold, (who,), (), end, None, end)
    motions.insert(motion_id, m)
    motion_count.put(motion_count.get() + 1)
    _index_add(end, motion_id)
    deposit_event(Proposed(motion_id, who, cd.pallet.index, cd.index,
                           required_count(threshold, len(members.get())), end))
    deposit_event(Voted(motion_id, who, True, 1, 0))
    _tally(motion_id, m)


@pallet.call(1, weight=W_VOTE, origin=SIGNED)
def vote(origin: Origin, motion_id: U32, approve: BOOL) -> None:
    """Member: vote aye (approve) or nay on an open motion, once, before its voting period ends."""
    who = _ensure_member(origin)
    m = motions.get(motion_id) or fail(Error.UnknownMotion)
    ensure(system.number.get() < m.end, Error.VotingPeriodOver)
    ensure(m.enact_at is None, Error.AlreadyPassed)
    ensure(who not in m.ayes and who not in m.nays, Error.AlreadyVoted)
    if approve:
        m = dataclasses.replace(m, ayes=tuple(sorted(m.ayes + (who,))))
    else:
        m = dataclasses.replace(m, nays=tuple(sorted(m.nays + (who,))))
    motions.insert(motion_id, m)
    deposit_event(Voted(motion_id, who, approve, len(m.ayes), len(m.nays)))
    _tally(motion_id, m)


@pallet.call(2, weight=W_ENACT + Config.max_call_weight, origin=SIGNED)
def enact(origin: Origin, motion_id: U32) -> PostInfo:
    """Anyone: run a passed motion's call as root, once its enactment delay is over. The motion is
    removed whatever the call's result; the unused part of the declared weight is refunded."""
    ensure_signed(origin)
    m = motions.get(motion_id) or fail(Error.UnknownMotion)
    ensure(m.enact_at is not None, Error.NotPassed)
    ensure(system.number.get() >= m.enact_at, Error.TooEarly)
    _close(motion_id, m)
    err = dispatch.dispatch_plain_call(Origin.root(), m.call)
    deposit_event(Enacted(motion_id, None if err is None else err.to_plain()))
    return PostInfo(actual_weight=W_ENACT + m.call_weight)


@pallet.call(3, weight=W_CLOSE, origin=SIGNED)
def withdraw(origin: Origin, motion_id: U32) -> None:
    """Proposer: withdraw an open motion (passed or not) before it is enacted."""
    who = ensure_signed(origin)
    m = motions.get(motion_id) or fail(Error.UnknownMotion)
    ensure(m.proposer == who, Error.NotProposer)
    _close(motion_id, m)
    deposit_event(Cancelled(motion_id))


@pallet.call(4, weight=W_CLOSE, origin=ROOT)
def cancel(origin: Origin, motion_id: U32) -> None:
    """Root (the council, by motion): cancel an open motion before it is enacted."""
    ensure_root(origin)
    m = motions.get(motion_id) or fail(Error.UnknownMotion)
    _close(motion_id, m)
    deposit_event(Cancelled(motion_id))


@pallet.call(5, weight=W_MEMBERSHIP, origin=ROOT)
def add_member(origin: Origin, who: AccountId) -> None:
    """Root: add a licensed registrar, DSO or validator operator to the council."""
    ensure_root(origin)
    current = members.get()
    ensure(who not in current, Error.AlreadyMember)
    members.put(_check_members(current + (who,)))
    deposit_event(MemberAdded(who))
    _membership_changed()


@pallet.call(6, weight=W_MEMBERSHIP, origin=ROOT)
def remove_member(origin: Origin, who: AccountId) -> None:
    """Root: remove a member (never the last one); their votes on open motions stop counting."""
    ensure_root(origin)
    current = members.get()
    ensure(who in current, Error.NotMember)
    ensure(len(current) > 1, Error.LastMember)
    members.put(tuple(w for w in current if w != who))
    deposit_event(MemberRemoved(who))
    _membership_changed()


@pallet.call(7, weight=W_MEMBERSHIP, origin=ROOT)
def set_members(origin: Origin, new_members: Members) -> None:
    """Root: replace the whole council (a non-empty list of eligible accounts, each once)."""
    ensure_root(origin)
    ordered = _check_members(tuple(new_members))
    members.put(ordered)
    deposit_event(MembersSet(ordered))
    _membership_changed()


@pallet.call(8, weight=W_SET_THRESHOLD, origin=ROOT)
def set_threshold(origin: Origin, kind: Kind, num: U8, den: U8, strict: BOOL) -> None:
    """Root: set the threshold of motions of `kind` ("*", "<pallet>" or "<pallet>.<call>"): at least
    num/den of the members, or more than that when strict. Open motions keep the one they recorded."""
    ensure_root(origin)
    t = Threshold(num, den, strict)
    ensure(threshold_meetable(t), Error.ThresholdUnmeetable)
    ensure(kind_exists(kind), Error.UnknownKind)
    thresholds.insert(kind, t)
    deposit_event(ThresholdSet(kind, num, den, strict))


# --- hooks -----------------------------------------------------------------------------------
@pallet.on_initialize
def _expire(n: int) -> int:
    """Expire the motions whose deadline is this block: voting ended without passing, or passed
    and not enacted within voting_period blocks of enact_at."""
    ids = deadlines.get(n)
    if not ids:
        return W_HOOK
    deadlines.remove(n)
    for motion_id in ids:
        m = motions.get(motion_id)
        if m is None or m.deadline != n:
            continue
        motions.remove(motion_id)
        motion_count.put(motion_count.get() - 1)
        deposit_event(Expired(motion_id))
    return W_HOOK + W_HOOK_PER_MOTION * len(ids)


# --- genesis ---------------------------------------------------------------------------------
def _positive_int(config: dict, key: str, default: int) -> int:
    v = config.get(key, default)
    if type(v) is not int or v < 1:
        raise ValueError(f"council genesis: {key} must be a positive whole number of blocks, got {v!r}")
    return v


@pallet.genesis
def _genesis(config: dict) -> None:
    """{"members": [ss58, ...], "voting_period": 50, "enactment_delay": 2,
    "thresholds": {"*": ">1/2", "<pallet>": "2/3", "<pallet>.<call>": ">1/2"}}.

    Runs after identity's genesis (lower index), so members must be licensed there as registrar,
    DSO or validator operator. Without "members" the chain has no council (a dev chain run by sudo).
    "*" defaults to ">1/2". Every error raises ValueError naming the entry."""
    if not config:
        return
    entries = config.get("members")
    if not isinstance(entries, list) or not entries:
        raise ValueError("council genesis: members must be a non-empty list of addresses")
    accounts = []
    for address in entries:
        try:
            who = ss58.decode(address, None)
        except (ValueError, TypeError) as e:
            raise ValueError(f"council genesis: bad member address {address!r}: {e}") from None
        if not is_eligible(who):
            raise ValueError(f"council genesis: {address} holds no active registrar, DSO or "
                             "validator operator licence")
        accounts.append(who)
    if len(set(accounts)) != len(accounts):
        raise ValueError("council genesis: a member is listed twice")
    if len(accounts) > Config.max_members:
        raise ValueError(f"council genesis: more than {Config.max_members} members")
    members.put(tuple(sorted(accounts)))
    voting_period.put(_positive_int(config, "voting_period", DEFAULT_VOTING_PERIOD))
    enactment_delay.put(_positive_int(config, "enactment_delay", DEFAULT_ENACTMENT_DELAY))
    table = config.get("thresholds", {})
    if not isinstance(table, dict):
        raise ValueError("council genesis: thresholds must map kinds to \"N/D\" or \">N/D\"")
    table = {"*": DEFAULT_THRESHOLD, **table}
    for kind in sorted(table):
        if not isinstance(kind, str) or len(kind.encode()) > Config.max_kind_len or not kind_exists(kind):
            raise ValueError(f"council genesis: threshold key {kind!r} names no pallet or root call "
                             "of this runtime")
        try:
            thresholds.insert(kind, parse_threshold(table[kind]))
        except ValueError as e:
            raise ValueError(f"council genesis: {e}") from None
