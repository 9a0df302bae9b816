"""Where a meter's registers come from: a CSV file a data logger writes, or a simulated household.

A source answers one question: the cumulative registers (OBIS 1.8.0 import, 2.8.0 export, Wh) at an
interval's end, `registers_at(end_s)`, or None while it does not know them (yet). The gateway asks at
each interval end of the chain's grid; it decides which intervals are due, spools and signs.

Source specs (the `--source` option):

  `csv:PATH`            a CSV file, format below;
  `simulated[:INDEX[:SEED]]`   household INDEX (default: the meter's position on the command line)
                        of `meters.household.neighbourhood(n, SEED)` (default seed 2011), on real
                        metering data (see `meters.household.ATTRIBUTION`).

CSV format (UTF-8; blank lines and lines starting with `#` are ignored):

    timestamp,import_wh,export_wh
    2026-05-01T00:15:00Z,1204332,88120
    1777594500,1204410,88120

  - `timestamp` is the END of a delivery interval, on the chain's grid (a multiple of the interval
    length, 900 s by default): unix seconds, or ISO 8601 with a time zone (`Z` or `+02:00`). A time
    without a zone is refused: a logger in local time would shift every reading by hours.
  - `import_wh` and `export_wh` are the cumulative register values at that moment, whole Wh.
  - rows are in time order; the file may grow while the gateway runs (a logger appends rows) and is
    re-read from where it was left; a last line without its newline is not read until it is complete.

Other people's files (a data set, a vendor's export) are read with three options instead of being
converted first: `columns` maps the roles timestamp, import and export to the file's column names
(other columns are ignored; no export column makes an import-only meter, whose export register stays
0), `units` says whether the registers are in Wh or kWh (kWh with decimals is converted exactly, in
integers, and floored to whole Wh), and `label` says whether a row's time is the END of its period
(our format) or its START (as in Open Power System Data's household set). A start-labelled row holds
the registers at the end of its period, so it belongs to the interval ending one period later; the
period is the file's step, the smallest spacing between its rows. With `columns` the label must be
given: no default can be right for every foreign file, and a wrong one is silently one period off.

A malformed row (wrong column count, bad number or time, off-grid or out-of-order time, a register
below the previous row's) is reported once, as `PATH:LINE: what is wrong; row skipped`, and skipped;
the source goes on. Skipping loses no energy: the registers are cumulative, so the next good row's
reading carries the skipped interval's energy too (the chain records the interval as missed). Stopping
the source instead would silence the meter until someone edits the file. A row with an empty register
cell (a data set before the meter was installed, a logger that missed a value) is skipped and counted
(`empty_rows`), not reported line by line.
"""
from __future__ import annotations

import csv
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from meters.household import Household, HouseholdSpec, Registers, neighbourhood

log = logging.getLogger("gridchain.meter")

DEFAULT_SIMULATION_SEED = 2011
CSV_HEADER = ["timestamp", "import_wh", "export_wh"]
#: our own format's columns by role; `--columns` maps the roles onto another file's names
DEFAULT_COLUMNS = {"timestamp": "timestamp", "import": "import_wh", "export": "export_wh"}
COLUMN_ROLES = ("timestamp", "import", "export")
UNITS = ("Wh", "kWh")
LABELS = ("end", "start")
COLUMNS_SYNTAX = "--columns timestamp=NAME,import=NAME[,export=NAME]"
_NUMBER = re.compile(r"([0-9]+)(?:\.([0-9]*))?")


class SourceError(ValueError):
    """A source that cannot be used at all (bad spec, missing file, bad header): one clear line."""


class RegisterSource(Protocol):
    """A meter's registers at interval ends."""

    description: str

    def configure(self, interval_s: int, state: dict[str, Any]) -> None:
        """Learn the chain's interval length and restore the persisted state (from the spool)."""

    def start(self, first_interval_start: int, import_wh: int, export_wh: int) -> None:
        """The meter's first reading will close the interval starting at `first_interval_start`,
        continuing from these registers (zero for a new meter, the chain's for a known one)."""

    def state(self) -> dict[str, Any]:
        """What must survive a restart (kept in the spool with the meter)."""

    def registers_at(self, end_s: int) -> tuple[int, int] | None:
        """(import_wh, export_wh) at interval end `end_s`, or None if not known (yet)."""


# -----------------------------------------------------------------------------------------------
# CSV
# -----------------------------------------------------------------------------------------------

