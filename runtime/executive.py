"""The executive: validate transactions, build and execute blocks, build genesis.

The runtime is a pure function of (parent state, block): everything here reads the parent state
through an `Overlay` and returns the block's storage changes; the node computes the state root,
commits, and does all I/O. The same `BlockBuilder` serves authoring (skip what does not fit) and
import (anything invalid rejects the block), so both follow one rule book.

Order of a block: initialize (system context, author, a runtime upgrade's migrations when the
block is the first of a new spec_version, on_initialize hooks) -> inherents (the timestamp, first)
-> extrinsics -> finalize (on_finalize hooks, events and counters stored).

A `Runtime` is built for one spec_version: its call table and metadata hold what that version has
(`Pallet.call(since=...)`). Which version runs a block is decided from the parent state by the
`upgrades` pallet; a runtime asked to run a block of another version refuses it (BlockError).

A signed extrinsic is checked (format, signature over genesis hash and spec version, mortality,
nonce, weight and length limits, fee payable), then its fee is withdrawn and its nonce bumped
*outside* the call's transactional layer, so a failed call still pays and still uses its nonce. The
call runs in its own layer; on failure its writes and events roll back and an ExtrinsicFailed event
records why. Unused declared weight is refunded.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from primitives.codec import CodecError, collect_structs
from primitives.errors import BadFormat, ChainError
from primitives.extrinsic import (EXTRINSIC_DOMAIN, Extrinsic, extrinsic_hash, signing_payload)
from primitives.keys import signing_message, verify
from primitives.types import DIGEST_PRE_RUNTIME, ENGINE_GRID, DigestItem, MAX_EXTRINSIC_BYTES
from runtime import dispatch as dispatch_mod
from runtime.api import (ENVIRONMENT_FAULTS, InvalidKind, InvalidTransaction, SignatureCheck, StateReader,
                         TransactionSource, TransactionValidityError, UnknownKind, UnknownTransaction,
                         ValidTransaction, nonce_tag)
from runtime.pallet import CallDef, DispatchError, Origin, Pallet, PostInfo
from runtime.storage import EmptyState, Overlay, externalities

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuntimeVersion:
    spec_name: str = "gridchain"
    impl_name: str = "gridchain-node"
    spec_version: int = 1
    impl_version: int = 1
    transaction_version: int = 1
    state_version: int = 1


@dataclass(frozen=True)
class Limits:
    """Block limits, read from the system pallet's config when the runtime is composed."""

    max_block_weight: int
    max_block_length: int
    normal_ratio_percent: int
    block_hash_count: int
    base_extrinsic_weight: int = 0

    @property
    def max_normal_weight(self) -> int:
        return self.max_block_weight * self.normal_ratio_percent // 100

    @property
    def max_normal_length(self) -> int:
        return self.max_block_length * self.normal_ratio_percent // 100


@dataclass(frozen=True, slots=True)
class Decoded:
    """An extrinsic decoded against the call table: what every later check needs."""

    data: bytes
    hash: bytes
    xt: Extrinsic
    call: CallDef
    args: tuple
    weight: int

    @property
    def signer(self) -> bytes | None:
        return self.xt.signature.signer if self.xt.signature else None


@dataclass
class ApplyOutcome:
    """The result of including one extrinsic: it is in the block either way; error says if its call failed."""

    hash: bytes
    error: DispatchError | None
    weight: int
    fee: int


@dataclass
class BlockResult:
    changes: dict[bytes, bytes | None]
    events: list
    weight: int
    outcomes: list[ApplyOutcome] = field(default_factory=list)


class BlockError(Exception):
    """A block that must not be imported: the reason names the first rule it broke."""


