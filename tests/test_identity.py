"""identity pallet: licences, roles, suspension and revocation, DIDs, the audit trail of events."""
from __future__ import annotations

from pallets import build_runtime

import pytest

from pallets import (identity)
from pallets.identity import Role, Status
from primitives import ss58
from primitives.hashing import keccak256
from primitives.keys import dev_keypair
from runtime.executive import Runtime
from runtime.pallet import DispatchError, Origin
from runtime.storage import Overlay, externalities
from tests.runtime_harness import (ALICE, BOB, CHARLIE, EVE, FUNDS, GENESIS_HASH, ChainHarness,
                                   default_genesis, events_named)

DAVE, FERDIE = dev_keypair("Dave"), dev_keypair("Ferdie")
DOC = b"\x11" * 32
REASON = b"\x22" * 32


# --- harness helpers (also used by test_grid) ---------------------------------------------------
def energy_runtime() -> Runtime:
    """The composed runtime: every pallet, this one included."""
    return build_runtime(GENESIS_HASH)


def base_genesis() -> dict:
    """Default genesis, Dave and Ferdie funded too; Eve is the registrar, Charlie a DSO, Bob a prosumer."""
    g = default_genesis()
    g["balances"]["balances"] += [[k.address(), FUNDS] for k in (DAVE, FERDIE)]
    g["identity"] = {"participants": [
        {"address": EVE.address(), "roles": ["registrar"], "document_hash": "0x" + DOC.hex()},
        {"address": CHARLIE.address(), "roles": ["dso"]},
        {"address": BOB.address(), "roles": ["prosumer", "consumer"]},
    ]}
    return g


def new_chain(genesis: dict | None = None) -> ChainHarness:
    return ChainHarness.new(genesis or base_genesis(), pallets_runtime=energy_runtime())


def failures(chain: ChainHarness, result) -> list[str]:
    """The error sentences of the block's failed extrinsics."""
    return [e[0][2] for e in events_named(result, chain.runtime, "system", "ExtrinsicFailed")]


def root(chain: ChainHarness, pallet: str, call: str, *args) -> bytes:
    """A sudo extrinsic (Alice holds the key) dispatching pallet.call(*args) as root."""
    p = chain.runtime.by_name[pallet]
    cd = p.calls_by_name[call]
    plain = [t.to_plain(a) for t, a in zip(cd.arg_types, args)]
    return chain.xt(ALICE, "sudo", "sudo", [p.index, cd.index, plain])


def sudo_errors(chain: ChainHarness, result) -> list[str]:
    """Error sentences of the block's root calls that failed (None results are successes)."""
    return [e[0][2] for e in events_named(result, chain.runtime, "sudo", "Sudid") if e[0] is not None]


def pallet_state(chain: ChainHarness, pallet: str) -> dict:
    prefix = keccak256(pallet.encode())[:16]
    return {k: v for k, v in chain.state.items() if k.startswith(prefix)}


def expect_failure(chain: ChainHarness, xt: bytes, sentence: str, pallet: str) -> None:
    """The extrinsic fails with exactly this sentence and leaves the pallet's storage untouched."""
    before = pallet_state(chain, pallet)
    result = chain.block(xt)
    assert failures(chain, result) + sudo_errors(chain, result) == [sentence]
    assert pallet_state(chain, pallet) == before
    names = [e.__name__ for e in chain.runtime.by_name[pallet].events]
    assert not any(events_named(result, chain.runtime, pallet, n) for n in names)


def participant(chain: ChainHarness, who: bytes):
    return chain.read(lambda: identity.participants.get(who))


E = identity.Error


@pytest.fixture
def chain() -> ChainHarness:
    return new_chain()


# --- genesis and DIDs ----------------------------------------------------------------------------
def test_genesis_licenses_participants_at_block_zero_by_themselves(chain):
    eve = participant(chain, EVE.public_key)
    assert eve == identity.Participant(int(Role.REGISTRAR), int(Status.ACTIVE), DOC, EVE.public_key, 0)
    bob = participant(chain, BOB.public_key)
    assert bob.roles == Role.PROSUMER | Role.CONSUMER and bob.document_hash == b"\0" * 32
    assert participant(chain, DAVE.public_key) is None
    assert chain.read(lambda: identity.is_licensed(CHARLIE.public_key, Role.DSO))
    assert chain.read(lambda: identity.is_licensed(BOB.public_key, Role.PROSUMER | Role.CONSUMER))
    assert not chain.read(lambda: identity.is_licensed(BOB.public_key, Role.PROSUMER | Role.DSO))
    assert not chain.read(lambda: identity.is_licensed(DAVE.public_key, Role(0)))