def parse_timestamp(text: str) -> int:
    """Unix seconds from an integer or an ISO 8601 time with a zone; ValueError with a sentence."""
    text = text.strip()
    if text.isascii() and text.isdigit():
        return int(text)
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"timestamp {text!r} is neither unix seconds nor ISO 8601") from None
    if dt.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone (add Z or +hh:mm, or use a UTC column): "
                         "a local time would shift every reading")
    ts = dt.timestamp()
    if ts != int(ts):
        raise ValueError(f"timestamp {text!r} is not a whole second")
    return int(ts)


def parse_register_wh(text: str, column: str, units: str = "Wh") -> int:
    """A cumulative register in whole Wh from a cell in `units` (Wh or kWh); ValueError with a sentence.

    kWh is converted exactly, in integers (never through a float): `3128.8305` kWh is 3,128,830 Wh,
    the part below 1 Wh floored. Flooring a cumulative register loses nothing over time: the
    remainder stays in the register and is counted by a later reading. Wh must be whole: a decimal
    value in Wh is more likely kWh read with the wrong unit (1,000 times too small) than a meter
    that counts fractions of a Wh, so it is refused with a hint."""
    t = text.strip()
    m = _NUMBER.fullmatch(t)
    if m is None:
        raise ValueError(f"{column} {t!r} is not a register value (digits, with a decimal point for kWh)")
    whole, frac = m.group(1), m.group(2) or ""
    if units == "kWh":
        wh = int(whole) * 1000 + int((frac + "000")[:3])
    elif units == "Wh":
        if frac.strip("0"):
            raise ValueError(f"{column} {t!r} is not a whole number of Wh (for registers in kWh, use --units kWh)")
        wh = int(whole)
    else:
        raise ValueError(f"unknown unit {units!r}: Wh or kWh")
    if wh >= 2**63:
        raise ValueError(f"{column} {t} is out of range")
    return wh


def parse_columns(text: str) -> dict[str, str]:
    """`timestamp=NAME,import=NAME[,export=NAME]` -> {role: column name}; SourceError with a sentence.
    Without `export`, the meter is import-only (its export register stays 0)."""
    out: dict[str, str] = {}
    for part in text.split(","):
        role, eq, name = part.partition("=")
        role, name = role.strip(), name.strip()
        if not eq or not name:
            raise SourceError(f"--columns {text!r}: {part.strip()!r} is not ROLE=COLUMN; use {COLUMNS_SYNTAX}")
        if role not in COLUMN_ROLES:
            raise SourceError(f"--columns {text!r}: unknown role {role!r} (roles: timestamp, import, export)")
        if role in out:
            raise SourceError(f"--columns {text!r}: {role} is given twice")
        out[role] = name
    missing = [r for r in ("timestamp", "import") if r not in out]
    if missing:
        raise SourceError(f"--columns {text!r}: {' and '.join(missing)} missing; use {COLUMNS_SYNTAX}")
    if len(set(out.values())) != len(out):
        raise SourceError(f"--columns {text!r}: one column for two roles")
    return out


def coarse_note(source_state: dict[str, Any], interval_s: int | None) -> str | None:
    """A warning for a source whose data (as kept in the spool: its `stepS`) is coarser than the
    chain's interval, or None."""
    step = source_state.get("stepS")
    if not isinstance(step, int) or interval_s is None or step <= interval_s:
        return None
    n = step // interval_s
    return (f"WARNING: the source has a row every {step} s, coarser than the chain's {interval_s} s interval: a "
            f"reading only every {n} intervals; the {n - 1} in between are recorded on chain as missed and cannot "
            "settle")


def _names(cells: list[str], most: int = 8) -> str:
    shown = ", ".join(cells[:most])
    return shown + (f" and {len(cells) - most} more" if len(cells) > most else "")


