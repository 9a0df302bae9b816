"""Simulated households driven by real metering data: what a neighbourhood consumes and generates.

One real household's year (Ausgrid's solar home data, customer 12: see `meters/data/README.md`, CC BY
4.0, attribution in `ATTRIBUTION`) stands for a neighbourhood. Each simulated household reads it at
its own day offset and scales consumption and PV generation by its own factors, so twenty households
do not move in lockstep, yet every figure comes from a real roof and a real family.

Time: the data's local time of day is mapped onto the chain's UTC time of day (unix time is
whole days from midnight UTC), so the PV peak falls at noon on the chain's clock and the chain's
time-of-use bands apply to it as they would to a local feeder. Within a half-hour slot energy flows
at a constant rate, which is all half-hourly data can say.

Meters: a household's meter integrates flows slot by slot. Within each half hour it nets
consumption against generation (a single-phase meter sees only the net flow) and adds the import to
register 1.8.0 or the export to 2.8.0. Everything is integer watt-hours and exact: the energy of
[t0, t1) is a difference of cumulative floors, so splitting a span into intervals never creates or
loses a watt-hour.
"""
from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

DATA_FILE = Path(__file__).resolve().parent / "data" / "ausgrid-customer12-2011-2012.csv"

#: one line to print wherever figures derived from the data are shown
ATTRIBUTION = ("household data: Ausgrid Solar home electricity data, customer 12, 2011-2012 (Ratnam et al., "
               "Int. J. Sustainable Energy 2017; extract by P. Haessig), CC BY 4.0")

SLOT_S = 1800       # the data's resolution: half an hour
DAY_S = 86_400


class DataError(ValueError):
    """The metering data file cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class LoadProfile:
    """Energy per half-hour slot from the data's first midnight, in Wh (rounded from kWh)."""

    consumption_wh: tuple[int, ...]
    generation_wh: tuple[int, ...]

    @property
    def slots(self) -> int:
        return len(self.consumption_wh)

    @property
    def days(self) -> int:
        return self.slots * SLOT_S // DAY_S


def _kwh(value: str, path: Path, line: int, column: str) -> int:
    try:
        kwh = float(value)
    except ValueError:
        raise DataError(f"{path}:{line}: {column} is not a number: {value!r}") from None
    if not 0 <= kwh < 1_000:
        raise DataError(f"{path}:{line}: {column} out of range for a household's half hour: {value!r}")
    return round(kwh * 1000)


@lru_cache(maxsize=4)
def load_profile(path: Path = DATA_FILE) -> LoadProfile:
    """Parse the half-hourly CSV (timestamp, GC kWh, GG kWh). Rows must be consecutive half hours
    covering whole days from a midnight: a gap would shift every later day, so it is an error."""
    consumption: list[int] = []
    generation: list[int] = []
    try:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None or [h.strip() for h in header[1:3]] != ["GC", "GG"]:
                raise DataError(f"{path}:1: expected a header ',GC,GG', got {header!r}")
            previous: datetime | None = None
            for line, row in enumerate(reader, start=2):
                if len(row) != 3:
                    raise DataError(f"{path}:{line}: expected 3 columns (timestamp, GC, GG), got {len(row)}")
                try:
                    ts = datetime.fromisoformat(row[0])
                except ValueError:
                    raise DataError(f"{path}:{line}: bad timestamp {row[0]!r}") from None
                if previous is None and (ts.hour, ts.minute, ts.second) != (0, 0, 0):
                    raise DataError(f"{path}:{line}: the data must start at a midnight, not {row[0]}")
                if previous is not None and (ts - previous).total_seconds() != SLOT_S:
                    raise DataError(f"{path}:{line}: {row[0]} does not follow {previous} by 30 minutes")
                previous = ts
                consumption.append(_kwh(row[1], path, line, "GC"))
                generation.append(_kwh(row[2], path, line, "GG"))
    except OSError as e:
        raise DataError(f"cannot read metering data {path}: {e.strerror}") from None
    if not consumption or len(consumption) * SLOT_S % DAY_S:
        raise DataError(f"{path}: the data must cover whole days ({len(consumption)} half hours)")
    return LoadProfile(tuple(consumption), tuple(generation))


