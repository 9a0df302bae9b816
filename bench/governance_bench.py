"""Council motions and runtime version 2's migration in block import (issue 13).

The weights `pallets/council.py` and `pallets/upgrades.py` (with `pallets.RELEASE_VERSIONS`) declare
are in ns of import CPU (`system.Config.max_block_weight` = 1e9 = one second). This measures what
they stand for, all through the runtime on real node chains over LevelDB (`bench.settlement_bench`'s
Pair: an authoring chain builds every block, a second chain imports it, its signature checks in the
worker batch; every figure is CPU of the importing thread).

1. Council calls (genesis: the dev spec with a council of `--members` licensed accounts, Alice, Dave
   and validator operators, threshold more than half; three more licensed accounts to add). Each
   call is measured in a block holding many of it (the council's most open motions,
   `max_open_motions` = 64, all with one deadline, so every index entry is as long as it gets):
     - propose: 64 motions for grid.force_set_tariff in one block, proposers in turn;
     - vote that does not pass the motion: 3 blocks of 64 ayes that leave every motion open;
     - add_member with 64 open motions (its worst case: the re-tally of every open motion), then
       remove_member of a member who voted on all 64 (every motion is rewritten too); one call a
       block (through sudo), 3 blocks each;
     - the expiry hook: the block at the 64 motions' end expires all of them;
     - then 64 new motions, ayes up to one short of the threshold, and one block of 64 votes that
       pass them; after the enactment delay one block enacting all 64 (the cheap root call
       grid.force_set_tariff); then 64 more motions, all withdrawn by their proposers in one block.
   A block of 64 balances.transfer comes first as a reference: what any extrinsic costs beside its
   call, against base_extrinsic_weight + its declared weight.
   Printed per call: the call's own CPU (its function, timed inside the import) against its declared
   weight (enact: W_ENACT plus the carried call's weight, what it refunds down to; the hook: the
   weight it returns), and the block's execution above an idle block per extrinsic (decoding, fee,
   nonce, events, the call) against the weight the block was charged for it (ExtrinsicSuccess:
   base_extrinsic_weight + declared, or the refunded weight). State root and commit per extrinsic
   are printed beside them and not in those ratios, as bench.settlement_bench does for its
   per-trade weight; the all-in ratio (execution + state root + commit) is printed too.
2. Runtime version 2's migration (`market.add_all_day_windows`: every standing order gets an
   all-day window; declared W_STANDING_BASE + W_MIGRATE_WINDOW per standing order): standing orders
   made by signed set_standing_order calls (8 per owner, the cap, so N/8 prosumers with an export
   meter each), the posting sweep left to finish (all blocks in one delivery interval, so the
   upgrade block starts no sweep), version 2 scheduled by sudo, then the first block of version 2
   imported. Both chains build their version-2 runtime before that block (a node builds it once,
   when first needed; that is not the migration's cost). Printed: the migration's own CPU, per
   standing order and in all, against its declared weight; the whole block's import (execution,
   state root, commit) against the block's max weight.

    .venv/bin/python -m bench.governance_bench [--members 16] [--standing 1000,10000] [--quick]

--quick: the council part and the migration with 1,000 standing orders only.
"""
from __future__ import annotations

import argparse
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pallets
from bench.settlement_bench import Pair, Row
from genesis.chain_spec import dev_spec, genesis_storage
from node.chain import Chain
from node.db import Database
from node.verifier import SignatureVerifier
from pallets import balances, council, grid, market, metering, sudo, system, upgrades
from pallets.market import state as market_state
from primitives.extrinsic import Call, sign_extrinsic
from primitives.hashing import keccak256
from primitives.keys import Keypair, dev_keypair

NATIVE = 10**12                      # 1,000 GRID: fees
MOTIONS = council.Config.max_open_motions
MEMBERSHIP_SAMPLES = 3               # add_member blocks, one call each (reserve accounts added)
#: blocks of votes that leave every motion open, one voter each; remove_member removes these voters
NO_PASS_VOTE_BLOCKS = 3
IDLE_BLOCKS = 3
RATED_W = 10_000
STANDING_WH = 1_000
STANDING_PRICE = 100_000


def key(tag: bytes, i: int) -> Keypair:
    return Keypair.from_seed(keccak256(b"bench-governance-" + tag + i.to_bytes(4, "big")))


