"""Field meters' own signed records (issue 11) applied in block import, per format and curve; the
state a record adds per interval; and what one ECDSA verify costs per curve (the pallet's weights).

Test meters (`meters/field_meters.py`) of each kind are certified by the DSO (signed `certify`
extrinsics, built and imported before anything is timed), owned by the dev prosumer Bob in zone 1,
together with as many gridchain ed25519 meters (metering genesis) as the reference scheme. Every
meter then reports one record per interval, signed beforehand: a baseline, then readings with
deltas (500 Wh an interval). Chain time moves one interval per round of blocks, ending now, and an
empty block opens each round, so interval hooks are not billed to the records. An authoring chain
builds a block per format and interval, then goes (with its caches: the importing process keeps
only a node's heap); a second chain on LevelDB imports them as the node does
(`Chain.import_block`: signatures checked in the node's `SignatureVerifier`, 2 worker processes,
while the block executes; state root; one WriteBatch). The pallet's parse cache is emptied before
each timed import, so every record is parsed as by a node that never saw it in its pool (a syncing
node); two more OCMF P-256 blocks are timed with their records parsed beforehand, as a validator
whose pool admitted them has them.

Printed, each with its limit measured in the same run:
  - OCMF P-256 readings/s in import (steady state, three blocks) against raw `cryptography` P-256
    verifies/s on one core measured right before each block, and whether issue 11's 5,000/s is met;
  - OCMF brainpoolP256r1, SML/EDL40 (P-256), DLMS suite 1 (P-256) and suite 2 (P-384) likewise,
    against their curve's raw rate, and ed25519 readings (metering.submit_reading) for reference;
  - state per meter per interval: key + value bytes of every entry a steady-state block creates,
    plus the growth of entries it rewrites larger (per-block items left out), against the ed25519
    scheme's, measured the same way (issue 11's limit: at most 110% of it);
  - µs per verify per curve (one core) and the node process's CPU per record, beside the
    pallet's W_VERIFY and W_RECORD_BASE;
  - a cProfile of one OCMF P-256 import (node process only: the workers verify elsewhere).

    .venv/bin/python -m bench.field_meter_bench [--meters 2000] [--others 1000] [--quick] [--no-profile] [--phases]
"""
from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Callable

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bench.block_import import print_phases
from bench.common import raw_verify_rate
from genesis.chain_spec import dev_spec, genesis_storage
from meters.field_meters import DlmsTestMeter, OcmfTestMeter, SmlTestMeter, derive_test_key
from node.chain import Chain
from node.db import Database
from node.verifier import SignatureVerifier
from pallets import certificates, field_meters, grid, metering, system, timestamp
from primitives.extrinsic import Call, Extrinsic, sign_extrinsic
from primitives.hashing import keccak256
from primitives.keys import Keypair, dev_keypair
from primitives.meter_formats import ecdsa
from primitives.meter_reading import Reading, sign_reading
from primitives.types import SignedBlock
from runtime.executive import BlockResult

I = grid.Config.interval_s
TARGET_OCMF_P256 = 5_000               # issue 11: OCMF P-256 readings/s in block import
STATE_LIMIT_PERCENT = 110              # issue 11: at most the ed25519 scheme's bytes plus 10%
RATED_POWER_W = 10_000
CURVE_HASH = {"secp256r1": "sha256", "secp256k1": "sha256", "brainpoolP256r1": "sha256",
              "secp384r1": "sha384", "brainpoolP384r1": "sha384"}


@dataclass
class Kind:
    """One kind of meter in the run: how to make meter i, how to certify it, its register values."""
    name: str
    scheme: int                         # field_meters.SCHEME_*, or SCHEME_ED25519
    curve: str                          # the curve its signatures are on ("ed25519" for the reference)
    count: int
    make: Callable[[int], object]
    import_obis: str = "1-0:1.8.0"
    export_obis: str = "1-0:2.8.0"
    kind: int = metering.KIND_BIDIRECTIONAL
    #: what each of its records (one per interval) is for: "baseline" (its first, not timed),
    #: "timed", "warm" (timed, its records parsed beforehand as the pool would have), "profile"
    #: (imported under cProfile), "phases" (imported phase by phase)
    roles: tuple[str, ...] = ("baseline", "timed", "timed", "timed")
    meters: list = field(default_factory=list)
    ids: list[bytes] = field(default_factory=list)

    def registers(self, k: int) -> tuple[int, int]:
        """Register totals (Wh) of record k: 500 Wh more each interval, on the registers it has."""
        wh = 10_000 + 500 * k
        return (wh, 0) if not self.export_obis else (wh, wh)