@dataclass(frozen=True)
class HouseholdSpec:
    """How one simulated household differs from the data's: its day of the year and its scale."""

    day_offset: int        # days added to the chain's day when reading the data
    load_pct: int          # consumption scale, % of the data household's
    pv_pct: int            # PV generation scale, % of the data household's (0: no PV)


class Household:
    """A household's consumption and generation at any chain time, and its meter's registers."""

    def __init__(self, spec: HouseholdSpec, profile: LoadProfile | None = None) -> None:
        self.spec = spec
        self.profile = profile or load_profile()
        self._period_s = self.profile.days * DAY_S
        self._offset_s = spec.day_offset * DAY_S
        # per-slot flows seen by the meter: net import and net export, scaled
        self._slot_cache: dict[int, tuple[int, int, int, int]] = {}
        self._cum_cache: tuple[int, int, int] | None = None  # (slot, import before it, export before it)

    def _slot(self, slot: int) -> tuple[int, int, int, int]:
        """(consumption, generation, net import, net export) in Wh for an absolute data slot."""
        hit = self._slot_cache.get(slot)
        if hit is None:
            i = slot % self.profile.slots
            c = self.profile.consumption_wh[i] * self.spec.load_pct // 100
            g = self.profile.generation_wh[i] * self.spec.pv_pct // 100
            hit = (c, g, max(0, c - g), max(0, g - c))
            if len(self._slot_cache) > 4096:
                self._slot_cache.clear()
            self._slot_cache[slot] = hit
        return hit

    def _data_time(self, chain_t: int) -> int:
        """Seconds since the data's first midnight (unbounded: the year repeats) for a chain time."""
        return chain_t % self._period_s + self._offset_s

    def energy(self, t0: int, t1: int) -> tuple[int, int]:
        """(consumption, generation) in Wh over chain time [t0, t1)."""
        return self._span(t0, t1, 0), self._span(t0, t1, 1)

    def flows(self, t0: int, t1: int) -> tuple[int, int]:
        """(import, export) in Wh a meter records over chain time [t0, t1)."""
        return self._span(t0, t1, 2), self._span(t0, t1, 3)

    def _span(self, t0: int, t1: int, column: int) -> int:
        """Energy of `column` over [t0, t1), exact: within a slot the share of [a, b) is
        floor(E * (b - s) / SLOT) - floor(E * (a - s) / SLOT), so adjacent spans sum to the whole."""
        if t1 < t0:
            raise ValueError("a span must not end before it starts")
        total = 0
        t = t0
        while t < t1:
            x = self._data_time(t)
            slot, frac = divmod(x, SLOT_S)
            step = min(SLOT_S - frac, t1 - t)
            e = self._slot(slot)[column]
            total += e * (frac + step) // SLOT_S - e * frac // SLOT_S
            t += step
        return total


class Registers:
    """A meter's cumulative registers (OBIS 1.8.0 import, 2.8.0 export), from an installation time.

    `at(t)` is the registers' value at chain time t >= the installation; it advances from the last
    value asked for, so a meter reading interval after interval costs a few slots each."""

    def __init__(self, household: Household, installed_at: int, import_wh: int = 0, export_wh: int = 0) -> None:
        self.household = household
        self.installed_at = installed_at
        self._base = (import_wh, export_wh)
        self._last = (installed_at, import_wh, export_wh)

    def at(self, t: int) -> tuple[int, int]:
        if t < self.installed_at:
            raise ValueError(f"chain time {t} is before the meter was installed ({self.installed_at})")
        t_last, imp, exp = self._last
        if t < t_last:
            t_last, (imp, exp) = self.installed_at, self._base
        d_imp, d_exp = self.household.flows(t_last, t)
        self._last = (t, imp + d_imp, exp + d_exp)
        return imp + d_imp, exp + d_exp


def neighbourhood(n: int, seed: int = 2011) -> list[HouseholdSpec]:
    """n households drawn from a seeded generator: about a third without PV, the others with PV
    from one to four times the data household's 1.8 kWp; loads from 50% to 140% of its."""
    if not 1 <= n <= 100_000:
        raise ValueError("a neighbourhood has 1 to 100,000 households")
    rng = random.Random(seed)
    out = []
    for i in range(n):
        has_pv = i % 3 != 2
        out.append(HouseholdSpec(day_offset=rng.randrange(0, 366), load_pct=rng.randrange(50, 141),
                                 pv_pct=rng.randrange(100, 401) if has_pv else 0))
    return out
