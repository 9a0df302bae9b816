"""Block import re-checks what authoring trusted: signatures are verified in the worker batch while
the block executes, and a block carrying a forged meter reading or transfer is refused whole."""
from __future__ import annotations

import time

import pytest

from genesis.chain_spec import dev_meter_uri, dev_spec, genesis_storage
from node.chain import Chain, ImportError_
from node.db import Database
from node.verifier import SignatureVerifier
from pallets import balances, grid, metering
from primitives.extrinsic import Call, Extrinsic, SignatureData, sign_extrinsic
from primitives.hashing import keccak256
from primitives.keys import Keypair, dev_keypair
from primitives.meter_reading import Reading, SignedReading, sign_reading

ALICE = dev_keypair("Alice")


@pytest.fixture
def chains(tmp_path):
    spec = dev_spec()
    verifier = SignatureVerifier(workers=2, inline_below=1)   # use the workers even for one signature
    author = Chain(Database.open(tmp_path / "a"), lambda rt: genesis_storage(spec, rt))
    importer = Chain(Database.open(tmp_path / "b"), lambda rt: genesis_storage(spec, rt),
                     verify_deferred=verifier.verify_batch_deferred)
    yield author, importer
    author.db.close()
    importer.db.close()
    verifier.close()


def reading_xt(signed: SignedReading) -> bytes:
    return Extrinsic(Call(metering.pallet.index, metering.submit_reading.call_def.index,
                          (signed.to_plain(),))).encode()


def author_and_import(author: Chain, importer: Chain, xts: list[bytes], now_ms: int):
    built = author.build_block(ALICE, [(keccak256(x), x) for x in xts], finalize=True, now_ms=now_ms)
    assert len(built.signed.block.extrinsics) == len(xts) + 1, "authoring trusted and included every candidate"
    return built, lambda: importer.import_block(built.signed, finalize=True)


def _reading_block_setup(author: Chain, importer: Chain) -> tuple[int, Keypair, int]:
    now_ms = int(time.time() * 1000)
    _, do = author_and_import(author, importer, [], now_ms)       # block 1: metering learns the genesis hash
    do()
    meter = Keypair.from_uri(dev_meter_uri("Bob"))
    return now_ms, meter, grid.interval_start(now_ms // 1000) - grid.Config.interval_s


def test_valid_reading_verified_by_the_workers_imports(chains):
    author, importer = chains
    now_ms, meter, t = _reading_block_setup(author, importer)
    good = sign_reading(meter, Reading(meter.public_key, 1, t, 100, 50), author.genesis_hash)
    _, do = author_and_import(author, importer, [reading_xt(good)], now_ms + 1000)
    do()
    assert importer.best_hash == author.best_hash
    assert importer.read(lambda: metering.get_meter(meter.public_key).has_reading)


def test_forged_reading_makes_the_block_unimportable(chains):
    author, importer = chains
    now_ms, meter, t = _reading_block_setup(author, importer)
    honest = sign_reading(meter, Reading(meter.public_key, 1, t, 100, 50), author.genesis_hash)
    forged = SignedReading(honest.reading, bytes([honest.signature[0] ^ 1]) + honest.signature[1:])
    _, do = author_and_import(author, importer, [reading_xt(forged)], now_ms + 1000)
    best_before = importer.best_hash
    with pytest.raises(ImportError_, match="bad signature"):
        do()
    assert importer.best_hash == best_before
    assert not importer.read(lambda: metering.get_meter(meter.public_key).has_reading)


def test_forged_transfer_signature_is_caught_by_the_workers(chains):
    author, importer = chains
    now_ms = int(time.time() * 1000)
    bob = dev_keypair("Bob")
    xt = sign_extrinsic(bob, Call(balances.pallet.index, balances.transfer.call_def.index,
                                  (ALICE.public_key, 1_000)),
                        nonce=0, genesis_hash=author.genesis_hash, spec_version=1, transaction_version=1)
    s = xt.signature
    forged = Extrinsic(xt.call, SignatureData(s.signer, bytes([s.signature[0] ^ 1]) + s.signature[1:],
                                              s.mortality, s.nonce, s.tip)).encode()
    _, do = author_and_import(author, importer, [forged], now_ms)
    with pytest.raises(ImportError_, match="bad signature"):
        do()
    assert importer.best_number == 0
