"""The meter gateway against a real dev node in a child process.

Chain time runs 600x faster (`--time-warp 600`): a 15-minute interval passes in 1.5 s and a block
(200 ms) advances chain time by 2 minutes. The dev chain certifies three household meters
(genesis.chain_spec.DEV_METERS): //Bob//meter and //Ferdie//meter (bidirectional) and
//Charlie//meter (import only, so it gets a household without PV).

What is checked, each against the chain's own state: readings end up final on chain; a node killed
and restarted mid-run loses and duplicates nothing (every interval on chain matches what the
gateway spooled, byte for byte via the reading hash); a gateway process killed and restarted
resumes (seq continues, the intervals it missed are read and delivered in order); a dead first
endpoint fails over to the second; a refused reading is kept with the node's reason and does not
hold back the others; and why one reading per meter in flight: the pool does not order a meter's
readings.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from node_process import DevNode, free_port, gridchain_cmd, run_gridchain  # noqa: E402

from genesis.chain_spec import dev_meter_uri  # noqa: E402
from meters.gateway import Gateway, GatewayMeter, NodeChainClock, explain_implausible  # noqa: E402
from meters.readings import (  # noqa: E402
    ReadingExtrinsics,
    build_reading,
    sign,
    submit_reading_extrinsic,
)
from meters.sources import CsvSource, SimulatedSource  # noqa: E402
from meters.spool import Spool  # noqa: E402
from meters.submitter import PendingReading, _classify  # noqa: E402
from pallets import build_runtime, metering, timestamp  # noqa: E402
from primitives.codec import U64  # noqa: E402
from primitives.hashing import keccak256  # noqa: E402
from primitives.keys import Keypair, dev_keypair  # noqa: E402
from rpc.client import Client, RpcError  # noqa: E402

WARP = 600
I = 900

BOB_METER = Keypair.from_uri(dev_meter_uri("Bob"))
CHARLIE_METER = Keypair.from_uri(dev_meter_uri("Charlie"))
FERDIE_METER = Keypair.from_uri(dev_meter_uri("Ferdie"))


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with DevNode(tmp_path_factory.mktemp("meter-gw") / "node", block_time_ms=200,
                 extra_args=["--time-warp", str(WARP)]) as n:
        n.wait_for_block(2)
        yield n


# -- reading the chain as a test (pallets may be imported here) ---------------------------------

def chain_now_s(node: DevNode) -> int:
    raw = node.rpc("state_getStorage", ["0x" + timestamp.now.prefix.hex()])
    return U64.decode(bytes.fromhex(raw[2:])) // 1000


def interval_record(node: DevNode, meter: bytes, t: int) -> metering.IntervalEnergy | None:
    raw = node.rpc("state_getStorage", ["0x" + metering.interval_energy.key_of(meter, t).hex()])
    return None if raw is None else metering.IntervalEnergy.decode(bytes.fromhex(raw[2:]))


def meter_record(node: DevNode, meter: bytes) -> metering.Meter:
    raw = node.rpc("state_getStorage", ["0x" + metering.meters.key_of(meter).hex()])
    return metering.Meter.decode(bytes.fromhex(raw[2:]))


def missed(node: DevNode, meter: bytes, t: int) -> bool:
    return node.rpc("state_getStorage", ["0x" + metering.missed_intervals.key_of(meter, t).hex()]) is not None


def wait_until(predicate, what: str, timeout: float = 40.0, every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)


def check_on_chain(node: DevNode, meter: bytes, finals: list[PendingReading]) -> None:
    """Every reading the gateway saw finalised is on chain byte for byte (its hash), seqs run 1..N
    without a hole or a repeat, every interval from the first to the last has exactly its reading
    (no interval missed), and the meter's chain record ends at the last one."""
    finals = sorted(finals, key=lambda p: p.seq)
    assert [p.seq for p in finals] == list(range(1, len(finals) + 1))
    first = finals[0].interval_start
    assert [p.interval_start for p in finals] == [first + k * I for k in range(len(finals))]
    for k, p in enumerate(finals):
        rec = interval_record(node, meter, p.interval_start)
        assert rec is not None, f"interval {p.interval_start} (seq {p.seq}) is not on chain"
        assert rec.reading_hash == keccak256(p.signed)
        assert rec.intervals == (0 if k == 0 else 1)       # baseline, then exactly one interval each
        assert not missed(node, meter, p.interval_start)
    m = meter_record(node, meter)
    last = finals[-1]
    assert (m.last_seq, m.last_interval) == (last.seq, last.interval_start)