def kinds(meters: int, others: int, no_profile: bool, phases: bool) -> list[Kind]:
    """The meters of the run: each kind reports three times after its baseline (timed blocks: the
    machine is shared, so the median and the best are printed); OCMF P-256 twice more, between
    those, with its records parsed beforehand, then once for the profile; OCMF P-256 and ed25519
    once more for the phases."""
    more = ("phases",) if phases else ()
    p256 = ("baseline", "timed", "warm", "timed", "warm", "timed") + (() if no_profile else ("profile",)) + more
    return [
        Kind("OCMF P-256", field_meters.SCHEME_OCMF, "secp256r1", meters,
             lambda i: OcmfTestMeter("secp256r1", uri=f"//bench//ocmf-p256//{i}"), roles=p256),
        Kind("OCMF brainpoolP256r1", field_meters.SCHEME_OCMF, "brainpoolP256r1", others,
             lambda i: OcmfTestMeter("brainpoolP256r1", uri=f"//bench//ocmf-bp256//{i}")),
        Kind("SML/EDL40 P-256", field_meters.SCHEME_SML, "secp256r1", others,
             lambda i: SmlTestMeter(uri=f"//bench//sml//{i}"), import_obis="1-0:1.17.0", export_obis="",
             kind=metering.KIND_IMPORT),
        Kind("DLMS suite 1 P-256", field_meters.SCHEME_DLMS, "secp256r1", others,
             lambda i: DlmsTestMeter(1, uri=f"//bench//dlms1//{i}")),
        Kind("DLMS suite 2 P-384", field_meters.SCHEME_DLMS, "secp384r1", others,
             lambda i: DlmsTestMeter(2, uri=f"//bench//dlms2//{i}")),
        Kind("ed25519 (metering.submit_reading)", field_meters.SCHEME_ED25519, "ed25519", meters,
             lambda i: Keypair.from_seed(keccak256(b"bench-field-ed25519" + i.to_bytes(4, "big"))),
             roles=("baseline", "timed", "timed", "timed") + more),
    ]


# --- limits measured in the same run ----------------------------------------------------------
def raw_ecdsa_rate(curve: str, seconds: float) -> float:
    """Verifies/s of one `cryptography` ECDSA verify on one core (key loaded once, a 450-byte
    message as an OCMF payload is), best of three rounds of `seconds` / 3."""
    key = derive_test_key("gridchain bench raw verify", curve)
    hash_cls = hashes.SHA384 if CURVE_HASH[curve] == "sha384" else hashes.SHA256
    msg = b"x" * 450
    sig = key.sign(msg, ec.ECDSA(hash_cls()))
    pub = key.public_key()
    best = 0.0
    for _ in range(3):
        n, t0 = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - t0) < seconds / 3:
            for _ in range(20):
                pub.verify(sig, msg, ec.ECDSA(hash_cls()))
            n += 20
        best = max(best, n / elapsed)
    return best


def raw_rate(curve: str, seconds: float) -> float:
    """Raw verifies/s on one core of `curve` ("ed25519": PyNaCl, as bench.common measures it)."""
    if curve == "ed25519":
        return raw_verify_rate(max(500, int(15_000 * seconds)))
    return raw_ecdsa_rate(curve, seconds)


def verify_check_rate(curve: str, seconds: float) -> float:
    """Verifies/s through `ecdsa.verify_check`, the workers' entry point (key cached after the
    first), best of three rounds of `seconds` / 3."""
    key = derive_test_key("gridchain bench raw verify", curve)
    hash_cls = hashes.SHA384 if CURVE_HASH[curve] == "sha384" else hashes.SHA256
    msg = b"x" * 450
    sig = key.sign(msg, ec.ECDSA(hash_cls()))
    sec1 = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    scheme = ecdsa.check_scheme(curve, CURVE_HASH[curve])
    best = 0.0
    for _ in range(3):
        n, t0 = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - t0) < seconds / 3:
            for _ in range(20):
                assert ecdsa.verify_check(scheme, sec1, sig, msg)
            n += 20
        best = max(best, n / elapsed)
    return best