@dataclass
class Figure:
    name: str
    count: int                # calls (or hook runs) measured
    call_s: float             # CPU inside the calls (or the hook / migration), importing thread
    exec_s: float             # block execution above an idle block's
    store_s: float            # state root + commit above an idle block's
    declared: int             # declared weight per call (after its refund)
    charged: int              # weight the block was charged per extrinsic (or the hook's)
    per_what: str = "per extrinsic"

    def per(self, s: float) -> float:
        """Seconds in all -> ns per call."""
        return s * 1e9 / self.count

    def ratios(self) -> tuple[float, float, float]:
        """(call / declared, execution / charged, execution + state root + commit / charged)."""
        return (self.per(self.call_s) / self.declared, self.per(self.exec_s) / self.charged,
                self.per(self.exec_s + self.store_s) / self.charged)

    def print(self) -> None:
        call_r, exec_r, all_r = self.ratios()
        print(f"{self.name} ({self.count} measured): call {self.per(self.call_s) / 1e3:,.1f} us, declared "
              f"{self.declared / 1e3:,.1f} us: ratio {call_r:.2f}; execution {self.per_what} "
              f"{self.per(self.exec_s) / 1e3:,.1f} us, charged {self.charged / 1e3:,.1f} us: ratio {exec_r:.2f}; "
              f"+ state root and commit {self.per(self.store_s) / 1e3:,.1f} us: ratio all in {all_r:.2f} "
              f"({'met' if max(call_r, exec_r) <= 1 else 'NOT met'}"
              f"{'' if all_r <= 1 else ', NOT met all in'})")


class Timed:
    """Thread CPU spent in wrapped functions while the importing chain imports (both chains share
    the pallets, so the author's runs are left out), and the last weight they returned."""

    def __init__(self, importer: Chain) -> None:
        self.on = False
        self.cpu_s: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.returned: dict[str, object] = {}
        original = importer.import_block

        def importing(*args, **kwargs):
            self.on = True
            try:
                return original(*args, **kwargs)
            finally:
                self.on = False
        importer.import_block = importing

    def reset(self) -> None:
        self.cpu_s.clear()
        self.calls.clear()

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            if not self.on:
                return fn(*args, **kwargs)
            c0 = time.thread_time()
            try:
                out = fn(*args, **kwargs)
            finally:
                self.cpu_s[name] = self.cpu_s.get(name, 0.0) + time.thread_time() - c0
                self.calls[name] = self.calls.get(name, 0) + 1
            self.returned[name] = out
            return out
        return timed

    def wrap_call(self, fn) -> None:
        """A pallet call (its CallDef's function: what dispatch runs)."""
        cd = fn.call_def
        cd.fn = self.wrap(cd.name, cd.fn)


class Bench:
    """Blocks through the Pair with nonces tracked per signer, and the idle-block baseline."""

    def __init__(self, pair: Pair, now_ms: int) -> None:
        self.pair = pair
        self.now_ms = now_ms
        self.nonces: dict[bytes, int] = {}
        self.idle: Row | None = None

    def xt(self, who: Keypair, fn, *args) -> tuple[bytes, bytes]:
        cd = fn.call_def
        nonce = self.nonces.get(who.public_key, 0)
        self.nonces[who.public_key] = nonce + 1
        x = sign_extrinsic(who, Call(cd.pallet.index, cd.index, args), nonce=nonce,
                           genesis_hash=self.pair.a.genesis_hash, spec_version=1, transaction_version=1).encode()
        return keccak256(x), x

    def block(self, xts: list[tuple[bytes, bytes]]) -> Row:
        row = self.pair.block(xts, self.now_ms)
        self.now_ms += 1000
        assert row.included == len(xts), f"{row.included} of {len(xts)} extrinsics in the block"
        failed = [o.error for o in row.result.outcomes if o.error is not None]
        assert not failed, f"{len(failed)} calls failed, e.g. {failed[0]}"
        return row

    def fill(self, xts: list[tuple[bytes, bytes]]) -> int:
        blocks, self.now_ms = self.pair.fill(xts, self.now_ms)
        return blocks

    def idle_baseline(self, blocks: int = IDLE_BLOCKS) -> Row:
        """The cheapest of a few empty blocks (the overhead every block has)."""
        self.idle = min((self.block([]) for _ in range(blocks)), key=lambda r: r.exec_s)
        return self.idle

    def figure(self, name: str, rows: list[Row], call_s: float, count: int, declared: int,
               charged: int | None = None) -> Figure:
        """Rows above the idle baseline; charged per extrinsic from the blocks' outcomes unless given."""
        idle = self.idle
        exec_s = sum(r.exec_s for r in rows) - len(rows) * idle.exec_s
        store_s = sum(r.root_s + r.commit_s for r in rows) - len(rows) * (idle.root_s + idle.commit_s)
        if charged is None:
            weights = [o.weight for r in rows for o in r.result.outcomes[1:]]   # [0]: the timestamp
            charged = sum(weights) // len(weights)
        return Figure(name, count, call_s, exec_s, store_s, declared, charged)


