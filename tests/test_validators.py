"""The validators pallet: the licensed BFT validator set in chain state, changed by governance (root).

Chain: the local testnet genesis (validators //Validator1..4, Alice the registrar, no sudo key):
root calls are council motions (Alice, Dave and the four validator operators; two thirds, four ayes,
for the validators pallet).
"""
from __future__ import annotations

import pytest

from genesis.chain_spec import local_spec
from pallets import authorship, validators
from primitives import bls
from primitives.extrinsic import Call, Extrinsic
from primitives.keys import Keypair
from primitives.votes import VOTE_DOMAIN, DuplicateVoteEvidence, Step, Vote, vote_payload
from runtime.api import InvalidTransaction
from tests.council_helpers import Enactment, pass_motion
from tests.runtime_harness import GENESIS_HASH, ChainHarness, chain_factory, events_named
from tests.test_identity import ALICE, DAVE

E = validators.Error
V = [Keypair.from_uri(f"//Validator{i}") for i in range(1, 6)]
NEWCOMER = Keypair.from_uri("//Operator5")


def _genesis() -> dict:
    g = local_spec(4)["genesis"]["runtimeGenesis"]["config"]
    g["identity"]["participants"].append({"address": NEWCOMER.address(), "roles": ["validator_operator"]})
    return g


new_chain = chain_factory(_genesis())
_RUNTIME = new_chain.runtime


@pytest.fixture
def chain() -> ChainHarness:
    return new_chain()


def root(chain: ChainHarness, call: str, *args) -> Enactment:
    """validators.call(*args) as root: a council motion by Alice, with Dave and two validator
    operators voting aye (four of six), enacted after the delay."""
    return pass_motion(chain, ALICE, [DAVE, V[0], V[1]], "validators", call, *args)


def root_error(out: Enactment) -> str | None:
    """The error sentence of the enacted root call (None: it succeeded)."""
    return None if out.result is None else out.result[2]


def bls_keys(kp: Keypair) -> tuple[bytes, bytes]:
    sk = bls.secret_from_seed(kp.seed)
    return bls.sk_to_pk(sk), bls.pop_prove(sk)


def current(chain) -> list[bytes]:
    return chain.read(lambda: list(validators.accounts()))


def test_genesis_set_is_ordered_by_account_and_mirrored_into_authorship(chain):
    accounts = current(chain)
    assert accounts == sorted(kp.public_key for kp in V[:4])
    assert chain.read(lambda: list(authorship.authorities.get())) == accounts
    infos = chain.read(validators.current)
    for info in infos:
        kp = next(k for k in V if k.public_key == info.account)
        assert info.bls_public_key == bls_keys(kp)[0] and info.power == 1


def test_root_adds_a_licensed_operator_from_the_next_height(chain):
    pk, pop = bls_keys(NEWCOMER)
    out = root(chain, "add_validator", NEWCOMER.public_key, pk, pop)
    r = out.block
    assert root_error(out) is None
    assert NEWCOMER.public_key in current(chain) and len(current(chain)) == 5
    assert NEWCOMER.public_key in chain.read(lambda: authorship.authorities.get())
    changed = events_named(r, _RUNTIME, "validators", "ValidatorSetChanged")
    assert changed == [[1, chain.number + 1, current(chain)]]
    assert chain.read(lambda: validators.effective_from.get()) == chain.number + 1


def test_only_root_may_change_the_set(chain):
    pk, pop = bls_keys(NEWCOMER)
    cd = _RUNTIME.by_name["validators"].calls_by_name["add_validator"]
    bob = Keypair.from_uri("//Bob")                     # funded, but no root origin
    r = chain.block(chain.xt(bob, "validators", "add_validator", NEWCOMER.public_key, pk, pop))
    assert events_named(r, _RUNTIME, "system", "ExtrinsicFailed")
    assert cd.index == 0 and len(current(chain)) == 4


@pytest.mark.parametrize("case", ["unlicensed", "bad_pop", "others_pop", "garbage_key", "duplicate"])
def test_an_add_that_breaks_a_rule_is_refused_and_changes_nothing(chain, case):
    pk, pop = bls_keys(NEWCOMER)
    who = NEWCOMER.public_key
    expected = E.BadProofOfPossession.message
    if case == "unlicensed":
        who, expected = Keypair.from_uri("//Stranger").public_key, E.NotLicensed.message
    elif case == "bad_pop":
        pop = bls.sign(bls.secret_from_seed(NEWCOMER.seed), b"not a proof")
    elif case == "others_pop":
        pop = bls_keys(V[0])[1]
    elif case == "garbage_key":
        pk, expected = b"\x01" * 48, E.BadBlsKey.message
    elif case == "duplicate":
        who, expected = V[0].public_key, E.AlreadyValidator.message
    before = dict(chain.state)
    out = root(chain, "add_validator", who, pk, pop)
    assert root_error(out) == expected
    prefix = validators.validators.prefix
    assert {k: v for k, v in chain.state.items() if k.startswith(prefix)} == \
        {k: v for k, v in before.items() if k.startswith(prefix)}


