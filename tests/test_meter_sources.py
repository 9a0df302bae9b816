"""Register sources: the CSV format a data logger writes, and simulated households.

A CSV row is the cumulative registers at an interval's end. A malformed row is reported once with
its line number and skipped; what was read before stays, and the next good row's reading carries
the skipped interval's energy (registers are cumulative), which the gateway test below checks.
"""
from __future__ import annotations

import itertools
import logging
import os
import sys
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(__file__))
from node_process import run_gridchain  # noqa: E402

from meters.gateway import Gateway, GatewayMeter
from meters.household import neighbourhood
from meters.keys import generate_key_file
from meters.sources import (
    CsvSource,
    SimulatedSource,
    SourceError,
    parse_columns,
    parse_register_wh,
    parse_source,
    parse_timestamp,
)
from meters.spool import Spool
from primitives.keys import Keypair

I = 900
T0 = 1_800_000_000 - 1_800_000_000 % I      # an interval boundary
#: the columns of Open Power System Data's household set (one household of several), as it ships them
OPSD_HEADER = ("utc_timestamp,cet_cest_timestamp,DE_KN_residential1_grid_import,DE_KN_residential1_pv,"
               "interpolated")
OPSD_COLUMNS = "timestamp=utc_timestamp,import=DE_KN_residential1_grid_import"


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
    assert src.state() == {"kind": "csv", "path": str(path), "stepS": I}


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
    with pytest.raises(SourceError, match=r"m.csv:2: expected the columns timestamp, import_wh, export_wh, "
                                          r"found time, in, out; .* --columns timestamp=NAME,import=NAME"):
        CsvSource(path)
    # our own columns in another order, with a column more, are fine; an import-only file needs --columns
    write(path, f"export_wh,note,timestamp,import_wh\n5,x,{T0},100\n")
    assert csv_source(path).registers_at(T0) == (100, 5)
    write(path, f"timestamp,import_wh\n{T0},100\n")
    with pytest.raises(SourceError, match="no export= for an import-only meter"):
        CsvSource(path)


def test_a_data_sets_header_without_columns_is_one_error_naming_expected_and_found(tmp_path):
    """The vendor's first try: an Open Power System Data file given as it is. One line says which
    columns were expected, which were found, and how to map them."""
    path = write(tmp_path / "household.csv", OPSD_HEADER + "\n" + "2015-10-01T00:00:00Z,2015-10-01T02:00:00+0200,"
                 "3128.830,12.5,\n")
    r = run_gridchain("meter", "run", "--key", str(write_key(tmp_path)), "--source", f"csv:{path}",
                      "--rpc", "http://127.0.0.1:1", "--spool", str(tmp_path / "spool"))
    assert r.returncode != 0
    assert r.stderr.strip().splitlines() == [
        f"Error: {path}:1: expected the columns timestamp, import_wh, export_wh, found utc_timestamp, "
        "cet_cest_timestamp, DE_KN_residential1_grid_import, DE_KN_residential1_pv, interpolated; to read another "
        "format, map its columns with --columns timestamp=NAME,import=NAME[,export=NAME] (no export= for an "
        "import-only meter)"]
    # a mapping naming a column the file does not have: named, with what the file has
    r = run_gridchain("meter", "run", "--key", str(write_key(tmp_path, "k2")), "--source", f"csv:{path}",
                      "--columns", "timestamp=utc_timestamp,import=DE_KN_residential1_grid_import,"
                      "export=DE_KN_residential1_grid_export", "--label", "start", "--units", "kWh",
                      "--rpc", "http://127.0.0.1:1", "--spool", str(tmp_path / "spool"))
    assert r.returncode != 0 and r.stderr.strip().splitlines() == [
        f"Error: {path}:1: --columns names export='DE_KN_residential1_grid_export', but the header has no such "
        "column (found: utc_timestamp, cet_cest_timestamp, DE_KN_residential1_grid_import, DE_KN_residential1_pv, "
        "interpolated)"]
    assert not (tmp_path / "spool").exists()


def write_key(tmp_path: Path, name: str = "meter") -> Path:
    path = tmp_path / f"{name}.key"
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


# -- field data: another format, kWh, start labels, coarse data -----------------------------------------

H = 3600
OPSD_T0 = parse_timestamp("2015-10-01T00:00:00Z")