def plain(fn, *args) -> list:
    """A call as the plain data a motion or sudo carries: [pallet index, call index, [args]]."""
    cd = fn.call_def
    return [cd.pallet.index, cd.index, [t.to_plain(a) for t, a in zip(cd.arg_types, args)]]


# --- 1. council calls ---------------------------------------------------------------------------------
def council_spec(extra: list[Keypair], reserve: list[Keypair]) -> dict:
    """The dev spec; the council is Alice, Dave and `extra` (validator operators, funded); `reserve`
    are licensed and funded, not members."""
    spec = dev_spec()
    spec["id"] = "bench-governance"
    cfg = spec["genesis"]["runtimeGenesis"]["config"]
    everyone = [k.address() for k in extra + reserve]
    cfg["balances"]["balances"] += [[a, NATIVE] for a in everyone]
    cfg["identity"]["participants"] += [{"address": a, "roles": ["validator_operator"]} for a in everyone]
    cfg["council"]["members"] += [k.address() for k in extra]
    cfg["council"]["thresholds"] = {"*": ">1/2"}
    return spec


def tariff_call(i: int) -> list:
    """Motion i's root call: a distinct cross-zone off-peak tariff."""
    return plain(grid.force_set_tariff, 1, 2, 0, 35_000 + i)


def run_council(n_members: int, verifier: SignatureVerifier) -> list[Figure]:
    members = sorted([dev_keypair("Alice"), dev_keypair("Dave")] + [key(b"member", i) for i in range(n_members - 2)],
                     key=lambda k: k.public_key)
    reserve = [key(b"reserve", i) for i in range(MEMBERSHIP_SAMPLES)]
    alice = dev_keypair("Alice")
    spec = council_spec([k for k in members if k.public_key not in (alice.public_key,
                                                                     dev_keypair("Dave").public_key)], reserve)
    timed_calls = (balances.transfer, council.propose, council.vote, council.enact, council.withdraw, council.add_member,
                   council.remove_member)
    interval = grid.Config.interval_s
    now_ms = (grid.interval_start(int(time.time())) - 8 * interval) * 1000
    with tempfile.TemporaryDirectory() as tmp:
        a = Chain(Database.open(Path(tmp) / "a"), lambda rt: genesis_storage(spec, rt))
        b = Chain(Database.open(Path(tmp) / "b"), lambda rt: genesis_storage(spec, rt),
                  verify_deferred=verifier.verify_batch_deferred)
        pair = Pair(a, b)
        timer = Timed(b)
        originals = [(fn.call_def, fn.call_def.fn) for fn in timed_calls]
        for fn in timed_calls:
            timer.wrap_call(fn)
        hooks = council.pallet.hooks_initialize
        hook_at = hooks.index(council._expire)
        hooks[hook_at] = timer.wrap("expire", hooks[hook_at])
        try:
            return _council_figures(Bench(pair, now_ms), timer, members, reserve, alice)
        finally:
            hooks[hook_at] = council._expire
            for cd, fn in originals:
                cd.fn = fn
            a.db.close()
            b.db.close()