@pytest.mark.parametrize("entry, message", [
    ({"roles": ["wizard"]}, "unknown role"),
    ({"roles": []}, "at least one role"),
    ({"roles": ["dso"], "document_hash": "0x1234"}, "not 32 bytes"),
])
def test_genesis_rejects_bad_entries(entry, message):
    g = base_genesis()
    g["identity"]["participants"].append({"address": DAVE.address(), **entry})
    with pytest.raises(ValueError, match=message):
        new_chain(g)


def test_genesis_rejects_a_participant_listed_twice():
    g = base_genesis()
    g["identity"]["participants"].append({"address": BOB.address(), "roles": ["dso"]})
    with pytest.raises(ValueError, match="twice"):
        new_chain(g)


def test_did_is_grid_method_and_ss58_address():
    did = identity.did_of(BOB.public_key)
    assert did == "did:grid:" + BOB.address()
    assert ss58.decode(did.removeprefix("did:grid:")) == BOB.public_key


# --- license -------------------------------------------------------------------------------------
def test_registrar_licenses_a_new_participant_with_an_event(chain):
    result = chain.block(chain.xt(EVE, "identity", "license", DAVE.public_key, 3, DOC))
    assert failures(chain, result) == []
    assert participant(chain, DAVE.public_key) == identity.Participant(3, 0, DOC, EVE.public_key, 1)
    assert events_named(result, chain.runtime, "identity", "Licensed") == [
        [DAVE.public_key, EVE.public_key, 3, DOC]]
    assert chain.read(lambda: identity.is_licensed(DAVE.public_key, Role.CONSUMER))


@pytest.mark.parametrize("signer, who, roles, sentence", [
    (BOB, DAVE, 1, E.NotRegistrar.message),                 # licensed, but not a registrar
    (DAVE, FERDIE, 1, E.NotRegistrar.message),              # not licensed at all
    (EVE, DAVE, 0, E.InvalidRoles.message),                 # empty
    (EVE, DAVE, 64, E.InvalidRoles.message),                # undefined bit
    (EVE, DAVE, 255, E.InvalidRoles.message),
    (EVE, BOB, 1, E.AlreadyLicensed.message),
])
def test_license_errors(chain, signer, who, roles, sentence):
    expect_failure(chain, chain.xt(signer, "identity", "license", who.public_key, roles, DOC), sentence,
                   "identity")


def test_license_of_a_revoked_account_is_refused(chain):
    chain.block(chain.xt(EVE, "identity", "revoke", BOB.public_key, REASON))
    expect_failure(chain, chain.xt(EVE, "identity", "license", BOB.public_key, 1, DOC),
                   E.RevocationIsFinal.message, "identity")


def test_suspended_registrar_can_no_longer_license(chain):
    chain.block(root(chain, "identity", "force_license", DAVE.public_key, int(Role.REGISTRAR), DOC))
    chain.block(chain.xt(DAVE, "identity", "suspend", EVE.public_key, REASON))
    expect_failure(chain, chain.xt(EVE, "identity", "license", FERDIE.public_key, 1, DOC),
                   E.NotRegistrar.message, "identity")


# --- set_roles -----------------------------------------------------------------------------------
def test_set_roles_replaces_roles_and_keeps_the_issuing_registrar(chain):
    roles = int(Role.PROSUMER | Role.ISSUER)
    result = chain.block(chain.xt(EVE, "identity", "set_roles", BOB.public_key, roles))
    assert failures(chain, result) == []
    p = participant(chain, BOB.public_key)
    assert p.roles == roles and p.registrar == BOB.public_key   # genesis licence: issued by itself
    assert events_named(result, chain.runtime, "identity", "RolesChanged") == [
        [BOB.public_key, EVE.public_key, roles]]
    assert not chain.read(lambda: identity.is_licensed(BOB.public_key, Role.CONSUMER))


