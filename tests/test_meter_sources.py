"""Register sources: the CSV format a data logger writes, and simulated households.

A CSV row is the cumulative registers at an interval's end. A malformed row is reported once with
its line number and skipped; what was read before stays, and the next good row's reading carries
the skipped interval's energy (registers are cumulative), which the gateway test below checks.
"""
from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from node_process import run_gridchain  # noqa: E402

from meters.gateway import Gateway, GatewayMeter
from meters.household import neighbourhood
from meters.keys import generate_key_file
from meters.sources import (
    CsvSource,
    SimulatedSource,
    SourceError,
    parse_source,
    parse_timestamp,
)
from meters.spool import Spool
from primitives.keys import Keypair

I = 900
T0 = 1_800_000_000 - 1_800_000_000 % I      # an interval boundary


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def csv_source(path: Path, messages: list[str] | None = None) -> CsvSource:
    src = CsvSource(path, on_malformed=(messages.append if messages is not None else None))
    src.configure(I, {})
    return src


def test_csv_rows_give_registers_at_interval_ends_in_unix_or_iso_time(tmp_path):
    iso = "2027-01-15T08:00:00Z"
    iso_t = parse_timestamp(iso)
    path = write(tmp_path / "m.csv", (
        "# logger 7, registers in Wh\n"
        "timestamp,import_wh,export_wh\n"
        f"{iso_t - I},1000,20\n"
        "\n"
        f"{iso},1100,20\n"
        f"2027-01-15T09:15:00+01:00,1150,95\n"))          # 08:15 UTC
    src = csv_source(path)
    assert src.registers_at(iso_t - I) == (1000, 20)
    assert src.registers_at(iso_t) == (1100, 20)
    assert src.registers_at(iso_t + I) == (1150, 95)
    assert src.registers_at(iso_t + 2 * I) is None              # not written yet
    assert src.errors == []
    assert src.state() == {"kind": "csv", "path": str(path)}


def test_malformed_rows_are_reported_with_their_line_and_skipped_and_the_rest_is_kept(tmp_path):
    path = write(tmp_path / "m.csv", "\n".join([
        "timestamp,import_wh,export_wh",
        f"{T0},100,0",                          # 2  good
        f"{T0 + I},110",                        # 3  two columns
        f"{T0 + I},abc,0",                      # 4  not a number
        f"{T0 + I},1.5,0",                      # 5  not whole Wh
        "2027-01-15T08:00:00,120,0",            # 6  no time zone
        f"{T0 + I + 60},120,0",                 # 7  not an interval end
        f"{T0 + I},90,0",                       # 8  import register went backwards
        f"{T0},130,0",                          # 9  not after the previous row
        f"{T0 + 2 * I},140,3",                  # 10 good
        "yesterday,150,3",                      # 11 not a time
        "",
    ]))
    messages: list[str] = []
    src = csv_source(path, messages)
    assert src.registers_at(T0) == (100, 0)
    assert src.registers_at(T0 + 2 * I) == (140, 3)
    assert src.registers_at(T0 + I) is None
    assert [m.split(":")[1] for m in messages] == ["3", "4", "5", "6", "7", "8", "9", "11"]
    for m in messages:
        assert m.startswith(f"{path}:") and m.endswith("; row skipped") and "\n" not in m
    assert "expected 3 columns" in messages[0]
    assert "no time zone" in messages[3]
    assert "not an interval end" in messages[4]
    assert "below the previous row's" in messages[5]


def test_a_growing_file_is_read_as_it_grows_and_a_replaced_one_keeps_what_was_read(tmp_path):
    path = write(tmp_path / "m.csv", f"timestamp,import_wh,export_wh\n{T0},100,0\n{T0 + I},1")
    src = csv_source(path)
    assert src.registers_at(T0) == (100, 0)
    assert src.registers_at(T0 + I) is None                    # the last line is not complete yet
    with open(path, "a") as f:
        f.write(f"10,0\n{T0 + 2 * I},120,0\n")
    assert src.registers_at(T0 + I) == (110, 0)
    assert src.registers_at(T0 + 2 * I) == (120, 0)
    # the logger rotates its file: a new, shorter file; readings already read are not forgotten
    path.unlink()
    write(path, f"timestamp,import_wh,export_wh\n{T0 + 3 * I},130,0\n")
    assert src.registers_at(T0 + 3 * I) == (130, 0)
    assert src.registers_at(T0 + I) == (110, 0)
    # a file that disappears: what was read stays available
    path.unlink()
    assert src.registers_at(T0 + 3 * I) == (130, 0)
    assert src.registers_at(T0 + 4 * I) is None