def _council_figures(bench: Bench, timer: Timed, members: list[Keypair], reserve: list[Keypair],
                     alice: Keypair) -> list[Figure]:
    b = bench.pair.b
    m = len(members)
    assert sorted(b.read(council.members.get)) == sorted(k.public_key for k in members)
    need = b.read(lambda: council.required_count(council.resolve_threshold("grid", "force_set_tariff"), m))
    assert 1 + NO_PASS_VOTE_BLOCKS < need - 1, "too few members for the vote blocks that must not pass"
    figures = []

    def sudo_xt(fn, *args):
        return bench.xt(alice, sudo.sudo, plain(fn, *args))

    # -- reference: a block of plain transfers (what any extrinsic costs beside its call) ---------------
    proposers = members[:m - NO_PASS_VOTE_BLOCKS]
    voters = members[m - NO_PASS_VOTE_BLOCKS:]
    bench.idle_baseline()
    timer.reset()
    sink = key(b"sink", 0).public_key
    row = bench.block([bench.xt(proposers[j % len(proposers)], balances.transfer, sink, 10**9)
                       for j in range(MOTIONS)])
    figures.append(bench.figure("reference: balances.transfer", [row], timer.cpu_s["transfer"], MOTIONS,
                                balances.transfer.call_def.weight_of((sink, 10**9))))

    # -- propose: 64 motions in one block, by all members but the voters below -----------------------
    first_id = b.read(council.next_motion_id.get)
    timer.reset()
    row = bench.block([bench.xt(proposers[j % len(proposers)], council.propose, tariff_call(j))
                       for j in range(MOTIONS)])
    ids = list(range(first_id, first_id + MOTIONS))
    end = b.read(lambda: council.motion(ids[0]).end)
    assert b.read(lambda: (council.motion_count.get(), council.deadlines.get(end))) == (MOTIONS, tuple(ids))
    figures.append(bench.figure("council.propose", [row], timer.cpu_s["propose"], MOTIONS, council.W_PROPOSE))

    # -- votes that leave every motion open: one voter a block, on all 64 -------------------------------
    timer.reset()
    rows = [bench.block([bench.xt(v, council.vote, i, True) for i in ids]) for v in voters]
    assert not any(e[1] == council.pallet.index and e[2] in (council.Passed._event_index,
                                                             council.Failed._event_index)
                   for r in rows for e in r.result.events)
    figures.append(bench.figure("council.vote that does not pass the motion", rows, timer.cpu_s["vote"],
                                len(ids) * len(voters), council.W_VOTE))

    # -- membership with 64 open motions: add (re-tally), remove a voter (rewrite and re-tally) ----------
    bench.idle_baseline()
    timer.reset()
    rows = [bench.block([sudo_xt(council.add_member, r.public_key)]) for r in reserve]
    assert timer.calls["add_member"] == len(reserve)
    figures.append(bench.figure(f"council.add_member with {MOTIONS} open motions (through sudo)", rows,
                                timer.cpu_s["add_member"], len(reserve), council.W_MEMBERSHIP))
    timer.reset()
    rows = [bench.block([sudo_xt(council.remove_member, v.public_key)]) for v in voters]
    assert all(b.read(lambda i=i: len(council.motion(i).ayes)) == 1 for i in ids), "votes not dropped"
    figures.append(bench.figure(f"council.remove_member of a member who voted on all {MOTIONS} (through sudo)",
                                rows, timer.cpu_s["remove_member"], len(voters), council.W_MEMBERSHIP))
    assert b.read(council.motion_count.get) == MOTIONS
    # back to the first council, so the rest runs with the same members
    bench.fill([sudo_xt(council.set_members, tuple(k.public_key for k in members))])

    # -- the expiry hook: 64 motions expire in one block -----------------------------------------------
    while b.best_number + 1 + IDLE_BLOCKS < end:
        bench.block([])
    bench.idle_baseline()
    assert b.best_number + 1 == end
    timer.reset()
    row = bench.block([])
    expired = [e for e in row.result.events if e[1] == council.pallet.index and e[2] == council.Expired._event_index]
    assert len(expired) == MOTIONS and b.read(council.motion_count.get) == 0
    hook_weight = timer.returned["expire"]
    hook = bench.figure(f"council expiry hook, {MOTIONS} motions expiring in one block", [row],
                        timer.cpu_s["expire"], 1, hook_weight, hook_weight)
    hook.per_what = "of the block above an idle one"
    figures.append(hook)

    # -- 64 new motions, ayes up to one short; a block of votes that pass them -------------------------
    first_id = b.read(council.next_motion_id.get)
    ids = list(range(first_id, first_id + MOTIONS))
    bench.fill([bench.xt(members[j % m], council.propose, tariff_call(j)) for j in range(MOTIONS)])
    for k in range(need - 2):
        bench.fill([bench.xt(members[(j + 1 + k) % m], council.vote, i, True) for j, i in enumerate(ids)])
    bench.idle_baseline()
    timer.reset()
    row = bench.block([bench.xt(members[(j + need - 1) % m], council.vote, i, True) for j, i in enumerate(ids)])
    passed = [e for e in row.result.events if e[1] == council.pallet.index and e[2] == council.Passed._event_index]
    assert len(passed) == MOTIONS, f"{len(passed)} of {MOTIONS} motions passed"
    figures.append(bench.figure("council.vote that passes the motion", [row], timer.cpu_s["vote"], MOTIONS,
                                council.W_VOTE))
    enact_at = passed[0][3][3]

    # -- enact all 64 (the cheap root call), then 64 new motions withdrawn by their proposers -------------
    while b.best_number + 1 < enact_at:
        bench.block([])
    call_weight = grid.force_set_tariff.call_def.weight_of(())
    timer.reset()
    row = bench.block([bench.xt(alice, council.enact, i) for i in ids])
    enacted = [e for e in row.result.events if e[1] == council.pallet.index and e[2] == council.Enacted._event_index]
    assert len(enacted) == MOTIONS and all(e[3][1] is None for e in enacted), enacted[:2]
    figures.append(bench.figure("council.enact of grid.force_set_tariff", [row], timer.cpu_s["enact"], MOTIONS,
                                council.W_ENACT + call_weight))
    first_id = b.read(council.next_motion_id.get)
    ids = list(range(first_id, first_id + MOTIONS))
    bench.fill([bench.xt(members[j % m], council.propose, tariff_call(j)) for j in range(MOTIONS)])
    bench.idle_baseline()
    timer.reset()
    row = bench.block([bench.xt(members[j % m], council.withdraw, i) for j, i in enumerate(ids)])
    assert b.read(council.motion_count.get) == 0
    figures.append(bench.figure("council.withdraw", [row], timer.cpu_s["withdraw"], MOTIONS, council.W_CLOSE))
    return figures