# -- unit checks (no node) -------------------------------------------------------------------------

def test_reading_extrinsic_matches_the_protocol_vector_and_metadata_indices():
    """protocol.md section 8: //Meter1's reading of interval 1,700,000,100 on genesis 0x11..11."""
    md = build_runtime().metadata()
    kp = Keypair.from_seed(bytes.fromhex("301bd605cefdc37f0fb5ea9ad44dc6d94c0c70fea2782d1be826aa3158855c22"))
    signed = sign(kp, build_reading(kp.public_key, 1, 1_700_000_100, 12_345, 6_789, 100), b"\x11" * 32)
    expected = ("9301c0930805919295c420484e152e2cb06792e573da101f93d9c9c204ff82ce3e8bd7f17ea6dcbdf1570601ce6553f164"
                "cd3039cd1a85c440ee58c761e95d477387d0a8f6f6388a1119e49e42135ae1031b9f254c7b729af316ff431c505ba4a2"
                "e5cb68c6a2e5cd08ea150fd3510a7cac78e1a08c2b64ab0d")
    assert ReadingExtrinsics(md).wrap(signed).hex() == expected
    assert submit_reading_extrinsic(md, signed).hex() == expected
    assert keccak256(signed).hex() == "d04e2f668383f37107c2373f05854aa7ef7255e0dd39c5a02724bcafd3934dde"


def test_node_answers_are_classified_as_the_ordering_and_idempotency_rules_need():
    assert _classify("0xabc")[0] == "accepted"
    assert _classify(RpcError(1013, "already imported"))[0] == "accepted"          # a resend of ours
    assert _classify(RpcError(1010, "Invalid", "Stale: a reading with this sequence number was "
                                               "already accepted (replay)")) == (
        "check", "Stale: a reading with this sequence number was already accepted (replay)")
    assert _classify(RpcError(1012, "banned"))[0] == "check"
    assert _classify(RpcError(1010, "Invalid", "Custom: the meter is suspended"))[0] == "rejected"
    assert _classify(RpcError(1010, "Invalid", "Future: the reading's interval has not ended yet"))[0] == "rejected"
    assert _classify(RpcError(1016, "pool full"))[0] == "pool_full"
    assert _classify(RpcError(1011, "unknown"))[0] == "transient"


# -- against the node ---------------------------------------------------------------------------------

def test_readings_reach_the_chain_through_a_node_kill_and_restart_without_loss_or_duplicates(node, tmp_path):
    """The gateway's clock follows the warp on its own (it does not ask the node), so it keeps
    taking readings while the node is down; the node's chain time stands still meanwhile, so those
    readings wait until the chain's time passes their intervals' ends (one sent early would be
    refused and banned), then all arrive, in order."""
    finals: list[PendingReading] = []
    spool = Spool.open(tmp_path / "spool")
    chain0, wall0 = chain_now_s(node), time.time()
    clock = lambda: chain0 + (time.time() - wall0) * WARP          # noqa: E731 - a clock matching the warp
    gw = Gateway([GatewayMeter(BOB_METER, SimulatedSource(0))], spool, [node.url], clock=clock, poll_s=0.05,
                 backoff_max_s=0.5, on_final=lambda p, _now: finals.append(p))
    built_while_down = []

    async def scenario() -> None:
        task = asyncio.create_task(gw.run())
        try:
            while len(finals) < 3:
                await asyncio.sleep(0.05)
            await asyncio.to_thread(node.kill)
            before = gw.stats.readings_built
            await asyncio.sleep(2.5)                          # ~1.7 intervals of the gateway's clock
            built_while_down.append(gw.stats.readings_built - before)
            await asyncio.to_thread(node.restart)
            last_built = gw.stats.readings_built
            # run until everything built so far, and two readings more, are final
            while len(finals) < last_built + 2:
                assert not task.done(), task.exception()
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(asyncio.wait_for(scenario(), 60))
    assert built_while_down[0] >= 1, "the outage should have spooled readings"
    assert gw.submitter.stats.outages >= 1
    assert gw.submitter.stats.rejected == 0 and spool.rejected() == []
    check_on_chain(node, BOB_METER.public_key, finals)
    # the spool holds exactly the readings after the last final one (the gateway's clock is ahead of
    # the chain by the outage, since the chain's time stood still while the node was down)
    rec = spool.meter(BOB_METER.public_key)
    assert rec.finalised == len(finals)
    assert [r.seq for r in spool.pending()] == list(range(len(finals) + 1, rec.next_seq))
    last = metering.SignedReading.decode(max(finals, key=lambda p: p.seq).signed).reading
    m = meter_record(node, BOB_METER.public_key)
    assert (m.last_import_wh, m.last_export_wh) == (last.import_wh, last.export_wh)
    # the registers are the household's, exactly, at every interval end (nothing re-based by the restart)
    replay = SimulatedSource(0)
    replay.configure(I, rec.source)
    for p in finals:
        r = metering.SignedReading.decode(p.signed).reading
        assert replay.registers_at(p.interval_start + I) == (r.import_wh, r.export_wh)
    spool.close()