def test_root_removes_a_validator_but_never_the_last(chain, monkeypatch):
    out = root(chain, "remove_validator", V[1].public_key)
    assert root_error(out) is None
    assert V[1].public_key not in current(chain)
    assert events_named(out.block, _RUNTIME, "validators", "ValidatorRemoved") == [[V[1].public_key]]
    assert root_error(root(chain, "remove_validator", V[1].public_key)) == E.NotValidator.message
    monkeypatch.setattr(validators.Config, "min_validators", 3)
    assert root_error(root(chain, "remove_validator", V[0].public_key)) == E.LastValidator.message
    assert len(current(chain)) == 3


def test_genesis_refuses_an_unlicensed_validator_or_a_bad_proof():
    g = local_spec(4)["genesis"]["runtimeGenesis"]["config"]
    g["identity"]["participants"] = [p for p in g["identity"]["participants"]
                                     if p["address"] != V[0].address()]
    with pytest.raises(ValueError, match="validator licence"):
        _RUNTIME.build_genesis_storage(g)
    g = local_spec(4)["genesis"]["runtimeGenesis"]["config"]
    g["validators"]["validators"][0]["bls_proof_of_possession"] = \
        g["validators"]["validators"][1]["bls_proof_of_possession"]
    with pytest.raises(ValueError, match="proof of possession"):
        _RUNTIME.build_genesis_storage(g)
    assert ALICE  # the registrar stays licensed; only validators were touched


# --- equivocation evidence ----------------------------------------------------------------------
def vote(kp: Keypair, height: int, block: bytes | None, round_: int = 0, kind: Step = Step.PRECOMMIT,
         genesis: bytes = GENESIS_HASH) -> Vote:
    sig = kp.sign_domain(VOTE_DOMAIN, genesis, vote_payload(kind, height, round_, block))
    return Vote(kind, height, round_, block, kp.public_key, sig)


def evidence_xt(ev: DuplicateVoteEvidence) -> bytes:
    cd = validators.report_equivocation.call_def
    return Extrinsic(Call(validators.pallet.index, cd.index, (ev.to_plain(),))).encode()


def test_equivocation_evidence_names_the_offender_and_removes_it_from_the_next_height(chain):
    offender = V[2]
    ev = DuplicateVoteEvidence.from_votes(vote(offender, 1, b"\x01" * 32), vote(offender, 1, b"\x02" * 32))
    assert chain.validate(evidence_xt(ev)).provides      # the pool takes it: unsigned, no fee
    r = chain.block(evidence_xt(ev))
    assert events_named(r, _RUNTIME, "validators", "Equivocation") == \
        [[offender.public_key, 1, 0, int(Step.PRECOMMIT), True]]
    assert offender.public_key not in current(chain) and len(current(chain)) == 3
    assert offender.public_key not in chain.read(lambda: authorship.authorities.get())
    # the same equivocation again is refused, and changes nothing
    with pytest.raises(InvalidTransaction, match="already been reported|not a validator"):
        chain.validate(evidence_xt(ev))


@pytest.mark.parametrize("case", ["same_block", "different_validators", "foreign_chain", "forged",
                                  "not_a_validator", "different_rounds", "too_old"])
def test_evidence_that_proves_nothing_is_refused(chain, case, monkeypatch):
    a, b = vote(V[0], 1, b"\x01" * 32), vote(V[0], 1, b"\x02" * 32)
    if case == "same_block":
        b = vote(V[0], 1, b"\x01" * 32, kind=Step.PRECOMMIT)
    elif case == "different_validators":
        b = vote(V[1], 1, b"\x02" * 32)
    elif case == "foreign_chain":
        a, b = (vote(V[0], 1, h, genesis=b"\x99" * 32) for h in (b"\x01" * 32, b"\x02" * 32))
    elif case == "forged":
        b = Vote(b.kind, b.height, b.round, b.block_hash, b.validator, bytes(64))
    elif case == "not_a_validator":
        stranger = Keypair.from_uri("//Stranger")
        a, b = vote(stranger, 1, b"\x01" * 32), vote(stranger, 1, b"\x02" * 32)
    elif case == "different_rounds":
        b = vote(V[0], 1, b"\x02" * 32, round_=1)
    elif case == "too_old":
        monkeypatch.setattr(validators.Config, "evidence_max_age_blocks", 0)
        for _ in range(2):
            chain.block()
    ev = DuplicateVoteEvidence.from_votes(a, b)
    with pytest.raises(InvalidTransaction):
        chain.validate(evidence_xt(ev))
    assert len(current(chain)) == 4
