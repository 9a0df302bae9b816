"""The node's BFT driver against peer input, with a fake p2p host (the unit under test is the driver:
real chain on LevelDB, real pool, real state machine and signatures; only the network is replaced).

Peer input is never trusted: random and mutated gossip on every topic, and bad requests to every
served protocol, must neither raise nor change the chain, and a peer that sends garbage is scored
down.
"""
from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consensus.messages import encode_message, sign_proposal, sign_vote
from genesis.chain_spec import genesis_storage, local_spec
from node.bft import BftConfig, BftDriver
from node.chain import Chain
from node.db import Database
from node.metrics import NodeMetrics
from node.pool import TransactionPool
from p2p.topics import TopicKind
from primitives.codec import pack
from primitives.keys import Keypair, verify
from primitives.votes import Step

V = [Keypair.from_uri(f"//Validator{i}") for i in range(1, 5)]
SPEC = local_spec(4)


class FakeHost:
    """Records what the driver publishes and reports; serves nothing."""

    def __init__(self) -> None:
        self.handlers: dict = {}
        self.served: dict = {}
        self.published: list[tuple[TopicKind, bytes]] = []
        self.reports: list[tuple[str, float, str]] = []

    def on_message(self, kind, handler, **_kw) -> None:
        self.handlers[TopicKind(kind)] = handler

    def serve(self, name, handler) -> None:
        self.served[name] = handler

    def publish(self, kind, data: bytes) -> bool:
        self.published.append((TopicKind(kind), data))
        return True

    def report(self, peer: str, delta: float, reason: str) -> None:
        self.reports.append((peer, delta, reason))

    def connected_peers(self) -> list[str]:
        return []


class FakeNode:
    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.metrics = NodeMetrics()
        self.committed: list[bytes] = []

        def validate(datas, source):
            ctx = chain.runtime.validation_context(chain.state.reader(None), chain.best_hash, chain.best_number)
            def verify_inline(checks):
                oks = [c.verify() for c in checks]
                return lambda: oks
            return [v for _h, v in ctx.validate_batch(datas, source, verify_inline)]
        self.pool = TransactionPool(validate)

        class _Cfg:
            max_block_extrinsics = 1000
        self.config = _Cfg()

    def after_commit(self, signed, block_hash, included) -> None:
        self.committed.append(block_hash)
        self.pool.block_imported(block_hash, included)


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    base: Path = tmp_path_factory.mktemp("bft")
    chain = Chain(Database.open(base / "db"), lambda rt: genesis_storage(SPEC, rt))
    node = FakeNode(chain)
    host = FakeHost()
    d = BftDriver(node, host, V[1], base, BftConfig())
    d.register()
    loop = asyncio.new_event_loop()
    loop.run_until_complete(d.start())
    yield d, host, loop
    loop.run_until_complete(d.stop())
    loop.close()
    chain.db.close()


def _valid_messages(genesis: bytes) -> list[bytes]:
    prop = sign_proposal(V[0], genesis, 1, 0, b"\x07" * 32, None)
    vote = sign_vote(V[2], genesis, Step.PREVOTE, 1, 0, b"\x07" * 32)
    return [encode_message(prop), encode_message(vote), pack([encode_message(prop), None]),
            pack([encode_message(prop), b"\x93\x01\x02"])]


def _mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(3)
        if op == 0 and b:
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            del b[rng.randrange(len(b))]
        else:
            b.insert(rng.randrange(len(b) + 1), rng.randrange(256))
    return bytes(b)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(list(TopicKind)), junk=st.binary(max_size=600), seed=st.integers(0, 2**32),
       mutate=st.booleans())
def test_random_and_mutated_gossip_never_raises_and_never_changes_the_chain(driver, kind, junk, seed, mutate):
    d, host, loop = driver
    best = d.chain.best_hash
    data = junk
    if mutate:
        data = _mutate(random.Random(seed).choice(_valid_messages(d.genesis_hash)), random.Random(seed + 1))
    host.handlers[kind]("12D3KooWpeer", data)
    loop.run_until_complete(asyncio.sleep(0))
    assert d.chain.best_hash == best


