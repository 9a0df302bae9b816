"""The meter gateway forwarding field meters' own signed records: `gridchain meter run --source
ocmf:PATH|sml:PATH|dlms:PATH --meter-id HEX`.

Unit checks first (record sources, what the gateway reads from a record, the extrinsic), then a real
dev node with chain time 600x faster (`--time-warp 600`: a 15-minute interval passes in 1.5 s):
test meters (meters/field_meters.py) certified over RPC write their records as a meter's logger
would, an OCMF file appended to, an SML file of hex lines and a directory of DLMS records in hex,
and the gateway forwards them untouched: every record ends final on chain with its own hash, a
gateway restarted mid-way (in process, and a `meter run` process killed with SIGKILL) loses and
duplicates nothing, and a tampered record is kept in the spool as rejected with the node's reason.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from node_process import DevNode, gridchain_cmd, run_gridchain  # noqa: E402

from meters.field_meters import DlmsTestMeter, OcmfTestMeter, SmlTestMeter  # noqa: E402
from meters.gateway import FieldGatewayMeter, Gateway, NodeChainClock, summary_line  # noqa: E402
from meters.household import Registers  # noqa: E402
from meters.record_sources import (  # noqa: E402
    RecordDirectorySource,
    RecordExtrinsics,
    RecordFileSource,
    field_meter_id,
    parse_record_source,
    record_info,
)
from meters.simulator import SimulatedRecordSource, build_households, field_test_meter  # noqa: E402
from meters.spool import ED25519, Spool, SpooledReading  # noqa: E402
from meters.submitter import PendingReading  # noqa: E402
from meters.verify import verify  # noqa: E402
from pallets import build_runtime, field_meters, metering  # noqa: E402
from primitives.extrinsic import Call, Extrinsic  # noqa: E402
from primitives.hashing import keccak256  # noqa: E402
from primitives.keys import dev_keypair  # noqa: E402
from rpc.client import Client  # noqa: E402
from test_meter_gateway import chain_now_s  # noqa: E402

WARP = 600
I = 900
T0 = 1_800_000_000 - 1_800_000_000 % I
DAVE, BOB, CHARLIE = dev_keypair("Dave"), dev_keypair("Bob"), dev_keypair("Charlie")
SCHEME_NUMBER = {"ocmf": 1, "sml-edl40": 2, "dlms-general-signing": 3}


# -- unit checks (no node) ---------------------------------------------------------------------------

def test_the_gateway_reads_counter_interval_and_registers_as_the_chain_maps_them():
    o, s, d = OcmfTestMeter(uri="//u//ocmf"), SmlTestMeter(uri="//u//sml"), DlmsTestMeter(uri="//u//dlms")
    for m in (o, s, d):
        assert field_meter_id(m.scheme, m.public_key_sec1()) == field_meters.field_meter_id(
            SCHEME_NUMBER[m.scheme], m.public_key_sec1())
    info = record_info("ocmf", o.record(T0 + I, 12_345, 678), "1-0:1.8.0", "1-0:2.8.0", I)
    assert (info.counter, info.interval_start, info.import_wh, info.export_wh) == (1, T0, 12_345, 678)
    assert info.device_id == o.meter_id
    info = record_info("sml-edl40", s.record(T0 + 2 * I, 40_001), "1-0:1.17.0", "", I)
    assert (info.counter, info.interval_start, info.import_wh, info.export_wh) == (1, T0 + I, 40_001, 0)
    d.counter = 77
    info = record_info("dlms-general-signing", d.record(T0 + I, 5, 6), "1-0:1.8.0", "1-0:2.8.0", I)
    assert (info.counter, info.interval_start, info.import_wh, info.export_wh) == (77, T0, 5, 6)
    with pytest.raises(ValueError, match="not one of a ocmf meter|does not parse|malformed|record"):
        record_info("ocmf", s.record(T0 + 3 * I, 40_002), "1-0:1.8.0", "", I)


def test_the_record_extrinsic_is_field_meters_submit_record_with_the_bytes_untouched():
    md = build_runtime().metadata()
    meter, record = b"\x42" * 32, OcmfTestMeter(uri="//u//x").record(T0 + I, 1, 0)
    expected = Extrinsic(Call(field_meters.pallet.index, field_meters.submit_record.call_def.index,
                              (meter, record))).encode()
    assert RecordExtrinsics(md).wrap(meter, record) == expected
    assert record in expected


def test_a_record_file_is_read_line_by_line_from_where_it_stopped(tmp_path):
    m = SmlTestMeter(uri="//u//file")
    recs = [m.record(T0 + k * I, 100 + k) for k in range(1, 5)]
    path = tmp_path / "meter.sml"
    path.write_bytes(b"# hex, one record per line\n" + recs[0].hex().encode() + b"\n\nnot hex\n"
                     + recs[1].hex()[:50].encode())
    src = RecordFileSource("sml", path)
    got = src.poll(0)
    assert [r.raw for r in got] == [recs[0], None]
    assert got[1].where == f"{path}:4" and "not a SML file in hex" in got[1].error
    with open(path, "ab") as f:                   # the half-written line is completed, more appended
        f.write(recs[1].hex()[50:].encode() + b"\n" + " ".join(f"{b:02x}" for b in recs[2]).encode() + b"\n")
    assert [r.raw for r in src.poll(0)] == [recs[1], recs[2]]
    state = src.state()
    with open(path, "ab") as f:
        f.write(b"0x" + recs[3].hex().encode() + b"\n")
    again = RecordFileSource("sml", path)         # a restarted gateway: from the kept position
    again.configure(state)
    assert [r.raw for r in again.poll(0)] == [recs[3]]
    path.write_bytes(recs[3].hex().encode() + b"\n")      # replaced (rotated): read from its start
    assert [r.raw for r in again.poll(0)] == [recs[3]]


def test_a_record_directory_is_taken_in_name_order_with_new_files_picked_up(tmp_path, caplog):
    m = DlmsTestMeter(uri="//u//dir")
    recs = [m.record(T0 + k * I, k, 0) for k in range(1, 5)]
    (tmp_path / "0002.hex").write_text(recs[1].hex() + "\n")
    (tmp_path / "0001.bin").write_bytes(recs[0])                  # binary is taken too
    (tmp_path / ".0003.tmp").write_text(recs[2].hex())            # still being written: ignored
    src = parse_record_source(f"dlms:{tmp_path}")
    assert isinstance(src, RecordDirectorySource)
    assert [r.raw for r in src.poll(0)] == [recs[0], recs[1]]
    os.rename(tmp_path / ".0003.tmp", tmp_path / "0003.hex")
    (tmp_path / "0000.hex").write_text(recs[3].hex())             # sorts before what was taken
    assert [r.raw for r in src.poll(0)] == [recs[2]]
    assert "0000.hex appeared after 0002.hex was taken" in caplog.text
    again = RecordDirectorySource("dlms", tmp_path)
    again.configure(src.state())
    assert again.poll(0) == []
    (tmp_path / "0004.hex").write_text("zz")
    bad = again.poll(0)
    assert bad[0].raw is None and "not a DLMS general-signing APDU in hex nor binary" in bad[0].error


def test_field_records_share_the_spool_with_gridchains_own_readings(tmp_path):
    ed, fm = b"\x01" * 32, b"\x02" * 32
    with Spool.open(tmp_path / "spool") as s:
        s.add_meters({ed: {}})
        s.add_meters({fm: {"kind": "records"}}, {fm: "ocmf"})
        assert s.meter(ed).scheme == ED25519 and s.meter(fm).scheme == "ocmf" and s.meter(fm).field
        # a record's seq is the meter's own counter: it may start anywhere and is not judged by its registers
        s.append([SpooledReading(fm, 5123, T0, 900, 0, b"OCMF|a"), SpooledReading(ed, 1, T0, 10, 0, b"r")])
        s.append([SpooledReading(fm, 5124, T0 + I, 800, 0, b"OCMF|b")])
        with pytest.raises(Exception, match="not the next seq"):
            s.append([SpooledReading(ed, 3, T0 + I, 10, 0, b"r")])
        with pytest.raises(Exception, match="not after the last"):
            s.append([SpooledReading(fm, 5125, T0 + I, 800, 0, b"OCMF|c")])
        with pytest.raises(Exception, match="as a ocmf meter, not sml-edl40"):
            s.add_meters({fm: {}}, {fm: "sml-edl40"})
        assert [(r.seq, r.signed) for r in s.readings(meter=fm)] == [(5123, b"OCMF|a"), (5124, b"OCMF|b")]


def test_a_simulated_field_meter_signs_its_households_registers_each_interval_and_resumes():
    """The demo's field meters: every 5th household OCMF, every 7th DLMS, every 6th import-only one
    SML/EDL40; each signs its household's registers at every interval end, and continues after a
    restart from the state kept in the spool (installation, next interval, counter)."""
    homes = build_households(8)
    assert [h.meter_kind for h in homes] == [ED25519] * 4 + ["ocmf", "sml-edl40", "dlms-general-signing", ED25519]
    for h in homes[4:7]:
        src = SimulatedRecordSource(h.field_meter, h.spec)
        first = src.poll(T0 + 2 * I + 5)                 # installed at the last ended interval's start
        more = src.poll(T0 + 4 * I)
        again = SimulatedRecordSource(field_test_meter(h.meter_kind, h.name), h.spec)    # a restarted gateway
        again.configure(src.state())
        last = again.poll(T0 + 5 * I)
        registers = Registers(h.household, T0 + I)
        import_obis, export_obis = h.field_certificate()["import_obis"], h.field_certificate()["export_obis"]
        for k, r in enumerate(first + more + last):
            end = T0 + (k + 2) * I
            info = record_info(h.meter_kind, r.raw, import_obis, export_obis, I)
            imp, exp = registers.at(end)
            assert (info.counter, info.interval_start, info.import_wh, info.export_wh) == (k + 1, end - I, imp, exp)
            assert verify(r.raw, "auto", h.field_meter.public_key_der()).valid
        assert len(first + more + last) == 4


def test_meter_run_refuses_a_field_source_without_its_meter_id_in_one_line(tmp_path):
    path = tmp_path / "meter.ocmf"
    path.write_text("")
    cases = [
        (["--source", f"ocmf:{path}"], "needs its field meter's --meter-id"),
        (["--source", f"ocmf:{path}", "--meter-id", "0x1234"], "is not a meter id"),
        (["--source", f"dlms:{tmp_path / 'nowhere'}", "--meter-id", "0x" + "00" * 32], "no such file"),
        (["--source", "ocmf2:x"], "not a field meter's records"),
        ([], "give --key FILE"),
    ]
    for args, expected in cases:
        r = run_gridchain("meter", "run", *args, "--rpc", "http://127.0.0.1:9")
        assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and expected in r.stderr, (args, r.stderr)


# -- on a real dev node -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with DevNode(tmp_path_factory.mktemp("field-gw") / "node", block_time_ms=200,
                 extra_args=["--time-warp", str(WARP)]) as n:
        n.wait_for_block(2)
        yield n




def interval_hash(node: DevNode, meter: bytes, t: int) -> bytes | None:
    raw = node.rpc("state_getStorage", ["0x" + metering.interval_energy.key_of(meter, t).hex()])
    return None if raw is None else metering.IntervalEnergy.decode(bytes.fromhex(raw[2:])).reading_hash


def certify(node: DevNode, meter, owner, import_obis: str, export_obis: str, kind: int) -> bytes:
    with Client(node.url) as c:
        xt = c.build_extrinsic(DAVE, "field_meters", "certify", [
            SCHEME_NUMBER[meter.scheme], meter.public_key_der(), "", meter.meter_id, import_obis, export_obis,
            owner.public_key, 1, kind, 10_000])
        r = c.submit_and_watch(xt, until="inBlock")
        assert r.success is True, r.error
    return field_meter_id(meter.scheme, meter.public_key_sec1())


class Logger:
    """What a meter's data logger does: at every interval end on the chain's clock, write the meter's
    record for it (OCMF and SML: a line appended, the OCMF line in two writes; DLMS: a file renamed
    into place). Keeps every record written, by interval."""

    def __init__(self, meter, target: Path, fmt: str) -> None:
        self.meter, self.target, self.fmt = meter, target, fmt
        self.written: dict[int, bytes] = {}
        self.last_counter: int | None = None      # of the last genuine record
        self.import_wh, self.export_wh = 10_000, 5_000 if fmt != "sml" else 0

    def write(self, interval_start: int, record: bytes | None = None) -> bytes:
        if record is None:
            self.import_wh += 100
            self.export_wh += 50 if self.fmt != "sml" else 0
            record = self.meter.record(interval_start + I, self.import_wh, self.export_wh)
            self.written[interval_start] = record
            self.last_counter = self.meter.counter - 1
        if self.fmt == "dlms":
            tmp = self.target / f".{interval_start}.tmp"
            tmp.write_text(record.hex())
            os.rename(tmp, self.target / f"{interval_start}.hex")
        else:
            line = (record if self.fmt == "ocmf" else record.hex().encode()) + b"\n"
            with open(self.target, "ab") as f:
                f.write(line[:40])
                f.flush()
                f.write(line[40:])
        return record


async def write_intervals(node: DevNode, loggers: list[Logger], first: int, n: int) -> None:
    """Each logger writes its record of intervals first .. first + (n-1)I once each has ended."""
    for k in range(n):
        t = first + k * I
        while await asyncio.to_thread(chain_now_s, node) < t + I:
            await asyncio.sleep(0.1)
        for lg in loggers:
            lg.write(t)


def check_final(node: DevNode, meter: bytes, lg: Logger) -> None:
    """Every record written is on chain under its interval with its own hash; the intervals from the
    first to the last were all read (none missed, none twice); the meter's last seq is the last counter."""
    intervals = sorted(lg.written)
    for t in intervals:
        assert interval_hash(node, meter, t) == keccak256(lg.written[t]), f"interval {t}"
    shown = node.rpc("energy_meterIntervals", ["0x" + meter.hex(), intervals[0], intervals[-1]])
    assert [x["status"] for x in shown] == ["read"] * len(intervals)
    assert node.rpc("energy_meter", ["0x" + meter.hex()])["lastReading"]["seq"] == lg.last_counter