def test_a_file_without_the_header_or_absent_is_refused_in_one_line(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        CsvSource(tmp_path / "absent.csv")
    path = write(tmp_path / "m.csv", f"# logger 7\ntime,in,out\n{T0},1,2\n")
    with pytest.raises(SourceError, match=r"m.csv:2: expected the header"):
        CsvSource(path)
    r = run_gridchain("meter", "run", "--key", str(write_key(tmp_path)), "--source", f"csv:{path}",
                      "--rpc", "http://127.0.0.1:1", "--spool", str(tmp_path / "spool"))
    assert r.returncode != 0 and r.stderr.strip().splitlines() == [
        f"Error: {path}:2: expected the header 'timestamp,import_wh,export_wh', got 'time,in,out'"]
    assert not (tmp_path / "spool").exists()


def write_key(tmp_path: Path) -> Path:
    path = tmp_path / "meter.key"
    generate_key_file(path)
    return path


def test_parse_source_specs():
    assert isinstance(parse_source("simulated"), SimulatedSource)
    assert parse_source("simulated", position=7).index == 7
    s = parse_source("simulated:12:99")
    assert (s.index, s.seed) == (12, 99)
    assert s.spec == neighbourhood(13, 99)[12]
    for bad in ("simulated:x", "simulated:1:2:3", "simulated:-1", "csv:", "modbus:/dev/ttyS0"):
        with pytest.raises(SourceError):
            parse_source(bad)


def test_a_simulated_meter_continues_exactly_after_a_restart():
    a = SimulatedSource(4)
    a.configure(I, {})
    a.start(T0, 5_000, 700)
    ends = [T0 + k * I for k in range(1, 200)]
    values = [a.registers_at(t) for t in ends[:100]]
    assert values[0][0] >= 5_000 and values[0][1] >= 700
    assert all(x <= y for v, w in itertools.pairwise(values) for x, y in zip(v, w))   # never decrease
    assert values[-1] != values[0]                                                 # and do move
    # a restarted gateway rebuilds the source from the state kept in the spool
    b = SimulatedSource(4)
    b.configure(I, a.state())
    b.start(T0 + 100 * I, 0, 0)            # ignored: the installation is restored, not redone
    assert [b.registers_at(t) for t in ends[100:]] == [a.registers_at(t) for t in ends[100:]]
    assert b.registers_at(ends[50]) == values[50]
    assert b.registers_at(T0 - I) is None                                          # before installation


class SteppedClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_a_skipped_row_loses_no_energy_the_next_reading_carries_it(tmp_path):
    """The gateway, offline (its spool already knows the chain), reads a CSV interval by interval:
    the malformed row's interval is not reported and the next reading's registers include its
    energy, so the chain's deltas still add up to the register advance."""
    path = write(tmp_path / "m.csv", "\n".join([
        "timestamp,import_wh,export_wh",
        f"{T0 + I},1000,0",
        f"{T0 + 2 * I},1100,5",
        f"{T0 + 3 * I},1250;5",                 # malformed: the logger glitched
        f"{T0 + 4 * I},1400,9",
        ""]))
    meter = Keypair.from_uri("//csv//meter")
    messages: list[str] = []
    src = CsvSource(path, on_malformed=messages.append)
    spool = Spool.open(tmp_path / "spool")
    spool.bind_chain(b"\x11" * 32, I, 60, 4)
    spool.add_meters({meter.public_key: src.state()})
    spool.sync_meters({meter.public_key: (None, None, 0, 0)})     # the chain has no reading of it
    clock = SteppedClock(T0 + I + 5)
    gw = Gateway([GatewayMeter(meter, src)], spool, ["http://127.0.0.1:1"], clock=clock)
    gw.open()
    built = []
    for k in range(1, 5):
        clock.t = T0 + k * I + 5
        built.append(gw.take_readings(clock()))
    assert built == [1, 1, 0, 1]
    rows = [(r.seq, r.interval_start, r.import_wh, r.export_wh) for r in spool.pending()]
    assert rows == [(1, T0, 1000, 0), (2, T0 + I, 1100, 5), (3, T0 + 3 * I, 1400, 9)]
    assert len(messages) == 1 and messages[0].startswith(f"{path}:4:")
    spool.close()
