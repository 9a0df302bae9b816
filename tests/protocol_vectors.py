"""The test vectors published in docs/protocol.md, computed from the code.

`tests/test_protocol_doc.py` checks that every value here appears verbatim in the document, so the
document cannot drift from what the node does. Run `python -m tests.protocol_vectors` to print them.
"""
from __future__ import annotations

from primitives import codec
from primitives.extrinsic import (EXTRINSIC_DOMAIN, Call, Mortality, extrinsic_hash, sign_extrinsic,
                                  signing_payload)
from primitives.keys import signing_message, dev_keypair, secret_seed_from_uri
from primitives.trie import Trie, ordered_trie_root
from primitives.types import DIGEST_PRE_RUNTIME, ENGINE_GRID, DigestItem, Header
from node.chain import seal_header

GENESIS = bytes.fromhex("11" * 32)


def vectors() -> dict[str, str]:
    from pallets import balances, system, timestamp
    alice, bob = dev_keypair("Alice"), dev_keypair("Bob")
    v: dict[str, str] = {}
    v["alice.seed"] = "0x" + secret_seed_from_uri("//Alice").hex()
    v["alice.public"] = "0x" + alice.public_key.hex()
    v["alice.ss58"] = alice.address()
    v["bob.public"] = "0x" + bob.public_key.hex()

    call = Call(balances.pallet.index, balances.transfer.call_def.index, (bob.public_key, 1_000_000))
    v["call"] = "0x" + call.encode().hex()
    payload = signing_payload(call, Mortality(), 0, 0, 1, 1, GENESIS)
    v["payload"] = "0x" + payload.hex()
    v["message"] = "0x" + signing_message(EXTRINSIC_DOMAIN, GENESIS, payload).hex()
    xt = sign_extrinsic(alice, call, nonce=0, genesis_hash=GENESIS, spec_version=1, transaction_version=1)
    data = xt.encode()
    v["signature"] = "0x" + xt.signature.signature.hex()
    v["extrinsic"] = "0x" + data.hex()
    v["extrinsic.hash"] = "0x" + extrinsic_hash(data).hex()

    v["key.system.account.alice"] = "0x" + system.account.key_of(alice.public_key).hex()
    v["key.balances.asset_balance.1.alice"] = "0x" + balances.asset_balance.key_of(1, alice.public_key).hex()
    v["key.timestamp.now"] = "0x" + timestamp.now.prefix.hex()

    account_value = system.AccountInfo(3, 5_000_000, 0).encode()
    v["value.account"] = "0x" + account_value.hex()
    state = {system.account.key_of(alice.public_key): account_value,
             system.account.key_of(bob.public_key): system.AccountInfo(0, 7, 0).encode(),
             timestamp.now.prefix: codec.U64.encode(1_700_000_000_000)}
    trie = Trie({})
    root = trie.apply(state).root
    v["proof.root"] = "0x" + root.hex()
    v["proof.nodes"] = ", ".join("0x" + n.hex() for n in trie.prove(system.account.key_of(alice.public_key)))

    xroot = ordered_trie_root([data])
    v["header.extrinsics_root"] = "0x" + xroot.hex()
    header = Header(GENESIS, 1, root, xroot, (DigestItem(DIGEST_PRE_RUNTIME, ENGINE_GRID, alice.public_key),))
    v["header.unsealed"] = "0x" + header.encode().hex()
    v["header.pre_hash"] = "0x" + header.pre_hash().hex()
    sealed = seal_header(header, alice, GENESIS)
    v["header.sealed"] = "0x" + sealed.encode().hex()
    v["header.hash"] = "0x" + sealed.hash().hex()

    from tests.test_meter_reading import reading_vector
    v.update(reading_vector())
    v.update(consensus_vectors())
    return v


def consensus_vectors() -> dict[str, str]:
    """A precommit by //Validator1 for block 0x22..22 at height 5, round 1, on genesis 0x11..11, and
    an evidence pair (the same validator also precommitting 0x33..33)."""
    from primitives.keys import Keypair
    from primitives.votes import VOTE_DOMAIN, DuplicateVoteEvidence, Step, Vote, vote_payload
    v1 = Keypair.from_uri("//Validator1")
    block = bytes.fromhex("22" * 32)

    def precommit(h: bytes) -> Vote:
        sig = v1.sign_domain(VOTE_DOMAIN, GENESIS, vote_payload(Step.PRECOMMIT, 5, 1, h))
        return Vote(Step.PRECOMMIT, 5, 1, h, v1.public_key, sig)

    vote = precommit(block)
    ev = DuplicateVoteEvidence.from_votes(precommit(bytes.fromhex("33" * 32)), vote)
    return {"vote.validator": "0x" + v1.public_key.hex(),
            "vote.payload": "0x" + vote_payload(Step.PRECOMMIT, 5, 1, block).hex(),
            "vote.message": "0x" + signing_message(VOTE_DOMAIN, GENESIS, vote.signed_payload()).hex(),
            "vote.signature": "0x" + vote.signature.hex(),
            "vote": "0x" + vote.encode().hex(),
            "evidence": "0x" + ev.encode().hex()}


if __name__ == "__main__":
    for k, val in vectors().items():
        print(f"{k}: {val}")
