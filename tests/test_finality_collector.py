"""BLS finality certificates collected by a node (node.finality): real chain on LevelDB, real BLS keys
of the local testnet's validators; the network is replaced by lists (the unit under test is the
collector)."""
from __future__ import annotations

import pytest

from consensus import finality_certificate as fc
from genesis.chain_spec import genesis_storage, local_spec
from node.chain import Chain
from node.db import Database
from node.finality import ENGINE_FINALITY, FinalityCollector
from pallets import validators
from primitives import bls
from primitives.codec import pack
from primitives.keys import Keypair

V = [Keypair.from_uri(f"//Validator{i}") for i in range(1, 5)]


@pytest.fixture
def chain(tmp_path):
    c = Chain(Database.open(tmp_path / "db"), lambda rt: genesis_storage(local_spec(4), rt))
    c.build_block(V[0], [], finalize=True)
    yield c
    c.db.close()


def partial(chain, kp: Keypair, height: int, block_hash: bytes, *, forge: bool = False) -> bytes:
    sk = bls.secret_from_seed(kp.seed)
    sig = fc.sign_finality(sk, chain.genesis_hash, height, b"\x99" * 32 if forge else block_hash)
    return pack([height, block_hash, kp.public_key, sig])


def stored_certificate(chain, block_hash: bytes):
    js = {j.engine: j.data for j in chain.blocks.justifications(block_hash) or ()}
    return fc.FinalityCertificate.decode(js[ENGINE_FINALITY]) if ENGINE_FINALITY in js else None


def test_a_quorum_of_partials_becomes_a_verified_certificate_and_a_bad_signer_is_dropped(chain):
    published, penalised = [], []
    collector = FinalityCollector(chain, V[0], published.append, lambda peer, why: penalised.append(peer))
    h1 = chain.best_hash
    collector.committed(1, h1)
    assert len(published) == 1                       # our own partial went out
    collector.on_partial("peerB", partial(chain, V[1], 1, h1))
    collector.on_partial("peerC", partial(chain, V[2], 1, h1, forge=True))   # signs another block
    # three partials (a quorum of 4) but the aggregate fails: the forger is found and dropped
    assert stored_certificate(chain, h1) is None
    assert penalised == ["peerC"]
    collector.on_partial("peerD", partial(chain, V[3], 1, h1))
    cert = stored_certificate(chain, h1)
    assert cert is not None and collector.certificates_built == 1
    keys = [v.bls_public_key for v in chain.read(validators.current)]
    fc.verify(cert, keys, chain.genesis_hash)
    signers = {chain.read(validators.current)[i].account for i in cert.signer_indices()}
    assert signers == {V[0].public_key, V[1].public_key, V[3].public_key}


def test_garbage_and_strangers_are_refused(chain):
    penalised = []
    collector = FinalityCollector(chain, None, lambda data: None, lambda peer, why: penalised.append(why))
    h1 = chain.best_hash
    collector.on_partial("p1", b"\x00garbage")
    collector.on_partial("p2", partial(chain, Keypair.from_uri("//Stranger"), 1, h1))
    collector.on_partial("p3", pack([1, h1, V[1].public_key, b"\x01" * 96]))     # not a curve point
    assert len(penalised) == 3
    assert stored_certificate(chain, h1) is None