@contextmanager
def refusing_unexpected(what: str) -> Iterator[None]:
    """Turn any exception other than a validity verdict into a refusal of the extrinsic.

    Pallet code that judges an untrusted extrinsic (unsigned validators, signature checks) must
    refuse it, never raise into the pool or the block import; the message names only the exception's
    type, so the verdict reads the same on every node and Python version.
    """
    try:
        yield
    except (TransactionValidityError, BadFormat, *ENVIRONMENT_FAULTS):
        raise
    except CodecError as e:
        raise InvalidTransaction(InvalidKind.CALL, str(e)) from None
    except Exception as e:  # noqa: BLE001 - see the docstring
        _log.warning("%s raised %s: %s", what, type(e).__name__, e)
        raise InvalidTransaction(InvalidKind.CALL, f"{what} failed ({type(e).__name__})") from None


class Runtime:
    """The composed runtime: an ordered set of pallets plus the executive's rules."""

    def __init__(self, pallets: list[Pallet], *, system: Any, timestamp: Any, authorship: Any,
                 payment: Any, genesis_hash: bytes | None = None,
                 version: RuntimeVersion = RuntimeVersion(), upgrades: Any = None,
                 migrations: dict[int, Callable[[], int]] | None = None) -> None:
        """`system`, `timestamp`, `authorship`, `payment` and `upgrades` are the pallet modules the
        executive works with (passed in, so that runtime/ never imports pallets/): see
        pallets/__init__.py. `migrations[v]` migrates storage into spec_version v (returns the weight
        it used); a block that enters this runtime's version runs those of every version it steps
        through, before the hooks."""
        # the same pallet listed twice (a test adding one that is already composed) counts once
        self.pallets = sorted(dict.fromkeys(pallets), key=lambda p: p.index)
        self.by_name = {p.name: p for p in self.pallets}
        if len({p.index for p in self.pallets}) != len(self.pallets):
            raise ValueError("two pallets share an index")
        self.version = version
        self.genesis_hash = genesis_hash
        self.calls = dispatch_mod.CallTable(self.pallets, version.spec_version)
        dispatch_mod.install(self.calls)
        self._system, self._timestamp = system, timestamp
        self._authorship, self._payment, self._upgrades = authorship, payment, upgrades
        self.migrations = dict(migrations or {})
        c = system.Config
        self.limits = Limits(c.max_block_weight, c.max_block_length, c.normal_ratio_percent,
                             c.block_hash_count, c.base_extrinsic_weight)

    # ------------------------------------------------------------------------------------
    # genesis and metadata
    # ------------------------------------------------------------------------------------
    def build_genesis_storage(self, config: dict) -> dict[bytes, bytes]:
        """Raw genesis storage from the chain spec's per-pallet genesis config."""
        self.activate()     # builders that check call names read this version's table
        ov = Overlay(EmptyState())
        with externalities(ov):
            for p in self.pallets:
                if p.genesis_builder is not None:
                    p.genesis_builder(config.get(p.name, {}))
        return {k: v for k, v in sorted(ov.changes().items()) if v is not None}

    def activate(self) -> None:
        """Make this runtime's call table the one nested calls (sudo, council) dispatch through;
        called wherever the runtime starts work, since a node holds one runtime per version."""
        dispatch_mod.install(self.calls)

    def metadata(self) -> dict:
        v = self.version.spec_version
        return {
            "version": 1,
            "runtime": {"specName": self.version.spec_name, "specVersion": self.version.spec_version,
                        "transactionVersion": self.version.transaction_version},
            "extrinsic": {
                "version": 1,
                "format": "msgpack [version, signature | nil, [pallet index, call index, [args]]]",
                "signature": "[signer, signature, [birth, period], nonce, tip]",
                "signedPayload": "msgpack [call, [birth, period], nonce, tip, specVersion, "
                                 "transactionVersion, birthHash]",
                "domain": EXTRINSIC_DOMAIN.decode(),
            },
            "storageKeyScheme": "keccak256(pallet)[:16] ++ keccak256(item)[:16] "
                                "++ (keccak256(key)[:16] ++ key) per map key",
            "limits": {"maxBlockWeight": self.limits.max_block_weight,
                       "maxBlockLength": self.limits.max_block_length,
                       "maxExtrinsicLength": MAX_EXTRINSIC_BYTES},
            "pallets": [p.describe(v) for p in self.pallets],
            "types": self._struct_types(),
        }

    def _struct_types(self) -> dict[str, list[dict]]:
        """Field lists of every struct used by a call argument, storage item or event."""
        out: dict[str, list[dict]] = {}
        v = self.version.spec_version
        for p in self.pallets:
            for cd in p.calls_in(v):
                for t in cd.arg_types:
                    collect_structs(t, out)
            for item in p.storage_in(v):
                collect_structs(item.value_type, out)
            for e in p.events:          # events list their own fields; collect what they nest
                for _name, ft in e.FIELDS:
                    collect_structs(ft, out)
        return dict(sorted(out.items()))

    # ------------------------------------------------------------------------------------
    # decoding and checks shared by validation and block execution
    # ------------------------------------------------------------------------------------
    def decode(self, data: bytes) -> Decoded:
        """Decode an extrinsic and its call arguments. Raises BadFormat (RPC 1001) or InvalidTransaction."""
        self.activate()   # a nested call's weight is looked up in this version's table
        if len(data) > MAX_EXTRINSIC_BYTES:
            raise InvalidTransaction(InvalidKind.EXHAUSTS_RESOURCES,
                                     f"extrinsic of {len(data)} bytes exceeds {MAX_EXTRINSIC_BYTES}")
        try:
            xt = Extrinsic.decode(data)
        except CodecError as e:
            raise BadFormat(f"Extrinsic has invalid format: {e}") from None
        except Exception as e:  # noqa: BLE001 - untrusted bytes: any failure is a refusal
            raise BadFormat(f"Extrinsic has invalid format ({type(e).__name__})") from None
        try:
            cd = self.calls.lookup(xt.call)
            args = cd.decode_args(xt.call.args)
            weight = self.limits.base_extrinsic_weight + cd.weight_of(args)
        except CodecError as e:
            raise InvalidTransaction(InvalidKind.CALL, str(e)) from None
        except Exception as e:  # noqa: BLE001 - a weight function that fails refuses its extrinsic
            raise InvalidTransaction(InvalidKind.CALL, f"the call could not be weighed ({type(e).__name__})") from None
        return Decoded(bytes(data), extrinsic_hash(data), xt, cd, args, weight)

    def _birth_hash(self, d: Decoded, number: int) -> bytes:
        """The hash the signature must cover; checks the mortality window (number = block being built)."""
        m = d.xt.signature.mortality
        if m.immortal:
            return self.genesis_hash
        if m.period > self.limits.block_hash_count:
            raise InvalidTransaction(InvalidKind.BAD_PROOF,
                                     f"mortality period {m.period} exceeds {self.limits.block_hash_count}")
        if m.birth >= number:
            raise InvalidTransaction(InvalidKind.BAD_PROOF, "birth block is not yet on chain")
        if number >= m.birth + m.period:
            raise InvalidTransaction(InvalidKind.ANCIENT_BIRTH_BLOCK,
                                     f"transaction expired at block {m.birth + m.period}")
        h = self._system.block_hash.get(m.birth)
        if h is None:
            raise InvalidTransaction(InvalidKind.ANCIENT_BIRTH_BLOCK, "birth block hash no longer known")
        return h

    def signature_check(self, d: Decoded, number: int) -> SignatureCheck | None:
        """The ed25519 check a signed extrinsic needs (None if unsigned); must run under externalities."""
        s = d.xt.signature
        if s is None:
            fn = d.call.pallet.unsigned_signature
            if fn is None:
                return None
            with refusing_unexpected(f"{d.call.pallet.name}.{d.call.name}'s signature check"):
                return fn(d.call, d.args)
        birth = self._birth_hash(d, number)
        payload = signing_payload(d.xt.call, s.mortality, s.nonce, s.tip, self.version.spec_version,
                                  self.version.transaction_version, birth)
        return SignatureCheck(s.signer, s.signature,
                              signing_message(EXTRINSIC_DOMAIN, self.genesis_hash, payload))

    def bad_proof(self, d: Decoded, number: int) -> InvalidTransaction:
        """The verdict on a signed extrinsic whose signature failed; must run under externalities.
        One signed for an earlier spec_version (a client that read the runtime version before an
        upgrade) is told so; the extra checks are paid only by bad signatures."""
        s = d.xt.signature
        birth = self._birth_hash(d, number)
        for old in range(self.version.spec_version - 1, 0, -1):
            payload = signing_payload(d.xt.call, s.mortality, s.nonce, s.tip, old,
                                      self.version.transaction_version, birth)
            if verify(s.signer, s.signature, signing_message(EXTRINSIC_DOMAIN, self.genesis_hash, payload)):
                return InvalidTransaction(
                    InvalidKind.BAD_PROOF,
                    f"signed for runtime spec_version {old}, but the chain runs spec_version "
                    f"{self.version.spec_version} now: read state_getRuntimeVersion and sign again")
        return InvalidTransaction(InvalidKind.BAD_PROOF,
                                  "bad signature (wrong key, or signed for another chain or runtime version)")

    def _check_signed(self, d: Decoded, number: int, signature_ok: bool | None,
                      for_block: bool) -> tuple[int, int]:
        """Checks common to pool and block; returns (chain nonce, fee)."""
        s = d.xt.signature
        if signature_ok is None:
            chk = self.signature_check(d, number)
            signature_ok = verify(chk.public_key, chk.signature, chk.message)
        else:
            self._birth_hash(d, number)  # mortality still applies
        if not signature_ok:
            raise self.bad_proof(d, number)
        if d.weight > self.limits.max_normal_weight or len(d.data) > self.limits.max_normal_length:
            raise InvalidTransaction(InvalidKind.EXHAUSTS_RESOURCES, "larger than a block allows")
        chain_nonce = self._system.account.get(s.signer).nonce
        if s.nonce < chain_nonce:
            raise InvalidTransaction(InvalidKind.STALE, f"nonce {s.nonce} already used (account nonce is {chain_nonce})")
        if for_block and s.nonce > chain_nonce:
            raise InvalidTransaction(InvalidKind.FUTURE, f"nonce {s.nonce} is ahead of the account nonce {chain_nonce}")
        fee = self._payment.compute_fee(len(d.data), d.weight, s.tip)
        if not self._payment.can_pay(s.signer, fee):
            raise InvalidTransaction(InvalidKind.PAYMENT, f"the fee of {fee} exceeds the account's free balance")
        return chain_nonce, fee

    # ------------------------------------------------------------------------------------
    # transaction pool validation
    # ------------------------------------------------------------------------------------
    def validation_context(self, state: StateReader, best_hash: bytes, best_number: int) -> "ValidationContext":
        """Validate transactions for block best_number + 1 (this runtime must be that block's version)."""
        return ValidationContext(self, state, best_hash, best_number)

    # ------------------------------------------------------------------------------------
    # blocks
    # ------------------------------------------------------------------------------------
    def begin_block(self, state: StateReader, parent_hash: bytes, number: int,
                    digest: tuple[DigestItem, ...]) -> "BlockBuilder":
        return BlockBuilder(self, state, parent_hash, number, digest)