def test_failover_to_a_second_endpoint_and_a_refused_reading_is_kept_with_the_reason(node, tmp_path):
    """The first endpoint is dead, the second is the node over WebSocket. An uncertified meter's
    readings are refused with the node's reason and kept; the certified meter's flow regardless."""
    stranger = Keypair.from_uri("//NotCertified//meter")
    finals: list[PendingReading] = []
    spool_path = tmp_path / "spool"
    spool = Spool.open(spool_path)
    dead = f"http://127.0.0.1:{free_port()}"
    gw = Gateway([GatewayMeter(stranger, SimulatedSource(3)), GatewayMeter(FERDIE_METER, SimulatedSource(1))],
                 spool, [dead, node.ws_url], clock=NodeChainClock(), poll_s=0.05,
                 on_final=lambda p, _now: finals.append(p))

    def done(g: Gateway) -> bool:
        return len(finals) >= 3 and g.submitter.stats.rejected >= 3

    asyncio.run(asyncio.wait_for(gw.run(until=done), 40))
    assert gw.submitter.stats.failovers >= 1 and gw.submitter.active_url == node.ws_url
    assert {p.meter for p in finals} == {FERDIE_METER.public_key}
    check_on_chain(node, FERDIE_METER.public_key, finals)
    rejected = spool.rejected()
    assert len(rejected) >= 3 and {r.meter for r in rejected} == {stranger.public_key}
    assert [r.seq for r in rejected] == list(range(1, len(rejected) + 1))   # each refused, none blocking
    assert all(r.reason == "Custom: no meter with this key is certified" for r in rejected)
    spool.close()
    r = run_gridchain("meter", "spool", str(spool_path), "--json")
    assert r.returncode == 0, r.stderr
    listed = [x for x in json.loads(r.stdout)["readings"] if x["state"] == "rejected"]
    assert len(listed) == len(rejected) and listed[0]["reason"] == "Custom: no meter with this key is certified"


def test_a_killed_gateway_process_resumes_where_it_stopped(node, tmp_path):
    """`gridchain meter run` as a process, following the node's chain time: SIGKILL it, let an
    interval and more pass, start it again. The seq continues, the intervals it missed are read and delivered
    (in order, one reading in flight per meter), and no interval on chain is missing or doubled."""
    key = tmp_path / "charlie.key"
    r = run_gridchain("meter", "key", "generate", "--out", str(key), "--uri", dev_meter_uri("Charlie"))
    assert r.returncode == 0, r.stderr
    spool_path = tmp_path / "gw.spool"
    log_path = tmp_path / "gw.log"
    argv = gridchain_cmd("meter", "run", "--key", str(key), "--source", "simulated:2", "--rpc", node.url,
                         "--spool", str(spool_path), "--clock", "node", "--poll-s", "0.05")
    meter = CHARLIE_METER.public_key

    def last_seq() -> int:
        lr = node.rpc("energy_meter", ["0x" + meter.hex()])["lastReading"]
        return 0 if lr is None else lr["seq"]

    def start() -> subprocess.Popen:
        with open(log_path, "ab") as log:
            return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    start_seq = last_seq()
    gw = start()
    try:
        wait_until(lambda: last_seq() >= start_seq + 2, "the first readings")
        gw.send_signal(signal.SIGKILL)
        gw.wait(10)
        killed_at = chain_now_s(node)
        wait_until(lambda: chain_now_s(node) >= killed_at + I + 300, "an interval to pass")
        seq_at_restart = last_seq()
        gw = start()
        wait_until(lambda: last_seq() >= seq_at_restart + 4, "the missed and new readings")
        gw.send_signal(signal.SIGTERM)
        assert gw.wait(20) == 0, log_path.read_text()[-2000:]
    finally:
        if gw.poll() is None:
            gw.kill()
            gw.wait(10)
    with Spool.open(spool_path, readonly=True) as spool:
        rec = spool.meter(meter)
        assert spool.rejected() == []
        pending = spool.pending()
    final_seq = last_seq()
    # what the spool has not confirmed yet is exactly the seqs after its last confirmed one; a reading
    # sent just before SIGTERM may already be on chain (confirmed on the next start), none beyond
    assert [p.seq for p in pending] == list(range(rec.last_finalised_seq + 1, rec.next_seq))
    assert rec.last_finalised_seq <= final_seq <= rec.next_seq - 1
    m = meter_record(node, meter)
    # from the gateway's first reading to the last final one: every interval has its reading, none missed
    first = None
    for seq_interval in range(m.last_interval, 0, -I):
        rec_i = interval_record(node, meter, seq_interval)
        if rec_i is None:
            break
        assert not missed(node, meter, seq_interval)
        first = seq_interval
        if rec_i.intervals == 0:                    # the baseline: the gateway's first reading
            break
    assert first is not None
    assert (m.last_interval - first) // I + 1 == m.last_seq - start_seq   # one seq per interval, no gap
    assert m.kind == metering.KIND_IMPORT and m.implausible == 0 and m.last_export_wh == 0
    assert "Traceback" not in log_path.read_text()