# --- 2. runtime version 2's migration -----------------------------------------------------------------
def migration_spec(owners: list[tuple[Keypair, Keypair]]) -> dict:
    """The dev spec with `owners` (key, export meter in zone 1 or 2) licensed as prosumers, funded."""
    spec = dev_spec()
    spec["id"] = "bench-upgrade"
    cfg = spec["genesis"]["runtimeGenesis"]["config"]
    cfg["balances"]["balances"] += [[k.address(), NATIVE] for k, _m in owners]
    cfg["identity"]["participants"] += [{"address": k.address(), "roles": ["prosumer"]} for k, _m in owners]
    cfg["metering"]["meters"] += [
        {"meter": "0x" + meter.public_key.hex(), "owner": k.address(), "zone": 1 + i % 2,
         "kind": metering.KIND_EXPORT, "rated_power_w": RATED_W} for i, (k, meter) in enumerate(owners)]
    return spec


@dataclass
class Migration:
    standing: int
    migrate_s: float          # the migration's own CPU (importing thread)
    declared: int             # the weight it returned
    block: Row                # the first block of version 2
    idle: Row                 # the cheapest idle block before it (version 1)
    setup_s: float


def run_migration(n: int, verifier: SignatureVerifier) -> Migration:
    per_owner = market.Config.max_standing_per_owner
    owners = [(key(b"owner", i), key(b"meter", i)) for i in range(math.ceil(n / per_owner))]
    spec = migration_spec(owners)
    interval = grid.Config.interval_s
    t0 = grid.interval_start(int(time.time())) - 8 * interval
    original = pallets.RELEASE_VERSIONS[2]
    with tempfile.TemporaryDirectory() as tmp:
        s0 = time.perf_counter()
        a = Chain(Database.open(Path(tmp) / "a"), lambda rt: genesis_storage(spec, rt))
        b = Chain(Database.open(Path(tmp) / "b"), lambda rt: genesis_storage(spec, rt),
                  verify_deferred=verifier.verify_batch_deferred)
        pair = Pair(a, b)
        timer = Timed(b)
        # the version-2 runtimes are built below, after this wrap (build_runtime reads RELEASE_VERSIONS)
        pallets.RELEASE_VERSIONS[2] = timer.wrap("migrate", original)
        try:
            bench = Bench(pair, t0 * 1000 + 1000)
            xts = []
            for j in range(n):
                who, meter = owners[j // per_owner]
                xts.append(bench.xt(who, market.set_standing_order, market.ASK, 1 + (j // per_owner) % 2,
                                    STANDING_PRICE, STANDING_WH, meter.public_key, False))
            bench.fill(xts)
            # let the posting sweep visit every standing order (it started with the first of them)
            while b.read(market_state.standing_cursor.get) is not None:
                bench.block([])
            alice = dev_keypair("Alice")
            at = b.best_number + 2 + IDLE_BLOCKS
            bench.block([bench.xt(alice, sudo.sudo, plain(upgrades.schedule, 2, at))])
            assert b.read(upgrades.scheduled.get) == (2, at)
            a.runtime_of(2)
            b.runtime_of(2)
            while b.best_number + 1 + IDLE_BLOCKS < at:
                bench.block([])
            idle = bench.idle_baseline()
            setup_s = time.perf_counter() - s0
            assert b.best_number + 1 == at
            timer.reset()
            row = bench.block([])
            assert bench.now_ms // 1000 < t0 + interval, "the set-up ran into the next delivery interval"
            assert b.read(lambda: (upgrades.version_in_force.get(), upgrades.scheduled.get())) == (2, None)
            windows = b.read(lambda: sum(1 for _ in market_state.standing_windows.items()))
            assert windows == n, f"{windows} standing orders have a window, of {n}"
            assert timer.calls["migrate"] == 1
            return Migration(n, timer.cpu_s["migrate"], timer.returned["migrate"], row, idle, setup_s)
        finally:
            pallets.RELEASE_VERSIONS[2] = original
            a.db.close()
            b.db.close()


def print_migration(r: Migration) -> None:
    block_ms = system.Config.max_block_weight / 1e6
    row, idle = r.block, r.idle
    exec_above = row.exec_s - idle.exec_s
    per_us = r.migrate_s * 1e6 / r.standing
    declared_per_us = market_state.W_MIGRATE_WINDOW / 1e3
    print(f"version 2's first block with {r.standing:,} standing orders ({math.ceil(r.standing / 8):,} owners; "
          f"set-up {r.setup_s:.0f} s): the migration {r.migrate_s * 1e3:,.1f} ms of CPU, declared "
          f"{r.declared / 1e6:,.1f} ms: ratio {r.migrate_s * 1e9 / r.declared:.2f} "
          f"({'met' if r.migrate_s * 1e9 <= r.declared else 'NOT met'}); per standing order {per_us:.1f} us, "
          f"declared {declared_per_us:.0f} us: ratio {per_us / declared_per_us:.2f}")
    print(f"  the block's import: {row.thread_s * 1e3:,.1f} ms of CPU = execution {row.exec_s * 1e3:,.1f} + state "
          f"root {row.root_s * 1e3:,.1f} + commit {row.commit_s * 1e3:,.1f} ({len(row.result.changes):,} keys "
          f"written); an idle block before it {idle.thread_s * 1e3:.1f} ms; execution above it "
          f"{exec_above * 1e3:,.1f} ms: ratio to declared {exec_above * 1e9 / r.declared:.2f}, all in above "
          f"idle {(row.thread_s - idle.thread_s) * 1e9 / r.declared:.2f}")
    print(f"  against the block ({block_ms:.0f} ms, max_block_weight): declared {r.declared / 1e6 / block_ms:.2f}, "
          f"the whole import {row.thread_s * 1e3 / block_ms:.2f} "
          f"({'within' if row.thread_s * 1e3 <= block_ms else 'OVER'} the block)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--members", type=int, default=16, help="council members (Alice, Dave and validator operators)")
    ap.add_argument("--standing", default="1000,10000", help="standing-order counts for the migration")
    ap.add_argument("--quick", action="store_true", help="the migration with 1,000 standing orders only")
    ap.add_argument("--skip-council", action="store_true", help="the migration only")
    args = ap.parse_args()
    counts = [1_000] if args.quick else [int(x) for x in args.standing.split(",") if x.strip()]
    if not 8 <= args.members <= council.Config.max_members - MEMBERSHIP_SAMPLES:
        ap.error(f"--members must be 8 to {council.Config.max_members - MEMBERSHIP_SAMPLES}")
    block_ms = system.Config.max_block_weight / 1e6
    print(f"weights in ns of import CPU: max_block_weight {system.Config.max_block_weight:,} ({block_ms:.0f} ms); "
          f"base_extrinsic_weight {system.Config.base_extrinsic_weight:,}")
    with SignatureVerifier() as verifier:
        verifier.warm_up()
        if not args.skip_council:
            print(f"council of {args.members} members (threshold more than half), {MOTIONS} open motions:")
            for f in run_council(args.members, verifier):
                f.print()
        for n in counts:
            print_migration(run_migration(n, verifier))


if __name__ == "__main__":
    main()