class ValidationContext:
    """Validates transactions against one state, as if for the next block (best + 1)."""

    def __init__(self, rt: Runtime, state: StateReader, best_hash: bytes, best_number: int) -> None:
        self.rt = rt
        self.number = best_number + 1
        self.overlay = Overlay(state)
        # make the best block's hash visible, as initialize_block would
        with externalities(self.overlay):
            rt._system.block_hash.insert(best_number, best_hash)

    def decode(self, data: bytes) -> Decoded:
        return self.rt.decode(data)

    def signature_check(self, d: Decoded) -> SignatureCheck | None:
        self.rt.activate()
        with externalities(self.overlay):
            return self.rt.signature_check(d, self.number)

    def validate_batch(self, datas: Sequence[bytes], source: TransactionSource,
                       verify_deferred: Callable[[list[SignatureCheck]], Callable[[], list[bool]]],
                       known_good: Callable[[bytes], bool] = lambda h: False
                       ) -> list[tuple[bytes | None, ValidTransaction | ChainError]]:
        """Validate many transactions at once: (hash, verdict) per input, in order.

        Signatures go to `verify_deferred` (worker processes) first; the state checks run here
        meanwhile, and a bad signature overrides their verdict at the end. `known_good(hash)` skips
        the signature of a transaction verified before (pool revalidation after each block).
        """
        self.rt.activate()
        decoded: list[tuple[Decoded, bool] | ChainError] = []
        checks: list[SignatureCheck] = []
        check_at: list[int] = []
        with externalities(self.overlay):
            for i, data in enumerate(datas):
                try:
                    d = self.rt.decode(data)
                    chk = None if known_good(d.hash) else self.rt.signature_check(d, self.number)
                    if chk is not None:
                        checks.append(chk)
                        check_at.append(i)
                    decoded.append((d, chk is not None or known_good(d.hash)))
                except (TransactionValidityError, BadFormat) as e:
                    decoded.append(e)
            collect = verify_deferred(checks) if checks else (lambda: [])
            out: list[tuple[bytes | None, ValidTransaction | ChainError]] = []
            for item in decoded:
                if isinstance(item, ChainError):
                    out.append((None, item))
                    continue
                d, verified = item
                try:
                    # verified (or being verified) in the batch; else the validator checks itself
                    out.append((d.hash, self._validate(d, source, True if verified else None)))
                except TransactionValidityError as e:
                    out.append((d.hash, e))
        for i, ok in zip(check_at, collect()):
            if not ok:
                out[i] = (out[i][0], self._bad_signature(decoded[i][0], source))
        return out

    def _bad_signature(self, d: Decoded, source: TransactionSource) -> TransactionValidityError:
        """The verdict on a transaction whose batched signature check failed. An unsigned one (a
        meter's reading or record) is judged again with its pallet checking the signature itself,
        so the sender gets the pallet's own sentence; the extra check is paid only by bad ones."""
        if d.xt.signature is not None:
            with externalities(self.overlay):
                try:
                    return self.rt.bad_proof(d, self.number)
                except TransactionValidityError as e:   # its mortality failed first
                    return e
        generic = InvalidTransaction(InvalidKind.BAD_PROOF,
                                     "bad signature (wrong key, or signed for another chain or runtime version)")
        try:
            with externalities(self.overlay):
                self._validate(d, source, None)
        except TransactionValidityError as e:
            return e
        return generic

    def validate(self, d: Decoded, source: TransactionSource,
                 signature_ok: bool | None = None) -> ValidTransaction:
        self.rt.activate()
        with externalities(self.overlay):
            return self._validate(d, source, signature_ok)

    def _validate(self, d: Decoded, source: TransactionSource, signature_ok: bool | None) -> ValidTransaction:
        rt = self.rt
        if d.xt.signature is None:
            if d.call.inherent:
                raise InvalidTransaction(InvalidKind.MANDATORY_VALIDATION,
                                         "inherents are added by the block author, not submitted")
            validator = d.call.pallet.unsigned_validator
            if validator is None:
                raise UnknownTransaction(UnknownKind.NO_UNSIGNED_VALIDATOR,
                                         f"{d.call.pallet.name}.{d.call.name} cannot be submitted unsigned")
            with refusing_unexpected(f"{d.call.pallet.name}.{d.call.name}'s validation"):
                return validator(d.call, d.args, source)
        s = d.xt.signature
        chain_nonce, _fee = rt._check_signed(d, self.number, signature_ok, for_block=False)
        requires = (nonce_tag(s.signer, s.nonce - 1),) if s.nonce > chain_nonce else ()
        m = s.mortality
        longevity = (m.birth + m.period - self.number) if not m.immortal else 2**64 - 1
        return ValidTransaction(priority=s.tip, requires=requires,
                                provides=(nonce_tag(s.signer, s.nonce),), longevity=longevity)