# --- building the chain -------------------------------------------------------------------------
def certify_xts(dave: Keypair, kinds_: list[Kind], genesis_hash: bytes) -> list[bytes]:
    """The DSO's certify extrinsic for every field meter (nonces in order)."""
    bob = dev_keypair("Bob").public_key
    cd = field_meters.certify.call_def
    out = []
    for k in kinds_:
        if k.scheme == field_meters.SCHEME_ED25519:
            continue
        for m in k.meters:
            args = (k.scheme, m.public_key_der(), "", m.meter_id, k.import_obis, k.export_obis, bob, 1,
                    k.kind, RATED_POWER_W)
            out.append(sign_extrinsic(dave, Call(field_meters.pallet.index, cd.index, args), nonce=len(out),
                                      genesis_hash=genesis_hash, spec_version=1, transaction_version=1).encode())
    return out


def record_xts(k: Kind, rnd: int, interval: int, genesis_hash: bytes) -> list[bytes]:
    """Every meter of kind `k`'s record for `interval` (its round `rnd`), signed now."""
    imp, exp = k.registers(rnd)
    if k.scheme == field_meters.SCHEME_ED25519:
        cd = metering.submit_reading.call_def
        return [Extrinsic(Call(metering.pallet.index, cd.index, (sign_reading(
            m, Reading(m.public_key, rnd + 1, interval, imp, exp), genesis_hash).to_plain(),))).encode()
            for m in k.meters]
    cd = field_meters.submit_record.call_def
    return [Extrinsic(Call(field_meters.pallet.index, cd.index, (mid, m.record(interval + I, imp, exp)))).encode()
            for m, mid in zip(k.meters, k.ids)]


def build(chain: Chain, author: Keypair, xts: list[bytes], now_ms: int) -> tuple[SignedBlock, list[bytes]]:
    """One block of `xts` on `chain` (every one must be taken): the block and the storage keys it
    changes. Only these are kept: holding every built block's results and trie delta would leave
    the importing process a heap that a node does not have, and the cyclic GC would bill it to import."""
    built = chain.build_block(author, [(keccak256(x), x) for x in xts], finalize=True, now_ms=now_ms)
    if built.skipped_invalid or len(built.signed.block.extrinsics) != len(xts) + 1:
        raise SystemExit(f"block #{built.signed.block.header.number} did not take every extrinsic "
                         f"({len(built.signed.block.extrinsics) - 1} of {len(xts)}; {built.skipped_invalid[:1]})")
    return built.signed, list(built.result.changes)


# --- state ------------------------------------------------------------------------------------
def per_block_prefixes() -> tuple[bytes, ...]:
    """Items every block rewrites whatever it holds: they replace state, they do not add to it."""
    return (system.events.prefix, system.extrinsic_count.prefix, system.block_weight.prefix,
            system.number.prefix, system.parent_hash.prefix, timestamp.now.prefix, system.block_hash.prefix)


def state_added(changes: dict[bytes, bytes | None], before: dict[bytes, bytes | None],
                names: dict[bytes, str]) -> dict[str, int]:
    """Bytes added to state per storage item: key + value of every entry created, the growth of
    every entry rewritten larger (per-block items left out)."""
    out: dict[str, int] = {}
    skip = per_block_prefixes()
    for key, value in changes.items():
        if value is None or key.startswith(skip):
            continue
        old = before.get(key)
        grown = len(key) + len(value) if old is None else max(0, len(value) - len(old))
        if grown:
            name = names.get(key[:32], key[:32].hex())
            out[name] = out.get(name, 0) + grown
    return out


def item_names(chain: Chain) -> dict[bytes, str]:
    return {item.prefix: f"{p.name}.{item.name}" for p in chain.runtime.pallets for item in p.storage}


# --- the run ----------------------------------------------------------------------------------
class GcClock:
    """CPU seconds the cyclic garbage collector ran (all generations, this thread) since `reset`,
    via gc.callbacks (CPU, not wall time: on a shared machine a collection may be preempted)."""

    def __init__(self) -> None:
        self.total_s = 0.0
        self._started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.thread_time()
        else:
            self.total_s += time.thread_time() - self._started

    def reset(self) -> None:
        self.total_s = 0.0


@dataclass
class Sample:
    """One timed import: its rate, the raw verify rate of its curve just before it (the machine is
    shared, so each block gets its own limit), and the node process's CPU per record."""
    rate: float                 # records/s
    limit: float                # raw verifies/s on one core, measured right before
    cpu_us: float               # node process CPU per record (signatures are in the workers)
    thread_us: float            # of it, the main thread's
    gc_us: float                # of that, the cyclic GC's

    @property
    def ratio(self) -> float:
        return self.rate / self.limit


