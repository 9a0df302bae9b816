"""An accelerated chain clock that every validator of a demo or simulation chain computes alike.

A simulated day of 15-minute delivery intervals, gate closures and settlement windows should pass in
minutes, without shortening any of the chain's rules (a shorter interval would make every power
limit, tariff and window differ from the real chain's). So the chain's *time* runs faster instead: a
chain spec may carry

    "consensus": {"timeWarp": {"factor": 360, "wallStartMs": W, "chainStartMs": C, "untilChainMs": U}}

and every node then stamps and checks block timestamps against

    chain(wall) = C + (wall - W) * factor                  while that is before U,
                = U + (wall - wall_at(U))                  afterwards (normal speed again)

Because the rule is in the spec, all validators agree on it (up to their wall clocks' offsets, which
the timestamp drift allowance absorbs at factor 1, but which at factor 360 must be within
max_drift_ms / factor: loopback networks, the one place this is meant for). Meters and wallets of
such a chain use the same clock to know which interval has ended. With `untilChainMs` set, a
network kept up after its simulated day runs at normal speed, so people can use it by hand.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


class ChainClockError(ValueError):
    """A `timeWarp` section that cannot be used."""


@dataclass(frozen=True)
class ChainClock:
    factor: int
    wall_start_ms: int
    chain_start_ms: int
    until_chain_ms: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.factor <= 10_000:
            raise ChainClockError("timeWarp.factor must be between 1 and 10000")
        if self.until_chain_ms is not None and self.until_chain_ms < self.chain_start_ms:
            raise ChainClockError("timeWarp.untilChainMs must not be before chainStartMs")

    @classmethod
    def from_spec(cls, spec: dict) -> ChainClock | None:
        """The clock a chain spec prescribes, or None for real time."""
        warp = spec.get("consensus", {}).get("timeWarp")
        if warp is None:
            return None
        try:
            return cls(int(warp["factor"]), int(warp["wallStartMs"]), int(warp["chainStartMs"]),
                       None if warp.get("untilChainMs") is None else int(warp["untilChainMs"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ChainClockError(f"bad consensus.timeWarp in the chain spec: {e}") from None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"factor": self.factor, "wallStartMs": self.wall_start_ms,
                               "chainStartMs": self.chain_start_ms}
        if self.until_chain_ms is not None:
            out["untilChainMs"] = self.until_chain_ms
        return out

    @property
    def _switch_wall_ms(self) -> float | None:
        """Wall time at which the warp ends."""
        if self.until_chain_ms is None:
            return None
        return self.wall_start_ms + (self.until_chain_ms - self.chain_start_ms) / self.factor

    def chain_ms(self, wall_ms: float | None = None) -> int:
        """Chain time (unix ms) at a wall time (default: now)."""
        w = time.time_ns() / 1e6 if wall_ms is None else wall_ms
        switch = self._switch_wall_ms
        if switch is not None and w >= switch:
            return int(self.until_chain_ms + (w - switch))
        return int(self.chain_start_ms + (w - self.wall_start_ms) * self.factor)

    def now_ms(self) -> int:
        return self.chain_ms()

    def now_s(self) -> float:
        """Chain time in unix seconds (float), the clock meters and simulators run on."""
        return self.chain_ms() / 1000

    def wall_ms_at(self, chain_ms: int) -> float:
        """The wall time (unix ms) at which the chain clock reaches `chain_ms`: what to sleep until."""
        switch = self._switch_wall_ms
        if switch is not None and chain_ms >= self.until_chain_ms:
            return switch + (chain_ms - self.until_chain_ms)
        return self.wall_start_ms + (chain_ms - self.chain_start_ms) / self.factor