def test_garbage_is_scored_down_and_a_validly_signed_stranger_too(driver):
    d, host, _loop = driver
    host.reports.clear()
    host.handlers[TopicKind.VOTE]("peerA", b"\xc1garbage")
    stranger = Keypair.from_uri("//Stranger")
    vote = sign_vote(stranger, d.genesis_hash, Step.PREVOTE, d.tm.height, 0, None)
    host.handlers[TopicKind.VOTE]("peerB", encode_message(vote))
    forged = sign_vote(V[2], b"\x99" * 32, Step.PREVOTE, d.tm.height, 0, None)   # another chain's genesis
    host.handlers[TopicKind.VOTE]("peerC", encode_message(forged))
    host.handlers[TopicKind.TX]("peerD", pack([1, 2, 3]))
    host.handlers[TopicKind.FINALITY]("peerE", b"\x00" * 40)
    scored = {p for p, delta, _ in host.reports if delta < 0}
    assert {"peerA", "peerB", "peerC", "peerD", "peerE"} <= scored


@pytest.mark.parametrize("name", ["block-sync/1", "status/1", "block/1", "votes/1"])
@pytest.mark.parametrize("payload", [b"", b"\xc1", pack([0, 10**12]), pack(["x", 1]), pack([1, -1]), b"\x00" * 64])
def test_bad_requests_get_an_answer_and_change_nothing(driver, name, payload):
    d, host, loop = driver
    best = d.chain.best_hash
    answer = loop.run_until_complete(host.served[name]("peerF", payload))
    assert isinstance(answer, bytes)
    assert d.chain.best_hash == best


def test_a_transaction_batch_from_a_peer_enters_the_pool(driver):
    d, host, _loop = driver
    from pallets import balances  # noqa: PLC0415
    from primitives.extrinsic import Call, sign_extrinsic  # noqa: PLC0415
    alice, bob = Keypair.from_uri("//Alice"), Keypair.from_uri("//Bob")
    rt = d.chain.runtime
    xt = sign_extrinsic(alice, Call(balances.pallet.index, balances.transfer.call_def.index,
                                    (bob.public_key, 1000)), nonce=0, genesis_hash=d.genesis_hash,
                        spec_version=rt.version.spec_version, transaction_version=rt.version.transaction_version)
    host.handlers[TopicKind.TX]("peerG", pack([xt.encode()]))
    assert d.node.pool.status()["ready"] == 1
    # and a second copy is not an error
    host.handlers[TopicKind.TX]("peerG", pack([xt.encode()]))
    assert d.node.pool.status()["ready"] == 1


def test_a_synced_block_keeps_only_justifications_that_verify(driver):
    """A peer serving a synced block may attach anything beside its commit certificate: only a BLS1
    finality certificate that proves this block final under its validator set is kept (and so
    served again to light clients); a forged one and unknown engines are dropped."""
    from consensus import finality_certificate as fc  # noqa: PLC0415
    from node.bft import ENGINE_BFT  # noqa: PLC0415
    from node.finality import ENGINE_FINALITY  # noqa: PLC0415
    from primitives import bls  # noqa: PLC0415
    from primitives.types import Block, Header, Justification, SignedBlock  # noqa: PLC0415
    d, _host, _loop = driver
    header = Header(d.chain.best_hash, d.chain.best_number + 1, b"\x01" * 32, b"\x02" * 32, ())
    block_hash = header.hash()
    secrets = [bls.secret_from_seed(v.seed) for v in V]
    keys = [bls.sk_to_pk(sk) for sk in secrets]
    sigs = {i: fc.sign_finality(secrets[i], d.genesis_hash, header.number, block_hash) for i in range(3)}
    good = fc.build(sigs, keys, genesis_hash=d.genesis_hash, height=header.number, block_hash=block_hash)
    other_sigs = {i: fc.sign_finality(secrets[i], d.genesis_hash, header.number, b"\x09" * 32) for i in range(3)}
    other = fc.build(other_sigs, keys, genesis_hash=d.genesis_hash, height=header.number, block_hash=b"\x09" * 32)
    forged = fc.FinalityCertificate(height=good.height, round=good.round, block_hash=block_hash,
                                    signers=good.signers, signature=other.signature)
    bft1 = Justification(ENGINE_BFT, b"commit certificate bytes")

    def kept(*extra):
        signed = SignedBlock(Block(header, ()), (bft1, *extra))
        return d._checked_justifications(signed, block_hash)

    assert kept(Justification(ENGINE_FINALITY, good.encode())) == (bft1, Justification(ENGINE_FINALITY, good.encode()))
    assert kept(Justification(ENGINE_FINALITY, forged.encode())) == (bft1,)
    assert kept(Justification(ENGINE_FINALITY, other.encode())) == (bft1,)
    assert kept(Justification(ENGINE_FINALITY, b"\xc1garbage")) == (bft1,)
    assert kept(Justification(b"XXXX", b"anything")) == (bft1,)