def test_set_roles_on_a_suspended_licence_is_allowed(chain):
    chain.block(chain.xt(EVE, "identity", "suspend", BOB.public_key, REASON))
    result = chain.block(chain.xt(EVE, "identity", "set_roles", BOB.public_key, 1))
    assert failures(chain, result) == []
    assert participant(chain, BOB.public_key).status == Status.SUSPENDED


@pytest.mark.parametrize("signer, who, roles, sentence", [
    (BOB, CHARLIE, 1, E.NotRegistrar.message),
    (EVE, DAVE, 1, E.NotParticipant.message),
    (EVE, BOB, 0, E.InvalidRoles.message),
    (EVE, BOB, 128, E.InvalidRoles.message),
    (EVE, EVE, 9, E.SelfAction.message),
])
def test_set_roles_errors(chain, signer, who, roles, sentence):
    expect_failure(chain, chain.xt(signer, "identity", "set_roles", who.public_key, roles), sentence,
                   "identity")


def test_set_roles_of_a_revoked_licence_is_refused(chain):
    chain.block(chain.xt(EVE, "identity", "revoke", BOB.public_key, REASON))
    expect_failure(chain, chain.xt(EVE, "identity", "set_roles", BOB.public_key, 1),
                   E.RevocationIsFinal.message, "identity")


# --- suspend / reinstate / revoke ----------------------------------------------------------------
def test_suspend_then_reinstate_with_audit_events(chain):
    r1 = chain.block(chain.xt(EVE, "identity", "suspend", BOB.public_key, REASON))
    assert failures(chain, r1) == []
    assert participant(chain, BOB.public_key).status == Status.SUSPENDED
    assert not chain.read(lambda: identity.is_licensed(BOB.public_key, Role.PROSUMER))
    assert events_named(r1, chain.runtime, "identity", "Suspended") == [
        [BOB.public_key, EVE.public_key, REASON]]
    r2 = chain.block(chain.xt(EVE, "identity", "reinstate", BOB.public_key))
    assert failures(chain, r2) == []
    assert chain.read(lambda: identity.is_licensed(BOB.public_key, Role.PROSUMER))
    assert events_named(r2, chain.runtime, "identity", "Reinstated") == [[BOB.public_key, EVE.public_key]]


@pytest.mark.parametrize("signer, who, sentence", [
    (BOB, CHARLIE, E.NotRegistrar.message),
    (EVE, DAVE, E.NotParticipant.message),
    (EVE, EVE, E.SelfAction.message),
])
def test_suspend_errors(chain, signer, who, sentence):
    expect_failure(chain, chain.xt(signer, "identity", "suspend", who.public_key, REASON), sentence,
                   "identity")


def test_suspend_twice_and_suspend_revoked_are_refused(chain):
    chain.block(chain.xt(EVE, "identity", "suspend", BOB.public_key, REASON))
    expect_failure(chain, chain.xt(EVE, "identity", "suspend", BOB.public_key, REASON),
                   E.NotActive.message, "identity")
    chain.block(chain.xt(EVE, "identity", "revoke", CHARLIE.public_key, REASON))
    expect_failure(chain, chain.xt(EVE, "identity", "suspend", CHARLIE.public_key, REASON),
                   E.RevocationIsFinal.message, "identity")


@pytest.mark.parametrize("signer, who, sentence", [
    (BOB, CHARLIE, E.NotRegistrar.message),
    (EVE, DAVE, E.NotParticipant.message),
    (EVE, BOB, E.NotSuspended.message),          # active
])
def test_reinstate_errors(chain, signer, who, sentence):
    expect_failure(chain, chain.xt(signer, "identity", "reinstate", who.public_key), sentence, "identity")


