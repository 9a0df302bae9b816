"""Replaying a block's extrinsics gives the same state root, across every pallet and hook.

One chain authors a day of energy trading (transfers, orders that match and orders that expire,
meter readings, settlement from hooks) with block times 5 minutes apart; a second chain with the
same genesis imports every block, which re-executes it and checks the extrinsics root and the state
root in the header. Any nondeterminism (iteration order, clocks, floats) would fail the import.
"""
from __future__ import annotations

import random

from genesis.chain_spec import dev_meter_uri, dev_spec, genesis_storage
from node.chain import Chain
from node.db import Database
from pallets import balances, grid, market, metering, settlement
from primitives.extrinsic import Call, Extrinsic, sign_extrinsic
from primitives.hashing import keccak256
from primitives.keys import Keypair, dev_keypair
from primitives.meter_reading import Reading, sign_reading

I = grid.Config.interval_s
ALICE = dev_keypair("Alice")
START_MS = 1_750_000_000_000 - 1_750_000_000_000 % (I * 1000)   # an interval boundary


def call(pallet, fn, *args) -> Call:
    cd = fn.call_def
    return Call(pallet.index, cd.index, tuple(t.to_plain(a) for t, a in zip(cd.arg_types, args)))


def test_every_authored_block_replays_to_the_same_state_root(tmp_path):
    rng = random.Random(7)
    spec = dev_spec()
    author = Chain(Database.open(tmp_path / "a"), lambda rt: genesis_storage(spec, rt))
    replica = Chain(Database.open(tmp_path / "b"), lambda rt: genesis_storage(spec, rt))
    keys = {n: dev_keypair(n) for n in ("Bob", "Charlie", "Ferdie")}
    meters = {n: Keypair.from_uri(dev_meter_uri(n)) for n in keys}
    zone = {"Bob": 1, "Charlie": 1, "Ferdie": 2}
    nonces = {n: 0 for n in keys}
    seqs = {n: 0 for n in keys}
    registers = {n: [0, 0] for n in keys}
    gh = author.genesis_hash

    def signed(who: str, c: Call) -> bytes:
        xt = sign_extrinsic(keys[who], c, nonce=nonces[who], genesis_hash=gh, spec_version=1, transaction_version=1)
        nonces[who] += 1
        return xt.encode()

    settled = 0
    for block in range(1, 61):                       # 60 blocks x 5 minutes = 5 hours of chain time
        now_ms = START_MS + block * 300_000
        now_s = now_ms // 1000
        xts: list[bytes] = []
        if block > 1 and block % 3 == 0:             # every 15 minutes the meters report the last interval
            t = grid.interval_start(now_s) - I
            for n, m in meters.items():
                seqs[n] += 1
                if n != "Charlie":
                    registers[n][1] += rng.randrange(0, 2_000)        # PV export
                registers[n][0] += rng.randrange(0, 1_500) if n != "Ferdie" else 0
                r = Reading(m.public_key, seqs[n], t, registers[n][0], registers[n][1])
                xts.append(Extrinsic(call(metering.pallet, metering.submit_reading,
                                          sign_reading(m, r, gh))).encode())
        target = grid.interval_start(now_s) + 2 * I
        seller = rng.choice(["Bob", "Ferdie"])
        xts.append(signed(seller, call(market.pallet, market.place_ask, zone[seller], target,
                                       rng.randrange(50_000, 150_000), rng.randrange(100, 1_500),
                                       meters[seller].public_key)))
        xts.append(signed("Charlie", call(market.pallet, market.place_bid, 1, target,
                                          rng.randrange(80_000, 250_000), rng.randrange(100, 1_500),
                                          meters["Charlie"].public_key, rng.random() < 0.3)))
        if rng.random() < 0.3:
            xts.append(signed("Bob", call(balances.pallet, balances.transfer, ALICE.public_key, 1_000)))

        built = author.build_block(ALICE, [(keccak256(x), x) for x in xts], finalize=True, now_ms=now_ms)
        assert not built.skipped_invalid, built.skipped_invalid
        replica.import_block(built.signed, finalize=True, check_drift=False)
        assert replica.best_hash == author.best_hash
        assert replica.blocks.header(replica.best_hash).state_root == author.state.head_root()
        settled = sum(1 for e in built.result.events if e[1] == settlement.pallet.index) + settled

    trades = author.read(lambda: market.next_trade_id.get())
    assert trades > 0, "the day produced trades"
    print(f"{trades} trades, {settled} settlement events, replayed over 60 blocks")
    assert settled > 0, "settlement ran from the hooks during the day"
    for n, m in meters.items():   # every reading was accepted (authoring drops "future" ones silently)
        assert author.read(lambda m=m: metering.get_meter(m.public_key).last_seq) == seqs[n] > 10
    author.db.close()
    replica.db.close()