class CsvSource:
    """Registers from a CSV file that a logger writes (and may keep appending to), or a data set's
    file read through a column mapping, a unit and a label convention (module docstring)."""

    def __init__(self, path: Path | str, *, on_malformed: Callable[[str], None] | None = None,
                 columns: dict[str, str] | None = None, units: str = "Wh", label: str | None = None) -> None:
        self.path = Path(path)
        self.description = f"csv:{self.path}"
        if units not in UNITS:
            raise SourceError(f"csv source {self.path}: units must be Wh or kWh, not {units!r}")
        if label is None and columns is not None:
            raise SourceError("with --columns, say which end of its period a row's time labels: --label start "
                              "or --label end (formats differ, and a wrong guess is silently one period off)")
        label = label or "end"
        if label not in LABELS:
            raise SourceError(f"csv source {self.path}: label must be start or end, not {label!r}")
        if columns is not None:
            parse_columns(",".join(f"{r}={n}" for r, n in columns.items()))       # the same checks
        self.mapped = columns is not None
        self.columns = dict(columns) if columns is not None else dict(DEFAULT_COLUMNS)
        self.units, self.label = units, label
        self.interval_s: int | None = None
        #: rows by their time label: the end of the period (label "end") or its start ("start")
        self.rows: dict[int, tuple[int, int]] = {}
        self.errors: list[str] = []             # every malformed-row message, in file order
        self.empty_rows = 0                     # rows skipped for an empty register cell
        #: the file's step: the smallest spacing between consecutive rows (None until two rows)
        self.step_s: int | None = None
        self._anchor: int | None = None         # a row's time label, for the phase of the step
        self._on_malformed = on_malformed or (lambda msg: log.warning("%s", msg))
        self._offset = 0                        # bytes consumed (complete lines only)
        self._line = 0                          # lines consumed
        self._index: dict[str, int] | None = None     # role -> cell index, once the header was read
        self._width = 0                         # cells per row, as in the header
        self._last_ts: int | None = None        # the last good row's time label
        self._last_regs: tuple[int, int] | None = None   # the last row's registers
        self._identity: tuple[int, int] | None = None    # (device, inode) of the file read
        self._missing_logged = False
        self._empty_logged = False
        if not self.path.is_file():
            raise SourceError(f"csv source {self.path}: no such file")
        self._check_header()

    def _header(self, line: int, cells: list[str]) -> dict[str, int]:
        """Role -> cell index from the header's cells; SourceError naming what was expected and found."""
        if self.mapped:
            where = {c: i for i, c in reversed(list(enumerate(cells)))}
            missing = [f"{r}={n!r}" for r, n in self.columns.items() if n not in where]
            if missing:
                raise SourceError(f"{self.path}:{line}: --columns names {', '.join(missing)}, but the header has no "
                                  f"such column (found: {_names(cells)})")
            twice = [n for n in self.columns.values() if cells.count(n) > 1]
            if twice:
                raise SourceError(f"{self.path}:{line}: the header has the column {twice[0]!r} more than once")
            return {r: where[n] for r, n in self.columns.items()}
        lower = [c.lower() for c in cells]
        if not all(lower.count(n) == 1 for n in CSV_HEADER):
            raise SourceError(f"{self.path}:{line}: expected the columns {', '.join(CSV_HEADER)}, found "
                              f"{_names(cells)}; to read another format, map its columns with {COLUMNS_SYNTAX} "
                              "(no export= for an import-only meter)")
        return {r: lower.index(n) for r, n in DEFAULT_COLUMNS.items()}

    @staticmethod
    def _cells(text: str) -> list[str]:
        return [c.strip() for c in next(csv.reader([text]))]

    def _check_header(self) -> None:
        """Refuse a file without a usable header at once (rows are parsed once the interval is known)."""
        try:
            with open(self.path, "rb") as f:
                for line, raw in enumerate(f, start=1):
                    text = raw.decode("utf-8", "replace").strip().lstrip("\ufeff")
                    if not text or text.startswith("#"):
                        continue
                    self._header(line, self._cells(text))
                    return
        except OSError as e:
            raise SourceError(f"csv source {self.path}: cannot read it ({e.strerror or e})") from None

    def configure(self, interval_s: int, state: dict[str, Any]) -> None:
        if self.interval_s != interval_s:
            self.interval_s = interval_s
            self._reset()
            self.step_s = self._anchor = None
        self.refresh()

    def start(self, first_interval_start: int, import_wh: int, export_wh: int) -> None:
        """Nothing to set up: the file holds absolute register values."""

    def state(self) -> dict[str, Any]:
        """The file and how it is read, and its step once known (`gridchain meter spool` shows a
        step coarser than the chain's interval)."""
        out: dict[str, Any] = {"kind": "csv", "path": str(self.path)}
        if self.mapped:
            out["columns"] = dict(self.columns)
        if self.units != "Wh":
            out["units"] = self.units
        if self.label != "end":
            out["label"] = self.label
        if self.step_s is not None:
            out["stepS"] = self.step_s
        return out

    def data_expected_at(self, end_s: int) -> bool:
        """False for an interval end the file's step skips (data coarser than the chain's interval,
        rows only every Nth interval end): no row will ever come for it."""
        step, anchor = self.step_s, self._anchor
        if step is None or anchor is None or self.interval_s is None or step <= self.interval_s:
            return True
        return (end_s - anchor) % step == 0

    def _reset(self) -> None:
        self.rows.clear()
        self.errors.clear()
        self.empty_rows = 0
        self._offset = self._line = 0
        self._index = None
        self._last_ts = None
        self._last_regs = None

    def _malformed(self, line: int, what: str) -> None:
        msg = f"{self.path}:{line}: {what}; row skipped"
        self.errors.append(msg)
        self._on_malformed(msg)

    def refresh(self) -> None:
        """Read what was appended since the last call (the whole file again if it was replaced or
        truncated). A missing file is reported once and the rows already read are kept."""
        try:
            st = os.stat(self.path)
        except OSError as e:
            if not self._missing_logged:
                log.warning("csv source %s cannot be read (%s); keeping the %d rows already read",
                            self.path, e.strerror or e, len(self.rows))
                self._missing_logged = True
            return
        self._missing_logged = False
        identity = (st.st_dev, st.st_ino)
        if self._identity is not None and (identity != self._identity or st.st_size < self._offset):
            # a new file: keep what we read (delivered readings stay delivered), parse the new one;
            # its step is the old one's until its own rows say otherwise
            kept = dict(self.rows)
            self._reset()
            self.rows.update(kept)
        self._identity = identity
        if st.st_size == self._offset:
            return
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except OSError:
            return
        end = data.rfind(b"\n")
        if end < 0:
            return                               # no complete line yet
        chunk = data[:end + 1]
        self._offset += len(chunk)
        for raw in chunk.split(b"\n")[:-1]:
            self._line += 1
            self._parse_line(self._line, raw)

    def _parse_line(self, line: int, raw: bytes) -> None:
        try:
            text = raw.decode("utf-8").strip().lstrip("\ufeff")
        except UnicodeDecodeError:
            self._malformed(line, "not UTF-8 text")
            return
        if not text or text.startswith("#"):
            return
        try:
            cells = self._cells(text)
        except csv.Error as e:
            self._malformed(line, f"not a CSV row ({e})")
            return
        if self._index is None:
            self._index = self._header(line, cells)
            self._width = len(cells)
            return
        if len(cells) != self._width:
            names = ", ".join(self.columns.values()) if not self.mapped else "as in the header"
            self._malformed(line, f"expected {self._width} columns ({names}), got {len(cells)}")
            return
        idx = self._index
        stamp = cells[idx["timestamp"]]
        try:
            ts = parse_timestamp(stamp)
        except ValueError as e:
            self._malformed(line, str(e))
            return
        values = [cells[idx[r]] for r in ("import", "export") if r in idx]
        empty = any(v == "" for v in values)
        try:
            imp = 0 if empty else parse_register_wh(values[0], self.columns["import"], self.units)
            exp = 0 if empty or "export" not in idx else parse_register_wh(values[1], self.columns["export"],
                                                                              self.units)
        except ValueError as e:
            self._malformed(line, str(e))
            return
        if self.interval_s and ts % self.interval_s:
            what = "an interval end" if self.label == "end" else "an interval start"
            self._malformed(line, f"timestamp {stamp} is not {what} (a multiple of {self.interval_s} s)")
            return
        if self._last_ts is not None and ts <= self._last_ts:
            self._malformed(line, f"timestamp {stamp} is not after the previous row's")
            return
        if not empty and self._last_regs is not None:
            li, le = self._last_regs
            if imp < li or exp < le:
                self._malformed(line, f"registers ({imp}, {exp}) are below the previous row's ({li}, {le}); "
                                      "cumulative registers never decrease")
                return
        self._note_step(ts)
        if empty:
            self.empty_rows += 1
            if not self._empty_logged:
                self._empty_logged = True
                log.info("%s:%d: a register cell is empty; such rows are skipped and counted (no reading for "
                         "their interval; the next reading carries its energy)", self.path, line)
            return
        self._last_regs = (imp, exp)
        self.rows[ts] = (imp, exp)

    def _note_step(self, ts: int) -> None:
        """The file's step is the smallest spacing between consecutive rows seen so far."""
        if self._last_ts is not None:
            gap = ts - self._last_ts
            if self.step_s is not None and gap < self.step_s:
                log.warning("%s: rows %d s apart after rows %d s apart: the file's step is now %d s", self.path,
                            gap, self.step_s, gap)
            if self.step_s is None or gap < self.step_s:
                self.step_s = gap
        self._anchor = ts
        self._last_ts = ts

    def _label_of(self, end_s: int) -> int | None:
        """The time label of the row holding the registers at interval end `end_s` (None: not known
        yet, a start-labelled file whose step is not known)."""
        if self.label == "end":
            return end_s
        return None if self.step_s is None else end_s - self.step_s

    def registers_at(self, end_s: int) -> tuple[int, int] | None:
        label = self._label_of(end_s)
        hit = None if label is None else self.rows.get(label)
        if hit is None:
            self.refresh()
            label = self._label_of(end_s)
            hit = None if label is None else self.rows.get(label)
        return hit