def opsd_file(tmp_path: Path) -> Path:
    """An Open Power System Data household as it ships: hourly rows labelled with the period's START
    (UTC and local time), cumulative registers in kWh with up to 4 decimals, empty cells before the
    meter was installed, a PV column that is not a grid register, and no grid export column (an
    import-only household)."""
    rows = [("", "", ""), ("", "", ""), ("3128.830", "1.2", ""), ("3129.2005", "1.2", ""),
            ("3129.9999", "1.9", ""), ("3130.0001", "2.5", ""), ("3131.5", "2.5", "1")]
    lines = [OPSD_HEADER]
    for k, (grid_import, pv, interpolated) in enumerate(rows):
        utc = OPSD_T0 + k * H
        lines.append(f"{_iso(utc)},{_iso(utc + 2 * H, '+0200')},{grid_import},{pv},{interpolated}")
    return write(tmp_path / "household.csv", "\n".join(lines) + "\n")


def _iso(t: int, zone: str = "Z") -> str:
    import datetime  # noqa: PLC0415
    shifted = t + (2 * H if zone == "+0200" else 0)
    return datetime.datetime.fromtimestamp(shifted, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S") + zone


def test_an_opsd_household_reads_as_exact_wh_on_the_interval_its_period_ends(tmp_path):
    path = opsd_file(tmp_path)
    src = CsvSource(path, columns=parse_columns(OPSD_COLUMNS), units="kWh", label="start")
    src.configure(I, {})
    assert src.errors == [] and src.empty_rows == 2 and src.step_s == H
    # the row labelled 02:00 holds the registers at 03:00, the end of its hour; kWh exactly, floored
    assert src.registers_at(OPSD_T0 + 3 * H) == (3_128_830, 0)
    assert src.registers_at(OPSD_T0 + 4 * H) == (3_129_200, 0)
    assert src.registers_at(OPSD_T0 + 5 * H) == (3_129_999, 0)
    assert src.registers_at(OPSD_T0 + 6 * H) == (3_130_000, 0)
    assert src.registers_at(OPSD_T0 + 7 * H) == (3_131_500, 0)
    assert src.registers_at(OPSD_T0 + 2 * H) is None             # not one period early
    assert src.registers_at(OPSD_T0 + 3 * H + I) is None         # hourly: nothing at 03:15
    assert not src.data_expected_at(OPSD_T0 + 3 * H + I) and src.data_expected_at(OPSD_T0 + 8 * H)
    # read with end labels, every value would sit one hour early: the label is not cosmetic
    as_end = CsvSource(path, columns=parse_columns(OPSD_COLUMNS), units="kWh", label="end")
    as_end.configure(I, {})
    assert as_end.registers_at(OPSD_T0 + 2 * H) == (3_128_830, 0)


def test_hourly_data_is_said_loudly_and_its_missed_intervals_counted(tmp_path, caplog):
    """The gateway, offline (its spool already knows the chain), walks the OPSD household interval by
    interval: a reading every 4th interval, on the interval its hour ends, exact Wh; one warning
    names the source's step, the chain's interval and what happens; the summary counts the missed
    intervals and the empty rows; `gridchain meter spool` says it too."""
    path = opsd_file(tmp_path)
    meter = Keypair.from_uri("//opsd//meter")
    src = CsvSource(path, columns=parse_columns(OPSD_COLUMNS), units="kWh", label="start")
    spool_path = tmp_path / "spool"
    spool = Spool.open(spool_path)
    spool.bind_chain(b"\x11" * 32, I, 60, 4)
    spool.add_meters({meter.public_key: src.state()})
    spool.sync_meters({meter.public_key: (None, None, 0, 0)})
    clock = SteppedClock(OPSD_T0 + 2 * H + I + 5)
    gw = Gateway([GatewayMeter(meter, src)], spool, ["http://127.0.0.1:1"], clock=clock)
    gw.open()
    with caplog.at_level(logging.INFO, logger="gridchain.meter"):
        while clock.t <= OPSD_T0 + 7 * H + 5:
            gw.take_readings(clock())
            clock.t += I
    rows = [(r.seq, r.interval_start, r.import_wh, r.export_wh) for r in spool.pending()]
    assert rows == [(1, OPSD_T0 + 3 * H - I, 3_128_830, 0), (2, OPSD_T0 + 4 * H - I, 3_129_200, 0),
                    (3, OPSD_T0 + 5 * H - I, 3_129_999, 0), (4, OPSD_T0 + 6 * H - I, 3_130_000, 0),
                    (5, OPSD_T0 + 7 * H - I, 3_131_500, 0)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert (f"source csv:{path} has a row every 3600 s, coarser than the chain's 900 s interval: it gives a reading "
            "only every 4th interval, and the 3 intervals in between are recorded on chain as missed and cannot "
            "settle") in warnings[0]
    s = gw.summary()
    assert (s["built"], s["intervalsMissed"], s["intervalsMissedCoarse"], s["emptyRows"], s["sourceGaps"]) == (
        5, 12, 12, 2, 0)
    assert s["coarseSources"] == 1
    from meters.gateway import summary_line  # noqa: PLC0415
    assert "12 intervals missed between readings (recorded as missed, not settled), 12 of them because 1 " \
           "source(s) have data coarser than the chain's interval; 2 CSV rows with an empty register cell " \
           "skipped" in summary_line(s)
    spool.close()
    r = run_gridchain("meter", "spool", str(spool_path))
    assert r.returncode == 0, r.stderr
    assert ("WARNING: the source has a row every 3600 s, coarser than the chain's 900 s interval: a reading only "
            "every 4 intervals; the 3 in between are recorded on chain as missed and cannot settle") in r.stdout


def test_kwh_converts_exactly_and_a_decimal_in_wh_gets_a_hint():
    assert parse_register_wh("3128.830", "import", "kWh") == 3_128_830
    assert parse_register_wh("3128.8309", "import", "kWh") == 3_128_830      # floored below 1 Wh
    assert parse_register_wh("12", "import", "kWh") == 12_000
    assert parse_register_wh("0.0009", "import", "kWh") == 0
    assert parse_register_wh("1204332", "import_wh") == 1_204_332
    assert parse_register_wh("1204332.000", "import_wh") == 1_204_332
    with pytest.raises(ValueError, match=r"import_wh '3128.830' is not a whole number of Wh \(for registers in "
                                         r"kWh, use --units kWh\)"):
        parse_register_wh("3128.830", "import_wh")
    for bad in ("1e3", "-1", "1,5", "NaN", "", " . ", "٣"):
        with pytest.raises(ValueError):
            parse_register_wh(bad, "import", "kWh")


@given(st.integers(0, 10**12), st.text("0123456789", max_size=9))
def test_kwh_to_wh_is_the_exact_floor_of_the_decimal_value(whole, decimals):
    text = f"{whole}.{decimals}" if decimals else str(whole)
    expected = int((Decimal(text) * 1000).to_integral_value(rounding=ROUND_FLOOR))
    assert parse_register_wh(text, "import", "kWh") == expected


def test_the_column_mapping_units_and_label_are_checked_before_anything_runs(tmp_path):
    assert parse_columns(" timestamp = t , import=i ,export=e") == {"timestamp": "t", "import": "i", "export": "e"}
    for bad, why in (("timestamp=t", "import missing"), ("import=i,export=e", "timestamp missing"),
                     ("timestamp=t,import=i,pv=p", "unknown role 'pv'"), ("timestamp=t,import", "not ROLE=COLUMN"),
                     ("timestamp=t,import=i,import=j", "import is given twice"),
                     ("timestamp=t,import=x,export=x", "one column for two roles")):
        with pytest.raises(SourceError, match=why):
            parse_columns(bad)
    path = opsd_file(tmp_path)
    with pytest.raises(SourceError, match="with --columns, say which end of its period a row's time labels"):
        CsvSource(path, columns=parse_columns(OPSD_COLUMNS))
    key = write_key(tmp_path)
    r = run_gridchain("meter", "run", "--key", str(key), "--source", "simulated", "--units", "kWh",
                      "--rpc", "http://127.0.0.1:1", "--spool", str(tmp_path / "spool"))
    assert r.returncode != 0 and r.stderr.strip().splitlines() == [
        "Error: --units, --columns and --label say how a CSV file is read: give a --source csv:PATH"]
    r = run_gridchain("meter", "run", "--key", str(key), "--source", f"csv:{path}", "--columns", OPSD_COLUMNS,
                      "--rpc", "http://127.0.0.1:1", "--spool", str(tmp_path / "spool"))
    assert r.returncode != 0 and "--label start or --label end" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "spool").exists()
    # a naive timestamp is refused with the hint
    with pytest.raises(ValueError, match=r"has no time zone \(add Z or \+hh:mm"):
        parse_timestamp("2015-10-01T00:00:00")