def test_the_pool_does_not_order_a_meters_readings_so_the_gateway_must(node, tmp_path):
    """Two valid readings of one meter arriving later-first are both admitted (the pool tags a
    reading with no `requires`) and the earlier one then fails in the block: the reason the gateway
    keeps one reading per meter in flight."""
    meter = Keypair.from_uri("//ordering//meter")
    with Client(node.url) as c:
        xt = c.build_extrinsic(dev_keypair("Dave"), "metering", "certify_meter",
                               [meter.public_key, dev_keypair("Bob").public_key, 1, 2, 10_000])
        assert c.submit_and_watch(xt, until="inBlock").success is True
        genesis = c.genesis_hash()
        wrap = ReadingExtrinsics(c.metadata())
        t3 = chain_now_s(node) // I * I - I
        t1, t2 = t3 - 2 * I, t3 - I

        def xt_of(seq: int, t: int, imp: int) -> str:
            return "0x" + wrap.wrap(sign(meter, build_reading(meter.public_key, seq, t, imp, 0, I), genesis)).hex()

        c.submit_and_watch(bytes.fromhex(xt_of(1, t1, 100)[2:]), until="inBlock")
        later, earlier = c.batch([("author_submitExtrinsic", [xt_of(3, t3, 300)]),
                                  ("author_submitExtrinsic", [xt_of(2, t2, 200)])])
    assert not isinstance(later, RpcError), later
    # admitted too, unless a block slipped in between the two calls: then refused as stale at once
    assert not isinstance(earlier, RpcError) or (earlier.code == 1010 and earlier.data.startswith("Stale")), earlier
    wait_until(lambda: interval_record(node, meter.public_key, t3) is not None, "the later reading")
    node.wait_for_block(node.best_number() + 2)
    assert interval_record(node, meter.public_key, t2) is None          # the earlier one never lands
    assert meter_record(node, meter.public_key).last_seq == 3


# -- field data: coarse kWh data and an implausible reading ----------------------------------------------

def test_an_implausible_reading_is_explained_by_the_rule_it_broke():
    import_meter = {"kind": metering.KIND_IMPORT, "rated_power_w": 1_000}
    assert explain_implausible(import_meter, {"import_wh": 2_500, "export_wh": 0, "intervals": 4}, I) == (
        "its import register rose 2500 Wh over 3600 s (4 intervals), an average of 2500 W, more than its rated "
        "power of 1000 W (rule: delta_wh * 3600 <= rated_power_w * seconds covered; 9000000 > 3600000)")
    assert explain_implausible(import_meter, {"import_wh": 10, "export_wh": 3, "intervals": 1}, I) == (
        "its export register moved by 3 Wh, but it is certified as an import meter, whose export register must not "
        "move")
    export_meter = {"kind": metering.KIND_EXPORT, "rated_power_w": 5_000}
    assert explain_implausible(export_meter, {"import_wh": 1, "export_wh": 0, "intervals": 1}, I).startswith(
        "its import register moved by 1 Wh, but it is certified as an export meter")
    both = {"kind": metering.KIND_BIDIRECTIONAL, "rated_power_w": 4_000}
    assert "its export register rose 1001 Wh over 900 s (1 interval)" in explain_implausible(
        both, {"import_wh": 1_000, "export_wh": 1_001, "intervals": 1}, I)
    # the chain's records could not be read: the rule is still named
    assert "delta_wh * 3600 <= rated_power_w * seconds covered" in explain_implausible(None, None, I)