class BlockBuilder:
    """One block in progress over its parent's state (authoring and import alike)."""

    def __init__(self, rt: Runtime, state: StateReader, parent_hash: bytes, number: int,
                 digest: tuple[DigestItem, ...]) -> None:
        self.rt = rt
        self.number = number
        self.overlay = Overlay(state)
        self.extrinsics: list[bytes] = []
        self.outcomes: list[ApplyOutcome] = []
        self.normal_weight = 0
        self.normal_length = 0
        self.total_weight = 0
        self._past_inherents = False
        self._decoded: dict[bytes, Decoded] = {}
        author = next((i.data for i in digest if i.kind == DIGEST_PRE_RUNTIME and i.engine == ENGINE_GRID), None)
        rt.activate()
        with externalities(self.overlay):
            rt._system.initialize(number, parent_hash)
            if author is not None:
                if len(author) != 32:
                    raise BlockError("author digest must carry a 32-byte account")
                rt._authorship.author.put(author)
            self.overlay.phase = [0]
            if rt._upgrades is not None:
                self.total_weight += self._enter_version(number)
            for p in rt.pallets:
                for hook in p.hooks_initialize:
                    self.total_weight += hook(number) or 0

    def _enter_version(self, number: int) -> int:
        """Check that this runtime is the version the block runs under; in the first block of a new
        version run the migrations (see the upgrades pallet). Returns the weight used."""
        rt = self.rt
        want = rt._upgrades.version_for_block(number)
        if want != rt.version.spec_version:
            raise BlockError(f"block #{number} runs under runtime spec_version {want}, "
                             f"not {rt.version.spec_version}")
        return rt._upgrades.enter_version(rt.version.spec_version, rt.migrations)

    def _decode(self, data: bytes) -> Decoded:
        d = self._decoded.get(data)
        if d is None:
            d = self._decoded[data] = self.rt.decode(data)
        return d

    def signature_check(self, data: bytes) -> SignatureCheck | None:
        """For batch verification before `apply`: the check this extrinsic needs, if signed."""
        self.rt.activate()
        d = self._decode(data)
        with externalities(self.overlay):
            return self.rt.signature_check(d, self.number)

    def apply(self, data: bytes, signature_ok: bool | None = None) -> ApplyOutcome:
        """Include one extrinsic. Raises InvalidTransaction (or BadFormat) if it cannot be in this
        block at all; then nothing changed. A failed call is included with its error."""
        rt = self.rt
        rt.activate()
        d = self._decode(data)
        index = len(self.extrinsics)
        ov = self.overlay
        with externalities(ov):
            s = d.xt.signature
            if s is None:
                if d.call.inherent:
                    if self._past_inherents:
                        raise InvalidTransaction(InvalidKind.BAD_MANDATORY, "inherents must come first")
                else:
                    validator = d.call.pallet.unsigned_validator
                    if validator is None:
                        raise UnknownTransaction(UnknownKind.NO_UNSIGNED_VALIDATOR,
                                                 f"{d.call.pallet.name}.{d.call.name} cannot be unsigned")
                    with refusing_unexpected(f"{d.call.pallet.name}.{d.call.name}'s validation"):
                        validator(d.call, d.args, TransactionSource.IN_BLOCK, signature_ok)
                    self._check_room(d)
                origin = Origin.none()
                fee = 0
            else:
                self._check_room(d)
                _nonce, fee = rt._check_signed(d, self.number, signature_ok, for_block=True)
                rt._payment.withdraw_fee(s.signer, fee)
                rt._system.inc_nonce(s.signer)
                origin = Origin.signed(s.signer)
            ov.phase = [1, index]
            error: DispatchError | None = None
            actual = d.weight
            try:
                post = dispatch_mod.dispatch(d.call, origin, d.args)
                if isinstance(post, PostInfo) and post.actual_weight is not None:
                    # a call reports its own weight; the extrinsic's base stays charged
                    actual = min(actual, rt.limits.base_extrinsic_weight + post.actual_weight)
            except DispatchError as e:
                error = e
            if d.call.inherent and error is not None:
                raise InvalidTransaction(InvalidKind.BAD_MANDATORY, f"inherent failed: {error}")
            if s is not None:
                actual_fee = rt._payment.compute_fee(len(data), actual, s.tip)
                rt._payment.settle_fee(s.signer, fee, actual_fee, s.tip)
                fee = actual_fee
            sysmod = rt._system
            if error is None:
                _deposit(ov, sysmod.ExtrinsicSuccess(actual))
            else:
                _deposit(ov, sysmod.ExtrinsicFailed(error.to_plain(), actual))
        self.total_weight += actual
        if not d.call.inherent:
            self._past_inherents = True
            self.normal_weight += actual
            self.normal_length += len(data)
        self.extrinsics.append(d.data)
        out = ApplyOutcome(d.hash, error, actual, fee)
        self.outcomes.append(out)
        self._decoded.pop(data, None)
        return out

    def _check_room(self, d: Decoded) -> None:
        lim = self.rt.limits
        # normal extrinsics get at most their share of the block, and never more than the hooks
        # (settlement's catch-up) and inherents left of it
        if self.normal_weight + d.weight > lim.max_normal_weight or \
                self.total_weight + d.weight > lim.max_block_weight:
            raise InvalidTransaction(InvalidKind.EXHAUSTS_RESOURCES, "the block's weight is used up")
        if self.normal_length + len(d.data) > lim.max_normal_length:
            raise InvalidTransaction(InvalidKind.EXHAUSTS_RESOURCES, "the block's length is used up")

    def finish(self) -> BlockResult:
        """Run on_finalize hooks, store the block's events and counters, return its changes."""
        rt = self.rt
        rt.activate()
        ov = self.overlay
        with externalities(ov):
            ov.phase = [2]
            for p in rt.pallets:
                for hook in p.hooks_finalize:
                    try:
                        hook(self.number)
                    except DispatchError as e:
                        raise BlockError(f"{p.name}.on_finalize failed: {e}") from None
                    except RuntimeError as e:
                        raise BlockError(str(e)) from None
            sysmod = rt._system
            sysmod.events.put(tuple(ov.events))
            sysmod.extrinsic_count.put(len(self.extrinsics))
            sysmod.block_weight.put(self.total_weight)
        return BlockResult(ov.changes(), list(ov.events), self.total_weight, self.outcomes)


def _deposit(ov: Overlay, event: Any) -> None:
    cls = type(event)
    ov.events.append([ov.phase, cls._pallet_index, cls._event_index, event.to_plain()])


def execute_block(builder: BlockBuilder, extrinsics: list[bytes],
                  signatures_ok: list[bool | None] | None = None) -> BlockResult:
    """Import-side execution on a fresh builder: every extrinsic must apply (the timestamp inherent
    is enforced by its pallet's on_finalize; inherents must precede everything else).

    `signatures_ok[i]` True means the caller verifies extrinsic i's signature itself (in parallel);
    None means check it here.
    """
    for i, data in enumerate(extrinsics):
        try:
            builder.apply(data, None if signatures_ok is None else signatures_ok[i])
        except (InvalidTransaction, UnknownTransaction, BadFormat) as e:
            raise BlockError(f"extrinsic {i} is invalid: {e.message}") from None
    return builder.finish()