def test_revoke_is_final(chain):
    chain.block(chain.xt(EVE, "identity", "suspend", BOB.public_key, REASON))
    result = chain.block(chain.xt(EVE, "identity", "revoke", BOB.public_key, REASON))   # suspended -> revoked
    assert failures(chain, result) == []
    assert events_named(result, chain.runtime, "identity", "Revoked") == [
        [BOB.public_key, EVE.public_key, REASON]]
    assert participant(chain, BOB.public_key).status == Status.REVOKED
    assert not chain.read(lambda: identity.is_licensed(BOB.public_key, Role(0)))
    for call, args in (("reinstate", ()), ("revoke", (REASON,))):
        expect_failure(chain, chain.xt(EVE, "identity", call, BOB.public_key, *args),
                       E.RevocationIsFinal.message, "identity")


@pytest.mark.parametrize("signer, who, sentence", [
    (BOB, CHARLIE, E.NotRegistrar.message),
    (EVE, DAVE, E.NotParticipant.message),
    (EVE, EVE, E.SelfAction.message),
])
def test_revoke_errors(chain, signer, who, sentence):
    expect_failure(chain, chain.xt(signer, "identity", "revoke", who.public_key, REASON), sentence, "identity")


# --- set_document --------------------------------------------------------------------------------
def test_participant_updates_its_document_while_active_or_suspended(chain):
    new = b"\x33" * 32
    result = chain.block(chain.xt(BOB, "identity", "set_document", new))
    assert failures(chain, result) == []
    assert participant(chain, BOB.public_key).document_hash == new
    assert events_named(result, chain.runtime, "identity", "DocumentUpdated") == [
        [BOB.public_key, BOB.public_key, new]]
    chain.block(chain.xt(EVE, "identity", "suspend", BOB.public_key, REASON))
    result = chain.block(chain.xt(BOB, "identity", "set_document", DOC))
    assert failures(chain, result) == [] and participant(chain, BOB.public_key).document_hash == DOC


def test_set_document_errors(chain):
    expect_failure(chain, chain.xt(DAVE, "identity", "set_document", DOC), E.NotParticipant.message, "identity")
    chain.block(chain.xt(EVE, "identity", "revoke", BOB.public_key, REASON))
    expect_failure(chain, chain.xt(BOB, "identity", "set_document", DOC), E.RevocationIsFinal.message,
                   "identity")


# --- force_license -------------------------------------------------------------------------------
def test_root_force_licenses_a_registrar_who_then_licenses_others(chain):
    result = chain.block(root(chain, "identity", "force_license", DAVE.public_key, int(Role.REGISTRAR), DOC))
    assert sudo_errors(chain, result) == []
    assert events_named(result, chain.runtime, "identity", "Licensed") == [
        [DAVE.public_key, DAVE.public_key, int(Role.REGISTRAR), DOC]]
    result = chain.block(chain.xt(DAVE, "identity", "license", FERDIE.public_key, 1, DOC))
    assert failures(chain, result) == []
    assert participant(chain, FERDIE.public_key).registrar == DAVE.public_key


def test_root_may_relicense_a_revoked_account(chain):
    chain.block(chain.xt(EVE, "identity", "revoke", BOB.public_key, REASON))
    result = chain.block(root(chain, "identity", "force_license", BOB.public_key, 1, DOC))
    assert sudo_errors(chain, result) == []
    assert chain.read(lambda: identity.is_licensed(BOB.public_key, Role.PROSUMER))


def test_force_license_errors(chain):
    expect_failure(chain, root(chain, "identity", "force_license", DAVE.public_key, 0, DOC),
                   E.InvalidRoles.message, "identity")
    expect_failure(chain, root(chain, "identity", "force_license", DAVE.public_key, 64, DOC),
                   E.InvalidRoles.message, "identity")
    expect_failure(chain, chain.xt(EVE, "identity", "force_license", DAVE.public_key, 1, DOC),
                   "this call needs the root origin", "identity")


# --- direct calls ----------------------------------------------------------------------------------
def test_calls_raise_their_error_when_called_directly(chain):
    """The same rules hold when another pallet (or governance) calls in without the executive."""
    with externalities(Overlay(chain.state)):
        with pytest.raises(DispatchError, match="registrar"):
            identity.license(Origin.signed(BOB.public_key), DAVE.public_key, 1, DOC)
        identity.license(Origin.signed(EVE.public_key), DAVE.public_key, int(Role.VALIDATOR_OPERATOR), DOC)
        assert identity.is_licensed(DAVE.public_key, Role.VALIDATOR_OPERATOR)
