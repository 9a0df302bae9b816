"""Reading a hand-written TOML file value by value, each error naming the file and the line.

`TomlReader` parses with `tomllib` (numbers with a fraction as exact `Decimal`s, never floats) and
finds lines with `genesis.toml_lines`; its getters check a value's type and unit and fail with
`DeploymentError("deployment.toml:23: ...")`. The deployment file (`genesis.deployment`) is read
through it; the units it understands are described there.
"""
from __future__ import annotations

import difflib
import re
import tomllib
from decimal import Decimal
from typing import Any, NoReturn

from genesis.toml_lines import Path, key_lines, line_of
from primitives import ss58
from primitives.ss58 import GRIDCHAIN_SS58_PREFIX, AddressError

SECONDS_PER_DAY = 86_400
U32_MAX, U64_MAX = 2**32 - 1, 2**64 - 1
_DURATION = re.compile(r"^(?:\d+[smhd])+$")
_DURATION_PART = re.compile(r"(\d+)([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": SECONDS_PER_DAY}
_POWER = re.compile(r"^(\d+(?:\.\d+)?)\s*(W|kW|MW)$")
_POWER_SCALE = {"W": 1, "kW": 1_000, "MW": 1_000_000}


class DeploymentError(ValueError):
    """A deployment file that cannot become a chain spec; the message is `file:line: what is wrong`."""