@dataclass
class Measured:
    cold: list[Sample] = field(default_factory=list)          # parse cache empty
    warm: list[Sample] = field(default_factory=list)          # records parsed beforehand
    state: dict[str, float] = field(default_factory=dict)     # bytes per record by item, last timed block
    parse_us: float = 0.0                                     # CPU to parse one record, alone


def main() -> None:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--meters", type=int, default=2000, help="OCMF P-256 meters (one record each per block), "
                                                            "and as many ed25519 meters")
    ap.add_argument("--others", type=int, default=1000, help="meters of each other kind")
    ap.add_argument("--raw-seconds", type=float, default=0.6, help="time per curve for the raw verify rate")
    ap.add_argument("--quick", action="store_true", help="500 and 200 meters, shorter raw rates (~1/4 the time)")
    ap.add_argument("--no-profile", action="store_true", help="skip the cProfile of an OCMF import")
    ap.add_argument("--top", type=int, default=10, help="functions shown from the profile, by cumulative "
                                                       "and by own time")
    ap.add_argument("--phases", action="store_true",
                    help="also time each phase of import for one more OCMF P-256 and ed25519 block")
    args = ap.parse_args()
    if args.quick:
        args.meters, args.others, args.raw_seconds = min(args.meters, 500), min(args.others, 200), 0.3
    if args.meters < 1 or args.others < 1 or args.raw_seconds <= 0:
        raise SystemExit("--meters and --others must be at least 1, --raw-seconds above 0")
    t_start = time.perf_counter()

    print("raw verifies on one core (cryptography; PyNaCl for ed25519), best of 3:")
    raw = {c: raw_rate(c, args.raw_seconds) for c in (*CURVE_HASH, "ed25519")}
    via_check = verify_check_rate("secp256r1", args.raw_seconds)
    for c, r in raw.items():
        w = field_meters.W_VERIFY.get(c)
        print(f"  {c:16s} {r:9,.0f}/s  {1e6 / r:6.0f} us per verify" +
              (f"   (W_VERIFY {w / 1000:,.0f} us)" if w is not None else ""))
    print(f"  secp256r1 through ecdsa.verify_check (the workers' path): {via_check:,.0f}/s, "
          f"{1e6 / via_check - 1e6 / raw['secp256r1']:.1f} us more per verify")

    ks = kinds(args.meters, args.others, args.no_profile, args.phases)
    t0 = time.perf_counter()
    for k in ks:
        k.meters = [k.make(i) for i in range(k.count)]
        if k.scheme != field_meters.SCHEME_ED25519:
            k.ids = [field_meters.field_meter_id(k.scheme, m.public_key_sec1()) for m in k.meters]
    ed = ks[-1]
    spec = dev_spec()
    bob = dev_keypair("Bob").address()
    spec["genesis"]["runtimeGenesis"]["config"]["metering"]["meters"] += [
        {"meter": "0x" + m.public_key.hex(), "owner": bob, "zone": 1, "kind": metering.KIND_BIDIRECTIONAL,
         "rated_power_w": RATED_POWER_W} for m in ed.meters]
    alice, dave = dev_keypair("Alice"), dev_keypair("Dave")
    # chain time: round r's blocks one interval after round r-1's, each 1 ms after the last, the
    # last round now (import refuses blocks ahead of the clock); a record closes the interval
    # before its round's, so every record is within its settlement window
    rounds = max(len(k.roles) for k in ks)
    base_ms = time.time_ns() // 1_000_000 - rounds * I * 1000

    with tempfile.TemporaryDirectory() as tmp, SignatureVerifier(workers=2) as verifier:
        a = Chain(Database.open(Path(tmp) / "a"), lambda rt: genesis_storage(spec, rt))
        b = Chain(Database.open(Path(tmp) / "b"), lambda rt: genesis_storage(spec, rt),
                  verify_deferred=verifier.verify_batch_deferred)
        names = item_names(b)
        plan: list[tuple[Kind | None, str, tuple[SignedBlock, list[bytes]]]] = []    # (kind, role, block)
        xts = certify_xts(dave, ks, a.genesis_hash)
        for i in range(0, len(xts), 3000):
            plan.append((None, "set-up", build(a, alice, xts[i:i + 3000], base_ms + len(plan))))
        for rnd in range(rounds):
            round_ms = base_ms + (rnd + 1) * I * 1000
            interval = grid.interval_start(round_ms // 1000) - I
            # an empty block opens the round: hooks at an interval's start are not billed to records
            plan.append((None, "set-up", build(a, alice, [], round_ms)))
            for j, k in enumerate(ks):
                if rnd < len(k.roles):
                    plan.append((k, k.roles[rnd], build(a, alice, record_xts(k, rnd, interval, a.genesis_hash),
                                                        round_ms + 1 + j)))
        print(f"set-up: {sum(k.count for k in ks):,} meters, {len(plan)} blocks signed and built in "
              f"{time.perf_counter() - t0:.1f} s (not timed below)")
        # the importing node's heap is its own: the authoring chain, its caches and the test
        # meters go before anything is timed (the cyclic GC's cost grows with the heap)
        authored_best = a.best_hash
        a.db.close()
        del a, xts
        for k in ks:
            k.meters = []
        gc.collect()

        verifier.warm_up()      # workers start lazily; do not bill their start-up to import
        measured = {k.name: Measured() for k in ks}
        gc_clock = GcClock()
        profiled: pstats.Stats | None = None
        for k, role, (signed, changed_keys) in plan:
            n = len(signed.block.extrinsics) - 1
            if role in ("set-up", "baseline"):
                b.import_block(signed, finalize=True)
                continue
            field_meters._parsed._cache.clear()             # parsed as by a node that never saw them
            if role == "warm":                              # parsed as by a validator's pool
                for x in signed.block.extrinsics[1:]:
                    field_meters._parsed.get(k.scheme, Extrinsic.decode(x).call.args[1])
            if role == "profile":
                prof = cProfile.Profile()
                prof.enable()
                b.import_block(signed, finalize=True)
                prof.disable()
                profiled = pstats.Stats(prof, stream=io.StringIO())
                continue
            if role == "phases":
                print(f"phases of import, {k.name} (parse cache empty):")
                print_phases(b, signed, verifier)
                continue
            before = {key: b.state.reader(None).get(key) for key in changed_keys}
            limit = raw_rate(k.curve, min(0.2, args.raw_seconds / 3))
            gc_clock.reset()
            t0, c0, th0 = time.perf_counter(), time.process_time(), time.thread_time()
            result: BlockResult = b.import_block(signed, finalize=True)
            wall, cpu, thread = time.perf_counter() - t0, time.process_time() - c0, time.thread_time() - th0
            m = measured[k.name]
            (m.warm if role == "warm" else m.cold).append(
                Sample(n / wall, limit, cpu / n * 1e6, thread / n * 1e6, gc_clock.total_s / n * 1e6))
            m.state = {name: v / n for name, v in state_added(result.changes, before, names).items()}
            if k.scheme != field_meters.SCHEME_ED25519 and not m.parse_us:
                recs = [Extrinsic.decode(x).call.args[1] for x in signed.block.extrinsics[1:]]
                p0 = time.thread_time()
                for r in recs:
                    field_meters.parse_record(k.scheme, r)
                m.parse_us = (time.thread_time() - p0) / len(recs) * 1e6
        assert b.best_hash == authored_best
        b.db.close()
    report(ks, measured, raw, profiled, args.top)
    print(f"\n(run took {time.perf_counter() - t_start:.0f} s)")


def report(ks: list[Kind], measured: dict[str, Measured], raw: dict[str, float],
           profiled: pstats.Stats | None, top: int) -> None:
    print("\nreadings applied in block import (2 signature workers; parse cache empty; each block one "
          "record per meter):")
    p256 = measured[ks[0].name]
    for k in ks:
        m = measured[k.name]
        if not m.cold:
            continue
        best, med = max(x.rate for x in m.cold), median(x.rate for x in m.cold)
        extra = ""
        if k is ks[0]:
            verdict = ("met" if med >= TARGET_OCMF_P256 else
                       "met in the best block only" if best >= TARGET_OCMF_P256 else "NOT met")
            extra = f"; issue 11 target >= {TARGET_OCMF_P256:,}/s: {verdict}"
        elif k.curve != "ed25519":
            extra = f"; {med / median(x.rate for x in p256.cold):.2f} of the OCMF P-256 rate (medians)"
        print(f"  {k.name}, {len(m.cold)} blocks of {k.count}: median {med:,.0f}, best {best:,.0f} readings/s "
              f"({', '.join(f'{x.rate:,.0f}' for x in m.cold)}); raw {k.curve} verifies on one core "
              f"before each: {', '.join(f'{x.limit:,.0f}' for x in m.cold)}/s; ratio median "
              f"{median(x.ratio for x in m.cold):.2f}, best {max(x.ratio for x in m.cold):.2f}{extra}")
        print(f"      node process CPU per record, median: {median(x.cpu_us for x in m.cold):.0f} us (signatures in "
              f"the workers; main thread {median(x.thread_us for x in m.cold):.0f}, of which cyclic GC "
              f"{median(x.gc_us for x in m.cold):.0f})" + (f"; parsing alone {m.parse_us:.0f} us" if m.parse_us else ""))
        if m.warm:
            print(f"      {len(m.warm)} more blocks with their records parsed beforehand (a validator whose pool "
                  f"admitted them): {', '.join(f'{x.rate:,.0f}' for x in m.warm)} readings/s, ratio median "
                  f"{median(x.ratio for x in m.warm):.2f}; node process CPU {median(x.cpu_us for x in m.warm):.0f} us "
                  f"per record")

    ocmf, ed = measured[ks[0].name].state, measured[ks[-1].name].state
    ocmf_b, ed_b = sum(ocmf.values()), sum(ed.values())
    print("\nstate per meter per interval (steady state; keys + values created, plus growth; per-block items "
          "left out):")
    for k in ks:
        s = measured[k.name].state
        if s:
            parts = ", ".join(f"{name} {v:.1f}" for name, v in sorted(s.items(), key=lambda kv: -kv[1]))
            print(f"  {k.name}: {sum(s.values()):.1f} bytes ({parts})")
    print(f"  OCMF P-256 {ocmf_b:.1f} bytes against ed25519 {ed_b:.1f} bytes: ratio {ocmf_b / ed_b:.2f} "
          f"(issue 11 limit <= {STATE_LIMIT_PERCENT / 100:.2f}: "
          f"{'met' if ocmf_b * 100 <= ed_b * STATE_LIMIT_PERCENT else 'NOT met'})")

    print("\nweights (ns of reference compute; measured on this machine, one core):")
    for c in CURVE_HASH:
        print(f"  W_VERIFY[{c}] = {field_meters.W_VERIFY[c]:,}: measured {1e9 / raw[c]:,.0f} ns per verify")
    base = system.Config.base_extrinsic_weight
    print(f"  the rest of a record (node process, all in: decode, parse, checks, storage, trie, commit), "
          f"against base_extrinsic_weight {base:,} + W_RECORD_BASE of its scheme "
          f"(+ W_MINT {certificates.W_MINT:,} with export):")
    for k in ks:
        m = measured[k.name]
        if not m.cold:
            continue
        mint = certificates.W_MINT if k.export_obis else 0
        cpu_ns = median(x.cpu_us for x in m.cold) * 1000
        if k.scheme == field_meters.SCHEME_ED25519:
            charged = base + metering.W_READING + mint
            print(f"    {k.name}: {cpu_ns:,.0f} ns, plus its verify {1e9 / raw['ed25519']:,.0f} ns in a "
                  f"worker, against {base:,} + W_READING {metering.W_READING:,} + {mint:,} = {charged:,} "
                  f"(W_READING includes the verify)")
            continue
        charged = base + field_meters.W_RECORD_BASE[k.scheme] + mint
        print(f"    {k.name}: {cpu_ns:,.0f} ns against {charged:,} (ratio {cpu_ns / charged:.2f}); the "
              f"measured cost implies W_RECORD_BASE ~ {cpu_ns - base - mint:,.0f}"
              + (f" ({median(x.cpu_us for x in m.warm) * 1000 - base - mint:,.0f} with records parsed "
                 "beforehand)" if m.warm else ""))

    if profiled is not None:
        for sort in ("cumulative", "tottime"):
            print(f"\nprofile of one OCMF P-256 import, block of {ks[0].count}, parse cache empty (node process; "
                  f"top {top} by {sort} time):")
            out = io.StringIO()
            profiled.stream = out
            profiled.sort_stats(sort).print_stats(top)
            print("\n".join(line for line in out.getvalue().splitlines()[4:] if line.strip()))


if __name__ == "__main__":
    main()