@pytest.mark.slow
def test_records_of_three_formats_end_final_through_a_gateway_restart_and_a_tampered_one_is_kept(node, tmp_path):
    ocmf = OcmfTestMeter("secp256r1", uri="//fieldgw//ocmf")
    sml = SmlTestMeter(uri="//fieldgw//sml", pagination=41)
    dlms = DlmsTestMeter(suite=1, uri="//fieldgw//dlms")
    ids = [certify(node, ocmf, BOB, "1-0:1.8.0", "1-0:2.8.0", 2), certify(node, sml, CHARLIE, "1-0:1.17.0", "", 0),
           certify(node, dlms, BOB, "1-0:1.8.0", "1-0:2.8.0", 2)]
    (tmp_path / "dlms").mkdir()
    loggers = [Logger(ocmf, tmp_path / "meter.ocmf", "ocmf"), Logger(sml, tmp_path / "meter.sml", "sml"),
               Logger(dlms, tmp_path / "dlms", "dlms")]
    for lg in loggers[:2]:
        lg.target.write_bytes(b"")
    spool_path = tmp_path / "gw.spool"
    finals: list[PendingReading] = []
    n = 8
    first = chain_now_s(node) // I * I - I            # the last interval that has ended

    def gateway() -> Gateway:
        meters = [FieldGatewayMeter(m, parse_record_source(f"{lg.fmt}:{lg.target}")) for m, lg in zip(ids, loggers)]
        return Gateway(meters, Spool.open(spool_path), [node.url], clock=NodeChainClock(), poll_s=0.05,
                       on_final=lambda p, _now: finals.append(p))

    async def scenario() -> tuple[Gateway, Gateway]:
        writer = asyncio.create_task(write_intervals(node, loggers, first, n))
        gw1 = gateway()
        run1 = asyncio.create_task(gw1.run())
        while len({p.meter for p in finals}) < 3 or len(finals) < 7:
            assert not run1.done(), run1.exception()
            await asyncio.sleep(0.05)
        run1.cancel()                                  # a stop mid-way, records being written meanwhile
        await asyncio.gather(run1, return_exceptions=True)
        gw1.spool.close()
        await asyncio.sleep(0.5)
        gw2 = gateway()
        run2 = asyncio.create_task(gw2.run())
        await writer
        loggers[2].write(first + n * I, tampered_record(dlms, first + (n + 1) * I))
        while len(finals) < 3 * n or gw2.submitter.stats.rejected < 1:
            assert not run2.done(), run2.exception()
            await asyncio.sleep(0.05)
        run2.cancel()
        await asyncio.gather(run2, return_exceptions=True)
        return gw1, gw2

    gw1, gw2 = asyncio.run(asyncio.wait_for(scenario(), 55))
    assert len(finals) == 3 * n and len({(p.meter, p.seq) for p in finals}) == 3 * n   # none twice
    for m, lg in zip(ids, loggers):
        check_final(node, m, lg)
        assert sorted(p.signed for p in finals if p.meter == m) == sorted(lg.written.values())
    assert gw2.stats.records_skipped == 0 and gw2.stats.records_known == 0      # resumed where it stopped
    assert gw1.stats.records_taken + gw2.stats.records_taken == 3 * n + 1
    with Spool.open(spool_path, readonly=True) as spool:
        assert spool.pending() == []
        rejected = spool.rejected()
        assert [(r.meter, r.seq) for r in rejected] == [(ids[2], dlms.counter - 1)]
        assert "signature" in rejected[0].reason and rejected[0].reason.startswith("BadProof")
        assert {m.meter: m.scheme for m in spool.meters().values()} == dict(zip(ids, ("ocmf", "sml-edl40",
                                                                                      "dlms-general-signing")))
    assert "1 rejected" in summary_line(gw2.summary())
    assert gw2.summary()["reportedByScheme"] == {"dlms-general-signing": 1, "ocmf": 1, "sml-edl40": 1}