class TomlReader:
    """A parsed TOML file with its lines: typed getters that fail with `file:line: message`.

    `sections` maps each known section to its (required keys, optional keys); `arrays` are the
    sections written as arrays of tables (`[[x]]`), `optional` the sections a file may leave out."""

    def __init__(self, name: str, text: str, sections: dict[str, tuple[set[str], set[str]]],
                 arrays: set[str], optional: set[str]) -> None:
        self.name = name
        self.sections, self.arrays, self.optional = sections, arrays, optional
        try:
            self.data = tomllib.loads(text, parse_float=Decimal)
        except tomllib.TOMLDecodeError as e:
            m = re.search(r"\(at line (\d+), column \d+\)", str(e))
            line = m.group(1) if m else "1"
            raise DeploymentError(f"{name}:{line}: not valid TOML: {re.sub(r' [(]at .*[)]$', '', str(e))}") from None
        self.lines = key_lines(text)

    def fail(self, path: Path, message: str) -> NoReturn:
        raise DeploymentError(f"{self.name}:{line_of(self.lines, path)}: {message}")

    def line(self, path: Path) -> int:
        return line_of(self.lines, path)

    def get(self, path: Path) -> Any:
        value: Any = self.data
        for key in path:
            value = value[key]
        return value

    @staticmethod
    def show(path: Path) -> str:
        """`zones[2].dso` for ("zones", 1, "dso"): 1-based like the file reads."""
        out = ""
        for k in path:
            out += f"[{k + 1}]" if isinstance(k, int) else (f".{k}" if out else k)
        return out

    # -- structure -------------------------------------------------------------------------------
    def entries(self, section: str) -> list[Path]:
        """Paths of a section's tables (one for [x], each element for [[x]]), keys checked."""
        required, optional = self.sections[section]
        if section not in self.data:
            if section in self.optional:
                return []
            what = f"[[{section}]]" if section in self.arrays else f"[{section}]"
            raise DeploymentError(f"{self.name}:1: the file has no {what} section")
        value = self.data[section]
        if section in self.arrays:
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                self.fail((section,), f"{section} must be written as [[{section}]] tables")
            paths: list[Path] = [(section, i) for i in range(len(value))]
        else:
            if not isinstance(value, dict):
                self.fail((section,), f"{section} must be written as a [{section}] table")
            paths = [(section,)]
        for p in paths:
            table = self.get(p)
            for key in table:
                if key not in required | optional:
                    hint = difflib.get_close_matches(key, sorted(required | optional), n=1)
                    did = f" (did you mean {hint[0]!r}?)" if hint else ""
                    self.fail(p + (key,), f"unknown key {key!r} in {self.show(p)}{did}; known keys: "
                                          f"{', '.join(sorted(required | optional))}")
            for key in sorted(required):
                if key not in table:
                    self.fail(p, f"{self.show(p)} lacks {key!r}")
        return paths

    def check_sections(self) -> None:
        for key in self.data:
            if key not in self.sections:
                hint = difflib.get_close_matches(key, sorted(self.sections), n=1)
                did = f" (did you mean {hint[0]!r}?)" if hint else ""
                self.fail((key,), f"unknown section {key!r}{did}; known sections: {', '.join(self.sections)}")

    # -- typed values ----------------------------------------------------------------------------
    def text(self, path: Path, max_len: int = 64) -> str:
        v = self.get(path)
        if not isinstance(v, str) or not v.strip():
            self.fail(path, f"{self.show(path)} must be a non-empty string, not {v!r}")
        if len(v.encode()) > max_len:
            self.fail(path, f"{self.show(path)} is longer than {max_len} bytes")
        return v

    def integer(self, path: Path, lo: int, hi: int) -> int:
        v = self.get(path)
        if type(v) is not int:
            self.fail(path, f"{self.show(path)} must be a whole number, not {shown(v)}")
        if not lo <= v <= hi:
            self.fail(path, f"{self.show(path)} must be between {lo} and {hi}, not {v}")
        return v

    def boolean(self, path: Path) -> bool:
        v = self.get(path)
        if not isinstance(v, bool):
            self.fail(path, f"{self.show(path)} must be true or false, not {shown(v)}")
        return v

    def array(self, path: Path, min_len: int = 1) -> list:
        v = self.get(path)
        if not isinstance(v, list):
            self.fail(path, f"{self.show(path)} must be a list [...], not {shown(v)}")
        if len(v) < min_len:
            self.fail(path, f"{self.show(path)} must list at least {min_len}")
        return v

    def money(self, path: Path, decimals: int, unit: str) -> int:
        """A number of currency units, exactly, in the smallest unit (10^-decimals)."""
        v = self.get(path)
        if isinstance(v, bool) or not isinstance(v, (int, Decimal)):
            self.fail(path, f"{self.show(path)} must be a number of {unit} (e.g. 0.04), not {shown(v)}")
        if not Decimal(v).is_finite():
            self.fail(path, f"{self.show(path)} must be a finite number of {unit}, not {v}")
        scaled = Decimal(v).scaleb(decimals)
        if v < 0 or scaled != scaled.to_integral_value():
            self.fail(path, f"{self.show(path)} = {v} is not a non-negative amount with at most "
                            f"{decimals} decimal places")
        if int(scaled) > U64_MAX:
            self.fail(path, f"{self.show(path)} = {v} is too large")
        return int(scaled)

    def power_w(self, path: Path) -> int:
        v = self.get(path)
        if type(v) is int and 0 <= v <= U64_MAX:
            return v
        m = _POWER.match(v.strip()) if isinstance(v, str) else None
        watts = Decimal(m.group(1)) * _POWER_SCALE[m.group(2)] if m else None
        if watts is None or watts != watts.to_integral_value() or watts > U64_MAX:
            self.fail(path, f"{self.show(path)} must be a power in whole watts: a number of W or a "
                            f"string like \"250kW\", not {shown(v)}")
        return int(watts)

    def duration_s(self, path: Path) -> int:
        v = self.get(path)
        if not isinstance(v, str) or not _DURATION.match(v.strip()):
            self.fail(path, f"{self.show(path)} must be a duration like \"90s\", \"15m\", \"1h\", \"3d\" "
                            f"or \"1h30m\", not {shown(v)}")
        return sum(int(n) * _UNIT_S[u] for n, u in _DURATION_PART.findall(v))

    def blocks(self, path: Path, block_time_ms: int) -> int:
        """A count of blocks: a bare integer, or a duration converted with the block time (rounded up)."""
        v = self.get(path)
        if type(v) is int:
            n = v
        else:
            n = -(-self.duration_s(path) * 1000 // block_time_ms)
        if not 1 <= n <= U32_MAX:
            self.fail(path, f"{self.show(path)} must come to 1 to {U32_MAX} blocks, not {n}")
        return n

    def address(self, path: Path) -> str:
        v = self.text(path)
        try:
            ss58.decode(v, GRIDCHAIN_SS58_PREFIX)
        except (AddressError, ValueError) as e:
            self.fail(path, f"{self.show(path)} {v!r} is not a gridchain address ({e}); "
                            "`gridchain key inspect` shows a key's address")
        return v

    def hex_bytes(self, path: Path, length: int) -> str:
        v = self.text(path, max_len=4 * length)
        try:
            raw = bytes.fromhex(v.removeprefix("0x"))
        except ValueError:
            raw = b""
        if not v.startswith("0x") or len(raw) != length:
            self.fail(path, f"{self.show(path)} must be 0x and {length} bytes in hex")
        return v


def shown(v: Any) -> str:
    names = {str: "a string", bool: "a boolean", int: "an integer", Decimal: "a decimal number",
             list: "a list", dict: "a table"}
    return f"{names.get(type(v), type(v).__name__)} ({v!r})" if not isinstance(v, (list, dict)) \
        else names[type(v)]
