"""Validators: the licensed set of BFT validators, kept in chain state.

Each validator is an account holding an active `validator_operator` licence (identity pallet). Its
ed25519 account key signs consensus votes and proposals; its BLS12-381 key signs the aggregate
finality certificate light clients check. A BLS key is accepted only with a proof of possession
(a signature of the key by itself), so no one can register a key derived from others' keys and
forge an aggregate (the rogue-key attack).

Rules:
  - Governance (root, i.e. sudo for now) adds and removes validators. Only a participant holding an
    active validator licence can be added.
  - A change made in block h takes effect from height h + 1: consensus for a height reads the set from
    the state after the previous block, and the block that changed the set was itself decided by the
    old set. Every change bumps `set_id` and emits `ValidatorSetChanged` with the new set and the
    height it applies from.
  - The set is ordered by account id (canonical, so every node derives the same proposer rotation).
  - The set never becomes empty (`min_validators`). With fewer than 4 validators the chain keeps
    running but tolerates no faulty validator (n = 3f + 1 with f = 0).
  - Block authorship follows the set: the authorship pallet's authorities are kept equal to the
    validator accounts, so block import accepts a block sealed by any current validator.
  - Equivocation (two different signed votes by one validator for one height, round and step) is
    reported by any node as evidence (`report_equivocation`, an unsigned extrinsic checked here); the
    offender is named in `Equivocation` and removed from the set from the next height, unless that
    would empty the set. Evidence is accepted once per (offender, height, round, step) and only for
    recent heights (`evidence_max_age_blocks`).
"""
from __future__ import annotations

from pallets import authorship, identity, system
from primitives import ss58
from primitives.codec import BOOL, U8, U32, U64, Bytes, ListOf, Tuple, struct
from primitives.types import AccountId
from primitives.votes import DuplicateVoteEvidence, InvalidEvidence
from runtime.api import InvalidKind, InvalidTransaction, TransactionSource, ValidTransaction
from runtime.pallet import (NONE, ROOT, CallDef, Origin, Pallet, PalletError, deposit_event, ensure, ensure_none,
                            ensure_root, fail)

pallet = Pallet("validators", index=12, doc=__doc__)


# --- config ----------------------------------------------------------------------------------
@pallet.config
class Config:
    #: most validators in the set (a commit certificate carries up to this many votes)
    max_validators = 100
    #: the set is never smaller than this
    min_validators = 1
    #: evidence about a height older than this many blocks is refused
    evidence_max_age_blocks = 10_000


BLS_PUBLIC_KEY_BYTES = 48
BLS_SIGNATURE_BYTES = 96

W_ADD = 2_000_000          # the proof-of-possession pairing check dominates (~2 ms)
W_REMOVE = 50_000
W_EVIDENCE = 300_000       # two ed25519 verifies (validation and again in the block) and the set rewrite


@struct
class ValidatorInfo:
    account: AccountId                        # ed25519: signs votes and proposals, seals blocks
    bls_public_key: Bytes(BLS_PUBLIC_KEY_BYTES)  # signs the aggregate finality certificate
    power: U64                                # voting power (1 for every validator today)


# --- storage ---------------------------------------------------------------------------------
validators = pallet.value("validators", ListOf(ValidatorInfo, max_len=Config.max_validators), default=(),
                          doc="The validator set, ordered by account id")
set_id = pallet.value("set_id", U64, default=0, doc="Bumped on every change of the set")
effective_from = pallet.value("effective_from", U64, default=0,
                              doc="First height decided by the current set")
OffenceKey = Tuple(AccountId, U64, U32, U8)
reported = pallet.map("reported", key=OffenceKey, value=U64,
                      doc="(offender, height, round, vote kind) -> block the equivocation was reported in")


# --- events ----------------------------------------------------------------------------------
@pallet.event
class ValidatorAdded:
    account: AccountId


@pallet.event
class ValidatorRemoved:
    account: AccountId