# -----------------------------------------------------------------------------------------------
# simulated household
# -----------------------------------------------------------------------------------------------

_SPECS: dict[int, list[HouseholdSpec]] = {}


def household_spec(index: int, seed: int = DEFAULT_SIMULATION_SEED) -> HouseholdSpec:
    """Household `index` of `neighbourhood(n, seed)` (the same for every n > index), computed once
    per seed for the largest index asked: a gateway of 10,000 simulated meters asks 10,000 times."""
    specs = _SPECS.get(seed)
    if specs is None or len(specs) <= index:
        specs = _SPECS[seed] = neighbourhood(min(100_000, max(index + 1, 2 * len(specs or ()))), seed)
    return specs[index]


@dataclass
class SimulatedSource:
    """A simulated household's meter on real data (`meters.household`): index INDEX of the seeded
    neighbourhood. Its installation time and starting registers are chosen at its first reading and
    kept in the spool, so after a restart the registers continue exactly where they were."""

    index: int
    seed: int = DEFAULT_SIMULATION_SEED
    spec: HouseholdSpec | None = None

    def __post_init__(self) -> None:
        if self.index < 0:
            raise SourceError("a simulated household's index is 0 or more")
        if self.spec is None:
            self.spec = household_spec(self.index, self.seed)
        self.description = f"simulated:{self.index}:{self.seed}"
        self._registers: Registers | None = None
        self._installed: tuple[int, int, int] | None = None

    def configure(self, interval_s: int, state: dict[str, Any]) -> None:
        if (state.get("kind") == "simulated" and state.get("index") == self.index
                and state.get("seed") == self.seed and "installed_at" in state):
            self._install(int(state["installed_at"]), int(state.get("import_wh", 0)), int(state.get("export_wh", 0)))

    def start(self, first_interval_start: int, import_wh: int, export_wh: int) -> None:
        if self._installed is None:
            self._install(first_interval_start, import_wh, export_wh)

    def _install(self, installed_at: int, import_wh: int, export_wh: int) -> None:
        assert self.spec is not None
        self._installed = (installed_at, import_wh, export_wh)
        self._registers = Registers(Household(self.spec), installed_at, import_wh, export_wh)

    def state(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "simulated", "index": self.index, "seed": self.seed}
        if self._installed is not None:
            out.update(installed_at=self._installed[0], import_wh=self._installed[1], export_wh=self._installed[2])
        return out

    def registers_at(self, end_s: int) -> tuple[int, int] | None:
        if self._registers is None or end_s < self._registers.installed_at:
            return None
        return self._registers.at(end_s)