def tampered_record(meter: DlmsTestMeter, interval_end: int) -> bytes:
    """The meter's next record with its export value changed by 1 Wh on the way (it still parses):
    the content ends with the export value (4 bytes), its scaler-unit (6 bytes), then the signature
    (1 + 64 bytes)."""
    good = meter.record(interval_end, 10_000 + 100 * 9, 5_000 + 50 * 9)
    k = len(good) - 65 - 6 - 1
    return good[:k] + bytes([good[k] ^ 1]) + good[k + 1:]


@pytest.mark.slow
def test_meter_run_checks_the_meter_at_start_and_a_killed_process_resumes_without_loss(node, tmp_path):
    ocmf = OcmfTestMeter("secp256r1", uri="//fieldgw//cli-ocmf", pagination=900)
    other = SmlTestMeter(uri="//fieldgw//cli-sml")
    meter = certify(node, ocmf, BOB, "1-0:1.8.0", "1-0:2.8.0", 2)
    sml_id = certify(node, other, CHARLIE, "1-0:1.17.0", "", 0)
    path = tmp_path / "meter.ocmf"
    path.write_bytes(b"")
    spool_path = tmp_path / "cli.spool"

    def argv(meter_id: bytes, spool: Path = spool_path) -> list[str]:
        return gridchain_cmd("meter", "run", "--source", f"ocmf:{path}", "--meter-id", "0x" + meter_id.hex(),
                             "--rpc", node.url, "--spool", str(spool), "--clock", "node", "--poll-s", "0.05")

    for wrong, expected in ((sml_id, "is certified as a sml-edl40 meter"), (b"\x07" * 32, "is not certified")):
        r = subprocess.run([*argv(wrong, tmp_path / "other.spool"), "--log-level", "warning"], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and expected in r.stderr, r.stderr
    lg = Logger(ocmf, path, "ocmf")
    log_path = tmp_path / "gw.log"

    def start() -> subprocess.Popen:
        with open(log_path, "ab") as log:
            return subprocess.Popen(argv(meter), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def last_seq() -> int:
        lr = node.rpc("energy_meter", ["0x" + meter.hex()])["lastReading"]
        return 0 if lr is None else lr["seq"]

    first = chain_now_s(node) // I * I - I
    n = 7

    async def scenario() -> None:
        writer = asyncio.create_task(write_intervals(node, [lg], first, n))
        gw = start()
        try:
            while last_seq() < 902:
                await asyncio.sleep(0.05)
            gw.send_signal(signal.SIGKILL)
            await asyncio.to_thread(gw.wait, 10)
            await asyncio.sleep(1.0)                    # records are written meanwhile
            gw = start()
            await writer
            while last_seq() < 900 + n - 1:
                await asyncio.sleep(0.05)
            gw.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(gw.wait, 20) == 0, log_path.read_text()[-2000:]
        finally:
            if gw.poll() is None:
                gw.kill()
                gw.wait(10)

    asyncio.run(asyncio.wait_for(scenario(), 50))
    check_final(node, meter, lg)
    with Spool.open(spool_path, readonly=True) as spool:
        assert spool.rejected() == []
        rec = spool.meter(meter)
        assert rec.scheme == "ocmf" and rec.next_seq == 900 + n
    text = log_path.read_text()
    assert "Traceback" not in text and "skipped" not in text, text[-2000:]