@pallet.event
class ValidatorSetChanged:
    set_id: U64
    effective_from: U64
    validators: ListOf(AccountId, max_len=Config.max_validators)


@pallet.event
class Equivocation:
    """`offender` signed two different votes for one height, round and kind; `removed` says whether it
    left the set (it stays only when it is the last validator)."""
    offender: AccountId
    height: U64
    round: U32
    kind: U8
    removed: BOOL


# --- errors ----------------------------------------------------------------------------------
class Error(PalletError):
    NotLicensed = "only a participant holding an active validator licence can be a validator"
    AlreadyValidator = "the account is already a validator"
    NotValidator = "the account is not a validator"
    TooManyValidators = "the validator set is full (max_validators)"
    LastValidator = "the validator set may not become smaller than min_validators"
    BadBlsKey = "the BLS public key is not a valid compressed G1 point"
    BadProofOfPossession = "the BLS proof of possession does not sign the BLS public key"
    BadEvidence = "the evidence does not prove an equivocation by a current validator on this chain"
    EvidenceTooOld = "the evidence is about a height older than evidence_max_age_blocks, or in the future"
    AlreadyReported = "this equivocation has already been reported"


pallet.errors(Error)


# --- public interface (node, consensus) ----------------------------------------------------------
def current() -> tuple[ValidatorInfo, ...]:
    return validators.get()


def accounts() -> tuple[bytes, ...]:
    return tuple(v.account for v in validators.get())


# --- internals -------------------------------------------------------------------------------
def _check_bls(public_key: bytes, pop: bytes) -> None:
    from primitives import bls  # noqa: PLC0415 - the pairing backend loads only when keys change
    try:
        ok = bls.pop_verify(public_key, pop)
    except bls.BlsError:
        fail(Error.BadBlsKey)
    ensure(ok, Error.BadProofOfPossession)


def _set(new: list[ValidatorInfo]) -> None:
    """Store a new set (sorted), mirror it into authorship, announce it."""
    from pallets import system  # noqa: PLC0415
    ordered = tuple(sorted(new, key=lambda v: v.account))
    validators.put(ordered)
    sid = set_id.get() + 1
    set_id.put(sid)
    start = system.number.get() + 1
    effective_from.put(start)
    authorship.authorities.put(tuple(v.account for v in ordered))
    deposit_event(ValidatorSetChanged(sid, start, tuple(v.account for v in ordered)))


def remove(account: bytes) -> bool:
    """Drop `account` from the set if it is in it and the set stays above min_validators (used by
    equivocation handling, which must not fail a block); True if removed."""
    current_set = list(validators.get())
    rest = [v for v in current_set if v.account != account]
    if len(rest) == len(current_set) or len(rest) < Config.min_validators:
        return False
    _set(rest)
    deposit_event(ValidatorRemoved(account))
    return True


# --- calls -----------------------------------------------------------------------------------
@pallet.call(0, weight=W_ADD, origin=ROOT)
def add_validator(origin: Origin, account: AccountId, bls_public_key: Bytes(BLS_PUBLIC_KEY_BYTES),
                  bls_proof_of_possession: Bytes(BLS_SIGNATURE_BYTES)) -> None:
    """Add a licensed validator operator to the set, from the next height. Root."""
    ensure_root(origin)
    ensure(identity.is_licensed(account, identity.Role.VALIDATOR_OPERATOR), Error.NotLicensed)
    current_set = list(validators.get())
    ensure(all(v.account != account for v in current_set), Error.AlreadyValidator)
    ensure(len(current_set) < Config.max_validators, Error.TooManyValidators)
    _check_bls(bls_public_key, bls_proof_of_possession)
    _set(current_set + [ValidatorInfo(account, bls_public_key, 1)])
    deposit_event(ValidatorAdded(account))


@pallet.call(1, weight=W_REMOVE, origin=ROOT)
def remove_validator(origin: Origin, account: AccountId) -> None:
    """Remove a validator from the set, from the next height. Root."""
    ensure_root(origin)
    current_set = validators.get()
    ensure(any(v.account == account for v in current_set), Error.NotValidator)
    ensure(len(current_set) - 1 >= Config.min_validators, Error.LastValidator)
    remove(account)