def parse_source(spec: str, *, position: int = 0, columns: dict[str, str] | None = None, units: str = "Wh",
                 label: str | None = None) -> RegisterSource:
    """A source from its `--source` spec; `position` is the meter's place among the gateway's
    meters (the default household index of `simulated`); `columns`, `units` and `label` say how a
    CSV file is read (`CsvSource`). SourceError with one clear line."""
    spec = spec.strip()
    if spec.startswith("csv:"):
        path = spec[4:]
        if not path:
            raise SourceError("csv source needs a path: csv:PATH")
        return CsvSource(path, columns=columns, units=units, label=label)
    if spec == "simulated" or spec.startswith("simulated:"):
        parts = spec.split(":")[1:]
        if len(parts) > 2:
            raise SourceError(f"bad source {spec!r}: use simulated[:INDEX[:SEED]]")
        try:
            index = int(parts[0]) if parts and parts[0] != "" else position
            seed = int(parts[1]) if len(parts) > 1 else DEFAULT_SIMULATION_SEED
        except ValueError:
            raise SourceError(f"bad source {spec!r}: INDEX and SEED are integers") from None
        if not 0 <= index < 100_000:
            raise SourceError(f"bad source {spec!r}: a neighbourhood has households 0 to 99,999")
        return SimulatedSource(index, seed)
    raise SourceError(f"unknown source {spec!r}: use csv:PATH or simulated[:INDEX[:SEED]]")