@pytest.mark.slow
def test_hourly_kwh_data_reaches_the_chain_every_fourth_interval_and_an_implausible_reading_is_logged(
        node, tmp_path, caplog):
    """An Open Power System Data-shaped household (hourly rows labelled with the period's start,
    cumulative kWh with 4 decimals, empty cells at the start, no export column) on an import meter
    rated 1,000 W. The chain gets a reading on the interval each hour ends, with exact Wh deltas,
    and the 3 intervals in between recorded missed; one hour moves 2.9 kWh, which the chain accepts
    but flags implausible: the gateway says so, naming the meter, the interval and the rule."""
    meter = Keypair.from_uri("//opsd-household//meter")
    with Client(node.url) as c:
        xt = c.build_extrinsic(dev_keypair("Dave"), "metering", "certify_meter",
                               [meter.public_key, dev_keypair("Bob").public_key, 1, metering.KIND_IMPORT, 1_000])
        assert c.submit_and_watch(xt, until="inBlock").success is True
    h = 3600
    h0 = chain_now_s(node) // h * h - h
    # registers in 0.1 Wh (the file's 4 kWh decimals): +400.3 Wh an hour, and 2,500 Wh more in hour 3
    tenth_wh = [27_101_234 + 4_003 * k + (25_000 if k >= 3 else 0) for k in range(8)]
    lines = ["utc_timestamp,cet_cest_timestamp,DE_KN_residential1_grid_import,DE_KN_residential1_pv",
             f"{h0 - 2 * h},{h0 - 2 * h},,", f"{h0 - h},{h0 - h},,0.5"]
    lines += [f"{h0 + k * h},{h0 + k * h},{v // 10_000}.{v % 10_000:04d},0.5" for k, v in enumerate(tenth_wh)]
    path = tmp_path / "household.csv"
    path.write_text("\n".join(lines) + "\n")
    source = CsvSource(path, columns={"timestamp": "utc_timestamp", "import": "DE_KN_residential1_grid_import"},
                       units="kWh", label="start")
    finals: list[PendingReading] = []
    spool = Spool.open(tmp_path / "spool")
    gw = Gateway([GatewayMeter(meter, source)], spool, [node.url], clock=NodeChainClock(), poll_s=0.05,
                 on_final=lambda p, _now: finals.append(p))
    last_row_end = h0 + 5 * h                        # row 4's registers: after the implausible hour

    def done(_g: Gateway) -> bool:
        return any(p.interval_start == last_row_end - I for p in finals)

    with caplog.at_level(logging.INFO, logger="gridchain.meter"):
        asyncio.run(asyncio.wait_for(gw.run(until=done), 60))
    spool.close()
    wh_at_end = {h0 + (k + 1) * h: v // 10 for k, v in enumerate(tenth_wh)}    # kWh floored to whole Wh
    finals.sort(key=lambda p: p.seq)
    assert len(finals) >= 3
    for k, p in enumerate(finals):
        end = p.interval_start + I
        assert end in wh_at_end, "a reading on an interval no hour ends"
        rec = interval_record(node, meter.public_key, p.interval_start)
        assert rec is not None and rec.reading_hash == keccak256(p.signed)
        r = metering.SignedReading.decode(p.signed).reading
        assert (r.import_wh, r.export_wh) == (wh_at_end[end], 0)
        if k == 0:
            continue
        assert (rec.import_wh, rec.export_wh, rec.intervals) == (wh_at_end[end] - wh_at_end[end - h], 0, 4)
        assert rec.plausible == (end != h0 + 4 * h)
        assert all(missed(node, meter.public_key, p.interval_start - j * I) for j in (1, 2, 3))
    assert meter_record(node, meter.public_key).implausible == 1
    s = gw.summary()
    assert s["implausible"] == 1 and s["intervalsMissedCoarse"] == s["intervalsMissed"] == 3 * (s["built"] - 1)
    assert s["emptyRows"] == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("coarser than the chain's 900 s interval" in w for w in warnings) == 1
    flagged = [w for w in warnings if "flagged it implausible" in w]
    assert flagged == [
        f"meter 0x{meter.public_key.hex()}, interval {h0 + 4 * h - I}: the chain accepted the reading but flagged it "
        f"implausible, so it is never settled: its import register rose 2900 Wh over 3600 s (4 intervals), an "
        f"average of 2900 W, more than its rated power of 1000 W (rule: delta_wh * 3600 <= rated_power_w * seconds "
        f"covered; 10440000 > 3600000); implausible readings since certification or reinstatement: 1 (the chain "
        f"suspends the meter at 3)"]