# --- equivocation evidence ---------------------------------------------------------------------
def _check_evidence(evidence: DuplicateVoteEvidence) -> tuple:
    """Every rule evidence must pass, against current state; returns its offence key."""
    from pallets import metering  # noqa: PLC0415 - the chain's genesis hash is kept there
    gh = metering.genesis_hash()
    if gh is None:
        raise InvalidTransaction(InvalidKind.FUTURE, Error.BadEvidence.message)
    try:
        evidence.verify(set(accounts()), gh)
    except InvalidEvidence as e:
        raise InvalidTransaction(InvalidKind.BAD_PROOF, f"{Error.BadEvidence.message}: {e}") from None
    now = system.number.get()
    if evidence.height > now + 1 or evidence.height + Config.evidence_max_age_blocks < now:
        raise InvalidTransaction(InvalidKind.STALE, Error.EvidenceTooOld.message)
    key = evidence.key()
    if reported.contains(key):
        raise InvalidTransaction(InvalidKind.STALE, Error.AlreadyReported.message)
    return key


@pallet.validate_unsigned
def _validate_unsigned(call_def: CallDef, args: tuple, source: TransactionSource,
                       signature_ok: bool | None = None) -> ValidTransaction:
    if call_def is not report_equivocation.call_def:
        raise InvalidTransaction(InvalidKind.CALL, "only validators.report_equivocation may be submitted unsigned")
    (evidence,) = args
    key = _check_evidence(evidence)
    return ValidTransaction(priority=2**60, requires=(), provides=(b"eq" + OffenceKey.encode(key),),
                            longevity=64, propagate=True)


@pallet.call(2, weight=W_EVIDENCE, origin=NONE)
def report_equivocation(origin: Origin, evidence: DuplicateVoteEvidence) -> None:
    """Evidence that a validator signed two different votes for one step (unsigned: any node may
    submit it, no fee). The offender is named and removed from the set from the next height."""
    ensure_none(origin)
    try:
        key = _check_evidence(evidence)
    except InvalidTransaction:
        fail(Error.BadEvidence)
    reported.insert(key, system.number.get())
    removed = remove(evidence.validator)
    deposit_event(Equivocation(evidence.validator, key[1], key[2], key[3], removed))


# --- genesis ---------------------------------------------------------------------------------
@pallet.genesis
def _genesis(config: dict) -> None:
    """{"validators": [{"account": ss58, "bls_public_key": "0x..", "bls_proof_of_possession": "0x.."}]};
    runs after identity (lower index), so it checks licences as add_validator does, and replaces
    authorship's authorities with the validator accounts."""
    entries = config.get("validators", [])
    if not entries:
        return
    infos = []
    for e in entries:
        account = ss58.decode(e["account"], None)
        pk = bytes.fromhex(e["bls_public_key"].removeprefix("0x"))
        pop = bytes.fromhex(e["bls_proof_of_possession"].removeprefix("0x"))
        if not identity.is_licensed(account, identity.Role.VALIDATOR_OPERATOR):
            raise ValueError(f"validators genesis: {e['account']} holds no validator licence")
        from primitives import bls  # noqa: PLC0415
        try:
            if not bls.pop_verify(pk, pop):
                raise ValueError(f"validators genesis: bad BLS proof of possession for {e['account']}")
        except bls.BlsError as err:
            raise ValueError(f"validators genesis: bad BLS key for {e['account']}: {err}") from None
        infos.append(ValidatorInfo(account, pk, 1))
    if len({v.account for v in infos}) != len(infos):
        raise ValueError("validators genesis: an account is listed twice")
    ordered = tuple(sorted(infos, key=lambda v: v.account))
    validators.put(ordered)
    authorship.authorities.put(tuple(v.account for v in ordered))
