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

A malformed row (wrong column count, bad number or time, off-grid or out-of-order time, a register
below the previous row's) is reported once, as `PATH:LINE: what is wrong; row skipped`, and skipped;
the source goes on. Skipping loses no energy: the registers are cumulative, so the next good row's
reading carries the skipped interval's energy too (the chain records the interval as missed). Stopping
the source instead would silence the meter until someone edits the file.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from meters.household import Household, HouseholdSpec, Registers, neighbourhood

log = logging.getLogger("gridchain.meter")

DEFAULT_SIMULATION_SEED = 2011
CSV_HEADER = ["timestamp", "import_wh", "export_wh"]


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
    if text.isdigit():
        return int(text)
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"timestamp {text!r} is neither unix seconds nor ISO 8601") from None
    if dt.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone (add Z or +hh:mm)")
    ts = dt.timestamp()
    if ts != int(ts):
        raise ValueError(f"timestamp {text!r} is not a whole second")
    return int(ts)


def _wh(text: str, column: str) -> int:
    t = text.strip()
    if not t.isdigit():
        raise ValueError(f"{column} {text.strip()!r} is not a whole number of Wh")
    v = int(t)
    if v >= 2**63:
        raise ValueError(f"{column} {t} is out of range")
    return v


class CsvSource:
    """Registers from a CSV file that a logger writes (and may keep appending to)."""

    def __init__(self, path: Path | str, *, on_malformed: Callable[[str], None] | None = None) -> None:
        self.path = Path(path)
        self.description = f"csv:{self.path}"
        self.interval_s: int | None = None
        self.rows: dict[int, tuple[int, int]] = {}
        self.errors: list[str] = []             # every malformed-row message, in file order
        self._on_malformed = on_malformed or (lambda msg: log.warning("%s", msg))
        self._offset = 0                        # bytes consumed (complete lines only)
        self._line = 0                          # lines consumed
        self._header_seen = False
        self._last: tuple[int, int, int] | None = None   # (timestamp, import, export) of the last good row
        self._identity: tuple[int, int] | None = None    # (device, inode) of the file read
        self._missing_logged = False
        if not self.path.is_file():
            raise SourceError(f"csv source {self.path}: no such file")
        self._check_header()

    def _check_header(self) -> None:
        """Refuse a file without the header at once (rows are parsed once the interval is known)."""
        try:
            with open(self.path, "rb") as f:
                for line, raw in enumerate(f, start=1):
                    text = raw.decode("utf-8", "replace").strip().lstrip("\ufeff")
                    if not text or text.startswith("#"):
                        continue
                    if [c.strip().lower() for c in text.split(",")] != CSV_HEADER:
                        raise SourceError(f"{self.path}:{line}: expected the header 'timestamp,import_wh,export_wh', "
                                          f"got {text[:80]!r}")
                    return
        except OSError as e:
            raise SourceError(f"csv source {self.path}: cannot read it ({e.strerror or e})") from None

    def configure(self, interval_s: int, state: dict[str, Any]) -> None:
        if self.interval_s != interval_s:
            self.interval_s = interval_s
            self._reset()
        self.refresh()

    def start(self, first_interval_start: int, import_wh: int, export_wh: int) -> None:
        """Nothing to set up: the file holds absolute register values."""

    def state(self) -> dict[str, Any]:
        return {"kind": "csv", "path": str(self.path)}

    def _reset(self) -> None:
        self.rows.clear()
        self.errors.clear()
        self._offset = self._line = 0
        self._header_seen = False
        self._last = None

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
            # a new file: keep what we read (delivered readings stay delivered), parse the new one
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
        cells = [c.strip() for c in text.split(",")]
        if not self._header_seen:
            if [c.lower() for c in cells] != CSV_HEADER:
                raise SourceError(f"{self.path}:{line}: expected the header 'timestamp,import_wh,export_wh', "
                                  f"got {text[:80]!r}")
            self._header_seen = True
            return
        if len(cells) != 3:
            self._malformed(line, f"expected 3 columns (timestamp, import_wh, export_wh), got {len(cells)}")
            return
        try:
            ts = parse_timestamp(cells[0])
            imp = _wh(cells[1], "import_wh")
            exp = _wh(cells[2], "export_wh")
        except ValueError as e:
            self._malformed(line, str(e))
            return
        if self.interval_s and ts % self.interval_s:
            self._malformed(line, f"timestamp {cells[0]} is not an interval end (a multiple of {self.interval_s} s)")
            return
        if self._last is not None:
            lt, li, le = self._last
            if ts <= lt:
                self._malformed(line, f"timestamp {cells[0]} is not after the previous row's")
                return
            if imp < li or exp < le:
                self._malformed(line, f"registers ({imp}, {exp}) are below the previous row's ({li}, {le}); "
                                      "cumulative registers never decrease")
                return
        self._last = (ts, imp, exp)
        self.rows[ts] = (imp, exp)

    def registers_at(self, end_s: int) -> tuple[int, int] | None:
        hit = self.rows.get(end_s)
        if hit is None:
            self.refresh()
            hit = self.rows.get(end_s)
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


def parse_source(spec: str, *, position: int = 0) -> RegisterSource:
    """A source from its `--source` spec; `position` is the meter's place among the gateway's
    meters (the default household index of `simulated`). SourceError with one clear line."""
    spec = spec.strip()
    if spec.startswith("csv:"):
        path = spec[4:]
        if not path:
            raise SourceError("csv source needs a path: csv:PATH")
        return CsvSource(path)
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
