"""Human units in, chain units out (and back), so a household never types 12500000 for 12.5 GEUR.

The chain counts in integers: money in an asset's smallest unit (10^-decimals, decimals from the
chain: `system_properties` for the native token and the stablecoin, `balances.assets` for others),
energy in Wh, prices in smallest stablecoin units per kWh, time in unix seconds (DESIGN.md, Units).
The wallet accepts:

  amounts     `12.5`, `12.5GEUR`, `12.5 geur`: currency units, at most `decimals` decimal places
              (`0.000001` GEUR is the smallest stablecoin amount); a symbol, if given, must match
  energy      `500Wh`, `1.2kWh`, `0.25MWh`, or a bare integer meaning Wh; it must come to whole Wh
  power       `250kW`, `1.5MW`, `800W`, or a bare integer meaning W (capacities, rated power)
  prices      stablecoin per kWh: `0.12`, `0.12GEUR`, `0.12 GEUR/kWh`
  intervals   `+N` (the Nth delivery interval after the current one, by chain time), unix seconds
              (`1750000500`), or an ISO-8601 UTC time (`2025-06-15T14:15Z`); it must be on the
              chain's interval grid

Parsing is exact (decimal strings, never floats), so what the user typed is what is signed.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime

U64_MAX = 2**64 - 1

_NUMBER = r"(?P<num>\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)"
_AMOUNT = re.compile(rf"^{_NUMBER}\s*(?P<sym>[A-Za-z][A-Za-z0-9]*)?$")
_ENERGY = re.compile(rf"^{_NUMBER}\s*(?P<unit>[kKmM]?[wW][hH])?$")
_PRICE = re.compile(rf"^{_NUMBER}\s*(?P<sym>[A-Za-z][A-Za-z0-9]*)?\s*(?:/\s*(?P<per>[kK][wW][hH]))?$")
_ENERGY_SCALE = {"wh": 1, "kwh": 1_000, "mwh": 1_000_000}
_POWER = re.compile(rf"^{_NUMBER}\s*(?P<unit>[kKmM]?[wW])?$")


class UnitError(ValueError):
    """Text that is not a valid amount, energy, price or interval; the message says what is expected."""


def _scaled(num: str, decimals: int, what: str, text: str) -> int:
    """The decimal string `num` times 10^decimals, exactly; UnitError if that is not a whole number."""
    num = num.replace("_", "")
    whole, _, frac = num.partition(".")
    frac = frac.rstrip("0")
    if len(frac) > decimals:
        raise UnitError(f"{what} {text!r} has more decimal places than the smallest unit allows ({decimals})")
    value = int(whole or "0") * 10**decimals + int(frac.ljust(decimals, "0") or "0")
    if value > U64_MAX:
        raise UnitError(f"{what} {text!r} is too large")
    return value


def parse_amount(text: str, decimals: int, symbol: str | None = None) -> int:
    """`12.5` or `12.5GEUR` (decimals 6) -> 12_500_000 smallest units."""
    m = _AMOUNT.match(text.strip())
    if not m:
        hint = f", e.g. 12.5 or 12.5{symbol}" if symbol else ", e.g. 12.5"
        raise UnitError(f"not an amount: {text!r} (expected a non-negative decimal number{hint})")
    sym = m.group("sym")
    if sym and symbol and sym.upper() != symbol.upper():
        raise UnitError(f"amount {text!r} is in {sym}, but this asset is {symbol}")
    return _scaled(m.group("num"), decimals, "amount", text)


def format_amount(units: int, decimals: int, symbol: str | None = None) -> str:
    """12_500_000 (decimals 6) -> `12.5 GEUR`: no trailing zeros, never rounded."""
    whole, frac = divmod(units, 10**decimals) if decimals else (units, 0)
    text = f"{whole:,}"
    if frac:
        text += "." + str(frac).rjust(decimals, "0").rstrip("0")
    return f"{text} {symbol}" if symbol else text


def parse_energy(text: str) -> int:
    """`1.2kWh` -> 1200, `500Wh` or `500` -> 500 (Wh)."""
    m = _ENERGY.match(text.strip())
    if not m:
        raise UnitError(f"not an energy quantity: {text!r} (expected e.g. 500Wh, 1.2kWh or 500)")
    scale = _ENERGY_SCALE[(m.group("unit") or "wh").lower()]
    digits = {1: 0, 1_000: 3, 1_000_000: 6}[scale]
    try:
        return _scaled(m.group("num"), digits, "energy", text)
    except UnitError:
        raise UnitError(f"energy {text!r} is not a whole number of Wh (or is too large)") from None


def format_energy(wh: int) -> str:
    """500 -> `500 Wh`, 1200 -> `1.2 kWh`, 2_500_000 -> `2,500 kWh`."""
    if wh < 1000:
        return f"{wh} Wh"
    return format_amount(wh, 3, "kWh")


def parse_power(text: str) -> int:
    """`250kW` -> 250_000, `1.5MW` -> 1_500_000, `800W` or `800` -> 800 (W: grid capacities)."""
    m = _POWER.match(text.strip())
    if not m:
        raise UnitError(f"not a power: {text!r} (expected e.g. 250kW, 1.5MW, 800W or 800)")
    digits = {"w": 0, "kw": 3, "mw": 6}[(m.group("unit") or "w").lower()]
    try:
        return _scaled(m.group("num"), digits, "power", text)
    except UnitError:
        raise UnitError(f"power {text!r} is not a whole number of W (or is too large)") from None


def format_power(w: int) -> str:
    """800 -> `800 W`, 250_000 -> `250 kW`, 1_500_000 -> `1,500 kW`."""
    if w < 1000:
        return f"{w} W"
    return format_amount(w, 3, "kW")


def parse_price(text: str, decimals: int, symbol: str | None = None) -> int:
    """A price per kWh in currency units: `0.12`, `0.12GEUR`, `0.12 GEUR/kWh` -> 120_000 (decimals 6)."""
    m = _PRICE.match(text.strip())
    if not m:
        unit = f"{symbol}/kWh" if symbol else "per kWh"
        raise UnitError(f"not a price: {text!r} (expected currency units per kWh, e.g. 0.12 or 0.12{unit})")
    sym = m.group("sym")
    if sym and symbol and sym.upper() != symbol.upper():
        raise UnitError(f"price {text!r} is in {sym}, but the market trades in {symbol}")
    return _scaled(m.group("num"), decimals, "price", text)


def format_price(units_per_kwh: int, decimals: int, symbol: str | None = None) -> str:
    return format_amount(units_per_kwh, decimals, symbol) + "/kWh"


def format_time(t_s: int) -> str:
    """Unix seconds as an ISO-8601 UTC time: `2025-06-15T14:15:00Z`."""
    return datetime.fromtimestamp(t_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_interval(text: str, now_s: int, interval_s: int) -> int:
    """A delivery interval's start (unix seconds) from `+N`, unix seconds or an ISO-8601 time.

    `+N` counts from the interval containing `now_s` (chain time: on a dev chain with a time warp it
    differs from the wall clock). Explicit times must lie on the interval grid, since an order for
    a misaligned start would only be refused by the chain after paying the fee.
    """
    s = text.strip()
    if re.fullmatch(r"\+\d+", s):
        n = int(s[1:])
        return now_s - now_s % interval_s + n * interval_s
    if re.fullmatch(r"\d+", s):
        t = int(s)
    else:
        iso = s[:-1] + "+00:00" if s.endswith(("Z", "z")) else s
        try:
            dt = datetime.fromisoformat(iso)
        except ValueError:
            raise UnitError(f"not an interval: {text!r} (expected +N, unix seconds, or an ISO time such as "
                            "2025-06-15T14:15Z)") from None
        if dt.tzinfo is None:
            raise UnitError(f"interval {text!r} has no time zone: add Z for UTC or an offset like +02:00")
        t = int(dt.timestamp())
    if t % interval_s:
        below = t - t % interval_s
        raise UnitError(f"interval {text!r} is not on the chain's {interval_s} s grid "
                        f"(nearest earlier start: {below} = {format_time(below)})")
    return t
